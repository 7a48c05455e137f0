import CRDT
import RESP

extension Engine {
    /// The sections `INFO` prints by default, in order.
    static let infoSections = ["server", "clients", "memory", "persistence", "stats", "replication", "cluster", "keyspace"]

    /// `INFO [section ...]` text: `# Section` headers and `field:value` lines, as Redis prints them.
    func info(sections requested: [String]) -> String {
        let wanted = requested.isEmpty || requested.contains("all") || requested.contains("default") || requested.contains("everything")
            ? Self.infoSections : requested
        var text = ""
        for section in wanted where Self.infoSections.contains(section) {
            var fields: [(String, String)] = []
            switch section {
            case "server":
                // `redis_version` is the Redis API implemented, as a plain version: clients parse it.
                let uptime = stats.firstTick.map { (stats.lastTick - $0) / 1000 } ?? 0
                fields = [
                    ("redis_version", "7.0.0"), ("crdtd_version", crdtdVersion), ("redis_mode", "standalone"),
                    ("arch_bits", String(MemoryLayout<Int>.size * 8)), ("cluster_enabled", "0"),
                    ("uptime_in_seconds", String(uptime)), ("uptime_in_days", String(uptime / 86_400)),
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
                // The sequence number this node's next delta gets: a peer whose CRDT.PEERS `acknowledged` is
                // lower has not yet taken that many of its deltas (crdtctl status shows it as the lag).
                let forgotten = replicator?.membership.forgotten ?? [:]
                fields = [("role", "master"), ("replication_model", "delta-state CRDT, coordination-free"),
                          ("delta_next_sequence", String(replicator?.nextSequence ?? 0)),
                          // Identities decommissioned (CRDT.FORGET) or abandoned by their node, refused here.
                          ("forgotten_identities", String(forgotten.count)),
                          ("forgotten", forgotten.sorted { $0.key < $1.key }.map { "\($0.value)=\($0.key)" }.joined(separator: ",")),
                          ("decommissioned", replicator?.membership.decommissioned == true ? "1" : "0")]
                if let replicator {
                    // The causal-stability frontier (CRDT.STABILITY has the same, structured).
                    let frontier = replicator.frontier
                    func text(_ vector: [ReplicaID: UInt64]) -> String {
                        vector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    }
                    fields += [("stability_frontier", text(frontier.vector)),
                               ("stability_applied", text(replicator.stability.vector)),
                               ("stability_holder", frontier.holder ?? ""),
                               ("stability_behind", String(frontier.behind)),
                               ("stability_unreported", frontier.unreported.joined(separator: ",")),
                               // Deleted keys removed for good once stable, and those still waiting.
                               ("tombstones_collected", String(collection.collected)),
                               ("tombstones_waiting", String(keyspace.tombstoneCandidates)),
                               ("collection_floor", "dots=\(collection.floor.dots),counts=\(collection.floor.counts)")]
                }
            case "memory":
                fields = []
            case "cluster":
                fields = [("cluster_enabled", "0")]
            case "stats":
                fields = [
                    ("total_connections_received", String(stats.connectionsAccepted)),
                    ("total_commands_processed", String(stats.commandsProcessed)),
                    ("local_writes", String(stats.localWrites)),
                    ("expired_keys", String(stats.expiredKeys)),
                    ("pubsub_channels", String(pubSub.channels.count)),
                    ("pubsub_patterns", String(pubSub.patternCount)),
                    ("pubsubshard_channels", String(shardPubSub.channels.count)),
                ]
            case "keyspace":
                var byType: [KeyType: Int] = [:]
                for (type, count) in keyspace.keysByType { byType[type, default: 0] += count }
                let live = byType.values.reduce(0, +)
                fields = [("db0", "keys=\(live),expires=\(keyspace.keysWithDeadline),avg_ttl=0"),
                          // Every key held, deleted ones whose tombstone is not collected yet included.
                          ("keys_held", String(keyspace.storedKeyCount))]
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
            return .integer(Int64(CommandParser.table.count))
        case .docs:
            return .map([])
        case .all:
            return .array(CommandParser.table.map(Self.describe))
        case .list:
            return .array(CommandParser.table.map { .bulkString($0.name) })
        case .getKeys(let request):
            let name = String(decoding: request[0], as: UTF8.self).lowercased()
            guard let spec = CommandParser.specsByName[name] else { return .error("ERR Invalid command specified") }
            guard spec.accepts(argumentCount: request.count) else { return .error("ERR Invalid number of arguments specified for command") }
            guard spec.firstKey > 0 else { return .error("ERR The command has no key arguments") }
            let last = spec.lastKey < 0 ? request.count + spec.lastKey : spec.lastKey
            return .array(stride(from: spec.firstKey, through: min(last, request.count - 1), by: max(1, spec.keyStep)).map { .bulkString(request[$0]) })
        case .info(let names):
            return .array(names.map { name in
                let upper = String(decoding: name, as: UTF8.self).lowercased()
                return CommandParser.table.first { $0.name == upper }.map(Self.describe) ?? .nullArray
            })
        }
    }

    /// Every command name the engine knows, lower-cased (aliases included): bounded metric labels.
    public static let commandNames: Set<String> = Set(CommandParser.table.map(\.name))

    static func describe(_ entry: CommandSpec) -> RESPReply {
        .array([
            .bulkString(entry.name), .integer(Int64(entry.arity)),
            .set(entry.flags.map { .simpleString($0) }),
            .integer(Int64(entry.firstKey)), .integer(Int64(entry.lastKey)), .integer(Int64(entry.keyStep)),
        ])
    }
}

extension Engine {
    /// Staged snapshots begun or due and not yet sealed (benchmarks and shells that wait for them).
    public var stagedSnapshotsInProgress: Int { keyspace.stagedSnapshotsInProgress }
}
