import Dispatch
import Engine
import Foundation
import NodeControl
import RESP
import RESPClient
import Synchronization

/// The nodes `check` runs against, and the faults it can inject into them: partitions on any cluster
/// started with `--allow-fault-injection`; kill -9 and pauses only on a local cluster, whose processes
/// this machine owns.
final class CheckCluster: Sendable {
    struct Node: Sendable {
        var name: String
        var host: String
        var port: Int
        /// Where its Prometheus `/metrics` is served, or why that is not known.
        var metrics: Result<MetricsEndpoint, MetricsUnavailable>
    }

    let nodes: [Node]
    /// The local cluster's processes (pids change at each restart), or nil for nodes given by address.
    private let local: Mutex<LocalCluster?>
    /// The network namespaces of a local cluster started in them: partitions are then cut in the network
    /// (nftables), and the daemons are not told.
    let netns: NetnsLab?

    var isLocal: Bool { local.withLock { $0 != nil } }

    init(local cluster: LocalCluster) {
        nodes = cluster.nodes.map {
            Node(name: $0.name, host: $0.address, port: $0.clientPort, metrics: .success(MetricsEndpoint(host: $0.address, port: $0.metricsPort)))
        }
        netns = cluster.netns
        local = Mutex(cluster)
    }

    /// Nodes given as HOST:PORT; each one's name (needed by CRDT.PARTITION) is read from `INFO server`.
    init(addresses: [String]) throws {
        var nodes: [Node] = []
        for address in addresses {
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
                throw ClusterError("--addr '\(address)' is not HOST:PORT")
            }
            let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            let reply: RESPReply
            do {
                let connection = try RESPConnection(host: host, port: port, timeout: .seconds(5))
                defer { connection.close() }
                reply = try connection.send(["INFO", "server"])
            } catch {
                throw ClusterError("cannot reach \(address): \(error)")
            }
            let info = reply.text
            guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("node_id:") }) else {
                throw ClusterError("\(address) does not report a node_id in INFO server: is it crdtd?")
            }
            nodes.append(Node(name: String(line.dropFirst("node_id:".count)), host: host, port: port,
                              metrics: CheckCluster.metricsEndpoint(info: info, host: host)))
        }
        guard Set(nodes.map(\.name)).count == nodes.count else {
            throw ClusterError("two addresses are the same node: \(nodes.map(\.name).joined(separator: ", "))")
        }
        self.nodes = nodes
        netns = nil
        local = Mutex(nil)
    }

    /// The metrics endpoint a node reports in `INFO server` (`metrics_addr`), reached at the node's own
    /// host when it listens on every address; `/metrics` is scraped over IPv4 only.
    static func metricsEndpoint(info: String, host: String) -> Result<MetricsEndpoint, MetricsUnavailable> {
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("metrics_addr:") }) else {
            return .failure(MetricsUnavailable(reason: "INFO server gives no metrics_addr (a crdtd older than this crdtctl)"))
        }
        let address = line.dropFirst("metrics_addr:".count).trimmingCharacters(in: .whitespaces)
        guard address != "off", !address.isEmpty else {
            return .failure(MetricsUnavailable(reason: "started without --metrics-addr"))
        }
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return .failure(MetricsUnavailable(reason: "metrics_addr '\(address)' is not HOST:PORT"))
        }
        var listen = String(address[..<colon])
        if listen == "0.0.0.0" { listen = host }
        guard inet_addr(listen) != in_addr_t.max else {
            return .failure(MetricsUnavailable(reason: "metrics on '\(address)': not an IPv4 address this check can scrape"))
        }
        return .success(MetricsEndpoint(host: listen, port: port))
    }

    /// A fresh connection to node `i`. Refused once a netns cluster's bridge is gone (removed by another
    /// start with the same prefix): its addresses would then be routed off this machine.
    func connect(_ i: Int, timeout: Duration) throws -> RESPConnection {
        if let netns, !netns.isUp { throw ClusterError("the network \(netns.bridge) is gone: not connecting to \(nodes[i].host)") }
        return try RESPConnection(host: nodes[i].host, port: nodes[i].port, timeout: timeout)
    }

    /// One command on node `i`, on a fresh connection.
    func command(_ i: Int, _ arguments: [String], timeout: Duration = .seconds(5)) throws -> RESPReply {
        let connection = try connect(i, timeout: timeout)
        defer { connection.close() }
        return try connection.send(arguments)
    }

    /// Fails with what to do when a node does not answer or refuses fault injection.
    func probe(needsFaultInjection: Bool) throws {
        for i in nodes.indices {
            let reply: RESPReply
            do {
                reply = try command(i, needsFaultInjection ? ["CRDT.HEAL"] : ["PING"])
            } catch {
                throw ClusterError("\(nodes[i].name) (\(nodes[i].host):\(nodes[i].port)) does not answer: \(error)")
            }
            if case .error(let message) = reply {
                throw ClusterError("\(nodes[i].name) refused: \(message)")
            }
        }
    }

    // MARK: Faults

    /// Runs `body` for every node at once, so one node that does not answer delays a fault by one timeout,
    /// not one per node; returns the errors in node order.
    private func onEveryNode(_ body: @Sendable (Int) -> String?) -> [String] {
        let errors = Mutex([String?](repeating: nil, count: nodes.count))
        DispatchQueue.concurrentPerform(iterations: nodes.count) { i in
            let error = body(i)
            errors.withLock { $0[i] = error }
        }
        return errors.withLock { $0.compactMap { $0 } }
    }

    /// Cuts the cluster into `shape`; returns what went wrong on nodes that did not take it.
    func partition(_ shape: PartitionShape, victim: Int) -> [String] {
        let blocked = shape.blockedPeers(nodes: nodes.count, victim: victim)
        if let netns {
            guard netns.isUp else { return ["the network \(netns.bridge) is gone"] }
            do { try netns.setCuts(blocked) } catch { return ["\(error)"] }
            return []
        }
        return onEveryNode { i in
            do {
                _ = try self.command(i, ["CRDT.HEAL"], timeout: .seconds(2))
                guard !blocked[i].isEmpty else { return nil }
                let reply = try self.command(i, ["CRDT.PARTITION"] + blocked[i].map { self.nodes[$0].name }, timeout: .seconds(2))
                return reply == .simpleString("OK") ? nil : "\(self.nodes[i].name) refused CRDT.PARTITION: \(reply.text)"
            } catch {
                return "\(self.nodes[i].name): CRDT.PARTITION failed: \(error)"
            }
        }
    }

    /// Cuts node `victim`'s traffic to every other node, one way: in the network (each other namespace
    /// drops its packets), or by the daemons (OUTBOUND on the victim, INBOUND on the others).
    func cutOneWay(from victim: Int) -> [String] {
        if let netns {
            guard netns.isUp else { return ["the network \(netns.bridge) is gone"] }
            do { try netns.setCuts(nodes.indices.map { $0 == victim ? [] : [victim] }) } catch { return ["\(error)"] }
            return []
        }
        let others = nodes.indices.filter { $0 != victim }.map { nodes[$0].name }
        return onEveryNode { i in
            let command = i == victim ? ["CRDT.PARTITION", "OUTBOUND"] + others : ["CRDT.PARTITION", "INBOUND", self.nodes[victim].name]
            do {
                _ = try self.command(i, ["CRDT.HEAL"], timeout: .seconds(2))
                let reply = try self.command(i, command, timeout: .seconds(2))
                return reply == .simpleString("OK") ? nil : "\(self.nodes[i].name) refused \(command.joined(separator: " ")): \(reply.text)"
            } catch {
                return "\(self.nodes[i].name): CRDT.PARTITION failed: \(error)"
            }
        }
    }

    /// Lifts every injected partition on `targets` (default all); returns the nodes that did not take it.
    func heal(_ targets: [Int]? = nil, timeout: Duration = .seconds(5)) -> [(node: Int, error: String)] {
        let targets = targets ?? Array(nodes.indices)
        if let netns {
            guard netns.isUp else { return targets.map { ($0, "the network \(netns.bridge) is gone") } }
            do { try netns.heal() } catch { return targets.map { ($0, "\(error)") } }
            return []
        }
        let errors = Mutex([(node: Int, error: String)]())
        DispatchQueue.concurrentPerform(iterations: targets.count) { t in
            let i = targets[t]
            do {
                let reply = try command(i, ["CRDT.HEAL"], timeout: timeout)
                if reply != .simpleString("OK") { errors.withLock { $0.append((i, "\(nodes[i].name) refused CRDT.HEAL: \(reply.text)")) } }
            } catch {
                errors.withLock { $0.append((i, "\(nodes[i].name): CRDT.HEAL failed: \(error)")) }
            }
        }
        return errors.withLock { $0.sorted { $0.node < $1.node } }
    }

    /// kill -9, then waits (up to 5 s) until the process is gone, so a restart finds its ports free.
    func kill9(_ i: Int) {
        local.withLock { cluster in cluster?.stop(i, signal: SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(5)
        while isRunning(i) && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
    }

    /// Starts a killed node again, seeded with every other node, and waits until it answers PING.
    func restart(_ i: Int, timeout: Duration) throws {
        let started = try local.withLock { cluster throws -> LocalCluster? in
            guard cluster != nil else { return nil }
            try cluster!.launch(i, seeds: Array(cluster!.nodes.indices))
            try cluster!.save()
            return cluster
        }
        try started?.waitUntilServing(i, timeout: timeout)
    }

    /// SIGSTOP (`frozen`) or SIGCONT.
    func pause(_ i: Int, frozen: Bool) {
        local.withLock { cluster in
            guard let pid = cluster?.nodes[i].pid, pid > 0 else { return }
            _ = kill(pid, frozen ? SIGSTOP : SIGCONT)
        }
    }

    /// Makes node `i`'s data directory full ("enospc"), stalled ("stall-writes"), failing ("eio-write") or
    /// healthy (""); returns an error, or nil when the control file was written.
    func storageFault(_ i: Int, _ mode: String) -> String? {
        do {
            try local.withLock { cluster in
                guard let cluster else { throw ClusterError("storage faults need a local cluster") }
                try cluster.injectStorageFault(i, mode)
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// `INFO section` of node `i` as fields, or nil when it does not answer.
    func info(_ i: Int, _ section: String) -> [String: String]? {
        guard case .bulkString(let bytes)? = try? command(i, ["INFO", section], timeout: .seconds(2)) else { return nil }
        return infoFields(String(decoding: bytes, as: UTF8.self))
    }

    /// Undoes everything a nemesis may have left behind: thaws every node and gives back every bad disk.
    func thawAll() {
        let storage = local.withLock { $0?.storageFaults == true }
        for i in nodes.indices {
            pause(i, frozen: false)
            if storage { _ = storageFault(i, "") }
        }
    }

    func isRunning(_ i: Int) -> Bool {
        local.withLock { cluster in cluster.map { $0.isRunning($0.nodes[i].pid) } ?? true }
    }

    /// Stops every node and removes the cluster's network namespaces, veths and bridge.
    func stopAll() {
        local.withLock { cluster in
            guard let cluster else { return }
            for i in cluster.nodes.indices { cluster.stop(i) }
            cluster.netns?.tearDown()
        }
    }

    /// Each node's log file (local clusters only).
    var logFiles: [String] { local.withLock { $0?.nodes.map(\.logFile) ?? [] } }

    // MARK: Convergence

    /// Each node's `CRDT.DIGEST`, or nil for one that does not answer within `timeout`; asked all at once.
    func digests(timeout: Duration = .seconds(5)) -> [String?] {
        let digests = Mutex([String?](repeating: nil, count: nodes.count))
        DispatchQueue.concurrentPerform(iterations: nodes.count) { i in
            guard case .bulkString(let hex)? = try? command(i, ["CRDT.DIGEST"], timeout: timeout) else { return }
            digests.withLock { $0[i] = String(decoding: hex, as: UTF8.self) }
        }
        return digests.withLock { $0 }
    }
}
