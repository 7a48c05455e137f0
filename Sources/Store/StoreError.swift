/// A failure of the ``Store``. Nothing in the store ever resets or rewrites data to recover from one:
/// the operator decides.
internal import CSQLite
import Glibc

public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, matchable in `catch`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case openFailed, notADatabase, foreignDatabase, newerSchema, corrupt, migrationFailed, sqlite, closed
            case checkpointFailed, invalidRecord
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file could not be opened or created (permissions, missing directory, disk full, ...).
        public static let openFailed = Code(.openFailed)
        /// The file exists but is not an SQLite database (or its header is destroyed).
        public static let notADatabase = Code(.notADatabase)
        /// An SQLite database that belongs to another program (its `application_id` is not crdtd's).
        public static let foreignDatabase = Code(.foreignDatabase)
        /// A database written by a newer crdtd, whose schema this version does not know.
        public static let newerSchema = Code(.newerSchema)
        /// The database failed its integrity check, or SQLite reported corruption while using it.
        public static let corrupt = Code(.corrupt)
        /// A schema migration failed; it was rolled back and the file is unchanged.
        public static let migrationFailed = Code(.migrationFailed)
        /// Any other SQLite failure; see ``StoreError/resultCode``.
        public static let sqlite = Code(.sqlite)
        /// The store was used after ``Store/close()``.
        public static let closed = Code(.closed)
        /// A commit went through, but the checkpoint after it failed to write or sync the database: what
        /// the kernel holds for the file can no longer be trusted (see ``StoreError/failedSync``).
        public static let checkpointFailed = Code(.checkpointFailed)
        /// A record the store cannot apply (a snapshot part or seal with no staged snapshot begun): a bug
        /// of the caller. The transaction was rolled back.
        public static let invalidRecord = Code(.invalidRecord)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// What happened and what to do about it.
    public let message: String
    /// SQLite's extended result code, when SQLite reported the failure (for example 2067,
    /// `SQLITE_CONSTRAINT_UNIQUE`; the primary code is the low byte).
    public let resultCode: Int32?
    /// The `errno` of the system call that failed under SQLite, when one did (`sqlite3_system_errno`).
    public let systemErrno: Int32?

    init(_ code: Code, _ message: String, resultCode: Int32? = nil, systemErrno: Int32? = nil) {
        self.code = code
        self.message = message
        self.resultCode = resultCode
        self.systemErrno = systemErrno == 0 ? nil : systemErrno
    }

    /// The primary SQLite result code (for example 11, `SQLITE_CORRUPT`), if SQLite reported the failure.
    public var primaryResultCode: Int32? { resultCode.map { $0 & 0xFF } }

    /// The disk or the quota is full (`SQLITE_FULL`, or a write that failed with `ENOSPC` or `EDQUOT`):
    /// the transaction was rolled back, nothing that was synced before is in doubt, and the same commit
    /// may be retried once space returns.
    public var isOutOfSpace: Bool {
        guard !failedSync, let primary = primaryResultCode else { return false }
        if primary == SQLITE_FULL { return true }
        guard primary == SQLITE_IOERR, let errno = systemErrno else { return false }
        return errno == ENOSPC || errno == EDQUOT
    }

    /// An `fsync` (of the log, the database or the directory) failed. The kernel may have dropped the
    /// pages it could not write and marked them clean, so a later `fsync` that succeeds proves nothing
    /// ("fsyncgate", PostgreSQL 2018): never retry and trust it.
    public var failedSync: Bool {
        resultCode == Self.ioErrorFsync || resultCode == Self.ioErrorDirectoryFsync
    }

    /// `SQLITE_IOERR_FSYNC` and `SQLITE_IOERR_DIR_FSYNC` (extended codes: `SQLITE_IOERR | n << 8`).
    static let ioErrorFsync = SQLITE_IOERR | (4 << 8)
    static let ioErrorDirectoryFsync = SQLITE_IOERR | (5 << 8)

    /// The failure in words an operator can act on, for example "database or disk is full (ENOSPC)".
    public var cause: String {
        let detail = message.firstRange(of: " failed: ").map { String(message[$0.upperBound...]) } ?? message
        guard let systemErrno else { return detail }
        return "\(detail) (\(String(cString: strerror(systemErrno))))"
    }

    public var description: String {
        "StoreError(\(code)): \(message)" + (resultCode.map { " [SQLite code \($0)]" } ?? "")
            + (systemErrno.map { " [errno \($0)]" } ?? "")
    }
}
