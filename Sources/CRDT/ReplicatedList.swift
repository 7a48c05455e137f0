/// A place in a ``ReplicatedList``: a path of components in a dense total order, so a new place
/// can always be made between any two (Logoot, Weiss, Urso and Molli 2009). Ordered component by
/// component, a path before every longer path it is a prefix of.
///
/// A component is a digit and the `(replica, counter)` of the insert that chose it, so places made
/// concurrently by two replicas never collide: the last component of every place names the insert
/// that made it. The last digit is never 0, which is what keeps room below every place.
public struct ListPosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// One level of a path.
    public struct Component: Hashable, Comparable, Sendable {
        /// The digit, below ``ListPosition/base``.
        public let digit: UInt64
        /// The replica whose insert chose this digit.
        public let replica: ReplicaID
        /// That insert's dot counter.
        public let counter: UInt64

        /// A component.
        public init(digit: UInt64, replica: ReplicaID, counter: UInt64) {
            self.digit = digit
            self.replica = replica
            self.counter = counter
        }

        public static func < (lhs: Component, rhs: Component) -> Bool {
            (lhs.digit, lhs.replica, lhs.counter) < (rhs.digit, rhs.replica, rhs.counter)
        }
    }

    /// Digits are below this, at every level.
    public static let base: UInt64 = 1 << 62
    /// The gap left after (or before) a place made at an end, so that pushes stay one level deep
    /// for 2^37 pushes to one end, and inserts between neighbours have room for about 24 halvings.
    public static let step: UInt64 = 1 << 24

    /// The path, never empty.
    public let components: [Component]

    /// A place with the given path (which must be non-empty and end in a non-zero digit).
    public init(components: [Component]) { self.components = components }

    public static func < (lhs: ListPosition, rhs: ListPosition) -> Bool {
        lhs.components.lexicographicallyPrecedes(rhs.components)
    }

    public var description: String {
        components.map { "\($0.digit)@\($0.replica):\($0.counter)" }.joined(separator: ".")
    }

    /// A new place strictly between `lower` and `upper` (`nil`: the list's start or end), named by
    /// `site`, the dot of the insert. `lower < upper` when both are given.
    public static func between(_ lower: ListPosition?, _ upper: ListPosition?, site: Dot) -> ListPosition {
        let low = lower?.components ?? []
        let high = upper?.components ?? []
        var path: [Component] = []
        var followsLower = true              // `path` equals `low`'s prefix so far
        var followsUpper = upper != nil      // `path` equals `high`'s prefix so far
        var level = 0
        func fresh(_ digit: UInt64) -> Component { Component(digit: digit, replica: site.replica, counter: site.counter) }
        while true {
            if followsUpper && level >= high.count { followsUpper = false }  // only from forged input
            let below: Component? = followsLower && level < low.count ? low[level] : nil
            if below == nil { followsLower = false }
            let above: Component? = followsUpper ? high[level] : nil
            let floor = below?.digit ?? 0            // exclusive
            let ceiling = above?.digit ?? base       // exclusive
            if ceiling > floor + 1 {
                let room = (ceiling - floor) / 2
                let digit: UInt64
                switch (below, above) {
                case (nil, nil): digit = floor + room
                case (nil, .some): digit = ceiling - min(step, room)
                default: digit = floor + min(step, room)
                }
                path.append(fresh(digit))
                return ListPosition(components: path)
            }
            if let below {
                // No digit fits: follow the lower place one level down.
                path.append(below)
                if followsUpper && below != above { followsUpper = false }
            } else if let above, above.digit == 1 {
                // Below a 1 with nothing under it: a 0 of our own, then anything at the next level.
                path.append(fresh(0))
                followsUpper = false
            } else if let above {
                // Below a 0 (never a place's last digit): follow the upper place one level down.
                path.append(above)
            }
            level += 1
        }
    }
}

/// A Redis list (`LPUSH`, `RPUSH`, `LPOP`, `RPOP`, `LRANGE`, `LLEN`, `LINDEX`, `LREM`, `LSET`,
/// `LINSERT`): a sequence CRDT without tombstones.
///
/// Every element sits at a ``ListPosition`` chosen when it was inserted, in a dense order, and holds
/// a last-writer-wins register of its value (so `LSET` is a write to that register). The state is an
/// observed-remove map from positions to registers, with the list's causal context:
/// * removing an element (`LPOP`, `LREM`) drops the dots it had seen; positions are absolute, so no
///   tombstone is needed as an anchor for later inserts;
/// * two elements inserted concurrently at the same place are both kept, in an order every replica
///   computes the same way (by digit, then by inserting replica and counter). Runs of elements pushed
///   concurrently at the same end by two replicas may interleave (as in Logoot and LSEQ);
/// * `LSET` concurrent with `LSET` of the same element: the later Lamport timestamp wins;
/// * `LSET` concurrent with the removal of that element keeps the element, with the new value (a
///   concurrent write survives an observed remove, as everywhere in this library);
/// * a pop on two sides of a partition takes the same element on both: two consumers get it.
///
/// Positional reads and writes cost O(log n) through an ``OrderedIndex`` of the positions (derived
/// data, rebuilt on decoding, updated per element a join touches); a range of k elements costs
/// O(log n + k). Deltas: an insert ships one element (its position, dot and value); `set` ships the
/// new write with the dots it replaces; a removal ships only a context.
public struct ReplicatedList<Value: Sendable & Equatable>: CausalCRDT {
    /// The register at one position.
    public typealias Element = CausalLWWRegister<Value>

    @inlinable public var store: DotMap<ListPosition, DotFun<Stamped<Value>>> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: DotMap<ListPosition, DotFun<Stamped<Value>>>
    @usableFromInline var _context: CausalContext
    @usableFromInline var order: OrderedIndex<ListPosition>

    public init(store: DotMap<ListPosition, DotFun<Stamped<Value>>>, context: CausalContext) {
        _store = store
        _context = context
        order = OrderedIndex()
        for position in store.entries.keys { order.insert(position) }
    }

    public static func == (lhs: ReplicatedList, rhs: ReplicatedList) -> Bool {
        lhs._store == rhs._store && lhs._context == rhs._context
    }

    // MARK: Reads

    /// Number of elements (`LLEN`).
    public var count: Int { order.count }

    /// The value at `index` (`LINDEX`; 0-based from the head), or `nil` when out of range.
    public func value(at index: Int) -> Value? {
        guard index >= 0 && index < count else { return nil }
        return value(atPosition: order[index])
    }

    /// The values at `indices` (`LRANGE`, clamped), head first.
    public func values(in indices: Range<Int>) -> [Value] {
        order.elements(in: indices).compactMap { value(atPosition: $0) }
    }

    /// Every value, head first.
    public var values: [Value] { values(in: 0..<count) }

    /// The position of the element at `index`, or `nil` when out of range.
    public func position(at index: Int) -> ListPosition? {
        index >= 0 && index < count ? order[index] : nil
    }

    /// The index of the first element holding `value` (`LINSERT`'s pivot, `LPOS`): O(n), as in Redis.
    public func firstIndex(of value: Value) -> Int? {
        for (index, position) in order.sorted.enumerated() where self.value(atPosition: position) == value { return index }
        return nil
    }

    func value(atPosition position: ListPosition) -> Value? {
        _store.entries[position].flatMap { Element(store: $0, context: _context).value }
    }

    // MARK: Mutators

    /// Inserts `value` so that it ends up at `index` (0 is the head, `count` the tail): `LPUSH` is
    /// `insert(v, at: 0)`, `RPUSH` `insert(v, at: count)`, `LINSERT` before or after a pivot's index.
    /// Returns the delta. `index` is clamped to `0...count`.
    @discardableResult
    public mutating func insert(_ value: Value, at index: Int, clock: inout LamportClock) -> ReplicatedList {
        let index = max(0, min(count, index))
        let site = _context.nextDot(for: clock.replica)
        let position = ListPosition.between(position(at: index - 1), position(at: index), site: site)
        return write(value, at: position, clock: &clock)
    }

    /// Replaces the value at `index` (`LSET`); returns the delta, or `nil` when `index` is out of range.
    @discardableResult
    public mutating func set(_ value: Value, at index: Int, clock: inout LamportClock) -> ReplicatedList? {
        guard let position = position(at: index) else { return nil }
        return write(value, at: position, clock: &clock)
    }

    /// Removes the element at `index` (`LPOP` is index 0, `RPOP` index `count - 1`, `LREM` each match)
    /// as far as this replica has seen it; returns the delta, or `nil` when out of range.
    @discardableResult
    public mutating func remove(at index: Int) -> ReplicatedList? {
        guard let position = position(at: index), let removed = _store.removeValue(forKey: position) else { return nil }
        order.remove(position)
        return ReplicatedList(store: DotMap(), context: CausalContext(dots: removed.dots))
    }

    /// Removes every element seen (`DEL`, `LTRIM` to nothing); returns the delta.
    @discardableResult
    public mutating func removeAll() -> ReplicatedList {
        let delta = ReplicatedList(store: DotMap(), context: CausalContext(dots: _store.dots))
        _store = DotMap()
        order = OrderedIndex()
        return delta
    }

    public mutating func join(_ other: ReplicatedList) { _ = inflate(with: other) }

    /// The join, reporting whether anything changed; O(other · log n).
    public mutating func inflate(with other: ReplicatedList) -> Bool {
        if other._context.isEmpty && other._store.isBottom { return false }
        let before = _store.dotDigest
        var touched: [ListPosition] = []
        _store.join(other._store, context: _context, otherContext: other._context) { touched.append($0) }
        let grew = _context.formUnionReportingGrowth(other._context)
        for position in touched {
            let present = _store.entries[position] != nil
            if present != order.contains(position) {
                if present { order.insert(position) } else { order.remove(position) }
            }
        }
        return grew || _store.dotDigest != before
    }

    private mutating func write(_ value: Value, at position: ListPosition, clock: inout LamportClock) -> ReplicatedList {
        var element = Element(store: _store.entries[position] ?? DotFun(), context: _context)
        let isNew = _store.entries[position] == nil
        let delta = element.assign(value, clock: &clock)
        _store.setValue(element.store, forKey: position)
        _context = element.context
        if isNew { order.insert(position) }
        return ReplicatedList(store: DotMap([position: delta.store]), context: delta.context)
    }
}
