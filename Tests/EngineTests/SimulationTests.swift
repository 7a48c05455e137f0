import CRDT
import RESP
import Testing
@testable import Engine

/// What clients were told succeeded, so the converged state can be checked against it.
struct Acknowledged {
    var counterSums: [String: Int64] = [:]
    var setMembers: [String: Set<String>] = [:]
    var registerWrites: [String: Set<String>] = [:]

    mutating func record(_ arguments: [String], reply: RESPReply?) {
        guard let reply, !reply.isError else { return }
        switch arguments[0] {
        case "INCRBY": counterSums[arguments[1], default: 0] += Int64(arguments[2])!
        case "SADD" where arguments[1].hasPrefix("s"): setMembers[arguments[1], default: []].insert(arguments[2])
        case "SET": registerWrites[arguments[1], default: []].insert(arguments[2])
        default: break
        }
    }
}

/// A random client operation. Sets `s*` only grow (their members are unique), so each acknowledged add must
/// survive; `t*` sets mix adds and removes of few members to exercise concurrent add/remove.
func randomOperation(_ random: inout SplitMix64, step: Int, node: Int) -> [String] {
    switch random.next() % 8 {
    case 0, 1: return ["INCRBY", "c\(random.next() % 3)", String(Int64(random.next() % 21) - 10)]
    case 2, 3: return ["SADD", "s\(random.next() % 3)", "m-\(node)-\(step)"]
    case 4: return ["SADD", "t\(random.next() % 2)", "x\(random.next() % 4)"]
    case 5: return ["SREM", "t\(random.next() % 2)", "x\(random.next() % 4)"]
    case 6: return ["SET", "r\(random.next() % 2)", "v-\(node)-\(step)"]
    default: return ["HSET", "h", "f\(random.next() % 3)", "v-\(node)-\(step)"]
    }
}

@Suite struct SimulationTests {
    @Test func threeNodesConvergeOnALosslessNetwork() throws {
        var sim = try Simulation(nodes: 3, seed: 1)
        sim.run(milliseconds: 1000)  // membership forms through the seed
        sim.command(0, ["INCRBY", "c", "5"])
        sim.command(1, ["INCRBY", "c", "7"])
        sim.command(2, ["SADD", "s", "a"])
        sim.command(1, ["SET", "r", "x"])
        let converged = sim.converge(timeout: 5000)
        #expect(converged)
        for i in 0..<3 {
            let counter = sim.command(i, ["GET", "c"])
            let cardinality = sim.command(i, ["SCARD", "s"])
            let register = sim.command(i, ["GET", "r"])
            #expect(counter == .bulkString(Array("12".utf8)))
            #expect(cardinality == .integer(1))
            #expect(register == .bulkString(Array("x".utf8)))
        }
        guard case .array(let peers)? = sim.command(0, ["CRDT.PEERS"]) else {
            Issue.record("CRDT.PEERS must answer an array")
            return
        }
        #expect(peers.count == 2, "n1 knows both other nodes")
    }

    @Test func idleConvergedClusterSendsLittle() throws {
        var sim = try Simulation(nodes: 5, seed: 2)
        sim.run(milliseconds: 3000)
        sim.command(0, ["SADD", "s", "a"])
        let converged = sim.converge(timeout: 5000)
        #expect(converged)
        sim.run(milliseconds: 2000)
        let before = sim.bytesSent
        sim.run(milliseconds: 10_000)
        let perNodePerSecond = Double(sim.bytesSent - before) / 5 / 10
        #expect(perNodePerSecond < 1024, "an idle converged node sent \(perNodePerSecond) bytes/s")
    }

    /// Many seeds, each: a random partition shape, a lossy duplicating reordering network, writes on every
    /// side, a crash and restart, then heal; all replicas must converge with every acknowledged write.
    @Test(arguments: 0..<200)
    func partitionsCrashesAndLossConvergeWithEveryAcknowledgedWrite(seed: UInt64) throws {
        var random = SplitMix64(seed: seed &* 7919)
        let n = 3 + Int(random.next() % 3)
        var sim = try Simulation(nodes: n, seed: seed, encrypted: seed % 4 == 0)
        let shape = PartitionShape.allCases[Int(seed % UInt64(PartitionShape.allCases.count))]
        let victim = Int(random.next() % UInt64(n))
        var acknowledged = Acknowledged()
        sim.run(milliseconds: 1500)

        // Faults: partition, loss, duplication, reordering (random delays), one crash with restart.
        sim.cut = { a, b in shape.cuts(a, b, nodes: n, victim: victim) }
        sim.lossRate = 0.2
        sim.duplicateRate = 0.1
        sim.maxDelay = 30
        let crashing = Int(random.next() % UInt64(n))
        for step in 0..<300 {
            if step == 100 { sim.crash(crashing) }
            if step == 200 { try sim.restart(crashing) }
            let node = Int(random.next() % UInt64(n))
            let operation = randomOperation(&random, step: step, node: node)
            let reply = sim.command(node, operation)
            // Coordination-free: every live node accepts every write, on whichever side of the partition.
            #expect(node == crashing && (100..<200).contains(step) ? reply == nil : reply?.isError == false,
                    "seed \(seed): n\(node + 1) refused \(operation) during the partition: \(String(describing: reply))")
            acknowledged.record(operation, reply: reply)
            sim.run(milliseconds: 1 + random.next() % 10)
        }

        // Heal.
        sim.cut = nil
        sim.lossRate = 0
        sim.duplicateRate = 0
        sim.maxDelay = 5
        let converged = sim.converge(timeout: 30_000)
        let digests = converged ? [] : sim.digests()
        #expect(converged, "seed \(seed) (\(shape), \(n) nodes) did not converge: \(digests)")
        guard converged else { return }

        for i in 0..<n {
            for (key, sum) in acknowledged.counterSums {
                let value = sim.command(i, ["GET", key])
                #expect(value == .bulkString(Array(String(sum).utf8)),
                        "seed \(seed): counter \(key) on n\(i + 1) lost acknowledged increments")
            }
            for (key, members) in acknowledged.setMembers {
                for member in members {
                    let present = sim.command(i, ["SISMEMBER", key, member])
                    #expect(present == .integer(1),
                            "seed \(seed): n\(i + 1) lost acknowledged member \(member) of \(key)")
                }
            }
            for (key, values) in acknowledged.registerWrites {
                if case .bulkString(let value)? = sim.command(i, ["GET", key]) {
                    #expect(values.contains(String(decoding: value, as: UTF8.self)), "seed \(seed): register \(key) holds an unwritten value")
                } else {
                    Issue.record("seed \(seed): register \(key) lost on n\(i + 1)")
                }
            }
        }
    }
}
