import CRDT
import RESP

extension Engine {
    /// The sections `INFO` prints by default, in order.
    static let infoSections = ["server", "clients", "persistence", "replication", "memory", "stats", "keyspace"]

    /// `INFO [section ...]` text: `# Section` headers and `field:value` lines, as Redis prints them.
    func info(sections requested: [String]) -> String {
        let wanted = requested.isEmpty || requested.contains("all") || requested.contains("default") || requested.contains("everything")
            ? Self.infoSections : requested
        var text = ""
        for section in wanted where Self.infoSections.contains(section) {
            var fields: [(String, String)] = []
            switch section {
            case "server":
                fields = [
                    ("crdtd_version", crdtdVersion), ("redis_version", "7.0.0-compatible"),
                    ("node_id", configuration.nodeID), ("replica_id", configuration.replica.description),
                ]
            case "clients":
                fields = [("connected_clients", String(sessions.count))]
            case "persistence":
                fields = [
                    ("lamport_clock", String(clock.counter)),
                    ("storage_writes_waiting", String(commits.writesWaiting)),
                    ("storage_bytes_waiting", String(commits.bytesWaiting)),
                    ("storage_oldest_wait_ms", String(commits.oldestWait)),
                ]
            case "replication":
                fields = [("role", "master"), ("replication_model", "delta-state CRDT, coordination-free")]
            case "memory":
                fields = []
            case "stats":
                fields = [
                    ("total_connections_received", String(stats.connectionsAccepted)),
                    ("total_commands_processed", String(stats.commandsProcessed)),
                    ("local_writes", String(stats.localWrites)),
                ]
            case "keyspace":
                var byType: [KeyType: Int] = [:]
                for (type, count) in keyspace.keysByType { byType[type, default: 0] += count }
                let live = byType.values.reduce(0, +)
                fields = [("db0", "keys=\(live),expires=0,avg_ttl=0")]
                    + KeyType.allCases.map { ("keys_\($0.rawValue)", String(byType[$0] ?? 0)) }
            default:
                break
            }
            fields += configuration.shellInfo(section)
            text += "# \(section.prefix(1).uppercased() + section.dropFirst())\r\n"
            for (name, value) in fields { text += "\(name):\(value)\r\n" }
            text += "\r\n"
        }
        return text
    }

    /// `COMMAND` replies: enough for redis-cli's hints and clients that probe the command table.
    func commandReply(_ sub: CommandSubcommand) -> RESPReply {
        switch sub {
        case .count:
            return .integer(Int64(Self.commandTable.count))
        case .docs:
            return .map([])
        case .list:
            return .array(Self.commandTable.map(Self.describe))
        case .info(let names):
            return .array(names.map { name in
                let upper = String(decoding: name, as: UTF8.self).lowercased()
                return Self.commandTable.first { $0.name == upper }.map(Self.describe) ?? .nullArray
            })
        }
    }

    /// Every command name the engine knows, lower-cased (aliases included): bounded metric labels.
    public static let commandNames: Set<String> = Set(commandTable.map(\.name)).union(["hmset", "unlink"])

    struct CommandEntry {
        var name: String
        var arity: Int
        var flags: [String]
        var firstKey: Int
        var lastKey: Int
    }

    static func describe(_ entry: CommandEntry) -> RESPReply {
        .array([
            .bulkString(entry.name), .integer(Int64(entry.arity)),
            .set(entry.flags.map { .simpleString($0) }),
            .integer(Int64(entry.firstKey)), .integer(Int64(entry.lastKey)), .integer(entry.firstKey > 0 ? 1 : 0),
        ])
    }

    /// Name, arity (negative: at least), flags and key positions, in Redis's `COMMAND` format.
    static let commandTable: [CommandEntry] = [
        .init(name: "ping", arity: -1, flags: ["fast"], firstKey: 0, lastKey: 0),
        .init(name: "echo", arity: 2, flags: ["fast"], firstKey: 0, lastKey: 0),
        .init(name: "hello", arity: -1, flags: ["fast"], firstKey: 0, lastKey: 0),
        .init(name: "client", arity: -2, flags: [], firstKey: 0, lastKey: 0),
        .init(name: "command", arity: -1, flags: [], firstKey: 0, lastKey: 0),
        .init(name: "config", arity: -2, flags: [], firstKey: 0, lastKey: 0),
        .init(name: "quit", arity: -1, flags: ["fast"], firstKey: 0, lastKey: 0),
        .init(name: "shutdown", arity: -1, flags: [], firstKey: 0, lastKey: 0),
        .init(name: "info", arity: -1, flags: [], firstKey: 0, lastKey: 0),
        .init(name: "select", arity: 2, flags: ["fast"], firstKey: 0, lastKey: 0),
        .init(name: "incr", arity: 2, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "incrby", arity: 3, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "decr", arity: 2, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "decrby", arity: 3, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "get", arity: 2, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "set", arity: 3, flags: ["write"], firstKey: 1, lastKey: 1),
        .init(name: "sadd", arity: -3, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "srem", arity: -3, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "smembers", arity: 2, flags: ["readonly"], firstKey: 1, lastKey: 1),
        .init(name: "sismember", arity: 3, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "scard", arity: 2, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "hset", arity: -4, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "hget", arity: 3, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "hdel", arity: -3, flags: ["write", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "hgetall", arity: 2, flags: ["readonly"], firstKey: 1, lastKey: 1),
        .init(name: "hlen", arity: 2, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "del", arity: -2, flags: ["write"], firstKey: 1, lastKey: -1),
        .init(name: "exists", arity: -2, flags: ["readonly", "fast"], firstKey: 1, lastKey: -1),
        .init(name: "type", arity: 2, flags: ["readonly", "fast"], firstKey: 1, lastKey: 1),
        .init(name: "keys", arity: 2, flags: ["readonly"], firstKey: 0, lastKey: 0),
        .init(name: "scan", arity: -2, flags: ["readonly"], firstKey: 0, lastKey: 0),
        .init(name: "dbsize", arity: 1, flags: ["readonly", "fast"], firstKey: 0, lastKey: 0),
        .init(name: "crdt.bincrby", arity: 3, flags: ["write"], firstKey: 1, lastKey: 1),
        .init(name: "crdt.bdecrby", arity: 3, flags: ["write"], firstKey: 1, lastKey: 1),
        .init(name: "crdt.bget", arity: 2, flags: ["readonly"], firstKey: 1, lastKey: 1),
        .init(name: "crdt.brights", arity: 2, flags: ["readonly"], firstKey: 1, lastKey: 1),
        .init(name: "crdt.btransfer", arity: 4, flags: ["write"], firstKey: 1, lastKey: 1),
        .init(name: "crdt.digest", arity: -1, flags: ["readonly"], firstKey: 0, lastKey: 0),
        .init(name: "crdt.clock", arity: 1, flags: ["readonly"], firstKey: 0, lastKey: 0),
        .init(name: "crdt.peers", arity: 1, flags: ["readonly"], firstKey: 0, lastKey: 0),
        .init(name: "crdt.partition", arity: -2, flags: ["admin"], firstKey: 0, lastKey: 0),
        .init(name: "crdt.heal", arity: 1, flags: ["admin"], firstKey: 0, lastKey: 0),
    ]
}
