import Testing
@testable import Store
import TestSupport

/// Superseded deltas stay in the log until the collector deletes them; none of that may change what
/// load() returns.
@Suite struct CollectorTests {
    let k = bytes("k")
    let other = bytes("other")

    @Test func compactDeletesExactlyTheSupersededDeltas() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        _ = try store.load()
        try store.commit((0..<50).map { .delta(key: k, bytes: [UInt8($0)]) } + [.delta(key: other, bytes: [1])])
        try store.commit([.snapshot(key: k, bytes: [99]), .delta(key: k, bytes: [100])])
        let before = try store.load()
        #expect(store.rowCount("deltas") == 52)
        #expect(try store.compact() == 50)
        #expect(store.rowCount("deltas") == 2)
        #expect(try store.load() == before)
        #expect(before.keys == [k: RecoveredKey(snapshot: [99], deltas: [[100]]), other: RecoveredKey(deltas: [[1]])])
    }

    @Test func commitsCollectOnceSupersededRowsOutnumberLiveOnes() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"), StoreOptions(synchronous: .normal, collectorThreshold: 100))
        _ = try store.load()
        try store.commit((0..<60).map { .delta(key: other, bytes: [UInt8($0)]) })
        try store.commit((0..<99).map { .delta(key: k, bytes: [UInt8($0)]) })
        try store.commit([.snapshot(key: k, bytes: [1])])
        // 99 superseded: below the threshold of 100, nothing is collected.
        try store.commit([.delta(key: other, bytes: [0])])
        #expect(store.rowCount("deltas") == 160)
        try store.commit([.delta(key: k, bytes: [2]), .snapshot(key: k, bytes: [2])])
        // 100 superseded >= max(100, 61 live): the next commit collects.
        try store.commit([.delta(key: other, bytes: [1])])
        #expect(store.rowCount("deltas") == 62)
        #expect(try store.load().keys[k] == RecoveredKey(snapshot: [2]))
        #expect(try store.load().keys[other]?.deltas.count == 62)
    }

    @Test func sequenceNumbersAreNotReusedAfterCollection() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        do {
            let store = try openStore(path)
            _ = try store.load()
            try store.commit([.delta(key: k, bytes: [1]), .delta(key: k, bytes: [2]), .snapshot(key: k, bytes: [12])])
            try store.compact()
            #expect(store.rowCount("deltas") == 0)
            // Were sequence numbers reused, this delta would take seq 1 and hide behind the snapshot.
            try store.commit([.delta(key: k, bytes: [3])])
        }
        #expect(try openStore(path).load().keys[k] == RecoveredKey(snapshot: [12], deltas: [[3]]))
    }

    @Test func removeDeletesEveryRowOfTheKeyAtOnce() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let store = try openStore(path)
        _ = try store.load()
        try store.commit([.delta(key: k, bytes: [1]), .snapshot(key: other, bytes: [5]), .delta(key: k, bytes: [2]),
                          .delta(key: other, bytes: [6]), .snapshot(key: k, bytes: [7]), .delta(key: k, bytes: [8])])
        try store.commit([.remove(key: k), .remove(key: other)])
        #expect(try store.load().keys.isEmpty)
        #expect(store.rowCount("deltas") == 0)
        #expect(store.rowCount("snapshots") == 0)
        // Within a batch: the deltas appended before the remove go with it, those after stay.
        try store.commit([.delta(key: k, bytes: [3]), .remove(key: k), .delta(key: k, bytes: [4])])
        #expect(try store.load().keys == [k: RecoveredKey(deltas: [[4]])])
        #expect(store.rowCount("deltas") == 1)
        #expect(try store.compact() == 0)
        store.close()
        #expect(try openStore(path).load().keys == [k: RecoveredKey(deltas: [[4]])])
    }

    @Test func collectionDeletesRunsOfConsecutiveDeltasAcrossCommits() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"), StoreOptions(synchronous: .normal, collectorThreshold: 10))
        _ = try store.load()
        // 3,000 deltas of k, interleaved with other's every tenth: runs of nine, then a snapshot of k.
        for round in 0..<3 {
            try store.commit((0..<1000).map { $0 % 10 == 9 ? .delta(key: other, bytes: [UInt8(round)]) : .delta(key: k, bytes: [UInt8($0 % 9)]) })
        }
        try store.commit([.snapshot(key: k, bytes: [1])])
        #expect(store.rowCount("deltas") == 3000)
        // 2,700 superseded: a one-record commit deletes the floor (1,024 rows), the next ones the rest.
        try store.commit([.delta(key: other, bytes: [9])])
        #expect(store.rowCount("deltas") == 3001 - Store.collectionFloor)
        try store.commit([.delta(key: other, bytes: [9])])
        try store.commit([.delta(key: other, bytes: [9])])
        #expect(store.rowCount("deltas") == 303)
        #expect(try store.load().keys == [k: RecoveredKey(snapshot: [1]), other: RecoveredKey(deltas: (0..<3).flatMap { round in
            Array(repeating: [UInt8(round)], count: 100) } + [[9], [9], [9]])])
    }

    @Test func randomHistoriesLoadLikeAModel() throws {
        let seed: UInt64 = 0xC0FFEE
        var random = SplitMix64(seed: seed)
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        var model: [[UInt8]: RecoveredKey] = [:]
        var store = try openStore(path, StoreOptions(synchronous: .normal, collectorThreshold: 20))
        _ = try store.load()
        for round in 0..<300 {
            var batch: [StoreRecord] = []
            for _ in 0..<Int.random(in: 0...8, using: &random) {
                let key = [UInt8.random(in: 0..<6, using: &random)]
                let value = [UInt8(truncatingIfNeeded: round), UInt8.random(in: 0...255, using: &random)]
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<7:
                    batch.append(.delta(key: key, bytes: value))
                    model[key, default: RecoveredKey()].deltas.append(value)
                case 7, 8:
                    batch.append(.snapshot(key: key, bytes: value))
                    model[key] = RecoveredKey(snapshot: value)
                default:
                    batch.append(.remove(key: key))
                    model[key] = nil
                }
            }
            try store.commit(batch)
            if round % 50 == 49 {
                store.close()
                store = try openStore(path, StoreOptions(synchronous: .normal, collectorThreshold: 20))
            }
            #expect(try store.load().keys == model, "seed \(seed) round \(round)")
        }
        try store.compact()
        #expect(try store.load().keys == model, "seed \(seed) after compact")
        #expect(store.rowCount("deltas") == model.values.reduce(0) { $0 + $1.deltas.count }, "seed \(seed)")
    }
}

