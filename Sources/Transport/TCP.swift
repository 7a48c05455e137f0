internal import CLibUV
import Logging

// A write request is one allocation: [uv_write_t | byte count | the bytes], so the bytes live exactly
// as long as libuv needs them (until the write callback) and a write costs one malloc and one copy.
private let writeRequestCountOffset = (uv_req_size(UV_WRITE) + 15) & ~15
private let writeRequestPayloadOffset = writeRequestCountOffset + 16

/// Recovers a handle's owner in a callback whose handle type is known (checked in debug builds).
func knownOwner<Owner: LoopHandle>(of handle: UnsafeMutableRawPointer, as _: Owner.Type) -> Owner {
    let data = uv_handle_get_data(handle.assumingMemoryBound(to: uv_handle_t.self))!
    return unsafeDowncast(Unmanaged<LoopHandle>.fromOpaque(data).takeUnretainedValue(), to: Owner.self)
}

/// One TCP stream, accepted by a ``TCPServer`` or opened with ``connect(to:on:maxPendingWriteBytes:onConnect:)``.
///
/// Bytes arrive through ``onRead`` after ``startReading()``; the buffer passed to ``onRead`` is the
/// loop's shared read buffer and is valid only during the call (copy what you keep). ``onClose``
/// runs exactly once, after the handle is closed, whatever closed it.
public final class TCPConnection: LoopHandle {
    /// Default bound on bytes queued for writing and not yet accepted by the kernel (4 MiB).
    public static let defaultMaxPendingWriteBytes = 4 * 1024 * 1024

    /// Bound on bytes queued and not yet written; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public let maxPendingWriteBytes: Int
    /// Bytes handed to ``write(_:)-(UnsafeRawBufferPointer)`` that the kernel has not accepted yet.
    public private(set) var pendingWriteBytes = 0
    /// The remote address, once connected.
    public private(set) var peerAddress: SocketAddress?
    /// `true` between ``startReading()`` and ``stopReading()`` (or close).
    public private(set) var isReading = false

    /// Called with each chunk of received bytes (valid only during the call).
    public var onRead: ((TCPConnection, UnsafeRawBufferPointer) -> Void)?
    /// Called once when the handle has closed: `nil` for a local close or the peer's orderly EOF,
    /// the error for a reset or failed write.
    public var onClose: ((TCPConnection, UVError?) -> Void)?
    /// Called when every pending write has been accepted by the kernel (to resume reading after backpressure).
    public var onWriteDrained: ((TCPConnection) -> Void)?
    /// Called when the peer has finished sending (orderly EOF) but may still read. When `nil`, the
    /// connection closes after flushing what is already queued; set it to answer requests whose
    /// replies are produced later (then call ``closeAfterFlush()`` yourself).
    public var onEndOfInput: ((TCPConnection) -> Void)?
    /// A number unique among the connections of this loop, for referring to the connection from
    /// other threads (engine replies carry it; the loop thread maps it back to the connection).
    public let id: UInt64

    /// How long ``closeAfterFlush()`` keeps reading (and discarding) after its FIN before it closes
    /// anyway. Closing a socket with unread input makes the kernel answer with a RST, which can
    /// destroy the reply still in flight (an error sent to a client that is still sending); this
    /// lingering read lets the peer see the reply and close first.
    public var lingerTimeout: Duration = .seconds(1)

    var onClosedInternal: (() -> Void)?
    private var closeError: UVError?
    private var closingAfterFlush = false
    private var lingering = false
    private var lingerTimer: LoopTimer?
    private var writeBudgetBroken = false

    init(loop: EventLoop, maxPendingWriteBytes: Int) throws {
        guard maxPendingWriteBytes >= 1 else {
            throw TransportError(.invalidArgument, "maxPendingWriteBytes must be at least 1, got \(maxPendingWriteBytes)")
        }
        self.maxPendingWriteBytes = maxPendingWriteBytes
        self.id = loop.nextConnectionID()
        try super.init(loop: loop, type: UV_TCP, initialize: { raw in
            uv_tcp_init(loop.uvLoop, raw.assumingMemoryBound(to: uv_tcp_t.self))
        }, operation: "uv_tcp_init")
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> { typed(uv_stream_t.self) }

    func didConnect() {
        let tcp = typed(uv_tcp_t.self)
        // Replies and frames are small and latency-bound; Nagle would hold them back.
        do {
            try uvCheck(uv_tcp_nodelay(tcp, 1), "uv_tcp_nodelay")
        } catch {
            loop.logger.debug("TCP_NODELAY not set", metadata: ["error": "\(error)"])
        }
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getpeername(tcp, $0, &length) }
        }
        if status == 0 {
            peerAddress = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0) }
            }
        }
    }

    /// Opens a TCP connection to `address`. Call on the loop thread.
    ///
    /// `onConnect` runs once on the loop thread: with the connection (reading not started yet) or
    /// with the error, in which case the connection is already closing. The returned object may be
    /// closed before the connection completes (then `onConnect` receives `ECANCELED`).
    @discardableResult
    public static func connect(to address: SocketAddress, on loop: EventLoop,
                               maxPendingWriteBytes: Int = TCPConnection.defaultMaxPendingWriteBytes,
                               onConnect: @escaping (Result<TCPConnection, UVError>) -> Void) throws -> TCPConnection {
        loop.assertInLoop()
        let connection = try TCPConnection(loop: loop, maxPendingWriteBytes: maxPendingWriteBytes)
        connection.pendingConnect = onConnect
        let request = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        uv_req_set_data(UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self),
                        Unmanaged.passUnretained(connection).toOpaque())
        do {
            try address.withSockAddr { sockaddr throws(UVError) in
                // The connect callback always runs before the close callback, so the connection
                // (kept alive by its handle) outlives the request.
                try uvCheck(uv_tcp_connect(request, connection.typed(uv_tcp_t.self), sockaddr) { request, status in
                    guard let request else { return }
                    let data = uv_req_get_data(UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self))!
                    request.deallocate()
                    Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().connectCompleted(status)
                }, "uv_tcp_connect(\(address))")
            }
        } catch {
            request.deallocate()
            connection.pendingConnect = nil
            connection.close()
            throw error
        }
        return connection
    }

    private var pendingConnect: ((Result<TCPConnection, UVError>) -> Void)?

    private func connectCompleted(_ status: Int32) {
        guard let callback = pendingConnect else { return }
        pendingConnect = nil
        if status < 0 {
            let error = UVError(code: status, operation: "connect")
            closeError = error
            close()
            callback(.failure(error))
        } else if isClosed {
            callback(.failure(UVError(code: UV_ECANCELED.rawValue, operation: "connect")))
        } else {
            didConnect()
            callback(.success(self))
        }
    }

    /// Starts delivering received bytes to ``onRead``. Idempotent.
    public func startReading() throws {
        loop.assertInLoop()
        guard !isClosed, !closingAfterFlush else { throw TransportError(.connectionClosed, "the connection is closed") }
        guard !isReading else { return }
        try beginReading()
    }

    private func beginReading() throws(UVError) {
        try uvCheck(uv_read_start(stream, { handle, _, buffer in
            guard let handle, let buffer else { return }
            let loop = knownOwner(of: UnsafeMutableRawPointer(handle), as: TCPConnection.self).loop
            buffer.pointee = uv_buf_t(base: loop.readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                                      len: loop.readBuffer.count)
        }, { stream, count, buffer in
            guard let stream else { return }
            let connection = knownOwner(of: UnsafeMutableRawPointer(stream), as: TCPConnection.self)
            if connection.lingering {
                // Input after our FIN is discarded; the peer closing (or failing) ends the linger.
                if count < 0 { connection.close() }
            } else if count > 0, let base = buffer?.pointee.base {
                connection.onRead?(connection, UnsafeRawBufferPointer(start: base, count: count))
            } else if count < 0 {
                connection.readFailed(Int32(count))
            }
        }), "uv_read_start")
        isReading = true
    }

    /// Stops reading (backpressure): the kernel buffers, then TCP flow control slows the peer.
    public func stopReading() {
        loop.assertInLoop()
        guard isReading, !isClosed else { return }
        uv_read_stop(stream)
        isReading = false
    }

    private func readFailed(_ status: Int32) {
        stopReading()
        if status == UV_EOF.rawValue {
            if let onEndOfInput {
                onEndOfInput(self)
            } else {
                // The peer will send nothing more; let what we still owe it go out, then close.
                closeAfterFlush()
            }
        } else {
            closeError = UVError(code: status, operation: "read")
            close()
        }
    }

    /// Queues `bytes` for sending; they are copied, so the caller's buffer may be reused at once.
    ///
    /// Writes first try to go straight to the socket (`uv_try_write`); only what the kernel does not
    /// take is copied and queued.
    /// - Throws: ``TransportError/Code/writeBudgetExceeded`` if queuing would take
    ///   ``pendingWriteBytes`` over ``maxPendingWriteBytes``: the peer is not reading. The bytes are
    ///   not queued and every later write fails the same way, because the stream now has a gap; the
    ///   owner should close the connection. ``TransportError/Code/connectionClosed`` after close,
    ///   ``UVError`` if the socket failed (the connection is then closing).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        loop.assertInLoop()
        guard !isClosed, !closingAfterFlush else {
            throw TransportError(.connectionClosed, "write on a closed connection")
        }
        guard !writeBudgetBroken else {
            throw TransportError(.writeBudgetExceeded, "an earlier write exceeded the pending-write budget; close the connection")
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        var offset = 0
        if pendingWriteBytes == 0 {
            var buffer = uv_buf_t(base: UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: CChar.self)),
                                  len: bytes.count)
            let written = uv_try_write(stream, &buffer, 1)
            if written >= 0 {
                offset = Int(written)
                if offset == bytes.count { return }
            } else if written != UV_EAGAIN.rawValue {
                let error = UVError(code: written, operation: "uv_try_write")
                closeError = error
                close()
                throw error
            }
        }
        let remaining = bytes.count - offset
        guard remaining <= maxPendingWriteBytes - pendingWriteBytes else {
            writeBudgetBroken = true
            throw TransportError(.writeBudgetExceeded,
                                 "\(pendingWriteBytes + remaining) bytes would be pending, over the budget of \(maxPendingWriteBytes); the peer is not reading, close the connection")
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: writeRequestPayloadOffset + remaining, alignment: 16)
        raw.storeBytes(of: remaining, toByteOffset: writeRequestCountOffset, as: Int.self)
        let payload = raw + writeRequestPayloadOffset
        payload.copyMemory(from: base + offset, byteCount: remaining)
        let request = raw.bindMemory(to: uv_write_t.self, capacity: 1)
        // Unretained: libuv runs every write callback (ECANCELED on close) before the close callback.
        uv_req_set_data(raw.assumingMemoryBound(to: uv_req_t.self), Unmanaged.passUnretained(self).toOpaque())
        var buffer = uv_buf_t(base: payload.assumingMemoryBound(to: CChar.self), len: remaining)
        let status = uv_write(request, stream, &buffer, 1) { request, status in
            guard let request else { return }
            let raw = UnsafeMutableRawPointer(request)
            let count = raw.load(fromByteOffset: writeRequestCountOffset, as: Int.self)
            let data = uv_req_get_data(raw.assumingMemoryBound(to: uv_req_t.self))!
            raw.deallocate()
            Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().writeCompleted(count: count, status: status)
        }
        if status < 0 {
            raw.deallocate()
            let error = UVError(code: status, operation: "uv_write")
            closeError = error
            close()
            throw error
        }
        pendingWriteBytes += remaining
    }

    /// Queues `bytes` for sending; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Queues the UTF-8 bytes of `text`; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    private func writeCompleted(count: Int, status: Int32) {
        pendingWriteBytes -= count
        if status < 0 {
            if status != UV_ECANCELED.rawValue && !isClosed {
                closeError = UVError(code: status, operation: "write")
                close()
            }
            return
        }
        if pendingWriteBytes == 0 && !isClosed { onWriteDrained?(self) }
    }

    /// Stops delivering input, lets every queued write reach the kernel, sends a FIN
    /// (`uv_shutdown`), then discards input until the peer closes or ``lingerTimeout`` passes, and
    /// closes. Writes are refused from the first call on.
    public func closeAfterFlush() {
        loop.assertInLoop()
        guard !isClosed, !closingAfterFlush else { return }
        stopReading()
        closingAfterFlush = true
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        uv_req_set_data(UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self),
                        Unmanaged.passUnretained(self).toOpaque())
        // The shutdown callback runs once every queued write is done (or with ECANCELED on close).
        let status = uv_shutdown(request, stream) { request, status in
            guard let request else { return }
            let data = uv_req_get_data(UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self))!
            request.deallocate()
            Unmanaged<TCPConnection>.fromOpaque(data).takeUnretainedValue().flushed(status: status)
        }
        if status < 0 {
            request.deallocate()
            close()
        }
    }

    private func flushed(status: Int32) {
        guard !isClosed else { return }
        guard status >= 0 else {
            close()
            return
        }
        lingering = true
        do {
            try beginReading()
            let timer = try LoopTimer(loop: loop)
            lingerTimer = timer
            try timer.schedule(after: lingerTimeout) { [weak self] _ in self?.close() }
        } catch {
            close()
        }
    }

    override func willClose() {
        isReading = false
    }

    override func didClose() {
        let callback = onClose
        // Handlers usually capture the connection; dropping them here breaks that cycle.
        onRead = nil
        onClose = nil
        onWriteDrained = nil
        onEndOfInput = nil
        lingerTimer?.close()
        lingerTimer = nil
        onClosedInternal?()
        onClosedInternal = nil
        callback?(self, closeError)
    }
}

/// A listening TCP socket that accepts up to ``maxConnections`` connections at once.
///
/// libuv sets `SO_REUSEADDR` on every TCP bind on Unix, so a restarted daemon can bind its port
/// while old connections linger in `TIME_WAIT`. Accepted connections get `TCP_NODELAY`.
public final class TCPServer: LoopHandle {
    /// Default limit on simultaneously open accepted connections.
    public static let defaultMaxConnections = 1024

    /// The bound address (with the real port when port 0 was requested).
    public private(set) var localAddress: SocketAddress
    /// Limit on open accepted connections; the excess is refused (see ``onRefuse``).
    public let maxConnections: Int
    /// Accepted connections currently open.
    public private(set) var connectionCount = 0
    /// Connections refused because ``maxConnections`` were open.
    public private(set) var refusedCount = 0
    /// Called with a connection refused for being over the limit, before it is closed after flush,
    /// so the protocol can write an error (for example `-ERR max number of clients reached`).
    public var onRefuse: ((TCPConnection) -> Void)?

    // Optional so that didClose can drop it: handlers often capture their owner, which owns this server.
    private var onAccept: ((TCPConnection) -> Void)?
    private let maxPendingWriteBytes: Int

    /// Binds and listens on `address`; call on the loop thread.
    ///
    /// `onAccept` receives each accepted connection; set its handlers and call
    /// ``TCPConnection/startReading()``.
    public init(loop: EventLoop, address: SocketAddress,
                maxConnections: Int = TCPServer.defaultMaxConnections, backlog: Int32 = 511,
                maxPendingWriteBytes: Int = TCPConnection.defaultMaxPendingWriteBytes,
                onAccept: @escaping (TCPConnection) -> Void) throws {
        loop.assertInLoop()
        guard maxConnections >= 1 else {
            throw TransportError(.invalidArgument, "maxConnections must be at least 1, got \(maxConnections)")
        }
        // Checked here because an accept that cannot create its connection would stall the listener
        // (libuv stops polling it until uv_accept is called).
        guard maxPendingWriteBytes >= 1 else {
            throw TransportError(.invalidArgument, "maxPendingWriteBytes must be at least 1, got \(maxPendingWriteBytes)")
        }
        self.localAddress = address
        self.maxConnections = maxConnections
        self.onAccept = onAccept
        self.maxPendingWriteBytes = maxPendingWriteBytes
        try super.init(loop: loop, type: UV_TCP, initialize: { raw in
            uv_tcp_init(loop.uvLoop, raw.assumingMemoryBound(to: uv_tcp_t.self))
        }, operation: "uv_tcp_init")
        do {
            let tcp = typed(uv_tcp_t.self)
            try address.withSockAddr { sockaddr throws(UVError) in
                try uvCheck(uv_tcp_bind(tcp, sockaddr, 0), "uv_tcp_bind(\(address))")
            }
            // libuv reports some bind errors (EADDRINUSE) only here.
            try uvCheck(uv_listen(typed(uv_stream_t.self), backlog) { server, status in
                guard let server else { return }
                knownOwner(of: UnsafeMutableRawPointer(server), as: TCPServer.self).acceptOne(status)
            }, "uv_listen(\(address))")
            var storage = sockaddr_storage()
            var length = Int32(MemoryLayout<sockaddr_storage>.size)
            let status = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getsockname(tcp, $0, &length) }
            }
            try uvCheck(status, "uv_tcp_getsockname")
            if let bound = withUnsafePointer(to: &storage, { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0) }
            }) {
                localAddress = bound
            }
        } catch {
            close()
            throw error
        }
    }

    private func acceptOne(_ status: Int32) {
        guard status >= 0 else {
            loop.logger.warning("accept failed", metadata: ["address": "\(localAddress)", "error": "\(UVError(code: status, operation: "accept"))"])
            return
        }
        guard let connection = try? TCPConnection(loop: loop, maxPendingWriteBytes: maxPendingWriteBytes) else { return }
        do {
            try uvCheck(uv_accept(typed(uv_stream_t.self), connection.typed(uv_stream_t.self)), "uv_accept")
        } catch {
            loop.logger.warning("accept failed", metadata: ["address": "\(localAddress)", "error": "\(error)"])
            connection.close()
            return
        }
        connection.didConnect()
        guard connectionCount < maxConnections else {
            refusedCount += 1
            loop.logger.debug("connection refused: limit reached",
                              metadata: ["address": "\(localAddress)", "limit": "\(maxConnections)"])
            onRefuse?(connection)
            connection.closeAfterFlush()
            return
        }
        connectionCount += 1
        connection.onClosedInternal = { [weak self] in self?.connectionCount -= 1 }
        onAccept?(connection)
    }

    override func didClose() {
        onAccept = nil
        onRefuse = nil
    }
}
