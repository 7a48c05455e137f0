/// A malformed or over-limit input to a RESP parser.
///
/// After a parser throws, its state is undefined: the server answers ``errorReplyMessage`` and closes
/// the connection, as Redis does; a client closes the connection.
public struct RESPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, matchable in `catch` without depending on the message text.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidMultibulkLength, invalidBulkLength, expectedDollar, expectedCRLF
            case multibulkCountTooLong, bulkCountTooLong, inlineTooLong, unbalancedQuotes
            case tooManyArguments, requestTooLarge, bufferLimitExceeded
            case invalidReplyType, invalidInteger, invalidDouble, invalidBoolean, invalidBigNumber
            case invalidVerbatimString, invalidNull, nestingTooDeep, lineTooLong
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// An array header whose count is not a decimal integer or is out of range.
        public static let invalidMultibulkLength = Code(.invalidMultibulkLength)
        /// A bulk header whose length is not a decimal integer, is negative (in a request) or exceeds
        /// ``RESPLimits/maxBulkLength``.
        public static let invalidBulkLength = Code(.invalidBulkLength)
        /// An element of a request array that is not a bulk string.
        public static let expectedDollar = Code(.expectedDollar)
        /// A bulk string not followed by `\r\n` where its declared length says it ends.
        public static let expectedCRLF = Code(.expectedCRLF)
        /// An array header line with no line end in a sane number of bytes.
        public static let multibulkCountTooLong = Code(.multibulkCountTooLong)
        /// A bulk header line with no line end in a sane number of bytes.
        public static let bulkCountTooLong = Code(.bulkCountTooLong)
        /// An inline command longer than ``RESPLimits/maxInlineLength``.
        public static let inlineTooLong = Code(.inlineTooLong)
        /// An inline command with an unterminated quote, or a closing quote followed by a non-space.
        public static let unbalancedQuotes = Code(.unbalancedQuotes)
        /// More arguments (or aggregate elements) than ``RESPLimits/maxArguments``.
        public static let tooManyArguments = Code(.tooManyArguments)
        /// A request larger than ``RESPLimits/maxRequestBytes``.
        public static let requestTooLarge = Code(.requestTooLarge)
        /// More unparsed bytes than ``RESPLimits/maxBufferedBytes``.
        public static let bufferLimitExceeded = Code(.bufferLimitExceeded)
        /// A reply starting with a byte that is no RESP2/RESP3 type.
        public static let invalidReplyType = Code(.invalidReplyType)
        /// An integer reply that is not a 64-bit decimal integer.
        public static let invalidInteger = Code(.invalidInteger)
        /// A double reply that is not a number, `inf`, `-inf` or `nan`.
        public static let invalidDouble = Code(.invalidDouble)
        /// A boolean reply other than `#t` or `#f`.
        public static let invalidBoolean = Code(.invalidBoolean)
        /// A big number reply that is not an optionally signed string of digits.
        public static let invalidBigNumber = Code(.invalidBigNumber)
        /// A verbatim string without its three-byte format and colon.
        public static let invalidVerbatimString = Code(.invalidVerbatimString)
        /// A RESP3 null (`_`) with bytes before its line end.
        public static let invalidNull = Code(.invalidNull)
        /// Aggregates nested deeper than ``RESPLimits/maxNestingDepth``.
        public static let nestingTooDeep = Code(.nestingTooDeep)
        /// A simple reply line longer than ``RESPLimits/maxInlineLength``.
        public static let lineTooLong = Code(.lineTooLong)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// A one-line explanation, worded as Redis words it where Redis has the same error
    /// (for example `Protocol error: invalid bulk length`).
    public let message: String

    /// Creates an error; parsers create these, tests and other modules rarely need to.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The text of the error reply a server sends before closing the connection, without the leading
    /// `-`: `ERR Protocol error: ...`.
    public var errorReplyMessage: String { "ERR " + message }

    public var description: String { "RESPError(\(code)): \(message)" }

    static func protocolError(_ code: Code, _ detail: String) -> RESPError {
        RESPError(code, "Protocol error: " + detail)
    }
}
