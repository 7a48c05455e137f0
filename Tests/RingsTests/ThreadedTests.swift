import TestSupport
import Dispatch
import Rings
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a consumer saw, per producer: the next expected sequence number and the first few surprises.
struct OrderCheck {
    var next: [Int]
    var problems: [String] = []
    var received = 0

    init(producers: Int) { next = Array(repeating: 0, count: producers) }

    /// Items are `producer << 32 | sequence`; each producer's sequence must arrive as 0, 1, 2, ...
    mutating func record(_ item: Int) {
        received += 1
        let producer = item >> 32
        let sequence = item & 0xFFFF_FFFF
        guard producer >= 0, producer < next.count else {
            if problems.count < 5 { problems.append("item \(item) names no producer") }
            return
        }
        if sequence != next[producer], problems.count < 5 {
            problems.append("producer \(producer): got \(sequence), expected \(next[producer])")
        }
        next[producer] = sequence + 1
    }
}

/// Everything that starts threads runs one test at a time: the machine has 2 cores and spinning
/// threads of two tests at once would only measure the scheduler.
@Suite("Threads", .serialized)
struct ThreadedTests {
    // MARK: Stress: order, loss, duplicates

    @Test("SPSC: one producer, items arrive in order, none lost or duplicated",
          arguments: [1, 2, 3, 64, 4096])
    func spscStress(requested: Int) throws {
        let items = scaled(requested <= 3 ? 200_000 : 1_000_000)
        let ring = try SPSCRing<Int>(minimumCapacity: requested)
        let producer = TestThread {
            var next = 0
            while next < items {
                if ring.tryPush(next).wasPushed { next += 1 } else { sched_yield() }
            }
            ring.close()
        }
        var check = OrderCheck(producers: 1)
        consume: while true {
            switch ring.tryPop() {
            case .element(let item): check.record(item)
            case .empty: sched_yield()
            case .closed: break consume
            }
        }
        #expect(producer.join())
        #expect(check.problems.isEmpty, "capacity \(requested): \(check.problems)")
        #expect(check.received == items && check.next == [items], "capacity \(requested)")
    }

    @Test("SPSC: random batch sizes on both sides (seeded)", arguments: [1, 3, 16, 1024])
    func spscBatches(requested: Int) throws {
        let seed = UInt64(0x5EED_0000 + requested)
        let items = scaled(requested <= 3 ? 200_000 : 1_000_000)
        let ring = try SPSCRing<Int>(minimumCapacity: requested)
        let capacity = ring.capacity
        let producer = TestThread {
            var random = SplitMix64(seed: seed)
            var next = 0
            var batch: [Int] = []
            while next < items || !batch.isEmpty {
                if batch.isEmpty {
                    let size = Swift.min(items - next, Int.random(in: 1...(2 * capacity + 3), using: &random))
                    batch = Array(next..<(next + size))
                    next += size
                }
                if case .pushed(0) = ring.tryPush(contentsOf: &batch) { sched_yield() }
            }
            ring.close()
        }
        var random = SplitMix64(seed: seed ^ 0xC0FFEE)
        var check = OrderCheck(producers: 1)
        while !ring.isFinished {
            let taken: Int
            if Bool.random(using: &random) {
                taken = ring.drain(max: Int.random(in: 1...(capacity + 1), using: &random)) { check.record($0) }
            } else {
                var popped: [Int] = []
                taken = ring.popAll(into: &popped, max: .max)
                for item in popped { check.record(item) }
            }
            if taken == 0 { sched_yield() }
        }
        #expect(producer.join())
        #expect(check.problems.isEmpty, "seed \(seed), capacity \(requested): \(check.problems)")
        #expect(check.received == items, "seed \(seed), capacity \(requested)")
    }

    @Test("MPSC: four producers, per-producer order, none lost or duplicated",
          arguments: [1, 2, 3, 64, 4096])
    func mpscStress(requested: Int) throws {
        let producers = 4
        let perProducer = scaled(requested <= 3 ? 50_000 : 250_000)
        let ring = try MPSCRing<Int>(minimumCapacity: requested)
        let threads = (0..<producers).map { producer in
            TestThread {
                var sequence = 0
                while sequence < perProducer {
                    if ring.tryPush(producer << 32 | sequence).wasPushed { sequence += 1 } else { sched_yield() }
                }
            }
        }
        let closer = TestThread {
            for thread in threads { _ = thread.join() }
            ring.close()
        }
        var check = OrderCheck(producers: producers)
        consume: while true {
            switch ring.tryPop() {
            case .element(let item): check.record(item)
            case .empty: sched_yield()
            case .closed: break consume
            }
        }
        #expect(closer.join())
        #expect(check.problems.isEmpty, "capacity \(requested): \(check.problems)")
        #expect(check.next == Array(repeating: perProducer, count: producers), "capacity \(requested)")
        #expect(check.received == producers * perProducer)
    }

    @Test("MPSC: batches of non-trivial messages from three producers arrive intact (seeded)",
          arguments: [1, 3, 256])
    func mpscMessageBatches(requested: Int) throws {
        let seed = UInt64(0xBA7C_0000 + requested)
        let producers = 3
        let perProducer = scaled(requested <= 3 ? 30_000 : 100_000)
        let counter = LifeCounter()
        do {
            let ring = try MPSCRing<Message>(minimumCapacity: requested)
            let capacity = ring.capacity
            let threads = (0..<producers).map { producer in
                TestThread {
                    var random = SplitMix64(seed: seed &+ UInt64(producer))
                    var sequence = 0
                    var batch: [Message] = []
                    while sequence < perProducer || !batch.isEmpty {
                        if batch.isEmpty {
                            let size = Swift.min(
                                perProducer - sequence, Int.random(in: 1...(capacity + 2), using: &random))
                            batch = (sequence..<(sequence + size)).map { sequence in
                                let id = producer << 32 | sequence
                                return .frame(
                                    id: id, bytes: [UInt8(truncatingIfNeeded: sequence), UInt8(producer)],
                                    owner: Tracked(id, counter))
                            }
                            sequence += size
                        }
                        if case .pushed(0) = ring.tryPush(contentsOf: &batch) { sched_yield() }
                    }
                }
            }
            let closer = TestThread {
                for thread in threads { _ = thread.join() }
                ring.close()
            }
            var check = OrderCheck(producers: producers)
            var corrupt = 0
            while !ring.isFinished {
                let taken = ring.drain(max: .max) { message in
                    check.record(message.id)
                    guard case .frame(let id, let bytes, let owner) = message,
                        owner.value == id, bytes == [UInt8(truncatingIfNeeded: id & 0xFFFF_FFFF), UInt8(id >> 32)]
                    else {
                        corrupt += 1
                        return
                    }
                }
                if taken == 0 { sched_yield() }
            }
            #expect(closer.join())
            #expect(corrupt == 0, "seed \(seed)")
            #expect(check.problems.isEmpty, "seed \(seed), capacity \(requested): \(check.problems)")
            #expect(check.received == producers * perProducer, "seed \(seed)")
        }
        #expect(counter.alive == 0, "every message was released exactly once")
    }

    // MARK: Parking doorbell

    @Test("a parked consumer wakes when an element arrives", arguments: RingKind.allCases)
    func parkedConsumerWakes(kind: RingKind) throws {
        let doorbell = Doorbell.parking(spinCount: 10)
        let received = Atomic<Int>(-1)
        let pop: @Sendable () -> PopResult<Int>
        let push: @Sendable (Int) -> Bool
        switch kind {
        case .spsc:
            let ring = try SPSCRing<Int>(minimumCapacity: 2, consumerDoorbell: doorbell)
            pop = { ring.pop() }
            push = { ring.tryPush($0).wasPushed }
        case .mpsc:
            let ring = try MPSCRing<Int>(minimumCapacity: 2, consumerDoorbell: doorbell)
            pop = { ring.pop() }
            push = { ring.tryPush($0).wasPushed }
        }
        let consumer = TestThread {
            if case .element(let value) = pop() { received.store(value, ordering: .releasing) }
        }
        #expect(!consumer.join(seconds: 0.1), "pop() returned from an empty, open ring")
        #expect(push(42))
        #expect(consumer.join(seconds: 10), "the push did not wake the parked consumer")
        let value = received.load(ordering: .acquiring)
        #expect(value == 42)
    }

    @Test("closing wakes a parked consumer, which sees closed", arguments: RingKind.allCases)
    func closeWakesConsumer(kind: RingKind) throws {
        let doorbell = Doorbell.parking(spinCount: 10)
        let sawClosed = Atomic<Bool>(false)
        let pop: @Sendable () -> PopResult<Int>
        let close: @Sendable () -> Void
        switch kind {
        case .spsc:
            let ring = try SPSCRing<Int>(minimumCapacity: 1, consumerDoorbell: doorbell)
            (pop, close) = ({ ring.pop() }, { ring.close() })
        case .mpsc:
            let ring = try MPSCRing<Int>(minimumCapacity: 1, consumerDoorbell: doorbell)
            (pop, close) = ({ ring.pop() }, { ring.close() })
        }
        let consumer = TestThread {
            if case .closed = pop() { sawClosed.store(true, ordering: .releasing) }
        }
        #expect(!consumer.join(seconds: 0.1))
        close()
        #expect(consumer.join(seconds: 10), "close did not wake the parked consumer")
        let closed = sawClosed.load(ordering: .acquiring)
        #expect(closed)
    }

    @Test("closing wakes a producer blocked on a full ring and hands its element back")
    func closeWakesProducer() throws {
        let ring = try SPSCRing<Int>(minimumCapacity: 1, producerDoorbell: .parking(spinCount: 10))
        #expect(ring.push(1).wasPushed)
        let handedBack = Atomic<Int>(-1)
        let producer = TestThread {
            if case .closed(let value) = ring.push(2) { handedBack.store(value, ordering: .releasing) }
        }
        #expect(!producer.join(seconds: 0.1), "push(_:) returned while the ring was full")
        ring.close()
        #expect(producer.join(seconds: 10), "close did not wake the blocked producer")
        let back = handedBack.load(ordering: .acquiring)
        #expect(back == 2)
        #expect(ring.tryPop().element == 1, "what was accepted before the close is still delivered")
    }

    @Test("blocking push and pop on both sides: order kept, nobody stuck",
          arguments: [1, 3, 64], [true, false])
    func parkingBothSides(requested: Int, wakingEveryPush: Bool) throws {
        let items = scaled(requested <= 3 ? 40_000 : 200_000)
        let ring = try SPSCRing<Int>(
            minimumCapacity: requested, consumerDoorbell: .parking(), producerDoorbell: .parking())
        // Without a wake per push the consumer is woken only when push(_:) finds the ring full and by the
        // close: this proves push(_:) wakes the consumer before it blocks.
        let producer = TestThread {
            for item in 0..<items where !ring.push(item, wakingConsumer: wakingEveryPush).wasPushed { return }
            ring.close()
        }
        var check = OrderCheck(producers: 1)
        while case .element(let item) = ring.pop() { check.record(item) }
        #expect(producer.join(seconds: 30))
        #expect(check.problems.isEmpty, "capacity \(requested): \(check.problems)")
        #expect(check.received == items)
    }

    // MARK: Signalling doorbell (the libuv loop's inbox)

    @Test("signals coalesce: one per transition from idle to scheduled")
    func signalsCoalesce() throws {
        let signals = Atomic<Int>(0)
        let doorbell = Doorbell.signalling { signals.wrappingAdd(1, ordering: .relaxed) }
        let ring = try MPSCRing<Int>(minimumCapacity: 64, consumerDoorbell: doorbell)
        func signalCount() -> Int { signals.load(ordering: .relaxed) }
        for item in 0..<10 { #expect(ring.tryPush(item).wasPushed) }
        #expect(signalCount() == 1, "ten pushes to an idle consumer: one signal")

        doorbell.willDrain()
        #expect(ring.drain(max: .max) { _ in } == 10)
        #expect(signalCount() == 1, "draining signals nothing")
        var batch = [1, 2, 3]
        #expect(ring.tryPush(contentsOf: &batch) == .pushed(3))
        #expect(ring.tryPush(4).wasPushed)
        #expect(signalCount() == 2, "after willDrain the next push signals once more")

        doorbell.willDrain()
        ring.close()
        #expect(signalCount() == 3, "close schedules an idle consumer so it sees closed")
    }

    @Test("quiet pushes signal nothing until wakeConsumer()", arguments: RingKind.allCases)
    func quietPushes(kind: RingKind) throws {
        let signals = Atomic<Int>(0)
        let doorbell = Doorbell.signalling { signals.wrappingAdd(1, ordering: .relaxed) }
        let push: (Int) -> Bool
        let wake: () -> Void
        switch kind {
        case .spsc:
            let ring = try SPSCRing<Int>(minimumCapacity: 8, consumerDoorbell: doorbell)
            push = { ring.tryPush($0, wakingConsumer: false).wasPushed }
            wake = { ring.wakeConsumer() }
        case .mpsc:
            let ring = try MPSCRing<Int>(minimumCapacity: 8, consumerDoorbell: doorbell)
            push = { ring.tryPush($0, wakingConsumer: false).wasPushed }
            wake = { ring.wakeConsumer() }
        }
        for item in 0..<5 { #expect(push(item)) }
        let beforeWake = signals.load(ordering: .relaxed)
        #expect(beforeWake == 0)
        wake()
        let afterWake = signals.load(ordering: .relaxed)
        #expect(afterWake == 1)
    }

    @Test("fan-in: two SPSC rings share one signalling doorbell and one consumer")
    func fanInSharedDoorbell() throws {
        let producers = 2
        let perProducer = scaled(100_000)
        let wakeups = DispatchSemaphore(value: 0)
        let doorbell = Doorbell.signalling { wakeups.signal() }
        let rings = try (0..<producers).map { _ in
            try SPSCRing<Int>(minimumCapacity: 16, consumerDoorbell: doorbell)
        }
        let threads = (0..<producers).map { producer in
            TestThread {
                var sequence = 0
                while sequence < perProducer {
                    if rings[producer].tryPush(producer << 32 | sequence).wasPushed {
                        sequence += 1
                    } else {
                        sched_yield()
                    }
                }
                rings[producer].close()
            }
        }
        var check = OrderCheck(producers: producers)
        var lostWakeup = false
        while !rings.allSatisfy(\.isFinished) {
            guard wakeups.wait(timeout: .now() + 10) == .success else {
                lostWakeup = true
                break
            }
            doorbell.willDrain()
            for ring in rings { ring.drain(max: .max) { check.record($0) } }
        }
        #expect(!lostWakeup, "no signal for 10 s with \(check.received) items received")
        for thread in threads { #expect(thread.join()) }
        #expect(check.problems.isEmpty, "\(check.problems)")
        #expect(check.next == Array(repeating: perProducer, count: producers))
    }

    @Test("no lost wake-ups: an event-loop consumer woken only by signals gets every item",
          arguments: [1, 4, 1024])
    func signallingStress(requested: Int) throws {
        let producers = 2
        let perProducer = scaled(requested <= 4 ? 50_000 : 300_000)
        let wakeups = DispatchSemaphore(value: 0)
        let signals = Atomic<Int>(0)
        let doorbell = Doorbell.signalling {
            signals.wrappingAdd(1, ordering: .relaxed)
            wakeups.signal()
        }
        let ring = try MPSCRing<Int>(minimumCapacity: requested, consumerDoorbell: doorbell)
        let threads = (0..<producers).map { producer in
            TestThread {
                var sequence = 0
                while sequence < perProducer {
                    if ring.tryPush(producer << 32 | sequence).wasPushed { sequence += 1 } else { sched_yield() }
                }
            }
        }
        let closer = TestThread {
            for thread in threads { _ = thread.join() }
            ring.close()
        }
        // Like a libuv async callback: wait for a wake-up, clear the flag, drain everything.
        var check = OrderCheck(producers: producers)
        var lostWakeup = false
        while !ring.isFinished {
            guard wakeups.wait(timeout: .now() + 10) == .success else {
                lostWakeup = true
                break
            }
            doorbell.willDrain()
            ring.drain(max: .max) { check.record($0) }
        }
        #expect(!lostWakeup, "capacity \(requested): no signal for 10 s with \(check.received) items received")
        #expect(closer.join())
        #expect(check.problems.isEmpty, "\(check.problems)")
        #expect(check.received == producers * perProducer)
        let signalCount = signals.load(ordering: .relaxed)
        #expect(signalCount <= producers * perProducer + 1, "at most one signal per push, plus the close")
    }
}
