import ArgumentParser
import Engine
import Foundation
import NodeControl
import RESP
import RESPClient

/// `crdtctl`: runs local crdtd clusters, injects faults, and verifies convergence.
@main
struct CRDTCTL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crdtctl",
        abstract: "Start local crdtd clusters, inject partitions and crashes, and verify that replicas converge.",
        subcommands: [
            Demo.self, Cluster.self, Partition.self, Cut.self, Heal.self, Kill.self, Restart.self, Pause.self, Resume.self,
            Status.self, Verify.self, Run.self, Bench.self, Check.self, Ping.self, Backup.self, Node.self,
            Counter.self, SetCommand.self, Register.self, Hash.self, BoundedCounter.self, Keys.self, TypeCommand.self, Del.self,
        ])
}

/// Where the cluster lives; shared by every subcommand.
struct ClusterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Directory of the local cluster (cluster.json, data, logs).", valueName: "dir"))
    var dir = "./cluster"

    func load() throws -> LocalCluster { try LocalCluster.load(from: dir) }
}

extension CRDTCTL {
    struct Cluster: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start, stop or show a local cluster.", subcommands: [Start.self, Stop.self, CRDTCTL.Status.self])

        struct Start: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Start N crdtd nodes on 127.0.0.1.")
            @OptionGroup var options: ClusterOptions
            @Option(help: "Number of nodes.") var nodes = 3
            @Option(help: "Client ports are base+1..base+N; peer ports base+101..; metrics base+201...") var basePort = 7000
            @Flag(help: "Run without a cluster key (peer traffic unauthenticated).") var insecure = false
            @Flag(help: "Require clients to AUTH with a random password, written to DIR/client.password.") var auth = false

            func validate() throws {
                guard (1...64).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 64") }
                guard basePort > 0 && basePort + 300 < 65_536 else { throw ValidationError("--base-port leaves no room for the ports") }
            }

            func run() throws {
                let cluster = try startCluster(dir: options.dir, nodes: nodes, basePort: basePort, insecure: insecure, auth: auth)
                let login = cluster.password.map { " -a \($0)" } ?? ""
                for node in cluster.nodes {
                    print("\(node.name)  redis-cli -p \(node.clientPort)\(login)   peer :\(node.peerPort)   metrics http://127.0.0.1:\(node.metricsPort)/metrics   pid \(node.pid)")
                }
            }
        }

        struct Stop: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Stop every node gracefully (SIGTERM, then SIGKILL after 10 s).")
            @OptionGroup var options: ClusterOptions
            func run() throws {
                let cluster = try options.load()
                for i in cluster.nodes.indices { cluster.stop(i) }
                print("stopped \(cluster.nodes.count) nodes")
            }
        }
    }

    struct Partition: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut the cluster by shape (isolate, minority, majority, ring, bridge) or into named groups; both sides keep accepting writes.",
            discussion: "crdtctl partition majority  |  crdtctl partition ring  |  crdtctl partition n1,n2 n3,n4,n5 (every node in one group; each group hears only itself)")
        @OptionGroup var options: ClusterOptions
        @Argument(help: "A shape (isolate | minority | majority | ring | bridge), or two or more comma-separated groups of node names.")
        var spec: [String]
        @Option(help: "The node isolated (isolate) or where the minority starts (minority).") var victim: String?

        func run() throws {
            let cluster = try options.load()
            if spec.count == 1, !spec[0].contains(",") {
                guard let shape = PartitionShape(rawValue: spec[0]) else {
                    throw ValidationError("unknown shape '\(spec[0])': use \(PartitionShape.allCases.map(\.rawValue).joined(separator: ", ")), "
                        + "or groups such as `n1,n2 n3,n4,n5`")
                }
                let victimIndex = try victim.map(cluster.index(of:)) ?? 0
                try partition(cluster, shape: shape, victim: victimIndex)
            } else {
                try partition(cluster, blocked: try blockedPeers(groups: spec, in: cluster))
            }
        }

        /// Each node blocks every node outside its group. Every node must be in exactly one group.
        func blockedPeers(groups spec: [String], in cluster: LocalCluster) throws -> [[Int]] {
            let groups = try spec.map { group in try group.split(separator: ",").map { try cluster.index(of: String($0)) } }
            var groupOf = [Int?](repeating: nil, count: cluster.nodes.count)
            for (g, members) in groups.enumerated() {
                for member in members {
                    if groupOf[member] != nil { throw ValidationError("\(cluster.nodes[member].name) is in two groups") }
                    groupOf[member] = g
                }
            }
            let missing = cluster.nodes.indices.filter { groupOf[$0] == nil }.map { cluster.nodes[$0].name }
            guard missing.isEmpty else {
                throw ValidationError("every node must be in a group; missing: \(missing.joined(separator: ", "))")
            }
            return cluster.nodes.indices.map { a in cluster.nodes.indices.filter { b in groupOf[a] != groupOf[b] } }
        }
    }

    struct Cut: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut one direction only: frames from one node to another are dropped, the reverse still flows.",
            discussion: "crdtctl cut n1 n2  (n1's frames never reach n2; n2 still reaches n1). Cuts add up; `crdtctl heal` lifts them all.")
        @OptionGroup var options: ClusterOptions
        @Argument(help: "The node whose frames are dropped.") var from: String
        @Argument(help: "The node that no longer hears it.") var to: String

        func run() throws {
            let cluster = try options.load()
            let (sender, receiver) = (try cluster.index(of: from), try cluster.index(of: to))
            guard sender != receiver else { throw ValidationError("a node cannot be cut from itself") }
            // Both ends drop the traffic, so the cut holds even if one of them restarts.
            for (node, direction, peer) in [(sender, "OUTBOUND", to), (receiver, "INBOUND", from)] {
                let reply = try cluster.command(node, ["CRDT.PARTITION", direction, peer])
                guard reply == .simpleString("OK") else { throw ClusterError("\(cluster.nodes[node].name) refused: \(reply.text)") }
            }
            print("\(from) → \(to) cut (\(to) → \(from) still flows)")
        }
    }

    struct Heal: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift every injected partition.")
        @OptionGroup var options: ClusterOptions
        func run() throws { try heal(try options.load()) }
    }

    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "kill -9 a node.")
        @OptionGroup var options: ClusterOptions
        @Argument var node: String
        func run() throws {
            let cluster = try options.load()
            cluster.stop(try cluster.index(of: node), signal: SIGKILL)
            print("killed \(node)")
        }
    }

    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restart a node that was stopped or killed.")
        @OptionGroup var options: ClusterOptions
        @Argument var node: String
        func run() throws {
            var cluster = try options.load()
            let i = try cluster.index(of: node)
            cluster.stop(i)
            try cluster.launch(i, seeds: Array(cluster.nodes.indices))
            try cluster.save()
            try cluster.waitUntilServing(i)
            print("restarted \(node) (pid \(cluster.nodes[i].pid))")
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Freeze a node (SIGSTOP), as a long GC pause or a hung VM would.")
        @OptionGroup var options: ClusterOptions
        @Argument var node: String
        func run() throws {
            let cluster = try options.load()
            kill(try cluster.node(node).pid, SIGSTOP)
            print("paused \(node)")
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Thaw a paused node (SIGCONT).")
        @OptionGroup var options: ClusterOptions
        @Argument var node: String
        func run() throws {
            let cluster = try options.load()
            kill(try cluster.node(node).pid, SIGCONT)
            print("resumed \(node)")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Wait until every running node reports the same CRDT.DIGEST.")
        @OptionGroup var options: ClusterOptions
        @Option(help: "Seconds to wait.") var timeout = 30

        func run() throws {
            let cluster = try options.load()
            guard let elapsed = cluster.waitForConvergence(timeout: .seconds(timeout)) else {
                for (node, digest) in zip(cluster.nodes, cluster.digests()) { print("\(node.name) \(digest ?? "down")") }
                throw ClusterError("not converged after \(timeout) s")
            }
            print("converged: \(cluster.digests().compactMap { $0 }.first ?? "") (after \(elapsed))")
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one command on one node: crdtctl run n1 INCR c")
        @OptionGroup var options: ClusterOptions
        @Argument var node: String
        @Argument(parsing: .captureForPassthrough) var command: [String]
        func run() throws {
            let cluster = try options.load()
            print(try cluster.command(try cluster.index(of: node), command).text)
        }
    }
}

extension CRDTCTL {
    /// A health probe for any node (Kubernetes readiness, scripts): exit 0 when it answers PING.
    struct Ping: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "PING a node, authenticating when given a password; exit 0 when it answers PONG.")
        @Option(help: "Host name or address of the node.") var host = "127.0.0.1"
        @Option(help: "Client port.") var port = 6379
        @Option(help: "User for AUTH (default: the default user).") var user: String?
        @Option(help: ArgumentHelp("File whose first line is the password.", valueName: "file")) var passwordFile: String?
        @Option(help: "Seconds to wait for the answer.") var timeout = 2

        func run() throws {
            let password = try passwordFile.map { path in
                let text = try String(contentsOfFile: path, encoding: .utf8)
                return String(text.split(whereSeparator: \.isNewline).first ?? "")
            }
            let connection = try authenticatedConnection(host: host, port: port, user: user, password: password,
                                                         timeout: .seconds(timeout))
            let reply = try connection.send(["PING"])
            guard reply == .simpleString("PONG") else { throw ClusterError("\(host):\(port) answered \(reply.text)") }
            print("PONG")
        }
    }
}

extension CRDTCTL {
    /// A consistent copy of one node's database, taken while it serves (CRDT.BACKUP), moved to FILE.
    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Back up one node of a local cluster into FILE while it keeps serving.",
            discussion: """
                The node writes the copy into its backup directory (CRDT.BACKUP, a read-only SQLite connection \
                doing VACUUM INTO on a thread of its own); crdtctl then moves it to FILE. Start a replacement \
                node from it with `crdtd --restore FILE` in an empty data directory.
                """)
        @OptionGroup var options: ClusterOptions
        @Option(help: "The node to back up.") var node: String
        @Argument(help: "Where to put the backup (must not exist).") var file: String
        @Option(help: "Seconds to wait for the copy.") var timeout = 600

        func run() throws {
            guard !FileManager.default.fileExists(atPath: file) else { throw ValidationError("\(file) exists; a backup never overwrites") }
            let cluster = try options.load()
            let name = "crdtctl-\(getpid())-\(UInt64(Date().timeIntervalSince1970 * 1000)).db"
            let reply = try cluster.command(try cluster.index(of: node), ["CRDT.BACKUP", name], timeout: .seconds(timeout))
            guard case .bulkString(let path) = reply else { throw ClusterError("\(node) refused the backup: \(reply.text)") }
            let written = String(decoding: path, as: UTF8.self)
            do {
                try FileManager.default.moveItem(atPath: written, toPath: file)
            } catch {
                throw ClusterError("the backup is at \(written) but could not be moved to \(file): \(error.localizedDescription)")
            }
            print("backed up \(node) into \(file)")
        }
    }
}

// MARK: Shared steps

/// Starts `nodes` fresh nodes in `dir` (removing an earlier cluster there) and waits until all serve and
/// know each other. With `storageFaults`, every node runs with the storage fault shim preloaded.
func startCluster(dir: String, nodes: Int, basePort: Int, insecure: Bool, auth: Bool = false,
                  storageFaults: Bool = false) throws -> LocalCluster {
    if let old = try? LocalCluster.load(from: dir) {
        for i in old.nodes.indices { old.stop(i) }
    }
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var keyFile: String?
    if !insecure {
        keyFile = (dir as NSString).appendingPathComponent("cluster.key")
        try writeClusterKey(to: keyFile!)
    }
    var cluster = LocalCluster(baseDir: dir, nodes: (1...nodes).map { n in
        let name = "n\(n)"
        let nodeDir = (dir as NSString).appendingPathComponent(name)
        return .init(name: name, clientPort: basePort + n, peerPort: basePort + 100 + n, metricsPort: basePort + 200 + n,
                     dataDir: nodeDir, logFile: nodeDir + ".log", pid: 0)
    }, keyFile: keyFile)
    if storageFaults { cluster.storageFaults = true }
    if auth {
        var generator = SystemRandomNumberGenerator()
        let password = Data((0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
        try (password + "\n").write(toFile: LocalCluster.passwordPath(in: dir), atomically: true, encoding: .utf8)
        cluster.password = password
    }
    do {
        for i in cluster.nodes.indices { try cluster.launch(i, seeds: [0]) }
        try cluster.save()
        for i in cluster.nodes.indices { try cluster.waitUntilServing(i) }
        try waitForMembership(cluster, timeout: .seconds(30))
    } catch {
        // A cluster that did not fully start is stopped, not left half running.
        for i in cluster.nodes.indices { cluster.stop(i) }
        throw error
    }
    return cluster
}

/// Waits until every node sees every other node alive.
func waitForMembership(_ cluster: LocalCluster, timeout: Duration) throws {
    guard try waitForMembership(count: cluster.nodes.count, timeout: timeout, peers: { try? cluster.command($0, ["CRDT.PEERS"]) }) else {
        throw ClusterError("the nodes did not all see each other alive within \(timeout)")
    }
}

func partition(_ cluster: LocalCluster, shape: PartitionShape, victim: Int, quiet: Bool = false) throws {
    try partition(cluster, blocked: shape.blockedPeers(nodes: cluster.nodes.count, victim: victim), quiet: quiet)
}

/// Lifts any earlier cut, then makes node `i` block `blocked[i]`.
func partition(_ cluster: LocalCluster, blocked: [[Int]], quiet: Bool = false) throws {
    for (i, peers) in blocked.enumerated() {
        _ = try cluster.command(i, ["CRDT.HEAL"])
        guard !peers.isEmpty else { continue }
        let reply = try cluster.command(i, ["CRDT.PARTITION"] + peers.map { cluster.nodes[$0].name })
        guard reply == .simpleString("OK") else { throw ClusterError("\(cluster.nodes[i].name) refused: \(reply.text)") }
        if !quiet { print("\(cluster.nodes[i].name) cut from \(peers.map { cluster.nodes[$0].name }.joined(separator: ", "))") }
    }
}

func heal(_ cluster: LocalCluster) throws {
    for i in cluster.nodes.indices where cluster.isRunning(cluster.nodes[i].pid) {
        _ = try cluster.command(i, ["CRDT.HEAL"])
    }
    print("healed")
}
