import CRDT
import RESP

/// Reads and writes of string values, hash fields and set members shared by several commands.
extension Engine {
    /// What a key holds, seen as a Redis string: counters read as their decimal value.
    enum StringValue: Equatable {
        case absent
        case otherType
        case value(Bytes)
    }

    func stringValue(_ key: Bytes) -> StringValue {
        guard let object = live(key) else { return .absent }
        switch object.visibleType {
        case nil: return .absent
        case .counter?: return .value(Array(String(object.counter.value).utf8))
        case .string?: return object.string.value.map(StringValue.value) ?? .absent
        default: return .otherType
        }
    }

    /// `SET`: replaces whatever the key held, of any type, as Redis does: an observed remove of every
    /// slot and a new register value, in one delta. A bounded counter cannot be removed, so it refuses.
    /// Without `KEEPTTL` the deadlines seen are removed (a concurrent `EXPIRE` elsewhere survives);
    /// with `EX`/`PX`/`EXAT`/`PXAT` the new deadline is in the same delta.
    mutating func setString(_ key: Bytes, _ value: Bytes, expiry: ExpiryChange?, into output: inout EngineOutput) -> RESPReply {
        if keyspace.holdsBoundedCounter(key) { return Self.boundedCounterStays }
        let deadline = expiry.flatMap(deadline(of:))
        if let deadline, deadline <= Int64(clamping: wallMilliseconds) {
            // Already past: Redis stores nothing, and what the key held is gone.
            mutate(key, touching: [], into: &output) { object, _ in object.removeObserved() }
            return .ok
        }
        if case .after? = expiry, deadline == nil { return .error("ERR invalid expire time in 'set' command") }
        let replica = configuration.replica
        mutate(key, touching: [.string, .expiry], into: &output) { object, m in
            var delta = object.removeObserved(keepingDeadline: expiry == .keep)
            // Joined, not assigned: the remove's context carries the dots of the value replaced, which
            // the assign's delta (made after the remove emptied the register) no longer names.
            delta.string.join(object.string.assign(value, clock: &m.clock))
            if let deadline { delta.expiry.join(object.expiry.expire(atMilliseconds: UInt64(deadline), replica: replica)) }
            return delta
        }
        return .ok
    }

    static let boundedCounterStays = RESPReply.error(
        "ERR the key holds a bounded counter, which cannot be deleted or overwritten: its rights are spread over replicas "
            + "and cannot be revoked without coordination; use another key")

    /// `APPEND`, `SETRANGE`: the string (or a counter's decimal value) rewritten whole, as one register
    /// write; two concurrent rewrites keep one of them (last writer wins). Answers the new length.
    mutating func rewriteString(_ key: Bytes, into output: inout EngineOutput, _ transform: (Bytes) -> Bytes) -> RESPReply {
        let current: Bytes
        switch stringValue(key) {
        case .otherType: return Self.wrongType
        case .absent: current = []
        case .value(let value): current = value
        }
        let updated = transform(current)
        guard updated.count <= CommandParser.maxStringLength else {
            return .error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        }
        mutate(key, into: &output) { object, m in
            var delta = KeyObject()
            // A counter turns into a string holding its value: its contributions are reset (observed).
            if object.counter.isLive { delta.counter = object.counter.reset() }
            delta.string = object.string.assign(updated, clock: &m.clock)
            return delta
        }
        return .integer(Int64(updated.count))
    }

    /// `GETRANGE`'s inclusive range with Redis's negative offsets and clamping.
    static func substring(_ value: Bytes, start: Int64, end: Int64) -> Bytes {
        let count = Int64(value.count)
        var start = start < 0 ? count + start : start
        var end = end < 0 ? count + end : end
        start = max(0, start)
        end = max(0, end)
        if end >= count { end = count - 1 }
        guard start <= end, start < count, count > 0 else { return [] }
        return Array(value[Int(start)...Int(end)])
    }

    // MARK: Hashes

    /// The value a client sees for one hash field.
    func hashValue(_ key: Bytes, _ field: Bytes) -> Bytes? {
        live(key)?.hash[field].flatMap(Self.shownValue)
    }

    /// A field is its winning write plus the increments that write had not seen. The increments show
    /// only on an integer value (or alone, when nothing written survives): a concurrent `HSET` of a
    /// non-integer shows its bytes, and its increments count again once an integer is written.
    static func shownValue(_ field: KeyObject.HashField) -> Bytes? {
        let increments = field.increments
        guard let written = field.value else { return field.isEmpty ? nil : Array(String(increments).utf8) }
        guard increments != 0, let number = canonicalInteger(written) else { return written }
        return Array(String(number &+ increments).utf8)
    }

    /// The integer `bytes` spell exactly as Redis writes one (no sign '+', spaces or leading zeros).
    static func canonicalInteger(_ bytes: Bytes) -> Int64? {
        guard bytes.count <= 20, let number = Int64(String(decoding: bytes, as: UTF8.self)),
              Array(String(number).utf8) == bytes else { return nil }
        return number
    }

    /// `HINCRBY`: an increment of the field's counter, so concurrent `HINCRBY`s on two nodes both count.
    mutating func hashIncrement(_ key: Bytes, _ field: Bytes, by amount: Int64, into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.hash, key) else { return Self.wrongType }
        var current: Int64 = 0
        if let shown = hashValue(key, field) {
            guard let number = Self.canonicalInteger(shown) else { return .error("ERR hash value is not an integer") }
            current = number
        }
        guard !current.addingReportingOverflow(amount).overflow else { return .error("ERR increment or decrement would overflow") }
        let replica = configuration.replica
        do {
            try mutate(key, into: &output) { (object: inout KeyObject, _: inout Mutation) throws(CRDTMutationError) -> KeyObject in
                var delta = KeyObject()
                delta.hash = try object.hash.update(field) { (register: inout KeyObject.HashField) throws(CRDTMutationError) in
                    try register.increment(by: amount, replica: replica)
                }
                return delta
            }
        } catch {
            return .error("ERR increment or decrement would overflow")
        }
        return .integer(current + amount)
    }

    /// `HINCRBYFLOAT`: a read and a write of the field (last writer wins), not a counter: two concurrent
    /// ones keep one result. Floats are not summed across nodes, so every node shows the bytes written.
    mutating func hashIncrementFloat(_ key: Bytes, _ field: Bytes, by amount: Double, into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.hash, key) else { return Self.wrongType }
        var current = 0.0
        if let shown = hashValue(key, field) {
            guard let number = try? CommandParser.parseDouble(shown, error: .syntax), number.isFinite else {
                return .error("ERR hash value is not a float")
            }
            current = number
        }
        let result = current + amount
        guard result.isFinite else { return .error("ERR increment would produce NaN or Infinity") }
        let text = Array(Self.formatScore(result).utf8)
        mutate(key, into: &output) { object, m in
            var delta = KeyObject()
            delta.hash = object.hash.update(field) { $0.assign(text, clock: &m.clock) }
            return delta
        }
        return .bulkString(text)
    }

    /// A float as Redis prints one: integers without a fraction, `inf` and `-inf`, otherwise the
    /// shortest text that reads back as the same double.
    static func formatScore(_ value: Double) -> String {
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == value.rounded(), value.magnitude < 1e17 { return String(Int64(value)) }
        return value.description
    }

    /// The fields of a hash in byte order.
    func sortedFields(_ key: Bytes) -> [Bytes] {
        live(key).map { ByteOrder.sorted($0.hash.keys) } ?? []
    }

    // MARK: Sets

    /// `SRANDMEMBER key [count]`: a positive count gives distinct members, a negative one may repeat.
    mutating func randomMembers(_ key: Bytes, count: Int64?) -> RESPReply {
        guard typeAllows(.set, key) else { return Self.wrongType }
        let members = Array(live(key)?.set.elements ?? [])
        guard let count else {
            return members.randomElement(using: &random).map { .bulkString($0) } ?? .null
        }
        if members.isEmpty || count == 0 { return .array([]) }
        if count > 0 {
            return .array(members.shuffled(using: &random).prefix(Int(min(count, Int64(members.count)))).map { .bulkString($0) })
        }
        let wanted = count == .min ? Int.max : Int(-count)
        guard wanted <= 1_000_000 else { return .error("ERR value is out of range") }
        return .array((0..<wanted).map { _ in .bulkString(members.randomElement(using: &random)!) })
    }

    /// `SINTER`, `SUNION`, `SDIFF` and their `STORE` forms. The store forms are a local read, then
    /// writes to the destination (removing the members it no longer has, adding the new ones): not
    /// atomic across nodes, and a concurrent `SADD` to the destination survives.
    mutating func setAlgebra(_ operation: SetOperation, keys: [Bytes], destination: Bytes?,
                             into output: inout EngineOutput) -> RESPReply {
        guard keys.allSatisfy({ typeAllows(.set, $0) }) else { return Self.wrongType }
        let sets = keys.map { live($0)?.set.elements ?? [] }
        var result: Set<Bytes>
        switch operation {
        case .union:
            result = sets.reduce(into: Set<Bytes>()) { $0.formUnion($1) }
        case .intersection:
            result = sets.dropFirst().reduce(sets[0]) { $0.intersection($1) }
        case .difference:
            result = sets.dropFirst().reduce(sets[0]) { $0.subtracting($1) }
        }
        guard let destination else {
            return .set(result.sorted { $0.lexicographicallyPrecedes($1) }.map { .bulkString($0) })
        }
        if let object = keyspace[destination], object.bounded != BoundedCounter() { return Self.boundedCounterStays }
        mutate(destination, into: &output) { object, m in
            var delta = KeyObject()
            let keepsType = object.visibleType == .set || object.visibleType == nil
            if !keepsType { delta = object.removeObserved() }
            for member in object.set.elements where !result.contains(member) {
                delta.set.join(object.set.remove(member))
            }
            for member in result.sorted(by: { $0.lexicographicallyPrecedes($1) }) where !object.set.contains(member) {
                delta.set.join(object.set.add(member, replica: m.replica))
            }
            return delta
        }
        return .integer(Int64(result.count))
    }

    // MARK: Scans of one collection

    /// The reply of `SSCAN`, `HSCAN`, `ZSCAN` on a key that does not exist: the end, and nothing.
    static let emptyScan = RESPReply.array([.bulkString("0"), .array([])])
}
