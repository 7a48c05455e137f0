import CRDT

/// A byte string as Redis clients send it: keys, members and values are binary-safe.
public typealias Bytes = [UInt8]

/// A client command after its arguments were checked: arity, integers, options.
/// Parsing is separate from execution so that the command table is readable in one place.
public enum Command: Sendable, Equatable {
    // Connection
    case ping(Bytes?)
    case echo(Bytes)
    case hello(protocolVersion: Int?, clientName: Bytes?)
    case clientSetName(Bytes)
    case clientGetName
    case clientID
    case command(CommandSubcommand)
    case configGet(patterns: [Bytes])
    case configResetStat
    /// `CONFIG SET notify-keyspace-events flags`: the only parameter that changes at run time.
    case configSetKeyspaceEvents(KeyspaceEventFlags)
    /// Publish/subscribe (`Engine+PubSub.swift`).
    case pubSub(PubSubCommand)
    /// `WAIT numreplicas timeout`: how many peers acknowledged this client's last write (`Engine+Wait.swift`).
    case wait(replicas: Int64, timeoutMilliseconds: Int64)
    case clientList(ids: [UInt64]?)
    case clientInfo
    /// `CLIENT SETINFO LIB-NAME|LIB-VER`: accepted, not recorded.
    case clientSetInfo
    case time
    case quit
    // Transactions: an atomic local batch
    case multi
    case exec
    case discard
    case unwatch
    case shutdown
    case info(sections: [String])
    case select(Int)

    // Counters (causal PN-counter with observed reset)
    case incrBy(key: Bytes, delta: Int64)
    // Registers (LWW) and reads of counters
    case get(key: Bytes)
    /// `SET`, `SETEX`, `PSETEX`: `expiry` nil discards the key's deadline, as Redis does.
    case set(key: Bytes, value: Bytes, expiry: ExpiryChange?)
    case getEx(key: Bytes, expiry: ExpiryChange?)
    case mGet(keys: [Bytes])
    case mSet(pairs: [FieldValue])
    case getDel(key: Bytes)
    case strLen(key: Bytes)
    case append(key: Bytes, value: Bytes)
    case getRange(key: Bytes, start: Int64, end: Int64)
    case setRange(key: Bytes, offset: Int, value: Bytes)
    // Lists (a sequence CRDT)
    case list(ListCommand)
    // Geo (a sorted set of geohash scores)
    case geo(GeoCommand)
    // Sorted-set algebra, random reads and multi-key pops
    case sortedSet(SortedSetCommand)
    /// `SORT`, `SORT_RO`.
    case sort(SortQuery)
    // Floats, bits and LCS on strings
    case string(StringCommand)
    // RENAME, COPY, RANDOMKEY, TOUCH, SPOP, SMOVE, SINTERCARD, HRANDFIELD
    case key(KeyCommand)
    // CLIENT KILL, RESET, ROLE, LASTSAVE, MEMORY STATS, ...
    case server(ServerCommand)
    // Sets (add-wins)
    case sAdd(key: Bytes, members: [Bytes])
    case sRem(key: Bytes, members: [Bytes])
    case sMembers(key: Bytes)
    case sIsMember(key: Bytes, member: Bytes)
    case sCard(key: Bytes)
    case sMIsMember(key: Bytes, members: [Bytes])
    case sRandMember(key: Bytes, count: Int64?)
    /// `SINTER`/`SUNION`/`SDIFF`, and their `STORE` forms when `destination` is given.
    case setAlgebra(SetOperation, keys: [Bytes], destination: Bytes?)
    case sScan(key: Bytes, cursor: UInt64, match: Bytes?, count: Int)
    // Hashes (observed-remove map of LWW registers)
    /// `HSET` answers the number of fields created, `HMSET` (`answersOK`) answers `+OK`.
    case hSet(key: Bytes, pairs: [FieldValue], answersOK: Bool)
    case hGet(key: Bytes, field: Bytes)
    case hDel(key: Bytes, fields: [Bytes])
    case hGetAll(key: Bytes)
    case hLen(key: Bytes)
    case hMGet(key: Bytes, fields: [Bytes])
    case hKeys(key: Bytes)
    case hVals(key: Bytes)
    case hExists(key: Bytes, field: Bytes)
    case hStrLen(key: Bytes, field: Bytes)
    case hScan(key: Bytes, cursor: UInt64, match: Bytes?, count: Int, novalues: Bool)
    case hIncrBy(key: Bytes, field: Bytes, delta: Int64)
    case hIncrByFloat(key: Bytes, field: Bytes, delta: Double)
    // HyperLogLog
    case pfAdd(key: Bytes, elements: [Bytes])
    case pfCount(keys: [Bytes])
    case pfMerge(destination: Bytes, sources: [Bytes])
    // Sorted sets (observed-remove map from member to a counting score)
    case zAdd(key: Bytes, pairs: [ScorePair], options: ZAddOptions)
    case zIncrBy(key: Bytes, delta: Double, member: Bytes)
    case zScore(key: Bytes, members: [Bytes], multiple: Bool)
    case zRange(key: Bytes, ZRangeQuery)
    case zRank(key: Bytes, member: Bytes, reverse: Bool, withScore: Bool)
    case zRem(key: Bytes, members: [Bytes])
    case zRemRange(key: Bytes, ZRangeQuery.By)
    case zCard(key: Bytes)
    case zCount(key: Bytes, ZRangeQuery.By)
    case zPop(key: Bytes, count: Int?, highest: Bool)
    case zScan(key: Bytes, cursor: UInt64, match: Bytes?, count: Int)
    // Bounded counters (value >= 0 without coordination)
    case boundedIncrBy(key: Bytes, amount: Int64)
    case boundedDecrBy(key: Bytes, amount: Int64)
    case boundedGet(key: Bytes)
    case boundedRights(key: Bytes)
    case boundedTransfer(key: Bytes, toNode: String, amount: Int64)
    // Keyspace
    case del(keys: [Bytes])
    case exists(keys: [Bytes])
    case type(key: Bytes)
    case keys(pattern: Bytes)
    case scan(cursor: UInt64, match: Bytes?, count: Int, type: String?)
    case dbSize
    // Expiry: a deadline computed from the tick's wall clock
    case expire(key: Bytes, ExpiryChange, condition: ExpiryCondition)
    /// `TTL`, `PTTL` (remaining time), `EXPIRETIME`, `PEXPIRETIME` (the deadline itself).
    case timeToLive(key: Bytes, milliseconds: Bool, absolute: Bool)
    case persist(key: Bytes)
    /// `FLUSHDB`/`FLUSHALL`: an observed remove of every key, as `DEL`; bounded counters stay.
    case flush
    case objectEncoding(key: Bytes)
    case objectRefCount(key: Bytes)
    case objectIdleTime(key: Bytes)
    case memoryUsage(key: Bytes)
    // Administration
    case digest(key: Bytes?)
    case clock
    case peers
    case partition(nodes: [String], direction: PartitionDirection)
    case heal
    /// `CRDT.FORGET node`: decommission a member that is gone for good.
    case forget(node: String)
    /// `CRDT.STABILITY`: the causal-stability frontier, who holds it back and by how much.
    case stability

    /// Whether the command may change replicated state (and so needs a durable commit before its reply).
    public var isWrite: Bool {
        switch self {
        case .expire, .persist, .getEx:
            return true
        case .incrBy, .set, .mSet, .getDel, .append, .setRange, .sAdd, .sRem, .hSet, .hDel, .hIncrBy, .hIncrByFloat,
             .pfAdd, .pfMerge, .zAdd, .zIncrBy, .zRem, .zRemRange, .zPop,
             .boundedIncrBy, .boundedDecrBy, .boundedTransfer, .del, .flush:
            return true
        case .setAlgebra(_, _, let destination):
            return destination != nil
        case .list(let command):
            return command.isWrite
        case .geo(let command):
            return command.isWrite
        case .sortedSet(let command):
            return command.isWrite
        case .sort(let query):
            return query.store != nil
        case .string(let command):
            return command.isWrite
        case .key(let command):
            return command.isWrite
        default:
            return false
        }
    }
}

/// One `field value` pair of `HSET`.
public struct FieldValue: Sendable, Equatable {
    public var field: Bytes
    public var value: Bytes
    public init(field: Bytes, value: Bytes) {
        self.field = field
        self.value = value
    }
}

/// A change to a key's expiry deadline.
public enum ExpiryChange: Sendable, Equatable {
    /// In this many milliseconds from the node's wall clock (`EXPIRE`, `PEXPIRE`, `SET ... EX|PX`).
    case after(milliseconds: Int64)
    /// At this Unix time in milliseconds (`EXPIREAT`, `PEXPIREAT`, `SET ... EXAT|PXAT`).
    case at(milliseconds: Int64)
    /// Keep the deadline (`SET ... KEEPTTL`).
    case keep
    /// Remove the deadline (`GETEX ... PERSIST`).
    case persist
}

/// `EXPIRE`'s `NX`, `XX`, `GT`, `LT`: compared with the deadline this node holds.
public enum ExpiryCondition: Sendable, Equatable {
    case always, onlyWithoutDeadline, onlyWithDeadline, onlyLater, onlyEarlier
}

/// One `score member` pair of `ZADD`.
public struct ScorePair: Sendable, Equatable {
    public var score: Double
    public var member: Bytes
}

/// `ZADD`'s flags (`NX` and `XX` are refused by the parser: they need coordination).
public struct ZAddOptions: Sendable, Equatable {
    /// Update an existing member only to a greater (`GT`) or smaller (`LT`) score than the local one.
    public var onlyGreater = false
    public var onlyLess = false
    /// Answer the number of members added or changed, not only added.
    public var countChanged = false
    /// Increment instead of set (one pair), answering the new score.
    public var increment = false
}

/// What `ZRANGE` and its older forms select, and how they answer.
public struct ZRangeQuery: Sendable, Equatable {
    /// One end of a lexicographic range: `-` and `+` are the infinities, `[m` inclusive, `(m` exclusive.
    public enum LexLimit: Sendable, Equatable {
        case minusInfinity, plusInfinity
        case inclusive(Bytes), exclusive(Bytes)
    }
    public enum By: Sendable, Equatable {
        /// Positions, negative ones from the end (`ZRANGE key 0 -1`).
        case rank(start: Int64, stop: Int64)
        case score(min: ScoreBound, max: ScoreBound)
        case lex(min: LexLimit, max: LexLimit)
    }
    public var by: By
    /// Highest first (`REV`, `ZREVRANGE*`); `by` is then still given as (min, max).
    public var reverse = false
    /// `LIMIT offset count` (a negative count means all).
    public var limit: (offset: Int64, count: Int64)?
    public var withScores = false

    public static func == (lhs: ZRangeQuery, rhs: ZRangeQuery) -> Bool {
        lhs.by == rhs.by && lhs.reverse == rhs.reverse && lhs.withScores == rhs.withScores
            && lhs.limit?.offset == rhs.limit?.offset && lhs.limit?.count == rhs.limit?.count
    }
}

/// The set operations of `SINTER`, `SUNION` and `SDIFF`.
public enum SetOperation: String, Sendable, Equatable {
    case intersection = "sinter", union = "sunion", difference = "sdiff"
}

/// `COMMAND` subcommands, enough for redis-cli and client libraries that probe the server.
public enum CommandSubcommand: Sendable, Equatable {
    /// `COMMAND` alone describes every command; `COMMAND LIST` names them.
    case all, list, count, docs, info([Bytes])
    /// `COMMAND GETKEYS command arg ...`: the key arguments, by the command table's key positions.
    case getKeys([Bytes])
}

/// Why a command was refused before execution, worded as Redis words it.
public struct CommandError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func wrongArity(_ name: String) -> CommandError {
        CommandError("ERR wrong number of arguments for '\(name.lowercased())' command")
    }
    static let notAnInteger = CommandError("ERR value is not an integer or out of range")
    static let syntax = CommandError("ERR syntax error")
    static func unknown(_ name: Bytes, args: ArraySlice<Bytes>) -> CommandError {
        let shown = args.prefix(8).map { "'\(String(decoding: $0.prefix(64), as: UTF8.self))' " }.joined()
        return CommandError("ERR unknown command '\(String(decoding: name.prefix(64), as: UTF8.self))', with args beginning with: \(shown)")
    }
}

/// Which traffic `CRDT.PARTITION` drops: both ways (the default), or one way only (an asymmetric cut,
/// as a misconfigured firewall makes).
public enum PartitionDirection: Sendable, Equatable {
    case both
    /// Frames from the named nodes are dropped; frames to them still leave.
    case inbound
    /// Nothing is sent to the named nodes; their frames are still taken.
    case outbound
}
