import Foundation
import RESP
import RESPClient
import Testing

/// Large objects through a real daemon (issue 14): reads built off the engine thread keep their place
/// among a pipeline's replies, and a set large enough for staged snapshots recovers exactly after a
/// graceful restart and after kill -9 at any point of its staging.
@Suite(.serialized) struct LargeObjectIntegrationTests {
    private func member(_ index: Int) -> String {
        let digits = String(index)
        return "m" + String(repeating: "0", count: max(0, 15 - digits.count)) + digits
    }

    private func fill(_ c: RESPConnection, set key: String, from: Int, to: Int, hash: String? = nil) throws {
        var commands: [[String]] = []
        for start in stride(from: from, to: to, by: 1000) {
            let members = (start..<min(to, start + 1000)).map(member)
            commands.append(["SADD", key] + members)
            if let hash { commands.append(["HSET", hash] + members.flatMap { [$0, "v"] }) }
        }
        for reply in try c.send(many: commands) { #expect(reply.errorText.isEmpty, "\(reply)") }
    }

    @Test func largeReadsKeepTheirPlaceInAPipeline() throws {
        let node = DaemonProcess()
        try node.start()
        defer { #expect(node.stop() == 0) }
        let c = try node.connect(timeout: .seconds(60))
        try fill(c, set: "s", from: 0, to: 25_000, hash: "h")
        let replies = try c.send(many: [["SMEMBERS", "s"], ["PING"], ["SCARD", "s"], ["HGETALL", "h"], ["ECHO", "last"]])
        #expect(replies.count == 5)
        #expect(replies[0] == .array((0..<25_000).map { .bulk(member($0)) }))
        #expect(replies[1] == .simpleString("PONG") && replies[2] == .integer(25_000))
        if case .array(let flat) = replies[3] {
            #expect(flat.count == 50_000 && flat.first == .bulk(member(0)) && flat[1] == .bulk("v"))
        } else {
            Issue.record("HGETALL answered \(replies[3])")
        }
        #expect(replies[4] == .bulk("last"))
        // Another connection is answered while nothing else is in its way.
        let other = try node.connect()
        #expect(try other.send(["PING"]) == .simpleString("PONG"))
    }

    @Test func aStagedSetRecoversExactlyAfterRestartAndKill() throws {
        let node = DaemonProcess()
        try node.start()
        let c = try node.connect(timeout: .seconds(60))
        // About 2.7 MB serialised: over the 1 MiB staging threshold, so its snapshots are staged.
        try fill(c, set: "big", from: 0, to: 100_000)
        try fill(c, set: "other", from: 0, to: 10)
        c.close()
        #expect(node.stop() == 0)
        try node.start()
        let after = try node.connect(timeout: .seconds(60))
        #expect(try after.send(["SCARD", "big"]) == .integer(100_000))
        // kill -9 while the next stage is being written: nothing acknowledged is lost.
        try fill(after, set: "big", from: 100_000, to: 180_000)
        node.crash()
        try node.start()
        let recovered = try node.connect(timeout: .seconds(60))
        #expect(try recovered.send(["SCARD", "big"]) == .integer(180_000))
        #expect(try recovered.send(["SISMEMBER", "big", member(179_999)]) == .integer(1))
        #expect(try recovered.send(["SCARD", "other"]) == .integer(10))
        #expect(node.stop() == 0)
        #expect(!node.log.contains("damaged"))
    }
}
