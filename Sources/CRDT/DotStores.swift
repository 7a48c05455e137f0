/// The payload of a causal CRDT: a structure of dots whose join is defined relative to the two
/// sides' causal contexts (Almeida et al. 2018, section 6).
public protocol DotStore: Sendable, Equatable {
    /// The empty store.
    init()
    /// True when the store holds no dot.
    var isBottom: Bool { get }
    /// Appends every dot held by the store to `dots`.
    func collectDots(into dots: inout [Dot])
    /// Whether the probed context has seen at least one of the dots held.
    func containsAnyDot(in context: CausalContext.Probe) -> Bool
    /// The causal join, in place: keeps a dot that both sides hold, or that one side holds and the
    /// other has not seen (`context` is this store's causal context, `otherContext` the other's).
    /// Runs in time proportional to the entries of both stores, without copying unchanged entries.
    mutating func join(_ other: Self, context: CausalContext, otherContext: CausalContext)
}

extension DotStore {
    /// Every dot held by the store.
    public var dots: [Dot] {
        var result: [Dot] = []
        collectDots(into: &result)
        return result
    }

    /// The causal join of `(lhs, lhsContext)` and `(rhs, rhsContext)`.
    public static func joined(_ lhs: Self, _ lhsContext: CausalContext, _ rhs: Self, _ rhsContext: CausalContext) -> Self {
        var result = lhs
        result.join(rhs, context: lhsContext, otherContext: rhsContext)
        return result
    }
}

/// A set of dots: the store of enable-wins flags and of each element of an add-wins set.
public struct DotSet: DotStore, Hashable {
    /// The dots held.
    @inlinable public var elements: Set<Dot> { storage }
    @usableFromInline var storage: Set<Dot>

    @inlinable public init() { storage = [] }
    @usableFromInline init(_ elements: Set<Dot>) { storage = elements }

    @inlinable public var isBottom: Bool { storage.isEmpty }

    public func collectDots(into dots: inout [Dot]) { dots.append(contentsOf: storage) }

    @inlinable
    public func containsAnyDot(in context: CausalContext.Probe) -> Bool {
        for dot in storage where context.contains(dot) { return true }
        return false
    }

    @inlinable
    public mutating func join(_ other: DotSet, context: CausalContext, otherContext: CausalContext) {
        let otherElements = other.storage
        // Drop what the other side has seen and no longer holds (rebuilding only if something goes).
        var dropsSome = false
        for dot in storage where otherContext.contains(dot) && !otherElements.contains(dot) {
            dropsSome = true
            break
        }
        if dropsSome { storage = storage.filter { !otherContext.contains($0) || otherElements.contains($0) } }
        for dot in otherElements where !context.contains(dot) { storage.insert(dot) }
    }
}

/// A map from dots to values: the store of multi-value and causal last-writer-wins registers.
/// A dot identifies one write, so two replicas holding the same dot hold the same value.
public struct DotFun<Value: Sendable & Equatable>: DotStore {
    /// The values held, by the dot of the write that produced them.
    @inlinable public var entries: [Dot: Value] { storage }
    @usableFromInline var storage: [Dot: Value]

    @inlinable public init() { storage = [:] }
    @usableFromInline init(_ entries: [Dot: Value]) { storage = entries }

    @inlinable public var isBottom: Bool { storage.isEmpty }

    public func collectDots(into dots: inout [Dot]) { dots.append(contentsOf: storage.keys) }

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
public struct DotMap<Key: Hashable & Sendable, Value: DotStore>: DotStore {
    /// The nested stores; never holds a bottom store.
    @inlinable public var entries: [Key: Value] { storage }
    @usableFromInline var storage: [Key: Value]

    @inlinable public init() { storage = [:] }
    @usableFromInline init(_ entries: [Key: Value]) { storage = entries }

    @inlinable public var isBottom: Bool { storage.isEmpty }

    public func collectDots(into dots: inout [Dot]) {
        for value in storage.values { value.collectDots(into: &dots) }
    }

    @inlinable
    public func containsAnyDot(in context: CausalContext.Probe) -> Bool {
        for value in storage.values where value.containsAnyDot(in: context) { return true }
        return false
    }

    @inlinable
    public mutating func join(_ other: DotMap, context: CausalContext, otherContext: CausalContext) {
        let empty = Value()
        // Keys only here lose the dots the other side has seen. Most keys hold no such dot, which is
        // checked first (cheaper than looking the key up). This pass is linear in the keys held: a
        // delta is applied in O(state), as in the paper. Changes are collected first so the
        // dictionary is not copied while it is iterated.
        var changed: [(Key, Value)] = []
        if !otherContext.isEmpty {
            let probe = CausalContext.Probe(otherContext)
            // Walking indices and reading the value first avoids retaining every key.
            var index = storage.startIndex
            while index != storage.endIndex {
                if storage.values[index].containsAnyDot(in: probe) {
                    let key = storage.keys[index]
                    if other.storage[key] == nil {
                        var joined = storage.values[index]
                        joined.join(empty, context: context, otherContext: otherContext)
                        changed.append((key, joined))
                    }
                }
                storage.formIndex(after: &index)
            }
        }
        for (key, joined) in changed {
            storage[key] = joined.isBottom ? nil : joined
        }
        for (key, theirs) in other.storage {
            var joined = storage.removeValue(forKey: key) ?? empty
            joined.join(theirs, context: context, otherContext: otherContext)
            if !joined.isBottom { storage[key] = joined }
        }
    }
}
