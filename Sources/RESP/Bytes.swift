// Byte-level helpers shared by the parsers and the encoder.

let asciiCR: UInt8 = 13
let asciiLF: UInt8 = 10

/// The longest `*count` or `$length` header line worth waiting for: a sign, 19 digits and `\r`.
/// Anything longer is an attack or garbage, so the parser fails instead of buffering it.
let maxHeaderLineLength = 22

/// Parses a decimal integer exactly as Redis' `string2ll` does: an optional `-`, then digits with no
/// leading zero (except `0` itself), no spaces, no `+`, and no overflow.
func parseDecimal(_ bytes: ArraySlice<UInt8>, allowPlus: Bool = false) -> Int? {
    var index = bytes.startIndex
    guard index < bytes.endIndex, bytes.count <= 20 else { return nil }
    var negative = false
    if bytes[index] == UInt8(ascii: "-") {
        negative = true
        index += 1
    } else if allowPlus && bytes[index] == UInt8(ascii: "+") {
        index += 1
    }
    guard index < bytes.endIndex else { return nil }
    if bytes[index] == UInt8(ascii: "0") {
        return (index + 1 == bytes.endIndex && !negative) ? 0 : nil
    }
    var value = 0
    while index < bytes.endIndex {
        let digit = bytes[index] &- UInt8(ascii: "0")
        guard digit <= 9 else { return nil }
        let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
        // Accumulate negatively so Int.min parses.
        let (next, overflow2) = negative
            ? shifted.subtractingReportingOverflow(Int(digit))
            : shifted.addingReportingOverflow(Int(digit))
        guard !overflow1, !overflow2 else { return nil }
        value = next
        index += 1
    }
    return value
}

extension Array where Element == UInt8 {
    mutating func appendASCII(_ string: StaticString) {
        string.withUTF8Buffer { append(contentsOf: $0) }
    }

    mutating func appendDecimal(_ value: Int64) {
        let start = endIndex
        var magnitude = value.magnitude
        repeat {
            append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        if value < 0 { append(UInt8(ascii: "-")) }
        // Digits were produced least significant first.
        self[start...].reverse()
    }

    mutating func appendCRLF() {
        append(asciiCR)
        append(asciiLF)
    }
}

/// Formats a double as Redis 7.2 does (shortest round-trip digits; `inf`, `-inf`, `nan`), with
/// integral values printed without a fraction (`3`, not `3.0`).
func formatDouble(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value < 0 ? "-inf" : "inf" }
    if value == value.rounded(), value.magnitude < 1e17 {
        if value == 0 { return value.sign == .minus ? "-0" : "0" }
        return String(Int64(value))
    }
    return value.description
}
