// CRDTBench: our binary encoding and delta application, side by side with Foundation's JSON on the
// same values, in one run. Prints a Markdown table of median ns/op and the JSON/ours ratio.
//
//   swift run -c release --package-path Benchmarks CRDTBench
//
// The JSON side encodes and decodes Codable mirror structs holding the same fields. Decoding stops
// at the mirror (building the CRDT value from it is not charged), which favours JSON.
import BenchSupport
import CRDT
import Foundation

// MARK: Codable mirrors of the benchmarked deltas

struct DotMirror: Codable { var replica: UInt64; var counter: UInt64 }
struct ContextMirror: Codable { var versionVector: [DotMirror]; var cloud: [DotMirror] }

struct CounterDeltaMirror: Codable {
    struct Contribution: Codable {
        var replica: UInt64
        var increments: UInt64
        var decrements: UInt64
        var resetIncrements: UInt64
        var resetDecrements: UInt64
    }
    var contributions: [Contribution]

    init(_ counter: ResettableCounter) {
        contributions = counter.contributions.sorted { $0.key < $1.key }.map { replica, contribution in
            Contribution(replica: replica.rawValue, increments: contribution.increments, decrements: contribution.decrements,
                         resetIncrements: contribution.resetIncrements, resetDecrements: contribution.resetDecrements)
        }
    }
}

func mirror(_ context: CausalContext) -> ContextMirror {
    ContextMirror(
        versionVector: context.versionVector.sorted { $0.key < $1.key }.map { DotMirror(replica: $0.key.rawValue, counter: $0.value) },
        cloud: context.cloud.sorted().map { DotMirror(replica: $0.replica.rawValue, counter: $0.counter) })
}

struct SetDeltaMirror: Codable {
    struct Entry: Codable { var element: [UInt8]; var dots: [DotMirror] }
    var entries: [Entry]
    var context: ContextMirror

    init(_ set: AWSet<[UInt8]>) {
        entries = set.store.entries.map { element, dots in
            Entry(element: element, dots: dots.elements.sorted().map { DotMirror(replica: $0.replica.rawValue, counter: $0.counter) })
        }
        context = mirror(set.context)
    }
}

struct HashDeltaMirror: Codable {
    struct Write: Codable { var dot: DotMirror; var counter: UInt64; var replica: UInt64; var value: [UInt8] }
    struct Field: Codable { var field: [UInt8]; var writes: [Write] }
    var fields: [Field]
    var context: ContextMirror

    init(_ map: ORMap<[UInt8], CausalLWWRegister<[UInt8]>>) {
        fields = map.store.entries.map { field, writes in
            Field(field: field, writes: writes.entries.sorted { $0.key < $1.key }.map { dot, stamped in
                Write(dot: DotMirror(replica: dot.replica.rawValue, counter: dot.counter),
                      counter: stamped.timestamp.counter, replica: stamped.timestamp.replica.rawValue, value: stamped.value)
            })
        }
        context = mirror(map.context)
    }
}

// MARK: Measurement

/// Median and minimum over `runs` runs of the mean ns per call of `body`. Each run is calibrated to
/// last about 20 ms, so fast and slow operations get comparable statistics. The minimum shows the
/// cost with the least interference when the machine is shared.
func measure(runs: Int = 9, _ body: () -> Void) -> (median: Double, best: Double) {
    var iterations = 1
    while true {
        let start = monotonicNanoseconds()
        for _ in 0..<iterations { body() }
        if monotonicNanoseconds() - start >= 20_000_000 || iterations >= 1 << 26 { break }
        iterations *= 2
    }
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = monotonicNanoseconds()
        for _ in 0..<iterations { body() }
        samples.append(Double(monotonicNanoseconds() - start) / Double(iterations))
    }
    return (median(samples), samples.min()!)
}

/// Only rows whose name contains the first argument run, when one is given.
let filter = CommandLine.arguments.dropFirst().first
func selected(_ name: String) -> Bool { filter.map { name.contains($0) } ?? true }

func format(_ nanoseconds: Double) -> String {
    nanoseconds < 100 ? String(format: "%.1f", nanoseconds) : String(format: "%.0f", nanoseconds)
}

var rows: [[String]] = []

@MainActor func compare(_ name: String, bytes: Int, jsonBytes: Int, ours: () -> Void, json: () -> Void) {
    guard selected(name) else { return }
    let oursNs = measure(ours)
    let jsonNs = measure(json)
    rows.append([name, "\(bytes)", "\(jsonBytes)", format(oursNs.median), format(oursNs.best), format(jsonNs.median),
                 String(format: "%.0fx", jsonNs.median / oursNs.median)])
}

let encoder = JSONEncoder()
encoder.outputFormatting = .sortedKeys  // deterministic output, as our encoding is
let decoder = JSONDecoder()
let me = ReplicaID(0x9F3A_11D2_4C5B_0001)

// A counter delta: one INCRBY.
var counter = ResettableCounter()
for index in 0..<5 as Range<UInt64> { _ = try counter.add(Int64(index + 1) * 1_000, replica: ReplicaID(index &* 0x9E37_79B9_7F4A_7C15)) }
let counterDelta = try counter.add(42, replica: me)
let counterBytes = counterDelta.serializedBytes()
let counterMirror = CounterDeltaMirror(counterDelta)
let counterJSON = try encoder.encode(counterMirror)

compare("counter delta: encode", bytes: counterBytes.count, jsonBytes: counterJSON.count,
        ours: { blackHole(counterDelta.serializedBytes()) },
        json: { blackHole(try! encoder.encode(counterMirror)) })
compare("counter delta: decode", bytes: counterBytes.count, jsonBytes: counterJSON.count,
        ours: { blackHole(try! ResettableCounter(serializedBytes: counterBytes)) },
        json: { blackHole(try! decoder.decode(CounterDeltaMirror.self, from: counterJSON)) })
compare("counter delta: encode + decode", bytes: counterBytes.count, jsonBytes: counterJSON.count,
        ours: { blackHole(try! ResettableCounter(serializedBytes: counterDelta.serializedBytes())) },
        json: { blackHole(try! decoder.decode(CounterDeltaMirror.self, from: encoder.encode(counterMirror))) })
// The peer wire format appends deltas to one frame buffer rather than allocating an array per
// delta; these rows measure that use (the JSON side still allocates, as JSONEncoder must).
var frame = BinaryWriter(capacity: 256)
compare("counter delta: encode into a reused writer", bytes: counterBytes.count, jsonBytes: counterJSON.count,
        ours: {
            frame.removeAll()
            counterDelta.encode(to: &frame)
            blackHole(frame.bytes.count)
        },
        json: { blackHole(try! encoder.encode(counterMirror)) })
compare("counter delta: encode into a reused writer + decode", bytes: counterBytes.count, jsonBytes: counterJSON.count,
        ours: {
            frame.removeAll()
            frame.write(byte: crdtFormatVersion)
            frame.write(byte: ResettableCounter.binaryTypeTag)
            counterDelta.encode(to: &frame)
            blackHole(try! ResettableCounter(serializedBytes: frame.bytes))
        },
        json: { blackHole(try! decoder.decode(CounterDeltaMirror.self, from: encoder.encode(counterMirror))) })

// A set delta: one SADD of a 16-byte member, into a set with a few replicas' history.
var set = AWSet<[UInt8]>()
for index in 0..<200 { _ = set.add(Array("member-\(index)".utf8), replica: ReplicaID(UInt64(index % 5) &* 0x9E37_79B9_7F4A_7C15)) }
let setDelta = set.add(Array("member-0000000042".utf8), replica: me)
let setBytes = setDelta.serializedBytes()
let setMirror = SetDeltaMirror(setDelta)
let setJSON = try encoder.encode(setMirror)
compare("set add delta: encode + decode", bytes: setBytes.count, jsonBytes: setJSON.count,
        ours: { blackHole(try! AWSet<[UInt8]>(serializedBytes: setDelta.serializedBytes())) },
        json: { blackHole(try! decoder.decode(SetDeltaMirror.self, from: encoder.encode(setMirror))) })

// A hash delta: one HSET of a 32-byte value.
var clock = LamportClock(replica: me)
var hash = ORMap<[UInt8], CausalLWWRegister<[UInt8]>>()
for index in 0..<50 { _ = hash.update(Array("field-\(index)".utf8)) { $0.assign(Array("value-\(index)".utf8), clock: &clock) } }
let hashDelta = hash.update(Array("field-7".utf8)) { $0.assign(Array(repeating: 0x61, count: 32), clock: &clock) }
let hashBytes = hashDelta.serializedBytes()
let hashMirror = HashDeltaMirror(hashDelta)
let hashJSON = try encoder.encode(hashMirror)
compare("hash field delta: encode + decode", bytes: hashBytes.count, jsonBytes: hashJSON.count,
        ours: { blackHole(try! ORMap<[UInt8], CausalLWWRegister<[UInt8]>>(serializedBytes: hashDelta.serializedBytes())) },
        json: { blackHole(try! decoder.decode(HashDeltaMirror.self, from: encoder.encode(hashMirror))) })

print("Encoding and decoding typical deltas (ns per operation; median of 9 runs, and the best run):\n")
printTable(header: ["operation", "bytes (ours)", "bytes (JSON)", "ours median", "ours best", "JSON median", "JSON / ours (medians)"], rows: rows)

// MARK: Applying deltas (joins), no JSON counterpart

var applyRows: [[String]] = []
@MainActor func measureApply(_ name: String, _ body: () -> Void) {
    guard selected(name) else { return }
    let result = measure(body)
    applyRows.append([name, format(result.median), format(result.best)])
}
// Joining the same delta again is idempotent but does the same work, so the target is reused:
// no copy of the state is measured, only the join.
var counterTarget = counter
measureApply("counter delta into a 6-replica counter") { counterTarget.join(counterDelta) }
var setTarget = set
measureApply("set add delta into a 200-element set") { setTarget.join(setDelta) }
// The same delta into a set 50 times larger: the join's cost follows the delta, not the state.
var largeSet = AWSet<[UInt8]>()
for index in 0..<10_000 { _ = largeSet.add(Array("member-\(index)".utf8), replica: ReplicaID(UInt64(index % 5) &* 0x9E37_79B9_7F4A_7C15)) }
measureApply("set add delta into a 10,000-element set") { largeSet.join(setDelta) }
var hashTarget = hash
measureApply("hash field delta into a 50-field hash") { hashTarget.join(hashDelta) }
blackHole((counterTarget, setTarget, hashTarget, largeSet))

// Local mutations, as the daemon performs them for a client command (the delta is returned).
var setMember: UInt64 = 0
measureApply("mutate: SADD into a 200-element set (add + delta)") {
    setMember &+= 1
    blackHole(setTarget.add(Array("member-\(setMember & 1023)".utf8), replica: me))
}
measureApply("mutate: HSET into a 50-field hash (update + delta)") {
    blackHole(hashTarget.update(Array("field-7".utf8)) { $0.assign(Array(repeating: 0x62, count: 32), clock: &clock) })
}
measureApply("mutate: INCRBY on a 6-replica counter (add + delta)") {
    blackHole(try! counterTarget.add(1, replica: me))
}
print("\nApplying a delta (join into a state; ns per operation):\n")
printTable(header: ["operation", "median", "best"], rows: applyRows)

// MARK: Receiving a delta against the size of the object it lands in

// What the daemon does with each delta a peer sends: join it and learn whether it was new
// (`inflate(with:)`), side by side with what it did before (keep a copy, join, compare the whole
// object). Each row takes fresh deltas (a member not yet present, from another replica), so every one
// changes the state. The goal of issue 8: flat within 2x from 1 k to 1 M members.
@MainActor func receiveRows() -> [[String]] {
    var rows: [[String]] = []
    let source = ReplicaID(0x5EED_0000_0000_0077)
    for size in [1_000, 100_000, 1_000_000] {
        guard selected("receive into \(size)") else { continue }
        var target = AWSet<[UInt8]>()
        for index in 0..<size { _ = target.add(Array("member-\(index)".utf8), replica: ReplicaID(UInt64(index % 5 + 1) &* 0x9E37_79B9_7F4A_7C15)) }
        var writer = AWSet<[UInt8]>()
        let fresh = 20_000
        let deltas = (0..<fresh).map { writer.add(Array("new-member-\($0)".utf8), replica: source) }
        var inflated = target
        // The first change copies the storage `target` shares (copy-on-write): do it before timing.
        var warmup = AWSet<[UInt8]>()
        _ = inflated.inflate(with: warmup.add(Array("warm-up".utf8), replica: ReplicaID(0x5EED_0000_0000_0078)))
        let start = monotonicNanoseconds()
        var changed = 0
        for delta in deltas where inflated.inflate(with: delta) { changed += 1 }
        let inflateNs = Double(monotonicNanoseconds() - start) / Double(fresh)
        precondition(changed == fresh)
        // The old way copies the object for every delta: a few suffice to time it.
        let oldCount = size >= 1_000_000 ? 5 : size >= 100_000 ? 20 : 500
        var old = target
        let oldStart = monotonicNanoseconds()
        for delta in deltas.prefix(oldCount) {
            let before = old
            old.join(delta)
            blackHole(old != before)
        }
        let oldNs = Double(monotonicNanoseconds() - oldStart) / Double(oldCount)
        rows.append(["set add delta into \(size) members", format(inflateNs), format(oldNs), String(format: "%.0fx", oldNs / inflateNs)])
        blackHole((inflated, old))
    }
    for replicas in [3, 300] {
        guard selected("receive counter \(replicas)") else { continue }
        var target = ResettableCounter()
        for index in 0..<replicas { _ = try! target.add(5, replica: ReplicaID(UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15)) }
        var writer = target
        let fresh = 20_000
        let deltas = (0..<fresh).map { _ in try! writer.add(1, replica: ReplicaID(1 &* 0x9E37_79B9_7F4A_7C15)) }
        var inflated = target
        var warmup = ResettableCounter()
        _ = inflated.inflate(with: try! warmup.add(1, replica: ReplicaID(0x5EED_0000_0000_0079)))
        let start = monotonicNanoseconds()
        for delta in deltas { blackHole(inflated.inflate(with: delta)) }
        let inflateNs = Double(monotonicNanoseconds() - start) / Double(fresh)
        var old = target
        let oldStart = monotonicNanoseconds()
        for delta in deltas {
            let before = old
            old.join(delta)
            blackHole(old != before)
        }
        let oldNs = Double(monotonicNanoseconds() - oldStart) / Double(fresh)
        rows.append(["counter delta into \(replicas) replicas", format(inflateNs), format(oldNs), String(format: "%.0fx", oldNs / inflateNs)])
    }
    return rows
}
let received = receiveRows()
if !received.isEmpty {
    print("\nReceiving a delta that is new (ns per delta): inflate(with:) against copy + join + compare:\n")
    printTable(header: ["delta", "inflate (now)", "copy + join + compare (before)", "before / now"], rows: received)
}
