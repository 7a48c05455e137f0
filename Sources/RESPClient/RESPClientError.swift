import RESP

/// A transport or protocol failure of a ``RESPConnection``; the connection is closed after one, so
/// open a new connection. (An error *reply* from the server is not one of these: it is returned as
/// ``RESP/RESPReply/error(_:)``.)
public struct RESPClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case resolveFailed, connectFailed, timedOut, connectionClosed, ioFailed, protocolError, notConnected
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The host name did not resolve.
        public static let resolveFailed = Code(.resolveFailed)
        /// No address of the host accepted a connection.
        public static let connectFailed = Code(.connectFailed)
        /// Connecting, sending or waiting for a reply took longer than the timeout.
        public static let timedOut = Code(.timedOut)
        /// The server closed the connection before sending every reply.
        public static let connectionClosed = Code(.connectionClosed)
        /// A socket call failed; the message holds the system's reason.
        public static let ioFailed = Code(.ioFailed)
        /// The server sent bytes that are not valid RESP, or over the client's limits.
        public static let protocolError = Code(.protocolError)
        /// The connection was already closed by ``RESPConnection/close()`` or an earlier error.
        public static let notConnected = Code(.notConnected)

        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// What happened and, where it helps, what to do.
    public let message: String
    /// The parser's error, for ``Code/protocolError``.
    public let protocolError: RESPError?

    init(_ code: Code, _ message: String, protocolError: RESPError? = nil) {
        self.code = code
        self.message = message
        self.protocolError = protocolError
    }

    public var description: String { "RESPClientError(\(code)): \(message)" }
}
