import Glibc
import Synchronization
import Testing
@testable import Transport
import TestSupport

/// Thread-safe list of events recorded by loop callbacks and awaited by the test.
final class Recorder<Event: Sendable>: Sendable {
    private let events = Mutex<[Event]>([])

    func record(_ event: Event) { events.withLock { $0.append(event) } }
    var all: [Event] { events.withLock { $0 } }
    var count: Int { events.withLock { $0.count } }

    /// Polls until `predicate` holds for the recorded events or `timeout` passes; returns whether it held.
    @discardableResult
    func wait(timeout: Duration = .seconds(10), until predicate: @Sendable ([Event]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if events.withLock({ predicate($0) }) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return events.withLock { predicate($0) }
    }

    func wait(forCount count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await wait(timeout: timeout) { $0.count >= count }
    }
}

/// Runs `body` with a started loop, then stops it and checks that the stop was clean.
func withLoop(executeQueueCapacity: Int = EventLoop.defaultExecuteQueueCapacity,
              _ body: (EventLoop) async throws -> Void) async throws {
    let loop = try EventLoop(executeQueueCapacity: executeQueueCapacity)
    try loop.start()
    do {
        try await body(loop)
    } catch {
        try? loop.stop()
        throw error
    }
    #expect(throws: Never.self, "uv_loop_close must find no open handle") { try loop.stop() }
    #expect(loop.liveHandleObjects.load(ordering: .relaxed) == 0, "no handle object outlives the loop (a cycle would leak it)")
}

let localhost = try! SocketAddress(parsing: "127.0.0.1:0")

/// A blocking POSIX TCP client, independent of the code under test. Every receive has a timeout.
final class BlockingClient {
    private(set) var fd: Int32

    init(port: UInt16, receiveBufferSize: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TransportError(.invalidArgument, "socket() failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if var size = receiveBufferSize {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            Glibc.close(fd)
            throw TransportError(.invalidArgument, "connect() failed: errno \(errno)")
        }
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// One read: the bytes received, or [] on EOF, error or timeout.
    func receiveSome(max: Int = 65536) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
        return count > 0 ? Array(buffer.prefix(count)) : []
    }

    /// Reads until EOF (or error/timeout), at most `limit` bytes.
    func receiveUntilClosed(limit: Int = 1 << 20) -> [UInt8] {
        var all: [UInt8] = []
        while all.count < limit {
            let chunk = receiveSome()
            if chunk.isEmpty { break }
            all += chunk
        }
        return all
    }

    /// Reads until the stream ends and says how: `true` for an orderly EOF (FIN), `false` for a
    /// reset, another error or the timeout.
    func endsWithOrderlyEOF() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return true }
            if count < 0 { return false }
        }
    }

    /// Reads until `text` has appeared in the stream (or EOF/timeout).
    func receive(until text: String) -> String {
        var all: [UInt8] = []
        while !String(decoding: all, as: UTF8.self).contains(text) {
            let chunk = receiveSome()
            if chunk.isEmpty { break }
            all += chunk
        }
        return String(decoding: all, as: UTF8.self)
    }

    /// Closes with a RST instead of a FIN (SO_LINGER 0): the peer sees ECONNRESET.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
        fd = -1
    }
}

/// Starts `count` POSIX threads running `body(index)` and joins them all.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: Sendable {
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }
    var threads: [pthread_t] = []
    for index in 0..<count {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body, index)).toOpaque()
        let status = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body(box.index)
            return nil
        }, box)
        precondition(status == 0, "pthread_create failed")
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}

