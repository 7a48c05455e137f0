import Foundation
import NodeControl
import RESP
import RESPClient
import Testing

/// Collection of deleted keys with real daemons: keys created then deleted on a 3-node cluster leave no
/// key behind (memory, digests, database rows) once the deletes are stable, and a node partitioned
/// during the deletes holds collection back until it heals, without resurrecting anything.
@Suite(.serialized) struct CollectionIntegrationTests {
    static func residentBytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return -1 }
        return kilobytes * 1024
    }

    static func databaseBytes(_ node: DaemonProcess) -> Int {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: node.dataDir)) ?? []
        return files.filter { $0.hasSuffix(".db") || $0.hasSuffix(".db-wal") }.reduce(0) { total, name in
            let size = ((try? FileManager.default.attributesOfItem(atPath: node.dataDir + "/" + name))?[.size] as? Int) ?? 0
            return total + size
        }
    }

    static func field(_ node: DaemonProcess, _ section: String, _ name: String) -> String? {
        guard case .bulkString(let text)? = try? node.run("INFO", section) else { return nil }
        for line in String(decoding: text, as: UTF8.self).split(separator: "\r\n") where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1))
        }
        return nil
    }

    /// A node without peers is the whole membership: its frontier is what it applied, so its deletes are
    /// stable as soon as they are made, and a restart finds nothing of them.
    @Test func aLoneNodeCollectsItsDeletes() throws {
        let node = DaemonProcess(name: "solo")
        try node.start()
        defer { _ = node.stop() }
        let client = try node.connect(timeout: .seconds(10))
        _ = try client.send(many: (0..<1_000).map { ["SET", "key:\($0)", "value"] } + (0..<1_000).map { ["DEL", "key:\($0)"] })
        #expect(eventually(timeout: .seconds(10)) { Self.field(node, "keyspace", "keys_held") == "0" },
                "keys_held \(Self.field(node, "keyspace", "keys_held") ?? "?")")
        #expect(Self.field(node, "replication", "tombstones_collected") == "1000")
        #expect(node.stop() == 0)
        try node.start()
        #expect(Self.field(node, "keyspace", "keys_held") == "0")
    }

    @Test func deletedKeysLeaveNeitherMemoryNorDatabaseBehind() throws {
        let keyCount = Int(ProcessInfo.processInfo.environment["CRDTD_COLLECTION_KEYS"] ?? "") ?? 50_000
        let key = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: 5, count: 32).base64EncodedString() + "\n").write(toFile: key, atomically: true, encoding: .utf8)
        let nodes = (1...3).map { DaemonProcess(name: "n\($0)", extraArguments: ["--cluster-key-file", key, "--allow-fault-injection"]) }
        for node in nodes.dropFirst() { node.seeds = [nodes[0].peerPort] }
        nodes[0].seeds = [nodes[1].peerPort]
        for node in nodes { try node.start() }
        defer { for node in nodes { _ = node.stop() } }
        #expect(eventually(timeout: .seconds(20)) {
            nodes.allSatisfy { Self.field($0, "replication", "stability_unreported") == "" }
        })
        // The executable serves its mallocs from jemalloc, which gives a collection's memory back.
        #expect(Self.field(nodes[0], "memory", "mem_allocator")?.hasPrefix("jemalloc-5") == true)
        let writer = try nodes[0].connect(timeout: .seconds(30))
        // "Empty" is a cluster that has carried the same traffic on 100 keys, since deleted and collected:
        // what any traffic touches once (ring slots, SQLite's page cache) is then in both measures, and
        // the comparison is of what 50,000 keys leave behind.
        for start in stride(from: 0, to: keyCount, by: 1_000) {
            let replies = try writer.send(many: (start..<min(start + 1_000, keyCount)).map { ["SET", "warm:\($0 % 100)", "value-\($0)"] })
            #expect(replies.allSatisfy { !$0.isError })
        }
        _ = try writer.send(many: (0..<100).map { ["DEL", "warm:\($0)"] })
        #expect(eventually(timeout: .seconds(30)) { nodes.allSatisfy { Self.field($0, "keyspace", "keys_held") == "0" } })
        Thread.sleep(forTimeInterval: 2)
        let emptyMemory = nodes.map { Self.residentBytes($0.pid) }
        let emptyHeap = nodes.map { Int(Self.field($0, "memory", "used_memory") ?? "") ?? -1 }
        let emptyDatabase = nodes.map(Self.databaseBytes)

        for start in stride(from: 0, to: keyCount, by: 1_000) {
            let replies = try writer.send(many: (start..<min(start + 1_000, keyCount)).map { ["SET", "key:\($0)", "value-\($0)"] })
            #expect(replies.allSatisfy { !$0.isError })
        }
        #expect(eventually(timeout: .seconds(60)) { nodes.allSatisfy { (try? $0.run("DBSIZE")) == .integer(Int64(keyCount)) } })
        let fullMemory = nodes.map { Self.residentBytes($0.pid) }
        let fullHeap = nodes.map { Int(Self.field($0, "memory", "used_memory") ?? "") ?? -1 }
        let fullDatabase = nodes.map(Self.databaseBytes)

        // n3 is cut off while the keys are deleted: nobody collects, n3 keeps them.
        _ = try nodes[2].run("CRDT.PARTITION", "n1", "n2")
        for node in nodes[0...1] { _ = try node.run("CRDT.PARTITION", "n3") }
        for start in stride(from: 0, to: keyCount, by: 1_000) {
            _ = try writer.send(many: (start..<min(start + 1_000, keyCount)).map { ["DEL", "key:\($0)"] })
        }
        #expect(eventually(timeout: .seconds(30)) { nodes[0...1].allSatisfy { (try? $0.run("DBSIZE")) == .integer(0) } })
        Thread.sleep(forTimeInterval: 3)
        for node in nodes[0...1] {
            #expect(Self.field(node, "keyspace", "keys_held") == String(keyCount), "\(node.name) collected before n3 applied the deletes")
            #expect(Self.field(node, "replication", "stability_holder") == "n3")
        }
        #expect(try nodes[2].run("DBSIZE") == .integer(Int64(keyCount)))

        // Healed: n3 applies the deletes, and every node collects every tombstone.
        for node in nodes { _ = try node.run("CRDT.HEAL") }
        #expect(eventually(timeout: .seconds(90)) { nodes.allSatisfy { Self.field($0, "keyspace", "keys_held") == "0" } },
                "\(nodes.map { Self.field($0, "replication", "tombstones_waiting") ?? "?" })")
        Thread.sleep(forTimeInterval: 5)
        for (i, node) in nodes.enumerated() {
            #expect(try node.run("DBSIZE") == .integer(0), "\(node.name): nothing resurrected")
            #expect(Self.field(node, "keyspace", "keys_held") == "0")
            // The allocator's count (Redis's used_memory): at least three quarters of what the keys took is
            // given back.
            let heap = Int(Self.field(node, "memory", "used_memory") ?? "") ?? .max
            #expect(heap - emptyHeap[i] <= (fullHeap[i] - emptyHeap[i]) / 4,
                    "\(node.name): \(heap) bytes allocated after collection, \(emptyHeap[i]) empty, \(fullHeap[i]) full")
            // The issue's goal is within 25 % of the empty node's, which release builds meet (19 to 23 %,
            // collection-cost.sh). This debug build measured 10 to 36 % five seconds after collection (up to
            // 50 % before jemalloc's background thread returned pages freed after the purge), so the test
            // allows 40 %, and the background thread's ten-second decay: still short of glibc's malloc,
            // which left 48 to 97 % in the same script (docs/benchmarks.md, "Deleted keys collected").
            #expect(eventually(timeout: .seconds(15)) { Self.residentBytes(node.pid) <= emptyMemory[i] * 7 / 5 },
                    "\(node.name): resident \(Self.residentBytes(node.pid)) after collection, \(emptyMemory[i]) empty, \(fullMemory[i]) with the keys")
            let memory = Self.residentBytes(node.pid)
            print("\(node.name): used_memory \(emptyHeap[i] >> 10) KiB empty, \(fullHeap[i] >> 10) KiB full, \((Int(Self.field(node, "memory", "used_memory") ?? "") ?? 0) >> 10) KiB after; resident \(emptyMemory[i] >> 10) KiB empty, \(fullMemory[i] >> 10) KiB with \(keyCount) keys, "
                  + "\(memory >> 10) KiB after collection; database \(fullDatabase[i] >> 10) KiB, now \(Self.databaseBytes(node) >> 10) KiB")
        }
        // The database's rows are gone with the tombstones, and the idle writer gives the freed pages back
        // to the file and truncates the log (`Store.tidy`): within 25 % of the empty node's, give or take
        // what the commits since (progress records) put in the log.
        #expect(eventually(timeout: .seconds(30)) {
            nodes.indices.allSatisfy { Self.databaseBytes(nodes[$0]) <= emptyDatabase[$0] * 5 / 4 + (64 << 10) }
        }, "database and log \(nodes.map(Self.databaseBytes)) bytes after collection, \(emptyDatabase) empty, \(fullDatabase) with the keys")
        print("database and log: \(emptyDatabase) bytes empty, \(fullDatabase) with the keys, \(nodes.map(Self.databaseBytes)) after collection")
    }
}
