/// A member with its score, ordered as Redis orders a sorted set: by score, then by the member's
/// bytes (`memcmp`, a prefix first).
public struct ScoredMember: Comparable, Hashable, Sendable {
    /// The member.
    public let member: [UInt8]
    /// Its score.
    public let score: Double

    /// A member with its score.
    public init(member: [UInt8], score: Double) {
        self.member = member
        self.score = score
    }

    public static func < (lhs: ScoredMember, rhs: ScoredMember) -> Bool {
        if lhs.score != rhs.score { return lhs.score < rhs.score }
        return lhs.member.lexicographicallyPrecedes(rhs.member)
    }

    public static func == (lhs: ScoredMember, rhs: ScoredMember) -> Bool {
        lhs.score == rhs.score && lhs.member == rhs.member
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(member)
        hasher.combine(score)
    }
}

/// One end of a score range (`ZRANGE ... BYSCORE`, `ZCOUNT`): `1.5` is inclusive, `(1.5` exclusive,
/// `-inf` and `+inf` are the inclusive infinities.
public enum ScoreBound: Hashable, Sendable {
    case inclusive(Double)
    case exclusive(Double)
}

/// One end of a lexicographic range (`ZRANGE ... BYLEX`): `-` and `+` are the unbounded ends,
/// `[m` inclusive, `(m` exclusive.
public enum LexBound: Hashable, Sendable {
    case unbounded
    case inclusive([UInt8])
    case exclusive([UInt8])
}

/// A Redis sorted set (`ZADD`, `ZINCRBY`, `ZREM`, `ZSCORE`, `ZRANK`, `ZRANGE`, `ZCOUNT`): an
/// observed-remove map from member to a ``CountingRegister`` of scores.
///
/// Score semantics:
/// * `ZADD` sets a last-writer-wins score (ordered by Lamport timestamp, then replica);
/// * `ZINCRBY` adds to the counter part, so concurrent `ZINCRBY`s on two nodes both count, and an
///   increment concurrent with a `ZADD` counts on top of the `ZADD`'s score (Redis Active-Active
///   does the same); a `ZADD` replaces the increments it had seen;
/// * the score is the winning `ZADD`'s score (0 when there is none) plus the increments it had not
///   seen; a sum that is not a number (+inf and -inf added concurrently) reads as 0;
/// * `ZREM` is an observed remove: a concurrent `ZADD`, or a concurrent first `ZINCRBY` of a replica,
///   keeps the member; a concurrent increment of a counter the remover had seen is lost with it
///   (see ``CountingRegister``).
///
/// The order for range queries is an ``OrderedIndex`` of `(score, member)`, kept beside the map:
/// derived data, not encoded and not compared, rebuilt on decoding and updated in O(log n) for each
/// member a mutation or a delta touches. Ranks, score ranges and lex ranges cost O(log n), plus the
/// members returned.
///
/// `ZADD`'s `GT`, `LT`, `NX`, `XX` and `CH` compare with the *local* score when the command runs
/// (the engine does that with ``score(of:)``); concurrent updates on other nodes are merged by the
/// rules above, not by the flags.
public struct SortedSet: CausalCRDT {
    /// The CRDT of one member's score.
    public typealias Score = CountingRegister<Double, Double>

    @inlinable public var store: DotMap<[UInt8], Score.Store> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: DotMap<[UInt8], Score.Store>
    @usableFromInline var _context: CausalContext
    /// The score each present member is indexed under.
    @usableFromInline var indexedScores: [[UInt8]: Double]
    @usableFromInline var order: OrderedIndex<ScoredMember>

    public init(store: DotMap<[UInt8], Score.Store>, context: CausalContext) {
        _store = store
        _context = context
        indexedScores = [:]
        order = OrderedIndex()
        for member in store.entries.keys { reindex(member) }
    }

    public static func == (lhs: SortedSet, rhs: SortedSet) -> Bool {
        lhs._store == rhs._store && lhs._context == rhs._context
    }

    // MARK: Reads

    /// Number of members (`ZCARD`).
    public var count: Int { indexedScores.count }

    /// The score of `member` (`ZSCORE`), or `nil` when it is absent.
    public func score(of member: [UInt8]) -> Double? { indexedScores[member] }

    /// The score CRDT of `member`, seen through the set's context (to inspect its parts).
    public func scoreRegister(of member: [UInt8]) -> Score? {
        _store.entries[member].map { Score(store: $0, context: _context) }
    }

    /// The 0-based position of `member` in ascending order (`ZRANK`; `ZREVRANK` is `count - 1 -` it).
    public func rank(of member: [UInt8]) -> Int? {
        guard let score = indexedScores[member] else { return nil }
        return order.rank(of: ScoredMember(member: member, score: score))
    }

    /// The members at ascending positions `positions` (clamped), with their scores.
    public func members(inRanks positions: Range<Int>) -> [ScoredMember] { order.elements(in: positions) }

    /// Every member in ascending order.
    public var sortedMembers: [ScoredMember] { order.sorted }

    /// The ascending positions of the members whose score lies between `minimum` and `maximum`
    /// (`ZCOUNT` is its `count`; `ZRANGE ... BYSCORE LIMIT offset count` slices it).
    public func ranks(scoresFrom minimum: ScoreBound, to maximum: ScoreBound) -> Range<Int> {
        let lower: Int
        switch minimum {
        case .inclusive(let value): lower = order.partitionIndex { $0.score < value }
        case .exclusive(let value): lower = order.partitionIndex { $0.score <= value }
        }
        let upper: Int
        switch maximum {
        case .inclusive(let value): upper = order.partitionIndex { $0.score <= value }
        case .exclusive(let value): upper = order.partitionIndex { $0.score < value }
        }
        return lower..<max(lower, upper)
    }

    /// The ascending positions of the members between `minimum` and `maximum` by bytes
    /// (`ZRANGE ... BYLEX`, `ZLEXCOUNT`). As in Redis, meaningful when all scores are equal (the
    /// order is then the members' byte order); otherwise the result is some contiguous run.
    public func ranks(membersFrom minimum: LexBound, to maximum: LexBound) -> Range<Int> {
        let lower: Int
        switch minimum {
        case .unbounded: lower = 0
        case .inclusive(let bound): lower = order.partitionIndex { $0.member.lexicographicallyPrecedes(bound) }
        case .exclusive(let bound): lower = order.partitionIndex { !bound.lexicographicallyPrecedes($0.member) }
        }
        let upper: Int
        switch maximum {
        case .unbounded: upper = order.count
        case .inclusive(let bound): upper = order.partitionIndex { !bound.lexicographicallyPrecedes($0.member) }
        case .exclusive(let bound): upper = order.partitionIndex { $0.member.lexicographicallyPrecedes(bound) }
        }
        return lower..<max(lower, upper)
    }

    // MARK: Mutators

    /// Sets `member`'s score (`ZADD`), replacing the increments seen; returns the delta.
    /// `score` must not be NaN (Redis refuses it; so must the caller).
    @discardableResult
    public mutating func add(_ member: [UInt8], score: Double, clock: inout LamportClock) -> SortedSet {
        update(member) { $0.assign(score, clock: &clock) }
    }

    /// Adds `amount` to `member`'s score (`ZINCRBY`, `ZADD INCR`), creating it at `amount` when
    /// absent; returns the delta. Throws ``CRDTMutationError/overflow(operation:)`` when this
    /// replica's running increment would not be finite. The caller refuses a result that is not a
    /// number before calling, as Redis does.
    @discardableResult
    public mutating func increment(_ member: [UInt8], by amount: Double, replica: ReplicaID) throws(CRDTMutationError) -> SortedSet {
        try update(member) { (score: inout Score) throws(CRDTMutationError) in try score.increment(by: amount, replica: replica) }
    }

    /// Removes `member` as far as this replica has seen it (`ZREM`, `ZPOPMIN`); returns the delta.
    @discardableResult
    public mutating func remove(_ member: [UInt8]) -> SortedSet {
        guard let removed = _store.removeValue(forKey: member) else { return SortedSet() }
        reindex(member)
        return SortedSet(store: DotMap(), context: CausalContext(dots: removed.dots))
    }

    /// Removes every member seen (`DEL`); returns the delta.
    @discardableResult
    public mutating func removeAll() -> SortedSet {
        let delta = SortedSet(store: DotMap(), context: CausalContext(dots: _store.dots))
        _store = DotMap()
        indexedScores = [:]
        order = OrderedIndex()
        return delta
    }

    public mutating func join(_ other: SortedSet) { _ = inflate(with: other) }

    /// The join, reporting whether anything changed; O(other · log n), like ``join(_:)``.
    public mutating func inflate(with other: SortedSet) -> Bool {
        if other._context.isEmpty && other._store.isBottom { return false }
        let before = _store.dotDigest
        var touched: [[UInt8]] = []
        _store.join(other._store, context: _context, otherContext: other._context) { touched.append($0) }
        let grew = _context.formUnionReportingGrowth(other._context)
        for member in touched { reindex(member) }
        return grew || _store.dotDigest != before
    }

    // MARK: Internals

    private mutating func update<Failure: Error>(
        _ member: [UInt8], _ mutate: (inout Score) throws(Failure) -> Score
    ) throws(Failure) -> SortedSet {
        var score = Score(store: _store.entries[member] ?? Score.Store(), context: _context)
        let delta = try mutate(&score)
        _store.setValue(score.store, forKey: member)
        _context = score.context
        reindex(member)
        let deltaStore = delta.store.isBottom ? DotMap<[UInt8], Score.Store>() : DotMap([member: delta.store])
        return SortedSet(store: deltaStore, context: delta.context)
    }

    /// Brings the index in step with the map for one member.
    private mutating func reindex(_ member: [UInt8]) {
        let current = _store.entries[member].map { Self.score(of: Score(store: $0, context: _context)) }
        let indexed = indexedScores[member]
        if current == indexed { return }
        if let indexed { order.remove(ScoredMember(member: member, score: indexed)) }
        if let current {
            order.insert(ScoredMember(member: member, score: current))
            indexedScores[member] = current
        } else {
            indexedScores.removeValue(forKey: member)
        }
    }

    static func score(of register: Score) -> Double {
        let sum = (register.value ?? 0) + register.increments
        return sum.isNaN ? 0 : sum
    }
}
