import CRDT
import RESP
import Testing
@testable import Engine

/// Several clients on one engine, each reply and push decoded and kept per client in the order the
/// shell would write them (immediate effects first, then those behind the commit).
struct PubSubHarness {
    var engine: Engine
    var replies: [ClientID: [RESPReply]] = [:]
    var pushes: [ClientID: [RESPReply]] = [:]
    var lastOutput = EngineOutput()

    init() throws {
        engine = try Engine(configuration: EngineConfiguration(nodeID: "n1", replica: ReplicaID(1)))
        for id in 1...3 { _ = engine.handle(.clientConnected(ClientID(UInt64(id)), address: "test")) }
    }

    /// Runs a command for client `id`; returns every frame of its reply (`SUBSCRIBE a b` has two).
    @discardableResult
    mutating func run(_ id: UInt64, _ arguments: String...) -> [RESPReply] {
        lastOutput = engine.handle(.clientCommand(ClientID(id), arguments.map { Array($0.utf8) }))
        return collect()[ClientID(id)] ?? []
    }

    mutating func tick(_ now: UInt64) {
        lastOutput = engine.handle(.tick(monotonicMilliseconds: now, wallMilliseconds: 1_767_225_600_000 + now))
        _ = collect()
    }

    /// Decodes the last output; returns this step's replies per client and keeps the pushes.
    mutating func collect() -> [ClientID: [RESPReply]] {
        var step: [ClientID: [RESPReply]] = [:]
        for effect in lastOutput.immediate + lastOutput.effects {
            switch effect {
            case .reply(let client, let bytes):
                let decoded = Self.decode(bytes)
                step[client, default: []] += decoded
                replies[client, default: []] += decoded
            case .push(let client, let bytes):
                pushes[client, default: []] += Self.decode(bytes)
            default: break
            }
        }
        return step
    }

    static func decode(_ bytes: Bytes) -> [RESPReply] {
        var parser = RESPReplyParser()
        try? parser.append(bytes)
        var out: [RESPReply] = []
        while let reply = try? parser.next() { out.append(reply) }
        return out
    }

    mutating func takePushes(_ id: UInt64) -> [RESPReply] {
        defer { pushes[ClientID(id)] = [] }
        return pushes[ClientID(id)] ?? []
    }
}

func message(_ channel: String, _ payload: String) -> RESPReply {
    .array([.bulk("message"), .bulk(channel), .bulk(payload)])
}

@Suite struct PubSubTests {
    @Test func registryTracksChannelsPatternsAndClients() {
        var registry = PubSub()
        let a = ClientID(1), b = ClientID(2)
        #expect(registry.isEmpty)
        #expect(registry.subscribe(a, channel: Array("news".utf8)) == 1)
        #expect(registry.subscribe(a, channel: Array("news".utf8)) == 1, "subscribing twice counts once")
        #expect(registry.subscribe(a, pattern: Array("n*".utf8)) == 2)
        #expect(registry.subscribe(b, channel: Array("news".utf8)) == 1)
        let recipients = registry.recipients(of: Array("news".utf8))
        #expect(recipients.map(\.client) == [a, b, a])
        #expect(recipients.map(\.pattern) == [nil, nil, Array("n*".utf8)])
        #expect(registry.recipients(of: Array("other".utf8)).isEmpty)
        #expect(registry.subscribers(of: Array("news".utf8)) == 2)
        #expect(registry.patternCount == 1)
        registry.remove(a)
        #expect(registry.count(of: a) == 0)
        #expect(registry.patternCount == 0)
        #expect(registry.recipients(of: Array("news".utf8)).map(\.client) == [b])
        #expect(registry.unsubscribe(b, channel: Array("news".utf8)) == 0)
        #expect(registry.isEmpty && registry.channels.isEmpty)
    }

    @Test func eventFlagsParseAndPrintAsRedisDoes() {
        #expect(KeyspaceEventFlags(parsing: Array("KEA".utf8))?.letters == "AKE")
        #expect(KeyspaceEventFlags(parsing: Array("Kg$".utf8))?.letters == "g$K")
        #expect(KeyspaceEventFlags(parsing: Array("".utf8))?.letters == "")
        #expect(KeyspaceEventFlags(parsing: Array("Kq".utf8)) == nil)
        #expect(KeyspaceEventFlags(parsing: Array("A".utf8))?.publishesAnything == false, "no channel kind: nothing published")
        #expect(KeyspaceEventFlags(parsing: Array("Exn".utf8))?.letters == "xEn")
    }

    @Test func subscribePublishAndUnsubscribeInRESP2() throws {
        var h = try PubSubHarness()
        #expect(h.run(1, "SUBSCRIBE", "a", "b") == [
            .array([.bulk("subscribe"), .bulk("a"), .integer(1)]),
            .array([.bulk("subscribe"), .bulk("b"), .integer(2)]),
        ])
        #expect(h.run(2, "PUBLISH", "a", "hello") == [.integer(1)])
        #expect(h.takePushes(1) == [message("a", "hello")])
        #expect(h.run(2, "PUBLISH", "nobody", "x") == [.integer(0)])
        // Subscribe mode: only (un)subscriptions, PING, QUIT and RESET.
        #expect(h.run(1, "GET", "k") == [.error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")])
        #expect(h.run(1, "PING") == [.array([.bulk("pong"), .bulk("")])])
        #expect(h.run(1, "PING", "hi") == [.array([.bulk("pong"), .bulk("hi")])])
        #expect(h.run(2, "PUBSUB", "CHANNELS") == [.array([.bulk("a"), .bulk("b")])])
        #expect(h.run(2, "PUBSUB", "CHANNELS", "b*") == [.array([.bulk("b")])])
        #expect(h.run(2, "PUBSUB", "NUMSUB", "a", "z") == [.array([.bulk("a"), .integer(1), .bulk("z"), .integer(0)])])
        guard case .bulkString(let info)? = h.run(2, "INFO", "stats").first else { Issue.record("INFO"); return }
        #expect(String(decoding: info, as: UTF8.self).contains("pubsub_channels:2\r\n"))
        #expect(h.run(1, "UNSUBSCRIBE") == [
            .array([.bulk("unsubscribe"), .bulk("a"), .integer(1)]),
            .array([.bulk("unsubscribe"), .bulk("b"), .integer(0)]),
        ])
        #expect(h.run(1, "UNSUBSCRIBE") == [.array([.bulk("unsubscribe"), .null, .integer(0)])])
        #expect(h.run(1, "GET", "k") == [.null], "out of subscribe mode once nothing is subscribed")
        #expect(h.run(2, "PUBLISH", "a", "late") == [.integer(0)])
        #expect(h.takePushes(1).isEmpty)
    }

    @Test func patternsDeliverPMessagesAndRESP3AllowsEveryCommand() throws {
        var h = try PubSubHarness()
        _ = h.run(1, "HELLO", "3")
        #expect(h.run(1, "PSUBSCRIBE", "news.*") == [.push([.bulk("psubscribe"), .bulk("news.*"), .integer(1)])])
        #expect(h.run(1, "SET", "k", "v") == [.ok], "RESP3 clients may run any command while subscribed")
        #expect(h.run(2, "PUBLISH", "news.tech", "m") == [.integer(1)])
        #expect(h.takePushes(1) == [.push([.bulk("pmessage"), .bulk("news.*"), .bulk("news.tech"), .bulk("m")])])
        #expect(h.run(2, "PUBSUB", "NUMPAT") == [.integer(1)])
        #expect(h.run(1, "PUNSUBSCRIBE", "news.*") == [.push([.bulk("punsubscribe"), .bulk("news.*"), .integer(0)])])
        _ = h.run(1, "SUBSCRIBE", "x")
        // A client that goes away is unsubscribed.
        _ = h.engine.handle(.clientDisconnected(ClientID(1)))
        #expect(h.run(2, "PUBLISH", "x", "gone") == [.integer(0)])
    }

    @Test func shardedChannelsAreANamespaceOfTheirOwn() throws {
        var h = try PubSubHarness()
        #expect(h.run(1, "SSUBSCRIBE", "orders") == [.array([.bulk("ssubscribe"), .bulk("orders"), .integer(1)])])
        #expect(h.run(1, "GET", "k").first?.isError == true, "sharded subscriptions enter subscribe mode too")
        #expect(h.run(2, "PUBLISH", "orders", "plain") == [.integer(0)])
        #expect(h.run(2, "SPUBLISH", "orders", "o1") == [.integer(1)])
        #expect(h.takePushes(1) == [.array([.bulk("smessage"), .bulk("orders"), .bulk("o1")])])
        #expect(h.run(2, "PUBSUB", "SHARDCHANNELS") == [.array([.bulk("orders")])])
        #expect(h.run(2, "PUBSUB", "SHARDNUMSUB", "orders") == [.array([.bulk("orders"), .integer(1)])])
        #expect(h.run(2, "PUBSUB", "CHANNELS") == [.array([])])
        #expect(h.run(1, "SUNSUBSCRIBE") == [.array([.bulk("sunsubscribe"), .bulk("orders"), .integer(0)])])
        #expect(h.run(1, "GET", "k") == [.null])
    }

    @Test func keyspaceNotificationsOfLocalWrites() throws {
        var h = try PubSubHarness()
        #expect(h.run(2, "CONFIG", "GET", "notify-keyspace-events") == [.array([.bulk("notify-keyspace-events"), .bulk("")])])
        _ = h.run(1, "PSUBSCRIBE", "__key*__:*")
        _ = h.run(2, "SET", "k", "v")
        #expect(h.takePushes(1).isEmpty, "nothing is published before notify-keyspace-events is set")
        #expect(!h.engine.keyspace.recordsChanges)
        #expect(h.run(2, "CONFIG", "SET", "notify-keyspace-events", "KEA") == [.ok])
        #expect(h.run(2, "CONFIG", "GET", "notify-keyspace-events") == [.array([.bulk("notify-keyspace-events"), .bulk("AKE")])])
        #expect(h.engine.keyspace.recordsChanges)
        _ = h.run(2, "SET", "k", "w")
        func pm(_ channel: String, _ payload: String) -> RESPReply {
            .array([.bulk("pmessage"), .bulk("__key*__:*"), .bulk(channel), .bulk(payload)])
        }
        #expect(h.takePushes(1) == [pm("__keyspace@0__:k", "set"), pm("__keyevent@0__:set", "k")])
        _ = h.run(2, "SADD", "s", "a")
        let payloads: [RESPReply] = h.takePushes(1).map { (push: RESPReply) -> RESPReply in
            if case .array(let parts) = push { return parts[3] }
            return .null
        }
        #expect(payloads == [.bulk("sadd"), .bulk("s")], "A does not include n: no `new` event")
        _ = h.run(2, "CONFIG", "SET", "notify-keyspace-events", "KEAn")
        _ = h.run(2, "SADD", "s2", "a")
        #expect(h.takePushes(1).count == 4, "new and sadd, each on both channels")
    }

    @Test func keyspaceEventNamesFollowRedis() {
        func names(_ arguments: [String], key: String, _ before: KeyType?, _ after: KeyType?) -> [String] {
            KeyspaceEvent.local(arguments.map { Array($0.utf8) }, key: Array(key.utf8), before: before, after: after).map(\.name)
        }
        #expect(names(["INCR", "c"], key: "c", nil, .counter) == ["new", "incrby"])
        #expect(names(["SET", "k", "v", "EX", "10"], key: "k", .string, .string) == ["set", "expire"])
        #expect(names(["SREM", "s", "a"], key: "s", .set, nil) == ["srem", "del"])
        #expect(names(["DEL", "s"], key: "s", .set, nil) == ["del"])
        #expect(names(["EXPIRE", "s", "-1"], key: "s", .set, nil) == ["del"])
        #expect(names(["RENAME", "a", "b"], key: "a", .string, nil) == ["rename_from"])
        #expect(names(["LPOP", "l"], key: "l", .list, nil) == ["lpop", "del"])
        #expect(names(["RENAME", "a", "b"], key: "b", nil, .string) == ["new", "rename_to"])
        #expect(names(["LMOVE", "a", "b", "LEFT", "RIGHT"], key: "b", .list, .list) == ["rpush"])
        #expect(names(["ZADD", "z", "INCR", "1", "m"], key: "z", .sortedSet, .sortedSet) == ["zincr"])
        #expect(names(["HMSET", "h", "f", "v"], key: "h", .hash, .hash) == ["hset"])
    }

    @Test func publishingCostsNothingWithoutSubscribers() throws {
        var h = try PubSubHarness()
        _ = h.run(2, "CONFIG", "SET", "notify-keyspace-events", "KEA")
        #expect(!h.engine.keyspace.recordsChanges, "flags alone, with nobody subscribed, record nothing")
        _ = h.run(2, "SET", "k", "v")
        #expect(!h.lastOutput.effects.contains { if case .push = $0 { true } else { false } })
        _ = h.run(1, "SUBSCRIBE", "__keyevent@0__:set")
        #expect(h.engine.keyspace.recordsChanges)
        _ = h.run(1, "UNSUBSCRIBE")
        #expect(!h.engine.keyspace.recordsChanges, "the last unsubscribe stops recording")
    }

    @Test func expiryPublishesExpired() throws {
        var h = try PubSubHarness()
        h.tick(10)
        _ = h.run(2, "CONFIG", "SET", "notify-keyspace-events", "Ex")
        _ = h.run(1, "SUBSCRIBE", "__keyevent@0__:expired")
        _ = h.run(2, "SET", "k", "v", "PX", "20")
        #expect(h.takePushes(1).isEmpty, "x alone does not publish set or expire")
        h.tick(50)
        #expect(h.takePushes(1) == [message("__keyevent@0__:expired", "k")])
    }

    @Test func configSetRefusesOtherParametersAndBadFlags() throws {
        var h = try PubSubHarness()
        #expect(h.run(1, "CONFIG", "SET", "maxmemory", "10") == [.error(
            "ERR CONFIG SET of 'maxmemory' is refused: crdtd is configured by its config file and flags at start "
            + "(see docs/operations.md); only notify-keyspace-events changes at run time")])
        #expect(h.run(1, "CONFIG", "SET", "notify-keyspace-events", "Kq").first?.isError == true)
    }

    @Test func waitOnASingleNodeAnswersAtOnceOrAtItsDeadline() throws {
        var h = try PubSubHarness()
        h.tick(10)
        #expect(h.run(1, "WAIT", "0", "0") == [.integer(0)])
        _ = h.run(1, "SET", "k", "v")
        #expect(h.run(1, "WAIT", "1", "100").isEmpty, "parked: no peer can acknowledge")
        #expect(h.run(1, "GET", "k").isEmpty, "a request behind a WAIT waits for it")
        h.tick(60)
        #expect(h.replies[ClientID(1)]?.suffix(1) == [.ok])
        h.tick(120)
        #expect(h.replies[ClientID(1)]?.suffix(2) == [.integer(0), .bulk("v")], "the WAIT answers, then what waited behind it")
        #expect(h.run(1, "WAIT", "-1", "x").first?.isError == true)
        #expect(h.run(1, "WAIT", "1", "-1") == [.error("ERR timeout is negative")])
    }
}

@Suite struct PubSubSimulationTests {
    @Test func aSubscriberOnOneNodeSeesAWriteMadeOnAnother() throws {
        var sim = try Simulation(nodes: 2, seed: 7)
        sim.run(milliseconds: 1000)
        let watcher = sim.connect(1)
        sim.command(1, client: watcher, ["CONFIG", "SET", "notify-keyspace-events", "KA"])
        sim.command(1, client: watcher, ["SUBSCRIBE", "__keyspace@0__:user"])
        sim.command(0, ["HSET", "user", "name", "ada"])
        sim.run(milliseconds: 200)
        #expect(sim.pushes[1]?[watcher] == [message("__keyspace@0__:user", "hset")])
        sim.command(0, ["HDEL", "user", "name"])
        sim.run(milliseconds: 200)
        #expect(sim.pushes[1]?[watcher]?.last == message("__keyspace@0__:user", "del"))
        // Duplicates and replays change nothing, so they notify nothing.
        let seen = sim.pushes[1]?[watcher]?.count
        sim.run(milliseconds: 2000)
        #expect(sim.pushes[1]?[watcher]?.count == seen)
    }

    @Test func aPublishReachesSubscribersOnPeersOnceAndNotAcrossAPartition() throws {
        var sim = try Simulation(nodes: 3, seed: 5)
        sim.run(milliseconds: 1000)
        let listeners = [sim.connect(1), sim.connect(2)]
        sim.command(1, client: listeners[0], ["SUBSCRIBE", "chat"])
        sim.command(2, client: listeners[1], ["PSUBSCRIBE", "c*"])
        #expect(sim.command(0, ["PUBLISH", "chat", "hi"]) == .integer(0), "the count is of the publishing node's receivers")
        sim.run(milliseconds: 100)
        #expect(sim.pushes[1]?[listeners[0]] == [message("chat", "hi")])
        #expect(sim.pushes[2]?[listeners[1]] == [.array([.bulk("pmessage"), .bulk("c*"), .bulk("chat"), .bulk("hi")])])
        sim.command(0, ["CRDT.PARTITION", "n3"])
        sim.command(0, ["PUBLISH", "chat", "second"])
        sim.run(milliseconds: 2000)
        #expect(sim.pushes[1]?[listeners[0]]?.count == 2, "delivered once, never resent")
        #expect(sim.pushes[2]?[listeners[1]]?.count == 1, "best effort: a cut-off peer misses it for good")
    }

    @Test func changesRepairedByDigestsNotifyToo() throws {
        // A buffer too small to keep the partition's deltas: the peer gets the keys by digest repair.
        var sim = try Simulation(nodes: 2, seed: 13) { $0.deltaBufferBytes = 512 }
        sim.run(milliseconds: 1000)
        let watcher = sim.connect(1)
        sim.command(1, client: watcher, ["CONFIG", "SET", "notify-keyspace-events", "K$"])
        sim.command(1, client: watcher, ["PSUBSCRIBE", "__keyspace@0__:k*"])
        sim.command(0, ["CRDT.PARTITION", "n2"])
        sim.command(1, ["CRDT.PARTITION", "n1"])
        for i in 0..<40 { sim.command(0, ["SET", "k\(i)", String(repeating: "v", count: 100)]) }
        sim.run(milliseconds: 200)
        #expect(sim.pushes[1]?[watcher] == nil, "nothing crosses the partition")
        let statesBefore = sim.nodes[1].engine!.replicationStats.statesApplied
        sim.command(0, ["CRDT.HEAL"])
        sim.command(1, ["CRDT.HEAL"])
        let converged = sim.converge(timeout: 20_000)
        #expect(converged)
        #expect(sim.nodes[1].engine!.replicationStats.statesApplied > statesBefore, "repair carried some keys")
        let channels = Set((sim.pushes[1]?[watcher] ?? []).compactMap { push -> String? in
            guard case .array(let parts) = push, parts.count == 4, parts[3] == .bulk("set"),
                  case .bulkString(let channel) = parts[2] else { return nil }
            return String(decoding: channel, as: UTF8.self)
        })
        #expect(channels == Set((0..<40).map { "__keyspace@0__:k\($0)" }), "one set event per key, however it arrived")
    }

    @Test func waitCountsPeersThatAcknowledgedTheLastWrite() throws {
        var sim = try Simulation(nodes: 2, seed: 11)
        sim.run(milliseconds: 1000)
        let client = sim.connect(0)
        sim.command(0, client: client, ["SET", "k", "v"])
        sim.command(0, client: client, ["WAIT", "1", "0"])
        #expect(sim.sessionReplies[0]?[client] == [.ok], "parked until the peer acknowledges")
        sim.run(milliseconds: 300)
        #expect(sim.sessionReplies[0]?[client] == [.ok, .integer(1)])
        // Cut off from its peer, the next write cannot be acknowledged: WAIT answers 0 at its deadline.
        sim.command(0, client: client, ["CRDT.PARTITION", "n2"])
        sim.command(0, client: client, ["SET", "k", "w"])
        sim.command(0, client: client, ["WAIT", "1", "200"])
        sim.run(milliseconds: 100)
        #expect(sim.sessionReplies[0]?[client]?.count == 4)
        sim.run(milliseconds: 200)
        #expect(sim.sessionReplies[0]?[client]?.last == .integer(0))
    }
}
