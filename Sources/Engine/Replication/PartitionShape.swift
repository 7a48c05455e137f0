/// The network partitions crdtd is tested under, named as in Jepsen. Used by the deterministic simulation
/// and by `crdtctl partition`, so both cut a cluster the same way.
public enum PartitionShape: String, CaseIterable, Sendable {
    /// One node cut off from all others.
    case isolate
    /// A minority of nodes cut off from the majority.
    case minority
    /// Two halves of (nearly) equal size.
    case majority
    /// Every node talks only to its ring neighbours: each sees a different majority.
    case ring
    /// Two halves joined only through one bridge node.
    case bridge

    /// Whether nodes `a` and `b` (indices among `n`) are cut apart. `victim` picks the isolated node or
    /// where the minority starts.
    public func cuts(_ a: Int, _ b: Int, nodes n: Int, victim: Int) -> Bool {
        guard a != b else { return false }
        switch self {
        case .isolate:
            return (a == victim) != (b == victim)
        case .minority:
            let small = Set((0..<max(1, (n - 1) / 2)).map { (victim + $0) % n })
            return small.contains(a) != small.contains(b)
        case .majority:
            return (a < n / 2) != (b < n / 2)
        case .ring:
            let d = (a - b + n) % n
            return !(d == 1 || d == n - 1)
        case .bridge:
            let bridge = n / 2
            if a == bridge || b == bridge { return false }
            return (a < bridge) != (b < bridge)
        }
    }

    /// For each node, the nodes it must stop talking to.
    public func blockedPeers(nodes n: Int, victim: Int) -> [[Int]] {
        (0..<n).map { a in (0..<n).filter { b in cuts(a, b, nodes: n, victim: victim) } }
    }
}
