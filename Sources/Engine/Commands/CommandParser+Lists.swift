/// Parsing of the list commands.
extension CommandParser {
    static let listCommandNames: Set<String> = [
        "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LPOP", "RPOP", "LRANGE", "LLEN", "LINDEX", "LREM", "LSET",
        "LINSERT", "LPOS", "LTRIM", "LMOVE", "RPOPLPUSH", "LMPOP",
    ]

    static func parseList(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> ListCommand {
        switch name {
        case "LPUSH", "RPUSH", "LPUSHX", "RPUSHX":
            return .push(key: a[1], values: Array(a.args.dropFirst(2)), head: name.hasPrefix("L"), onlyIfExists: name.hasSuffix("X"))
        case "LPOP", "RPOP":
            try a.arity(min: 2, max: 3)
            var count: Int?
            if a.count == 3 {
                let n = try a.integer(2)
                guard n >= 0 else { throw CommandError("ERR value is out of range, must be positive") }
                count = Int(min(n, 1_000_000_000))
            }
            return .pop(key: a[1], count: count, head: name == "LPOP")
        case "LRANGE":
            return .range(key: a[1], start: try a.integer(2), stop: try a.integer(3))
        case "LLEN":
            return .length(key: a[1])
        case "LINDEX":
            return .index(key: a[1], index: try a.integer(2))
        case "LREM":
            return .remove(key: a[1], count: try a.integer(2), value: a[3])
        case "LSET":
            return .set(key: a[1], index: try a.integer(2), value: a[3])
        case "LINSERT":
            let place = a.upper(2)
            guard place == "BEFORE" || place == "AFTER" else { throw CommandError.syntax }
            return .insert(key: a[1], before: place == "BEFORE", pivot: a[3], value: a[4])
        case "LPOS":
            var rank: Int64 = 1
            var count: Int64?
            var maxLength: Int64 = 0
            var i = 3
            while i < a.count {
                guard i + 1 < a.count else { throw CommandError.syntax }
                let value = try a.integer(i + 1)
                switch a.upper(i) {
                case "RANK":
                    guard value != 0 else {
                        throw CommandError("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
                    }
                    guard value != Int64.min else { throw CommandError("ERR value is out of range") }
                    rank = value
                case "COUNT":
                    guard value >= 0 else { throw CommandError("ERR COUNT can't be negative") }
                    count = value
                case "MAXLEN":
                    guard value >= 0 else { throw CommandError("ERR MAXLEN can't be negative") }
                    maxLength = value
                default: throw CommandError.syntax
                }
                i += 2
            }
            return .position(key: a[1], value: a[2], rank: rank, count: count, maxLength: maxLength)
        case "LTRIM":
            return .trim(key: a[1], start: try a.integer(2), stop: try a.integer(3))
        case "LMOVE":
            return .move(source: a[1], destination: a[2], fromHead: try end(a, 3), toHead: try end(a, 4))
        case "RPOPLPUSH":
            return .move(source: a[1], destination: a[2], fromHead: false, toHead: true)
        case "LMPOP":
            let keyCount = try a.integer(1)
            guard keyCount > 0 else { throw CommandError("ERR numkeys should be greater than 0") }
            guard keyCount <= Int64(a.count - 3) else { throw CommandError.syntax }
            let keys = Array(a.args[2..<(2 + Int(keyCount))])
            var i = 2 + Int(keyCount)
            let head = try end(a, i)
            i += 1
            var count = 1
            if i < a.count {
                guard a.upper(i) == "COUNT", i + 2 == a.count else { throw CommandError.syntax }
                let n = try a.integer(i + 1)
                guard n > 0 else { throw CommandError("ERR count should be greater than 0") }
                count = Int(min(n, 1_000_000_000))
            }
            return .multiPop(keys: keys, head: head, count: count)
        default:
            throw CommandError("ERR internal error: '\(name.lowercased())' has no list parser")
        }
    }

    /// `LEFT` (the head) or `RIGHT`.
    private static func end(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> Bool {
        switch a.upper(i) {
        case "LEFT": return true
        case "RIGHT": return false
        default: throw CommandError.syntax
        }
    }
}
