import CRDT
import RESP
import Testing
import Wire
@testable import Engine

/// Write stamps, the applied vectors members report, and the causal-stability frontier they give.
@Suite struct WriteStampsTests {
    let a = ReplicaID(1), b = ReplicaID(2), c = ReplicaID(3)

    @Test func entriesStaySortedAndTakeTheMaximum() {
        var stamps = WriteStamps()
        #expect(stamps.isEmpty)
        let grew1 = stamps.raise(b, to: 5)
        #expect(grew1)
        let grew2 = stamps.raise(c, to: 2)
        #expect(grew2)
        let grew3 = stamps.raise(a, to: 9)
        #expect(grew3)
        let grew4 = stamps.raise(b, to: 4)
        #expect(!grew4, "lower: no change")
        let grew5 = stamps.raise(b, to: 7)
        #expect(grew5)
        #expect(stamps.entries.map(\.replica) == [a, b, c])
        #expect(stamps.entries.map(\.stamp) == [9, 7, 2])
        var other = WriteStamps(c, 8)
        let grew6 = other.formMaximum(stamps)
        #expect(grew6)
        #expect(other == stamps.with(c, 8))
        let grew7 = other.formMaximum(stamps)
        #expect(!grew7, "idempotent")
        #expect(stamps.isCovered(by: [a: 9, b: 7, c: 2]))
        #expect(!stamps.isCovered(by: [a: 9, b: 6, c: 2]))
        #expect(!stamps.isCovered(by: [a: 9, b: 7]))
    }

    @Test func encodingRoundTripsAndRejectsWhatIsNotCanonical() throws {
        var stamps = WriteStamps(b, 3)
        stamps.raise(a, to: 1 << 40)
        var writer = BinaryWriter()
        stamps.encode(to: &writer)
        var reader = try BinaryReader(writer.bytes)
        #expect(try WriteStamps(from: &reader) == stamps)
        for bad: [UInt8] in [[0], [1, 1, 0], [2, 2, 1, 1, 1], [2, 1, 1, 1, 1], [3, 1, 1]] {
            var reader = try BinaryReader(bad)
            #expect(throws: CRDTDecodingError.self, "\(bad)") { _ = try WriteStamps(from: &reader) }
        }
    }

    @Test func aKeyObjectCarriesItsStampsThroughEncodingDigestAndJoin() throws {
        var object = KeyObject()
        var counter = ResettableCounter()
        object.counter = try counter.add(1, replica: a)
        let unstamped = object.digest(key: [1])
        object.stamps = WriteStamps(a, 4)
        #expect(object.digest(key: [1]) == unstamped, "stamps are bookkeeping, not content: not digested")
        #expect(try KeyObject(serialized: object.serialized()) == object)
        var other = KeyObject()
        other.stamps = WriteStamps(b, 2)
        #expect(!other.isBottom)
        let grew8 = other.inflate(with: object)
        #expect(grew8)
        #expect(other.stamps.entries.map(\.stamp) == [4, 2])
        let grew9 = other.inflate(with: object)
        #expect(!grew9, "nothing new the second time")
    }
}

extension WriteStamps {
    func with(_ replica: ReplicaID, _ stamp: UInt64) -> WriteStamps {
        var copy = self
        copy.raise(replica, to: stamp)
        return copy
    }
}

@Suite struct StabilityTests {
    let a = ReplicaID(1), b = ReplicaID(2), c = ReplicaID(3)

    func member(_ node: String, _ replica: ReplicaID, _ state: MemberState = .alive) -> Membership.Member {
        Membership.Member(nodeID: node, replica: replica, endpoint: PeerEndpoint(host: "10.0.0.1", port: 1),
                          incarnation: 1, state: state, stateSince: 0)
    }

    @Test func theFrontierIsTheMinimumOverEveryMemberAndNamesTheOneBehind() {
        var stability = Stability(replica: a)
        for _ in 0..<5 { stability.wrote(stability.nextStamp) }
        stability.joined(WriteStamps(b, 1))
        stability.joined(WriteStamps(b, 2))
        #expect(stability.vector == [a: 5, b: 2])
        let members = [member("nb", b), member("nc", c, .dead)]
        // Nobody reported: held at zero by both, the first named.
        var frontier = stability.frontier(selfID: "na", members: members)
        #expect(frontier.vector.isEmpty)
        #expect(frontier.unreported == ["nb", "nc"])
        stability.receive(report: [a: 5, b: 2], from: "nb", replica: b)
        stability.receive(report: [a: 3, b: 2], from: "nc", replica: c)
        frontier = stability.frontier(selfID: "na", members: members)
        #expect(frontier.vector == [a: 3, b: 2], "a dead member holds it back too")
        #expect(frontier.holder == "nc")
        #expect(frontier.behind == 2)
        #expect(frontier.unreported.isEmpty)
        // A report from an identity the member no longer has counts for nothing.
        frontier = stability.frontier(selfID: "na", members: [member("nb", b), member("nc", ReplicaID(99))])
        #expect(frontier.vector.isEmpty && frontier.unreported == ["nc"])
        // Forgotten: pruned, and no longer a member, so the frontier moves on.
        stability.prune { node, _ in node != "nc" }
        frontier = stability.frontier(selfID: "na", members: [member("nb", b)])
        #expect(frontier.vector == [a: 5, b: 2])
        #expect(frontier.holder == nil && frontier.behind == 0)
    }

    @Test func thisNodeCanBeTheOneBehind() {
        var stability = Stability(replica: a)
        stability.wrote(stability.nextStamp)
        stability.receive(report: [a: 1, b: 7], from: "nb", replica: b)
        let frontier = stability.frontier(selfID: "na", members: [member("nb", b)])
        #expect(frontier.vector == [a: 1])
        #expect(frontier.holder == "na" && frontier.behind == 7)
    }

    @Test func aGapHoldsTheVectorUntilItIsFilledOrAdopted() {
        var stability = Stability(replica: a)
        stability.joined(WriteStamps(b, 1))
        stability.joined(WriteStamps(b, 3))
        #expect(stability.vector == [b: 1], "stamp 2 is missing")
        #expect(stability.changed)
        stability.changed = false
        stability.joined(WriteStamps(b, 3))
        #expect(!stability.changed, "a duplicate changes nothing")
        stability.joined(WriteStamps(b, 2))
        #expect(stability.vector == [b: 3])
        stability.joined(WriteStamps(b, 6))
        stability.adopt([b: 5])
        #expect(stability.vector == [b: 6], "adoption fills the gap, and the stamp beyond it joins")
    }

    @Test func theVectorRoundTripsAndACorruptOneIsRefused() {
        let vector: [ReplicaID: UInt64] = [a: 1, c: 1 << 50]
        #expect(Stability.decode(Stability.encode(vector)) == vector)
        #expect(Stability.decode(Stability.encode(vector) + [0]) == nil)
        #expect(Stability.decode([5]) == nil)
    }

    @Test func stampVectorsCrossTheWireAndMalformedOnesAreRejected() throws {
        let header = PeerHeader(nodeID: "n1", replica: a, endpoint: PeerEndpoint(host: "10.0.0.1", port: 1), incarnation: 1,
                                lamport: 1)
        let root = Digest128(hashing: [1, 2, 3])
        for message: PeerMessage in [.stability(applied: [a: 3, b: 1 << 40]), .stability(applied: [:]),
                                     .syncRoot(root, urgent: true, applied: [c: 2]), .syncRoot(root, urgent: false)] {
            let (_, decoded) = try PeerCodec.decode(PeerCodec.encode(header, message))
            #expect(decoded == message)
        }
        // Unsorted, zero and oversized marks are refused whole.
        let prefix = PeerCodec.encode(header, .stability(applied: [:])).dropLast()
        for body: [UInt8] in [[2, 2, 1, 1, 1], [1, 1, 0], [1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]] {
            #expect(throws: FrameRejection.self) { _ = try PeerCodec.decode(Array(prefix) + body) }
        }
    }
}

/// The frontier in the deterministic simulation: it reaches every write once every member applied it, a
/// partitioned member holds it back (and is named), and it survives restarts.
@Suite struct StabilitySimulationTests {
    /// `r1=5,r2=7` summed.
    func total(_ vector: String?) -> UInt64 {
        (vector ?? "").split(separator: ",").reduce(0) { $0 + (UInt64($1.split(separator: "=").last ?? "") ?? 0) }
    }

    @Test(arguments: Array(UInt64(1)...8))
    func theFrontierCoversEveryWriteOnceEveryMemberHasItAndAPartitionedMemberHoldsItBack(seed: UInt64) throws {
        var sim = try Simulation(nodes: 3, seed: seed)
        sim.lossRate = 0.05
        sim.duplicateRate = 0.05
        sim.run(milliseconds: 2_000)
        var writes: UInt64 = 0
        for i in 0..<30 {
            sim.command(i % 3, ["SADD", "s\(i % 4)", "m\(i)"])
            sim.command(i % 3, ["INCR", "c"])
            writes += 2
        }
        let converged10_000 = sim.converge(timeout: 10_000)
        #expect(converged10_000)
        sim.run(milliseconds: 6_000)
        for i in 0..<3 {
            let fields = sim.info(i, "replication")
            #expect(total(fields["stability_applied"]) == writes, "node \(i): \(fields)")
            #expect(total(fields["stability_frontier"]) == writes, "node \(i): \(fields)")
            #expect(fields["stability_behind"] == "0")
        }
        // n3 is cut off: writes on n1 and n2 are applied by both, never by n3, which holds the frontier.
        sim.isolate(2)
        for i in 0..<10 { sim.command(i % 2, ["SADD", "late", "x\(i)"]) }
        // Reports lost to the 5 % loss are repeated every three seconds.
        sim.run(milliseconds: 6_000)
        for i in 0..<2 {
            let fields = sim.info(i, "replication")
            #expect(total(fields["stability_applied"]) == writes + 10)
            #expect(total(fields["stability_frontier"]) == writes, "node \(i): the frontier waits for n3")
            #expect(fields["stability_holder"] == "n3", "node \(i): \(fields.filter { $0.key.hasPrefix("stab") })")
            #expect(fields["stability_behind"] == "10")
        }
        // Healed: n3 catches up and the frontier covers every write again, on every node.
        for i in 0..<3 { sim.command(i, ["CRDT.HEAL"]) }
        let converged15_000 = sim.converge(timeout: 15_000)
        #expect(converged15_000)
        sim.run(milliseconds: 6_000)
        for i in 0..<3 {
            let fields = sim.info(i, "replication")
            #expect(total(fields["stability_frontier"]) == writes + 10, "node \(i): \(fields.filter { $0.key.hasPrefix("stab") })")
        }
    }

    /// Deltas lost for good (a buffer too small to replay them): repair delivers the states, and the
    /// applied vectors catch up through digest agreement; a restart keeps the vector and its own stamps.
    @Test func writesThatOnlyRepairDeliveredAreCountedOnceTheStatesAgree() throws {
        var sim = try Simulation(nodes: 3, seed: 7) { $0.deltaBufferBytes = 256 }
        sim.run(milliseconds: 2_000)
        sim.isolate(2)
        for i in 0..<200 { sim.command(i % 2, ["SET", "k\(i % 50)", "v\(i)"]) }
        sim.run(milliseconds: 1_000)
        for i in 0..<3 { sim.command(i, ["CRDT.HEAL"]) }
        let converged20_000 = sim.converge(timeout: 20_000)
        #expect(converged20_000)
        sim.run(milliseconds: 5_000)
        for i in 0..<3 {
            let fields = sim.info(i, "replication")
            #expect(total(fields["stability_frontier"]) == 200, "node \(i): \(fields)")
        }
        let before = sim.info(0, "replication")["stability_applied"]
        sim.crash(0)
        try sim.restart(0)
        let recovered = sim.info(0, "replication")["stability_applied"]
        #expect(recovered == before)
        sim.command(0, ["SET", "after", "restart"])
        let after = sim.info(0, "replication")["stability_applied"]
        #expect(total(after) == total(before) + 1, "the next own stamp follows the stored ones: \(after ?? "")")
    }

    @Test func crdtStabilityAnswersTheSameAsInfo() throws {
        var sim = try Simulation(nodes: 2, seed: 3)
        sim.run(milliseconds: 2_000)
        sim.command(0, ["INCR", "c"])
        let converged5_000 = sim.converge(timeout: 5_000)
        #expect(converged5_000)
        sim.run(milliseconds: 2_000)
        guard case .array(let fields)? = sim.command(1, ["CRDT.STABILITY"]) else {
            Issue.record("CRDT.STABILITY did not answer an array")
            return
        }
        let names = stride(from: 0, to: fields.count, by: 2).map { fields[$0] }
        #expect(names == ["frontier", "applied", "holder", "behind", "unreported", "members"].map { .bulkString(Array($0.utf8)) })
        #expect(fields[1] == .array([.bulkString(Array(sim.nodes[0].configuration.replica.description.utf8)), .integer(1)]))
        #expect(fields[11] == .integer(2))
    }
}
