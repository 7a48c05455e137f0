/// The set of dots a replica has seen, stored compactly: a version vector covers, per replica, every
/// dot from 1 up to a maximum; a dot cloud holds the dots seen out of order beyond that prefix.
///
/// The representation is canonical (kept compacted after every change): a cloud dot is never covered
/// by the vector and never directly follows it. So two contexts holding the same dots are `==` and
/// encode to the same bytes.
public struct CausalContext: Hashable, Sendable, CustomStringConvertible {
    /// Per replica, the greatest `n` such that dots 1...n are all in the context. Zero entries are absent.
    public private(set) var versionVector: [ReplicaID: UInt64]
    /// Dots in the context that are not covered by the version vector.
    public private(set) var cloud: Set<Dot>

    /// The empty context.
    public init() {
        versionVector = [:]
        cloud = []
    }

    /// A context holding exactly `dots`.
    public init<S: Sequence>(dots: S) where S.Element == Dot {
        self.init()
        for dot in dots { cloud.insert(dot) }
        compact()
    }

    /// A context holding, per replica, every dot from 1 up to `versionVector`'s entry.
    public init(versionVector: [ReplicaID: UInt64]) {
        self.versionVector = versionVector.filter { $0.value > 0 }
        cloud = []
    }

    init(uncheckedVersionVector: [ReplicaID: UInt64], cloud: Set<Dot>) {
        self.versionVector = uncheckedVersionVector
        self.cloud = cloud
    }

    /// True when the context holds no dot.
    @inlinable
    public var isEmpty: Bool { versionVector.isEmpty && cloud.isEmpty }

    /// Whether `dot` has been seen.
    @inlinable
    public func contains(_ dot: Dot) -> Bool {
        dot.counter <= versionVector[dot.replica, default: 0] || (!cloud.isEmpty && cloud.contains(dot))
    }

    /// The greatest counter of `replica` in this context (covered or in the cloud).
    public func maxCounter(of replica: ReplicaID) -> UInt64 {
        var result = versionVector[replica, default: 0]
        for dot in cloud where dot.replica == replica { result = max(result, dot.counter) }
        return result
    }

    /// The next fresh dot for `replica`: one past every dot of that replica seen so far.
    public func nextDot(for replica: ReplicaID) -> Dot {
        let current = maxCounter(of: replica)
        // 2^64 events from one replica cannot happen; saturating keeps this total.
        return Dot(replica: replica, counter: current == .max ? .max : current + 1)
    }

    /// Adds one dot and re-compacts.
    public mutating func insert(_ dot: Dot) {
        let top = versionVector[dot.replica, default: 0]
        if dot.counter <= top { return }
        if dot.counter == top + 1 {
            versionVector[dot.replica] = dot.counter
            absorbSuccessors(of: dot.replica)
        } else {
            cloud.insert(dot)
        }
    }

    /// Adds every dot of `other` (set union) and re-compacts.
    public mutating func formUnion(_ other: CausalContext) {
        _ = formUnionReportingGrowth(other)
    }

    /// Adds every dot of `other` and returns whether any was new. O(other) (a vector entry of `other`
    /// counts as the dots it adds).
    @discardableResult
    public mutating func formUnionReportingGrowth(_ other: CausalContext) -> Bool {
        // O(other), whatever the size of this context's cloud: a replica whose deltas arrive out of order
        // (a lost datagram waits for its retransmission) keeps a cloud of thousands of dots, and scanning it
        // for every delta joined made each join cost O(cloud) exactly when the node was falling behind.
        var grew = false
        var touched: [ReplicaID] = []
        for (replica, counter) in other.versionVector where counter > versionVector[replica, default: 0] {
            let old = versionVector[replica, default: 0]
            versionVector[replica] = counter
            guard !cloud.isEmpty else {
                grew = true
                continue
            }
            // Cloud dots in (old, counter] are now covered by the vector: drop them, counting them to tell
            // whether the range held anything new. O(min(range, cloud)).
            let range = counter - old
            var held: UInt64 = 0
            if range <= UInt64(cloud.count) {
                var next = old + 1
                while next <= counter {
                    if cloud.remove(Dot(replica: replica, counter: next)) != nil { held += 1 }
                    next += 1
                }
            } else {
                let before = cloud.count
                cloud = cloud.filter { $0.replica != replica || $0.counter <= old || $0.counter > counter }
                held = UInt64(before - cloud.count)
            }
            if held != range { grew = true }
            touched.append(replica)
        }
        for dot in other.cloud where !contains(dot) {
            cloud.insert(dot)
            grew = true
            touched.append(dot.replica)
        }
        guard !touched.isEmpty else { return grew }
        if touched.count > 1 { touched = Array(Set(touched)) }
        // Every cloud dot at or below the vector is gone (above, or never inserted): only successors remain.
        for replica in touched { absorbSuccessors(of: replica) }
        return grew
    }

    /// The union of two contexts.
    public func union(_ other: CausalContext) -> CausalContext {
        var result = self
        result.formUnion(other)
        return result
    }

    /// Number of dots held (summing the vector's prefixes and the cloud), saturating at
    /// `UInt64.max`: a forged context must not wrap around and look small.
    public var dotCount: UInt64 {
        var total = UInt64(cloud.count)
        for counter in versionVector.values {
            let (sum, overflow) = total.addingReportingOverflow(counter)
            if overflow { return .max }
            total = sum
        }
        return total
    }

    /// Restores the canonical form after arbitrary cloud insertions.
    mutating func compact() {
        guard !cloud.isEmpty else { return }
        for replica in Set(cloud.map(\.replica)) { absorbCloud(of: replica) }
    }

    /// Drops `replica`'s cloud dots the vector covers, then absorbs those that extend it.
    private mutating func absorbCloud(of replica: ReplicaID) {
        guard !cloud.isEmpty else { return }
        let top = versionVector[replica, default: 0]
        if cloud.contains(where: { $0.replica == replica && $0.counter <= top }) {
            cloud = cloud.filter { $0.replica != replica || $0.counter > top }
        }
        absorbSuccessors(of: replica)
    }

    /// Moves cloud dots that directly extend the vector's prefix into it.
    private mutating func absorbSuccessors(of replica: ReplicaID) {
        guard !cloud.isEmpty else { return }
        var top = versionVector[replica, default: 0]
        while top < .max, cloud.remove(Dot(replica: replica, counter: top + 1)) != nil { top += 1 }
        if top > 0 { versionVector[replica] = top }
    }

    /// The context's dots in a canonical order: vector ranges by replica, then sorted cloud dots.
    var sortedCloud: [Dot] { cloud.sorted() }

    public var description: String {
        let vv = versionVector.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }
        return "⟨[\(vv.joined(separator: ", "))] + \(sortedCloud)⟩"
    }

    /// A read-only view of a context tuned for many `contains` calls: a small version vector is
    /// searched linearly instead of hashed, which is what applying a delta (whose context names a
    /// few replicas) to a large state needs.
    public struct Probe: Sendable {
        @usableFromInline let context: CausalContext
        @usableFromInline let replicas: [ReplicaID]
        @usableFromInline let tops: [UInt64]
        @usableFromInline let isSmall: Bool
        @usableFromInline let hasCloud: Bool

        /// A probe over `context`.
        @inlinable
        public init(_ context: CausalContext) {
            self.context = context
            isSmall = context.versionVector.count <= 8
            replicas = isSmall ? Array(context.versionVector.keys) : []
            tops = isSmall ? Array(context.versionVector.values) : []
            hasCloud = !context.cloud.isEmpty
        }

        /// Whether the context has seen `dot`.
        @inlinable
        public func contains(_ dot: Dot) -> Bool {
            if isSmall {
                for index in replicas.indices where replicas[index] == dot.replica {
                    if dot.counter <= tops[index] { return true }
                    break
                }
            } else if dot.counter <= context.versionVector[dot.replica, default: 0] {
                return true
            }
            return hasCloud && context.cloud.contains(dot)
        }
    }
}

