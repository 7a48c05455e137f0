import Foundation
import RESP
import RESPClient
import Testing

/// Issue 16's data model on real daemons: each new type written concurrently on two sides of a
/// partition, and a transaction seen whole on the other node.
@Suite(.serialized) struct RedisDataModelIntegrationTests {
    func startPair() throws -> [DaemonProcess] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: 9, count: 32).base64EncodedString() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let nodes = (1...2).map { DaemonProcess(name: "n\($0)", extraArguments: ["--cluster-key-file", path, "--allow-fault-injection"]) }
        nodes[0].seeds = [nodes[1].peerPort]
        nodes[1].seeds = [nodes[0].peerPort]
        for node in nodes { try node.start() }
        return nodes
    }

    func converged(_ nodes: [DaemonProcess]) -> Bool {
        eventually(timeout: .seconds(20)) {
            let all = nodes.map { try? $0.run("CRDT.DIGEST") }
            return all.allSatisfy { $0 != nil } && Set(all.map { "\($0!)" }).count == 1
        }
    }

    @Test func concurrentWritesOfEveryNewTypeMergeAcrossAPartition() throws {
        let nodes = try startPair()
        defer { for node in nodes { node.stop() } }
        let (n1, n2) = (nodes[0], nodes[1])
        #expect(try n1.run("ZADD", "z", "10", "m") == .integer(1))
        #expect(try n1.run("HSET", "h", "f", "10") == .integer(1))
        #expect(try n1.run("SADD", "e", "old") == .integer(1))
        #expect(try n1.run("PEXPIRE", "e", "1500") == .integer(1))
        #expect(converged(nodes))

        #expect(try n1.run("CRDT.PARTITION", "n2") == .simpleString("OK"))
        #expect(try n2.run("CRDT.PARTITION", "n1") == .simpleString("OK"))
        #expect(try n1.run("ZINCRBY", "z", "1", "m") == .bulk("11"))
        #expect(try n2.run("ZINCRBY", "z", "2.5", "m") == .bulk("12.5"))
        #expect(try n1.run("HINCRBY", "h", "f", "1") == .integer(11))
        #expect(try n2.run("HINCRBY", "h", "f", "5") == .integer(15))
        let (c1, c2) = (try n1.connect(), try n2.connect())
        for i in 0..<300 {
            _ = try c1.send(["PFADD", "p", "left-\(i)", "both-\(i)"])
            _ = try c2.send(["PFADD", "p", "right-\(i)", "both-\(i)"])
        }
        c1.close()
        c2.close()
        // Both clocks pass e's deadline: each side removes what it has seen. n2 then writes e afresh,
        // concurrently with n1's removal.
        #expect(eventually(timeout: .seconds(10)) { (try? n2.run("EXISTS", "e")) == .integer(0) })
        #expect(eventually(timeout: .seconds(10)) { (try? n1.run("EXISTS", "e")) == .integer(0) })
        #expect(try n2.run("SADD", "e", "new") == .integer(1))

        for node in nodes { #expect(try node.run("CRDT.HEAL") == .simpleString("OK")) }
        #expect(converged(nodes), "no convergence after heal")
        for node in nodes {
            #expect(try node.run("ZSCORE", "z", "m") == .bulk("13.5"), "concurrent ZINCRBYs both count")
            #expect(try node.run("HGET", "h", "f") == .bulk("16"), "concurrent HINCRBYs both count")
            guard case .integer(let count) = try node.run("PFCOUNT", "p") else { Issue.record("PFCOUNT"); continue }
            #expect(abs(Double(count) - 900) < 900 * 0.02, "the union of both sides' elements: \(count)")
            #expect(try node.run("SMEMBERS", "e") == .array([.bulk("new")]), "the write after n2's expiry survives n1's removal")
            #expect(try node.run("TTL", "e") == .integer(-1), "and carries no deadline")
        }
    }

    @Test func aTransactionIsSeenWholeOnTheOtherNode() throws {
        let nodes = try startPair()
        defer { for node in nodes { node.stop() } }
        let (n1, n2) = (nodes[0], nodes[1])
        #expect(try n1.run("SET", "warmup", "1") == .simpleString("OK"))
        #expect(converged(nodes))
        let writer = try n1.connect()
        defer { writer.close() }
        let reader = try n2.connect()
        defer { reader.close() }
        for round in 0..<20 {
            let keys = ["a\(round)", "b\(round)", "c\(round)"]
            #expect(try writer.send(["MULTI"]) == .simpleString("OK"))
            for key in keys { #expect(try writer.send(["SET", key, "v"]) == .simpleString("QUEUED")) }
            #expect(try writer.send(["EXEC"]) == .array([.simpleString("OK"), .simpleString("OK"), .simpleString("OK")]))
            var partial: RESPReply?
            let whole = eventually(timeout: .seconds(10)) {
                let reply = (try? reader.send(["MGET"] + keys)) ?? .null
                guard case .array(let values) = reply else { return false }
                let present = values.filter { $0 != .null }.count
                if present != 0 && present != keys.count { partial = reply }
                return present == keys.count
            }
            #expect(whole, "round \(round) never arrived")
            #expect(partial == nil, "round \(round) was seen partly applied: \(partial.map { "\($0)" } ?? "")")
        }
    }

    @Test func flushdbRemovesEverywhereAndRedisClientsFindTheirFields() throws {
        let nodes = try startPair()
        defer { for node in nodes { node.stop() } }
        let (n1, n2) = (nodes[0], nodes[1])
        _ = try n1.run("SET", "s", "v")
        _ = try n1.run("ZADD", "z", "1", "m")
        _ = try n1.run("PFADD", "p", "x")
        #expect(converged(nodes))
        #expect(try n2.run("FLUSHDB") == .simpleString("OK"))
        #expect(eventually { (try? n1.run("DBSIZE")) == .integer(0) }, "the removes replicate")
        guard case .bulkString(let text) = try n1.run("INFO", "server") else { Issue.record("INFO"); return }
        let info = String(decoding: text, as: UTF8.self)
        for field in ["redis_version:7.0.0\r\n", "arch_bits:64\r\n", "cluster_enabled:0\r\n", "uptime_in_seconds:", "crdtd_version:"] {
            #expect(info.contains(field), "INFO server lacks \(field)")
        }
        guard case .bulkString(let memory) = try n1.run("INFO", "memory") else { Issue.record("INFO memory"); return }
        #expect(String(decoding: memory, as: UTF8.self).contains("used_memory:"))
    }
}
