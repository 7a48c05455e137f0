import Foundation
import RESP
import RESPClient
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real `crdtd` process started by a test, on loopback ports chosen free, stopped by PID.
final class DaemonProcess {
    let name: String
    let dataDir: String
    let clientPort: Int
    let peerPort: Int
    let metricsPort: Int
    var extraArguments: [String]
    var seeds: [Int] = []
    /// Seeds given as `HOST:PORT` text (host names included), after `seeds`.
    var seedAddresses: [String] = []
    /// Credentials `connect()` authenticates with, when the node requires them.
    var user: String?
    var password: String?
    /// Added to the test's own environment (an `LD_PRELOAD` fault shim, for example).
    var environment: [String: String] = [:]
    private(set) var process: Process?
    let logPath: String

    /// `ports`: the client, peer and metrics ports, when a test must stay within a range; free ones otherwise.
    init(name: String = "n1", dataDir: String? = nil, extraArguments: [String] = ["--insecure"],
         ports: (client: Int, peer: Int, metrics: Int)? = nil) {
        self.name = name
        self.dataDir = dataDir ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("crdtd-test-\(UUID().uuidString)").path
        self.clientPort = ports?.client ?? freePort()
        self.peerPort = ports?.peer ?? freePort(udpToo: true)
        self.metricsPort = ports?.metrics ?? freePort()
        self.extraArguments = extraArguments
        self.logPath = self.dataDir + ".log"
    }

    /// The crdtd binary built next to the test bundle.
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("crdtd").path
    }

    var pid: Int32 { process?.processIdentifier ?? 0 }

    func start(waitUntilServing: Bool = true) throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        var arguments = [
            "--node-id", name, "--data-dir", dataDir, "--client-addr", "127.0.0.1:\(clientPort)",
            "--peer-addr", "127.0.0.1:\(peerPort)", "--metrics-addr", "127.0.0.1:\(metricsPort)",
            "--gossip-interval", "50", "--log-level", "info",
        ]
        for seed in seeds { arguments += ["--seed", "127.0.0.1:\(seed)"] }
        for seed in seedAddresses { arguments += ["--seed", seed] }
        process.arguments = arguments + extraArguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        try process.run()
        self.process = process
        if waitUntilServing { try self.waitUntilServing() }
    }

    func waitUntilServing(timeout: Duration = .seconds(30)) throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let probe = try? connect(timeout: .milliseconds(500)) {
                let reply = try? probe.send(["PING"])
                probe.close()
                // The server sees the close asynchronously: give it a moment so the probe does not count
                // against a small max_clients.
                if reply == .simpleString("PONG") {
                    Thread.sleep(forTimeInterval: 0.1)
                    return
                }
            }
            guard process?.isRunning == true else {
                throw TestFailure("crdtd exited during start (status \(process?.terminationStatus ?? -1)): \(log)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("crdtd did not answer PING within \(timeout): \(log)")
    }

    /// A connection, authenticated when the node has credentials set.
    func connect(timeout: Duration = .seconds(5)) throws -> RESPConnection {
        let connection = try RESPConnection(host: "127.0.0.1", port: clientPort, timeout: timeout)
        if let password {
            let reply = try connection.send(["AUTH"] + (user.map { [$0] } ?? []) + [password])
            guard reply == .simpleString("OK") else { throw TestFailure("AUTH was refused: \(reply)") }
        }
        return connection
    }

    /// A connection that does not authenticate.
    func connectAnonymously(timeout: Duration = .seconds(5)) throws -> RESPConnection {
        try RESPConnection(host: "127.0.0.1", port: clientPort, timeout: timeout)
    }

    /// One command on a fresh connection.
    func run(_ arguments: String...) throws -> RESPReply {
        let connection = try connect()
        defer { connection.close() }
        return try connection.send(arguments)
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop(timeout: Duration = .seconds(20)) -> Int32 {
        guard let process, process.isRunning else { return process?.terminationStatus ?? 0 }
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -9
        }
        return process.terminationStatus
    }

    /// kill -9.
    func crash() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit {
        crash()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Ports handed out so far by `freePort`, shared by every test of this process.
private let nextPortCandidate = Mutex<Int>(10_000 + Int(getpid() % 500) * 20)

/// A loopback port that is free now and that no other test of this process was given; `udpToo` also checks UDP.
///
/// Ports come from 10000-19999, below the kernel's ephemeral range (32768 and up on Linux) and the local clusters
/// that CrdtctlTests and CheckTests start (20000 up), counting upwards: a port the kernel
/// picked and released (the old way, binding port 0) could be handed to any outgoing connection before the daemon
/// bound it, which is how a test once failed with EADDRINUSE.
func freePort(udpToo: Bool = false) -> Int {
    for _ in 0..<2_000 {
        let port = nextPortCandidate.withLock { next in
            defer { next = next >= 19_999 ? 10_000 : next + 1 }
            return next
        }
        guard canBind(port, type: SOCK_STREAM) else { continue }
        if !udpToo || canBind(port, type: SOCK_DGRAM) { return port }
    }
    return 0
}

/// Whether `port` on 127.0.0.1 can be bound now (without SO_REUSEADDR, so a port in TIME_WAIT counts as taken).
private func canBind(_ port: Int, type: __socket_type) -> Bool {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

extension RESPReply {
    static func bulk(_ text: String) -> RESPReply { .bulkString(Array(text.utf8)) }
    var isError: Bool { if case .error = self { true } else { false } }
    var errorText: String { if case .error(let e) = self { e } else { "" } }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(15), _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return try condition()
}
