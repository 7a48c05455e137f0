/// What crdtd knows about one command name: its arity and key positions (for `COMMAND`, and checked
/// before parsing), its flags, and its metric label. One entry per name, aliases included, so the
/// parser, `COMMAND`, `COMMAND COUNT` and the metrics all read the same list.
public struct CommandSpec: Sendable {
    /// Lower-case name, as `COMMAND` reports it.
    public var name: String
    /// Redis's convention: `n` exactly n arguments (the name included), `-n` at least n.
    public var arity: Int
    public var flags: [String]
    public var firstKey: Int
    public var lastKey: Int
    public var keyStep: Int

    init(_ name: String, _ arity: Int, _ flags: [String], keys: (first: Int, last: Int, step: Int) = (0, 0, 0)) {
        self.name = name
        self.arity = arity
        self.flags = flags
        self.firstKey = keys.first
        self.lastKey = keys.last
        self.keyStep = keys.step
    }

    /// Whether `count` arguments (the name included) satisfy the arity.
    func accepts(argumentCount count: Int) -> Bool {
        arity >= 0 ? count == arity : count >= -arity
    }
}

extension CommandParser {
    private static let oneKey = (first: 1, last: 1, step: 1)
    private static let allKeys = (first: 1, last: -1, step: 1)

    /// Every command crdtd serves, in `COMMAND`'s format. Commands with a maximum arity (`PING`,
    /// `SHUTDOWN`) check it in the parser.
    public static let table: [CommandSpec] = [
        // Connection and server
        .init("ping", -1, ["fast"]),
        .init("echo", 2, ["fast"]),
        .init("hello", -1, ["fast"]),
        .init("client", -2, []),
        .init("command", -1, []),
        .init("config", -2, []),
        .init("quit", -1, ["fast"]),
        .init("shutdown", -1, []),
        .init("info", -1, []),
        .init("select", 2, ["fast"]),
        .init("time", 1, ["fast"]),
        .init("multi", 1, ["fast"]),
        .init("exec", 1, []),
        .init("discard", 1, ["fast"]),
        .init("unwatch", 1, ["fast"]),
        .init("object", -2, ["readonly"], keys: (2, 2, 1)),
        .init("memory", -2, ["readonly"], keys: (2, 2, 1)),
        .init("reset", 1, ["fast"]),
        .init("role", 1, ["fast"]),
        .init("lastsave", 1, ["fast"]),
        .init("lolwut", -1, ["readonly", "fast"]),
        // Publish/subscribe and WAIT
        .init("subscribe", -2, ["pubsub", "noscript", "loading", "stale"]),
        .init("unsubscribe", -1, ["pubsub", "noscript", "loading", "stale"]),
        .init("psubscribe", -2, ["pubsub", "noscript", "loading", "stale"]),
        .init("punsubscribe", -1, ["pubsub", "noscript", "loading", "stale"]),
        .init("publish", 3, ["pubsub", "loading", "stale", "fast"]),
        .init("pubsub", -2, []),
        .init("ssubscribe", -2, ["pubsub", "noscript", "loading", "stale"], keys: allKeys),
        .init("sunsubscribe", -1, ["pubsub", "noscript", "loading", "stale"], keys: allKeys),
        .init("spublish", 3, ["pubsub", "loading", "stale", "fast"], keys: oneKey),
        .init("wait", 3, ["noscript"]),
        // Counters and strings
        .init("incr", 2, ["write", "fast"], keys: oneKey),
        .init("incrby", 3, ["write", "fast"], keys: oneKey),
        .init("decr", 2, ["write", "fast"], keys: oneKey),
        .init("decrby", 3, ["write", "fast"], keys: oneKey),
        .init("get", 2, ["readonly", "fast"], keys: oneKey),
        .init("set", -3, ["write"], keys: oneKey),
        .init("setex", 4, ["write"], keys: oneKey),
        .init("psetex", 4, ["write"], keys: oneKey),
        .init("getex", -2, ["write"], keys: oneKey),
        .init("mget", -2, ["readonly", "fast"], keys: allKeys),
        .init("mset", -3, ["write"], keys: (1, -1, 2)),
        .init("getdel", 2, ["write", "fast"], keys: oneKey),
        .init("strlen", 2, ["readonly", "fast"], keys: oneKey),
        .init("append", 3, ["write"], keys: oneKey),
        .init("getrange", 4, ["readonly"], keys: oneKey),
        .init("substr", 4, ["readonly"], keys: oneKey),
        .init("setrange", 4, ["write"], keys: oneKey),
        .init("incrbyfloat", 3, ["write", "fast"], keys: oneKey),
        .init("setbit", 4, ["write"], keys: oneKey),
        .init("getbit", 3, ["readonly", "fast"], keys: oneKey),
        .init("bitcount", -2, ["readonly"], keys: oneKey),
        .init("bitpos", -3, ["readonly"], keys: oneKey),
        .init("bitop", -4, ["write"], keys: (2, -1, 1)),
        .init("bitfield", -2, ["write"], keys: oneKey),
        .init("bitfield_ro", -2, ["readonly", "fast"], keys: oneKey),
        .init("lcs", -3, ["readonly"], keys: (1, 2, 1)),
        // Lists
        .init("lpush", -3, ["write", "fast"], keys: oneKey),
        .init("rpush", -3, ["write", "fast"], keys: oneKey),
        .init("lpushx", -3, ["write", "fast"], keys: oneKey),
        .init("rpushx", -3, ["write", "fast"], keys: oneKey),
        .init("lpop", -2, ["write", "fast"], keys: oneKey),
        .init("rpop", -2, ["write", "fast"], keys: oneKey),
        .init("lrange", 4, ["readonly"], keys: oneKey),
        .init("llen", 2, ["readonly", "fast"], keys: oneKey),
        .init("lindex", 3, ["readonly"], keys: oneKey),
        .init("lrem", 4, ["write"], keys: oneKey),
        .init("lset", 4, ["write"], keys: oneKey),
        .init("linsert", 5, ["write"], keys: oneKey),
        .init("lpos", -3, ["readonly"], keys: oneKey),
        .init("ltrim", 4, ["write"], keys: oneKey),
        .init("lmove", 5, ["write"], keys: (1, 2, 1)),
        .init("rpoplpush", 3, ["write"], keys: (1, 2, 1)),
        .init("lmpop", -4, ["write"]),
        // Geo
        .init("geoadd", -5, ["write"], keys: oneKey),
        .init("geopos", -2, ["readonly"], keys: oneKey),
        .init("geodist", -4, ["readonly"], keys: oneKey),
        .init("geohash", -2, ["readonly"], keys: oneKey),
        .init("geosearch", -7, ["readonly"], keys: oneKey),
        .init("geosearchstore", -8, ["write"], keys: (1, 2, 1)),
        .init("georadius", -6, ["write"], keys: oneKey),
        .init("georadius_ro", -6, ["readonly"], keys: oneKey),
        .init("georadiusbymember", -5, ["write"], keys: oneKey),
        .init("georadiusbymember_ro", -5, ["readonly"], keys: oneKey),
        // Sets
        .init("sadd", -3, ["write", "fast"], keys: oneKey),
        .init("srem", -3, ["write", "fast"], keys: oneKey),
        .init("smembers", 2, ["readonly"], keys: oneKey),
        .init("sismember", 3, ["readonly", "fast"], keys: oneKey),
        .init("smismember", -3, ["readonly", "fast"], keys: oneKey),
        .init("scard", 2, ["readonly", "fast"], keys: oneKey),
        .init("srandmember", -2, ["readonly"], keys: oneKey),
        .init("sinter", -2, ["readonly"], keys: allKeys),
        .init("sunion", -2, ["readonly"], keys: allKeys),
        .init("sdiff", -2, ["readonly"], keys: allKeys),
        .init("sinterstore", -3, ["write"], keys: allKeys),
        .init("sunionstore", -3, ["write"], keys: allKeys),
        .init("sdiffstore", -3, ["write"], keys: allKeys),
        .init("sscan", -3, ["readonly"], keys: oneKey),
        .init("spop", -2, ["write", "fast"], keys: oneKey),
        .init("smove", 4, ["write", "fast"], keys: (1, 2, 1)),
        .init("sintercard", -3, ["readonly"]),
        // Hashes
        .init("hset", -4, ["write", "fast"], keys: oneKey),
        .init("hmset", -4, ["write", "fast"], keys: oneKey),
        .init("hget", 3, ["readonly", "fast"], keys: oneKey),
        .init("hmget", -3, ["readonly", "fast"], keys: oneKey),
        .init("hdel", -3, ["write", "fast"], keys: oneKey),
        .init("hgetall", 2, ["readonly"], keys: oneKey),
        .init("hlen", 2, ["readonly", "fast"], keys: oneKey),
        .init("hkeys", 2, ["readonly"], keys: oneKey),
        .init("hvals", 2, ["readonly"], keys: oneKey),
        .init("hexists", 3, ["readonly", "fast"], keys: oneKey),
        .init("hstrlen", 3, ["readonly", "fast"], keys: oneKey),
        .init("hscan", -3, ["readonly"], keys: oneKey),
        .init("hincrby", 4, ["write", "fast"], keys: oneKey),
        .init("hincrbyfloat", 4, ["write", "fast"], keys: oneKey),
        .init("hrandfield", -2, ["readonly"], keys: oneKey),
        // HyperLogLog
        .init("pfadd", -2, ["write", "fast"], keys: oneKey),
        .init("pfcount", -2, ["readonly"], keys: allKeys),
        .init("pfmerge", -2, ["write"], keys: allKeys),
        // Sorted sets
        .init("zadd", -4, ["write", "fast"], keys: oneKey),
        .init("zincrby", 4, ["write", "fast"], keys: oneKey),
        .init("zscore", 3, ["readonly", "fast"], keys: oneKey),
        .init("zmscore", -3, ["readonly", "fast"], keys: oneKey),
        .init("zcard", 2, ["readonly", "fast"], keys: oneKey),
        .init("zcount", 4, ["readonly", "fast"], keys: oneKey),
        .init("zlexcount", 4, ["readonly", "fast"], keys: oneKey),
        .init("zrange", -4, ["readonly"], keys: oneKey),
        .init("zrangebyscore", -4, ["readonly"], keys: oneKey),
        .init("zrevrangebyscore", -4, ["readonly"], keys: oneKey),
        .init("zrangebylex", -4, ["readonly"], keys: oneKey),
        .init("zrevrangebylex", -4, ["readonly"], keys: oneKey),
        .init("zrevrange", -4, ["readonly"], keys: oneKey),
        .init("zrank", -3, ["readonly", "fast"], keys: oneKey),
        .init("zrevrank", -3, ["readonly", "fast"], keys: oneKey),
        .init("zrem", -3, ["write", "fast"], keys: oneKey),
        .init("zremrangebyrank", 4, ["write"], keys: oneKey),
        .init("zremrangebyscore", 4, ["write"], keys: oneKey),
        .init("zremrangebylex", 4, ["write"], keys: oneKey),
        .init("zpopmin", -2, ["write", "fast"], keys: oneKey),
        .init("zpopmax", -2, ["write", "fast"], keys: oneKey),
        .init("zscan", -3, ["readonly"], keys: oneKey),
        .init("zunion", -3, ["readonly"]),
        .init("zinter", -3, ["readonly"]),
        .init("zdiff", -3, ["readonly"]),
        .init("zunionstore", -4, ["write"], keys: oneKey),
        .init("zinterstore", -4, ["write"], keys: oneKey),
        .init("zdiffstore", -4, ["write"], keys: oneKey),
        .init("zintercard", -3, ["readonly"]),
        .init("zrangestore", -5, ["write"], keys: (1, 2, 1)),
        .init("zrandmember", -2, ["readonly"], keys: oneKey),
        .init("zmpop", -4, ["write"]),
        // Keyspace
        .init("sort", -2, ["write"], keys: oneKey),
        .init("sort_ro", -2, ["readonly"], keys: oneKey),
        .init("del", -2, ["write"], keys: allKeys),
        .init("unlink", -2, ["write", "fast"], keys: allKeys),
        .init("exists", -2, ["readonly", "fast"], keys: allKeys),
        .init("type", 2, ["readonly", "fast"], keys: oneKey),
        .init("keys", 2, ["readonly"]),
        .init("scan", -2, ["readonly"]),
        .init("dbsize", 1, ["readonly", "fast"]),
        .init("flushdb", -1, ["write"]),
        .init("flushall", -1, ["write"]),
        .init("rename", 3, ["write"], keys: (1, 2, 1)),
        .init("copy", -3, ["write"], keys: (1, 2, 1)),
        .init("randomkey", 1, ["readonly"]),
        .init("touch", -2, ["readonly", "fast"], keys: allKeys),
        // Expiry
        .init("expire", -3, ["write", "fast"], keys: oneKey),
        .init("pexpire", -3, ["write", "fast"], keys: oneKey),
        .init("expireat", -3, ["write", "fast"], keys: oneKey),
        .init("pexpireat", -3, ["write", "fast"], keys: oneKey),
        .init("ttl", 2, ["readonly", "fast"], keys: oneKey),
        .init("pttl", 2, ["readonly", "fast"], keys: oneKey),
        .init("expiretime", 2, ["readonly", "fast"], keys: oneKey),
        .init("pexpiretime", 2, ["readonly", "fast"], keys: oneKey),
        .init("persist", 2, ["write", "fast"], keys: oneKey),
        // Bounded counters and administration
        .init("crdt.bincrby", 3, ["write"], keys: oneKey),
        .init("crdt.bdecrby", 3, ["write"], keys: oneKey),
        .init("crdt.bget", 2, ["readonly"], keys: oneKey),
        .init("crdt.brights", 2, ["readonly"], keys: oneKey),
        .init("crdt.btransfer", 4, ["write"], keys: oneKey),
        .init("crdt.digest", -1, ["readonly"]),
        .init("crdt.clock", 1, ["readonly"]),
        .init("crdt.peers", 1, ["readonly"]),
        .init("crdt.partition", -2, ["admin"]),
        .init("crdt.heal", 1, ["admin"]),
        .init("crdt.forget", 2, ["admin"]),
        .init("crdt.stability", 1, ["readonly"]),
    ]

    static let specsByName: [String: CommandSpec] = Dictionary(table.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

    /// Commands crdtd will not serve, each with the reason and what to use instead. They answer this
    /// error instead of "unknown command", so an application learns why.
    static let refusals: [String: String] = {
        let coordination = "needs coordination between nodes, which crdtd does not do"
        var refusals: [String: String] = [
            "setnx": "SETNX \(coordination) (two partitioned nodes would both succeed); use SET, or CRDT.BINCRBY for a claim that must be unique",
            "msetnx": "MSETNX \(coordination) (agreement that every key is absent); use MSET",
            "hsetnx": "HSETNX \(coordination) (agreement that the field is absent); use HSET",
            "getset": "GETSET \(coordination) (an atomic read and replace across nodes); use GET then SET, which may interleave with other nodes' writes",
            "renamenx": "RENAMENX \(coordination) (agreement that the new name is absent)",
        ]
        for name in ["blpop", "brpop", "blmove", "blmpop", "brpoplpush", "bzpopmin", "bzpopmax", "bzmpop"] {
            refusals[name] = "\(name.uppercased()) \(coordination): a blocking pop promises each element to one consumer; poll with the non-blocking form instead"
        }
        for name in ["xgroup", "xreadgroup", "xack", "xpending", "xclaim", "xautoclaim"] {
            refusals[name] = "\(name.uppercased()) \(coordination): consumer groups deliver each entry to exactly one consumer"
        }
        for name in ["eval", "evalsha", "eval_ro", "evalsha_ro", "script", "function", "fcall", "fcall_ro"] {
            refusals[name] = "\(name.uppercased()) is not served: a script that must see every node's writes atomically needs coordination; use MULTI/EXEC for an atomic local batch"
        }
        for name in ["replicaof", "slaveof", "failover", "sync", "psync", "replconf", "cluster", "readonly", "readwrite", "asking", "restore-asking"] {
            refusals[name] = "\(name.uppercased()) does not apply: every crdtd node accepts writes and replicates to its peers itself (see CRDT.PEERS)"
        }
        for name in ["save", "bgsave", "bgrewriteaof"] {
            refusals[name] = "\(name.uppercased()) is not needed: every write is committed to SQLite before its reply; use CRDT.BACKUP for a copy"
        }
        refusals["watch"] = "WATCH \(coordination): it promises that no node changed the key before EXEC, which only "
            + "agreement between nodes can tell; MULTI/EXEC without WATCH applies its commands together on this node"
        for name in ["xadd", "xrange", "xrevrange", "xlen", "xread", "xdel", "xtrim", "xinfo", "xsetid"] {
            refusals[name] = "\(name.uppercased()) is not served yet: a coordination-free stream (entries ordered by Lamport time and "
                + "node instead of wall-clock ids) is not built (docs/redis-compatibility.md); use RPUSH/LRANGE on a list, or ZADD on a sorted set scored by time"
        }
        refusals["waitaof"] = "WAITAOF does not apply: every write is committed to SQLite before its reply"
        for name in ["dump", "restore", "migrate"] {
            refusals[name] = "\(name.uppercased()) is not served: it needs Redis's RDB serialisation, which crdtd's CRDT state is not; "
                + "use CRDT.BACKUP for a copy of a node, or read and write the keys"
        }
        for name in ["acl", "monitor", "debug", "slowlog", "latency", "module", "pfdebug", "pfselftest", "object-freq"] {
            refusals[name] = "\(name.uppercased()) is not served: crdtd has no such facility (users and passwords are set in its "
                + "configuration, see docs/operations.md; metrics are on its HTTP /metrics endpoint)"
        }
        refusals["move"] = "MOVE needs a second database; crdtd has one (0)"
        refusals["swapdb"] = "SWAPDB needs a second database; crdtd has one (0)"
        return refusals
    }()
}
