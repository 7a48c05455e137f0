/// Sorted-set commands over several keys, random reads and multi-key pops (`ZUNIONSTORE`,
/// `ZINTER`, `ZDIFF`, `ZRANGESTORE`, `ZRANDMEMBER`, `ZMPOP`, ...) after their arguments were checked.
public enum SortedSetCommand: Sendable, Equatable {
    public enum Combination: String, Sendable, Equatable { case union, intersection, difference }
    public enum Aggregate: Sendable, Equatable { case sum, min, max }

    /// `ZUNION`/`ZINTER`/`ZDIFF` and their `STORE` forms when `destination` is given. Sets count as
    /// sorted sets with every score 1, as in Redis.
    case combine(Combination, keys: [Bytes], weights: [Double]?, aggregate: Aggregate, withScores: Bool, destination: Bytes?)
    /// `ZINTERCARD numkeys key ... [LIMIT n]` (0: no limit).
    case intersectionCount(keys: [Bytes], limit: Int)
    /// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`.
    case rangeStore(destination: Bytes, source: Bytes, ZRangeQuery)
    /// `ZRANDMEMBER key [count [WITHSCORES]]`.
    case randomMember(key: Bytes, count: Int64?, withScores: Bool)
    /// `ZMPOP numkeys key ... MIN|MAX [COUNT n]`.
    case multiPop(keys: [Bytes], highest: Bool, count: Int)

    var isWrite: Bool {
        switch self {
        case .combine(_, _, _, _, _, let destination): destination != nil
        case .rangeStore, .multiPop: true
        case .intersectionCount, .randomMember: false
        }
    }
}

extension CommandParser {
    static let sortedSetCommandNames: Set<String> = [
        "ZUNION", "ZINTER", "ZDIFF", "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "ZINTERCARD", "ZRANGESTORE",
        "ZRANDMEMBER", "ZMPOP",
    ]

    static func parseSortedSet(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> SortedSetCommand {
        switch name {
        case "ZUNION", "ZINTER", "ZDIFF", "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE":
            let stores = name.hasSuffix("STORE")
            let combination: SortedSetCommand.Combination =
                name.hasPrefix("ZUNION") ? .union : name.hasPrefix("ZINTER") ? .intersection : .difference
            let first = stores ? 2 : 1
            let keys = try numberedKeys(a, at: first)
            var weights: [Double]?
            var aggregate = SortedSetCommand.Aggregate.sum
            var withScores = false
            var i = first + 1 + keys.count
            while i < a.count {
                switch a.upper(i) {
                case "WEIGHTS" where combination != .difference:
                    guard i + keys.count < a.count else { throw CommandError.syntax }
                    var parsed: [Double] = []
                    for j in 1...keys.count {
                        parsed.append(try a.double(i + j, error: CommandError("ERR weight value is not a float")))
                    }
                    weights = parsed
                    i += keys.count
                case "AGGREGATE" where combination != .difference && i + 1 < a.count:
                    switch a.upper(i + 1) {
                    case "SUM": aggregate = .sum
                    case "MIN": aggregate = .min
                    case "MAX": aggregate = .max
                    default: throw CommandError.syntax
                    }
                    i += 1
                case "WITHSCORES" where !stores:
                    withScores = true
                default:
                    throw CommandError.syntax
                }
                i += 1
            }
            return .combine(combination, keys: keys, weights: weights, aggregate: aggregate, withScores: withScores,
                            destination: stores ? a[1] : nil)
        case "ZINTERCARD":
            let keys = try numberedKeys(a, at: 1)
            var limit = 0
            let rest = 2 + keys.count
            if rest < a.count {
                guard a.upper(rest) == "LIMIT", rest + 2 == a.count else { throw CommandError.syntax }
                let n = try a.integer(rest + 1)
                guard n >= 0 else { throw CommandError("ERR LIMIT can't be negative") }
                limit = Int(min(n, Int64(Int.max)))
            }
            return .intersectionCount(keys: keys, limit: limit)
        case "ZRANGESTORE":
            try a.arity(min: 5)
            var range = ArgumentCursor(name: a.name, args: [Array("ZRANGE".utf8)] + Array(a.args.dropFirst(2)))
            let query = try parseZRange("ZRANGE", &range)
            guard !query.withScores else { throw CommandError.syntax }
            return .rangeStore(destination: a[1], source: a[2], query)
        case "ZRANDMEMBER":
            try a.arity(min: 2, max: 4)
            guard a.count < 4 || a.upper(3) == "WITHSCORES" else { throw CommandError.syntax }
            return .randomMember(key: a[1], count: a.count >= 3 ? try a.integer(2) : nil, withScores: a.count == 4)
        case "ZMPOP":
            let keys = try numberedKeys(a, at: 1)
            var i = 2 + keys.count
            guard i < a.count else { throw CommandError.syntax }
            let highest: Bool
            switch a.upper(i) {
            case "MIN": highest = false
            case "MAX": highest = true
            default: throw CommandError.syntax
            }
            i += 1
            var count = 1
            if i < a.count {
                guard a.upper(i) == "COUNT", i + 2 == a.count else { throw CommandError.syntax }
                let n = try a.integer(i + 1)
                guard n > 0 else { throw CommandError("ERR count should be greater than 0") }
                count = Int(min(n, 1_000_000_000))
            }
            return .multiPop(keys: keys, highest: highest, count: count)
        default:
            throw CommandError("ERR internal error: '\(name.lowercased())' has no sorted-set parser")
        }
    }

    /// `numkeys key ...` with `numkeys` at argument `i`.
    static func numberedKeys(_ a: ArgumentCursor, at i: Int) throws(CommandError) -> [Bytes] {
        let count = try a.integer(i)
        guard count > 0 else { throw CommandError("ERR at least 1 input key is needed for '\(a.name.lowercased())' command") }
        guard count <= Int64(a.count - i - 1) else { throw CommandError.syntax }
        return Array(a.args[(i + 1)...(i + Int(count))])
    }
}
