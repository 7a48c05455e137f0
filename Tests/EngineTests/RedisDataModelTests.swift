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
        // Keys come in hash order (the cursor is a hash), so compare as a set.
        guard case .array(let parts) = h.run("SCAN", "0"), case .array(let keys) = parts[1] else {
            Issue.record("SCAN did not answer a cursor and keys")
            return
        }
        #expect(parts[0] == .bulk("0"), "tombstones are passed over, so a small keyspace scans in one call")
        #expect(Set(keys.map { "\($0)" }) == Set([RESPReply.bulk("a"), .bulk("z")].map { "\($0)" }))
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
    /// Every reply one input produced, decoded: the early ones (reads of durable state) first.
    func replies(_ output: EngineOutput) -> [RESPReply] {
        var parser = RESPReplyParser()
        var replies: [RESPReply] = []
        for case .reply(_, let bytes) in output.immediate + output.effects {
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

/// `HINCRBY`, `PFADD`/`PFCOUNT`/`PFMERGE`, and the sorted-set commands on one engine.
@Suite struct CountersSketchesAndSortedSetsTests {
    @Test func hashIncrementsCountOnTopOfWrites() throws {
        var h = try Harness()
        #expect(h.run("HINCRBY", "h", "n", "5") == .integer(5))
        #expect(h.run("HINCRBY", "h", "n", "-2") == .integer(3))
        #expect(h.run("HGET", "h", "n") == .bulk("3"))
        #expect(h.run("HSET", "h", "n", "100") == .integer(0))
        #expect(h.run("HINCRBY", "h", "n", "1") == .integer(101), "a write replaces the increments it saw")
        #expect(h.run("HGETALL", "h") == .array([.bulk("n"), .bulk("101")]))
        h.run("HSET", "h", "s", "text")
        #expect(h.run("HINCRBY", "h", "s", "1") == .error("ERR hash value is not an integer"))
        #expect(h.run("HINCRBY", "h", "n", "9223372036854775807") == .error("ERR increment or decrement would overflow"))
        #expect(h.run("HINCRBYFLOAT", "h", "f", "10.5") == .bulk("10.5"))
        #expect(h.run("HINCRBYFLOAT", "h", "f", "0.1") == .bulk("10.6"))
        #expect(h.run("HINCRBYFLOAT", "h", "n", "-1") == .bulk("100"))
        #expect(h.run("HDEL", "h", "n") == .integer(1))
        #expect(h.run("HINCRBY", "h", "n", "2") == .integer(2), "a deleted field starts again from zero")
        #expect(h.run("HSETNX", "h", "x", "1").errorMessage?.contains("coordination") == true)
    }

    @Test func concurrentHashIncrementsOnTwoEnginesBothCount() throws {
        var left = try Harness(node: "n1", replica: 1)
        var right = try Harness(node: "n2", replica: 2)
        left.run("HSET", "h", "n", "10")
        shipDeltas(from: &left, to: &right)
        left.run("HINCRBY", "h", "n", "1")
        let leftDelta = left.lastOutput
        right.run("HINCRBY", "h", "n", "2")
        apply(leftDelta, to: &right)
        apply(right.lastOutput, to: &left)
        #expect(left.run("HGET", "h", "n") == .bulk("13"))
        #expect(right.run("HGET", "h", "n") == .bulk("13"))
    }

    @Test func hyperLogLogCountsMergesAndDeletes() throws {
        var h = try Harness()
        #expect(h.run("PFADD", "p", "a", "b", "c") == .integer(1))
        #expect(h.run("PFADD", "p", "a") == .integer(0), "nothing new: no register raised, nothing persisted")
        #expect(h.lastOutput.records.isEmpty)
        #expect(h.run("PFCOUNT", "p") == .integer(3))
        h.run("PFADD", "q", "c", "d")
        #expect(h.run("PFCOUNT", "p", "q") == .integer(4))
        #expect(h.run("PFMERGE", "m", "p", "q") == .simpleString("OK"))
        #expect(h.run("PFCOUNT", "m") == .integer(4))
        #expect(h.run("TYPE", "m") == .simpleString("hyperloglog"))
        #expect(h.run("PFADD", "empty") == .integer(1), "PFADD with no element creates the key")
        #expect(h.run("EXISTS", "empty") == .integer(1))
        h.run("SET", "s", "v")
        #expect(h.run("PFADD", "s", "x") == .wrongType)
        #expect(h.run("DEL", "p", "m") == .integer(2))
        #expect(h.run("PFCOUNT", "p") == .integer(0))
        #expect(h.run("PFADD", "p", "z") == .integer(1))
        #expect(h.run("PFCOUNT", "p") == .integer(1), "a deleted sketch starts empty")
    }

    @Test func sortedSetWritesAndFlags() throws {
        var h = try Harness()
        #expect(h.run("ZADD", "z", "1", "a", "2", "b", "3", "c") == .integer(3))
        #expect(h.run("ZADD", "z", "5", "a", "4", "d") == .integer(1))
        #expect(h.run("ZADD", "z", "CH", "6", "a", "4", "d", "1", "e") == .integer(2), "CH counts changed and added")
        #expect(h.run("ZADD", "z", "GT", "5", "a") == .integer(0))
        #expect(h.run("ZSCORE", "z", "a") == .bulk("6"), "GT keeps the greater score")
        #expect(h.run("ZADD", "z", "LT", "CH", "0.5", "a") == .integer(1))
        #expect(h.run("ZADD", "z", "INCR", "2", "a") == .bulk("2.5"))
        #expect(h.run("ZADD", "z", "GT", "INCR", "-1", "a") == .null, "GT refuses a lower result")
        #expect(h.run("ZINCRBY", "z", "10", "new") == .bulk("10"))
        #expect(h.run("ZADD", "z", "NX", "1", "a").errorMessage?.contains("coordination") == true)
        #expect(h.run("ZADD", "z", "XX", "1", "a").errorMessage?.contains("coordination") == true)
        #expect(h.run("ZADD", "z", "GT", "LT", "1", "a").isError)
        #expect(h.run("ZADD", "z", "INCR", "1", "a", "2", "b").isError)
        #expect(h.run("ZADD", "z", "nan", "a") == .error("ERR value is not a valid float"))
        #expect(h.run("ZADD", "z", "1", "a", "2") == .error("ERR syntax error"))
        #expect(h.run("ZCARD", "z") == .integer(6))
        #expect(h.run("ZMSCORE", "z", "b", "nope") == .array([.bulk("2"), .null]))
        #expect(h.run("ZREM", "z", "e", "nope") == .integer(1))
        #expect(h.run("TYPE", "z") == .simpleString("zset"))
        h.run("SET", "s", "v")
        #expect(h.run("ZADD", "s", "1", "a") == .wrongType)
    }

    @Test func sortedSetRanges() throws {
        var h = try Harness()
        h.run("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e")
        #expect(h.run("ZRANGE", "z", "0", "-1") == .array(["a", "b", "c", "d", "e"].map(RESPReply.bulk)))
        #expect(h.run("ZRANGE", "z", "1", "2", "WITHSCORES") == .array([.bulk("b"), .bulk("2"), .bulk("c"), .bulk("3")]))
        #expect(h.run("ZRANGE", "z", "0", "1", "REV") == .array([.bulk("e"), .bulk("d")]))
        #expect(h.run("ZREVRANGE", "z", "0", "1") == .array([.bulk("e"), .bulk("d")]))
        #expect(h.run("ZRANGE", "z", "(1", "4", "BYSCORE") == .array(["b", "c", "d"].map(RESPReply.bulk)))
        #expect(h.run("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2") == .array([.bulk("d"), .bulk("c")]))
        #expect(h.run("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "3", "-1") == .array([.bulk("d"), .bulk("e")]))
        #expect(h.run("ZREVRANGEBYSCORE", "z", "3", "(1") == .array(["c", "b"].map(RESPReply.bulk)))
        #expect(h.run("ZCOUNT", "z", "2", "(4") == .integer(2))
        #expect(h.run("ZRANK", "z", "c") == .integer(2))
        #expect(h.run("ZREVRANK", "z", "c", "WITHSCORE") == .array([.integer(2), .bulk("3")]))
        #expect(h.run("ZRANK", "z", "nope") == .null)
        #expect(h.run("ZRANGE", "z", "0", "1", "LIMIT", "0", "1").isError, "LIMIT needs BYSCORE or BYLEX")
        #expect(h.run("ZRANGE", "z", "x", "1", "BYSCORE") == .error("ERR min or max is not a float"))
        h.run("ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d")
        #expect(h.run("ZRANGEBYLEX", "lex", "[b", "(d") == .array([.bulk("b"), .bulk("c")]))
        #expect(h.run("ZRANGE", "lex", "+", "(b", "BYLEX", "REV") == .array([.bulk("d"), .bulk("c")]))
        #expect(h.run("ZLEXCOUNT", "lex", "-", "+") == .integer(4))
        #expect(h.run("ZRANGEBYLEX", "lex", "+", "-") == .array([]))
        #expect(h.run("ZRANGEBYLEX", "lex", "b", "d") == .error("ERR min or max not valid string range item"))
        #expect(h.run("ZREMRANGEBYLEX", "lex", "[a", "[b") == .integer(2))
        #expect(h.run("ZREMRANGEBYRANK", "z", "0", "1") == .integer(2))
        #expect(h.run("ZREMRANGEBYSCORE", "z", "5", "+inf") == .integer(1))
        #expect(h.run("ZRANGE", "z", "0", "-1", "WITHSCORES") == .array([.bulk("c"), .bulk("3"), .bulk("d"), .bulk("4")]))
        #expect(h.run("ZPOPMAX", "z") == .array([.bulk("d"), .bulk("4")]))
        #expect(h.run("ZPOPMIN", "z", "5") == .array([.bulk("c"), .bulk("3")]))
        #expect(h.run("EXISTS", "z") == .integer(0))
        h.run("ZADD", "z", "1.5", "m")
        #expect(h.run("ZSCAN", "z", "0") == .array([.bulk("0"), .array([.bulk("m"), .bulk("1.5")])]))
    }

    @Test func concurrentSortedSetIncrementsOnTwoEnginesBothCount() throws {
        var left = try Harness(node: "n1", replica: 1)
        var right = try Harness(node: "n2", replica: 2)
        left.run("ZADD", "z", "10", "m")
        shipDeltas(from: &left, to: &right)
        left.run("ZINCRBY", "z", "1", "m")
        let leftDelta = left.lastOutput
        right.run("ZINCRBY", "z", "2.5", "m")
        apply(leftDelta, to: &right)
        apply(right.lastOutput, to: &left)
        #expect(left.run("ZSCORE", "z", "m") == .bulk("13.5"))
        #expect(right.run("ZSCORE", "z", "m") == .bulk("13.5"))
    }
}

/// Applies the deltas an engine persisted to another engine's object, as a peer frame would.
func apply(_ output: EngineOutput, to target: inout Harness) {
    for case .delta(let key, let bytes) in output.records {
        guard let delta = try? KeyObject(serialized: bytes) else { continue }
        _ = target.engine.keyspace.join(remote: delta, bytes: bytes, into: key)
    }
}

func shipDeltas(from source: inout Harness, to target: inout Harness) {
    apply(source.lastOutput, to: &target)
}

/// The stored format before issue 16 (version 1) still loads, and hash fields keep their values.
@Suite struct KeyObjectFormatTests {
    @Test func version1ObjectsDecodeAndConvertHashFields() throws {
        var clock = LamportClock(replica: ReplicaID(7))
        var fields = ORMap<Bytes, CausalLWWRegister<Bytes>>()
        _ = fields.update(Array("f".utf8)) { $0.assign(Array("41".utf8), clock: &clock) }
        var set = AWSet<Bytes>()
        _ = set.add(Array("m".utf8), replica: ReplicaID(7))
        var writer = BinaryWriter()
        writer.write(byte: 1)
        writer.write(byte: 1 << 3)
        fields.encode(to: &writer)
        var hashOnly = try KeyObject(serialized: writer.bytes)
        #expect(hashOnly.hash[Array("f".utf8)]?.value == Array("41".utf8))
        _ = try hashOnly.hash.update(Array("f".utf8)) { (r: inout KeyObject.HashField) throws(CRDTMutationError) in
            try r.increment(by: 1, replica: ReplicaID(7))
        }
        #expect(Engine.shownValue(hashOnly.hash[Array("f".utf8)]!) == Array("42".utf8))
        var setWriter = BinaryWriter()
        setWriter.write(byte: 1)
        setWriter.write(byte: 1 << 2)
        set.encode(to: &setWriter)
        #expect(try KeyObject(serialized: setWriter.bytes).set.contains(Array("m".utf8)))
        #expect(throws: CRDTDecodingError.self) { _ = try KeyObject(serialized: [1, 1 << 5]) }
        #expect(throws: CRDTDecodingError.self) { _ = try KeyObject(serialized: [3, 0]) }
        #expect(hashOnly.serialized().first == 2, "objects are written in the new format")
    }

    @Test func everySlotRoundTrips() throws {
        let replica = ReplicaID(3)
        var clock = LamportClock(replica: replica)
        var object = KeyObject()
        let m = Array("m".utf8)
        _ = try object.counter.add(2, replica: replica)
        _ = object.string.assign(m, clock: &clock)
        _ = object.set.add(m, replica: replica)
        _ = try object.hash.update(m) { (r: inout KeyObject.HashField) throws(CRDTMutationError) in try r.increment(by: 1, replica: replica) }
        _ = try object.bounded.increment(by: 3, replica: replica)
        _ = object.sortedSet.add(m, score: 1.5, clock: &clock)
        _ = object.hyperLogLog.add([m], replica: replica)
        _ = object.expiry.expire(atMilliseconds: 1_767_225_600_000, replica: replica)
        let bytes = object.serialized()
        let decoded = try KeyObject(serialized: bytes)
        #expect(decoded == object)
        #expect(decoded.serialized() == bytes)
        #expect(decoded.digest(key: m) == object.digest(key: m))
        var cleared = object
        _ = cleared.removeObserved()
        #expect(cleared.visibleType == .boundedCounter, "every slot but the bounded counter is removed")
        #expect(cleared.digest(key: m) != object.digest(key: m))
    }
}

/// Expiry: deadlines from the tick's wall clock, keys hidden once past, removed by the next tick.
@Suite struct ExpiryTests {
    static let start: UInt64 = 1_767_225_600_000

    /// A harness whose engine has read the wall clock `start`.
    func harness(replica: UInt64 = 1) throws -> Harness {
        var h = try Harness(node: "n\(replica)", replica: replica)
        tick(&h, at: Self.start)
        return h
    }

    @discardableResult
    func tick(_ h: inout Harness, at wall: UInt64) -> EngineOutput {
        h.engine.handle(.tick(monotonicMilliseconds: wall - Self.start + 1, wallMilliseconds: wall))
    }

    @Test func expireTtlAndPersist() throws {
        var h = try harness()
        #expect(h.run("EXPIRE", "k", "10") == .integer(0), "an absent key gets no deadline")
        h.run("SET", "k", "v")
        #expect(h.run("TTL", "k") == .integer(-1))
        #expect(h.run("EXPIRE", "k", "10") == .integer(1))
        #expect(h.run("TTL", "k") == .integer(10))
        #expect(h.run("PTTL", "k") == .integer(10_000))
        #expect(h.run("EXPIRETIME", "k") == .integer(Int64(Self.start / 1000 + 10)))
        #expect(h.run("PEXPIRETIME", "k") == .integer(Int64(Self.start + 10_000)))
        #expect(h.run("EXPIRE", "k", "100", "NX") == .integer(0))
        #expect(h.run("EXPIRE", "k", "5", "GT") == .integer(0))
        #expect(h.run("EXPIRE", "k", "50", "GT") == .integer(1))
        #expect(h.run("EXPIRE", "k", "20", "LT") == .integer(1), "a later update shortens the deadline")
        #expect(h.run("TTL", "k") == .integer(20))
        #expect(h.run("PERSIST", "k") == .integer(1))
        #expect(h.run("PERSIST", "k") == .integer(0))
        #expect(h.run("TTL", "k") == .integer(-1))
        #expect(h.run("EXPIRE", "k", "5", "XX") == .integer(0))
        #expect(h.run("TTL", "missing") == .integer(-2))
        #expect(h.run("PEXPIREAT", "k", String(Self.start + 2_500)) == .integer(1))
        #expect(h.run("PTTL", "k") == .integer(2_500))
        #expect(h.run("EXPIRE", "k", "-1") == .integer(1), "a deadline already past deletes the key, as in Redis")
        #expect(h.run("EXISTS", "k") == .integer(0))
        #expect(h.run("EXPIRE", "k", "x").isError)
    }

    @Test func aKeyPastItsDeadlineIsHiddenThenRemovedByTheTick() throws {
        var h = try harness()
        h.run("SADD", "k", "a")
        h.run("PEXPIRE", "k", "1000")
        h.run("SET", "other", "v")
        var output = tick(&h, at: Self.start + 1_000)
        #expect(h.run("SMEMBERS", "k") == .array([.bulk("a")]), "not expired at its deadline: strictly after, as Redis")
        #expect(!output.records.contains { if case .delta = $0 { true } else { false } })
        output = tick(&h, at: Self.start + 1_001)
        #expect(output.records.contains { if case .delta(let key, _) = $0 { key == Array("k".utf8) } else { false } },
                "the tick issues the observed remove, persisted like a DEL")
        #expect(h.run("EXISTS", "k") == .integer(0))
        #expect(h.run("DBSIZE") == .integer(1))
        #expect(h.run("GET", "other") == .bulk("v"))
        #expect(h.run("SADD", "k", "b") == .integer(1), "the key starts afresh")
        #expect(h.run("SMEMBERS", "k") == .array([.bulk("b")]))
        #expect(h.run("TTL", "k") == .integer(-1))
    }

    @Test func setWithExpiryOptions() throws {
        var h = try harness()
        #expect(h.run("SET", "k", "v", "EX", "100") == .simpleString("OK"))
        #expect(h.run("TTL", "k") == .integer(100))
        #expect(h.run("SET", "k", "w", "KEEPTTL") == .simpleString("OK"))
        #expect(h.run("TTL", "k") == .integer(100))
        #expect(h.run("SET", "k", "x") == .simpleString("OK"))
        #expect(h.run("TTL", "k") == .integer(-1), "SET without KEEPTTL discards the deadline, as in Redis")
        #expect(h.run("SET", "k", "v", "PX", "1500") == .simpleString("OK"))
        #expect(h.run("PTTL", "k") == .integer(1500))
        #expect(h.run("SET", "k", "v", "PXAT", String(Self.start + 700)) == .simpleString("OK"))
        #expect(h.run("PTTL", "k") == .integer(700))
        #expect(h.run("SETEX", "s", "10", "v") == .simpleString("OK"))
        #expect(h.run("TTL", "s") == .integer(10))
        #expect(h.run("PSETEX", "s", "10", "v") == .simpleString("OK"))
        #expect(h.run("PTTL", "s") == .integer(10))
        #expect(h.run("SET", "k", "v", "EX", "0") == .error("ERR invalid expire time in 'set' command"))
        #expect(h.run("SET", "k", "v", "EX", "1", "PX", "1") == .error("ERR syntax error"))
        #expect(h.run("SET", "k", "v", "NX").errorMessage?.contains("coordination") == true)
        #expect(h.run("SET", "k", "v", "GET").errorMessage?.contains("coordination") == true)
        #expect(h.run("GETEX", "k", "EX", "60") == .bulk("v"))
        #expect(h.run("TTL", "k") == .integer(60))
        #expect(h.run("GETEX", "k", "PERSIST") == .bulk("v"))
        #expect(h.run("TTL", "k") == .integer(-1))
        #expect(h.run("GETEX", "missing") == .null)
        h.run("CRDT.BINCRBY", "b", "1")
        #expect(h.run("EXPIRE", "b", "10").errorMessage?.contains("bounded counter") == true)
        h.run("SET", "k", "v", "EX", "30")
        h.run("INCR", "n")
        h.run("EXPIRE", "n", "5")
        #expect(h.run("INCR", "n") == .integer(2))
        #expect(h.run("TTL", "n") == .integer(5), "other writes keep the deadline, as in Redis")
    }

    @Test func withoutAWallClockExpiryIsRefusedNotGuessed() throws {
        var h = try Harness()
        h.run("SET", "k", "v")
        #expect(h.run("EXPIRE", "k", "10").errorMessage?.contains("wall clock") == true)
        #expect(h.run("SET", "k", "v", "EX", "10").errorMessage?.contains("wall clock") == true)
        #expect(h.run("TTL", "k") == .integer(-1))
    }

    @Test func aConcurrentWriteSurvivesTheExpiryWithoutADeadline() throws {
        var left = try harness(replica: 1)
        var right = try harness(replica: 2)
        left.run("SADD", "k", "old")
        left.run("PEXPIRE", "k", "1000")
        var shipped = left.lastOutput
        apply(shipped, to: &right)
        // At the deadline left removes the key; concurrently, right (whose clock lags) adds a member.
        let removal = tick(&left, at: Self.start + 1_001)
        right.run("SADD", "k", "new")
        shipped = right.lastOutput
        apply(removal, to: &right)
        apply(shipped, to: &left)
        #expect(left.run("SMEMBERS", "k") == .array([.bulk("new")]))
        #expect(right.run("SMEMBERS", "k") == .array([.bulk("new")]))
        #expect(left.run("TTL", "k") == .integer(-1), "the survivor carries no deadline")
        #expect(right.run("TTL", "k") == .integer(-1))
    }

    @Test func concurrentDeadlinesKeepTheLongestAndPersistWins() throws {
        var left = try harness(replica: 1)
        var right = try harness(replica: 2)
        left.run("SET", "k", "v")
        apply(left.lastOutput, to: &right)
        left.run("EXPIRE", "k", "100")
        let fromLeft = left.lastOutput
        right.run("EXPIRE", "k", "300")
        apply(fromLeft, to: &right)
        apply(right.lastOutput, to: &left)
        #expect(left.run("TTL", "k") == .integer(300))
        #expect(right.run("TTL", "k") == .integer(300))
        left.run("PERSIST", "k")
        let persisted = left.lastOutput
        right.run("EXPIRE", "k", "10")
        apply(persisted, to: &right)
        apply(right.lastOutput, to: &left)
        #expect(left.run("TTL", "k") == .integer(-1), "PERSIST beats a concurrent EXPIRE")
        #expect(right.run("TTL", "k") == .integer(-1))
    }

    @Test func aStateArrivingPastItsDeadlineIsHiddenAtOnce() throws {
        var left = try harness(replica: 1)
        var right = try harness(replica: 2)
        left.run("SET", "k", "v", "PX", "500")
        let write = left.lastOutput
        tick(&right, at: Self.start + 600)
        apply(write, to: &right)
        #expect(right.run("GET", "k") == .null, "hidden before any tick removes it")
        let removal = tick(&right, at: Self.start + 610)
        #expect(removal.records.contains { if case .delta = $0 { true } else { false } })
    }

    @Test func theIndexFindsDueKeysInDeadlineOrder() {
        var index = ExpiryIndex()
        for i in 0..<100 { index.update(Array("k\(i)".utf8), deadline: UInt64(1_000 - i)) }
        index.update(Array("k0".utf8), deadline: nil)
        index.update(Array("k1".utf8), deadline: 5_000)
        #expect(index.count == 99)
        let due = index.due(before: 950, limit: 10)
        #expect(due == (90...99).reversed().map { Array("k\($0)".utf8) }, "earliest deadline first")
        #expect(index.due(before: 950, limit: 10) == due, "keys stay due until their removal changes them")
        for i in 0..<1_000 { index.update(Array("k2".utf8), deadline: UInt64(10_000 + i)) }
        #expect(index.due(before: 10_500, limit: 1_000).contains(Array("k2".utf8)) == false, "only the current deadline counts")
        #expect(index.count == 99)
    }
}
