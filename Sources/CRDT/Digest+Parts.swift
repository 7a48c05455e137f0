extension Digest128 {
    /// A digest from its two halves, as read back from the wire.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}
