/// A grow-only set. Delta of `insert`: the inserted element alone.
public struct GSet<Element: Hashable & Sendable>: DeltaCRDT, Hashable {
    /// The elements.
    public internal(set) var elements: Set<Element>

    public init() { elements = [] }
    @usableFromInline init(elements: Set<Element>) { self.elements = elements }

    /// Whether `element` was ever added.
    public func contains(_ element: Element) -> Bool { elements.contains(element) }

    /// Number of elements.
    public var count: Int { elements.count }

    /// Adds `element` and returns the delta.
    @discardableResult
    public mutating func add(_ element: Element) -> GSet {
        elements.insert(element)
        return GSet(elements: [element])
    }

    public mutating func join(_ other: GSet) { elements.formUnion(other.elements) }

    /// O(other).
    public mutating func inflate(with other: GSet) -> Bool {
        var changed = false
        for element in other.elements where elements.insert(element).inserted { changed = true }
        return changed
    }
}

/// A two-phase set: a grow-only set of additions and one of removals (tombstones). Once removed, an
/// element can never come back, and remove wins over a concurrent add.
public struct TwoPhaseSet<Element: Hashable & Sendable>: DeltaCRDT, Hashable {
    /// Every element ever added.
    public internal(set) var added: GSet<Element>
    /// Every element ever removed (kept forever: the set's tombstones).
    public internal(set) var removed: GSet<Element>

    public init() {
        added = GSet()
        removed = GSet()
    }

    @usableFromInline init(added: GSet<Element>, removed: GSet<Element>) {
        self.added = added
        self.removed = removed
    }

    /// Whether `element` was added and never removed.
    public func contains(_ element: Element) -> Bool { added.contains(element) && !removed.contains(element) }

    /// The live elements.
    public var elements: Set<Element> { added.elements.subtracting(removed.elements) }

    /// Adds `element` (a no-op on the value if it was ever removed) and returns the delta.
    @discardableResult
    public mutating func add(_ element: Element) -> TwoPhaseSet {
        TwoPhaseSet(added: added.add(element), removed: GSet())
    }

    /// Removes `element` for good and returns the delta.
    @discardableResult
    public mutating func remove(_ element: Element) -> TwoPhaseSet {
        TwoPhaseSet(added: GSet(), removed: removed.add(element))
    }

    public mutating func join(_ other: TwoPhaseSet) {
        added.join(other.added)
        removed.join(other.removed)
    }

    public mutating func inflate(with other: TwoPhaseSet) -> Bool {
        let grewAdded = added.inflate(with: other.added)
        let grewRemoved = removed.inflate(with: other.removed)
        return grewAdded || grewRemoved
    }
}

/// An add-wins observed-remove set without tombstones (in the spirit of Riak's ORSWOT): each present
/// element holds the dots of the adds that put it there; a remove drops the dots it has seen, and the
/// causal context remembers them, so a stale add cannot resurrect the element while an add the
/// remover did not see (a concurrent one) survives.
///
/// Deltas: `insert` ships the element with one fresh dot, and a context with that dot and the dots
/// it supersedes; `remove` ships an empty store with the removed dots as context; `removeAll` ships
/// every dot held as context.
public struct AWSet<Element: Hashable & Sendable>: CausalCRDT {
    @inlinable public var store: DotMap<Element, DotSet> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: DotMap<Element, DotSet>
    @usableFromInline var _context: CausalContext

    @inlinable
    public init(store: DotMap<Element, DotSet>, context: CausalContext) {
        _store = store
        _context = context
    }

    /// Whether `element` is present.
    @inlinable
    public func contains(_ element: Element) -> Bool { _store.entries[element] != nil }

    /// The present elements.
    @inlinable
    public var elements: Set<Element> { Set(_store.entries.keys) }

    /// Number of present elements.
    @inlinable
    public var count: Int { _store.entries.count }

    /// Adds `element` on behalf of `replica` and returns the delta.
    @discardableResult
    @inlinable
    public mutating func add(_ element: Element, replica: ReplicaID) -> AWSet {
        let dot = _context.nextDot(for: replica)
        var deltaContext = CausalContext(dots: _store.entries[element]?.elements ?? [])
        deltaContext.insert(dot)
        _store.setValue(DotSet(dot), forKey: element)
        _context.insert(dot)
        return AWSet(store: DotMap([element: DotSet(dot)]), context: deltaContext)
    }

    /// Removes `element` as far as this replica has seen it and returns the delta.
    @discardableResult
    @inlinable
    public mutating func remove(_ element: Element) -> AWSet {
        guard let removed = _store.removeValue(forKey: element) else { return AWSet() }
        return AWSet(store: DotMap(), context: CausalContext(dots: removed.elements))
    }

    /// Removes every element this replica has seen and returns the delta.
    @discardableResult
    @inlinable
    public mutating func removeAll() -> AWSet {
        let delta = AWSet(store: DotMap(), context: CausalContext(dots: _store.dots))
        _store = DotMap()
        return delta
    }
}

/// The add-wins observed-remove set, under the name the literature usually gives it.
public typealias ORSet<Element: Hashable & Sendable> = AWSet<Element>
