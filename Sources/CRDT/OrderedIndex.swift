/// A sorted multiset with positions: insert, remove, rank and select in O(log n) expected time, and
/// a range of k elements by position in O(log n + k). The read side of sorted sets and lists.
///
/// It is a treap whose nodes live in arrays indexed by `Int32`, so it is a plain value type: copies
/// share storage until one is mutated (copy-on-write of the arrays). Node priorities come from a
/// counter mixed by SplitMix64, so the shape (not the contents) depends on the insertion history;
/// it is derived data, never encoded or compared.
public struct OrderedIndex<Element: Comparable & Sendable>: Sendable {
    @usableFromInline var keys: [Element?] = []
    @usableFromInline var left: [Int32] = []
    @usableFromInline var right: [Int32] = []
    @usableFromInline var sizes: [Int32] = []
    @usableFromInline var priorities: [UInt64] = []
    @usableFromInline var free: [Int32] = []
    @usableFromInline var root: Int32 = -1
    @usableFromInline var nextPriority: UInt64 = 0

    /// An empty index.
    public init() {}

    /// Number of elements.
    @inlinable
    public var count: Int { root < 0 ? 0 : Int(sizes[Int(root)]) }

    /// Inserts `element` (duplicates are kept, after the equal ones).
    public mutating func insert(_ element: Element) {
        let node = allocate(element)
        let (lower, upper) = split(root) { $0 <= element }
        root = merge(merge(lower, node), upper)
    }

    /// Removes one element equal to `element`; returns whether there was one.
    @discardableResult
    public mutating func remove(_ element: Element) -> Bool {
        let (lower, rest) = split(root) { $0 < element }
        let (equal, upper) = split(rest) { $0 <= element }
        guard equal >= 0 else {
            root = merge(lower, upper)
            return false
        }
        // Drop the first of the equal ones (the subtree's leftmost node).
        let remaining = removeLeftmost(equal)
        root = merge(merge(lower, remaining), upper)
        return true
    }

    /// Number of elements for which `isBefore` holds, given that it holds for a prefix of the order
    /// (for example `{ $0 < x }`): the position where that prefix ends.
    @inlinable
    public func partitionIndex(_ isBefore: (Element) -> Bool) -> Int {
        var node = root
        var result = 0
        while node >= 0 {
            let index = Int(node)
            if isBefore(keys[index]!) {
                result += size(left[index]) + 1
                node = right[index]
            } else {
                node = left[index]
            }
        }
        return result
    }

    /// Number of elements less than `element`.
    @inlinable
    public func rank(of element: Element) -> Int { partitionIndex { $0 < element } }

    /// Whether an element equal to `element` is present.
    @inlinable
    public func contains(_ element: Element) -> Bool {
        let position = rank(of: element)
        return position < count && self[position] == element
    }

    /// The element at `position` (0-based, in order). `position` must be in `0..<count`.
    @inlinable
    public subscript(position: Int) -> Element {
        var node = root
        var remaining = position
        while true {
            let index = Int(node)
            let leftSize = size(left[index])
            if remaining < leftSize {
                node = left[index]
            } else if remaining == leftSize {
                return keys[index]!
            } else {
                remaining -= leftSize + 1
                node = right[index]
            }
        }
    }

    /// The elements at `positions`, in order (clamped to `0..<count`).
    public func elements(in positions: Range<Int>) -> [Element] {
        let lower = max(0, positions.lowerBound)
        let upper = min(count, positions.upperBound)
        guard lower < upper else { return [] }
        var result: [Element] = []
        result.reserveCapacity(upper - lower)
        collect(root, offset: 0, lower: lower, upper: upper, into: &result)
        return result
    }

    /// Every element, in order.
    public var sorted: [Element] { elements(in: 0..<count) }

    // MARK: Treap internals

    @inlinable
    func size(_ node: Int32) -> Int { node < 0 ? 0 : Int(sizes[Int(node)]) }

    private mutating func allocate(_ element: Element) -> Int32 {
        nextPriority &+= 0x9E37_79B9_7F4A_7C15
        var mixed = nextPriority
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        mixed ^= mixed >> 31
        if let slot = free.popLast() {
            let index = Int(slot)
            keys[index] = element
            left[index] = -1
            right[index] = -1
            sizes[index] = 1
            priorities[index] = mixed
            return slot
        }
        keys.append(element)
        left.append(-1)
        right.append(-1)
        sizes.append(1)
        priorities.append(mixed)
        return Int32(keys.count - 1)
    }

    private mutating func update(_ node: Int32) {
        let index = Int(node)
        sizes[index] = Int32(size(left[index]) + size(right[index]) + 1)
    }

    /// Splits `node`'s subtree into the elements for which `goesLeft` holds (a prefix) and the rest.
    private mutating func split(_ node: Int32, _ goesLeft: (Element) -> Bool) -> (Int32, Int32) {
        guard node >= 0 else { return (-1, -1) }
        let index = Int(node)
        if goesLeft(keys[index]!) {
            let (lower, upper) = split(right[index], goesLeft)
            right[index] = lower
            update(node)
            return (node, upper)
        } else {
            let (lower, upper) = split(left[index], goesLeft)
            left[index] = upper
            update(node)
            return (lower, node)
        }
    }

    /// Joins two subtrees, every element of `lower` before every element of `upper`.
    private mutating func merge(_ lower: Int32, _ upper: Int32) -> Int32 {
        if lower < 0 { return upper }
        if upper < 0 { return lower }
        if priorities[Int(lower)] > priorities[Int(upper)] {
            right[Int(lower)] = merge(right[Int(lower)], upper)
            update(lower)
            return lower
        } else {
            left[Int(upper)] = merge(lower, left[Int(upper)])
            update(upper)
            return upper
        }
    }

    private mutating func removeLeftmost(_ node: Int32) -> Int32 {
        let index = Int(node)
        if left[index] < 0 {
            let rest = right[index]
            keys[index] = nil
            free.append(node)
            return rest
        }
        left[index] = removeLeftmost(left[index])
        update(node)
        return node
    }

    private func collect(_ node: Int32, offset: Int, lower: Int, upper: Int, into result: inout [Element]) {
        guard node >= 0 else { return }
        let index = Int(node)
        let leftSize = size(left[index])
        let position = offset + leftSize
        if lower < position { collect(left[index], offset: offset, lower: lower, upper: upper, into: &result) }
        if lower <= position && position < upper { result.append(keys[index]!) }
        if position + 1 < upper { collect(right[index], offset: position + 1, lower: lower, upper: upper, into: &result) }
    }
}
