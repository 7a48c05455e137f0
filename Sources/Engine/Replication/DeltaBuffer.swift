import Wire

/// Deltas this node has joined (its own and, once, those it received that changed its state), numbered
/// by this node's delta sequence, kept until every live peer acknowledged them or the byte budget runs out.
struct DeltaBuffer {
    struct Entry {
        var sequence: UInt64
        var delta: KeyedBytes
        /// The peer this delta came from, which holds it already; `nil` for a local write.
        var source: String? = nil
        /// Members the source delivers this delta to itself (`PeerMessage.deltas`'s `reaching`): not
        /// forwarded to them.
        var reaching: [String] = []
        /// Bytes appended to the buffer before this entry, over its whole life: the bytes between two
        /// sequences are a subtraction, so a lagging peer's backlog is measured in O(1).
        var offset: Int = 0
    }

    /// Oldest first; sequences are consecutive.
    private(set) var entries: [Entry] = []
    private var head = 0
    private(set) var bytes = 0
    /// Bytes ever appended.
    private var appended = 0
    let capacityBytes: Int

    init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    /// The first sequence still held, or `nil` when empty.
    var firstSequence: UInt64? { head < entries.count ? entries[head].sequence : nil }

    /// Appends a delta; drops the oldest ones when over budget. Returns whether anything was dropped.
    @discardableResult
    mutating func append(_ entry: Entry) -> Bool {
        var entry = entry
        entry.offset = appended
        entries.append(entry)
        let size = entry.delta.key.count + entry.delta.bytes.count
        bytes += size
        appended += size
        var dropped = false
        while bytes > capacityBytes && head < entries.count - 1 {
            dropOldest()
            dropped = true
        }
        return dropped
    }

    /// Forgets every delta below `sequence` (all live peers have them).
    mutating func collect(below sequence: UInt64) {
        while head < entries.count && entries[head].sequence < sequence { dropOldest() }
    }

    /// Bytes of the deltas held with sequence at or above `sequence`. O(1).
    func bytes(from sequence: UInt64) -> Int {
        guard let first = firstSequence else { return 0 }
        let start = head + Int(max(sequence, first) - first)
        return start < entries.count ? appended - entries[start].offset : 0
    }

    /// Deltas with sequence at or above `from`, oldest first.
    func entries(from sequence: UInt64) -> ArraySlice<Entry> {
        guard let first = firstSequence else { return [] }
        let start = head + Int(max(sequence, first) - first)
        return start < entries.count ? entries[start...] : []
    }

    private mutating func dropOldest() {
        bytes -= entries[head].delta.key.count + entries[head].delta.bytes.count
        head += 1
        if head > 1024 && head * 2 > entries.count {
            // Copied at its size rather than shifted in place: a burst must not leave its capacity behind.
            entries = Array(entries[head...])
            head = 0
        }
    }
}
