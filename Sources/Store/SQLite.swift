internal import CSQLite

/// Turns an SQLite status into a typed error: every SQLite call's status goes through here.
/// Corruption codes become ``StoreError/Code/corrupt`` wherever they surface.
@discardableResult
func check(_ status: Int32, _ database: OpaquePointer?, _ what: @autoclosure () -> String,
           accept: Int32 = SQLITE_OK, orAccept alternative: Int32? = nil) throws(StoreError) -> Int32 {
    // Two plain values, not a Set: this runs for every bind and step, and a Set literal allocates.
    if status == accept || status == alternative { return status }
    let extended = database.map { sqlite3_extended_errcode($0) } ?? status
    let detail = database.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(status))
    let code: StoreError.Code = switch status & 0xFF {
    case SQLITE_CORRUPT: .corrupt
    case SQLITE_NOTADB: .notADatabase
    default: .sqlite
    }
    let advice = code == .corrupt || code == .notADatabase
        ? "; the file is damaged or not a crdtd database: restore it from a backup or a peer, it is never reset automatically"
        : ""
    throw StoreError(code, "\(what()) failed: \(detail)\(advice)", resultCode: extended,
                     systemErrno: database.map { sqlite3_system_errno($0) })
}

/// A prepared statement, reused for the life of the connection.
final class Statement {
    private(set) var handle: OpaquePointer?
    private let database: OpaquePointer
    let sql: String

    init(_ database: OpaquePointer, _ sql: String) throws(StoreError) {
        self.database = database
        self.sql = sql
        var handle: OpaquePointer?
        try check(sqlite3_prepare_v3(database, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil), database, "preparing \(sql)")
        self.handle = handle
    }

    func finalize() {
        sqlite3_finalize(handle)
        handle = nil
    }

    func bind(_ index: Int32, _ bytes: [UInt8]) throws(StoreError) {
        // An empty array may have no base address, and a NULL pointer would bind SQL NULL: bind an
        // explicit zero-length blob instead.
        let status = bytes.isEmpty
            ? sqlite3_bind_zeroblob(handle, index, 0)
            // The 64-bit variant: an oversized value gets SQLITE_TOOBIG, not an Int32 conversion trap.
            : bytes.withUnsafeBytes { sqlite3_bind_blob64(handle, index, $0.baseAddress, UInt64($0.count), crdtd_sqlite_transient()) }
        try check(status, database, "binding a blob to \(sql)")
    }

    func bind(_ index: Int32, _ text: String) throws(StoreError) {
        try check(sqlite3_bind_text(handle, index, text, -1, crdtd_sqlite_transient()), database, "binding text to \(sql)")
    }

    func bind(_ index: Int32, _ value: Int64) throws(StoreError) {
        try check(sqlite3_bind_int64(handle, index, value), database, "binding an integer to \(sql)")
    }

    /// Binds two non-empty blobs to parameters 1 and 2 without copying them (SQLite reads them
    /// where they are during the step), runs the statement and clears the bindings again, so no
    /// pointer outlives the call: the commit path's insert, which with copying binds paid one
    /// allocation and copy per blob.
    func run(blob first: [UInt8], _ second: [UInt8]) throws(StoreError) {
        guard !first.isEmpty, !second.isEmpty else {
            try bind(1, first)
            try bind(2, second)
            return try run()
        }
        defer { sqlite3_clear_bindings(handle) }
        // `withUnsafeBytes` rethrows untyped errors: carry ours out as a value.
        let failure: StoreError? = first.withUnsafeBytes { a in
            second.withUnsafeBytes { b in
                do throws(StoreError) {
                    // A nil destructor is SQLITE_STATIC: the bytes stay valid until the step below ends.
                    try check(sqlite3_bind_blob64(handle, 1, a.baseAddress, UInt64(a.count), nil), database, "binding a blob to \(sql)")
                    try check(sqlite3_bind_blob64(handle, 2, b.baseAddress, UInt64(b.count), nil), database, "binding a blob to \(sql)")
                    try run()
                    return nil
                } catch {
                    return error
                }
            }
        }
        if let failure { throw failure }
    }

    /// Runs a statement that returns no rows.
    func run() throws(StoreError) {
        defer { sqlite3_reset(handle) }
        try check(sqlite3_step(handle), database, "running \(sql)", accept: SQLITE_DONE)
    }

    /// Steps once: true if a row is available.
    func step() throws(StoreError) -> Bool {
        try check(sqlite3_step(handle), database, "running \(sql)", accept: SQLITE_ROW, orAccept: SQLITE_DONE) == SQLITE_ROW
    }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        return String(cString: pointer)
    }

    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    /// The rowid the last successful INSERT on this connection assigned.
    var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(database) }

    /// Rows changed by the last statement run on this connection.
    var changes: Int { Int(sqlite3_changes(database)) }
}
