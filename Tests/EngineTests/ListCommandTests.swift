import CRDT
import RESP
import Testing
@testable import Engine

/// The list commands on one engine, replies as Redis gives them, and lists merged between two engines.
@Suite struct ListCommandTests {
    func range(_ h: inout Harness, _ key: String) -> RESPReply { h.run("LRANGE", key, "0", "-1") }
    func bulks(_ values: String...) -> RESPReply { .array(values.map { .bulk($0) }) }

    @Test func pushPopAndRange() throws {
        var h = try Harness()
        #expect(h.run("RPUSH", "l", "a", "b", "c") == .integer(3))
        #expect(h.run("LPUSH", "l", "y", "z") == .integer(5))
        #expect(range(&h, "l") == bulks("z", "y", "a", "b", "c"), "LPUSH inserts one by one at the head")
        #expect(h.run("LRANGE", "l", "1", "2") == bulks("y", "a"))
        #expect(h.run("LRANGE", "l", "-2", "100") == bulks("b", "c"))
        #expect(h.run("LRANGE", "l", "3", "1") == .array([]))
        #expect(h.run("LLEN", "l") == .integer(5))
        #expect(h.run("TYPE", "l") == .simpleString("list"))
        #expect(h.run("LPOP", "l") == .bulk("z"))
        #expect(h.run("RPOP", "l", "2") == bulks("c", "b"))
        #expect(h.run("LPOP", "l", "0") == .array([]))
        #expect(h.run("LPOP", "l", "-1") == .error("ERR value is out of range, must be positive"))
        #expect(h.run("LPOP", "l", "5") == bulks("y", "a"))
        #expect(h.run("EXISTS", "l") == .integer(0), "an empty list does not exist")
        #expect(h.run("LPOP", "l") == .null)
        #expect(h.run("LPOP", "l", "2") == .nullArray)
        #expect(h.run("LPUSHX", "l", "x") == .integer(0), "the X forms need an existing list")
        #expect(h.run("RPUSH", "l", "a") == .integer(1))
        #expect(h.run("RPUSHX", "l", "b", "c") == .integer(3))
        h.run("SET", "s", "v")
        #expect(h.run("LPUSH", "s", "x") == Engine.wrongType)
        #expect(h.run("LRANGE", "s", "0", "-1") == Engine.wrongType)
    }

    @Test func indexSetInsertRemoveAndTrim() throws {
        var h = try Harness()
        h.run("RPUSH", "l", "a", "b", "a", "c", "a")
        #expect(h.run("LINDEX", "l", "1") == .bulk("b"))
        #expect(h.run("LINDEX", "l", "-1") == .bulk("a"))
        #expect(h.run("LINDEX", "l", "9") == .null)
        #expect(h.run("LSET", "l", "-2", "C") == .simpleString("OK"))
        #expect(h.run("LSET", "l", "9", "x") == .error("ERR index out of range"))
        #expect(h.run("LSET", "missing", "0", "x") == .error("ERR no such key"))
        #expect(h.run("LINSERT", "l", "BEFORE", "b", "b0") == .integer(6))
        #expect(h.run("LINSERT", "l", "after", "b", "b1") == .integer(7))
        #expect(h.run("LINSERT", "l", "AFTER", "nope", "x") == .integer(-1))
        #expect(h.run("LINSERT", "missing", "AFTER", "a", "x") == .integer(0))
        #expect(h.run("LINSERT", "l", "UNDER", "a", "x") == .error("ERR syntax error"))
        #expect(range(&h, "l") == bulks("a", "b0", "b", "b1", "a", "C", "a"))
        #expect(h.run("LPOS", "l", "a") == .integer(0))
        #expect(h.run("LPOS", "l", "a", "RANK", "-1") == .integer(6))
        #expect(h.run("LPOS", "l", "a", "COUNT", "0", "RANK", "2") == .array([.integer(4), .integer(6)]))
        #expect(h.run("LPOS", "l", "a", "COUNT", "0", "MAXLEN", "2") == .array([.integer(0)]))
        #expect(h.run("LPOS", "l", "a", "RANK", "0") != .integer(0), "RANK 0 is an error")
        #expect(h.run("LREM", "l", "-2", "a") == .integer(2), "a negative count removes from the tail")
        #expect(range(&h, "l") == bulks("a", "b0", "b", "b1", "C"))
        #expect(h.run("LREM", "l", "0", "a") == .integer(1))
        #expect(h.run("LTRIM", "l", "1", "-1") == .simpleString("OK"))
        #expect(range(&h, "l") == bulks("b", "b1", "C"))
        #expect(h.run("LTRIM", "l", "5", "10") == .simpleString("OK"))
        #expect(h.run("EXISTS", "l") == .integer(0), "trimming to nothing removes the key")
    }

    @Test func moveAndMultiPop() throws {
        var h = try Harness()
        h.run("RPUSH", "a", "1", "2", "3")
        #expect(h.run("LMOVE", "a", "b", "LEFT", "RIGHT") == .bulk("1"))
        #expect(h.run("RPOPLPUSH", "a", "b") == .bulk("3"))
        #expect(range(&h, "b") == bulks("3", "1"))
        #expect(h.run("LMOVE", "b", "b", "RIGHT", "LEFT") == .bulk("1"), "a rotation of one list")
        #expect(range(&h, "b") == bulks("1", "3"))
        #expect(h.run("LMOVE", "missing", "b", "LEFT", "LEFT") == .null)
        #expect(h.run("LMPOP", "2", "missing", "b", "RIGHT", "COUNT", "5") == .array([.bulk("b"), bulks("3", "1")]))
        #expect(h.run("LMPOP", "1", "b", "LEFT") == .nullArray)
        #expect(h.run("LMPOP", "1", "a", "UP") == .error("ERR syntax error"))
        #expect(h.run("BLPOP", "a", "0") != .nullArray, "blocking pops are refused")
    }

    @Test func delRemovesTheListAndItRoundTrips() throws {
        var h = try Harness()
        h.run("RPUSH", "l", "a", "b")
        let object = h.engine.keyspace[Array("l".utf8)]!
        let decoded = try KeyObject(serialized: object.serialized())
        #expect(decoded == object)
        #expect(decoded.digest(key: [1]) == object.digest(key: [1]))
        #expect(h.run("OBJECT", "ENCODING", "l") == .bulk("listpack"))
        #expect(h.run("DEL", "l") == .integer(1))
        #expect(h.run("LLEN", "l") == .integer(0))
        #expect(h.run("RPUSH", "l", "c") == .integer(1))
        #expect(range(&h, "l") == bulks("c"))
    }

    @Test func concurrentPushesOnTwoEnginesAreAllKeptInOneOrder() throws {
        var left = try Harness(node: "n1", replica: 1)
        var right = try Harness(node: "n2", replica: 2)
        left.run("RPUSH", "l", "a", "d")
        shipDeltas(from: &left, to: &right)
        left.run("LINSERT", "l", "AFTER", "a", "b")
        let leftInsert = left.lastOutput
        right.run("LINSERT", "l", "AFTER", "a", "c")
        let rightInsert = right.lastOutput
        left.run("LPUSH", "l", "head-left")
        let leftPush = left.lastOutput
        right.run("LPOP", "l")
        let rightPop = right.lastOutput
        apply(rightInsert, to: &left)
        apply(rightPop, to: &left)
        apply(leftInsert, to: &right)
        apply(leftPush, to: &right)
        let merged = range(&left, "l")
        #expect(merged == range(&right, "l"), "both engines show one order")
        // The pop removed only the "a" it saw; the concurrent push at the head survives.
        #expect(merged == bulks("head-left", "b", "c", "d") || merged == bulks("head-left", "c", "b", "d"), "\(merged)")
    }
}
