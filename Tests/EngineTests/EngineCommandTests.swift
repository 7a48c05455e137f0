import CRDT
import RESP
import Testing
@testable import Engine

/// One engine and one client, with replies decoded back into `RESPReply`.
struct Harness {
    var engine: Engine
    let client = ClientID(1)
    var lastOutput = EngineOutput()

    init(node: String = "n1", replica: UInt64 = 1, faultInjection: Bool = false, recovery: EngineRecovery = EngineRecovery()) throws {
        var configuration = EngineConfiguration(nodeID: node, replica: ReplicaID(replica))
        configuration.allowFaultInjection = faultInjection
        engine = try Engine(configuration: configuration, recovery: recovery)
        _ = engine.handle(.clientConnected(client, address: "test"))
    }

    /// Runs one command and returns its single reply.
    @discardableResult
    mutating func run(_ arguments: String...) -> RESPReply {
        run(arguments.map { Array($0.utf8) })
    }

    @discardableResult
    mutating func run(_ arguments: [Bytes]) -> RESPReply {
        lastOutput = engine.handle(.clientCommand(client, arguments))
        var parser = RESPReplyParser()
        var replies: [RESPReply] = []
        // Early replies leave first: the engine never puts one behind a reply of the same client that waits.
        for effect in lastOutput.immediate + lastOutput.effects {
            switch effect {
            case .reply(_, let bytes): try? parser.append(bytes)
            // Built where the shell builds it, off the engine; here, at once.
            case .deferredReply(_, let deferred): try? parser.append(deferred.encode())
            default: continue
            }
            while let reply = try? parser.next() { replies.append(reply) }
        }
        precondition(replies.count == 1, "expected exactly one reply, got \(replies)")
        return replies[0]
    }
}

extension RESPReply {
    static func bulk(_ text: String) -> RESPReply { .bulkString(Array(text.utf8)) }
    static let wrongType = RESPReply.error("WRONGTYPE Operation against a key holding the wrong kind of value")
}

@Suite struct EngineCommandTests {
    @Test func countersIncrementDecrementAndRead() throws {
        var h = try Harness()
        #expect(h.run("INCR", "c") == .integer(1))
        #expect(h.run("INCRBY", "c", "41") == .integer(42))
        #expect(h.run("DECR", "c") == .integer(41))
        #expect(h.run("DECRBY", "c", "50") == .integer(-9))
        #expect(h.run("GET", "c") == .bulk("-9"))
        #expect(h.run("TYPE", "c") == .simpleString("counter"))
        #expect(h.run("INCRBY", "c", "x") == .error("ERR value is not an integer or out of range"))
        #expect(h.run("INCRBY", "c", "9223372036854775807") == .integer(9_223_372_036_854_775_798))
        #expect(h.run("INCRBY", "c", "10") == .error("ERR increment or decrement would overflow"))
        #expect(h.lastOutput.records.isEmpty, "a refused write persists nothing")
        #expect(h.run("GET", "c") == .bulk("9223372036854775798"), "a refused write changes nothing")
    }

    @Test func stringsAndWrongType() throws {
        var h = try Harness()
        #expect(h.run("SET", "s", "v1") == .simpleString("OK"))
        #expect(h.run("SET", "s", "v2") == .simpleString("OK"))
        #expect(h.run("GET", "s") == .bulk("v2"))
        #expect(h.run("GET", "missing") == .null)
        #expect(h.run("INCR", "s") == .error("ERR value is not an integer or out of range"), "as Redis answers")
        #expect(h.run("SADD", "s", "x") == .wrongType)
        #expect(h.run("SET", "s", "v", "EX", "10").isError)
        #expect(h.run("TYPE", "s") == .simpleString("string"))
    }

    @Test func setsAddRemoveAndRead() throws {
        var h = try Harness()
        #expect(h.run("SADD", "k", "a", "b", "a") == .integer(2))
        #expect(h.run("SADD", "k", "b", "c") == .integer(1))
        #expect(h.run("SREM", "k", "a", "zz") == .integer(1))
        #expect(h.run("SMEMBERS", "k") == .array([.bulk("b"), .bulk("c")]), "RESP2 sends sets as arrays")
        #expect(h.run("SISMEMBER", "k", "b") == .integer(1))
        #expect(h.run("SISMEMBER", "k", "a") == .integer(0))
        #expect(h.run("SCARD", "k") == .integer(2))
        #expect(h.run("GET", "k") == .wrongType)
        #expect(h.run("SREM", "k", "b", "c") == .integer(2))
        #expect(h.run("EXISTS", "k") == .integer(0), "an emptied set no longer exists, as in Redis")
    }

    @Test func hashesSetGetDeleteAndList() throws {
        var h = try Harness()
        #expect(h.run("HSET", "h", "f1", "a", "f2", "b") == .integer(2))
        #expect(h.run("HSET", "h", "f1", "A") == .integer(0))
        #expect(h.run("HGET", "h", "f1") == .bulk("A"))
        #expect(h.run("HGET", "h", "nope") == .null)
        #expect(h.run("HLEN", "h") == .integer(2))
        #expect(h.run("HGETALL", "h") == .array([.bulk("f1"), .bulk("A"), .bulk("f2"), .bulk("b")]), "RESP2 flattens maps")
        #expect(h.run("HDEL", "h", "f1", "nope") == .integer(1))
        #expect(h.run("HLEN", "h") == .integer(1))
        #expect(h.run("HSET", "h", "odd").isError)
    }

    @Test func boundedCounterKeepsValueNonNegative() throws {
        var h = try Harness()
        #expect(h.run("CRDT.BINCRBY", "b", "10") == .integer(10))
        #expect(h.run("CRDT.BDECRBY", "b", "4") == .integer(6))
        let refused = h.run("CRDT.BDECRBY", "b", "7")
        #expect(refused.errorMessage?.hasPrefix("ERR insufficient rights") == true)
        #expect(h.lastOutput.records.isEmpty, "a refused decrement persists nothing")
        #expect(h.run("CRDT.BGET", "b") == .integer(6))
        #expect(h.run("CRDT.BRIGHTS", "b") == .integer(6))
        #expect(h.run("DEL", "b").isError, "DEL of a bounded counter is refused")
        #expect(h.run("CRDT.BTRANSFER", "b", "nobody", "1").isError)
        #expect(h.run("TYPE", "b") == .simpleString("bcounter"))
    }

    @Test func deleteEveryTypeThenRecreateFresh() throws {
        var h = try Harness()
        h.run("INCRBY", "c", "5")
        h.run("SET", "s", "v")
        h.run("SADD", "set", "a")
        h.run("HSET", "h", "f", "v")
        #expect(h.run("DBSIZE") == .integer(4))
        #expect(h.run("DEL", "c", "s", "set", "h", "missing") == .integer(4))
        #expect(h.run("DBSIZE") == .integer(0))
        #expect(h.run("EXISTS", "c", "s", "set", "h") == .integer(0))
        #expect(h.run("INCR", "c") == .integer(1), "a counter re-created after DEL starts from zero")
        #expect(h.run("SADD", "s", "x") == .integer(1), "a deleted key can change type")
    }

    @Test func keysAndScanSeeEveryLiveKeyOnce() throws {
        var h = try Harness()
        for i in 0..<57 { h.run("SET", "user:\(i)", "x") }
        h.run("INCR", "other")
        #expect(h.run("KEYS", "user:1?").arrayCount == 10)
        #expect(h.run("KEYS", "*").arrayCount == 58)
        var seen: [RESPReply] = []
        var cursor = "0"
        var rounds = 0
        repeat {
            guard case .array(let parts) = h.run("SCAN", cursor, "MATCH", "user:*", "COUNT", "7"),
                  case .bulkString(let next) = parts[0], case .array(let keys) = parts[1] else {
                Issue.record("malformed SCAN reply")
                return
            }
            seen += keys
            cursor = String(decoding: next, as: UTF8.self)
            rounds += 1
        } while cursor != "0" && rounds < 100
        #expect(seen.count == 57)
        #expect(Set(seen).count == 57)
    }

    @Test func scanReturnsEveryKeyPresentThroughoutEvenWhileKeysAreCreated() throws {
        var h = try Harness()
        for i in 0..<100 { h.run("SET", "k\(i)", "v") }
        var seen = Set<RESPReply>()
        var cursor = "0"
        var page = 0
        repeat {
            guard case .array(let parts) = h.run("SCAN", cursor, "COUNT", "9"), case .bulkString(let next) = parts[0],
                  case .array(let keys) = parts[1] else {
                Issue.record("malformed SCAN reply")
                return
            }
            seen.formUnion(keys)
            cursor = String(decoding: next, as: UTF8.self)
            // Keys created between pages, sorting before and after the cursor.
            h.run("SET", "a-new-\(page)", "v")
            h.run("SET", "z-new-\(page)", "v")
            page += 1
        } while cursor != "0" && page < 200
        for i in 0..<100 { #expect(seen.contains(.bulk("k\(i)")), "k\(i) was skipped") }
    }

    @Test func connectionCommands() throws {
        var h = try Harness()
        #expect(h.run("PING") == .simpleString("PONG"))
        #expect(h.run("ping", "hi") == .bulk("hi"))
        #expect(h.run("ECHO", "x") == .bulk("x"))
        #expect(h.run("CLIENT", "SETNAME", "app") == .simpleString("OK"))
        #expect(h.run("CLIENT", "GETNAME") == .bulk("app"))
        #expect(h.run("NOPE", "a") == .error("ERR unknown command 'NOPE', with args beginning with: 'a' "))
        #expect(h.run("GET") == .error("ERR wrong number of arguments for 'get' command"))
    }

    @Test func helloThreeSwitchesToMaps() throws {
        var h = try Harness()
        guard case .map(let entries) = h.run("HELLO", "3") else {
            Issue.record("HELLO 3 must answer a RESP3 map")
            return
        }
        #expect(entries.contains { $0.key == .bulk("proto") && $0.value == .integer(3) })
        h.run("HSET", "h", "f", "v")
        #expect(h.run("HGETALL", "h") == .map([.init(key: .bulk("f"), value: .bulk("v"))]))
        #expect(h.run("HELLO", "4").errorMessage?.hasPrefix("NOPROTO") == true)
    }

    @Test func faultInjectionNeedsTheFlag() throws {
        var closed = try Harness()
        #expect(closed.run("CRDT.PARTITION", "n2").errorMessage?.contains("--allow-fault-injection") == true)
        var open = try Harness(faultInjection: true)
        #expect(open.run("CRDT.PARTITION", "n2") == .simpleString("OK"))
        #expect(open.run("CRDT.HEAL") == .simpleString("OK"))
    }

    @Test func writesPersistBeforeRepliesAndReadsPersistNothing() throws {
        var h = try Harness()
        h.run("SADD", "k", "a")
        #expect(h.lastOutput.records.contains { if case .delta = $0 { true } else { false } })
        h.run("SMEMBERS", "k")
        #expect(h.lastOutput.records.isEmpty)
        h.run("SREM", "k", "not-a-member")
        #expect(h.lastOutput.records.isEmpty, "a write that changes nothing persists nothing")
    }

    @Test func quitClosesAfterReplying() throws {
        var h = try Harness()
        h.run("QUIT")
        #expect((h.lastOutput.immediate + h.lastOutput.effects).last == .closeClient(h.client))
    }
}

extension RESPReply {
    var isError: Bool { errorMessage != nil }
    var errorMessage: String? { if case .error(let m) = self { m } else { nil } }
    var arrayCount: Int { if case .array(let a) = self { a.count } else { -1 } }
}
