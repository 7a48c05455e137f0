import Foundation
import Glibc
import NodeControl
import RESP
import RESPClient

/// Paths of the programs under test.
struct Binaries {
    var crdtd: String
    var etcd: String
    var redisServer: String
    var sqliteCeiling: String
}

/// N crdtd nodes on 127.0.0.1 (or each in a namespace of a network lab), authenticated with a fresh
/// cluster key, fault injection on.
final class CrdtdCluster {
    struct Node {
        var name: String
        /// 127.0.0.1, or the node's address in the lab.
        var host: String
        var clientPort: Int
        var peerPort: Int
        var metricsPort: Int
        var server: ServerProcess
    }

    let nodes: [Node]
    /// The network lab the nodes run in, whose cuts `partition` sets; nil: 127.0.0.1, cut by CRDT.PARTITION.
    let netns: NetnsLab?

    init(_ launcher: Launcher, _ binaries: Binaries, size: Int, durability: String, label: String, netns: NetnsLab? = nil) throws {
        self.netns = netns
        let base = try launcher.directory("crdtd-\(label)")
        let keyFile = (base as NSString).appendingPathComponent("cluster.key")
        try writeClusterKey(to: keyFile)
        var ports: [(Int, Int, Int)] = []
        for _ in 0..<size { ports.append((try launcher.freePort(), try launcher.freePort(), try launcher.freePort())) }
        var nodes: [Node] = []
        do {
            for i in 0..<size {
                let name = "n\(i + 1)"
                let host = netns?.address(i) ?? "127.0.0.1"
                let arguments = crdtdArguments(name: name, dataDir: (base as NSString).appendingPathComponent(name), host: host,
                                               clientPort: ports[i].0, peerPort: ports[i].1, metricsPort: ports[i].2,
                                               seedAddresses: i > 0 ? ["\(netns?.address(0) ?? "127.0.0.1"):\(ports[0].1)"] : [],
                                               keyFile: keyFile)
                    + ["--durability", durability, "--log-level", "warning"]
                let server = try launcher.start("crdtd-\(label)-\(name)", binaries.crdtd, arguments, namespace: netns.map { ($0, i) })
                nodes.append(Node(name: name, host: host, clientPort: ports[i].0, peerPort: ports[i].1, metricsPort: ports[i].2, server: server))
            }
            self.nodes = nodes
            try waitUntilReady(timeout: 60 + 4 * Double(size))
        } catch {
            for node in nodes { node.server.stop() }
            throw error
        }
    }

    func stop() { for node in nodes { node.server.stop() } }

    func connection(_ i: Int, timeout: Duration = .seconds(10)) throws -> RESPConnection {
        try RESPConnection(host: nodes[i].host, port: nodes[i].clientPort, timeout: timeout)
    }

    func command(_ i: Int, _ arguments: [String]) throws -> RESPReply {
        let c = try connection(i)
        defer { c.close() }
        return try c.send(arguments)
    }

    /// Every node answers PING and sees every other node alive.
    private func waitUntilReady(timeout: Double) throws {
        let ready = try waitForMembership(count: nodes.count, timeout: .milliseconds(Int(timeout * 1000)),
                                          peers: { try? command($0, ["CRDT.PEERS"]) }) { i in
            guard nodes[i].server.isRunning else { throw SuiteError("\(nodes[i].name) exited during start; see \(nodes[i].server.logFile)") }
        }
        guard ready else { throw SuiteError("the \(nodes.count) crdtd nodes did not all see each other alive within \(Int(timeout)) s") }
    }

    /// Each node's CRDT.DIGEST (nil for a node that does not answer).
    func digests() -> [String?] {
        nodes.indices.map { i in
            guard case .bulkString(let hex)? = try? command(i, ["CRDT.DIGEST"]) else { return nil }
            return String(decoding: hex, as: UTF8.self)
        }
    }

    /// Polls every `interval` until every node reports the same digest; the seconds it took, or nil.
    func waitForConvergence(timeout: Double, interval: Double = 0.02) -> Double? {
        waitUntil(timeout: .milliseconds(Int(timeout * 1000)), every: .milliseconds(Int(interval * 1000))) {
            let all = digests()
            return all.allSatisfy { $0 != nil } && Set(all.compactMap { $0 }).count == 1
        }.map { $0 / .seconds(1) }
    }

    /// Node `i` stops talking to the nodes in `peers` (CRDT.PARTITION); an empty list heals it.
    func cut(_ i: Int, from peers: [Int]) throws {
        _ = try command(i, ["CRDT.HEAL"])
        guard !peers.isEmpty else { return }
        let reply = try command(i, ["CRDT.PARTITION"] + peers.map { nodes[$0].name })
        guard reply == .simpleString("OK") else { throw SuiteError("\(nodes[i].name) refused CRDT.PARTITION: \(reply)") }
    }

    /// Node `i` stops hearing the nodes in `blocked[i]`: in the network when the nodes run in a lab (the
    /// daemons are not told), else by CRDT.PARTITION.
    func partition(_ blocked: [[Int]]) throws {
        if let netns { return try netns.setCuts(blocked) }
        for (i, peers) in blocked.enumerated() { try cut(i, from: peers) }
    }

    func healAll() throws {
        if let netns { return try netns.heal() }
        for i in nodes.indices { _ = try command(i, ["CRDT.HEAL"]) }
    }

    /// A Prometheus sample of node `i` (summed over label sets whose text contains `labels`).
    func metric(_ i: Int, _ name: String, labels: String = "") throws -> Double {
        metricSum(try httpGet(host: nodes[i].host, port: nodes[i].metricsPort, path: "/metrics"), name, labels: labels)
    }

    /// `crdtd_peer_bytes_total{direction="out"}` summed over every node.
    func bytesOut() throws -> Double {
        try nodes.indices.reduce(0) { $0 + (try metric($1, "crdtd_peer_bytes_total", labels: "direction=\"out\"")) }
    }
}

/// A 3-member etcd cluster on 127.0.0.1 (or each member in a namespace of a network lab), data in the
/// work directory, fsync on every commit (etcd's only mode).
final class EtcdCluster {
    struct Member {
        var name: String
        var host: String
        var clientPort: Int
        var server: ServerProcess

        func client(timeout: Double = 10) -> EtcdClient { EtcdClient(host: host, port: clientPort, timeout: timeout) }
    }

    let members: [Member]
    /// The lab the members run in; nil: 127.0.0.1.
    let netns: NetnsLab?

    init(_ launcher: Launcher, _ binaries: Binaries, label: String, netns: NetnsLab? = nil) throws {
        self.netns = netns
        let base = try launcher.directory("etcd-\(label)")
        var ports: [(client: Int, peer: Int)] = []
        for _ in 0..<3 { ports.append((try launcher.freePort(), try launcher.freePort())) }
        let hosts = (0..<3).map { netns?.address($0) ?? "127.0.0.1" }
        let initial = (0..<3).map { "e\($0 + 1)=http://\(hosts[$0]):\(ports[$0].peer)" }.joined(separator: ",")
        var members: [Member] = []
        do {
            for i in 0..<3 {
                let name = "e\(i + 1)"
                let server = try launcher.start("etcd-\(label)-\(name)", binaries.etcd, [
                    "--name", name, "--data-dir", (base as NSString).appendingPathComponent(name),
                    "--listen-client-urls", "http://\(hosts[i]):\(ports[i].client)",
                    "--advertise-client-urls", "http://\(hosts[i]):\(ports[i].client)",
                    "--listen-peer-urls", "http://\(hosts[i]):\(ports[i].peer)",
                    "--initial-advertise-peer-urls", "http://\(hosts[i]):\(ports[i].peer)",
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "thesis-\(label)", "--log-level", "warn",
                ], namespace: netns.map { ($0, i) })
                members.append(Member(name: name, host: hosts[i], clientPort: ports[i].client, server: server))
            }
            self.members = members
            try waitUntilReady()
        } catch {
            for member in members { member.server.stop() }
            throw error
        }
    }

    func stop() { for member in members { member.server.stop() } }

    /// Every member accepts a put.
    private func waitUntilReady() throws {
        let deadline = now() + 60
        for member in members {
            let client = member.client(timeout: 3)
            while true {
                if (try? client.put("ready", "1")) != nil { break }
                guard member.server.isRunning else { throw SuiteError("\(member.name) exited during start; see \(member.server.logFile)") }
                guard now() < deadline else { throw SuiteError("etcd member \(member.name) accepted no write within 60 s") }
                sleep(seconds: 0.1)
            }
        }
    }

    /// The index of the current leader.
    func leader() throws -> Int {
        for member in members {
            guard let status = try? member.client(timeout: 3).status() else { continue }
            if let i = try members.indices.first(where: { try members[$0].client(timeout: 3).status().member == status.leader }) {
                return i
            }
        }
        throw SuiteError("no etcd member knows a leader")
    }
}

/// One redis-server, no persistence (the memory measurement only).
func startRedis(_ launcher: Launcher, _ binaries: Binaries, label: String) throws -> (ServerProcess, Int) {
    let dir = try launcher.directory("redis-\(label)")
    let port = try launcher.freePort()
    let server = try launcher.start("redis-\(label)", binaries.redisServer, [
        "--bind", "127.0.0.1", "--port", "\(port)", "--dir", dir, "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--protected-mode", "yes",
    ])
    let deadline = now() + 20
    while now() < deadline {
        if let c = try? RESPConnection(host: "127.0.0.1", port: port, timeout: .seconds(1)), (try? c.send(["PING"])) == .simpleString("PONG") {
            return (server, port)
        }
        sleep(seconds: 0.05)
    }
    server.stop()
    throw SuiteError("redis-server did not answer PING within 20 s; see \(server.logFile)")
}

/// A single crdtd node (memory and persistence measurements).
func startSingleCrdtd(_ launcher: Launcher, _ binaries: Binaries, durability: String, label: String) throws -> CrdtdCluster {
    try CrdtdCluster(launcher, binaries, size: 1, durability: durability, label: label)
}
