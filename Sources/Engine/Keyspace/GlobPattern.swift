/// Redis-style glob matching for `KEYS` and `SCAN MATCH`: `*`, `?`, `[abc]`, `[^a-z]` and `\` escapes.
///
/// Matching backtracks only to the most recent `*`, so it runs in O(pattern × subject) time in the worst
/// case instead of the exponential time of naive recursion (a client controls the pattern).
public struct GlobPattern: Sendable {
    private let pattern: [UInt8]

    public init(_ pattern: [UInt8]) { self.pattern = pattern }

    /// Whether `subject` matches the whole pattern.
    public func matches(_ subject: [UInt8]) -> Bool {
        var p = 0, s = 0
        var starP = -1, starS = 0
        while s < subject.count {
            if p < pattern.count {
                switch pattern[p] {
                case UInt8(ascii: "*"):
                    while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
                    if p == pattern.count { return true }
                    starP = p
                    starS = s
                    continue
                case UInt8(ascii: "?"):
                    p += 1
                    s += 1
                    continue
                default:
                    if let next = matchOne(at: p, subject[s]) {
                        p = next
                        s += 1
                        continue
                    }
                }
            }
            guard starP >= 0 else { return false }
            starS += 1
            s = starS
            p = starP
        }
        while p < pattern.count && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }

    /// Matches one literal, escape or class at `p` against `byte`; returns the index after it, or nil.
    private func matchOne(at p: Int, _ byte: UInt8) -> Int? {
        switch pattern[p] {
        case UInt8(ascii: "\\") where p + 1 < pattern.count:
            return pattern[p + 1] == byte ? p + 2 : nil
        case UInt8(ascii: "["):
            var i = p + 1
            let negate = i < pattern.count && pattern[i] == UInt8(ascii: "^")
            if negate { i += 1 }
            var matched = false
            while i < pattern.count && pattern[i] != UInt8(ascii: "]") {
                if pattern[i] == UInt8(ascii: "\\") && i + 1 < pattern.count {
                    if pattern[i + 1] == byte { matched = true }
                    i += 2
                } else if i + 2 < pattern.count && pattern[i + 1] == UInt8(ascii: "-") && pattern[i + 2] != UInt8(ascii: "]") {
                    let (lo, hi) = (min(pattern[i], pattern[i + 2]), max(pattern[i], pattern[i + 2]))
                    if byte >= lo && byte <= hi { matched = true }
                    i += 3
                } else {
                    if pattern[i] == byte { matched = true }
                    i += 1
                }
            }
            // An unterminated class matches as far as it goes, as in Redis.
            let end = i < pattern.count ? i + 1 : i
            return matched != negate ? end : nil
        default:
            return pattern[p] == byte ? p + 1 : nil
        }
    }
}
