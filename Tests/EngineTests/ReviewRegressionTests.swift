import CRDT
import RESP
import Testing
import Wire
@testable import Engine

/// Regressions for the findings of the replication review: each failed before its fix.
@Suite struct ReviewRegressionTests {
    /// A frame from peer `node` with a chosen Lamport value, sealed for `envelope`.
    func frame(lamport: UInt64, incarnation: UInt64 = 1, envelope: Envelope) -> Bytes {
        var w = BinaryWriter()
        w.write(byte: 1)  // ping
        w.write(lengthPrefixed: Array("evil".utf8))
        w.write(varint: 99)
        w.write(lengthPrefixed: Array("10.9.9.9".utf8))
        w.write(varint: 7946)
        w.write(varint: incarnation)
        w.write(varint: lamport)
        w.write(varint: 1)  // sequence
        w.write(varint: 0)  // no updates
        return envelope.seal(w.bytes)
    }

    @Test func hugeLamportValuesAreRejectedAndTheLargestAcceptedOneCannotOverflow() throws {
        var sim = try Simulation(nodes: 1, seed: 5)
        let envelope = try Envelope(label: "sim", keyring: nil)
        var output = EngineOutput()
        sim.nodes[0].engine!.handle(.peerFrame(frame(lamport: .max, envelope: envelope), from: sim.endpoints[0]), into: &output)
        #expect(sim.nodes[0].engine!.replicationStats.rejected["malformed"] == 1)
        #expect(sim.nodes[0].engine!.clock.counter < 1 << 62)
        // The largest value the decoder accepts: writes keep working, and so does a restart.
        sim.nodes[0].engine!.handle(.peerFrame(frame(lamport: PeerCodec.maximumCounter, envelope: envelope), from: sim.endpoints[0]),
                                    into: &output)
        _ = sim.apply(output, at: 0)
        for i in 0..<20 { sim.command(0, ["INCR", "c\(i)"]) }
        try sim.restart(0)
        let counter = sim.command(0, ["INCR", "c0"])
        #expect(counter == .integer(2))
        #expect(throws: FrameRejection.malformed) {
            try PeerCodec.decode(try envelope.open(frame(lamport: 1, incarnation: .max, envelope: envelope)))
        }
    }

    @Test func aValueAtTheClientLimitSurvivesARestart() throws {
        var sim = try Simulation(nodes: 1, seed: 6)
        let big = String(repeating: "x", count: 17 << 20)
        let stored = sim.command(0, ["SET", "big", big])
        #expect(stored == .simpleString("OK"))
        try sim.restart(0)
        // Read it from the engine: the test's reply parser keeps Redis's 16 MiB bulk limit.
        #expect(sim.nodes[0].engine?.keyspace[Array("big".utf8)]?.string.value?.count == 17 << 20)
    }

    @Test func aNodeThatLeftAndRestartedIsAliveAgainOnItsPeers() throws {
        var sim = try Simulation(nodes: 3, seed: 7)
        sim.run(milliseconds: 2000)
        sim.leave(2)
        sim.run(milliseconds: 1000)
        #expect(peerState(sim, of: "n3", at: 0) == "left")
        try sim.restart(2)
        sim.run(milliseconds: 4000)
        #expect(peerState(sim, of: "n3", at: 0) == "alive", "a restarted node must not stay `left`")
        sim.command(0, ["SADD", "s", "after"])
        let converged = sim.converge(timeout: 3000)
        #expect(converged)
    }

    @Test func aRebuiltNodeWithTheSameNameIsANewMember() throws {
        var sim = try Simulation(nodes: 3, seed: 8)
        sim.run(milliseconds: 2000)
        sim.command(0, ["SADD", "s", "before"])
        let first = sim.converge(timeout: 3000)
        #expect(first)
        try sim.rebuild(2, replica: 0xABCDEF)
        sim.run(milliseconds: 3000)
        let caughtUp = sim.converge(timeout: 5000)
        #expect(caughtUp, "the rebuilt node catches up")
        let replica = sim.nodes[0].engine!.replicator!.membership.member("n3")?.replica
        #expect(replica == ReplicaID(0xABCDEF), "peers adopt the new identity")
        // Acknowledgements advance again, so the buffer is collected and idle traffic stays small.
        let before = sim.bytesSent
        sim.run(milliseconds: 5000)
        #expect((sim.bytesSent - before) / 3 / 5 < 1024)
    }

    @Test func repairingOneKeyInABucketSpreadOverFramesSendsOnlyThatKey() throws {
        var sim = try Simulation(nodes: 2, seed: 9) { settings in
            settings.digestBuckets = 1
            settings.maxFrameBytes = 4096
            settings.syncIntervalMilliseconds = 300
        }
        sim.run(milliseconds: 1500)
        for i in 0..<600 { sim.command(0, ["SET", "key-\(i)", "v"]) }
        let loaded = sim.converge(timeout: 10_000)
        #expect(loaded)
        sim.cut = { _, _ in true }
        sim.command(1, ["SET", "key-300", "changed"])
        sim.cut = nil
        let statesBefore = sim.nodes.map { $0.engine!.replicationStats.statesApplied }
        let repaired = sim.converge(timeout: 10_000)
        #expect(repaired)
        let statesAfter = sim.nodes.map { $0.engine!.replicationStats.statesApplied }
        let applied = zip(statesAfter, statesBefore).map { $0 - $1 }.reduce(0, +)
        #expect(applied <= 8, "repair of one key applied \(applied) states")
    }

    @Test func deleteRefusesAKeyWithAShadowedBoundedCounter() throws {
        var a = try Harness(node: "a", replica: 1)
        var b = try Harness(node: "b", replica: 2)
        a.run("INCR", "k")
        b.run("CRDT.BINCRBY", "k", "5")
        let theirs = b.engine.keyspace[Array("k".utf8)]!
        _ = a.engine.keyspace.join(remote: theirs, bytes: theirs.serialized(), into: Array("k".utf8))
        #expect(a.run("TYPE", "k") == .simpleString("counter"))
        #expect(a.run("DEL", "k").isError, "DEL would otherwise report success and leave the bounded counter")
    }

    func peerState(_ sim: Simulation, of node: String, at i: Int) -> String? {
        sim.nodes[i].engine?.replicator?.membership.member(node)?.state.description
    }
}
