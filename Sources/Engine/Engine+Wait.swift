import RESP

/// A `WAIT` that has not answered: what it waits for, until when, and the client's requests that
/// arrived behind it (they run after it answers, so that replies keep request order).
struct ParkedWait {
    var replicas: Int64
    /// The delta sequence a peer's acknowledgement must reach (see `Session.writeSequence`).
    var target: UInt64
    /// Monotonic milliseconds after which it answers whatever the count; `nil` for `WAIT n 0`.
    var deadline: UInt64?
    var deferred: [[Bytes]] = []
}

/// `WAIT numreplicas timeout`: durability on k peers, per request, without consensus. A peer
/// acknowledges this node's deltas by sequence only after committing them (`Replicator.acknowledged`);
/// a client's last write is covered by a peer once that peer's acknowledgement passes the sequence the
/// node reached after the write. The engine never blocks: a `WAIT` that cannot answer yet is parked in
/// the client's session and answered from the input that brings the acknowledgement, or from the tick
/// that passes its deadline.
extension Engine {
    /// Requests a parked client may send behind its `WAIT` before the `WAIT` answers early with the
    /// count so far: what one client can make the engine hold is bounded.
    static let maxRequestsBehindWait = 1024

    /// A write command ran for `client`: its `WAIT` now waits for everything this node buffered so far.
    mutating func noteWrite(by client: ClientID) {
        guard let sequence = replicator?.nextSequence, let index = sessions.index(forKey: client) else { return }
        sessions.values[index].writeSequence = sequence
    }

    /// Peers that hold the client's last write (or, before any write, the peers this node reaches).
    func acknowledgements(of client: ClientID) -> Int {
        acknowledgements(reaching: sessions[client]?.writeSequence ?? 0)
    }

    func acknowledgements(reaching target: UInt64) -> Int {
        guard let replicator else { return 0 }
        if target == 0 { return replicator.targets.count }
        return replicator.membership.members.values.count { member in
            member.nodeID != replicator.selfID && replicator.acknowledged(by: member) >= target
        }
    }

    mutating func startWait(replicas: Int64, timeoutMilliseconds: Int64, for client: ClientID, into output: inout EngineOutput) {
        let target = sessions[client]?.writeSequence ?? 0
        let count = acknowledgements(reaching: target)
        guard Int64(count) < replicas, sessions[client] != nil else {
            reply(.integer(Int64(count)), to: client, early: true, into: &output)
            return
        }
        let deadline = timeoutMilliseconds == 0 ? nil : stats.lastTick &+ UInt64(timeoutMilliseconds)
        sessions[client]?.parked = ParkedWait(replicas: replicas, target: target, deadline: deadline)
        parkedClients.insert(client)
    }

    /// A request from a client whose `WAIT` has not answered: it waits behind it.
    mutating func deferBehindWait(_ arguments: [Bytes], for client: ClientID, into output: inout EngineOutput) {
        sessions[client]?.parked?.deferred.append(arguments)
        if (sessions[client]?.parked?.deferred.count ?? 0) > Self.maxRequestsBehindWait {
            answerWait(of: client, into: &output)
        }
    }

    /// After an input that may have brought acknowledgements, and on every tick: answers the `WAIT`s
    /// that have enough acknowledgements or passed their deadline. O(parked clients × peers).
    mutating func serveParkedWaits(into output: inout EngineOutput) {
        for client in parkedClients.sorted(by: { $0.rawValue < $1.rawValue }) {
            guard let parked = sessions[client]?.parked else {
                parkedClients.remove(client)
                continue
            }
            let enough = Int64(acknowledgements(reaching: parked.target)) >= parked.replicas
            let late = parked.deadline.map { stats.lastTick >= $0 } ?? false
            if enough || late { answerWait(of: client, into: &output) }
        }
    }

    /// Answers a parked `WAIT` with the count now, then runs the requests that waited behind it.
    mutating func answerWait(of client: ClientID, into output: inout EngineOutput) {
        guard let parked = sessions[client]?.parked else { return }
        sessions[client]?.parked = nil
        parkedClients.remove(client)
        reply(.integer(Int64(acknowledgements(reaching: parked.target))), to: client, early: true, into: &output)
        for (index, arguments) in parked.deferred.enumerated() {
            if sessions[client]?.parked != nil {
                // Another WAIT among them parked again: the rest wait behind that one.
                sessions[client]?.parked?.deferred.append(contentsOf: parked.deferred[index...])
                return
            }
            execute(arguments, for: client, into: &output)
        }
    }
}
