import Foundation
import RESP
import RESPClient
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The fault shim (Sources/CStorageFaults/storage_faults.c), which SwiftPM builds beside crdtd as the
/// dynamic library product crdtd-storage-faults.
enum FaultShim {
    static func library() throws -> String {
        let products = URL(fileURLWithPath: DaemonProcess.binary).deletingLastPathComponent()
        let path = products.appendingPathComponent("libcrdtd-storage-faults.so").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw TestFailure("the fault shim \(path) is missing: build every product (`swift build --build-tests`)")
        }
        return path
    }
}

/// A crdtd whose data directory's writes and syncs fail or stall on demand (see storage_faults.c).
final class FaultyNode {
    let node: DaemonProcess
    let control: String

    init(name: String = "n1", arguments: [String] = []) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The shim compares the paths the kernel reports, so give it the resolved one.
        let resolved = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        node = DaemonProcess(name: name, dataDir: resolved, extraArguments: ["--insecure"] + arguments)
        control = resolved + ".fault"
        _ = FileManager.default.createFile(atPath: control, contents: nil)
        node.environment = ["LD_PRELOAD": try FaultShim.library(), "CRDTD_FAULT_DIR": resolved + "/", "CRDTD_FAULT_CONTROL": control]
    }

    /// What the shim does from now on: "enospc", "eio-fsync-once", "stall", "stall-writes", or "" for nothing.
    func inject(_ mode: String) throws {
        try Data(mode.utf8).write(to: URL(fileURLWithPath: control))
    }

    var injected: String { (try? String(contentsOfFile: control, encoding: .utf8)) ?? "" }

    deinit {
        node.crash()
        try? FileManager.default.removeItem(atPath: node.dataDir)
        try? FileManager.default.removeItem(atPath: control)
    }
}

/// A command sent on a connection of its own from another thread, so a test can go on while it waits.
final class PendingCommand: Sendable {
    private let result = Mutex<Result<RESPReply, any Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(port: Int, _ arguments: [String], timeout: Duration = .seconds(60)) {
        Thread.detachNewThread { [self] in
            let outcome: Result<RESPReply, any Error>
            do {
                let connection = try RESPConnection(host: "127.0.0.1", port: port, timeout: timeout)
                outcome = .success(try connection.send(arguments))
                connection.close()
            } catch {
                outcome = .failure(error)
            }
            result.withLock { $0 = outcome }
            done.signal()
        }
    }

    /// The reply, if it came.
    var reply: RESPReply? { result.withLock { try? $0?.get() } }

    /// Waits for the reply up to `seconds`.
    func wait(seconds: Double) -> RESPReply? {
        _ = done.wait(timeout: .now() + seconds)
        done.signal()
        return reply
    }
}

extension DaemonProcess {
    /// `INFO section` as a dictionary.
    func info(_ section: String) throws -> [String: String] {
        guard case .bulkString(let bytes) = try run("INFO", section) else { throw TestFailure("INFO did not answer text") }
        var fields: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return fields
    }

    var metricsText: String {
        (try? rawExchange(port: metricsPort, send: Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))) ?? ""
    }
}

/// Real daemons whose disk fills up, fails an fsync, or stalls (issue 15).
@Suite(.serialized) struct StorageFaultTests {
    @Test func aFullDiskRefusesWritesAnswersReadsAndResumesWhenSpaceReturns() throws {
        let faulty = try FaultyNode()
        let node = faulty.node
        try node.start()
        let c = try node.connect()
        for _ in 0..<50 { _ = try c.send(["INCR", "c"]) }
        #expect(try c.send(["SET", "r", "hello"]) == .simpleString("OK"))

        try faulty.inject("enospc")
        // This write's commit runs out of space: it waits, unacknowledged, until space returns.
        let held = PendingCommand(port: node.clientPort, ["INCR", "c"])
        #expect(try eventually(timeout: .seconds(5)) { try node.info("persistence")["storage_degraded"] == "1" },
                "the node reports its store degraded: \(node.log)")

        let refused = try c.send(["INCR", "c"])
        #expect(refused.errorText.hasPrefix("MISCONF crdtd cannot write to its data directory \(node.dataDir): database or disk is full since "),
                "got \(refused)")
        #expect(refused.errorText.hasSuffix("writes are refused until space returns, reads still answer"))
        #expect(try c.send(["SADD", "s", "x"]).errorText.hasPrefix("MISCONF"))
        #expect(try c.send(["GET", "r"]) == .bulk("hello"), "reads of keys without held writes answer")
        #expect(try c.send(["GET", "c"]).errorText.hasSuffix("this read touches a key whose latest write is waiting for the disk"),
                "a read of the held write's key is refused at once, not held")
        #expect(try c.send(["PING"]) == .simpleString("PONG"))
        let persistence = try node.info("persistence")
        #expect(persistence["storage_degraded_since"]?.hasSuffix("Z") == true, "\(persistence)")
        #expect(persistence["storage_last_error"]?.contains("full") == true, "\(persistence)")
        #expect(node.metricsText.contains("crdtd_storage_degraded 1"))
        #expect(held.reply == nil, "nothing of the failed commit is acknowledged")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(node.pid > 0 && kill(node.pid, 0) == 0, "the node stays up")

        try faulty.inject("")
        #expect(held.wait(seconds: 10) == .integer(51), "the held write commits and is acknowledged once space returns")
        #expect(try eventually(timeout: .seconds(5)) { try node.info("persistence")["storage_degraded"] == "0" })
        #expect(try c.send(["INCR", "c"]) == .integer(52))
        #expect(node.metricsText.contains("crdtd_storage_degraded 0"))
        c.close()
        #expect(node.stop() == 0)
        #expect(node.log.contains("is full") && node.log.contains("takes writes again"), "\(node.log)")

        try node.start()
        #expect(try node.run("GET", "c") == .bulk("52"), "the counter is exact: refused writes left nothing")
        #expect(node.stop() == 0)
    }

    /// The issue's own reproduction, with a real file system: a 3 MB tmpfs filled up, then grown.
    @Test(.enabled(if: SmallTmpfs.canMount, "needs root to mount a tmpfs (the shim tests above cover the same paths)"))
    func aRealTmpfsThatFillsUpDegradesTheNodeAndHealsWhenItGrows() throws {
        let tmpfs = try SmallTmpfs(megabytes: 3)
        defer { tmpfs.remove() }
        let node = DaemonProcess(dataDir: tmpfs.path + "/data")
        try node.start()
        defer { node.crash() }
        let writer = try node.connect(timeout: .seconds(2))
        let value = String(repeating: "v", count: 1000)
        var acknowledged = 0
        while acknowledged < 10_000, (try? writer.send(["SET", "k\(acknowledged)", value])) == .simpleString("OK") {
            acknowledged += 1
        }
        #expect(acknowledged > 100, "a few hundred writes fit in 3 MB")
        #expect(try eventually(timeout: .seconds(5)) { try node.info("persistence")["storage_degraded"] == "1" })
        #expect(try node.run("SET", "other", "x").errorText.hasPrefix("MISCONF crdtd cannot write to its data directory"))
        #expect(try node.run("GET", "k0") == .bulk(value), "reads answer on a full disk")

        try tmpfs.resize(megabytes: 32)
        #expect(try eventually(timeout: .seconds(5)) { try node.info("persistence")["storage_degraded"] == "0" }, "it heals by itself")
        #expect(try node.run("SET", "other", "x") == .simpleString("OK"))
        // The write that found the disk full was kept and committed (its client had given up waiting).
        #expect(try node.run("DBSIZE") == .integer(Int64(acknowledged + 2)))
        #expect(node.stop() == 0)
        try node.start()
        #expect(try node.run("DBSIZE") == .integer(Int64(acknowledged + 2)))
        #expect(node.stop() == 0)
    }

    @Test func aShutdownWhileTheDiskIsFullExitsAtOnceWithoutAcknowledgingTheHeldWrite() throws {
        let faulty = try FaultyNode()
        let node = faulty.node
        try node.start()
        #expect(try node.run("INCR", "c") == .integer(1))
        try faulty.inject("enospc")
        let held = PendingCommand(port: node.clientPort, ["INCR", "c"])
        #expect(try eventually(timeout: .seconds(5)) { try node.info("persistence")["storage_degraded"] == "1" })
        let stopping = ContinuousClock.now
        #expect(node.stop(timeout: .seconds(10)) == 1, "a node that cannot commit what it holds does not exit 0")
        #expect(ContinuousClock.now - stopping < .seconds(5), "the writer gives up instead of waiting for space")
        #expect(node.log.contains("crdtd stops while its data directory \(node.dataDir) is full"), "\(node.log)")
        let answer = held.wait(seconds: 2)
        #expect(answer == nil || answer?.isError == true, "the held write was never acknowledged, got \(String(describing: answer))")
        try faulty.inject("")
        try node.start()
        #expect(try node.run("GET", "c") == .bulk("1"))
        #expect(node.stop() == 0)
    }

    @Test func anFsyncThatFailsStopsTheNodeWhichComesBackConsistentWithItsPeer() throws {
        let peer = DaemonProcess(name: "n2")
        try peer.start()
        defer { peer.stop() }
        let faulty = try FaultyNode(name: "n1", arguments: ["--durability", "full"])
        let node = faulty.node
        node.seeds = [peer.peerPort]
        try node.start()
        #expect(try peer.run("SET", "joined", "yes") == .simpleString("OK"))
        #expect(try eventually { try node.run("GET", "joined") == .bulk("yes") }, "the two nodes replicate")

        let c = try node.connect()
        var acknowledged = 0
        var attempted = 0
        while attempted < 500 {
            if acknowledged == 30 { try faulty.inject("eio-fsync-once") }
            attempted += 1
            guard let reply = try? c.send(["INCR", "c"]), case .integer = reply else { break }
            acknowledged += 1
        }
        #expect(acknowledged >= 30 && acknowledged < attempted, "a write after the failed fsync was not acknowledged")
        #expect(faulty.injected.hasPrefix("eio-fsync-done"), "the shim failed an fsync")
        #expect(eventually(timeout: .seconds(10)) { node.process?.isRunning == false }, "the node stops")
        #expect(node.process?.terminationStatus == 1)
        #expect(node.log.contains("crdtd stops: an fsync in the data directory \(node.dataDir) failed"), "\(node.log)")

        try node.start()
        defer { node.stop() }
        guard case .bulkString(let bytes) = try node.run("GET", "c"), let value = Int(String(decoding: bytes, as: UTF8.self)) else {
            Issue.record("no counter after the restart")
            return
        }
        #expect(value >= acknowledged && value <= attempted, "every acknowledged write survived; value \(value), acknowledged \(acknowledged)")
        #expect(try eventually { try peer.run("GET", "c") == node.run("GET", "c") && peer.run("CRDT.DIGEST") == node.run("CRDT.DIGEST") },
                "the restarted node converges with its peer")
    }

    @Test func aStalledDiskKeepsPingAnsweringAndRefusesWritesPastTheBound() throws {
        let faulty = try FaultyNode(arguments: ["--durability", "full"])
        let node = faulty.node
        try node.start()
        let c = try node.connect()
        for _ in 0..<10 { _ = try c.send(["INCR", "c"]) }
        _ = try c.send(["SET", "r", "v"])

        try faulty.inject("stall")
        let stalledAt = ContinuousClock.now
        let held = PendingCommand(port: node.clientPort, ["INCR", "c"])
        let pinger = try node.connect(timeout: .seconds(10))
        var latencies: [Duration] = []
        var busy: RESPReply?
        var busyLatency: Duration = .zero
        while ContinuousClock.now - stalledAt < .seconds(5) {
            let start = ContinuousClock.now
            #expect(try pinger.send(["PING"]) == .simpleString("PONG"))
            latencies.append(ContinuousClock.now - start)
            if busy == nil, ContinuousClock.now - stalledAt > .milliseconds(1500) {
                let asked = ContinuousClock.now
                busy = try node.run("INCR", "d")
                busyLatency = ContinuousClock.now - asked
                #expect(try node.run("GET", "r") == .bulk("v"), "reads answer during the stall")
                let persistence = try node.info("persistence")
                #expect(Int(persistence["storage_writes_waiting"] ?? "") ?? 0 >= 1, "\(persistence)")
                #expect(Int(persistence["storage_oldest_wait_ms"] ?? "") ?? 0 >= 1000, "\(persistence)")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(held.reply == nil, "the write waits for the stalled disk")
        #expect(busy?.errorText.hasPrefix("BUSY crdtd's disk is behind") == true, "got \(String(describing: busy))")
        #expect(busyLatency < .seconds(1), "the busy error comes at once, not after the stall")
        let sorted = latencies.sorted()
        let p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
        print("PING during a 5 s stalled fsync: \(latencies.count) pings, p50 \(sorted[sorted.count / 2]), p99 \(p99), max \(sorted.last!)")
        #expect(latencies.count > 50)
        #expect(p99 < .milliseconds(100), "PING keeps answering while the disk is stalled (p99 \(p99))")

        try faulty.inject("")
        #expect(held.wait(seconds: 10) == .integer(11), "the held write commits once the disk moves again")
        #expect(try c.send(["GET", "d"]) == .null, "the refused write was not applied")
        #expect(try c.send(["INCR", "c"]) == .integer(12))
        c.close()
        pinger.close()
        #expect(node.stop() == 0)
    }
}

/// A tmpfs of a few megabytes mounted for one test, unmounted and removed after it.
final class SmallTmpfs {
    let path: String

    /// Whether this process may mount one (root, and a kernel that allows it here).
    static let canMount: Bool = {
        guard getuid() == 0, let probe = try? SmallTmpfs(megabytes: 1) else { return false }
        probe.remove()
        return true
    }()

    init(megabytes: Int) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-tmpfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.mount(["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path]) else {
            try? FileManager.default.removeItem(atPath: path)
            throw TestFailure("mount -t tmpfs failed for \(path)")
        }
    }

    func resize(megabytes: Int) throws {
        guard Self.mount(["-o", "remount,size=\(megabytes)m", path]) else { throw TestFailure("remounting \(path) failed") }
    }

    private static func mount(_ arguments: [String], tool: String = "/bin/mount") -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    /// Unmounts and removes it; the daemon using it must have stopped. Calling it again does nothing.
    func remove() {
        guard FileManager.default.fileExists(atPath: path) else { return }
        // Lazy: the test still holds the daemon's log file (written next to its data directory) open.
        _ = Self.mount(["-l", path], tool: "/bin/umount")
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { remove() }
}
