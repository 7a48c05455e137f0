import Foundation
import RESP
import RESPClient
import Testing

/// Several real crdtd processes replicating over loopback.
@Suite(.serialized) struct ClusterTests {
    /// Starts `count` nodes sharing `keyFile`, each seeded with the first.
    func startCluster(_ count: Int, keyFile: String) throws -> [DaemonProcess] {
        let nodes = (1...count).map { DaemonProcess(name: "n\($0)", extraArguments: ["--cluster-key-file", keyFile, "--allow-fault-injection"]) }
        for node in nodes.dropFirst() { node.seeds = [nodes[0].peerPort] }
        nodes[0].seeds = [nodes[1].peerPort]
        for node in nodes { try node.start() }
        return nodes
    }

    func keyFile(_ byte: UInt8) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: byte, count: 32).base64EncodedString() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func digests(_ nodes: [DaemonProcess]) -> [RESPReply?] {
        nodes.map { try? $0.run("CRDT.DIGEST") }
    }

    func converged(_ nodes: [DaemonProcess], timeout: Duration = .seconds(20)) -> Bool {
        eventually(timeout: timeout) {
            let all = digests(nodes)
            return all.allSatisfy { $0 != nil } && Set(all.map { "\($0!)" }).count == 1
        }
    }

    @Test func threeNodesConvergeAndSurviveAPartitionAndAKillNine() throws {
        let nodes = try startCluster(3, keyFile: try keyFile(7))
        defer { for node in nodes { node.stop() } }

        for (i, node) in nodes.enumerated() {
            #expect(try node.run("INCRBY", "c", "\(i + 1)").isError == false)
            #expect(try node.run("SADD", "s", "from-\(i)") == .integer(1))
        }
        #expect(converged(nodes), "3 nodes did not converge: \(digests(nodes))")
        for node in nodes {
            #expect(try node.run("GET", "c") == .bulk("6"))
            #expect(try node.run("SCARD", "s") == .integer(3))
        }

        // Partition n1 from the others; both sides accept writes.
        #expect(try nodes[0].run("CRDT.PARTITION", "n2", "n3") == .simpleString("OK"))
        #expect(try nodes[1].run("CRDT.PARTITION", "n1") == .simpleString("OK"))
        #expect(try nodes[2].run("CRDT.PARTITION", "n1") == .simpleString("OK"))
        #expect(try nodes[0].run("INCRBY", "c", "10") == .integer(16))
        #expect(try nodes[1].run("INCRBY", "c", "100") == .integer(106))
        #expect(try nodes[2].run("SREM", "s", "from-0") == .integer(1))
        #expect(try nodes[0].run("SADD", "s", "from-0") == .integer(0), "re-added concurrently with the remove")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try nodes[0].run("GET", "c") == .bulk("16"), "the partitioned side does not see the other's writes")
        for node in nodes { #expect(try node.run("CRDT.HEAL") == .simpleString("OK")) }
        #expect(converged(nodes), "no convergence after heal: \(digests(nodes))")
        for node in nodes {
            #expect(try node.run("GET", "c") == .bulk("116"))
            #expect(try node.run("SISMEMBER", "s", "from-0") == .integer(1), "add wins over the concurrent remove")
        }

        // kill -9 one node, write on the others, restart it: it catches up.
        nodes[2].crash()
        #expect(try nodes[0].run("INCRBY", "c", "1000") == .integer(1116))
        try nodes[2].start()
        #expect(converged(nodes), "the restarted node did not catch up: \(digests(nodes))")
        #expect(try nodes[2].run("GET", "c") == .bulk("1116"))
    }

    @Test func aNodeWithTheWrongKeyIsIgnored() throws {
        let good = try keyFile(1)
        let nodes = try startCluster(2, keyFile: good)
        defer { for node in nodes { node.stop() } }
        let intruder = DaemonProcess(name: "evil", extraArguments: ["--cluster-key-file", try keyFile(2)])
        intruder.seeds = [nodes[0].peerPort]
        try intruder.start()
        defer { intruder.stop() }
        _ = try intruder.run("SET", "owned", "yes")
        _ = try nodes[0].run("SET", "k", "v")
        #expect(converged(nodes))
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try nodes[0].run("GET", "owned") == .null, "a frame under another key must never be applied")
        #expect(try intruder.run("GET", "k") == .null, "the intruder must not read the cluster's data")
        guard case .array(let peers) = try nodes[0].run("CRDT.PEERS") else {
            Issue.record("CRDT.PEERS must answer an array")
            return
        }
        #expect(!peers.contains { "\($0)".contains("evil") }, "the intruder must not join the membership")
        let metrics = try rawExchange(port: nodes[0].metricsPort, send: Array("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
        #expect(metrics.contains("auth_failed"), "rejected frames are counted by reason")
    }
}

/// Seeds given by host name, resolved with libuv's resolver (localhost comes from /etc/hosts).
@Suite(.serialized) struct HostNameSeedTests {
    @Test func nodesSeededByLocalhostNameJoinAndConverge() throws {
        let n1 = DaemonProcess(name: "n1")
        let n2 = DaemonProcess(name: "n2")
        // As in a StatefulSet, every node gets the same list of names, itself included.
        let names = ["localhost:\(n1.peerPort)", "localhost:\(n2.peerPort)"]
        n1.seedAddresses = names
        n2.seedAddresses = names
        try n1.start()
        defer { n1.stop() }
        try n2.start()
        defer { n2.stop() }
        #expect(try n1.run("SADD", "s", "from-n1") == .integer(1))
        #expect(try n2.run("SADD", "s", "from-n2") == .integer(1))
        let converged = eventually(timeout: .seconds(20)) {
            (try? n1.run("SCARD", "s")) == .integer(2) && (try? n2.run("SCARD", "s")) == .integer(2)
        }
        #expect(converged, "n1: \(String(describing: try? n1.run("SMEMBERS", "s"))) n2: \(String(describing: try? n2.run("SMEMBERS", "s")))")
        #expect(n2.log.contains("seed localhost:\(n1.peerPort) resolves to 127.0.0.1:\(n1.peerPort)"), "resolved, not parsed as a literal")
        // A node does not probe itself through its own name (that would count as rejected frames).
        Thread.sleep(forTimeInterval: 1.5)
        let metrics = try rawExchange(port: n1.metricsPort, send: Array("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
        #expect(!metrics.contains("reason=\"self\""), "frames to itself were sent")
    }
}
