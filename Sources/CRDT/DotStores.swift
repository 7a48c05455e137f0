/// The payload of a causal CRDT: a structure of dots whose join is defined relative to the two
/// sides' causal contexts (Almeida et al. 2018, section 6).
public protocol DotStore: Sendable, Equatable {
    /// The empty store.
    init()
    /// True when the store holds no dot.
    var isBottom: Bool { get }
    /// Inserts every dot held by the store into `dots`.
    func collectDots(into dots: inout [Dot])
    /// The causal join of `(lhs, lhsContext)` and `(rhs, rhsContext)`: keeps a dot that both hold,
    /// or that one side holds and the other has not seen.
    static func join(_ lhs: Self, _ lhsContext: CausalContext, _ rhs: Self, _ rhsContext: CausalContext) -> Self
}

extension DotStore {
    /// Every dot held by the store.
    public var dots: [Dot] {
        var result: [Dot] = []
        collectDots(into: &result)
        return result
    }
}

/// A set of dots: the store of enable-wins flags and of each element of an add-wins set.
public struct DotSet: DotStore, Hashable {
    /// The dots held.
    public internal(set) var elements: Set<Dot>

    public init() { elements = [] }
    init(_ elements: Set<Dot>) { self.elements = elements }

    public var isBottom: Bool { elements.isEmpty }

    public func collectDots(into dots: inout [Dot]) { dots.append(contentsOf: elements) }

    public static func join(_ lhs: DotSet, _ lhsContext: CausalContext, _ rhs: DotSet, _ rhsContext: CausalContext) -> DotSet {
        var result = lhs.elements.intersection(rhs.elements)
        for dot in lhs.elements where !rhsContext.contains(dot) { result.insert(dot) }
        for dot in rhs.elements where !lhsContext.contains(dot) { result.insert(dot) }
        return DotSet(result)
    }
}

/// A map from dots to values: the store of multi-value and causal last-writer-wins registers.
/// A dot identifies one write, so two replicas holding the same dot hold the same value.
public struct DotFun<Value: Sendable & Equatable>: DotStore {
    /// The values held, by the dot of the write that produced them.
    public internal(set) var entries: [Dot: Value]

    public init() { entries = [:] }
    init(_ entries: [Dot: Value]) { self.entries = entries }

    public var isBottom: Bool { entries.isEmpty }

    public func collectDots(into dots: inout [Dot]) { dots.append(contentsOf: entries.keys) }

    public static func join(_ lhs: DotFun, _ lhsContext: CausalContext, _ rhs: DotFun, _ rhsContext: CausalContext) -> DotFun {
        var result: [Dot: Value] = [:]
        for (dot, value) in lhs.entries where rhs.entries[dot] != nil || !rhsContext.contains(dot) {
            result[dot] = value
        }
        for (dot, value) in rhs.entries where lhs.entries[dot] == nil && !lhsContext.contains(dot) {
            result[dot] = value
        }
        return DotFun(result)
    }
}

/// A map from keys to nested dot stores: the store of add-wins sets and observed-remove maps.
/// A key is present exactly when its nested store is not bottom.
public struct DotMap<Key: Hashable & Sendable, Value: DotStore>: DotStore {
    /// The nested stores; never holds a bottom store.
    public internal(set) var entries: [Key: Value]

    public init() { entries = [:] }
    init(_ entries: [Key: Value]) { self.entries = entries }

    public var isBottom: Bool { entries.isEmpty }

    public func collectDots(into dots: inout [Dot]) {
        for value in entries.values { value.collectDots(into: &dots) }
    }

    public static func join(_ lhs: DotMap, _ lhsContext: CausalContext, _ rhs: DotMap, _ rhsContext: CausalContext) -> DotMap {
        var result: [Key: Value] = [:]
        let empty = Value()
        for (key, left) in lhs.entries {
            let joined = Value.join(left, lhsContext, rhs.entries[key] ?? empty, rhsContext)
            if !joined.isBottom { result[key] = joined }
        }
        for (key, right) in rhs.entries where lhs.entries[key] == nil {
            let joined = Value.join(empty, lhsContext, right, rhsContext)
            if !joined.isBottom { result[key] = joined }
        }
        return DotMap(result)
    }
}
