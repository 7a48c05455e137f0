import CRDT
import RESP
import Wire
@testable import Engine

/// A deterministic simulation of a crdtd cluster: real engines, a simulated network that loses, duplicates,
/// delays and reorders frames and can be partitioned, crashes with restart from persisted records, and a
/// seeded random generator driving all of it, so that a failing seed replays exactly.
struct Simulation {
    /// The wall clock of simulated time 0 (2026-01-01), so that expiry deadlines look like real ones.
    static let simulatedEpoch: UInt64 = 1_767_225_600_000
    struct Node {
        var engine: Engine?
        let configuration: EngineConfiguration
        /// Everything the node persisted, in commit order: its database.
        var durable: [DurableRecord] = []
        var nextClient: UInt64 = 1
    }

    struct Datagram {
        var deliverAt: UInt64
        var from: Int
        var to: Int
        var frame: Bytes
        var order: UInt64
    }

    /// Which pairs of nodes can talk; `nil` when the network is whole.
    var cut: ((Int, Int) -> Bool)?
    var nodes: [Node] = []
    var inFlight: [Datagram] = []
    var random: SplitMix64
    var now: UInt64 = 0
    var order: UInt64 = 0
    var lossRate = 0.0
    var duplicateRate = 0.0
    var maxDelay: UInt64 = 5
    let endpoints: [PeerEndpoint]
    /// Effects observed, for assertions: frames sent, and bytes of them.
    var framesSent = 0
    var bytesSent = 0
    /// Pushed messages (`Effect.push`) and replies to connected clients (`connect`), decoded, per node and client.
    var pushes: [Int: [ClientID: [RESPReply]]] = [:]
    var sessionReplies: [Int: [ClientID: [RESPReply]]] = [:]
    var connected: Set<ClientID> = []
    /// When set, every frame delivered is kept, for `replayDelivered` (a network that replays old frames).
    var recordsDeliveries = false
    var delivered: [Datagram] = []

    init(nodes count: Int, seed: UInt64, encrypted: Bool = false,
         configure: (inout ReplicationSettings) -> Void = { _ in }, background: BackgroundRunner? = nil) throws {
        random = SplitMix64(seed: seed)
        endpoints = (0..<count).map { PeerEndpoint(host: "10.0.0.\($0 + 1)", port: 7946) }
        let keyring = encrypted ? try Keyring(keys: [[UInt8](repeating: 42, count: 32)]) : nil
        for i in 0..<count {
            var configuration = EngineConfiguration(nodeID: "n\(i + 1)", replica: ReplicaID(UInt64(i + 1) * 0x1000_0001))
            var settings = ReplicationSettings(endpoint: endpoints[i], envelope: try Envelope(label: "sim", keyring: keyring))
            settings.seeds = [endpoints[0]]
            settings.randomSeed = seed &+ UInt64(i)
            settings.gossipIntervalMilliseconds = 100
            settings.syncIntervalMilliseconds = 300
            settings.probeIntervalMilliseconds = 300
            settings.probeTimeoutMilliseconds = 100
            settings.suspicionTimeoutMilliseconds = 1500
            settings.deadProbeIntervalMilliseconds = 600
            settings.deltaBufferBytes = 64 << 10
            configure(&settings)
            configuration.replication = settings
            configuration.allowFaultInjection = true
            configuration.background = background
            nodes.append(Node(engine: try Engine(configuration: configuration), configuration: configuration))
        }
    }

    var liveIndices: [Int] { nodes.indices.filter { nodes[$0].engine != nil } }

    /// Runs one client command on node `i`; returns the reply if the node is up.
    @discardableResult
    mutating func command(_ i: Int, _ arguments: [String]) -> RESPReply? {
        guard nodes[i].engine != nil else { return nil }
        let client = ClientID(nodes[i].nextClient)
        nodes[i].nextClient += 1
        var output = EngineOutput()
        nodes[i].engine!.handle(.clientCommand(client, arguments.map { Array($0.utf8) }), into: &output)
        nodes[i].engine!.flush(into: &output)
        let replies = apply(output, at: i)
        return replies.first
    }

    /// A client that stays connected to node `i` (ids from 1000, apart from `command`'s one-shot clients).
    mutating func connect(_ i: Int) -> ClientID {
        let client = ClientID(1000 + nodes[i].nextClient)
        nodes[i].nextClient += 1
        connected.insert(client)
        var output = EngineOutput()
        nodes[i].engine!.handle(.clientConnected(client, address: "sim"), into: &output)
        nodes[i].engine!.flush(into: &output)
        _ = apply(output, at: i)
        return client
    }

    /// Runs a command for a connected client; its replies (and pushes) are collected in `sessionReplies`
    /// (and `pushes`) as they are released, now or in later steps.
    mutating func command(_ i: Int, client: ClientID, _ arguments: [String]) {
        var output = EngineOutput()
        nodes[i].engine!.handle(.clientCommand(client, arguments.map { Array($0.utf8) }), into: &output)
        nodes[i].engine!.flush(into: &output)
        _ = apply(output, at: i)
    }

    /// Persists a step's records, then performs its effects, as the daemon does. Returns the replies.
    mutating func apply(_ output: EngineOutput, at i: Int) -> [RESPReply] {
        nodes[i].durable += output.records
        var replies: [RESPReply] = []
        for effect in output.immediate + output.effects {
            switch effect {
            case .reply(let client, let bytes) where connected.contains(client):
                var parser = RESPReplyParser()
                try? parser.append(bytes)
                while let reply = try? parser.next() { sessionReplies[i, default: [:]][client, default: []].append(reply) }
            case .push(let client, let bytes):
                var parser = RESPReplyParser()
                try? parser.append(bytes)
                while let reply = try? parser.next() { pushes[i, default: [:]][client, default: []].append(reply) }
            case .reply(_, let bytes):
                var parser = RESPReplyParser()
                try? parser.append(bytes)
                if let reply = try? parser.next() { replies.append(reply) }
            case .send(let frame, let endpoint, _):
                framesSent += 1
                bytesSent += frame.count
                guard let to = endpoints.firstIndex(of: endpoint) else { continue }
                if let cut, cut(i, to) { continue }
                if Double(random.next() % 10_000) / 10_000 < lossRate { continue }
                let copies = Double(random.next() % 10_000) / 10_000 < duplicateRate ? 2 : 1
                for _ in 0..<copies {
                    order += 1
                    inFlight.append(Datagram(deliverAt: now + 1 + random.next() % max(1, maxDelay), from: i, to: to, frame: frame, order: order))
                }
            case .deferredReply(_, let deferred):
                var parser = RESPReplyParser()
                try? parser.append(deferred.encode())
                if let reply = try? parser.next() { replies.append(reply) }
            case .closeClient, .shutdown:
                break
            }
        }
        return replies
    }

    /// Advances simulated time by `milliseconds`, delivering due frames (in random order within a
    /// millisecond) and ticking every live node every 10 ms.
    mutating func run(milliseconds: UInt64) {
        let end = now + milliseconds
        while now < end {
            now += 1
            var due = inFlight.filter { $0.deliverAt <= now }
            inFlight.removeAll { $0.deliverAt <= now }
            due.shuffle(using: &random)
            for datagram in due {
                let to = datagram.to
                guard nodes[to].engine != nil else { continue }
                if recordsDeliveries { delivered.append(datagram) }
                var output = EngineOutput()
                nodes[to].engine!.handle(.peerFrame(datagram.frame, from: endpoints[datagram.from]), into: &output)
                nodes[to].engine!.flush(into: &output)
                _ = apply(output, at: to)
            }
            if now % 10 == 0 {
                for i in liveIndices {
                    var output = EngineOutput()
                    nodes[i].engine!.handle(.tick(monotonicMilliseconds: now, wallMilliseconds: Self.simulatedEpoch + now), into: &output)
                    nodes[i].engine!.flush(into: &output)
                    _ = apply(output, at: i)
                }
            }
        }
    }

    /// Delivers again every frame recorded since `recordsDeliveries` was set, each to its first recipient,
    /// in shuffled order: old deltas, states and acknowledgements, all stale by now.
    mutating func replayDelivered() {
        var frames = delivered
        frames.shuffle(using: &random)
        for datagram in frames where nodes[datagram.to].engine != nil {
            var output = EngineOutput()
            nodes[datagram.to].engine!.handle(.peerFrame(datagram.frame, from: endpoints[datagram.from]), into: &output)
            nodes[datagram.to].engine!.flush(into: &output)
            _ = apply(output, at: datagram.to)
        }
    }

    /// kill -9: the engine and everything in memory are gone; the durable records stay.
    mutating func crash(_ i: Int) {
        nodes[i].engine = nil
        inFlight.removeAll { $0.to == i }
    }

    /// Tells node `i` whether its store commits (a full disk, then space again).
    mutating func storage(_ i: Int, _ condition: StorageCondition) {
        var output = EngineOutput()
        nodes[i].engine!.handle(.storage(condition), into: &output)
        nodes[i].engine!.flush(into: &output)
        _ = apply(output, at: i)
    }

    /// Stops node `i` gracefully: it tells its peers it leaves, and what that produced is persisted and sent.
    mutating func leave(_ i: Int) {
        var output = EngineOutput()
        nodes[i].engine!.leave(into: &output)
        _ = apply(output, at: i)
        nodes[i].engine = nil
    }

    /// Replaces node `i` by a node of the same name with a new identity and an empty disk.
    mutating func rebuild(_ i: Int, replica: UInt64) throws {
        crash(i)
        let old = nodes[i].configuration
        var configuration = EngineConfiguration(nodeID: old.nodeID, replica: ReplicaID(replica))
        configuration.replication = old.replication
        configuration.allowFaultInjection = old.allowFaultInjection
        nodes[i] = Node(engine: try Engine(configuration: configuration), configuration: configuration)
    }

    /// Restarts node `i` from what it persisted.
    mutating func restart(_ i: Int) throws {
        nodes[i].engine = try Engine(configuration: nodes[i].configuration, recovery: recovery(from: nodes[i].durable))
        // Compact the simulated database the way the store does, so long runs stay small.
        nodes[i].durable = Self.compacted(nodes[i].durable)
    }

    static func compacted(_ records: [DurableRecord]) -> [DurableRecord] {
        let r = recovery(from: records)
        var out: [DurableRecord] = r.meta.sorted { $0.key < $1.key }.map { .meta(name: $0.key, value: $0.value) }
        for object in r.objects {
            if let snapshot = object.snapshot { out.append(.snapshot(key: object.key, bytes: snapshot)) }
            out += object.deltas.map { .delta(key: object.key, bytes: $0) }
        }
        return out
    }

    /// `INFO section` of node `i` as fields.
    mutating func info(_ i: Int, _ section: String) -> [String: String] {
        guard case .bulkString(let text)? = command(i, ["INFO", section]) else { return [:] }
        var fields: [String: String] = [:]
        for line in String(decoding: text, as: UTF8.self).split(separator: "\r\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: ":", maxSplits: 1)
            fields[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
        }
        return fields
    }

    /// Cuts node `i` from every other live node both ways, with `CRDT.PARTITION` on each side.
    mutating func isolate(_ i: Int) {
        let name = nodes[i].configuration.nodeID
        command(i, ["CRDT.PARTITION"] + nodes.indices.filter { $0 != i }.map { nodes[$0].configuration.nodeID })
        for other in liveIndices where other != i { command(other, ["CRDT.PARTITION", name]) }
    }

    /// The digest of every live node.
    mutating func digests() -> [String] {
        liveIndices.map { i in
            if case .bulkString(let hex)? = command(i, ["CRDT.DIGEST"]) { return String(decoding: hex, as: UTF8.self) }
            return "?"
        }
    }

    /// Runs until every live node has the same digest, or `timeout` simulated milliseconds pass.
    mutating func converge(timeout: UInt64) -> Bool {
        let deadline = now + timeout
        while now < deadline {
            run(milliseconds: 100)
            if Set(digests()).count == 1 { return true }
        }
        return false
    }
}
