import CRDT

/// Turns the arguments of one request into a `Command`, or the error Redis would answer.
public enum CommandParser {
    /// Parses `args` (`args[0]` is the command name, matched case-insensitively).
    public static func parse(_ args: [Bytes]) -> Result<Command, CommandError> {
        guard let first = args.first else { return .failure(CommandError("ERR empty command")) }
        let name = String(decoding: first, as: UTF8.self).uppercased()
        let lower = name.lowercased()
        guard let spec = specsByName[lower] else {
            if let reason = refusals[lower] { return .failure(CommandError("ERR \(reason)")) }
            return .failure(.unknown(first, args: args.dropFirst()))
        }
        guard spec.accepts(argumentCount: args.count) else { return .failure(.wrongArity(name)) }
        var a = ArgumentCursor(name: name, args: args)
        do {
            return .success(try parse(name: name, &a))
        } catch {
            return .failure(error)
        }
    }

    /// Parses a request whose name is in `table` and whose arity `table` accepted.
    private static func parse(name: String, _ a: inout ArgumentCursor) throws(CommandError) -> Command {
        switch name {
        // MARK: Connection and server
        case "PING":
            try a.arity(min: 1, max: 2)
            return .ping(a.count == 2 ? a[1] : nil)
        case "ECHO":
            return .echo(a[1])
        case "HELLO":
            return try parseHello(&a)
        case "CLIENT":
            return try parseClient(&a)
        case "COMMAND":
            if a.count == 1 { return .command(.all) }
            switch a.upper(1) {
            case "COUNT": return .command(.count)
            case "DOCS": return .command(.docs)
            case "INFO": return .command(.info(Array(a.args.dropFirst(2))))
            case "LIST":
                guard a.count == 2 else { throw CommandError("ERR COMMAND LIST filters are not supported; use COMMAND LIST") }
                return .command(.list)
            case "GETKEYS":
                try a.arity(min: 3)
                return .command(.getKeys(Array(a.args.dropFirst(2))))
            default: throw CommandError("ERR unknown subcommand '\(a.string(1))'. Try COMMAND COUNT, DOCS, INFO, LIST or GETKEYS.")
            }
        case "CONFIG":
            switch a.upper(1) {
            case "GET":
                try a.arity(min: 3)
                return .configGet(patterns: Array(a.args.dropFirst(2)))
            case "RESETSTAT":
                try a.arity(exactly: 2)
                return .configResetStat
            case "SET":
                try a.arity(min: 4)
                guard a.count % 2 == 0 else { throw CommandError.wrongArity("config|set") }
                var flags: KeyspaceEventFlags?
                for index in stride(from: 2, to: a.count, by: 2) {
                    guard a.string(index).lowercased() == "notify-keyspace-events" else {
                        throw CommandError("ERR CONFIG SET of '\(a.string(index))' is refused: crdtd is configured by its config file "
                            + "and flags at start (see docs/operations.md); only notify-keyspace-events changes at run time")
                    }
                    guard let parsed = KeyspaceEventFlags(parsing: a[index + 1]) else {
                        throw CommandError("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - "
                            + "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
                    }
                    flags = parsed
                }
                return .configSetKeyspaceEvents(flags ?? [])
            default:
                throw CommandError("ERR crdtd is configured by its config file and flags at start (see docs/operations.md); "
                    + "only CONFIG GET, CONFIG SET notify-keyspace-events and CONFIG RESETSTAT are answered")
            }
        case "QUIT":
            return .quit
        case "SUBSCRIBE":
            return .pubSub(.subscribe(Array(a.args.dropFirst())))
        case "UNSUBSCRIBE":
            return .pubSub(.unsubscribe(Array(a.args.dropFirst())))
        case "PSUBSCRIBE":
            return .pubSub(.pSubscribe(Array(a.args.dropFirst())))
        case "PUNSUBSCRIBE":
            return .pubSub(.pUnsubscribe(Array(a.args.dropFirst())))
        case "PUBLISH":
            return .pubSub(.publish(channel: a[1], message: a[2]))
        case "SSUBSCRIBE":
            return .pubSub(.sSubscribe(Array(a.args.dropFirst())))
        case "SUNSUBSCRIBE":
            return .pubSub(.sUnsubscribe(Array(a.args.dropFirst())))
        case "SPUBLISH":
            return .pubSub(.sPublish(channel: a[1], message: a[2]))
        case "PUBSUB":
            switch a.upper(1) {
            case "CHANNELS":
                try a.arity(min: 2, max: 3)
                return .pubSub(.channels(pattern: a.count == 3 ? a[2] : nil))
            case "NUMSUB":
                return .pubSub(.numSub(Array(a.args.dropFirst(2))))
            case "NUMPAT":
                try a.arity(exactly: 2)
                return .pubSub(.numPat)
            case "SHARDCHANNELS":
                try a.arity(min: 2, max: 3)
                return .pubSub(.shardChannels(pattern: a.count == 3 ? a[2] : nil))
            case "SHARDNUMSUB":
                return .pubSub(.shardNumSub(Array(a.args.dropFirst(2))))
            default:
                throw CommandError("ERR unknown subcommand '\(a.string(1))'. Try PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS or SHARDNUMSUB.")
            }
        case "WAIT":
            let replicas = try a.integer(1)
            let timeout = try a.integer(2)
            guard timeout >= 0 else { throw CommandError("ERR timeout is negative") }
            return .wait(replicas: replicas, timeoutMilliseconds: timeout)
        case "MULTI":
            return .multi
        case "EXEC":
            return .exec
        case "DISCARD":
            return .discard
        case "UNWATCH":
            // Nothing is ever watched (WATCH is refused), so there is nothing to forget.
            return .unwatch
        case "SHUTDOWN":
            try a.arity(min: 1, max: 2)
            return .shutdown
        case "INFO":
            return .info(sections: a.args.dropFirst().map { String(decoding: $0, as: UTF8.self).lowercased() })
        case "SELECT":
            let db = try a.integer(1)
            guard db == 0 else { throw CommandError("ERR DB index is out of range (crdtd has one database, 0)") }
            return .select(0)
        case "TIME":
            return .time
        case "OBJECT":
            try a.arity(exactly: 3)
            switch a.upper(1) {
            case "ENCODING": return .objectEncoding(key: a[2])
            case "REFCOUNT": return .objectRefCount(key: a[2])
            case "IDLETIME": return .objectIdleTime(key: a[2])
            default: throw CommandError("ERR unknown subcommand '\(a.string(1))'. Try OBJECT ENCODING, REFCOUNT or IDLETIME.")
            }
        case "MEMORY":
            guard a.upper(1) == "USAGE" else { return .server(try parseMemoryMore(&a)) }
            // `SAMPLES n` is accepted and ignored: the size is computed exactly.
            guard a.count == 3 || (a.count == 5 && a.upper(3) == "SAMPLES") else { throw CommandError.syntax }
            if a.count == 5 { _ = try a.integer(4) }
            return .memoryUsage(key: a[2])

        // MARK: Counters and strings
        case "INCR":
            return .incrBy(key: a[1], delta: 1)
        case "DECR":
            return .incrBy(key: a[1], delta: -1)
        case "INCRBY":
            return .incrBy(key: a[1], delta: try a.integer(2))
        case "DECRBY":
            let amount = try a.integer(2)
            guard amount != Int64.min else { throw CommandError("ERR decrement would overflow") }
            return .incrBy(key: a[1], delta: -amount)
        case "GET":
            return .get(key: a[1])
        case "SET":
            return try parseSet(&a)
        case "SETEX", "PSETEX":
            let amount = try a.integer(2)
            guard amount > 0 else { throw CommandError("ERR invalid expire time in '\(name.lowercased())' command") }
            let milliseconds = amount.multipliedReportingOverflow(by: name == "SETEX" ? 1000 : 1)
            guard !milliseconds.overflow else { throw CommandError("ERR invalid expire time in '\(name.lowercased())' command") }
            return .set(key: a[1], value: a[3], expiry: .after(milliseconds: milliseconds.partialValue))
        case "GETEX":
            var expiry: ExpiryChange?
            if a.count > 2 {
                if a.count == 3 && a.upper(2) == "PERSIST" {
                    expiry = .persist
                } else {
                    guard a.count == 4 else { throw CommandError.syntax }
                    expiry = try expiryOption(a, at: 2, command: "getex")
                }
            }
            return .getEx(key: a[1], expiry: expiry)
        case "MGET":
            return .mGet(keys: Array(a.args.dropFirst()))
        case "MSET":
            guard a.count % 2 == 1 else { throw CommandError.wrongArity(name) }
            return .mSet(pairs: pairs(a.args.dropFirst()))
        case "GETDEL":
            return .getDel(key: a[1])
        case "STRLEN":
            return .strLen(key: a[1])
        case "APPEND":
            return .append(key: a[1], value: a[2])
        case "GETRANGE", "SUBSTR":
            return .getRange(key: a[1], start: try a.integer(2), end: try a.integer(3))
        case "SETRANGE":
            let offset = try a.integer(2)
            guard offset >= 0 else { throw CommandError("ERR offset is out of range") }
            guard offset + Int64(a[3].count) <= maxStringLength else {
                throw CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
            }
            return .setRange(key: a[1], offset: Int(offset), value: a[3])

        // MARK: Sets
        case "SADD":
            return .sAdd(key: a[1], members: Array(a.args.dropFirst(2)))
        case "SREM":
            return .sRem(key: a[1], members: Array(a.args.dropFirst(2)))
        case "SMEMBERS":
            return .sMembers(key: a[1])
        case "SISMEMBER":
            return .sIsMember(key: a[1], member: a[2])
        case "SMISMEMBER":
            return .sMIsMember(key: a[1], members: Array(a.args.dropFirst(2)))
        case "SCARD":
            return .sCard(key: a[1])
        case "SRANDMEMBER":
            try a.arity(min: 2, max: 3)
            return .sRandMember(key: a[1], count: a.count == 3 ? try a.integer(2) : nil)
        case "SINTER", "SUNION", "SDIFF":
            return .setAlgebra(SetOperation(rawValue: name.lowercased())!, keys: Array(a.args.dropFirst()), destination: nil)
        case "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE":
            let operation = SetOperation(rawValue: String(name.lowercased().dropLast("store".count)))!
            return .setAlgebra(operation, keys: Array(a.args.dropFirst(2)), destination: a[1])
        case "SSCAN":
            let options = try parseScanOptions(&a, from: 3, allowType: false)
            return .sScan(key: a[1], cursor: try cursor(a, 2), match: options.match, count: options.count)

        // MARK: Hashes
        case "HSET", "HMSET":
            guard a.count % 2 == 0 else { throw CommandError.wrongArity(name) }
            return .hSet(key: a[1], pairs: pairs(a.args.dropFirst(2)), answersOK: name == "HMSET")
        case "HGET":
            return .hGet(key: a[1], field: a[2])
        case "HMGET":
            return .hMGet(key: a[1], fields: Array(a.args.dropFirst(2)))
        case "HDEL":
            return .hDel(key: a[1], fields: Array(a.args.dropFirst(2)))
        case "HGETALL":
            return .hGetAll(key: a[1])
        case "HLEN":
            return .hLen(key: a[1])
        case "HKEYS":
            return .hKeys(key: a[1])
        case "HVALS":
            return .hVals(key: a[1])
        case "HEXISTS":
            return .hExists(key: a[1], field: a[2])
        case "HSTRLEN":
            return .hStrLen(key: a[1], field: a[2])
        case "HSCAN":
            var novalues = false
            var args = a.args
            if args.count > 3, String(decoding: args[args.count - 1], as: UTF8.self).uppercased() == "NOVALUES" {
                novalues = true
                args.removeLast()
            }
            var trimmed = ArgumentCursor(name: a.name, args: args)
            let options = try parseScanOptions(&trimmed, from: 3, allowType: false)
            return .hScan(key: a[1], cursor: try cursor(a, 2), match: options.match, count: options.count, novalues: novalues)

        case "HINCRBY":
            return .hIncrBy(key: a[1], field: a[2], delta: try a.integer(3))
        case "HINCRBYFLOAT":
            let amount = try a.double(3, error: CommandError("ERR value is not a valid float"))
            guard amount.isFinite else { throw CommandError("ERR value is NaN or Infinity") }
            return .hIncrByFloat(key: a[1], field: a[2], delta: amount)

        // MARK: HyperLogLog
        case "PFADD":
            return .pfAdd(key: a[1], elements: Array(a.args.dropFirst(2)))
        case "PFCOUNT":
            return .pfCount(keys: Array(a.args.dropFirst()))
        case "PFMERGE":
            return .pfMerge(destination: a[1], sources: Array(a.args.dropFirst(2)))

        // MARK: Sorted sets
        case "ZADD":
            return try parseZAdd(&a)
        case "ZINCRBY":
            let amount = try a.double(2, error: CommandError("ERR value is not a valid float"))
            return .zIncrBy(key: a[1], delta: amount, member: a[3])
        case "ZSCORE", "ZMSCORE":
            return .zScore(key: a[1], members: Array(a.args.dropFirst(2)), multiple: name == "ZMSCORE")
        case "ZCARD":
            return .zCard(key: a[1])
        case "ZCOUNT":
            return .zCount(key: a[1], .score(min: try scoreBound(a, 2), max: try scoreBound(a, 3)))
        case "ZLEXCOUNT":
            return .zCount(key: a[1], .lex(min: try lexLimit(a, 2), max: try lexLimit(a, 3)))
        case "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZREVRANGE":
            return .zRange(key: a[1], try parseZRange(name, &a))
        case "ZRANK", "ZREVRANK":
            try a.arity(min: 3, max: 4)
            guard a.count == 3 || a.upper(3) == "WITHSCORE" else { throw CommandError.syntax }
            return .zRank(key: a[1], member: a[2], reverse: name == "ZREVRANK", withScore: a.count == 4)
        case "ZREM":
            return .zRem(key: a[1], members: Array(a.args.dropFirst(2)))
        case "ZREMRANGEBYRANK":
            return .zRemRange(key: a[1], .rank(start: try a.integer(2), stop: try a.integer(3)))
        case "ZREMRANGEBYSCORE":
            return .zRemRange(key: a[1], .score(min: try scoreBound(a, 2), max: try scoreBound(a, 3)))
        case "ZREMRANGEBYLEX":
            return .zRemRange(key: a[1], .lex(min: try lexLimit(a, 2), max: try lexLimit(a, 3)))
        case "ZPOPMIN", "ZPOPMAX":
            try a.arity(min: 2, max: 3)
            var count: Int?
            if a.count == 3 {
                let n = try a.integer(2)
                guard n >= 0 else { throw CommandError("ERR value is out of range, must be positive") }
                count = Int(min(n, 1_000_000))
            }
            return .zPop(key: a[1], count: count, highest: name == "ZPOPMAX")
        case "ZSCAN":
            let options = try parseScanOptions(&a, from: 3, allowType: false)
            return .zScan(key: a[1], cursor: try cursor(a, 2), match: options.match, count: options.count)

        // MARK: Bounded counters
        case "CRDT.BINCRBY", "CRDT.BDECRBY":
            let amount = try a.integer(2)
            guard amount > 0 else { throw CommandError("ERR bounded counter amounts must be positive") }
            return name == "CRDT.BINCRBY" ? .boundedIncrBy(key: a[1], amount: amount) : .boundedDecrBy(key: a[1], amount: amount)
        case "CRDT.BGET":
            return .boundedGet(key: a[1])
        case "CRDT.BRIGHTS":
            return .boundedRights(key: a[1])
        case "CRDT.BTRANSFER":
            let amount = try a.integer(3)
            guard amount > 0 else { throw CommandError("ERR bounded counter amounts must be positive") }
            return .boundedTransfer(key: a[1], toNode: a.string(2), amount: amount)

        // MARK: Keyspace
        case "DEL", "UNLINK":
            return .del(keys: Array(a.args.dropFirst()))
        case "EXISTS":
            return .exists(keys: Array(a.args.dropFirst()))
        case "TYPE":
            return .type(key: a[1])
        case "KEYS":
            return .keys(pattern: a[1])
        case "SCAN":
            let options = try parseScanOptions(&a, from: 2, allowType: true)
            return .scan(cursor: try cursor(a, 1), match: options.match, count: options.count, type: options.type)
        case "DBSIZE":
            return .dbSize
        case "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT":
            try a.arity(min: 3, max: 4)
            let amount = try a.integer(2)
            let scale: Int64 = name.hasPrefix("P") ? 1 : 1000
            let (milliseconds, overflow) = amount.multipliedReportingOverflow(by: scale)
            guard !overflow else { throw CommandError("ERR invalid expire time in '\(name.lowercased())' command") }
            var condition = ExpiryCondition.always
            if a.count == 4 {
                switch a.upper(3) {
                case "NX": condition = .onlyWithoutDeadline
                case "XX": condition = .onlyWithDeadline
                case "GT": condition = .onlyLater
                case "LT": condition = .onlyEarlier
                default: throw CommandError("ERR Unsupported option \(a.string(3))")
                }
            }
            let change: ExpiryChange = name.hasSuffix("AT") ? .at(milliseconds: milliseconds) : .after(milliseconds: milliseconds)
            return .expire(key: a[1], change, condition: condition)
        case "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME":
            return .timeToLive(key: a[1], milliseconds: name.hasPrefix("P"), absolute: name.hasSuffix("EXPIRETIME"))
        case "PERSIST":
            return .persist(key: a[1])
        case "FLUSHDB", "FLUSHALL":
            try a.arity(min: 1, max: 2)
            // ASYNC and SYNC differ only in when Redis frees memory; crdtd issues the removes at once either way.
            guard a.count == 1 || ["ASYNC", "SYNC"].contains(a.upper(1)) else { throw CommandError.syntax }
            return .flush

        // MARK: Administration
        case "CRDT.DIGEST":
            try a.arity(min: 1, max: 2)
            return .digest(key: a.count == 2 ? a[1] : nil)
        case "CRDT.CLOCK":
            return .clock
        case "CRDT.PEERS":
            return .peers
        case "CRDT.PARTITION":
            // CRDT.PARTITION [INBOUND | OUTBOUND] node ...
            var nodes = a.args.dropFirst().map { String(decoding: $0, as: UTF8.self) }
            var direction = PartitionDirection.both
            switch nodes.first?.uppercased() {
            case "INBOUND": direction = .inbound
            case "OUTBOUND": direction = .outbound
            default: break
            }
            if direction != .both { nodes.removeFirst() }
            return .partition(nodes: nodes, direction: direction)
        case "CRDT.HEAL":
            return .heal
        case "CRDT.STABILITY":
            return .stability
        case "CRDT.FORGET":
            try a.arity(min: 2, max: 2)
            return .forget(node: String(decoding: a[1], as: UTF8.self))
        default:
            // The families kept in files of their own, looked up last so the hot commands above pay nothing.
            if listCommandNames.contains(name) { return .list(try parseList(name, &a)) }
            if geoCommandNames.contains(name) { return .geo(try parseGeo(name, &a)) }
            if sortedSetCommandNames.contains(name) { return .sortedSet(try parseSortedSet(name, &a)) }
            if name == "SORT" || name == "SORT_RO" { return .sort(try parseSort(name, &a)) }
            if stringCommandNames.contains(name) { return .string(try parseString(name, &a)) }
            if keyCommandNames.contains(name) { return .key(try parseKey(name, &a)) }
            if serverCommandNames.contains(name) { return .server(try parseServer(name, &a)) }
            // A name in `table` without a parser is a bug in this file, not the client's fault.
            throw CommandError("ERR internal error: '\(name.lowercased())' is in the command table but has no parser")
        }
    }

    /// `SET key value [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`; `NX`, `XX` and `GET` are refused.
    private static func parseSet(_ a: inout ArgumentCursor) throws(CommandError) -> Command {
        var expiry: ExpiryChange?
        var i = 3
        while i < a.count {
            switch a.upper(i) {
            case "NX", "XX":
                throw CommandError("ERR SET \(a.upper(i)) needs coordination between nodes (agreement on whether the key exists "
                    + "everywhere), which crdtd does not do; use SET without it, or CRDT.BINCRBY for a claim that must be unique")
            case "GET":
                throw CommandError("ERR SET GET needs coordination between nodes (an atomic read and replace across nodes); "
                    + "use GET then SET, which may interleave with other nodes' writes")
            case "KEEPTTL" where expiry == nil:
                expiry = .keep
                i += 1
            case "EX", "PX", "EXAT", "PXAT":
                guard expiry == nil, i + 1 < a.count else { throw CommandError.syntax }
                expiry = try expiryOption(a, at: i, command: "set")
                i += 2
            default:
                throw CommandError.syntax
            }
        }
        return .set(key: a[1], value: a[2], expiry: expiry)
    }

    /// `EX s`, `PX ms`, `EXAT s`, `PXAT ms` at argument `i`, as milliseconds.
    private static func expiryOption(_ a: ArgumentCursor, at i: Int, command: String) throws(CommandError) -> ExpiryChange {
        let amount = try a.integer(i + 1)
        let invalid = CommandError("ERR invalid expire time in '\(command)' command")
        guard amount > 0 else { throw invalid }
        let option = a.upper(i)
        let (milliseconds, overflow) = amount.multipliedReportingOverflow(by: option.hasPrefix("P") ? 1 : 1000)
        guard !overflow else { throw invalid }
        switch option {
        case "EX", "PX": return .after(milliseconds: milliseconds)
        case "EXAT", "PXAT": return .at(milliseconds: milliseconds)
        default: throw CommandError.syntax
        }
    }

    /// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
    private static func parseZAdd(_ a: inout ArgumentCursor) throws(CommandError) -> Command {
        var options = ZAddOptions()
        var i = 2
        scan: while i < a.count {
            switch a.upper(i) {
            case "NX", "XX":
                throw CommandError("ERR ZADD \(a.upper(i)) needs coordination between nodes (agreement on whether the member "
                    + "exists everywhere), which crdtd does not do; use ZADD without it, with GT or LT to only raise or lower a score")
            case "GT": options.onlyGreater = true
            case "LT": options.onlyLess = true
            case "CH": options.countChanged = true
            case "INCR": options.increment = true
            default: break scan
            }
            i += 1
        }
        if options.onlyGreater && options.onlyLess {
            throw CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
        }
        let rest = a.count - i
        guard rest > 0, rest % 2 == 0 else { throw CommandError.syntax }
        if options.increment && rest != 2 { throw CommandError("ERR INCR option supports a single increment-element pair") }
        var pairs: [ScorePair] = []
        while i < a.count {
            pairs.append(ScorePair(score: try a.double(i, error: CommandError("ERR value is not a valid float")), member: a[i + 1]))
            i += 2
        }
        return .zAdd(key: a[1], pairs: pairs, options: options)
    }

    /// `ZRANGE key min max [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]` and the older
    /// `ZRANGEBYSCORE`, `ZREVRANGEBYSCORE`, `ZRANGEBYLEX`, `ZREVRANGEBYLEX`, `ZREVRANGE`.
    static func parseZRange(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> ZRangeQuery {
        enum Kind { case rank, score, lex }
        var kind: Kind
        var reverse = false
        switch name {
        case "ZRANGEBYSCORE": kind = .score
        case "ZREVRANGEBYSCORE": kind = .score; reverse = true
        case "ZRANGEBYLEX": kind = .lex
        case "ZREVRANGEBYLEX": kind = .lex; reverse = true
        case "ZREVRANGE": kind = .rank; reverse = true
        default: kind = .rank
        }
        var limit: (offset: Int64, count: Int64)?
        var withScores = false
        var i = 4
        while i < a.count {
            switch a.upper(i) {
            case "BYSCORE" where name == "ZRANGE": kind = .score
            case "BYLEX" where name == "ZRANGE": kind = .lex
            case "REV" where name == "ZRANGE": reverse = true
            case "WITHSCORES" where !name.hasSuffix("BYLEX"): withScores = true
            case "LIMIT" where name != "ZREVRANGE" && i + 2 < a.count:
                limit = (try a.integer(i + 1), try a.integer(i + 2))
                i += 2
            default: throw CommandError.syntax
            }
            i += 1
        }
        if limit != nil && kind == .rank {
            throw CommandError("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        }
        if withScores && kind == .lex { throw CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX") }
        // `ZRANGE ... REV` and the `ZREV*` forms take the higher end first.
        let (low, high) = reverse && kind != .rank ? (3, 2) : (2, 3)
        let by: ZRangeQuery.By
        switch kind {
        case .rank: by = .rank(start: try a.integer(2), stop: try a.integer(3))
        case .score: by = .score(min: try scoreBound(a, low), max: try scoreBound(a, high))
        case .lex: by = .lex(min: try lexLimit(a, low), max: try lexLimit(a, high))
        }
        return ZRangeQuery(by: by, reverse: reverse, limit: limit, withScores: withScores)
    }

    /// `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
    private static func scoreBound(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> ScoreBound {
        let error = CommandError("ERR min or max is not a float")
        if a[i].first == UInt8(ascii: "(") {
            let value = try parseDouble(Array(a[i].dropFirst()), error: error)
            return .exclusive(value)
        }
        return .inclusive(try parseDouble(a[i], error: error))
    }

    /// `-`, `+`, `[member` (inclusive), `(member` (exclusive).
    private static func lexLimit(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> ZRangeQuery.LexLimit {
        let bytes = a[i]
        switch bytes.first {
        case UInt8(ascii: "-") where bytes.count == 1: return .minusInfinity
        case UInt8(ascii: "+") where bytes.count == 1: return .plusInfinity
        case UInt8(ascii: "["): return .inclusive(Array(bytes.dropFirst()))
        case UInt8(ascii: "("): return .exclusive(Array(bytes.dropFirst()))
        default: throw CommandError("ERR min or max not valid string range item")
        }
    }

    /// A float as Redis reads one: decimal or exponent notation, `inf`/`+inf`/`-inf`, never NaN.
    static func parseDouble(_ bytes: Bytes, error: CommandError) throws(CommandError) -> Double {
        let text = String(decoding: bytes, as: UTF8.self)
        switch text.lowercased() {
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: break
        }
        guard !text.isEmpty, text.first != " ", text.last != " ", let value = Double(text), !value.isNaN else { throw error }
        return value
    }

    /// The longest string value a command may build (Redis's `proto-max-bulk-len` default, 512 MiB).
    static let maxStringLength: Int64 = 512 << 20

    private static func pairs(_ arguments: ArraySlice<Bytes>) -> [FieldValue] {
        var pairs: [FieldValue] = []
        pairs.reserveCapacity(arguments.count / 2)
        var i = arguments.startIndex
        while i + 1 < arguments.endIndex {
            pairs.append(FieldValue(field: arguments[i], value: arguments[i + 1]))
            i += 2
        }
        return pairs
    }

    private static func parseClient(_ a: inout ArgumentCursor) throws(CommandError) -> Command {
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
        case "INFO":
            try a.arity(exactly: 2)
            return .clientInfo
        case "LIST":
            if a.count == 2 { return .clientList(ids: nil) }
            switch a.upper(2) {
            case "ID":
                try a.arity(min: 4)
                var ids: [UInt64] = []
                for i in 3..<a.count {
                    guard let id = UInt64(a.string(i)) else { throw CommandError("ERR Invalid client ID") }
                    ids.append(id)
                }
                return .clientList(ids: ids)
            case "TYPE":
                try a.arity(exactly: 4)
                guard ["NORMAL", "MASTER", "REPLICA", "PUBSUB"].contains(a.upper(3)) else {
                    throw CommandError("ERR Unknown client type '\(a.string(3))'")
                }
                // Every client of crdtd is a normal client: peers do not connect through the client port.
                return a.upper(3) == "NORMAL" ? .clientList(ids: nil) : .clientList(ids: [])
            default:
                throw CommandError.syntax
            }
        case "SETINFO":
            try a.arity(exactly: 4)
            guard ["LIB-NAME", "LIB-VER"].contains(a.upper(2)) else {
                throw CommandError("ERR Unrecognized option '\(a.string(2))'")
            }
            return .clientSetInfo
        default:
            return .server(try parseClientMore(&a))
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

    private static func cursor(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> UInt64 {
        guard let cursor = UInt64(a.string(i)) else { throw CommandError("ERR invalid cursor") }
        return cursor
    }

    /// `[MATCH pattern] [COUNT n] [TYPE t]` from argument `start` on.
    private static func parseScanOptions(_ a: inout ArgumentCursor, from start: Int, allowType: Bool)
        throws(CommandError) -> (match: Bytes?, count: Int, type: String?) {
        var match: Bytes?
        var count = 10
        var type: String?
        var i = start
        while i < a.count {
            guard i + 1 < a.count else { throw CommandError.syntax }
            switch a.upper(i) {
            case "MATCH": match = a[i + 1]
            case "COUNT":
                let n = try a.integer(i + 1)
                guard n >= 1 else { throw CommandError.syntax }
                count = Int(min(n, 1_000_000))
            case "TYPE" where allowType: type = a.string(i + 1).lowercased()
            default: throw CommandError.syntax
            }
            i += 2
        }
        return (match, count, type)
    }
}

/// Read access to a request's arguments with Redis's argument errors.
struct ArgumentCursor {
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
    /// A float (`parseDouble`), or `error`.
    func double(_ i: Int, error: CommandError) throws(CommandError) -> Double {
        try CommandParser.parseDouble(args[i], error: error)
    }
    /// A signed 64-bit decimal exactly as Redis accepts it: no spaces, no '+', no leading zeros.
    func integer(_ i: Int) throws(CommandError) -> Int64 {
        guard let value = Int64(string(i)), Array(String(value).utf8) == args[i] else { throw .notAnInteger }
        return value
    }
}
