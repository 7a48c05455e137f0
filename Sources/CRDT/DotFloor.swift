/// Where a replica's numbering resumes in a key after keys it wrote were collected.
///
/// Dots and counter contributions are numbered per key. Once a deleted key's tombstone is collected on
/// one node (docs/crdts.md, "Collecting deleted keys"), that node no longer knows how far its own
/// numbering went in the key, while another node may still hold the tombstone: a new write numbered from
/// 1 would look "already seen and removed" there, and a new count would hide under the old reset. So the
/// collecting node remembers, across all keys it collected, the largest dot and count it had issued in
/// them (the floor), and a slot that holds nothing of its own resumes above it, claiming everything below
/// as seen: dots that, by stability, are dead everywhere.
public struct DotFloor: Hashable, Sendable {
    public var replica: ReplicaID
    /// Every dot of `replica` issued in a collected key is numbered at most this.
    public var dots: UInt64
    /// Every count `replica` contributed to a collected counter is at most this.
    public var counts: UInt64

    public init(replica: ReplicaID, dots: UInt64 = 0, counts: UInt64 = 0) {
        self.replica = replica
        self.dots = dots
        self.counts = counts
    }

    /// Nothing was collected: no slot needs a claim.
    public var isZero: Bool { dots == 0 && counts == 0 }
}

extension CausalCRDT {
    /// Makes the next dot of `floor.replica` here exceed `floor.dots`, if this state holds no dot of
    /// that replica and has not numbered past the floor. Returns the claim to ship with the write (a
    /// context-only delta), or `nil` when none was needed.
    ///
    /// Only a state holding none of the replica's dots may claim: a claim covering a dot it still holds
    /// would remove that dot on every receiver (the claim's store is empty). O(own dots seen, at most the
    /// floor), and nothing when the state numbered past the floor already.
    public mutating func claim(_ floor: DotFloor) -> Self? {
        let mine = context.maxCounter(of: floor.replica)
        guard mine < floor.dots else { return nil }
        if mine > 0 && store.holdsDot(of: floor.replica, through: mine) { return nil }
        let claim = Self(store: Store(), context: CausalContext(versionVector: [floor.replica: floor.dots]))
        var context = self.context
        context.formUnion(claim.context)
        // The store is unchanged: it holds no dot of the replica, and the claim names no other.
        self = Self(store: store, context: context)
        return claim
    }
}

extension ResettableHyperLogLog {
    /// As `CausalCRDT.claim(_:)`: a sketch is named by a dot of the replica that made it.
    public mutating func claim(_ floor: DotFloor) -> ResettableHyperLogLog? {
        let mine = context.maxCounter(of: floor.replica)
        guard mine < floor.dots else { return nil }
        if sketches.keys.contains(where: { $0.replica == floor.replica }) { return nil }
        let claim = ResettableHyperLogLog(sketches: [:], context: CausalContext(versionVector: [floor.replica: floor.dots]))
        join(claim)
        return claim
    }
}

extension ResettableCounter {
    /// Makes `floor.replica`'s contribution resume above `floor.counts` when nothing of it is live (absent,
    /// or wholly cancelled by an observed reset): both totals rise to the floor and the reset marks with
    /// them, so the value is unchanged and a later count exceeds anything a stale tombstone holds.
    /// Returns the claim to ship (the contribution's new state), or `nil` when none was needed.
    public mutating func claim(_ floor: DotFloor) -> ResettableCounter? {
        let mine = contribution(of: floor.replica)
        guard mine.increments == mine.resetIncrements, mine.decrements == mine.resetDecrements,
              mine.increments < floor.counts || mine.decrements < floor.counts else { return nil }
        var raised = mine
        raised.increments = Swift.max(mine.increments, floor.counts)
        raised.decrements = Swift.max(mine.decrements, floor.counts)
        raised.resetIncrements = raised.increments
        raised.resetDecrements = raised.decrements
        let claim = ResettableCounter(entries: [Entry(replica: floor.replica, contribution: raised)])
        join(claim)
        return claim
    }
}
