import Synchronization

/// A bounded, lock-free ring with any number of producers and one consumer at a time.
///
/// The daemon uses it as the libuv loop's inbox: the engine and the SQLite writer both push replies and
/// frames to send, and the loop, woken through a signalling ``Doorbell`` (`uv_async_send`), drains it.
/// Pushing into a full ring returns ``PushResult/full(_:)`` with the element.
///
/// ## Cost
/// No lock and no allocation per element. A producer claims a slot with one compare-and-swap on `tail`,
/// writes the element, then publishes it by storing the slot's sequence number; the consumer reads
/// sequence numbers, so a slow producer delays only the elements behind its own, never corrupts them.
/// Producers share a copy of `head` and re-read the consumer's only when that copy says the ring is full.
///
/// ## Roles
/// Any thread may push. At most one thread at a time may act as consumer (``tryPop()``, ``pop()``,
/// ``drain(max:_:)``, ``popAll(into:max:)``, ``isFinished``); debug builds trap on a second one.
///
/// ## Closing
/// ``close()`` (any thread) sets a bit in `tail` itself, so every push is ordered against it: a push that
/// returned ``PushResult/pushed`` was claimed before the close and is delivered before ``PopResult/closed``,
/// and every later push returns ``PushResult/closed(_:)``. The consumer's doorbell is rung so it wakes up.
/// There is no waiting push: producers of the daemon's inbox must not block on the loop.
///
/// ## Elements
/// Any type; slots are initialized on push, moved out on pop, and deinitialized with the ring.
public final class MPSCRing<Element> {
    /// How many elements the ring holds: the requested capacity rounded up to a power of two.
    public let capacity: Int

    @usableFromInline let mask: Int
    @usableFromInline let slots: UnsafeMutablePointer<Element>
    /// `sequences[i]` holds the index last published into slot `i` (-1 before the first).
    @usableFromInline let sequences: UnsafeMutablePointer<Atomic<Int>>

    /// `claimed << 1 | closedBit`, advanced by producers with compare-and-swap.
    @usableFromInline let tail: UnsafeMutablePointer<Atomic<Int>>
    /// The producers' shared copy of `head`; never ahead of it.
    @usableFromInline let producersHead: UnsafeMutablePointer<Atomic<Int>>
    /// Written by the consumer once per pop or drain.
    @usableFromInline let head: UnsafeMutablePointer<Atomic<Int>>
    @usableFromInline let consumerBusy: UnsafeMutablePointer<Atomic<Int>>
    let cells: AtomicCells
    let sequenceCells: AtomicCells

    /// Rung after every push (once per batch; not when the producer asks it not to be) and on close; the
    /// consumer waits on it or is signalled by it.
    public let consumerDoorbell: Doorbell?

    /// Creates a ring that holds at least `minimumCapacity` elements.
    ///
    /// - Parameters:
    ///   - minimumCapacity: rounded up to a power of two; 1 through ``RingError/maximumCapacity``.
    ///   - consumerDoorbell: rung when elements arrive or the ring closes. ``pop()`` needs a parking one;
    ///     an event-loop consumer passes a signalling one.
    /// - Throws: ``RingError`` when the capacity is out of range.
    public convenience init(minimumCapacity: Int, consumerDoorbell: Doorbell? = nil) throws(RingError) {
        try self.init(minimumCapacity: minimumCapacity, layout: .padded, consumerDoorbell: consumerDoorbell)
    }

    /// Creates a ring with the counters laid out as `layout` says; for benchmarks that measure padding.
    @_spi(Benchmarks)
    public init(minimumCapacity: Int, layout: RingLayout, consumerDoorbell: Doorbell? = nil) throws(RingError) {
        capacity = try ringCapacity(roundingUp: minimumCapacity)
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        cells = AtomicCells(groups: [2, 2], layout: layout)
        tail = cells.cell(0)
        producersHead = cells.cell(1)
        head = cells.cell(2)
        consumerBusy = cells.cell(3)
        sequenceCells = AtomicCells(groups: [capacity], layout: .unpadded, initialValue: -1)
        sequences = sequenceCells.cell(0)
        self.consumerDoorbell = consumerDoorbell
    }

    deinit {
        // No producer is inside the ring any more, so every claimed slot has been published.
        var index = head.pointee.load(ordering: .relaxed)
        let end = tail.pointee.load(ordering: .relaxed) >> 1
        while index != end {
            (slots + (index & mask)).deinitialize(count: 1)
            index &+= 1
        }
        slots.deallocate()
        cells.deallocate()
        sequenceCells.deallocate()
    }

    // MARK: Producers

    /// Claims `wanted` consecutive slots (fewer if fewer are free). Returns the first index and the count,
    /// 0 when full, or nil when closed.
    @inlinable
    func claim(_ wanted: Int) -> (first: Int, count: Int)? {
        var observed = tail.pointee.load(ordering: .relaxed)
        while true {
            if observed & 1 != 0 { return nil }
            let first = observed >> 1
            var free = capacity &- (first &- producersHead.pointee.load(ordering: .acquiring))
            if free < wanted {
                // Acquire: the consumer moved out of the slots we may now overwrite. Release: a producer that
                // trusts our copy inherits that ordering.
                let freshHead = head.pointee.load(ordering: .acquiring)
                producersHead.pointee.store(freshHead, ordering: .releasing)
                free = capacity &- (first &- freshHead)
            }
            let count = Swift.min(free, wanted)
            if count <= 0 { return (first, 0) }
            let (exchanged, original) = tail.pointee.weakCompareExchange(
                expected: observed, desired: observed &+ (count << 1), ordering: .relaxed)
            if exchanged { return (first, count) }
            observed = original
        }
    }

    /// Offers one element without waiting. Any thread.
    ///
    /// - Parameter wakingConsumer: whether to ring ``consumerDoorbell`` after the push (the default). A
    ///   producer that pushes several elements in a row may pass `false` and call ``wakeConsumer()`` once
    ///   after the last: ringing costs a full memory fence, which waits for the producer's earlier stores.
    /// - Returns: ``PushResult/pushed`` if the ring took it; otherwise the element comes back with the reason.
    @inlinable
    public func tryPush(_ element: consuming Element, wakingConsumer: Bool = true) -> PushResult<Element> {
        guard let (index, count) = claim(1) else { return .closed(element) }
        if count == 0 { return .full(element) }
        (slots + (index & mask)).initialize(to: element)
        sequences[index & mask].store(index, ordering: .releasing)
        if wakingConsumer { consumerDoorbell?.ring() }
        return .pushed
    }

    /// Moves as many elements as fit from the front of `elements` into the ring as one contiguous run (no
    /// other producer's elements in between). What did not fit stays in `elements`, in order. Any thread.
    ///
    /// - Returns: ``BatchPushResult/pushed(_:)`` with the number taken (0 when full), or
    ///   ``BatchPushResult/closed`` with `elements` untouched.
    @inlinable
    public func tryPush(contentsOf elements: inout [Element]) -> BatchPushResult {
        if elements.isEmpty { return isClosed ? .closed : .pushed(0) }
        guard let (first, count) = claim(elements.count) else { return .closed }
        if count == 0 { return .pushed(0) }
        elements.withUnsafeBufferPointer { source in
            for offset in 0..<count {
                let index = first &+ offset
                (slots + (index & mask)).initialize(to: source[offset])
                sequences[index & mask].store(index, ordering: .releasing)
            }
        }
        consumerDoorbell?.ring()
        elements.removeFirst(count)
        return .pushed(count)
    }

    /// Rings ``consumerDoorbell``: call after pushes made with `wakingConsumer: false`. Any thread.
    @inlinable
    public func wakeConsumer() {
        consumerDoorbell?.ring()
    }

    // MARK: Consumer

    /// Takes the oldest published element without waiting. Consumer only.
    ///
    /// Returns ``PopResult/empty`` also while the oldest slot is claimed but not yet published; its producer
    /// rings the doorbell when it is.
    @inlinable
    public func tryPop() -> PopResult<Element> {
        enterRole(consumerBusy, "popped")
        defer { leaveRole(consumerBusy) }
        let index = head.pointee.load(ordering: .relaxed)
        if sequences[index & mask].load(ordering: .acquiring) != index {
            return finishedState(at: index) ? .closed : .empty
        }
        let element = (slots + (index & mask)).move()
        head.pointee.store(index &+ 1, ordering: .releasing)
        return .element(element)
    }

    /// Takes the oldest element, waiting on ``consumerDoorbell`` while the ring is empty. Consumer only.
    ///
    /// - Returns: ``PopResult/element(_:)`` or ``PopResult/closed``; never `empty`.
    /// - Precondition: the ring was created with a parking `consumerDoorbell`.
    @inlinable
    public func pop() -> PopResult<Element> {
        guard let doorbell = consumerDoorbell else {
            preconditionFailure("MPSCRing.pop() waits for elements and needs a consumerDoorbell; use tryPop()")
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

    /// Hands up to `max` published elements, oldest first, to `body`, and frees their slots in one step at
    /// the end. Consumer only; `body` must not use the ring's consumer side.
    ///
    /// If `body` throws, the element it was given counts as taken and the rest stay in the ring.
    /// - Returns: how many elements were taken; 0 when none was published.
    @inlinable
    @discardableResult
    public func drain(max: Int = .max, _ body: (consuming Element) throws -> Void) rethrows -> Int {
        enterRole(consumerBusy, "popped")
        defer { leaveRole(consumerBusy) }
        let start = head.pointee.load(ordering: .relaxed)
        var index = start
        defer {
            if index != start { head.pointee.store(index, ordering: .releasing) }
        }
        while index &- start < max, sequences[index & mask].load(ordering: .acquiring) == index {
            let element = (slots + (index & mask)).move()
            index &+= 1
            try body(element)
        }
        return index &- start
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
    public var isFinished: Bool { finishedState(at: head.pointee.load(ordering: .relaxed)) }

    /// Whether a pop would not report empty right now, or the ring is closed. For a waiting consumer.
    @inlinable
    public var hasElementsOrIsClosed: Bool {
        let index = head.pointee.load(ordering: .relaxed)
        return isClosed || sequences[index & mask].load(ordering: .acquiring) == index
    }

    @inlinable
    func finishedState(at headIndex: Int) -> Bool {
        let observed = tail.pointee.load(ordering: .acquiring)
        return observed & 1 != 0 && observed >> 1 == headIndex
    }

    // MARK: Any thread

    /// Stops the ring taking new elements and wakes the consumer. Idempotent; any thread.
    public func close() {
        tail.pointee.bitwiseOr(1, ordering: .acquiringAndReleasing)
        consumerDoorbell?.ring()
    }

    /// Whether ``close()`` has been called.
    @inlinable
    public var isClosed: Bool { tail.pointee.load(ordering: .acquiring) & 1 != 0 }

    /// How many elements are claimed and not yet taken. Exact only when nobody is active; for metrics.
    public var count: Int {
        let headIndex = head.pointee.load(ordering: .acquiring)
        let claimed = tail.pointee.load(ordering: .acquiring) >> 1
        return Swift.min(capacity, Swift.max(0, claimed &- headIndex))
    }
}

// Safe: producers coordinate through compare-and-swap on `tail` and publish each slot with a release store
// of its sequence number, which the single consumer reads with acquire before moving the element out. The
// one-consumer rule is documented and checked in debug builds. Elements cross threads, so they must be
// Sendable themselves.
extension MPSCRing: @unchecked Sendable where Element: Sendable {}
