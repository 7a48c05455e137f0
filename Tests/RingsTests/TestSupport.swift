import Dispatch
import Rings
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread of our own (not a pool thread), so producers and consumers really run in parallel and may
/// spin or block without starving a shared executor.
struct TestThread: Sendable {
    let finished = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> Void) {
        final class Start {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }
        let finished = self.finished
        let start = Start {
            body()
            finished.signal()
        }
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let status = pthread_create(
            &thread, nil,
            { argument in
                Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue().body()
                return nil
            }, Unmanaged.passRetained(start).toOpaque())
        precondition(status == 0, "pthread_create failed with \(status)")
        #if canImport(Glibc)
        pthread_detach(thread)
        #else
        pthread_detach(thread!)
        #endif
    }

    /// Waits for the thread to finish; false if it did not within `seconds` (a hang becomes a failure).
    func join(seconds: Double = 60) -> Bool {
        finished.wait(timeout: .now() + seconds) == .success
    }
}

/// Counts instances of ``Tracked`` alive, so tests can prove the rings neither leak nor double-free.
final class LifeCounter: Sendable {
    let created = Atomic<Int>(0)
    let destroyed = Atomic<Int>(0)
    var alive: Int { created.load(ordering: .acquiring) - destroyed.load(ordering: .acquiring) }
}

final class Tracked: Sendable {
    let value: Int
    let counter: LifeCounter
    init(_ value: Int, _ counter: LifeCounter) {
        self.value = value
        self.counter = counter
        counter.created.wrappingAdd(1, ordering: .relaxed)
    }
    deinit { counter.destroyed.wrappingAdd(1, ordering: .relaxed) }
}

/// Shaped like the daemon's messages: an enum whose payloads hold arrays and class references.
enum Message: Sendable {
    case command(id: Int, arguments: [Tracked])
    case frame(id: Int, bytes: [UInt8], owner: Tracked)

    var id: Int {
        switch self {
        case .command(let id, _), .frame(let id, _, _): id
        }
    }
}

/// How many stress items to run: `RINGS_STRESS_SCALE` (a float, default 1) multiplies the defaults, so the
/// ThreadSanitizer run can use fewer and a soak run more.
let stressScale: Double = {
    guard let raw = getenv("RINGS_STRESS_SCALE"), let scale = Double(String(cString: raw)), scale > 0 else {
        return 1
    }
    return scale
}()

func scaled(_ count: Int) -> Int { Swift.max(1, Int(Double(count) * stressScale)) }

/// The operations the ring tests use, so that one test body covers both kinds of ring.
protocol TestRing<Element>: AnyObject {
    associatedtype Element
    var capacity: Int { get }
    func tryPush(_ element: consuming Element, wakingConsumer: Bool) -> PushResult<Element>
    func tryPush(contentsOf elements: inout [Element]) -> BatchPushResult
    func tryPop() -> PopResult<Element>
    func drain(max: Int, _ body: (consuming Element) throws -> Void) rethrows -> Int
    func popAll(into array: inout [Element], max: Int) -> Int
    func close()
    var isClosed: Bool { get }
    var isFinished: Bool { get }
    var count: Int { get }
}

extension TestRing {
    func tryPush(_ element: consuming Element) -> PushResult<Element> { tryPush(element, wakingConsumer: true) }
}

extension SPSCRing: TestRing {}
extension MPSCRing: TestRing {}

enum RingKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case spsc, mpsc
    var testDescription: String { rawValue }

    func make<Element: Sendable>(_: Element.Type, capacity: Int) throws -> any TestRing<Element> {
        switch self {
        case .spsc: try SPSCRing<Element>(minimumCapacity: capacity)
        case .mpsc: try MPSCRing<Element>(minimumCapacity: capacity)
        }
    }
}
