import Testing
import Transport

@Suite struct ThreadCheckTests {
    @Test func loopBoundValueTrapsOffTheLoopThread() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let loop = try EventLoop()
            try loop.start()
            let timer = try await loop.submit { LoopBound(try LoopTimer(loop: loop), loop: loop) }
            _ = timer.value  // not on the loop thread: must trap
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("LoopBound accessed off its event-loop thread"), "stderr: \(stderr)")
    }

    @Test func loopBoundValueIsFineOnTheLoopThread() async throws {
        try await withLoop { loop in
            let timer = try await loop.submit { LoopBound(try LoopTimer(loop: loop), loop: loop) }
            let closed = try await loop.submit { () -> Bool in
                timer.value.close()
                return timer.value.isClosed
            }
            #expect(closed)
        }
    }

    #if DEBUG
    @Test func handleCreationTrapsOffTheLoopThreadInDebugBuilds() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let loop = try EventLoop()
            try loop.start()
            _ = try LoopTimer(loop: loop)  // not on the loop thread: the debug check must trap
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("libuv handle used off its event-loop thread"), "stderr: \(stderr)")
    }
    #endif
}
