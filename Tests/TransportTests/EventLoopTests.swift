import Glibc
import Synchronization
import Testing
@testable import Transport

@Suite struct EventLoopTests {
    @Test func executeRunsOnTheLoopThreadInOrder() async throws {
        try await withLoop { loop in
            let seen = Recorder<(Int, Bool)>()
            for index in 0..<100 {
                try loop.execute { seen.record((index, loop.inEventLoop)) }
            }
            #expect(await seen.wait(forCount: 100))
            #expect(seen.all.map(\.0) == Array(0..<100))
            #expect(seen.all.allSatisfy { $0.1 })
            #expect(!loop.inEventLoop)
        }
    }

    @Test func submitReturnsValuesAndErrors() async throws {
        try await withLoop { loop in
            let onLoop = try await loop.submit { loop.inEventLoop }
            #expect(onLoop)
            await #expect(throws: TransportError.self) {
                try await loop.submit { () throws -> Int in throw TransportError(.invalidArgument, "boom") }
            }
        }
    }

    @Test func executeQueueIsBoundedAndSaysSoWhenFull() async throws {
        try await withLoop(executeQueueCapacity: 4) { loop in
            let release = Atomic<Bool>(false)
            let blocked = Atomic<Bool>(false)
            // Hold the loop thread so that the queue cannot drain.
            try loop.execute {
                blocked.store(true, ordering: .releasing)
                while !release.load(ordering: .acquiring) { usleep(100) }
            }
            while !blocked.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(1)) }
            let ran = Recorder<Int>()
            for index in 0..<4 { try loop.execute { ran.record(index) } }
            let error = #expect(throws: TransportError.self) { try loop.execute { ran.record(99) } }
            #expect(error?.code == .executeQueueFull)
            release.store(true, ordering: .releasing)
            #expect(await ran.wait(forCount: 4))
            try loop.execute { ran.record(4) }
            #expect(await ran.wait(forCount: 5))
            #expect(ran.all == [0, 1, 2, 3, 4])
        }
    }

    @Test func stopIsIdempotentAndRefusesLaterWork() async throws {
        let loop = try EventLoop()
        try loop.start()
        #expect(throws: TransportError.self) { try loop.start() }
        try loop.stop()
        try loop.stop()
        let error = #expect(throws: TransportError.self) { try loop.execute {} }
        #expect(error?.code == .loopNotRunning)
    }

    @Test func stopWithoutStartIsClean() throws {
        let loop = try EventLoop()
        try loop.stop()
    }

    @Test func workQueuedBeforeStopStillRuns() async throws {
        let loop = try EventLoop()
        try loop.start()
        let ran = Recorder<Int>()
        for index in 0..<1000 { try loop.execute { ran.record(index) } }
        try loop.stop()
        #expect(ran.count == 1000)
    }

    @Test func stopClosesEveryKindOfHandle() async throws {
        let loop = try EventLoop()
        try loop.start()
        let closed = Recorder<String>()
        let port = try await loop.submit {
            let server = try TCPServer(loop: loop, address: localhost) { connection in
                connection.onClose = { _, _ in closed.record("accepted") }
                try? connection.startReading()
            }
            let timer = try LoopTimer(loop: loop)
            try timer.schedule(after: .seconds(3600)) { _ in }
            _ = try UDPSocket(loop: loop, bindTo: localhost) { _, _ in }
            _ = try LoopWaker(loop: loop) {}
            _ = try SignalHandler(loop: loop, signal: SIGUSR2) { _ in }
            _ = try MetricsHTTPServer(loop: loop, address: localhost) { "" }
            return server.localAddress.port
        }
        let client = try BlockingClient(port: port)
        let outgoing = Recorder<String>()
        try await loop.submit {
            _ = try TCPConnection.connect(to: SocketAddress(host: "127.0.0.1", port: port), on: loop) { result in
                if case .success(let connection) = result {
                    outgoing.record("connected")
                    connection.onClose = { _, _ in closed.record("outgoing") }
                }
            }
        }
        #expect(await outgoing.wait(forCount: 1))
        #expect(try await loop.submit { () -> Int in 0 } == 0)
        // stop() throws EBUSY from uv_loop_close if any handle were left open.
        try loop.stop()
        #expect(Set(closed.all) == ["accepted", "outgoing"], "onClose runs for connections closed by stop()")
        #expect(client.receiveSome().isEmpty, "the accepted client sees EOF")
    }
}

@Suite struct LoopWakerTests {
    @Test func wakeUpsFromManyThreadsCoalesceAndLoseNothing() async throws {
        let threads = 4
        let perThread = 2_500
        let total = threads * perThread
        try await withLoop { loop in
            let queue = Mutex<[Int]>([])
            let received = Recorder<Int>()
            let drains = Atomic<Int>(0)
            let waker = try await loop.submit {
                try LoopBound(LoopWaker(loop: loop) {
                    // Coalesced wake-ups: take everything queued, not one item.
                    drains.add(1, ordering: .relaxed)
                    let items = queue.withLock { items in
                        defer { items.removeAll(keepingCapacity: true) }
                        return items
                    }
                    for item in items { received.record(item) }
                }, loop: loop)
            }
            let sendable = try await loop.submit { SendableWaker(waker.value) }
            runOnThreads(threads) { thread in
                for index in 0..<perThread {
                    queue.withLock { $0.append(thread * perThread + index) }
                    sendable.waker.wake()
                }
            }
            #expect(await received.wait(forCount: total))
            let drainCount = drains.load(ordering: .relaxed)
            #expect(drainCount >= 1 && drainCount <= total, "drains: \(drainCount)")
            #expect(received.all.sorted() == Array(0..<total), "every item arrives exactly once")
            try await loop.submit { waker.value.close() }
            #expect(!sendable.waker.wake(), "wake() after close does nothing")
        }
    }
}

/// LoopWaker is Sendable; this box lets the test hand it to raw threads.
struct SendableWaker: Sendable {
    let waker: LoopWaker
    init(_ waker: LoopWaker) { self.waker = waker }
}

@Suite struct TimerTests {
    @Test func oneShotFiresOnceAndInDeadlineOrder() async throws {
        try await withLoop { loop in
            let fired = Recorder<String>()
            try await loop.submit {
                let late = try LoopTimer(loop: loop)
                try late.schedule(after: .milliseconds(40)) { timer in fired.record("late"); timer.close() }
                let early = try LoopTimer(loop: loop)
                try early.schedule(after: .milliseconds(5)) { timer in fired.record("early"); timer.close() }
            }
            #expect(await fired.wait(forCount: 2))
            try await Task.sleep(for: .milliseconds(60))
            #expect(fired.all == ["early", "late"])
        }
    }

    @Test func repeatingTimerFiresUntilCancelled() async throws {
        try await withLoop { loop in
            let ticks = Recorder<Int>()
            let timer = try await loop.submit {
                let timer = try LoopTimer(loop: loop)
                var count = 0
                try timer.schedule(after: .milliseconds(1), repeatEvery: .milliseconds(2)) { timer in
                    count += 1
                    ticks.record(count)
                    if count == 5 { timer.cancel() }
                }
                return LoopBound(timer, loop: loop)
            }
            #expect(await ticks.wait(forCount: 5))
            try await Task.sleep(for: .milliseconds(30))
            #expect(ticks.all == [1, 2, 3, 4, 5], "no tick after cancel")
            try await loop.submit { timer.value.close() }
        }
    }

    @Test func cancelledBeforeDeadlineNeverFires() async throws {
        try await withLoop { loop in
            let fired = Recorder<Int>()
            try await loop.submit {
                let timer = try LoopTimer(loop: loop)
                try timer.schedule(after: .milliseconds(20)) { _ in fired.record(1) }
                timer.cancel()
                let witness = try LoopTimer(loop: loop)
                try witness.schedule(after: .milliseconds(40)) { _ in fired.record(2) }
            }
            #expect(await fired.wait(forCount: 1))
            #expect(fired.all == [2])
        }
    }

    @Test func rejectsZeroPeriodAndRoundsUp() async throws {
        #expect(LoopTimer.milliseconds(.microseconds(1)) == 1)
        #expect(LoopTimer.milliseconds(.milliseconds(7)) == 7)
        #expect(LoopTimer.milliseconds(.seconds(-1)) == 0)
        try await withLoop { loop in
            let threw = try await loop.submit {
                let timer = try LoopTimer(loop: loop)
                defer { timer.close() }
                do {
                    try timer.schedule(after: .zero, repeatEvery: .zero) { _ in }
                    return false
                } catch let error as TransportError {
                    return error.code == .invalidArgument
                }
            }
            #expect(threw)
        }
    }
}

@Suite struct SignalTests {
    @Test func raisedSignalsRunTheirHandlerOnTheLoop() async throws {
        try await withLoop { loop in
            let caught = Recorder<(Int32, Bool)>()
            try await loop.submit {
                _ = try SignalHandler(loop: loop, signal: SIGUSR1) { caught.record(($0, loop.inEventLoop)) }
                _ = try SignalHandler(loop: loop, signal: SIGTERM) { caught.record(($0, loop.inEventLoop)) }
            }
            // kill, not raise: raise targets this (libdispatch) thread, which blocks signals.
            kill(getpid(), SIGUSR1)
            #expect(await caught.wait(forCount: 1))
            kill(getpid(), SIGTERM)
            #expect(await caught.wait(forCount: 2))
            #expect(caught.all.map(\.0) == [SIGUSR1, SIGTERM])
            #expect(caught.all.allSatisfy { $0.1 })
        }
    }
}
