import CRDT
import RESP
import Testing
@testable import Engine

/// Replays what an engine persisted into a fresh engine, as the daemon does after a restart.
func recovery(from records: [DurableRecord]) -> EngineRecovery {
    var snapshots: [Bytes: Bytes] = [:]
    var deltas: [Bytes: [Bytes]] = [:]
    var meta: [String: Bytes] = [:]
    for record in records {
        switch record {
        case .delta(let key, let bytes): deltas[key, default: []].append(bytes)
        case .snapshot(let key, let bytes):
            snapshots[key] = bytes
            deltas[key] = []
        case .meta(let name, let value): meta[name] = value
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
