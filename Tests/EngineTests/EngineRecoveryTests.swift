import CRDT
import RESP
import Synchronization
import Testing
@testable import Engine

/// Replays what an engine persisted into a fresh engine, as the daemon does after a restart.
func recovery(from records: [DurableRecord]) -> EngineRecovery {
    var snapshots: [Bytes: Bytes] = [:]
    var deltas: [Bytes: [Bytes]] = [:]
    var meta: [String: Bytes] = [:]
    // Staged snapshots as the store keeps them: parts aside, and at the seal the deltas before the begin go.
    var pending: [Bytes: (deltasBefore: Int, bytes: Bytes)] = [:]
    for record in records {
        switch record {
        case .delta(let key, let bytes): deltas[key, default: []].append(bytes)
        case .snapshot(let key, let bytes):
            snapshots[key] = bytes
            deltas[key] = []
            pending[key] = nil
        case .snapshotBegin(let key): pending[key] = (deltas[key]?.count ?? 0, [])
        case .snapshotPart(let key, let bytes): pending[key]!.bytes += bytes
        case .snapshotSeal(let key):
            let stage = pending.removeValue(forKey: key)!
            snapshots[key] = stage.bytes
            deltas[key] = Array((deltas[key] ?? []).dropFirst(stage.deltasBefore))
        case .meta(let name, let value): meta[name] = value
        case .remove(let key):
            snapshots[key] = nil
            deltas[key] = nil
            pending[key] = nil
        }
    }
    let keys = Set(snapshots.keys).union(deltas.keys)
    return EngineRecovery(objects: keys.map { .init(key: $0, snapshot: snapshots[$0], deltas: deltas[$0] ?? []) }, meta: meta)
}

@Suite struct EngineRecoveryTests {
    @Test func restartRecoversStateAndClock() throws {
        var h = try Harness()
        var records: [DurableRecord] = []
        let commands: [[String]] = [
            ["INCRBY", "c", "7"], ["SET", "s", "hello"], ["SADD", "set", "a", "b"], ["SREM", "set", "a"],
            ["HSET", "h", "f", "v"], ["CRDT.BINCRBY", "b", "3"], ["DEL", "s"], ["SET", "s2", "x"],
        ]
        for command in commands {
            h.run(command.map { Array($0.utf8) })
            records += h.lastOutput.records
        }
        var restarted = try Harness(recovery: recovery(from: records))
        #expect(restarted.run("CRDT.DIGEST") == h.run("CRDT.DIGEST"))
        #expect(restarted.engine.clock.counter >= h.engine.clock.counter, "the clock resumes at or above where it was")
        #expect(restarted.run("GET", "c") == .bulk("7"))
        #expect(restarted.run("SMEMBERS", "set") == .array([.bulk("b")]))
        #expect(restarted.run("EXISTS", "s") == .integer(0))
        // A write after restart must win over writes before it: the clock resumed.
        restarted.run("SET", "s2", "after")
        #expect(restarted.run("GET", "s2") == .bulk("after"))
    }

    @Test func manyWritesToOneKeyAreCompactedIntoSnapshots() throws {
        var h = try Harness()
        var records: [DurableRecord] = []
        for i in 0..<3000 {
            h.run("SADD", "big", "member-\(i)")
            records += h.lastOutput.records
        }
        let snapshots = records.filter { if case .snapshot = $0 { true } else { false } }.count
        let deltas = records.filter { if case .delta = $0 { true } else { false } }
        #expect(snapshots >= 1)
        #expect(snapshots < 40, "snapshots are amortised: they double with the object, \(snapshots) taken")
        // Each appended record stays O(delta), far smaller than the object.
        let largestDelta = deltas.map { if case .delta(_, let b) = $0 { b.count } else { 0 } }.max() ?? 0
        #expect(largestDelta < 200)
        let restarted = try Harness(recovery: recovery(from: records))
        var copy = restarted
        #expect(copy.run("SCARD", "big") == .integer(3000))
    }

    /// A large object is snapshotted in parts: no step persists more than a part's worth (or twice its
    /// deltas) of snapshot bytes, no inline snapshot of it exceeds the threshold, and a restart from what
    /// was persisted, at any point, holds every write.
    @Test func largeObjectsAreSnapshottedInPartsAcrossSteps() throws {
        var configuration = EngineConfiguration(nodeID: "n1", replica: ReplicaID(1))
        configuration.stagedSnapshotBytes = 8 << 10
        configuration.snapshotPartBytes = 1 << 10
        var engine = try Engine(configuration: configuration)
        let client = ClientID(1)
        _ = engine.handle(.clientConnected(client, address: "test"))
        var records: [DurableRecord] = []
        var largestStepSnapshotBytes = 0, largestInline = 0, begins = 0, seals = 0
        var restartedMidStage = false
        for round in 0..<400 {
            let members = (0..<10).map { Array("member-\(round)-\($0)".utf8) }
            let output = engine.handle(.clientCommand(client, [Array("SADD".utf8), Array("big".utf8)] + members))
            var stepSnapshot = 0, stepDeltas = 0
            for record in output.records {
                switch record {
                case .snapshotPart(_, let bytes): stepSnapshot += bytes.count
                case .snapshot(_, let bytes): largestInline = max(largestInline, bytes.count)
                case .delta(_, let bytes): stepDeltas += bytes.count
                case .snapshotBegin: begins += 1
                case .snapshotSeal: seals += 1
                case .meta, .remove: break
                }
            }
            #expect(stepSnapshot <= max(1 << 10, 2 * stepDeltas), "round \(round): \(stepSnapshot) snapshot bytes")
            largestStepSnapshotBytes = max(largestStepSnapshotBytes, stepSnapshot)
            records += output.records
            // Restart from what is durable while a stage is half written: nothing is lost.
            if begins > seals, !restartedMidStage {
                restartedMidStage = true
                var restarted = try Harness(recovery: recovery(from: records))
                #expect(restarted.run("SCARD", "big") == .integer(Int64((round + 1) * 10)))
            }
        }
        #expect(begins >= 2 && seals >= 1 && restartedMidStage)
        #expect(largestInline < 16 << 10, "inline snapshots stay under twice the threshold: \(largestInline)")
        // Ticks finish the stage in progress without writes.
        for tick in 0..<200 { records += engine.handle(.tick(monotonicMilliseconds: UInt64(tick), wallMilliseconds: 1)).records }
        #expect(engine.keyspace.stagedSnapshotsInProgress == 0)
        var restarted = try Harness(recovery: recovery(from: records))
        #expect(restarted.run("SCARD", "big") == .integer(4000))
        let full = recovery(from: records).objects.first { $0.key == Array("big".utf8) }!
        #expect(full.snapshot.map { $0.count > 8 << 10 } == true, "the last snapshot is a staged one")
        #expect(full.deltas.count < 400, "deltas before the last begin were superseded")
    }

    /// With a background runner, a staged snapshot begins with a copy of the object and no serialisation in
    /// the step: no part is emitted until the worker has run, writes made meanwhile do not leak into the
    /// snapshot (the parts are exactly the object as of the begin), and what was persisted, restarted at
    /// any point, holds every write.
    @Test func stagedSnapshotsAreSerialisedOffTheEngineThread() throws {
        let worker = QueuedWork()
        var configuration = EngineConfiguration(nodeID: "n1", replica: ReplicaID(1))
        configuration.stagedSnapshotBytes = 8 << 10
        configuration.snapshotPartBytes = 1 << 10
        configuration.background = { worker.enqueue($0) }
        var engine = try Engine(configuration: configuration)
        let client = ClientID(1)
        _ = engine.handle(.clientConnected(client, address: "test"))
        let key = Array("big".utf8)
        var records: [DurableRecord] = []
        var begins = 0, seals = 0, checkedStages = 0
        var atBegin: Bytes?
        var parts: Bytes = []
        var waitedSteps = 0
        for round in 0..<400 {
            let members = (0..<10).map { Array("member-\(round)-\($0)".utf8) }
            let output = engine.handle(.clientCommand(client, [Array("SADD".utf8), key] + members))
            for record in output.records {
                switch record {
                case .snapshotBegin:
                    begins += 1
                    atBegin = engine.keyspace[key]!.serialized()
                    parts = []
                    #expect(worker.count == 1, "the serialisation is handed to the worker, not run in the step")
                case .snapshotPart(_, let bytes):
                    #expect(worker.count == 0, "round \(round): a part before the worker ran")
                    parts += bytes
                case .snapshotSeal:
                    seals += 1
                    #expect(parts == atBegin, "round \(round): the staged snapshot is the object as of its begin")
                    checkedStages += 1
                case .snapshot(_, let bytes): #expect(bytes.count < 8 << 10, "a large object is never snapshotted inline")
                case .delta, .meta, .remove: break
                }
            }
            records += output.records
            // The worker runs late: a few steps of writes first, which must neither block nor change the copy.
            if worker.count > 0 {
                waitedSteps += 1
                if waitedSteps == 3 {
                    var restarted = try Harness(recovery: recovery(from: records))
                    #expect(restarted.run("SCARD", "big") == .integer(Int64((round + 1) * 10)), "nothing lost mid-stage")
                    worker.runAll()
                    waitedSteps = 0
                }
            }
        }
        worker.runAll()
        for tick in 0..<400 { records += engine.handle(.tick(monotonicMilliseconds: UInt64(tick), wallMilliseconds: 1)).records }
        worker.runAll()
        for tick in 400..<800 { records += engine.handle(.tick(monotonicMilliseconds: UInt64(tick), wallMilliseconds: 1)).records }
        #expect(begins >= 2 && seals >= 1 && checkedStages == seals)
        #expect(engine.keyspace.stagedSnapshotsInProgress == 0)
        var restarted = try Harness(recovery: recovery(from: records))
        #expect(restarted.run("SCARD", "big") == .integer(4000))
        let full = recovery(from: records).objects.first { $0.key == key }!
        #expect(full.snapshot.map { $0.count > 8 << 10 } == true, "the last snapshot is a staged one")
        #expect(full.deltas.count < 400, "deltas before the last begin were superseded")
    }

    /// SMEMBERS, HGETALL and ZRANGE of a large key are built off the engine thread from a copy: the reply is the
    /// same as the engine's own, in byte order; writes after the read do not change it; a wrong type is
    /// still an error at once; small keys are answered by the engine as before.
    @Test func largeReadsAreDeferredAndAnswerTheSame() throws {
        var h = try Harness()
        let count = Engine.deferredReplyElements + 5
        let members = (0..<count).map { index -> String in
            let digits = String((index * 7919) % count)
            return "m" + String(repeating: "0", count: 6 - digits.count) + digits
        }
        for start in stride(from: 0, to: count, by: 1000) {
            h.run(["SADD", "s"].map { Array($0.utf8) } + members[start..<min(count, start + 1000)].map { Array($0.utf8) })
            h.run(["HSET", "h"].map { Array($0.utf8) } + members[start..<min(count, start + 1000)].flatMap { [Array($0.utf8), Array("v".utf8)] })
        }
        h.run("HINCRBY", "h", members[0], "0")
        h.run("HSET", "h", members[1], "5")
        h.run("HINCRBY", "h", members[1], "2")
        let output = h.engine.handle(.clientCommand(h.client, [Array("SMEMBERS".utf8), Array("s".utf8)]))
        guard case .deferredReply(_, let deferred)? = (output.immediate + output.effects).first else {
            Issue.record("expected a deferred reply, got \(output.immediate + output.effects)")
            return
        }
        h.run("SADD", "s", "written-after-the-read")
        var parser = RESPReplyParser()
        try parser.append(deferred.encode())
        let sorted = members.sorted().map { RESPReply.bulk($0) }
        #expect(try parser.next() == .array(sorted), "the copy taken at the read, in byte order")
        #expect(h.run("SCARD", "s") == .integer(Int64(count + 1)))
        // RESP2: the map comes as a flat array, field, value, field, value...
        guard case .array(let flat) = h.run("HGETALL", "h") else { Issue.record("HGETALL is not an array"); return }
        let fields = stride(from: 0, to: flat.count, by: 2).map { flat[$0] }
        #expect(fields == sorted)
        #expect(flat.firstIndex(of: .bulk(members[1])).map { flat[$0 + 1] } == .bulk("7"))
        #expect(flat.firstIndex(of: .bulk(members[0])).map { flat[$0 + 1] } == .bulk("v"))
        guard case .error(let message) = h.run("HGETALL", "s") else { Issue.record("HGETALL of a set is not an error"); return }
        #expect(message.hasPrefix("WRONGTYPE"))
        // ZRANGE of a large selection: the same order as the engine's own, ranks chosen at the read.
        for start in stride(from: 0, to: count, by: 1000) {
            h.run(["ZADD", "z"].map { Array($0.utf8) } + (start..<min(count, start + 1000)).flatMap { [Array(String(count - $0).utf8), Array(members[$0].utf8)] })
        }
        let byScore = (0..<count).reversed().map { RESPReply.bulk(members[$0]) }
        #expect(h.run("ZRANGE", "z", "0", "-1") == .array(byScore))
        guard case .array(let scored) = h.run("ZRANGE", "z", "0", "-1", "REV", "WITHSCORES") else { Issue.record("not an array"); return }
        #expect(scored.count == 2 * count && scored[0] == .bulk(members[0]) && scored[1] == .bulk(String(count)))
        let few = h.engine.handle(.clientCommand(h.client, ["ZRANGE", "z", "0", "9"].map { Array($0.utf8) }))
        #expect(!(few.immediate + few.effects).contains { if case .deferredReply = $0 { true } else { false } })
        h.run("SADD", "small", "b", "a")
        let small = h.engine.handle(.clientCommand(h.client, [Array("SMEMBERS".utf8), Array("small".utf8)]))
        #expect(small.immediate.allSatisfy { if case .reply = $0 { true } else { false } } && !small.immediate.isEmpty)
    }

    @Test func corruptStoredStateStopsRecoveryWithAClearError() {
        let bad = EngineRecovery(objects: [.init(key: Array("k".utf8), snapshot: [1, 0xFF, 0xFF], deltas: [])])
        #expect(throws: RecoveryError.self) { try Harness(recovery: bad) }
        let badClock = EngineRecovery(meta: ["lamport": [0xFF]])
        #expect(throws: RecoveryError.self) { try Harness(recovery: badClock) }
    }

    @Test func concurrentCreationWithTwoTypesConvergesToOneVisibleType() throws {
        var a = try Harness(node: "a", replica: 1)
        var b = try Harness(node: "b", replica: 2)
        a.run("SADD", "k", "x")
        b.run("INCR", "k")
        var joined = a.engine.keyspace[Array("k".utf8)]!
        joined.join(b.engine.keyspace[Array("k".utf8)]!)
        var reverse = b.engine.keyspace[Array("k".utf8)]!
        reverse.join(a.engine.keyspace[Array("k".utf8)]!)
        #expect(joined == reverse)
        #expect(joined.visibleType == .counter, "the counter slot comes first in the fixed order")
        #expect(joined.set.contains(Array("x".utf8)), "the shadowed set is kept, not lost")
    }
}

/// A background runner for tests: work waits until the test runs it, so the steps in between are seen.
final class QueuedWork: Sendable {
    private let queue = Mutex<[@Sendable () -> Void]>([])
    func enqueue(_ work: @escaping @Sendable () -> Void) { queue.withLock { $0.append(work) } }
    var count: Int { queue.withLock { $0.count } }
    func runAll() {
        for work in queue.withLock({ queue in defer { queue = [] }; return queue }) { work() }
    }
}
