import CRDT
import RESP

/// `RENAME`, `COPY`, `RANDOMKEY`, `TOUCH`, and the set and hash commands `SPOP`, `SMOVE`,
/// `SINTERCARD`, `HRANDFIELD`.
extension Engine {
    mutating func runKey(_ command: KeyCommand, for client: ClientID, into output: inout EngineOutput) -> RESPReply {
        switch command {
        case .rename(let source, let destination):
            guard live(source) != nil else { return .error("ERR no such key") }
            if source == destination { return .ok }
            if let refusal = copyObject(source, to: destination, into: &output) { return refusal }
            mutate(source, touching: [], into: &output) { object, _ in object.removeObserved() }
            return .ok
        case .copy(let source, let destination, let replace):
            guard live(source) != nil else { return .integer(0) }
            if source == destination { return .integer(0) }
            if !replace && live(destination) != nil { return .integer(0) }
            if let refusal = copyObject(source, to: destination, into: &output) { return refusal }
            return .integer(1)
        case .randomKey:
            let keys = keyspace.orderedKeys().filter { live($0) != nil }
            return keys.randomElement(using: &random).map { .bulkString($0) } ?? .null
        case .touch(let keys):
            return .integer(Int64(keys.filter { live($0) != nil }.count))
        case .setPop(let key, let count):
            guard typeAllows(.set, key) else { return Self.wrongType }
            let members = live(key)?.set.elements.shuffled(using: &random) ?? []
            let popped = Array(members.prefix(count ?? 1))
            mutate(key, into: &output) { object, _ in
                var delta = KeyObject()
                for member in popped { delta.set.join(object.set.remove(member)) }
                return delta
            }
            guard count != nil else { return popped.first.map { .bulkString($0) } ?? .null }
            return .set(popped.map { .bulkString($0) })
        case .setMove(let source, let destination, let member):
            guard typeAllows(.set, source), typeAllows(.set, destination) else { return Self.wrongType }
            guard live(source)?.set.contains(member) == true else { return .integer(0) }
            if source == destination { return .integer(1) }
            mutate(source, into: &output) { object, _ in
                var delta = KeyObject()
                delta.set = object.set.remove(member)
                return delta
            }
            mutate(destination, into: &output) { object, m in
                var delta = KeyObject()
                delta.set = object.set.add(member, replica: m.replica)
                return delta
            }
            return .integer(1)
        case .setIntersectionCount(let keys, let limit):
            guard keys.allSatisfy({ typeAllows(.set, $0) }) else { return Self.wrongType }
            let sets = keys.map { live($0)?.set.elements ?? [] }
            let count = sets.dropFirst().reduce(sets[0]) { $0.intersection($1) }.count
            return .integer(Int64(limit > 0 ? min(limit, count) : count))
        case .hashRandomField(let key, let count, let withValues):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            let fields = sortedFields(key)
            guard let count else { return fields.randomElement(using: &random).map { .bulkString($0) } ?? .null }
            if fields.isEmpty || count == 0 { return .array([]) }
            let chosen: [Bytes]
            if count > 0 {
                chosen = Array(fields.shuffled(using: &random).prefix(Int(min(count, Int64(fields.count)))))
            } else {
                guard count > -1_000_000 else { return .error("ERR value is out of range") }
                chosen = (0..<Int(-count)).map { _ in fields.randomElement(using: &random)! }
            }
            guard withValues else { return .array(chosen.map { .bulkString($0) }) }
            if protocolVersion(of: client) == .resp3 {
                return .array(chosen.map { .array([.bulkString($0), .bulkString(hashValue(key, $0) ?? [])]) })
            }
            return .array(chosen.flatMap { [RESPReply.bulkString($0), .bulkString(hashValue(key, $0) ?? [])] })
        }
    }

    /// Writes what `source` shows to clients under `destination`, as fresh writes of this node (new
    /// dots), after an observed remove of what `destination` held; the deadline comes along. nil on
    /// success, else the refusal. A bounded counter cannot be copied (its rights would double) nor
    /// overwritten.
    mutating func copyObject(_ source: Bytes, to destination: Bytes, into output: inout EngineOutput) -> RESPReply? {
        guard let original = live(source) else { return .error("ERR no such key") }
        if original.bounded != BoundedCounter() {
            return .error("ERR a bounded counter cannot be copied or renamed: its rights are spread over replicas; "
                + "create the new key with CRDT.BINCRBY and move rights with CRDT.BTRANSFER")
        }
        if let object = keyspace[destination], object.bounded != BoundedCounter() { return Self.boundedCounterStays }
        let replica = configuration.replica
        let hashFields = sortedFields(source).map { ($0, hashValue(source, $0) ?? []) }
        do {
            try mutate(destination, into: &output) { (object: inout KeyObject, m: inout Mutation) throws(CRDTMutationError) -> KeyObject in
                var delta = object.removeObserved()
                switch original.visibleType {
                case .counter?:
                    // Joined with the remove's delta, never assigned over it: that would drop the removal.
                    delta.counter.join(try object.counter.add(original.counter.value, replica: replica))
                    if original.counter.value == 0 {
                        delta.counter.join(try object.counter.add(1, replica: replica))
                        delta.counter.join(try object.counter.add(-1, replica: replica))
                    }
                case .string?:
                    delta.string.join(object.string.assign(original.string.value ?? [], clock: &m.clock))
                case .set?:
                    for member in original.set.elements { delta.set.join(object.set.add(member, replica: replica)) }
                case .hash?:
                    for (field, value) in hashFields {
                        delta.hash.join(object.hash.update(field) { $0.assign(value, clock: &m.clock) })
                    }
                case .sortedSet?:
                    for entry in original.sortedSet.sortedMembers {
                        delta.sortedSet.join(object.sortedSet.add(entry.member, score: entry.score, clock: &m.clock))
                    }
                case .hyperLogLog?:
                    delta.hyperLogLog.join(object.hyperLogLog.merge(original.hyperLogLog.union, replica: replica).delta)
                case .list?:
                    for value in original.list.values {
                        delta.list.join(object.list.insert(value, at: object.list.count, clock: &m.clock))
                    }
                case .boundedCounter?, nil:
                    break
                }
                if let deadline = original.expiry.expiresAt {
                    delta.expiry.join(object.expiry.expire(atMilliseconds: deadline, replica: replica))
                }
                return delta
            }
        } catch {
            return .error("ERR increment or decrement would overflow")
        }
        return nil
    }
}
