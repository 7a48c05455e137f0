import CRDT
import RESP
import Testing
@testable import Engine

/// Issue 16's commands on one engine: replies as Redis gives them, and what they persist.
@Suite struct RedisDataModelTests {
    func info(_ h: inout Harness, _ section: String) -> [String: String] {
        guard case .bulkString(let text) = h.run("INFO", section) else { return [:] }
        var fields: [String: String] = [:]
        for line in String(decoding: text, as: UTF8.self).split(separator: "\r\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return fields
    }

    @Test func infoHasTheFieldsClientsParse() throws {
        var h = try Harness()
        _ = h.engine.handle(.tick(monotonicMilliseconds: 1_000, wallMilliseconds: 1_767_225_600_000))
        _ = h.engine.handle(.tick(monotonicMilliseconds: 4_500, wallMilliseconds: 1_767_225_603_500))
        let server = info(&h, "server")
        #expect(server["redis_version"] == "7.0.0", "a plain version: redis-py's test suite parses it")
        #expect(server["crdtd_version"] == crdtdVersion)
        #expect(server["arch_bits"] == "64")
        #expect(server["cluster_enabled"] == "0")
        #expect(server["uptime_in_seconds"] == "3")
        h.run("SET", "a", "1")
        h.run("SADD", "b", "x")
        #expect(info(&h, "keyspace")["db0"] == "keys=2,expires=0,avg_ttl=0")
        #expect(info(&h, "clients")["connected_clients"] == "1")
        #expect(info(&h, "cluster")["cluster_enabled"] == "0")
    }

    @Test func flushRemovesEveryKeyButBoundedCounters() throws {
        var h = try Harness()
        h.run("SET", "s", "v")
        h.run("INCR", "c")
        h.run("SADD", "set", "a", "b")
        h.run("HSET", "h", "f", "v")
        h.run("CRDT.BINCRBY", "b", "5")
        #expect(h.run("FLUSHDB") == .simpleString("OK"))
        #expect(h.lastOutput.records.filter { if case .delta = $0 { true } else { false } }.count == 4,
                "one observed remove per deletable key")
        #expect(h.run("DBSIZE") == .integer(1))
        #expect(h.run("CRDT.BGET", "b") == .integer(5), "a bounded counter's rights cannot be revoked: it stays")
        #expect(h.run("FLUSHALL", "ASYNC") == .simpleString("OK"))
        #expect(h.lastOutput.records.isEmpty, "nothing left to remove persists nothing")
        #expect(h.run("FLUSHDB", "LATER") == .error("ERR syntax error"))
        #expect(h.run("INCR", "c") == .integer(1), "a flushed counter starts again from zero")
    }

    @Test func multiKeyStrings() throws {
        var h = try Harness()
        #expect(h.run("MSET", "a", "1", "b", "2") == .simpleString("OK"))
        #expect(h.lastOutput.records.filter { if case .delta = $0 { true } else { false } }.count == 2)
        h.run("SADD", "set", "x")
        h.run("INCRBY", "n", "7")
        #expect(h.run("MGET", "a", "missing", "b", "set", "n") == .array([.bulk("1"), .null, .bulk("2"), .null, .bulk("7")]))
        #expect(h.run("MSET", "a", "1", "b") == .error("ERR wrong number of arguments for 'mset' command"))
        #expect(h.run("EXISTS", "a", "b", "a", "missing") == .integer(3), "EXISTS counts a key once per mention")
        #expect(h.run("UNLINK", "a", "a", "missing") == .integer(1))
        #expect(h.run("EXISTS", "a") == .integer(0))
    }

    @Test func stringRangesLengthsAndAppend() throws {
        var h = try Harness()
        #expect(h.run("APPEND", "s", "foo") == .integer(3))
        #expect(h.run("APPEND", "s", "bar") == .integer(6))
        #expect(h.run("GET", "s") == .bulk("foobar"))
        #expect(h.run("STRLEN", "s") == .integer(6))
        #expect(h.run("STRLEN", "missing") == .integer(0))
        #expect(h.run("GETRANGE", "s", "0", "2") == .bulk("foo"))
        #expect(h.run("GETRANGE", "s", "-3", "-1") == .bulk("bar"))
        #expect(h.run("GETRANGE", "s", "4", "100") == .bulk("ar"))
        #expect(h.run("GETRANGE", "s", "5", "2") == .bulk(""))
        #expect(h.run("SETRANGE", "s", "3", "BAR") == .integer(6))
        #expect(h.run("GET", "s") == .bulk("fooBAR"))
        #expect(h.run("SETRANGE", "p", "3", "x") == .integer(4))
        #expect(h.run("GET", "p") == .bulkString([0, 0, 0, UInt8(ascii: "x")]), "SETRANGE pads with zero bytes")
        #expect(h.run("SETRANGE", "s", "-1", "x") == .error("ERR offset is out of range"))
        #expect(h.run("GETDEL", "s") == .bulk("fooBAR"))
        #expect(h.run("GETDEL", "s") == .null)
        #expect(h.run("EXISTS", "s") == .integer(0))
        h.run("SADD", "set", "x")
        #expect(h.run("APPEND", "set", "x") == .wrongType)
        #expect(h.run("GETDEL", "set") == .wrongType)
    }

    @Test func setOverwritesAnyTypeAndIncrParsesAString() throws {
        var h = try Harness()
        h.run("SADD", "k", "a")
        #expect(h.run("SET", "k", "10") == .simpleString("OK"), "SET replaces a value of any type, as in Redis")
        #expect(h.run("TYPE", "k") == .simpleString("string"))
        #expect(h.run("SMEMBERS", "k") == .wrongType)
        #expect(h.run("INCR", "k") == .integer(11), "a string holding an integer counts from it")
        #expect(h.run("INCRBY", "k", "-11") == .integer(0))
        #expect(h.run("EXISTS", "k") == .integer(1), "a counter at zero still exists")
        #expect(h.run("APPEND", "k", "5") == .integer(2), "APPEND to a counter appends to its decimal value")
        #expect(h.run("GET", "k") == .bulk("05"))
        h.run("SET", "t", "ten")
        #expect(h.run("INCR", "t") == .error("ERR value is not an integer or out of range"))
        #expect(h.run("INCRBY", "zero", "0") == .integer(0))
        #expect(h.run("EXISTS", "zero") == .integer(1), "INCRBY k 0 creates k, as in Redis")
        h.run("CRDT.BINCRBY", "b", "1")
        #expect(h.run("SET", "b", "x").errorMessage?.contains("bounded counter") == true)
    }

    @Test func hashReads() throws {
        var h = try Harness()
        #expect(h.run("HMSET", "h", "b", "22", "a", "1") == .simpleString("OK"), "HMSET answers OK, HSET a count")
        #expect(h.run("HMGET", "h", "a", "nope", "b") == .array([.bulk("1"), .null, .bulk("22")]))
        #expect(h.run("HKEYS", "h") == .array([.bulk("a"), .bulk("b")]))
        #expect(h.run("HVALS", "h") == .array([.bulk("1"), .bulk("22")]))
        #expect(h.run("HEXISTS", "h", "a") == .integer(1))
        #expect(h.run("HEXISTS", "h", "z") == .integer(0))
        #expect(h.run("HSTRLEN", "h", "b") == .integer(2))
        #expect(h.run("HSTRLEN", "h", "z") == .integer(0))
        #expect(h.run("HKEYS", "missing") == .array([]))
        h.run("SET", "s", "v")
        #expect(h.run("HKEYS", "s") == .wrongType)
        #expect(h.run("HSCAN", "h", "0") == .array([.bulk("0"), .array([.bulk("a"), .bulk("1"), .bulk("b"), .bulk("22")])]))
        #expect(h.run("HSCAN", "h", "0", "MATCH", "b") == .array([.bulk("0"), .array([.bulk("b"), .bulk("22")])]))
        #expect(h.run("HSCAN", "h", "0", "NOVALUES") == .array([.bulk("0"), .array([.bulk("a"), .bulk("b")])]))
    }

    @Test func setAlgebraAndRandomMembers() throws {
        var h = try Harness()
        h.run("SADD", "x", "a", "b", "c")
        h.run("SADD", "y", "b", "c", "d")
        #expect(h.run("SINTER", "x", "y") == .array([.bulk("b"), .bulk("c")]))
        #expect(h.run("SUNION", "x", "y", "missing") == .array([.bulk("a"), .bulk("b"), .bulk("c"), .bulk("d")]))
        #expect(h.run("SDIFF", "x", "y") == .array([.bulk("a")]))
        #expect(h.run("SMISMEMBER", "x", "a", "d") == .array([.integer(1), .integer(0)]))
        h.run("SADD", "dest", "old", "b")
        #expect(h.run("SINTERSTORE", "dest", "x", "y") == .integer(2))
        #expect(h.run("SMEMBERS", "dest") == .array([.bulk("b"), .bulk("c")]), "the store forms replace the destination")
        #expect(h.run("SUNIONSTORE", "u", "x", "y") == .integer(4))
        #expect(h.run("SDIFFSTORE", "u", "x", "x") == .integer(0))
        #expect(h.run("EXISTS", "u") == .integer(0), "an empty result leaves no key, as in Redis")
        h.run("SET", "s", "v")
        #expect(h.run("SUNION", "x", "s") == .wrongType)
        #expect(h.run("SDIFFSTORE", "s", "x") == .integer(3), "a store form overwrites another type")
        guard case .bulkString(let one) = h.run("SRANDMEMBER", "x") else { Issue.record("SRANDMEMBER"); return }
        #expect([Array("a".utf8), Array("b".utf8), Array("c".utf8)].contains(one))
        #expect(h.run("SRANDMEMBER", "x", "2").arrayCount == 2)
        #expect(h.run("SRANDMEMBER", "x", "10").arrayCount == 3, "a positive count gives distinct members")
        #expect(h.run("SRANDMEMBER", "x", "-5").arrayCount == 5, "a negative count may repeat")
        #expect(h.run("SRANDMEMBER", "missing") == .null)
        #expect(h.run("SSCAN", "x", "0", "MATCH", "a") == .array([.bulk("0"), .array([.bulk("a")])]))
    }

    @Test func scanPassesOverDeletedKeys() throws {
        var h = try Harness()
        for i in 0..<50 { h.run("SET", "gone\(i)", "v") }
        for i in 0..<50 { h.run("DEL", "gone\(i)") }
        h.run("SET", "a", "1")
        h.run("SET", "z", "1")
        #expect(h.run("SCAN", "0") == .array([.bulk("0"), .array([.bulk("a"), .bulk("z")])]),
                "tombstones are passed over, so a small keyspace scans in one call")
    }

    @Test func serverIntrospection() throws {
        var h = try Harness()
        _ = h.engine.handle(.tick(monotonicMilliseconds: 10, wallMilliseconds: 1_767_225_600_123))
        #expect(h.run("TIME") == .array([.bulk("1767225600"), .bulk("123000")]))
        guard case .array(let config) = h.run("CONFIG", "GET", "*max-*-entries*", "maxmemory") else {
            Issue.record("CONFIG GET answers a map (flattened in RESP2)")
            return
        }
        #expect(config.contains(.bulk("maxmemory")))
        #expect(config.contains(.bulk("hash-max-listpack-entries")))
        #expect(!config.contains(.bulk("timeout")))
        #expect(h.run("CONFIG", "SET", "maxmemory", "1").errorMessage?.contains("config file") == true)
        guard case .bulkString(let list) = h.run("CLIENT", "LIST") else { Issue.record("CLIENT LIST"); return }
        #expect(String(decoding: list, as: UTF8.self).hasPrefix("id=1 addr=test "))
        guard case .bulkString(let me) = h.run("CLIENT", "INFO") else { Issue.record("CLIENT INFO"); return }
        #expect(String(decoding: me, as: UTF8.self).contains("resp=2"))
        #expect(h.run("CLIENT", "LIST", "ID", "99") == .bulk(""), "RESP2 sends verbatim text as a bulk string")
        h.run("SET", "s", "short")
        h.run("INCR", "n")
        #expect(h.run("OBJECT", "ENCODING", "s") == .bulk("embstr"))
        #expect(h.run("OBJECT", "ENCODING", "n") == .bulk("int"))
        #expect(h.run("OBJECT", "ENCODING", "missing") == .null)
        guard case .integer(let size) = h.run("MEMORY", "USAGE", "s") else { Issue.record("MEMORY USAGE"); return }
        #expect(size > 5)
        #expect(h.run("MEMORY", "USAGE", "missing") == .null)
        guard case .integer(let count) = h.run("COMMAND", "COUNT") else { Issue.record("COMMAND COUNT"); return }
        #expect(count == Int64(CommandParser.table.count))
        #expect(h.run("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2") == .array([.bulk("a"), .bulk("b")]))
    }

    @Test func refusedCommandsSayWhy() throws {
        var h = try Harness()
        #expect(h.run("SETNX", "k", "v").errorMessage?.contains("coordination") == true)
        #expect(h.run("BLPOP", "k", "0").errorMessage?.contains("coordination") == true)
        #expect(h.run("EVAL", "return 1", "0").errorMessage?.contains("MULTI/EXEC") == true)
        #expect(h.run("NOSUCH").errorMessage?.hasPrefix("ERR unknown command") == true)
    }
}

/// `MULTI`/`EXEC`/`DISCARD`: an atomic local batch, queued in the client's session.
@Suite struct TransactionTests {
    /// Every reply one input produced, decoded.
    func replies(_ output: EngineOutput) -> [RESPReply] {
        var parser = RESPReplyParser()
        var replies: [RESPReply] = []
        for case .reply(_, let bytes) in output.effects {
            try? parser.append(bytes)
            while let reply = try? parser.next() { replies.append(reply) }
        }
        return replies
    }

    @Test func execRunsTheQueueInOneStepAndRepliesWithAnArray() throws {
        var h = try Harness()
        #expect(h.run("MULTI") == .simpleString("OK"))
        #expect(h.run("SET", "a", "1") == .simpleString("QUEUED"))
        #expect(h.lastOutput.records.isEmpty, "a queued write changes nothing yet")
        #expect(h.run("INCR", "n") == .simpleString("QUEUED"))
        #expect(h.run("SADD", "a", "x") == .simpleString("QUEUED"), "a command that will fail at EXEC still queues")
        #expect(h.run("GET", "a") == .simpleString("QUEUED"))
        #expect(h.run("EXEC") == .array([.simpleString("OK"), .integer(1), .wrongType, .bulk("1")]))
        let deltas = h.lastOutput.records.filter { if case .delta = $0 { true } else { false } }
        #expect(deltas.count == 2, "both writes are in the one output, so the shell commits them together")
        #expect(h.run("GET", "a") == .bulk("1"))
        #expect(h.run("EXEC") == .error("ERR EXEC without MULTI"))
    }

    @Test func queuedCommandsWaitForExecWhileOtherClientsRun() throws {
        var h = try Harness()
        let other = ClientID(2)
        _ = h.engine.handle(.clientConnected(other, address: "other"))
        func fromOther(_ arguments: String...) -> [RESPReply] {
            replies(h.engine.handle(.clientCommand(other, arguments.map { Array($0.utf8) })))
        }
        h.run("MULTI")
        h.run("INCR", "n")
        #expect(fromOther("SET", "x", "1") == [.simpleString("OK")], "another client is not queued")
        #expect(fromOther("GET", "n") == [.null], "nothing of the transaction is visible before EXEC")
        h.run("INCR", "n")
        #expect(h.run("EXEC") == .array([.integer(1), .integer(2)]))
        #expect(fromOther("GET", "n") == [.bulk("2")])
    }

    @Test func discardForgetsTheQueue() throws {
        var h = try Harness()
        h.run("MULTI")
        h.run("SET", "a", "1")
        #expect(h.run("DISCARD") == .simpleString("OK"))
        #expect(h.run("GET", "a") == .null)
        #expect(h.run("DISCARD") == .error("ERR DISCARD without MULTI"))
    }

    @Test func aCommandRefusedWhileQueueingAbortsTheTransaction() throws {
        var h = try Harness()
        h.run("MULTI")
        h.run("SET", "a", "1")
        #expect(h.run("NOSUCH").isError)
        #expect(h.run("GET").isError, "wrong arity")
        #expect(h.run("MULTI") == .error("ERR MULTI calls can not be nested"))
        #expect(h.run("EXEC") == .error("EXECABORT Transaction discarded because of previous errors."))
        #expect(h.lastOutput.records.isEmpty)
        #expect(h.run("GET", "a") == .null)
    }

    @Test func watchIsRefusedWithTheReason() throws {
        var h = try Harness()
        #expect(h.run("WATCH", "k").errorMessage?.contains("coordination") == true)
        #expect(h.run("UNWATCH") == .simpleString("OK"))
    }

    @Test func aDisconnectForgetsTheQueue() throws {
        var h = try Harness()
        h.run("MULTI")
        h.run("SET", "a", "1")
        _ = h.engine.handle(.clientDisconnected(h.client))
        _ = h.engine.handle(.clientConnected(h.client, address: "again"))
        #expect(h.run("EXEC") == .error("ERR EXEC without MULTI"))
        #expect(h.run("GET", "a") == .null)
    }
}
