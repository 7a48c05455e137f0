import Rings
import Synchronization
import Testing

@Suite("Capacity")
struct CapacityTests {
    @Test("requested capacities round up to a power of two", arguments: RingKind.allCases)
    func roundsUp(kind: RingKind) throws {
        let expected = [1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 7: 8, 8: 8, 9: 16, 1000: 1024, 1024: 1024, 1025: 2048]
        for (requested, capacity) in expected {
            #expect(try kind.make(Int.self, capacity: requested).capacity == capacity, "requested \(requested)")
        }
    }

    @Test("a capacity below 1 is a typed error that says what to do", arguments: [0, -1, Int.min])
    func tooSmall(requested: Int) {
        let spscError = #expect(throws: RingError.self) { try SPSCRing<Int>(minimumCapacity: requested) }
        let mpscError = #expect(throws: RingError.self) { try MPSCRing<Int>(minimumCapacity: requested) }
        #expect(spscError?.code == .capacityTooSmall && spscError?.requestedCapacity == requested)
        #expect(mpscError?.code == .capacityTooSmall)
        let message = spscError?.description ?? ""
        #expect(message.contains("\(requested)") && message.contains("configure"), "\(message)")
    }

    @Test("a capacity above the limit is a typed error", arguments: [RingError.maximumCapacity + 1, Int.max])
    func tooLarge(requested: Int) {
        let spscError = #expect(throws: RingError.self) { try SPSCRing<Int>(minimumCapacity: requested) }
        let mpscError = #expect(throws: RingError.self) { try MPSCRing<Int>(minimumCapacity: requested) }
        #expect(spscError?.code == .capacityTooLarge && mpscError?.code == .capacityTooLarge)
        #expect(spscError?.description.contains("\(RingError.maximumCapacity)") == true)
    }
}

@Suite("Wrap-around, single thread")
struct WrapAroundTests {
    static let requestedCapacities = [1, 2, 3, 4, 5, 8, 9]

    @Test("push to full, pop to empty, from every start slot", arguments: RingKind.allCases, requestedCapacities)
    func singleElements(kind: RingKind, requested: Int) throws {
        let capacity = try kind.make(Int.self, capacity: requested).capacity
        for start in 0...(2 * capacity) {
            for fill in 0...capacity {
                let ring = try kind.make(Int.self, capacity: requested)
                for step in 0..<start {
                    #expect(ring.tryPush(-step).wasPushed)
                    #expect(ring.tryPop().element == -step)
                }
                for value in 0..<fill {
                    #expect(ring.tryPush(value).wasPushed, "start \(start) fill \(fill) value \(value)")
                }
                #expect(ring.count == fill)
                if fill == capacity {
                    guard case .full(let back) = ring.tryPush(999) else {
                        Issue.record("a full ring took an element: start \(start) capacity \(capacity)")
                        continue
                    }
                    #expect(back == 999)
                }
                for value in 0..<fill {
                    #expect(ring.tryPop().element == value, "start \(start) fill \(fill)")
                }
                guard case .empty = ring.tryPop() else {
                    Issue.record("ring not empty after draining: start \(start) fill \(fill)")
                    continue
                }
            }
        }
    }

    @Test("batch push and batch pop, every batch size from every start slot",
          arguments: RingKind.allCases, requestedCapacities)
    func batches(kind: RingKind, requested: Int) throws {
        let capacity = try kind.make(Int.self, capacity: requested).capacity
        for start in 0...(2 * capacity) {
            for batch in 0...(capacity + 2) {
                for popMax in [1, 2, capacity, Int.max] {
                    let ring = try kind.make(Int.self, capacity: requested)
                    for step in 0..<start {
                        _ = ring.tryPush(step)
                        _ = ring.tryPop()
                    }
                    var elements = Array(0..<batch)
                    let result = ring.tryPush(contentsOf: &elements)
                    let taken = Swift.min(batch, capacity)
                    #expect(result == .pushed(taken), "start \(start) batch \(batch)")
                    #expect(elements == Array(taken..<batch), "what did not fit stays, in order")

                    var popped: [Int] = []
                    while ring.popAll(into: &popped, max: popMax) > 0 {}
                    #expect(popped == Array(0..<taken), "start \(start) batch \(batch) max \(popMax)")
                    #expect(ring.count == 0)
                }
            }
        }
    }

    @Test("drain with max takes at most max and leaves the rest in order", arguments: RingKind.allCases)
    func drainMax(kind: RingKind) throws {
        let ring = try kind.make(Int.self, capacity: 8)
        for value in 0..<8 { #expect(ring.tryPush(value).wasPushed) }
        var seen: [Int] = []
        #expect(ring.drain(max: 3) { seen.append($0) } == 3)
        #expect(ring.drain(max: 0) { seen.append($0) } == 0)
        #expect(seen == [0, 1, 2])
        #expect(ring.drain(max: .max) { seen.append($0) } == 5)
        #expect(seen == Array(0..<8))
        #expect(ring.drain(max: .max) { seen.append($0) } == 0)
    }
}

@Suite("Closing, single thread")
struct CloseTests {
    @Test("after close, pushes hand the element back; what was accepted drains, then closed",
          arguments: RingKind.allCases)
    func closeDrainsThenEnds(kind: RingKind) throws {
        let ring = try kind.make(Int.self, capacity: 4)
        #expect(ring.tryPush(1).wasPushed)
        #expect(ring.tryPush(2).wasPushed)
        #expect(!ring.isClosed)
        ring.close()
        ring.close()  // idempotent
        #expect(ring.isClosed)
        guard case .closed(let back) = ring.tryPush(3) else {
            Issue.record("a closed ring took an element")
            return
        }
        #expect(back == 3)
        var batch = [4, 5]
        #expect(ring.tryPush(contentsOf: &batch) == .closed)
        #expect(batch == [4, 5])
        #expect(!ring.isFinished)
        #expect(ring.tryPop().element == 1)
        #expect(ring.tryPop().element == 2)
        guard case .closed = ring.tryPop() else {
            Issue.record("a closed, drained ring did not report closed")
            return
        }
        #expect(ring.isFinished)
    }

    @Test("an empty batch reports closed on a closed ring and pushed(0) on an open one",
          arguments: RingKind.allCases)
    func emptyBatch(kind: RingKind) throws {
        let ring = try kind.make(Int.self, capacity: 2)
        var nothing: [Int] = []
        #expect(ring.tryPush(contentsOf: &nothing) == .pushed(0))
        ring.close()
        #expect(ring.tryPush(contentsOf: &nothing) == .closed)
    }

    @Test("a full ring reports full for a batch and takes nothing", arguments: RingKind.allCases)
    func fullBatch(kind: RingKind) throws {
        let ring = try kind.make(Int.self, capacity: 2)
        var batch = [1, 2, 3]
        #expect(ring.tryPush(contentsOf: &batch) == .pushed(2))
        #expect(ring.tryPush(contentsOf: &batch) == .pushed(0))
        #expect(batch == [3])
    }
}

@Suite("Non-trivial elements")
struct LifetimeTests {
    func message(_ id: Int, _ counter: LifeCounter) -> Message {
        id.isMultiple(of: 2)
            ? .command(id: id, arguments: [Tracked(id, counter), Tracked(-id, counter)])
            : .frame(
                id: id, bytes: Array(repeating: UInt8(truncatingIfNeeded: id), count: id % 7),
                owner: Tracked(id, counter))
    }

    @Test("elements pass through intact and each is destroyed exactly once", arguments: RingKind.allCases)
    func passThrough(kind: RingKind) throws {
        let counter = LifeCounter()
        do {
            let ring = try kind.make(Message.self, capacity: 3)
            for round in 0..<10 {
                for id in 0..<3 { #expect(ring.tryPush(message(round * 3 + id, counter)).wasPushed) }
                for id in 0..<3 {
                    let popped = try #require(ring.tryPop().element)
                    #expect(popped.id == round * 3 + id)
                    if case .command(let poppedID, let arguments) = popped {
                        #expect(arguments.map(\.value) == [poppedID, -poppedID])
                    }
                }
            }
            #expect(counter.alive == 0, "popped elements were released by the caller")
        }
        #expect(counter.created.load(ordering: .relaxed) == 45, "15 commands with 2 each, 15 frames with 1")
    }

    @Test("a ring destroys what is still in it, including after wrapping", arguments: RingKind.allCases)
    func ringReleasesLeftovers(kind: RingKind) throws {
        let counter = LifeCounter()
        do {
            let ring = try kind.make(Message.self, capacity: 4)
            for id in 0..<6 { _ = ring.tryPush(message(id, counter)) }  // 2 come back full and are dropped
            for _ in 0..<3 { _ = ring.tryPop() }
            for id in 6..<9 { #expect(ring.tryPush(message(id, counter)).wasPushed) }
            #expect(ring.count == 4)
            ring.close()
            #expect(counter.alive > 0)
        }
        #expect(counter.alive == 0, "created \(counter.created.load(ordering: .relaxed))")
    }

    @Test("full and closed hand back the very same element", arguments: RingKind.allCases)
    func handBackIdentity(kind: RingKind) throws {
        let counter = LifeCounter()
        let ring = try kind.make(Tracked.self, capacity: 1)
        #expect(ring.tryPush(Tracked(1, counter)).wasPushed)
        let second = Tracked(2, counter)
        guard case .full(let back) = ring.tryPush(second) else {
            Issue.record("capacity-1 ring took two elements")
            return
        }
        #expect(back === second)
        ring.close()
        guard case .closed(let closedBack) = ring.tryPush(second) else {
            Issue.record("closed ring took an element")
            return
        }
        #expect(closedBack === second)
    }

    @Test("batch push copies the pushed elements and leaves the rest", arguments: RingKind.allCases)
    func batchLifetime(kind: RingKind) throws {
        let counter = LifeCounter()
        do {
            let ring = try kind.make(Tracked.self, capacity: 2)
            var batch = (0..<5).map { Tracked($0, counter) }
            #expect(ring.tryPush(contentsOf: &batch) == .pushed(2))
            #expect(batch.map(\.value) == [2, 3, 4])
            batch.removeAll()
            #expect(counter.alive == 2, "only the two in the ring are alive")
        }
        #expect(counter.alive == 0)
    }

    struct Stop: Error {}

    @Test("a throwing drain counts the element it handed over as taken", arguments: RingKind.allCases)
    func throwingDrain(kind: RingKind) throws {
        let counter = LifeCounter()
        let ring = try kind.make(Tracked.self, capacity: 8)
        for value in 0..<5 { _ = ring.tryPush(Tracked(value, counter)) }
        var seen: [Int] = []
        #expect(throws: Stop.self) {
            try ring.drain(max: .max) { element in
                seen.append(element.value)
                if element.value == 2 { throw Stop() }
            }
        }
        #expect(seen == [0, 1, 2])
        #expect(counter.alive == 2)
        #expect(ring.tryPop().element?.value == 3)
    }
}
