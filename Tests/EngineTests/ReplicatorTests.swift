import CRDT
import RESP
import Testing
import Wire
@testable import Engine

/// The replicator as a state machine, driven directly (no engine, no RESP): a node `a` with peers `b`
/// and `c`, and the frames it emits decoded back into messages.
@Suite struct ReplicatorTests {
    let envelope = try! Envelope(label: "test", keyring: nil)
    let endpoints = ["a": PeerEndpoint(host: "10.0.0.1", port: 1), "b": PeerEndpoint(host: "10.0.0.2", port: 1),
                     "c": PeerEndpoint(host: "10.0.0.3", port: 1)]
    let replicas = ["a": ReplicaID(1), "b": ReplicaID(2), "c": ReplicaID(3)]

    func replicator(fanout: Int = 3, inFlight: Int = 512 << 10) -> Replicator {
        var settings = ReplicationSettings(endpoint: endpoints["a"]!, envelope: envelope)
        settings.fanout = fanout
        settings.maxInFlightBytes = inFlight
        var replicator = Replicator(settings: settings, selfID: "a", replica: replicas["a"]!,
                                    decodingLimits: DecodingLimits(maxBytes: 1 << 20, maxElements: 1 << 16, maxDepth: 8),
                                    incarnation: 1, nextSequence: 0)
        for peer in ["b", "c"] {
            replicator.membership.apply(MemberUpdate(nodeID: peer, replica: replicas[peer]!, endpoint: endpoints[peer]!,
                                                     incarnation: 1, state: .alive), now: 0)
        }
        return replicator
    }

    /// The delta messages in `output`, by recipient.
    func deltas(in output: EngineOutput) -> [(peer: String, from: UInt64, to: UInt64, entries: Int)] {
        (output.effects + output.immediate).compactMap { effect in
            guard case .send(let frame, let endpoint, _) = effect,
                  let (_, message) = try? PeerCodec.decode(try envelope.open(frame)),
                  case .deltas(let from, let to, let entries, _) = message else { return nil }
            let name = endpoints.first { $0.value == endpoint }!.key
            return (name, from, to, entries.count)
        }
    }

    /// A deltas frame from `peer` carrying one counter delta.
    func frame(from peer: String, sequence: UInt64, reaching: [String] = []) throws -> Bytes {
        var delta = KeyObject()
        var counter = ResettableCounter()
        delta.counter = try counter.add(1, replica: replicas[peer]!)
        let header = PeerHeader(nodeID: peer, replica: replicas[peer]!, endpoint: endpoints[peer]!, incarnation: 1, lamport: 1)
        let message = PeerMessage.deltas(from: sequence, to: sequence + 1,
                                         entries: [KeyedBytes(key: Array("k".utf8), bytes: delta.serialized())],
                                         reaching: reaching)
        return envelope.seal(PeerCodec.encode(header, message))
    }

    @Test func aLocalDeltaIsPushedToEveryPeerOnceAndNotResentBeforeTheRetransmitTimeout() {
        var replicator = replicator()
        replicator.record(delta: [1, 2, 3], of: Array("k".utf8))
        var output = EngineOutput()
        replicator.flush(into: &output)
        #expect(deltas(in: output).map(\.peer).sorted() == ["b", "c"])
        // Unacknowledged, but within the retransmit timeout: the gossip round sends nothing again.
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var round = EngineOutput()
        replicator.tick(now: 500, keyspace: &keyspace, acceptingWrites: true, into: &round)
        #expect(deltas(in: round).isEmpty)
        // No acknowledgement for longer than the timeout: resent from the acknowledgement.
        round = EngineOutput()
        let later = 500 + replicator.settings.retransmitMilliseconds
        replicator.tick(now: later, keyspace: &keyspace, acceptingWrites: true, into: &round)
        #expect(deltas(in: round).map(\.peer).sorted() == ["b", "c"])
        #expect(deltas(in: round).allSatisfy { $0.from == 0 && $0.to == 1 && $0.entries == 1 })
    }

    @Test func anAcknowledgedPeerIsNotResentAndAnUnacknowledgedOneIs() {
        var replicator = replicator()
        replicator.record(delta: [1], of: Array("k".utf8))
        var output = EngineOutput()
        replicator.flush(into: &output)
        replicator.receiveDeltaAck(through: 1, from: "b")
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var round = EngineOutput()
        replicator.tick(now: 5000, keyspace: &keyspace, acceptingWrites: true, into: &round)
        #expect(deltas(in: round).map(\.peer) == ["c"])
    }

    @Test func aPeerWithAFullWindowIsSentNothingNewUntilItAcknowledges() {
        var replicator = replicator(inFlight: 100)
        let key = Array("k".utf8)
        replicator.record(delta: Array(repeating: 7, count: 150), of: key)
        var output = EngineOutput()
        replicator.flush(into: &output)
        #expect(deltas(in: output).count == 2)
        // 150 bytes in flight to each peer, over the 100-byte window: the next delta waits.
        replicator.record(delta: [1], of: key)
        output = EngineOutput()
        replicator.flush(into: &output)
        #expect(deltas(in: output).isEmpty)
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        output = EngineOutput()
        replicator.tick(now: 200, keyspace: &keyspace, acceptingWrites: true, into: &output)
        #expect(deltas(in: output).isEmpty)
        // b acknowledges: its window opens, and the next round sends it the second delta alone.
        replicator.receiveDeltaAck(through: 1, from: "b")
        output = EngineOutput()
        replicator.tick(now: 400, keyspace: &keyspace, acceptingWrites: true, into: &output)
        let sent = deltas(in: output)
        #expect(sent.count == 1 && sent.first?.peer == "b" && sent.first?.from == 1 && sent.first?.entries == 1)
    }

    @Test func aReceivedDeltaIsNeverSentBackToItsSourceButItsSequenceIsClaimed() throws {
        var replicator = replicator(fanout: 1)  // three members, fanout 1: deltas are forwarded
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var clock = LamportClock(replica: replicas["a"]!)
        var output = EngineOutput()
        replicator.receive(frame: try frame(from: "b", sequence: 0), from: endpoints["b"]!, keyspace: &keyspace, clock: &clock,
                           acceptingWrites: true, into: &output)
        #expect(keyspace[Array("k".utf8)] != nil)
        #expect(replicator.nextSequence == 1)
        output = EngineOutput()
        replicator.flush(into: &output)
        // Forwarded at once to c (the only peer that lacks it), never to b.
        #expect(deltas(in: output).map(\.peer) == ["c"])
        // Retransmitted after the timeout: c gets it again; b gets the claim only, without the delta.
        output = EngineOutput()
        replicator.tick(now: 5000, keyspace: &keyspace, acceptingWrites: true, into: &output)
        let sent = deltas(in: output)
        let toB = try #require(sent.first { $0.peer == "b" })
        let toC = try #require(sent.first { $0.peer == "c" })
        #expect(toB.from == 0 && toB.to == 1 && toB.entries == 0)
        #expect(toC.from == 0 && toC.to == 1 && toC.entries == 1)
    }

    @Test func inAClusterNoLargerThanTheFanoutAReceivedDeltaWaitsForTheGossipRound() throws {
        var replicator = replicator(fanout: 3)
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var clock = LamportClock(replica: replicas["a"]!)
        var output = EngineOutput()
        replicator.receive(frame: try frame(from: "b", sequence: 0), from: endpoints["b"]!, keyspace: &keyspace, clock: &clock,
                           acceptingWrites: true, into: &output)
        output = EngineOutput()
        replicator.flush(into: &output)
        // b pushed it to every member it reaches; c gets it from a only in the round (a bridge partition).
        #expect(deltas(in: output).isEmpty)
        output = EngineOutput()
        replicator.tick(now: 200, keyspace: &keyspace, acceptingWrites: true, into: &output)
        #expect(deltas(in: output).first { $0.peer == "c" }?.entries == 1)
    }

    @Test func aDeltaWhoseSourceReachesAPeerIsNotForwardedToIt() throws {
        var replicator = replicator(fanout: 3)
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        var clock = LamportClock(replica: replicas["a"]!)
        var output = EngineOutput()
        // b says it delivers its deltas to c itself: a claims that one to c without carrying it.
        replicator.receive(frame: try frame(from: "b", sequence: 0, reaching: ["a", "c"]), from: endpoints["b"]!,
                           keyspace: &keyspace, clock: &clock, acceptingWrites: true, into: &output)
        output = EngineOutput()
        replicator.tick(now: 200, keyspace: &keyspace, acceptingWrites: true, into: &output)
        #expect(deltas(in: output).first { $0.peer == "c" }.map { ($0.from, $0.to, $0.entries) } ?? (9, 9, 9) == (0, 1, 0))
        // The next one names only a (c stopped acknowledging b): a carries it to c.
        var changed = KeyObject()
        var counter = ResettableCounter()
        changed.counter = try counter.add(2, replica: replicas["b"]!)
        let header = PeerHeader(nodeID: "b", replica: replicas["b"]!, endpoint: endpoints["b"]!, incarnation: 1, lamport: 2)
        let second = envelope.seal(PeerCodec.encode(header, .deltas(from: 1, to: 2, entries: [KeyedBytes(key: Array("j".utf8), bytes: changed.serialized())],
                                                                    reaching: ["a"])))
        output = EngineOutput()
        replicator.receive(frame: second, from: endpoints["b"]!, keyspace: &keyspace, clock: &clock, acceptingWrites: true, into: &output)
        output = EngineOutput()
        replicator.tick(now: 400, keyspace: &keyspace, acceptingWrites: true, into: &output)
        #expect(deltas(in: output).first { $0.peer == "c" }.map { ($0.from, $0.to, $0.entries) } ?? (9, 9, 9) == (1, 2, 1))
    }

    @Test func aPeerIsNamedAsReachedWhileItsAcknowledgementsAdvance() {
        var replicator = replicator()
        replicator.record(delta: [1], of: Array("k".utf8))
        var output = EngineOutput()
        replicator.flush(into: &output)
        #expect(replicator.membersKeepingUp().isEmpty)
        replicator.now = 100
        replicator.receiveDeltaAck(through: 1, from: "b")
        #expect(replicator.membersKeepingUp() == ["b"])
        // b holds everything: still reached. Once it lags without acknowledging for the timeout, it is not.
        replicator.record(delta: [2], of: Array("k".utf8))
        replicator.now = 100 + replicator.settings.retransmitMilliseconds
        #expect(replicator.membersKeepingUp().isEmpty)
    }

    @Test func probesAreMarkedOnTheEnvelopeAndDataIsNot() throws {
        var replicator = replicator()
        var keyspace = Keyspace(digestBuckets: 4, snapshotFloorBytes: 4096)
        replicator.record(delta: [1], of: Array("k".utf8))
        var output = EngineOutput()
        replicator.flush(into: &output)
        replicator.tick(now: 1000, keyspace: &keyspace, acceptingWrites: true, into: &output)
        var probes = 0, data = 0
        for case .send(let frame, _, _) in output.effects + output.immediate {
            let (_, message) = try PeerCodec.decode(try envelope.open(frame))
            #expect(Envelope.isProbe(frame) == Replicator.isMembershipProbe(message))
            if Envelope.isProbe(frame) { probes += 1 } else { data += 1 }
        }
        #expect(probes > 0 && data > 0)
    }
}

/// An asymmetric cut (`CRDT.PARTITION OUTBOUND` on one end, `INBOUND` on the other), in simulation.
@Suite struct OneWayCutTests {
    @Test func writesCrossAOneWayCutThroughTheOtherMembersAndTheCutNodeStaysAlive() throws {
        var sim = try Simulation(nodes: 3, seed: 21)
        sim.run(milliseconds: 3000)
        #expect(sim.command(0, ["CRDT.PARTITION", "OUTBOUND", "n2"]) == .simpleString("OK"))
        #expect(sim.command(1, ["CRDT.PARTITION", "INBOUND", "n1"]) == .simpleString("OK"))
        for i in 0..<50 {
            _ = sim.command(0, ["SADD", "s", "from-n1-\(i)"])
            _ = sim.command(1, ["SADD", "s", "from-n2-\(i)"])
            sim.run(milliseconds: 20)
        }
        sim.run(milliseconds: 3000)
        // n1's adds reached n2 through n3; n2's reached n1 directly.
        #expect(sim.command(1, ["SCARD", "s"]) == .integer(100))
        #expect(sim.command(0, ["SCARD", "s"]) == .integer(100))
        #expect(Set(sim.digests()).count == 1)
        // Indirect probes through n3 keep n1 alive at n2 although n2 hears nothing from n1 itself.
        let text = strings(in: sim.command(1, ["CRDT.PEERS"])).joined(separator: " ")
        #expect(text.contains("alive (inbound cut here)"), "n2's peers: \(text)")
        #expect(!text.contains("dead") && !text.contains("suspect"), "n2's peers: \(text)")
        #expect(sim.command(0, ["CRDT.HEAL"]) == .simpleString("OK"))
        #expect(sim.command(1, ["CRDT.HEAL"]) == .simpleString("OK"))
        #expect(!strings(in: sim.command(1, ["CRDT.PEERS"])).joined().contains("cut here"))
    }

    func strings(in reply: RESPReply?) -> [String] {
        switch reply {
        case .bulkString(let bytes)?: [String(decoding: bytes, as: UTF8.self)]
        case .array(let elements)?: elements.flatMap { strings(in: $0) }
        case .map(let entries)?: entries.flatMap { strings(in: $0.key) + strings(in: $0.value) }
        default: []
        }
    }
}
