import Synchronization

/// A bounded, lock-free ring with exactly one producer and one consumer at a time.
///
/// The daemon uses it from the libuv loop to the engine (parsed commands and peer frames) and from the
/// engine to the SQLite writer (batches to persist). Pushing into a full ring returns ``PushResult/full(_:)``
/// with the element, so every producer decides what "full" means for it; nothing grows without bound.
///
/// ## Cost
/// No lock and no allocation per element. The producer writes only `tail` and the consumer only `head`, each
/// on its own cache lines; each side keeps a private copy of the other side's index and re-reads the shared
/// one only when its copy says the ring is full (producer) or empty (consumer). Batch operations publish
/// their index once per batch.
///
/// ## Roles
/// At any moment at most one thread may act as producer (``tryPush(_:wakingConsumer:)``,
/// ``tryPush(contentsOf:)``, ``push(_:wakingConsumer:)``, ``hasSpaceOrIsClosed``) and at most one as consumer
/// (``tryPop()``, ``pop()``, ``drain(max:_:)``, ``popAll(into:max:)``, ``isFinished``,
/// ``hasElementsOrIsClosed``). A role may move to another thread if the hand-over itself is synchronized (a
/// lock, a join, another ring). Debug builds trap when two threads push or pop at once. ``close()``,
/// ``wakeConsumer()``, ``isClosed``, ``count`` and ``capacity`` may be used from any thread.
///
/// ## Closing
/// ``close()`` makes later pushes return ``PushResult/closed(_:)``, rings both doorbells so blocked parties
/// wake up, and lets the consumer drain what was accepted before ``PopResult/closed`` ends the stream. When
/// the producer closes after its last push, every accepted element is delivered. When another thread closes,
/// a push racing with the close may still be accepted; if the consumer has already finished, that element is
/// destroyed with the ring instead of delivered.
///
/// ## Elements
/// Any type, including enums and structs holding arrays and class references: slots are initialized on push,
/// moved out on pop, and whatever is still in the ring is deinitialized when the ring is.
public final class SPSCRing<Element> {
    /// How many elements the ring holds: the requested capacity rounded up to a power of two.
    public let capacity: Int

    @usableFromInline let mask: Int
    @usableFromInline let slots: UnsafeMutablePointer<Element>

    // Shared counters, each an index that only grows (`slot = index & mask`).
    @usableFromInline let closedCell: UnsafeMutablePointer<Atomic<Int>>
    @usableFromInline let tail: UnsafeMutablePointer<Atomic<Int>>  // written by the producer
    @usableFromInline let producersHead: UnsafeMutablePointer<Atomic<Int>>  // the producer's copy of head
    @usableFromInline let producerBusy: UnsafeMutablePointer<Atomic<Int>>
    @usableFromInline let head: UnsafeMutablePointer<Atomic<Int>>  // written by the consumer
    @usableFromInline let consumersTail: UnsafeMutablePointer<Atomic<Int>>  // the consumer's copy of tail
    @usableFromInline let consumerBusy: UnsafeMutablePointer<Atomic<Int>>
    let cells: AtomicCells

    /// Rung after every push (unless the producer asks it not to be) and on close; the consumer waits on it.
    public let consumerDoorbell: Doorbell?
    /// Rung after every pop or drain that frees space and on close; a blocked producer waits on it.
    /// (``push(_:wakingConsumer:)`` needs a parking one.)
    public let producerDoorbell: Doorbell?

    /// Creates a ring that holds at least `minimumCapacity` elements.
    ///
    /// - Parameters:
    ///   - minimumCapacity: rounded up to a power of two; 1 through ``RingError/maximumCapacity``.
    ///   - consumerDoorbell: rung when elements arrive or the ring closes. Needed by ``pop()``.
    ///   - producerDoorbell: rung after every pop or drain that frees space, and on close.
    ///     ``push(_:wakingConsumer:)`` needs a parking one; an event-loop producer may pass a signalling one
    ///     to learn that space freed up. Without it the consumer pays nothing to announce space.
    /// - Throws: ``RingError`` when the capacity is out of range.
    public convenience init(
        minimumCapacity: Int, consumerDoorbell: Doorbell? = nil, producerDoorbell: Doorbell? = nil
    ) throws(RingError) {
        try self.init(
            minimumCapacity: minimumCapacity, layout: .padded,
            consumerDoorbell: consumerDoorbell, producerDoorbell: producerDoorbell)
    }

    /// Creates a ring with the counters laid out as `layout` says; for benchmarks that measure padding.
    @_spi(Benchmarks)
    public init(
        minimumCapacity: Int, layout: RingLayout, consumerDoorbell: Doorbell? = nil,
        producerDoorbell: Doorbell? = nil
    ) throws(RingError) {
        capacity = try ringCapacity(roundingUp: minimumCapacity)
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        cells = AtomicCells(groups: [1, 3, 3], layout: layout)
        closedCell = cells.cell(0)
        tail = cells.cell(1)
        producersHead = cells.cell(2)
        producerBusy = cells.cell(3)
        head = cells.cell(4)
        consumersTail = cells.cell(5)
        consumerBusy = cells.cell(6)
        self.consumerDoorbell = consumerDoorbell
        self.producerDoorbell = producerDoorbell
    }

    deinit {
        // The last reference is gone, so no other thread is inside the ring; the release that dropped it
        // orders every earlier push and pop before this point.
        var index = head.pointee.load(ordering: .relaxed)
        let end = tail.pointee.load(ordering: .relaxed)
        while index != end {
            (slots + (index & mask)).deinitialize(count: 1)
            index &+= 1
        }
        slots.deallocate()
        cells.deallocate()
    }

    // MARK: Producer

    /// Offers one element without waiting. Producer only.
    ///
    /// - Parameter wakingConsumer: whether to ring ``consumerDoorbell`` after the push (the default). A
    ///   producer that pushes several elements in a row may pass `false` and call ``wakeConsumer()`` once
    ///   after the last: ringing costs a full memory fence, which waits for the producer's earlier stores.
    /// - Returns: ``PushResult/pushed`` if the ring took it; otherwise the element comes back with the reason.
    @inlinable
    public func tryPush(_ element: consuming Element, wakingConsumer: Bool = true) -> PushResult<Element> {
        enterRole(producerBusy, "pushed")
        defer { leaveRole(producerBusy) }
        if closedCell.pointee.load(ordering: .relaxed) != 0 { return .closed(element) }
        let index = tail.pointee.load(ordering: .relaxed)
        if index &- producersHead.pointee.load(ordering: .relaxed) == capacity {
            // Acquire: the consumer's move out of the slot we are about to overwrite happened before.
            let freshHead = head.pointee.load(ordering: .acquiring)
            producersHead.pointee.store(freshHead, ordering: .relaxed)
            if index &- freshHead == capacity { return .full(element) }
        }
        (slots + (index & mask)).initialize(to: element)
        tail.pointee.store(index &+ 1, ordering: .releasing)
        if wakingConsumer { consumerDoorbell?.ring() }
        return .pushed
    }

    /// Moves as many elements as fit from the front of `elements` into the ring, publishing them at once.
    /// What did not fit stays in `elements`, in order. Producer only.
    ///
    /// - Returns: ``BatchPushResult/pushed(_:)`` with the number taken (0 when full), or
    ///   ``BatchPushResult/closed`` with `elements` untouched.
    @inlinable
    public func tryPush(contentsOf elements: inout [Element]) -> BatchPushResult {
        enterRole(producerBusy, "pushed")
        defer { leaveRole(producerBusy) }
        if closedCell.pointee.load(ordering: .relaxed) != 0 { return .closed }
        let index = tail.pointee.load(ordering: .relaxed)
        var free = capacity &- (index &- producersHead.pointee.load(ordering: .relaxed))
        if free < elements.count {
            let freshHead = head.pointee.load(ordering: .acquiring)
            producersHead.pointee.store(freshHead, ordering: .relaxed)
            free = capacity &- (index &- freshHead)
        }
        let count = Swift.min(free, elements.count)
        if count == 0 { return .pushed(0) }
        elements.withUnsafeBufferPointer { source in
            for offset in 0..<count {
                (slots + ((index &+ offset) & mask)).initialize(to: source[offset])
            }
        }
        tail.pointee.store(index &+ count, ordering: .releasing)
        consumerDoorbell?.ring()
        elements.removeFirst(count)
        return .pushed(count)
    }

    /// Offers one element, waiting on ``producerDoorbell`` while the ring is full. Producer only.
    ///
    /// Before it waits it always wakes the consumer, so a full ring is never left with a sleeping consumer
    /// even when `wakingConsumer` is `false`.
    /// - Returns: ``PushResult/pushed`` or ``PushResult/closed(_:)``; never `full`.
    /// - Precondition: the ring was created with a parking `producerDoorbell`.
    @inlinable
    public func push(_ element: consuming Element, wakingConsumer: Bool = true) -> PushResult<Element> {
        guard let doorbell = producerDoorbell else {
            preconditionFailure("SPSCRing.push(_:) waits for space and needs a producerDoorbell; use tryPush(_:)")
        }
        var pending = element
        while true {
            switch tryPush(pending, wakingConsumer: wakingConsumer) {
            case .full(let back):
                pending = back
                wakeConsumer()
                doorbell.wait(until: { self.hasSpaceOrIsClosed })
            case let result:
                return result
            }
        }
    }

    /// Whether a push would not report full right now. For a waiting producer's condition.
    @inlinable
    public var hasSpaceOrIsClosed: Bool {
        isClosed
            || tail.pointee.load(ordering: .relaxed) &- head.pointee.load(ordering: .acquiring) < capacity
    }

    /// Rings ``consumerDoorbell``: call after pushes made with `wakingConsumer: false`. Any thread.
    @inlinable
    public func wakeConsumer() {
        consumerDoorbell?.ring()
    }

    // MARK: Consumer

    /// Takes the oldest element without waiting. Consumer only.
    @inlinable
    public func tryPop() -> PopResult<Element> {
        enterRole(consumerBusy, "popped")
        defer { leaveRole(consumerBusy) }
        let index = head.pointee.load(ordering: .relaxed)
        if index == consumersTail.pointee.load(ordering: .relaxed) {
            if refreshTail() == index { return finishedState(at: index) ? .closed : .empty }
        }
        let element = (slots + (index & mask)).move()
        head.pointee.store(index &+ 1, ordering: .releasing)
        producerDoorbell?.ring()
        return .element(element)
    }

    /// Takes the oldest element, waiting on ``consumerDoorbell`` while the ring is empty. Consumer only.
    ///
    /// - Returns: ``PopResult/element(_:)`` or ``PopResult/closed``; never `empty`.
    /// - Precondition: the ring was created with a parking `consumerDoorbell`.
    @inlinable
    public func pop() -> PopResult<Element> {
        guard let doorbell = consumerDoorbell else {
            preconditionFailure("SPSCRing.pop() waits for elements and needs a consumerDoorbell; use tryPop()")
        }
        while true {
            let result = tryPop()
            if case .empty = result {
                doorbell.wait(until: { self.hasElementsOrIsClosed })
                continue
            }
            return result
        }
    }

    /// Hands up to `max` elements, oldest first, to `body`, and frees their slots in one step at the end.
    /// Consumer only; `body` must not use the ring's consumer side.
    ///
    /// If `body` throws, the element it was given counts as taken and the rest stay in the ring.
    /// - Returns: how many elements were taken; 0 when the ring was empty.
    @inlinable
    @discardableResult
    public func drain(max: Int = .max, _ body: (consuming Element) throws -> Void) rethrows -> Int {
        enterRole(consumerBusy, "popped")
        defer { leaveRole(consumerBusy) }
        let start = head.pointee.load(ordering: .relaxed)
        var available = consumersTail.pointee.load(ordering: .relaxed) &- start
        if available < max { available = refreshTail() &- start }
        let end = start &+ Swift.min(available, Swift.max(0, max))
        var index = start
        defer {
            if index != start {
                head.pointee.store(index, ordering: .releasing)
                producerDoorbell?.ring()
            }
        }
        while index != end {
            let element = (slots + (index & mask)).move()
            index &+= 1
            try body(element)
        }
        return end &- start
    }

    /// Appends up to `max` elements, oldest first, to `array`. Consumer only.
    /// - Returns: how many elements were appended.
    @inlinable
    @discardableResult
    public func popAll(into array: inout [Element], max: Int = .max) -> Int {
        drain(max: max) { array.append($0) }
    }

    /// Whether the ring is closed and every element it accepted has been taken. Consumer only.
    @inlinable
    public var isFinished: Bool {
        finishedState(at: head.pointee.load(ordering: .relaxed))
    }

    /// Whether a pop would not report empty right now. For a waiting consumer's condition.
    @inlinable
    public var hasElementsOrIsClosed: Bool {
        isClosed || tail.pointee.load(ordering: .acquiring) != head.pointee.load(ordering: .relaxed)
    }

    @inlinable
    func refreshTail() -> Int {
        let freshTail = tail.pointee.load(ordering: .acquiring)
        consumersTail.pointee.store(freshTail, ordering: .relaxed)
        return freshTail
    }

    @inlinable
    func finishedState(at headIndex: Int) -> Bool {
        // Closed first, then tail: pushes ordered before the close are visible in the tail we read.
        guard closedCell.pointee.load(ordering: .acquiring) != 0 else { return false }
        return refreshTail() == headIndex
    }

    // MARK: Any thread

    /// Stops the ring taking new elements and wakes both sides. Idempotent; any thread.
    public func close() {
        closedCell.pointee.store(1, ordering: .releasing)
        consumerDoorbell?.ring()
        producerDoorbell?.ring()
    }

    /// Whether ``close()`` has been called.
    @inlinable
    public var isClosed: Bool { closedCell.pointee.load(ordering: .acquiring) != 0 }

    /// How many elements are in the ring. Exact only when neither side is active; for metrics.
    public var count: Int {
        let headIndex = head.pointee.load(ordering: .acquiring)
        let tailIndex = tail.pointee.load(ordering: .acquiring)
        return Swift.min(capacity, Swift.max(0, tailIndex &- headIndex))
    }
}

// Safe: the shared state is Atomic cells and slots whose hand-over is ordered by them (release on publish,
// acquire on read); the one-producer/one-consumer rule is documented and checked in debug builds. Elements
// cross threads, so they must be Sendable themselves.
extension SPSCRing: @unchecked Sendable where Element: Sendable {}

/// Debug builds: traps when a second thread enters a role (producer or consumer) that is already active.
@inlinable
@inline(__always)
func enterRole(_ busy: UnsafeMutablePointer<Atomic<Int>>, _ verb: StaticString) {
    #if DEBUG
    let entered = busy.pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged
    precondition(entered, "two threads \(verb) at once on a single-producer/single-consumer ring")
    #endif
}

@inlinable
@inline(__always)
func leaveRole(_ busy: UnsafeMutablePointer<Atomic<Int>>) {
    #if DEBUG
    busy.pointee.store(0, ordering: .releasing)
    #endif
}
