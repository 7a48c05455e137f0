import Glibc
import Logging
import Testing
@testable import Store

@Suite struct StoreTests {
    @Test func reopenRecoversEverythingCommitted() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let binaryKey: [UInt8] = [0, 255, 13, 10]
        do {
            let store = try openStore(path)
            #expect(try store.load() == RecoveredState())
            try store.commit([.delta(key: bytes("a"), bytes: bytes("a1")), .delta(key: binaryKey, bytes: [])])
            try store.commit([.delta(key: bytes("a"), bytes: bytes("a2")), .snapshot(key: bytes("s"), bytes: bytes("S")),
                              .meta(name: "node-id", value: bytes("n1")), .meta(name: "empty", value: [])])
            try store.commit([])
            store.close()
        }
        let store = try openStore(path)
        let state = try store.load()
        #expect(state.keys == [
            bytes("a"): RecoveredKey(deltas: [bytes("a1"), bytes("a2")]),
            binaryKey: RecoveredKey(deltas: [[]]),
            bytes("s"): RecoveredKey(snapshot: bytes("S")),
        ])
        #expect(state.meta == ["node-id": bytes("n1"), "empty": []])
    }

    @Test func snapshotReplacesTheSnapshotAndDropsEarlierDeltas() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        let k = bytes("k")
        let other = bytes("other")
        try store.commit([.delta(key: k, bytes: [1]), .delta(key: other, bytes: [9]), .delta(key: k, bytes: [2])])
        try store.commit([.snapshot(key: k, bytes: [12]), .delta(key: k, bytes: [3])])
        #expect(try store.load().keys == [k: RecoveredKey(snapshot: [12], deltas: [[3]]), other: RecoveredKey(deltas: [[9]])])
        // Within one batch, order matters: deltas before the snapshot go, deltas after it stay.
        try store.commit([.delta(key: k, bytes: [4]), .snapshot(key: k, bytes: [1, 2, 3, 4]), .delta(key: k, bytes: [5]),
                          .delta(key: k, bytes: [6])])
        #expect(try store.load().keys[k] == RecoveredKey(snapshot: [1, 2, 3, 4], deltas: [[5], [6]]))
        #expect(try store.load().keys[other] == RecoveredKey(deltas: [[9]]))
    }

    @Test func removeForgetsSnapshotAndDeltas() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        try store.commit([.snapshot(key: bytes("x"), bytes: [1]), .delta(key: bytes("x"), bytes: [2]), .delta(key: bytes("y"), bytes: [3])])
        try store.commit([.remove(key: bytes("x"))])
        #expect(try store.load().keys == [bytes("y"): RecoveredKey(deltas: [[3]])])
        try store.commit([.delta(key: bytes("x"), bytes: [4])])
        #expect(try store.load().keys[bytes("x")] == RecoveredKey(deltas: [[4]]))
    }

    @Test func metaRoundTripAndOverwrite() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        do {
            let store = try openStore(path)
            try store.commit([.meta(name: "clock", value: [1]), .meta(name: "clock", value: [2]), .meta(name: "id", value: bytes("é"))])
            try store.commit([.meta(name: "clock", value: [3])])
        }
        #expect(try openStore(path).load().meta == ["clock": [3], "id": bytes("é")])
    }

    @Test func aFailingBatchLeavesNothingBehind() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let store = try openStore(path)
        try store.commit([.delta(key: bytes("before"), bytes: [1])])
        // A trigger makes the last record of the batch fail after the others were written.
        rawSQL(path, """
            CREATE TRIGGER poison BEFORE INSERT ON deltas WHEN new.key = x'706f69736f6e'
            BEGIN SELECT RAISE(ABORT, 'poisoned'); END
            """)
        let error = storeError {
            try store.commit([.delta(key: bytes("a"), bytes: [1]), .snapshot(key: bytes("before"), bytes: [7]),
                              .meta(name: "m", value: [1]), .remove(key: bytes("before")), .delta(key: bytes("poison"), bytes: [0])])
        }
        #expect(error?.code == .sqlite)
        #expect(error?.primaryResultCode == 19)  // SQLITE_CONSTRAINT
        #expect(error?.resultCode == 1811)  // SQLITE_CONSTRAINT_TRIGGER
        #expect(try store.load() == RecoveredState(keys: [bytes("before"): RecoveredKey(deltas: [[1]])]))
        // The store stays usable after a failed batch.
        try store.commit([.delta(key: bytes("after"), bytes: [2])])
        #expect(try store.load().keys.count == 2)
        store.close()
        #expect(try openStore(path).load().keys.count == 2)
    }

    @Test func largeKeySetLoadsInOrder() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let keys = 1000
        let perKey = 100
        do {
            let store = try openStore(path)
            for round in 0..<perKey {
                // One batch per round: every key gets its round-th delta.
                try store.commit((0..<keys).map { key in
                    .delta(key: bytes("key-\(key)"), bytes: [UInt8(truncatingIfNeeded: key), UInt8(round)])
                })
            }
        }
        let state = try openStore(path).load()
        #expect(state.keys.count == keys)
        var total = 0
        for key in 0..<keys {
            let recovered = state.keys[bytes("key-\(key)")]
            total += recovered?.deltas.count ?? 0
            #expect(recovered?.deltas == (0..<perKey).map { [UInt8(truncatingIfNeeded: key), UInt8($0)] }, "key \(key)")
        }
        #expect(total == 100_000)
    }

    @Test func useAfterCloseThrows() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        store.close()
        store.close()
        #expect(storeError { try store.commit([]) }?.code == .closed)
        #expect(storeError { _ = try store.load() }?.code == .closed)
    }

    @Test func unopenablePathIsAnOpenError() {
        let error = storeError { _ = try openStore("/nonexistent-directory/node.db") }
        #expect(error?.code == .openFailed)
        #expect(error?.message.contains("/nonexistent-directory/node.db") == true)
    }

    @Test func bothSynchronousModesAreApplied() throws {
        let directory = TemporaryDirectory()
        for mode in [StoreSynchronous.full, .normal] {
            let path = directory.file("\(mode).db")
            let store = try openStore(path, StoreOptions(synchronous: mode))
            #expect(store.pragma("synchronous") == (mode == .full ? "2" : "1"))
            #expect(store.pragma("journal_mode") == "wal")
            #expect(store.pragma("application_id") == String(Store.applicationID))
            #expect(store.pragma("user_version") == String(Store.schemaVersion))
            #expect(store.pragma("busy_timeout") == "5000")
        }
    }
}

@Suite struct CrashImageTests {
    /// Copies the database and its write-ahead log while the store is still open, which is what a
    /// `kill -9` leaves behind: every committed batch must be recovered from the copy.
    @Test func committedBatchesSurviveAProcessCrashImage() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let store = try openStore(path, StoreOptions(synchronous: .normal))
        _ = try store.load()
        var expected: [[UInt8]: RecoveredKey] = [:]
        for batch in 0..<50 {
            let key = bytes("key-\(batch % 7)")
            try store.commit([.delta(key: key, bytes: [UInt8(batch)])])
            expected[key, default: RecoveredKey()].deltas.append([UInt8(batch)])
        }
        try store.commit([.snapshot(key: bytes("key-0"), bytes: [0xFF])])
        expected[bytes("key-0")] = RecoveredKey(snapshot: [0xFF])
        let wal = contents(path + "-wal")
        #expect(!wal.isEmpty, "the committed batches should still be in the write-ahead log")
        let crashed = directory.file("crashed.db")
        writeFile(crashed, contents(path))
        writeFile(crashed + "-wal", wal)
        #expect(try openStore(crashed).load().keys == expected)
        store.close()
    }
}

@Suite struct FreePageTests {
    func fileSize(_ path: String) -> Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : -1
    }

    /// Removed keys give their space back to the file a bounded number of pages per commit, once the log
    /// is checkpointed: a store that deleted most of its keys shrinks without a VACUUM.
    @Test func removedKeysShrinkTheFileIncrementally() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        var store = try openStore(path)
        #expect(store.returnsFreePages)
        let value = [UInt8](repeating: 7, count: 2_000)
        for batch in 0..<40 {
            try store.commit((0..<100).map { .snapshot(key: bytes("k\(batch)-\($0)"), bytes: value) })
        }
        store.close()  // checkpoints the log into the file
        let full = fileSize(path)
        #expect(full > 8_000_000, "about 8 MB of snapshots: \(full)")
        store = try openStore(path)
        for batch in 0..<40 {
            try store.commit((0..<100).map { .remove(key: bytes("k\(batch)-\($0)")) })
        }
        // Enough commits for the bounded returns to hand back every free page.
        for round in 0..<(Store.vacuumEvery * 40) { try store.commit([.meta(name: "round", value: [UInt8(round % 200)])]) }
        store.close()
        let shrunk = fileSize(path)
        #expect(shrunk < full / 4, "\(full) bytes before the removals, \(shrunk) after")
        store = try openStore(path)
        #expect(try store.load().keys.isEmpty)
    }

    /// An idle writer (`tidy()` until it has nothing left to do) shrinks the file and its log right after
    /// the removals, with no further commit and without closing the store.
    @Test func anIdleStoreShrinksItsFileAndLog() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let store = try openStore(path)
        defer { store.close() }
        let value = [UInt8](repeating: 7, count: 2_000)
        for batch in 0..<40 {
            try store.commit((0..<100).map { .snapshot(key: bytes("k\(batch)-\($0)"), bytes: value) })
        }
        #expect(!store.tidy(), "nothing to give back before the removals")
        let full = fileSize(path) + fileSize(path + "-wal")
        #expect(full > 8_000_000, "about 8 MB of snapshots: \(full)")
        try store.commit((0..<40).flatMap { batch in (0..<100).map { .remove(key: bytes("k\(batch)-\($0)")) } })
        var steps = 0
        while store.tidy() { steps += 1; if steps > 1_000 { break } }
        #expect(steps > 1 && steps <= 1_000, "\(steps) steps")
        let shrunk = fileSize(path) + fileSize(path + "-wal")
        #expect(shrunk < full / 8, "\(full) bytes of file and log before the removals, \(shrunk) after")
        #expect(fileSize(path + "-wal") < 1 << 20, "the log is truncated: \(fileSize(path + "-wal"))")
        #expect(!store.tidy())
        try store.commit([.snapshot(key: bytes("after"), bytes: value)])
        #expect(Array(try store.load().keys.keys) == [bytes("after")])
    }
}
