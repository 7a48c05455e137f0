// Large objects (issue 14): the commit rate of small deltas with a 5 MB snapshot in the store against
// a 64-byte one, and the restart cost of a key holding a 1 M-member set, split into what the store
// does (open, quick_check, load) and what decoding the set costs in the CRDT module.
//
//   swift run -c release --package-path examples/StoreBench large-objects [commits|restart] [LABEL] [--no-header]
//
// Without a section both run. LABEL names the row (examples/StoreBench/ab.sh passes the revision). Only the Store and CRDT public
// APIs are used, so the same file builds against older revisions of the store.
import CRDT
import Glibc
import Store

func runLargeObjects() throws {
    var arguments = Array(CommandLine.arguments.dropFirst(2))
    let header = !arguments.contains("--no-header")
    arguments.removeAll { $0.hasPrefix("--") }
    let sections = arguments.first.map { ["commits", "restart"].contains($0) } == true ? [arguments.removeFirst()] : ["commits", "restart"]
    let label = arguments.first ?? "this build"
    let directory = temporaryDirectory()
    defer { rmdir(directory) }
    if sections.contains("commits") { try benchCommits(label: label, header: header, in: directory) }
    if sections.contains("restart") { try benchRestart(label: label, header: header, in: directory) }
}

func benchCommits(label: String, header: Bool, in directory: String) throws {
    let small = try commitsNextToASnapshot(of: 64, in: directory)
    let large = try commitsNextToASnapshot(of: 5 << 20, in: directory)
    if header {
        print("## Small-delta commits next to a large snapshot (NORMAL, one delta per commit)\n")
        print("| store | commits/s, 64 B snapshot | commits/s, 5 MB snapshot | 5 MB / 64 B | slowest commit, 64 B | slowest commit, 5 MB |")
        print("|---|---|---|---|---|---|")
    }
    print("| \(label) | \(Int(small.rate)) | \(Int(large.rate)) | \(fixed(large.rate / small.rate, 2)) | "
        + "\(fixed(small.slowest * 1000, 1)) ms | \(fixed(large.slowest * 1000, 1)) ms |")
}

func benchRestart(label: String, header: Bool, in directory: String) throws {
    let recovery = try recoverALargeSet(members: 1_000_000, deltas: 1_000, in: directory)
    if header {
        print("## Restart of a key holding a 1 M-member set (16-byte members) and 1,000 later deltas\n")
        print("| store | snapshot | open + quick_check | load() | decode the set | join the deltas | total |")
        print("|---|---|---|---|---|---|---|")
    }
    print("| \(label) | \(fixed(Double(recovery.snapshotBytes) / 1_048_576, 1)) MiB | \(fixed(recovery.open * 1000, 0)) ms | "
        + "\(fixed(recovery.load * 1000, 0)) ms | \(fixed(recovery.decode * 1000, 0)) ms | \(fixed(recovery.join * 1000, 0)) ms | "
        + "\(fixed(recovery.total, 2)) s |")
}

/// A key `big` gets 10,000 deltas, then a snapshot of `snapshotBytes` in the same commit as 1,000 more:
/// the collector is then due (10,000 superseded rows) as in the collapse of issue 14. Measured: 5,000
/// one-delta commits to 100 other keys, one in 20 also snapshotting one of them, as the engine would.
func commitsNextToASnapshot(of snapshotBytes: Int, in directory: String) throws -> (rate: Double, slowest: Double) {
    let path = directory + "/next-to-\(snapshotBytes).db"
    removeDatabase(path)
    defer { removeDatabase(path) }
    let store = try Store(path: path, options: StoreOptions(synchronous: .normal))
    _ = try store.load()
    let big = Array("big".utf8)
    let payload = [UInt8](repeating: 0x5A, count: 64)
    for _ in 0..<10 { try store.commit((0..<1000).map { _ in .delta(key: big, bytes: payload) }) }
    try store.commit([.snapshot(key: big, bytes: [UInt8](repeating: 0xB1, count: snapshotBytes))]
        + (0..<1000).map { _ in .delta(key: big, bytes: payload) })
    let clock = ContinuousClock()
    let commits = 5_000
    var slowest = 0.0
    let total = try clock.measure {
        for index in 0..<commits {
            let key = Array("small-\(index % 100)".utf8)
            var records: [StoreRecord] = [.delta(key: key, bytes: Array(payload.prefix(16)))]
            if index % 20 == 19 { records.append(.snapshot(key: key, bytes: Array(payload.prefix(32)))) }
            let started = clock.now
            try store.commit(records)
            slowest = max(slowest, seconds(clock.now - started))
        }
    }
    store.close()
    return (Double(commits) / seconds(total), slowest)
}

/// The bytes `KeyObject.serialized()` writes for a key whose only slot is the set: format version 1,
/// then the slot mask with the set's bit (the engine is not a product of the package, so it is spelled
/// out here; `Sources/Engine/Keyspace/KeyObject.swift`).
func keyObjectBytes(_ set: AWSet<[UInt8]>) -> [UInt8] {
    var writer = BinaryWriter(capacity: 64)
    writer.write(byte: 1)
    writer.write(byte: 1 << 2)
    set.encode(to: &writer)
    return writer.bytes
}

/// The engine's recovery of one key without the engine: decode the snapshot, then join each delta.
func decodeKeyObjectSet(_ bytes: [UInt8]) throws -> AWSet<[UInt8]> {
    var reader = try BinaryReader(bytes, limits: DecodingLimits(maxBytes: .max, maxElements: .max, maxDepth: 8))
    let version = try reader.readByte(), mask = try reader.readByte()
    precondition(version == 1 && mask == 1 << 2, "not a set-only key object")
    let set = try AWSet<[UInt8]>(from: &reader)
    try reader.finish()
    return set
}

func recoverALargeSet(members: Int, deltas: Int, in directory: String) throws
    -> (snapshotBytes: Int, open: Double, load: Double, decode: Double, join: Double, total: Double) {
    let path = directory + "/large-set.db"
    removeDatabase(path)
    defer { removeDatabase(path) }
    let replica = ReplicaID(0x0123_4567_89AB_CDEF)
    func member(_ index: Int) -> [UInt8] {
        let digits = String(index)
        return Array(("member-" + String(repeating: "0", count: 9 - digits.count) + digits).utf8)
    }
    var set = AWSet<[UInt8]>()
    for index in 0..<members { set.add(member(index), replica: replica) }
    let snapshot = keyObjectBytes(set)
    let later = (members..<(members + deltas)).map { keyObjectBytes(set.add(member($0), replica: replica)) }
    let key = Array("big".utf8)
    do {
        let store = try Store(path: path, options: StoreOptions(synchronous: .normal))
        _ = try store.load()
        try store.commit([.snapshot(key: key, bytes: snapshot)])
        try store.commit(later.map { .delta(key: key, bytes: $0) })
        store.close()
    }
    // Warm the page cache once, as a restart right after a stop finds it.
    _ = try Store(path: path).load()
    let clock = ContinuousClock()
    let started = clock.now
    let store = try Store(path: path)
    let opened = clock.now
    let recovered = try store.load()
    let loaded = clock.now
    guard let stored = recovered.keys[key], let bytes = stored.snapshot else { fatalError("the snapshot was not recovered") }
    var decoded = try decodeKeyObjectSet(bytes)
    let decodedAt = clock.now
    for delta in stored.deltas { decoded.join(try decodeKeyObjectSet(delta)) }
    let joined = clock.now
    store.close()
    precondition(decoded.count == members + deltas, "recovered \(decoded.count) members of \(members + deltas)")
    return (snapshot.count, seconds(opened - started), seconds(loaded - opened), seconds(decodedAt - loaded),
            seconds(joined - decodedAt), seconds(joined - started))
}
