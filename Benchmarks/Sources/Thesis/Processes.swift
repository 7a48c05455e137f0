import BenchSupport
import Foundation
import Glibc
import NodeControl

/// A server this suite started. Every PID also goes into the work directory's `pids` file, so that
/// `thesis.sh`'s trap can stop whatever is left if this program dies.
final class ServerProcess {
    let name: String
    let process: Process
    let logFile: String
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    init(name: String, process: Process, logFile: String) {
        self.name = name
        self.process = process
        self.logFile = logFile
    }

    /// SIGTERM (after SIGCONT, in case it is frozen), then SIGKILL after `timeout`. etcd takes seconds
    /// to hand over leadership when asked to stop.
    func stop(timeout: Double = 15) {
        guard process.isRunning else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    func freeze() { kill(pid, SIGSTOP) }
    func thaw() { kill(pid, SIGCONT) }

    /// Resident set size in bytes (VmRSS), or nil when the process is gone.
    func residentBytes() -> Int? { statusBytes("VmRSS:") }

    /// The most the process was ever resident (`VmHWM`).
    func peakResidentBytes() -> Int? { statusBytes("VmHWM:") }

    private func statusBytes(_ field: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            let kib = line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
            return kib.map { $0 * 1024 }
        }
        return nil
    }
}

struct SuiteError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Starts servers, hands out free loopback ports, and remembers every PID.
final class Launcher {
    let work: String
    private var given: Set<Int> = []
    private var nextPort = 20_000

    init(work: String) throws {
        self.work = work
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    /// Starts `executable`; with `namespace` (a lab and a node index), inside that node's network
    /// namespace through `ip netns exec`, which execs in place, so the PID recorded is the server's own.
    func start(_ name: String, _ executable: String, _ arguments: [String], namespace: (NetnsLab, Int)? = nil) throws -> ServerProcess {
        let logFile = (work as NSString).appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        log.seekToEndOfFile()
        let process = Process()
        if let (lab, i) = namespace {
            let prefix = try lab.execPrefix(i)
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw SuiteError("cannot start \(executable): \(error.localizedDescription)")
        }
        let pids = (work as NSString).appendingPathComponent("pids")
        if let handle = FileHandle(forWritingAtPath: pids) ?? {
            _ = FileManager.default.createFile(atPath: pids, contents: nil)
            return FileHandle(forWritingAtPath: pids)
        }() {
            handle.seekToEndOfFile()
            handle.write(Data("\(process.processIdentifier) \(name)\n".utf8))
            try? handle.close()
        }
        return ServerProcess(name: name, process: process, logFile: logFile)
    }

    /// A TCP and UDP port on 127.0.0.1 that nothing listens on, below the ephemeral range (so that an
    /// outgoing connection cannot take it between this check and the server's bind).
    func freePort() throws -> Int {
        while nextPort < 32_000 {
            let port = nextPort
            nextPort += 1
            if given.contains(port) { continue }
            if Self.canBind(port, SOCK_STREAM) && Self.canBind(port, SOCK_DGRAM) {
                given.insert(port)
                return port
            }
        }
        throw SuiteError("no free port between 20000 and 32000")
    }

    private static func canBind(_ port: Int, _ type: __socket_type) -> Bool {
        let fd = socket(AF_INET, Int32(type.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    func directory(_ name: String) throws -> String {
        let path = (work as NSString).appendingPathComponent(name)
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Runs `body(i)` for i in 0..<count, each on a thread of its own, runs `meanwhile` on the calling
/// thread, and waits for all of them.
func onThreads(_ count: Int, meanwhile: () -> Void = {}, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            body(i)
            group.leave()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
    meanwhile()
    group.wait()
}

func sleep(seconds: Double) { usleep(UInt32(max(0, seconds) * 1_000_000)) }

/// Seconds on the monotonic clock.
func now() -> Double { Double(monotonicNanoseconds()) / 1e9 }

/// Sleeps (spinning only for the last 50 µs: the cores are shared with the servers under test) until
/// the monotonic clock reaches `deadline` nanoseconds.
func wait(untilNanoseconds deadline: UInt64) {
    while true {
        let current = monotonicNanoseconds()
        if current >= deadline { return }
        let left = deadline - current
        if left > 100_000 { usleep(UInt32((left - 50_000) / 1000)) }
    }
}
