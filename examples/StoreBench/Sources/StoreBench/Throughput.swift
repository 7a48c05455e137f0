// Store throughput by batch size and durability mode, and the cost of opening (quick_check + load).
import Glibc
import Store

/// Pseudo-random 64-byte deltas over 10,000 keys, reproducible.
struct Deltas {
    var state: UInt64 = 0x5EED
    mutating func next() -> StoreRecord {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let key = Array("key-\(state >> 50)".utf8)
        let payload = (0..<8).flatMap { i in withUnsafeBytes(of: state &+ UInt64(i)) { Array($0) } }
        return .delta(key: key, bytes: payload)
    }
}

func runThroughput() throws {
    let directory = temporaryDirectory()
    let clock = ContinuousClock()
    print("## Commit throughput (64-byte deltas, 10,000 keys, WAL)\n")
    print("| batch | rows | NORMAL rows/s | FULL rows/s | NORMAL / FULL | FULL commits/s | FULL p50 commit |")
    print("|---|---|---|---|---|---|---|")
    for (batch, rows) in [(1, 3_000), (100, 100_000), (1000, 300_000)] {
        var rate: [StoreSynchronous: Double] = [:]
        var fullLatencies: [Double] = []
        for mode in [StoreSynchronous.normal, .full] {
            let path = directory + "/bench-\(batch)-\(mode).db"
            removeDatabase(path)
            let store = try Store(path: path, options: StoreOptions(synchronous: mode))
            var deltas = Deltas()
            var latencies: [Double] = []
            let total = clock.measure {
                for _ in 0..<(rows / batch) {
                    let records = (0..<batch).map { _ in deltas.next() }
                    let started = clock.now
                    try! store.commit(records)
                    latencies.append(seconds(clock.now - started))
                }
            }
            store.close()
            removeDatabase(path)
            rate[mode] = Double(rows) / seconds(total)
            if mode == .full { fullLatencies = latencies.sorted() }
        }
        let normal = rate[.normal]!, full = rate[.full]!
        print("| \(batch) | \(rows) | \(Int(normal)) | \(Int(full)) | \(fixed(normal / full, 1)) | "
            + "\(Int(full / Double(batch))) | \(fixed(fullLatencies[fullLatencies.count / 2] * 1000, 3)) ms |")
    }

    print("\n## Opening: quick_check and load, by database size\n")
    print("| deltas | file MiB | open, no check | open + quick_check | quick_check share | load() | load rows/s |")
    print("|---|---|---|---|---|---|---|")
    for rows in [100_000, 1_000_000] {
        let path = directory + "/open-\(rows).db"
        removeDatabase(path)
        do {
            let store = try Store(path: path, options: StoreOptions(synchronous: .normal))
            var deltas = Deltas()
            for _ in 0..<(rows / 10_000) { try store.commit((0..<10_000).map { _ in deltas.next() }) }
            store.close()
        }
        var info = stat()
        stat(path, &info)
        // Warm the page cache once so both opens measure the same thing, then alternate 3 times each.
        _ = try Store(path: path, options: StoreOptions(verifyOnOpen: true))
        var plain: [Double] = [], checked: [Double] = []
        for _ in 0..<3 {
            plain.append(seconds(clock.measure { _ = try! Store(path: path, options: StoreOptions(verifyOnOpen: false)) }))
            checked.append(seconds(clock.measure { _ = try! Store(path: path, options: StoreOptions(verifyOnOpen: true)) }))
        }
        let store = try Store(path: path, options: StoreOptions(verifyOnOpen: false))
        var loaded = 0
        let loadTime = seconds(clock.measure { loaded = try! store.load().keys.values.reduce(0) { $0 + $1.deltas.count } })
        precondition(loaded == rows, "loaded \(loaded) of \(rows) deltas")
        store.close()
        removeDatabase(path)
        let p = plain.sorted()[1]
        let c = checked.sorted()[1]
        let mebibytes: Double = Double(info.st_size) / 1_048_576
        let share: Double = (c - p) / c * 100
        let rate = Int(Double(rows) / loadTime)
        var line = "| \(rows) | \(fixed(mebibytes, 1)) | \(fixed(p * 1000, 1)) ms | "
        line += "\(fixed(c * 1000, 1)) ms | \(fixed(share, 0)) % | "
        line += "\(fixed(loadTime, 2)) s | \(rate) |"
        print(line)
    }
    rmdir(directory)
}
