internal import CSQLite
import Glibc
public import Logging

/// The daemon's durable store: an SQLite database in WAL mode holding, per key, a snapshot and the
/// deltas appended since, plus named meta values.
///
/// Writes cost O(size of the change): a ``StoreRecord/delta(key:bytes:)`` appends one row to a single
/// append-only log (sequential pages, no per-key index to update: an index on the key made random
/// inserts, and commits, ten times slower); the engine now and then writes a
/// ``StoreRecord/snapshot(key:bytes:)``, which replaces the key's snapshot and supersedes its older
/// deltas. The store knows, in memory, the sequence numbers of every key's deltas, so superseded deltas
/// are deleted by rowid range, a bounded number per commit once they outnumber live ones: no commit
/// scans the log or reads a snapshot it does not write, whatever the size of the other keys' objects.
/// Each ``commit(_:)`` is one transaction, so the daemon group-commits everything that arrived while
/// the previous commit ran.
///
/// Not thread-safe and deliberately not `Sendable`: the store's thread (the daemon's writer) owns it.
/// Open one `Store` per file per process.
public final class Store {
    /// The `PRAGMA application_id` that marks a crdtd database ("CRDT" in ASCII).
    public static let applicationID: Int32 = 0x4352_4454
    /// The schema version this build writes and reads.
    public static var schemaVersion: Int { migrations.count }

    /// Forward migrations: entry `i` turns schema version `i` into version `i + 1`. Append, never edit.
    static let migrations: [Migration] = [
        Migration(description: "deltas, snapshots and meta", statements: [
            // AUTOINCREMENT: a sequence number is never reused, even after the collector deletes the
            // newest rows, so "seq <= through_seq" keeps meaning "appended before that snapshot".
            """
            CREATE TABLE deltas (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                key BLOB NOT NULL,
                bytes BLOB NOT NULL)
            """,
            // bytes is NULL for a removed key (a tombstone): it hides the key's older deltas until the
            // collector has deleted them. through_seq is the last log entry the snapshot covers.
            """
            CREATE TABLE snapshots (
                key BLOB PRIMARY KEY,
                bytes BLOB,
                through_seq INTEGER NOT NULL) WITHOUT ROWID
            """,
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
        ]),
        // Version 1 kept through_seq after the snapshot's bytes, so reading it walked the blob's chain of
        // overflow pages: megabytes of page reads per delta the collector looked at (docs/storage.md).
        // Version 2 puts the small columns first, in a rowid table (SQLite keeps large rows out of
        // WITHOUT ROWID b-trees best), and has no tombstones: a removed key's rows are deleted at once.
        Migration(description: "snapshot bookkeeping before the bytes; superseded deltas and tombstones dropped", statements: [
            // Read each old row's through_seq once, past its blob, into a table of small rows...
            "CREATE TABLE migration_through (key BLOB PRIMARY KEY, through_seq INTEGER NOT NULL) WITHOUT ROWID",
            "INSERT INTO migration_through(key, through_seq) SELECT key, through_seq FROM snapshots",
            // ...so that deleting every superseded delta, tombstoned keys' included, looks up small rows.
            """
            DELETE FROM deltas
            WHERE seq <= coalesce((SELECT through_seq FROM migration_through WHERE migration_through.key = deltas.key), 0)
            """,
            """
            CREATE TABLE snapshots_v2 (
                key BLOB PRIMARY KEY,
                through_seq INTEGER NOT NULL,
                bytes BLOB NOT NULL)
            """,
            "INSERT INTO snapshots_v2(key, through_seq, bytes) SELECT key, through_seq, bytes FROM snapshots WHERE bytes IS NOT NULL",
            "DROP TABLE snapshots",
            "DROP TABLE migration_through",
            "ALTER TABLE snapshots_v2 RENAME TO snapshots",
        ]),
        // Version 3: staged snapshots, written in parts over several commits (docs/storage.md). A stage's
        // row holds only small columns; its parts are rows of their own, appended once, deleted by rowid.
        Migration(description: "staged snapshots of large objects, written in parts", statements: [
            """
            CREATE TABLE snapshot_stages (
                stage INTEGER PRIMARY KEY AUTOINCREMENT,
                key BLOB NOT NULL,
                through_seq INTEGER NOT NULL,
                sealed INTEGER NOT NULL DEFAULT 0,
                parts INTEGER NOT NULL DEFAULT 0,
                bytes INTEGER NOT NULL DEFAULT 0)
            """,
            """
            CREATE TABLE snapshot_parts (
                part INTEGER PRIMARY KEY AUTOINCREMENT,
                stage INTEGER NOT NULL,
                checksum INTEGER NOT NULL,
                bytes BLOB NOT NULL)
            """,
        ]),
    ]

    /// One schema step.
    struct Migration: Sendable {
        var description: String
        var statements: [String]
    }

    /// The file this store opened.
    public let path: String
    /// The options it was opened with.
    public let options: StoreOptions
    private let logger: Logger
    private var database: OpaquePointer?
    private var statements: Statements?
    private(set) var collector = Collector()
    /// Staged snapshots, pending and sealed, and the parts of replaced ones still to delete.
    private(set) var stages = StageBook()
    /// Stage rows found unsealed by `load()`, deleted by the next commit.
    private var doomedStageRows: [Int64] = []
    /// Whether the file returns freed pages (`auto_vacuum=INCREMENTAL`, set when crdtd created it): then
    /// every `vacuumEvery` commits, if more than `vacuumPages` pages are free, that many are returned.
    private(set) var returnsFreePages = false
    private var commitsSinceVacuum = 0
    static let vacuumEvery = 32
    static let vacuumPages = 256
    /// Free pages that make an idle writer start returning them (`tidy()`): 256 KiB with 4 KiB pages, or a
    /// fifth of a smaller file. Once started it returns them all: small churn never starts it, and a
    /// burst of removals leaves nothing.
    static let idleFreePages = 64
    /// Set while `tidy()` returns pages: until none is free, and the log, which holds them, is truncated.
    private var tidying = false
    private let checkpoints = CheckpointWatch()

    private struct Statements {
        let begin, commit, rollback: Statement
        let appendDelta, putSnapshot, removeSnapshot, deleteDeltas, putMeta: Statement
        let beginStage, appendPart, sealStage, deleteStage, deleteParts: Statement
        let loadSnapshots, loadDeltas, loadMeta, loadStages, loadParts: Statement

        var all: [Statement] {
            [begin, commit, rollback, appendDelta, putSnapshot, removeSnapshot, deleteDeltas, putMeta,
             beginStage, appendPart, sealStage, deleteStage, deleteParts,
             loadSnapshots, loadDeltas, loadMeta, loadStages, loadParts]
        }

        /// The statements a commit runs, by name: none of them may scan a table (`StoreQueryPlanTests`).
        var commitPath: [(String, Statement)] {
            [("appendDelta", appendDelta), ("putSnapshot", putSnapshot), ("removeSnapshot", removeSnapshot),
             ("deleteDeltas", deleteDeltas), ("putMeta", putMeta), ("beginStage", beginStage),
             ("appendPart", appendPart), ("sealStage", sealStage), ("deleteStage", deleteStage),
             ("deleteParts", deleteParts)]
        }
    }

    /// Superseded deltas a due commit deletes at least, whatever its size: enough to keep ahead of the
    /// log (a commit deletes at least four times the deltas it appends), few enough to stay a few
    /// milliseconds.
    static let collectionFloor = 1024

    /// Opens or creates the database at `path`, verifies it belongs to crdtd, is intact
    /// (``StoreOptions/verifyOnOpen``) and is not from a newer version, then migrates it forward.
    ///
    /// - Throws: ``StoreError`` with ``StoreError/Code/notADatabase``, ``StoreError/Code/foreignDatabase``,
    ///   ``StoreError/Code/corrupt``, ``StoreError/Code/newerSchema`` or ``StoreError/Code/migrationFailed``
    ///   for a file it refuses; the file is then left exactly as it was.
    public convenience init(path: String, options: StoreOptions = StoreOptions(),
                            logger: Logger = Logger(label: "crdtd.store")) throws(StoreError) {
        try self.init(path: path, options: options, logger: logger, migrations: Self.migrations)
    }

    /// Opens with an explicit migration list; tests use it to exercise migrations beyond version 1.
    init(path: String, options: StoreOptions, logger: Logger, migrations: [Migration]) throws(StoreError) {
        self.path = path
        self.options = options
        self.logger = logger
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let detail = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_close_v2(handle)
            throw StoreError(.openFailed, "cannot open the database '\(path)': \(detail); check the data directory exists and is writable",
                             resultCode: status)
        }
        database = handle
        do throws(StoreError) {
            sqlite3_extended_result_codes(handle, 1)
            try check(sqlite3_busy_timeout(handle, options.busyTimeoutMilliseconds), handle, "setting the busy timeout")
            try verifyAndMigrate(migrations)
            // A list older than this build's (tests that write an old schema by hand) leaves tables the
            // statements need missing: such a store only answers pragmas and closes.
            if migrations.count >= Self.migrations.count { statements = try Self.prepare(handle) }
            checkpoints.watch(handle)
        } catch {
            close()
            throw error
        }
    }

    deinit {
        close()
    }

    /// Reads everything the store holds. Call once at start-up, before the first ``commit(_:)``:
    /// it also counts live and superseded deltas, which decides when the collector runs.
    ///
    /// - Throws: ``StoreError/Code/corrupt`` when a sealed staged snapshot misses a part or a part does
    ///   not match its checksum, naming the key; nothing is changed.
    public func load() throws(StoreError) -> RecoveredState {
        let statements = try open()
        var state = RecoveredState()
        var collector = Collector()
        var coveredThrough: [[UInt8]: Int64] = [:]
        let loadSnapshots = statements.loadSnapshots
        defer { loadSnapshots.reset() }
        while try loadSnapshots.step() {
            let key = loadSnapshots.blob(0)
            coveredThrough[key] = loadSnapshots.int(1)
            state.keys[key] = RecoveredKey(snapshot: loadSnapshots.blob(2))
        }
        // Small rows: which staged snapshots are sealed, and what they cover, before the log is read.
        var staged = try loadStageRows(statements, coveredThrough: &coveredThrough)
        for stage in staged.current.values { state.keys[stage.stage.key] = RecoveredKey() }
        let loadDeltas = statements.loadDeltas
        defer { loadDeltas.reset() }
        // One sequential pass over the log, in append order; a superseded row's bytes are not read.
        while try loadDeltas.step() {
            let key = loadDeltas.blob(0)
            let sequence = loadDeltas.int(1)
            if let through = coveredThrough[key], sequence <= through {
                collector.loadedSuperseded(sequence, key: key)
                continue
            }
            collector.appended(sequence, key: key)
            state.keys[key, default: RecoveredKey()].deltas.append(loadDeltas.blob(2))
        }
        let loadMeta = statements.loadMeta
        defer { loadMeta.reset() }
        while try loadMeta.step() {
            state.meta[loadMeta.text(0)] = loadMeta.blob(1)
        }
        try loadParts(statements, &staged, into: &state)
        self.collector = collector
        self.stages = staged.book
        self.doomedStageRows = staged.doomedRows
        return state
    }

    /// What `load()` learns of the staged snapshots.
    private struct LoadedStages {
        struct Current { var stage: StageBook.Stage; var parts: Int; var bytes: Int }
        /// Per stage id, the sealed stages that are their keys' snapshots.
        var current: [Int64: Current] = [:]
        /// Per stage id, stages whose parts are to be deleted (never sealed, or replaced).
        var doomed: [Int64: StageBook.Stage] = [:]
        var doomedRows: [Int64] = []
        var book = StageBook()
    }

    /// Reads the stage rows. A key's snapshot is its sealed stage when that covers more of the log than
    /// its inline snapshot (a seal deletes the inline one in its own commit, and an inline snapshot
    /// drops the stages; so there is one of the two, unless a crash tore nothing, which SQLite prevents).
    private func loadStageRows(_ statements: Statements, coveredThrough: inout [[UInt8]: Int64]) throws(StoreError) -> LoadedStages {
        var loaded = LoadedStages()
        var byKey: [[UInt8]: Int64] = [:]
        let loadStages = statements.loadStages
        defer { loadStages.reset() }
        while try loadStages.step() {
            let stage = StageBook.Stage(id: loadStages.int(0), key: loadStages.blob(1), through: loadStages.int(2))
            guard loadStages.int(3) != 0 else {
                loaded.doomed[stage.id] = stage
                loaded.doomedRows.append(stage.id)
                continue
            }
            let current = LoadedStages.Current(stage: stage, parts: Int(loadStages.int(4)), bytes: Int(loadStages.int(5)))
            if let other = byKey[stage.key], let previous = loaded.current[other] {
                // Two sealed stages of one key: the newer wins (a seal deletes the older in its commit).
                let (keep, drop) = previous.stage.id > stage.id ? (previous, current) : (current, previous)
                loaded.current[drop.stage.id] = nil
                loaded.doomed[drop.stage.id] = drop.stage
                loaded.doomedRows.append(drop.stage.id)
                loaded.current[keep.stage.id] = keep
                byKey[stage.key] = keep.stage.id
            } else {
                loaded.current[stage.id] = current
                byKey[stage.key] = stage.id
            }
        }
        for (id, current) in loaded.current {
            if let inline = coveredThrough[current.stage.key], inline > current.stage.through {
                loaded.current[id] = nil
                loaded.doomed[id] = current.stage
                loaded.doomedRows.append(id)
            } else {
                coveredThrough[current.stage.key] = current.stage.through
            }
        }
        return loaded
    }

    /// Reads the parts in order: a current stage's are checked and concatenated into its key's snapshot;
    /// the others' bytes are not read, their rowids are kept for deletion.
    private func loadParts(_ statements: Statements, _ loaded: inout LoadedStages, into state: inout RecoveredState) throws(StoreError) {
        var orphans = SequenceRuns()
        var assembled: [Int64: [UInt8]] = [:]
        let loadParts = statements.loadParts
        defer { loadParts.reset() }
        while try loadParts.step() {
            let part = loadParts.int(0)
            let id = loadParts.int(1)
            guard var current = loaded.current[id] else {
                if loaded.doomed[id] != nil { loaded.doomed[id]!.parts.append(part) } else { orphans.append(part) }
                continue
            }
            let bytes = loadParts.blob(3)
            guard partChecksum(bytes) == loadParts.int(2) else {
                throw Self.damagedStage(current.stage, path: path,
                    "part \(current.stage.parts.count + 1) of \(current.parts) (row \(part)) does not match its checksum")
            }
            var buffer = assembled.removeValue(forKey: id) ?? []
            if buffer.isEmpty { buffer.reserveCapacity(current.bytes) }
            buffer += bytes
            assembled[id] = buffer
            current.stage.parts.append(part)
            current.stage.bytes += bytes.count
            loaded.current[id] = current
        }
        for current in loaded.current.values.sorted(by: { $0.stage.id < $1.stage.id }) {
            let stage = current.stage
            guard stage.parts.count == current.parts, stage.bytes == current.bytes else {
                throw Self.damagedStage(stage, path: path,
                    "\(stage.parts.count) of its \(current.parts) parts (\(stage.bytes) of \(current.bytes) bytes) are present")
            }
            state.keys[stage.key, default: RecoveredKey()].snapshot = assembled.removeValue(forKey: stage.id) ?? []
            loaded.book.loadedSealed(stage)
        }
        for stage in loaded.doomed.values.sorted(by: { $0.id < $1.id }) { loaded.book.doom(stage.parts) }
        if !orphans.isEmpty { loaded.book.doom(orphans) }
    }

    private static func damagedStage(_ stage: StageBook.Stage, path: String, _ what: String) -> StoreError {
        let name = String(decoding: stage.key.prefix(80), as: UTF8.self)
        return StoreError(.corrupt, """
            the staged snapshot of key '\(name)' (stage \(stage.id)) in '\(path)' is damaged: \(what). Nothing was changed \
            and no other key is affected; restore the file from a backup or resynchronise this node from a peer, it is never reset automatically
            """, resultCode: SQLITE_CORRUPT)
    }

    /// Writes `records`, in order, as one transaction: after a crash either all of them are there or
    /// none is. Returns once the transaction is as durable as ``StoreOptions/synchronous`` promises.
    ///
    /// - Throws: ``StoreError/Code/invalidRecord`` for a ``StoreRecord/snapshotPart(key:bytes:)`` or
    ///   ``StoreRecord/snapshotSeal(key:)`` of a key with no staged snapshot begun (nothing is committed).
    public func commit(_ records: [StoreRecord]) throws(StoreError) {
        let statements = try open()
        // Chosen from the state before the batch, and accounted for before the batch's own records.
        let collection = collector.isDue(threshold: options.collectorThreshold)
            ? collector.nextCollection(max(4 * records.count, Self.collectionFloor))
            : Collector.Collection()
        var partsWritten = 0
        for record in records { if case .snapshotPart = record { partsWritten += 1 } }
        let doomed = stages.doomedPartCount > 0
            ? stages.nextDoomed(max(options.doomedPartsPerCommit, 2 * partsWritten))
            : (ranges: [], parts: 0)
        // Changed in a copy, kept only if the transaction commits.
        var book = stages
        var sealedThrough: [Int64] = []
        var sequences: [Int64] = []
        try statements.begin.run()
        do throws(StoreError) {
            try delete(collection.ranges, statements.deleteDeltas)
            try delete(doomed.ranges, statements.deleteParts)
            for row in doomedStageRows { try deleteStage(row, statements) }
            for record in records {
                switch record {
                case .delta(let key, let bytes):
                    try statements.appendDelta.run(blob: key, bytes)
                    sequences.append(statements.appendDelta.lastInsertedRowID)
                case .snapshot(let key, let bytes):
                    try statements.putSnapshot.bind(1, key)
                    try statements.putSnapshot.bind(2, bytes)
                    try statements.putSnapshot.run()
                    // An inline snapshot covers everything: the key's stages, pending or sealed, are dropped.
                    try drop(book.drop(key), &book, statements)
                case .snapshotBegin(let key):
                    try statements.beginStage.bind(1, key)
                    guard try statements.beginStage.step() else {
                        throw StoreError(.sqlite, "starting a staged snapshot returned no row")
                    }
                    let stage = StageBook.Stage(id: statements.beginStage.int(0), key: key, through: statements.beginStage.int(1))
                    statements.beginStage.reset()
                    if let unsealed = book.begin(stage) { try drop([unsealed], &book, statements) }
                case .snapshotPart(let key, let bytes):
                    guard let stage = book.pendingStage(key) else { throw Self.noStage(key, "a part") }
                    try statements.appendPart.bind(1, stage.id)
                    try statements.appendPart.bind(2, partChecksum(bytes))
                    try statements.appendPart.bind(3, bytes)
                    try statements.appendPart.run()
                    book.appendPart(statements.appendPart.lastInsertedRowID, bytes: bytes.count, key: key)
                case .snapshotSeal(let key):
                    guard let sealing = book.seal(key) else { throw Self.noStage(key, "a seal") }
                    let (stage, replaced) = (sealing.sealed, sealing.replaced)
                    try statements.sealStage.bind(1, stage.id)
                    try statements.sealStage.bind(2, Int64(stage.parts.count))
                    try statements.sealStage.bind(3, Int64(stage.bytes))
                    try statements.sealStage.run()
                    // The inline snapshot this replaces, if any: a one-time free when a key turns large.
                    try statements.removeSnapshot.bind(1, key)
                    try statements.removeSnapshot.run()
                    if let replaced { try drop([replaced], &book, statements) }
                    sealedThrough.append(stage.through)
                case .remove(let key):
                    try statements.removeSnapshot.bind(1, key)
                    try statements.removeSnapshot.run()
                    try drop(book.drop(key), &book, statements)
                    // Every row of the key: those committed before, and those appended by this batch.
                    var rows = collector.rows(of: key)
                    var index = 0
                    for case .delta(let deltaKey, _) in records {
                        if deltaKey == key, index < sequences.count { rows.append(sequences[index]...sequences[index]) }
                        index += 1
                    }
                    try delete(rows, statements.deleteDeltas)
                case .meta(let name, let value):
                    try statements.putMeta.bind(1, name)
                    try statements.putMeta.bind(2, value)
                    try statements.putMeta.run()
                }
            }
            try statements.commit.run()
        } catch {
            // Best effort: a failed COMMIT may already have rolled back, and the original error matters more.
            try? statements.rollback.run()
            throw error
        }
        collector.collected(collection)
        book.collectedDoomed(doomed.parts)
        stages = book
        doomedStageRows = []
        var next = sequences.makeIterator()
        var seals = sealedThrough.makeIterator()
        for record in records {
            switch record {
            case .delta(let key, _): collector.appended(next.next()!, key: key)
            case .snapshot(let key, _): collector.snapshotWritten(key)
            case .snapshotSeal(let key): collector.snapshotWritten(key, through: seals.next()!)
            case .remove(let key): collector.removed(key)
            case .meta, .snapshotBegin, .snapshotPart: break
            }
        }
        if !collection.ranges.isEmpty {
            logger.trace("collected superseded deltas", metadata: ["deleted": "\(collection.rows)"])
        }
        try checkCheckpoint()
        returnFreePages()
    }

    /// Shrinks the file by a bounded number of free pages (1 MiB with 4 KiB pages), so that deleting
    /// keys (collected tombstones, superseded deltas) gives the space back without a pause: a whole
    /// `VACUUM` rewrites the database. A failure (a full disk) only leaves the pages free for reuse.
    private func returnFreePages() {
        guard returnsFreePages else { return }
        commitsSinceVacuum += 1
        guard commitsSinceVacuum >= Self.vacuumEvery else { return }
        commitsSinceVacuum = 0
        guard let free = pragma("freelist_count").flatMap(Int.init), free > Self.vacuumPages else { return }
        _ = vacuumStep()
    }

    /// Returns up to `vacuumPages` free pages to the file system; false when that failed (a full disk),
    /// which only leaves the pages free for reuse.
    private func vacuumStep() -> Bool {
        do throws(StoreError) {
            try query("PRAGMA incremental_vacuum(\(Self.vacuumPages))")
            return true
        } catch {
            logger.warning("returning free pages failed; they stay free for reuse", metadata: ["error": "\(error.message)"])
            return false
        }
    }

    /// One bounded step of upkeep for a writer with nothing to commit; returns whether it did anything,
    /// so that the writer calls it again while it stays idle. Commits return free pages only every
    /// `vacuumEvery` commits, so after a burst of removals (collected tombstones) an idle node would keep
    /// its file at its largest: here `vacuumPages` are returned per step (a few milliseconds, the most a
    /// write arriving meanwhile waits), then the log, which holds the moved pages, is checkpointed and
    /// truncated once. It never waits for a reader (a backup): busy, the log is truncated another time.
    public func tidy() -> Bool {
        guard returnsFreePages, let database, statements != nil else { return false }
        guard let free = pragma("freelist_count").flatMap(Int.init),
              let pages = pragma("page_count").flatMap(Int.init) else { return false }
        // A fifth of a small file is enough to start: the file ends within 25 % of what it holds.
        if free > (tidying ? 0 : max(4, min(Self.idleFreePages, pages / 5))) {
            tidying = vacuumStep()
            return tidying
        }
        guard tidying else { return false }
        tidying = false
        sqlite3_busy_timeout(database, 0)
        let status = sqlite3_wal_checkpoint_v2(database, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil)
        sqlite3_busy_timeout(database, options.busyTimeoutMilliseconds)
        if status != SQLITE_OK && status & 0xFF != SQLITE_BUSY {
            logger.warning("truncating the write-ahead log failed; the next checkpoint retries",
                           metadata: ["error": "\(String(cString: sqlite3_errmsg(database)))"])
        }
        return true
    }

    /// Deletes the rows of stages that are dropped and queues their parts for deletion.
    private func drop(_ dropped: [StageBook.Stage], _ book: inout StageBook, _ statements: Statements) throws(StoreError) {
        for stage in dropped {
            try deleteStage(stage.id, statements)
            book.doom(stage.parts)
        }
    }

    private func deleteStage(_ id: Int64, _ statements: Statements) throws(StoreError) {
        try statements.deleteStage.bind(1, id)
        try statements.deleteStage.run()
    }

    private static func noStage(_ key: [UInt8], _ what: String) -> StoreError {
        StoreError(.invalidRecord, "\(what) of a staged snapshot of key '\(String(decoding: key.prefix(80), as: UTF8.self))' with no snapshotBegin before it; nothing was committed")
    }

    /// Throws if the checkpoint the last commit ran failed in a way that puts synced data in doubt.
    /// SQLite's own automatic checkpoint ignores its failures and retries at the next commit, which
    /// after a failed `fsync` would trust pages the kernel may have dropped; so the store runs the
    /// checkpoint itself (`CheckpointWatch`) and reports it here. A checkpoint that ran out of space
    /// wrote nothing that matters (the log stays authoritative) and is retried by the next commit.
    private func checkCheckpoint() throws(StoreError) {
        guard let failure = checkpoints.takeFailure() else { return }
        let error = StoreError(.checkpointFailed, "checkpointing the write-ahead log of '\(path)' after a commit failed: \(failure.message)",
                               resultCode: failure.code, systemErrno: failure.systemErrno)
        guard error.isOutOfSpace else { throw error }
        logger.warning("the checkpoint after a commit ran out of space; the log keeps the data and the next commit retries it",
                       metadata: ["path": "\(path)"])
    }

    /// Deletes every superseded delta now, in one transaction, and returns how many rows it deleted.
    /// The daemon need not call it (commits collect incrementally); it is for tests, tools and shutdown.
    @discardableResult
    public func compact() throws(StoreError) -> Int {
        let statements = try open()
        let collection = collector.nextCollection(collector.supersededTotal)
        let doomed = stages.nextDoomed(stages.doomedPartCount)
        try statements.begin.run()
        do throws(StoreError) {
            try delete(collection.ranges, statements.deleteDeltas)
            try delete(doomed.ranges, statements.deleteParts)
            for row in doomedStageRows { try deleteStage(row, statements) }
            try statements.commit.run()
        } catch {
            try? statements.rollback.run()
            throw error
        }
        collector.collected(collection)
        stages.collectedDoomed(doomed.parts)
        doomedStageRows = []
        return collection.rows + doomed.parts
    }

    /// Deletes the rows in `ranges` with `statement` (a `DELETE ... WHERE rowid BETWEEN ?1 AND ?2`).
    private func delete(_ ranges: [ClosedRange<Int64>], _ statement: Statement) throws(StoreError) {
        for range in ranges {
            try statement.bind(1, range.lowerBound)
            try statement.bind(2, range.upperBound)
            try statement.run()
        }
    }

    /// `EXPLAIN QUERY PLAN` of every statement a commit may run, by name; for tests.
    func commitQueryPlans() throws(StoreError) -> [String: [String]] {
        let statements = try open()
        var plans: [String: [String]] = [:]
        for (name, statement) in statements.commitPath {
            let explain = try Statement(database!, "EXPLAIN QUERY PLAN " + statement.sql)
            defer { explain.finalize() }
            var details: [String] = []
            while try explain.step() { details.append(explain.text(3)) }
            plans[name] = details
        }
        return plans
    }

    /// Pages this connection fetched from its cache or from the file since the last call: how much of
    /// the database a piece of work touched, counted deterministically; for tests.
    func pagesFetchedSinceLastCall() -> Int {
        guard let database else { return 0 }
        var total = 0
        for counter in [SQLITE_DBSTATUS_CACHE_HIT, SQLITE_DBSTATUS_CACHE_MISS] {
            var current: Int32 = 0, highest: Int32 = 0
            sqlite3_db_status(database, counter, &current, &highest, 1)
            total += Int(current)
        }
        return total
    }

    /// Pages this connection wrote to the log or the file since the last call: how much a commit wrote,
    /// counted deterministically; for tests.
    func pagesWrittenSinceLastCall() -> Int {
        guard let database else { return 0 }
        var current: Int32 = 0, highest: Int32 = 0
        sqlite3_db_status(database, SQLITE_DBSTATUS_CACHE_WRITE, &current, &highest, 1)
        return Int(current)
    }

    /// Rows in `table` (superseded deltas included); for tests.
    func rowCount(_ table: String) -> Int? {
        guard database != nil, let rows = try? query("SELECT count(*) FROM \(table)") else { return nil }
        return rows.first.flatMap { Int($0) }
    }

    /// Finalizes the statements and closes the database, checkpointing the write-ahead log.
    /// Calling it again does nothing; later calls of other methods throw ``StoreError/Code/closed``.
    public func close() {
        if let database { sqlite3_wal_hook(database, nil, nil) }
        statements?.all.forEach { $0.finalize() }
        statements = nil
        if let database {
            let status = sqlite3_close_v2(database)
            if status != SQLITE_OK {
                logger.error("closing the database failed", metadata: ["path": "\(path)", "code": "\(status)"])
            }
        }
        database = nil
    }

    /// The value of `PRAGMA name`; nil if it cannot be read.
    func pragma(_ name: String) -> String? {
        guard database != nil else { return nil }
        return try? query("PRAGMA \(name)").first
    }

    // MARK: - Opening

    private func open() throws(StoreError) -> Statements {
        guard let statements else {
            throw StoreError(.closed, "the store '\(path)' was used after close(); open a new Store")
        }
        return statements
    }

    private static func prepare(_ database: OpaquePointer) throws(StoreError) -> Statements {
        try Statements(
            begin: Statement(database, "BEGIN IMMEDIATE"),
            commit: Statement(database, "COMMIT"),
            rollback: Statement(database, "ROLLBACK"),
            appendDelta: Statement(database, "INSERT INTO deltas(key, bytes) VALUES (?1, ?2)"),
            // through_seq: the last sequence number ever assigned, so every delta of the key so far is covered.
            putSnapshot: Statement(database, """
                INSERT INTO snapshots(key, through_seq, bytes)
                VALUES (?1, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'deltas'), 0), ?2)
                ON CONFLICT(key) DO UPDATE SET through_seq = excluded.through_seq, bytes = excluded.bytes
                """),
            removeSnapshot: Statement(database, "DELETE FROM snapshots WHERE key = ?1"),
            deleteDeltas: Statement(database, "DELETE FROM deltas WHERE seq BETWEEN ?1 AND ?2"),
            putMeta: Statement(database, """
                INSERT INTO meta(name, value) VALUES (?1, ?2)
                ON CONFLICT(name) DO UPDATE SET value = excluded.value
                """),
            // through_seq as putSnapshot's: every delta committed so far, this batch's earlier ones included.
            beginStage: Statement(database, """
                INSERT INTO snapshot_stages(key, through_seq)
                VALUES (?1, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'deltas'), 0))
                RETURNING stage, through_seq
                """),
            appendPart: Statement(database, "INSERT INTO snapshot_parts(stage, checksum, bytes) VALUES (?1, ?2, ?3)"),
            sealStage: Statement(database, "UPDATE snapshot_stages SET sealed = 1, parts = ?2, bytes = ?3 WHERE stage = ?1"),
            deleteStage: Statement(database, "DELETE FROM snapshot_stages WHERE stage = ?1"),
            deleteParts: Statement(database, "DELETE FROM snapshot_parts WHERE part BETWEEN ?1 AND ?2"),
            loadSnapshots: Statement(database, "SELECT key, through_seq, bytes FROM snapshots"),
            loadDeltas: Statement(database, "SELECT key, seq, bytes FROM deltas ORDER BY seq"),
            loadMeta: Statement(database, "SELECT name, value FROM meta"),
            loadStages: Statement(database, "SELECT stage, key, through_seq, sealed, parts, bytes FROM snapshot_stages ORDER BY stage"),
            loadParts: Statement(database, "SELECT part, stage, checksum, bytes FROM snapshot_parts ORDER BY part"))
    }

    /// Runs SQL with no parameters, returning the first column of each row as text.
    @discardableResult
    private func query(_ sql: String) throws(StoreError) -> [String] {
        let statement = try Statement(database!, sql)
        defer { statement.finalize() }
        var rows: [String] = []
        while try statement.step() { rows.append(statement.text(0)) }
        return rows
    }

    private func verifyAndMigrate(_ migrations: [Migration]) throws(StoreError) {
        // Read-only checks first: a file we refuse must be left exactly as it was.
        let applicationID = Int32(truncatingIfNeeded: Int64(try query("PRAGMA application_id").first ?? "0") ?? 0)
        let version = Int(try query("PRAGMA user_version").first ?? "0") ?? 0
        let objectCount = Int(try query("SELECT count(*) FROM sqlite_schema").first ?? "0") ?? 0
        let isNew = applicationID == 0 && version == 0 && objectCount == 0
        if !isNew {
            guard applicationID == Self.applicationID else {
                throw StoreError(.foreignDatabase,
                    "'\(path)' is an SQLite database of another program (application_id \(applicationID)); point --data-dir at a crdtd data directory")
            }
            guard version <= migrations.count else {
                throw StoreError(.newerSchema,
                    "'\(path)' has schema version \(version), newer than this crdtd's \(migrations.count); run a newer crdtd, this one will not touch it")
            }
            if options.verifyOnOpen {
                let started = ContinuousClock.now
                let problems = try query("PRAGMA quick_check")
                let elapsed = ContinuousClock.now - started
                logger.debug("quick_check finished", metadata: ["path": "\(path)", "duration": "\(elapsed)"])
                guard problems == ["ok"] else {
                    throw StoreError(.corrupt,
                        "'\(path)' failed its integrity check (\(problems.prefix(3).joined(separator: "; "))); restore it from a backup or resynchronise this node from a peer, it is never reset automatically",
                        resultCode: SQLITE_CORRUPT)
                }
            }
        }
        // Only possible before the first table: a database crdtd creates gives freed pages back to the file
        // (`returnFreePages`); an older one reuses them, and shrinks with `VACUUM` (docs/storage.md).
        if isNew { try query("PRAGMA auto_vacuum=INCREMENTAL") }
        returnsFreePages = try query("PRAGMA auto_vacuum").first == "2"
        let mode = try query("PRAGMA journal_mode=WAL").first
        guard mode == "wal" else {
            throw StoreError(.sqlite, "'\(path)' could not switch to write-ahead logging (journal mode is \(mode ?? "unknown"))")
        }
        try query("PRAGMA synchronous=\(options.synchronous == .full ? "FULL" : "NORMAL")")
        // The log is rewound, not shrunk, after a checkpoint: a burst (deleting many keys) would leave it
        // at its largest for good. Past 4 MiB it is truncated when it is rewound.
        try query("PRAGMA journal_size_limit=\(4 << 20)")
        guard version < migrations.count else { return }
        try query("BEGIN IMMEDIATE")
        do throws(StoreError) {
            for step in version..<migrations.count {
                logger.info("migrating the store", metadata: [
                    "path": "\(path)", "to": "\(step + 1)", "change": "\(migrations[step].description)",
                ])
                for sql in migrations[step].statements { try query(sql) }
            }
            try query("PRAGMA application_id=\(Self.applicationID)")
            try query("PRAGMA user_version=\(migrations.count)")
            try query("COMMIT")
        } catch {
            _ = try? query("ROLLBACK")
            throw StoreError(.migrationFailed,
                "migrating '\(path)' from schema \(version) to \(migrations.count) failed and was rolled back: \(error.message)",
                resultCode: error.resultCode)
        }
    }
}

// MARK: - Backup and restore

extension Store {
    /// Writes a consistent copy of the live database at `path` to `destination` with `VACUUM INTO`, from
    /// a read-only connection of its own: in WAL mode a reader neither blocks the writer nor is blocked by
    /// it, so the node keeps serving, and the copy holds exactly the transactions committed when the copy
    /// began. The copy is written beside `destination` and renamed into place once synced, so a
    /// `destination` that exists is always complete. Runs for as long as the copy takes: call it off the
    /// threads that serve.
    ///
    /// - Returns: the size of the copy in bytes.
    /// - Throws: ``StoreError`` when `destination` exists, or the copy fails (the partial file is removed).
    public static func backup(databaseAt path: String, to destination: String) throws(StoreError) -> Int {
        guard Glibc.access(destination, F_OK) != 0 else {
            throw StoreError(.openFailed, "the backup '\(destination)' already exists; choose a new name, a backup is never overwritten")
        }
        let partial = destination + ".partial"
        unlink(partial)
        let database = try openReadOnly(path)
        defer { sqlite3_close_v2(database) }
        do throws(StoreError) {
            let statement = try Statement(database, "VACUUM INTO ?1")
            defer { statement.finalize() }
            try statement.bind(1, partial)
            try statement.run()
            try syncFile(partial)
            guard rename(partial, destination) == 0 else {
                throw StoreError(.sqlite, "cannot rename the backup into '\(destination)': \(String(cString: strerror(errno)))")
            }
        } catch {
            unlink(partial)
            throw error
        }
        var info = stat()
        return stat(destination, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Makes `databasePath` a copy of the backup at `backup`, checked as a crdtd database (application id,
    /// integrity, schema, migrated forward), with the meta values named in `forgetting` removed: those
    /// tied to the identity of the node that wrote the backup, which the restored node must not reuse.
    ///
    /// - Throws: ``StoreError`` when `databasePath` exists (a restore never replaces data) or the backup is
    ///   not a usable crdtd database; nothing is left at `databasePath` then.
    public static func restore(backup: String, into databasePath: String, forgetting names: [String],
                               logger: Logger = Logger(label: "crdtd.store")) throws(StoreError) {
        for suffix in ["", "-wal"] where access(databasePath + suffix, F_OK) == 0 {
            throw StoreError(.openFailed,
                "'\(databasePath + suffix)' exists: a restore only fills an empty data directory; move the old database away first")
        }
        let staging = databasePath + ".restoring"
        for suffix in ["", "-wal", "-shm"] { unlink(staging + suffix) }
        do throws(StoreError) {
            // Copying through SQLite also proves the backup is an SQLite database and reads it consistently.
            let source = try openReadOnly(backup)
            do throws(StoreError) {
                let statement = try Statement(source, "VACUUM INTO ?1")
                defer { statement.finalize() }
                try statement.bind(1, staging)
                try statement.run()
            } catch {
                sqlite3_close_v2(source)
                throw error
            }
            sqlite3_close_v2(source)
            let store = try Store(path: staging, options: StoreOptions(verifyOnOpen: true), logger: logger)
            do throws(StoreError) {
                let remove = try Statement(store.database!, "DELETE FROM meta WHERE name = ?1")
                defer { remove.finalize() }
                for name in names {
                    try remove.bind(1, name)
                    try remove.run()
                }
            } catch {
                store.close()
                throw error
            }
            // The last connection's close checkpoints the log into the file and removes it.
            store.close()
            try syncFile(staging)
            guard rename(staging, databasePath) == 0 else {
                throw StoreError(.sqlite, "cannot move the restored database into '\(databasePath)': \(String(cString: strerror(errno)))")
            }
        } catch {
            for suffix in ["", "-wal", "-shm"] { unlink(staging + suffix) }
            throw error
        }
    }

    private static func openReadOnly(_ path: String) throws(StoreError) -> OpaquePointer {
        var handle: OpaquePointer?
        let status = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
        guard status == SQLITE_OK, let handle else {
            let detail = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_close_v2(handle)
            throw StoreError(.openFailed, "cannot open '\(path)' to read it: \(detail)", resultCode: status)
        }
        sqlite3_busy_timeout(handle, 5000)
        return handle
    }

    private static func syncFile(_ path: String) throws(StoreError) {
        let fd = Glibc.open(path, O_RDONLY)
        guard fd >= 0, fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { _ = Glibc.close(fd) }
            throw StoreError(.sqlite, "cannot sync '\(path)' to disk: \(reason)")
        }
        _ = Glibc.close(fd)
    }
}

/// Runs the write-ahead log's checkpoints in place of SQLite's automatic one (same threshold), and keeps
/// their failures, which SQLite would ignore, for ``Store/commit(_:)`` to report.
final class CheckpointWatch {
    struct Failure {
        var code: Int32
        var systemErrno: Int32
        var message: String
    }

    /// SQLite's default automatic checkpoint threshold, in log frames (pages).
    static let frames: Int32 = 1000
    private var failure: Failure?

    /// Installs the hook; the store outlives it (`close()` removes it before closing the connection).
    func watch(_ database: OpaquePointer) {
        sqlite3_wal_hook(database, { context, database, name, frames in
            guard let context, frames >= CheckpointWatch.frames else { return SQLITE_OK }
            let watch = Unmanaged<CheckpointWatch>.fromOpaque(context).takeUnretainedValue()
            let status = sqlite3_wal_checkpoint_v2(database, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            // BUSY: a reader holds the log; the next commit tries again, as SQLite's own checkpoint does.
            if status != SQLITE_OK && status & 0xFF != SQLITE_BUSY {
                watch.failure = Failure(code: sqlite3_extended_errcode(database), systemErrno: sqlite3_system_errno(database),
                                        message: String(cString: sqlite3_errmsg(database)))
            }
            // The commit itself is durable: returning an error would make it look failed.
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    func takeFailure() -> Failure? {
        defer { failure = nil }
        return failure
    }
}
