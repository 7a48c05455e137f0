/// A failure of the ``Store``. Nothing in the store ever resets or rewrites data to recover from one:
/// the operator decides.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, matchable in `catch`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case openFailed, notADatabase, foreignDatabase, newerSchema, corrupt, migrationFailed, sqlite, closed
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

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// What happened and what to do about it.
    public let message: String
    /// SQLite's extended result code, when SQLite reported the failure (for example 2067,
    /// `SQLITE_CONSTRAINT_UNIQUE`; the primary code is the low byte).
    public let resultCode: Int32?

    init(_ code: Code, _ message: String, resultCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.resultCode = resultCode
    }

    /// The primary SQLite result code (for example 11, `SQLITE_CORRUPT`), if SQLite reported the failure.
    public var primaryResultCode: Int32? { resultCode.map { $0 & 0xFF } }

    public var description: String {
        "StoreError(\(code)): \(message)" + (resultCode.map { " [SQLite code \($0)]" } ?? "")
    }
}
