/// A grow-only counter: one monotone count per replica; the value is their sum.
///
/// Delta of `increment`: the incrementing replica's new count alone.
public struct GCounter: DeltaCRDT, Hashable {
    /// Per replica, the total it has added. Zero entries are absent.
    public internal(set) var counts: [ReplicaID: UInt64]

    public init() { counts = [:] }
    init(counts: [ReplicaID: UInt64]) { self.counts = counts }

    /// The sum of all replicas' counts (wrapping: a state decoded from hostile bytes cannot trap it).
    public var value: UInt64 { counts.values.reduce(0, &+) }

    /// Adds `amount` on behalf of `replica` and returns the delta.
    @discardableResult
    public mutating func increment(by amount: UInt64 = 1, replica: ReplicaID) throws(CRDTMutationError) -> GCounter {
        let (own, ownOverflow) = counts[replica, default: 0].addingReportingOverflow(amount)
        let (_, totalOverflow) = value.addingReportingOverflow(amount)
        guard !ownOverflow, !totalOverflow else { throw .overflow(operation: "increment by \(amount)") }
        if own > 0 { counts[replica] = own }
        return own > 0 ? GCounter(counts: [replica: own]) : GCounter()
    }

    public mutating func join(_ other: GCounter) {
        counts.merge(other.counts) { Swift.max($0, $1) }
    }

    /// O(other): only the replicas `other` names are looked at.
    public mutating func inflate(with other: GCounter) -> Bool {
        var changed = false
        for (replica, count) in other.counts where count > counts[replica, default: 0] {
            counts[replica] = count
            changed = true
        }
        return changed
    }
}

/// A counter that goes up and down: two grow-only counters, increments and decrements.
///
/// Delta of `increment`/`decrement`: the replica's new count on the side that changed.
public struct PNCounter: DeltaCRDT, Hashable {
    /// Total increments.
    public internal(set) var increments: GCounter
    /// Total decrements.
    public internal(set) var decrements: GCounter

    public init() {
        increments = GCounter()
        decrements = GCounter()
    }

    init(increments: GCounter, decrements: GCounter) {
        self.increments = increments
        self.decrements = decrements
    }

    /// Increments minus decrements, in two's complement (wrapping, never trapping).
    public var value: Int64 { Int64(bitPattern: increments.value &- decrements.value) }

    /// Adds `amount` (which may be negative) on behalf of `replica` and returns the delta.
    /// Throws ``CRDTMutationError/overflow(operation:)`` if the value would leave `Int64`'s range.
    @discardableResult
    public mutating func add(_ amount: Int64, replica: ReplicaID) throws(CRDTMutationError) -> PNCounter {
        guard !value.addingReportingOverflow(amount).overflow else {
            throw .overflow(operation: "adding \(amount)")
        }
        if amount >= 0 {
            return PNCounter(increments: try increments.increment(by: amount.magnitude, replica: replica), decrements: GCounter())
        } else {
            return PNCounter(increments: GCounter(), decrements: try decrements.increment(by: amount.magnitude, replica: replica))
        }
    }

    public mutating func join(_ other: PNCounter) {
        increments.join(other.increments)
        decrements.join(other.decrements)
    }

    public mutating func inflate(with other: PNCounter) -> Bool {
        let up = increments.inflate(with: other.increments)
        let down = decrements.inflate(with: other.decrements)
        return up || down
    }
}

/// A PN-counter with an observed reset, for a Redis integer key (`INCRBY`, `DECRBY`, `DEL`).
///
/// Every replica's contribution is a pair of monotone counts, plus a pair of monotone *floors*: the
/// counts some reset observed. The value is the sum of what each replica added beyond its floors.
/// A reset raises every floor to the counts it has seen, so an increment concurrent with a reset
/// (one the reset did not see) survives, while everything the reset saw is cancelled — exactly,
/// even when several replicas reset concurrently (floors join by `max`, not by adding).
///
/// All four components are max-joined per replica, so the state is a product of max-lattices and
/// stays bounded by the number of replicas, however many operations run.
///
/// Delta of `add`: the replica's changed count. Delta of `reset`: every observed count with its
/// floors raised to it (the counts travel along so a floor never exceeds its count at the receiver).
public struct ResettableCounter: DeltaCRDT, Hashable {
    /// One replica's contribution.
    public struct Contribution: Hashable, Sendable {
        /// Total added by the replica.
        public internal(set) var increments: UInt64 = 0
        /// Total subtracted by the replica.
        public internal(set) var decrements: UInt64 = 0
        /// The greatest `increments` that a reset observed.
        public internal(set) var resetIncrements: UInt64 = 0
        /// The greatest `decrements` that a reset observed.
        public internal(set) var resetDecrements: UInt64 = 0

        /// The part of this contribution that no reset has cancelled.
        public var live: Int64 {
            Int64(bitPattern: (increments &- resetIncrements) &- (decrements &- resetDecrements))
        }

        mutating func join(_ other: Contribution) {
            increments = Swift.max(increments, other.increments)
            decrements = Swift.max(decrements, other.decrements)
            resetIncrements = Swift.max(resetIncrements, other.resetIncrements)
            resetDecrements = Swift.max(resetDecrements, other.resetDecrements)
        }

        var isZero: Bool { self == Contribution() }
    }

    /// One replica's contribution, as stored: sorted by replica.
    public struct Entry: Hashable, Sendable {
        /// The contributing replica.
        public let replica: ReplicaID
        /// What it contributed.
        public internal(set) var contribution: Contribution
    }

    /// Contributions sorted by replica id; all-zero contributions are absent. A sorted array rather
    /// than a dictionary: replica counts are small, and it encodes, decodes and joins without
    /// hashing or re-sorting.
    public private(set) var entries: [Entry]

    public init() { entries = [] }
    init(entries: [Entry]) { self.entries = entries }

    /// Contributions by replica.
    public var contributions: [ReplicaID: Contribution] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.replica, $0.contribution) })
    }

    /// The contribution of `replica` (all zeros if it never contributed).
    public func contribution(of replica: ReplicaID) -> Contribution {
        let (index, found) = position(of: replica)
        return found ? entries[index].contribution : Contribution()
    }

    /// The counter's value: everything added and not cancelled by an observed reset.
    public var value: Int64 { entries.reduce(0) { $0 &+ $1.contribution.live } }

    /// Binary search: the index of `replica`, or where it would be inserted.
    private func position(of replica: ReplicaID) -> (index: Int, found: Bool) {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].replica < replica { low = middle + 1 } else { high = middle }
        }
        return (low, low < entries.count && entries[low].replica == replica)
    }

    /// Adds `amount` (negative to subtract) on behalf of `replica` and returns the delta.
    /// Throws ``CRDTMutationError/overflow(operation:)`` if the value would leave `Int64`'s range.
    @discardableResult
    public mutating func add(_ amount: Int64, replica: ReplicaID) throws(CRDTMutationError) -> ResettableCounter {
        guard !value.addingReportingOverflow(amount).overflow else {
            throw .overflow(operation: "adding \(amount)")
        }
        let (index, found) = position(of: replica)
        var mine = found ? entries[index].contribution : Contribution()
        var delta = Contribution()
        if amount >= 0 {
            let (sum, overflow) = mine.increments.addingReportingOverflow(amount.magnitude)
            guard !overflow else { throw .overflow(operation: "adding \(amount)") }
            mine.increments = sum
            delta.increments = sum
        } else {
            let (sum, overflow) = mine.decrements.addingReportingOverflow(amount.magnitude)
            guard !overflow else { throw .overflow(operation: "adding \(amount)") }
            mine.decrements = sum
            delta.decrements = sum
        }
        if amount == 0 { return ResettableCounter() }
        if found { entries[index].contribution = mine } else { entries.insert(Entry(replica: replica, contribution: mine), at: index) }
        return ResettableCounter(entries: [Entry(replica: replica, contribution: delta)])
    }

    /// Cancels every contribution this replica has seen (an observed reset) and returns the delta.
    /// Increments made concurrently elsewhere survive it.
    @discardableResult
    public mutating func reset() -> ResettableCounter {
        for index in entries.indices {
            entries[index].contribution.resetIncrements = entries[index].contribution.increments
            entries[index].contribution.resetDecrements = entries[index].contribution.decrements
        }
        return self
    }

    public mutating func join(_ other: ResettableCounter) {
        _ = inflate(with: other)
    }

    /// O(other · log self) for a delta, which names one or a few replicas; a merge otherwise.
    public mutating func inflate(with other: ResettableCounter) -> Bool {
        if other.entries.isEmpty { return false }
        // A delta usually names one replica: update it in place.
        if other.entries.count <= 4 {
            var changed = false
            for theirs in other.entries {
                let (index, found) = position(of: theirs.replica)
                if found {
                    let before = entries[index].contribution
                    entries[index].contribution.join(theirs.contribution)
                    changed = changed || entries[index].contribution != before
                } else if !theirs.contribution.isZero {
                    entries.insert(theirs, at: index)
                    changed = true
                }
            }
            return changed
        }
        let before = entries.count
        var changed = false
        var merged: [Entry] = []
        merged.reserveCapacity(entries.count + other.entries.count)
        var mine = 0
        var theirs = 0
        while mine < entries.count || theirs < other.entries.count {
            if theirs == other.entries.count || (mine < entries.count && entries[mine].replica < other.entries[theirs].replica) {
                merged.append(entries[mine])
                mine += 1
            } else if mine == entries.count || other.entries[theirs].replica < entries[mine].replica {
                if !other.entries[theirs].contribution.isZero {
                    merged.append(other.entries[theirs])
                    changed = true
                }
                theirs += 1
            } else {
                var entry = entries[mine]
                entry.contribution.join(other.entries[theirs].contribution)
                changed = changed || entry.contribution != entries[mine].contribution
                merged.append(entry)
                mine += 1
                theirs += 1
            }
        }
        entries = merged
        return changed || entries.count != before
    }
}
