import Foundation
import RESP
import RESPClient
import Testing

/// Lists on two real daemons: concurrent inserts on both sides of a partition are all kept, in the
/// same order on both, and a pop on each side hands the same element to two consumers.
@Suite(.serialized) struct ListIntegrationTests {
    @Test func concurrentInsertsMergeAndPopsMayRepeatAcrossAPartition() throws {
        let pair = RedisDataModelIntegrationTests()
        let nodes = try pair.startPair()
        defer { for node in nodes { node.stop() } }
        let (n1, n2) = (nodes[0], nodes[1])
        #expect(try n1.run("RPUSH", "l", "first", "middle", "last") == .integer(3))
        #expect(pair.converged(nodes))

        #expect(try n1.run("CRDT.PARTITION", "n2") == .simpleString("OK"))
        #expect(try n2.run("CRDT.PARTITION", "n1") == .simpleString("OK"))
        #expect(try n1.run("LPOP", "l") == .bulk("first"))
        #expect(try n2.run("LPOP", "l") == .bulk("first"), "both sides pop the element they hold")
        #expect(try n1.run("LINSERT", "l", "BEFORE", "last", "left") == .integer(3))
        #expect(try n2.run("LINSERT", "l", "BEFORE", "last", "right") == .integer(3))
        #expect(try n1.run("RPUSH", "l", "tail-left") == .integer(4))
        #expect(try n2.run("LSET", "l", "0", "MIDDLE") == .simpleString("OK"))

        for node in nodes { #expect(try node.run("CRDT.HEAL") == .simpleString("OK")) }
        #expect(pair.converged(nodes), "no convergence after heal")
        let merged = try n1.run("LRANGE", "l", "0", "-1")
        #expect(try n2.run("LRANGE", "l", "0", "-1") == merged, "one order on both nodes")
        guard case .array(let values) = merged else { Issue.record("LRANGE: \(merged)"); return }
        let shown = values.compactMap { if case .bulkString(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } }
        #expect(shown.count == 5, "\(shown)")
        #expect(shown.first == "MIDDLE", "the LSET on n2 applies to the element both held: \(shown)")
        #expect(Set(shown.dropFirst().prefix(2)) == ["left", "right"], "both concurrent inserts are kept, before last: \(shown)")
        #expect(Array(shown.suffix(2)) == ["last", "tail-left"], "\(shown)")
    }
}
