import CRDT

/// Where a peer can be reached: its peer address (TCP and UDP share the port).
public struct PeerEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Who sent a frame, and their logical time. Every frame starts with it (inside the envelope).
public struct PeerHeader: Sendable, Equatable {
    /// The sender's node name.
    public var nodeID: String
    /// The sender's replica identity (random at its first start, stable after).
    public var replica: ReplicaID
    /// Where the sender listens for peers, so a receiver can answer and gossip it.
    public var endpoint: PeerEndpoint
    /// The sender's SWIM incarnation: it refutes suspicion by raising it.
    public var incarnation: UInt64
    /// The sender's Lamport clock when it sent the frame; receivers advance past it.
    public var lamport: UInt64

    public init(nodeID: String, replica: ReplicaID, endpoint: PeerEndpoint, incarnation: UInt64, lamport: UInt64) {
        self.nodeID = nodeID
        self.replica = replica
        self.endpoint = endpoint
        self.incarnation = incarnation
        self.lamport = lamport
    }
}

/// A member's state as gossiped by SWIM.
public enum MemberState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// `forgotten`: decommissioned for good (`CRDT.FORGET`), or an identity its node abandoned (a wiped or
    /// restored data directory). Sticky: no incarnation overrides it, and that identity is refused.
    case alive = 0, suspect = 1, dead = 2, left = 3, forgotten = 4
    public var description: String { ["alive", "suspect", "dead", "left", "forgotten"][Int(rawValue)] }
}

/// One membership fact, piggybacked on probes: "node X at E is S as of incarnation I".
public struct MemberUpdate: Sendable, Equatable {
    public var nodeID: String
    public var replica: ReplicaID
    public var endpoint: PeerEndpoint
    public var incarnation: UInt64
    public var state: MemberState

    public init(nodeID: String, replica: ReplicaID, endpoint: PeerEndpoint, incarnation: UInt64, state: MemberState) {
        self.nodeID = nodeID
        self.replica = replica
        self.endpoint = endpoint
        self.incarnation = incarnation
        self.state = state
    }
}

/// A key and opaque bytes (a delta or a full state of that key).
public struct KeyedBytes: Sendable, Equatable {
    public var key: [UInt8]
    public var bytes: [UInt8]
    public init(key: [UInt8], bytes: [UInt8]) {
        self.key = key
        self.bytes = bytes
    }
}

/// A key and the digest of its state.
public struct KeyDigest: Sendable, Equatable {
    public var key: [UInt8]
    public var digest: Digest128
    public init(key: [UInt8], digest: Digest128) {
        self.key = key
        self.digest = digest
    }
}

/// The messages peers exchange. See docs/protocol.md for the exchange each belongs to.
public enum PeerMessage: Sendable, Equatable {
    // SWIM failure detection; membership updates ride along.
    case ping(sequence: UInt64, updates: [MemberUpdate])
    case ack(sequence: UInt64, updates: [MemberUpdate])
    case pingRequest(sequence: UInt64, target: MemberUpdate)
    case leave

    // Delta-interval dissemination (Almeida et al. 2018, algorithm 2): the sender's buffered deltas with
    // sequence numbers in `from..<to`, and the receiver's acknowledgement of everything below `receivedThrough`.
    /// `reaching` names the members whose acknowledgements of the sender's own sequence are advancing:
    /// the sender delivers these entries to them itself (and resends until they acknowledge), so a
    /// receiver does not forward the entries to them.
    case deltas(from: UInt64, to: UInt64, entries: [KeyedBytes], reaching: [String] = [])
    case deltaAck(receivedThrough: UInt64)

    // Digest-driven repair: roots, then bucket digests, then per-key digests, then states.
    /// Starts a comparison. Not `urgent`: a safety-net round between peers with nothing known missing,
    /// in which the receiver leaves out keys it changed recently (their deltas are in flight). `urgent`:
    /// the sender knows the receiver lacks deltas (it was told to skip a backlog), and every key counts.
    /// `applied`: the write stamps the sender had applied when it computed the digest (gap-free, per
    /// replica); a receiver whose root is equal holds the same writes' effects, and counts them applied.
    case syncRoot(Digest128, urgent: Bool, applied: [ReplicaID: UInt64] = [:])
    case syncBuckets([Digest128])
    /// One bucket's keys in `(after, through]` (nil: unbounded), so a bucket can span several frames and a
    /// receiver pushes only its own keys within the range each frame covers.
    case syncKeys(bucket: UInt32, after: [UInt8]?, through: [UInt8]?, keys: [KeyDigest])
    case requestStates(keys: [[UInt8]])
    case states([KeyedBytes])
    /// A piece of one large state, so that no single message carries a huge object.
    case stateChunk(key: [UInt8], totalLength: UInt64, offset: UInt64, bytes: [UInt8])

    /// A `PUBLISH` on the sender, for the receiver's subscribers: best effort, at most once, never
    /// forwarded, never acknowledged, and not state (nothing is persisted). `sharded`: an `SPUBLISH`.
    case publish(channel: [UInt8], message: [UInt8], sharded: Bool = false)

    /// The write stamps the sender has applied, gap-free per replica: its part of the causal-stability
    /// frontier (docs/protocol.md, "Stability"). About once a second to every reachable member.
    case stability(applied: [ReplicaID: UInt64])

    var typeTag: UInt8 {
        switch self {
        case .ping: 1
        case .ack: 2
        case .pingRequest: 3
        case .leave: 4
        case .deltas: 10
        case .deltaAck: 11
        case .syncRoot: 20
        case .syncBuckets: 21
        case .syncKeys: 22
        case .requestStates: 23
        case .states: 24
        case .stateChunk: 25
        case .publish: 30
        case .stability: 40
        }
    }

    /// A short name for logs and metrics.
    public var name: String {
        switch self {
        case .ping: "ping"
        case .ack: "ack"
        case .pingRequest: "ping_req"
        case .leave: "leave"
        case .deltas: "deltas"
        case .deltaAck: "delta_ack"
        case .syncRoot: "sync_root"
        case .syncBuckets: "sync_buckets"
        case .syncKeys: "sync_keys"
        case .requestStates: "request_states"
        case .states: "states"
        case .stateChunk: "state_chunk"
        case .publish: "publish"
        case .stability: "stability"
        }
    }
}

/// Encodes and decodes a header and a message: the plaintext inside an `Envelope`.
public enum PeerCodec {
    /// Limits on what a peer may make us decode: no more than one frame holds.
    public static let limits = DecodingLimits(maxBytes: PeerFrameLimit.bytes, maxElements: 1 << 20, maxDepth: 4)

    public static func encode(_ header: PeerHeader, _ message: PeerMessage) -> [UInt8] {
        var w = BinaryWriter(capacity: 128)
        w.write(byte: message.typeTag)
        w.write(lengthPrefixed: Array(header.nodeID.utf8))
        w.write(varint: header.replica.rawValue)
        write(header.endpoint, to: &w)
        w.write(varint: header.incarnation)
        w.write(varint: header.lamport)
        switch message {
        case .ping(let sequence, let updates), .ack(let sequence, let updates):
            w.write(varint: sequence)
            w.write(varint: UInt64(updates.count))
            for update in updates { write(update, to: &w) }
        case .pingRequest(let sequence, let target):
            w.write(varint: sequence)
            write(target, to: &w)
        case .leave:
            break
        case .deltas(let from, let to, let entries, let reaching):
            w.write(varint: from)
            w.write(varint: to)
            write(entries, to: &w)
            if !reaching.isEmpty {
                w.write(varint: UInt64(reaching.count))
                for node in reaching { w.write(lengthPrefixed: Array(node.utf8)) }
            }
        case .deltaAck(let receivedThrough):
            w.write(varint: receivedThrough)
        case .syncRoot(let digest, let urgent, let applied):
            write(digest, to: &w)
            w.write(byte: urgent ? 1 : 0)
            if !applied.isEmpty { write(applied, to: &w) }
        case .syncBuckets(let digests):
            w.write(varint: UInt64(digests.count))
            for digest in digests { write(digest, to: &w) }
        case .syncKeys(let bucket, let after, let through, let keys):
            w.write(varint: UInt64(bucket))
            writeOptional(after, to: &w)
            writeOptional(through, to: &w)
            w.write(varint: UInt64(keys.count))
            for entry in keys {
                w.write(lengthPrefixed: entry.key)
                write(entry.digest, to: &w)
            }
        case .requestStates(let keys):
            w.write(varint: UInt64(keys.count))
            for key in keys { w.write(lengthPrefixed: key) }
        case .states(let entries):
            write(entries, to: &w)
        case .stateChunk(let key, let totalLength, let offset, let bytes):
            w.write(lengthPrefixed: key)
            w.write(varint: totalLength)
            w.write(varint: offset)
            w.write(lengthPrefixed: bytes)
        case .publish(let channel, let message, let sharded):
            w.write(lengthPrefixed: channel)
            w.write(lengthPrefixed: message)
            if sharded { w.write(byte: 1) }
        case .stability(let applied):
            write(applied, to: &w)
        }
        return w.bytes
    }

    /// Decodes an opened frame. Any malformation is `.malformed`; an unknown type is `.unknownType`.
    public static func decode(_ bytes: [UInt8]) throws(FrameRejection) -> (PeerHeader, PeerMessage) {
        do {
            var r = try BinaryReader(bytes, limits: limits)
            let tag = try r.readByte()
            let nodeBytes = try r.readLengthPrefixed()
            guard !nodeBytes.isEmpty, nodeBytes.count <= 64, let nodeID = String(validating: nodeBytes, as: UTF8.self) else {
                throw FrameRejection.malformed
            }
            let header = PeerHeader(
                nodeID: nodeID, replica: ReplicaID(try r.readVarint()), endpoint: try readEndpoint(&r),
                incarnation: try readCounter(&r), lamport: try readCounter(&r))
            let message: PeerMessage
            switch tag {
            case 1, 2:
                let sequence = try r.readVarint()
                let count = try r.readCount(minimumElementSize: 6)
                var updates: [MemberUpdate] = []
                for _ in 0..<count { updates.append(try readUpdate(&r)) }
                message = tag == 1 ? .ping(sequence: sequence, updates: updates) : .ack(sequence: sequence, updates: updates)
            case 3:
                message = .pingRequest(sequence: try r.readVarint(), target: try readUpdate(&r))
            case 4:
                message = .leave
            case 10:
                let from = try r.readVarint()
                let to = try r.readVarint()
                guard from <= to else { throw FrameRejection.malformed }
                let entries = try readEntries(&r)
                // Added after the entries; a frame without it names no member.
                var reaching: [String] = []
                if r.remaining > 0 {
                    let count = try r.readCount(minimumElementSize: 2)
                    guard count <= Self.maximumReaching else { throw FrameRejection.malformed }
                    for _ in 0..<count {
                        let node = try r.readLengthPrefixed()
                        guard node.count <= 255, let name = String(validating: node, as: UTF8.self) else {
                            throw FrameRejection.malformed
                        }
                        reaching.append(name)
                    }
                }
                message = .deltas(from: from, to: to, entries: entries, reaching: reaching)
            case 11:
                message = .deltaAck(receivedThrough: try r.readVarint())
            case 20:
                let digest = try readDigest(&r)
                // The flag was added after the digest; a frame without it is a safety-net round.
                let urgent = r.remaining > 0 ? try r.readByte() : 0
                guard urgent <= 1 else { throw FrameRejection.malformed }
                // The applied vector came later still; without it, nothing is claimed.
                let applied = r.remaining > 0 ? try readStampVector(&r) : [:]
                message = .syncRoot(digest, urgent: urgent == 1, applied: applied)
            case 21:
                let count = try r.readCount(minimumElementSize: 16)
                var digests: [Digest128] = []
                for _ in 0..<count { digests.append(try readDigest(&r)) }
                message = .syncBuckets(digests)
            case 22:
                let bucket = try r.readVarint()
                guard bucket <= UInt64(UInt32.max) else { throw FrameRejection.malformed }
                let after = try readOptional(&r)
                let through = try readOptional(&r)
                let count = try r.readCount(minimumElementSize: 17)
                var keys: [KeyDigest] = []
                for _ in 0..<count { keys.append(KeyDigest(key: try r.readLengthPrefixed(), digest: try readDigest(&r))) }
                message = .syncKeys(bucket: UInt32(bucket), after: after, through: through, keys: keys)
            case 23:
                let count = try r.readCount(minimumElementSize: 1)
                var keys: [[UInt8]] = []
                for _ in 0..<count { keys.append(try r.readLengthPrefixed()) }
                message = .requestStates(keys: keys)
            case 24:
                message = .states(try readEntries(&r))
            case 25:
                let key = try r.readLengthPrefixed()
                let total = try r.readVarint()
                let offset = try r.readVarint()
                let chunk = try r.readLengthPrefixed()
                guard offset <= total, UInt64(chunk.count) <= total - offset else { throw FrameRejection.malformed }
                message = .stateChunk(key: key, totalLength: total, offset: offset, bytes: chunk)
            case 30:
                let channel = try r.readLengthPrefixed()
                let payload = try r.readLengthPrefixed()
                // The flag follows only for a sharded message.
                let sharded = r.remaining > 0 ? try r.readByte() : 0
                guard sharded <= 1 else { throw FrameRejection.malformed }
                message = .publish(channel: channel, message: payload, sharded: sharded == 1)
            case 40:
                message = .stability(applied: try readStampVector(&r))
            default:
                throw FrameRejection.unknownType
            }
            try r.finish()
            return (header, message)
        } catch let rejection as FrameRejection {
            throw rejection
        } catch {
            throw .malformed
        }
    }

    /// Logical counters (Lamport values, incarnations) a peer may send: far above anything real, far
    /// enough below 2^64 that adding to them can never overflow (a forged 2^64-1 must not trap a receiver).
    public static let maximumCounter: UInt64 = 1 << 62
    /// Members a `deltas` frame may name in `reaching`.
    public static let maximumReaching = 64

    /// Replicas a stamp vector may name: far more than a cluster has members (and their past identities).
    public static let maximumStampVectorEntries = 4096

    /// Sorted by replica, each with a nonzero mark: canonical, so a vector has one encoding.
    private static func write(_ vector: [ReplicaID: UInt64], to w: inout BinaryWriter) {
        w.write(varint: UInt64(vector.count))
        for (replica, mark) in vector.sorted(by: { $0.key < $1.key }) {
            w.write(varint: replica.rawValue)
            w.write(varint: mark)
        }
    }

    private static func readStampVector(_ r: inout BinaryReader) throws -> [ReplicaID: UInt64] {
        let count = try r.readCount(minimumElementSize: 2)
        guard count <= maximumStampVectorEntries else { throw FrameRejection.malformed }
        var vector: [ReplicaID: UInt64] = [:]
        var previous: UInt64?
        for _ in 0..<count {
            let replica = try r.readVarint()
            let mark = try readCounter(&r)
            guard mark > 0, previous.map({ replica > $0 }) ?? true else { throw FrameRejection.malformed }
            previous = replica
            vector[ReplicaID(replica)] = mark
        }
        return vector
    }

    private static func readCounter(_ r: inout BinaryReader) throws -> UInt64 {
        let value = try r.readVarint()
        guard value <= maximumCounter else { throw FrameRejection.malformed }
        return value
    }

    private static func write(_ endpoint: PeerEndpoint, to w: inout BinaryWriter) {
        w.write(lengthPrefixed: Array(endpoint.host.utf8))
        w.write(varint: UInt64(endpoint.port))
    }

    private static func readEndpoint(_ r: inout BinaryReader) throws -> PeerEndpoint {
        let host = try r.readLengthPrefixed()
        let port = try r.readVarint()
        guard host.count <= 255, port <= UInt64(UInt16.max), let text = String(validating: host, as: UTF8.self) else {
            throw FrameRejection.malformed
        }
        return PeerEndpoint(host: text, port: UInt16(port))
    }

    private static func write(_ update: MemberUpdate, to w: inout BinaryWriter) {
        w.write(lengthPrefixed: Array(update.nodeID.utf8))
        w.write(varint: update.replica.rawValue)
        write(update.endpoint, to: &w)
        w.write(varint: update.incarnation)
        w.write(byte: update.state.rawValue)
    }

    private static func readUpdate(_ r: inout BinaryReader) throws -> MemberUpdate {
        let node = try r.readLengthPrefixed()
        guard !node.isEmpty, node.count <= 64, let nodeID = String(validating: node, as: UTF8.self) else {
            throw FrameRejection.malformed
        }
        let replica = ReplicaID(try r.readVarint())
        let endpoint = try readEndpoint(&r)
        let incarnation = try readCounter(&r)
        guard let state = MemberState(rawValue: try r.readByte()) else { throw FrameRejection.malformed }
        return MemberUpdate(nodeID: nodeID, replica: replica, endpoint: endpoint, incarnation: incarnation, state: state)
    }

    private static func write(_ entries: [KeyedBytes], to w: inout BinaryWriter) {
        w.write(varint: UInt64(entries.count))
        for entry in entries {
            w.write(lengthPrefixed: entry.key)
            w.write(lengthPrefixed: entry.bytes)
        }
    }

    private static func readEntries(_ r: inout BinaryReader) throws -> [KeyedBytes] {
        let count = try r.readCount(minimumElementSize: 2)
        var entries: [KeyedBytes] = []
        entries.reserveCapacity(count)
        for _ in 0..<count { entries.append(KeyedBytes(key: try r.readLengthPrefixed(), bytes: try r.readLengthPrefixed())) }
        return entries
    }

    private static func writeOptional(_ bytes: [UInt8]?, to w: inout BinaryWriter) {
        guard let bytes else { return w.write(byte: 0) }
        w.write(byte: 1)
        w.write(lengthPrefixed: bytes)
    }

    private static func readOptional(_ r: inout BinaryReader) throws -> [UInt8]? {
        switch try r.readByte() {
        case 0: return nil
        case 1: return try r.readLengthPrefixed()
        default: throw FrameRejection.malformed
        }
    }

    private static func write(_ digest: Digest128, to w: inout BinaryWriter) {
        w.write(fixed64: digest.high)
        w.write(fixed64: digest.low)
    }

    private static func readDigest(_ r: inout BinaryReader) throws -> Digest128 {
        Digest128(high: try r.readFixed64(), low: try r.readFixed64())
    }
}
