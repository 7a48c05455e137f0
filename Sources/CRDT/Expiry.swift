/// When a key expires: at a wall-clock instant, or never (a `PERSIST`). `never` is greater than
/// every instant, which is what makes `PERSIST` beat a concurrent `EXPIRE`.
public enum Deadline: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch, as a client gave them (`PEXPIREAT`) or as the engine
    /// computed them from its clock input (`EXPIRE`, `SET ... EX`).
    case at(milliseconds: UInt64)
    /// No expiry: the result of `PERSIST`.
    case never

    public static func < (lhs: Deadline, rhs: Deadline) -> Bool {
        switch (lhs, rhs) {
        case (.at(let a), .at(let b)): return a < b
        case (.at, .never): return true
        case (.never, _): return false
        }
    }

    public var description: String {
        switch self {
        case .at(let milliseconds): return "at \(milliseconds) ms"
        case .never: return "never"
        }
    }
}

/// The expiry deadline of one key (`EXPIRE`, `PEXPIREAT`, `PERSIST`, `TTL`): a multi-value register
/// of deadlines whose read is the *latest* deadline held, with `PERSIST` as +infinity.
///
/// * A later update (one that saw the current deadlines) replaces them, so a TTL can be shortened.
/// * Among concurrent updates the longest deadline wins, and a `PERSIST` beats every expiry, as in
///   Redis Active-Active.
/// * A deadline is data, not a conflict rule: it never decides which write to the key wins, and this
///   type reads no clock. The engine compares ``deadline`` with the time its tick carries, and when
///   that time has passed it hides the key and issues an ordinary observed remove of it (``clear()``
///   here), which a concurrent write survives.
///
/// Deltas: `expire` and `persist` ship the new deadline under a fresh dot with a context covering it
/// and the deadlines it replaces; `clear` ships the observed dots as context.
public struct ExpiryRegister: CausalCRDT, Hashable {
    @inlinable public var store: DotFun<Deadline> { _store }
    @inlinable public var context: CausalContext { _context }
    @usableFromInline var _store: DotFun<Deadline>
    @usableFromInline var _context: CausalContext

    @inlinable
    public init(store: DotFun<Deadline>, context: CausalContext) {
        _store = store
        _context = context
    }

    public static func == (lhs: ExpiryRegister, rhs: ExpiryRegister) -> Bool {
        lhs._store == rhs._store && lhs._context == rhs._context
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(_context)
        for (dot, deadline) in _store.entries.sorted(by: { $0.key < $1.key }) {
            hasher.combine(dot)
            hasher.combine(deadline)
        }
    }

    /// The deadline in force: the greatest held, or `nil` when none was set (or all were cleared).
    @inlinable
    public var deadline: Deadline? { _store.entries.values.max() }

    /// The instant the key expires, or `nil` when it has no deadline or was persisted.
    @inlinable
    public var expiresAt: UInt64? {
        if case .at(let milliseconds) = deadline { return milliseconds }
        return nil
    }

    /// Whether the key has expired at `now` (milliseconds since the epoch): strictly after its
    /// deadline, as Redis decides.
    @inlinable
    public func isExpired(atMilliseconds now: UInt64) -> Bool {
        guard let expiresAt else { return false }
        return now > expiresAt
    }

    /// Milliseconds left at `now` (`PTTL`), or `nil` when there is no deadline; zero once expired.
    @inlinable
    public func remaining(atMilliseconds now: UInt64) -> UInt64? {
        guard let expiresAt else { return nil }
        return expiresAt > now ? expiresAt - now : 0
    }

    /// Sets the deadline (replacing every deadline seen) on behalf of `replica`; returns the delta.
    @discardableResult
    @inlinable
    public mutating func expire(atMilliseconds deadline: UInt64, replica: ReplicaID) -> ExpiryRegister {
        assign(.at(milliseconds: deadline), replica: replica)
    }

    /// Removes the expiry (`PERSIST`), beating any concurrent `expire`; returns the delta.
    @discardableResult
    @inlinable
    public mutating func persist(replica: ReplicaID) -> ExpiryRegister {
        assign(.never, replica: replica)
    }

    /// Forgets every deadline seen (the key was removed); returns the delta. A concurrent `expire`
    /// or `persist` survives it.
    @discardableResult
    @inlinable
    public mutating func clear() -> ExpiryRegister {
        let delta = ExpiryRegister(store: DotFun(), context: CausalContext(dots: _store.entries.keys))
        _store = DotFun()
        return delta
    }

    @inlinable
    mutating func assign(_ deadline: Deadline, replica: ReplicaID) -> ExpiryRegister {
        let dot = _context.nextDot(for: replica)
        var deltaContext = CausalContext(dots: _store.entries.keys)
        deltaContext.insert(dot)
        _store = DotFun([dot: deadline])
        _context.insert(dot)
        return ExpiryRegister(store: _store, context: deltaContext)
    }
}
