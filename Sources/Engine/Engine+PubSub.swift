import RESP

/// What the writes being applied belong to, for their keyspace events.
enum EventSource {
    /// A client's command, by its arguments (the name first).
    case command([Bytes])
    /// This node's clock passed the key's deadline.
    case expiry
}

/// Publish/subscribe and keyspace notifications. Subscriptions are connection state, kept by the engine
/// beside the sessions (`PubSub`); a message becomes an `Effect.push` per receiving client, which the
/// shell writes in its place among the client's replies. Messages are delivered at most once: exactly to
/// this node's subscribers, and best effort to peers' (`Replicator.publish`, docs/redis-compatibility.md); keyspace notifications are published on every node for
/// the changes it applies, its own writes and those that arrive from peers alike.
extension Engine {
    /// Whether keyspace notifications can reach anyone: then the keyspace reports its changes.
    func notificationsWanted() -> Bool { !pubSub.isEmpty && notifyFlags.publishesAnything }

    /// Subscriptions or `notify-keyspace-events` changed: start or stop recording changes.
    mutating func notificationsChanged() {
        keyspace.recordsChanges = notificationsWanted()
    }

    /// A client is gone: its session, its subscriptions and its WAIT.
    mutating func forget(_ client: ClientID) {
        sessions[client] = nil
        parkedClients.remove(client)
        shardPubSub.remove(client)
        if pubSub.count(of: client) > 0 {
            pubSub.remove(client)
            notificationsChanged()
        }
    }

    mutating func unsubscribeAll(_ client: ClientID) {
        shardPubSub.remove(client)
        guard pubSub.count(of: client) > 0 else { return }
        pubSub.remove(client)
        notificationsChanged()
    }

    /// A RESP2 client with subscriptions may only change them, `PING`, `QUIT` and `RESET`, as in Redis:
    /// its connection carries messages, and a reply could not be told from one. RESP3 tells pushes apart.
    func subscribedRefusal(of command: Command, _ arguments: [Bytes], for client: ClientID) -> String? {
        guard isSubscribed(client), protocolVersion(of: client) == .resp2 else { return nil }
        switch command {
        case .pubSub(let sub) where sub.changesSubscriptions: return nil
        case .ping, .quit, .server(.reset): return nil
        default:
            let name = String(decoding: (arguments.first ?? []).prefix(64), as: UTF8.self).lowercased()
            return "ERR Can't execute '\(name)': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        }
    }

    /// Commands whose reply is not one frame given at once: (un)subscriptions answer a frame per
    /// channel, `PING` in RESP2 subscribe mode answers an array, `WAIT` may answer later. Returns
    /// whether `command` was one of them (and is answered).
    mutating func runsApart(_ command: Command, for client: ClientID, into output: inout EngineOutput) -> Bool {
        switch command {
        case .pubSub(let sub) where sub.changesSubscriptions:
            reply(frames: changeSubscriptions(sub, for: client), to: client, early: true, into: &output)
            let last = isSubscribed(client) ? sub.name.lowercased() : nil
            sessions[client]?.lastSubscription = last
            return true
        case .ping(let message) where isSubscribed(client) && protocolVersion(of: client) == .resp2:
            reply(.array([.bulkString("pong"), .bulkString(message ?? [])]), to: client, early: true, into: &output)
            return true
        case .wait(let replicas, let timeout):
            startWait(replicas: replicas, timeoutMilliseconds: timeout, for: client, into: &output)
            return true
        default:
            return false
        }
    }

    /// `SUBSCRIBE`, `UNSUBSCRIBE`, `PSUBSCRIBE`, `PUNSUBSCRIBE`: one confirmation per channel or pattern,
    /// each with the client's subscription count after it (pushes in RESP3, arrays in RESP2).
    mutating func changeSubscriptions(_ command: PubSubCommand, for client: ClientID) -> [RESPReply] {
        func frame(_ kind: String, _ name: Bytes?, _ count: Int) -> RESPReply {
            .push([.bulkString(kind), name.map { .bulkString($0) } ?? .null, .integer(Int64(count))])
        }
        defer { notificationsChanged() }
        switch command {
        case .subscribe(let channels):
            return channels.map { frame("subscribe", $0, pubSub.subscribe(client, channel: $0)) }
        case .pSubscribe(let patterns):
            return patterns.map { frame("psubscribe", $0, pubSub.subscribe(client, pattern: $0)) }
        case .unsubscribe(let named):
            let channels = named.isEmpty ? pubSub.channels(of: client) : named
            if channels.isEmpty { return [frame("unsubscribe", nil, pubSub.count(of: client))] }
            return channels.map { frame("unsubscribe", $0, pubSub.unsubscribe(client, channel: $0)) }
        case .pUnsubscribe(let named):
            let patterns = named.isEmpty ? pubSub.patterns(of: client) : named
            if patterns.isEmpty { return [frame("punsubscribe", nil, pubSub.count(of: client))] }
            return patterns.map { frame("punsubscribe", $0, pubSub.unsubscribe(client, pattern: $0)) }
        case .sSubscribe(let channels):
            return channels.map { frame("ssubscribe", $0, shardPubSub.subscribe(client, channel: $0)) }
        case .sUnsubscribe(let named):
            let channels = named.isEmpty ? shardPubSub.channels(of: client) : named
            if channels.isEmpty { return [frame("sunsubscribe", nil, shardPubSub.count(of: client))] }
            return channels.map { frame("sunsubscribe", $0, shardPubSub.unsubscribe(client, channel: $0)) }
        case .publish, .channels, .numSub, .numPat, .sPublish, .shardChannels, .shardNumSub:
            return []
        }
    }

    /// `PUBLISH` and the `PUBSUB` reports (also inside `MULTI`, where subscribing is refused).
    mutating func runPubSub(_ command: PubSubCommand, for client: ClientID, into output: inout EngineOutput) -> RESPReply {
        switch command {
        case .publish(let channel, let message):
            // The message reveals nothing stored: it goes out at once, behind the receivers' earlier replies.
            // Peers get it best effort, for their own subscribers; the count is of this node's receivers.
            replicator?.publish(channel: channel, message: message, into: &output)
            return .integer(Int64(publish(channel, message, early: true, into: &output)))
        case .sPublish(let channel, let message):
            replicator?.publish(channel: channel, message: message, sharded: true, into: &output)
            return .integer(Int64(publish(channel, message, sharded: true, early: true, into: &output)))
        case .channels(let pattern):
            return Self.channelList(pubSub, pattern)
        case .shardChannels(let pattern):
            return Self.channelList(shardPubSub, pattern)
        case .numSub(let channels):
            return .array(channels.flatMap { [RESPReply.bulkString($0), .integer(Int64(pubSub.subscribers(of: $0)))] })
        case .shardNumSub(let channels):
            return .array(channels.flatMap { [RESPReply.bulkString($0), .integer(Int64(shardPubSub.subscribers(of: $0)))] })
        case .numPat:
            return .integer(Int64(pubSub.patternCount))
        case .subscribe, .unsubscribe, .pSubscribe, .pUnsubscribe, .sSubscribe, .sUnsubscribe:
            return .error("ERR \(command.name) inside MULTI is not served by crdtd: subscribe outside the transaction")
        }
    }

    /// Whether the client holds any subscription, sharded ones included (RESP2 subscribe mode).
    func isSubscribed(_ client: ClientID) -> Bool {
        pubSub.count(of: client) > 0 || shardPubSub.count(of: client) > 0
    }

    private static func channelList(_ registry: PubSub, _ pattern: Bytes?) -> RESPReply {
        let glob = pattern.map(GlobPattern.init)
        let names = registry.channels.keys.filter { glob?.matches($0) ?? true }.sorted { $0.lexicographicallyPrecedes($1) }
        return .array(names.map { .bulkString($0) })
    }

    /// Delivers `message` to every subscriber of `channel` on this node; returns how many received it.
    /// `early`: the message reveals nothing waiting for the disk (a `PUBLISH`, a peer's change), so it
    /// may leave before this step's commit; a notification of a local write waits for it, as the
    /// write's reply does.
    @discardableResult
    mutating func publish(_ channel: Bytes, _ message: Bytes, sharded: Bool = false, early: Bool,
                          into output: inout EngineOutput) -> Int {
        let registry = sharded ? shardPubSub : pubSub
        guard !registry.isEmpty else { return 0 }
        let recipients = registry.recipients(of: channel)
        for (client, pattern) in recipients {
            let push: RESPReply
            if sharded {
                push = .push([.bulkString("smessage"), .bulkString(channel), .bulkString(message)])
            } else if let pattern {
                push = .push([.bulkString("pmessage"), .bulkString(pattern), .bulkString(channel), .bulkString(message)])
            } else {
                push = .push([.bulkString("message"), .bulkString(channel), .bulkString(message)])
            }
            self.push(push, to: client, early: early, into: &output)
        }
        return recipients.count
    }

    /// Publishes `events` of `key` on the keyspace and keyevent channels `notify-keyspace-events` asks for.
    mutating func publish(_ events: [KeyspaceEvent], of key: Bytes, early: Bool, into output: inout EngineOutput) {
        for event in events where notifyFlags.contains(event.flag) {
            let name = Array(event.name.utf8)
            if notifyFlags.contains(.keyspace) { publish(Self.keyspacePrefix + key, name, early: early, into: &output) }
            if notifyFlags.contains(.keyevent) { publish(Self.keyeventPrefix + name, key, early: early, into: &output) }
        }
    }

    static let keyspacePrefix = Array("__keyspace@0__:".utf8)
    static let keyeventPrefix = Array("__keyevent@0__:".utf8)

    /// A local write changed `key` (called from `applyLocal` while notifications are wanted).
    mutating func notifyLocal(_ key: Bytes, before: KeyType?, after: KeyType?, into output: inout EngineOutput) {
        let events: [KeyspaceEvent]
        switch eventSource {
        case .expiry?: events = [KeyspaceEvent("expired", .expired)]
        case .command(let arguments)?: events = KeyspaceEvent.local(arguments, key: key, before: before, after: after)
        case nil: return
        }
        publish(events, of: key, early: false, into: &output)
    }

    /// Notifications for the changes joined from peers since the last call: what the delta did is read
    /// from the key's type and size before and after (a delta carries state, not the command).
    mutating func notifyRemoteChanges(into output: inout EngineOutput) {
        guard keyspace.recordsChanges, !keyspace.remoteChanges.isEmpty else { return }
        for change in keyspace.takeRemoteChanges() {
            publish(KeyspaceEvent.remote(change), of: change.key, early: true, into: &output)
        }
    }
}

extension PubSubCommand {
    var name: String {
        switch self {
        case .subscribe: "SUBSCRIBE"
        case .unsubscribe: "UNSUBSCRIBE"
        case .pSubscribe: "PSUBSCRIBE"
        case .pUnsubscribe: "PUNSUBSCRIBE"
        case .sSubscribe: "SSUBSCRIBE"
        case .sUnsubscribe: "SUNSUBSCRIBE"
        case .publish: "PUBLISH"
        case .sPublish: "SPUBLISH"
        case .channels, .numSub, .numPat, .shardChannels, .shardNumSub: "PUBSUB"
        }
    }
}
