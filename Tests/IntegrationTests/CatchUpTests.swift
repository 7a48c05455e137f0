import Foundation
import RESP
import RESPClient
import Testing

/// A node that restarts far behind answers its clients at once while it catches up in the background
/// (issue 8: client commands never wait behind a peer backlog).
@Suite(.serialized) struct CatchUpTests {
    @Test func aNodeRestartedFarBehindAnswersPingWithinASecondWhileItCatchesUp() throws {
        let key = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: 9, count: 32).base64EncodedString() + "\n").write(toFile: key, atomically: true, encoding: .utf8)
        let nodes = (1...3).map { DaemonProcess(name: "n\($0)", extraArguments: ["--cluster-key-file", key]) }
        for node in nodes.dropFirst() { node.seeds = [nodes[0].peerPort] }
        nodes[0].seeds = [nodes[1].peerPort]
        for node in nodes { try node.start() }
        defer { for node in nodes { node.stop() } }

        // 100 k writes (distinct keys, so catching up is real work) while n3 is down.
        nodes[2].crash()
        for (writer, node) in nodes.prefix(2).enumerated() {
            let connection = try node.connect(timeout: .seconds(30))
            for batch in 0..<50 {
                let commands = (0..<1000).map { ["SET", "k-\(writer)-\(batch)-\($0)", "v"] }
                let replies = try connection.send(many: commands)
                #expect(replies.allSatisfy { $0 == .simpleString("OK") })
            }
            connection.close()
        }

        try nodes[2].start(waitUntilServing: false)
        let serving = eventually(timeout: .seconds(60)) {
            (try? String(contentsOfFile: nodes[2].logPath, encoding: .utf8))?.contains("crdtd is serving") == true
        }
        #expect(serving)
        // From "serving" on, every PING (on a fresh connection, as a health check makes one) answers
        // within a second, while 100 k keys arrive.
        var slowest: Duration = .zero
        var answered = 0
        for _ in 0..<20 {
            let started = ContinuousClock.now
            let connection = try nodes[2].connect(timeout: .seconds(1))
            let reply = try connection.send(["PING"])
            connection.close()
            slowest = max(slowest, ContinuousClock.now - started)
            if reply == .simpleString("PONG") { answered += 1 }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(answered == 20)
        #expect(slowest < .seconds(1), "the slowest PING took \(slowest)")
        let caughtUp = eventually(timeout: .seconds(90)) {
            (try? nodes[2].run("DBSIZE")) == .integer(100_000)
        }
        #expect(caughtUp, "n3 holds \(String(describing: try? nodes[2].run("DBSIZE"))) keys")
    }
}
