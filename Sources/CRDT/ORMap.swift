/// An observed-remove map from keys to nested causal CRDTs (Almeida et al. 2018, section 6.4).
///
/// The map keeps one causal context, shared by every value: it stores only each value's dot store.
/// A nested update is performed on the value seen through the map's context and ships the value's
/// delta under its key. Removing a key ships the dots of that key's value as context and no store,
/// so on every replica those dots (and nothing else) disappear:
/// * an update concurrent with the removal carries dots the remover never saw, so they survive and
///   the key stays present with just the unseen part of the value (for a register: the concurrent
///   write; for a set: the concurrently added elements);
/// * a key re-created after a removal starts from bottom, never resurrecting the removed value;
/// * a stale delta arriving late changes nothing the context already knows.
///
/// Only causal CRDTs can be values (the `Value: CausalCRDT` constraint): a non-causal value (a
/// `GCounter`, an `LWWRegister`) cannot tell a removal from "not yet seen" and would diverge or
/// resurrect under concurrent removal, so the type system rules it out. Use ``CausalLWWRegister``,
/// ``MVRegister``, ``AWSet``, ``EWFlag`` or a nested ``ORMap``.
public struct ORMap<Key: Hashable & Sendable, Value: CausalCRDT>: CausalCRDT {
    @inlinable public var store: DotMap<Key, Value.Store> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: DotMap<Key, Value.Store>
    @usableFromInline var _context: CausalContext

    @inlinable
    public init(store: DotMap<Key, Value.Store>, context: CausalContext) {
        _store = store
        _context = context
    }

    /// The value at `key` (seen through the map's context), or `nil` if the key is absent.
    @inlinable
    public subscript(key: Key) -> Value? {
        _store.entries[key].map { Value(store: $0, context: _context) }
    }

    /// The present keys.
    @inlinable
    public var keys: Dictionary<Key, Value.Store>.Keys { _store.entries.keys }

    /// Every present key with its value (in no particular order), e.g. for Redis `HGETALL`.
    @inlinable
    public var entries: [(key: Key, value: Value)] {
        _store.entries.map { (key: $0.key, value: Value(store: $0.value, context: _context)) }
    }

    /// Number of present keys.
    @inlinable
    public var count: Int { _store.entries.count }

    /// True when no key is present.
    @inlinable
    public var isEmpty: Bool { _store.entries.isEmpty }

    /// Mutates the value at `key` (bottom if absent) with `mutate`, which must return the nested
    /// mutator's delta; returns the map's delta. For example
    /// `map.update(field) { $0.assign(bytes, clock: &clock) }`.
    @discardableResult
    @inlinable
    public mutating func update<Failure: Error>(
        _ key: Key, _ mutate: (inout Value) throws(Failure) -> Value
    ) throws(Failure) -> ORMap {
        var value = Value(store: _store.entries[key] ?? Value.Store(), context: _context)
        let valueDelta = try mutate(&value)
        _store.setValue(value.store, forKey: key)
        _context = value.context
        let deltaStore = valueDelta.store.isBottom ? DotMap<Key, Value.Store>() : DotMap([key: valueDelta.store])
        return ORMap(store: deltaStore, context: valueDelta.context)
    }

    /// Removes `key` as far as this replica has seen it and returns the delta.
    @discardableResult
    @inlinable
    public mutating func remove(_ key: Key) -> ORMap {
        guard let removed = _store.removeValue(forKey: key) else { return ORMap() }
        return ORMap(store: DotMap(), context: CausalContext(dots: removed.dots))
    }

    /// Removes every key this replica has seen and returns the delta.
    @discardableResult
    @inlinable
    public mutating func removeAll() -> ORMap {
        let delta = ORMap(store: DotMap(), context: CausalContext(dots: _store.dots))
        _store = DotMap()
        return delta
    }
}

extension ORMap {
    /// The map `other` with each value's store converted by `convert`, keeping the context and every
    /// dot (so nothing is resurrected or lost): how a stored map changes value type, e.g. a Redis hash
    /// of ``CausalLWWRegister`` fields becoming one of ``CountingRegister`` fields. `convert` must keep
    /// exactly the dots of the store it is given.
    @inlinable
    public init<Other: CausalCRDT>(converting other: ORMap<Key, Other>, _ convert: (Other.Store) -> Value.Store) {
        var entries: [Key: Value.Store] = [:]
        entries.reserveCapacity(other.count)
        for (key, store) in other.store.entries { entries[key] = convert(store) }
        self.init(store: DotMap(entries), context: other.context)
    }
}
