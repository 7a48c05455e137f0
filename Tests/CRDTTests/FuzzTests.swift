import TestSupport
import CRDT
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Valid encodings of states and deltas of one type, made by random operations and joins.
func corpus<T: SerializableCRDT>(_ harness: CRDTHarness<T>, seed: UInt64) -> [[UInt8]] {
    var rng = SplitMix64(seed: seed)
    var states = [T](repeating: T(), count: 3)
    var clocks = (0..<3).map { LamportClock(replica: replicaIDs[$0]) }
    var samples: [[UInt8]] = [T().serializedBytes()]
    for _ in 0..<60 {
        let actor = rng.below(3)
        if let delta = harness.randomOperation(&states[actor], &clocks[actor], &rng) {
            samples.append(delta.serializedBytes())
            if rng.chance(0.5) { states[rng.below(3)].join(delta) }
        }
        if rng.chance(0.2) { samples.append(states[actor].serializedBytes()) }
    }
    return samples + states.map { $0.serializedBytes() }
}

/// Bytes a mutation likes to write: varint and length boundaries.
private let interestingBytes: [UInt8] = [0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFE, 0xFF]

/// Derives a mutated input from a valid sample (or, sometimes, plain random bytes).
func mutatedInput(from corpus: [[UInt8]], using rng: inout SplitMix64) -> [UInt8] {
    if rng.chance(0.05) {
        return (0..<rng.below(24)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }
    var input = corpus[rng.below(corpus.count)]
    for _ in 0...rng.below(3) {
        let position = input.isEmpty ? 0 : rng.below(input.count)
        switch rng.below(8) {
        case 0 where !input.isEmpty: input[position] ^= 1 << UInt8(rng.below(8))
        case 1 where !input.isEmpty: input[position] = interestingBytes[rng.below(interestingBytes.count)]
        case 2 where !input.isEmpty: input[position] = UInt8.random(in: 0...255, using: &rng)
        case 3: input.insert(interestingBytes[rng.below(interestingBytes.count)], at: position)
        case 4 where !input.isEmpty: input.remove(at: position)
        case 5: input.removeLast(input.count - position)
        case 6 where !input.isEmpty:
            let end = min(input.count, position + 1 + rng.below(8))
            input.insert(contentsOf: input[position..<end], at: position)
        default:
            let other = corpus[rng.below(corpus.count)]
            let cut = other.isEmpty ? 0 : rng.below(other.count)
            input = Array(input.prefix(position)) + other.suffix(from: cut)
        }
    }
    return input
}

/// Tight limits, so the fuzzer also exercises the limit checks.
let fuzzLimits = DecodingLimits(maxBytes: 2_048, maxElements: 64, maxDepth: 4)

/// Feeds `count` mutated inputs to `T`'s decoder. Every input must either be rejected with a
/// `CRDTDecodingError` (the typed throw guarantees nothing else escapes) or decode to a state that
/// re-encodes to exactly the same bytes (decoders accept only the canonical form) and that joins
/// without trapping. Returns how many inputs decoded.
func fuzzDecoder<T: SerializableCRDT>(
    _ harness: CRDTHarness<T>, seed: UInt64, count: Int, sourceLocation: SourceLocation = #_sourceLocation
) -> Int {
    let samples = corpus(harness, seed: seed)
    var rng = SplitMix64(seed: seed)
    var accepted = 0
    var mismatches = 0
    let reference = T(serializedBytesOrBottom: samples.last!)
    for _ in 0..<count {
        let input = mutatedInput(from: samples, using: &rng)
        guard let decoded = try? T(serializedBytes: input, limits: fuzzLimits) else { continue }
        accepted += 1
        if decoded.serializedBytes() != input { mismatches += 1 }
        var joined = decoded
        joined.join(reference)
        _ = joined.digest
    }
    #expect(mismatches == 0, "\(harness.name): \(mismatches) accepted inputs were not canonical — seed \(seed)", sourceLocation: sourceLocation)
    #expect(accepted > 0, "\(harness.name): the fuzzer never produced a valid input, so it tests little — seed \(seed)", sourceLocation: sourceLocation)
    return accepted
}

extension SerializableCRDT {
    init(serializedBytesOrBottom bytes: [UInt8]) {
        self = (try? Self(serializedBytes: bytes)) ?? Self()
    }
}

/// Inputs per decoder: 100,000 by default, so the 15 decoders get 1.5 million random and mutated
/// inputs in about 12 s of a debug build. Set `CRDT_FUZZ_INPUTS` for longer runs (for example
/// `CRDT_FUZZ_INPUTS=1000000 swift test --filter FuzzTests`, a million inputs per decoder).
let fuzzInputsPerDecoder: Int = {
    if let raw = getenv("CRDT_FUZZ_INPUTS"), let count = Int(String(cString: raw)), count > 0 { return count }
    return 100_000
}()

@Suite("Decoder fuzzing")
struct FuzzTests {
    @Test func gCounter() { _ = fuzzDecoder(Harnesses.gCounter, seed: 11, count: fuzzInputsPerDecoder) }
    @Test func pnCounter() { _ = fuzzDecoder(Harnesses.pnCounter, seed: 12, count: fuzzInputsPerDecoder) }
    @Test func resettableCounter() { _ = fuzzDecoder(Harnesses.resettableCounter, seed: 13, count: fuzzInputsPerDecoder) }
    @Test func gSet() { _ = fuzzDecoder(Harnesses.gSet, seed: 14, count: fuzzInputsPerDecoder) }
    @Test func twoPhaseSet() { _ = fuzzDecoder(Harnesses.twoPhaseSet, seed: 15, count: fuzzInputsPerDecoder) }
    @Test func awSet() { _ = fuzzDecoder(Harnesses.awSet, seed: 16, count: fuzzInputsPerDecoder) }
    @Test func lwwRegister() { _ = fuzzDecoder(Harnesses.lwwRegister, seed: 17, count: fuzzInputsPerDecoder) }
    @Test func mvRegister() { _ = fuzzDecoder(Harnesses.mvRegister, seed: 18, count: fuzzInputsPerDecoder) }
    @Test func causalLWWRegister() { _ = fuzzDecoder(Harnesses.causalLWWRegister, seed: 19, count: fuzzInputsPerDecoder) }
    @Test func ewFlag() { _ = fuzzDecoder(Harnesses.ewFlag, seed: 20, count: fuzzInputsPerDecoder) }
    @Test func orMapOfRegisters() { _ = fuzzDecoder(Harnesses.orMapOfRegisters, seed: 21, count: fuzzInputsPerDecoder) }
    @Test func orMapOfSets() { _ = fuzzDecoder(Harnesses.orMapOfSets, seed: 22, count: fuzzInputsPerDecoder) }
    @Test func nestedORMaps() { _ = fuzzDecoder(Harnesses.nestedORMaps, seed: 23, count: fuzzInputsPerDecoder) }
    @Test func orMapOfFlags() { _ = fuzzDecoder(Harnesses.orMapOfFlags, seed: 24, count: fuzzInputsPerDecoder) }
    @Test func boundedCounter() { _ = fuzzDecoder(Harnesses.boundedCounter, seed: 25, count: fuzzInputsPerDecoder) }
    @Test func countingRegister() { _ = fuzzDecoder(Harnesses.countingRegister, seed: 26, count: fuzzInputsPerDecoder) }
    @Test func countingRegisterOfScores() { _ = fuzzDecoder(Harnesses.countingRegisterOfScores, seed: 27, count: fuzzInputsPerDecoder) }
    @Test func orMapOfCountingRegisters() { _ = fuzzDecoder(Harnesses.orMapOfCountingRegisters, seed: 28, count: fuzzInputsPerDecoder) }
    @Test func hyperLogLog() { _ = fuzzDecoder(Harnesses.hyperLogLog, seed: 29, count: fuzzInputsPerDecoder) }
    @Test func expiryRegister() { _ = fuzzDecoder(Harnesses.expiryRegister, seed: 30, count: fuzzInputsPerDecoder) }
    @Test func sortedSet() { _ = fuzzDecoder(Harnesses.sortedSet, seed: 31, count: fuzzInputsPerDecoder) }
    @Test func replicatedList() { _ = fuzzDecoder(Harnesses.replicatedList, seed: 32, count: fuzzInputsPerDecoder) }
}
