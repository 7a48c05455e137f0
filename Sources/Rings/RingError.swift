/// A ring could not be created as configured.
///
/// Rings are sized from configuration, so a bad size is reported as a value the caller can show to the
/// operator instead of a trap.
public struct RingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as a value that `catch` can match on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        @usableFromInline
        enum Kind: Hashable, Sendable {
            case capacityTooSmall
            case capacityTooLarge
        }

        @usableFromInline
        let kind: Kind

        @usableFromInline
        init(_ kind: Kind) { self.kind = kind }

        /// The requested capacity was zero or negative: a ring must hold at least one element.
        public static let capacityTooSmall = Code(.capacityTooSmall)
        /// The requested capacity exceeds ``RingError/maximumCapacity``.
        public static let capacityTooLarge = Code(.capacityTooLarge)

        public var description: String {
            switch kind {
            case .capacityTooSmall: "capacityTooSmall"
            case .capacityTooLarge: "capacityTooLarge"
            }
        }
    }

    /// The largest capacity a ring accepts (2^30 elements). Larger rings would pin gigabytes of memory for
    /// one queue; the daemon's rings hold thousands.
    public static let maximumCapacity = 1 << 30

    /// What went wrong.
    public let code: Code
    /// The capacity that was requested.
    public let requestedCapacity: Int

    @usableFromInline
    init(code: Code, requestedCapacity: Int) {
        self.code = code
        self.requestedCapacity = requestedCapacity
    }

    public var description: String {
        switch code.kind {
        case .capacityTooSmall:
            "ring capacity \(requestedCapacity) is too small: a ring holds at least 1 element; "
                + "configure a capacity of 1 or more"
        case .capacityTooLarge:
            "ring capacity \(requestedCapacity) is too large: the limit is \(RingError.maximumCapacity) elements; "
                + "configure a smaller capacity (rings are rounded up to a power of two)"
        }
    }
}

/// Rounds a requested capacity up to a power of two, or reports why it cannot be used.
@usableFromInline
func ringCapacity(roundingUp requested: Int) throws(RingError) -> Int {
    guard requested >= 1 else { throw RingError(code: .capacityTooSmall, requestedCapacity: requested) }
    guard requested <= RingError.maximumCapacity else {
        throw RingError(code: .capacityTooLarge, requestedCapacity: requested)
    }
    var capacity = 1
    while capacity < requested { capacity <<= 1 }
    return capacity
}
