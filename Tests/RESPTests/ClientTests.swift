import Glibc
import Testing
import RESP
import RESPClient

/// Runs `body` on a new POSIX thread (the in-test servers block in accept and recv).
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let status = pthread_create(&thread, nil, { argument in
        Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(status == 0, "pthread_create failed: \(status)")
    return thread
}

/// A listening socket on 127.0.0.1 with a kernel-chosen port.
func listenOnLoopback() -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var one: Int32 = 1
    _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            precondition(bind(fd, raw, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, raw, &length) == 0)
        }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A one-connection server whose behaviour each test chooses.
final class TestServer: Sendable {
    enum Behaviour: Sendable {
        /// Answers each request with an array of its arguments, as bulk strings.
        case echo
        /// Reads requests and never answers.
        case silent
        /// Closes the connection as soon as a request arrives.
        case hangUp
        /// Answers with bytes that are not RESP.
        case garbage
    }
    let port: Int
    private let listener: Int32
    private let thread: pthread_t

    init(_ behaviour: Behaviour) {
        let (listener, port) = listenOnLoopback()
        self.listener = listener
        self.port = port
        thread = startThread {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var parser = RESPRequestParser()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { return }
                if case .hangUp = behaviour { return }
                guard (try? parser.append(buffer[..<count])) != nil else { return }
                var out: [UInt8] = []
                while let request = try? parser.next() {
                    switch behaviour {
                    case .echo: RESPReply.array(request.map { .bulkString($0) }).encode(protocol: .resp2, into: &out)
                    case .garbage: out += Array("?what\r\n".utf8)
                    case .silent, .hangUp: break
                    }
                }
                _ = out.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// Waits for the server thread; the client must have closed its end first.
    func join() {
        pthread_join(thread, nil)
        close(listener)
    }
}

/// A real redis-server on a free loopback port, started and stopped by PID; nil if not installed.
final class RedisServer {
    let port: Int
    private let pid: pid_t

    init?() {
        let path = "/usr/bin/redis-server"
        guard access(path, X_OK) == 0 else { return nil }
        let (probe, port) = listenOnLoopback()
        close(probe)
        self.port = port
        let arguments = [path, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--daemonize", "no", "--loglevel", "warning"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        // The test runner's threads block some signals and a spawned child inherits that mask:
        // without this reset, redis-server ignores SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        guard posix_spawn(&pid, path, &actions, &attributes, &argv, environ) == 0 else { return nil }
        self.pid = pid
    }

    /// Connects, retrying while the server starts.
    func connect() throws -> RESPConnection {
        var lastError: (any Error)?
        for _ in 0..<200 {
            do {
                return try RESPConnection(host: "127.0.0.1", port: port, timeout: .seconds(5))
            } catch {
                lastError = error
                usleep(10_000)
            }
        }
        throw lastError!
    }

    deinit {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}

@Suite struct ClientTests {
    @Test func againstRedisServerOrEchoServer() throws {
        if let redis = RedisServer() {
            let connection = try redis.connect()
            #expect(try connection.send(["PING"]) == .simpleString("PONG"))
            let binary: [UInt8] = [0, 13, 10, 255]
            #expect(try connection.send([Array("SET".utf8), Array("bin".utf8), binary]) == .ok)
            #expect(try connection.send(["GET", "bin"]) == .bulkString(binary))
            #expect(try connection.send(["GET", "missing"]) == .null)
            let replies = try connection.send(many: (0..<1000).map { _ in ["INCR", "counter"] })
            #expect(replies == (1...1000).map { .integer(Int64($0)) })
            guard case .error(let message) = try connection.send(["NO-SUCH-COMMAND"]) else {
                Issue.record("an unknown command must answer an error reply")
                return
            }
            #expect(message.hasPrefix("ERR unknown command"))
            // RESP3 after HELLO 3: maps come back as maps.
            guard case .map = try connection.send(["HELLO", "3"]) else {
                Issue.record("HELLO 3 must answer a map")
                return
            }
            #expect(try connection.send(["HSET", "h", "f", "v"]) == .integer(1))
            #expect(try connection.send(["HGETALL", "h"]) == .map([.init(key: .bulkString("f"), value: .bulkString("v"))]))
            #expect(try connection.send(["GET", "missing"]) == .null)
            connection.close()
            #expect(!connection.isConnected)
        } else {
            let server = TestServer(.echo)
            let connection = try RESPConnection(host: "127.0.0.1", port: server.port)
            #expect(try connection.send(["PING"]) == .array([.bulkString("PING")]))
            let replies = try connection.send(many: (0..<1000).map { ["ECHO", String($0)] })
            #expect(replies == (0..<1000).map { .array([.bulkString("ECHO"), .bulkString(String($0))]) })
            connection.close()
            server.join()
        }
    }

    @Test func pipelinedRequestsLargerThanSocketBuffers() throws {
        let server = TestServer(.echo)
        // 24 MiB each way, beyond loopback socket buffers: the echo server blocks sending replies
        // and stops reading, so the client must read replies while it is still sending.
        let connection = try RESPConnection(host: "localhost", port: server.port, timeout: .seconds(30))
        let value = [UInt8](repeating: 120, count: 1 << 20)
        let replies = try connection.send(many: (0..<24).map { _ in [Array("SET".utf8), value] })
        #expect(replies.count == 24)
        #expect(replies.allSatisfy { $0 == .array([.bulkString("SET"), .bulkString(value)]) })
        connection.close()
        server.join()
    }

    func clientError(_ body: () throws -> Void) -> RESPClientError? {
        do {
            try body()
            return nil
        } catch let error as RESPClientError {
            return error
        } catch {
            Issue.record("expected a RESPClientError, got \(error)")
            return nil
        }
    }

    @Test func readTimeout() throws {
        let server = TestServer(.silent)
        let connection = try RESPConnection(host: "127.0.0.1", port: server.port, timeout: .milliseconds(200))
        let error = clientError { _ = try connection.send(["PING"]) }
        #expect(error?.code == .timedOut)
        #expect(!connection.isConnected)
        #expect(clientError { _ = try connection.send(["PING"]) }?.code == .notConnected)
        server.join()
    }

    @Test func serverHangsUp() throws {
        let server = TestServer(.hangUp)
        let connection = try RESPConnection(host: "127.0.0.1", port: server.port)
        #expect(clientError { _ = try connection.send(["PING"]) }?.code == .connectionClosed)
        server.join()
    }

    @Test func invalidReplyIsAProtocolError() throws {
        let server = TestServer(.garbage)
        let connection = try RESPConnection(host: "127.0.0.1", port: server.port)
        let error = clientError { _ = try connection.send(["PING"]) }
        #expect(error?.code == .protocolError)
        #expect(error?.protocolError?.code == .invalidReplyType)
        server.join()
    }

    @Test func connectionRefused() {
        let (probe, port) = listenOnLoopback()
        close(probe)
        #expect(clientError { _ = try RESPConnection(host: "127.0.0.1", port: port) }?.code == .connectFailed)
        #expect(clientError { _ = try RESPConnection(host: "127.0.0.1", port: 0) }?.code == .connectFailed)
    }
}
