import CRDT
import RESP
import Testing
@testable import Engine

/// `ZUNION`/`ZINTER`/`ZDIFF` (and `STORE`), `ZINTERCARD`, `ZRANGESTORE`, `ZRANDMEMBER`, `ZMPOP`.
@Suite struct SortedSetAlgebraTests {
    func setUp() throws -> Harness {
        var h = try Harness()
        h.run("ZADD", "a", "1", "a1", "2", "a2", "3", "a3")
        h.run("ZADD", "b", "2", "a1", "2", "a2", "4", "b4")
        h.run("SADD", "s", "a1", "s1")
        return h
    }

    @Test func combinationsWithWeightsAndAggregates() throws {
        var h = try setUp()
        #expect(h.run("ZUNION", "2", "a", "b", "WITHSCORES")
                == .array(["a1", "3", "a3", "3", "a2", "4", "b4", "4"].map { .bulk($0) }))
        #expect(h.run("ZINTER", "2", "a", "b", "AGGREGATE", "MAX", "WITHSCORES") == .array(["a1", "2", "a2", "2"].map { .bulk($0) }))
        #expect(h.run("ZINTER", "2", "a", "b", "WEIGHTS", "1", "10") == .array([.bulk("a1"), .bulk("a2")]))
        #expect(h.run("ZDIFF", "2", "a", "b") == .array([.bulk("a3")]))
        #expect(h.run("ZINTERSTORE", "d", "2", "a", "s") == .integer(1), "a set's members score 1")
        #expect(h.run("ZSCORE", "d", "a1") == .bulk("2"))
        #expect(h.run("ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "2", "1", "AGGREGATE", "MIN") == .integer(4))
        #expect(h.run("ZRANGE", "d", "0", "-1", "WITHSCORES")
                == .array(["a1", "2", "a2", "2", "b4", "4", "a3", "6"].map { .bulk($0) }), "the destination is replaced")
        #expect(h.run("ZDIFFSTORE", "d", "2", "a", "a") == .integer(0))
        #expect(h.run("EXISTS", "d") == .integer(0), "an empty result deletes the destination")
        #expect(h.run("ZINTERCARD", "2", "a", "b") == .integer(2))
        #expect(h.run("ZINTERCARD", "2", "a", "b", "LIMIT", "1") == .integer(1))
        #expect(h.run("ZUNION", "0", "a") != .array([]), "numkeys 0 is an error")
        h.run("SET", "str", "v")
        #expect(h.run("ZUNION", "2", "a", "str") == Engine.wrongType)
    }

    @Test func rangeStoreRandomMembersAndMultiPop() throws {
        var h = try setUp()
        #expect(h.run("ZRANGESTORE", "r", "a", "(1", "+inf", "BYSCORE") == .integer(2))
        #expect(h.run("ZRANGE", "r", "0", "-1") == .array([.bulk("a2"), .bulk("a3")]))
        #expect(h.run("ZRANGESTORE", "r", "a", "0", "0", "REV") == .integer(1))
        #expect(h.run("ZRANGE", "r", "0", "-1") == .array([.bulk("a3")]))
        guard case .array(let three) = h.run("ZRANDMEMBER", "a", "5") else { Issue.record("ZRANDMEMBER"); return }
        #expect(Set(three) == [.bulk("a1"), .bulk("a2"), .bulk("a3")], "a positive count gives distinct members")
        guard case .array(let repeated) = h.run("ZRANDMEMBER", "a", "-7", "WITHSCORES") else { Issue.record("ZRANDMEMBER"); return }
        #expect(repeated.count == 14)
        #expect(h.run("ZRANDMEMBER", "missing") == .null)
        #expect(h.run("ZMPOP", "2", "missing", "a", "MAX", "COUNT", "2")
                == .array([.bulk("a"), .array([.array([.bulk("a3"), .bulk("3")]), .array([.bulk("a2"), .bulk("2")])])]))
        #expect(h.run("ZCARD", "a") == .integer(1))
        #expect(h.run("ZMPOP", "1", "missing", "MIN") == .nullArray)
    }
}
