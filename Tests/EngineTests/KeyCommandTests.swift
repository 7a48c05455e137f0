import CRDT
import RESP
import Testing
@testable import Engine

/// `RENAME`, `COPY`, `RANDOMKEY`, `TOUCH`, `SPOP`, `SMOVE`, `SINTERCARD`, `HRANDFIELD`.
@Suite struct KeyCommandTests {
    @Test func renameAndCopyRecreateEveryType() throws {
        var h = try Harness()
        _ = h.engine.handle(.tick(monotonicMilliseconds: 1, wallMilliseconds: 1_767_225_600_000))
        h.run("INCRBY", "c", "5")
        h.run("SET", "s", "v")
        h.run("SADD", "set", "a", "b")
        h.run("HSET", "h", "f", "1")
        h.run("HINCRBY", "h", "f", "2")
        h.run("ZADD", "z", "1.5", "m")
        h.run("PFADD", "p", "x", "y")
        h.run("RPUSH", "l", "1", "2", "3")
        h.run("EXPIRE", "s", "100")
        for key in ["c", "s", "set", "h", "z", "p", "l"] {
            #expect(h.run("COPY", key, key + "2") == .integer(1), "\(key)")
            #expect(h.run("TYPE", key + "2") == h.run("TYPE", key))
        }
        #expect(h.run("GET", "c2") == .bulk("5"))
        #expect(h.run("HGET", "h2", "f") == .bulk("3"))
        #expect(h.run("ZSCORE", "z2", "m") == .bulk("1.5"))
        #expect(h.run("PFCOUNT", "p2") == .integer(2))
        #expect(h.run("LRANGE", "l2", "0", "-1") == .array([.bulk("1"), .bulk("2"), .bulk("3")]))
        #expect(h.run("TTL", "s2") == .integer(100), "the deadline comes along")
        #expect(h.run("COPY", "s", "set") == .integer(0), "without REPLACE an existing destination stays")
        #expect(h.run("COPY", "s", "set", "REPLACE") == .integer(1))
        #expect(h.run("GET", "set") == .bulk("v"))
        #expect(h.run("COPY", "s", "x", "DB", "1") == .error("ERR DB index is out of range (crdtd has one database, 0)"))
        #expect(h.run("RENAME", "l", "moved") == .simpleString("OK"))
        #expect(h.run("EXISTS", "l") == .integer(0))
        #expect(h.run("LLEN", "moved") == .integer(3))
        #expect(h.run("RENAME", "missing", "x") == .error("ERR no such key"))
        h.run("CRDT.BINCRBY", "b", "3")
        #expect(h.run("RENAME", "b", "b2") != .simpleString("OK"), "a bounded counter's rights cannot be copied")
        #expect(h.run("TOUCH", "moved", "missing", "s") == .integer(2))
        guard case .bulkString(let random) = h.run("RANDOMKEY") else { Issue.record("RANDOMKEY"); return }
        #expect(h.run("EXISTS", String(decoding: random, as: UTF8.self)) == .integer(1))
    }

    @Test func setPopsMovesAndCounts() throws {
        var h = try Harness()
        h.run("SADD", "a", "1", "2", "3")
        guard case .bulkString(let one) = h.run("SPOP", "a") else { Issue.record("SPOP"); return }
        #expect(h.run("SISMEMBER", "a", String(decoding: one, as: UTF8.self)) == .integer(0))
        guard case .array(let two) = h.run("SPOP", "a", "5") else { Issue.record("SPOP count"); return }
        #expect(two.count == 2)
        #expect(h.run("EXISTS", "a") == .integer(0))
        #expect(h.run("SPOP", "a") == .null)
        h.run("SADD", "x", "m", "n")
        h.run("SADD", "y", "n")
        #expect(h.run("SINTERCARD", "2", "x", "y") == .integer(1))
        #expect(h.run("SMOVE", "x", "y", "m") == .integer(1))
        #expect(h.run("SMOVE", "x", "y", "m") == .integer(0))
        #expect(h.run("SINTERCARD", "2", "x", "y", "LIMIT", "0") == .integer(1))
        #expect(h.run("SCARD", "y") == .integer(2))
        h.run("HSET", "h", "a", "1", "b", "2")
        guard case .array(let pairs) = h.run("HRANDFIELD", "h", "-3", "WITHVALUES") else { Issue.record("HRANDFIELD"); return }
        #expect(pairs.count == 6)
        #expect(h.run("HRANDFIELD", "missing") == .null)
    }
}
