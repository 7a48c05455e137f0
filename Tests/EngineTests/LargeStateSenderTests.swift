import CRDT
import RESP
import Testing
import Wire
@testable import Engine

/// Large states sent by repair: serialised off the engine thread from a copy, and paced.
@Suite struct LargeStateSenderTests {
    private func largeSet(members: Int) throws -> KeyObject {
        var h = try Harness()
        for batch in stride(from: 0, to: members, by: 1000) {
            h.run(["SADD", "big"].map { Array($0.utf8) } + (batch..<min(members, batch + 1000)).map { Array("member-\($0)".utf8) })
        }
        return h.engine.keyspace[Array("big".utf8)]!
    }

    /// Nothing is sent before the worker has serialised the state; then at most the burst at once, and
    /// the rest as the budget refills with time; the chunks, put together, are the object's serialisation.
    @Test func chunksWaitForTheWorkerAndArePaced() throws {
        let object = try largeSet(members: 60_000)
        let expected = object.serialized()
        let chunk = 64 << 10
        #expect(expected.count > LargeStateSender.burstBytes + 4 * chunk, "a state of \(expected.count) bytes")
        let worker = QueuedWork()
        var sender = LargeStateSender()
        sender.background = { worker.enqueue($0) }
        let key = Array("big".utf8)
        sender.enqueue(key, object, to: PeerEndpoint(host: "10.0.0.2", port: 7946), recipient: "n2")
        #expect(sender.contains(key, to: "n2") && !sender.contains(key, to: "n3"))
        var now: UInt64 = 1_000
        #expect(sender.nextChunk(now: now, chunkBytes: chunk) == nil, "not serialised yet")
        worker.runAll()
        var assembled = Bytes(repeating: 0, count: expected.count)
        var received = 0
        var first = 0
        while let (state, range, started) = sender.nextChunk(now: now, chunkBytes: chunk) {
            #expect(started == (received == 0))
            assembled.replaceSubrange(range, with: state.bytes![range])
            received += range.count
            first += range.count
        }
        #expect(first <= LargeStateSender.burstBytes + chunk, "one step sends at most the burst: \(first)")
        #expect(first > 0)
        var steps = 0
        while received < expected.count, steps < 1_000 {
            now += 10
            steps += 1
            var step = 0
            while let (state, range, _) = sender.nextChunk(now: now, chunkBytes: chunk) {
                assembled.replaceSubrange(range, with: state.bytes![range])
                received += range.count
                step += range.count
            }
            #expect(step <= 10 * LargeStateSender.bytesPerMillisecond + chunk, "10 ms send \(step) bytes")
        }
        #expect(received == expected.count && assembled == expected)
        #expect(sender.queue.isEmpty)
        #expect(steps >= (expected.count - first) / (10 * LargeStateSender.bytesPerMillisecond), "paced over time")
    }

    /// A node cut off while a 60 k-member set was written catches up by repair through the paced sender,
    /// with a worker that runs at once (deterministic): every node ends with every member.
    @Test func repairThroughThePacedSenderConverges() throws {
        var sim = try Simulation(nodes: 3, seed: 0x5E4D, configure: { settings in
            settings.deltaBufferBytes = 256 << 10
        }, background: { $0() })
        sim.run(milliseconds: 2000)
        sim.cut = { a, b in a == 2 || b == 2 }
        for batch in 0..<60 {
            let members = (0..<1000).map { "member-\(batch * 1000 + $0)" }
            #expect(sim.command(batch % 2, ["SADD", "big"] + members) == .integer(1000))
        }
        sim.run(milliseconds: 3000)
        #expect(sim.command(2, ["SCARD", "big"]) == .integer(0), "the cut-off node saw nothing")
        let bytesBefore = sim.bytesSent
        sim.cut = nil
        let converged = sim.converge(timeout: 30_000)
        #expect(converged, "digests \(sim.digests())")
        for i in 0..<3 { #expect(sim.command(i, ["SCARD", "big"]) == .integer(60_000), "node \(i)") }
        let stateBytes = sim.nodes[0].engine!.keyspace[Array("big".utf8)]!.serialized().count
        #expect(stateBytes > 256 << 10, "large enough to travel in chunks")
        #expect(sim.bytesSent - bytesBefore < 4 * stateBytes, "repair sent \(sim.bytesSent - bytesBefore) for \(stateBytes)")
        for i in 0..<3 { #expect(sim.nodes[i].engine!.replicator!.largeStates.queue.isEmpty, "node \(i)") }
        let paced = (0..<3).map { sim.nodes[$0].engine!.replicator!.largeStates.statesSent }.reduce(0, +)
        #expect(paced >= 1, "the set travelled through the paced sender")
        // The node that had nothing persisted the state it received as a staged snapshot, in parts, not
        // as one delta of the whole state; and a crash then restart from it holds every member.
        sim.run(milliseconds: 2000)
        #expect(sim.nodes[2].engine!.keyspace.stagedSnapshotsInProgress == 0)
        let durable = sim.nodes[2].durable
        let largestDelta = durable.map { if case .delta(_, let bytes) = $0 { bytes.count } else { 0 } }.max() ?? 0
        #expect(largestDelta < stateBytes / 2, "a delta of \(largestDelta) bytes for a state of \(stateBytes)")
        #expect(durable.contains { if case .snapshotSeal = $0 { true } else { false } })
        sim.crash(2)
        try sim.restart(2)
        #expect(sim.command(2, ["SCARD", "big"]) == .integer(60_000), "after a restart")
        let convergedAgain = sim.converge(timeout: 10_000)
        #expect(convergedAgain, "digests \(sim.digests())")
    }
}
