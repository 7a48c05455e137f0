import CRDT
import RESP

/// Floats, bits and `LCS` on string values. Writes rewrite the whole register (`rewriteString`), so
/// two concurrent ones on two nodes keep one of them (the later Lamport write), never both.
extension Engine {
    mutating func runString(_ command: StringCommand, for client: ClientID, into output: inout EngineOutput) -> RESPReply {
        switch command {
        case .incrByFloat(let key, let delta):
            // A read and a register write, not a float counter: summing floats in different orders on
            // different nodes would not converge bit for bit, so two concurrent ones keep one result.
            var current = 0.0
            switch stringValue(key) {
            case .otherType: return Self.wrongType
            case .absent: break
            case .value(let value):
                guard let number = try? CommandParser.parseDouble(value, error: .syntax), number.isFinite else {
                    return .error("ERR value is not a valid float")
                }
                current = number
            }
            let result = current + delta
            guard result.isFinite else { return .error("ERR increment would produce NaN or Infinity") }
            let text = Array(Self.formatScore(result).utf8)
            let reply = rewriteString(key, into: &output) { _ in text }
            if case .error = reply { return reply }
            return .bulkString(text)
        case .setBit(let key, let offset, let value):
            var previous = false
            let reply = rewriteString(key, into: &output) { bytes in
                var bytes = bytes
                let index = offset / 8
                if bytes.count <= index { bytes += Array(repeating: 0, count: index + 1 - bytes.count) }
                let mask = UInt8(0x80) >> UInt8(offset % 8)
                previous = bytes[index] & mask != 0
                if value { bytes[index] |= mask } else { bytes[index] &= ~mask }
                return bytes
            }
            if case .error = reply { return reply }
            return .integer(previous ? 1 : 0)
        case .getBit(let key, let offset):
            switch stringValue(key) {
            case .otherType: return Self.wrongType
            case .absent: return .integer(0)
            case .value(let bytes): return .integer(Self.bit(bytes, offset) ? 1 : 0)
            }
        case .bitCount(let key, let range):
            switch stringValue(key) {
            case .otherType: return Self.wrongType
            case .absent: return .integer(0)
            case .value(let bytes):
                guard let bits = Self.bitSpan(bytes.count, start: range?.start, end: range?.end, bits: range?.bits ?? false) else {
                    return .integer(0)
                }
                return .integer(Int64(Self.countSetBits(bytes, in: bits)))
            }
        case .bitPosition(let key, let bit, let start, let end, let bits):
            switch stringValue(key) {
            case .otherType: return Self.wrongType
            case .absent: return .integer(bit ? -1 : 0)
            case .value(let bytes):
                guard let span = Self.bitSpan(bytes.count, start: start, end: end, bits: bits) else { return .integer(-1) }
                if let found = span.first(where: { Self.bit(bytes, $0) == bit }) { return .integer(Int64(found)) }
                // Looking for a clear bit with no end given: the string continues with zeros.
                if !bit && end == nil { return .integer(Int64(span.upperBound)) }
                return .integer(-1)
            }
        case .bitOperation(let operation, let destination, let keys):
            var sources: [Bytes] = []
            for key in keys {
                switch stringValue(key) {
                case .otherType: return Self.wrongType
                case .absent: sources.append([])
                case .value(let value): sources.append(value)
                }
            }
            let length = sources.map(\.count).max() ?? 0
            var result = [UInt8](repeating: 0, count: length)
            for i in 0..<length {
                let bytes = sources.map { i < $0.count ? $0[i] : 0 }
                switch operation {
                case .and: result[i] = bytes.reduce(0xff, &)
                case .or: result[i] = bytes.reduce(0, |)
                case .xor: result[i] = bytes.reduce(0, ^)
                case .not: result[i] = ~bytes[0]
                }
            }
            if result.isEmpty {
                if live(destination) != nil { _ = run(.del(keys: [destination]), for: client, into: &output) }
                return .integer(0)
            }
            let reply = setString(destination, result, expiry: nil, into: &output)
            if case .error = reply { return reply }
            return .integer(Int64(length))
        case .bitField(let key, let operations):
            return bitField(key, operations, into: &output)
        case .longestCommonSubsequence(let first, let second, let length, let indices, let minimumMatch, let withMatchLength):
            var texts: [Bytes] = []
            for key in [first, second] {
                switch stringValue(key) {
                case .otherType: return .error("ERR The specified keys must contain string values")
                case .absent: texts.append([])
                case .value(let value): texts.append(value)
                }
            }
            return Self.longestCommonSubsequence(texts[0], texts[1], length: length, indices: indices,
                                                 minimumMatch: minimumMatch, withMatchLength: withMatchLength)
        }
    }

    /// The set bits among the positions `span`: whole bytes by population count, the ragged ends bit by bit.
    static func countSetBits(_ bytes: Bytes, in span: Range<Int>) -> Int {
        var count = 0
        var position = span.lowerBound
        while position < span.upperBound {
            if position % 8 == 0 && position + 8 <= span.upperBound {
                count += bytes[position / 8].nonzeroBitCount
                position += 8
            } else {
                if bit(bytes, position) { count += 1 }
                position += 1
            }
        }
        return count
    }

    /// Bit `offset` of `bytes`, the most significant bit of byte 0 first (as Redis numbers them).
    static func bit(_ bytes: Bytes, _ offset: Int) -> Bool {
        let index = offset / 8
        return index < bytes.count && bytes[index] & (UInt8(0x80) >> UInt8(offset % 8)) != 0
    }

    /// The bit positions `start...end` select (bytes or bits, negative from the end, clamped), as
    /// `BITCOUNT` and `BITPOS` read them; nil when empty.
    static func bitSpan(_ byteCount: Int, start: Int64?, end: Int64?, bits: Bool) -> Range<Int>? {
        let total = Int64(bits ? byteCount * 8 : byteCount)
        var first = start ?? 0
        var last = end ?? total - 1
        if first < 0 { first += total }
        if last < 0 { last += total }
        first = max(0, first)
        last = max(0, last)
        last = min(last, total - 1)
        guard first <= last, total > 0 else { return nil }
        return bits ? Int(first)..<Int(last + 1) : Int(first * 8)..<Int((last + 1) * 8)
    }

    /// `BITFIELD`: the sub-commands in order on one copy of the string, then one register write if
    /// any of them wrote.
    mutating func bitField(_ key: Bytes, _ operations: [BitFieldOperation], into output: inout EngineOutput) -> RESPReply {
        var bytes: Bytes
        switch stringValue(key) {
        case .otherType: return Self.wrongType
        case .absent: bytes = []
        case .value(let value): bytes = value
        }
        var replies: [RESPReply] = []
        var wrote = false
        for operation in operations {
            switch operation {
            case .get(let field):
                replies.append(.integer(Self.readField(bytes, field)))
            case .set(let field, let value, let overflow):
                let old = Self.readField(bytes, field)
                guard let stored = Self.fit(Int128(value), field, overflow) else { replies.append(.null); continue }
                Self.writeField(&bytes, field, stored)
                wrote = true
                replies.append(.integer(old))
            case .incrBy(let field, let delta, let overflow):
                let old = Self.readField(bytes, field)
                guard let stored = Self.fit(Int128(old) + Int128(delta), field, overflow) else { replies.append(.null); continue }
                Self.writeField(&bytes, field, stored)
                wrote = true
                replies.append(.integer(stored))
            }
        }
        if wrote {
            let written = bytes
            let reply = rewriteString(key, into: &output) { _ in written }
            if case .error = reply { return reply }
        }
        return .array(replies)
    }

    /// `value` in the field's range under the overflow rule, or nil (`FAIL`).
    static func fit(_ value: Int128, _ field: BitFieldOperation.Field, _ overflow: BitFieldOperation.Overflow) -> Int64? {
        let width = Int128(field.width)
        let low: Int128 = field.signed ? -(Int128(1) << (width - 1)) : 0
        let high: Int128 = field.signed ? (Int128(1) << (width - 1)) - 1 : (Int128(1) << width) - 1
        if value >= low && value <= high { return Int64(value) }
        switch overflow {
        case .fail: return nil
        case .saturate: return Int64(value < low ? low : high)
        case .wrap:
            let modulus = Int128(1) << width
            var wrapped = ((value % modulus) + modulus) % modulus
            if field.signed && wrapped > high { wrapped -= modulus }
            return Int64(wrapped)
        }
    }

    static func readField(_ bytes: Bytes, _ field: BitFieldOperation.Field) -> Int64 {
        var value: UInt64 = 0
        for i in 0..<field.width { value = value << 1 | (bit(bytes, field.offset + i) ? 1 : 0) }
        if field.signed && field.width < 64 && value & (1 << UInt64(field.width - 1)) != 0 {
            value |= ~0 << UInt64(field.width)   // sign extension
        }
        return Int64(bitPattern: value)
    }

    static func writeField(_ bytes: inout Bytes, _ field: BitFieldOperation.Field, _ value: Int64) {
        let lastByte = (field.offset + field.width - 1) / 8
        if bytes.count <= lastByte { bytes += Array(repeating: 0, count: lastByte + 1 - bytes.count) }
        let pattern = UInt64(bitPattern: value)
        for i in 0..<field.width {
            let set = pattern >> UInt64(field.width - 1 - i) & 1 == 1
            let offset = field.offset + i
            let mask = UInt8(0x80) >> UInt8(offset % 8)
            if set { bytes[offset / 8] |= mask } else { bytes[offset / 8] &= ~mask }
        }
    }

    /// `LCS`, by Redis's dynamic programme and its walk back from the ends, so `IDX` lists the
    /// matches in the order Redis does (last first).
    static func longestCommonSubsequence(_ a: Bytes, _ b: Bytes, length onlyLength: Bool, indices: Bool,
                                         minimumMatch: Int, withMatchLength: Bool) -> RESPReply {
        let (n, m) = (a.count, b.count)
        // The table costs 4 bytes per pair of positions: refused beyond 128 MiB, which an engine step
        // should not allocate (Redis's own bound is its 512 MiB proto-max-bulk-len).
        let cells = (n + 1).multipliedReportingOverflow(by: m + 1)
        guard !cells.overflow, cells.partialValue <= 32 << 20 else {
            return .error("ERR Insufficient memory, transient memory for LCS exceeds 128 MiB; compare shorter strings")
        }
        var table = [UInt32](repeating: 0, count: cells.partialValue)
        func at(_ i: Int, _ j: Int) -> Int { Int(table[j * (n + 1) + i]) }
        for i in 0...n {
            for j in 0...m where i > 0 && j > 0 {
                table[j * (n + 1) + i] = UInt32(a[i - 1] == b[j - 1] ? at(i - 1, j - 1) + 1 : max(at(i - 1, j), at(i, j - 1)))
            }
        }
        let total = at(n, m)
        if onlyLength { return .integer(Int64(total)) }
        var result = [UInt8](repeating: 0, count: total)
        var matches: [RESPReply] = []
        var (i, j, index) = (n, m, total)
        var aStart = n, aEnd = 0, bStart = 0, bEnd = 0
        var emit = false
        while i > 0 && j > 0 {
            if a[i - 1] == b[j - 1] {
                result[index - 1] = a[i - 1]
                if aStart == n {
                    aStart = i - 1; aEnd = i - 1; bStart = j - 1; bEnd = j - 1
                } else if aStart == i && bStart == j {
                    aStart -= 1; bStart -= 1
                } else {
                    emit = true
                }
                if aStart == 0 || bStart == 0 { emit = true }
                index -= 1; i -= 1; j -= 1
            } else {
                if at(i - 1, j) > at(i, j - 1) { i -= 1 } else { j -= 1 }
                if aStart != n { emit = true }
            }
            if emit {
                let matchLength = aEnd - aStart + 1
                if minimumMatch == 0 || matchLength >= minimumMatch {
                    var match: [RESPReply] = [.array([.integer(Int64(aStart)), .integer(Int64(aEnd))]),
                                              .array([.integer(Int64(bStart)), .integer(Int64(bEnd))])]
                    if withMatchLength { match.append(.integer(Int64(matchLength))) }
                    matches.append(.array(match))
                }
                aStart = n
                emit = false
            }
        }
        guard indices else { return .bulkString(result) }
        return .map([.init(key: .bulkString("matches"), value: .array(matches)),
                     .init(key: .bulkString("len"), value: .integer(Int64(total)))])
    }
}
