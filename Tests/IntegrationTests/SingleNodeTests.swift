import Foundation
import Synchronization
import RESP
import RESPClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real crdtd binary, one node, over a real socket.
@Suite(.serialized) struct SingleNodeTests {
    @Test func commandsWrongTypesAndUnknownCommands() throws {
        let node = DaemonProcess()
        try node.start()
        defer { #expect(node.stop() == 0) }
        let c = try node.connect()
        #expect(try c.send(["INCRBY", "c", "5"]) == .integer(5))
        #expect(try c.send(["GET", "c"]) == .bulk("5"))
        #expect(try c.send(["SADD", "s", "a", "b"]) == .integer(2))
        #expect(try c.send(["SADD", "c", "x"]).errorText.hasPrefix("WRONGTYPE"))
        #expect(try c.send(["NOSUCH"]).errorText.hasPrefix("ERR unknown command"))
        #expect(try c.send(["GET"]).errorText == "ERR wrong number of arguments for 'get' command")
        #expect(try c.send(["HSET", "h", "f", "v"]) == .integer(1))
        #expect(try c.send(["HGETALL", "h"]) == .array([.bulk("f"), .bulk("v")]))
        #expect(try c.send(["CRDT.PARTITION", "x"]).errorText.contains("--allow-fault-injection"))
        // Pipelining: many requests in one write, replies in order.
        let replies = try c.send(many: (1...100).map { ["INCR", "p\($0 % 3)"] })
        #expect(replies.count == 100)
        #expect(replies.last == .integer(34), "p1 was incremented by 1, 4, ..., 100: 34 times")
    }

    @Test func malformedAndOversizedRequestsGetAnErrorAndOthersAreUnaffected() throws {
        let node = DaemonProcess(extraArguments: ["--insecure"])
        try node.start()
        defer { #expect(node.stop() == 0) }
        let healthy = try node.connect()
        #expect(try healthy.send(["SET", "k", "v"]) == .simpleString("OK"))

        // A raw socket sending garbage: an error reply, then the server closes the connection.
        let answer = try rawExchange(port: node.clientPort, send: Array("*2\r\n$3\r\nGET\r\n$-5\r\n".utf8))
        #expect(answer.hasPrefix("-ERR Protocol error"), "got \(answer)")
        // A bulk string over the configured limit.
        let huge = try rawExchange(port: node.clientPort, send: Array("*2\r\n$3\r\nGET\r\n$999999999999\r\n".utf8))
        #expect(huge.hasPrefix("-ERR Protocol error"), "got \(huge)")
        // The other client did not notice.
        #expect(try healthy.send(["GET", "k"]) == .bulk("v"))
    }

    @Test func restartRecoversEveryAcknowledgedWrite() throws {
        let node = DaemonProcess()
        try node.start()
        let c = try node.connect()
        for i in 0..<200 { _ = try c.send(["SADD", "s", "m\(i)"]) }
        _ = try c.send(["INCRBY", "c", "42"])
        _ = try c.send(["SET", "r", "hello"])
        let digest = try c.send(["CRDT.DIGEST"])
        c.close()
        #expect(node.stop() == 0, "graceful shutdown exits 0")
        #expect(node.log.contains("crdtd stopped"))
        try node.start()
        defer { node.stop() }
        #expect(try node.run("SCARD", "s") == .integer(200))
        #expect(try node.run("GET", "c") == .bulk("42"))
        #expect(try node.run("GET", "r") == .bulk("hello"))
        #expect(try node.run("CRDT.DIGEST") == digest)
    }

    /// kill -9 during a write storm loses nothing that was acknowledged.
    @Test func killNineDuringAWriteStormLosesNoAcknowledgedWrite() throws {
        let node = DaemonProcess()
        try node.start()
        let writers = 4
        let acknowledged = ManagedAtomicCounter(count: writers)
        let stop = ManagedFlag()
        let group = DispatchGroup()
        let port = node.clientPort
        for w in 0..<writers {
            DispatchQueue.global().async(group: group) {
                guard let c = try? RESPConnection(host: "127.0.0.1", port: port, timeout: .seconds(5)) else { return }
                var n = 0
                while !stop.isSet {
                    guard (try? c.send(["SADD", "storm", "w\(w)-\(n)"])) == .integer(1) else { break }
                    acknowledged.set(w, n + 1)
                    n += 1
                }
            }
        }
        Thread.sleep(forTimeInterval: 1.0)
        node.crash()
        stop.set()
        group.wait()
        let counts = acknowledged.values
        #expect(counts.reduce(0, +) > 100, "the storm acknowledged \(counts.reduce(0, +)) writes")
        try node.start()
        defer { node.stop() }
        let c = try node.connect()
        for w in 0..<writers {
            for n in 0..<counts[w] {
                let present = try c.send(["SISMEMBER", "storm", "w\(w)-\(n)"])
                #expect(present == .integer(1), "acknowledged w\(w)-\(n) was lost by kill -9")
                if present != .integer(1) { return }
            }
        }
    }

    @Test func shutdownCommandAndSignalsStopGracefully() throws {
        let node = DaemonProcess()
        try node.start()
        _ = try? node.run("SHUTDOWN")
        let stopped = eventually { node.process?.isRunning == false }
        #expect(stopped)
        #expect(node.process?.terminationStatus == 0)
    }

    @Test func metricsEndpointServesPrometheusText() throws {
        let node = DaemonProcess()
        try node.start()
        defer { node.stop() }
        _ = try node.run("INCR", "x")
        let text = try rawExchange(port: node.metricsPort, send: Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        #expect(text.hasPrefix("HTTP/1.1 200"))
        #expect(text.contains("crdtd_commands_total"))
        #expect(text.contains("crdtd_commit"))
    }

    @Test func corruptDatabaseStopsTheDaemonWithAClearMessage() throws {
        let node = DaemonProcess()
        try node.start()
        for i in 0..<50 { _ = try node.run("SET", "k\(i)", String(repeating: "v", count: 500)) }
        node.stop()
        let path = node.dataDir + "/crdtd.db"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        // Three whole b-tree pages in the middle of the file (bytes in a page's free space would be harmless).
        handle.seek(toFileOffset: 4096 * 4)
        handle.write(Data(repeating: 0xAB, count: 4096 * 3))
        handle.closeFile()
        try? node.start(waitUntilServing: false)
        let exited = eventually(timeout: .seconds(20)) { node.process?.isRunning == false }
        #expect(exited, "a corrupt database must stop the daemon")
        #expect(node.process?.terminationStatus != 0)
        #expect(node.log.lowercased().contains("corrupt") || node.log.contains("malformed"), "log: \(node.log.suffix(600))")
        #expect(FileManager.default.fileExists(atPath: path), "the database is never reset")
    }
}

/// Writes `bytes` on a fresh connection and reads until the server closes or 2 s pass.
func rawExchange(port: Int, send bytes: [UInt8]) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestFailure("connect to \(port) failed") }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        out += buffer[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// Per-writer acknowledged counts, shared with writer threads.
final class ManagedAtomicCounter: Sendable {
    private let storage: Mutex<[Int]>
    init(count: Int) { storage = Mutex(Array(repeating: 0, count: count)) }
    func set(_ i: Int, _ value: Int) { storage.withLock { $0[i] = value } }
    var values: [Int] { storage.withLock { $0 } }
}

final class ManagedFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// Limits from the config file: each answers an error, disconnects only the offender, and is documented.
@Suite(.serialized) struct LimitTests {
    func configFile(_ yaml: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func clientsOverTheLimitAreRefusedWithAnError() throws {
        let config = try configFile("limits:\n  max_clients: 2\n")
        let node = DaemonProcess(extraArguments: ["--insecure", "--config", config])
        try node.start()
        defer { node.stop() }
        // Admitted one at a time, retried: the start-up probe's close reaches the server asynchronously.
        func admitted() -> RESPConnection? {
            var admitted: RESPConnection?
            _ = eventually(timeout: .seconds(10)) {
                guard let c = try? node.connect(), (try? c.send(["PING"])) == .simpleString("PONG") else { return false }
                admitted = c
                return true
            }
            return admitted
        }
        let first = try #require(admitted())
        let second = try #require(admitted())
        #expect(try second.send(["PING"]) == .simpleString("PONG"))
        let refused = try rawExchange(port: node.clientPort, send: Array("PING\r\n".utf8))
        #expect(refused.hasPrefix("-ERR max number of clients reached"), "got \(refused)")
        #expect(try first.send(["PING"]) == .simpleString("PONG"), "admitted clients are unaffected")
    }

    @Test func oversizedArgumentsAndTooManyArgumentsDisconnectOnlyTheOffender() throws {
        let config = try configFile("limits:\n  max_bulk_bytes: 1000\n  max_arguments: 10\n")
        let node = DaemonProcess(extraArguments: ["--insecure", "--config", config])
        try node.start()
        defer { node.stop() }
        let bystander = try node.connect()
        #expect(try bystander.send(["SET", "k", "v"]) == .simpleString("OK"))
        let big = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n" + String(repeating: "x", count: 2000) + "\r\n"
        #expect(try rawExchange(port: node.clientPort, send: Array(big.utf8)).hasPrefix("-ERR Protocol error"))
        let many = "*20\r\n" + String(repeating: "$1\r\na\r\n", count: 20)
        #expect(try rawExchange(port: node.clientPort, send: Array(many.utf8)).hasPrefix("-ERR Protocol error"))
        #expect(try bystander.send(["GET", "k"]) == .bulk("v"), "the value was not overwritten and others are unaffected")
    }

    @Test func unknownConfigSettingsAndMissingKeysAreRefusedAtStart() throws {
        let typo = try configFile("gossip_intervall_ms: 100\n")
        let node = DaemonProcess(extraArguments: ["--insecure", "--config", typo])
        try node.start(waitUntilServing: false)
        let exited = eventually(timeout: .seconds(10)) { node.process?.isRunning == false }
        #expect(exited)
        #expect(node.process?.terminationStatus != 0)
        #expect(node.log.contains("unknown setting 'gossip_intervall_ms'"), "log: \(node.log)")

        let noKey = DaemonProcess(extraArguments: [])
        try noKey.start(waitUntilServing: false)
        #expect(eventually(timeout: .seconds(10)) { noKey.process?.isRunning == false })
        #expect(noKey.log.contains("--insecure"), "the refusal says how to proceed: \(noKey.log)")
    }
}
