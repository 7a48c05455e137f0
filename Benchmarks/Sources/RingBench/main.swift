// RingBench: hands integers from producer threads to a consumer thread through each candidate, side by side
// in one run, and reports the median throughput of several runs with ratios to the C11 reference ring and to
// a Mutex-protected Deque. Run: swift run -c release --package-path Benchmarks RingBench [runs] [millions]
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

/// One measured run: elapsed nanoseconds and the sum of the items the consumer received.
struct Run {
    var nanoseconds: UInt64
    var checksum: UInt64
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
        for item in 0..<items {
            var pending = item
            while true {
                guard case .full(let back) = ring.tryPush(pending) else { break }
                pending = back
            }
        }
    }
    var sum: UInt64 = 0
    var received = 0
    if drain {
        while received < items {
            received &+= ring.drain(max: .max) { sum &+= UInt64($0) }
        }
    } else {
        while received < items {
            if case .element(let item) = ring.tryPop() {
                sum &+= UInt64(item)
                received &+= 1
            }
        }
    }
    producer.join()
    return Run(nanoseconds: monotonicNanoseconds() - start, checksum: sum)
}

func spscParking(items: Int) -> Run {
    let ring = try! SPSCRing<Int>(
        minimumCapacity: capacity, consumerDoorbell: .parking(), producerDoorbell: .parking())
    let start = monotonicNanoseconds()
    let producer = BenchThread {
        for item in 0..<items { _ = ring.push(item) }
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

func mpsc(items: Int, producers: Int, layout: RingLayout) -> Run {
    let ring = try! MPSCRing<Int>(minimumCapacity: capacity, layout: layout)
    let start = monotonicNanoseconds()
    let threads = (0..<producers).map { producer in
        BenchThread {
            for item in producerRange(producer, of: producers, items: items) {
                var pending = item
                while true {
                    guard case .full(let back) = ring.tryPush(pending) else { break }
                    pending = back
                }
            }
        }
    }
    var sum: UInt64 = 0
    var received = 0
    while received < items {
        received &+= ring.drain(max: .max) { sum &+= UInt64($0) }
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
        for item in 0..<items {
            while !shared.queue.withLock({ queue in
                guard queue.count < capacity else { return false }
                queue.append(item)
                return true
            }) {}
        }
    }
    var sum: UInt64 = 0
    var received = 0
    while received < items {
        if let item = shared.queue.withLock({ $0.popFirst() }) {
            sum &+= UInt64(item)
            received &+= 1
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

let candidates: [Candidate] = [
    Candidate(name: "C11 SPSC reference", items: ringItems) { cReference(items: $0) },
    Candidate(name: "SPSCRing padded, tryPop") { spsc(items: $0, layout: .padded, drain: false) },
    Candidate(name: "SPSCRing unpadded, tryPop") { spsc(items: $0, layout: .unpadded, drain: false) },
    Candidate(name: "SPSCRing padded, drain") { spsc(items: $0, layout: .padded, drain: true) },
    Candidate(name: "SPSCRing unpadded, drain") { spsc(items: $0, layout: .unpadded, drain: true) },
    Candidate(name: "SPSCRing + parking doorbells") { spscParking(items: $0) },
    Candidate(name: "MPSCRing padded, 1 producer") { mpsc(items: $0, producers: 1, layout: .padded) },
    Candidate(name: "MPSCRing unpadded, 1 producer") { mpsc(items: $0, producers: 1, layout: .unpadded) },
    Candidate(name: "MPSCRing padded, 2 producers") { mpsc(items: $0, producers: 2, layout: .padded) },
    Candidate(name: "Mutex<Deque>", items: slowItems) { mutexDeque(items: $0) },
    Candidate(name: "DispatchQueue.async per item", items: slowItems) { dispatchHandOff(items: $0) },
    Candidate(name: "AsyncStream (unbounded)", items: slowItems) { asyncStream(items: $0) },
]

extension Candidate {
    init(name: String, _ run: @escaping (Int) -> Run) {
        self.init(name: name, items: ringItems, run: run)
    }
}

print("RingBench: \(runs) runs per candidate, capacity \(capacity), Int items, medians; "
    + "\(ringItems) items per run for rings, \(slowItems) for the others")
var medianRate: [String: Double] = [:]
var rows: [(name: String, items: Int, nsPerItem: Double, rate: Double)] = []
// Interleave the candidates run by run, so a burst of load from elsewhere hits all of them alike.
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
for candidate in candidates {
    let nsPerItem = median(samples[candidate.name]!)
    rows.append((candidate.name, candidate.items, nsPerItem, 1e9 / nsPerItem))
    medianRate[candidate.name] = 1e9 / nsPerItem
}
let reference = medianRate["C11 SPSC reference"]!
let mutexRate = medianRate["Mutex<Deque>"]!
func format(_ value: Double, _ digits: Int) -> String {
    var text = String(Int((value * pow(10, Double(digits))).rounded()))
    if digits > 0 {
        while text.count <= digits { text = "0" + text }
        text.insert(".", at: text.index(text.endIndex, offsetBy: -digits))
    }
    return text
}
printTable(
    header: ["hand-off", "items/run", "ns/item", "M items/s", "vs C reference", "vs Mutex<Deque>"],
    rows: rows.map { row in
        [row.name, "\(row.items)", format(row.nsPerItem, 2), format(row.rate / 1e6, 1),
         format(row.rate / reference, 2) + "x", format(row.rate / mutexRate, 1) + "x"]
    })
