internal import CLibUV
import Logging
import Synchronization

/// One libuv loop running on a dedicated thread that this object starts and joins.
///
/// ## Threading rule
/// Everything in this module that wraps a libuv handle (``TCPServer``, ``TCPConnection``,
/// ``UDPSocket``, ``LoopTimer``, ``SignalHandler``, ``MetricsHTTPServer``) must be created and used
/// on the loop thread only: inside a closure passed to ``execute(_:)`` or ``submit(_:)``, or inside
/// one of their own callbacks. Debug builds check this on every call. The only members that are
/// safe from any thread are ``start()``, ``stop()``, ``execute(_:)``, ``submit(_:)``,
/// ``inEventLoop`` and ``LoopWaker/wake()``.
///
/// ## Lifetime
/// ``stop()`` runs the work already queued, closes every open handle, waits for their close
/// callbacks, joins the thread and then calls `uv_loop_close`, which fails with `EBUSY` if a
/// handle were still open. Call ``stop()`` before dropping the last reference.
public final class EventLoop: @unchecked Sendable {
    // Why @unchecked Sendable is safe: the libuv loop, the read buffer and `isShuttingDown` are
    // touched only on the loop thread (asserted by `assertInLoop`); state shared with other threads
    // (`shared`, `loopThreadID`) sits behind a Mutex or an Atomic; `uvLoop` is initialised before
    // the thread starts and closed after it is joined.

    /// Default bound of the ``execute(_:)`` queue.
    public static let defaultExecuteQueueCapacity = 16_384
    /// Size of the one buffer every read on this loop is received into (bytes).
    public static let readBufferSize = 64 * 1024

    let uvLoop: UnsafeMutablePointer<uv_loop_t>
    /// Logger for transport events (refused connections, malformed HTTP requests).
    public let logger: Logger
    /// Bound of the ``execute(_:)`` queue; a full queue makes ``execute(_:)`` throw.
    public let executeQueueCapacity: Int

    // libuv calls alloc then read then the read callback synchronously, one stream at a time, so one
    // buffer serves every stream and socket on this loop; handlers must copy what they keep.
    let readBuffer: UnsafeMutableRawBufferPointer

    private enum Lifecycle { case created, running(uv_thread_t), stopping, stopped }
    private struct Shared {
        var lifecycle = Lifecycle.created
        var queue: [@Sendable () -> Void] = []
        var acceptsWork = true
        var shutdownRequested = false
        // Read under the lock by execute() on other threads, cleared by the loop thread when it ends.
        var executor: LoopWaker?
    }
    private let shared = Mutex(Shared())
    private let loopThreadID = Atomic<UInt>(0)
    /// Handle-owning objects of this loop still allocated; tests check it returns to zero (no cycle
    /// keeps a connection alive). Decremented in deinit, which may run on any thread, hence atomic.
    let liveHandleObjects = Atomic<Int>(0)
    // Loop-thread only: the queue is swapped into this buffer so a drain allocates nothing.
    private var draining: [@Sendable () -> Void] = []
    var isShuttingDown = false
    private var lastConnectionID: UInt64 = 0

    func nextConnectionID() -> UInt64 {
        assertInLoop()
        lastConnectionID += 1
        return lastConnectionID
    }

    /// Creates the loop (`uv_loop_init`). Call ``start()`` to run it.
    ///
    /// Also sets `SIGPIPE` to ignored for the whole process: libuv writes to sockets with `write(2)`,
    /// and a write to a connection the peer has reset must fail with `EPIPE`, not kill the daemon.
    ///
    /// - Parameters:
    ///   - executeQueueCapacity: bound of the cross-thread work queue (at least 1).
    ///   - logger: where transport events are logged.
    public init(executeQueueCapacity: Int = EventLoop.defaultExecuteQueueCapacity,
                logger: Logger = Logger(label: "crdtd.transport")) throws {
        guard executeQueueCapacity >= 1 else {
            throw TransportError(.invalidArgument, "executeQueueCapacity must be at least 1, got \(executeQueueCapacity)")
        }
        self.executeQueueCapacity = executeQueueCapacity
        self.logger = logger
        crdtd_ignore_sigpipe()
        uvLoop = .allocate(capacity: 1)
        do {
            try uvCheck(uv_loop_init(uvLoop), "uv_loop_init")
        } catch {
            uvLoop.deallocate()
            throw error
        }
        readBuffer = .allocate(byteCount: EventLoop.readBufferSize, alignment: 16)
        // Created before the thread exists, so nothing else can touch the loop yet. The executor's
        // handle refers back to this loop; the loop thread drops the executor when it ends.
        let executor = try LoopWaker(unsafeBeforeStartOn: self) { [unowned self] in self.drainQueue() }
        shared.withLock { $0.executor = executor }
    }

    deinit {
        // Only reachable when stop() ran (the thread holds a reference while it runs, and the
        // executor's handle holds one until it is closed).
        uvLoop.deallocate()
        readBuffer.deallocate()
    }

    /// `true` when called on this loop's thread.
    public var inEventLoop: Bool {
        loopThreadID.load(ordering: .acquiring) == UInt(crdtd_uv_current_thread_id())
    }

    /// The loop's monotonic clock in milliseconds (`uv_now`), cached at the start of each iteration.
    /// Loop thread only. Never wall-clock time.
    public var now: UInt64 {
        assertInLoop()
        return uv_now(uvLoop)
    }

    /// Traps in debug builds when called off the loop thread: the check behind every loop-bound call.
    @inline(__always)
    func assertInLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(inEventLoop, "libuv handle used off its event-loop thread; hop with EventLoop.execute", file: file, line: line)
    }

    /// Starts the loop thread. Calling it twice, or after ``stop()``, is an error.
    public func start() throws {
        try shared.withLock { state throws(TransportError) in
            guard case .created = state.lifecycle else {
                throw TransportError(.loopNotRunning, "start() called on an event loop that was already started or stopped")
            }
            var thread = uv_thread_t()
            // The thread owns one reference until its entry function returns.
            let context = Unmanaged.passRetained(self).toOpaque()
            let status = uv_thread_create(&thread, eventLoopThreadEntry, context)
            if status < 0 {
                Unmanaged<EventLoop>.fromOpaque(context).release()
                throw TransportError(.loopNotRunning, "could not start the loop thread: \(UVError(code: status, operation: "uv_thread_create"))")
            }
            state.lifecycle = .running(thread)
        }
    }

    fileprivate func runOnLoopThread() {
        loopThreadID.store(UInt(crdtd_uv_current_thread_id()), ordering: .releasing)
        // The executor's async handle keeps the loop alive until shutdown closes every handle.
        _ = uv_run(uvLoop, UV_RUN_DEFAULT)
        shared.withLock { $0.executor = nil }
        loopThreadID.store(0, ordering: .releasing)
    }

    /// Stops the loop and releases it: runs the work already queued, closes every handle, waits for
    /// the close callbacks, joins the thread and closes the libuv loop. Idempotent.
    ///
    /// Must not be called on the loop thread (it joins that thread).
    /// - Throws: ``UVError`` (`EBUSY`) if a handle was still open when the loop was closed.
    public func stop() throws {
        precondition(!inEventLoop, "EventLoop.stop() joins the loop thread and cannot be called on it")
        if case .created = shared.withLock({ $0.lifecycle }) { try? start() }
        let thread: uv_thread_t? = shared.withLock { state in
            guard case .running(let thread) = state.lifecycle else { return nil }
            state.lifecycle = .stopping
            state.acceptsWork = false
            state.shutdownRequested = true
            return thread
        }
        guard var thread else { return }
        shared.withLock { $0.executor }?.wake()
        uv_thread_join(&thread)
        let status = uv_loop_close(uvLoop)
        shared.withLock { $0.lifecycle = .stopped }
        try uvCheck(status, "uv_loop_close")
    }

    /// Runs `work` on the loop thread soon. Safe from any thread.
    ///
    /// Work items run in submission order. Wake-ups coalesce, so one wake-up runs everything queued.
    /// - Throws: ``TransportError`` ``TransportError/Code/executeQueueFull`` when
    ///   ``executeQueueCapacity`` items are already waiting (the work is not queued: retry later or
    ///   shed load), or ``TransportError/Code/loopNotRunning`` once ``stop()`` has begun.
    public func execute(_ work: @escaping @Sendable () -> Void) throws(TransportError) {
        let executor = try shared.withLock { state throws(TransportError) in
            guard state.acceptsWork else {
                throw TransportError(.loopNotRunning, "the event loop is stopping or stopped; work was not queued")
            }
            guard state.queue.count < executeQueueCapacity else {
                throw TransportError(.executeQueueFull,
                                     "the event loop's work queue holds \(executeQueueCapacity) items; the loop is not keeping up, retry later")
            }
            state.queue.append(work)
            return state.executor
        }
        executor?.wake()
    }

    /// Runs `body` on the loop thread and returns its result to the caller.
    public func submit<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
            do {
                try execute {
                    do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
                }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    private func drainQueue() {
        assertInLoop()
        // Swap the whole queue out under the lock and run it outside, so work may call execute().
        var work: [@Sendable () -> Void] = []
        swap(&work, &draining)  // `work` now owns the spare buffer alone, so the swap below copies nothing
        let shutdown = shared.withLock { state in
            swap(&state.queue, &work)
            return state.shutdownRequested
        }
        for item in work { item() }
        work.removeAll(keepingCapacity: true)
        draining = work
        if shutdown && !isShuttingDown { closeEveryHandle() }
    }

    private func closeEveryHandle() {
        isShuttingDown = true
        uv_walk(uvLoop, { handle, _ in
            guard let handle, uv_is_closing(handle) == 0, let data = uv_handle_get_data(handle) else { return }
            Unmanaged<LoopHandle>.fromOpaque(data).takeUnretainedValue().close()
        }, nil)
    }

    /// Refuses to open a new handle while shutdown closes them all (it would keep the loop alive).
    func checkAcceptsHandles() throws(TransportError) {
        assertInLoop()
        if isShuttingDown {
            throw TransportError(.loopShuttingDown, "the event loop is shutting down; no new handles can be opened")
        }
    }
}

private func eventLoopThreadEntry(_ context: UnsafeMutableRawPointer?) {
    guard let context else { return }
    Unmanaged<EventLoop>.fromOpaque(context).takeRetainedValue().runOnLoopThread()
}

/// A value that may be passed between threads but only read or written on its loop's thread
/// (checked on every access, in every build), like swift-nio's `NIOLoopBound`.
public struct LoopBound<Value>: @unchecked Sendable {
    // Why @unchecked Sendable is safe: `_value` is only reached through `value`, which traps unless
    // the caller is on `loop`'s thread, so the wrapped value is never used from two threads.
    private var _value: Value
    /// The loop whose thread may access ``value``.
    public let loop: EventLoop

    /// Wraps `value`; must be called on `loop`'s thread.
    public init(_ value: Value, loop: EventLoop) {
        precondition(loop.inEventLoop, "LoopBound created off its event-loop thread")
        self._value = value
        self.loop = loop
    }

    /// The wrapped value; traps when accessed off the loop thread.
    public var value: Value {
        get {
            precondition(loop.inEventLoop, "LoopBound accessed off its event-loop thread")
            return _value
        }
        set {
            precondition(loop.inEventLoop, "LoopBound accessed off its event-loop thread")
            _value = newValue
        }
    }
}
