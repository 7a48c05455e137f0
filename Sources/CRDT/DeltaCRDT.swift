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
}

extension DeltaCRDT {
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
}
