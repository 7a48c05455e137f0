/// One keyspace notification: the event name Redis publishes (`set`, `lpush`, `del`, `expired`...) and
/// the class letter of `notify-keyspace-events` that enables it.
struct KeyspaceEvent: Equatable, CustomStringConvertible {
    var name: String
    var flag: KeyspaceEventFlags

    init(_ name: String, _ flag: KeyspaceEventFlags) {
        self.name = name
        self.flag = flag
    }

    var description: String { name }

    static let del = KeyspaceEvent("del", .generic)
    static let new = KeyspaceEvent("new", .newKey)

    /// The events of a local write to `key` by the command `arguments`, with Redis's names: `new` when
    /// the key was created, the command's own event, and `del` when the write left the key empty
    /// (`SREM` of the last member, `LPOP` of the last element).
    static func local(_ arguments: [Bytes], key: Bytes, before: KeyType?, after: KeyType?) -> [KeyspaceEvent] {
        var events: [KeyspaceEvent] = []
        if before == nil && after != nil { events.append(.new) }
        let upper = arguments.map { String(decoding: $0.prefix(16), as: UTF8.self).uppercased() }
        let name = upper.first?.lowercased() ?? ""
        let primary = commandEvents(name, upper, arguments, key: key)
        if after == nil && before != nil {
            // A write that emptied the key; an EXPIRE in the past deletes it, and says only `del`, as Redis.
            if primary.contains(.del) || primary.first?.name == "expire" { return events + [.del] }
            // RENAME's source says `rename_from` only, as in Redis.
            if primary.first?.name == "rename_from" { return events + primary }
            return events + primary + [.del]
        }
        return events + primary
    }

    private static func commandEvents(_ name: String, _ upper: [String], _ arguments: [Bytes], key: Bytes) -> [KeyspaceEvent] {
        let isSource = arguments.count > 1 && arguments[1] == key
        switch name {
        case "incr", "decr", "incrby", "decrby": return [.init("incrby", .string)]
        case "set":
            let expires = upper.dropFirst(3).contains { ["EX", "PX", "EXAT", "PXAT"].contains($0) }
            return [.init("set", .string)] + (expires ? [.init("expire", .generic)] : [])
        case "setex", "psetex": return [.init("set", .string), .init("expire", .generic)]
        case "mset", "bitop": return [.init("set", .string)]
        case "append", "setrange", "incrbyfloat", "setbit": return [.init(name, .string)]
        case "bitfield": return [.init("setbit", .string)]
        case "pfadd", "pfmerge": return [.init("pfadd", .string)]
        case "getdel", "del", "unlink", "flushdb", "flushall": return [.del]
        case "getex": return [.init(upper.contains("PERSIST") ? "persist" : "expire", .generic)]
        case "expire", "pexpire", "expireat", "pexpireat": return [.init("expire", .generic)]
        case "persist": return [.init("persist", .generic)]
        case "rename": return [.init(isSource ? "rename_from" : "rename_to", .generic)]
        case "copy": return [.init("copy_to", .generic)]
        case "lpush", "lpushx": return [.init("lpush", .list)]
        case "rpush", "rpushx": return [.init("rpush", .list)]
        case "lpop", "rpop", "linsert", "lset", "lrem", "ltrim": return [.init(name, .list)]
        case "lmove":
            // LMOVE source destination LEFT|RIGHT LEFT|RIGHT: a pop from one end, a push to another.
            let from = upper.count > 3 && upper[3] == "LEFT" ? "lpop" : "rpop"
            let to = upper.count > 4 && upper[4] == "LEFT" ? "lpush" : "rpush"
            if arguments.count > 2 && arguments[1] == arguments[2] { return [.init(from, .list), .init(to, .list)] }
            return [.init(isSource ? from : to, .list)]
        case "rpoplpush":
            if arguments.count > 2 && arguments[1] == arguments[2] { return [.init("rpop", .list), .init("lpush", .list)] }
            return [.init(isSource ? "rpop" : "lpush", .list)]
        case "lmpop": return [.init(upper.contains("LEFT") ? "lpop" : "rpop", .list)]
        case "sort": return [.init("sortstore", .list)]
        case "sadd", "srem", "spop", "sinterstore", "sunionstore", "sdiffstore": return [.init(name, .set)]
        case "smove":
            if arguments.count > 2 && arguments[1] == arguments[2] { return [.init("srem", .set), .init("sadd", .set)] }
            return [.init(isSource ? "srem" : "sadd", .set)]
        case "hset", "hmset": return [.init("hset", .hash)]
        case "hdel", "hincrby", "hincrbyfloat": return [.init(name, .hash)]
        case "zadd": return [.init(upper.dropFirst(2).contains("INCR") ? "zincr" : "zadd", .sortedSet)]
        case "zincrby": return [.init("zincr", .sortedSet)]
        case "geoadd": return [.init("zadd", .sortedSet)]
        case "zmpop": return [.init(upper.contains("MAX") ? "zpopmax" : "zpopmin", .sortedSet)]
        case "zrem", "zremrangebyrank", "zremrangebyscore", "zremrangebylex", "zpopmin", "zpopmax", "zunionstore",
             "zinterstore", "zdiffstore", "zrangestore", "geosearchstore", "georadius", "georadiusbymember":
            return [.init(name, .sortedSet)]
        case "crdt.bincrby", "crdt.bdecrby", "crdt.btransfer": return [.init(String(name.dropFirst(5)), .string)]
        default: return [.init(name, .generic)]
        }
    }

    /// The events of a change joined from a peer. A delta carries state, not the command that made it,
    /// so the event is read from the key: `del` when it no longer shows a value, `expire`/`persist` for a
    /// delta that only moved the deadline, else the type's write event (`set`, `incrby`, `sadd`, `hset`,
    /// `zadd`, `linsert`, `pfadd`), or its remove event (`srem`, `hdel`, `zrem`, `lrem`) when the key
    /// shows fewer elements than before; `new` first when the key was created.
    static func remote(_ change: Keyspace.RemoteChange) -> [KeyspaceEvent] {
        guard let after = change.typeAfter else { return change.typeBefore == nil ? [] : [.del] }
        var events: [KeyspaceEvent] = change.typeBefore == nil ? [.new] : []
        if change.onlyDeadline {
            events.append(.init(change.deadline == nil ? "persist" : "expire", .generic))
            return events
        }
        let shrank = change.typeBefore == after && change.countAfter < change.countBefore
        switch after {
        case .counter: events.append(.init("incrby", .string))
        case .string: events.append(.init("set", .string))
        case .hyperLogLog: events.append(.init("pfadd", .string))
        case .boundedCounter: events.append(.init("bincrby", .string))
        case .set: events.append(.init(shrank ? "srem" : "sadd", .set))
        case .hash: events.append(.init(shrank ? "hdel" : "hset", .hash))
        case .sortedSet: events.append(.init(shrank ? "zrem" : "zadd", .sortedSet))
        case .list: events.append(.init(shrank ? "lrem" : "linsert", .list))
        }
        return events
    }
}
