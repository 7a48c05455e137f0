import CRDT
import Wire

/// Replication progress with one peer, remembered per (node, replica) so that a node rebuilt with a new
/// identity starts from zero instead of inheriting the old one's progress.
struct PeerProgress: Equatable {
    var replica: ReplicaID
    var sequence: UInt64
}

/// Everything the engine keeps to replicate: membership, the delta buffer and per-peer progress, the
/// partitions injected for tests, and counters for the metrics.
struct Replicator {
    var settings: ReplicationSettings
    var membership: Membership
    var buffer: DeltaBuffer
    /// Sequence number the next buffered delta gets; persisted, so peers' acknowledgements stay meaningful.
    var nextSequence: UInt64
    /// Per peer: how many of *our* deltas it acknowledged (everything below is there).
    var acknowledged: [String: PeerProgress] = [:]
    /// Per peer: how many of *its* deltas we hold without a gap; sent back as our acknowledgement.
    var received: [String: PeerProgress] = [:]
    /// Deltas buffered since the last flush: pushed at once to a few random peers.
    var pendingEager: [DeltaBuffer.Entry] = []
    /// Peers that sent us deltas of the pending batch: they have them, so others are pushed to first.
    var pendingSources: Set<String> = []
    /// Peers that may lack something the buffer no longer holds: compare digests with them first.
    var needsSync: Set<String> = []
    /// Nodes whose traffic is dropped here (`CRDT.PARTITION`).
    var blocked: Set<String> = []
    var random: SplitMix64
    var now: UInt64 = 0
    var lastGossipAt: UInt64 = 0
    var lastSyncAt: UInt64 = 0
    var syncRounds: UInt64 = 0
    /// Large states being received in chunks, one per peer at a time.
    var assemblies: [String: Assembly] = [:]
    var progressChanged = false
    var stats = ReplicationStats()
    /// Per peer, large keys whose repair is held back while their difference is in flux (see
    /// `Engine.deferRepair`), with the digests last compared.
    var repairDeferrals: [String: [Bytes: Deferral]] = [:]
    static let maxDeferralsPerPeer = 1024

    struct Deferral {
        var ours: Digest128
        var theirs: Digest128
        var rounds: Int
    }

    struct Assembly {
        var key: Bytes
        var total: Int
        var bytes: Bytes
        /// Offsets of the chunks placed so far, and how many bytes they hold.
        var offsets: Set<UInt64> = []
        var received = 0
    }

    init(settings: ReplicationSettings, incarnation: UInt64, nextSequence: UInt64, selfID: String) {
        self.settings = settings
        self.membership = Membership(selfID: selfID, incarnation: incarnation)
        self.buffer = DeltaBuffer(capacityBytes: settings.deltaBufferBytes)
        self.nextSequence = nextSequence
        self.random = SplitMix64(seed: settings.randomSeed)
    }

    /// Live, reachable peers: alive or suspect, and not cut off by an injected partition.
    var targets: [Membership.Member] {
        membership.reachable.filter { !blocked.contains($0.nodeID) }
    }

    func acknowledged(by member: Membership.Member) -> UInt64 {
        guard let progress = acknowledged[member.nodeID], progress.replica == member.replica else { return 0 }
        return progress.sequence
    }
}

/// Counters the daemon exports as metrics.
public struct ReplicationStats: Sendable, Equatable {
    public var framesIn: [String: UInt64] = [:]
    public var framesOut: [String: UInt64] = [:]
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    /// Frames dropped, by reason (`FrameRejection` raw values, plus `partitioned` and `self`).
    public var rejected: [String: UInt64] = [:]
    public var deltasApplied: UInt64 = 0
    public var statesApplied: UInt64 = 0
    public var bufferDrops: UInt64 = 0
    /// Peers told to skip a backlog larger than `maxReplayBytes` and repaired by digests instead.
    public var replaysSkipped: UInt64 = 0
    /// Whole-state transfers of large keys held back because their difference was still changing.
    public var repairsDeferred: UInt64 = 0
    public init() {}
}
