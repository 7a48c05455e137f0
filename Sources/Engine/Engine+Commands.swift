import CRDT
import RESP

extension Engine {
    static let wrongType = RESPReply.error("WRONGTYPE Operation against a key holding the wrong kind of value")
    static let faultInjectionDisabled = RESPReply.error(
        "ERR fault injection is disabled: start crdtd with --allow-fault-injection to use CRDT.PARTITION and CRDT.HEAL")

    /// Parses and runs one client request, appending its reply.
    mutating func execute(_ arguments: [Bytes], for client: ClientID, into output: inout EngineOutput) {
        stats.commandsProcessed += 1
        switch CommandParser.parse(arguments) {
        case .failure(let error):
            reply(.error(error.message), to: client, early: true, into: &output)
        case .success(let command):
            if let refusal = refusal(of: command, from: client) {
                reply(.error(refusal), to: client, early: true, into: &output)
                return
            }
            let answer = run(command, for: client, into: &output)
            let early = reply(answer, to: client, early: revealsOnlyDurableState(command), into: &output)
            if case .quit = command {
                if early { output.immediate.append(.closeClient(client)) } else { output.effects.append(.closeClient(client)) }
            }
            if case .shutdown = command {
                shutdownRequested = true
                // At once: a shutdown must begin even while the disk is stuck (it then stops non-zero).
                output.immediate.append(.shutdown)
            }
        }
    }

    /// Runs a parsed command and returns its reply.
    mutating func run(_ command: Command, for client: ClientID, into output: inout EngineOutput) -> RESPReply {
        switch command {
        // MARK: Connection
        case .ping(let message):
            return message.map { .bulkString($0) } ?? .simpleString("PONG")
        case .echo(let message):
            return .bulkString(message)
        case .hello(let version, let name):
            if let version { sessions[client, default: Session(address: "?")].protocolVersion = version == 3 ? .resp3 : .resp2 }
            if let name { sessions[client, default: Session(address: "?")].name = name }
            return helloReply(for: client)
        case .clientSetName(let name):
            sessions[client, default: Session(address: "?")].name = name.isEmpty ? nil : name
            return .ok
        case .clientGetName:
            return sessions[client]?.name.map { .bulkString($0) } ?? .null
        case .clientID:
            return .integer(Int64(truncatingIfNeeded: client.rawValue))
        case .command(let sub):
            return commandReply(sub)
        case .configGet:
            return .map([])
        case .quit, .shutdown:
            return .ok
        case .info(let sections):
            return .verbatimString(format: "txt", text: Array(info(sections: sections).utf8))
        case .select:
            return .ok

        // MARK: Counters
        case .incrBy(let key, let amount):
            guard typeAllows(.counter, key) else { return Self.wrongType }
            do {
                try mutate(key, into: &output) { (object: inout KeyObject, m: inout Mutation) throws(CRDTMutationError) -> KeyObject in
                    var delta = KeyObject()
                    delta.counter = try object.counter.add(amount, replica: m.replica)
                    return delta
                }
            } catch {
                return .error("ERR increment or decrement would overflow")
            }
            return .integer(keyspace[key]?.counter.value ?? 0)
        case .get(let key):
            switch keyspace[key]?.visibleType {
            case nil: return .null
            case .counter?: return .bulkString(String(keyspace[key]!.counter.value))
            case .string?: return keyspace[key]!.string.value.map { .bulkString($0) } ?? .null
            default: return Self.wrongType
            }

        // MARK: Strings
        case .set(let key, let value):
            guard typeAllows(.string, key) else { return Self.wrongType }
            mutate(key, into: &output) { object, m in
                var delta = KeyObject()
                delta.string = object.string.assign(value, clock: &m.clock)
                return delta
            }
            return .ok

        // MARK: Sets
        case .sAdd(let key, let members):
            guard typeAllows(.set, key) else { return Self.wrongType }
            var added = 0
            mutate(key, into: &output) { object, m in
                var delta = KeyObject()
                for member in members {
                    if !object.set.contains(member) { added += 1 }
                    delta.set.join(object.set.add(member, replica: m.replica))
                }
                return delta
            }
            return .integer(Int64(added))
        case .sRem(let key, let members):
            guard typeAllows(.set, key) else { return Self.wrongType }
            var removed = 0
            mutate(key, into: &output) { object, m in
                var delta = KeyObject()
                for member in members where object.set.contains(member) {
                    removed += 1
                    delta.set.join(object.set.remove(member))
                }
                return delta
            }
            return .integer(Int64(removed))
        case .sMembers(let key):
            guard typeAllows(.set, key) else { return Self.wrongType }
            let members = keyspace[key]?.set.elements.sorted { $0.lexicographicallyPrecedes($1) } ?? []
            return .set(members.map { .bulkString($0) })
        case .sIsMember(let key, let member):
            guard typeAllows(.set, key) else { return Self.wrongType }
            return .integer(keyspace[key]?.set.contains(member) == true ? 1 : 0)
        case .sCard(let key):
            guard typeAllows(.set, key) else { return Self.wrongType }
            return .integer(Int64(keyspace[key]?.set.count ?? 0))

        // MARK: Hashes
        case .hSet(let key, let pairs):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            var created = 0
            mutate(key, into: &output) { object, m in
                var delta = KeyObject()
                for pair in pairs {
                    if object.hash[pair.field] == nil { created += 1 }
                    delta.hash.join(object.hash.update(pair.field) { register in register.assign(pair.value, clock: &m.clock) })
                }
                return delta
            }
            return .integer(Int64(created))
        case .hGet(let key, let field):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return keyspace[key]?.hash[field]?.value.map { .bulkString($0) } ?? .null
        case .hDel(let key, let fields):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            var removed = 0
            mutate(key, into: &output) { object, m in
                var delta = KeyObject()
                for field in fields where object.hash[field] != nil {
                    removed += 1
                    delta.hash.join(object.hash.remove(field))
                }
                return delta
            }
            return .integer(Int64(removed))
        case .hGetAll(let key):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            guard let hash = keyspace[key]?.hash else { return .map([]) }
            let fields = hash.keys.sorted { $0.lexicographicallyPrecedes($1) }
            return .map(fields.compactMap { field in
                hash[field]?.value.map { RESPReply.MapEntry(key: .bulkString(field), value: .bulkString($0)) }
            })
        case .hLen(let key):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return .integer(Int64(keyspace[key]?.hash.count ?? 0))

        // MARK: Bounded counters
        case .boundedIncrBy(let key, let amount):
            return boundedMutation(key, into: &output) { object, replica throws(CRDTMutationError) in
                try object.bounded.increment(by: UInt64(amount), replica: replica)
            }
        case .boundedDecrBy(let key, let amount):
            return boundedMutation(key, into: &output) { object, replica throws(CRDTMutationError) in
                try object.bounded.decrement(by: UInt64(amount), replica: replica)
            }
        case .boundedGet(let key):
            guard typeAllows(.boundedCounter, key) else { return Self.wrongType }
            return .integer(Int64(clamping: keyspace[key]?.bounded.value ?? 0))
        case .boundedRights(let key):
            guard typeAllows(.boundedCounter, key) else { return Self.wrongType }
            return .integer(Int64(clamping: keyspace[key]?.bounded.localRights(of: configuration.replica) ?? 0))
        case .boundedTransfer(let key, let node, let amount):
            guard let target = replica(ofNode: node) else {
                return .error("ERR unknown node '\(node)': rights can only move to a known peer (see CRDT.PEERS)")
            }
            return boundedMutation(key, into: &output) { object, replica throws(CRDTMutationError) in
                try object.bounded.transfer(rights: UInt64(amount), from: replica, to: target)
            }

        // MARK: Keyspace
        case .del(let keys):
            // Any bounded-counter state, even shadowed by another type, makes the key undeletable.
            if keys.contains(where: { keyspace[$0].map { $0.bounded != BoundedCounter() } ?? false }) {
                return .error("ERR DEL of a bounded counter is refused: its rights are spread over replicas and cannot be revoked without coordination")
            }
            var deleted = 0
            for key in keys where keyspace[key]?.visibleType != nil {
                deleted += 1
                mutate(key, into: &output) { object, m in
                    var delta = KeyObject()
                    delta.counter = object.counter.reset()
                    delta.string = object.string.remove()
                    delta.set = object.set.removeAll()
                    delta.hash = object.hash.removeAll()
                    return delta
                }
            }
            return .integer(Int64(deleted))
        case .exists(let keys):
            return .integer(Int64(keys.filter { keyspace[$0]?.visibleType != nil }.count))
        case .type(let key):
            return .simpleString(keyspace[key]?.visibleType?.rawValue ?? "none")
        case .keys(let pattern):
            let glob = GlobPattern(pattern)
            let matching = keyspace.orderedKeys().filter { keyspace[$0]?.visibleType != nil && glob.matches($0) }
            return .array(matching.map { .bulkString($0) })
        case .scan(let cursor, let match, let count, let type):
            return scan(cursor: cursor, match: match, count: count, type: type)
        case .dbSize:
            return .integer(Int64(keyspace.liveKeyCount))

        // MARK: Administration
        case .digest(let key):
            if let key {
                guard let object = keyspace[key] else { return .null }
                return .bulkString(object.digest(key: key).hex)
            }
            return .bulkString(keyspace.rootDigest().hex)
        case .clock:
            return .integer(Int64(clamping: clock.counter))
        case .peers:
            return peersReply()
        case .partition(let nodes):
            guard configuration.allowFaultInjection else { return Self.faultInjectionDisabled }
            replicator?.blocked.formUnion(nodes)
            return .ok
        case .heal:
            guard configuration.allowFaultInjection else { return Self.faultInjectionDisabled }
            replicator?.blocked.removeAll()
            return .ok
        }
    }

    /// Whether a command for `type` may run on `key`: the key is absent or shows that type.
    func typeAllows(_ type: KeyType, _ key: Bytes) -> Bool {
        guard let visible = keyspace[key]?.visibleType else { return true }
        return visible == type
    }

    mutating func boundedMutation(
        _ key: Bytes, into output: inout EngineOutput,
        _ body: (inout KeyObject, ReplicaID) throws(CRDTMutationError) -> BoundedCounter
    ) -> RESPReply {
        guard typeAllows(.boundedCounter, key) else { return Self.wrongType }
        let replica = configuration.replica
        do {
            try mutate(key, into: &output) { (object: inout KeyObject, _: inout Mutation) throws(CRDTMutationError) -> KeyObject in
                var delta = KeyObject()
                delta.bounded = try body(&object, replica)
                return delta
            }
        } catch let error {
            switch error {
            case .insufficientRights(let requested, let available):
                return .error("ERR insufficient rights: this node holds \(available) and needs \(requested); "
                    + "move rights here with CRDT.BTRANSFER on a node that has them, or decrement elsewhere")
            default:
                return .error("ERR \(error)")
            }
        }
        return .integer(Int64(clamping: keyspace[key]?.bounded.value ?? 0))
    }

    /// The replica identity of a node known by name.
    func replica(ofNode node: String) -> ReplicaID? {
        node == configuration.nodeID ? configuration.replica : replicator?.membership.member(node)?.replica
    }

    /// `SCAN`: keys in byte order, the cursor being the position reached (see `keyOrder`).
    mutating func scan(cursor: UInt64, match: Bytes?, count: Int, type: String?) -> RESPReply {
        let glob = match.map(GlobPattern.init)
        let all = keyspace.orderedKeys()
        let start = Int(min(cursor, UInt64(all.count)))
        let end = min(all.count, start + count)
        let page = all[start..<end].filter { key in
            guard let visible = keyspace[key]?.visibleType else { return false }
            if let type, visible.rawValue != type { return false }
            return glob?.matches(key) ?? true
        }
        let next = end >= all.count ? 0 : UInt64(end)
        return .array([.bulkString(String(next)), .array(page.map { .bulkString($0) })])
    }

    func helloReply(for client: ClientID) -> RESPReply {
        let version = sessions[client]?.protocolVersion ?? .resp2
        return .map([
            .init(key: .bulkString("server"), value: .bulkString("crdtd")),
            .init(key: .bulkString("version"), value: .bulkString(crdtdVersion)),
            .init(key: .bulkString("proto"), value: .integer(Int64(version.rawValue))),
            .init(key: .bulkString("id"), value: .integer(Int64(truncatingIfNeeded: client.rawValue))),
            .init(key: .bulkString("mode"), value: .bulkString("cluster")),
            .init(key: .bulkString("role"), value: .bulkString("master")),
            .init(key: .bulkString("modules"), value: .array([])),
        ])
    }
}

/// The version crdtd reports in `HELLO` and `INFO`.
public let crdtdVersion = "0.1.0"
