import Foundation
import RESP
import RESPClient
import Testing

/// Publish/subscribe, keyspace notifications and WAIT against real daemons.
@Suite(.serialized) struct PubSubIntegrationTests {
    /// Two nodes sharing a key, seeded with each other.
    func startPair() throws -> [DaemonProcess] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: 9, count: 32).base64EncodedString() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let nodes = (0..<2).map { i in
            DaemonProcess(name: "n\(i + 1)", extraArguments: ["--cluster-key-file", path, "--allow-fault-injection"])
        }
        nodes[0].seeds = [nodes[1].peerPort]
        nodes[1].seeds = [nodes[0].peerPort]
        for node in nodes { try node.start() }
        return nodes
    }

    func members(_ node: DaemonProcess) -> Int {
        guard case .array(let peers)? = try? node.run("CRDT.PEERS") else { return 0 }
        return peers.count
    }

    @Test func aSubscriberOnNodeBSeesAKeyspaceEventForAWriteOnNodeA() throws {
        let nodes = try startPair()
        defer { for node in nodes { node.stop() } }
        #expect(eventually { members(nodes[0]) == 1 && members(nodes[1]) == 1 }, "the two nodes never met")

        let watcher = try nodes[1].connect()
        #expect(try watcher.send(["CONFIG", "SET", "notify-keyspace-events", "KEA"]) == .simpleString("OK"))
        #expect(try watcher.send(["SUBSCRIBE", "__keyspace@0__:greeting"])
                == .array([.bulk("subscribe"), .bulk("__keyspace@0__:greeting"), .integer(1)]))
        #expect(try watcher.send(["GET", "x"]).isError, "RESP2 subscribe mode refuses other commands")

        #expect(try nodes[0].run("SET", "greeting", "hello") == .simpleString("OK"))
        #expect(try watcher.receive(timeout: .seconds(10)) == .array([.bulk("message"), .bulk("__keyspace@0__:greeting"), .bulk("set")]))
        #expect(try nodes[0].run("DEL", "greeting") == .integer(1))
        #expect(try watcher.receive(timeout: .seconds(10)) == .array([.bulk("message"), .bulk("__keyspace@0__:greeting"), .bulk("del")]))

        // Plain PUBLISH reaches this node's subscribers (RESP3 push), and only them.
        let listener = try nodes[0].connect()
        _ = try listener.send(["HELLO", "3"])
        #expect(try listener.send(["SUBSCRIBE", "chat"]) == .push([.bulk("subscribe"), .bulk("chat"), .integer(1)]))
        #expect(try listener.send(["SET", "k", "v"]) == .simpleString("OK"), "RESP3 clients keep running commands")
        #expect(try nodes[0].run("PUBLISH", "chat", "hi") == .integer(1))
        #expect(try listener.receive(timeout: .seconds(5)) == .push([.bulk("message"), .bulk("chat"), .bulk("hi")]))
        // Published on the other node: its count is of its own receivers, and peers deliver it best effort.
        #expect(try nodes[1].run("PUBLISH", "chat", "from-b") == .integer(0))
        #expect(try listener.receive(timeout: .seconds(5)) == .push([.bulk("message"), .bulk("chat"), .bulk("from-b")]))
        #expect(try nodes[0].run("PUBSUB", "NUMSUB", "chat") == .array([.bulk("chat"), .integer(1)]))
    }

    @Test func aSubscriberThatDoesNotReadIsDisconnectedAtItsLimit() throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-pubsub-\(UUID().uuidString).yaml").path
        try "limits:\n  max_pending_pubsub_bytes: 1048576\n".write(toFile: config, atomically: true, encoding: .utf8)
        let node = DaemonProcess(extraArguments: ["--insecure", "--config", config])
        try node.start()
        defer { node.stop() }
        let slow = try node.connect()
        _ = try slow.send(["SUBSCRIBE", "firehose"])
        let fast = try node.connect()
        #expect(try fast.send(["SUBSCRIBE", "firehose"]) == .array([.bulk("subscribe"), .bulk("firehose"), .integer(1)]))
        let publisher = try node.connect()
        let payload = String(repeating: "x", count: 64 << 10)
        // The slow subscriber never reads: once the socket buffers are full its output grows past the limit.
        var delivered: [Int64] = []
        for _ in 0..<400 {
            if case .integer(let n) = try publisher.send(["PUBLISH", "firehose", payload]) { delivered.append(n) }
            _ = try fast.receive(timeout: .seconds(5))
            if delivered.last == 1 { break }
        }
        #expect(delivered.first == 2 && delivered.last == 1, "the slow subscriber was not disconnected: \(delivered.suffix(3))")
        #expect(node.log.contains("disconnecting a subscriber over its pub/sub output limit"))
        #expect(try publisher.send(["PUBSUB", "NUMSUB", "firehose"]) == .array([.bulk("firehose"), .integer(1)]))
    }

    @Test func waitCountsThePeerThatAcknowledgedAndZeroWhenPartitioned() throws {
        let nodes = try startPair()
        defer { for node in nodes { node.stop() } }
        #expect(eventually { members(nodes[0]) == 1 && members(nodes[1]) == 1 }, "the two nodes never met")

        let client = try nodes[0].connect(timeout: .seconds(10))
        #expect(try client.send(["SET", "k", "v1"]) == .simpleString("OK"))
        #expect(try client.send(["WAIT", "1", "5000"]) == .integer(1))
        #expect(try nodes[1].run("GET", "k") == .bulk("v1"), "acknowledged means the peer holds it")

        #expect(try client.send(["CRDT.PARTITION", "n2"]) == .simpleString("OK"))
        #expect(try client.send(["SET", "k", "v2"]) == .simpleString("OK"))
        let started = ContinuousClock.now
        #expect(try client.send(["WAIT", "1", "300"]) == .integer(0))
        #expect(ContinuousClock.now - started >= .milliseconds(290), "WAIT answered before its timeout")
        // Pipelined behind a WAIT, a command is answered after it, in order.
        let replies = try client.send(many: [["WAIT", "1", "100"], ["GET", "k"]])
        #expect(replies == [.integer(0), .bulk("v2")])
        #expect(try client.send(["CRDT.HEAL"]) == .simpleString("OK"))
        #expect(try client.send(["WAIT", "1", "5000"]) == .integer(1), "after the heal the peer acknowledges")
    }
}
