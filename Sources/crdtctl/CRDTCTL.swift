import ArgumentParser
import Engine
import Foundation
import RESP

/// `crdtctl`: runs local crdtd clusters, injects faults, and verifies convergence.
@main
struct CRDTCTL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crdtctl",
        abstract: "Start local crdtd clusters, inject partitions and crashes, and verify that replicas converge.",
        subcommands: [
            Demo.self, Cluster.self, Partition.self, Heal.self, Kill.self, Restart.self, Pause.self, Resume.self,
            Verify.self, Run.self, Bench.self, Check.self,
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
            abstract: "Start, stop or show a local cluster.", subcommands: [Start.self, Stop.self, Status.self])

        struct Start: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Start N crdtd nodes on 127.0.0.1.")
            @OptionGroup var options: ClusterOptions
            @Option(help: "Number of nodes.") var nodes = 3
            @Option(help: "Client ports are base+1..base+N; peer ports base+101..; metrics base+201...") var basePort = 7000
            @Flag(help: "Run without a cluster key (peer traffic unauthenticated).") var insecure = false

            func validate() throws {
                guard (1...64).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 64") }
                guard basePort > 0 && basePort + 300 < 65_536 else { throw ValidationError("--base-port leaves no room for the ports") }
            }

            func run() throws {
                let cluster = try startCluster(dir: options.dir, nodes: nodes, basePort: basePort, insecure: insecure)
                for node in cluster.nodes {
                    print("\(node.name)  redis-cli -p \(node.clientPort)   peer :\(node.peerPort)   metrics http://127.0.0.1:\(node.metricsPort)/metrics   pid \(node.pid)")
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

        struct Status: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show each node's process, digest and peers.")
            @OptionGroup var options: ClusterOptions
            func run() throws {
                let cluster = try options.load()
                let digests = cluster.digests()
                for (i, node) in cluster.nodes.enumerated() {
                    let state = cluster.isRunning(node.pid) ? "running" : "down"
                    print("\(node.name) pid \(node.pid) \(state) digest \(digests[i] ?? "-")")
                    if let peers = try? cluster.command(i, ["CRDT.PEERS"]) { print("  peers \(peers.text)") }
                }
            }
        }
    }

    struct Partition: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut the cluster: isolate, minority, majority, ring or bridge (both sides keep accepting writes).")
        @OptionGroup var options: ClusterOptions
        @Argument(help: "isolate | minority | majority | ring | bridge") var shape: String
        @Option(help: "The node isolated (isolate) or where the minority starts (minority).") var victim: String?

        func run() throws {
            guard let shape = PartitionShape(rawValue: shape) else {
                throw ValidationError("unknown shape '\(shape)': use \(PartitionShape.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let cluster = try options.load()
            let victimIndex = try victim.map(cluster.index(of:)) ?? 0
            try partition(cluster, shape: shape, victim: victimIndex)
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

// MARK: Shared steps

/// Starts `nodes` fresh nodes in `dir` (removing an earlier cluster there) and waits until all serve and
/// know each other.
func startCluster(dir: String, nodes: Int, basePort: Int, insecure: Bool) throws -> LocalCluster {
    if let old = try? LocalCluster.load(from: dir) {
        for i in old.nodes.indices { old.stop(i) }
    }
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var keyFile: String?
    if !insecure {
        var key = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in key.indices { key[i] = UInt8.random(in: 0...255, using: &generator) }
        let path = (dir as NSString).appendingPathComponent("cluster.key")
        try (Data(key).base64EncodedString() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        keyFile = path
    }
    var cluster = LocalCluster(baseDir: dir, nodes: (1...nodes).map { n in
        let name = "n\(n)"
        let nodeDir = (dir as NSString).appendingPathComponent(name)
        return .init(name: name, clientPort: basePort + n, peerPort: basePort + 100 + n, metricsPort: basePort + 200 + n,
                     dataDir: nodeDir, logFile: nodeDir + ".log", pid: 0)
    }, keyFile: keyFile)
    for i in cluster.nodes.indices { try cluster.launch(i, seeds: [0]) }
    try cluster.save()
    for i in cluster.nodes.indices { try cluster.waitUntilServing(i) }
    try waitForMembership(cluster, timeout: .seconds(30))
    return cluster
}

/// Waits until every node sees every other node alive.
func waitForMembership(_ cluster: LocalCluster, timeout: Duration) throws {
    let deadline = ContinuousClock.now + timeout
    let others = cluster.nodes.count - 1
    while ContinuousClock.now < deadline {
        let ready = cluster.nodes.indices.allSatisfy { i in
            guard case .array(let peers)? = try? cluster.command(i, ["CRDT.PEERS"]) else { return false }
            return peers.filter { $0.text.contains("state, alive") }.count >= others
        }
        if ready { return }
        Thread.sleep(forTimeInterval: 0.1)
    }
    throw ClusterError("the nodes did not all see each other alive within \(timeout)")
}

func partition(_ cluster: LocalCluster, shape: PartitionShape, victim: Int, quiet: Bool = false) throws {
    let blocked = shape.blockedPeers(nodes: cluster.nodes.count, victim: victim)
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
