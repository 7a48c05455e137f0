// Linux only, like the daemon: the calls below are Glibc's.
import Glibc
import RESP

/// A blocking connection to a Redis-protocol server, for tools and tests.
///
/// Each call sends its requests, then waits for exactly as many replies. Error replies from the
/// server (`-ERR ...`) are returned as ``RESPReply/error(_:)``, not thrown; only transport and
/// protocol failures throw, after which the connection is closed.
///
/// Not thread-safe: use one connection from one thread at a time (it is deliberately not `Sendable`).
public final class RESPConnection {
    /// The longest any single connect, send or receive may take.
    public let timeout: Duration
    private var descriptor: Int32
    private var parser: RESPReplyParser
    private var readBuffer = [UInt8](repeating: 0, count: 64 << 10)

    /// Connects to `host:port` (a name or an IPv4/IPv6 address), trying each resolved address.
    /// - Parameters:
    ///   - timeout: Bound on the connect and on each later call's send-and-receive.
    ///   - limits: Bounds on the replies this client accepts.
    public init(host: String, port: Int, timeout: Duration = .seconds(5), limits: RESPLimits = .default) throws(RESPClientError) {
        self.timeout = timeout
        self.parser = RESPReplyParser(limits: limits)
        self.descriptor = try Self.connect(host: host, port: port, timeout: timeout)
    }

    deinit {
        if descriptor >= 0 { _ = Glibc.close(descriptor) }
    }

    /// Whether the connection is still open.
    public var isConnected: Bool { descriptor >= 0 }

    /// Sends one command and returns its reply.
    public func send(_ arguments: [String]) throws(RESPClientError) -> RESPReply {
        try send(arguments.map { Array($0.utf8) })
    }

    /// Sends one command of binary arguments and returns its reply.
    public func send(_ arguments: [[UInt8]]) throws(RESPClientError) -> RESPReply {
        try send(many: [arguments])[0]
    }

    /// Sends many commands in one write (pipelining) and returns their replies in order.
    public func send(many commands: [[String]]) throws(RESPClientError) -> [RESPReply] {
        try send(many: commands.map { $0.map { Array($0.utf8) } })
    }

    /// Sends many commands of binary arguments in one write and returns their replies in order.
    public func send(many commands: [[[UInt8]]]) throws(RESPClientError) -> [RESPReply] {
        guard descriptor >= 0 else {
            throw RESPClientError(.notConnected, "the connection is closed; open a new RESPConnection")
        }
        var wire: [UInt8] = []
        for command in commands { RESPRequestEncoder.encode(command, into: &wire) }
        let deadline = Self.now() + timeout
        do throws(RESPClientError) {
            var replies: [RESPReply] = []
            replies.reserveCapacity(commands.count)
            try writeAll(wire, collectingInto: &replies, deadline: deadline)
            while replies.count < commands.count {
                if let reply = try nextReply() {
                    replies.append(reply)
                    continue
                }
                try readSome(deadline: deadline)
            }
            return replies
        } catch {
            close()
            throw error
        }
    }

    /// Waits for the next message the server sends without a request: a published message or a
    /// keyspace notification on a subscribed connection. Throws on a timeout (the connection closes).
    public func receive(timeout: Duration? = nil) throws(RESPClientError) -> RESPReply {
        guard descriptor >= 0 else {
            throw RESPClientError(.notConnected, "the connection is closed; open a new RESPConnection")
        }
        let deadline = Self.now() + (timeout ?? self.timeout)
        do throws(RESPClientError) {
            while true {
                if let reply = try nextReply() { return reply }
                try readSome(deadline: deadline)
            }
        } catch {
            close()
            throw error
        }
    }

    /// Closes the connection. Calling it again does nothing.
    public func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }

    // MARK: - Internals

    private func nextReply() throws(RESPClientError) -> RESPReply? {
        do {
            return try parser.next()
        } catch {
            throw RESPClientError(.protocolError, "the server sent an invalid reply: \(error.message)", protocolError: error)
        }
    }

    /// Sends every byte, reading replies whenever the socket is readable meanwhile: a server that
    /// stops reading until its replies are consumed (as a server with a bound on pending replies does)
    /// must not deadlock a long pipeline.
    private func writeAll(_ bytes: [UInt8], collectingInto replies: inout [RESPReply], deadline: ContinuousClock.Instant) throws(RESPClientError) {
        var offset = 0
        while offset < bytes.count {
            let ready = try wait(for: Int16(POLLOUT) | Int16(POLLIN), deadline: deadline, doing: "sending a request")
            if ready & Int16(POLLIN) != 0 {
                try readSome(deadline: deadline)
                while let reply = try nextReply() { replies.append(reply) }
                // On an error or hang-up fall through: send reports it.
                if ready & Int16(POLLOUT | POLLERR | POLLHUP) == 0 { continue }
            }
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw Self.systemError(.ioFailed, "sending a request failed")
            }
            offset += written
        }
    }

    private func readSome(deadline: ContinuousClock.Instant) throws(RESPClientError) {
        while true {
            try wait(for: Int16(POLLIN), deadline: deadline, doing: "waiting for a reply")
            let count = readBuffer.withUnsafeMutableBytes { raw in
                recv(descriptor, raw.baseAddress, raw.count, 0)
            }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw Self.systemError(.ioFailed, "receiving a reply failed")
            }
            if count == 0 {
                throw RESPClientError(.connectionClosed, "the server closed the connection before replying to every command")
            }
            do {
                try parser.append(readBuffer[..<count])
            } catch {
                throw RESPClientError(.protocolError, "reply too large: \(error.message)", protocolError: error)
            }
            return
        }
    }

    /// Waits until one of `events` (or an error or hang-up) is signalled; returns the signalled events.
    @discardableResult
    private func wait(for events: Int16, deadline: ContinuousClock.Instant, doing what: String) throws(RESPClientError) -> Int16 {
        while true {
            let remaining = deadline - Self.now()
            guard remaining > .zero else {
                throw RESPClientError(.timedOut, "timed out after \(timeout) \(what)")
            }
            var poller = pollfd(fd: descriptor, events: events, revents: 0)
            let result = poll(&poller, 1, Self.milliseconds(remaining))
            // An error or hang-up shows as readable, so the next recv or send reports it.
            if result > 0 { return poller.revents }
            if result < 0, errno != EINTR {
                throw Self.systemError(.ioFailed, "poll failed while \(what)")
            }
        }
    }

    private static func now() -> ContinuousClock.Instant { ContinuousClock.now }

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        let total = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: max(1, total))
    }

    private static func systemError(_ code: RESPClientError.Code, _ what: String, errorNumber: Int32 = errno) -> RESPClientError {
        RESPClientError(code, "\(what): \(String(cString: strerror(errorNumber))) (errno \(errorNumber))")
    }

    private static func connect(host: String, port: Int, timeout: Duration) throws(RESPClientError) -> Int32 {
        guard (1...65535).contains(port) else {
            throw RESPClientError(.connectFailed, "port \(port) is out of range 1...65535")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw RESPClientError(.resolveFailed, "cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        let deadline = now() + timeout
        var lastError = RESPClientError(.connectFailed, "no address found for '\(host)'")
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let info = current {
            current = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard fd >= 0 else {
                lastError = systemError(.connectFailed, "socket() failed")
                continue
            }
            // Non-blocking for the whole life of the connection: every wait goes through poll with a deadline.
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            guard errno == EINPROGRESS else {
                lastError = systemError(.connectFailed, "connecting to \(host):\(port) failed")
                _ = Glibc.close(fd)
                continue
            }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let remaining = deadline - now()
            let ready = remaining > .zero ? poll(&poller, 1, milliseconds(remaining)) : 0
            if ready <= 0 {
                lastError = RESPClientError(.timedOut, "connecting to \(host):\(port) timed out after \(timeout)")
                _ = Glibc.close(fd)
                continue
            }
            var socketError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &length)
            if socketError == 0 { return fd }
            lastError = systemError(.connectFailed, "connecting to \(host):\(port) failed", errorNumber: socketError)
            _ = Glibc.close(fd)
        }
        throw lastError
    }
}
