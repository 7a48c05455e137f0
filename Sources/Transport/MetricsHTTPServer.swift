internal import CHTTPParser
import Logging

/// A minimal HTTP/1.1 server for Prometheus scrapes: `GET /metrics` answers the text produced by a
/// caller-supplied closure (`text/plain; version=0.0.4`), any other path 404, any other method 405,
/// a malformed request 400, headers over the limit 431, a body over the limit 413; a connection over
/// the connection limit gets 503 and is closed.
///
/// Requests are parsed with `http_parser`. Keep-alive and pipelining follow the request
/// (`http_should_keep_alive`); an error response always closes the connection after it is sent.
/// Loop-bound like every handle: create, use and close it on the loop thread.
public final class MetricsHTTPServer {
    /// Default limit on request-line plus header bytes of one request.
    public static let defaultMaxHeaderBytes = 8 * 1024
    /// Default limit on a request body (scrapes send none).
    public static let defaultMaxBodyBytes = 4 * 1024
    /// Default limit on simultaneous connections (scrapers are few).
    public static let defaultMaxConnections = 64
    /// Default time a connection may stay without receiving a byte before it is closed.
    public static let defaultIdleTimeout = Duration.seconds(30)

    /// The loop the server runs on.
    public let loop: EventLoop
    /// The bound address (with the real port when port 0 was requested).
    public var localAddress: SocketAddress { listener.localAddress }
    /// Limit on the request line plus headers of one request (bytes).
    public let maxHeaderBytes: Int
    /// Limit on the body of one request (bytes).
    public let maxBodyBytes: Int
    /// Requests answered with 200.
    public private(set) var metricsResponses = 0
    /// Requests answered with an error status (404, 405, 400, 413, 431).
    public private(set) var errorResponses = 0
    /// Connections currently open.
    public var connectionCount: Int { listener.connectionCount }
    /// Connections closed for staying idle longer than the idle timeout.
    public private(set) var idleClosures = 0
    /// A connection that receives nothing for this long is closed (bounds slow or stalled clients).
    public let idleTimeout: Duration

    let render: () -> String
    private var listener: TCPServer!
    private var sweeper: LoopTimer!
    private var sessions: [ObjectIdentifier: HTTPSession] = [:]

    /// Listens on `address`; call on the loop thread. `metrics` runs on the loop thread for each
    /// `GET /metrics` and returns the exposition text.
    public init(loop: EventLoop, address: SocketAddress,
                maxConnections: Int = MetricsHTTPServer.defaultMaxConnections,
                maxHeaderBytes: Int = MetricsHTTPServer.defaultMaxHeaderBytes,
                maxBodyBytes: Int = MetricsHTTPServer.defaultMaxBodyBytes,
                idleTimeout: Duration = MetricsHTTPServer.defaultIdleTimeout,
                metrics: @escaping () -> String) throws {
        loop.assertInLoop()
        guard maxHeaderBytes >= 64, maxBodyBytes >= 0 else {
            throw TransportError(.invalidArgument, "maxHeaderBytes must be at least 64 and maxBodyBytes at least 0")
        }
        guard LoopTimer.milliseconds(idleTimeout) >= 2 else {
            throw TransportError(.invalidArgument, "idleTimeout must be at least 2 ms, got \(idleTimeout)")
        }
        self.idleTimeout = idleTimeout
        self.loop = loop
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.render = metrics
        // The listener's handle keeps it (and, through this closure, the server) alive until closed.
        listener = try TCPServer(loop: loop, address: address, maxConnections: maxConnections,
                                 maxPendingWriteBytes: TCPConnection.defaultMaxPendingWriteBytes) { [self] connection in
            accept(connection)
        }
        listener.onRefuse = { connection in
            try? connection.write("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        do {
            // Checking every half timeout closes an idle connection between 1 and 1.5 timeouts after its last byte.
            let period = Duration.milliseconds(LoopTimer.milliseconds(idleTimeout) / 2)
            sweeper = try LoopTimer(loop: loop)
            try sweeper.schedule(after: period, repeatEvery: period) { [unowned self] _ in closeIdleSessions() }
        } catch {
            listener.close()
            sweeper?.close()
            throw error
        }
    }

    private func closeIdleSessions() {
        let now = loop.now
        let limit = LoopTimer.milliseconds(idleTimeout)
        for session in sessions.values where now - session.lastActivity >= limit && !session.connection.isClosed {
            idleClosures += 1
            session.connection.close()
        }
    }

    private func accept(_ connection: TCPConnection) {
        let session = HTTPSession(server: self, connection: connection)
        let key = ObjectIdentifier(session)
        sessions[key] = session
        connection.onRead = { _, bytes in session.feed(bytes) }
        connection.onClose = { [weak self] _, _ in self?.sessions[key] = nil }
        do {
            try connection.startReading()
        } catch {
            connection.close()
        }
    }

    func countResponse(status: Int) {
        if status == 200 { metricsResponses += 1 } else { errorResponses += 1 }
    }

    /// Stops listening and closes every open connection.
    public func close() {
        loop.assertInLoop()
        listener.close()
        sweeper.close()
        for session in sessions.values { session.connection.close() }
    }
}

/// One HTTP connection: the parser and the bytes counted against the limits of the current request.
final class HTTPSession {
    let server: MetricsHTTPServer
    let connection: TCPConnection
    private let parser: UnsafeMutablePointer<http_parser>
    private var url: [UInt8] = []
    private var headerBytes = 0
    private var bodyBytes = 0
    private var limitFailure: Int?
    private var finished = false
    /// Loop time (ms) of the last byte received.
    private(set) var lastActivity: UInt64

    init(server: MetricsHTTPServer, connection: TCPConnection) {
        self.server = server
        self.connection = connection
        lastActivity = server.loop.now
        parser = .allocate(capacity: 1)
        http_parser_init(parser, HTTP_REQUEST)
    }

    deinit { parser.deallocate() }

    func feed(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = server.loop.now
        guard !finished, let base = bytes.baseAddress else { return }
        // Set per call, not stored: the parser only calls back during http_parser_execute.
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        let parsed = withUnsafePointer(to: httpParserSettings) { settings in
            http_parser_execute(parser, settings, base.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        guard !finished else { return }
        if crdtd_http_parser_errno(parser) != HPE_OK.rawValue || parsed != bytes.count || crdtd_http_parser_is_upgrade(parser) != 0 {
            let status = limitFailure ?? 400
            let reason = limitFailure == nil ? String(cString: http_errno_description(http_errno(crdtd_http_parser_errno(parser)))) : ""
            server.loop.logger.debug("malformed metrics request", metadata: ["status": "\(status)", "reason": "\(reason)"])
            respond(status: status, body: status == 400 ? "malformed HTTP request: \(reason)\n" : "\(reasonPhrase(status))\n",
                    keepAlive: false)
        }
    }

    fileprivate func messageBegin() {
        url.removeAll(keepingCapacity: true)
        headerBytes = 0
        bodyBytes = 0
    }

    /// Counts request-line and header bytes; `false` (abort) once over the limit.
    fileprivate func countHeader(_ bytes: UnsafeRawBufferPointer, isURL: Bool) -> Bool {
        headerBytes += bytes.count
        guard headerBytes <= server.maxHeaderBytes else {
            limitFailure = 431
            return false
        }
        if isURL { url.append(contentsOf: bytes) }
        return true
    }

    fileprivate func countBody(_ count: Int) -> Bool {
        bodyBytes += count
        guard bodyBytes <= server.maxBodyBytes else {
            limitFailure = 413
            return false
        }
        return true
    }

    /// Answers one complete request; `false` stops the parser because the connection is closing.
    fileprivate func messageComplete() -> Bool {
        let keepAlive = http_should_keep_alive(parser) != 0 && crdtd_http_parser_is_upgrade(parser) == 0
        let path = url.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        if crdtd_http_parser_method(parser) != HTTP_GET.rawValue {
            respond(status: 405, body: "only GET is supported\n", keepAlive: keepAlive, extraHeaders: "Allow: GET\r\n")
        } else if path.elementsEqual("/metrics".utf8) {
            respond(status: 200, body: server.render(), keepAlive: keepAlive,
                    contentType: "text/plain; version=0.0.4; charset=utf-8")
        } else {
            respond(status: 404, body: "not found; metrics are served at /metrics\n", keepAlive: keepAlive)
        }
        return !finished
    }

    private func respond(status: Int, body: String, keepAlive: Bool,
                         contentType: String = "text/plain; charset=utf-8", extraHeaders: String = "") {
        server.countResponse(status: status)
        let head = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\n"
            + "Content-Type: \(contentType)\r\n"
            + "Content-Length: \(body.utf8.count)\r\n"
            + extraHeaders
            + "Connection: \(keepAlive ? "keep-alive" : "close")\r\n\r\n"
        do {
            try connection.write(head + body)
        } catch {
            finished = true
            connection.close()
            return
        }
        if !keepAlive {
            finished = true
            connection.closeAfterFlush()
        }
    }

    private func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Payload Too Large"
        case 431: "Request Header Fields Too Large"
        default: "Error"
        }
    }
}

private func session(of parser: UnsafeMutablePointer<http_parser>?) -> HTTPSession? {
    guard let data = parser?.pointee.data else { return nil }
    return Unmanaged<HTTPSession>.fromOpaque(data).takeUnretainedValue()
}

private func bytes(_ at: UnsafePointer<CChar>?, _ length: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: at, count: at == nil ? 0 : length)
}

// The callbacks return non-zero to make http_parser stop with an error.
private let httpParserSettings: http_parser_settings = {
    var settings = http_parser_settings()
    http_parser_settings_init(&settings)
    settings.on_message_begin = { parser in
        session(of: parser)?.messageBegin()
        return 0
    }
    settings.on_url = { parser, at, length in
        (session(of: parser)?.countHeader(bytes(at, length), isURL: true) ?? false) ? 0 : 1
    }
    settings.on_header_field = { parser, at, length in
        (session(of: parser)?.countHeader(bytes(at, length), isURL: false) ?? false) ? 0 : 1
    }
    settings.on_header_value = { parser, at, length in
        (session(of: parser)?.countHeader(bytes(at, length), isURL: false) ?? false) ? 0 : 1
    }
    settings.on_body = { parser, _, length in
        (session(of: parser)?.countBody(length) ?? false) ? 0 : 1
    }
    settings.on_message_complete = { parser in
        (session(of: parser)?.messageComplete() ?? false) ? 0 : 1
    }
    return settings
}()
