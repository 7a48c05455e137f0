import CRDT
import Wire

/// SWIM membership and failure detection (Das, Gupta, Motivala 2002), free of I/O.
///
/// One member is probed per protocol period; an unanswered probe is retried through `k` other members
/// (ping-req); a member that stays silent becomes *suspect*, and a suspect that does not refute in time
/// becomes *dead*. A member refutes by raising its incarnation, which overrides any rumour about an older
/// incarnation. Updates ride on probes and acks, each a bounded number of times. Dead members are pinged
/// now and then, so a healed partition or a restarted node comes back; a member that leaves says so.
struct Membership {
    struct Member {
        var nodeID: String
        var replica: ReplicaID
        var endpoint: PeerEndpoint
        var incarnation: UInt64
        var state: MemberState
        var stateSince: UInt64

        var update: MemberUpdate {
            MemberUpdate(nodeID: nodeID, replica: replica, endpoint: endpoint, incarnation: incarnation, state: state)
        }
    }

    struct Probe {
        var target: String
        var sequence: UInt64
        var startedAt: UInt64
        var indirectSent = false
        var acked = false
    }

    struct Relay {
        var requester: PeerEndpoint
        var requesterSequence: UInt64
        var startedAt: UInt64
    }

    let selfID: String
    /// This node's replica identity: a rumour that *it* was forgotten concerns only this identity.
    let selfReplica: ReplicaID
    private(set) var incarnation: UInt64
    private(set) var members: [String: Member] = [:]
    /// Identities decommissioned for good (`CRDT.FORGET`) or abandoned by their node (it came back with
    /// a new identity), with the node name they had. Sticky and persisted: frames from them are refused.
    private(set) var forgotten: [ReplicaID: String] = [:]
    /// Set when `forgotten` changed and must be persisted.
    var forgottenChanged = false
    /// Set once this node learnt that its own identity was forgotten: it must not replicate again until
    /// its data directory is wiped (it then starts as a new replica).
    private(set) var decommissioned = false
    /// Round-robin position over `forgotten`, which rides one fact per message (see `piggyback`).
    private var forgottenCursor = 0
    private var forgottenOrder: [ReplicaID] = []
    private var gossip: [(update: MemberUpdate, remaining: Int)] = []
    private var probe: Probe?
    private var probeOrder: [String] = []
    private var relays: [UInt64: Relay] = [:]
    private var nextSequence: UInt64 = 1
    private var lastProbeAt: UInt64 = 0
    private var lastDeadProbeAt: UInt64 = 0
    /// Set when this node's incarnation changed and must be persisted.
    var incarnationChanged = false
    /// Set once this node said it leaves: only then is a rumour that it left true.
    private(set) var leaving = false

    init(selfID: String, replica: ReplicaID, incarnation: UInt64, forgotten: [ReplicaID: String] = [:]) {
        self.selfID = selfID
        self.selfReplica = replica
        self.incarnation = incarnation
        self.forgotten = forgotten
        forgottenOrder = forgotten.keys.sorted()
        decommissioned = forgotten[replica] != nil
    }

    /// Members that may receive data: alive and suspect ones (a suspect may just be slow).
    var reachable: [Member] {
        members.values.filter { $0.state == .alive || $0.state == .suspect }.sorted { $0.nodeID < $1.nodeID }
    }

    func member(_ nodeID: String) -> Member? { members[nodeID] }

    // MARK: Learning

    /// A frame arrived from `header`'s sender: it exists and is at least as new as its header says.
    mutating func observe(_ header: PeerHeader, now: UInt64) {
        apply(MemberUpdate(nodeID: header.nodeID, replica: header.replica, endpoint: header.endpoint,
                           incarnation: header.incarnation, state: .alive), now: now, direct: true)
    }

    /// Applies a gossiped (or directly observed) update with SWIM's precedence: a higher incarnation wins;
    /// at equal incarnations dead/left beat suspect, which beats alive.
    mutating func apply(_ update: MemberUpdate, now: UInt64, direct: Bool = false) {
        if update.state == .forgotten {
            learnForgotten(update.replica, nodeID: update.nodeID)
            return
        }
        if forgotten[update.replica] != nil {
            // Someone still knows a forgotten identity as a member: tell it again (it missed the rumour).
            enqueue(forgottenUpdate(update.replica))
            return
        }
        if update.nodeID == selfID {
            // A rumour that we are suspect, dead, or gone (an older life of ours left): refute it with a newer
            // incarnation. Incarnations from the wire are at most 2^62, so this cannot overflow.
            if update.state != .alive && !(update.state == .left && leaving) && update.incarnation >= incarnation {
                incarnation = update.incarnation + 1
                incarnationChanged = true
                refutationPending = true
            }
            return
        }
        if direct, let current = members[update.nodeID], current.replica != update.replica {
            // The same name with a new identity (a rebuilt node): a new member, whatever the incarnations say.
            let fresh = Member(nodeID: update.nodeID, replica: update.replica, endpoint: update.endpoint,
                               incarnation: max(update.incarnation, current.incarnation), state: .alive, stateSince: now)
            members[update.nodeID] = fresh
            enqueue(fresh.update)
            // The old identity is abandoned for good (its data directory was wiped or restored over).
            learnForgotten(current.replica, nodeID: current.nodeID)
            return
        }
        guard let current = members[update.nodeID] else {
            guard update.state != .left || direct else { return }
            members[update.nodeID] = Member(nodeID: update.nodeID, replica: update.replica, endpoint: update.endpoint,
                                            incarnation: update.incarnation, state: update.state, stateSince: now)
            enqueue(update)
            return
        }
        let newer = update.incarnation > current.incarnation
            || (update.incarnation == current.incarnation && Self.rank(update.state) > Self.rank(current.state))
        guard newer else {
            // Same facts: keep the address fresh (a restarted node may have moved) without re-gossiping.
            if direct { members[update.nodeID]?.endpoint = update.endpoint }
            return
        }
        var member = current
        if member.replica != update.replica { learnForgotten(member.replica, nodeID: member.nodeID) }
        member.incarnation = update.incarnation
        member.endpoint = update.endpoint
        member.replica = update.replica
        if member.state != update.state || update.incarnation != current.incarnation { member.stateSince = now }
        member.state = update.state
        members[update.nodeID] = member
        enqueue(update)
    }

    private static func rank(_ state: MemberState) -> Int {
        switch state {
        case .alive: 0
        case .suspect: 1
        case .dead: 2
        case .left: 3
        case .forgotten: 4
        }
    }

    // MARK: Decommissioning

    /// Why `forget` refused.
    enum ForgetRefusal: Error, Equatable {
        case unknown
        case reachable(MemberState)
        case selfNode
    }

    /// Decommissions `nodeID` for good (`CRDT.FORGET`): only a member that is dead or left (a live one would
    /// just come back). Its identity is remembered as forgotten and gossiped, so every member drops it too.
    /// Returns the identity forgotten.
    mutating func forget(_ nodeID: String) -> Result<ReplicaID, ForgetRefusal> {
        guard nodeID != selfID else { return .failure(.selfNode) }
        guard let member = members[nodeID] else { return .failure(.unknown) }
        guard member.state == .dead || member.state == .left else { return .failure(.reachable(member.state)) }
        learnForgotten(member.replica, nodeID: nodeID)
        return .success(member.replica)
    }

    /// Whether frames from `replica` are refused.
    func isForgotten(_ replica: ReplicaID) -> Bool { forgotten[replica] != nil }

    /// The fact that `replica` is forgotten, as gossiped.
    func forgottenUpdate(_ replica: ReplicaID) -> MemberUpdate {
        MemberUpdate(nodeID: forgotten[replica] ?? "", replica: replica, endpoint: PeerEndpoint(host: "", port: 0),
                     incarnation: 0, state: .forgotten)
    }

    private mutating func learnForgotten(_ replica: ReplicaID, nodeID: String) {
        guard forgotten[replica] == nil, !nodeID.isEmpty else { return }
        forgotten[replica] = nodeID
        forgottenOrder.append(replica)
        forgottenChanged = true
        if replica == selfReplica {
            decommissioned = true
            return
        }
        if members[nodeID]?.replica == replica { members[nodeID] = nil }
        probeOrder.removeAll { $0 == nodeID && members[nodeID] == nil }
        enqueue(forgottenUpdate(replica))
    }

    func selfUpdate(endpoint: PeerEndpoint, replica: ReplicaID) -> MemberUpdate {
        MemberUpdate(nodeID: selfID, replica: replica, endpoint: endpoint, incarnation: incarnation, state: .alive)
    }

    private mutating func enqueue(_ update: MemberUpdate) {
        gossip.removeAll { $0.update.nodeID == update.nodeID && ($0.update.state == .forgotten) == (update.state == .forgotten) }
        gossip.append((update, retransmits))
    }

    private var retransmits: Int {
        // λ·log2(n+1) as in SWIM's infection-style dissemination, at least 3.
        max(3, 2 * (Int.bitWidth - (members.count + 1).leadingZeroBitCount))
    }

    /// Up to `limit` updates to piggyback on a message to `recipient`, each counted as sent once; plus the
    /// recipient's own state when it is not alive, so it can refute.
    mutating func piggyback(to recipient: String?, limit: Int = 8) -> [MemberUpdate] {
        var out: [MemberUpdate] = []
        var index = 0
        while index < gossip.count && out.count < limit {
            out.append(gossip[index].update)
            gossip[index].remaining -= 1
            if gossip[index].remaining <= 0 { gossip.remove(at: index) } else { index += 1 }
        }
        if let recipient, let member = members[recipient], member.state != .alive,
           !out.contains(where: { $0.nodeID == recipient }) {
            out.append(member.update)
        }
        // One forgotten identity per message, round-robin: a member that missed the rumour (it was cut off
        // when the node was forgotten) still learns every one, at the cost of one small update per message.
        if !forgotten.isEmpty {
            forgottenCursor = (forgottenCursor + 1) % forgottenOrder.count
            let fact = forgottenUpdate(forgottenOrder[forgottenCursor])
            if !out.contains(fact) { out.append(fact) }
        }
        return out
    }

    // MARK: Probing

    enum Action {
        case ping(PeerEndpoint, nodeID: String?, sequence: UInt64)
        case pingRequest(PeerEndpoint, nodeID: String, sequence: UInt64, target: MemberUpdate)
        case forwardAck(PeerEndpoint, sequence: UInt64)
    }

    /// Advances the failure detector to `now`; returns the probes to send.
    mutating func tick(now: UInt64, settings: ReplicationSettings, seeds: [PeerEndpoint],
                       blocked: Set<String>, random: inout SplitMix64) -> [Action] {
        var actions: [Action] = []
        // An unanswered direct probe: ask others to try.
        if var current = probe, !current.acked, !current.indirectSent,
           now >= current.startedAt + settings.probeTimeoutMilliseconds, let target = members[current.target] {
            let helpers = reachable.filter { $0.nodeID != current.target && !blocked.contains($0.nodeID) }
                .shuffled(using: &random).prefix(settings.indirectProbes)
            for helper in helpers {
                actions.append(.pingRequest(helper.endpoint, nodeID: helper.nodeID, sequence: current.sequence, target: target.update))
            }
            current.indirectSent = true
            probe = current
        }
        // Suspects that did not refute in time are dead.
        for (id, member) in members where member.state == .suspect
            && now >= member.stateSince + settings.suspicionTimeoutMilliseconds {
            apply(MemberUpdate(nodeID: id, replica: member.replica, endpoint: member.endpoint,
                               incarnation: member.incarnation, state: .dead), now: now)
        }
        relays = relays.filter { now < $0.value.startedAt + settings.probeIntervalMilliseconds * 2 }

        guard now >= lastProbeAt + settings.probeIntervalMilliseconds else { return actions }
        lastProbeAt = now
        // The period ended: a probe still unanswered makes its target suspect.
        if let finished = probe, !finished.acked, let target = members[finished.target], target.state == .alive {
            apply(MemberUpdate(nodeID: target.nodeID, replica: target.replica, endpoint: target.endpoint,
                               incarnation: target.incarnation, state: .suspect), now: now)
        }
        probe = nil
        // Next target in a shuffled round-robin over reachable members (SWIM's bounded detection time).
        if probeOrder.isEmpty {
            probeOrder = reachable.map(\.nodeID).shuffled(using: &random)
        }
        while let next = probeOrder.popLast() {
            guard let member = members[next], member.state == .alive || member.state == .suspect else { continue }
            let sequence = takeSequence()
            probe = Probe(target: next, sequence: sequence, startedAt: now)
            actions.append(.ping(member.endpoint, nodeID: next, sequence: sequence))
            break
        }
        // Seeds we have not heard from yet: keep knocking.
        let knownEndpoints = Set(members.values.filter { $0.state == .alive || $0.state == .suspect }.map(\.endpoint))
        for seed in seeds where seed != settings.endpoint && !knownEndpoints.contains(seed) {
            actions.append(.ping(seed, nodeID: nil, sequence: takeSequence()))
        }
        // Now and then, every dead member: it may be back. All of them, not one at random: after a
        // partition heals, a node that saw four peers die would otherwise take four periods to see them
        // all again, and replication to them waits for that.
        if now >= lastDeadProbeAt + settings.deadProbeIntervalMilliseconds {
            lastDeadProbeAt = now
            for target in members.values.filter({ $0.state == .dead }).sorted(by: { $0.nodeID < $1.nodeID }) {
                actions.append(.ping(target.endpoint, nodeID: target.nodeID, sequence: takeSequence()))
            }
        }
        return actions
    }

    /// An ack for `sequence` arrived: our probe (direct or indirect) succeeded, or we relay it.
    mutating func acknowledged(_ sequence: UInt64) -> Action? {
        if probe?.sequence == sequence { probe?.acked = true }
        if let relay = relays.removeValue(forKey: sequence) {
            return .forwardAck(relay.requester, sequence: relay.requesterSequence)
        }
        return nil
    }

    /// Another member asks us to probe `target` for it.
    mutating func relayProbe(for requester: PeerEndpoint, sequence: UInt64, target: MemberUpdate, now: UInt64) -> Action {
        let ours = takeSequence()
        relays[ours] = Relay(requester: requester, requesterSequence: sequence, startedAt: now)
        return .ping(target.endpoint, nodeID: target.nodeID, sequence: ours)
    }

    /// This node leaves: its last word to every peer.
    mutating func leave() {
        incarnation += 1
        incarnationChanged = true
        leaving = true
    }

    /// Set when a refutation must be gossiped; the engine adds our own alive update (with our real
    /// endpoint and replica) to the gossip queue.
    var refutationPending = false

    mutating func enqueueSelf(_ update: MemberUpdate) {
        refutationPending = false
        enqueue(update)
    }

    private mutating func takeSequence() -> UInt64 {
        defer { nextSequence += 1 }
        return nextSequence
    }
}
