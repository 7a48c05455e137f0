import CRDT
import RESP
import Testing
@testable import Engine

/// `SORT` and `SORT_RO` over lists, sets and sorted sets, with `BY`, `GET`, `LIMIT`, `ALPHA`, `STORE`.
@Suite struct SortCommandTests {
    func bulks(_ values: String...) -> RESPReply { .array(values.map { .bulk($0) }) }

    @Test func sortsNumbersAndTextWithPatterns() throws {
        var h = try Harness()
        h.run("RPUSH", "l", "3", "10", "2")
        #expect(h.run("SORT", "l") == bulks("2", "3", "10"), "numbers, not bytes")
        #expect(h.run("SORT", "l", "ALPHA") == bulks("10", "2", "3"))
        #expect(h.run("SORT", "l", "DESC", "LIMIT", "1", "5") == bulks("3", "2"))
        h.run("MSET", "w:3", "1", "w:10", "3", "w:2", "2")
        h.run("HSET", "h:2", "name", "two")
        #expect(h.run("SORT", "l", "BY", "w:*") == bulks("3", "2", "10"))
        #expect(h.run("SORT", "l", "BY", "nosort") == bulks("3", "10", "2"), "a pattern without * keeps the list's order")
        #expect(h.run("SORT", "l", "GET", "h:*->name", "GET", "#") == .array([.bulk("two"), .bulk("2"), .null, .bulk("3"), .null, .bulk("10")]))
        h.run("RPUSH", "t", "b", "a")
        #expect(h.run("SORT", "t") == .error("ERR One or more scores can't be converted into double"))
        h.run("SADD", "s", "2", "1")
        #expect(h.run("SORT_RO", "s") == bulks("1", "2"))
        #expect(h.run("SORT_RO", "s", "STORE", "x") == .error("ERR syntax error"))
        #expect(h.run("SORT", "l", "STORE", "out") == .integer(3))
        #expect(h.run("LRANGE", "out", "0", "-1") == bulks("2", "3", "10"), "STORE writes a list")
        h.run("SET", "str", "v")
        #expect(h.run("SORT", "str") == Engine.wrongType)
        #expect(h.run("SORT", "missing") == .array([]))
    }
}
