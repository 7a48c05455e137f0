import Foundation
import NodeControl
import Histogram
import RESP
import RESPClient
import Synchronization

/// What a group of clients saw: acknowledged operations, failures by what the client saw, retries,
/// and latency in microseconds.
struct LoadStats: Sendable {
    var acknowledged = 0
    /// Acknowledged inside the measured window (after the warm-up).
    var measured = 0
    var retries = 0
    var failures: [String: Int] = [:]
    var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)

    mutating func merge(_ other: LoadStats) {
        acknowledged += other.acknowledged
        measured += other.measured
        retries += other.retries
        failures.merge(other.failures, uniquingKeysWith: +)
        latency.add(other.latency)
    }

    var failureCount: Int { failures.values.reduce(0, +) }

    func percentileMilliseconds(_ p: Double) -> Double {
        latency.totalCount == 0 ? 0 : Double(latency.valueAtPercentile(p)) / 1000
    }
}

/// One client's operation: returns the retries it needed, throws what the client saw on failure.
typealias Operation = () throws -> Int

/// `clients` closed-loop clients, each on its own thread running the operation `makeOperation(i)`
/// builds for it (connections are made on the client's thread) back to back for `warmup + seconds`;
/// only operations that start after the warm-up are measured.
func closedLoop(clients: Int, warmup: Double, seconds: Double,
                makeOperation: @escaping @Sendable (Int) throws -> Operation) -> LoadStats {
    let total = Mutex(LoadStats())
    let start = now()
    let measureFrom = start + warmup, end = measureFrom + seconds
    onThreads(clients) { i in
        var local = LoadStats()
        defer { total.withLock { $0.merge(local) } }
        var operation: Operation
        do { operation = try makeOperation(i) } catch {
            local.failures["\(error)", default: 0] += 1
            return
        }
        while true {
            let began = now()
            if began >= end { break }
            do {
                let retries = try operation()
                local.acknowledged += 1
                if began >= measureFrom {
                    local.measured += 1
                    local.retries += retries
                    _ = local.latency.record(UInt64((now() - began) * 1e6))
                }
            } catch {
                local.failures["\(error)", default: 0] += 1
                // A failed connection is replaced rather than hammered.
                if let fresh = try? makeOperation(i) { operation = fresh } else { sleep(seconds: 0.1) }
            }
        }
    }
    return total.withLock { $0 }
}

/// A crdtd client: one command per operation on node `i % ports.count`; any reply but `expect` fails.
func crdtdOperation(host: String = "127.0.0.1", port: Int, _ command: [String], timeout: Duration = .seconds(10)) throws -> Operation {
    let connection = try RESPConnection(host: host, port: port, timeout: timeout)
    let wire = command.map { Array($0.utf8) }
    return {
        let reply = try connection.send(wire)
        switch reply {
        case .integer, .simpleString: return 0
        default: throw RequestFailure(description: "reply \(reply.text)")
        }
    }
}
