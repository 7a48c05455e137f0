internal import CLibUV

/// A libuv call failed. Carries libuv's status code with its symbolic name and description.
///
/// Every libuv status in this module goes through ``uvCheck(_:_:)``, so a failed call always
/// surfaces as this type, never as a bare integer.
public struct UVError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The negative status returned by libuv (for example `-98` for `EADDRINUSE` on Linux).
    public let code: Int32
    /// The libuv function (and, where useful, its argument) that failed.
    public let operation: String
    /// libuv's symbolic name for ``code``, such as `"EADDRINUSE"` (`uv_err_name`).
    public let name: String
    /// libuv's human-readable description of ``code`` (`uv_strerror`).
    public let message: String

    /// Builds the error for a libuv status. Uses the `_r` variants: `uv_err_name` leaks a string for unknown codes.
    init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
        var buffer = [CChar](repeating: 0, count: 128)
        uv_err_name_r(code, &buffer, buffer.count)
        self.name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        uv_strerror_r(code, &buffer, buffer.count)
        self.message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { "\(operation) failed: \(name) (\(message))" }

    /// `true` for the status libuv reports when the peer closed its side of a stream.
    public var isEndOfFile: Bool { code == UV_EOF.rawValue }
}

/// Turns a libuv status into a thrown ``UVError``; passes non-negative results through.
///
/// The single place where libuv statuses become errors, so that no call site compares integers by hand.
@discardableResult
func uvCheck(_ status: Int32, _ operation: @autoclosure () -> String) throws(UVError) -> Int32 {
    if status < 0 { throw UVError(code: status, operation: operation()) }
    return status
}

/// An error raised by the transport itself: a limit was reached, an address was malformed, or an
/// object was used after it was closed. libuv failures are reported as ``UVError`` instead.
public struct TransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem occurred; match on it with `==`. New codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidAddress, loopNotRunning, executeQueueFull, loopShuttingDown,
                connectionClosed, writeBudgetExceeded, datagramTooLarge, sendQueueFull, invalidArgument
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A `HOST:PORT` string could not be parsed.
        public static let invalidAddress = Code(.invalidAddress)
        /// The event loop has been stopped (or is stopping) and accepts no more work.
        public static let loopNotRunning = Code(.loopNotRunning)
        /// ``EventLoop/execute(_:)`` found its bounded queue full.
        public static let executeQueueFull = Code(.executeQueueFull)
        /// A handle was requested while the loop was closing every handle for shutdown.
        public static let loopShuttingDown = Code(.loopShuttingDown)
        /// The connection or socket was already closed (or is closing).
        public static let connectionClosed = Code(.connectionClosed)
        /// Queuing the write would exceed the connection's pending-write budget.
        public static let writeBudgetExceeded = Code(.writeBudgetExceeded)
        /// A datagram is larger than the socket's maximum datagram size.
        public static let datagramTooLarge = Code(.datagramTooLarge)
        /// The socket's bounded queue of unsent datagrams is full.
        public static let sendQueueFull = Code(.sendQueueFull)
        /// A configuration value is outside its allowed range.
        public static let invalidArgument = Code(.invalidArgument)

        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public let code: Code
    /// What happened and what to do about it.
    public let message: String

    /// Creates an error; `message` should say what happened and what the caller can do.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
