import CoreMetrics
import Dispatch
import Glibc
import Engine
import Logging
import RESP
import Rings
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
    let peerFrames: SPSCRing<PeerFrameMessage>
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
    private var inboundPeers: [UInt64: (connection: TCPConnection, framer: StreamFramer)] = [:]
    private var shuttingDown = false
    private var pendingControl: [EngineMessage] = []
    private var exitCode: Int32 = 0

    /// A client connection and its protocol state.
    final class ClientSession {
        let connection: TCPConnection
        var parser: RESPRequestParser
        /// Requests parsed but not yet in the engine ring (the ring was full).
        var backlog: [[Bytes]] = []
        /// Per request in flight, in order: its name and when it was parsed, to time and count it when
        /// its reply leaves, and the reply itself when the loop answered it without the engine (`-BUSY`):
        /// such a reply waits for the engine's replies to the requests before it, so order is kept.
        var inFlight: [InFlightRequest] = []
        var inFlightHead = 0
        var closing = false
        /// Replies released during the current inbox drain, written with one write at its end (or
        /// sooner, past `maxCoalescedReplyBytes`): one system call and one TCP segment per client per
        /// drain instead of one per reply.
        var coalescedReplies: [UInt8] = []
        /// The client shut down its sending side: close once every reply it is owed was written.
        var inputEnded = false

        var owesReplies: Bool { inFlightHead < inFlight.count || !backlog.isEmpty }

        init(connection: TCPConnection, limits: RESPLimits) {
            self.connection = connection
            self.parser = RESPRequestParser(limits: limits)
        }
    }

    struct InFlightRequest {
        var name: String
        var started: UInt64
        var localReply: [UInt8]? = nil
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

    init(loop: EventLoop, configuration: Configuration, toEngine: SPSCRing<EngineMessage>,
         peerFrames: SPSCRing<PeerFrameMessage>, inbox: MPSCRing<LoopMessage>, storageHealth: StorageHealth,
         metrics: DaemonMetrics, logger: Logger, onFinished: @escaping @Sendable (Int32) -> Void) {
        self.loop = loop
        self.configuration = configuration
        self.toEngine = toEngine
        self.peerFrames = peerFrames
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
            let peerFrames = self.peerFrames
            let inbox = self.inbox
            let storageHealth = self.storageHealth
            metricsServer = try MetricsHTTPServer(loop: loop, address: try SocketAddress(parsing: metricsAddr)) { [unowned self] in
                metrics.connectedClients.record(clients.count)
                metrics.ringDepth("loop_to_engine", toEngine.count)
                metrics.ringDepth("peer_frames", peerFrames.count)
                metrics.ringDepth("to_loop", inbox.count)
                metrics.storage(storageHealth.snapshot)
                return metrics.render()
            }
        }
        ticker = try LoopTimer(loop: loop)
        try ticker?.schedule(after: .milliseconds(10), repeatEvery: .milliseconds(10)) { [unowned self] _ in
            guard !shuttingDown else { return }
            submit(.input(.tick(monotonicMilliseconds: loop.now)), dropIfFull: true)
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

    // MARK: Clients

    private func accept(client connection: TCPConnection) {
        let session = ClientSession(connection: connection, limits: requestLimits)
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
            clients[connection.id] = nil
            metrics.connectedClients.record(clients.count)
            submit(.input(.clientDisconnected(ClientID(connection.id))), dropIfFull: false)
        }
        let address = connection.peerAddress.map { "\($0)" } ?? "?"
        submit(.input(.clientConnected(ClientID(id), address: address)), dropIfFull: false)
        do {
            try connection.startReading()
        } catch {
            connection.close()
        }
    }

    private func read(client id: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard let session = clients[id], !session.closing else { return }
        do {
            try session.parser.append(bytes)
            while let request = try session.parser.next() {
                session.backlog.append(request)
            }
        } catch {
            // The stream cannot be resynchronised: answer in order (through the engine) and disconnect.
            session.closing = true
            session.connection.stopReading()
            submit(.input(.clientProtocolError(ClientID(id), message: "ERR Protocol error: \(error)")), dropIfFull: false)
            return
        }
        forwardBacklog(of: id, session)
    }

    /// Moves a client's parsed requests into the engine ring; if it is full, stops reading from that
    /// client until there is room (backpressure on the one client that is ahead, not on the others).
    private func forwardBacklog(of id: UInt64, _ session: ClientSession) {
        // Connection events waiting for room go first, so a session never sees its commands before it exists.
        retryControl()
        var index = 0
        let now = DispatchTime.now().uptimeNanoseconds
        var refused = false
        loop: while index < session.backlog.count && pendingControl.isEmpty {
            let request = session.backlog[index]
            let name = String(decoding: request.first?.prefix(32) ?? [], as: UTF8.self).lowercased()
            switch toEngine.tryPush(.input(.clientCommand(ClientID(id), request))) {
            case .pushed:
                session.inFlight.append(InFlightRequest(name: name, started: now))
            case .full:
                metrics.ringFull("loop_to_engine")
                session.inFlight.append(InFlightRequest(name: name, started: now, localReply: Self.busyReply))
                refused = true
            case .closed:
                break loop
            }
            index += 1
        }
        if refused {
            releaseLocalReplies(of: session)
            flushReplies(of: session)
        }
        session.backlog.removeFirst(index)
        if session.backlog.isEmpty {
            if !session.closing { try? session.connection.startReading() }
        } else {
            session.connection.stopReading()
            if !stalled.contains(id) { stalled.append(id) }
            scheduleRetry()
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
        if case .full = peerFrames.tryPush(PeerFrameMessage(bytes: frame, source: endpoint)) {
            metrics.ringFull("peer_frames")
        }
    }

    private func send(frame: [UInt8], to endpoint: PeerEndpoint, via channel: FrameChannel) {
        guard let address = try? SocketAddress(host: endpoint.host, port: endpoint.port) else {
            logger.warning("cannot send to peer address \(endpoint): not an IP address")
            return
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

    /// Counts and times the oldest request in flight, whose reply is leaving.
    private func completeHead(of session: ClientSession, failed: Bool) {
        let request = session.inFlight[session.inFlightHead]
        session.inFlightHead += 1
        if session.inFlightHead > 64 && session.inFlightHead * 2 > session.inFlight.count {
            session.inFlight.removeFirst(session.inFlightHead)
            session.inFlightHead = 0
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds &- request.started
        metrics.command(CommandNames.canonical(request.name), failed: failed, nanoseconds: elapsed)
    }

    /// Appends the loop's own replies that are next in line (every engine reply before them has left).
    private func releaseLocalReplies(of session: ClientSession) {
        while session.inFlightHead < session.inFlight.count, let reply = session.inFlight[session.inFlightHead].localReply {
            completeHead(of: session, failed: true)
            session.coalescedReplies.append(contentsOf: reply)
        }
    }

    private func perform(_ effect: Effect) {
        switch effect {
        case .reply(let client, let bytes):
            guard let session = clients[client.rawValue] else { return }
            if session.coalescedReplies.isEmpty { clientsWithReplies.append(client.rawValue) }
            if session.inFlightHead < session.inFlight.count {
                completeHead(of: session, failed: bytes.first == UInt8(ascii: "-"))
            }
            session.coalescedReplies.append(contentsOf: bytes)
            releaseLocalReplies(of: session)
            if session.coalescedReplies.count >= Self.maxCoalescedReplyBytes { flushReplies(of: session) }
        case .closeClient(let client):
            guard let session = clients[client.rawValue] else { return }
            flushReplies(of: session)
            session.closing = true
            session.connection.stopReading()
            session.connection.closeAfterFlush()
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
    static let known = Engine.commandNames

    static func canonical(_ name: String) -> String { known.contains(name) ? name : "unknown" }
}
