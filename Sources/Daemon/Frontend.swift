import CoreMetrics
import Dispatch
import Foundation
import Glibc
import Engine
import Logging
import RESP
import Rings
import Store
import Transport
import Wire

/// Everything on the libuv loop thread: client and peer sockets, the metrics endpoint, the tick timer,
/// signals, and the inbox of effects from the writer. Parses client requests and peer streams into
/// engine inputs; writes replies and frames out.
final class Frontend: @unchecked Sendable {
    // Why @unchecked Sendable is safe: after `init`, every member is used only on `loop`'s thread (all
    // entry points are loop callbacks or closures passed to `loop.execute`); Transport checks that in
    // debug builds on every handle call. The rings are Sendable and meant to cross threads.

    let loop: EventLoop
    let configuration: Configuration
    let toEngine: SPSCRing<EngineMessage>
    let peers: PeerRings
    let inbox: MPSCRing<LoopMessage>
    let storageHealth: StorageHealth
    let metrics: DaemonMetrics
    let logger: Logger
    /// Called on the loop thread once shutdown finished (or failed): the main thread then stops the loop.
    let onFinished: @Sendable (Int32) -> Void

    private var clientServer: TCPServer?
    private var peerServer: TCPServer?
    private var udp: UDPSocket?
    private var metricsServer: MetricsHTTPServer?
    private var ticker: LoopTimer?
    private var retryTimer: LoopTimer?
    private var signals: [SignalHandler] = []
    private var waker: LoopWaker?

    private var clients: [UInt64: ClientSession] = [:]
    /// Clients with replies in `coalescedReplies`, in the order their first reply of this drain arrived.
    private var clientsWithReplies: [UInt64] = []
    /// A client's coalesced replies are written once they reach this size, so one drain never holds
    /// more than this per client on top of what the transport's pending-write budget allows.
    static let maxCoalescedReplyBytes = 64 << 10
    /// Clients whose parsed requests did not fit in the engine ring; retried every millisecond.
    private var stalled: [UInt64] = []
    private var peerStreams: [PeerEndpoint: PeerStream] = [:]
    /// Seeds known by host name, by the endpoint the engine sends to; and what they resolve to.
    private var namedSeeds: [PeerEndpoint: HostAndPort] = [:]
    private var peerNames = PeerNames()
    private var resolver: NameResolver?
    /// This node's peer address: a seed name that resolves to it is this node (every pod of a
    /// StatefulSet lists the same seeds, itself included), and frames to it are not sent.
    private var ownPeerAddress: SocketAddress?
    private var inboundPeers: [UInt64: (connection: TCPConnection, framer: StreamFramer)] = [:]
    private var shuttingDown = false
    private var pendingControl: [EngineMessage] = []
    private var exitCode: Int32 = 0
    let authentication: ClientAuthentication
    /// Stretched password checks run here, one at a time, never on the loop.
    private let authQueue = DispatchQueue(label: "crdtd-auth", qos: .utility)
    private var authFailures = AuthFailureLog()
    private var backupRunning = false

    /// A client connection and its protocol state.
    final class ClientSession {
        let connection: TCPConnection
        var parser: RESPRequestParser
        /// Requests parsed but not yet in the engine ring (the ring was full, or an `AUTH` is being checked).
        var backlog: [[Bytes]] = []
        /// Replies owed, in request order, with each request's name and parse time for the metrics.
        var replies = ReplyQueue()
        var identity: ClientIdentity
        /// The engine knows this client (`clientConnected` was sent): only once it authenticated, so that
        /// an unauthenticated client costs the engine nothing.
        var announced = false
        /// The request at the head of `backlog` is an `AUTH` whose stretched check runs off the loop.
        var verifying = false
        var closing = false
        /// Close once every reply owed was written (`QUIT`, or the engine's close after a protocol error).
        var closeWhenAnswered = false
        /// Replies released during the current inbox drain, written with one write at its end (or
        /// sooner, past `maxCoalescedReplyBytes`): one system call and one TCP segment per client per
        /// drain instead of one per reply.
        var coalescedReplies: [UInt8] = []
        /// The client shut down its sending side: close once every reply it is owed was written.
        var inputEnded = false

        var owesReplies: Bool { !replies.isEmpty || !backlog.isEmpty }

        init(connection: TCPConnection, limits: RESPLimits, identity: ClientIdentity) {
            self.connection = connection
            self.parser = RESPRequestParser(limits: limits)
            self.identity = identity
        }
    }

    /// The answer to a command that finds the engine's input ring full: the engine is a whole ring behind
    /// (a stuck disk, or more load than it can take), so the client hears it at once instead of stalling.
    static let busyReply = Array(("-BUSY crdtd is overloaded: \(Daemon.loopToEngineCapacity) commands are already waiting "
        + "for the engine; this command was not run, retry later\r\n").utf8)

    /// An outgoing stream to one peer; frames wait in a bounded queue while it connects.
    final class PeerStream {
        var connection: TCPConnection?
        var connected = false
        var pending: [[UInt8]] = []
        var pendingBytes = 0
    }

    /// Frames queued for a peer whose stream is still connecting; past it new frames are dropped (peers
    /// recover anything dropped through acknowledgements and digest repair).
    static let maxPendingPeerBytes = 8 << 20

    init(loop: EventLoop, configuration: Configuration, authentication: ClientAuthentication,
         toEngine: SPSCRing<EngineMessage>, peers: PeerRings, inbox: MPSCRing<LoopMessage>,
         storageHealth: StorageHealth,
         metrics: DaemonMetrics, logger: Logger, onFinished: @escaping @Sendable (Int32) -> Void) {
        self.loop = loop
        self.authentication = authentication
        self.configuration = configuration
        self.toEngine = toEngine
        self.peers = peers
        self.inbox = inbox
        self.storageHealth = storageHealth
        self.metrics = metrics
        self.logger = logger
        self.onFinished = onFinished
    }

    var requestLimits: RESPLimits {
        var limits = RESPLimits.default
        limits.maxBulkLength = configuration.limits.maxBulkBytes
        limits.maxRequestBytes = configuration.limits.maxRequestBytes
        limits.maxArguments = configuration.limits.maxArguments
        limits.maxBufferedBytes = max(limits.maxBufferedBytes, configuration.limits.maxRequestBytes)
        return limits
    }

    // MARK: Start

    /// Opens every socket. Loop thread. Throws (and the daemon exits) when an address cannot be bound.
    func start(waker: LoopWaker) throws {
        self.waker = waker
        let clientAddress = try SocketAddress(parsing: configuration.clientAddr)
        clientServer = try TCPServer(loop: loop, address: clientAddress, maxConnections: configuration.limits.maxClients,
                                     maxPendingWriteBytes: configuration.limits.maxPendingReplyBytes) { [unowned self] connection in
            accept(client: connection)
        }
        clientServer?.onRefuse = { [unowned self] connection in
            metrics.refusedClients.increment()
            try? connection.write("-ERR max number of clients reached\r\n")
            connection.closeAfterFlush()
        }
        let peerAddress = try SocketAddress(parsing: configuration.peerAddr)
        ownPeerAddress = peerAddress
        peerServer = try TCPServer(loop: loop, address: peerAddress, maxConnections: 1024) { [unowned self] connection in
            accept(peer: connection)
        }
        udp = try UDPSocket(loop: loop, bindTo: peerAddress, maxDatagramSize: 65_507) { [unowned self] bytes, sender in
            let endpoint = PeerEndpoint(host: sender.host, port: sender.port)
            submitPeerFrame(Array(bytes), from: endpoint)
        }
        if let metricsAddr = configuration.metricsAddr {
            let metrics = self.metrics
            let toEngine = self.toEngine
            let peers = self.peers
            let inbox = self.inbox
            let storageHealth = self.storageHealth
            metricsServer = try MetricsHTTPServer(loop: loop, address: try SocketAddress(parsing: metricsAddr)) { [unowned self] in
                metrics.connectedClients.record(clients.count)
                metrics.ringDepth("loop_to_engine", toEngine.count)
                metrics.ringDepth("peer_frames", peers.frames.count)
                metrics.ringDepth("peer_probes", peers.probes.count)
                metrics.ringDepth("to_loop", inbox.count)
                metrics.storage(storageHealth.snapshot)
                return metrics.render()
            }
        }
        for text in configuration.seeds {
            let seed = try Daemon.seed(text)
            if seed.address.numeric == nil { namedSeeds[seed.endpoint] = seed.address }
        }
        if !namedSeeds.isEmpty { resolver = NameResolver(loop: loop) }
        ticker = try LoopTimer(loop: loop)
        try ticker?.schedule(after: .milliseconds(10), repeatEvery: .milliseconds(10)) { [unowned self] _ in
            guard !shuttingDown else { return }
            submit(.input(.tick(monotonicMilliseconds: loop.now, wallMilliseconds: Self.wallMilliseconds())), dropIfFull: true)
        }
        retryTimer = try LoopTimer(loop: loop)
        for signal in [SIGTERM, SIGINT] {
            signals.append(try SignalHandler(loop: loop, signal: signal) { [unowned self] number in
                logger.notice("received signal \(number): shutting down gracefully")
                beginShutdown()
            })
        }
        logger.notice("crdtd is serving", metadata: [
            "node": "\(configuration.nodeID)", "clients": "\(clientAddress)", "peers": "\(peerAddress)",
            "metrics": "\(configuration.metricsAddr ?? "off")",
        ])
    }

    /// The wall clock in Unix milliseconds, the only way it reaches the engine (on every tick).
    static func wallMilliseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(max(0, now.tv_sec)) * 1000 + UInt64(max(0, now.tv_nsec)) / 1_000_000
    }

    // MARK: Clients

    private func accept(client connection: TCPConnection) {
        let identity: ClientIdentity = authentication.isRequired
            ? .anonymous : .user(name: ClientAuthentication.defaultUser, readOnly: false)
        let session = ClientSession(connection: connection, limits: requestLimits, identity: identity)
        let id = connection.id
        clients[id] = session
        metrics.connectedClients.record(clients.count)
        connection.onRead = { [unowned self] connection, bytes in read(client: connection.id, bytes) }
        connection.onEndOfInput = { [unowned self] connection in
            guard let session = clients[connection.id] else { return connection.close() }
            session.inputEnded = true
            if !session.owesReplies { connection.closeAfterFlush() }
        }
        connection.onClose = { [unowned self] connection, _ in
            let announced = clients[connection.id]?.announced ?? false
            clients[connection.id] = nil
            metrics.connectedClients.record(clients.count)
            if announced { submit(.input(.clientDisconnected(ClientID(connection.id))), dropIfFull: false) }
        }
        if !authentication.isRequired { announce(session) }
        do {
            try connection.startReading()
        } catch {
            connection.close()
        }
    }

    /// Tells the engine about a client it may now hear from.
    private func announce(_ session: ClientSession) {
        guard !session.announced else { return }
        session.announced = true
        let address = session.connection.peerAddress.map { "\($0)" } ?? "?"
        submit(.input(.clientConnected(ClientID(session.connection.id), address: address)), dropIfFull: false)
    }

    private func read(client id: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard let session = clients[id], !session.closing else { return }
        do {
            try session.parser.append(bytes)
            while let request = try session.parser.next() {
                session.backlog.append(request)
            }
        } catch {
            // The stream cannot be resynchronised: answer in order and disconnect. A client the engine
            // knows is answered through it (after its earlier replies); another one by the shell.
            session.closing = true
            session.connection.stopReading()
            let message = "ERR Protocol error: \(error)"
            if session.announced {
                submit(.input(.clientProtocolError(ClientID(id), message: message)), dropIfFull: false)
            } else {
                session.backlog.removeAll()
                let line = message.map { $0 == "\r" || $0 == "\n" ? " " : $0 }
                session.replies.answer(name: "unknown", started: DispatchTime.now().uptimeNanoseconds,
                                       reply: Array("-\(String(line))\r\n".utf8))
                session.closeWhenAnswered = true
                release(session)
            }
            return
        }
        forwardBacklog(of: id, session)
    }

    /// Moves a client's parsed requests into the engine ring, or answers them in the shell (see
    /// `ClientGate`); if the ring is full, stops reading from that client until there is room
    /// (backpressure on the one client that is ahead, not on the others).
    private func forwardBacklog(of id: UInt64, _ session: ClientSession) {
        // Connection events waiting for room go first, so a session never sees its commands before it exists.
        retryControl()
        var index = 0
        let now = DispatchTime.now().uptimeNanoseconds
        forwarding: while index < session.backlog.count && pendingControl.isEmpty && !session.verifying {
            let request = session.backlog[index]
            let name = String(decoding: request.first?.prefix(32) ?? [], as: UTF8.self).lowercased()
            switch ClientGate.decide(request, name: name, identity: session.identity, authRequired: authentication.isRequired) {
            case .forward:
                switch toEngine.tryPush(.input(.clientCommand(ClientID(id), request))) {
                case .pushed:
                    session.replies.expectEngine(name: name, started: now)
                case .full:
                    // Overload says so: the engine is a whole ring behind, so this request is refused in
                    // its place among the replies instead of the connection stalling without a word.
                    metrics.ringFull("loop_to_engine")
                    session.replies.answer(name: name, started: now, reply: Self.busyReply)
                case .closed:
                    break forwarding
                }
            case .answer(let reply, let close):
                session.replies.answer(name: name, started: now, reply: Array(reply.utf8))
                if close {
                    session.closeWhenAnswered = true
                    session.closing = true
                    session.connection.stopReading()
                    index = session.backlog.count
                    break forwarding
                }
            case .backup(let file):
                let ticket = session.replies.reserve(name: name, started: now)
                startBackup(named: file, for: id, ticket: ticket)
            case .authenticate(let user, let password, let then):
                if let outcome = authentication.quickCheck(user: user, password: password) {
                    if let next = authenticated(session, user: user, outcome: outcome, then: then, started: now) {
                        // The HELLO without its AUTH part goes to the engine like any request.
                        session.backlog[index] = next
                        continue forwarding
                    }
                } else {
                    session.verifying = true
                    verifySlowly(id, session, user: user, password: password)
                    break forwarding
                }
            }
            index += 1
        }
        session.backlog.removeFirst(min(index, session.backlog.count))
        release(session)
        // Replies the shell gave leave now; the engine's leave at the end of an inbox drain.
        flushReplies(of: session)
        if session.closing { return }
        if session.backlog.isEmpty {
            try? session.connection.startReading()
        } else {
            session.connection.stopReading()
            // An AUTH being checked resumes the session itself; only a full ring needs the retry timer.
            guard !session.verifying else { return }
            if !stalled.contains(id) { stalled.append(id) }
            scheduleRetry()
        }
    }

    /// Applies an authentication outcome: the session's identity, the reply, the log and the metric.
    /// Returns the request to forward next (a `HELLO` without its `AUTH` part) when there is one.
    private func authenticated(_ session: ClientSession, user: String, outcome: ClientAuthentication.Outcome,
                               then next: [Bytes]?, started: UInt64) -> [Bytes]? {
        let name = next == nil ? "auth" : "hello"
        switch outcome {
        case .accepted(let readOnly):
            session.identity = .user(name: user, readOnly: readOnly)
            announce(session)
            if let next { return next }
            session.replies.answer(name: name, started: started, reply: Array(ClientGate.ok.utf8))
        case .rejected:
            metrics.authFailures.increment()
            let address = session.connection.peerAddress.map { "\($0)" } ?? "?"
            if let line = authFailures.failed(user: user, from: address, now: loop.now) { logger.warning("\(line)") }
            session.replies.answer(name: name, started: started, reply: Array(ClientGate.wrongPass.utf8))
        }
        return nil
    }

    /// Runs a stretched password check on the authentication queue, then resumes the session on the loop.
    /// The session reads nothing meanwhile, so the requests behind the `AUTH` wait for its outcome.
    private func verifySlowly(_ id: UInt64, _ session: ClientSession, user: String, password: [UInt8]) {
        let authentication = self.authentication
        let started = DispatchTime.now().uptimeNanoseconds
        let token = ObjectIdentifier(session)
        authQueue.async { [self] in
            let outcome = authentication.check(user: user, password: password)
            try? loop.execute { [self] in
                guard let session = clients[id], ObjectIdentifier(session) == token, session.verifying, !session.backlog.isEmpty else { return }
                session.verifying = false
                let request = session.backlog[0]
                let then = request.first.map { String(decoding: $0.prefix(8), as: UTF8.self).lowercased() } == "hello"
                    ? ClientGate.helloCredentials(request)?.2 : nil
                if let next = authenticated(session, user: user, outcome: outcome, then: then, started: started) {
                    session.backlog[0] = next
                } else {
                    session.backlog.removeFirst()
                }
                forwardBacklog(of: id, session)
            }
        }
    }

    /// Writes a backup on a thread of its own (a read-only SQLite connection doing `VACUUM INTO`), so
    /// neither the loop nor the engine nor the writer waits for it; the reply comes when it is on disk.
    private func startBackup(named file: String, for id: UInt64, ticket: ReplyQueue.Ticket) {
        guard !backupRunning else {
            answerBackup(id, ticket, RESPReply.error("ERR a backup is already running; try again when it finishes"))
            return
        }
        backupRunning = true
        let directory = configuration.resolvedBackupDir
        let database = configuration.databasePath
        let destination = (directory as NSString).appendingPathComponent(file)
        let logger = self.logger
        let started = DispatchTime.now().uptimeNanoseconds
        let thread = Thread { [self] in
            let reply: RESPReply
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let bytes = try Store.backup(databaseAt: database, to: destination)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                logger.notice("backup written", metadata: ["path": "\(destination)", "bytes": "\(bytes)", "seconds": "\(seconds)"])
                metrics.backups(succeeded: true)
                reply = .bulkString(Array(destination.utf8))
            } catch {
                logger.error("backup failed", metadata: ["path": "\(destination)", "error": "\(error)"])
                metrics.backups(succeeded: false)
                reply = .error("ERR backup failed: \(error)".replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " "))
            }
            try? loop.execute { [self] in
                backupRunning = false
                answerBackup(id, ticket, reply)
            }
        }
        thread.name = "crdtd-backup"
        thread.start()
    }

    /// The worker thread that builds large replies (`Effect.deferredReply`): one, so that several large
    /// reads at once take one core, not every core the engine and the loop need.
    static let largeReplies = DispatchQueue(label: "crdtd-large-replies", qos: .utility)

    private func answerDeferred(_ id: UInt64, _ ticket: ReplyQueue.Ticket, _ bytes: [UInt8]) {
        guard let session = clients[id] else { return }
        session.replies.fill(ticket, reply: bytes)
        release(session)
        flushReplies(of: session)
    }

    private func answerBackup(_ id: UInt64, _ ticket: ReplyQueue.Ticket, _ reply: RESPReply) {
        guard let session = clients[id] else { return }
        session.replies.fill(ticket, reply: reply.encoded(protocol: .resp2))
        release(session)
        flushReplies(of: session)
    }

    /// Moves every reply that is next in order into the client's coalesced output.
    private func release(_ session: ClientSession) {
        let id = session.connection.id
        let now = DispatchTime.now().uptimeNanoseconds
        while let entry = session.replies.popReady() {
            guard let bytes = entry.reply else { continue }
            if let name = entry.name {
                metrics.command(CommandNames.canonical(name), failed: bytes.first == UInt8(ascii: "-"), nanoseconds: now &- entry.started)
            }
            if session.coalescedReplies.isEmpty { clientsWithReplies.append(id) }
            session.coalescedReplies.append(contentsOf: entry.pushedBefore)
            session.coalescedReplies.append(contentsOf: bytes)
            if session.coalescedReplies.count >= Self.maxCoalescedReplyBytes { flushReplies(of: session) }
        }
        if session.closeWhenAnswered && session.replies.isEmpty {
            flushReplies(of: session)
            session.closing = true
            session.connection.stopReading()
            session.connection.closeAfterFlush()
        }
    }

    private func scheduleRetry() {
        try? retryTimer?.schedule(after: .milliseconds(1)) { [unowned self] _ in
            let waiting = stalled
            stalled.removeAll()
            for id in waiting {
                if let session = clients[id] { forwardBacklog(of: id, session) }
            }
            retryControl()
        }
    }

    // MARK: Peers

    private func accept(peer connection: TCPConnection) {
        inboundPeers[connection.id] = (connection, StreamFramer(maximumFrameSize: PeerFrameLimit.bytes))
        connection.onRead = { [unowned self] connection, bytes in
            guard var entry = inboundPeers[connection.id] else { return }
            entry.framer.append(bytes)
            let source = connection.peerAddress.map { PeerEndpoint(host: $0.host, port: $0.port) } ?? PeerEndpoint(host: "?", port: 0)
            do {
                while let frame = try entry.framer.next() { submitPeerFrame(frame, from: source) }
                inboundPeers[connection.id] = entry
            } catch {
                logger.warning("closing a peer stream that declared an oversized frame", metadata: ["peer": "\(source)"])
                inboundPeers[connection.id] = nil
                connection.close()
            }
        }
        connection.onEndOfInput = { connection in connection.close() }
        connection.onClose = { [unowned self] connection, _ in inboundPeers[connection.id] = nil }
        try? connection.startReading()
    }

    private func submitPeerFrame(_ frame: [UInt8], from endpoint: PeerEndpoint) {
        guard !shuttingDown else { return }
        // A full ring drops the frame: peers retransmit until acknowledged, and repair covers the rest.
        if let full = peers.submit(PeerFrameMessage(bytes: frame, source: endpoint)) { metrics.ringFull(full) }
    }

    private func send(frame: [UInt8], to endpoint: PeerEndpoint, via channel: FrameChannel) {
        let address: SocketAddress
        if !namedSeeds.isEmpty, let name = namedSeeds[endpoint] {
            guard let resolved = route(to: name, endpoint: endpoint), resolved != ownPeerAddress else { return }
            address = resolved
        } else {
            guard let numeric = try? SocketAddress(host: endpoint.host, port: endpoint.port) else {
                logger.warning("cannot send to peer address \(endpoint): not an IP address")
                return
            }
            address = numeric
        }
        if channel == .datagram, let udp {
            try? udp.send(frame, to: address)
            return
        }
        let stream = peerStreams[endpoint] ?? PeerStream()
        peerStreams[endpoint] = stream
        let bytes = StreamFramer.encode(frame)
        if stream.connected, let connection = stream.connection {
            do { try connection.write(bytes) } catch {
                connection.close()
            }
            return
        }
        guard stream.pendingBytes + bytes.count <= Self.maxPendingPeerBytes else { return }
        stream.pending.append(bytes)
        stream.pendingBytes += bytes.count
        guard stream.connection == nil else { return }
        stream.connection = try? TCPConnection.connect(to: address, on: loop, maxPendingWriteBytes: 64 << 20) { [unowned self] result in
            switch result {
            case .success(let connection):
                stream.connected = true
                for pending in stream.pending { try? connection.write(pending) }
                stream.pending.removeAll()
                stream.pendingBytes = 0
                connection.onClose = { [unowned self] _, _ in
                    if peerStreams[endpoint] === stream { peerStreams[endpoint] = nil }
                }
                connection.onRead = { _, _ in }
                try? connection.startReading()
            case .failure:
                if peerStreams[endpoint] === stream { peerStreams[endpoint] = nil }
            }
        }
        if stream.connection == nil { peerStreams[endpoint] = nil }
    }

    /// Where a seed known by name is now, starting a lookup when one is due. Until its first answer
    /// the frame is dropped: the engine keeps probing seeds it has not heard from.
    private func route(to name: HostAndPort, endpoint: PeerEndpoint) -> SocketAddress? {
        let route = peerNames.route(name, now: loop.now)
        if route.lookUp, let resolver {
            do {
                try resolver.resolve(name.host, port: name.port) { [unowned self] result in
                    resolved(name, endpoint: endpoint, result)
                }
            } catch {
                resolved(name, endpoint: endpoint, .failure(error))
            }
        }
        return route.address
    }

    private func resolved(_ name: HostAndPort, endpoint: PeerEndpoint, _ result: Result<[SocketAddress], TransportError>) {
        switch result {
        case .success(let addresses):
            guard peerNames.resolved(name, to: addresses, now: loop.now) else { return }
            logger.notice("seed \(name) resolves to \(addresses.map(\.description).joined(separator: ", "))")
            // A stream still open to the old address is closed; the next frame connects to the new one.
            peerStreams[endpoint]?.connection?.close()
        case .failure(let error):
            let retry = peerNames.failed(name, now: loop.now)
            let kept = peerNames.entries[name]?.addresses.isEmpty == false ? " (still using its last addresses)" : ""
            logger.warning("seed \(name) does not resolve: \(error.message); retrying in \(retry / 1000) s\(kept)")
        }
    }

    // MARK: Effects from the writer

    /// Drains the inbox. Wake-ups coalesce, so every wake drains everything.
    func drainInbox() {
        // Re-arm first: a producer that publishes after this line schedules another wake-up.
        inbox.consumerDoorbell?.willDrain()
        _ = inbox.drain { message in
            switch message {
            case .effects(let effects):
                for effect in effects { perform(effect) }
            case .writerFinished:
                flushCoalescedReplies()
                finishShutdown()
            case .fatal(let reason):
                flushCoalescedReplies()
                logger.critical("\(reason)")
                exitCode = 1
                beginShutdown()
                finishShutdown()
            }
        }
        flushCoalescedReplies()
    }

    private func flushCoalescedReplies() {
        for id in clientsWithReplies {
            if let session = clients[id] { flushReplies(of: session) }
        }
        clientsWithReplies.removeAll(keepingCapacity: true)
    }

    private func flushReplies(of session: ClientSession) {
        guard !session.coalescedReplies.isEmpty else { return }
        defer { session.coalescedReplies.removeAll(keepingCapacity: session.coalescedReplies.count <= Self.maxCoalescedReplyBytes) }
        do {
            try session.connection.write(session.coalescedReplies)
            if session.inputEnded && !session.owesReplies { session.connection.closeAfterFlush() }
        } catch {
            // The client is not reading its replies: over the pending-reply limit, it is disconnected.
            logger.warning("disconnecting a client over its pending-reply limit", metadata: ["client": "\(session.connection.id)"])
            session.closing = true
            session.connection.close()
        }
    }

    private func perform(_ effect: Effect) {
        switch effect {
        case .reply(let client, let bytes):
            guard let session = clients[client.rawValue] else { return }
            session.replies.engineAnswered(bytes)
            release(session)
        case .push(let client, let bytes):
            guard let session = clients[client.rawValue], !session.closing else { return }
            let queued = session.replies.pushed(bytes)
            let unread = queued + session.coalescedReplies.count + session.connection.pendingWriteBytes
            guard unread <= configuration.limits.maxPendingPubSubBytes else {
                // A subscriber that does not read its messages is cut off rather than held in memory
                // without bound (Redis's client-output-buffer-limit pubsub); the others are unaffected.
                logger.warning("disconnecting a subscriber over its pub/sub output limit", metadata: [
                    "client": "\(client.rawValue)", "unread_bytes": "\(unread)",
                    "limit_bytes": "\(configuration.limits.maxPendingPubSubBytes)",
                ])
                metrics.pubSubDisconnects.increment()
                session.closing = true
                session.connection.close()
                return
            }
            release(session)
        case .deferredReply(let client, let deferred):
            guard let session = clients[client.rawValue] else { return }
            let ticket = session.replies.engineAnsweredLater()
            let loop = loop
            // Sorted and encoded on the worker, from the engine's immutable copy; the loop thread only
            // puts the bytes in their place. Later replies of this client wait behind it, in order.
            Self.largeReplies.async {
                let bytes = deferred.encode()
                try? loop.execute { [self] in answerDeferred(client.rawValue, ticket, bytes) }
            }
        case .closeClient(let client):
            guard let session = clients[client.rawValue] else { return }
            session.closeWhenAnswered = true
            release(session)
        case .send(let frame, let endpoint, let channel):
            send(frame: frame, to: endpoint, via: channel)
        case .shutdown:
            beginShutdown()
        }
    }

    // MARK: Shutdown

    /// Stop accepting, stop reading, let the engine finish what it has, say goodbye to peers, and let the
    /// writer commit and close the store. `finishShutdown` runs when the writer is done.
    func beginShutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        // A writer waiting for space would wait for ever: it gives up, and the process exits non-zero.
        storageHealth.requestStop()
        clientServer?.close()
        clientServer = nil
        for session in clients.values { session.connection.stopReading() }
        ticker?.cancel()
        pendingControl = [.leave, .stop]
        retryControl()
    }

    private func retryControl() {
        while let next = pendingControl.first {
            guard case .pushed = toEngine.tryPush(next) else {
                scheduleRetry()
                return
            }
            pendingControl.removeFirst()
        }
    }

    /// The writer is done: flush every client's replies, then close everything. Clients get up to
    /// `flushTimeout` to read what they are owed; the loop stops once they are all closed.
    private func finishShutdown() {
        guard !finishing else { return }
        finishing = true
        for session in clients.values { session.connection.closeAfterFlush() }
        for stream in peerStreams.values { stream.connection?.closeAfterFlush() }
        for entry in inboundPeers.values { entry.connection.close() }
        peerServer?.close()
        resolver?.cancelAll()
        udp?.close()
        metricsServer?.close()
        ticker?.close()
        for signal in signals { signal.close() }
        let deadline = loop.now + Self.flushTimeoutMilliseconds
        retryTimer?.close()
        finishTimer = try? LoopTimer(loop: loop)
        try? finishTimer?.schedule(after: .milliseconds(5), repeatEvery: .milliseconds(5)) { [unowned self] timer in
            guard clients.isEmpty || loop.now >= deadline else { return }
            timer.close()
            logger.notice("crdtd stopped", metadata: ["exit": "\(exitCode)"])
            onFinished(exitCode)
        }
    }

    private var finishing = false
    private var finishTimer: LoopTimer?
    static let flushTimeoutMilliseconds: UInt64 = 3000

    /// Pushes a message for the engine. Inputs that can be lost (ticks, datagrams) are dropped when the ring
    /// is full; the others (connect/disconnect events) wait for room.
    private func submit(_ message: EngineMessage, dropIfFull: Bool) {
        switch toEngine.tryPush(message) {
        case .pushed, .closed:
            return
        case .full(let back):
            metrics.ringFull("loop_to_engine")
            if !dropIfFull {
                pendingControl.insert(back, at: pendingControl.firstIndex { if case .leave = $0 { true } else { false } } ?? pendingControl.endIndex)
                scheduleRetry()
            }
        }
    }
}

/// Command names as metric labels: known names as they are, anything else as "unknown", so a client
/// cannot create unbounded label values.
enum CommandNames {
    static let known = Engine.commandNames.union(ClientGate.shellCommands)

    static func canonical(_ name: String) -> String { known.contains(name) ? name : "unknown" }
}
