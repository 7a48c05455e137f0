import CoreMetrics
import Engine
import Foundation
import Logging
import Rings
import Store

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
final class EngineThread: @unchecked Sendable {
    // Why @unchecked Sendable is safe: `engine` is touched only by the thread `start()` creates (the
    // initializer runs before it starts and nothing reads it afterwards); the rings are Sendable.
    private var engine: Engine
    private let inputs: SPSCRing<EngineMessage>
    private let peerFrames: SPSCRing<PeerFrameMessage>
    private let outputs: SPSCRing<EngineOutput>
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

    init(engine: Engine, inputs: SPSCRing<EngineMessage>, peerFrames: SPSCRing<PeerFrameMessage>,
         outputs: SPSCRing<EngineOutput>, metrics: DaemonMetrics, logger: Logger) {
        precondition(inputs.consumerDoorbell != nil && inputs.consumerDoorbell === peerFrames.consumerDoorbell,
                     "the engine thread waits on one doorbell shared by its two input rings")
        self.engine = engine
        self.inputs = inputs
        self.peerFrames = peerFrames
        self.outputs = outputs
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
        var exported = ReplicationStats()
        while !stopping {
            doorbell.wait(until: { inputs.hasElementsOrIsClosed || peerFrames.hasElementsOrIsClosed })
            if inputs.isFinished { break }
            _ = inputs.popAll(into: &batch, max: Self.maximumBatch)
            var output = EngineOutput()
            for message in batch {
                switch message {
                case .input(let input):
                    if case .tick(let now, _) = input, now >= lastExport + 1000 {
                        lastExport = now
                        let stats = engine.replicationStats
                        metrics.exportEngine(keysByType: engine.keysByType, members: engine.membersByState,
                                             replication: stats, previous: exported)
                        exported = stats
                    }
                    engine.handle(input, into: &output)
                case .leave:
                    engine.leave(into: &output)
                case .stop:
                    stopping = true
                }
            }
            let budget = batch.isEmpty ? Self.peerBytesPerIdleBatch : Self.peerBytesPerBusyBatch
            batch.removeAll(keepingCapacity: true)
            var spent = 0
            while spent < budget, case .element(let frame) = peerFrames.tryPop() {
                spent += frame.bytes.count
                engine.handle(.peerFrame(frame.bytes, from: frame.source), into: &output)
            }
            engine.flush(into: &output)
            if !output.isEmpty, case .closed = outputs.push(output) {
                logger.error("the writer stopped before the engine; dropping a batch")
            }
        }
        outputs.close()
        logger.debug("engine thread stopped")
    }
}

/// The writer thread: commits everything the engine produced since the last commit in one transaction
/// (group commit), then releases those batches' effects to the loop, in order.
final class WriterThread: @unchecked Sendable {
    // Why @unchecked Sendable is safe: `store` is used only by the thread `start()` creates; it is
    // handed over before the thread starts and closed by that thread.
    private let store: Store
    private let outputs: SPSCRing<EngineOutput>
    private let inbox: MPSCRing<LoopMessage>
    private let metrics: DaemonMetrics
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    init(store: Store, outputs: SPSCRing<EngineOutput>, inbox: MPSCRing<LoopMessage>, metrics: DaemonMetrics, logger: Logger) {
        self.store = store
        self.outputs = outputs
        self.inbox = inbox
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
        while true {
            guard case .element(let first) = outputs.pop() else { break }
            batch.append(first)
            _ = outputs.popAll(into: &batch, max: 1023)
            records.removeAll(keepingCapacity: true)
            var effects: [Effect] = []
            for output in batch {
                records.append(contentsOf: output.records.map(StoreRecord.init))
                effects.append(contentsOf: output.effects)
            }
            batch.removeAll(keepingCapacity: true)
            if !records.isEmpty {
                let start = DispatchTime.now().uptimeNanoseconds
                do {
                    try store.commit(records)
                } catch {
                    // Fail-stop: the engine's memory holds writes that are not durable, so nothing of this
                    // batch may be acknowledged. A restart recovers exactly what was committed.
                    deliver(.fatal("the store failed to commit \(records.count) records: \(error)"))
                    return
                }
                metrics.commits.increment()
                metrics.commitBatchRecords.record(records.count)
                metrics.commitLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
            }
            if !effects.isEmpty { deliver(.effects(effects)) }
        }
        store.close()
        deliver(.writerFinished)
        logger.debug("writer thread stopped")
    }

    /// The loop's inbox is bounded: when it is full the writer waits (the loop is draining it), which in
    /// turn holds back the engine. Effects are never dropped.
    private func deliver(_ message: LoopMessage) {
        var pending = message
        while true {
            switch inbox.tryPush(pending) {
            case .pushed, .closed:
                return
            case .full(let back):
                pending = back
                metrics.ringFull("writer_to_loop")
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
        case .meta(let name, let value): self = .meta(name: name, value: value)
        }
    }
}
