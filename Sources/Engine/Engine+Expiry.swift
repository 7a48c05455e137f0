import CRDT
import RESP

/// Expiry: deadlines are data (an `ExpiryRegister` per key), computed from the wall clock the tick
/// carries. A deadline never decides which write wins. Once this node's clock passes a key's deadline
/// the key reads as absent at once, and the next tick issues an ordinary observed remove of it (as
/// `DEL`), which a concurrent write on another node survives.
extension Engine {
    static let wallClockUnknown = RESPReply.error(
        "ERR this node has not read its wall clock yet (the first tick brings it, within 10 ms of start); retry")
    /// Keys expired per tick at most, so one tick never stalls the engine; the rest are hidden until
    /// the next ticks remove them.
    static let expiriesPerTick = 1_000

    /// The key's object as clients see it: `nil` when absent, deleted, or past its deadline.
    func live(_ key: Bytes) -> KeyObject? {
        guard let object = keyspace[key], object.visibleType != nil else { return nil }
        if wallMilliseconds > 0, object.expiry.isExpired(atMilliseconds: wallMilliseconds) { return nil }
        return object
    }

    /// The deadline a change asks for, in Unix milliseconds; `nil` when it overflows.
    func deadline(of change: ExpiryChange) -> Int64? {
        switch change {
        case .after(let milliseconds):
            let (sum, overflow) = Int64(clamping: wallMilliseconds).addingReportingOverflow(milliseconds)
            return overflow ? nil : sum
        case .at(let milliseconds):
            return milliseconds
        case .keep, .persist:
            return nil
        }
    }

    /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`: 1 when the deadline was set (or the key deleted,
    /// for a deadline already past), 0 when the key is absent or the condition does not hold here.
    mutating func expire(_ key: Bytes, _ change: ExpiryChange, condition: ExpiryCondition,
                         into output: inout EngineOutput) -> RESPReply {
        guard wallMilliseconds > 0 else { return Self.wallClockUnknown }
        guard let object = live(key) else { return .integer(0) }
        guard object.bounded == BoundedCounter() else { return Self.boundedCounterCannotExpire }
        guard let deadline = deadline(of: change) else { return .error("ERR invalid expire time in 'expire' command") }
        let current = object.expiry.expiresAt.map { Int64(clamping: $0) }
        switch condition {
        case .always: break
        case .onlyWithoutDeadline: guard current == nil else { return .integer(0) }
        case .onlyWithDeadline: guard current != nil else { return .integer(0) }
        // No deadline counts as an infinite one, as in Redis.
        case .onlyLater: guard let current, deadline > current else { return .integer(0) }
        case .onlyEarlier: guard current.map({ deadline < $0 }) ?? true else { return .integer(0) }
        }
        setDeadline(key, deadline, into: &output)
        return .integer(1)
    }

    static let boundedCounterCannotExpire = RESPReply.error(
        "ERR a bounded counter cannot expire: removing it would revoke rights spread over replicas, which needs coordination")

    /// Sets `key`'s deadline, or removes the key when the deadline is already past (as Redis does).
    mutating func setDeadline(_ key: Bytes, _ deadline: Int64, into output: inout EngineOutput) {
        if deadline <= Int64(clamping: wallMilliseconds) {
            mutate(key, touching: [], into: &output) { object, _ in object.removeObserved() }
            return
        }
        let replica = configuration.replica
        mutate(key, touching: [.expiry], into: &output) { object, _ in
            var delta = KeyObject()
            delta.expiry = object.expiry.expire(atMilliseconds: UInt64(deadline), replica: replica)
            return delta
        }
    }

    /// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`: -2 for an absent key, -1 for one without deadline.
    func timeToLive(_ key: Bytes, milliseconds: Bool, absolute: Bool) -> RESPReply {
        guard let object = live(key) else { return .integer(-2) }
        guard let expiresAt = object.expiry.expiresAt else { return .integer(-1) }
        if absolute { return .integer(Int64(clamping: milliseconds ? expiresAt : expiresAt / 1000)) }
        let remaining = object.expiry.remaining(atMilliseconds: wallMilliseconds) ?? 0
        return .integer(Int64(clamping: milliseconds ? remaining : (remaining + 500) / 1000))
    }

    /// `PERSIST`: 1 when the key had a deadline. A persist beats a concurrent `EXPIRE` elsewhere.
    mutating func persist(_ key: Bytes, into output: inout EngineOutput) -> RESPReply {
        guard let object = live(key), object.expiry.expiresAt != nil else { return .integer(0) }
        let replica = configuration.replica
        mutate(key, touching: [.expiry], into: &output) { object, _ in
            var delta = KeyObject()
            delta.expiry = object.expiry.persist(replica: replica)
            return delta
        }
        return .integer(1)
    }

    /// `GETEX key [EX|PX|EXAT|PXAT|PERSIST]`: `GET`, then the deadline change.
    mutating func getEx(_ key: Bytes, _ change: ExpiryChange?, into output: inout EngineOutput) -> RESPReply {
        let value: Bytes
        switch stringValue(key) {
        case .absent: return .null
        case .otherType: return Self.wrongType
        case .value(let bytes): value = bytes
        }
        switch change {
        case nil, .keep?:
            break
        case .persist?:
            _ = persist(key, into: &output)
        case let change?:
            guard wallMilliseconds > 0 else { return Self.wallClockUnknown }
            guard let deadline = deadline(of: change) else { return .error("ERR invalid expire time in 'getex' command") }
            setDeadline(key, deadline, into: &output)
        }
        return .bulkString(value)
    }

    /// On every tick: an observed remove of each key whose deadline this node's clock has passed.
    mutating func expireDueKeys(into output: inout EngineOutput) {
        guard wallMilliseconds > 0 else { return }
        for key in keyspace.keysExpired(before: wallMilliseconds, limit: Self.expiriesPerTick) {
            removeIfExpired(key, into: &output)
        }
    }

    /// The observed remove of an expired key: what this node has seen of it, deadline included.
    mutating func removeIfExpired(_ key: Bytes, into output: inout EngineOutput) {
        // The expiry index holds every key's `expiry.expiresAt`: asking it costs no copy of the object.
        guard wallMilliseconds > 0, let deadline = keyspace.deadline(of: key), wallMilliseconds > deadline else { return }
        stats.expiredKeys += 1
        let source = eventSource
        eventSource = .expiry
        applyLocal(key, touching: [], into: &output) { object, _ in object.removeObserved() }
        eventSource = source
    }
}
