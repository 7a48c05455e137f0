internal import CLibUV
import Synchronization

/// Base of every object that owns one libuv handle on an ``EventLoop``.
///
/// The handle memory is allocated on the heap and freed only in its close callback. While the handle
/// is open it holds a strong reference to this object (through `uv_handle_set_data`), so dropping
/// your last reference does not close it: call ``close()``, or let ``EventLoop/stop()`` close it.
public class LoopHandle {
    /// The loop this handle belongs to; every member must be used on its thread.
    public let loop: EventLoop
    let handle: UnsafeMutablePointer<uv_handle_t>
    /// `true` once ``close()`` was called (the handle may still be waiting for its close callback).
    public private(set) var isClosed = false

    /// Allocates the handle and runs its `uv_*_init`; on failure frees the memory and throws.
    init(loop: EventLoop, type: uv_handle_type, skipThreadCheck: Bool = false,
         initialize: (UnsafeMutableRawPointer) -> Int32, operation: String) throws {
        if !skipThreadCheck { try loop.checkAcceptsHandles() }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: uv_handle_size(type), alignment: 16)
        let status = initialize(raw)
        if status < 0 {
            raw.deallocate()
            throw UVError(code: status, operation: operation)
        }
        self.loop = loop
        self.handle = raw.bindMemory(to: uv_handle_t.self, capacity: 1)
        // Released in the close callback: the open handle keeps its owner alive.
        uv_handle_set_data(handle, Unmanaged.passRetained(self).toOpaque())
        loop.liveHandleObjects.add(1, ordering: .relaxed)
    }

    deinit {
        loop.liveHandleObjects.subtract(1, ordering: .relaxed)
    }

    /// The handle memory seen as a specific libuv handle type.
    func typed<Handle>(_: Handle.Type) -> UnsafeMutablePointer<Handle> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: Handle.self)
    }

    /// Closes the handle; its close callback runs on a later loop iteration. Idempotent.
    public func close() {
        loop.assertInLoop()
        guard !isClosed else { return }
        isClosed = true
        willClose()
        uv_close(handle, loopHandleClosed)
    }

    /// Called just before `uv_close`; subclasses stop accepting work here.
    func willClose() {}

    /// Called from the close callback, after libuv has cancelled every pending request on the handle.
    func didClose() {}
}

private func loopHandleClosed(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle, let data = uv_handle_get_data(handle) else { return }
    let owner = Unmanaged<LoopHandle>.fromOpaque(data).takeRetainedValue()
    owner.didClose()
    UnsafeMutableRawPointer(handle).deallocate()
}

/// Recovers the owner of a handle inside a libuv callback.
func owner<Owner: LoopHandle>(of handle: UnsafeMutableRawPointer?, as _: Owner.Type) -> Owner? {
    guard let handle, let data = uv_handle_get_data(handle.assumingMemoryBound(to: uv_handle_t.self)) else { return nil }
    return Unmanaged<LoopHandle>.fromOpaque(data).takeUnretainedValue() as? Owner
}

// MARK: - Cross-thread wake-up

final class AsyncHandle: LoopHandle {
    // `true` while uv_async_send may be called; flipped under the lock before uv_close so that no
    // other thread can signal a handle that is about to be freed.
    let sendable = Mutex(true)
    let onWake: () -> Void

    init(loop: EventLoop, skipThreadCheck: Bool, onWake: @escaping () -> Void) throws {
        self.onWake = onWake
        try super.init(loop: loop, type: UV_ASYNC, skipThreadCheck: skipThreadCheck, initialize: { raw in
            uv_async_init(loop.uvLoop, raw.assumingMemoryBound(to: uv_async_t.self)) { async in
                owner(of: UnsafeMutableRawPointer(async), as: AsyncHandle.self)?.onWake()
            }
        }, operation: "uv_async_init")
    }

    override func willClose() {
        sendable.withLock { $0 = false }
    }

    @discardableResult
    func send() -> Bool {
        sendable.withLock { open in
            guard open else { return false }
            return uv_async_send(typed(uv_async_t.self)) == 0
        }
    }
}

/// Wakes the loop from any thread and runs a callback on the loop thread (`uv_async_t`).
///
/// **Wake-ups coalesce**: N calls to ``wake()`` before the loop gets to run produce between 1 and N
/// callbacks (often exactly one). The callback must therefore drain *everything* its producers
/// queued (a ring, a locked queue), never just one item per wake-up.
public final class LoopWaker: @unchecked Sendable {
    // Why @unchecked Sendable is safe: `wake()` only calls uv_async_send, the one libuv function
    // documented as thread-safe, under a lock that `close()` takes before uv_close; every other member
    // is loop-bound and asserted.
    private let async: AsyncHandle

    /// Creates the wake-up handle; call on the loop thread. `onWake` runs on the loop thread.
    public init(loop: EventLoop, onWake: @escaping () -> Void) throws {
        loop.assertInLoop()
        async = try AsyncHandle(loop: loop, skipThreadCheck: false, onWake: onWake)
    }

    /// For the loop's own executor, created before the loop thread exists.
    init(unsafeBeforeStartOn loop: EventLoop, onWake: @escaping () -> Void) throws {
        async = try AsyncHandle(loop: loop, skipThreadCheck: true, onWake: onWake)
    }

    /// Asks the loop to run the callback. Safe from any thread; returns `false` once closed.
    @discardableResult
    public func wake() -> Bool { async.send() }

    /// Closes the handle (loop thread only); later ``wake()`` calls do nothing.
    public func close() { async.close() }
}

// MARK: - Timers

/// A one-shot or repeating timer (`uv_timer_t`) on the loop's monotonic clock.
public final class LoopTimer: LoopHandle {
    private var callback: ((LoopTimer) -> Void)?

    /// Creates a stopped timer; call on the loop thread.
    public init(loop: EventLoop) throws {
        loop.assertInLoop()
        try super.init(loop: loop, type: UV_TIMER, initialize: { raw in
            uv_timer_init(loop.uvLoop, raw.assumingMemoryBound(to: uv_timer_t.self))
        }, operation: "uv_timer_init")
    }

    /// Starts (or restarts) the timer: `callback` runs after `delay`, then every `repeatEvery` if given.
    /// Durations are rounded up to whole milliseconds (libuv's resolution).
    public func schedule(after delay: Duration, repeatEvery: Duration? = nil,
                         _ callback: @escaping (LoopTimer) -> Void) throws {
        loop.assertInLoop()
        guard !isClosed else { throw TransportError(.connectionClosed, "the timer was closed; create a new one") }
        let period = repeatEvery.map(LoopTimer.milliseconds) ?? 0
        if repeatEvery != nil && period == 0 {
            throw TransportError(.invalidArgument, "a repeating timer needs a period of at least 1 ms")
        }
        self.callback = callback
        try uvCheck(uv_timer_start(typed(uv_timer_t.self), { timer in
            guard let owner = owner(of: UnsafeMutableRawPointer(timer), as: LoopTimer.self) else { return }
            owner.callback?(owner)
        }, LoopTimer.milliseconds(delay), period), "uv_timer_start")
    }

    /// Stops the timer; it can be scheduled again. Does nothing if it is not running.
    public func cancel() {
        loop.assertInLoop()
        guard !isClosed else { return }
        uv_timer_stop(typed(uv_timer_t.self))
        callback = nil
    }

    override func didClose() { callback = nil }

    static func milliseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        let fraction = (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return UInt64(seconds).multipliedReportingOverflow(by: 1000).partialValue + UInt64(fraction)
    }
}

// MARK: - Signals

/// Runs a closure on the loop thread when the process receives a signal (`uv_signal_t`), for
/// graceful shutdown on SIGTERM and SIGINT.
public final class SignalHandler: LoopHandle {
    /// The signal number this handler watches.
    public let signal: Int32
    private let handler: (Int32) -> Void

    /// Installs the handler; call on the loop thread. Closing the last handler for a signal
    /// restores its default disposition.
    ///
    /// The signal is also unblocked on the loop thread: a thread inherits its creator's signal mask,
    /// and pools such as libdispatch's block signals, so a loop started from one would otherwise have
    /// no thread left to receive a process-directed signal.
    public init(loop: EventLoop, signal: Int32, handler: @escaping (Int32) -> Void) throws {
        loop.assertInLoop()
        self.signal = signal
        self.handler = handler
        try super.init(loop: loop, type: UV_SIGNAL, initialize: { raw in
            uv_signal_init(loop.uvLoop, raw.assumingMemoryBound(to: uv_signal_t.self))
        }, operation: "uv_signal_init")
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, signal)
        pthread_sigmask(SIG_UNBLOCK, &mask, nil)
        do {
            try uvCheck(uv_signal_start(typed(uv_signal_t.self), { signalHandle, number in
                owner(of: UnsafeMutableRawPointer(signalHandle), as: SignalHandler.self)?.handler(number)
            }, signal), "uv_signal_start(\(signal))")
        } catch {
            close()
            throw error
        }
    }
}
