/// Publish/subscribe commands, after their arguments were checked.
public enum PubSubCommand: Sendable, Equatable {
    case subscribe([Bytes])
    /// No channels: every channel the client is subscribed to.
    case unsubscribe([Bytes])
    case pSubscribe([Bytes])
    case pUnsubscribe([Bytes])
    case publish(channel: Bytes, message: Bytes)
    /// `SSUBSCRIBE`, `SUNSUBSCRIBE`, `SPUBLISH`: sharded channels, a namespace of their own. crdtd has
    /// no shards (every node holds every key), so they behave as on a Redis server outside a cluster.
    case sSubscribe([Bytes])
    case sUnsubscribe([Bytes])
    case sPublish(channel: Bytes, message: Bytes)
    /// `PUBSUB SHARDCHANNELS [pattern]`, `PUBSUB SHARDNUMSUB [channel ...]`.
    case shardChannels(pattern: Bytes?)
    case shardNumSub([Bytes])
    /// `PUBSUB CHANNELS [pattern]`: channels with at least one subscriber (not patterns).
    case channels(pattern: Bytes?)
    /// `PUBSUB NUMSUB [channel ...]`: subscribers per named channel.
    case numSub([Bytes])
    /// `PUBSUB NUMPAT`: patterns subscribed to, by all clients.
    case numPat

    /// The commands a RESP2 client may still send once it is subscribed (Redis's rule), besides `PING`,
    /// `QUIT` and `RESET`.
    var changesSubscriptions: Bool {
        switch self {
        case .subscribe, .unsubscribe, .pSubscribe, .pUnsubscribe, .sSubscribe, .sUnsubscribe: true
        case .publish, .channels, .numSub, .numPat, .sPublish, .shardChannels, .shardNumSub: false
        }
    }
}

/// Which keyspace notifications a node publishes (`notify-keyspace-events`), with Redis's letters:
/// `K` keyspace channel, `E` keyevent channel, and the classes `g` generic (`DEL`, `EXPIRE`, `RENAME`),
/// `$` strings and counters, `l` lists, `s` sets, `h` hashes, `z` sorted sets, `x` expired, `e` evicted,
/// `t` streams, `d` module types, `m` key misses, `n` new keys; `A` is `g$lshzxetd`. Nothing is published
/// unless `K` or `E` is given with at least one class.
public struct KeyspaceEventFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let keyspace = KeyspaceEventFlags(rawValue: 1 << 0)
    public static let keyevent = KeyspaceEventFlags(rawValue: 1 << 1)
    public static let generic = KeyspaceEventFlags(rawValue: 1 << 2)
    public static let string = KeyspaceEventFlags(rawValue: 1 << 3)
    public static let list = KeyspaceEventFlags(rawValue: 1 << 4)
    public static let set = KeyspaceEventFlags(rawValue: 1 << 5)
    public static let hash = KeyspaceEventFlags(rawValue: 1 << 6)
    public static let sortedSet = KeyspaceEventFlags(rawValue: 1 << 7)
    public static let expired = KeyspaceEventFlags(rawValue: 1 << 8)
    public static let evicted = KeyspaceEventFlags(rawValue: 1 << 9)
    public static let stream = KeyspaceEventFlags(rawValue: 1 << 10)
    public static let module = KeyspaceEventFlags(rawValue: 1 << 11)
    public static let keyMiss = KeyspaceEventFlags(rawValue: 1 << 12)
    public static let newKey = KeyspaceEventFlags(rawValue: 1 << 13)
    /// `A`: every class but key misses and new keys, as in Redis.
    public static let all: KeyspaceEventFlags = [.generic, .string, .list, .set, .hash, .sortedSet, .expired, .evicted,
                                                 .stream, .module]

    private static let letters: [(Character, KeyspaceEventFlags)] = [
        ("g", .generic), ("$", .string), ("l", .list), ("s", .set), ("h", .hash), ("z", .sortedSet), ("x", .expired),
        ("e", .evicted), ("t", .stream), ("d", .module), ("K", .keyspace), ("E", .keyevent), ("m", .keyMiss), ("n", .newKey),
    ]

    /// Parses Redis's letters (case-sensitive, as Redis); `nil` for an unknown letter.
    public init?(parsing text: Bytes) {
        var flags: KeyspaceEventFlags = []
        for byte in text {
            let letter = Character(Unicode.Scalar(byte))
            if letter == "A" { flags.formUnion(.all); continue }
            guard let entry = Self.letters.first(where: { $0.0 == letter }) else { return nil }
            flags.formUnion(entry.1)
        }
        self = flags
    }

    /// The letters in Redis's canonical order, as `CONFIG GET` answers them (`AKE` for `KEA`).
    public var letters: String {
        var text = ""
        if isSuperset(of: .all) {
            text = "A"
        } else {
            for (letter, flag) in Self.letters.prefix(10) where contains(flag) { text.append(letter) }
        }
        for (letter, flag) in Self.letters.suffix(4) where contains(flag) { text.append(letter) }
        return text
    }

    /// Whether anything is published at all: a channel kind and a class.
    var publishesAnything: Bool {
        !isDisjoint(with: [.keyspace, .keyevent]) && !isDisjoint(with: KeyspaceEventFlags.all.union([.keyMiss, .newKey]))
    }
}
