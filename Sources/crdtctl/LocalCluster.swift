import Foundation
import NodeControl
import RESP
import RESPClient

/// A cluster of crdtd processes on this machine, described by `cluster.json` in its base directory, so
/// that separate crdtctl invocations (start, partition, heal, kill, verify, stop) act on the same nodes.
struct LocalCluster: Codable {
    struct Node: Codable {
        var name: String
        var clientPort: Int
        var peerPort: Int
        var metricsPort: Int
        var dataDir: String
        var logFile: String
        var pid: Int32
        /// The address the node listens on: 127.0.0.1, or its address in the cluster's network lab.
        /// Optional: older cluster.json files lack it.
        var host: String?

        var address: String { host ?? "127.0.0.1" }
    }

    var baseDir: String
    var nodes: [Node]
    var keyFile: String?
    /// The `default` user's password (also in `client.password`), when the nodes require clients to AUTH.
    var password: String?
    /// Whether the nodes run with the storage fault shim preloaded (`check --faults disk`), so that
    /// `injectStorageFault` can fill, stall or fail their disks. Optional: older cluster.json files lack it.
    var storageFaults: Bool?
    /// The network namespaces the nodes run in (`cluster start --netns`), one per node; nil: all on
    /// 127.0.0.1 in this machine's own namespace. Partitions of such a cluster are cut in the network.
    var netns: NetnsLab?

    static func path(in baseDir: String) -> String { (baseDir as NSString).appendingPathComponent("cluster.json") }
    static func passwordPath(in baseDir: String) -> String { (baseDir as NSString).appendingPathComponent("client.password") }

    static func load(from baseDir: String) throws -> LocalCluster {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path(in: baseDir)))
        } catch {
            throw ClusterError("no cluster in \(baseDir): start one with `crdtctl cluster start --dir \(baseDir)`")
        }
        return try JSONDecoder().decode(LocalCluster.self, from: data)
    }

    func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(in: baseDir)))
    }

    func node(_ name: String) throws -> Node { nodes[try index(of: name)] }

    func index(of name: String) throws -> Int {
        guard let index = nodes.firstIndex(where: { $0.name == name }) else {
            throw ClusterError("no node '\(name)' in this cluster (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
        }
        return index
    }

    // MARK: Processes

    /// The crdtd binary: beside this crdtctl (found through /proc/self/exe, so it works however crdtctl was
    /// invoked: by path, or by name from the PATH), else the first `crdtd` on the PATH.
    static func daemonPath() throws -> String {
        let beside = besideMe("crdtd").flatMap { FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil }
        guard let path = beside ?? onPath("crdtd") else {
            throw ClusterError("cannot find crdtd: it is neither beside crdtctl nor on the PATH; build it with `swift build --product crdtd`")
        }
        return path
    }

    /// The storage fault shim (Sources/CStorageFaults), which SwiftPM builds beside crdtd and crdtctl.
    static func storageFaultShimPath() throws -> String {
        let name = "libcrdtd-storage-faults.so"
        let besideDaemon = (try? daemonPath()).map { (($0 as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name) }
        guard let path = besideMe(name) ?? besideDaemon.flatMap({ FileManager.default.fileExists(atPath: $0) ? $0 : nil }) else {
            throw ClusterError("cannot find \(name) beside crdtctl or crdtd, which --faults disk preloads into the nodes; "
                + "build it with `swift build --product crdtd-storage-faults`")
        }
        return path
    }

    private static func besideMe(_ name: String) -> String? {
        guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let beside = ((me as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: beside) ? beside : nil
    }

    private static func onPath(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") where !directory.isEmpty {
            let candidate = (String(directory) as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The file whose first word tells the shim what node `i`'s disk does (see storage_faults.c).
    func storageFaultControl(_ i: Int) -> String { nodes[i].dataDir + ".fault" }

    /// Makes node `i`'s data directory full ("enospc"), stalled ("stall-writes"), failing ("eio-write"), or
    /// healthy again ("").
    func injectStorageFault(_ i: Int, _ mode: String) throws {
        guard storageFaults == true else { throw ClusterError("the nodes were started without the storage fault shim") }
        do {
            try Data((mode.isEmpty ? "" : mode + "\n").utf8).write(to: URL(fileURLWithPath: storageFaultControl(i)))
        } catch {
            throw ClusterError("cannot write \(storageFaultControl(i)): \(error.localizedDescription)")
        }
    }

    /// Starts (or restarts) node `i` as a background process writing to its log file.
    mutating func launch(_ i: Int, seeds: [Int], extraArguments: [String] = []) throws {
        var node = nodes[i]
        try FileManager.default.createDirectory(atPath: node.dataDir, withIntermediateDirectories: true)
        // Appended to, never truncated: a restarted node's log keeps why it stopped.
        if !FileManager.default.fileExists(atPath: node.logFile) {
            _ = FileManager.default.createFile(atPath: node.logFile, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: node.logFile))
        log.seekToEndOfFile()
        let daemon = try Self.daemonPath()
        let process = Process()
        var arguments = crdtdArguments(name: node.name, dataDir: node.dataDir, host: node.address, clientPort: node.clientPort,
                                       peerPort: node.peerPort, metricsPort: node.metricsPort,
                                       seedAddresses: seeds.filter { $0 != i }.map { "\(nodes[$0].address):\(nodes[$0].peerPort)" },
                                       keyFile: keyFile)
        if password != nil { arguments += ["--client-password-file", Self.passwordPath(in: baseDir)] }
        arguments += extraArguments
        if let netns {
            // `ip netns exec` enters the namespace and execs crdtd in place: the pid is crdtd's own.
            let prefix = try netns.execPrefix(i)
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [daemon] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: daemon)
            process.arguments = arguments
        }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if storageFaults == true {
            // The shim compares the paths the kernel reports, so it is given the resolved data directory.
            let resolved = URL(fileURLWithPath: node.dataDir).resolvingSymlinksInPath().path
            if !FileManager.default.fileExists(atPath: storageFaultControl(i)) {
                _ = FileManager.default.createFile(atPath: storageFaultControl(i), contents: nil)
            }
            var environment = ProcessInfo.processInfo.environment
            environment["LD_PRELOAD"] = try Self.storageFaultShimPath()
            environment["CRDTD_FAULT_DIR"] = resolved + "/"
            environment["CRDTD_FAULT_CONTROL"] = URL(fileURLWithPath: storageFaultControl(i)).resolvingSymlinksInPath().path
            process.environment = environment
        }
        do {
            try process.run()
        } catch {
            throw ClusterError("cannot start \(daemon): \(error.localizedDescription); build it with `swift build --product crdtd`")
        }
        node.pid = process.processIdentifier
        nodes[i] = node
    }

    /// Waits until node `i` answers PING, or throws after `timeout`.
    func waitUntilServing(_ i: Int, timeout: Duration = .seconds(30)) throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let connection = try? connection(i, timeout: .seconds(1)), (try? connection.send(["PING"])) == .simpleString("PONG") {
                connection.close()
                return
            }
            guard isRunning(nodes[i].pid) else {
                throw ClusterError("\(nodes[i].name) exited during start; see \(nodes[i].logFile)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ClusterError("\(nodes[i].name) did not answer PING within \(timeout); see \(nodes[i].logFile)")
    }

    func isRunning(_ pid: Int32) -> Bool { pid > 0 && kill(pid, 0) == 0 && !isZombie(pid) }

    private func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        guard let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("Z")
    }

    /// Sends `signal` and, for SIGTERM, waits up to `timeout` for the process to exit, then SIGKILLs it.
    func stop(_ i: Int, signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) {
        let pid = nodes[i].pid
        guard isRunning(pid) else { return }
        kill(pid, signal)
        guard signal == SIGTERM else { return }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline && isRunning(pid) { Thread.sleep(forTimeInterval: 0.02) }
        if isRunning(pid) { kill(pid, SIGKILL) }
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    // MARK: Commands

    /// A connection to node `i`, authenticated when the cluster has a password.
    func connection(_ i: Int, timeout: Duration = .seconds(5)) throws -> RESPConnection {
        try checkNetworkIsUp()
        return try authenticatedConnection(host: nodes[i].address, port: nodes[i].clientPort, password: password, timeout: timeout)
    }

    /// Throws when the cluster's network lab is gone (torn down by `cluster stop`, or by a later start
    /// with the same prefix): without its bridge, the nodes' addresses would be routed off this machine.
    func checkNetworkIsUp() throws {
        if let netns, !netns.isUp {
            throw ClusterError("the cluster's network (bridge \(netns.bridge)) is gone: start it again with `crdtctl cluster start --netns`")
        }
    }

    /// Runs one command on node `i`.
    func command(_ i: Int, _ arguments: [String], timeout: Duration = .seconds(5)) throws -> RESPReply {
        let connection = try connection(i, timeout: timeout)
        defer { connection.close() }
        return try connection.send(arguments)
    }

    /// Each node's `CRDT.DIGEST`, or `nil` for a node that does not answer.
    func digests() -> [String?] {
        nodes.indices.map { i in
            guard isRunning(nodes[i].pid), case .bulkString(let hex)? = try? command(i, ["CRDT.DIGEST"], timeout: .seconds(2)) else {
                return nil
            }
            return String(decoding: hex, as: UTF8.self)
        }
    }

    /// Polls until every running node reports the same digest; returns the time it took, or nil on timeout.
    func waitForConvergence(timeout: Duration) -> Duration? {
        waitUntil(timeout: timeout) {
            let live = digests().compactMap { $0 }
            return live.count == nodes.filter({ isRunning($0.pid) }).count && Set(live).count == 1
        }
    }
}

/// Connects and, given a password, authenticates (`AUTH [user] password`); a refusal is an error.
func authenticatedConnection(host: String, port: Int, user: String? = nil, password: String?,
                             timeout: Duration = .seconds(5)) throws -> RESPConnection {
    let connection = try RESPConnection(host: host, port: port, timeout: timeout)
    guard let password else { return connection }
    let reply = try connection.send(["AUTH"] + (user.map { [$0] } ?? []) + [password])
    guard reply == .simpleString("OK") else {
        connection.close()
        throw ClusterError("\(host):\(port) refused the credentials: \(reply.text)")
    }
    return connection
}

struct ClusterError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
