import Foundation
import NodeControl
import Synchronization

/// A node's replication counters at one moment, from its `/metrics`.
struct PeerCounters: Codable, Sendable, Equatable {
    /// `crdtd_peer_bytes_total{direction="out"}` and `{direction="in"}`.
    var bytesOut: Double
    var bytesIn: Double
    /// `crdtd_peer_frames_total{direction="out"}` and `{direction="in"}`, summed over frame types.
    var framesOut: Double
    var framesIn: Double

    static let zero = PeerCounters(bytesOut: 0, bytesIn: 0, framesOut: 0, framesIn: 0)

    /// Reads the counters from a Prometheus text exposition; a series not there yet is 0 (the daemon
    /// exports them once a second, and a counter starts at 0).
    init(metrics text: String) {
        bytesOut = metricSum(text, "crdtd_peer_bytes_total", labels: "direction=\"out\"")
        bytesIn = metricSum(text, "crdtd_peer_bytes_total", labels: "direction=\"in\"")
        framesOut = metricSum(text, "crdtd_peer_frames_total", labels: "direction=\"out\"")
        framesIn = metricSum(text, "crdtd_peer_frames_total", labels: "direction=\"in\"")
    }

    init(bytesOut: Double, bytesIn: Double, framesOut: Double, framesIn: Double) {
        self.bytesOut = bytesOut
        self.bytesIn = bytesIn
        self.framesOut = framesOut
        self.framesIn = framesIn
    }

    /// What was added between `earlier` and this reading. A counter lower than before means the process
    /// restarted (kill -9, a disk error) and counts from 0 again: its whole value is new.
    func increase(since earlier: PeerCounters) -> PeerCounters {
        func grown(_ now: Double, _ before: Double) -> Double { now >= before ? now - before : now }
        return PeerCounters(bytesOut: grown(bytesOut, earlier.bytesOut), bytesIn: grown(bytesIn, earlier.bytesIn),
                            framesOut: grown(framesOut, earlier.framesOut), framesIn: grown(framesIn, earlier.framesIn))
    }

    static func + (a: PeerCounters, b: PeerCounters) -> PeerCounters {
        PeerCounters(bytesOut: a.bytesOut + b.bytesOut, bytesIn: a.bytesIn + b.bytesIn,
                     framesOut: a.framesOut + b.framesOut, framesIn: a.framesIn + b.framesIn)
    }
}

/// One scrape of every node: when it ended, and each node's counters (nil: no answer this time).
struct MetricsRound: Codable, Sendable {
    var at: Double
    var nodes: [PeerCounters?]
}

/// Scrapes every node's `/metrics` once a second (all nodes at once, 1 s read timeout, 2 s for a round) from before the
/// load until after the wait for agreement.
final class MetricsScraper: Sendable {
    /// Each node's metrics endpoint (IPv4 host and port), or why there is none.
    let endpoints: [Result<MetricsEndpoint, MetricsUnavailable>]
    private let clock: RunClock
    /// A netns cluster's lab: nothing is scraped once its bridge is gone, when the nodes' addresses would
    /// be routed off this machine (as CheckCluster.connect refuses).
    private let network: NetnsLab?
    private let rounds = Mutex([MetricsRound]())
    /// The last error of each node's scrapes.
    private let failures: Mutex<[String?]>
    private let stop = StopFlag()
    private let done = DispatchSemaphore(value: 0)

    init(endpoints: [Result<MetricsEndpoint, MetricsUnavailable>], clock: RunClock, network: NetnsLab? = nil) {
        self.endpoints = endpoints
        self.clock = clock
        self.network = network
        failures = Mutex(Array(repeating: nil, count: endpoints.count))
    }

    /// Scrapes once now (the baseline), then once a second on a thread of its own.
    func start() {
        scrape()
        Thread { [self] in
            // On a fixed cadence: a round that waited for a paused node does not push the next ones back.
            var next = clock.now() + 1
            while !stop.isSet {
                while !stop.isSet, clock.now() < next { Thread.sleep(forTimeInterval: 0.02) }
                if !stop.isSet { scrape() }
                next = max(next + 1, clock.now())
            }
            done.signal()
        }.start()
    }

    /// Stops the scraping after a last scrape taken no earlier than `notBefore` (so the once-a-second
    /// export of the daemons has caught up with the end of the run), and returns every round.
    func finish(notBefore: Double) -> [MetricsRound] {
        stop.set()
        _ = done.wait(timeout: .now() + 3)
        while clock.now() < notBefore { Thread.sleep(forTimeInterval: 0.02) }
        scrape()
        return rounds.withLock { $0 }
    }

    /// Why each node has no figures: no endpoint, or none of its scrapes answered.
    func unavailable(_ rounds: [MetricsRound]) -> [Int: String] {
        var out: [Int: String] = [:]
        for (i, endpoint) in endpoints.enumerated() {
            switch endpoint {
            case .failure(let why): out[i] = why.reason
            case .success(let endpoint):
                if !rounds.contains(where: { $0.nodes.indices.contains(i) && $0.nodes[i] != nil }) {
                    out[i] = "http://\(endpoint.host):\(endpoint.port)/metrics never answered"
                        + (failures.withLock { $0[i] }.map { " (\($0))" } ?? "")
                }
            }
        }
        return out
    }

    private func scrape() {
        let readings = Readings(count: endpoints.count)
        // A thread per node, not concurrentPerform: that runs as many at once as there are cores, so on
        // two cores five nodes' scrapes (each blocking up to its timeout) would take three turns.
        let group = DispatchGroup()
        for i in endpoints.indices {
            guard case .success(let endpoint) = endpoints[i] else { continue }
            group.enter()
            Thread { [self] in
                defer { group.leave() }
                let reading = read(i, endpoint)
                readings.values.withLock { $0[i] = reading }
            }.start()
        }
        // httpGet's connect has no timeout of its own: a node whose SYNs are dropped misses the round
        // rather than holding it (its late answer lands in this round's box, which nobody reads).
        _ = group.wait(timeout: .now() + 2)
        let round = MetricsRound(at: clock.now(), nodes: readings.values.withLock { $0 })
        rounds.withLock { $0.append(round) }
    }

    /// One round's readings, filled by the threads of the round.
    private final class Readings: Sendable {
        let values: Mutex<[PeerCounters?]>
        init(count: Int) { values = Mutex(Array(repeating: nil, count: count)) }
    }

    /// Node `i`'s counters, or nil (its failure noted) when its `/metrics` does not answer 200.
    private func read(_ i: Int, _ endpoint: MetricsEndpoint) -> PeerCounters? {
        if let network, !network.isUp {
            failures.withLock { $0[i] = "the network \(network.bridge) is gone" }
            return nil
        }
        do {
            let response = try httpGet(host: endpoint.host, port: endpoint.port, path: "/metrics", timeout: 1)
            guard response.hasPrefix("HTTP/1.1 200") || response.hasPrefix("HTTP/1.0 200") else {
                let status = response.prefix { $0 != "\r" && $0 != "\n" }
                failures.withLock { $0[i] = status.isEmpty ? "no answer" : "answered \(status)" }
                return nil
            }
            return PeerCounters(metrics: response)
        } catch {
            failures.withLock { $0[i] = "\(error)" }
            return nil
        }
    }
}

struct MetricsEndpoint: Sendable, Equatable {
    var host: String
    var port: Int
}

struct MetricsUnavailable: Error, Sendable, Equatable {
    var reason: String
}

/// Replication traffic over the run per acknowledged operation (the verdict's `traffic`), from the
/// nodes' counters scraped at the start, once a second, and after the wait for agreement.
struct TrafficResult: Codable, Sendable {
    struct Node: Codable, Sendable {
        var node: String
        /// What the node's counters grew by over the run (restarts counted: a drop is a new process).
        var total: PeerCounters
        var scrapes: Int
    }
    /// One point of the chart: the traffic over the `window` seconds ending `at`, per acknowledged
    /// operation completed in the same window.
    struct Point: Codable, Sendable {
        var at: Double
        var operations: Int
        var bytesOutPerOperation: Double
        var framesOutPerOperation: Double
    }
    /// Nodes that gave figures; the totals are theirs only.
    var nodes: [Node]
    /// Nodes without figures, with why (no metrics endpoint, or it never answered).
    var unavailable: [String: String]
    var total: PeerCounters
    /// Acknowledged operations of the load, and of them writes.
    var operations: Int
    var writes: Int
    /// Peer bytes and frames sent by every reachable node, per acknowledged operation and per write.
    var bytesOutPerOperation: Double
    var framesOutPerOperation: Double
    var bytesOutPerWrite: Double
    var framesOutPerWrite: Double
    /// From the first scrape to the last (seconds since the run started).
    var from: Double
    var to: Double
    var window: Double
    var points: [Point]

    static let window = 3.0

    init(rounds: [MetricsRound], unavailable: [Int: String], operations all: [Operation], nodeNames: [String]) {
        let load = all.filter { $0.client >= 0 && $0.outcome == .ok }
        operations = load.count
        writes = load.count { $0.kind.isWrite }
        self.unavailable = Dictionary(uniqueKeysWithValues: unavailable.map { (nodeNames[$0.key], $0.value) })
        from = rounds.first?.at ?? 0
        to = rounds.last?.at ?? 0
        window = Self.window
        // Per round, what every node added since its previous answer (a node that missed rounds adds its
        // growth over them at its next answer).
        var last = [PeerCounters?](repeating: nil, count: nodeNames.count)
        var totals = [PeerCounters](repeating: .zero, count: nodeNames.count)
        var scrapes = [Int](repeating: 0, count: nodeNames.count)
        var added: [(at: Double, counters: PeerCounters)] = []
        for round in rounds {
            var sum = PeerCounters.zero
            for (i, reading) in round.nodes.enumerated() {
                guard let reading else { continue }
                scrapes[i] += 1
                if let before = last[i] {
                    let grown = reading.increase(since: before)
                    totals[i] = totals[i] + grown
                    sum = sum + grown
                }
                last[i] = reading
            }
            added.append((round.at, sum))
        }
        nodes = nodeNames.indices.filter { scrapes[$0] > 0 }.map { Node(node: nodeNames[$0], total: totals[$0], scrapes: scrapes[$0]) }
        total = nodes.reduce(PeerCounters.zero) { $0 + $1.total }
        bytesOutPerOperation = operations > 0 ? total.bytesOut / Double(operations) : 0
        framesOutPerOperation = operations > 0 ? total.framesOut / Double(operations) : 0
        bytesOutPerWrite = writes > 0 ? total.bytesOut / Double(writes) : 0
        framesOutPerWrite = writes > 0 ? total.framesOut / Double(writes) : 0

        let completions = load.map(\.complete).sorted()
        func completed(in range: ClosedRange<Double>) -> Int {
            countAtMost(completions, range.upperBound) - countAtMost(completions, range.lowerBound)
        }
        var points: [Point] = []
        for (r, round) in added.enumerated() where r > 0 {
            let start = round.at - Self.window
            let traffic = added[1...r].filter { $0.at > start }.reduce(PeerCounters.zero) { $0 + $1.counters }
            let count = completed(in: max(start, from)...round.at)
            guard count > 0 else { continue }
            points.append(Point(at: round.at, operations: count, bytesOutPerOperation: traffic.bytesOut / Double(count),
                                framesOutPerOperation: traffic.framesOut / Double(count)))
        }
        self.points = points
    }

    var summary: String {
        "peer traffic: \(Int(total.bytesOut)) bytes and \(Int(total.framesOut)) frames sent by \(nodes.count) node(s) for "
            + "\(operations) ok operations: \(String(format: "%.0f", bytesOutPerOperation)) bytes and "
            + "\(String(format: "%.2f", framesOutPerOperation)) frames per operation (per write: "
            + "\(String(format: "%.0f", bytesOutPerWrite)) bytes, \(String(format: "%.2f", framesOutPerWrite)) frames)"
            + (unavailable.isEmpty ? "" : "; no metrics from " + unavailable.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value))" }.joined(separator: ", "))
    }
}

/// The number of values in `sorted` that are at most `value`.
private func countAtMost(_ sorted: [Double], _ value: Double) -> Int {
    var low = 0, high = sorted.count
    while low < high {
        let mid = (low + high) / 2
        if sorted[mid] <= value { low = mid + 1 } else { high = mid }
    }
    return low
}
