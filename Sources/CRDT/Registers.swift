/// A last-writer-wins register ordered by `(Lamport timestamp, replica id)`. It holds an optional
/// value, so deleting is a write of `nil` that wins or loses like any other write.
///
/// A local write first observes the current timestamp, so it is always ordered after the value it
/// replaces. The delta of a write is the whole (small) new state.
public struct LWWRegister<Value: Sendable & Equatable>: DeltaCRDT {
    /// The timestamp of the winning write; `nil` for bottom (never written).
    public internal(set) var timestamp: LamportTimestamp?
    /// The winning write's value; `nil` when never written or deleted.
    public internal(set) var value: Value?

    public init() {
        timestamp = nil
        value = nil
    }

    @usableFromInline init(timestamp: LamportTimestamp?, value: Value?) {
        self.timestamp = timestamp
        self.value = value
    }

    /// Writes `value` (or deletes with `nil`) with a timestamp from `clock`, which first observes the
    /// current timestamp so the new one is greater. Returns the delta.
    @discardableResult
    public mutating func assign(_ value: Value?, clock: inout LamportClock) -> LWWRegister {
        if let timestamp { clock.observe(timestamp) }
        self = LWWRegister(timestamp: clock.tick(), value: value)
        return self
    }

    public mutating func join(_ other: LWWRegister) {
        guard let theirs = other.timestamp else { return }
        guard let mine = timestamp else {
            self = other
            return
        }
        // Equal timestamps with different values only come from forged input; prefer a fixed side
        // (the one without a value, then keep ours) so a tie never flips between replicas' orders.
        if theirs > mine || (theirs == mine && value != nil && other.value == nil) { self = other }
    }
}

extension LWWRegister: Hashable where Value: Hashable {}

/// A multi-value register: a write replaces every value its writer has seen; concurrent writes are
/// all kept until a later write (that saw them) replaces them.
///
/// Deltas: `assign` ships its value under a fresh dot, with a context covering that dot and the
/// dots it replaces; `clear` ships an empty store with the observed dots as context.
public struct MVRegister<Value: Sendable & Equatable>: CausalCRDT {
    @inlinable public var store: DotFun<Value> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: DotFun<Value>
    @usableFromInline var _context: CausalContext

    @inlinable
    public init(store: DotFun<Value>, context: CausalContext) {
        _store = store
        _context = context
    }

    /// The concurrent values, in dot order (so every replica lists them the same way).
    @inlinable
    public var values: [Value] {
        _store.entries.sorted { $0.key < $1.key }.map(\.value)
    }

    /// Writes `value` on behalf of `replica` and returns the delta.
    @discardableResult
    @inlinable
    public mutating func assign(_ value: Value, replica: ReplicaID) -> MVRegister {
        let dot = _context.nextDot(for: replica)
        var deltaContext = CausalContext(dots: _store.entries.keys)
        deltaContext.insert(dot)
        _store = DotFun([dot: value])
        _context.insert(dot)
        return MVRegister(store: _store, context: deltaContext)
    }

    /// Removes every value seen and returns the delta; a concurrent write survives.
    @discardableResult
    @inlinable
    public mutating func clear() -> MVRegister {
        let delta = MVRegister(store: DotFun(), context: CausalContext(dots: _store.entries.keys))
        _store = DotFun()
        return delta
    }
}

/// A value stamped with the Lamport timestamp of the write that produced it.
public struct Stamped<Value: Sendable & Equatable>: Sendable, Equatable {
    /// When the write happened, in logical time.
    public let timestamp: LamportTimestamp
    /// What was written.
    public let value: Value

    /// A stamped value.
    public init(timestamp: LamportTimestamp, value: Value) {
        self.timestamp = timestamp
        self.value = value
    }
}

extension Stamped: Hashable where Value: Hashable {}

/// A causal last-writer-wins register: an ``MVRegister`` of timestamped values whose read returns the
/// value with the greatest `(Lamport timestamp, replica id)`. Because it is a causal CRDT it nests in
/// an ``ORMap`` (Redis hash fields) with clean removal: `remove` drops the writes it has seen, a
/// concurrent write survives it, and a key re-created after a removal starts from scratch.
///
/// A local write observes every timestamp held first, so it is ordered after (and replaces) them.
public struct CausalLWWRegister<Value: Sendable & Equatable>: CausalCRDT {
    @inlinable public var store: DotFun<Stamped<Value>> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: DotFun<Stamped<Value>>
    @usableFromInline var _context: CausalContext

    @inlinable
    public init(store: DotFun<Stamped<Value>>, context: CausalContext) {
        _store = store
        _context = context
    }

    /// The winning write: the greatest timestamp among the concurrent writes held.
    @inlinable
    public var winner: Stamped<Value>? {
        _store.entries.values.max { $0.timestamp < $1.timestamp }
    }

    /// The current value, or `nil` when never written or removed.
    @inlinable
    public var value: Value? { winner?.value }

    /// Writes `value` with a timestamp from `clock` (after observing every held timestamp) and a
    /// fresh dot of `clock.replica`. Returns the delta.
    @discardableResult
    @inlinable
    public mutating func assign(_ value: Value, clock: inout LamportClock) -> CausalLWWRegister {
        for stamped in _store.entries.values { clock.observe(stamped.timestamp) }
        let stamped = Stamped(timestamp: clock.tick(), value: value)
        let dot = _context.nextDot(for: clock.replica)
        var deltaContext = CausalContext(dots: _store.entries.keys)
        deltaContext.insert(dot)
        _store = DotFun([dot: stamped])
        _context.insert(dot)
        return CausalLWWRegister(store: _store, context: deltaContext)
    }

    /// Removes every write seen and returns the delta; a concurrent write survives.
    @discardableResult
    @inlinable
    public mutating func remove() -> CausalLWWRegister {
        let delta = CausalLWWRegister(store: DotFun(), context: CausalContext(dots: _store.entries.keys))
        _store = DotFun()
        return delta
    }
}
