import Dispatch
import Foundation
import Glibc
import Synchronization
import Testing
@testable import Store

@Suite struct BackupTests {
    @Test func aBackupTakenWhileTheWriterCommitsHoldsAPrefixOfTheCommits() throws {
        let dir = TemporaryDirectory()
        let store = try openStore(dir.file("live.db"))
        _ = try store.load()
        try store.commit([.meta(name: "replica_id", value: [1, 2, 3, 4, 5, 6, 7, 8])])
        // The writer keeps committing one delta per transaction while the backup runs.
        let committed = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let writer = DispatchSemaphore(value: 0)
        nonisolated(unsafe) let owned = store
        Thread.detachNewThread {
            var n = 0
            while !stop.load(ordering: .relaxed) && n < 20_000 {
                n += 1
                try? owned.commit([.delta(key: bytes("k\(n % 50)"), bytes: bytes("\(n)"))])
                committed.store(n, ordering: .relaxed)
            }
            writer.signal()
        }
        while committed.load(ordering: .relaxed) < 200 { usleep(1000) }
        let before = committed.load(ordering: .relaxed)
        let size = try Store.backup(databaseAt: dir.file("live.db"), to: dir.file("copy.db"))
        let after = committed.load(ordering: .relaxed)
        stop.store(true, ordering: .relaxed)
        writer.wait()
        #expect(size > 0)
        #expect(access(dir.file("copy.db.partial"), F_OK) != 0, "no partial file is left")

        let copy = try openStore(dir.file("copy.db"))
        let state = try copy.load()
        let deltas = state.keys.values.reduce(0) { $0 + $1.deltas.count }
        // `committed` is stored just after each commit returns, so one more commit may be in the copy.
        #expect(deltas >= before && deltas <= after + 1, "the copy holds whole commits: \(before) <= \(deltas) <= \(after) + 1")
        // Commits are numbered 1...n: a consistent snapshot holds exactly the first `deltas` of them.
        let values = Set(state.keys.values.flatMap { $0.deltas.map { Int(String(decoding: $0, as: UTF8.self))! } })
        #expect(values == Set(1...deltas))
        #expect(state.meta["replica_id"] == [1, 2, 3, 4, 5, 6, 7, 8])
        store.close()
    }

    @Test func aBackupNeverOverwrites() throws {
        let dir = TemporaryDirectory()
        let store = try openStore(dir.file("live.db"))
        _ = try store.load()
        _ = try Store.backup(databaseAt: dir.file("live.db"), to: dir.file("copy.db"))
        let error = storeError { _ = try Store.backup(databaseAt: dir.file("live.db"), to: dir.file("copy.db")) }
        #expect(error?.message.contains("already exists") == true)
        store.close()
    }

    @Test func restoreForgetsTheIdentityAndRefusesToReplaceData() throws {
        let dir = TemporaryDirectory()
        let store = try openStore(dir.file("live.db"))
        _ = try store.load()
        try store.commit([.snapshot(key: bytes("k"), bytes: bytes("state")), .meta(name: "replica_id", value: [9]),
                          .meta(name: "delta_seq", value: [5]), .meta(name: "lamport", value: [7])])
        _ = try Store.backup(databaseAt: dir.file("live.db"), to: dir.file("backup.db"))
        store.close()

        try Store.restore(backup: dir.file("backup.db"), into: dir.file("restored.db"), forgetting: ["replica_id", "delta_seq"])
        let restored = try openStore(dir.file("restored.db"))
        let state = try restored.load()
        #expect(state.keys[bytes("k")]?.snapshot == bytes("state"))
        #expect(state.meta == ["lamport": [7]], "the identity is forgotten, the Lamport bound kept")
        restored.close()

        let error = storeError { try Store.restore(backup: dir.file("backup.db"), into: dir.file("restored.db"), forgetting: []) }
        #expect(error?.message.contains("only fills an empty data directory") == true)
    }

    @Test func restoreRefusesAFileThatIsNotACrdtdDatabase() throws {
        let dir = TemporaryDirectory()
        let fd = open(dir.file("junk.db"), O_CREAT | O_WRONLY, 0o600)
        _ = write(fd, "not a database at all, just text", 32)
        close(fd)
        let error = storeError { try Store.restore(backup: dir.file("junk.db"), into: dir.file("restored.db"), forgetting: []) }
        #expect(error != nil)
        #expect(access(dir.file("restored.db"), F_OK) != 0, "nothing is left behind")
        #expect(access(dir.file("restored.db.restoring"), F_OK) != 0)
    }
}
