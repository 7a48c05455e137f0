import BenchSupport
import Foundation
import Glibc
import Histogram
import RESP
import RESPClient
import Synchronization

/// The percentiles of the latency tables, and the samples each needs: p is shown only with at least
/// 1 / (1 - p) samples, so that at least one sample lies at or beyond it.
let latencyPercentiles: [(label: String, value: Double)] = [
    ("p50", 50), ("p99", 99), ("p99.9", 99.9), ("p99.99", 99.99), ("p99.999", 99.999), ("p99.9999", 99.9999),
]

func samplesNeeded(_ percentile: Double) -> Int { Int((1 / (1 - percentile / 100)).rounded()) }

struct VisibilityResult {
    var size: Int
    var rate: Int
    var histogram: Histogram<UInt64>  // microseconds
    var sent: Int
    var seen: Int
    var writerMaxLagMilliseconds: Double
}

/// 3. Latency from a write on n1 to its visibility on n2: a writer sends `SET` at a fixed rate
/// (pipelined, so that the rate does not depend on the round trip) with the write's sequence number in
/// the first 16 bytes of the value; a reader on n2 reads the key in a tight loop. Write k is visible
/// when n2 first returns a sequence number >= k; its latency runs from the time write k was due (not
/// when it was sent, so a writer that falls behind adds its lag instead of hiding it).
func measureVisibility(_ suite: Suite) throws -> Section {
    let runs: [(rate: Int, seconds: Double)] = suite.quick ? [(1000, 10)] : [(1000, 60), (10_000, 100)]
    let sizes = [16, 256, 1024, 5120]
    suite.log("visibility: starting a 3-node crdtd cluster")
    let cluster = try CrdtdCluster(suite.launcher, suite.binaries, size: 3, durability: "normal", label: "visibility")
    defer { cluster.stop() }
    var results: [VisibilityResult] = []
    for run in runs {
        for size in sizes {
            suite.log("visibility: \(size) B values at \(run.rate) writes/s for \(Int(run.seconds)) s")
            results.append(try visibilityRun(cluster, size: size, rate: run.rate, seconds: run.seconds))
        }
    }

    var text = """
        ### 3. Write-to-visibility latency, node to node

        A 3-node cluster; a writer on n1 sends `SET vis VALUE` on a fixed schedule (pipelined: the rate does
        not wait for replies), the value's first 16 bytes holding the write's sequence number; a reader on
        n2 sends `GET vis` in a tight loop. Write *k* is visible when n2 first returns a number ≥ *k*, and its
        latency runs from when write *k* was **due** (so a writer that falls behind adds its lag rather than
        hiding it). Both clients are threads of one process reading `CLOCK_MONOTONIC`. Recorded in an HDR
        histogram (3 significant digits). A percentile is shown only when the cell has at least
        1 / (1 − p) samples (p99.9 needs 1,000, p99.9999 needs 1,000,000); the samples column is the count
        behind every cell of its row. The reader's own round trip (one `GET`, more for 5 KB values) is part
        of every figure.

        | value | writes/s | samples | p50 | p99 | p99.9 | p99.99 | p99.999 | p99.9999 | max | writer's worst lag |
        |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|

        """
    for r in results {
        var cells: [String] = []
        for (_, p) in latencyPercentiles {
            cells.append(Int(r.histogram.totalCount) >= samplesNeeded(p)
                ? milliseconds(r.histogram.valueAtPercentile(p)) : "— (< \(grouped(samplesNeeded(p))))")
        }
        let lost = r.seen < r.sent ? " (\(r.sent - r.seen) never seen)" : ""
        text += "| \(r.size) B | \(grouped(r.rate)) | \(grouped(Int(r.histogram.totalCount)))\(lost) | " + cells.joined(separator: " | ")
            + " | \(milliseconds(r.histogram.max)) | " + String(format: "%.1f ms", r.writerMaxLagMilliseconds) + " |\n"
    }
    let image = "thesis-visibility-percentiles.svg"
    var chart = LineChart(title: "Write on n1 to visibility on n2 (3 nodes)", xLabel: "percentile", yLabel: "latency, ms (log scale)")
    chart.logY = true
    chart.xTicks = [(0.301, "50%"), (1, "90%"), (2, "99%"), (3, "99.9%"), (4, "99.99%"), (5, "99.999%"), (6, "99.9999%")]
    for r in results {
        var points: [(Double, Double)] = []
        for p in [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9995, 99.9999] where Int(r.histogram.totalCount) >= samplesNeeded(p) {
            points.append((-log10(1 - p / 100), max(0.001, Double(r.histogram.valueAtPercentile(p)) / 1000)))
        }
        chart.series.append(.init(name: "\(r.size) B at \(grouped(r.rate))/s", points: points, dashed: r.rate > 1000))
    }
    chart.xRange = (0.2, (chart.series.flatMap(\.points).map(\.0).max() ?? 4) + 0.2)
    try chart.write(to: suite.imageDirectory, name: image)
    text += "\n![visibility latency by percentile](img/\(image))\n"
    text += """

        No peer is measured here (etcd's equivalent would be a put on one member read on another): the table
        is crdtd alone, and its tail is this machine's. Every node, the writer and the reader share two
        cores with other engineers' builds: a thread that is runnable but not running waits for a time
        slice, which is what p99 and beyond show (`crdtctl bench`, at load average 2 to 3, measured p99 4.2 ms
        for 3 nodes; compare this run's load average above). Every reply, a `GET`'s too, waits for the
        writer's next commit (docs/architecture.md), so the reader's round trip is part of every figure.

        """
    var section = Section(title: "visibility", markdown: text)
    if let first = results.first(where: { $0.size == 16 }) {
        section.headlines["visibility-p99"] = milliseconds(first.histogram.valueAtPercentile(99))
        section.headlines["visibility-p50"] = milliseconds(first.histogram.valueAtPercentile(50))
    }
    return section
}

func milliseconds(_ microseconds: UInt64) -> String { String(format: "%.2f ms", Double(microseconds) / 1000) }

func grouped(_ n: Int) -> String {
    let digits = String(n)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return out
}

private func visibilityRun(_ cluster: CrdtdCluster, size: Int, rate: Int, seconds: Double) throws -> VisibilityResult {
    let total = Int(Double(rate) * seconds)
    let interval = 1e9 / Double(rate)
    let key = "vis-\(size)-\(rate)"
    let writerPort = cluster.nodes[0].clientPort, readerPort = cluster.nodes[1].clientPort
    // The writer's socket, shared with the thread that drains its replies.
    let fd = try rawConnect(port: writerPort)
    defer { close(fd) }
    let start = monotonicNanoseconds() + 200_000_000
    let result = Mutex(Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three))
    let seenCount = Atomic<Int>(0)
    let writerLag = Atomic<UInt64>(0)
    let writerDone = Atomic<Bool>(false)
    onThreads(3) { role in
        switch role {
        case 0:  // writer
            let filler = [UInt8](repeating: UInt8(ascii: "x"), count: size - 16)
            var wire: [UInt8] = []
            for k in 1...total {
                let due = start + UInt64(Double(k) * interval)
                wait(untilNanoseconds: due)
                let lag = monotonicNanoseconds() - due
                if lag > writerLag.load(ordering: .relaxed) { writerLag.store(lag, ordering: .relaxed) }
                wire.removeAll(keepingCapacity: true)
                let sequence = Array(String(format: "%016d", k).utf8)
                RESPRequestEncoder.encode([Array("SET".utf8), Array(key.utf8), sequence + filler], into: &wire)
                if !writeAll(fd, wire) { break }
            }
            writerDone.store(true, ordering: .releasing)
        case 1:  // drains the writer's replies (+OK\r\n each), so the server never blocks on them
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            var replies = 0
            while replies < total {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                for i in 0..<n where buffer[i] == 10 { replies += 1 }
            }
        default:  // reader on n2
            guard let reader = try? RESPConnection(host: "127.0.0.1", port: readerPort, timeout: .seconds(10)) else { return }
            var local = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
            var seen = 0
            var giveUpAt: UInt64 = .max
            let get = [Array("GET".utf8), Array(key.utf8)]
            while seen < total && monotonicNanoseconds() < giveUpAt {
                if giveUpAt == .max && writerDone.load(ordering: .acquiring) { giveUpAt = monotonicNanoseconds() + 10_000_000_000 }
                guard case .bulkString(let bytes)? = try? reader.send(get), bytes.count >= 16,
                      let value = Int(String(decoding: bytes[0..<16], as: UTF8.self)) else { continue }
                let observed = monotonicNanoseconds()
                if value > seen {
                    for k in (seen + 1)...value {
                        let due = start + UInt64(Double(k) * interval)
                        _ = local.record(observed > due ? (observed - due) / 1000 : 0)
                    }
                    seen = value
                }
            }
            seenCount.store(seen, ordering: .relaxed)
            result.withLock { $0 = local }
        }
    }
    return VisibilityResult(size: size, rate: rate, histogram: result.withLock { $0 }, sent: total,
                            seen: seenCount.load(ordering: .relaxed),
                            writerMaxLagMilliseconds: Double(writerLag.load(ordering: .relaxed)) / 1e6)
}

func rawConnect(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var tv = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else {
        close(fd)
        throw SuiteError("cannot connect to 127.0.0.1:\(port)")
    }
    return fd
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += n
    }
    return true
}
