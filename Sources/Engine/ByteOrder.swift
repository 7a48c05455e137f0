import Glibc

/// Byte order of member, field and key names, compared with `memcmp`: the generic
/// `lexicographicallyPrecedes` goes through an iterator a byte at a time, which made sorting a
/// million members for `SMEMBERS` a large part of the engine's time on that command (docs/benchmarks.md,
/// "Large replies").
enum ByteOrder {
    @inline(__always)
    static func precedes(_ lhs: Bytes, _ rhs: Bytes) -> Bool {
        lhs.withUnsafeBufferPointer { a in
            rhs.withUnsafeBufferPointer { b in
                let common = min(a.count, b.count)
                let order = common == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, common)
                return order != 0 ? order < 0 : a.count < b.count
            }
        }
    }

    /// `names` in byte order, in one array (no intermediate `Set`).
    static func sorted(_ names: some Collection<Bytes>) -> [Bytes] {
        var array = Array(names)
        array.sort(by: precedes)
        return array
    }
}
