/// Sequence numbers of delta rows, kept as runs of consecutive numbers: the deltas of a key written
/// alone (a large object being filled, a batch to one key) are one run, deleted by one range.
struct SequenceRuns: Equatable {
    private var runs: [ClosedRange<Int64>] = []
    /// Runs before this index were taken already; dropping them lazily keeps `take` O(what it takes).
    private var head = 0
    /// How many sequence numbers the runs hold.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Appends `sequence`, which must exceed every number held.
    mutating func append(_ sequence: Int64) {
        if head < runs.count, let last = runs.last, last.upperBound &+ 1 == sequence {
            runs[runs.count - 1] = last.lowerBound...sequence
        } else {
            runs.append(sequence...sequence)
        }
        count += 1
    }

    /// Appends every number of `other` after those held. Only `removePrefix(through:)` needs them to exceed
    /// every number held; a queue of rows to delete (`StageBook`'s doomed parts, whose stages' parts
    /// interleave) appends runs in any order and takes them with `peek` and `removeFirst`.
    mutating func append(contentsOf other: SequenceRuns) {
        for run in other.runs[other.head...] {
            if head < runs.count, let last = runs.last, last.upperBound &+ 1 == run.lowerBound {
                runs[runs.count - 1] = last.lowerBound...run.upperBound
            } else {
                runs.append(run)
            }
        }
        count += other.count
    }

    /// The oldest runs holding at most `limit` numbers (the last one cut to fit), without removing them.
    func peek(_ limit: Int) -> [ClosedRange<Int64>] {
        var taken: [ClosedRange<Int64>] = []
        var left = Int64(limit)
        var index = head
        while left > 0, index < runs.count {
            let run = runs[index]
            let length = run.upperBound - run.lowerBound + 1
            if length <= left {
                taken.append(run)
                left -= length
            } else {
                taken.append(run.lowerBound...(run.lowerBound + left - 1))
                left = 0
            }
            index += 1
        }
        return taken
    }

    /// Removes the oldest `total` numbers (what `peek` returned and was deleted).
    mutating func removeFirst(_ total: Int) {
        var left = Int64(total)
        while left > 0, head < runs.count {
            let run = runs[head]
            let length = run.upperBound - run.lowerBound + 1
            if length <= left {
                head += 1
                left -= length
            } else {
                runs[head] = (run.lowerBound + left)...run.upperBound
                left = 0
            }
        }
        count -= total
        if head > 32, head * 2 > runs.count {
            runs.removeFirst(head)
            head = 0
        }
    }

    /// Removes the numbers up to and including `through` and returns them (a staged snapshot supersedes
    /// the deltas appended before its begin, not those appended while its parts were written).
    mutating func removePrefix(through: Int64) -> SequenceRuns {
        var taken = SequenceRuns()
        var total = 0
        var index = head
        while index < runs.count, runs[index].lowerBound <= through {
            let run = runs[index]
            let cut = run.lowerBound...min(run.upperBound, through)
            taken.runs.append(cut)
            total += Int(cut.upperBound - cut.lowerBound + 1)
            index += 1
        }
        taken.count = total
        removeFirst(total)
        return taken
    }

    /// Every run, oldest first.
    var all: ArraySlice<ClosedRange<Int64>> { runs[head...] }
}

/// Which delta rows are live and which are superseded, by key and sequence number, so that the deltas
/// a snapshot supersedes are deleted by rowid range, never found by scanning the log. Exact from
/// ``Store/load()`` on; changed only after a commit succeeds, so a rolled-back batch leaves it as it was.
struct Collector {
    /// Per key, the deltas appended after its snapshot (all of them if it has none).
    /// Keyed by `RowKey` (hashed in one call): touched by every appended delta.
    private(set) var live: [RowKey: SequenceRuns] = [:]
    /// Per key, the deltas its snapshot superseded that are not deleted yet.
    private(set) var superseded: [[UInt8]: SequenceRuns] = [:]
    /// Keys with superseded deltas, in the order their snapshots were written; a key may appear after
    /// its entry is gone (removed keys), and is then skipped.
    private var order: [[UInt8]] = []
    private var orderHead = 0
    private(set) var liveTotal = 0
    private(set) var supersededTotal = 0

    /// Collect once superseded rows reach the threshold and outnumber live ones: the file then
    /// stays within about twice the live data, and each delta is deleted once.
    func isDue(threshold: Int) -> Bool {
        supersededTotal > 0 && supersededTotal >= max(threshold, liveTotal)
    }

    /// A delta row found by ``Store/load()`` or just appended.
    mutating func appended(_ sequence: Int64, key: [UInt8]) {
        live[RowKey(key), default: SequenceRuns()].append(sequence)
        liveTotal += 1
    }

    /// A superseded row found by ``Store/load()``; rows arrive in sequence order.
    mutating func loadedSuperseded(_ sequence: Int64, key: [UInt8]) {
        if superseded[key] == nil { order.append(key) }
        superseded[key, default: SequenceRuns()].append(sequence)
        supersededTotal += 1
    }

    /// `key`'s snapshot was written: every live delta of the key (up to `through`, if given: a staged
    /// snapshot covers the log as it was at its begin) is now superseded.
    mutating func snapshotWritten(_ key: [UInt8], through: Int64? = nil) {
        guard var runs = live.removeValue(forKey: RowKey(key)) else { return }
        if let through {
            let covered = runs.removePrefix(through: through)
            if !runs.isEmpty { live[RowKey(key)] = runs }
            runs = covered
            guard !runs.isEmpty else { return }
        }
        liveTotal -= runs.count
        supersededTotal += runs.count
        if superseded[key] == nil { order.append(key) }
        superseded[key, default: SequenceRuns()].append(contentsOf: runs)
    }

    /// Every row `key` has in the log, live or superseded, oldest first: what removing it deletes.
    func rows(of key: [UInt8]) -> [ClosedRange<Int64>] {
        var rows = SequenceRuns()
        if let old = superseded[key] { rows.append(contentsOf: old) }
        if let new = live[RowKey(key)] { rows.append(contentsOf: new) }
        return Array(rows.all)
    }

    /// `key` was removed and all its rows deleted.
    mutating func removed(_ key: [UInt8]) {
        liveTotal -= live.removeValue(forKey: RowKey(key))?.count ?? 0
        supersededTotal -= superseded.removeValue(forKey: key)?.count ?? 0
        // Most keys removed (collected): the table is rebuilt at its size, so its memory goes too.
        if live.capacity > 4 * max(live.count, 1024) {
            live = Dictionary(live.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// The superseded rows to delete next, at most `limit` of them, oldest snapshot first.
    func nextCollection(_ limit: Int) -> Collection {
        var collection = Collection()
        var index = orderHead
        while collection.rows < limit, index < order.count {
            let key = order[index]
            index += 1
            // An entry whose key was removed, or collected and superseded again (listed twice).
            guard let runs = superseded[key], !collection.keys.contains(where: { $0.key == key }) else { continue }
            let ranges = runs.peek(limit - collection.rows)
            let rows = ranges.reduce(0) { $0 + Int($1.upperBound - $1.lowerBound + 1) }
            collection.keys.append((key, rows))
            collection.ranges += ranges
            collection.rows += rows
        }
        return collection
    }

    /// The rows of `collection` were deleted.
    mutating func collected(_ collection: Collection) {
        for (key, rows) in collection.keys {
            guard var runs = superseded.removeValue(forKey: key) else { continue }
            runs.removeFirst(rows)
            if !runs.isEmpty { superseded[key] = runs }
        }
        supersededTotal -= collection.rows
        while orderHead < order.count, superseded[order[orderHead]] == nil {
            orderHead += 1
        }
        if orderHead > 32, orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    /// Superseded rows chosen for deletion by one commit.
    struct Collection {
        var keys: [(key: [UInt8], rows: Int)] = []
        var ranges: [ClosedRange<Int64>] = []
        var rows = 0
    }
}

/// A key as a dictionary key that hashes its bytes in one call (`[UInt8]`'s own `Hashable` feeds the
/// hasher one byte at a time, a visible share of every commit).
struct RowKey: Hashable {
    var bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
    static func == (lhs: RowKey, rhs: RowKey) -> Bool { lhs.bytes == rhs.bytes }
}
