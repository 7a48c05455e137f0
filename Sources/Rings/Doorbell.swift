import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wakes the consumer of one or more rings when there is something for it, without costing producers a
/// system call while the consumer is awake.
///
/// A doorbell has one of two strategies, chosen by who consumes:
///
/// - ``parking(spinCount:)`` for a consumer that is a thread of its own (the engine, the SQLite writer).
///   The consumer calls ``wait(until:)``: it checks its condition a few times, then parks on a semaphore
///   (a futex on Linux). A producer that calls ``ring()`` posts the semaphore only if the consumer is
///   parked.
/// - ``signalling(_:)`` for a consumer that is an event loop (the libuv thread). ``ring()`` calls the
///   supplied signal (for example one that calls `uv_async_send`) only if the consumer is not already
///   scheduled; the consumer calls ``willDrain()`` at the start of each wake-up, before it drains, so
///   that wake-ups coalesce and none is lost.
///
/// In both strategies ``ring()`` costs one full memory fence (one locked instruction on x86) and one load
/// when the consumer is awake or already scheduled; the system call or signal happens only on the
/// transition from idle to scheduled.
///
/// A ring given a doorbell rings it after every push (once per batch) and when it is closed, so a
/// consumer waiting with `wait(until: { ring.hasElementsOrIsClosed })` wakes up for both.
///
/// A parking doorbell serves one waiting thread at a time (debug builds trap on a second); a signalling
/// doorbell any number of producers.
public final class Doorbell: Sendable {
    @usableFromInline
    enum Strategy: Sendable {
        case parking(spinCount: Int, semaphore: DispatchSemaphore)
        case signalling(@Sendable () -> Void)
    }

    @usableFromInline
    let strategy: Strategy

    /// Parking: 1 while the consumer is parked or about to park; the producer that swaps it to 0 posts.
    /// Signalling: 1 while a wake-up is scheduled and the consumer has not yet started to drain.
    @usableFromInline
    let state = Atomic<Int>(0)

    /// Detects (in debug builds) a second thread waiting on a parking doorbell, which the protocol does not
    /// support.
    let waiters = Atomic<Int>(0)

    /// A doorbell for a consumer thread that spins `spinCount` checks of its condition, yields the processor
    /// a few times, then parks until a producer rings.
    ///
    /// Spinning pays off only when a producer is running on another core at that moment; on the daemon's
    /// 2-core machine the default spin is short so a waiting thread gives its core back quickly.
    public static func parking(spinCount: Int = 100) -> Doorbell {
        Doorbell(strategy: .parking(spinCount: Swift.max(0, spinCount), semaphore: DispatchSemaphore(value: 0)))
    }

    /// A doorbell for an event-loop consumer: `signal` is called (from the producer's thread) whenever the
    /// consumer needs to be scheduled. It must be safe to call from any thread and cheap to call twice
    /// (`uv_async_send` is both).
    public static func signalling(_ signal: @escaping @Sendable () -> Void) -> Doorbell {
        Doorbell(strategy: .signalling(signal))
    }

    init(strategy: Strategy) {
        self.strategy = strategy
    }

    /// Producer side: call after publishing elements (rings with this doorbell do it for you). Wakes the
    /// consumer if it is parked, or schedules it if it is an idle event loop.
    @inlinable
    public func ring() {
        // Pairs with the fence in `wait` / `willDrain`: either the consumer's next check of its condition sees
        // what the producer published, or the producer sees the consumer's state change and wakes it.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        switch strategy {
        case .parking(_, let semaphore):
            if state.load(ordering: .relaxed) == 1,
                state.exchange(0, ordering: .acquiringAndReleasing) == 1
            {
                semaphore.signal()
            }
        case .signalling(let signal):
            if state.load(ordering: .relaxed) == 0,
                state.exchange(1, ordering: .acquiringAndReleasing) == 0
            {
                signal()
            }
        }
    }

    /// Consumer side of a parking doorbell: returns once `isReady()` is true, spinning briefly first and then
    /// parking until a producer rings.
    ///
    /// `isReady` should be true when the ring has elements *or is closed* (``SPSCRing/hasElementsOrIsClosed``),
    /// so that closing a ring releases its waiter. Only one thread may wait on a doorbell at a time.
    public func wait(until isReady: () -> Bool) {
        guard case .parking(let spinCount, let semaphore) = strategy else {
            preconditionFailure("Doorbell.wait(until:) needs a parking doorbell; an event loop uses willDrain()")
        }
        #if DEBUG
        // Two locked instructions per wait: worth it only while testing.
        precondition(
            waiters.wrappingAdd(1, ordering: .relaxed).oldValue == 0,
            "two threads waited on one parking Doorbell at once; give each waiting thread its own doorbell")
        defer { waiters.wrappingSubtract(1, ordering: .relaxed) }
        #endif

        for _ in 0..<spinCount where isReady() { return }
        for _ in 0..<4 {
            if isReady() { return }
            sched_yield()
        }
        while true {
            state.store(1, ordering: .relaxed)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if isReady() {
                // Take our announcement back. If a producer already took it, it has posted (or is about to):
                // absorb that post so the semaphore count stays at zero for the next wait.
                if state.exchange(0, ordering: .acquiringAndReleasing) == 0 { semaphore.wait() }
                return
            }
            semaphore.wait()
            if isReady() { return }
        }
    }

    /// Consumer side of a signalling doorbell: call at the start of every wake-up callback, before draining,
    /// and then drain everything. A producer that publishes after this call schedules another wake-up.
    public func willDrain() {
        state.store(0, ordering: .relaxed)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }
}
