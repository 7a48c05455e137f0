import Foundation
import RESP
import RESPClient
import Synchronization

/// What the watcher saw of one acknowledged add to the hot set: when each node was first found holding it.
struct VisibilityRecord: Codable, Sendable {
    var element: String
    /// The node that acknowledged the add (index).
    var origin: Int
    /// When the client had the acknowledgement (seconds since the run started).
    var acknowledged: Double
    /// Per node, the arrival of the first poll reply that found the element there (so a time at most one
    /// poll interval late); the origin holds it from the acknowledgement; nil: never found.
    var seen: [Double?]
    /// Its remove was invoked before every node had shown it: it may never show everywhere, so it is left
    /// out of the figures.
    var removedFirst = false

    /// When the last node showed it, or nil while some node has not.
    var everywhere: Double? { seen.contains { $0 == nil } ? nil : seen.compactMap { $0 }.max() }
}

/// Watches every acknowledged add until every node holds it: one thread per node polls that node every
/// `interval` seconds with one SMISMEMBER of the elements it has not shown yet (a cheap read whose cost
/// grows with what is missing, not with the set), through the load and the wait for agreement.
final class VisibilityWatcher: Sendable {
    private struct State {
        var records: [VisibilityRecord] = []
        var index: [String: Int] = [:]
        /// Per node, the records it has not shown yet.
        var pending: [Set<Int>]
    }

    let interval: Double
    private let cluster: CheckCluster
    private let key: String
    private let clock: RunClock
    private let state: Mutex<State>
    /// Polls per node that got no usable answer (no connection, a timeout: a killed or paused node).
    private let failures: Mutex<[Int]>
    private let stop = StopFlag()
    private let group = DispatchGroup()
    /// At most this many elements per node in one poll (oldest first), so a node cut off for long is
    /// asked in bounded replies; the rest wait for the next polls.
    static let batch = 2_000

    init(cluster: CheckCluster, key: String, clock: RunClock, interval: Double) {
        self.cluster = cluster
        self.key = key
        self.clock = clock
        self.interval = interval
        state = Mutex(State(pending: Array(repeating: [], count: cluster.nodes.count)))
        failures = Mutex(Array(repeating: 0, count: cluster.nodes.count))
    }

    /// Polls of each node that got no usable answer.
    var failedPolls: [Int] { failures.withLock { $0 } }

    /// A client's add of `element` was acknowledged by `node` at `time`.
    func acknowledged(_ element: String, node: Int, at time: Double) {
        state.withLock { state in
            var seen = [Double?](repeating: nil, count: cluster.nodes.count)
            seen[node] = time
            let i = state.records.count
            state.records.append(VisibilityRecord(element: element, origin: node, acknowledged: time, seen: seen))
            state.index[element] = i
            for other in cluster.nodes.indices where other != node { state.pending[other].insert(i) }
        }
    }

    /// A client is about to remove `element`: unless every node has shown it, stop watching it.
    func removing(_ element: String) {
        state.withLock { state in
            guard let i = state.index[element], state.records[i].everywhere == nil else { return }
            state.records[i].removedFirst = true
            for node in state.pending.indices { state.pending[node].remove(i) }
        }
    }

    func start() {
        for node in cluster.nodes.indices {
            group.enter()
            Thread { [self] in
                watch(node)
                group.leave()
            }.start()
        }
    }

    /// Stops the watch after one last poll of every node (waiting at most `timeout` seconds for a node
    /// that does not answer) and returns what was seen, in acknowledgement order.
    func finish(timeout: Double = 5) -> [VisibilityRecord] {
        stop.set()
        _ = group.wait(timeout: .now() + timeout)
        return state.withLock { $0.records }
    }

    private func watch(_ node: Int) {
        var connection: RESPConnection?
        while true {
            let last = stop.isSet
            let asked = state.withLock { state in
                state.pending[node].sorted().prefix(Self.batch).map { ($0, state.records[$0].element) }
            }
            if !asked.isEmpty {
                if connection == nil { connection = try? cluster.connect(node, timeout: .seconds(1)) }
                if let open = connection, let reply = try? open.send(["SMISMEMBER", key] + asked.map(\.1)),
                   case .array(let flags) = reply, flags.count == asked.count {
                    let at = clock.now()
                    state.withLock { state in
                        for ((i, _), flag) in zip(asked, flags) where flag == .integer(1) && state.pending[node].contains(i) {
                            state.records[i].seen[node] = at
                            state.pending[node].remove(i)
                        }
                    }
                } else {
                    // No connection, a timeout (a killed or paused node) or an odd reply: a new connection next time.
                    failures.withLock { $0[node] += 1 }
                    connection?.close()
                    connection = nil
                }
            }
            if last { break }
            let deadline = clock.now() + interval
            while !stop.isSet, clock.now() < deadline { Thread.sleep(forTimeInterval: min(0.02, max(0, deadline - clock.now()))) }
        }
        connection?.close()
    }
}

/// A distribution of durations in seconds: how many, and its percentiles.
struct Distribution: Codable, Sendable, Equatable {
    var count: Int
    var p50: Double
    var p90: Double
    var p99: Double
    var max: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        count = sorted.count
        p50 = percentile(sorted, 0.5)
        p90 = percentile(sorted, 0.9)
        p99 = percentile(sorted, 0.99)
        max = sorted.last ?? 0
    }

    var summary: String {
        count == 0 ? "none" : "p50 \(format(p50)) s, p90 \(format(p90)) s, p99 \(format(p99)) s, max \(format(max)) s (\(count))"
    }
}

/// How long acknowledged adds took to show on every node (the verdict's `visibility`).
struct VisibilityResult: Codable, Sendable {
    /// Seconds between two polls of one node: each time is late by at most this much.
    var pollInterval: Double
    /// Acknowledged adds watched (the load's, not the preload's).
    var watched: Int
    /// Removed before every node had shown them: left out.
    var removedFirst: Int
    /// Still missing on some node when the watch ended (after the wait for agreement).
    var neverEverywhere: Int
    /// From the acknowledgement until every node showed it, for every add that showed everywhere.
    var afterWrite: Distribution
    /// The same, for adds acknowledged while a fault was in force, and for the others.
    var duringFaults: Distribution
    var outsideFaults: Distribution
    /// Adds not yet on every node at the final heal, and for those that then showed everywhere, the
    /// seconds from the final heal until they did.
    var pendingAtHeal: Int
    var afterHeal: Distribution
    /// Polls per node (by name) that got no usable answer: while a node is down or paused its times
    /// include the wait for it to answer again.
    var failedPolls: [String: Int]

    init(records: [VisibilityRecord], faults: [FaultWindow], healedAt: Double, pollInterval: Double, failedPolls: [String: Int] = [:]) {
        self.pollInterval = pollInterval
        self.failedPolls = failedPolls
        watched = records.count
        let kept = records.filter { !$0.removedFirst }
        removedFirst = records.count - kept.count
        neverEverywhere = kept.count { $0.everywhere == nil }
        let shown = kept.filter { $0.everywhere != nil }
        func delay(_ record: VisibilityRecord) -> Double { record.everywhere! - record.acknowledged }
        func inFault(_ record: VisibilityRecord) -> Bool {
            faults.contains { $0.start <= record.acknowledged && record.acknowledged <= $0.end }
        }
        afterWrite = Distribution(shown.map(delay))
        duringFaults = Distribution(shown.filter(inFault).map(delay))
        outsideFaults = Distribution(shown.filter { !inFault($0) }.map(delay))
        let late = kept.filter { $0.acknowledged <= healedAt && ($0.everywhere ?? .infinity) > healedAt }
        pendingAtHeal = late.count
        afterHeal = Distribution(late.compactMap { $0.everywhere.map { $0 - healedAt } })
    }
}
