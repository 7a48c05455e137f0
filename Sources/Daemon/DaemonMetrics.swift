import Engine
import Foundation
import Metrics
import Prometheus

/// Every metric the daemon exports, created once. swift-metrics objects are thread-safe, so each thread
/// records into them directly; `/metrics` renders the Prometheus registry.
final class DaemonMetrics: Sendable {
    let registry: PrometheusCollectorRegistry

    let connectedClients = Gauge(label: "crdtd_connected_clients")
    let refusedClients = Counter(label: "crdtd_clients_refused_total")
    let commitBatchRecords = Recorder(label: "crdtd_commit_batch_records")
    let commitLatency = Metrics.Timer(label: "crdtd_commit_duration_seconds", preferredDisplayUnit: .seconds)
    let commits = Counter(label: "crdtd_commits_total")
    /// `AUTH` or `HELLO AUTH` attempts with a wrong user or password.
    let authFailures = Counter(label: "crdtd_auth_failures_total")
    /// Subscribers disconnected over their pub/sub output limit (`limits.max_pending_pubsub_bytes`).
    let pubSubDisconnects = Counter(label: "crdtd_pubsub_disconnects_total")
    /// 1 while commits fail for want of space (writes refused), else 0.
    let storageDegraded = Gauge(label: "crdtd_storage_degraded")
    /// How long the store has been degraded, 0 when it is not.
    let storageDegradedSeconds = Gauge(label: "crdtd_storage_degraded_seconds")
    /// Commits retried after running out of space.
    let storageRetries = Gauge(label: "crdtd_storage_commit_retries")

    /// Each command name's counters and timer, made once: a swift-metrics constructor goes through the
    /// factory (name validation, a locked registry lookup), too costly to run per reply.
    private let commandMetrics: [String: CommandMetrics]

    struct CommandMetrics: Sendable {
        let ok: CoreMetrics.Counter
        let error: CoreMetrics.Counter
        let duration: Metrics.Timer

        init(_ name: String) {
            ok = Counter(label: "crdtd_commands_total", dimensions: [("command", name), ("outcome", "ok")])
            error = Counter(label: "crdtd_commands_total", dimensions: [("command", name), ("outcome", "error")])
            duration = Metrics.Timer(label: "crdtd_command_duration_seconds", dimensions: [("command", name)])
        }
    }

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        var commandMetrics: [String: CommandMetrics] = [:]
        for name in CommandNames.known.union(["unknown"]) { commandMetrics[name] = CommandMetrics(name) }
        self.commandMetrics = commandMetrics
    }

    /// Bootstraps swift-metrics with a Prometheus factory on a registry of our own. Once per process.
    static func bootstrap() -> DaemonMetrics {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        factory.defaultValueHistogramBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]
        MetricsSystem.bootstrap(factory)
        return DaemonMetrics(registry: registry)
    }

    /// A client command finished: counted by name and outcome, timed from parse to reply.
    /// `name` is one of `CommandNames.known` or "unknown" (see `CommandNames.canonical`).
    func command(_ name: String, failed: Bool, nanoseconds: UInt64) {
        guard let metrics = commandMetrics[name] ?? commandMetrics["unknown"] else { return }
        (failed ? metrics.error : metrics.ok).increment()
        metrics.duration.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    /// A `CRDT.BACKUP` finished.
    func backups(succeeded: Bool) {
        Counter(label: "crdtd_backups_total", dimensions: [("outcome", succeeded ? "ok" : "failed")]).increment()
    }

    func ringFull(_ ring: String) {
        Counter(label: "crdtd_ring_full_total", dimensions: [("ring", ring)]).increment()
    }

    func ringDepth(_ ring: String, _ depth: Int) {
        Gauge(label: "crdtd_ring_depth", dimensions: [("ring", ring)]).record(depth)
    }

    /// Engine-side figures, exported by the engine thread about once a second.
    func exportEngine(keysByType: [String: Int], members: [String: Int], replication: ReplicationStats,
                      previous: ReplicationStats) {
        for type in KeyType.allCases {
            Gauge(label: "crdtd_keys", dimensions: [("type", type.rawValue)]).record(keysByType[type.rawValue] ?? 0)
        }
        for state in ["alive", "suspect", "dead", "left", "forgotten"] {
            Gauge(label: "crdtd_peers", dimensions: [("state", state)]).record(members[state] ?? 0)
        }
        // The causal-stability frontier (CRDT.STABILITY): how far it got, and how far behind its holder is.
        Gauge(label: "crdtd_stability_stable_writes").record(Int64(clamping: replication.stableWrites))
        Gauge(label: "crdtd_stability_behind_writes").record(Int64(clamping: replication.stabilityBehind))
        Counter(label: "crdtd_peer_bytes_total", dimensions: [("direction", "in")])
            .increment(by: Int64(clamping: replication.bytesIn &- previous.bytesIn))
        Counter(label: "crdtd_peer_bytes_total", dimensions: [("direction", "out")])
            .increment(by: Int64(clamping: replication.bytesOut &- previous.bytesOut))
        for (type, count) in replication.framesIn {
            Counter(label: "crdtd_peer_frames_total", dimensions: [("direction", "in"), ("type", type)])
                .increment(by: Int64(clamping: count &- (previous.framesIn[type] ?? 0)))
        }
        for (type, count) in replication.framesOut {
            Counter(label: "crdtd_peer_frames_total", dimensions: [("direction", "out"), ("type", type)])
                .increment(by: Int64(clamping: count &- (previous.framesOut[type] ?? 0)))
        }
        // Deltas joined from peers, whole states applied by repair, and deltas dropped from the buffer
        // before every peer acknowledged them (a peer that far behind is repaired by digest instead).
        Counter(label: "crdtd_peer_deltas_applied_total")
            .increment(by: Int64(clamping: replication.deltasApplied &- previous.deltasApplied))
        Counter(label: "crdtd_repair_states_applied_total")
            .increment(by: Int64(clamping: replication.statesApplied &- previous.statesApplied))
        Counter(label: "crdtd_delta_buffer_drops_total")
            .increment(by: Int64(clamping: replication.bufferDrops &- previous.bufferDrops))
        // PUBLISHes that reached only this node's subscribers (too large, or over the per-batch budget).
        Counter(label: "crdtd_pubsub_peer_drops_total")
            .increment(by: Int64(clamping: replication.publishDropped &- previous.publishDropped))
        for (reason, count) in replication.rejected {
            Counter(label: "crdtd_peer_frames_rejected_total", dimensions: [("reason", reason)])
                .increment(by: Int64(clamping: count &- (previous.rejected[reason] ?? 0)))
        }
    }

    /// The store's condition, set when /metrics is rendered.
    func storage(_ state: StorageHealth.Snapshot, now: Date = Date()) {
        storageDegraded.record(state.isDegraded ? 1 : 0)
        storageDegradedSeconds.record(state.degradedSince.map { now.timeIntervalSince($0) } ?? 0)
        storageRetries.record(Int64(clamping: state.retries))
    }

    /// The Prometheus text exposition.
    func render() -> String { registry.emitToString() }
}
