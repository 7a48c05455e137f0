import CRDT
import RESP
import Testing
@testable import Engine

/// `CLIENT KILL` and the connection and server reports added for client libraries.
@Suite struct ServerCommandTests {
    @Test func clientKillClosesTheMatchingClients() throws {
        var h = try Harness()
        _ = h.engine.handle(.clientConnected(h.client, address: "127.0.0.1:1000"))
        for id in 2...3 { _ = h.engine.handle(.clientConnected(ClientID(UInt64(id)), address: "127.0.0.1:100\(id)")) }
        #expect(h.run("CLIENT", "KILL", "ID", "2") == .integer(1))
        #expect(h.lastOutput.effects.contains { if case .closeClient(ClientID(2)) = $0 { true } else { false } })
        #expect(h.run("CLIENT", "KILL", "ID", "2") == .integer(0), "already gone")
        #expect(h.run("CLIENT", "KILL", "127.0.0.1:9") == .error("ERR No such client"))
        #expect(h.run("CLIENT", "KILL", "ADDR", "127.0.0.1:1000") == .integer(0), "SKIPME yes is the default")
        #expect(h.run("CLIENT", "KILL", "127.0.0.1:1003") == .simpleString("OK"))
        guard case .bulkString(let list) = h.run("CLIENT", "LIST") else { Issue.record("CLIENT LIST"); return }
        #expect(String(decoding: list, as: UTF8.self).split(separator: "\n").count == 1, "only this client is left")
        #expect(h.run("CLIENT", "PAUSE", "10") != .simpleString("OK"), "refused, with the reason")
        #expect(h.run("CLIENT", "UNBLOCK", "1") == .integer(0))
        #expect(h.run("CLIENT", "GETREDIR") == .integer(-1))
        #expect(h.run("CLIENT", "NO-EVICT", "ON") == .simpleString("OK"))
    }

    @Test func resetRoleAndReports() throws {
        var h = try Harness()
        _ = h.engine.handle(.clientConnected(h.client, address: "127.0.0.1:1000"))
        h.run("CLIENT", "SETNAME", "app")
        h.run("MULTI")
        h.run("SET", "k", "queued")
        #expect(h.run("RESET") == .simpleString("RESET"), "RESET is not queued: it ends the transaction")
        #expect(h.run("EXEC") == .error("ERR EXEC without MULTI"))
        #expect(h.run("GET", "k") == .null)
        #expect(h.run("CLIENT", "GETNAME") == .null)
        #expect(h.run("ROLE") == .array([.bulk("master"), .integer(0), .array([])]))
        _ = h.engine.handle(.tick(monotonicMilliseconds: 1, wallMilliseconds: 1_767_225_600_000))
        #expect(h.run("LASTSAVE") == .integer(1_767_225_600))
        h.run("SET", "k", "v")
        #expect(h.run("MEMORY", "STATS") == .array([.bulk("keys.count"), .integer(1),
                                                   .bulk("db.0"), .array([.bulk("keys"), .integer(1), .bulk("expires"), .integer(0)])]))
    }
}
