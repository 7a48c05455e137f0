/// An incremental parser of client requests, as a Redis server reads them.
///
/// Accepts both request forms Redis accepts: arrays of bulk strings (`*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n`,
/// what client libraries send) and inline commands (`PING\r\n`, what `redis-cli` piped input and
/// `telnet` send, with `"..."` and `'...'` quoting as Redis' `sdssplitargs`). Bytes may arrive in
/// chunks split anywhere; a chunk may hold many pipelined requests.
///
/// ```swift
/// var parser = RESPRequestParser()
/// try parser.append(chunk)
/// while let arguments = try parser.next() { handle(arguments) }
/// ```
///
/// Cost is linear in the input: consumed bytes are tracked with a read index and compacted away
/// only when they make up half the buffer, a pending bulk string is waited for without rescanning,
/// and the search for a line end resumes where it stopped.
///
/// After a method throws, the parser's state is undefined: answer the error and close the connection.
public struct RESPRequestParser: Sendable {
    /// The limits this parser enforces.
    public let limits: RESPLimits

    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Where the search for the next line end resumes; always >= readIndex.
    private var scanIndex = 0
    /// Arguments the array being read declared; 0 while no array is in progress.
    private var expectedArguments = 0
    private var arguments: [[UInt8]] = []
    /// The declared length of the bulk string being waited for, or -1 if its header is next.
    private var pendingBulkLength = -1
    private var requestBytes = 0

    /// Compact once this many consumed bytes sit at the front of the buffer (and they are at least
    /// half of it), so compaction moves each byte a bounded number of times.
    private static let compactionThreshold = 64 << 10
    /// Capacity kept for reuse when the buffer empties; larger buffers are released.
    private static let retainedCapacity = 256 << 10

    /// Creates a parser enforcing `limits`.
    public init(limits: RESPLimits = .default) {
        self.limits = limits
    }

    /// Bytes received but not yet returned as part of a request.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Adds received bytes.
    /// - Throws: ``RESPError/Code/bufferLimitExceeded`` if the unparsed bytes would exceed
    ///   ``RESPLimits/maxBufferedBytes``; the bytes are then not added.
    public mutating func append(_ bytes: some Collection<UInt8>) throws(RESPError) {
        let incoming = bytes.count
        guard incoming <= limits.maxBufferedBytes - bufferedByteCount else {
            throw RESPError.protocolError(
                .bufferLimitExceeded,
                "more than \(limits.maxBufferedBytes) unparsed bytes buffered; read replies before sending more")
        }
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Returns the next complete request's arguments, or `nil` if more bytes are needed.
    ///
    /// Empty inline lines and empty arrays (`*0`, `*-1`) are skipped, as Redis skips them.
    public mutating func next() throws(RESPError) -> [[UInt8]]? {
        while true {
            if expectedArguments == 0 {
                guard readIndex < buffer.count else { return nil }
                if buffer[readIndex] != UInt8(ascii: "*") {
                    guard let request = try nextInline() else { return nil }
                    if request.isEmpty { continue }
                    return request
                }
                guard let line = try headerLine(
                    tooLong: RESPError.protocolError(.multibulkCountTooLong, "too big mbulk count string"))
                else { return nil }
                guard let count = parseDecimal(buffer[(readIndex + 1)..<line.contentEnd]), count <= Int32.max else {
                    throw RESPError.protocolError(.invalidMultibulkLength, "invalid multibulk length")
                }
                guard count <= limits.maxArguments else {
                    throw RESPError.protocolError(
                        .tooManyArguments, "too many arguments (\(count), the limit is \(limits.maxArguments))")
                }
                requestBytes = line.next - readIndex
                consume(upTo: line.next)
                if count <= 0 { continue }
                expectedArguments = count
                // Reserve only what a few bytes of input justify; the array grows as arguments arrive.
                arguments.reserveCapacity(min(count, 64))
                pendingBulkLength = -1
            }
            while arguments.count < expectedArguments {
                if pendingBulkLength < 0 {
                    guard readIndex < buffer.count else { return nil }
                    let first = buffer[readIndex]
                    guard first == UInt8(ascii: "$") else {
                        throw RESPError.protocolError(.expectedDollar, "expected '$', got '\(printable(first))'")
                    }
                    guard let line = try headerLine(
                        tooLong: RESPError.protocolError(.bulkCountTooLong, "too big bulk count string"))
                    else { return nil }
                    guard let length = parseDecimal(buffer[(readIndex + 1)..<line.contentEnd]),
                          length >= 0, length <= limits.maxBulkLength
                    else {
                        throw RESPError.protocolError(.invalidBulkLength, "invalid bulk length")
                    }
                    let headerBytes = line.next - readIndex
                    guard requestBytes + headerBytes + length + 2 <= limits.maxRequestBytes else {
                        throw RESPError.protocolError(
                            .requestTooLarge, "request larger than \(limits.maxRequestBytes) bytes")
                    }
                    requestBytes += headerBytes
                    consume(upTo: line.next)
                    pendingBulkLength = length
                }
                let end = readIndex + pendingBulkLength
                guard buffer.count - end >= 2 else { return nil }
                guard buffer[end] == asciiCR, buffer[end + 1] == asciiLF else {
                    throw RESPError.protocolError(.expectedCRLF, "expected '\\r\\n' after a bulk string of declared length")
                }
                arguments.append(Array(buffer[readIndex..<end]))
                requestBytes += pendingBulkLength + 2
                consume(upTo: end + 2)
                pendingBulkLength = -1
            }
            let request = arguments
            arguments = []
            expectedArguments = 0
            requestBytes = 0
            return request
        }
    }

    // MARK: - Internals

    private struct Line {
        /// End of the line's content (excluding an optional `\r`).
        var contentEnd: Int
        /// Index just past the `\n`.
        var next: Int
    }

    private mutating func consume(upTo index: Int) {
        readIndex = index
        scanIndex = index
    }

    private mutating func compact() {
        if readIndex == buffer.count {
            if buffer.capacity > Self.retainedCapacity {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
        } else if readIndex >= Self.compactionThreshold, readIndex * 2 >= buffer.count {
            buffer.removeSubrange(0..<readIndex)
        } else {
            return
        }
        scanIndex -= readIndex
        readIndex = 0
    }

    private enum LineSearch {
        case found(Line)
        case incomplete
        case tooLong
    }

    /// Finds the end of the line starting at readIndex, looking at no more than `maxLength` bytes
    /// of content, and resuming the scan where the previous call stopped.
    private mutating func findLine(maxLength: Int) -> LineSearch {
        let limit = min(buffer.count, readIndex + maxLength + 1)
        var index = max(scanIndex, readIndex)
        while index < limit {
            if buffer[index] == asciiLF {
                let contentEnd = (index > readIndex && buffer[index - 1] == asciiCR) ? index - 1 : index
                return .found(Line(contentEnd: contentEnd, next: index + 1))
            }
            index += 1
        }
        scanIndex = index
        return limit - readIndex > maxLength ? .tooLong : .incomplete
    }

    private mutating func headerLine(tooLong error: RESPError) throws(RESPError) -> Line? {
        switch findLine(maxLength: maxHeaderLineLength) {
        case .found(let line): return line
        case .incomplete: return nil
        case .tooLong: throw error
        }
    }

    private mutating func nextInline() throws(RESPError) -> [[UInt8]]? {
        let line: Line
        switch findLine(maxLength: limits.maxInlineLength) {
        case .found(let found): line = found
        case .incomplete: return nil
        case .tooLong: throw RESPError.protocolError(.inlineTooLong, "too big inline request")
        }
        let arguments = try splitInlineArguments(buffer[readIndex..<line.contentEnd])
        consume(upTo: line.next)
        return arguments
    }

    private func printable(_ byte: UInt8) -> String {
        (32..<127).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }
}

/// Splits an inline command line into arguments exactly as Redis' `sdssplitargs`: blanks separate
/// arguments; `"..."` supports `\n \r \t \b \a \\ \"` and `\xHH`; `'...'` supports `\'`; a closing quote
/// must be followed by a blank or the end; a NUL byte ends the line.
func splitInlineArguments(_ line: ArraySlice<UInt8>) throws(RESPError) -> [[UInt8]] {
    @inline(__always) func isBlank(_ byte: UInt8) -> Bool {
        byte == 32 || (9...13).contains(byte)
    }
    @inline(__always) func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    let unbalanced = RESPError.protocolError(.unbalancedQuotes, "unbalanced quotes in request")
    // The C original reads a NUL-terminated string: treat the first NUL as the end.
    let end = line.firstIndex(of: 0) ?? line.endIndex
    func byte(_ index: Int) -> UInt8 { index < end ? line[index] : 0 }

    var result: [[UInt8]] = []
    var index = line.startIndex
    while true {
        while index < end, isBlank(line[index]) { index += 1 }
        guard index < end else { return result }
        var current: [UInt8] = []
        var inDoubleQuotes = false
        var inSingleQuotes = false
        var done = false
        while !done {
            let c = byte(index)
            if inDoubleQuotes {
                if c == UInt8(ascii: "\\"), byte(index + 1) == UInt8(ascii: "x"),
                   let high = hexValue(byte(index + 2)), let low = hexValue(byte(index + 3)) {
                    current.append(high << 4 | low)
                    index += 3
                } else if c == UInt8(ascii: "\\"), byte(index + 1) != 0 {
                    index += 1
                    switch byte(index) {
                    case UInt8(ascii: "n"): current.append(10)
                    case UInt8(ascii: "r"): current.append(13)
                    case UInt8(ascii: "t"): current.append(9)
                    case UInt8(ascii: "b"): current.append(8)
                    case UInt8(ascii: "a"): current.append(7)
                    case let other: current.append(other)
                    }
                } else if c == UInt8(ascii: "\"") {
                    let after = byte(index + 1)
                    guard after == 0 || isBlank(after) else { throw unbalanced }
                    done = true
                } else if c == 0 {
                    throw unbalanced
                } else {
                    current.append(c)
                }
            } else if inSingleQuotes {
                if c == UInt8(ascii: "\\"), byte(index + 1) == UInt8(ascii: "'") {
                    index += 1
                    current.append(UInt8(ascii: "'"))
                } else if c == UInt8(ascii: "'") {
                    let after = byte(index + 1)
                    guard after == 0 || isBlank(after) else { throw unbalanced }
                    done = true
                } else if c == 0 {
                    throw unbalanced
                } else {
                    current.append(c)
                }
            } else {
                switch c {
                case 32, 10, 13, 9, 0: done = true
                case UInt8(ascii: "\""): inDoubleQuotes = true
                case UInt8(ascii: "'"): inSingleQuotes = true
                default: current.append(c)
                }
            }
            if index < end { index += 1 }
        }
        result.append(current)
    }
}
