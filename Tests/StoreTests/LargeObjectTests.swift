import CSQLite
import Testing
@testable import Store

/// A large object must not slow down anything that does not write it. Costs are counted in pages the
/// connection fetched (SQLite's cache hit and miss counters), which is deterministic; the time is in
/// examples/StoreBench.
@Suite struct LargeObjectTests {
    let big = bytes("big")

    /// The shape of the collapse seen with schema version 1: a key holding a multi-megabyte snapshot
    /// and many superseded deltas, while small deltas are committed to other keys and the collector
    /// runs. Run once with a 64-byte and once with a 4 MiB snapshot: the pages fetched must match.
    @Test func aMultiMegabyteSnapshotDoesNotSlowCommitsToOtherKeys() throws {
        let small = try pagesFetched(bigSnapshotBytes: 64)
        let large = try pagesFetched(bigSnapshotBytes: 4 << 20)
        // 4 MiB is about 1,000 overflow pages: version 1 walked them for each of the 2,500 rows of the
        // big key the collector examined, millions of pages against the few thousand counted here.
        #expect(small.commits > 0 && small.collected == 2000 && large.collected == 2000)
        #expect(large.pages <= small.pages + small.pages / 10 + 50, "pages fetched: \(large.pages) with the large snapshot, \(small.pages) without")
        #expect(large.pages / large.commits < 100, "\(large.pages / large.commits) pages per commit")
    }

    private func pagesFetched(bigSnapshotBytes: Int) throws -> (pages: Int, commits: Int, collected: Int) {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"), StoreOptions(synchronous: .normal, collectorThreshold: 200))
        _ = try store.load()
        try store.commit((0..<2000).map { .delta(key: big, bytes: Array(repeating: UInt8($0 % 251), count: 32)) })
        try store.commit([.snapshot(key: big, bytes: Array(repeating: 0xB1, count: bigSnapshotBytes))]
            + (0..<500).map { .delta(key: big, bytes: Array(repeating: UInt8($0 % 251), count: 32)) })
        #expect(store.collector.superseded[big]?.count == 2000)
        _ = store.pagesFetchedSinceLastCall()
        let commits = 300
        for round in 0..<commits {
            var batch: [StoreRecord] = (0..<5).map { .delta(key: bytes("small-\((round * 5 + $0) % 50)"), bytes: [UInt8(round % 251), 1, 2, 3]) }
            if round % 10 == 9 { batch.append(.snapshot(key: bytes("small-\(round % 50)"), bytes: [UInt8(round % 251)])) }
            try store.commit(batch)
        }
        let pages = store.pagesFetchedSinceLastCall()
        print("LargeObjectTests: \(pages) pages fetched by \(commits) commits with a \(bigSnapshotBytes)-byte snapshot present")
        let recovered = try store.load()
        #expect(recovered.keys[big] == RecoveredKey(snapshot: Array(repeating: 0xB1, count: bigSnapshotBytes),
                                                     deltas: (0..<500).map { Array(repeating: UInt8($0 % 251), count: 32) }))
        return (pages, commits, 2000 - (store.collector.superseded[big]?.count ?? 0))
    }

    /// Why version 2 moved through_seq before the bytes, and proof that the page counter sees an
    /// overflow walk: reading a column stored after a 4 MiB blob fetches its 1,000-odd overflow pages.
    @Test func readingAColumnAfterALargeBlobWalksItsOverflowPages() throws {
        let directory = TemporaryDirectory()
        var database: OpaquePointer?
        #expect(sqlite3_open(directory.file("layout.db"), &database) == SQLITE_OK)
        defer { sqlite3_close(database) }
        func run(_ sql: String) {
            #expect(sqlite3_exec(database, sql, nil, nil, nil) == SQLITE_OK, "\(sql)")
        }
        func pagesFetched(_ sql: String) -> Int {
            var total = 0
            for counter in [SQLITE_DBSTATUS_CACHE_HIT, SQLITE_DBSTATUS_CACHE_MISS] {
                var current: Int32 = 0, highest: Int32 = 0
                sqlite3_db_status(database, counter, &current, &highest, 1)
            }
            run(sql)
            for counter in [SQLITE_DBSTATUS_CACHE_HIT, SQLITE_DBSTATUS_CACHE_MISS] {
                var current: Int32 = 0, highest: Int32 = 0
                sqlite3_db_status(database, counter, &current, &highest, 1)
                total += Int(current)
            }
            return total
        }
        run("PRAGMA journal_mode=WAL")
        run("CREATE TABLE v1 (key BLOB PRIMARY KEY, bytes BLOB, through_seq INTEGER NOT NULL) WITHOUT ROWID")
        run("CREATE TABLE v2 (key BLOB PRIMARY KEY, through_seq INTEGER NOT NULL, bytes BLOB NOT NULL)")
        run("INSERT INTO v1 VALUES (x'01', zeroblob(4194304), 7)")
        run("INSERT INTO v2 VALUES (x'01', 7, zeroblob(4194304))")
        let before = pagesFetched("SELECT through_seq FROM v1 WHERE key = x'01'")
        let after = pagesFetched("SELECT through_seq FROM v2 WHERE key = x'01'")
        #expect(before > 1000, "version 1 layout: \(before) pages")
        #expect(after < 10, "version 2 layout: \(after) pages")
    }

    /// No statement a commit runs may scan a table: each finds its rows through a key or a rowid.
    @Test func noCommitStatementScansATable() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        let plans = try store.commitQueryPlans()
        #expect(Set(plans.keys) == ["appendDelta", "putSnapshot", "removeSnapshot", "deleteDeltas", "putMeta",
                                    "beginStage", "appendPart", "sealStage", "deleteStage", "deleteParts"])
        for (name, details) in plans {
            #expect(!details.contains { $0.hasPrefix("SCAN") && !$0.contains("sqlite_sequence") }, "\(name): \(details)")
        }
        #expect(plans["deleteDeltas"] == ["SEARCH deltas USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"])
        #expect(plans["deleteParts"] == ["SEARCH snapshot_parts USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"])
        #expect(plans["sealStage"] == ["SEARCH snapshot_stages USING INTEGER PRIMARY KEY (rowid=?)"])
        #expect(plans["removeSnapshot"]?.contains { $0.contains("USING INDEX sqlite_autoindex_snapshots") } == true,
                "\(plans["removeSnapshot"] ?? [])")
    }
}
