import Foundation
import Histogram
import NodeControl
import RESP
import RESPClient
import Synchronization

/// One write a client was due to make: when (seconds from the start of the run), and what happened.
struct Attempt: Sendable {
    enum Outcome: Sendable { case acknowledged, failed(String), missed }
    var node: Int
    var due: Double
    var outcome: Outcome
    /// From the due time to the answer (acknowledged or failed), seconds.
    var latency: Double
}

/// Clients writing at a fixed rate each, on a schedule. A client that falls behind sends late (the
/// latency counts from the due time), but a write it could not even start within `missAfter` seconds of
/// its due time, because it was still waiting for an earlier one, is counted as missed: a system that
/// blocks its clients is not rewarded with fewer attempts.
func scheduledWrites(nodes: Int, clientsPerNode: Int, rate: Double, seconds: Double, start: Double,
                     missAfter: Double = 1, meanwhile: () -> Void,
                     makeOperation: @escaping @Sendable (_ node: Int, _ client: Int) -> Operation?) -> [Attempt] {
    let all = Mutex([Attempt]())
    let interval = 1 / rate
    onThreads(nodes * clientsPerNode, meanwhile: meanwhile) { t in
        let node = t % nodes, client = t / nodes
        var attempts: [Attempt] = []
        defer { all.withLock { $0 += attempts } }
        var operation = makeOperation(node, client)
        // Clients of a node are staggered within the interval.
        let offset = interval * Double(client) / Double(clientsPerNode)
        var k = 0
        while true {
            let due = start + offset + Double(k) * interval
            k += 1
            if due >= start + seconds { break }
            if now() > due + missAfter {
                attempts.append(Attempt(node: node, due: due - start, outcome: .missed, latency: 0))
                continue
            }
            wait(untilNanoseconds: UInt64(due * 1e9))
            do {
                guard let op = operation else { throw RequestFailure(description: "cannot connect") }
                _ = try op()
                attempts.append(Attempt(node: node, due: due - start, outcome: .acknowledged, latency: now() - due))
            } catch {
                attempts.append(Attempt(node: node, due: due - start, outcome: .failed(failureText(error)), latency: now() - due))
                operation = makeOperation(node, client)
            }
        }
    }
    return all.withLock { $0 }
}

/// Failure text without the numbers that make every message unique.
func failureText(_ error: any Error) -> String {
    if let failure = error as? RequestFailure { return failure.description }
    if let resp = error as? RESPClientError { return "\(resp.code): \(resp.message)" }
    return "\(error)"
}

struct PartitionScenario {
    var name: String
    var slug: String
    /// crdtd: for each node, the nodes it blocks; and the side each node is on.
    var crdtdCuts: [[Int]]
    var crdtdSides: [String]
}

/// 2. Availability while partitioned: every side of crdtd against etcd, clients writing on every node
/// throughout. With the suite's network lab both run in network namespaces and get the same nftables
/// cut; without it crdtd is cut by CRDT.PARTITION and etcd members are frozen (SIGSTOP).
func measurePartition(_ suite: Suite) throws -> Section {
    let lab = suite.partitionLab
    if let lab { try lab.setUp() }
    defer { lab?.tearDown() }
    let before = suite.quick ? 5.0 : 10.0, during = suite.quick ? 10.0 : 30.0, after = suite.quick ? 8.0 : 15.0
    let clientsPerNode = 2, rate = 25.0
    let scenarios = [
        PartitionScenario(name: "every node alone (1 | 1 | 1)", slug: "alone",
                          crdtdCuts: [[1, 2], [0, 2], [0, 1]], crdtdSides: ["alone", "alone", "alone"]),
        PartitionScenario(name: "2 against 1 (2 | 1)", slug: "split",
                          crdtdCuts: [[2], [2], [0, 1]], crdtdSides: ["majority (2 nodes)", "majority (2 nodes)", "minority (1 node)"]),
    ]
    var text = """
        ### 2. Availability during a partition

        Three nodes, \(clientsPerNode) clients per node, each due to write \(Int(rate)) times a second on a fixed
        schedule (\(Int(rate) * clientsPerNode * 3) writes/s in all); \(Int(before)) s connected, \(Int(during)) s partitioned,
        \(Int(after)) s after the heal. A client that falls behind sends late (latency counts from the due
        time), but a write it could not even start within 1 s of its due time, because it was still waiting
        for an earlier one, counts as failed ("missed"), so a system that blocks clients gets no credit for
        the writes they could not make. A write is available when it is acknowledged within 1 s of its due
        time; the shares are of the writes due while partitioned, less its last second (whose writes a
        client may still get answered after the heal, within their 1 s), and the latencies are of every
        write acknowledged (late ones included). crdtd: `INCR` on one counter. etcd: `/v3/kv/put` (its
        cheapest write). Client timeout 10 s for both.


        """
    if let lab {
        text += """
            **The same network cut for both.** Every crdtd node and every etcd member runs in a Linux network
            namespace of its own (`\(lab.prefix)-n1..3`, addresses \(lab.subnet).1-3 on a bridge; the clients
            write from \(lab.hostAddress)), and the partition is nftables rules in the namespaces that drop the
            packets between the sides (the same code as `crdtctl check --partitions netns`); neither system is
            told. etcd's members behind the cut stay alive and answer their clients with errors or not at all.


            """
    } else {
        text += """
            crdtd is cut with `CRDT.PARTITION` on every node and healed with `CRDT.HEAL`; etcd by freezing
            members with SIGSTOP and thawing them with SIGCONT: a frozen member is, to the others, exactly a
            member behind a cut (its connections stay open and nothing answers); its own clients get no answer
            at all, where a live member behind a real cut would answer with etcd's timeout error after 7 s: 0 %
            either way. (This run could not use network namespaces; `--partition-via netns` does, as root.)


            """
    }
    var section = Section(title: "partition", markdown: "")
    for scenario in scenarios {
        suite.log("partition \(scenario.slug): crdtd")
        let crdtd = try CrdtdCluster(suite.launcher, suite.binaries, size: 3, durability: "normal", label: "part-\(scenario.slug)",
                                     netns: lab)
        defer { crdtd.stop() }
        let ports = crdtd.nodes.map(\.clientPort), hosts = crdtd.nodes.map(\.host)
        let key = "avail-\(scenario.slug)"
        let start = now() + 0.5
        var cutProblems: [String] = []
        let crdtdAttempts = scheduledWrites(nodes: 3, clientsPerNode: clientsPerNode, rate: rate, seconds: before + during + after, start: start,
                                            meanwhile: {
            wait(untilNanoseconds: UInt64((start + before) * 1e9))
            do { try crdtd.partition(scenario.crdtdCuts) } catch { cutProblems.append("\(error)") }
            wait(untilNanoseconds: UInt64((start + before + during) * 1e9))
            do { try crdtd.healAll() } catch { cutProblems.append("\(error)") }
        }) { node, _ in
            try? crdtdOperation(host: hosts[node], port: ports[node], ["INCR", key])
        }
        guard cutProblems.isEmpty else { throw SuiteError("crdtd partition: \(cutProblems.joined(separator: "; "))") }
        let acknowledged = crdtdAttempts.filter { if case .acknowledged = $0.outcome { return true } else { return false } }.count
        let check = counterCheck(crdtd, key: key, expected: acknowledged)
        crdtd.stop()

        suite.log("partition \(scenario.slug): etcd")
        let etcd = try EtcdCluster(suite.launcher, suite.binaries, label: "part-\(scenario.slug)", netns: lab)
        defer { etcd.stop() }
        let leader = try etcd.leader()
        var frozen: [Int] = []
        var etcdCuts: [[Int]] = []
        var etcdSides: [String]
        if lab != nil {
            // The same shapes in the network: everyone alone, or the leader alone against the other two.
            if scenario.slug == "alone" {
                etcdCuts = scenario.crdtdCuts
                etcdSides = (0..<3).map { $0 == leader ? "alone (the leader)" : "alone (a follower)" }
            } else {
                etcdCuts = (0..<3).map { i in i == leader ? [0, 1, 2].filter { $0 != leader } : [leader] }
                etcdSides = (0..<3).map { $0 == leader ? "minority (1 member: the leader)" : "majority (2 members)" }
            }
        } else if scenario.slug == "alone" {
            let follower = (leader + 1) % 3
            frozen = [0, 1, 2].filter { $0 != follower }
            etcdSides = (0..<3).map { $0 == follower ? "lone live member (no quorum)" : "frozen members" }
        } else {
            frozen = [leader]
            etcdSides = (0..<3).map { $0 == leader ? "minority (1 member: the leader, frozen)" : "majority (2 members)" }
        }
        let etcdPorts = etcd.members.map(\.clientPort), etcdHosts = etcd.members.map(\.host)
        let etcdStart = now() + 0.5
        let etcdAttempts = scheduledWrites(nodes: 3, clientsPerNode: clientsPerNode, rate: rate, seconds: before + during + after, start: etcdStart,
                                           meanwhile: {
            wait(untilNanoseconds: UInt64((etcdStart + before) * 1e9))
            if let lab {
                do { try lab.setCuts(etcdCuts) } catch { cutProblems.append("\(error)") }
            }
            for i in frozen { etcd.members[i].server.freeze() }
            wait(untilNanoseconds: UInt64((etcdStart + before + during) * 1e9))
            if let lab {
                do { try lab.heal() } catch { cutProblems.append("\(error)") }
            }
            for i in frozen { etcd.members[i].server.thaw() }
        }) { node, client in
            let c = EtcdClient(host: etcdHosts[node], port: etcdPorts[node], timeout: 10)
            var n = 0
            return { n += 1; try c.put("avail-\(node)-\(client)", "\(n)"); return 0 }
        }
        etcd.stop()
        guard cutProblems.isEmpty else { throw SuiteError("etcd partition: \(cutProblems.joined(separator: "; "))") }

        text += "#### \(scenario.name)\n\n"
        text += "| system | side | writes due while partitioned | acknowledged within 1 s | share | p50 ms | p99 ms | what failing clients saw |\n"
        text += "|---|---|---:|---:|---:|---:|---:|---|\n"
        for (system, attempts, sides) in [("crdtd", crdtdAttempts, scenario.crdtdSides), ("etcd", etcdAttempts, etcdSides)] {
            for side in orderedUnique(sides) {
                let window = attempts.filter { sides[$0.node] == side && $0.due >= before && $0.due < before + during - availableWithin }
                let summary = summarize(window)
                text += "| \(system) | \(side) | \(window.count) | \(summary.acknowledged) | "
                    + String(format: "%.1f %%", summary.share * 100) + " | "
                    + (summary.anyAcknowledged ? String(format: "%.2f | %.2f", summary.p50 * 1000, summary.p99 * 1000) : "- | -")
                    + " | \(summary.failures.isEmpty ? "-" : summary.failures) |\n"
                if system == "crdtd" { section.headlines["partition-crdtd-min-share"] = minShare(section.headlines["partition-crdtd-min-share"], summary.share) }
                if system == "etcd" && (side.hasPrefix("lone") || side.hasPrefix("minority") || side.hasPrefix("alone")) {
                    // Of several sides without a quorum, the best one's share (the claim is about the best).
                    let key = "partition-etcd-\(scenario.slug)-minority-share"
                    let best = max(summary.share * 100, section.headlines[key].flatMap(Double.init) ?? 0)
                    section.headlines[key] = String(format: "%.1f", best)
                }
            }
        }
        text += "\ncrdtd's counter after the heal: \(check).\n\n"
        if scenario.slug == "split" {
            text += """
                etcd's majority keeps a quorum but loses its leader: until the two elect a new one (an election
                timeout, 1 s by default, and more on a loaded machine) and until the writes in flight at the cut
                time out (7 s), its clients wait; the share above counts those seconds. The longer the partition,
                the closer the majority gets to 100 %; the minority stays at 0 until the heal.


                """
        }
        let image = "thesis-availability-\(scenario.slug).svg"
        try availabilityChart(title: "Writes acknowledged while partitioned: \(scenario.name)", before: before, during: during,
                              total: before + during + after,
                              series: [("crdtd", crdtdAttempts, scenario.crdtdSides), ("etcd", etcdAttempts, etcdSides)])
            .write(to: suite.imageDirectory, name: image)
        text += "![availability over time, \(scenario.name)](img/\(image))\n\n"
    }
    section.markdown = text
    return section
}

func orderedUnique(_ values: [String]) -> [String] {
    var seen = Set<String>()
    return values.filter { seen.insert($0).inserted }
}

func minShare(_ old: String?, _ share: Double) -> String {
    let value = share * 100
    if let old, let previous = Double(old), previous <= value { return old }
    return String(format: "%.1f", value)
}

/// A write counts as available when acknowledged within this many seconds of its due time.
let availableWithin = 1.0

struct AttemptSummary {
    /// Acknowledged within `availableWithin` of the due time.
    var acknowledged: Int
    var share: Double
    var p50: Double
    var p99: Double
    var failures: String
    var anyAcknowledged: Bool
}

func summarize(_ attempts: [Attempt]) -> AttemptSummary {
    var latencies: [Double] = []
    var failed: [String: (count: Int, seconds: Double)] = [:]
    var missed = 0, late = 0
    for attempt in attempts {
        switch attempt.outcome {
        case .acknowledged:
            latencies.append(attempt.latency)
            if attempt.latency > availableWithin { late += 1 }
        case .failed(let what):
            failed[what, default: (0, 0)].count += 1
            failed[what, default: (0, 0)].seconds += attempt.latency
        case .missed: missed += 1
        }
    }
    latencies.sort()
    func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
    var parts = failed.sorted { $0.value.count > $1.value.count }.map { what, v in
        String(format: "%d × \"%@\" after %.1f s on average", v.count, what, v.seconds / Double(v.count))
    }
    if late > 0 { parts.append("\(late) acknowledged, but more than 1 s after they were due") }
    if missed > 0 { parts.append("\(missed) missed (not started within 1 s: the client was still waiting for an earlier write)") }
    let timely = latencies.count - late
    return AttemptSummary(acknowledged: timely, share: attempts.isEmpty ? 0 : Double(timely) / Double(attempts.count),
                          p50: percentile(0.5), p99: percentile(0.99), failures: parts.joined(separator: "; "),
                          anyAcknowledged: !latencies.isEmpty)
}

/// Per second of due time, the share of the due writes each side had acknowledged.
func availabilityChart(title: String, before: Double, during: Double, total: Double,
                       series: [(String, [Attempt], [String])]) -> LineChart {
    var chart = LineChart(title: title, xLabel: "seconds since the start, by due time (partition shaded)", yLabel: "% of due writes acknowledged within 1 s")
    chart.shade = (before, before + during)
    chart.yRange = (0, 105)
    chart.xRange = (0, total)
    for (system, attempts, sides) in series {
        for side in orderedUnique(sides) {
            var due = [Int](repeating: 0, count: Int(total.rounded(.up)))
            var ok = due
            for attempt in attempts where sides[attempt.node] == side {
                let second = min(due.count - 1, Int(attempt.due))
                due[second] += 1
                if case .acknowledged = attempt.outcome, attempt.latency <= availableWithin { ok[second] += 1 }
            }
            let points = due.indices.filter { due[$0] > 0 }.map { (Double($0) + 0.5, 100 * Double(ok[$0]) / Double(due[$0])) }
            chart.series.append(.init(name: "\(system): \(side)", points: points, dashed: system == "etcd"))
        }
    }
    return chart
}
