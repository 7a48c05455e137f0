/// Who is subscribed to what on this node: channels and glob patterns, per client and per channel.
///
/// A pure registry, tested alone (`PubSubTests`). Subscriptions are connection state: they live on the
/// node the client is connected to, are never persisted and never replicated, and end with the
/// connection. Publishing looks up the channel in O(1) and matches every pattern subscribed to (as Redis
/// does), so its cost is O(subscribers of the channel + patterns), zero when nobody subscribes.
struct PubSub {
    private(set) var channels: [Bytes: Set<ClientID>] = [:]
    private var patterns: [Bytes: PatternSubscribers] = [:]
    private var byClient: [ClientID: Subscriptions] = [:]

    struct PatternSubscribers {
        var glob: GlobPattern
        var clients: Set<ClientID>
    }

    /// One client's subscriptions, in the order they were made (Redis answers a bare `UNSUBSCRIBE` in it).
    struct Subscriptions {
        var channels: [Bytes] = []
        var patterns: [Bytes] = []
        var count: Int { channels.count + patterns.count }
    }

    /// Nobody subscribes to anything: publishing and keyspace notifications cost nothing.
    var isEmpty: Bool { byClient.isEmpty }

    /// Channels plus patterns `client` is subscribed to (Redis's subscription count).
    func count(of client: ClientID) -> Int { byClient[client]?.count ?? 0 }

    func channels(of client: ClientID) -> [Bytes] { byClient[client]?.channels ?? [] }
    func patterns(of client: ClientID) -> [Bytes] { byClient[client]?.patterns ?? [] }

    /// Patterns subscribed to by all clients, each counted once per subscriber (`PUBSUB NUMPAT` counts
    /// distinct patterns in Redis 7: so does this).
    var patternCount: Int { patterns.count }

    func subscribers(of channel: Bytes) -> Int { channels[channel]?.count ?? 0 }

    /// Subscribes `client` to `channel`; returns its subscription count after.
    @discardableResult
    mutating func subscribe(_ client: ClientID, channel: Bytes) -> Int {
        if channels[channel, default: []].insert(client).inserted { byClient[client, default: Subscriptions()].channels.append(channel) }
        return count(of: client)
    }

    @discardableResult
    mutating func unsubscribe(_ client: ClientID, channel: Bytes) -> Int {
        if channels[channel]?.remove(client) != nil {
            if channels[channel]?.isEmpty == true { channels[channel] = nil }
            byClient[client]?.channels.removeAll { $0 == channel }
            dropIfEmpty(client)
        }
        return count(of: client)
    }

    @discardableResult
    mutating func subscribe(_ client: ClientID, pattern: Bytes) -> Int {
        if patterns[pattern, default: PatternSubscribers(glob: GlobPattern(pattern), clients: [])].clients.insert(client).inserted {
            byClient[client, default: Subscriptions()].patterns.append(pattern)
        }
        return count(of: client)
    }

    @discardableResult
    mutating func unsubscribe(_ client: ClientID, pattern: Bytes) -> Int {
        if patterns[pattern]?.clients.remove(client) != nil {
            if patterns[pattern]?.clients.isEmpty == true { patterns[pattern] = nil }
            byClient[client]?.patterns.removeAll { $0 == pattern }
            dropIfEmpty(client)
        }
        return count(of: client)
    }

    /// Forgets every subscription of a client that is gone.
    mutating func remove(_ client: ClientID) {
        guard let subscriptions = byClient.removeValue(forKey: client) else { return }
        for channel in subscriptions.channels {
            channels[channel]?.remove(client)
            if channels[channel]?.isEmpty == true { channels[channel] = nil }
        }
        for pattern in subscriptions.patterns {
            patterns[pattern]?.clients.remove(client)
            if patterns[pattern]?.clients.isEmpty == true { patterns[pattern] = nil }
        }
    }

    private mutating func dropIfEmpty(_ client: ClientID) {
        if byClient[client]?.count == 0 { byClient[client] = nil }
    }

    /// Who receives a message on `channel`: direct subscribers (pattern `nil`), then each pattern that
    /// matches with its subscribers. A client subscribed both ways receives it once per way, as in Redis.
    func recipients(of channel: Bytes) -> [(client: ClientID, pattern: Bytes?)] {
        var result: [(client: ClientID, pattern: Bytes?)] = []
        if let direct = channels[channel] {
            for client in direct.sorted(by: { $0.rawValue < $1.rawValue }) { result.append((client, nil)) }
        }
        for (pattern, subscribers) in patterns where subscribers.glob.matches(channel) {
            for client in subscribers.clients.sorted(by: { $0.rawValue < $1.rawValue }) { result.append((client, pattern)) }
        }
        return result
    }
}
