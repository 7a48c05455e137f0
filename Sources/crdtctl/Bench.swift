import ArgumentParser
import Engine
import Foundation
import NodeControl
import RESP
import RESPClient
import Synchronization

extension CRDTCTL {
    /// Replication measurements on a local cluster: visibility latency, bytes per operation, idle traffic,
    /// and time to converge after a heal. Numbers from a shared 2-core machine are noisy; the table says so.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure replication: visibility latency, bytes per write, idle bytes, convergence after heal.")

        @Option(help: "Directory for the benchmark clusters.") var dir = "/tmp/crdtd-bench"
        @Option(help: "Base port.") var basePort = 27_000
        @Option(help: "Cluster sizes for the convergence measurement.") var sizes: [Int] = [3, 5, 9, 17]
        @Option(help: "Writes per second in the visibility measurement.") var rate = 1000
        @Option(help: "Seconds of writes in the visibility measurement.") var seconds = 10

        func run() throws {
            print("## Visibility: write on n1, read on n2 (\(rate) writes/s for \(seconds) s)\n")
            print("| size | p50 | p99 | p99.9 | p99.99 | max | bytes sent per write (all nodes) |")
            print("|---|---|---|---|---|---|---|")
            for size in [3, 5] {
                let cluster = try startCluster(dir: dir, nodes: size, basePort: basePort, insecure: false)
                defer { for i in cluster.nodes.indices { cluster.stop(i) } }
                let result = try measureVisibility(cluster)
                print("| \(size) | \(ms(result.percentile(0.5))) | \(ms(result.percentile(0.99))) | \(ms(result.percentile(0.999))) "
                      + "| \(ms(result.percentile(0.9999))) | \(ms(result.latencies.max() ?? 0)) | \(result.bytesPerWrite) |")
            }

            print("\n## Idle, converged cluster: bytes sent per node per second\n")
            print("| size | bytes/node/s |")
            print("|---|---|")
            for size in [3, 5] {
                let cluster = try startCluster(dir: dir, nodes: size, basePort: basePort, insecure: false)
                defer { for i in cluster.nodes.indices { cluster.stop(i) } }
                _ = try cluster.command(0, ["SADD", "warm", "x"])
                _ = cluster.waitForConvergence(timeout: .seconds(10))
                Thread.sleep(forTimeInterval: 3)
                let before = try bytesOut(cluster)
                Thread.sleep(forTimeInterval: 10)
                let after = try bytesOut(cluster)
                print("| \(size) | \(Int(Double(after - before) / Double(size) / 10)) |")
            }

            print("\n## Convergence after a heal (majority split, 200 writes on each side)\n")
            print("| size | time to converge after heal | bytes sent during repair |")
            print("|---|---|---|")
            for size in sizes {
                let cluster = try startCluster(dir: dir, nodes: size, basePort: basePort, insecure: false)
                defer { for i in cluster.nodes.indices { cluster.stop(i) } }
                try partition(cluster, shape: .majority, victim: 0, quiet: true)
                let left = try cluster.connection(0), right = try cluster.connection(size - 1)
                for i in 0..<200 {
                    _ = try left.send(["SADD", "healset", "l\(i)"])
                    _ = try right.send(["INCRBY", "healcounter", "\(i)"])
                }
                Thread.sleep(forTimeInterval: 2)  // let each side converge internally and exports settle
                let before = try bytesOut(cluster)
                let start = ContinuousClock.now
                for i in cluster.nodes.indices { _ = try cluster.command(i, ["CRDT.HEAL"]) }
                guard let elapsed = cluster.waitForConvergence(timeout: .seconds(60)) else {
                    print("| \(size) | no convergence within 60 s | - |")
                    continue
                }
                let total = ContinuousClock.now - start
                Thread.sleep(forTimeInterval: 1.2)
                let after = try bytesOut(cluster)
                print("| \(size) | \(ms(seconds: total)) (polled every 20 ms; \(ms(seconds: elapsed)) after the last HEAL) | \(after - before) |")
            }
        }

        struct Visibility {
            var latencies: [UInt64]  // nanoseconds
            var bytesPerWrite: Int
            func percentile(_ p: Double) -> UInt64 {
                guard !latencies.isEmpty else { return 0 }
                let sorted = latencies.sorted()
                return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
            }
        }

        /// n1 increments a counter at `rate`; n2 polls it in a tight loop. Write k is visible when n2 first
        /// reads a value >= k; its latency runs from just before n1 was sent write k.
        func measureVisibility(_ cluster: LocalCluster) throws -> Visibility {
            let total = rate * seconds
            let sent = Mutex([UInt64](repeating: 0, count: total + 1))
            let done = Mutex(false)
            let interval = 1_000_000_000 / UInt64(rate)
            let bytesBefore = try bytesOut(cluster)
            let writer = Thread {
                guard let c = try? cluster.connection(0) else { return }
                let start = monotonic()
                for k in 1...total {
                    let due = start + UInt64(k) * interval
                    while monotonic() < due {}
                    sent.withLock { $0[k] = monotonic() }
                    _ = try? c.send(["INCR", "visibility"])
                }
                done.withLock { $0 = true }
            }
            writer.start()
            let reader = try cluster.connection(1)
            var latencies: [UInt64] = []
            latencies.reserveCapacity(total)
            var seen = 0
            while seen < total {
                guard case .bulkString(let bytes) = try reader.send(["GET", "visibility"]),
                      let value = Int(String(decoding: bytes, as: UTF8.self)) else { continue }
                let now = monotonic()
                if value > seen {
                    let stamps = sent.withLock { Array($0[(seen + 1)...value]) }
                    for stamp in stamps where stamp > 0 { latencies.append(now - stamp) }
                    seen = value
                }
                if done.withLock({ $0 }) && latencies.count >= total { break }
            }
            Thread.sleep(forTimeInterval: 1.5)  // let the once-a-second metrics export catch up
            let bytesAfter = try bytesOut(cluster)
            return Visibility(latencies: latencies, bytesPerWrite: (bytesAfter - bytesBefore) / total)
        }

        /// Sum over nodes of crdtd_peer_bytes_total{direction="out"}.
        func bytesOut(_ cluster: LocalCluster) throws -> Int {
            let total = try cluster.nodes.reduce(0.0) { sum, node in
                sum + metricSum(try httpGet(host: node.address, port: node.metricsPort, path: "/metrics"), "crdtd_peer_bytes_total", labels: "direction=\"out\"")
            }
            return Int(total)
        }

        func ms(_ nanoseconds: UInt64) -> String { String(format: "%.2f ms", Double(nanoseconds) / 1e6) }
        func ms(seconds duration: Duration) -> String {
            let (s, attos) = duration.components
            return String(format: "%.0f ms", Double(s) * 1000 + Double(attos) / 1e15)
        }
    }
}

func monotonic() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
