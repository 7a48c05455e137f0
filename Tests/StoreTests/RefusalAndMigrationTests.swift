import Logging
import Testing
@testable import Store

/// Files the store must refuse, untouched, and the forward migrations.
@Suite struct RefusalAndMigrationTests {
    @Test func emptyFileIsMigratedFromVersionZero() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        writeFile(path, [])
        let store = try openStore(path)
        #expect(store.pragma("user_version") == String(Store.schemaVersion))
        try store.commit([.delta(key: [1], bytes: [2])])
        #expect(try store.load().keys.count == 1)
    }

    @Test func newerSchemaIsRefusedAndLeftAlone() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        do {
            let store = try openStore(path)
            try store.commit([.delta(key: [1], bytes: [2])])
        }
        rawSQL(path, "PRAGMA user_version = 99")
        let before = contents(path)
        let error = storeError { _ = try openStore(path) }
        #expect(error?.code == .newerSchema)
        #expect(error?.message.contains("99") == true)
        #expect(contents(path) == before)
    }

    @Test func foreignSQLiteFileIsRefusedAndLeftAlone() {
        let directory = TemporaryDirectory()
        let path = directory.file("other.db")
        rawSQL(path, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER); INSERT INTO accounts VALUES (1, 100)")
        let before = contents(path)
        #expect(storeError { _ = try openStore(path) }?.code == .foreignDatabase)
        rawSQL(path, "PRAGMA application_id = 42")
        let tagged = contents(path)
        #expect(storeError { _ = try openStore(path) }?.code == .foreignDatabase)
        #expect(contents(path) == tagged)
        #expect(before.count == tagged.count)
    }

    @Test func fileThatIsNotSQLiteIsRefused() {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let text = Array(String(repeating: "this is a text file, not a database\n", count: 200).utf8)
        writeFile(path, text)
        let error = storeError { _ = try openStore(path) }
        #expect(error?.code == .notADatabase)
        #expect(error?.primaryResultCode == 26)  // SQLITE_NOTADB
        #expect(contents(path) == text)
    }

    @Test func corruptedPagesAreRefusedAndLeftAlone() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        do {
            let store = try openStore(path)
            for batch in 0..<20 {
                try store.commit((0..<500).map { .delta(key: bytes("key-\(batch)-\($0)"), bytes: Array(repeating: UInt8($0 % 251), count: 100)) })
            }
        }
        let size = contents(path).count
        #expect(size > 1 << 20)
        // Garbage over whole pages in the middle of the file, as a failing disk might leave.
        overwrite(path, at: size / 2 - (size / 2) % 4096, with: Array(repeating: 0xA5, count: 3 * 4096))
        let damaged = contents(path)
        let error = storeError { _ = try openStore(path) }
        #expect(error?.code == .corrupt)
        #expect(error?.message.contains("never reset") == true)
        #expect(contents(path) == damaged)
    }

    static let futureVersion = Store.Migration(description: "a note column on meta", statements: [
        "ALTER TABLE meta ADD COLUMN note TEXT",
        "UPDATE meta SET note = 'migrated'",
    ])

    @Test func migratesForwardFromAnOlderSchema() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        do {
            let store = try openStore(path)
            try store.commit([.delta(key: [1], bytes: [2]), .meta(name: "id", value: [3])])
        }
        do {
            let store = try Store(path: path, options: StoreOptions(), logger: Logger(label: "test"),
                                  migrations: Store.migrations + [Self.futureVersion])
            #expect(store.pragma("user_version") == String(Store.schemaVersion + 1))
            #expect(store.pragma("application_id") == String(Store.applicationID))
            #expect(try store.load() == RecoveredState(keys: [[1]: RecoveredKey(deltas: [[2]])], meta: ["id": [3]]))
        }
        rawSQL(path, "SELECT note FROM meta")
        // This build knows only its own versions: the migrated file is now from its future.
        #expect(storeError { _ = try openStore(path) }?.code == .newerSchema)
    }

    @Test func failedMigrationRollsBack() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        do {
            let store = try openStore(path)
            try store.commit([.delta(key: [1], bytes: [2])])
        }
        let broken = Store.Migration(description: "broken", statements: [
            "CREATE TABLE extra (x)", "THIS IS NOT SQL",
        ])
        let error = storeError {
            _ = try Store(path: path, options: StoreOptions(), logger: Logger(label: "test"), migrations: Store.migrations + [broken])
        }
        #expect(error?.code == .migrationFailed)
        let store = try openStore(path)
        #expect(store.pragma("user_version") == String(Store.schemaVersion))
        #expect(try store.load().keys == [[1]: RecoveredKey(deltas: [[2]])])
    }

    /// A version-1 file (snapshots with through_seq after the bytes, tombstones, superseded deltas not
    /// yet collected) migrates to version 2 with the same recovered state, its dead rows dropped.
    @Test func migratesAVersionOneStoreWithTombstonesAndSupersededDeltas() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        do {
            let store = try Store(path: path, options: StoreOptions(synchronous: .normal), logger: Logger(label: "test"),
                                  migrations: Array(Store.migrations.prefix(1)))
            #expect(store.pragma("user_version") == "1")
        }
        // What version 1 wrote: k's first two deltas are superseded by its snapshot, gone's by a tombstone.
        rawSQL(path, """
            INSERT INTO deltas(key, bytes) VALUES (x'6b', x'01'), (x'676f6e65', x'02'), (x'6b', x'03');
            INSERT INTO snapshots(key, bytes, through_seq) VALUES (x'6b', x'0c', 3), (x'676f6e65', NULL, 3);
            INSERT INTO deltas(key, bytes) VALUES (x'6b', x'04'), (x'6f74686572', x'05'), (x'676f6e65', x'06');
            INSERT INTO meta(name, value) VALUES ('id', x'07');
            """)
        let store = try openStore(path)
        #expect(store.pragma("user_version") == String(Store.schemaVersion))
        #expect(try store.load() == RecoveredState(keys: [
            bytes("k"): RecoveredKey(snapshot: [12], deltas: [[4]]),
            bytes("other"): RecoveredKey(deltas: [[5]]),
            bytes("gone"): RecoveredKey(deltas: [[6]]),
        ], meta: ["id": [7]]))
        #expect(store.rowCount("deltas") == 3)
        #expect(store.rowCount("snapshots") == 1)
        #expect(store.rowCount("sqlite_schema WHERE name = 'migration_through'") == 0)
        // Sequence numbers keep counting from where version 1 stopped.
        try store.commit([.delta(key: bytes("k"), bytes: [8]), .snapshot(key: bytes("other"), bytes: [9])])
        store.close()
        #expect(try openStore(path).load().keys == [
            bytes("k"): RecoveredKey(snapshot: [12], deltas: [[4], [8]]),
            bytes("other"): RecoveredKey(snapshot: [9]),
            bytes("gone"): RecoveredKey(deltas: [[6]]),
        ])
    }
}
