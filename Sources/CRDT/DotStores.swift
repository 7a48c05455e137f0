/// The payload of a causal CRDT: a structure of dots whose join is defined relative to the two
/// sides' causal contexts (Almeida et al. 2018, section 6).
public protocol DotStore: Sendable, Equatable {
    /// The empty store.
    init()
    /// True when the store holds no dot.
    var isBottom: Bool { get }
    /// Appends every dot held by the store to `dots`.
    func collectDots(into dots: inout [Dot])
    /// Calls `body` with every dot held by the store, without allocating.
    func forEachDot(_ body: (Dot) -> Void)
    /// How many distinct dots the store holds, when it knows without looking at every dot (its shape
    /// rules repeats out, or an index it keeps counts them); nil when it cannot tell that way.
    var distinctDotCount: Int? { get }
    /// Whether the probed context has seen at least one of the dots held.
    func containsAnyDot(in context: CausalContext.Probe) -> Bool
    /// The causal join, in place: keeps a dot that both sides hold, or that one side holds and the
    /// other has not seen (`context` is this store's causal context, `otherContext` the other's).
    /// Runs in time proportional to the entries of both stores, without copying unchanged entries.
    mutating func join(_ other: Self, context: CausalContext, otherContext: CausalContext)
    /// The digest of every dot held. ``DotMap`` keeps it up to date in O(1) per change; the default
    /// computes it in one pass, which is what small stores (a register's few writes) want. A store
    /// whose entry under a dot can change (``CountingStore``) mixes the entry's version in, so the
    /// digest still changes exactly when the store does.
    var dotDigest: DotDigest { get }
    /// Whether the store holds a dot of `replica` numbered at most `counter`.
    func holdsDot(of replica: ReplicaID, through counter: UInt64) -> Bool
}

extension DotStore {
    /// A pass over every dot, for the small stores (a register's few writes, a set element's dots).
    public func holdsDot(of replica: ReplicaID, through counter: UInt64) -> Bool {
        containsAnyDot(in: CausalContext.Probe(CausalContext(versionVector: [replica: counter])))
    }
}

extension DotStore {
    public var dotDigest: DotDigest {
        var digest = DotDigest()
        forEachDot { digest.insert($0) }
        return digest
    }
}

extension DotStore {
    /// Every dot held by the store.
    public var dots: [Dot] {
        var result: [Dot] = []
        collectDots(into: &result)
        return result
    }

    /// Stores that cannot tell are checked dot by dot (``firstRepeatedDot()``).
    @inlinable public var distinctDotCount: Int? { nil }

    /// A dot held twice, if any: a decoded state must hold each dot once (a dot names one event).
    @inlinable
    public func firstRepeatedDot() -> Dot? {
        var seen = Set<Dot>()
        var repeated: Dot? = nil
        forEachDot { dot in
            if repeated == nil, !seen.insert(dot).inserted { repeated = dot }
        }
        return repeated
    }

    /// The causal join of `(lhs, lhsContext)` and `(rhs, rhsContext)`.
    public static func joined(_ lhs: Self, _ lhsContext: CausalContext, _ rhs: Self, _ rhsContext: CausalContext) -> Self {
        var result = lhs
        result.join(rhs, context: lhsContext, otherContext: rhsContext)
        return result
    }
}

/// A set of dots: the store of enable-wins flags and of each element of an add-wins set.
///
/// Almost every element of a set holds one dot (the add that put it there), so one dot is held inline
/// and only two or more take a `Set`: a member of a million-member set then costs no allocation and
/// no hashing beyond its own bytes.
public struct DotSet: DotStore, Hashable {
    // Canonical: `.many` holds at least two dots, so equal sets have equal storage.
    @usableFromInline enum Storage: Hashable, Sendable {
        case empty
        case one(Dot)
        case many(Set<Dot>)
    }
    @usableFromInline var storage: Storage

    /// The dots held.
    @inlinable public var elements: Set<Dot> {
        switch storage {
        case .empty: []
        case .one(let dot): [dot]
        case .many(let dots): dots
        }
    }

    @inlinable public init() { storage = .empty }
    /// The set holding exactly `dot`.
    @inlinable public init(_ dot: Dot) { storage = .one(dot) }
    @inlinable init(_ elements: Set<Dot>) {
        switch elements.count {
        case 0: storage = .empty
        case 1: storage = .one(elements.first!)
        default: storage = .many(elements)
        }
    }

    @inlinable public var isBottom: Bool {
        if case .empty = storage { return true }
        return false
    }

    /// A set holds each of its dots once.
    @inlinable public var distinctDotCount: Int? { count }

    /// How many dots are held.
    @inlinable public var count: Int {
        switch storage {
        case .empty: 0
        case .one: 1
        case .many(let dots): dots.count
        }
    }

    /// Whether `dot` is held.
    @inlinable public func contains(_ dot: Dot) -> Bool {
        switch storage {
        case .empty: false
        case .one(let held): held == dot
        case .many(let dots): dots.contains(dot)
        }
    }

    public func collectDots(into dots: inout [Dot]) { forEachDot { dots.append($0) } }

    @inlinable
    public func forEachDot(_ body: (Dot) -> Void) {
        switch storage {
        case .empty: break
        case .one(let dot): body(dot)
        case .many(let dots): for dot in dots { body(dot) }
        }
    }

    @inlinable
    public func containsAnyDot(in context: CausalContext.Probe) -> Bool {
        switch storage {
        case .empty: return false
        case .one(let dot): return context.contains(dot)
        case .many(let dots):
            for dot in dots where context.contains(dot) { return true }
            return false
        }
    }

    @inlinable
    public mutating func join(_ other: DotSet, context: CausalContext, otherContext: CausalContext) {
        // The common cases of a set's join, without building a `Set`: the same dot on both sides, and
        // one side's dot that the other has seen (a remove) or has not (an add).
        if case .one(let mine) = storage, case .one(let theirs) = other.storage {
            if mine == theirs { return }
            let keepMine = !otherContext.contains(mine)
            let takeTheirs = !context.contains(theirs)
            switch (keepMine, takeTheirs) {
            case (true, true): storage = .many([mine, theirs])
            case (true, false): break
            case (false, true): storage = .one(theirs)
            case (false, false): storage = .empty
            }
            return
        }
        // Drop what the other side has seen and no longer holds, then add what it holds unseen here.
        var kept: Set<Dot> = []
        var dropsSome = false
        forEachDot { dot in
            if otherContext.contains(dot) && !other.contains(dot) { dropsSome = true } else { kept.insert(dot) }
        }
        var added = false
        other.forEachDot { dot in
            if !context.contains(dot), kept.insert(dot).inserted { added = true }
        }
        if dropsSome || added { self = DotSet(kept) }
    }
}

/// A map from dots to values: the store of multi-value and causal last-writer-wins registers.
/// A dot identifies one write, so two replicas holding the same dot hold the same value.
public struct DotFun<Value: Sendable & Equatable>: DotStore {
    /// The values held, by the dot of the write that produced them.
    @inlinable public var entries: [Dot: Value] { storage }
    @usableFromInline var storage: [Dot: Value]

    @inlinable public init() { storage = [:] }
    @inlinable init(_ entries: [Dot: Value]) { storage = entries }

    @inlinable public var isBottom: Bool { storage.isEmpty }

    /// Dictionary keys are distinct.
    @inlinable public var distinctDotCount: Int? { storage.count }

    public func collectDots(into dots: inout [Dot]) { dots.append(contentsOf: storage.keys) }

    @inlinable
    public func forEachDot(_ body: (Dot) -> Void) { for dot in storage.keys { body(dot) } }

    @inlinable
    public func containsAnyDot(in context: CausalContext.Probe) -> Bool {
        for dot in storage.keys where context.contains(dot) { return true }
        return false
    }

    @inlinable
    public mutating func join(_ other: DotFun, context: CausalContext, otherContext: CausalContext) {
        let otherEntries = other.storage
        var dropsSome = false
        for dot in storage.keys where otherContext.contains(dot) && otherEntries[dot] == nil {
            dropsSome = true
            break
        }
        if dropsSome { storage = storage.filter { !otherContext.contains($0.key) || otherEntries[$0.key] != nil } }
        for (dot, value) in otherEntries where !context.contains(dot) { storage[dot] = value }
    }
}

/// A map from keys to nested dot stores: the store of add-wins sets and observed-remove maps.
/// A key is present exactly when its nested store is not bottom.
///
/// Besides the entries it keeps an index from every dot held (at any depth) to its key, so that
/// joining a delta, whose context names a few dots, finds the keys those dots remove without
/// scanning every key. The index is derived data: it is not encoded and not compared.
public struct DotMap<Key: Hashable & Sendable, Value: DotStore>: DotStore {
    /// The nested stores; never holds a bottom store.
    @inlinable public var entries: [Key: Value] { storage }
    // Written only through `setValue` and `removeValue`, which keep `owners` in step.
    @usableFromInline var storage: [Key: Value]
    @usableFromInline var owners: [Dot: Key]
    /// The sum of the values' digests, kept in step with `owners`: O(1) per dot that comes or goes.
    @inlinable public var dotDigest: DotDigest { _dotDigest }
    @usableFromInline var _dotDigest: DotDigest

    @inlinable public init() {
        storage = [:]
        owners = [:]
        _dotDigest = DotDigest()
    }

    /// Entries and the index built alongside them (by the decoder, in the same pass).
    /// A map whose dot index and dot digest the caller built (the decoder, in the same pass).
    @inlinable init(entries: [Key: Value], owners: [Dot: Key], dotDigest: DotDigest) {
        storage = entries
        self.owners = owners
        _dotDigest = dotDigest
    }

    @inlinable init(_ entries: [Key: Value]) {
        storage = entries
        owners = [:]
        _dotDigest = DotDigest()
        owners.reserveCapacity(entries.count)
        for (key, value) in entries {
            value.forEachDot { owners[$0] = key }
            _dotDigest.add(value.dotDigest)
        }
    }

    /// The key whose value holds `dot`, if any. O(1).
    @inlinable
    public func key(holding dot: Dot) -> Key? { owners[dot] }

    /// O(min(counter, dots held)): the index is probed dot by dot, or walked when that is shorter.
    public func holdsDot(of replica: ReplicaID, through counter: UInt64) -> Bool {
        if counter <= UInt64(owners.count) {
            var next: UInt64 = 1
            while next <= counter {
                if owners[Dot(replica: replica, counter: next)] != nil { return true }
                next += 1
            }
            return false
        }
        return owners.keys.contains { $0.replica == replica && $0.counter <= counter }
    }

    @inlinable public var isBottom: Bool { storage.isEmpty }

    public static func == (lhs: DotMap, rhs: DotMap) -> Bool { lhs.storage == rhs.storage }

    /// The dot index has one entry per distinct dot.
    @inlinable public var distinctDotCount: Int? { owners.count }

    public func collectDots(into dots: inout [Dot]) {
        for value in storage.values { value.collectDots(into: &dots) }
    }

    @inlinable
    public func forEachDot(_ body: (Dot) -> Void) {
        for value in storage.values { value.forEachDot(body) }
    }

    @inlinable
    public func containsAnyDot(in context: CausalContext.Probe) -> Bool {
        for value in storage.values where value.containsAnyDot(in: context) { return true }
        return false
    }

    /// Sets (or, for `nil` or bottom, removes) the value at `key`, keeping the dot index in step.
    @inlinable
    mutating func setValue(_ value: Value?, forKey key: Key) {
        _ = removeValue(forKey: key)
        guard let value, !value.isBottom else { return }
        value.forEachDot { owners[$0] = key }
        _dotDigest.add(value.dotDigest)
        storage[key] = value
    }

    /// Removes and returns the value at `key`, keeping the dot index in step.
    @inlinable
    mutating func removeValue(forKey key: Key) -> Value? {
        guard let old = storage.removeValue(forKey: key) else { return nil }
        old.forEachDot { owners.removeValue(forKey: $0) }
        _dotDigest.subtract(old.dotDigest)
        return old
    }

    /// Contexts with at most this many dots are enumerated against the dot index; larger ones
    /// (full states) are checked key by key.
    @usableFromInline static var enumerationLimit: UInt64 { 64 }

    @inlinable
    public mutating func join(_ other: DotMap, context: CausalContext, otherContext: CausalContext) {
        join(other, context: context, otherContext: otherContext, touched: { _ in })
    }

    /// The causal join, calling `touched` with every key whose value may have changed (a key the
    /// other side's context removes from, or one the other side holds): how a type with an index over
    /// the entries (a sorted set's scores, a list's positions) keeps it in step in time proportional
    /// to the delta. A key may be reported more than once.
    @inlinable
    public mutating func join(
        _ other: DotMap, context: CausalContext, otherContext: CausalContext, touched: (Key) -> Void
    ) {
        let empty = Value()
        // Keys only here lose the dots the other side has seen. A delta's context is small: its dots
        // are looked up in the index. A full state's context is large: every key is probed instead
        // (cheaply: the value's dots first, the key only if one is seen).
        if !otherContext.isEmpty {
            var affected: [Key] = []
            let dotCount = otherContext.dotCount
            if dotCount <= Self.enumerationLimit || dotCount < UInt64(storage.count) {
                func consider(_ dot: Dot) {
                    if let key = owners[dot], other.storage[key] == nil { affected.append(key) }
                }
                for (replica, top) in otherContext.versionVector {
                    var counter: UInt64 = 1
                    while counter <= top {
                        consider(Dot(replica: replica, counter: counter))
                        counter += 1
                    }
                }
                for dot in otherContext.cloud { consider(dot) }
            } else {
                let probe = CausalContext.Probe(otherContext)
                // Walking indices and reading the value first avoids retaining every key.
                var index = storage.startIndex
                while index != storage.endIndex {
                    if storage.values[index].containsAnyDot(in: probe) {
                        let key = storage.keys[index]
                        if other.storage[key] == nil { affected.append(key) }
                    }
                    storage.formIndex(after: &index)
                }
            }
            for key in affected {
                guard var joined = removeValue(forKey: key) else { continue }  // already handled
                joined.join(empty, context: context, otherContext: otherContext)
                setValue(joined, forKey: key)
                touched(key)
            }
        }
        for (key, theirs) in other.storage {
            var joined = removeValue(forKey: key) ?? empty
            joined.join(theirs, context: context, otherContext: otherContext)
            setValue(joined, forKey: key)
            touched(key)
        }
    }
}
