/// Keyspace and collection commands added with issue 16's second half (`RENAME`, `COPY`,
/// `RANDOMKEY`, `TOUCH`, `SPOP`, `SMOVE`, `SINTERCARD`, `HRANDFIELD`), after their arguments were checked.
public enum KeyCommand: Sendable, Equatable {
    /// `RENAME`: a copy under the new name then an observed remove of the old one, not atomic across nodes.
    case rename(source: Bytes, destination: Bytes)
    /// `COPY source destination [REPLACE]`.
    case copy(source: Bytes, destination: Bytes, replace: Bool)
    case randomKey
    case touch(keys: [Bytes])
    /// `SPOP key [count]`.
    case setPop(key: Bytes, count: Int?)
    case setMove(source: Bytes, destination: Bytes, member: Bytes)
    /// `SINTERCARD numkeys key ... [LIMIT n]` (0: no limit).
    case setIntersectionCount(keys: [Bytes], limit: Int)
    /// `HRANDFIELD key [count [WITHVALUES]]`.
    case hashRandomField(key: Bytes, count: Int64?, withValues: Bool)

    var isWrite: Bool {
        switch self {
        case .rename, .copy, .setPop, .setMove: true
        case .randomKey, .touch, .setIntersectionCount, .hashRandomField: false
        }
    }
}

extension CommandParser {
    static let keyCommandNames: Set<String> = ["RENAME", "COPY", "RANDOMKEY", "TOUCH", "SPOP", "SMOVE", "SINTERCARD", "HRANDFIELD"]

    static func parseKey(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> KeyCommand {
        switch name {
        case "RENAME":
            return .rename(source: a[1], destination: a[2])
        case "COPY":
            var replace = false
            var i = 3
            while i < a.count {
                switch a.upper(i) {
                case "REPLACE": replace = true
                case "DB" where i + 1 < a.count:
                    guard a.string(i + 1) == "0" else { throw CommandError("ERR DB index is out of range (crdtd has one database, 0)") }
                    i += 1
                default: throw CommandError.syntax
                }
                i += 1
            }
            return .copy(source: a[1], destination: a[2], replace: replace)
        case "RANDOMKEY":
            return .randomKey
        case "TOUCH":
            return .touch(keys: Array(a.args.dropFirst()))
        case "SPOP":
            try a.arity(min: 2, max: 3)
            var count: Int?
            if a.count == 3 {
                let n = try a.integer(2)
                guard n >= 0 else { throw CommandError("ERR value is out of range, must be positive") }
                count = Int(min(n, 1_000_000_000))
            }
            return .setPop(key: a[1], count: count)
        case "SMOVE":
            return .setMove(source: a[1], destination: a[2], member: a[3])
        case "SINTERCARD":
            let keys = try numberedKeys(a, at: 1)
            var limit = 0
            let rest = 2 + keys.count
            if rest < a.count {
                guard a.upper(rest) == "LIMIT", rest + 2 == a.count else { throw CommandError.syntax }
                let n = try a.integer(rest + 1)
                guard n >= 0 else { throw CommandError("ERR LIMIT can't be negative") }
                limit = Int(min(n, Int64(Int.max)))
            }
            return .setIntersectionCount(keys: keys, limit: limit)
        case "HRANDFIELD":
            try a.arity(min: 2, max: 4)
            guard a.count < 4 || a.upper(3) == "WITHVALUES" else { throw CommandError.syntax }
            return .hashRandomField(key: a[1], count: a.count >= 3 ? try a.integer(2) : nil, withValues: a.count == 4)
        default:
            throw CommandError("ERR internal error: '\(name.lowercased())' has no keyspace parser")
        }
    }
}
