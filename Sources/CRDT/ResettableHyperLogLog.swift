/// A HyperLogLog that can be deleted (`PFADD`, `PFMERGE`, and `DEL` of the key).
///
/// A plain ``HyperLogLog`` only grows, so it cannot forget what a `DEL` removed. Here every replica
/// that adds keeps its own sketch under a dot (the dot of its first add since it last saw a removal),
/// beside a causal context, as a dot store keeps values: a removal ships the dots it has seen as
/// context, and a join drops a sketch whose dot the other side has seen but no longer holds. The
/// sketches of one dot join register-wise (`max`), so a replica's later adds grow its sketch in place.
///
/// * Concurrent adds on two replicas both count: the count is that of the union of every sketch.
/// * A removal concurrent with an add: an add into a sketch the remover had seen is lost with it; a
///   replica's first add after it last saw a removal starts a new sketch, which survives (as
///   ``CountingRegister``'s shards behave under `HDEL`).
///
/// State: at most one sketch per replica that added since the last removal it saw. Deltas: the
/// registers an add raised in the adder's sketch, under its dot; a removal ships a context.
/// `union` is derived (not encoded, not compared) and kept up to date on every change.
public struct ResettableHyperLogLog: SerializableCRDT, CustomStringConvertible {
    public static var binaryTypeTag: UInt8 { 24 }

    public private(set) var sketches: [Dot: HyperLogLog]
    public private(set) var context: CausalContext
    /// The join of every sketch: what `PFCOUNT` counts.
    public private(set) var union: HyperLogLog

    public init() {
        sketches = [:]
        context = CausalContext()
        union = HyperLogLog()
    }

    public init(sketches: [Dot: HyperLogLog], context: CausalContext) {
        self.sketches = sketches
        self.context = context
        union = HyperLogLog()
        for sketch in sketches.values { union.join(sketch) }
    }

    public static func == (lhs: ResettableHyperLogLog, rhs: ResettableHyperLogLog) -> Bool {
        lhs.sketches == rhs.sketches && lhs.context == rhs.context
    }

    /// Whether the key holds a sketch (possibly empty: `PFADD key` with no element creates it).
    public var exists: Bool { !sketches.isEmpty }

    /// The estimated number of distinct elements added and not removed (`PFCOUNT`).
    public var count: UInt64 { union.count }

    public var description: String { "ResettableHyperLogLog(\(sketches.count) sketches, \(union))" }

    // MARK: Mutators

    /// Adds `elements` on behalf of `replica`. Returns the delta and whether the union changed (an
    /// internal register was raised, or the key was created): `PFADD`'s 1 or 0.
    public mutating func add(_ elements: [[UInt8]], replica: ReplicaID) -> (delta: ResettableHyperLogLog, changed: Bool) {
        update(replica: replica) { sketch in sketch.add(contentsOf: elements) }
    }

    /// Merges the sketch `source` (another key's union) on behalf of `replica` (`PFMERGE`).
    public mutating func merge(_ source: HyperLogLog, replica: ReplicaID) -> (delta: ResettableHyperLogLog, changed: Bool) {
        update(replica: replica) { sketch in sketch.merge(source) }
    }

    /// Removes every sketch seen and returns the delta; a concurrent first add elsewhere survives.
    @discardableResult
    public mutating func removeAll() -> ResettableHyperLogLog {
        let delta = ResettableHyperLogLog(sketches: [:], context: CausalContext(dots: sketches.keys))
        sketches = [:]
        union = HyperLogLog()
        return delta
    }

    private mutating func update(replica: ReplicaID, _ body: (inout HyperLogLog) -> HyperLogLog)
        -> (delta: ResettableHyperLogLog, changed: Bool) {
        let existing = sketches.keys.first { $0.replica == replica }
        let dot = existing ?? context.nextDot(for: replica)
        var sketch = sketches.removeValue(forKey: dot) ?? HyperLogLog()
        let raised = body(&sketch)
        sketches[dot] = sketch
        guard existing == nil || !raised.isEmpty else { return (ResettableHyperLogLog(), false) }
        if existing == nil { context.insert(dot) }
        let grew = union.inflate(with: raised)
        return (ResettableHyperLogLog(sketches: [dot: raised], context: CausalContext(dots: [dot])), grew || existing == nil)
    }

    // MARK: Join

    public mutating func join(_ other: ResettableHyperLogLog) { _ = inflate(with: other) }

    /// O(other + replicas): a delta names one sketch, and there is at most one sketch per replica.
    public mutating func inflate(with other: ResettableHyperLogLog) -> Bool {
        if other.sketches.isEmpty && other.context.isEmpty { return false }
        var changed = false
        var removedAny = false
        // What `other` has seen and no longer holds was removed there.
        for dot in Array(sketches.keys) where other.sketches[dot] == nil && other.context.contains(dot) {
            sketches.removeValue(forKey: dot)
            removedAny = true
        }
        for (dot, sketch) in other.sketches {
            if sketches[dot] != nil {
                changed = sketches[dot]!.inflate(with: sketch) || changed
            } else if !context.contains(dot) {
                sketches[dot] = sketch
                changed = true
            }
        }
        changed = context.formUnionReportingGrowth(other.context) || changed || removedAny
        if removedAny {
            union = HyperLogLog()
            for sketch in sketches.values { union.join(sketch) }
        } else {
            for (dot, sketch) in other.sketches where sketches[dot] != nil { union.join(sketch) }
        }
        return changed
    }

    // MARK: Encoding

    /// The sketches by dot (each sketch in ``HyperLogLog``'s encoding), then the context.
    public func encode(to writer: inout BinaryWriter) {
        writer.write(varint: UInt64(sketches.count))
        for dot in sketches.keys.sorted() {
            dot.encode(to: &writer)
            sketches[dot]!.encode(to: &writer)
        }
        context.encode(to: &writer)
    }

    public init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let count = try reader.readCount(minimumElementSize: 11)
        var sketches: [Dot: HyperLogLog] = [:]
        var previous: Dot?
        for _ in 0..<count {
            let offset = reader.offset
            let dot = try Dot(from: &reader)
            if let previous, !(previous < dot) {
                throw .notCanonical(reason: "sketch dots must be strictly increasing", offset: offset)
            }
            previous = dot
            sketches[dot] = try HyperLogLog(from: &reader)
        }
        let contextOffset = reader.offset
        let context = try CausalContext(from: &reader)
        if let missing = sketches.keys.first(where: { !context.contains($0) }) {
            throw .invalidValue(reason: "dot \(missing) is held but missing from the causal context", offset: contextOffset)
        }
        self.init(sketches: sketches, context: context)
    }
}
