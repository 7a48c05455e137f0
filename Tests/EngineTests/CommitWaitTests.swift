import CRDT
import RESP
import Testing
@testable import Engine

/// An engine whose shell reports released steps, as the daemon's does, with one step per call.
struct ReleasingHarness {
    var engine: Engine
    var now: UInt64 = 0

    init(configure: (inout CommitWaitSettings) -> Void = { _ in }) throws {
        var configuration = EngineConfiguration(nodeID: "n1", replica: ReplicaID(1))
        configuration.commitWait.reportsReleases = true
        configure(&configuration.commitWait)
        engine = try Engine(configuration: configuration)
        for client in 1...3 { _ = engine.handle(.clientConnected(ClientID(UInt64(client)), address: "test")) }
    }

    /// Runs one step of commands; returns the output (replies split into immediate and held).
    mutating func step(_ commands: [(UInt64, [String])]) -> EngineOutput {
        var output = EngineOutput()
        for (client, arguments) in commands {
            engine.handle(.clientCommand(ClientID(client), arguments.map { Array($0.utf8) }), into: &output)
        }
        engine.flush(into: &output)
        return output
    }

    mutating func release(through step: UInt64) { _ = engine.handle(.released(throughStep: step)) }

    /// Time passes, ticking every 10 ms as the daemon does; `every` larger models a paused process.
    mutating func tick(_ milliseconds: UInt64, every: UInt64 = 10) {
        let end = now + milliseconds
        while now < end {
            now = min(end, now + every)
            _ = engine.handle(.tick(monotonicMilliseconds: now, wallMilliseconds: 1_700_000_000_000 + now))
        }
    }
}

func replies(_ effects: [Effect]) -> [RESPReply] {
    var parsed: [RESPReply] = []
    for case .reply(_, let bytes) in effects {
        var parser = RESPReplyParser()
        try? parser.append(bytes)
        while let reply = try? parser.next() { parsed.append(reply) }
    }
    return parsed
}

@Suite struct CommitWaitTests {
    @Test func readsOfKeysWithUnreleasedWritesWaitAndOthersLeaveAtOnce() throws {
        var h = try ReleasingHarness()
        let write = h.step([(1, ["INCR", "c"])])
        #expect(replies(write.effects) == [.integer(1)] && write.immediate.isEmpty, "a write's reply waits for its commit")
        // Not released yet: a read of c from another client would reveal the write.
        let reads = h.step([(2, ["GET", "c"]), (3, ["GET", "other"]), (3, ["PING"]), (3, ["INFO", "persistence"])])
        #expect(replies(reads.effects) == [.bulk("1")])
        #expect(replies(reads.immediate).count == 3 && replies(reads.immediate).first == .null)
        let dbsize = h.step([(3, ["DBSIZE"])])
        #expect(replies(dbsize.effects) == [.integer(1)], "a keyspace read waits while any key is dirty")
        h.release(through: write.step)
        let after = h.step([(1, ["GET", "c"]), (2, ["GET", "c"])])
        #expect(replies(after.immediate) == [.bulk("1")], "the write is released: client 1 reads at once")
        #expect(replies(after.effects) == [.bulk("1")], "client 2 still waits for its earlier held reply")
        h.release(through: after.step)
        let clean = h.step([(2, ["GET", "c"]), (3, ["DBSIZE"]), (3, ["CRDT.DIGEST"])])
        #expect(replies(clean.immediate).count == 3 && clean.effects.isEmpty)
    }

    @Test func aClientsRepliesStayInOrderAcrossBothPaths() throws {
        var h = try ReleasingHarness()
        let first = h.step([(1, ["SET", "k", "v"]), (1, ["PING"]), (2, ["PING"])])
        #expect(replies(first.effects) == [.simpleString("OK"), .simpleString("PONG")], "client 1's PING follows its SET")
        #expect(replies(first.immediate) == [.simpleString("PONG")], "client 2 has nothing waiting")
        let second = h.step([(1, ["PING"])])
        #expect(second.immediate.isEmpty, "client 1 still has replies waiting for the disk")
        h.release(through: second.step)
        #expect(replies(h.step([(1, ["GET", "k"])]).immediate) == [.bulk("v")])
    }

    @Test func aDegradedStoreRefusesWritesAndStillAnswersReads() throws {
        var h = try ReleasingHarness()
        let write = h.step([(1, ["INCR", "c"])])
        h.release(through: write.step)
        let fault = StorageFault(directory: "/var/lib/crdtd", cause: "database or disk is full", since: "2026-12-01T10:00:00Z")
        _ = h.engine.handle(.storage(.degraded(fault)))
        let refused = h.step([(1, ["INCR", "c"]), (2, ["SADD", "s", "a"]), (3, ["GET", "c"])])
        #expect(refused.records.filter { if case .delta = $0 { true } else { false } }.isEmpty, "nothing is applied")
        let answers = replies(refused.immediate)
        #expect(answers.count == 3)
        #expect(answers[0].errorText == "MISCONF crdtd cannot write to its data directory /var/lib/crdtd: database or disk is full "
            + "since 2026-12-01T10:00:00Z; writes are refused until space returns, reads still answer")
        #expect(answers[1].errorText.hasPrefix("MISCONF"))
        #expect(answers[2] == .bulk("1"), "reads answer, at once")
        // A key whose write waits for the stuck disk: its read is refused at once rather than held for ever.
        _ = h.engine.handle(.storage(.healthy))
        let stuck = h.step([(1, ["SET", "k", "v"])])
        _ = h.engine.handle(.storage(.degraded(fault)))
        let read = h.step([(2, ["GET", "k"]), (2, ["GET", "c"]), (1, ["GET", "k"])])
        #expect(replies(read.immediate).first?.errorText.hasSuffix("this read touches a key whose latest write is waiting for the disk") == true)
        #expect(replies(read.immediate).last == .bulk("1"))
        #expect(replies(read.effects) == [.bulk("v")], "the writer's own read keeps its place behind its write")
        h.release(through: read.step)
        #expect(stuck.step < read.step)
        _ = h.engine.handle(.storage(.healthy))
        #expect(replies(h.step([(1, ["INCR", "c"])]).effects) == [.integer(2)])
    }

    @Test func writesWaitingForAStalledDiskGetBusyPastTheBound() throws {
        var h = try ReleasingHarness { $0.maxWritesWaiting = 3 }
        for value in 1...3 { #expect(replies(h.step([(1, ["INCR", "c"])]).effects) == [.integer(Int64(value))]) }
        let busy = h.step([(2, ["INCR", "c"]), (3, ["PING"])])
        #expect(replies(busy.immediate).first?.errorText.hasPrefix("BUSY crdtd's disk is behind: 3 writes") == true)
        #expect(replies(busy.immediate).last == .simpleString("PONG"))
        h.release(through: busy.step)
        #expect(replies(h.step([(2, ["INCR", "c"])]).effects) == [.integer(4)], "writes are taken again once the disk caught up")

        // Bytes waiting bound what a stuck disk may hold in memory, peer frames included.
        var small = try ReleasingHarness { $0.maxBytesWaiting = 64 }
        #expect(replies(small.step([(1, ["SET", "k", String(repeating: "v", count: 100)])]).effects) == [.simpleString("OK")])
        #expect(replies(small.step([(2, ["SET", "j", "v"])]).immediate).first?.errorText.hasPrefix("BUSY") == true)

        // A disk that has not committed for a second refuses writes whatever their number.
        var slow = try ReleasingHarness()
        slow.tick(10)
        let stuck = slow.step([(1, ["INCR", "c"])])
        slow.tick(999)
        #expect(replies(slow.step([(2, ["INCR", "d"])]).effects) == [.integer(1)])
        slow.tick(1)
        let refused = replies(slow.step([(3, ["INCR", "e"])]).immediate)
        #expect(refused.first?.errorText.contains("the oldest for 1000 ms") == true)
        slow.release(through: stuck.step + 1)
        #expect(replies(slow.step([(3, ["INCR", "e"])]).effects) == [.integer(1)])

        // A process paused for 3 s (SIGSTOP) did not see its disk stall: the pause does not count.
        var paused = try ReleasingHarness()
        paused.tick(10)
        _ = paused.step([(1, ["INCR", "c"])])
        paused.tick(3000, every: 3000)
        #expect(replies(paused.step([(2, ["INCR", "d"])]).effects) == [.integer(1)])
    }

    @Test func aDegradedNodeTakesNoPeerDeltasAndCatchesUpAfterwards() throws {
        var sim = try Simulation(nodes: 2, seed: 7)
        sim.run(milliseconds: 2000)
        let fault = StorageFault(directory: "/d", cause: "database or disk is full", since: "now")
        sim.storage(1, .degraded(fault))
        for i in 0..<20 { sim.command(0, ["SADD", "s", "m\(i)"]) }
        sim.run(milliseconds: 3000)
        #expect(sim.command(1, ["SCARD", "s"]) == .integer(0), "a degraded node joins nothing it cannot persist")
        #expect(sim.nodes[1].durable.allSatisfy { if case .delta = $0 { false } else { true } })
        #expect(sim.command(1, ["PING"]) == .simpleString("PONG"))
        guard case .array(let members)? = sim.command(0, ["CRDT.PEERS"]), case .array(let fields)? = members.first else {
            Issue.record("no peers")
            return
        }
        #expect(fields.contains(.bulk("alive")), "membership probes still flow: the node is not declared dead")
        sim.storage(1, .healthy)
        let converged = sim.converge(timeout: 10_000)
        #expect(converged, "the peer kept its deltas and the node catches up")
        #expect(sim.command(1, ["SCARD", "s"]) == .integer(20))
    }
}

extension RESPReply {
    var errorText: String { if case .error(let text) = self { text } else { "" } }
}
