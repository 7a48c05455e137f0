import Wire

/// How a node talks to its peers. Defaults suit a LAN or loopback cluster; every limit is explicit.
public struct ReplicationSettings: Sendable {
    /// Where this node listens for peers (advertised to them).
    public var endpoint: PeerEndpoint
    /// Peers contacted until they answer; membership spreads by gossip from there.
    public var seeds: [PeerEndpoint] = []
    /// Seals and opens frames (cluster label, keyring).
    public var envelope: Envelope
    /// Random live peers each new delta is pushed to at once (and forwarded to on first receipt).
    public var fanout = 3
    /// Period of the delta gossip round: every live peer is sent what it has not acknowledged.
    public var gossipIntervalMilliseconds: UInt64 = 200
    /// Period of the digest comparison with one random peer (anti-entropy repair).
    public var syncIntervalMilliseconds: UInt64 = 1000
    /// SWIM protocol period: one member probed per period.
    public var probeIntervalMilliseconds: UInt64 = 1000
    /// A direct probe unanswered this long is retried through `indirectProbes` other members.
    public var probeTimeoutMilliseconds: UInt64 = 400
    /// Members asked to probe on our behalf.
    public var indirectProbes = 3
    /// A suspect not refuted within this long is declared dead.
    public var suspicionTimeoutMilliseconds: UInt64 = 5000
    /// Dead members are pinged this often, so that a healed partition or a restarted node is noticed.
    public var deadProbeIntervalMilliseconds: UInt64 = 1000
    /// Largest datagram payload sent (envelope included); larger frames travel on the stream.
    public var maxDatagramBytes = 1400
    /// Largest frame this node packs for the stream: at most `PeerFrameLimit.bytes`, which every receiver
    /// enforces (tests lower it to split repair into many frames). Larger states go as `stateChunk`s.
    public var maxFrameBytes = PeerFrameLimit.bytes {
        didSet { maxFrameBytes = min(maxFrameBytes, PeerFrameLimit.bytes) }
    }
    /// Size of one chunk of a large state.
    public var chunkBytes = 256 << 10
    /// The largest state accepted from a peer, in bytes, however it is chunked.
    public var maxObjectBytes = 64 << 20
    /// Bytes of deltas kept for peers that have not acknowledged them; past it the oldest are dropped
    /// and the peers that lacked them are repaired by digest comparison instead.
    public var deltaBufferBytes = 8 << 20
    /// Bytes of deltas sent to one peer in one gossip round.
    public var maxDeltaBytesPerRound = 256 << 10
    /// Bytes of deltas sent to one peer and not yet acknowledged: past it nothing new is sent to that
    /// peer until its acknowledgements catch up (flow control; a slow peer is not buried).
    public var maxInFlightBytes = 512 << 10
    /// Unacknowledged deltas are resent from the peer's acknowledgement when it has not advanced for
    /// this long (a lost frame, or a peer that restarted); until then a round sends only what is new.
    public var retransmitMilliseconds: UInt64 = 1000
    /// A peer more than this many bytes of deltas behind (restarted, healed after a long partition) is
    /// not replayed the backlog: it is told to skip it and repaired by digest comparison, whose cost
    /// follows the keys that differ, not the history that made them differ.
    public var maxReplayBytes = 1 << 20
    /// Keys are hashed into this many buckets for digest comparison.
    public var digestBuckets = 64
    /// Times each membership update is piggybacked before it is dropped from the gossip queue.
    public var membershipRetransmits = 6
    /// Seed for the random choices (peers to push to, probe order): fixed in simulation, random in the daemon.
    public var randomSeed: UInt64 = 0

    public init(endpoint: PeerEndpoint, envelope: Envelope) {
        self.endpoint = endpoint
        self.envelope = envelope
    }
}

/// A small, fast, seedable generator (SplitMix64), so that a simulation run replays exactly from its seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
