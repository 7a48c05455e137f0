import Foundation
import NodeControl
import RESP
import RESPClient
import Testing

/// `CRDT.FORGET` with real daemons: a node gone for good is dropped by every member, refused when it comes
/// back with its old data directory, and welcome again as a new replica once that directory is wiped.
@Suite(.serialized) struct DecommissionIntegrationTests {
    func members(_ node: DaemonProcess) -> [[String: String]] {
        (try? node.run("CRDT.PEERS")).map(peerFields) ?? []
    }

    @Test func aForgottenNodeIsDroppedEverywhereRefusedWhenItReturnsAndRejoinsWhenWiped() throws {
        let key = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: 9, count: 32).base64EncodedString() + "\n").write(toFile: key, atomically: true, encoding: .utf8)
        let nodes = (1...3).map { DaemonProcess(name: "n\($0)", extraArguments: ["--cluster-key-file", key]) }
        for node in nodes.dropFirst() { node.seeds = [nodes[0].peerPort] }
        nodes[0].seeds = [nodes[1].peerPort]
        for node in nodes { try node.start() }
        defer { for node in nodes { _ = node.stop() } }
        #expect(eventually(timeout: .seconds(20)) { nodes.allSatisfy { members($0).count { $0["state"] == "alive" } == 2 } })
        for i in 0..<30 { _ = try nodes[i % 3].run("SADD", "s", "m\(i)") }

        // A live node may not be forgotten.
        guard case .error(let refusal) = try nodes[0].run("CRDT.FORGET", "n3") else {
            Issue.record("CRDT.FORGET of a live node was accepted")
            return
        }
        #expect(refusal.contains("alive"))

        nodes[2].crash()
        #expect(eventually(timeout: .seconds(20)) { members(nodes[0]).first { $0["node"] == "n3" }?["state"] == "dead" })
        #expect(try nodes[0].run("CRDT.FORGET", "n3") == .simpleString("OK"))
        // Gossip carries it to n2, which drops n3 too; both say so in INFO.
        #expect(eventually(timeout: .seconds(10)) { nodes[0...1].allSatisfy { !members($0).contains { $0["node"] == "n3" } } })
        for node in nodes[0...1] {
            guard case .bulkString(let info) = try node.run("INFO", "replication") else { continue }
            #expect(String(decoding: info, as: UTF8.self).contains("forgotten:n3=r"))
        }

        // n3 comes back with its old data directory: refused by the others, and it refuses writes, saying why.
        try nodes[2].start()
        #expect(eventually(timeout: .seconds(10)) {
            if case .error(let message)? = try? nodes[2].run("SADD", "s", "late") { return message.hasPrefix("DECOMMISSIONED") }
            return false
        })
        #expect(eventually(timeout: .seconds(5)) { nodes[2].log.contains("removed from the cluster") })
        Thread.sleep(forTimeInterval: 1)
        #expect(!members(nodes[0]).contains { $0["node"] == "n3" })
        #expect(try nodes[0].run("SISMEMBER", "s", "late") == .integer(0))

        // Wiped, it starts as a new replica, joins and catches up.
        _ = nodes[2].stop()
        try FileManager.default.removeItem(atPath: nodes[2].dataDir)
        try nodes[2].start()
        #expect(try nodes[2].run("SADD", "s", "fresh") == .integer(1))
        #expect(eventually(timeout: .seconds(20)) {
            nodes.allSatisfy { (try? $0.run("SCARD", "s")) == .integer(31) }
        })
        #expect(members(nodes[0]).first { $0["node"] == "n3" }?["state"] == "alive")
    }
}
