import CRDT
import RESP

/// `CONFIG GET`, `CLIENT LIST`/`INFO`, `OBJECT ENCODING`: local reports about this node.
extension Engine {
    /// The parameters `CONFIG GET` answers. crdtd is configured at start (flags and config file); these
    /// are the Redis parameters clients and tools commonly read, with the values that describe crdtd.
    static let configParameters: [(String, String)] = [
        ("appendonly", "no"), ("appendfsync", "everysec"), ("bind", "127.0.0.1"), ("daemonize", "no"),
        ("databases", "1"), ("hash-max-listpack-entries", "128"), ("hash-max-listpack-value", "64"),
        ("hash-max-ziplist-entries", "128"), ("hash-max-ziplist-value", "64"), ("list-max-listpack-size", "-2"),
        ("list-max-ziplist-size", "-2"), ("maxclients", "10000"), ("maxmemory", "0"),
        ("maxmemory-policy", "noeviction"), ("notify-keyspace-events", ""), ("port", "6379"),
        ("proto-max-bulk-len", String(CommandParser.maxStringLength)), ("protected-mode", "no"), ("save", ""),
        ("set-max-intset-entries", "512"), ("set-max-listpack-entries", "128"),
        ("slowlog-log-slower-than", "10000"), ("slowlog-max-len", "128"), ("timeout", "0"),
        ("zset-max-listpack-entries", "128"), ("zset-max-listpack-value", "64"),
        ("zset-max-ziplist-entries", "128"), ("zset-max-ziplist-value", "64"),
    ]

    /// `CONFIG GET pattern [pattern ...]`: every parameter matching one of the glob patterns.
    func configReply(_ patterns: [Bytes]) -> RESPReply {
        let globs = patterns.map { GlobPattern(Array(String(decoding: $0, as: UTF8.self).lowercased().utf8)) }
        let matching = Self.configParameters.filter { parameter in globs.contains { $0.matches(Array(parameter.0.utf8)) } }
        return .map(matching.map { parameter in
            let value = parameter.0 == "notify-keyspace-events" ? notifyFlags.letters : parameter.1
            return .init(key: .bulkString(parameter.0), value: .bulkString(value))
        })
    }

    /// One `CLIENT LIST` line, with the fields Redis prints (those crdtd does not track are zero).
    func clientLine(_ client: ClientID, _ session: Session) -> String {
        let name = session.name.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let age = stats.lastTick >= session.connectedAt ? (stats.lastTick - session.connectedAt) / 1000 : 0
        let multi = session.queued.map { String($0.count) } ?? "-1"
        return "id=\(client.rawValue) addr=\(session.address) laddr= fd=0 name=\(name) age=\(age) idle=0 flags=\(isSubscribed(client) ? "P" : "N") db=0 "
            + "sub=\(pubSub.channels(of: client).count) psub=\(pubSub.patterns(of: client).count) ssub=\(shardPubSub.count(of: client)) multi=\(multi) qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 tot-mem=0 "
            + "events=r cmd=\(session.lastSubscription ?? "client|list") user=default redir=-1 resp=\(session.protocolVersion.rawValue) lib-name= lib-ver="
    }

    /// `CLIENT LIST [ID id ...]`: one line per client, in id order.
    func clientList(ids: [UInt64]?) -> String {
        let wanted = ids.map(Set.init)
        return sessions.sorted { $0.key.rawValue < $1.key.rawValue }
            .filter { wanted?.contains($0.key.rawValue) ?? true }
            .map { clientLine($0.key, $0.value) + "\n" }.joined()
    }

    /// `OBJECT ENCODING`: the name Redis would use for a value of this shape, so tools that branch on
    /// it keep working. crdtd's real encoding is a CRDT (docs/crdts.md).
    static func encodingName(of type: KeyType, _ object: KeyObject) -> String {
        switch type {
        case .counter: return "int"
        case .string:
            let value = object.string.value ?? []
            if value.count <= 20, let number = Int64(String(decoding: value, as: UTF8.self)), Array(String(number).utf8) == value {
                return "int"
            }
            return value.count <= 44 ? "embstr" : "raw"
        case .set:
            let members = object.set.elements
            if members.count <= 512, members.allSatisfy({ Int64(String(decoding: $0, as: UTF8.self)) != nil }) { return "intset" }
            return members.count <= 128 && members.allSatisfy({ $0.count <= 64 }) ? "listpack" : "hashtable"
        case .hash:
            return object.hash.count <= 128 ? "listpack" : "hashtable"
        case .boundedCounter:
            return "crdt-bounded-counter"
        case .sortedSet:
            return object.sortedSet.count <= 128 ? "listpack" : "skiplist"
        case .hyperLogLog:
            // Redis keeps a HyperLogLog in a string.
            return "raw"
        case .list:
            return object.list.count <= 128 ? "listpack" : "quicklist"
        }
    }
}
