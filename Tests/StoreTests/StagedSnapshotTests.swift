import Testing
@testable import Store

/// Staged snapshots: a large object's snapshot written in parts over several commits and switched to
/// by a seal (docs/storage.md). Recovery after a restart, a crash half-way, replacement, and damage.
@Suite struct StagedSnapshotTests {
    let big = bytes("big")
    let other = bytes("other")

    /// Parts of `total` bytes, `size` each, with recognisable contents.
    private func parts(_ total: Int, size: Int, seed: UInt8) -> [[UInt8]] {
        let whole = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
        return stride(from: 0, to: total, by: size).map { Array(whole[$0..<min(total, $0 + size)]) }
    }

    /// Deltas committed before the begin are covered, those committed while the parts were written stay;
    /// a restart reads the concatenated parts as the snapshot, and no inline snapshot is left behind.
    @Test func aSealedStageIsTheSnapshotAfterARestart() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let pieces = parts(10_000, size: 1024, seed: 7)
        do {
            let store = try openStore(path)
            _ = try store.load()
            try store.commit([.snapshot(key: big, bytes: [1, 2, 3]), .delta(key: big, bytes: [4])])
            // The begin in the same batch as a delta before it: that delta is covered too.
            try store.commit([.delta(key: big, bytes: [5]), .snapshotBegin(key: big), .snapshotPart(key: big, bytes: pieces[0])])
            for (index, piece) in pieces.enumerated().dropFirst() {
                try store.commit([.delta(key: big, bytes: [UInt8(100 + index)]), .delta(key: other, bytes: [9]),
                                  .snapshotPart(key: big, bytes: piece)])
            }
            try store.commit([.snapshotSeal(key: big), .delta(key: big, bytes: [200])])
            #expect(store.collector.live[RowKey(big)]?.count == pieces.count - 1 + 1)
            #expect(store.collector.superseded[big]?.count == 2)
            #expect(store.rowCount("snapshots") == 0, "the seal removed the key's inline snapshot")
            store.close()
        }
        let reopened = try openStore(path)
        let recovered = try reopened.load()
        let expectedDeltas = (1..<pieces.count).map { [UInt8(100 + $0)] } + [[200]]
        #expect(recovered.keys[big] == RecoveredKey(snapshot: Array(pieces.joined()), deltas: expectedDeltas))
        #expect(recovered.keys[other]?.deltas.count == pieces.count - 1)
        #expect(reopened.collector.superseded[big]?.count == 2)
        #expect(reopened.stages.sealedStage(big)?.parts.count == pieces.count)
        // And it goes on: a second stage replaces the first; its parts are freed over later commits.
        let second = parts(3000, size: 1000, seed: 9)
        try reopened.commit([.snapshotBegin(key: big)] + second.map { .snapshotPart(key: big, bytes: $0) } + [.snapshotSeal(key: big)])
        // Chosen before the batch: this commit deleted none of the replaced stage's parts yet.
        #expect(reopened.stages.doomedPartCount == pieces.count)
        while reopened.stages.doomedPartCount > 0 { try reopened.commit([.delta(key: other, bytes: [1])]) }
        #expect(reopened.rowCount("snapshot_parts") == second.count)
        #expect(reopened.rowCount("snapshot_stages") == 1)
        reopened.close()
        let again = try openStore(path).load()
        #expect(again.keys[big] == RecoveredKey(snapshot: Array(second.joined()), deltas: []))
    }

    /// A crash before the seal loses nothing: the old snapshot and every delta are still what loads,
    /// and the half-written parts are deleted by the next commits.
    @Test func anUnsealedStageIsIgnoredThenDeleted() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let pieces = parts(8192, size: 512, seed: 3)
        do {
            let store = try openStore(path)
            _ = try store.load()
            try store.commit([.snapshot(key: big, bytes: [1]), .delta(key: big, bytes: [2])])
            try store.commit([.snapshotBegin(key: big)] + pieces.prefix(10).map { .snapshotPart(key: big, bytes: $0) })
            try store.commit([.delta(key: big, bytes: [3])])
            store.close()  // as after kill -9: the stage was never sealed
        }
        let store = try openStore(path, StoreOptions(synchronous: .normal, doomedPartsPerCommit: 3))
        #expect(try store.load().keys[big] == RecoveredKey(snapshot: [1], deltas: [[2], [3]]))
        #expect(store.rowCount("snapshot_parts") == 10)
        try store.commit([.delta(key: other, bytes: [1])])
        #expect(store.rowCount("snapshot_stages") == 0, "the unsealed stage's row goes with the first commit")
        #expect(store.rowCount("snapshot_parts") == 7, "then its parts, a bounded number per commit")
        for _ in 0..<3 { try store.commit([.delta(key: other, bytes: [1])]) }
        #expect(store.rowCount("snapshot_parts") == 0)
        #expect(try store.load().keys[big] == RecoveredKey(snapshot: [1], deltas: [[2], [3]]))
    }

    /// A second begin discards an unsealed stage; an inline snapshot drops every stage of its key.
    @Test func aNewBeginOrAnInlineSnapshotDropsEarlierStages() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        _ = try store.load()
        try store.commit([.snapshotBegin(key: big), .snapshotPart(key: big, bytes: [1, 1])])
        try store.commit([.snapshotBegin(key: big), .snapshotPart(key: big, bytes: [2, 2]), .snapshotSeal(key: big)])
        #expect(try store.load().keys[big]?.snapshot == [2, 2])
        try store.commit([.snapshot(key: big, bytes: [3])])
        try store.compact()
        #expect(store.rowCount("snapshot_stages") == 0 && store.rowCount("snapshot_parts") == 0)
        #expect(try store.load().keys[big] == RecoveredKey(snapshot: [3], deltas: []))
        // Removing a key removes its stages with it.
        try store.commit([.snapshotBegin(key: big), .snapshotPart(key: big, bytes: [4]), .snapshotSeal(key: big),
                          .snapshotBegin(key: big), .snapshotPart(key: big, bytes: [5]), .remove(key: big)])
        try store.compact()
        #expect(store.rowCount("snapshot_stages") == 0 && store.rowCount("snapshot_parts") == 0)
        #expect(try store.load().keys[big] == nil)
    }

    /// A damaged or missing part stops the load with an error naming the key and the part, and changes
    /// nothing: once the part is put back, every key loads as it was.
    @Test func aDamagedPartIsAClearErrorAndLosesNothingElse() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("node.db")
        let pieces = parts(4096, size: 1024, seed: 5)
        do {
            let store = try openStore(path)
            _ = try store.load()
            try store.commit([.delta(key: other, bytes: [42]), .snapshot(key: bytes("third"), bytes: [7])])
            try store.commit([.snapshotBegin(key: big)] + pieces.map { .snapshotPart(key: big, bytes: $0) } + [.snapshotSeal(key: big)])
            store.close()
        }
        // Flip bytes of the second part, past SQLite's page checks: only the part's checksum sees it.
        rawSQL(path, "UPDATE snapshot_parts SET bytes = zeroblob(1024) WHERE part = (SELECT min(part) + 1 FROM snapshot_parts)")
        let damaged = storeError { _ = try openStore(path).load() }
        #expect(damaged?.code == .corrupt)
        #expect(damaged?.message.contains("key 'big'") == true && damaged?.message.contains("part 2 of 4") == true, "\(damaged?.message ?? "")")
        let digits = Array("0123456789abcdef")
        let hex = String(pieces[1].flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
        rawSQL(path, "UPDATE snapshot_parts SET bytes = x'\(hex)' WHERE part = (SELECT min(part) + 1 FROM snapshot_parts)")
        let repaired = try openStore(path).load()
        #expect(repaired.keys[big] == RecoveredKey(snapshot: Array(pieces.joined()), deltas: []))
        #expect(repaired.keys[other]?.deltas == [[42]] && repaired.keys[bytes("third")]?.snapshot == [7])
        // A missing part is named as well.
        rawSQL(path, "DELETE FROM snapshot_parts WHERE part = (SELECT max(part) FROM snapshot_parts)")
        let missing = storeError { _ = try openStore(path).load() }
        #expect(missing?.code == .corrupt && missing?.message.contains("3 of its 4 parts") == true, "\(missing?.message ?? "")")
    }

    /// A part or seal with no begin is the caller's bug: refused, and the batch rolled back whole.
    @Test func aPartWithoutABeginIsRefused() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        _ = try store.load()
        let error = storeError { try store.commit([.delta(key: other, bytes: [1]), .snapshotPart(key: big, bytes: [1])]) }
        #expect(error?.code == .invalidRecord)
        #expect(storeError { try store.commit([.snapshotSeal(key: big)]) }?.code == .invalidRecord)
        #expect(store.rowCount("deltas") == 0)
        try store.commit([.delta(key: other, bytes: [2])])
        #expect(try store.load().keys[other]?.deltas == [[2]])
    }

    /// Writing a 4 MiB snapshot in 256 KiB parts: no commit of the stage writes much more than one
    /// part's pages, where the inline snapshot's one commit writes all of them.
    @Test func noCommitOfAStageWritesTheWholeObject() throws {
        let directory = TemporaryDirectory()
        let store = try openStore(directory.file("node.db"))
        _ = try store.load()
        let total = 4 << 20, part = 256 << 10
        let pieces = parts(total, size: part, seed: 1)
        _ = store.pagesWrittenSinceLastCall()
        try store.commit([.snapshot(key: other, bytes: Array(pieces.joined()))])
        let inline = store.pagesWrittenSinceLastCall()
        var largest = 0
        try store.commit([.snapshotBegin(key: big)])
        for piece in pieces {
            try store.commit([.snapshotPart(key: big, bytes: piece), .delta(key: big, bytes: [1])])
            largest = max(largest, store.pagesWrittenSinceLastCall())
        }
        try store.commit([.snapshotSeal(key: big)])
        largest = max(largest, store.pagesWrittenSinceLastCall())
        #expect(inline > 1000 && largest < 100, "largest staged commit \(largest) pages, the inline snapshot \(inline)")
        #expect(try store.load().keys[big]?.snapshot == Array(pieces.joined()))
    }
}
