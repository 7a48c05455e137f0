import Foundation
import Synchronization
import RESP
import RESPClient
import Testing

/// CRDT.BACKUP under write load, and `crdtd --restore` starting a replacement node from it.
@Suite(.serialized) struct BackupRestoreTests {
    func keyFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: 3, count: 32).base64EncodedString() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func members(_ node: DaemonProcess) -> Set<String> {
        guard case .array(let items)? = try? node.run("SMEMBERS", "s") else { return [] }
        return Set(items.compactMap { if case .bulkString(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } })
    }

    func replicaID(_ node: DaemonProcess) throws -> String {
        guard case .bulkString(let bytes) = try node.run("INFO", "server") else { return "" }
        let line = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).first { $0.hasPrefix("replica_id:") }
        return line.map { String($0.dropFirst("replica_id:".count)) } ?? ""
    }

    @Test func backupUnderLoadRestoresWithANewIdentityAndLosesNothingAcknowledged() throws {
        let key = try keyFile()
        let n1 = DaemonProcess(name: "n1", extraArguments: ["--cluster-key-file", key])
        let n2 = DaemonProcess(name: "n2", extraArguments: ["--cluster-key-file", key])
        n1.seeds = [n2.peerPort]
        n2.seeds = [n1.peerPort]
        try n1.start()
        try n2.start()
        defer { n1.stop(); n2.stop() }
        let oldReplica = try replicaID(n1)

        // One client writes distinct members to n1 as fast as it can; `acknowledged` holds every member
        // whose SADD was answered.
        let acknowledged = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)
        let writerDone = DispatchSemaphore(value: 0)
        let writer = try n1.connect()
        nonisolated(unsafe) let connection = writer
        Thread.detachNewThread {
            defer { writerDone.signal() }
            var i = 0
            while !stop.load(ordering: .relaxed) && i < 200_000 {
                let batch = (i..<i + 20).map { ["SADD", "s", "m\($0)"] }
                guard let replies = try? connection.send(many: batch), replies.allSatisfy({ $0 == .integer(1) }) else { return }
                acknowledged.withLock { $0 += batch.map { $0[2] } }
                i += 20
            }
        }
        while acknowledged.withLock({ $0.count }) < 500 { Thread.sleep(forTimeInterval: 0.01) }
        let beforeBackup = Set(acknowledged.withLock { $0 })
        let reply = try n1.connect(timeout: .seconds(60)).send(["CRDT.BACKUP", "under-load.db"])
        guard case .bulkString(let pathBytes) = reply else {
            Issue.record("CRDT.BACKUP answered \(reply)")
            return
        }
        let backup = String(decoding: pathBytes, as: UTF8.self)
        #expect(backup.hasSuffix("/backups/under-load.db"))
        Thread.sleep(forTimeInterval: 0.2)
        stop.store(true, ordering: .relaxed)
        writerDone.wait()
        let all = Set(acknowledged.withLock { $0 })
        #expect(try n1.run("CRDT.BACKUP", "under-load.db").errorText.contains("already exists"), "a backup is never overwritten")
        #expect(try n1.run("CRDT.BACKUP", "../escape.db").errorText.contains("plain file name"))

        // The backup alone (no peers): everything acknowledged before it was asked for is in it.
        let alone = DaemonProcess(name: "n1", extraArguments: ["--insecure", "--restore", backup])
        try alone.start()
        let inBackup = members(alone)
        #expect(beforeBackup.isSubset(of: inBackup), "\(beforeBackup.subtracting(inBackup).count) acknowledged members missing from the backup")
        #expect(try replicaID(alone) != oldReplica, "a restored node takes a new replica identity")
        #expect(alone.log.contains("restored \(backup)"))
        #expect(alone.stop() == 0)

        // n1 is lost; its replacement starts from the backup and catches up from n2.
        n1.crash()
        let replacement = DaemonProcess(name: "n1", extraArguments: ["--cluster-key-file", key, "--restore", backup])
        replacement.seeds = [n2.peerPort]
        try replacement.start()
        defer { replacement.stop() }
        #expect(try replicaID(replacement) != oldReplica)
        #expect(eventually(timeout: .seconds(20)) { all.isSubset(of: members(replacement)) },
                "the restored node catches up on every acknowledged write: \(all.subtracting(members(replacement)).count) missing")
        // It caught up through replication: deltas resent and states repaired show in its metrics.
        #expect(eventually(timeout: .seconds(5)) {
            let metrics = (try? rawExchange(port: replacement.metricsPort, send: Array("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))) ?? ""
            return metrics.split(whereSeparator: \.isNewline).contains { line in
                (line.hasPrefix("crdtd_peer_deltas_applied_total ") || line.hasPrefix("crdtd_repair_states_applied_total "))
                    && (Double(line.split(separator: " ").last ?? "") ?? 0) > 0
            }
        }, "the catch-up is visible in crdtd_peer_deltas_applied_total or crdtd_repair_states_applied_total")
        // Its new writes are new dots, which n2 accepts.
        #expect(try replacement.run("SADD", "s", "after-restore") == .integer(1))
        #expect(try replacement.run("INCRBY", "c", "5") == .integer(5))
        #expect(eventually(timeout: .seconds(20)) { members(n2).contains("after-restore") && (try? n2.run("GET", "c")) == .bulk("5") })
        #expect(eventually(timeout: .seconds(20)) { (try? n2.run("CRDT.DIGEST")) == (try? replacement.run("CRDT.DIGEST")) }, "converged")

        // A second start with --restore is refused: a restore never replaces data.
        replacement.stop()
        let again = DaemonProcess(name: "n1", dataDir: replacement.dataDir, extraArguments: ["--insecure", "--restore", backup])
        #expect(throws: (any Error).self) { try again.start() }
        #expect(again.log.contains("only fills an empty data directory"))
    }
}
