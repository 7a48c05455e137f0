import Synchronization

/// Where a ring puts its shared counters relative to each other.
///
/// Counters written by the producer side and counters written by the consumer side live in separate
/// groups. Padding puts each group on its own pair of cache lines, so a store by one side does not
/// invalidate the line the other side is reading (false sharing).
@_spi(Benchmarks)
public enum RingLayout: Sendable {
    /// Each group on its own 128-byte block (two cache lines, because the adjacent-line prefetchers of many
    /// x86 processors pull lines in pairs). The default.
    case padded
    /// Every counter packed into one cache line. Exists only so that benchmarks can measure what the
    /// padding is worth.
    case unpadded
}

/// A block of `Atomic<Int>` cells in manually allocated memory, aligned and spaced by group.
///
/// `Atomic` must stay at one address for its whole life. Class stored properties would give that too, but
/// they cannot be aligned to a cache line or spaced apart; raw memory can.
struct AtomicCells {
    static let groupStride = 128

    let base: UnsafeMutableRawPointer
    private let groups: [Int]
    private let stride: Int
    private static let cellSize = MemoryLayout<Atomic<Int>>.stride

    /// Allocates `groups.count` groups with `groups[i]` cells each, every cell starting at `initialValue`.
    init(groups: [Int], layout: RingLayout, initialValue: Int = 0) {
        let widest = (groups.max() ?? 1) * AtomicCells.cellSize
        switch layout {
        case .padded: stride = Swift.max(AtomicCells.groupStride, widest)
        case .unpadded: stride = widest
        }
        self.groups = groups
        base = UnsafeMutableRawPointer.allocate(
            byteCount: Swift.max(1, stride * groups.count), alignment: AtomicCells.groupStride)
        for (group, cells) in groups.enumerated() {
            for cell in 0..<cells {
                (base + group * stride + cell * AtomicCells.cellSize)
                    .bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(initialValue))
            }
        }
    }

    /// The cell with this index, counting through the groups in order.
    func cell(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        var remaining = index
        for (group, cells) in groups.enumerated() {
            if remaining < cells {
                return (base + group * stride + remaining * AtomicCells.cellSize)
                    .assumingMemoryBound(to: Atomic<Int>.self)
            }
            remaining -= cells
        }
        preconditionFailure("AtomicCells: cell \(index) does not exist")
    }

    /// Frees the block. `Atomic<Int>` is trivial, so there is nothing to deinitialize.
    func deallocate() { base.deallocate() }
}
