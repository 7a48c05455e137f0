/// A reply from a Redis-protocol server, in RESP3's vocabulary.
///
/// RESP3-only shapes are downgraded for RESP2 clients by ``encode(protocol:into:)`` exactly as Redis
/// downgrades them, so the engine builds one reply regardless of the client's protocol.
public enum RESPReply: Sendable, Hashable {
    /// `+OK`. Carriage returns and line feeds in the text are sent as spaces.
    case simpleString(String)
    /// `-ERR message`; the text starts with the error code (`ERR`, `WRONGTYPE`, ...). Carriage returns
    /// and line feeds in the text are sent as spaces.
    case error(String)
    /// `:42`.
    case integer(Int64)
    /// `$3\r\nfoo`: binary-safe bytes.
    case bulkString([UInt8])
    /// A missing value: RESP3 `_`, RESP2 `$-1` (the null bulk string, as `GET` of a missing key).
    case null
    /// A missing aggregate: RESP3 `_`, RESP2 `*-1` (the null array, as `BLPOP` timing out).
    case nullArray
    /// `*n`: an ordered list.
    case array([RESPReply])
    /// RESP3 `%n`, key/value pairs in order; RESP2 gets a flat array `k1 v1 k2 v2 ...`.
    case map([MapEntry])
    /// RESP3 `~n`; RESP2 gets an array.
    case set([RESPReply])
    /// RESP3 `,1.5`; RESP2 gets a bulk string of the same text.
    case double(Double)
    /// RESP3 `#t`/`#f`; RESP2 gets the integer 1 or 0.
    case boolean(Bool)
    /// RESP3 `(12345678901234567890`: a decimal integer of any size; RESP2 gets a bulk string.
    case bigNumber(String)
    /// RESP3 `=15\r\ntxt:Some string`: text with a three-byte format (`txt`, `mkd`); RESP2 gets a bulk
    /// string of the text alone.
    case verbatimString(format: String, text: [UInt8])
    /// RESP3 `>n`, an out-of-band message; RESP2 gets an array.
    case push([RESPReply])

    /// One key/value pair of a ``RESPReply/map(_:)``.
    public struct MapEntry: Sendable, Hashable {
        /// The key.
        public var key: RESPReply
        /// The value.
        public var value: RESPReply
        /// Creates a pair.
        public init(key: RESPReply, value: RESPReply) {
            self.key = key
            self.value = value
        }
    }

    /// `+OK`, the most common reply.
    public static let ok = RESPReply.simpleString("OK")

    /// A bulk string holding the UTF-8 bytes of `text`.
    public static func bulkString(_ text: String) -> RESPReply { .bulkString(Array(text.utf8)) }

    /// Appends this reply's encoding for a client speaking `version` to `buffer`.
    public func encode(protocol version: RESPVersion, into buffer: inout [UInt8]) {
        switch self {
        case .simpleString(let text):
            buffer.append(UInt8(ascii: "+"))
            Self.appendLine(text, into: &buffer)
        case .error(let text):
            buffer.append(UInt8(ascii: "-"))
            Self.appendLine(text, into: &buffer)
        case .integer(let value):
            buffer.append(UInt8(ascii: ":"))
            buffer.appendDecimal(value)
            buffer.appendCRLF()
        case .bulkString(let bytes):
            Self.appendBulk(bytes, into: &buffer)
        case .null:
            if version == .resp3 { buffer.appendASCII("_\r\n") } else { buffer.appendASCII("$-1\r\n") }
        case .nullArray:
            if version == .resp3 { buffer.appendASCII("_\r\n") } else { buffer.appendASCII("*-1\r\n") }
        case .array(let elements):
            Self.appendAggregate(UInt8(ascii: "*"), elements, version, into: &buffer)
        case .set(let elements):
            Self.appendAggregate(version == .resp3 ? UInt8(ascii: "~") : UInt8(ascii: "*"), elements, version, into: &buffer)
        case .push(let elements):
            Self.appendAggregate(version == .resp3 ? UInt8(ascii: ">") : UInt8(ascii: "*"), elements, version, into: &buffer)
        case .map(let entries):
            if version == .resp3 {
                buffer.append(UInt8(ascii: "%"))
                buffer.appendDecimal(Int64(entries.count))
            } else {
                buffer.append(UInt8(ascii: "*"))
                buffer.appendDecimal(Int64(entries.count) * 2)
            }
            buffer.appendCRLF()
            for entry in entries {
                entry.key.encode(protocol: version, into: &buffer)
                entry.value.encode(protocol: version, into: &buffer)
            }
        case .double(let value):
            let text = formatDouble(value)
            if version == .resp3 {
                buffer.append(UInt8(ascii: ","))
                buffer.append(contentsOf: text.utf8)
                buffer.appendCRLF()
            } else {
                Self.appendBulk(text.utf8, into: &buffer)
            }
        case .boolean(let value):
            if version == .resp3 {
                buffer.appendASCII(value ? "#t\r\n" : "#f\r\n")
            } else {
                buffer.appendASCII(value ? ":1\r\n" : ":0\r\n")
            }
        case .bigNumber(let digits):
            if version == .resp3 {
                buffer.append(UInt8(ascii: "("))
                Self.appendLine(digits, into: &buffer)
            } else {
                Self.appendBulk(digits.utf8, into: &buffer)
            }
        case .verbatimString(let format, let text):
            if version == .resp3 {
                // The format is exactly three bytes on the wire; pad or cut what the caller gave.
                var formatBytes = Array(format.utf8.prefix(3))
                while formatBytes.count < 3 { formatBytes.append(UInt8(ascii: " ")) }
                buffer.append(UInt8(ascii: "="))
                buffer.appendDecimal(Int64(text.count + 4))
                buffer.appendCRLF()
                buffer.append(contentsOf: formatBytes)
                buffer.append(UInt8(ascii: ":"))
                buffer.append(contentsOf: text)
                buffer.appendCRLF()
            } else {
                Self.appendBulk(text, into: &buffer)
            }
        }
    }

    /// This reply's encoding for a client speaking `version`.
    public func encoded(protocol version: RESPVersion) -> [UInt8] {
        // The replies of most writes, shared instead of allocated for each (the same in both protocols).
        switch self {
        case .simpleString(let text) where text == "OK": return Self.okEncoded
        case .integer(let value) where value >= 0 && value < Self.smallIntegersEncoded.count:
            return Self.smallIntegersEncoded[Int(value)]
        default: break
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16)
        encode(protocol: version, into: &buffer)
        return buffer
    }

    private static let okEncoded: [UInt8] = Array("+OK\r\n".utf8)
    /// `:0` to `:15`: SADD's, HSET's and DEL's usual answers.
    private static let smallIntegersEncoded: [[UInt8]] = (0..<16).map { Array(":\($0)\r\n".utf8) }

    private static func appendLine(_ text: String, into buffer: inout [UInt8]) {
        // A line end inside a simple string or error would end it early and desynchronise the client.
        for byte in text.utf8 {
            buffer.append(byte == asciiCR || byte == asciiLF ? UInt8(ascii: " ") : byte)
        }
        buffer.appendCRLF()
    }

    private static func appendBulk(_ bytes: some Collection<UInt8>, into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "$"))
        buffer.appendDecimal(Int64(bytes.count))
        buffer.appendCRLF()
        buffer.append(contentsOf: bytes)
        buffer.appendCRLF()
    }

    private static func appendAggregate(
        _ marker: UInt8, _ elements: [RESPReply], _ version: RESPVersion, into buffer: inout [UInt8]
    ) {
        buffer.append(marker)
        buffer.appendDecimal(Int64(elements.count))
        buffer.appendCRLF()
        for element in elements {
            element.encode(protocol: version, into: &buffer)
        }
    }
}

/// Encodes client requests: arrays of bulk strings, the form every Redis server accepts.
public enum RESPRequestEncoder {
    /// Appends `arguments` as one request (`*n` then `n` bulk strings) to `buffer`.
    public static func encode(_ arguments: [[UInt8]], into buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "*"))
        buffer.appendDecimal(Int64(arguments.count))
        buffer.appendCRLF()
        for argument in arguments {
            buffer.append(UInt8(ascii: "$"))
            buffer.appendDecimal(Int64(argument.count))
            buffer.appendCRLF()
            buffer.append(contentsOf: argument)
            buffer.appendCRLF()
        }
    }

    /// Appends `arguments`, UTF-8 encoded, as one request to `buffer`.
    public static func encode(_ arguments: [String], into buffer: inout [UInt8]) {
        encode(arguments.map { Array($0.utf8) }, into: &buffer)
    }
}
