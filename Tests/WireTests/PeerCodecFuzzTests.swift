import CRDT
import Testing
import TestSupport
@testable import Wire

/// The peer message decoder against every message type, valid and mutated: valid messages round-trip,
/// and no mutation of one (bytes rewritten, truncated, extended) can crash the decoder.
@Suite struct PeerCodecFuzzTests {
    static let header = PeerHeader(nodeID: "n1", replica: ReplicaID(7), endpoint: PeerEndpoint(host: "10.0.0.1", port: 7946),
                                   incarnation: 3, lamport: 99)

    static var messages: [PeerMessage] {
        let update = MemberUpdate(nodeID: "n2", replica: ReplicaID(8), endpoint: PeerEndpoint(host: "10.0.0.2", port: 1),
                                  incarnation: 1, state: .suspect)
        let digest = Digest128(hashing: [1, 2, 3])
        return [
            .ping(sequence: 1, updates: [update]), .ack(sequence: 2, updates: []), .pingRequest(sequence: 3, target: update),
            .leave, .deltas(from: 1, to: 3, entries: [KeyedBytes(key: [1], bytes: [2, 3])], reaching: ["n3"]),
            .deltaAck(receivedThrough: 9), .syncRoot(digest, urgent: true, applied: [ReplicaID(7): 4, ReplicaID(9): 1]),
            .syncBuckets([digest, digest]), .syncKeys(bucket: 2, after: [1], through: nil, keys: [KeyDigest(key: [4], digest: digest)]),
            .requestStates(keys: [[1], [2]]), .states([KeyedBytes(key: [5], bytes: [6])]),
            .stateChunk(key: [1], totalLength: 10, offset: 2, bytes: [1, 2]), .publish(channel: [1], message: [2], sharded: true),
            .stability(applied: [ReplicaID(7): 12]),
        ]
    }

    @Test func everyMessageRoundTrips() throws {
        for message in Self.messages {
            let (header, decoded) = try PeerCodec.decode(PeerCodec.encode(Self.header, message))
            #expect(decoded == message)
            #expect(header.nodeID == "n1" && header.lamport == 99)
        }
    }

    @Test func mutatedMessagesNeverCrashTheDecoder() {
        var rng = SplitMix64(seed: 0xFEED)
        let valid = Self.messages.map { PeerCodec.encode(Self.header, $0) }
        var decoded = 0
        for _ in 0..<60_000 {
            var input = valid[Int(rng.next() % UInt64(valid.count))]
            switch rng.next() % 3 {
            case 0:
                for _ in 0..<(1 + rng.next() % 4) {
                    input[Int(rng.next() % UInt64(input.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 1:
                input.removeLast(Int(rng.next() % UInt64(input.count)))
            default:
                input += (0..<(1 + rng.next() % 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            if (try? PeerCodec.decode(input)) != nil { decoded += 1 }
        }
        // Some mutations leave a valid message (a rewritten payload byte); most must be refused.
        #expect(decoded < 60_000)
    }
}
