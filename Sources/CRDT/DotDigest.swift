/// An order-independent digest of a set of dots: the wrapping sum, in two 64-bit lanes, of a strong
/// mix of each dot. Adding or removing one dot costs O(1), so a ``DotMap`` keeps the digest of every
/// dot it holds up to date as it changes, and the digest of a large object never needs a full pass.
///
/// Between honest replicas a dot names exactly one event (one add of one element, one write of one
/// value), so two stores that hold the same dots hold the same entries: the dot digest stands for the
/// store. Sums (not XOR) keep a dot inserted twice by a bug from cancelling out.
public struct DotDigest: Hashable, Sendable {
    /// The first lane.
    @inlinable public var high: UInt64 { _high }
    /// The second lane.
    @inlinable public var low: UInt64 { _low }
    @usableFromInline var _high: UInt64 = 0
    @usableFromInline var _low: UInt64 = 0

    /// The digest of no dot.
    @inlinable public init() {}

    @inlinable @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        // SplitMix64's finaliser: a bijection that spreads every input bit over the output.
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable
    static func lanes(of dot: Dot) -> (UInt64, UInt64) {
        let a = mix(dot.replica.rawValue ^ 0x5DEE_CE66_D1CE_4E5B)
        let b = mix(dot.counter &+ a)
        return (b, mix(b ^ a))
    }

    /// Adds `dot` to the digested set.
    @inlinable
    public mutating func insert(_ dot: Dot) {
        let (h, l) = Self.lanes(of: dot)
        _high &+= h
        _low &+= l
    }

    /// Removes `dot` from the digested set (it must have been inserted).
    @inlinable
    public mutating func remove(_ dot: Dot) {
        let (h, l) = Self.lanes(of: dot)
        _high &-= h
        _low &-= l
    }

    /// Adds a dot together with a version of what it holds: for a store whose entry under one dot
    /// changes (a ``CountingStore`` shard's version grows), so the digest changes with it.
    @inlinable
    public mutating func insert(_ dot: Dot, version: UInt64) {
        let (h, l) = Self.lanes(of: dot)
        let v = Self.mix(version ^ 0x2545_F491_4F6C_DD1D)
        _high &+= Self.mix(h ^ v)
        _low &+= Self.mix(l &+ v)
    }

    /// Adds every dot `other` digests (the digest of a union of disjoint sets).
    @inlinable
    public mutating func add(_ other: DotDigest) {
        _high &+= other._high
        _low &+= other._low
    }

    /// Removes every dot `other` digests (it must have been added).
    @inlinable
    public mutating func subtract(_ other: DotDigest) {
        _high &-= other._high
        _low &-= other._low
    }

    /// The digest of `dots`, computed from scratch (for tests and small stores).
    public init<S: Sequence>(of dots: S) where S.Element == Dot {
        for dot in dots { insert(dot) }
    }
}
