import CRDT

/// Collection of deleted keys by causal stability (docs/crdts.md, "Collecting deleted keys"): eight times
/// a second, the tombstones whose every write is at or below the stability frontier (applied by every
/// member) are removed from memory, the digests and the store, a bounded number per pass so the engine
/// thread never pauses for long. What collection must remember, the floor above which this node's
/// numbering resumes in a key it collected, is persisted with the removals.
struct CollectionState {
    /// Where this node's dots and counts resume in a slot that holds nothing of its own.
    var floor: DotFloor
    /// Keys collected since start (`INFO`, metrics).
    var collected: UInt64 = 0
    var lastPassAt: UInt64 = 0
    /// Tombstones examined per pass: O(budget) of engine time, whatever the size of the keyspace, and at
    /// most `budget` removals in one commit, which every write committed with it waits for (4,096 in one
    /// commit held the writer for seconds in a debug build: `Benchmarks/scripts/collection-cost.sh`).
    static let budget = 512
    /// A pass every 125 ms: up to 4,096 keys a second.
    static let intervalMilliseconds: UInt64 = 125

    static func encode(_ floor: DotFloor) -> Bytes {
        var writer = BinaryWriter()
        writer.write(varint: floor.dots)
        writer.write(varint: floor.counts)
        return writer.bytes
    }

    static func decode(_ bytes: Bytes, replica: ReplicaID) -> DotFloor? {
        guard var reader = try? BinaryReader(bytes), let dots = try? reader.readVarint(),
              let counts = try? reader.readVarint(), (try? reader.finish()) != nil else { return nil }
        return DotFloor(replica: replica, dots: dots, counts: counts)
    }
}

extension MetaKey {
    static let collectionFloor = "collection_floor"
}

extension Engine {
    /// One collection pass, at most once a second; only a node with peers has a frontier.
    mutating func collectTombstones(now: UInt64, into output: inout EngineOutput) {
        guard let replicator, writeRefusal == nil, now >= collection.lastPassAt + CollectionState.intervalMilliseconds,
              keyspace.tombstoneCandidates > 0 else { return }
        collection.lastPassAt = now
        let frontier = replicator.frontier.vector
        guard !frontier.isEmpty else { return }
        let result = keyspace.collectTombstones(under: frontier, replica: configuration.replica, budget: CollectionState.budget,
                                                into: &output.records)
        guard result.collected > 0 else { return }
        collection.collected += UInt64(result.collected)
        if result.dots > collection.floor.dots || result.counts > collection.floor.counts {
            collection.floor.dots = max(collection.floor.dots, result.dots)
            collection.floor.counts = max(collection.floor.counts, result.counts)
            // In the same commit as the removals: a restart never numbers below what it collected.
            output.records.append(.meta(name: MetaKey.collectionFloor, value: CollectionState.encode(collection.floor)))
        }
    }
}
