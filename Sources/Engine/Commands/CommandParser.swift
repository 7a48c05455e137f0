/// Turns the arguments of one request into a `Command`, or the error Redis would answer.
public enum CommandParser {
    /// Parses `args` (`args[0]` is the command name, matched case-insensitively).
    public static func parse(_ args: [Bytes]) -> Result<Command, CommandError> {
        guard let first = args.first else { return .failure(CommandError("ERR empty command")) }
        let name = String(decoding: first, as: UTF8.self).uppercased()
        var a = ArgumentCursor(name: name, args: args)
        do {
            return .success(try parse(name: name, &a))
        } catch {
            return .failure(error)
        }
    }

    private static func parse(name: String, _ a: inout ArgumentCursor) throws(CommandError) -> Command {
        switch name {
        case "PING":
            try a.arity(min: 1, max: 2)
            return .ping(a.count == 2 ? a[1] : nil)
        case "ECHO":
            try a.arity(exactly: 2)
            return .echo(a[1])
        case "HELLO":
            return try parseHello(&a)
        case "CLIENT":
            try a.arity(min: 2)
            switch a.upper(1) {
            case "SETNAME":
                try a.arity(exactly: 3)
                guard !a[2].contains(where: { $0 <= 32 || $0 >= 127 }) else {
                    throw CommandError("ERR Client names cannot contain spaces, newlines or special characters.")
                }
                return .clientSetName(a[2])
            case "GETNAME":
                try a.arity(exactly: 2)
                return .clientGetName
            case "ID":
                try a.arity(exactly: 2)
                return .clientID
            default:
                throw CommandError("ERR unknown subcommand '\(a.string(1))'. Try CLIENT SETNAME, GETNAME or ID.")
            }
        case "COMMAND":
            if a.count == 1 { return .command(.list) }
            switch a.upper(1) {
            case "COUNT": return .command(.count)
            case "DOCS": return .command(.docs)
            case "INFO": return .command(.info(Array(a.args.dropFirst(2))))
            default: throw CommandError("ERR unknown subcommand '\(a.string(1))'. Try COMMAND COUNT, DOCS or INFO.")
            }
        case "CONFIG":
            try a.arity(exactly: 3)
            guard a.upper(1) == "GET" else {
                throw CommandError("ERR crdtd is configured by its config file and flags; only CONFIG GET is answered")
            }
            return .configGet(a[2])
        case "QUIT":
            return .quit
        case "SHUTDOWN":
            try a.arity(min: 1, max: 2)
            return .shutdown
        case "INFO":
            return .info(sections: a.args.dropFirst().map { String(decoding: $0, as: UTF8.self).lowercased() })
        case "SELECT":
            try a.arity(exactly: 2)
            let db = try a.integer(1)
            guard db == 0 else { throw CommandError("ERR DB index is out of range (crdtd has one database, 0)") }
            return .select(0)

        case "INCR":
            try a.arity(exactly: 2)
            return .incrBy(key: a[1], delta: 1)
        case "DECR":
            try a.arity(exactly: 2)
            return .incrBy(key: a[1], delta: -1)
        case "INCRBY":
            try a.arity(exactly: 3)
            return .incrBy(key: a[1], delta: try a.integer(2))
        case "DECRBY":
            try a.arity(exactly: 3)
            let amount = try a.integer(2)
            guard amount != Int64.min else { throw CommandError("ERR decrement would overflow") }
            return .incrBy(key: a[1], delta: -amount)
        case "GET":
            try a.arity(exactly: 2)
            return .get(key: a[1])
        case "SET":
            try a.arity(min: 3)
            guard a.count == 3 else {
                throw CommandError("ERR crdtd's SET takes no options: NX/XX need coordination and EX/PX need wall-clock time")
            }
            return .set(key: a[1], value: a[2])

        case "SADD":
            try a.arity(min: 3)
            return .sAdd(key: a[1], members: Array(a.args.dropFirst(2)))
        case "SREM":
            try a.arity(min: 3)
            return .sRem(key: a[1], members: Array(a.args.dropFirst(2)))
        case "SMEMBERS":
            try a.arity(exactly: 2)
            return .sMembers(key: a[1])
        case "SISMEMBER":
            try a.arity(exactly: 3)
            return .sIsMember(key: a[1], member: a[2])
        case "SCARD":
            try a.arity(exactly: 2)
            return .sCard(key: a[1])

        case "HSET", "HMSET":
            try a.arity(min: 4)
            guard a.count % 2 == 0 else { throw CommandError.wrongArity(name) }
            var pairs: [FieldValue] = []
            pairs.reserveCapacity((a.count - 2) / 2)
            var i = 2
            while i < a.count {
                pairs.append(FieldValue(field: a[i], value: a[i + 1]))
                i += 2
            }
            return .hSet(key: a[1], pairs: pairs)
        case "HGET":
            try a.arity(exactly: 3)
            return .hGet(key: a[1], field: a[2])
        case "HDEL":
            try a.arity(min: 3)
            return .hDel(key: a[1], fields: Array(a.args.dropFirst(2)))
        case "HGETALL":
            try a.arity(exactly: 2)
            return .hGetAll(key: a[1])
        case "HLEN":
            try a.arity(exactly: 2)
            return .hLen(key: a[1])

        case "CRDT.BINCRBY", "CRDT.BDECRBY":
            try a.arity(exactly: 3)
            let amount = try a.integer(2)
            guard amount > 0 else { throw CommandError("ERR bounded counter amounts must be positive") }
            return name == "CRDT.BINCRBY" ? .boundedIncrBy(key: a[1], amount: amount) : .boundedDecrBy(key: a[1], amount: amount)
        case "CRDT.BGET":
            try a.arity(exactly: 2)
            return .boundedGet(key: a[1])
        case "CRDT.BRIGHTS":
            try a.arity(exactly: 2)
            return .boundedRights(key: a[1])
        case "CRDT.BTRANSFER":
            try a.arity(exactly: 4)
            let amount = try a.integer(3)
            guard amount > 0 else { throw CommandError("ERR bounded counter amounts must be positive") }
            return .boundedTransfer(key: a[1], toNode: a.string(2), amount: amount)

        case "DEL", "UNLINK":
            try a.arity(min: 2)
            return .del(keys: Array(a.args.dropFirst()))
        case "EXISTS":
            try a.arity(min: 2)
            return .exists(keys: Array(a.args.dropFirst()))
        case "TYPE":
            try a.arity(exactly: 2)
            return .type(key: a[1])
        case "KEYS":
            try a.arity(exactly: 2)
            return .keys(pattern: a[1])
        case "SCAN":
            return try parseScan(&a)
        case "DBSIZE":
            try a.arity(exactly: 1)
            return .dbSize

        case "CRDT.DIGEST":
            try a.arity(min: 1, max: 2)
            return .digest(key: a.count == 2 ? a[1] : nil)
        case "CRDT.CLOCK":
            try a.arity(exactly: 1)
            return .clock
        case "CRDT.PEERS":
            try a.arity(exactly: 1)
            return .peers
        case "CRDT.PARTITION":
            try a.arity(min: 2)
            return .partition(nodes: a.args.dropFirst().map { String(decoding: $0, as: UTF8.self) })
        case "CRDT.HEAL":
            try a.arity(exactly: 1)
            return .heal
        default:
            throw CommandError.unknown(a[0], args: a.args.dropFirst())
        }
    }

    private static func parseHello(_ a: inout ArgumentCursor) throws(CommandError) -> Command {
        var version: Int?
        var clientName: Bytes?
        var i = 1
        if a.count > 1 {
            guard let v = Int(a.string(1)), v >= 1 else {
                throw CommandError("ERR Protocol version is not an integer or out of range")
            }
            guard v == 2 || v == 3 else { throw CommandError("NOPROTO unsupported protocol version") }
            version = v
            i = 2
        }
        while i < a.count {
            switch a.upper(i) {
            case "AUTH":
                throw CommandError("ERR AUTH is not supported: bind the client port to a trusted interface")
            case "SETNAME" where i + 1 < a.count:
                clientName = a[i + 1]
                i += 2
            default:
                throw CommandError("ERR Syntax error in HELLO option '\(a.string(i))'")
            }
        }
        return .hello(protocolVersion: version, clientName: clientName)
    }

    private static func parseScan(_ a: inout ArgumentCursor) throws(CommandError) -> Command {
        try a.arity(min: 2)
        guard let cursor = UInt64(a.string(1)) else { throw CommandError("ERR invalid cursor") }
        var match: Bytes?
        var count = 10
        var type: String?
        var i = 2
        while i < a.count {
            guard i + 1 < a.count else { throw CommandError.syntax }
            switch a.upper(i) {
            case "MATCH": match = a[i + 1]
            case "COUNT":
                let n = try a.integer(i + 1)
                guard n >= 1 else { throw CommandError.syntax }
                count = Int(min(n, 1_000_000))
            case "TYPE": type = a.string(i + 1).lowercased()
            default: throw CommandError.syntax
            }
            i += 2
        }
        return .scan(cursor: cursor, match: match, count: count, type: type)
    }
}

/// Read access to a request's arguments with Redis's argument errors.
private struct ArgumentCursor {
    let name: String
    let args: [Bytes]

    var count: Int { args.count }
    subscript(i: Int) -> Bytes { args[i] }
    func string(_ i: Int) -> String { String(decoding: args[i], as: UTF8.self) }
    func upper(_ i: Int) -> String { string(i).uppercased() }

    func arity(exactly n: Int) throws(CommandError) {
        guard args.count == n else { throw .wrongArity(name) }
    }
    func arity(min: Int, max: Int = .max) throws(CommandError) {
        guard args.count >= min && args.count <= max else { throw .wrongArity(name) }
    }
    /// A signed 64-bit decimal exactly as Redis accepts it: no spaces, no '+', no leading zeros.
    func integer(_ i: Int) throws(CommandError) -> Int64 {
        guard let value = Int64(string(i)), Array(String(value).utf8) == args[i] else { throw .notAnInteger }
        return value
    }
}
