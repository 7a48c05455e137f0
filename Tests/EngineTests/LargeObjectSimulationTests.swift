import CRDT
import RESP
import Testing
@testable import Engine

/// A set of 100 k members and a node that falls far behind: while it is cut off its peers write a
/// backlog larger than `maxReplayBytes`; after the heal it is repaired by digest comparison (not by
/// a replay of the whole history, nor by every peer sending the set every round) and every node ends
/// with every member.
@Suite struct LargeObjectSimulationTests {
    @Test func aNodeFarBehindCatchesUpOnAHundredThousandMemberSetByRepair() throws {
        var sim = try Simulation(nodes: 3, seed: 0x0BAD_5E7) { settings in
            settings.deltaBufferBytes = 8 << 20
        }
        sim.run(milliseconds: 2000)
        sim.cut = { a, b in a == 2 || b == 2 }
        for batch in 0..<100 {
            let members = (0..<1000).map { "member-\(batch * 1000 + $0)" }
            #expect(sim.command(batch % 2, ["SADD", "big"] + members) == .integer(1000))
        }
        for i in 0..<3000 { sim.command(i % 2, ["INCR", "hits"]) }
        sim.run(milliseconds: 4000)
        #expect(sim.command(2, ["SCARD", "big"]) == .integer(0), "the cut-off node saw nothing")
        let bytesBefore = sim.bytesSent
        sim.cut = nil
        let converged = sim.converge(timeout: 30_000)
        #expect(converged, "digests \(sim.digests())")
        for i in 0..<3 {
            #expect(sim.command(i, ["SCARD", "big"]) == .integer(100_000), "node \(i)")
            #expect(sim.command(i, ["GET", "hits"]) == .bulkString(Array("3000".utf8)), "node \(i)")
        }
        // Repair costs what differs: about one copy of the set to the node that lacked it (plus probes and
        // acknowledgements), not a transfer per peer per round.
        let stateBytes = sim.nodes[0].engine!.keyspace[Array("big".utf8)]!.serialized().count
        let repairBytes = sim.bytesSent - bytesBefore
        #expect(repairBytes < 4 * stateBytes, "repair sent \(repairBytes) bytes for a state of \(stateBytes)")
        let skipped = sim.nodes.map { $0.engine!.replicationStats.replaysSkipped }.reduce(0, +)
        #expect(skipped > 0, "the backlog exceeds maxReplayBytes: it must be repaired, not replayed")
    }
}
