/// Bounds that keep a parser's memory proportional to the bytes a peer actually sent.
///
/// Every length a peer *declares* (an array count, a bulk length) is checked against these limits
/// before anything is allocated for it. The defaults suit a server facing untrusted clients; they are
/// deliberately tighter than Redis' (`proto-max-bulk-len` is 512 MiB there).
public struct RESPLimits: Sendable, Hashable {
    /// Largest bulk string, in bytes. Default 16 MiB. Redis' equivalent is `proto-max-bulk-len`.
    public var maxBulkLength: Int
    /// Largest whole request (headers, payloads and line ends), in bytes. Default 64 MiB.
    public var maxRequestBytes: Int
    /// Most arguments in one request, and most elements in one reply aggregate. Default 1,048,576.
    public var maxArguments: Int
    /// Longest inline command line (as `redis-cli` or `telnet` sends), and longest simple reply line.
    /// Default 64 KiB, Redis' `PROTO_INLINE_MAX_SIZE`.
    public var maxInlineLength: Int
    /// Most unparsed bytes a parser holds. `append` throws rather than grow past it, so a peer that
    /// sends faster than it is served cannot grow the buffer without bound.
    /// Default 65 MiB: one largest request plus read chunks.
    public var maxBufferedBytes: Int
    /// Deepest nesting of aggregates in a reply (requests are flat). Default 32.
    public var maxNestingDepth: Int

    /// Creates limits; every parameter defaults to the documented default.
    public init(
        maxBulkLength: Int = 16 << 20,
        maxRequestBytes: Int = 64 << 20,
        maxArguments: Int = 1 << 20,
        maxInlineLength: Int = 64 << 10,
        maxBufferedBytes: Int = 65 << 20,
        maxNestingDepth: Int = 32
    ) {
        self.maxBulkLength = maxBulkLength
        self.maxRequestBytes = maxRequestBytes
        self.maxArguments = maxArguments
        self.maxInlineLength = maxInlineLength
        self.maxBufferedBytes = maxBufferedBytes
        self.maxNestingDepth = maxNestingDepth
    }

    /// The documented defaults.
    public static let `default` = RESPLimits()
}

/// The protocol version a client speaks: RESP2 until it sends `HELLO 3`.
public enum RESPVersion: Int, Sendable, Hashable {
    case resp2 = 2
    case resp3 = 3
}
