/// A key's bytes as a dictionary key that hashes them in one call: `[UInt8]`'s own `Hashable` feeds
/// the hasher one byte at a time (about 20 instructions a byte), which for the several dictionaries a
/// write touches was the largest single cost of a write. Equality is the bytes'.
struct KeyName: Hashable {
    var bytes: Bytes

    init(_ bytes: Bytes) { self.bytes = bytes }

    @inline(__always)
    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    @inline(__always)
    static func == (lhs: KeyName, rhs: KeyName) -> Bool { lhs.bytes == rhs.bytes }
}
