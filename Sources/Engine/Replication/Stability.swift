import CRDT

/// Which writes every member has applied: the causal-stability frontier, as a state machine in the
/// style of `Membership`. It takes the stamps of local writes and of joined content, members' reports and
/// digest agreements, and answers with the frontier; it does no I/O.
///
/// Every local write gets a node-wide write stamp `(replica, n)` (see `WriteStamps`), carried in the key's
/// state. A node counts, as a `CausalContext` over stamps, the writes whose effects it holds:
/// - its own, as it makes them;
/// - the stamps of any key content it joins (a delta or a repair state): the state of a key reflects the
///   write that carried each of its stamps;
/// - everything a peer had applied when their root digests are equal (`adopt`): equal states hold the
///   effects of the same writes, which is how writes that only repair delivered get counted.
///
/// Members report the gap-free part (a version vector) about once a second. The frontier is the pointwise
/// minimum over this node and every current member, dead or partitioned ones included: a write at or
/// below it is applied everywhere, so nothing concurrent with it can still arrive. A member that has not
/// reported (or reported from an older identity) holds the frontier at zero and is named as the holder;
/// `CRDT.FORGET` is how an operator lets it move on past a member gone for good. No clock decides any of it.
struct Stability {
    let replica: ReplicaID
    /// Write stamps whose effects this node holds.
    private(set) var applied: CausalContext
    /// The last vector each member reported, by node id.
    private(set) var reports: [String: Report] = [:]
    /// Set when the gap-free part of `applied` grew and must be persisted.
    var changed = false
    /// Stamps beyond a gap are remembered up to this many; past it they are forgotten (the frontier can
    /// only be lower for it: safe) until a digest agreement fills the gap.
    static let maxOutOfOrderStamps = 1 << 16

    struct Report: Equatable {
        var replica: ReplicaID
        var vector: [ReplicaID: UInt64]
    }

    /// Where the frontier stands, as `CRDT.STABILITY` and `INFO replication` show it.
    struct Frontier: Equatable {
        /// Per replica, every write stamp at or below this is applied by every member.
        var vector: [ReplicaID: UInt64]
        /// The node furthest behind (this node's own id when it is), `nil` when nobody lags.
        var holder: String?
        /// Writes the holder has not reported that some node has applied (summed over replicas).
        var behind: UInt64
        /// Members from which no report (from their current identity) has arrived: each holds it at zero.
        var unreported: [String]
    }

    init(replica: ReplicaID, recovered vector: [ReplicaID: UInt64] = [:]) {
        self.replica = replica
        applied = CausalContext()
        adopt(vector)
        changed = false
    }

    /// The gap-free part of what this node applied: what it reports.
    var vector: [ReplicaID: UInt64] { applied.versionVector }

    /// The stamp the next local write gets. Own stamps never have a gap, so they are all in the version
    /// vector: O(1), where `nextDot` would scan the out-of-order stamps of every replica on every write.
    var nextStamp: Dot { Dot(replica: replica, counter: applied.versionVector[replica, default: 0] + 1) }

    /// A local write took `stamp`.
    mutating func wrote(_ stamp: Dot) {
        applied.insert(stamp)
        changed = true
    }

    /// Key content was joined (whether or not it changed anything here): its writes' effects are held.
    mutating func joined(_ stamps: WriteStamps) {
        for entry in stamps.entries where !applied.contains(Dot(replica: entry.replica, counter: entry.stamp)) {
            let covered = applied.versionVector[entry.replica, default: 0]
            applied.insert(Dot(replica: entry.replica, counter: entry.stamp))
            if applied.versionVector[entry.replica, default: 0] != covered { changed = true }
        }
        if applied.cloud.count > Self.maxOutOfOrderStamps {
            applied = CausalContext(versionVector: applied.versionVector)
        }
    }

    /// Everything in `vector` is applied here (a peer that had applied it holds the same state).
    mutating func adopt(_ vector: [ReplicaID: UInt64]) {
        guard vector.contains(where: { $0.value > applied.versionVector[$0.key, default: 0] }) else { return }
        applied.formUnion(CausalContext(versionVector: vector))
        changed = true
    }

    /// A member's report, kept with the identity that sent it: the frontier counts it only while that is
    /// the member's current identity.
    mutating func receive(report vector: [ReplicaID: UInt64], from node: String, replica: ReplicaID) {
        reports[node] = Report(replica: replica, vector: vector)
    }

    /// Forgets the reports of nodes `keep` rejects (forgotten ones).
    mutating func prune(keeping keep: (String, ReplicaID) -> Bool) {
        reports = reports.filter { keep($0.key, $0.value.replica) }
    }

    /// The frontier over this node (`selfID`) and `members`. O(members x replicas).
    func frontier(selfID: String, members: [Membership.Member]) -> Frontier {
        var vectors: [(node: String, vector: [ReplicaID: UInt64])] = [(selfID, vector)]
        var unreported: [String] = []
        for member in members.sorted(by: { $0.nodeID < $1.nodeID }) {
            if let report = reports[member.nodeID], report.replica == member.replica {
                vectors.append((member.nodeID, report.vector))
            } else {
                unreported.append(member.nodeID)
                vectors.append((member.nodeID, [:]))
            }
        }
        var lowest = vector
        var highest = vector
        for (_, other) in vectors.dropFirst() {
            for (replica, mark) in lowest { lowest[replica] = min(mark, other[replica, default: 0]) }
            for (replica, mark) in other { highest[replica] = max(highest[replica, default: 0], mark) }
        }
        lowest = lowest.filter { $0.value > 0 }
        var holder: String?
        var behind: UInt64 = 0
        for (node, other) in vectors {
            let lag = highest.reduce(UInt64(0)) { $0 &+ ($1.value - min($1.value, other[$1.key, default: 0])) }
            if lag > behind {
                holder = node
                behind = lag
            }
        }
        return Frontier(vector: lowest, holder: holder, behind: behind, unreported: unreported)
    }

    // MARK: Encoding (the persisted vector)

    static func encode(_ vector: [ReplicaID: UInt64]) -> Bytes {
        var writer = BinaryWriter()
        writer.write(varint: UInt64(vector.count))
        for (replica, mark) in vector.sorted(by: { $0.key < $1.key }) {
            writer.write(varint: replica.rawValue)
            writer.write(varint: mark)
        }
        return writer.bytes
    }

    static func decode(_ bytes: Bytes) -> [ReplicaID: UInt64]? {
        guard var reader = try? BinaryReader(bytes), let count = try? reader.readCount(minimumElementSize: 2) else { return nil }
        var vector: [ReplicaID: UInt64] = [:]
        for _ in 0..<count {
            guard let replica = try? reader.readVarint(), let mark = try? reader.readVarint() else { return nil }
            vector[ReplicaID(replica)] = mark
        }
        guard (try? reader.finish()) != nil else { return nil }
        return vector
    }
}
