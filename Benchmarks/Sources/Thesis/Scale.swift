import BenchSupport
import Foundation
import RESP
import RESPClient

struct ScaleResult {
    var size: Int
    var idleBytesPerNodePerSecond: Double
    var bytesPerWrite: Double
    var bytesPerWriteAboveIdle: Double
    var convergenceMilliseconds: [Double]
    var repairBytes: Double
}

/// 4. Scale: idle traffic, bytes on the wire per write, and convergence after a heal, by cluster size.
func measureScale(_ suite: Suite) throws -> Section {
    let sizes = suite.quick ? [3, 5, 9] : [3, 5, 9, 17, 33]
    let idleSeconds = suite.quick ? 5.0 : 10.0
    let writes = suite.quick ? 1000 : 2000, writeRate = 200.0
    let heals = suite.quick ? 3 : 5
    var results: [ScaleResult] = []
    for size in sizes {
        suite.log("scale: \(size) nodes")
        let cluster = try CrdtdCluster(suite.launcher, suite.binaries, size: size, durability: "normal", label: "scale-\(size)")
        defer { cluster.stop() }
        _ = try cluster.command(0, ["SADD", "warm", "x"])
        _ = cluster.waitForConvergence(timeout: 30)
        // The once-a-second metrics export must have caught up before each reading.
        sleep(seconds: 3)
        let idleStart = try cluster.bytesOut(), idleT0 = now()
        sleep(seconds: idleSeconds)
        let idleEnd = try cluster.bytesOut()
        let idlePerSecond = (idleEnd - idleStart) / (now() - idleT0)

        let c = try cluster.connection(0)
        let writeStart = try cluster.bytesOut(), writeT0 = now()
        for k in 0..<writes {
            wait(untilNanoseconds: UInt64((writeT0 + Double(k) / writeRate) * 1e9))
            _ = try c.send(["INCR", "scale"])
        }
        _ = cluster.waitForConvergence(timeout: 30)
        sleep(seconds: 1.5)
        let writeEnd = try cluster.bytesOut()
        let elapsed = now() - writeT0
        let perWrite = (writeEnd - writeStart) / Double(writes)
        let aboveIdle = (writeEnd - writeStart - idlePerSecond * elapsed) / Double(writes)

        var convergence: [Double] = []
        var repairBytes = 0.0
        for round in 0..<heals {
            let blocked = (0..<size).map { a in (0..<size).filter { b in (a < size / 2) != (b < size / 2) } }
            for (i, peers) in blocked.enumerated() { try cluster.cut(i, from: peers) }
            let left = try cluster.connection(0), right = try cluster.connection(size - 1)
            for i in 0..<200 {
                _ = try left.send(["SADD", "healset", "r\(round)-\(i)"])
                _ = try right.send(["INCRBY", "healcounter", "\(i)"])
            }
            sleep(seconds: 2)  // each side converges internally; the metrics export settles
            let before = try cluster.bytesOut()
            let t0 = now()
            try cluster.healAll()
            guard cluster.waitForConvergence(timeout: 60) != nil else {
                throw SuiteError("\(size) nodes did not converge within 60 s of a heal")
            }
            convergence.append((now() - t0) * 1000)
            sleep(seconds: 1.5)
            repairBytes += (try cluster.bytesOut()) - before
        }
        results.append(ScaleResult(size: size, idleBytesPerNodePerSecond: idlePerSecond / Double(size), bytesPerWrite: perWrite,
                                   bytesPerWriteAboveIdle: aboveIdle, convergenceMilliseconds: convergence,
                                   repairBytes: repairBytes / Double(heals)))
    }

    var text = """
        ### 4. Scale: idle traffic, bytes per write, convergence after a heal

        Clusters of \(sizes.map(String.init).joined(separator: ", ")) nodes on this machine (gossip every 200 ms,
        fanout 3, authenticated frames). **Idle**: `crdtd_peer_bytes_total{direction="out"}` summed over the
        nodes during \(Int(idleSeconds)) s of a converged cluster with no writes, per node and second.
        **Per write**: \(writes) `INCR`s on n1 at \(Int(writeRate))/s, until every node has them; the same
        counter's growth divided by the writes, and the same less the idle traffic of that time. The ideal
        the issue names is about (N − 1) × (the 15-byte encoded counter delta plus its share of the
        envelope). **Heal**: a majority split, 200 `SADD`s on one side and 200 `INCRBY`s on the other, 2 s,
        then `CRDT.HEAL` on every node; the time until every node reports the same `CRDT.DIGEST` (polled every
        20 ms; the time includes sending the heals one node after the other)\(heals > 1 ? ", median of \(heals)" : ""),
        and the bytes sent meanwhile.

        | nodes | idle bytes/node/s | bytes sent per write, all nodes | per write above idle | per write and peer (÷ (N − 1)) | convergence after heal | bytes sent during repair |
        |---:|---:|---:|---:|---:|---:|---:|

        """
    for r in results {
        let conv = medianOrZero(r.convergenceMilliseconds)
        text += "| \(r.size) | \(Int(r.idleBytesPerNodePerSecond.rounded())) | \(Int(r.bytesPerWrite.rounded())) | "
            + "\(Int(r.bytesPerWriteAboveIdle.rounded())) | \(Int((r.bytesPerWriteAboveIdle / Double(r.size - 1)).rounded())) | "
            + String(format: "%.0f ms", conv) + (r.convergenceMilliseconds.count > 1 ? " (" + r.convergenceMilliseconds.map { String(format: "%.0f", $0) }.joined(separator: ", ") + ")" : "")
            + " | \(Int(r.repairBytes.rounded())) |\n"
    }
    let image = "thesis-scale.svg"
    var chart = LineChart(title: "Convergence after a heal against cluster size", xLabel: "nodes (log scale)", yLabel: "ms until every digest agrees")
    chart.logX = true
    chart.xTicks = sizes.map { (Double($0), "\($0)") }
    chart.series.append(.init(name: "crdtd, measured", points: results.map { (Double($0.size), medianOrZero($0.convergenceMilliseconds)) }, dashed: false))
    if let first = results.first {
        // What "no faster than log N" allows, anchored at the smallest cluster.
        let base = medianOrZero(first.convergenceMilliseconds) / log2(Double(first.size))
        chart.series.append(.init(name: "∝ log N from the first point", points: sizes.map { (Double($0), base * log2(Double($0))) }, dashed: true))
    }
    try chart.write(to: suite.imageDirectory, name: image)
    var bytesChart = LineChart(title: "Bytes sent per write, summed over all nodes", xLabel: "nodes (log scale)", yLabel: "bytes per write (above idle)")
    bytesChart.logX = true
    bytesChart.xTicks = chart.xTicks
    bytesChart.series.append(.init(name: "crdtd, measured", points: results.map { (Double($0.size), $0.bytesPerWriteAboveIdle) }, dashed: false))
    if let first = results.first {
        let perPeer = first.bytesPerWriteAboveIdle / Double(first.size - 1)
        bytesChart.series.append(.init(name: "(N − 1) × the 3-node cost per peer", points: sizes.map { (Double($0), perPeer * Double($0 - 1)) }, dashed: true))
    }
    try bytesChart.write(to: suite.imageDirectory, name: "thesis-bytes-per-write.svg")
    text += "\n![convergence against cluster size](img/\(image)) ![bytes per write against cluster size](img/thesis-bytes-per-write.svg)\n"
    if let three = results.first {
        text += """

            **Bytes per write are far from the ideal** (issue: within 2x of (N − 1) × (the encoded delta plus its
            share of the envelope)): \(Int((three.bytesPerWriteAboveIdle / Double(three.size - 1)).rounded())) bytes per write and peer at \(three.size) nodes
            against a 15-byte counter delta. As the issue says, the rest is epidemic forwarding (a new delta
            goes to `fanout` peers and each forwards it once more) and per-frame acknowledgements at 200
            writes/s, one frame per write; avoiding back-propagation and redundant forwarding (Enes et al.,
            ICDE 2019) is engine work, not this suite's.

            """
    }
    if let five = results.first(where: { $0.size == 5 }), medianOrZero(five.convergenceMilliseconds) > 1000 {
        text += """
            **Where crdtd misses: convergence at 5 nodes (goal 1 s, here \(String(format: "%.0f", medianOrZero(five.convergenceMilliseconds))) ms, the heals
            \(five.convergenceMilliseconds.map { String(format: "%.0f", $0) }.joined(separator: ", ")) ms).** The spread between heals of one
            size is as large as the growth between sizes, so most of it is this machine's scheduling at the run's
            load; what is crdtd's: `CRDT.HEAL` reaches the nodes one after the other, a gossip round that fires
            in between is dropped by a node that still blocks its sender, and the next round is 200 ms later
            (see "Convergence after a heal" above, 0.87 s at 5 nodes at load 2 to 3). Repair that does not wait
            for the next round after a peer comes back (a sync on the membership change) would remove it.

            """
    }
    var section = Section(title: "scale", markdown: text)
    if let five = results.first(where: { $0.size == 5 }) { section.headlines["scale-converge-5"] = String(format: "%.0f", medianOrZero(five.convergenceMilliseconds)) }
    return section
}

func medianOrZero(_ values: [Double]) -> Double { values.isEmpty ? 0 : median(values) }
