/// String commands beyond `GET`/`SET`: floats, bits and `LCS`, after their arguments were checked.
/// Every write among them rewrites the whole register (last writer wins across nodes).
public enum StringCommand: Sendable, Equatable {
    case incrByFloat(key: Bytes, delta: Double)
    case setBit(key: Bytes, offset: Int, value: Bool)
    case getBit(key: Bytes, offset: Int)
    /// `BITCOUNT key [start end [BYTE|BIT]]`.
    case bitCount(key: Bytes, range: BitRange?)
    /// `BITPOS key bit [start [end [BYTE|BIT]]]`.
    case bitPosition(key: Bytes, bit: Bool, start: Int64?, end: Int64?, bits: Bool)
    case bitOperation(BitOperation, destination: Bytes, keys: [Bytes])
    /// `BITFIELD` and `BITFIELD_RO` (GET only).
    case bitField(key: Bytes, operations: [BitFieldOperation])
    /// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]`.
    case longestCommonSubsequence(first: Bytes, second: Bytes, length: Bool, indices: Bool, minimumMatch: Int, withMatchLength: Bool)

    var isWrite: Bool {
        switch self {
        case .incrByFloat, .setBit, .bitOperation: true
        case .bitField(_, let operations): operations.contains { if case .get = $0 { false } else { true } }
        default: false
        }
    }
}

public struct BitRange: Sendable, Equatable {
    public var start: Int64
    public var end: Int64
    /// `BIT`: positions count bits, not bytes.
    public var bits: Bool
}

public enum BitOperation: String, Sendable, Equatable { case and, or, xor, not }

/// One `BITFIELD` sub-command; the overflow rule in force is carried by each write.
public enum BitFieldOperation: Sendable, Equatable {
    public enum Overflow: Sendable, Equatable { case wrap, saturate, fail }
    public struct Field: Sendable, Equatable {
        public var signed: Bool
        public var width: Int
        public var offset: Int
    }
    case get(Field)
    case set(Field, Int64, Overflow)
    case incrBy(Field, Int64, Overflow)
}

extension CommandParser {
    static let stringCommandNames: Set<String> = [
        "INCRBYFLOAT", "SETBIT", "GETBIT", "BITCOUNT", "BITPOS", "BITOP", "BITFIELD", "BITFIELD_RO", "LCS",
    ]

    /// Redis's limit on bit offsets: 512 MiB of bits.
    static let maxBitOffset: Int64 = 4 * 1024 * 1024 * 1024 - 1

    static func parseString(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> StringCommand {
        switch name {
        case "INCRBYFLOAT":
            let delta = try a.double(2, error: CommandError("ERR value is not a valid float"))
            guard delta.isFinite else { throw CommandError("ERR increment would produce NaN or Infinity") }
            return .incrByFloat(key: a[1], delta: delta)
        case "SETBIT":
            let bit = a.string(3)
            guard bit == "0" || bit == "1" else { throw CommandError("ERR bit is not an integer or out of range") }
            return .setBit(key: a[1], offset: try bitOffset(a, 2), value: bit == "1")
        case "GETBIT":
            return .getBit(key: a[1], offset: try bitOffset(a, 2))
        case "BITCOUNT":
            guard a.count == 2 || a.count == 4 || a.count == 5 else { throw CommandError.syntax }
            guard a.count > 2 else { return .bitCount(key: a[1], range: nil) }
            return .bitCount(key: a[1], range: BitRange(start: try a.integer(2), end: try a.integer(3), bits: try bitUnit(a, 4)))
        case "BITPOS":
            try a.arity(min: 3, max: 6)
            let bit = a.string(2)
            guard bit == "0" || bit == "1" else { throw CommandError("ERR The bit argument must be 1 or 0.") }
            return .bitPosition(key: a[1], bit: bit == "1", start: a.count > 3 ? try a.integer(3) : nil,
                                end: a.count > 4 ? try a.integer(4) : nil, bits: try bitUnit(a, 5))
        case "BITOP":
            try a.arity(min: 4)
            guard let operation = BitOperation(rawValue: a.string(1).lowercased()) else { throw CommandError.syntax }
            if operation == .not && a.count != 4 {
                throw CommandError("ERR BITOP NOT must be called with a single source key.")
            }
            return .bitOperation(operation, destination: a[2], keys: Array(a.args.dropFirst(3)))
        case "BITFIELD", "BITFIELD_RO":
            var operations: [BitFieldOperation] = []
            var overflow = BitFieldOperation.Overflow.wrap
            var i = 2
            while i < a.count {
                let sub = a.upper(i)
                switch sub {
                case "GET" where i + 2 < a.count:
                    operations.append(.get(try bitField(a, i + 1)))
                    i += 3
                case "SET" where i + 3 < a.count && name == "BITFIELD", "INCRBY" where i + 3 < a.count && name == "BITFIELD":
                    let field = try bitField(a, i + 1)
                    let value = try a.integer(i + 3)
                    operations.append(sub == "SET" ? .set(field, value, overflow) : .incrBy(field, value, overflow))
                    i += 4
                case "OVERFLOW" where i + 1 < a.count && name == "BITFIELD":
                    switch a.upper(i + 1) {
                    case "WRAP": overflow = .wrap
                    case "SAT": overflow = .saturate
                    case "FAIL": overflow = .fail
                    default: throw CommandError("ERR Invalid OVERFLOW type specified")
                    }
                    i += 2
                case "SET" where name == "BITFIELD_RO", "INCRBY" where name == "BITFIELD_RO", "OVERFLOW" where name == "BITFIELD_RO":
                    throw CommandError("ERR BITFIELD_RO only supports the GET subcommand")
                default:
                    throw CommandError.syntax
                }
            }
            return .bitField(key: a[1], operations: operations)
        case "LCS":
            var length = false, indices = false, withMatchLength = false
            var minimumMatch = 0
            var i = 3
            while i < a.count {
                switch a.upper(i) {
                case "LEN": length = true
                case "IDX": indices = true
                case "WITHMATCHLEN": withMatchLength = true
                case "MINMATCHLEN" where i + 1 < a.count:
                    minimumMatch = Int(max(0, min(try a.integer(i + 1), Int64(Int32.max))))
                    i += 1
                default: throw CommandError.syntax
                }
                i += 1
            }
            if length && indices { throw CommandError("ERR If you want both the length and indexes, please just use IDX.") }
            return .longestCommonSubsequence(first: a[1], second: a[2], length: length, indices: indices,
                                             minimumMatch: minimumMatch, withMatchLength: withMatchLength)
        default:
            throw CommandError("ERR internal error: '\(name.lowercased())' has no string parser")
        }
    }

    private static func bitOffset(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> Int {
        guard let offset = Int64(a.string(i)), offset >= 0, offset <= maxBitOffset else {
            throw CommandError("ERR bit offset is not an integer or out of range")
        }
        return Int(offset)
    }

    /// `BYTE` (the default) or `BIT` at argument `i`, if present.
    private static func bitUnit(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> Bool {
        guard i < a.count else { return false }
        switch a.upper(i) {
        case "BYTE": return false
        case "BIT": return true
        default: throw CommandError.syntax
        }
    }

    /// `i8`/`u16`... then an offset, `#n` meaning n times the width.
    private static func bitField(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> BitFieldOperation.Field {
        let type = a.string(i).lowercased()
        let invalidType = CommandError("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.")
        guard let kind = type.first, kind == "i" || kind == "u", let width = Int(type.dropFirst()), width >= 1,
              width <= (kind == "i" ? 64 : 63) else { throw invalidType }
        var text = a.string(i + 1)
        let multiplied = text.hasPrefix("#")
        if multiplied { text.removeFirst() }
        guard let raw = Int64(text), raw >= 0 else { throw CommandError("ERR bit offset is not an integer or out of range") }
        let (offset, overflow) = raw.multipliedReportingOverflow(by: multiplied ? Int64(width) : 1)
        guard !overflow, offset <= maxBitOffset else { throw CommandError("ERR bit offset is not an integer or out of range") }
        return .init(signed: kind == "i", width: width, offset: Int(offset))
    }
}
