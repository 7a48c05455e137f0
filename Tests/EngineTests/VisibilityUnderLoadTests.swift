import CRDT
import RESP
import Testing
@testable import Engine

/// Writes made while writes continue, after a partition heals, reach every node within a bound of
/// simulated time. They once took 5 to 9 s, or as long as the writes went on: a key written without pause
/// was never repaired, since it was always "in flux" in safety-net comparisons and deferred as large in
/// urgent ones, so the deltas an isolated node's peers skipped (its buffer let them go while they were
/// dead) waited for the writes to stop.
@Suite struct VisibilityUnderLoadTests {
    @Test(arguments: [0, 1, 5, 10] as [UInt64])
    func writesAfterAHealAreEverywhereWithinAboutASecondWhileWritesContinue(seed: UInt64) throws {
        var random = SplitMix64(seed: seed &* 31 + 5)
        let n = 5
        var sim = try Simulation(nodes: n, seed: seed)
        sim.run(milliseconds: 2000)
        let shape = PartitionShape.allCases[Int(seed % UInt64(PartitionShape.allCases.count))]
        let crashing = Int(random.next() % UInt64(n))
        var pending: [(key: String, member: String, at: UInt64)] = []
        var worst: UInt64 = 0
        func visibleEverywhere(_ key: String, _ member: String) -> Bool {
            (0..<n).allSatisfy { sim.nodes[$0].engine == nil || sim.command($0, ["SISMEMBER", key, member]) == .integer(1) }
        }
        for step in 0..<3000 {
            if step == 500 { sim.cut = { a, b in shape.cuts(a, b, nodes: n, victim: 1) }; sim.lossRate = 0.05 }
            if step == 1200 { sim.crash(crashing) }
            if step == 1400 { try sim.restart(crashing) }
            if step == 1500 { sim.cut = nil; sim.lossRate = 0 }
            let node = Int(random.next() % UInt64(n))
            if sim.nodes[node].engine != nil {
                // Three sets of unique members (large, hot keys) and counters, all written without pause.
                let key = "s\(random.next() % 3)", member = "m-\(step)", at = sim.now
                let reply = sim.command(node, ["SADD", key, member])
                _ = sim.command(node, ["INCRBY", "c\(random.next() % 3)", "1"])
                if step >= 1500, reply?.isError == false { pending.append((key, member, at)) }
            }
            sim.run(milliseconds: 5)
            if step % 20 == 0 {
                pending.removeAll { write in
                    guard visibleEverywhere(write.key, write.member) else { return false }
                    worst = max(worst, sim.now - write.at)
                    return true
                }
            }
        }
        let late = pending.filter { sim.now - $0.at > 2000 }
        #expect(late.isEmpty, "seed \(seed) (\(shape)): \(late.count) writes still missing somewhere after 2 s, such as \(late.first.map { "\($0.key) \($0.member)" } ?? "")")
        #expect(worst <= 2000, "seed \(seed) (\(shape)): a write took \(worst) ms to be everywhere")
    }
}
