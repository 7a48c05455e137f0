import CRDT
import RESP
import Testing
import Wire
@testable import Engine

/// Collection of deleted keys by causal stability, in the deterministic simulation: tombstones go once
/// every member applied the deletes, a partitioned member holds collection back, nothing collected comes
/// back (replayed frames, restarts), and a key recreated after its collection is numbered above the floor
/// so that a node still holding the old tombstone takes the new writes.
@Suite struct CollectionTests {
    func held(_ sim: inout Simulation, _ i: Int) -> Int { Int(sim.info(i, "keyspace")["keys_held"] ?? "") ?? -1 }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func deletedKeysAreCollectedOnceStableAndNeverComeBack(seed: UInt64) throws {
        var sim = try Simulation(nodes: 3, seed: seed)
        sim.lossRate = 0.05
        sim.duplicateRate = 0.05
        sim.run(milliseconds: 2_000)
        sim.recordsDeliveries = true
        for i in 0..<60 {
            sim.command(i % 3, ["SADD", "s\(i)", "a", "b"])
            sim.command(i % 3, ["INCRBY", "c\(i)", "3"])
            sim.command(i % 3, ["HSET", "h\(i)", "f", "v"])
        }
        sim.command(0, ["SET", "keep", "me"])
        let converged = sim.converge(timeout: 10_000)
        #expect(converged)
        // n3 is cut off while the deletes happen: nobody may collect, n3 still holds the keys.
        sim.isolate(2)
        for i in 0..<60 { sim.command(i % 2, ["DEL", "s\(i)", "c\(i)", "h\(i)"]) }
        sim.run(milliseconds: 5_000)
        for i in 0..<2 {
            #expect(sim.command(i, ["DBSIZE"]) == .integer(1))
            #expect(held(&sim, i) == 181, "node \(i): tombstones wait for n3")
            #expect(sim.info(i, "replication")["stability_holder"] == "n3")
        }
        #expect(sim.command(2, ["DBSIZE"]) == .integer(181))
        // Healed: n3 applies the deletes, reports, and every node collects every tombstone.
        for i in 0..<3 { sim.command(i, ["CRDT.HEAL"]) }
        let healed = sim.converge(timeout: 15_000)
        #expect(healed)
        sim.run(milliseconds: 8_000)
        for i in 0..<3 {
            #expect(sim.command(i, ["DBSIZE"]) == .integer(1))
            #expect(held(&sim, i) == 1, "node \(i): \(sim.info(i, "replication"))")
            #expect(sim.info(i, "replication")["tombstones_collected"] == "180")
        }
        // Every frame of the run delivered again, and every node restarted from its disk: nothing returns.
        sim.replayDelivered()
        for i in 0..<3 {
            sim.crash(i)
            try sim.restart(i)
        }
        sim.run(milliseconds: 3_000)
        for i in 0..<3 {
            #expect(sim.command(i, ["DBSIZE"]) == .integer(1))
            #expect(held(&sim, i) == 1, "node \(i) after replay and restart")
            #expect(sim.command(i, ["GET", "keep"]) == .bulk("me"))
        }
        let agreed = sim.converge(timeout: 5_000)
        #expect(agreed)
    }

    /// n3 hears n1 but not n2, so its frontier waits for n2's report and it keeps its tombstones, while
    /// n1 and n2 collect theirs. n1 then writes every type into the same keys again: numbered above its
    /// floor, the writes reach n3, which holds the old causal history, and show there.
    @Test(arguments: [UInt64(1), 2, 3])
    func aKeyRecreatedAfterCollectionIsTakenByANodeStillHoldingItsTombstone(seed: UInt64) throws {
        var sim = try Simulation(nodes: 3, seed: seed)
        sim.run(milliseconds: 2_000)
        let writes: [[String]] = [
            ["INCRBY", "c", "5"], ["SET", "s", "old"], ["SADD", "set", "m"], ["HSET", "h", "f", "old"],
            ["ZADD", "z", "1", "m"], ["RPUSH", "l", "old"], ["PFADD", "p", "x"], ["SET", "e", "v"], ["EXPIRE", "e", "100000"],
        ]
        for _ in 0..<3 { for write in writes { sim.command(0, write) } }
        let converged = sim.converge(timeout: 10_000)
        #expect(converged)
        sim.command(2, ["CRDT.PARTITION", "INBOUND", "n2"])
        sim.command(0, ["DEL", "c", "s", "set", "h", "z", "l", "p", "e"])
        sim.run(milliseconds: 6_000)
        #expect(held(&sim, 0) == 0, "n1 collected: \(sim.info(0, "replication"))")
        #expect(held(&sim, 1) == 0, "n2 collected")
        #expect(held(&sim, 2) == 8, "n3 keeps its tombstones: \(sim.info(2, "replication"))")
        #expect(sim.info(0, "replication")["collection_floor"] != "dots=0,counts=0")
        // Recreated on n1, after the collection.
        for write in [["INCRBY", "c", "2"], ["SET", "s", "new"], ["SADD", "set", "m"], ["HSET", "h", "f", "new"],
                      ["ZADD", "z", "2", "m"], ["RPUSH", "l", "new"], ["PFADD", "p", "y"], ["SET", "e", "w"],
                      ["EXPIRE", "e", "50000"]] {
            sim.command(0, write)
        }
        sim.run(milliseconds: 2_000)
        for i in [2, 1, 0] {
            #expect(sim.command(i, ["GET", "c"]) == .bulk("2"), "node \(i)")
            #expect(sim.command(i, ["GET", "s"]) == .bulk("new"), "node \(i)")
            #expect(sim.command(i, ["SISMEMBER", "set", "m"]) == .integer(1), "node \(i)")
            #expect(sim.command(i, ["HGET", "h", "f"]) == .bulk("new"), "node \(i)")
            #expect(sim.command(i, ["ZSCORE", "z", "m"]) == .bulk("2"), "node \(i)")
            #expect(sim.command(i, ["LRANGE", "l", "0", "-1"]) == .array([.bulk("new")]), "node \(i)")
            #expect(sim.command(i, ["PFCOUNT", "p"]) == .integer(1), "node \(i)")
            #expect(sim.command(i, ["TTL", "e"]).map { if case .integer(let t) = $0 { t > 0 && t <= 50_000 } else { false } } == true,
                    "node \(i)")
        }
        sim.command(2, ["CRDT.HEAL"])
        let agreed = sim.converge(timeout: 10_000)
        #expect(agreed)
        // A failed write after a claim (WRONGTYPE) loses nothing and leaves the nodes in agreement.
        sim.command(0, ["DEL", "c"])
        sim.run(milliseconds: 6_000)
        #expect(held(&sim, 0) == 7)
        sim.command(0, ["SET", "c", "text"])
        let refused = sim.command(0, ["SADD", "c", "m"])
        #expect(refused.map { if case .error = $0 { true } else { false } } == true)
        let agreedAfter = sim.converge(timeout: 10_000)
        #expect(agreedAfter)
        #expect(sim.command(2, ["GET", "c"]) == .bulk("text"))
    }

    /// A member gone for good holds collection back until it is forgotten; then the tombstones go.
    @Test func forgettingADeadMemberLetsCollectionMoveOn() throws {
        var sim = try Simulation(nodes: 3, seed: 9)
        sim.run(milliseconds: 2_000)
        for i in 0..<20 { sim.command(0, ["SADD", "s\(i)", "m"]) }
        let converged = sim.converge(timeout: 10_000)
        #expect(converged)
        sim.crash(2)
        for i in 0..<20 { sim.command(1, ["DEL", "s\(i)"]) }
        sim.run(milliseconds: 6_000)
        #expect(held(&sim, 0) == 20 && held(&sim, 1) == 20, "the dead n3 holds collection back")
        #expect(sim.info(0, "replication")["stability_holder"] == "n3")
        #expect(sim.command(0, ["CRDT.FORGET", "n3"]) == .simpleString("OK"))
        sim.run(milliseconds: 6_000)
        #expect(held(&sim, 0) == 0 && held(&sim, 1) == 0)
    }
}
