/// A non-negative counter that needs no coordination to stay non-negative (Balegas et al. 2015).
///
/// `value >= 0` is not invariant-confluent under plain decrements (two replicas that each see 1 may
/// both decrement). The bounded counter restructures the data: the value is split into *rights*
/// held by replicas; a replica may only decrement within the rights it holds, and rights move
/// between replicas by transfers, which are deltas like any other. The rights of all replicas add
/// up to the value, and each replica only ever spends rights it knows it holds (incoming transfers
/// it has not yet seen only make its true balance larger), so the value never drops below zero.
///
/// State: `rights[i→j]` (total transferred from i to j; `i→i` holds i's increments) and
/// `decrements[i]`, every entry a monotone count joined by `max`.
///
/// Deltas: `increment` ships the replica's new increment total alone (it can only add rights).
/// `decrement` and `transfer` spend rights, so their delta is the spender's whole state: whoever
/// learns of the spending also learns the rights that justified it. Without that, deltas arriving
/// out of causal order (a decrement before the transfer that funded it) would let a replica read a
/// value below zero even though no replica ever overspent. The state is one entry per replica pair
/// that ever transferred, so this stays small.
public struct BoundedCounter: DeltaCRDT, Hashable {
    /// A directed pair of replicas: `from == to` records increments made at `from`.
    public struct Transfer: Hashable, Comparable, Sendable {
        /// The replica giving rights (or, when equal to `to`, creating them by incrementing).
        public let from: ReplicaID
        /// The replica receiving rights.
        public let to: ReplicaID

        /// A pair.
        public init(from: ReplicaID, to: ReplicaID) {
            self.from = from
            self.to = to
        }

        public static func < (lhs: Transfer, rhs: Transfer) -> Bool { (lhs.from, lhs.to) < (rhs.from, rhs.to) }
    }

    /// Totals of rights created (`i→i`) and transferred (`i→j`). Zero entries are absent.
    public internal(set) var rights: [Transfer: UInt64]
    /// Per replica, the total it decremented. Zero entries are absent.
    public internal(set) var decrements: [ReplicaID: UInt64]

    public init() {
        rights = [:]
        decrements = [:]
    }

    init(rights: [Transfer: UInt64], decrements: [ReplicaID: UInt64]) {
        self.rights = rights
        self.decrements = decrements
    }

    /// Total increments minus total decrements (wrapping, so a forged state cannot trap it).
    public var value: UInt64 {
        var total: UInt64 = 0
        for (pair, amount) in rights where pair.from == pair.to { total &+= amount }
        for amount in decrements.values { total &-= amount }
        return total
    }

    /// The rights `replica` holds as far as this state knows: what it created and received, minus
    /// what it gave away and decremented. Its true rights can only be larger (transfers to it that
    /// have not arrived yet).
    public func localRights(of replica: ReplicaID) -> UInt64 {
        var received: UInt64 = 0
        var given: UInt64 = 0
        for (pair, amount) in rights {
            if pair.to == replica { received &+= amount } else if pair.from == replica { given &+= amount }
        }
        let spent = given &+ decrements[replica, default: 0]
        return received >= spent ? received - spent : 0
    }

    /// Adds `amount` at `replica`, which gains as many rights. Returns the delta.
    @discardableResult
    public mutating func increment(by amount: UInt64 = 1, replica: ReplicaID) throws(CRDTMutationError) -> BoundedCounter {
        let pair = Transfer(from: replica, to: replica)
        let (own, ownOverflow) = rights[pair, default: 0].addingReportingOverflow(amount)
        let (_, valueOverflow) = value.addingReportingOverflow(amount)
        guard !ownOverflow, !valueOverflow else { throw .overflow(operation: "increment by \(amount)") }
        guard amount > 0 else { return BoundedCounter() }
        rights[pair] = own
        return BoundedCounter(rights: [pair: own], decrements: [:])
    }

    /// Subtracts `amount` at `replica` if it holds that many rights; otherwise throws
    /// ``CRDTMutationError/insufficientRights(requested:available:)`` and changes nothing.
    @discardableResult
    public mutating func decrement(by amount: UInt64 = 1, replica: ReplicaID) throws(CRDTMutationError) -> BoundedCounter {
        let available = localRights(of: replica)
        guard amount <= available else { throw .insufficientRights(requested: amount, available: available) }
        guard amount > 0 else { return BoundedCounter() }
        let (total, overflow) = decrements[replica, default: 0].addingReportingOverflow(amount)
        guard !overflow else { throw .overflow(operation: "decrement by \(amount)") }
        decrements[replica] = total
        return self
    }

    /// Moves `amount` of `replica`'s rights to `target`. Returns the delta.
    @discardableResult
    public mutating func transfer(rights amount: UInt64, from replica: ReplicaID, to target: ReplicaID) throws(CRDTMutationError) -> BoundedCounter {
        guard replica != target else { throw .transferToSelf }
        let available = localRights(of: replica)
        guard amount <= available else { throw .insufficientRights(requested: amount, available: available) }
        guard amount > 0 else { return BoundedCounter() }
        let pair = Transfer(from: replica, to: target)
        let (total, overflow) = rights[pair, default: 0].addingReportingOverflow(amount)
        guard !overflow else { throw .overflow(operation: "transfer of \(amount)") }
        rights[pair] = total
        return self
    }

    public mutating func join(_ other: BoundedCounter) {
        rights.merge(other.rights) { Swift.max($0, $1) }
        decrements.merge(other.decrements) { Swift.max($0, $1) }
    }

    /// O(other): only the entries `other` holds are looked at.
    public mutating func inflate(with other: BoundedCounter) -> Bool {
        var changed = false
        for (pair, amount) in other.rights where amount > rights[pair, default: 0] {
            rights[pair] = amount
            changed = true
        }
        for (replica, amount) in other.decrements where amount > decrements[replica, default: 0] {
            decrements[replica] = amount
            changed = true
        }
        return changed
    }
}
