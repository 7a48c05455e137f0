import CoreMetrics
import Engine
import Foundation
import Logging
import Rings
import Store
import Wire

/// What the loop hands the engine thread.
enum EngineMessage: Sendable {
    case input(EngineInput)
    /// Tell peers we leave (graceful shutdown).
    case leave
    /// Finish what is queued, then stop.
    case stop
}

/// A frame a peer sent, not yet authenticated. Peer frames travel on a ring of their own so that a
/// peer backlog never queues in front of client commands.
struct PeerFrameMessage: Sendable {
    var bytes: [UInt8]
    var source: PeerEndpoint
}

/// The two rings peer frames arrive on: SWIM probes (which the envelope marks) on a small ring the
/// engine drains first, everything else on a large one it drains within a per-batch budget. A backlog of
/// deltas thus delays data, never the answer to a probe: a busy node is not declared dead.
struct PeerRings: Sendable {
    let frames: SPSCRing<PeerFrameMessage>
    let probes: SPSCRing<PeerFrameMessage>

    init(doorbell: Doorbell) throws {
        frames = try SPSCRing(minimumCapacity: Daemon.peerFramesCapacity, consumerDoorbell: doorbell)
        probes = try SPSCRing(minimumCapacity: Daemon.peerProbesCapacity, consumerDoorbell: doorbell)
    }

    /// Queues a frame from the network; a full ring drops it (peers retransmit, probes are retried).
    /// Returns the name of the ring that was full, for the metric, or `nil` when queued.
    func submit(_ message: PeerFrameMessage) -> String? {
        let probe = Envelope.isProbe(message.bytes)
        if case .full = (probe ? probes : frames).tryPush(message) { return probe ? "peer_probes" : "peer_frames" }
        return nil
    }
}

/// What the writer and the engine hand the loop.
enum LoopMessage: Sendable {
    /// Effects whose records are durable, in order.
    case effects([Effect])
    /// The writer committed its last batch and closed the store.
    case writerFinished
    /// Something the daemon cannot survive (the store failed): log and exit non-zero.
    case fatal(String)
}

/// The engine thread: drains the loop's inputs in batches, runs them through the engine, and hands each
/// batch's output to the writer. It blocks only when the writer is behind: backpressure, not growth.
///
/// Client commands, ticks and control messages arrive on `inputs`; peer frames on `peerFrames`, a ring
/// of their own. Each batch takes every client input first and then a bounded amount of peer work, so a
/// node that is far behind (just restarted, or healed after a long partition) keeps answering its
/// clients within one small batch while it catches up. Both rings share one parking doorbell.
///
/// The effects the engine marks immediate (replies that reveal only durable state, membership probes)
/// go straight to the loop's inbox, before the batch's output goes to the writer: they need no commit,
/// so they do not wait behind a slow or stuck one. Before each batch the thread tells the engine which
/// steps the writer released and whether the store commits (`StorageHealth`).
final class EngineThread: @unchecked Sendable {
    // Why @unchecked Sendable is safe: `engine` is touched only by the thread `start()` creates (the
    // initializer runs before it starts and nothing reads it afterwards); the rings are Sendable.
    private var engine: Engine
    private let inputs: SPSCRing<EngineMessage>
    private let peers: PeerRings
    private let outputs: SPSCRing<EngineOutput>
    private let inbox: MPSCRing<LoopMessage>
    private let health: StorageHealth
    private let allocator: Allocator
    private let metrics: DaemonMetrics
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    /// The most client inputs folded into one output (one group commit), so a flood cannot build one giant batch.
    static let maximumBatch = 4096
    /// Peer frame bytes handled per batch while clients are waiting: with O(delta) joins about a
    /// millisecond of work, so a client command never waits behind a peer backlog for long.
    static let peerBytesPerBusyBatch = 128 << 10
    /// Peer frame bytes per batch when no client input is waiting: catch up fast while idle.
    static let peerBytesPerIdleBatch = 1 << 20

    init(engine: Engine, inputs: SPSCRing<EngineMessage>, peers: PeerRings,
         outputs: SPSCRing<EngineOutput>, inbox: MPSCRing<LoopMessage>, health: StorageHealth,
         allocator: Allocator, metrics: DaemonMetrics, logger: Logger) {
        precondition(inputs.consumerDoorbell != nil && inputs.consumerDoorbell === peers.frames.consumerDoorbell
                     && inputs.consumerDoorbell === peers.probes.consumerDoorbell,
                     "the engine thread waits on one doorbell shared by its input rings")
        self.engine = engine
        self.inputs = inputs
        self.peers = peers
        self.outputs = outputs
        self.inbox = inbox
        self.health = health
        self.allocator = allocator
        self.metrics = metrics
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "crdtd-engine"
        thread.start()
    }

    /// Blocks until the thread has stopped.
    func join() { finished.wait() }

    private func run() {
        defer { finished.signal() }
        let doorbell = inputs.consumerDoorbell!
        var batch: [EngineMessage] = []
        batch.reserveCapacity(Self.maximumBatch)
        var stopping = false
        var lastExport: UInt64 = 0
        var trimmedAt: UInt64 = 0
        var wasStaging = false
        // Logged once, when the node learns (or starts knowing) that the cluster forgot its identity.
        var decommissionLogged = engine.decommissionedRefusal != nil
        var exported = ReplicationStats()
        var released: UInt64 = 0
        var generation: UInt64 = 0
        while !stopping {
            doorbell.wait(until: {
                inputs.hasElementsOrIsClosed || peers.frames.hasElementsOrIsClosed || peers.probes.hasElementsOrIsClosed
            })
            if inputs.isFinished { break }
            var output = EngineOutput()
            // Probes first, and their answers out at once: they wait behind nothing.
            while case .element(let frame) = peers.probes.tryPop() {
                engine.handle(.peerFrame(frame.bytes, from: frame.source), into: &output)
            }
            if !output.immediate.isEmpty {
                inbox.deliver(.effects(output.immediate), metrics: metrics, ring: "engine_to_loop")
                output.immediate = []
            }
            _ = inputs.popAll(into: &batch, max: Self.maximumBatch)
            if health.released != released {
                released = health.released
                engine.handle(.released(throughStep: released), into: &output)
            }
            if health.generation != generation {
                generation = health.generation
                engine.handle(.storage(health.snapshot.condition), into: &output)
            }
            // Once a second the writer is woken even with nothing to commit, so that it can tidy the store
            // once it has been quiet for a while (`WriterThread.quietBeforeTidying`).
            var nudgeWriter = false
            for message in batch {
                switch message {
                case .input(let input):
                    if case .tick(let now, _) = input, now >= lastExport + 1000 {
                        lastExport = now
                        nudgeWriter = true
                        let stats = engine.replicationStats
                        metrics.exportEngine(keysByType: engine.keysByType, members: engine.membersByState,
                                             replication: stats, previous: exported)
                        // Freed memory stays in the allocator's arenas: once a collection settles (a second
                        // without progress), or every 64 Ki keys of a long one, it goes back to the system
                        // (a few ms). So it does once the staged snapshots of large objects are written: each
                        // held a copy of its object and its serialised bytes (hundreds of MB for a 1 M-member
                        // set), which the allocator would otherwise return over its ten-second decay.
                        let collected = stats.tombstonesCollected
                        let staging = engine.stagedSnapshotsInProgress > 0
                        if collected > trimmedAt,
                           collected == exported.tombstonesCollected || collected >= trimmedAt + 65_536 {
                            trimmedAt = collected
                            allocator.releaseFreeMemory()
                        } else if wasStaging && !staging {
                            allocator.releaseFreeMemory()
                        }
                        wasStaging = staging
                        exported = stats
                        if !decommissionLogged, let refusal = engine.decommissionedRefusal {
                            decommissionLogged = true
                            logger.error("\(refusal)")
                        }
                    }
                    engine.handle(input, into: &output)
                case .leave:
                    engine.leave(into: &output)
                case .stop:
                    stopping = true
                }
            }
            let budget = batch.isEmpty ? Self.peerBytesPerIdleBatch : Self.peerBytesPerBusyBatch
            var spent = 0
            // While idle, a client input or a probe that arrives ends the large budget early: it waits for
            // one frame at most. While busy, the small budget is taken whole, so peers keep pace.
            let idle = batch.isEmpty
            batch.removeAll(keepingCapacity: true)
            while spent < budget, !idle || spent == 0 || !(inputs.hasElementsOrIsClosed || peers.probes.hasElementsOrIsClosed),
                  case .element(let frame) = peers.frames.tryPop() {
                spent += frame.bytes.count
                engine.handle(.peerFrame(frame.bytes, from: frame.source), into: &output)
            }
            engine.flush(into: &output)
            // First: what needs no commit must not wait behind this batch's own records either.
            if !output.immediate.isEmpty {
                inbox.deliver(.effects(output.immediate), metrics: metrics, ring: "engine_to_loop")
                output.immediate = []
            }
            if output.needsCommit || nudgeWriter, case .closed = outputs.push(output) {
                logger.error("the writer stopped before the engine; dropping a batch")
            }
        }
        outputs.close()
        logger.debug("engine thread stopped")
    }
}

/// The writer thread: commits everything the engine produced since the last commit in one transaction
/// (group commit), then releases those batches' effects to the loop, in order.
///
/// A commit that fails for want of space is kept, with everything of its batches unacknowledged, and
/// retried on a bounded backoff until it goes through; meanwhile the engine refuses writes
/// (`StorageHealth`). Any other failure, an I/O error or a failed `fsync` above all, stops the process:
/// what the kernel holds for the file can no longer be trusted, and a restart recovers from the
/// database and the peers.
final class WriterThread: @unchecked Sendable {
    // Why @unchecked Sendable is safe: `store` is used only by the thread `start()` creates; it is
    // handed over before the thread starts and closed by that thread.
    private let store: Store
    private let dataDirectory: String
    private let outputs: SPSCRing<EngineOutput>
    private let inbox: MPSCRing<LoopMessage>
    private let health: StorageHealth
    private let metrics: DaemonMetrics
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    /// The first retry of a commit that ran out of space, doubling up to `maxRetryDelay`.
    static let firstRetryDelay = Duration.milliseconds(50)
    static let maxRetryDelay = Duration.seconds(2)
    /// How long without records to commit before the writer tidies the store (`Store.tidy`).
    static let quietBeforeTidying = Duration.seconds(1)

    init(store: Store, dataDirectory: String, outputs: SPSCRing<EngineOutput>, inbox: MPSCRing<LoopMessage>,
         health: StorageHealth, metrics: DaemonMetrics, logger: Logger) {
        self.store = store
        self.dataDirectory = dataDirectory
        self.outputs = outputs
        self.inbox = inbox
        self.health = health
        self.metrics = metrics
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "crdtd-writer"
        thread.start()
    }

    func join() { finished.wait() }

    private func run() {
        defer { finished.signal() }
        var batch: [EngineOutput] = []
        var records: [StoreRecord] = []
        var lastRecordsAt = ContinuousClock.now
        while true {
            guard case .element(let first) = outputs.pop() else { break }
            batch.append(first)
            _ = outputs.popAll(into: &batch, max: 1023)
            records.removeAll(keepingCapacity: true)
            var effects: [Effect] = []
            var lastStep: UInt64 = 0
            for output in batch {
                records.append(contentsOf: output.records.map(StoreRecord.init))
                effects.append(contentsOf: output.effects)
                lastStep = max(lastStep, output.step)
            }
            batch.removeAll(keepingCapacity: true)
            // Fail-stop unless it commits: the engine's memory holds writes that are not durable, so nothing
            // of this batch may be acknowledged. A restart recovers exactly what was committed.
            if !records.isEmpty, !commit(records) { return }
            if !effects.isEmpty { inbox.deliver(.effects(effects), metrics: metrics, ring: "writer_to_loop") }
            health.release(through: lastStep)
            if !records.isEmpty { lastRecordsAt = .now }
            // Quiet for a while: give freed pages back to the file, one bounded step at a time, while
            // nothing waits. Not between the commits of a burst: a step there delays the next commit.
            while ContinuousClock.now - lastRecordsAt >= Self.quietBeforeTidying, !outputs.hasElementsOrIsClosed, store.tidy() {}
        }
        store.close()
        inbox.deliver(.writerFinished, metrics: metrics, ring: "writer_to_loop")
        logger.debug("writer thread stopped")
    }

    /// Commits `records`, retrying while the disk is full. Returns false, after telling the loop, when the
    /// process must stop without acknowledging them.
    private func commit(_ records: [StoreRecord]) -> Bool {
        var delay = Self.firstRetryDelay
        var degradedAt: ContinuousClock.Instant?
        var retries = 0
        while true {
            let start = DispatchTime.now().uptimeNanoseconds
            do {
                try store.commit(records)
                metrics.commits.increment()
                metrics.commitBatchRecords.record(records.count)
                metrics.commitLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
                if let degradedAt {
                    health.recovered()
                    logger.notice("""
                        the data directory \(dataDirectory) takes writes again after \(Self.seconds(ContinuousClock.now - degradedAt)) \
                        and \(retries) retries: the held batch of \(records.count) records is committed, writes are accepted again
                        """)
                }
                return true
            } catch {
                guard error.isOutOfSpace else {
                    inbox.deliver(.fatal(Self.stopMessage(error, directory: dataDirectory)), metrics: metrics, ring: "writer_to_loop")
                    return false
                }
                if degradedAt == nil {
                    degradedAt = .now
                    logger.error("""
                        the data directory \(dataDirectory) is full (\(error.cause)): \(records.count) records wait, unacknowledged, \
                        and are retried every \(Self.seconds(Self.maxRetryDelay)) at most; writes are refused with -MISCONF until space returns, \
                        reads still answer
                        """)
                }
                health.degraded(directory: dataDirectory, cause: error.cause)
                guard waitUnlessStopping(delay) else {
                    inbox.deliver(.fatal("""
                        crdtd stops while its data directory \(dataDirectory) is full (\(error.cause)): \(records.count) records \
                        were never committed nor acknowledged. Restart once there is space: the node recovers every acknowledged \
                        write from its database and its peers.
                        """), metrics: metrics, ring: "writer_to_loop")
                    return false
                }
                retries += 1
                delay = min(delay * 2, Self.maxRetryDelay)
            }
        }
    }

    static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return "\(milliseconds / 1000).\(String(milliseconds % 1000 / 100)) s"
    }

    /// Sleeps for `delay` unless a shutdown begins first; returns false then.
    private func waitUnlessStopping(_ delay: Duration) -> Bool {
        let deadline = ContinuousClock.now + delay
        while ContinuousClock.now < deadline {
            if health.stopRequested || outputs.isClosed { return false }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return !(health.stopRequested || outputs.isClosed)
    }

    /// The one line the operator reads when the store fails for good.
    static func stopMessage(_ error: StoreError, directory: String) -> String {
        let code = error.resultCode.map { ", SQLite code \($0)" } ?? ""
        let what = error.failedSync
            ? "an fsync in the data directory \(directory) failed (\(error.cause)\(code)); after a failed fsync the kernel may "
                + "have dropped the pages it could not write, so retrying it would prove nothing"
            : "the data directory \(directory) failed (\(error.cause)\(code))"
        return "crdtd stops: \(what). Nothing since the last successful commit was acknowledged. "
            + "Check the disk (dmesg, SMART), then restart: the node recovers from its database and its peers."
    }
}

extension MPSCRing<LoopMessage> {
    /// Posts to the loop. The inbox is bounded: when it is full the poster waits (the loop is draining
    /// it), which in turn holds back the engine. Effects are never dropped.
    func deliver(_ message: LoopMessage, metrics: DaemonMetrics, ring: String) {
        var pending = message
        while true {
            switch tryPush(pending) {
            case .pushed, .closed:
                return
            case .full(let back):
                pending = back
                metrics.ringFull(ring)
                usleep(100)
            }
        }
    }
}

extension StoreRecord {
    init(_ record: DurableRecord) {
        switch record {
        case .delta(let key, let bytes): self = .delta(key: key, bytes: bytes)
        case .snapshot(let key, let bytes): self = .snapshot(key: key, bytes: bytes)
        case .snapshotBegin(let key): self = .snapshotBegin(key: key)
        case .snapshotPart(let key, let bytes): self = .snapshotPart(key: key, bytes: bytes)
        case .snapshotSeal(let key): self = .snapshotSeal(key: key)
        case .meta(let name, let value): self = .meta(name: name, value: value)
        case .remove(let key): self = .remove(key: key)
        }
    }
}
