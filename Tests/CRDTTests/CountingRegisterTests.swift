import TestSupport
import CRDT
import Testing

private let a = replicaIDs[0]
private let b = replicaIDs[1]
private let c = replicaIDs[2]

private typealias Field = CountingRegister<UInt64, Int64>

/// The counting register (Redis `HSET`/`HINCRBY`/`HDEL` on a hash field, `ZADD`/`ZINCRBY` on a score).
@Suite("Counting register")
struct CountingRegisterTests {
    /// The specification for writes and increments: every increment has an id `(replica, n)`, and a
    /// replica that saw a replica's n-th increment saw its earlier ones (a shard is a running total);
    /// every write records the increments its writer had seen. The read is the write with the
    /// greatest timestamp among those seen, plus the seen increments that write had not seen.
    struct Model {
        var seenIncrements: [Int: Int] = [:]   // replica -> highest increment seen
        var seenWrites: Set<Int> = []

        mutating func merge(_ other: Model) {
            seenIncrements.merge(other.seenIncrements) { max($0, $1) }
            seenWrites.formUnion(other.seenWrites)
        }
    }

    struct Write {
        let timestamp: LamportTimestamp
        let value: UInt64
        let saw: [Int: Int]
    }

    static func read(_ model: Model, writes: [Int: Write], increments: [[Int]: Int64]) -> (UInt64?, Int64) {
        let winner = model.seenWrites.map { writes[$0]! }.max { $0.timestamp < $1.timestamp }
        var sum: Int64 = 0
        for (id, amount) in increments where id[1] <= model.seenIncrements[id[0], default: 0] {
            if id[1] > winner?.saw[id[0]] ?? 0 { sum += amount }
        }
        return (winner?.value, sum)
    }

    @Test(arguments: propertySeeds)
    func matchesTheSpecificationForWritesAndIncrements(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let count = 4
        var fields = [Field](repeating: Field(), count: count)
        var clocks = (0..<count).map { LamportClock(replica: replicaIDs[$0]) }
        var models = [Model](repeating: Model(), count: count)
        var writes: [Int: Write] = [:]
        var increments: [[Int]: Int64] = [:]
        var network: [(target: Int, delta: Field, model: Model)] = []

        for step in 0..<600 {
            let actor = rng.below(count)
            var modelDelta = Model()
            let delta: Field
            if rng.chance(0.25) {
                let value = UInt64(rng.below(1000))
                delta = fields[actor].assign(value, clock: &clocks[actor])
                let id = writes.count
                writes[id] = Write(timestamp: delta.winningWrite!.stamped.timestamp, value: value, saw: models[actor].seenIncrements)
                modelDelta.seenWrites = [id]
            } else {
                var amount = Int64(rng.below(21) - 10)
                if amount == 0 { amount = 7 }
                let sequence = models[actor].seenIncrements[actor, default: 0] + 1
                increments[[actor, sequence]] = amount
                modelDelta.seenIncrements[actor] = sequence
                delta = try fields[actor].increment(by: amount, replica: replicaIDs[actor])
            }
            models[actor].merge(modelDelta)
            for target in 0..<count where target != actor && !rng.chance(0.1) {
                network.append((target, delta, modelDelta))
                if rng.chance(0.1) { network.append((target, delta, modelDelta)) }
            }
            for _ in 0..<rng.below(4) where !network.isEmpty {
                let message = network.remove(at: rng.below(network.count))
                fields[message.target].join(message.delta)
                models[message.target].merge(message.model)
            }
            for replica in 0..<count {
                let (value, sum) = Self.read(models[replica], writes: writes, increments: increments)
                #expect(fields[replica].value == value && fields[replica].increments == sum,
                        "replica \(replica) disagrees with the specification at step \(step) — seed \(seed)")
            }
        }
    }

    /// Against Redis on one replica: HSET replaces, HINCRBY adds, HDEL removes.
    @Test func sequentialHistoryMatchesRedis() throws {
        var rng = SplitMix64(seed: 99)
        var field = Field()
        var clock = LamportClock(replica: a)
        var redis: Int64? = nil
        for step in 0..<500 {
            switch rng.below(6) {
            case 0:
                field.remove()
                redis = nil
            case 1:
                let value = UInt64(rng.below(100))
                field.assign(value, clock: &clock)
                redis = Int64(value)
            default:
                let amount = Int64(rng.below(41) - 20)
                try field.increment(by: amount, replica: a)
                redis = (redis ?? 0) + amount
            }
            let read: Int64? = field.isEmpty ? nil : Int64(field.value ?? 0) + field.increments
            #expect(read == redis, "step \(step)")
        }
    }

    @Test func concurrentIncrementsBothCount() throws {
        var replicaA = Field()
        var replicaB = Field()
        let incrementA = try replicaA.increment(by: 5, replica: a)
        let incrementB = try replicaB.increment(by: 3, replica: b)
        replicaA.join(incrementB)
        replicaB.join(incrementA)
        #expect(replicaA == replicaB)
        #expect(replicaA.increments == 8 && replicaA.value == nil)
    }

    @Test func writeReplacesSeenIncrementsAndKeepsConcurrentOnes() throws {
        var clockA = LamportClock(replica: a)
        var clockB = LamportClock(replica: b)
        var replicaA = Field()
        var replicaB = Field()
        replicaB.join(replicaA.assign(10, clock: &clockA))
        replicaB.join(try replicaA.increment(by: 4, replica: a))
        // B has seen 10 + 4 and writes 100; A concurrently adds 5.
        let write = replicaB.assign(100, clock: &clockB)
        let concurrent = try replicaA.increment(by: 5, replica: a)
        replicaA.join(write)
        replicaB.join(concurrent)
        #expect(replicaA == replicaB)
        #expect(replicaA.value == 100 && replicaA.increments == 5, "the 4 B saw is replaced; the concurrent 5 counts")
    }

    @Test func onlyTheWinningWritesFloorsApply() throws {
        var clockB = LamportClock(replica: b, counter: 50)   // B's write wins by Lamport time
        var clockC = LamportClock(replica: c)
        var replicaA = Field()
        var replicaB = Field()
        var replicaC = Field()
        let increment = try replicaA.increment(by: 5, replica: a)
        replicaC.join(increment)
        let seeing = replicaC.assign(20, clock: &clockC)        // saw the 5, loses
        let notSeeing = replicaB.assign(10, clock: &clockB)     // did not see the 5, wins
        for delta in [seeing, notSeeing] { replicaA.join(delta) }
        #expect(replicaA.value == 10 && replicaA.increments == 5, "the winner had not seen the increment, so it counts")
    }

    /// The documented limit of an embedded counter: a removal wins over a concurrent increment of a
    /// shard it saw (that increment is lost with the shard), while a shard created concurrently (a
    /// replica's first increment) survives. After a removal it has seen, a replica starts afresh.
    @Test func removalWinsOverConcurrentIncrementsOfShardsItSaw() throws {
        var replicaA = Field()
        var replicaB = Field()
        var replicaC = Field()
        replicaB.join(try replicaA.increment(by: 5, replica: a))
        let removal = replicaB.remove()
        let concurrentOnSeenShard = try replicaA.increment(by: 2, replica: a)
        let concurrentNewShard = try replicaC.increment(by: 3, replica: c)
        for delta in [removal, concurrentNewShard] { replicaA.join(delta) }
        for delta in [concurrentOnSeenShard, concurrentNewShard] { replicaB.join(delta) }
        for delta in [concurrentOnSeenShard, removal] { replicaC.join(delta) }
        #expect(replicaA == replicaB && replicaB == replicaC)
        #expect(replicaA.increments == 3, "documented: A's shard goes with the removal; C's new shard stays")

        replicaB.join(try replicaA.increment(by: 1, replica: a))
        #expect(replicaB.increments == 4, "after the removal it saw, A starts a new shard")
    }

    @Test func lostIncrementDeltasAreSubsumedByLaterOnes() throws {
        var source = Field()
        var target = Field()
        _ = try source.increment(by: 5, replica: a)
        _ = try source.increment(by: 6, replica: a)
        let third = try source.increment(by: 7, replica: a)
        target.join(third)
        #expect(target.increments == 18)
        #expect(target == source)
    }

    @Test func incrementDeltaIsOneShardWhateverTheHistory() throws {
        var field = Field()
        var clock = LamportClock(replica: a)
        for round in 0..<300 {
            try field.increment(by: 1, replica: replicaIDs[round % 3])
            if round % 50 == 0 { field.assign(UInt64(round), clock: &clock) }
        }
        let delta = try field.increment(by: 1, replica: b)
        #expect(delta.store.entries.count == 1)
        // version, tag, one entry (count, dot, kind, chain dot, total), context of two dots.
        #expect(delta.serializedBytes().count < 64)
        #expect(field.store.entries.count == 4, "one write and one shard per incrementing replica")
    }

    /// A shard keeps its dot while its version grows, so the store's digest (which the daemon's
    /// digest repair and `inflate` rely on) must mix the version in.
    @Test func anIncrementOfAKnownShardChangesTheDigestAndInflates() throws {
        typealias Hash = ORMap<[UInt8], CountingRegister<[UInt8], Int64>>
        var source = Hash()
        var target = Hash()
        target.join(try source.update(bytes("f")) { (field: inout CountingRegister<[UInt8], Int64>) throws(CRDTMutationError) in try field.increment(by: 1, replica: a) })
        let before = target.store.dotDigest
        let second = try source.update(bytes("f")) { (field: inout CountingRegister<[UInt8], Int64>) throws(CRDTMutationError) in try field.increment(by: 1, replica: a) }
        let changed = target.inflate(with: second)
        #expect(changed, "a higher version of a known shard is a change")
        #expect(target.store.dotDigest != before)
        #expect(target.store.dotDigest == source.store.dotDigest)
        let changedAgain = target.inflate(with: second)
        #expect(!changedAgain, "the same delta again is not")
    }

    @Test func overflowIsRefusedAndChangesNothing() throws {
        var field = Field()
        try field.increment(by: .max, replica: a)
        let before = field
        #expect(throws: CRDTMutationError.self) { try field.increment(by: 1, replica: a) }
        #expect(field == before)
        var score = CountingRegister<Double, Double>()
        #expect(throws: CRDTMutationError.self) { try score.increment(by: .infinity, replica: a) }
        #expect(score.isEmpty)
    }

    @Test func hashOfPlainRegistersConvertsWithoutLosingDots() throws {
        var clock = LamportClock(replica: a)
        var plain = ORMap<[UInt8], CausalLWWRegister<[UInt8]>>()
        plain.update(bytes("f")) { $0.assign(bytes("7"), clock: &clock) }
        plain.update(bytes("g")) { $0.assign(bytes("x"), clock: &clock) }
        let removal = plain.remove(bytes("g"))
        let converted = ORMap<[UInt8], CountingRegister<[UInt8], Int64>>(converting: plain, CountingRegister.store(converting:))
        #expect(converted.count == 1 && converted[bytes("f")]?.value == bytes("7"))
        #expect(converted.context == plain.context)
        var decoded = try ORMap<[UInt8], CountingRegister<[UInt8], Int64>>(serializedBytes: converted.serializedBytes())
        decoded.join(ORMap(converting: removal, CountingRegister.store(converting:)))
        #expect(decoded[bytes("g")] == nil)
    }

    @Test func decoderRefusesAZeroShardVersion() throws {
        var field = Field()
        try field.increment(by: 3, replica: a)
        #expect(try Field(serializedBytes: field.serializedBytes()) == field)
        var writer = BinaryWriter()
        writer.write(raw: [crdtFormatVersion, Field.binaryTypeTag])
        writer.write(varint: 1)
        field.store.entries.keys.first!.encode(to: &writer)
        writer.write(raw: [1, 0, 6])   // a shard of version 0, total 3
        field.context.encode(to: &writer)
        #expect(throws: CRDTDecodingError.self) { try Field(serializedBytes: writer.bytes) }
    }
}
