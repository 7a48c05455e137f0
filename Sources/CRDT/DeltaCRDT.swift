/// A delta-state CRDT (Almeida, Shoker, Baquero 2018): a join-semilattice whose mutators return a
/// delta, itself a (small) value of the same type, such that `s.join(delta)` on any replica
/// reproduces the mutation. `init()` is the bottom element.
///
/// `join` must be commutative, associative and idempotent; the test suite checks these laws for
/// every conforming type with seeded random states.
public protocol DeltaCRDT: Sendable, Equatable {
    /// The bottom state: the identity of `join`.
    init()
    /// Joins `other` into `self` (least upper bound).
    mutating func join(_ other: Self)
    /// Joins `other` into `self` and returns whether `self` changed, that is whether `other` held
    /// anything `self` did not. The types of this library answer in time proportional to `other` (a
    /// delta), never to `self`: receiving a delta into a large object must not cost the object's size.
    /// The default, for types that do not do better, compares a copy: O(state).
    mutating func inflate(with other: Self) -> Bool
}

extension DeltaCRDT {
    public mutating func inflate(with other: Self) -> Bool {
        let before = self
        join(other)
        return self != before
    }

    /// The least upper bound of `self` and `other`.
    public func joined(_ other: Self) -> Self {
        var result = self
        result.join(other)
        return result
    }
}

/// A causal CRDT: a dot store plus the causal context of everything it has seen. Joining removes
/// a dot that one side has seen (it is in that side's context) but no longer holds, which is how
/// removals work without tombstones.
///
/// Causal CRDTs can be nested in an ``ORMap``: the map stores only the value's dot store and shares
/// its own causal context with every value, as in section 6 of Almeida et al. 2018.
public protocol CausalCRDT: DeltaCRDT {
    /// The dot store kind that holds this CRDT's payload.
    associatedtype Store: DotStore
    /// The payload.
    var store: Store { get }
    /// Every dot this state has seen.
    var context: CausalContext { get }
    /// A state made of the given parts. Used by ``ORMap`` to lend its context to a nested value.
    init(store: Store, context: CausalContext)
}

extension CausalCRDT {
    @inlinable
    public init() { self.init(store: Store(), context: CausalContext()) }

    @inlinable
    public mutating func join(_ other: Self) {
        // Move the parts out of `self` first so they are uniquely referenced and mutate in place.
        var store = self.store
        var context = self.context
        self = Self(store: Store(), context: CausalContext())
        store.join(other.store, context: context, otherContext: other.context)
        context.formUnion(other.context)
        self = Self(store: store, context: context)
    }

    /// Whether this is bottom (equal to `Self()`): nothing seen and no dot held. O(1), where
    /// `== Self()` builds a bottom and compares every part of both.
    @inlinable
    public var isBottom: Bool { context.isEmpty && store.isBottom }

    /// O(other) plus the store's digest: the context grew, or the store's dots changed (a dot names
    /// one event, so equal dots mean equal entries).
    @inlinable
    public mutating func inflate(with other: Self) -> Bool {
        if other.context.isEmpty && other.store.isBottom { return false }
        var store = self.store
        var context = self.context
        self = Self(store: Store(), context: CausalContext())
        let before = store.dotDigest
        store.join(other.store, context: context, otherContext: other.context)
        let grew = context.formUnionReportingGrowth(other.context)
        let changed = grew || store.dotDigest != before
        self = Self(store: store, context: context)
        return changed
    }
}
