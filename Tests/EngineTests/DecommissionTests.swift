import CRDT
import RESP
import Testing
import Wire
@testable import Engine

/// Decommissioning (`CRDT.FORGET`): a member gone for good is dropped from membership and from every
/// per-peer table, on every node, and its identity is refused from then on; the node, if it comes back
/// with that identity, learns it and refuses writes until it is rebuilt as a new replica.
@Suite struct DecommissionTests {
    let envelope = try! Envelope(label: "test", keyring: nil)
    let endpoints = ["a": PeerEndpoint(host: "10.0.0.1", port: 1), "b": PeerEndpoint(host: "10.0.0.2", port: 1),
                     "c": PeerEndpoint(host: "10.0.0.3", port: 1)]
    let replicas = ["a": ReplicaID(1), "b": ReplicaID(2), "c": ReplicaID(3)]

    func replicator(_ name: String = "a") -> Replicator {
        let settings = ReplicationSettings(endpoint: endpoints[name]!, envelope: envelope)
        var replicator = Replicator(settings: settings, selfID: name, replica: replicas[name]!,
                                    decodingLimits: DecodingLimits(maxBytes: 1 << 20, maxElements: 1 << 16, maxDepth: 8),
                                    incarnation: 1, nextSequence: 0)
        for peer in ["a", "b", "c"] where peer != name {
            replicator.membership.apply(update(peer, .alive), now: 0)
        }
        return replicator
    }

    func update(_ node: String, _ state: MemberState, incarnation: UInt64 = 1) -> MemberUpdate {
        MemberUpdate(nodeID: node, replica: replicas[node]!, endpoint: endpoints[node]!, incarnation: incarnation, state: state)
    }

    /// A deltas frame from `peer` carrying one counter delta for key `k`.
    func deltasFrame(from peer: String, replica: ReplicaID? = nil) throws -> Bytes {
        let replica = replica ?? replicas[peer]!
        var delta = KeyObject()
        var counter = ResettableCounter()
        delta.counter = try counter.add(1, replica: replica)
        let header = PeerHeader(nodeID: peer, replica: replica, endpoint: endpoints[peer]!, incarnation: 1, lamport: 1)
        let message = PeerMessage.deltas(from: 0, to: 1, entries: [KeyedBytes(key: Array("k".utf8), bytes: delta.serialized())])
        return envelope.seal(PeerCodec.encode(header, message))
    }

    func messages(in output: EngineOutput) -> [(to: PeerEndpoint, message: PeerMessage)] {
        (output.effects + output.immediate).compactMap { effect in
            guard case .send(let frame, let endpoint, _) = effect,
                  let (_, message) = try? PeerCodec.decode(try envelope.open(frame)) else { return nil }
            return (endpoint, message)
        }
    }

    @Test func onlyAMemberThatIsGoneMayBeForgotten() {
        var replicator = replicator()
        #expect(replicator.forget("c") == .failure(.reachable(.alive)))
        #expect(replicator.forget("a") == .failure(.selfNode))
        #expect(replicator.forget("nobody") == .failure(.unknown))
        replicator.membership.apply(update("c", .dead), now: 10)
        #expect(replicator.forget("c") == .success(replicas["c"]!))
        #expect(replicator.membership.member("c") == nil)
        #expect(replicator.membership.isForgotten(replicas["c"]!))
    }

    @Test func forgettingDropsEveryPerPeerEntryAndPersistsTheFact() throws {
        var replicator = replicator()
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var clock = LamportClock(replica: replicas["a"]!)
        var output = EngineOutput()
        // c sent us deltas and acknowledged ours: it has an entry in every table.
        replicator.receive(frame: try deltasFrame(from: "c"), from: endpoints["c"]!, keyspace: &keyspace, clock: &clock,
                           acceptingWrites: true, into: &output)
        replicator.record(delta: [1], of: Array("k".utf8))
        replicator.flush(into: &output)
        replicator.receiveDeltaAck(through: 1, from: "c")
        replicator.needsSync.insert("c")
        #expect(replicator.received["c"] != nil && replicator.acknowledged["c"] != nil && replicator.outflows["c"] != nil)

        replicator.membership.apply(update("c", .dead, incarnation: 2), now: 100)
        #expect(replicator.forget("c") == .success(replicas["c"]!))
        var batch = EngineOutput()
        replicator.flush(into: &batch)
        for table in [replicator.received.keys.contains("c"), replicator.acknowledged.keys.contains("c"),
                      replicator.outflows.keys.contains("c"), replicator.lastDeltasAt.keys.contains("c"),
                      replicator.needsSync.contains("c")] {
            #expect(!table)
        }
        // b's entries are untouched, and what was forgotten is persisted with the batch.
        let forgotten = batch.records.compactMap { record -> [ReplicaID: String]? in
            guard case .meta(MetaKey.forgotten, let value) = record else { return nil }
            return Replicator.decodeForgotten(value)
        }
        #expect(forgotten == [[replicas["c"]!: "c"]])
        let received = batch.records.compactMap { record -> [String: PeerProgress]? in
            guard case .meta(MetaKey.received, let value) = record else { return nil }
            return Replicator.decodeProgress(value)
        }
        #expect(received.last?.keys.contains("c") == false)
    }

    @Test func aForgottenIdentityIsRefusedAndToldSoAtMostOnceASecond() throws {
        var replicator = replicator()
        replicator.membership.apply(update("c", .dead), now: 10)
        _ = replicator.forget("c")
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var clock = LamportClock(replica: replicas["a"]!)
        var output = EngineOutput()
        for _ in 0..<3 {
            replicator.receive(frame: try deltasFrame(from: "c"), from: endpoints["c"]!, keyspace: &keyspace, clock: &clock,
                               acceptingWrites: true, into: &output)
        }
        #expect(keyspace["k".utf8.map { $0 }] == nil)
        #expect(replicator.stats.rejected["forgotten"] == 3)
        #expect(replicator.membership.member("c") == nil)
        let notices = messages(in: output).filter { $0.to == endpoints["c"]! }
        #expect(notices.count == 1)
        guard case .ack(_, let updates)? = notices.first?.message else {
            Issue.record("expected an ack carrying the forgotten fact")
            return
        }
        #expect(updates.contains { $0.replica == replicas["c"]! && $0.state == .forgotten })
    }

    @Test func theSameNameWithANewIdentityIsAcceptedAndTheOldIdentityForgotten() throws {
        var replicator = replicator()
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var clock = LamportClock(replica: replicas["a"]!)
        var output = EngineOutput()
        let rebuilt = ReplicaID(0x77)
        replicator.receive(frame: try deltasFrame(from: "c", replica: rebuilt), from: endpoints["c"]!, keyspace: &keyspace,
                           clock: &clock, acceptingWrites: true, into: &output)
        #expect(replicator.membership.member("c")?.replica == rebuilt)
        #expect(replicator.membership.isForgotten(replicas["c"]!))
        #expect(keyspace["k".utf8.map { $0 }] != nil)
        // A frame from the abandoned identity (a stale process, a restored copy) is refused.
        replicator.receive(frame: try deltasFrame(from: "c"), from: endpoints["c"]!, keyspace: &keyspace, clock: &clock,
                           acceptingWrites: true, into: &output)
        #expect(replicator.stats.rejected["forgotten"] == 1)
        #expect(replicator.membership.member("c")?.replica == rebuilt)
    }

    @Test func theFactRidesOnProbesToMembersThatMissedIt() {
        var a = replicator("a")
        a.membership.apply(update("c", .dead), now: 10)
        _ = a.forget("c")
        var b = replicator("b")
        // Long after the rumour's retransmissions ran out, every message still carries one forgotten fact.
        for _ in 0..<20 { _ = a.membership.piggyback(to: "b") }
        let late = a.membership.piggyback(to: "b")
        #expect(late.contains { $0.state == .forgotten && $0.replica == replicas["c"]! })
        for fact in late { b.membership.apply(fact, now: 20) }
        #expect(b.membership.member("c") == nil)
        #expect(b.membership.isForgotten(replicas["c"]!))
        // A later rumour that c is alive (from a member that missed the forget) does not bring it back.
        b.membership.apply(update("c", .alive, incarnation: 9), now: 30)
        #expect(b.membership.member("c") == nil)
    }

    @Test func theForgottenNodeLearnsItAndFallsSilent() throws {
        var c = replicator("c")
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var clock = LamportClock(replica: replicas["c"]!)
        var output = EngineOutput()
        var a = replicator("a")
        a.membership.apply(update("c", .dead), now: 10)
        _ = a.forget("c")
        let header = PeerHeader(nodeID: "a", replica: replicas["a"]!, endpoint: endpoints["a"]!, incarnation: 1, lamport: 1)
        let notice = envelope.seal(PeerCodec.encode(header, .ack(sequence: 0, updates: [a.membership.forgottenUpdate(replicas["c"]!)])))
        c.receive(frame: notice, from: endpoints["a"]!, keyspace: &keyspace, clock: &clock, acceptingWrites: true, into: &output)
        #expect(c.membership.decommissioned)
        var round = EngineOutput()
        c.tick(now: 10_000, keyspace: &keyspace, acceptingWrites: true, into: &round)
        #expect(messages(in: round).isEmpty)
    }

    @Test func theForgottenTableRoundTripsAndACorruptOneIsRefused() {
        let table: [ReplicaID: String] = [ReplicaID(3): "c", ReplicaID(0xABCDEF): "node-7"]
        #expect(Replicator.decodeForgotten(Replicator.encodeForgotten(table)) == table)
        #expect(Replicator.decodeForgotten([5, 1]) == nil)
        #expect(Replicator.decodeForgotten(Replicator.encodeForgotten(table) + [0]) == nil)
    }

    /// End to end in the simulation: a node is killed and forgotten on one member; every member drops it; the
    /// same node restarted from its disk is refused and refuses writes; rebuilt with an empty disk it joins
    /// as a new replica and catches up.
    @Test(arguments: [UInt64(1), 2, 3])
    func aDecommissionedNodeIsDroppedEverywhereRefusedWhenItReturnsAndWelcomeAsANewReplica(seed: UInt64) throws {
        var sim = try Simulation(nodes: 3, seed: seed)
        sim.lossRate = 0.05
        sim.duplicateRate = 0.05
        sim.run(milliseconds: 2_000)
        for i in 0..<20 { sim.command(i % 3, ["SADD", "s", "m\(i)"]) }
        let converged = sim.converge(timeout: 10_000)
        #expect(converged)
        sim.crash(2)
        sim.run(milliseconds: 4_000)
        let refusedWhileAlive = sim.command(0, ["CRDT.FORGET", "n2"])
        #expect(refusedWhileAlive.map(isError) == true, "n2 is alive: refused")
        let forgot = sim.command(0, ["CRDT.FORGET", "n3"])
        #expect(forgot == .simpleString("OK"))
        sim.run(milliseconds: 3_000)
        for i in 0..<2 {
            let peers = peerNames(sim.command(i, ["CRDT.PEERS"]))
            let replication = info(sim.command(i, ["INFO", "replication"]))
            #expect(peers.contains(i == 0 ? "n2" : "n1") && !peers.contains("n3"), "node \(i) lists \(peers)")
            #expect(replication.contains("forgotten:n3="))
        }
        // n3 comes back with its old disk, so its old identity: refused, and it learns why.
        try sim.restart(2)
        sim.run(milliseconds: 3_000)
        let refusal = sim.command(2, ["SADD", "s", "late"])
        guard case .error(let message)? = refusal else {
            Issue.record("a decommissioned node accepted a write: \(String(describing: refusal))")
            return
        }
        #expect(message.hasPrefix("DECOMMISSIONED"))
        let peersWhileRefused = peerNames(sim.command(0, ["CRDT.PEERS"]))
        #expect(!peersWhileRefused.contains("n3"))
        // Restarted again it still knows (the fact is on its disk).
        try sim.restart(2)
        let afterRestart = sim.command(2, ["INCR", "c"])
        #expect(afterRestart.map(isError) == true)
        // Rebuilt with an empty disk: a new replica, which joins and catches up.
        try sim.rebuild(2, replica: 0xC0FFEE)
        let fresh = sim.command(2, ["SADD", "s", "fresh"])
        #expect(fresh == .integer(1))
        let caughtUp = sim.converge(timeout: 15_000)
        #expect(caughtUp)
        let count = sim.command(0, ["SCARD", "s"])
        #expect(count == .integer(21))
        let peersAfterRebuild = peerNames(sim.command(0, ["CRDT.PEERS"]))
        #expect(peersAfterRebuild.contains("n3"))
    }

    func isError(_ reply: RESPReply) -> Bool {
        if case .error = reply { return true }
        return false
    }

    func info(_ reply: RESPReply?) -> String {
        if case .bulkString(let bytes)? = reply { return String(decoding: bytes, as: UTF8.self) }
        if case .verbatimString(_, let bytes)? = reply { return String(decoding: bytes, as: UTF8.self) }
        return ""
    }

    /// Member names from a `CRDT.PEERS` reply (a RESP2 client sees each member as a flat key-value array).
    func peerNames(_ reply: RESPReply?) -> [String] {
        guard case .array(let members)? = reply else { return [] }
        return members.compactMap { member in
            guard case .array(let fields) = member, fields.count >= 2, fields[0] == .bulkString(Array("node".utf8)),
                  case .bulkString(let name) = fields[1] else { return nil }
            return String(decoding: name, as: UTF8.self)
        }
    }
}
