/// An amount a counter adds: a 64-bit integer (Redis `HINCRBY`) or a double (`ZINCRBY`,
/// `HINCRBYFLOAT`).
public protocol CounterAmount: Sendable, Hashable, BinaryCodable {
    /// The neutral amount.
    static var zero: Self { get }
    /// `self + other`, or `nil` when the result leaves the type's range (an integer overflow, a
    /// float that is not finite). Mutators use this and refuse the operation on `nil`.
    func addingChecked(_ other: Self) -> Self?
    /// `self + other` as a total function (wrapping integers), for reads of states that may come from
    /// untrusted bytes: a read never traps.
    func addingForRead(_ other: Self) -> Self
    /// `self - other` as a total function, like ``addingForRead(_:)``.
    func subtractingForRead(_ other: Self) -> Self
}

extension Int64: CounterAmount {
    public func addingChecked(_ other: Int64) -> Int64? {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? nil : sum
    }
    public func addingForRead(_ other: Int64) -> Int64 { self &+ other }
    public func subtractingForRead(_ other: Int64) -> Int64 { self &- other }
}

extension Double: CounterAmount {
    public func addingChecked(_ other: Double) -> Double? {
        let sum = self + other
        return sum.isFinite ? sum : nil
    }
    public func addingForRead(_ other: Double) -> Double { self + other }
    public func subtractingForRead(_ other: Double) -> Double { self - other }
}

/// What a write saw of one increment shard: the shard's version and total at the time.
public struct CountingFloor<Amount: CounterAmount>: Sendable, Hashable {
    /// The shard's version the write saw (its number of increments).
    public let version: UInt64
    /// The shard's total at that version.
    public let total: Amount

    /// A floor.
    public init(version: UInt64, total: Amount) {
        self.version = version
        self.total = total
    }
}

/// One dot's payload in a ``CountingRegister``.
public enum CountingEntry<Value: Sendable & Equatable, Amount: CounterAmount>: Sendable, Equatable {
    /// A write (`HSET`, `ZADD`): the stamped value, and for every increment shard the writer held,
    /// what it saw of it. Those are the write's *floors*: increments up to them are replaced by the
    /// write; increments beyond them (which the writer had not seen) count on top.
    case write(Stamped<Value>, floors: [Dot: CountingFloor<Amount>])
    /// One replica's running total of increments. The shard keeps the dot of its first increment;
    /// each later increment raises `version`, and replicas holding the same shard keep the higher
    /// version (a lost or reordered increment delta is subsumed by the next one).
    case shard(version: UInt64, total: Amount)
}

/// The dot store of ``CountingRegister``: dots to writes and shards. It joins like ``DotFun``
/// (a dot one side has seen but no longer holds was removed), except that a shard both sides hold
/// keeps the higher version: a shard's dot names its chain of increments, not one event.
public struct CountingStore<Value: Sendable & Equatable, Amount: CounterAmount>: DotStore {
    public typealias Entry = CountingEntry<Value, Amount>

    /// The writes and shards held, by dot.
    @inlinable public var entries: [Dot: Entry] { storage }
    @usableFromInline var storage: [Dot: Entry]

    @inlinable public init() { storage = [:] }
    @inlinable init(_ entries: [Dot: Entry]) { storage = entries }

    @inlinable public var isBottom: Bool { storage.isEmpty }

    public func collectDots(into dots: inout [Dot]) { dots.append(contentsOf: storage.keys) }

    @inlinable
    public func forEachDot(_ body: (Dot) -> Void) { for dot in storage.keys { body(dot) } }

    @inlinable
    public func containsAnyDot(in context: CausalContext.Probe) -> Bool {
        for dot in storage.keys where context.contains(dot) { return true }
        return false
    }

    /// Writes enter by dot; shards by dot and version, since a shard's entry changes under its dot.
    @inlinable
    public var dotDigest: DotDigest {
        var digest = DotDigest()
        for (dot, entry) in storage {
            if case .shard(let version, _) = entry { digest.insert(dot, version: version) } else { digest.insert(dot) }
        }
        return digest
    }

    @inlinable
    public mutating func join(_ other: CountingStore, context: CausalContext, otherContext: CausalContext) {
        let otherEntries = other.storage
        var dropsSome = false
        for dot in storage.keys where otherContext.contains(dot) && otherEntries[dot] == nil {
            dropsSome = true
            break
        }
        if dropsSome { storage = storage.filter { !otherContext.contains($0.key) || otherEntries[$0.key] != nil } }
        for (dot, theirs) in otherEntries {
            if let mine = storage[dot] {
                if case .shard(let myVersion, _) = mine, case .shard(let theirVersion, _) = theirs, theirVersion > myVersion {
                    storage[dot] = theirs
                }
            } else if !context.contains(dot) {
                storage[dot] = theirs
            }
        }
    }
}

/// A last-writer-wins register with a counter on top, for a value that is both written and
/// incremented: a Redis hash field under `HSET`/`HINCRBY`, a sorted-set score under
/// `ZADD`/`ZINCRBY`. Alone (never written) it is a counter that nests in an ``ORMap``.
///
/// The read is the winning write (greatest Lamport timestamp) plus every increment that write had
/// not seen. So:
/// * concurrent increments all count (each replica's increments go to its own shard);
/// * a write replaces every increment its writer had seen, exactly: it records what it saw of each
///   shard (floors) instead of deleting the shards, so an increment concurrent with it counts on top;
/// * among concurrent writes the later Lamport timestamp wins, and only the winner's floors apply:
///   the increments the winner had not seen count, even if a losing write had seen them.
///
/// `remove()` (`HDEL`, `ZREM`, and the removal of an enclosing ``ORMap`` key) drops every write and
/// shard it has seen; a write concurrent with it survives, and so does a shard created concurrently
/// (a replica's first increment since it last saw the value removed). But an increment to a shard the
/// remover had seen is lost with it: *the removal wins over concurrent increments of shards it saw*.
/// An exact observed removal of increments is impossible in a bounded state-based design (Baquero et
/// al., *The problem with embedded CRDT counters and a solution*, 2016; Weidner and Almeida 2022):
/// the alternative, a fresh dot per increment, revives the shard's whole earlier total instead,
/// and losing the increments concurrent with a removal is the smaller surprise.
///
/// State: one write per concurrent writer (normally one) and one shard per replica that
/// incremented since it last saw a removal. Deltas: `assign` ships the write with its floors (one
/// entry per incrementing replica); `increment` ships the replica's shard (one dot, its version and
/// total); `remove` ships only a context.
///
/// For `Double` values and amounts, NaN must never be written: it is not equal to itself, and the
/// decoder refuses it.
public struct CountingRegister<Value: Sendable & Equatable, Amount: CounterAmount>: CausalCRDT {
    public typealias Entry = CountingEntry<Value, Amount>

    @inlinable public var store: CountingStore<Value, Amount> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: CountingStore<Value, Amount>
    @usableFromInline var _context: CausalContext

    @inlinable
    public init(store: CountingStore<Value, Amount>, context: CausalContext) {
        _store = store
        _context = context
    }

    /// A register holding the writes of a ``CausalLWWRegister`` (no increments, no floors), with the
    /// same dots and context: how a stored hash of plain registers becomes a hash of counting ones.
    @inlinable
    public init(_ register: CausalLWWRegister<Value>) {
        self.init(store: Self.store(converting: register.store), context: register.context)
    }

    /// The store of ``init(_:)`` on its own, for ``ORMap/init(converting:_:)``:
    /// `ORMap(converting: hash, CountingRegister.store(converting:))`.
    @inlinable
    public static func store(converting registerStore: DotFun<Stamped<Value>>) -> CountingStore<Value, Amount> {
        var entries: [Dot: Entry] = [:]
        for (dot, stamped) in registerStore.entries { entries[dot] = .write(stamped, floors: [:]) }
        return CountingStore(entries)
    }

    /// The winning write, its dot and its floors: the greatest timestamp among the writes held.
    @inlinable
    public var winningWrite: (dot: Dot, stamped: Stamped<Value>, floors: [Dot: CountingFloor<Amount>])? {
        var best: (dot: Dot, stamped: Stamped<Value>, floors: [Dot: CountingFloor<Amount>])? = nil
        for (dot, entry) in _store.entries {
            guard case .write(let stamped, let floors) = entry else { continue }
            if best == nil || best!.stamped.timestamp < stamped.timestamp { best = (dot, stamped, floors) }
        }
        return best
    }

    /// The winning write's value, or `nil` when nothing written survives (a pure counter, or removed).
    @inlinable
    public var value: Value? { winningWrite?.stamped.value }

    /// The sum of the increments the winning write had not seen (all increments when nothing is
    /// written). Summed in dot order, so float sums are identical on every replica.
    @inlinable
    public var increments: Amount {
        let floors = winningWrite?.floors ?? [:]
        var shards: [(dot: Dot, version: UInt64, total: Amount)] = []
        for (dot, entry) in _store.entries {
            if case .shard(let version, let total) = entry { shards.append((dot, version, total)) }
        }
        if shards.count > 1 { shards.sort { $0.dot < $1.dot } }
        var sum = Amount.zero
        for shard in shards {
            guard let floor = floors[shard.dot] else {
                sum = sum.addingForRead(shard.total)
                continue
            }
            // A write that saw this version of the shard, or a later one, replaced all of it.
            if floor.version < shard.version { sum = sum.addingForRead(shard.total.subtractingForRead(floor.total)) }
        }
        return sum
    }

    /// True when neither a write nor an increment is held (the key of an enclosing map is absent).
    @inlinable
    public var isEmpty: Bool { _store.isBottom }

    /// Writes `value` with a timestamp from `clock` (after observing every held write's timestamp) and
    /// a fresh dot. What it saw of each shard is recorded as the write's floors. Returns the delta.
    @discardableResult
    @inlinable
    public mutating func assign(_ value: Value, clock: inout LamportClock) -> CountingRegister {
        var superseded: [Dot] = []
        var floors: [Dot: CountingFloor<Amount>] = [:]
        for (dot, entry) in _store.entries {
            switch entry {
            case .write(let stamped, _):
                clock.observe(stamped.timestamp)
                superseded.append(dot)
            case .shard(let version, let total):
                floors[dot] = CountingFloor(version: version, total: total)
            }
        }
        let dot = _context.nextDot(for: clock.replica)
        let entry = Entry.write(Stamped(timestamp: clock.tick(), value: value), floors: floors)
        for old in superseded { _store.storage.removeValue(forKey: old) }
        _store.storage[dot] = entry
        _context.insert(dot)
        var deltaContext = CausalContext(dots: superseded)
        deltaContext.insert(dot)
        return CountingRegister(store: CountingStore([dot: entry]), context: deltaContext)
    }

    /// Adds `amount` on behalf of `replica` and returns the delta. A zero amount changes nothing,
    /// except that it creates the value (a shard of total zero) when the register is empty, as
    /// `HINCRBY h f 0` creates the field.
    ///
    /// Throws ``CRDTMutationError/overflow(operation:)`` when the replica's running total would leave
    /// the amount's range; nothing changes then. (Whether the *read* value stays in range depends on
    /// how the caller combines it with the written value; check that before calling.)
    @discardableResult
    @inlinable
    public mutating func increment(by amount: Amount, replica: ReplicaID) throws(CRDTMutationError) -> CountingRegister {
        guard amount.addingChecked(.zero) != nil else { throw .overflow(operation: "incrementing by \(amount)") }
        var current: (dot: Dot, version: UInt64, total: Amount)? = nil
        for (dot, entry) in _store.entries where dot.replica == replica {
            if case .shard(let version, let total) = entry, current == nil || current!.dot < dot { current = (dot, version, total) }
        }
        if amount == .zero && !isEmpty { return CountingRegister() }
        let dot: Dot
        let entry: Entry
        if let current {
            guard let total = current.total.addingChecked(amount), current.version < .max else {
                throw .overflow(operation: "incrementing by \(amount)")
            }
            dot = current.dot
            entry = .shard(version: current.version + 1, total: total)
        } else {
            dot = _context.nextDot(for: replica)
            entry = .shard(version: 1, total: amount)
            _context.insert(dot)
        }
        _store.storage[dot] = entry
        return CountingRegister(store: CountingStore([dot: entry]), context: CausalContext(dots: [dot]))
    }

    /// Removes every write and increment seen and returns the delta; concurrent writes and new
    /// shards survive.
    @discardableResult
    @inlinable
    public mutating func remove() -> CountingRegister {
        let delta = CountingRegister(store: CountingStore(), context: CausalContext(dots: _store.entries.keys))
        _store = CountingStore()
        return delta
    }
}
