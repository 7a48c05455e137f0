// RingBench: hands integers from producer threads to a consumer thread through each candidate, side by side
// in one run, and reports the median throughput of several runs with ratios to the C11 reference ring and to
// a Mutex-protected Deque.
// Run: swift run -c release --package-path Benchmarks RingBench [runs] [millions of items] [name filter]
import BenchSupport
import CRingReference
import Dispatch
import DequeModule
@_spi(Benchmarks) import Rings
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let arguments = CommandLine.arguments
let runs = arguments.count > 1 ? Int(arguments[1]) ?? 5 : 5
let ringItems = (arguments.count > 2 ? Int(arguments[2]) ?? 20 : 20) * 1_000_000
// The hand-offs that allocate or lock per item are 10 to 100 times slower; fewer items keep the run short.
let slowItems = ringItems / 10
let capacity = 1024
let nameFilter = arguments.count > 3 ? arguments[3] : nil

/// One measured run: elapsed nanoseconds and the sum of the items the consumer received.
struct Run {
    var nanoseconds: UInt64
    var checksum: UInt64
}

/// Busy-waiting with the C reference's policy: give the core away after 1024 failed checks.
struct Backoff {
    var spins = 0
    @inline(__always)
    mutating func failed() {
        spins &+= 1
        if spins == 1024 {
            sched_yield()
            spins = 0
        }
    }
}

func expectedSum(_ items: Int) -> UInt64 { UInt64(items) * UInt64(items - 1) / 2 }

/// Items are 0..<items split round-robin over `producers`, so the consumer's sum is the same for every
/// candidate and proves that nothing was lost or duplicated.
func producerRange(_ producer: Int, of producers: Int, items: Int) -> StrideTo<Int> {
    stride(from: producer, to: items, by: producers)
}

// MARK: Candidates

func cReference(items: Int) -> Run {
    let result = cring_spsc_run(UInt64(items), UInt32(capacity))
    return Run(nanoseconds: result.nanoseconds, checksum: result.checksum)
}

func spsc(items: Int, layout: RingLayout, drain: Bool) -> Run {
    let ring = try! SPSCRing<Int>(minimumCapacity: capacity, layout: layout)
    let start = monotonicNanoseconds()
    let producer = BenchThread {
        var backoff = Backoff()
        for item in 0..<items {
            var pending = item
            while true {
                guard case .full(let back) = ring.tryPush(pending) else { break }
                pending = back
                backoff.failed()
            }
        }
    }
    var sum: UInt64 = 0
    var received = 0
    var backoff = Backoff()
    if drain {
        while received < items {
            let taken = ring.drain(max: .max) { sum &+= UInt64($0) }
            if taken == 0 { backoff.failed() }
            received &+= taken
        }
    } else {
        while received < items {
            if case .element(let item) = ring.tryPop() {
                sum &+= UInt64(item)
                received &+= 1
            } else {
                backoff.failed()
            }
        }
    }
    producer.join()
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sum)
}

/// Blocking push and pop through parking doorbells; the producer wakes the consumer after every push, or
/// after every `wakeEvery` pushes (and always before it blocks on a full ring).
func spscParking(items: Int, wakeEvery: Int) -> Run {
    let ring = try! SPSCRing<Int>(
        minimumCapacity: capacity, consumerDoorbell: .parking(), producerDoorbell: .parking())
    let start = monotonicNanoseconds()
    let producer = BenchThread {
        if wakeEvery == 1 {
            for item in 0..<items { _ = ring.push(item) }
        } else {
            for item in 0..<items {
                _ = ring.push(item, wakingConsumer: false)
                if item % wakeEvery == wakeEvery - 1 { ring.wakeConsumer() }
            }
        }
        ring.close()
    }
    var sum: UInt64 = 0
    while true {
        let taken = ring.drain(max: .max) { sum &+= UInt64($0) }
        if taken == 0 {
            if ring.isFinished { break }
            ring.consumerDoorbell!.wait(until: { ring.hasElementsOrIsClosed })
        }
    }
    producer.join()
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sum)
}

/// Producers push one item at a time (`batch == 1`) or `batch` items per `tryPush(contentsOf:)`.
func mpsc(items: Int, producers: Int, layout: RingLayout, batch: Int = 1) -> Run {
    let ring = try! MPSCRing<Int>(minimumCapacity: capacity, layout: layout)
    let start = monotonicNanoseconds()
    let threads = (0..<producers).map { producer in
        BenchThread {
            var backoff = Backoff()
            if batch == 1 {
                for item in producerRange(producer, of: producers, items: items) {
                    var pending = item
                    while true {
                        guard case .full(let back) = ring.tryPush(pending) else { break }
                        pending = back
                        backoff.failed()
                    }
                }
            } else {
                var pending: [Int] = []
                pending.reserveCapacity(batch)
                var range = producerRange(producer, of: producers, items: items).makeIterator()
                var more = true
                while more || !pending.isEmpty {
                    while more && pending.count < batch {
                        if let item = range.next() { pending.append(item) } else { more = false }
                    }
                    if case .pushed(0) = ring.tryPush(contentsOf: &pending) { backoff.failed() }
                }
            }
        }
    }
    var sum: UInt64 = 0
    var received = 0
    var backoff = Backoff()
    while received < items {
        let taken = ring.drain(max: .max) { sum &+= UInt64($0) }
        if taken == 0 { backoff.failed() }
        received &+= taken
    }
    for thread in threads { thread.join() }
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sum)
}

/// The fan-in alternative to an MPSC ring for a fixed set of producers: one SPSC ring per producer, one
/// consumer draining them all.
func spscFanIn(items: Int, producers: Int) -> Run {
    let rings = (0..<producers).map { _ in try! SPSCRing<Int>(minimumCapacity: capacity) }
    let start = monotonicNanoseconds()
    let threads = (0..<producers).map { producer in
        BenchThread {
            let ring = rings[producer]
            var backoff = Backoff()
            for item in producerRange(producer, of: producers, items: items) {
                var pending = item
                while true {
                    guard case .full(let back) = ring.tryPush(pending) else { break }
                    pending = back
                    backoff.failed()
                }
            }
        }
    }
    var sum: UInt64 = 0
    var received = 0
    var backoff = Backoff()
    while received < items {
        var taken = 0
        for ring in rings { taken &+= ring.drain(max: .max) { sum &+= UInt64($0) } }
        if taken == 0 { backoff.failed() }
        received &+= taken
    }
    for thread in threads { thread.join() }
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sum)
}

/// The obvious alternative: a bounded Deque behind a Mutex, one lock per item on each side.
final class LockedDeque: Sendable {
    let queue = Mutex(Deque<Int>(minimumCapacity: capacity))
}

func mutexDeque(items: Int) -> Run {
    let shared = LockedDeque()
    let start = monotonicNanoseconds()
    let producer = BenchThread {
        var backoff = Backoff()
        for item in 0..<items {
            while !shared.queue.withLock({ queue in
                guard queue.count < capacity else { return false }
                queue.append(item)
                return true
            }) { backoff.failed() }
        }
    }
    var sum: UInt64 = 0
    var received = 0
    var backoff = Backoff()
    while received < items {
        if let item = shared.queue.withLock({ $0.popFirst() }) {
            sum &+= UInt64(item)
            received &+= 1
        } else {
            backoff.failed()
        }
    }
    producer.join()
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sum)
}

/// A serial DispatchQueue as the consumer: one closure (one allocation) per item.
final class Sink: @unchecked Sendable {
    // Safe: only ever touched on the serial queue, and read after `queue.sync` has drained it.
    var sum: UInt64 = 0
}

func dispatchHandOff(items: Int) -> Run {
    let queue = DispatchQueue(label: "ringbench.consumer")
    let sink = Sink()
    let start = monotonicNanoseconds()
    let producer = BenchThread {
        for item in 0..<items { queue.async { sink.sum &+= UInt64(item) } }
    }
    producer.join()
    queue.sync {}
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sink.sum)
}

/// An AsyncStream from a producer thread to a consuming task. Its only bounded policies drop elements, so
/// it runs unbounded here: it has no backpressure, unlike every other candidate.
func asyncStream(items: Int) -> Run {
    let (stream, continuation) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .unbounded)
    let done = DispatchSemaphore(value: 0)
    let sink = Sink()
    let start = monotonicNanoseconds()
    Task.detached {
        var sum: UInt64 = 0
        for await item in stream { sum &+= UInt64(item) }
        sink.sum = sum
        done.signal()
    }
    let producer = BenchThread {
        for item in 0..<items { continuation.yield(item) }
        continuation.finish()
    }
    producer.join()
    done.wait()
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sink.sum)
}

// MARK: Measurement

struct Candidate {
    let name: String
    let items: Int
    let run: (Int) -> Run
}

let allCandidates: [Candidate] = [
    Candidate(name: "C11 SPSC reference", items: ringItems) { cReference(items: $0) },
    Candidate(name: "SPSCRing padded, tryPop") { spsc(items: $0, layout: .padded, drain: false) },
    Candidate(name: "SPSCRing unpadded, tryPop") { spsc(items: $0, layout: .unpadded, drain: false) },
    Candidate(name: "SPSCRing padded, drain") { spsc(items: $0, layout: .padded, drain: true) },
    Candidate(name: "SPSCRing unpadded, drain") { spsc(items: $0, layout: .unpadded, drain: true) },
    Candidate(name: "SPSCRing + parking doorbells, wake per item") { spscParking(items: $0, wakeEvery: 1) },
    Candidate(name: "SPSCRing + parking doorbells, wake per 64") { spscParking(items: $0, wakeEvery: 64) },
    Candidate(name: "MPSCRing padded, 1 producer") { mpsc(items: $0, producers: 1, layout: .padded) },
    Candidate(name: "MPSCRing unpadded, 1 producer") { mpsc(items: $0, producers: 1, layout: .unpadded) },
    Candidate(name: "MPSCRing padded, 1 producer, batches of 32") {
        mpsc(items: $0, producers: 1, layout: .padded, batch: 32)
    },
    Candidate(name: "MPSCRing padded, 2 producers") { mpsc(items: $0, producers: 2, layout: .padded) },
    Candidate(name: "MPSCRing padded, 2 producers, batches of 32") {
        mpsc(items: $0, producers: 2, layout: .padded, batch: 32)
    },
    Candidate(name: "2 SPSCRings fan-in, 2 producers") { spscFanIn(items: $0, producers: 2) },
    Candidate(name: "Mutex<Deque>", items: slowItems) { mutexDeque(items: $0) },
    Candidate(name: "DispatchQueue.async per item", items: slowItems) { dispatchHandOff(items: $0) },
    Candidate(name: "AsyncStream (unbounded)", items: slowItems) { asyncStream(items: $0) },
]

// The C reference and Mutex<Deque> always run: the ratios are relative to them.
let candidates = allCandidates.filter { candidate in
    guard let nameFilter else { return true }
    return candidate.name.contains(nameFilter) || candidate.name.hasPrefix("C11") || candidate.name == "Mutex<Deque>"
}

extension Candidate {
    init(name: String, _ run: @escaping (Int) -> Run) {
        self.init(name: name, items: ringItems, run: run)
    }
}

print("RingBench: \(runs) runs per candidate, capacity \(capacity), Int items; "
    + "\(ringItems) items per run for rings, \(slowItems) for the others")
// Interleave the candidates run by run, so a burst of load from elsewhere hits neighbours alike.
var samples: [String: [Double]] = [:]
for _ in 0..<runs {
    for candidate in candidates {
        let run = candidate.run(candidate.items)
        guard run.checksum == expectedSum(candidate.items), run.nanoseconds > 0 else {
            print("\(candidate.name): wrong checksum \(run.checksum), expected \(expectedSum(candidate.items))")
            exit(1)
        }
        samples[candidate.name, default: []].append(Double(run.nanoseconds) / Double(candidate.items))
    }
}

func format(_ value: Double, _ digits: Int) -> String {
    var text = String(Int((value * pow(10, Double(digits))).rounded()))
    if digits > 0 {
        while text.count <= digits { text = "0" + text }
        text.insert(".", at: text.index(text.endIndex, offsetBy: -digits))
    }
    return text
}

/// How many times faster `candidate` is than `baseline`: the ratio of their medians, and the median of the
/// ratios within each round (each round runs every candidate once, close together in time, so the second
/// is less affected by load from elsewhere that comes and goes).
@MainActor
func speedup(_ candidate: String, over baseline: String, digits: Int) -> String {
    let mine = samples[candidate]!
    let theirs = samples[baseline]!
    let ofMedians = median(theirs) / median(mine)
    let perRound = median(zip(theirs, mine).map { $0 / $1 })
    return format(ofMedians, digits) + "x (" + format(perRound, digits) + "x)"
}

let reference = "C11 SPSC reference"
let mutexDequeName = "Mutex<Deque>"
printTable(
    header: ["hand-off", "items/run", "ns/item (median)", "min–max ns/item", "M items/s",
             "vs C reference (per round)", "vs Mutex<Deque> (per round)"],
    rows: candidates.map { candidate in
        let sample = samples[candidate.name]!
        let nsPerItem = median(sample)
        return [
            candidate.name, "\(candidate.items)", format(nsPerItem, 2),
            format(sample.min()!, 1) + "–" + format(sample.max()!, 1), format(1e3 / nsPerItem, 1),
            speedup(candidate.name, over: reference, digits: 2),
            speedup(candidate.name, over: mutexDequeName, digits: 1),
        ]
    })
