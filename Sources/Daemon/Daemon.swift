import CRDT
import Dispatch
import Engine
import Foundation
import Logging
import Rings
import Store
import Synchronization
import Transport
import Wire

/// The crdtd process: opens the store, recovers the engine, starts the engine and writer threads and the
/// libuv loop, and runs until SIGTERM, SIGINT or `SHUTDOWN`.
///
/// ```
///  clients/peers ──▶ libuv loop ──SPSC──▶ engine thread ──SPSC──▶ writer thread (SQLite)
///                        ▲                                               │
///                        └──────────────── MPSC inbox (uv_async) ◀───────┘
/// ```
/// Replies and frames leave only after the writer committed the records of the same step.
public enum Daemon {
    /// Ring capacities. Each has a stated behaviour when full (see docs/architecture.md).
    public static let loopToEngineCapacity = 65_536
    /// Peer frames waiting for the engine; past it frames are dropped (peers retransmit what is not
    /// acknowledged, and digest repair covers the rest).
    public static let peerFramesCapacity = 16_384
    /// SWIM probes waiting for the engine, on a ring of their own that it drains first.
    public static let peerProbesCapacity = 1024
    public static let engineToWriterCapacity = 1024
    public static let inboxCapacity = 4096

    /// Runs the daemon to completion and returns the process exit code. `allocator` is the one that serves
    /// this process's mallocs (the crdtd executable links jemalloc).
    public static func run(_ configuration: Configuration, logger: Logger, allocator: Allocator = .libc) -> Int32 {
        do {
            return try runThrowing(configuration, logger: logger, allocator: allocator)
        } catch {
            logger.critical("crdtd cannot start: \(error)")
            return 1
        }
    }

    static func runThrowing(_ configuration: Configuration, logger: Logger, allocator: Allocator) throws -> Int32 {
        try configuration.validate()
        let envelope = try makeEnvelope(configuration, logger: logger)
        let authentication = ClientAuthentication(
            users: configuration.users,
            defaultPasswords: try configuration.clientPasswordFile.map(ClientAuthentication.readPasswordFile) ?? [])
        if !authentication.isRequired {
            logger.notice("clients are not authenticated: anyone who reaches \(configuration.clientAddr) can read and write (set client_password_file or users)")
        }

        try FileManager.default.createDirectory(atPath: configuration.dataDir, withIntermediateDirectories: true)
        let databasePath = configuration.databasePath
        if let backup = configuration.restoreFrom {
            try Store.restore(backup: backup, into: databasePath, forgetting: metaOfTheOldIdentity)
            logger.notice("restored \(backup) into \(databasePath); this node takes a new replica identity and catches up from its peers")
        }
        let store = try Store(path: databasePath, options: StoreOptions(synchronous: configuration.durability == "full" ? .full : .normal))
        let recovered = try store.load()
        let replica = try replicaIdentity(store: store, meta: recovered.meta, logger: logger)

        var engineConfiguration = EngineConfiguration(nodeID: configuration.nodeID, replica: replica)
        engineConfiguration.allowFaultInjection = configuration.allowFaultInjection
        var settings = ReplicationSettings(endpoint: try endpoint(configuration.peerAddr), envelope: envelope)
        settings.seeds = try configuration.seeds.map { text throws(ConfigurationError) in try seed(text).endpoint }
        settings.fanout = configuration.fanout
        settings.gossipIntervalMilliseconds = UInt64(configuration.gossipIntervalMilliseconds)
        settings.syncIntervalMilliseconds = max(UInt64(configuration.gossipIntervalMilliseconds) * 5, 200)
        settings.randomSeed = UInt64.random(in: .min ... .max)
        engineConfiguration.replication = settings
        let storageHealth = StorageHealth()
        let pid = getpid()
        let clientAddr = configuration.clientAddr
        let metricsAddr = configuration.metricsAddr ?? "off"  // where `crdtctl check --addr` scrapes /metrics
        let dataDir = configuration.dataDir
        // The writer reports each released step, so replies that need no commit leave at once.
        engineConfiguration.commitWait.reportsReleases = true
        // Large objects are serialised for their staged snapshots on a worker, not on the engine thread.
        let serialising = DispatchQueue(label: "crdtd-serialise", qos: .utility)
        engineConfiguration.background = { work in serialising.async(execute: work) }
        engineConfiguration.shellInfo = { section in
            switch section {
            case "server": return [("process_id", "\(pid)"), ("client_addr", clientAddr), ("metrics_addr", metricsAddr)]
            case "persistence":
                return [("data_dir", dataDir), ("durability", configuration.durability)] + storageHealth.infoFields()
            case "memory":
                // As Redis: `used_memory` is what the allocator has handed out, `_rss` what the process
                // holds; the difference is free memory kept in the allocator's arenas.
                return [("used_memory", "\(allocator.allocatedBytes())"), ("used_memory_rss", "\(residentBytes())"),
                        ("mem_allocator", allocator.name)]
            default: return []
            }
        }
        let engine = try Engine(configuration: engineConfiguration, recovery: EngineRecovery(recovered))
        logger.info("recovered", metadata: ["keys": "\(recovered.keys.count)", "replica": "\(replica)"])
        if let refusal = engine.decommissionedRefusal {
            logger.error("\(refusal)")
        }

        let metrics = DaemonMetrics.bootstrap()
        let engineDoorbell = Doorbell.parking()
        let toEngine = try SPSCRing<EngineMessage>(minimumCapacity: loopToEngineCapacity, consumerDoorbell: engineDoorbell)
        let peers = try PeerRings(doorbell: engineDoorbell)
        let toWriter = try SPSCRing<EngineOutput>(minimumCapacity: engineToWriterCapacity, consumerDoorbell: .parking(),
                                                  producerDoorbell: .parking())
        let wakerBox = WakerBox()
        let inbox = try MPSCRing<LoopMessage>(minimumCapacity: inboxCapacity, consumerDoorbell: .signalling { wakerBox.wake() })

        let loop = try EventLoop(logger: logger)
        let finished = DispatchSemaphore(value: 0)
        let exitCode = Mutex<Int32>(0)
        let frontend = Frontend(loop: loop, configuration: configuration, authentication: authentication, toEngine: toEngine,
                                peers: peers, inbox: inbox, storageHealth: storageHealth,
                                metrics: metrics, logger: logger) { code in
            exitCode.withLock { $0 = code }
            finished.signal()
        }
        let engineThread = EngineThread(engine: engine, inputs: toEngine, peers: peers, outputs: toWriter,
                                        inbox: inbox, health: storageHealth, allocator: allocator, metrics: metrics,
                                        logger: logger)
        let writerThread = WriterThread(store: store, dataDirectory: configuration.dataDir, outputs: toWriter, inbox: inbox,
                                        health: storageHealth, metrics: metrics, logger: logger)
        engineThread.start()
        writerThread.start()

        try loop.start()
        let started = Mutex<(any Error)?>(nil)
        let ready = DispatchSemaphore(value: 0)
        try loop.execute {
            do {
                let waker = try LoopWaker(loop: loop) { frontend.drainInbox() }
                wakerBox.set(waker)
                try frontend.start(waker: waker)
            } catch {
                started.withLock { $0 = error }
            }
            ready.signal()
        }
        ready.wait()
        if let error = started.withLock({ $0 }) {
            logger.critical("crdtd cannot listen: \(error)")
            toEngine.close()
            engineThread.join()
            writerThread.join()
            try? loop.execute { wakerBox.close() }
            try? loop.stop()
            return 1
        }

        finished.wait()
        let code = exitCode.withLock { $0 }
        if code == 0 {
            engineThread.join()
            writerThread.join()
        }
        try? loop.execute { wakerBox.close() }
        try? loop.stop()
        return code
    }

    static func endpoint(_ text: String) throws(ConfigurationError) -> PeerEndpoint {
        do {
            let address = try SocketAddress(parsing: text)
            return PeerEndpoint(host: address.host, port: address.port)
        } catch {
            throw .invalid(error.message)
        }
    }

    /// A seed as the engine knows it (the host as written: a name stays a name) and as the shell routes it.
    static func seed(_ text: String) throws(ConfigurationError) -> (endpoint: PeerEndpoint, address: HostAndPort) {
        do {
            let address = try HostAndPort(parsing: text)
            return (PeerEndpoint(host: address.numeric?.host ?? address.host, port: address.port), address)
        } catch {
            throw .invalid("seed: \(error.message)")
        }
    }

    static func makeEnvelope(_ configuration: Configuration, logger: Logger) throws -> Envelope {
        guard let path = configuration.clusterKeyFile else {
            logger.warning("""
                RUNNING INSECURE: peer traffic is neither encrypted nor authenticated (--insecure). \
                Anyone who can reach \(configuration.peerAddr) can read and write this node's data. \
                Use --cluster-key-file for anything but a local test.
                """)
            return try Envelope(label: configuration.clusterLabel, keyring: nil)
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError.unreadable(path: path, reason: "cannot read the cluster keyring: \(error.localizedDescription)")
        }
        return try Envelope(label: configuration.clusterLabel, keyring: try Keyring.parse(text))
    }

    /// Metadata a restored node must not reuse: its replica identity (a new one is drawn, so it never
    /// reissues a dot its peers have seen), and its delta sequence and what peers acknowledged of it, which
    /// count the old identity's deltas. The Lamport bound stays (the clock must not run backwards), and so
    /// do the marks of what it had received from each peer, which match the data in the same backup.
    static let metaOfTheOldIdentity = ["replica_id", "delta_seq", "acknowledged"]

    /// The node's replica identity: random at first start, persisted before anything else is written.
    static func replicaIdentity(store: Store, meta: [String: [UInt8]], logger: Logger) throws -> ReplicaID {
        if let bytes = meta["replica_id"] {
            guard bytes.count == 8 else { throw RecoveryError(description: "the stored replica_id is corrupt") }
            return ReplicaID(bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        }
        var id: UInt64 = 0
        while id == 0 { id = UInt64.random(in: .min ... .max) }
        try store.commit([.meta(name: "replica_id", value: withUnsafeBytes(of: id.littleEndian, Array.init))])
        logger.notice("new replica identity \(ReplicaID(id)) (first start with this data directory)")
        return ReplicaID(id)
    }

    /// Resident set size in bytes, from /proc (Linux); 0 where unavailable.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Lets the inbox doorbell, created before the loop runs, reach the loop's waker once it exists.
final class WakerBox: Sendable {
    private let waker = Mutex<LoopWaker?>(nil)
    func set(_ value: LoopWaker) { waker.withLock { $0 = value } }
    func wake() { _ = waker.withLock { $0 }?.wake() }
    func close() { waker.withLock { $0 }?.close() }
}

extension EngineRecovery {
    init(_ recovered: RecoveredState) {
        self.init(objects: recovered.keys.map { .init(key: $0.key, snapshot: $0.value.snapshot, deltas: $0.value.deltas) },
                  meta: recovered.meta)
    }
}
