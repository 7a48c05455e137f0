import Foundation
import RESP
import RESPClient

/// 1. Counter increments per second on three nodes: crdtd INCR (durability full and normal) against
/// etcd's read + compare-and-swap, and etcd's plain puts, with 1, 8 and 32 clients spread over the nodes.
func measureIncrements(_ suite: Suite) throws -> Section {
    let clientCounts = [1, 8, 32]
    let warmup = suite.quick ? 1.0 : 2.0, seconds = suite.quick ? 5.0 : 20.0
    suite.log("increments: starting etcd (3 members) and two 3-node crdtd clusters (full, normal)")
    let etcd = try EtcdCluster(suite.launcher, suite.binaries, label: "increments")
    defer { etcd.stop() }
    let full = try CrdtdCluster(suite.launcher, suite.binaries, size: 3, durability: "full", label: "incr-full")
    defer { full.stop() }
    let normal = try CrdtdCluster(suite.launcher, suite.binaries, size: 3, durability: "normal", label: "incr-normal")
    defer { normal.stop() }
    let etcdPorts = etcd.members.map(\.clientPort)

    struct Row { var system: String; var clients: Int; var stats: LoadStats; var check: String }
    var rows: [Row] = []
    // Cells interleaved by client count, so that drift on this shared machine hits every system alike.
    for clients in clientCounts {
        let casKey = "cas-\(clients)"
        suite.log("increments: etcd read + CAS, \(clients) clients")
        let cas = closedLoop(clients: clients, warmup: warmup, seconds: seconds) { i in
            let client = EtcdClient(port: etcdPorts[i % etcdPorts.count])
            return { try client.compareAndSwapIncrement(casKey) }
        }
        let stored = (try? EtcdClient(port: etcdPorts[0]).read(casKey).value) ?? -1
        rows.append(Row(system: "etcd read + CAS", clients: clients, stats: cas,
                        check: stored == cas.acknowledged ? "value = \(stored) = acknowledged" : "**value \(stored) ≠ \(cas.acknowledged) acknowledged**"))

        suite.log("increments: etcd put, \(clients) clients")
        let put = closedLoop(clients: clients, warmup: warmup, seconds: seconds) { i in
            let client = EtcdClient(port: etcdPorts[i % etcdPorts.count])
            return { try client.put("put-\(clients)-\(i)", "x"); return 0 }
        }
        rows.append(Row(system: "etcd put (no read, no compare)", clients: clients, stats: put, check: "-"))

        for (label, cluster) in [("crdtd INCR, --durability full", full), ("crdtd INCR, --durability normal", normal)] {
            suite.log("increments: \(label), \(clients) clients")
            let key = "incr-\(clients)"
            let ports = cluster.nodes.map(\.clientPort)
            let stats = closedLoop(clients: clients, warmup: warmup, seconds: seconds) { i in
                try crdtdOperation(port: ports[i % ports.count], ["INCR", key])
            }
            rows.append(Row(system: label, clients: clients, stats: stats, check: counterCheck(cluster, key: key, expected: stats.acknowledged)))
        }
    }

    func rate(_ row: Row) -> Double { Double(row.stats.measured) / seconds }
    func find(_ system: String, _ clients: Int) -> Row? { rows.first { $0.system.hasPrefix(system) && $0.clients == clients } }

    var text = """
        ### 1. Counter increments per second, three nodes

        Every client increments **one shared counter** through the node it is given (client *i* uses node
        *i* mod 3), back to back, for \(Int(seconds)) s after a \(Int(warmup)) s warm-up. crdtd: `INCR`.
        etcd: the consensus way to keep a counter, a linearizable read (`/v3/kv/range`) then a transaction
        (`/v3/kv/txn`) that writes value + 1 only if the key's `mod_revision` is still the one read; on a
        conflict the transaction's failure branch returns the current value and revision and the client
        tries again without a second read. etcd fsyncs every commit, so `--durability full` (fsync per group
        commit) is like with like; `normal` is crdtd's default. The check column compares the counter's final
        value (on every crdtd node, after they converge) with the increments the clients saw acknowledged.

        | system | clients | increments/s | ratio to etcd CAS | p50 ms | p99 ms | retries per increment | failed | check |
        |---|---:|---:|---:|---:|---:|---:|---:|---|

        """
    for row in rows {
        let base = find("etcd read + CAS", row.clients).map(rate) ?? 0
        let ratio = base > 0 ? String(format: "%.1fx", rate(row) / base) : "n/a"
        let retries = row.system.hasPrefix("etcd read") && row.stats.measured > 0
            ? String(format: "%.2f", Double(row.stats.retries) / Double(row.stats.measured)) : "-"
        text += "| \(row.system) | \(row.clients) | \(Int(rate(row).rounded())) | \(ratio) | "
            + String(format: "%.2f | %.2f", row.stats.percentileMilliseconds(50), row.stats.percentileMilliseconds(99))
            + " | \(retries) | \(row.stats.failureCount) | \(row.check) |\n"
    }
    let oneClient = find("crdtd INCR, --durability full", 1).map(rate) ?? 0
    let oneClientNormal = find("crdtd INCR, --durability normal", 1).map(rate) ?? 0
    let casOne = find("etcd read + CAS", 1).map(rate) ?? 0
    let casMany = find("etcd read + CAS", 32)
    if casOne > 0 && oneClient / casOne < 10 {
        text += """

            **Where crdtd loses: one client (goal 10x, here \(String(format: "%.1f", oneClient / casOne))x).** A single client
            is bound by latency, not throughput. crdtd acknowledges an `INCR` only after its group commit
            (`full`: a WAL fsync, which costs 0.3 to 4 ms on this shared virtual disk, see section 6) and after
            the command and its reply have crossed three threads (event loop → engine → SQLite writer → event
            loop, docs/architecture.md), each hand-off a wake-up that costs tens to hundreds of µs on an
            oversubscribed 2-core machine. etcd's increment is a read plus one Raft commit whose leader and
            follower fsync in parallel: about two round trips more than crdtd's one fsync. With an fsync behind
            every acknowledgement on both sides, the ratio at one client is bounded to a few times whatever
            crdtd does; the issue's 65x for Redis is without any fsync. Without the fsync (`normal`) crdtd does
            \(String(format: "%.1f", casOne > 0 ? oneClientNormal / casOne : 0))x here. What would close more of the gap: fewer wake-ups per
            command (the loop running a lone client's command to the engine and the commit back without
            parking in between, e.g. spinning briefly before parking), which is engine and daemon work.

            """
    }
    if let casMany, casMany.stats.measured > 0 {
        text += """
            **Under contention etcd's compare-and-swap collapses** (32 clients: \(String(format: "%.1f", Double(casMany.stats.retries) / Double(casMany.stats.measured)))
            retries per increment, p99 \(String(format: "%.0f", casMany.stats.percentileMilliseconds(99))) ms), while crdtd's increments never conflict:
            every node adds to its own entry of the counter. Where crdtd stays below the 200x and 500x goals at 8
            and 32 clients, it is crdtd's own throughput on two cores shared by three nodes, 32 client threads and
            other engineers' builds (redis-compare's profile: the engine thread is the busiest per write).

            """
    }
    var section = Section(title: "increments", markdown: text)
    for clients in clientCounts {
        if let c = find("crdtd INCR, --durability full", clients), let e = find("etcd read + CAS", clients), rate(e) > 0 {
            section.headlines["increments-full-\(clients)"] = String(format: "%.0f", rate(c) / rate(e))
        }
        if let c = find("crdtd INCR, --durability normal", clients), let e = find("etcd read + CAS", clients), rate(e) > 0 {
            section.headlines["increments-normal-\(clients)"] = String(format: "%.0f", rate(c) / rate(e))
        }
    }
    return section
}

/// After the run: every node converges and holds exactly the acknowledged increments.
func counterCheck(_ cluster: CrdtdCluster, key: String, expected: Int) -> String {
    guard cluster.waitForConvergence(timeout: 30) != nil else { return "**not converged within 30 s**" }
    let values = cluster.nodes.indices.map { i -> Int in
        guard case .bulkString(let b)? = try? cluster.command(i, ["GET", key]) else { return -1 }
        return Int(String(decoding: b, as: UTF8.self)) ?? -1
    }
    if values.allSatisfy({ $0 == expected }) { return "value = \(expected) = acknowledged, on every node" }
    return "**values \(values) ≠ \(expected) acknowledged**"
}
