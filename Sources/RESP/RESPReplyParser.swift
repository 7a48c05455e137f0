/// An incremental parser of server replies, RESP2 and RESP3, as a client reads them.
///
/// Every RESP3 type is understood: attributes (`|`) are read and dropped (they are optional
/// metadata), blob errors (`!`) become ``RESPReply/error(_:)``. Declared lengths are checked against
/// ``RESPLimits`` before anything is allocated, and nesting is bounded by
/// ``RESPLimits/maxNestingDepth`` so hostile input cannot exhaust the stack.
///
/// A reply that is still incomplete is parsed again from its start once more bytes arrive, but not
/// before the parser has at least the bytes it knew it was missing (the rest of a bulk string, say),
/// so a large bulk string arriving in many chunks is not rescanned per chunk. A reply made of very
/// many small elements arriving in many small chunks is the slow case; read in large chunks.
///
/// After a method throws, the parser's state is undefined: close the connection.
public struct RESPReplyParser: Sendable {
    /// The limits this parser enforces.
    public let limits: RESPLimits

    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Buffer size below which parsing again cannot succeed (known from the last attempt).
    private var neededCount = 0

    private static let compactionThreshold = 64 << 10
    private static let retainedCapacity = 256 << 10

    /// Creates a parser enforcing `limits`.
    public init(limits: RESPLimits = .default) {
        self.limits = limits
    }

    /// Bytes received but not yet returned as part of a reply.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Adds received bytes.
    /// - Throws: ``RESPError/Code/bufferLimitExceeded`` if the unparsed bytes would exceed
    ///   ``RESPLimits/maxBufferedBytes``; the bytes are then not added.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(RESPError) {
        let incoming = bytes.count
        guard incoming <= limits.maxBufferedBytes - bufferedByteCount else {
            throw RESPError.protocolError(
                .bufferLimitExceeded, "reply larger than \(limits.maxBufferedBytes) bytes buffered")
        }
        if readIndex == buffer.count {
            if buffer.capacity > Self.retainedCapacity { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            neededCount -= readIndex
            readIndex = 0
        } else if readIndex >= Self.compactionThreshold, readIndex * 2 >= buffer.count {
            buffer.removeSubrange(0..<readIndex)
            neededCount -= readIndex
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Returns the next complete reply, or `nil` if more bytes are needed.
    public mutating func next() throws(RESPError) -> RESPReply? {
        guard buffer.count > readIndex, buffer.count >= neededCount else { return nil }
        switch try parse(at: readIndex, depth: 0) {
        case .complete(let reply, let next):
            readIndex = next
            neededCount = 0
            return reply
        case .incomplete(let needed):
            neededCount = needed
            return nil
        }
    }

    // MARK: - Internals

    private enum Outcome {
        case complete(RESPReply, next: Int)
        /// The buffer must reach at least this count before trying again.
        case incomplete(needed: Int)
    }

    private enum Scalar {
        case complete(ArraySlice<UInt8>, next: Int)
        case incomplete(needed: Int)
    }

    /// The line starting at `start` (which is past the type byte), without its `\r\n`.
    private func line(from start: Int, maxLength: Int) throws(RESPError) -> Scalar {
        let limit = min(buffer.count, start + maxLength + 2)
        var index = start
        while index < limit {
            if buffer[index] == asciiLF {
                guard index > start, buffer[index - 1] == asciiCR else {
                    throw RESPError.protocolError(.expectedCRLF, "expected '\\r\\n' to end a reply line")
                }
                return .complete(buffer[start..<(index - 1)], next: index + 1)
            }
            index += 1
        }
        if limit - start >= maxLength + 2 {
            throw RESPError.protocolError(.lineTooLong, "reply line longer than \(maxLength) bytes")
        }
        return .incomplete(needed: buffer.count + 1)
    }

    private enum Blob {
        /// The buffer must reach this count first (the header or the payload is incomplete).
        case incomplete(needed: Int)
        /// A declared length of -1.
        case null(next: Int)
        case payload(ArraySlice<UInt8>, next: Int)
    }

    /// A length-prefixed payload whose header starts at `start` (past the type byte).
    private func blob(from start: Int, what: String) throws(RESPError) -> Blob {
        guard case .complete(let header, let next) = try line(from: start, maxLength: maxHeaderLineLength) else {
            return .incomplete(needed: buffer.count + 1)
        }
        guard let length = parseDecimal(header), length >= -1, length <= limits.maxBulkLength else {
            throw RESPError.protocolError(.invalidBulkLength, "invalid \(what) length")
        }
        if length == -1 { return .null(next: next) }
        let end = next + length
        // Wait for the whole payload at once rather than re-parsing per chunk.
        guard buffer.count - end >= 2 else { return .incomplete(needed: end + 2) }
        guard buffer[end] == asciiCR, buffer[end + 1] == asciiLF else {
            throw RESPError.protocolError(.expectedCRLF, "expected '\\r\\n' after a \(what) of declared length")
        }
        return .payload(buffer[next..<end], next: end + 2)
    }

    private func parse(at start: Int, depth: Int) throws(RESPError) -> Outcome {
        guard start < buffer.count else { return .incomplete(needed: start + 1) }
        let type = buffer[start]
        let body = start + 1
        switch type {
        case UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "_"),
             UInt8(ascii: ","), UInt8(ascii: "#"), UInt8(ascii: "("):
            guard case .complete(let text, let next) = try line(from: body, maxLength: limits.maxInlineLength) else {
                return .incomplete(needed: buffer.count + 1)
            }
            return .complete(try simple(type, text), next: next)
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let what = type == UInt8(ascii: "$") ? "bulk" : (type == UInt8(ascii: "!") ? "blob error" : "verbatim string")
            let payload: ArraySlice<UInt8>
            let next: Int
            switch try blob(from: body, what: what) {
            case .incomplete(let needed):
                return .incomplete(needed: needed)
            case .null(let after):
                guard type == UInt8(ascii: "$") else {
                    throw RESPError.protocolError(.invalidBulkLength, "invalid \(what) length")
                }
                return .complete(.null, next: after)
            case .payload(let bytes, let after):
                payload = bytes
                next = after
            }
            if type == UInt8(ascii: "$") { return .complete(.bulkString(Array(payload)), next: next) }
            if type == UInt8(ascii: "!") { return .complete(.error(String(decoding: payload, as: UTF8.self)), next: next) }
            guard payload.count >= 4, payload[payload.startIndex + 3] == UInt8(ascii: ":") else {
                throw RESPError.protocolError(.invalidVerbatimString, "verbatim string without a format prefix")
            }
            let format = String(decoding: payload.prefix(3), as: UTF8.self)
            return .complete(.verbatimString(format: format, text: Array(payload.dropFirst(4))), next: next)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard depth < limits.maxNestingDepth else {
                throw RESPError.protocolError(.nestingTooDeep, "replies nested deeper than \(limits.maxNestingDepth)")
            }
            guard case .complete(let header, var next) = try line(from: body, maxLength: maxHeaderLineLength) else {
                return .incomplete(needed: buffer.count + 1)
            }
            guard let declared = parseDecimal(header), declared >= -1 else {
                throw RESPError.protocolError(.invalidMultibulkLength, "invalid multibulk length")
            }
            if declared == -1 {
                guard type == UInt8(ascii: "*") else {
                    throw RESPError.protocolError(.invalidMultibulkLength, "invalid multibulk length")
                }
                return .complete(.nullArray, next: next)
            }
            let isPairs = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
            guard declared <= (isPairs ? limits.maxArguments / 2 : limits.maxArguments) else {
                throw RESPError.protocolError(
                    .tooManyArguments, "aggregate of \(declared) elements exceeds the limit of \(limits.maxArguments)")
            }
            let count = isPairs ? declared * 2 : declared
            var elements: [RESPReply] = []
            // Each element takes at least 3 bytes, so never reserve more than the bytes present justify.
            elements.reserveCapacity(min(count, (buffer.count - next) / 3))
            for _ in 0..<count {
                switch try parse(at: next, depth: depth + 1) {
                case .incomplete(let needed):
                    return .incomplete(needed: needed)
                case .complete(let element, let after):
                    elements.append(element)
                    next = after
                }
            }
            switch type {
            case UInt8(ascii: "*"): return .complete(.array(elements), next: next)
            case UInt8(ascii: "~"): return .complete(.set(elements), next: next)
            case UInt8(ascii: ">"): return .complete(.push(elements), next: next)
            case UInt8(ascii: "%"):
                var entries: [RESPReply.MapEntry] = []
                entries.reserveCapacity(declared)
                var index = 0
                while index < elements.count {
                    entries.append(RESPReply.MapEntry(key: elements[index], value: elements[index + 1]))
                    index += 2
                }
                return .complete(.map(entries), next: next)
            default:
                // An attribute annotates the reply that follows it; this client has no use for it.
                return try parse(at: next, depth: depth + 1)
            }
        default:
            let shown = (32..<127).contains(type) ? String(UnicodeScalar(type)) : "\\x" + String(type, radix: 16)
            throw RESPError.protocolError(.invalidReplyType, "invalid reply type byte '\(shown)'")
        }
    }

    private func simple(_ type: UInt8, _ text: ArraySlice<UInt8>) throws(RESPError) -> RESPReply {
        switch type {
        case UInt8(ascii: "+"):
            return .simpleString(String(decoding: text, as: UTF8.self))
        case UInt8(ascii: "-"):
            return .error(String(decoding: text, as: UTF8.self))
        case UInt8(ascii: ":"):
            guard let value = parseDecimal(text, allowPlus: true) else {
                throw RESPError.protocolError(.invalidInteger, "invalid integer reply")
            }
            return .integer(Int64(value))
        case UInt8(ascii: "_"):
            guard text.isEmpty else { throw RESPError.protocolError(.invalidNull, "invalid null reply") }
            return .null
        case UInt8(ascii: ","):
            let string = String(decoding: text, as: UTF8.self)
            guard text.count <= 64, let value = Double(string) else {
                throw RESPError.protocolError(.invalidDouble, "invalid double reply")
            }
            return .double(value)
        case UInt8(ascii: "#"):
            guard text.count == 1, text.first == UInt8(ascii: "t") || text.first == UInt8(ascii: "f") else {
                throw RESPError.protocolError(.invalidBoolean, "invalid boolean reply")
            }
            return .boolean(text.first == UInt8(ascii: "t"))
        default:
            var digits = text
            if digits.first == UInt8(ascii: "-") || digits.first == UInt8(ascii: "+") { digits = digits.dropFirst() }
            guard !digits.isEmpty, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
                throw RESPError.protocolError(.invalidBigNumber, "invalid big number reply")
            }
            return .bigNumber(String(decoding: text, as: UTF8.self))
        }
    }
}
