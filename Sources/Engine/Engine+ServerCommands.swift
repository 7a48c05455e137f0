import CRDT
import RESP

/// `CLIENT KILL` and the other connection and server reports of `ServerCommand`.
extension Engine {
    mutating func runServer(_ command: ServerCommand, for client: ClientID, into output: inout EngineOutput) -> RESPReply {
        switch command {
        case .clientKill(let filter, let legacy):
            let victims = sessions.filter { id, session in
                if filter.skipMe && id == client { return false }
                if let wanted = filter.id, wanted != id.rawValue { return false }
                if let address = filter.address, address != session.address { return false }
                // crdtd does not record the local address of a connection: CLIENT LIST shows it empty.
                if let local = filter.localAddress, !local.isEmpty { return false }
                if let user = filter.user, user != "default" { return false }
                return true
            }.map(\.key)
            for victim in victims {
                // Forgotten at once (with its subscriptions and WAIT), so a CLIENT LIST right after no longer
                // shows it and no message is published to it; the frontend closes it.
                forget(victim)
                output.effects.append(.closeClient(victim))
            }
            if legacy { return victims.isEmpty ? .error("ERR No such client") : .ok }
            return .integer(Int64(victims.count))
        case .clientNoEvict:
            return .ok
        case .clientGetRedirect:
            return .integer(-1)
        case .clientTrackingInfo:
            return .map([.init(key: .bulkString("flags"), value: .array([.bulkString("off")])),
                         .init(key: .bulkString("redirect"), value: .integer(-1)),
                         .init(key: .bulkString("prefixes"), value: .array([]))])
        case .clientUnblock:
            return .integer(0)
        case .reset:
            // Back to a fresh connection's state: no transaction, RESP2, no name.
            if var session = sessions[client] {
                session.queued = nil
                session.transactionFailed = false
                session.protocolVersion = .resp2
                session.name = nil
                sessions[client] = session
            }
            // RESET also ends every subscription and an unanswered WAIT cannot precede it (it waits behind).
            unsubscribeAll(client)
            return .simpleString("RESET")
        case .role:
            // Every node accepts writes; its peers are not Redis replicas, so none is listed.
            return .array([.bulkString("master"), .integer(0), .array([])])
        case .lastSave:
            // Every write is committed to SQLite before its reply: the last save is the current state.
            return .integer(Int64(wallMilliseconds / 1000))
        case .lolwut:
            return .verbatimString(format: "txt", text: Array("crdtd \(crdtdVersion): no art, only convergence.\nRedis ver. 7.0.0\n".utf8))
        case .memoryStats:
            return .map([.init(key: .bulkString("keys.count"), value: .integer(Int64(keyspace.liveKeyCount))),
                         .init(key: .bulkString("db.0"), value: .map([
                            .init(key: .bulkString("keys"), value: .integer(Int64(keyspace.liveKeyCount))),
                            .init(key: .bulkString("expires"), value: .integer(Int64(keyspace.keysWithDeadline))),
                         ]))])
        case .memoryMallocStats:
            return .bulkString("crdtd uses the system allocator and does not collect its statistics; see INFO memory")
        }
    }
}
