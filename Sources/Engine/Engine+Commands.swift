import CRDT
import RESP

extension Engine {
    static let wrongType = RESPReply.error("WRONGTYPE Operation against a key holding the wrong kind of value")
    static let faultInjectionDisabled = RESPReply.error(
        "ERR fault injection is disabled: start crdtd with --allow-fault-injection to use CRDT.PARTITION and CRDT.HEAL")

    static let execAborted = RESPReply.error("EXECABORT Transaction discarded because of previous errors.")

    /// Parses and runs one client request, appending its reply. Between `MULTI` and `EXEC` commands
    /// are queued in the client's session instead (`+QUEUED`).
    mutating func execute(_ arguments: [Bytes], for client: ClientID, into output: inout EngineOutput) {
        if sessions[client]?.parked != nil {
            // Behind a WAIT: run after it answers (and counted then), so that replies keep request order.
            deferBehindWait(arguments, for: client, into: &output)
            return
        }
        stats.commandsProcessed += 1
        let parsed = CommandParser.parse(arguments)
        if sessions[client]?.queued != nil {
            queue(parsed, arguments: arguments, for: client, into: &output)
            return
        }
        switch parsed {
        case .failure(let error):
            reply(.error(error.message), to: client, early: true, into: &output)
        case .success(let command):
            if let refusal = refusal(of: command, from: client) ?? subscribedRefusal(of: command, arguments, for: client) {
                reply(.error(refusal), to: client, early: true, into: &output)
                return
            }
            if runsApart(command, for: client, into: &output) { return }
            if let deferred = deferredRead(command, for: client) {
                reply(deferred: deferred, to: client, early: revealsOnlyDurableState(command), into: &output)
                return
            }
            eventSource = .command(arguments)
            let answer = run(command, for: client, into: &output)
            eventSource = nil
            if command.isWrite { noteWrite(by: client) }
            let early = reply(answer, to: client, early: revealsOnlyDurableState(command), into: &output)
            performSideEffects(of: command, for: client, early: early, into: &output)
        }
    }

    /// Inside `MULTI`: queue the command, or end the transaction. A command refused while queueing
    /// (unknown, wrong arity, refused) aborts the whole transaction at `EXEC`, as in Redis.
    mutating func queue(_ parsed: Result<Command, CommandError>, arguments: [Bytes], for client: ClientID,
                        into output: inout EngineOutput) {
        switch parsed {
        case .failure(let error):
            sessions[client]?.transactionFailed = true
            reply(.error(error.message), to: client, into: &output)
        case .success(.multi):
            reply(.error("ERR MULTI calls can not be nested"), to: client, into: &output)
        case .success(.discard):
            sessions[client]?.queued = nil
            sessions[client]?.transactionFailed = false
            reply(.ok, to: client, into: &output)
        case .success(.server(.reset)):
            // RESET is never queued: it ends the transaction, as in Redis.
            reply(run(.server(.reset), for: client, into: &output), to: client, into: &output)
        case .success(.quit):
            reply(.ok, to: client, into: &output)
            performSideEffects(of: .quit, for: client, early: false, into: &output)
        case .success(.exec):
            let commands = sessions[client]?.queued ?? []
            let failed = sessions[client]?.transactionFailed ?? false
            sessions[client]?.queued = nil
            sessions[client]?.transactionFailed = false
            guard !failed else {
                reply(Self.execAborted, to: client, into: &output)
                return
            }
            // The whole batch runs in this one engine step: its records are committed in one group
            // commit and its replies released together, and no other client's command runs in between.
            var replies: [RESPReply] = []
            replies.reserveCapacity(commands.count)
            for queued in commands {
                eventSource = .command(queued.arguments)
                replies.append(run(queued.command, for: client, into: &output))
                eventSource = nil
                if queued.command.isWrite { noteWrite(by: client) }
            }
            reply(.array(replies), to: client, into: &output)
            for queued in commands { performSideEffects(of: queued.command, for: client, early: false, into: &output) }
        case .success(let command):
            sessions[client]?.queued?.append(QueuedCommand(command: command, arguments: arguments))
            reply(.simpleString("QUEUED"), to: client, into: &output)
        }
    }

    /// What a command does besides its reply: closing the connection, stopping the node.
    /// `early`: the command's reply left at once (it revealed nothing waiting for the disk), so a close
    /// may too.
    mutating func performSideEffects(of command: Command, for client: ClientID, early: Bool, into output: inout EngineOutput) {
        if case .quit = command {
            if early { output.immediate.append(.closeClient(client)) } else { output.effects.append(.closeClient(client)) }
        }
        if case .shutdown = command {
            shutdownRequested = true
            // At once: a shutdown must begin even while the disk is stuck (it then stops non-zero).
            output.immediate.append(.shutdown)
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
        case .configGet(let patterns):
            return configReply(patterns)
        case .configSetKeyspaceEvents(let flags):
            notifyFlags = flags
            notificationsChanged()
            return .ok
        case .pubSub(let command):
            return runPubSub(command, for: client, into: &output)
        case .wait:
            // Inside MULTI/EXEC a WAIT cannot block (the transaction runs in one step): it answers at once.
            return .integer(Int64(acknowledgements(of: client)))
        case .configResetStat:
            stats.commandsProcessed = 0
            stats.localWrites = 0
            stats.connectionsAccepted = 0
            return .ok
        case .clientSetInfo:
            return .ok
        case .clientInfo:
            return .verbatimString(format: "txt", text: Array((clientLine(client, sessions[client] ?? Session(address: "?")) + "\n").utf8))
        case .clientList(let ids):
            return .verbatimString(format: "txt", text: Array(clientList(ids: ids).utf8))
        case .time:
            let micros = wallMilliseconds * 1000
            return .array([.bulkString(String(micros / 1_000_000)), .bulkString(String(micros % 1_000_000))])
        case .quit, .shutdown, .unwatch:
            return .ok
        case .multi:
            sessions[client, default: Session(address: "?")].queued = []
            return .ok
        case .exec:
            return .error("ERR EXEC without MULTI")
        case .discard:
            return .error("ERR DISCARD without MULTI")
        case .info(let sections):
            return .verbatimString(format: "txt", text: Array(info(sections: sections).utf8))
        case .select:
            return .ok

        // MARK: Counters
        case .incrBy(let key, let amount):
            // A string holding an integer becomes a counter starting at that integer, as `INCR` after
            // `SET k 10` works in Redis: one delta removes the register value it saw and adds to the counter.
            var start: Int64 = 0
            if live(key)?.visibleType == .string {
                guard case .value(let text) = stringValue(key), let number = Int64(String(decoding: text, as: UTF8.self)),
                      Array(String(number).utf8) == text else {
                    return .error("ERR value is not an integer or out of range")
                }
                start = number
            } else if !typeAllows(.counter, key) {
                return Self.wrongType
            }
            guard start.addingReportingOverflow(amount).overflow == false else {
                return .error("ERR increment or decrement would overflow")
            }
            do {
                try mutate(key, touching: [.counter], into: &output) { (object: inout KeyObject, m: inout Mutation) throws(CRDTMutationError) -> KeyObject in
                    var delta = KeyObject()
                    if start != 0 || object.visibleType == .string { delta.string = object.string.remove() }
                    if start + amount == 0 && !object.counter.isLive {
                        // A counter at 0 must still exist (`INCRBY k 0` creates k): one up and one down.
                        delta.counter = try object.counter.add(1, replica: m.replica)
                        delta.counter.join(try object.counter.add(-1, replica: m.replica))
                    } else {
                        delta.counter = try object.counter.add(start + amount, replica: m.replica)
                    }
                    return delta
                }
            } catch {
                return .error("ERR increment or decrement would overflow")
            }
            return .integer(live(key)?.counter.value ?? 0)
        case .get(let key):
            guard case .value(let value) = stringValue(key) else { return stringValue(key) == .absent ? .null : Self.wrongType }
            return .bulkString(value)

        // MARK: Strings
        case .set(let key, let value, let expiry):
            if expiry != nil && expiry != .keep && wallMilliseconds == 0 { return Self.wallClockUnknown }
            return setString(key, value, expiry: expiry, into: &output)
        case .getEx(let key, let expiry):
            return getEx(key, expiry, into: &output)
        case .mSet(let pairs):
            for pair in pairs { _ = setString(pair.field, pair.value, expiry: nil, into: &output) }
            return .ok
        case .mGet(let keys):
            return .array(keys.map { key in
                if case .value(let value) = stringValue(key) { return .bulkString(value) }
                return .null
            })
        case .getDel(let key):
            switch stringValue(key) {
            case .absent: return .null
            case .otherType: return Self.wrongType
            case .value(let value):
                mutate(key, touching: [], into: &output) { object, _ in object.removeObserved() }
                return .bulkString(value)
            }
        case .strLen(let key):
            switch stringValue(key) {
            case .absent: return .integer(0)
            case .otherType: return Self.wrongType
            case .value(let value): return .integer(Int64(value.count))
            }
        case .append(let key, let suffix):
            return rewriteString(key, into: &output) { $0 + suffix }
        case .getRange(let key, let start, let end):
            switch stringValue(key) {
            case .absent: return .bulkString([])
            case .otherType: return Self.wrongType
            case .value(let value): return .bulkString(Self.substring(value, start: start, end: end))
            }
        case .setRange(let key, let offset, let patch):
            if patch.isEmpty {
                // Redis creates nothing for an empty patch: it answers the current length.
                switch stringValue(key) {
                case .absent: return .integer(0)
                case .otherType: return Self.wrongType
                case .value(let value): return .integer(Int64(value.count))
                }
            }
            return rewriteString(key, into: &output) { value in
                var value = value
                if value.count < offset + patch.count { value += Array(repeating: 0, count: offset + patch.count - value.count) }
                value.replaceSubrange(offset..<(offset + patch.count), with: patch)
                return value
            }

        // MARK: Lists
        case .list(let command):
            return runList(command, for: client, into: &output)
        case .geo(let command):
            return runGeo(command, into: &output)
        case .sortedSet(let command):
            return runSortedSet(command, for: client, into: &output)
        case .sort(let query):
            return sort(query, into: &output)
        case .string(let command):
            return runString(command, for: client, into: &output)
        case .key(let command):
            return runKey(command, for: client, into: &output)
        case .server(let command):
            return runServer(command, for: client, into: &output)

        // MARK: Sets
        case .sAdd(let key, let members):
            guard typeAllows(.set, key) else { return Self.wrongType }
            var added = 0
            mutate(key, touching: [.set], into: &output) { object, m in
                var delta = KeyObject()
                for member in members {
                    if !object.set.contains(member) { added += 1 }
                    // Joining into bottom is the identity: the first member's delta is taken as is.
                    let memberDelta = object.set.add(member, replica: m.replica)
                    if delta.set.isBottom { delta.set = memberDelta } else { delta.set.join(memberDelta) }
                }
                return delta
            }
            return .integer(Int64(added))
        case .sRem(let key, let members):
            guard typeAllows(.set, key) else { return Self.wrongType }
            var removed = 0
            mutate(key, touching: [], into: &output) { object, m in
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
            let members = live(key).map { ByteOrder.sorted($0.set.store.entries.keys) } ?? []
            return .set(members.map { .bulkString($0) })
        case .sIsMember(let key, let member):
            guard typeAllows(.set, key) else { return Self.wrongType }
            return .integer(live(key)?.set.contains(member) == true ? 1 : 0)
        case .sCard(let key):
            guard typeAllows(.set, key) else { return Self.wrongType }
            return .integer(Int64(live(key)?.set.count ?? 0))
        case .sMIsMember(let key, let members):
            guard typeAllows(.set, key) else { return Self.wrongType }
            let set = live(key)?.set
            return .array(members.map { .integer(set?.contains($0) == true ? 1 : 0) })
        case .sRandMember(let key, let count):
            return randomMembers(key, count: count)
        case .setAlgebra(let operation, let keys, let destination):
            return setAlgebra(operation, keys: keys, destination: destination, into: &output)
        case .sScan(let key, let cursor, let match, let count):
            guard typeAllows(.set, key) else { return Self.wrongType }
            guard let object = live(key) else { return Self.emptyScan }
            let set = object.set
            return collectionScan(key: key, set.store.entries.keys, version: object.digest(key: key), cursor: cursor,
                                  match: match, count: count, contains: { set.contains($0) }) { [.bulkString($0)] }

        // MARK: Hashes
        case .hSet(let key, let pairs, let answersOK):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            var created = 0
            mutate(key, touching: [.hash], into: &output) { object, m in
                var delta = KeyObject()
                for pair in pairs {
                    if object.hash[pair.field] == nil { created += 1 }
                    let field = object.hash.update(pair.field) { register in register.assign(pair.value, clock: &m.clock) }
                    if delta.hash.isBottom { delta.hash = field } else { delta.hash.join(field) }
                }
                return delta
            }
            return answersOK ? .ok : .integer(Int64(created))
        case .hGet(let key, let field):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return hashValue(key, field).map { .bulkString($0) } ?? .null
        case .hDel(let key, let fields):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            var removed = 0
            mutate(key, touching: [], into: &output) { object, m in
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
            guard let hash = live(key)?.hash else { return .map([]) }
            // The map read once: looking each field up through the keyspace copied the object per field.
            let fields = ByteOrder.sorted(hash.keys)
            return .map(fields.compactMap { field in
                hash[field].flatMap(Self.shownValue).map { RESPReply.MapEntry(key: .bulkString(field), value: .bulkString($0)) }
            })
        case .hLen(let key):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return .integer(Int64(live(key)?.hash.count ?? 0))
        case .hMGet(let key, let fields):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return .array(fields.map { field in hashValue(key, field).map { .bulkString($0) } ?? .null })
        case .hKeys(let key):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return .array(sortedFields(key).map { .bulkString($0) })
        case .hVals(let key):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return .array(sortedFields(key).compactMap { hashValue(key, $0).map { .bulkString($0) } })
        case .hExists(let key, let field):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return .integer(hashValue(key, field) == nil ? 0 : 1)
        case .hStrLen(let key, let field):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            return .integer(Int64(hashValue(key, field)?.count ?? 0))
        case .hScan(let key, let cursor, let match, let count, let novalues):
            guard typeAllows(.hash, key) else { return Self.wrongType }
            guard let object = live(key) else { return Self.emptyScan }
            let hash = object.hash
            return collectionScan(key: key, hash.keys, version: object.digest(key: key), cursor: cursor, match: match,
                                  count: count, contains: { hash[$0] != nil }) { field in
                novalues ? [.bulkString(field)] : [.bulkString(field), .bulkString(hash[field].flatMap(Engine.shownValue) ?? [])]
            }

        case .hIncrBy(let key, let field, let amount):
            return hashIncrement(key, field, by: amount, into: &output)
        case .hIncrByFloat(let key, let field, let amount):
            return hashIncrementFloat(key, field, by: amount, into: &output)

        // MARK: HyperLogLog and sorted sets
        case .pfAdd(let key, let elements):
            return hyperLogLogAdd(key, elements, into: &output)
        case .pfCount(let keys):
            return hyperLogLogCount(keys)
        case .pfMerge(let destination, let sources):
            return hyperLogLogMerge(destination, sources, into: &output)
        case .zAdd(let key, let pairs, let options):
            return sortedSetAdd(key, pairs, options, into: &output)
        case .zIncrBy(let key, let amount, let member):
            return sortedSetIncrement(key, member, by: amount, options: ZAddOptions(), into: &output)
        case .zScore(let key, let members, let multiple):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            let scores = members.map { member in live(key)?.sortedSet.score(of: member).map(RESPReply.double) ?? .null }
            return multiple ? .array(scores) : scores[0]
        case .zCard(let key):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            return .integer(Int64(live(key)?.sortedSet.count ?? 0))
        case .zCount(let key, let by):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            return .integer(Int64(live(key).map { Self.ranks($0.sortedSet, by).count } ?? 0))
        case .zRange(let key, let query):
            return sortedSetRange(key, query, for: client)
        case .zRank(let key, let member, let reverse, let withScore):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            guard let zset = live(key)?.sortedSet, let rank = zset.rank(of: member) else {
                return withScore ? .nullArray : .null
            }
            let position = Int64(reverse ? zset.count - 1 - rank : rank)
            return withScore ? .array([.integer(position), .double(zset.score(of: member)!)]) : .integer(position)
        case .zRem(let key, let members):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            var removed = 0
            mutate(key, touching: [], into: &output) { object, _ in
                var delta = KeyObject()
                for member in Set(members) where object.sortedSet.score(of: member) != nil {
                    removed += 1
                    delta.sortedSet.join(object.sortedSet.remove(member))
                }
                return delta
            }
            return .integer(Int64(removed))
        case .zRemRange(let key, let by):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            guard let zset = live(key)?.sortedSet else { return .integer(0) }
            return .integer(Int64(sortedSetRemove(key, zset.members(inRanks: Self.ranks(zset, by)).map(\.member), into: &output)))
        case .zPop(let key, let count, let highest):
            return sortedSetPop(key, count: count, highest: highest, for: client, into: &output)
        case .zScan(let key, let cursor, let match, let count):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            guard let object = live(key) else { return Self.emptyScan }
            let zset = object.sortedSet
            return collectionScan(key: key, zset.store.entries.keys, version: object.digest(key: key), cursor: cursor,
                                  match: match, count: count, contains: { zset.score(of: $0) != nil }) { member in
                [.bulkString(member), .bulkString(Array(Self.formatScore(zset.score(of: member) ?? 0).utf8))]
            }

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
            return .integer(Int64(clamping: live(key)?.bounded.value ?? 0))
        case .boundedRights(let key):
            guard typeAllows(.boundedCounter, key) else { return Self.wrongType }
            return .integer(Int64(clamping: live(key)?.bounded.localRights(of: configuration.replica) ?? 0))
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
            for key in Set(keys) where live(key)?.visibleType != nil {
                deleted += 1
                mutate(key, touching: [], into: &output) { object, _ in object.removeObserved() }
            }
            return .integer(Int64(deleted))
        case .flush:
            // Bounded counters stay (their rights cannot be revoked); the reply is +OK because every Redis
            // client expects it. docs/redis-compatibility.md says so.
            for key in keyspace.orderedKeys() where live(key)?.visibleType != nil && live(key)?.bounded == BoundedCounter() {
                mutate(key, touching: [], into: &output) { object, _ in object.removeObserved() }
            }
            return .ok
        case .objectEncoding(let key):
            guard let type = live(key)?.visibleType else { return .null }
            return .bulkString(Self.encodingName(of: type, live(key)!))
        case .objectRefCount(let key):
            return live(key)?.visibleType == nil ? .null : .integer(1)
        case .objectIdleTime(let key):
            // crdtd does not track access times; 0 is what Redis answers for a key just used.
            return live(key)?.visibleType == nil ? .null : .integer(0)
        case .memoryUsage(let key):
            guard let object = live(key), object.visibleType != nil else { return .null }
            return .integer(Int64(key.count + object.serialized().count))
        case .exists(let keys):
            return .integer(Int64(keys.filter { live($0)?.visibleType != nil }.count))
        case .type(let key):
            return .simpleString(live(key)?.visibleType?.rawValue ?? "none")
        case .keys(let pattern):
            let glob = GlobPattern(pattern)
            let matching = keyspace.orderedKeys().filter { live($0)?.visibleType != nil && glob.matches($0) }
            return .array(matching.map { .bulkString($0) })
        case .scan(let cursor, let match, let count, let type):
            return scan(cursor: cursor, match: match, count: count, type: type)
        case .dbSize:
            return .integer(Int64(keyspace.liveKeyCount))
        case .expire(let key, let change, let condition):
            return expire(key, change, condition: condition, into: &output)
        case .timeToLive(let key, let milliseconds, let absolute):
            return timeToLive(key, milliseconds: milliseconds, absolute: absolute)
        case .persist(let key):
            return persist(key, into: &output)

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
        case .partition(let nodes, let direction):
            guard configuration.allowFaultInjection else { return Self.faultInjectionDisabled }
            if direction != .outbound { replicator?.blockedInbound.formUnion(nodes) }
            if direction != .inbound { replicator?.blocked.formUnion(nodes) }
            return .ok
        case .heal:
            guard configuration.allowFaultInjection else { return Self.faultInjectionDisabled }
            replicator?.blocked.removeAll()
            replicator?.blockedInbound.removeAll()
            return .ok
        case .forget(let node):
            return forget(node)
        case .stability:
            return stabilityReply()
        }
    }

    /// Whether a command for `type` may run on `key`: the key is absent or shows that type.
    func typeAllows(_ type: KeyType, _ key: Bytes) -> Bool {
        guard let visible = live(key)?.visibleType else { return true }
        return visible == type
    }

    mutating func boundedMutation(
        _ key: Bytes, into output: inout EngineOutput,
        _ body: (inout KeyObject, ReplicaID) throws(CRDTMutationError) -> BoundedCounter
    ) -> RESPReply {
        guard typeAllows(.boundedCounter, key) else { return Self.wrongType }
        let replica = configuration.replica
        do {
            try mutate(key, touching: [], into: &output) { (object: inout KeyObject, _: inout Mutation) throws(CRDTMutationError) -> KeyObject in
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
        return .integer(Int64(clamping: live(key)?.bounded.value ?? 0))
    }

    /// The replica identity of a node known by name.
    func replica(ofNode node: String) -> ReplicaID? {
        node == configuration.nodeID ? configuration.replica : replicator?.membership.member(node)?.replica
    }

    /// `SCAN`: the cursor is a key hash (`Keyspace.scan`), so a key present for the whole iteration is
    /// returned at least once whatever is created or collected meanwhile. `COUNT` live keys are examined
    /// per call; deleted keys awaiting collection keep a place, so up to 64 times as many may be passed over.
    mutating func scan(cursor: UInt64, match: Bytes?, count: Int, type: String?) -> RESPReply {
        let glob = match.map(GlobPattern.init)
        let entries = keyspace.scanOrder(from: cursor)
        let limit = entries.startIndex + max(count, 1) * 64
        var position = entries.startIndex
        var examined = 0
        var page: [RESPReply] = []
        while position < entries.endIndex {
            // Keys sharing a hash are taken together: a cursor cannot point between them.
            let full = examined >= count || position >= limit
            if full && (position == entries.startIndex || entries[position].hash != entries[position - 1].hash) { break }
            let key = entries[position].key
            position += 1
            guard let visible = live(key)?.visibleType else { continue }
            examined += 1
            if let type, visible.rawValue != type { continue }
            if glob?.matches(key) ?? true { page.append(.bulkString(key)) }
        }
        let next = position < entries.endIndex ? entries[position].hash : 0
        return .array([.bulkString(String(next)), .array(page)])
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
