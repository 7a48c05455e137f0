import TestSupport
import Glibc
import Synchronization
import Testing
@testable import Transport

/// Starts an echo server that stops reading while more than 64 KiB of echo is pending and resumes
/// once it drains (backpressure), and returns its port.
func startEchoServer(on loop: EventLoop, maxConnections: Int = TCPServer.defaultMaxConnections,
                     onRefuse: (@Sendable (String) -> String?)? = nil) async throws -> LoopBound<TCPServer> {
    try await loop.submit {
        let server = try TCPServer(loop: loop, address: localhost, maxConnections: maxConnections) { connection in
            connection.onRead = { connection, bytes in
                do { try connection.write(bytes) } catch { connection.close(); return }
                if connection.pendingWriteBytes > 64 * 1024 { connection.stopReading() }
            }
            connection.onWriteDrained = { connection in try? connection.startReading() }
            try? connection.startReading()
        }
        if let onRefuse {
            server.onRefuse = { connection in
                if let message = onRefuse("\(connection.peerAddress.map(String.init(describing:)) ?? "?")") {
                    try? connection.write(message)
                }
            }
        }
        return LoopBound(server, loop: loop)
    }
}

@Suite struct TCPTests {
    @Test func echoesPipelinedDataOnManyConnections() async throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        let connections = 64
        let bytesPerConnection = 64 * 1024
        try await withLoop { serverLoop in
            let server = try await startEchoServer(on: serverLoop)
            let port = try await serverLoop.submit { server.value.localAddress.port }
            try await withLoop { clientLoop in
                let results = Recorder<(Int, Bool, String)>()
                try await clientLoop.submit {
                    var generator = SplitMix64(seed: seed)
                    let target = try SocketAddress(host: "127.0.0.1", port: port)
                    for index in 0..<connections {
                        let payload = (0..<bytesPerConnection).map { _ in UInt8.random(in: 0...255, using: &generator) }
                        var chunks: [Range<Int>] = []
                        var offset = 0
                        while offset < payload.count {
                            let end = min(payload.count, offset + Int.random(in: 1...4096, using: &generator))
                            chunks.append(offset..<end)
                            offset = end
                        }
                        try TCPConnection.connect(to: target, on: clientLoop) { result in
                            guard case .success(let connection) = result else {
                                results.record((index, false, "connect failed: \(result)"))
                                return
                            }
                            var received: [UInt8] = []
                            received.reserveCapacity(payload.count)
                            connection.onRead = { connection, bytes in
                                received.append(contentsOf: bytes)
                                if received.count >= payload.count {
                                    results.record((index, received == payload, "\(received.count) bytes"))
                                    connection.close()
                                }
                            }
                            connection.onClose = { _, error in
                                if received.count < payload.count {
                                    results.record((index, false, "closed early: \(String(describing: error))"))
                                }
                            }
                            do {
                                try connection.startReading()
                                for chunk in chunks { try payload[chunk].withUnsafeBytes { try connection.write($0) } }
                            } catch {
                                results.record((index, false, "write failed: \(error)"))
                            }
                        }
                    }
                }
                #expect(await results.wait(forCount: connections, timeout: .seconds(20)), "seed \(seed)")
                let failures = results.all.filter { !$0.1 }
                #expect(failures.isEmpty, "seed \(seed): \(failures)")
                #expect(Set(results.all.map(\.0)).count == connections, "seed \(seed)")
            }
            #expect(await Recorder<Int>().wait(timeout: .seconds(5)) { _ in
                (try? serverLoopConnectionCount(server)) == 0
            })
        }
    }

    @Test func clientResettingMidWriteClosesTheConnectionAndFreesItsWrites() async throws {
        try await withLoop { loop in
            let closes = Recorder<(UVError?, Int)>()
            let port = try await loop.submit {
                var accepted = 0
                let server = try TCPServer(loop: loop, address: localhost,
                                           maxPendingWriteBytes: 64 * 1024 * 1024) { connection in
                    accepted += 1
                    if accepted == 1 {
                        connection.onClose = { connection, error in closes.record((error, connection.pendingWriteBytes)) }
                        let chunk = [UInt8](repeating: 7, count: 1024 * 1024)
                        for _ in 0..<32 { try? connection.write(chunk) }
                        try? connection.startReading()
                    } else {
                        try? connection.write("still serving\n")
                        connection.closeAfterFlush()
                    }
                }
                return server.localAddress.port
            }
            let client = try BlockingClient(port: port)
            #expect(!client.receiveSome(max: 1000).isEmpty)
            client.reset()
            #expect(await closes.wait(forCount: 1))
            let (error, pending) = try #require(closes.all.first)
            #expect(error != nil, "a reset mid-write is reported as an error")
            #expect(["ECONNRESET", "EPIPE"].contains(error?.name ?? ""), "got \(String(describing: error))")
            #expect(pending == 0, "cancelled writes are released before onClose")
            let second = try BlockingClient(port: port)
            #expect(String(decoding: second.receiveUntilClosed(), as: UTF8.self) == "still serving\n")
        }
    }

    @Test func connectionsOverTheLimitAreRefusedCleanly() async throws {
        try await withLoop { loop in
            let server = try await startEchoServer(on: loop, maxConnections: 2) { _ in "-ERR max clients reached\r\n" }
            let port = try await loop.submit { server.value.localAddress.port }
            var first: BlockingClient? = try BlockingClient(port: port)
            let second = try BlockingClient(port: port)
            first?.send("one")
            #expect(first?.receive(until: "one") == "one")
            second.send("two")
            #expect(second.receive(until: "two") == "two")

            let third = try BlockingClient(port: port)
            #expect(String(decoding: third.receiveUntilClosed(), as: UTF8.self) == "-ERR max clients reached\r\n")
            let counts = try await loop.submit { (server.value.connectionCount, server.value.refusedCount) }
            #expect(counts == (2, 1))

            second.send("still")
            #expect(second.receive(until: "still") == "still", "accepted clients are unaffected")

            first = nil  // closes the socket; the server frees the slot
            #expect(await Recorder<Int>().wait { _ in (try? serverLoopConnectionCount(server)) == 1 })
            let fourth = try BlockingClient(port: port)
            fourth.send("four")
            #expect(fourth.receive(until: "four") == "four")
        }
    }

    @Test func writeBudgetOverflowIsReportedAndSticky() async throws {
        try await withLoop { loop in
            let outcome = Recorder<(TransportError.Code?, Int, TransportError.Code?)>()
            let budget = 256 * 1024
            let port = try await loop.submit {
                let server = try TCPServer(loop: loop, address: localhost, maxPendingWriteBytes: budget) { connection in
                    let chunk = [UInt8](repeating: 1, count: 64 * 1024)
                    var failure: TransportError?
                    for _ in 0..<4096 {
                        do { try connection.write(chunk) } catch let error as TransportError { failure = error; break } catch { break }
                    }
                    var next: TransportError?
                    do { try connection.write([1]) } catch let error as TransportError { next = error } catch {}
                    outcome.record((failure?.code, connection.pendingWriteBytes, next?.code))
                    connection.close()
                }
                return server.localAddress.port
            }
            let client = try BlockingClient(port: port, receiveBufferSize: 4096)
            #expect(await outcome.wait(forCount: 1))
            let (code, pending, next) = try #require(outcome.all.first)
            #expect(code == .writeBudgetExceeded)
            #expect(pending <= budget)
            #expect(next == .writeBudgetExceeded, "a stream with a gap refuses later writes")
            _ = client
        }
    }

    @Test func peerHalfCloseFlushesTheEchoBeforeClosing() async throws {
        try await withLoop { loop in
            let server = try await startEchoServer(on: loop)
            let port = try await loop.submit { server.value.localAddress.port }
            let client = try BlockingClient(port: port)
            let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            client.send(payload)
            shutdown(client.fd, Int32(SHUT_WR))
            let echoed = client.receiveUntilClosed(limit: 1 << 22)
            #expect(echoed == payload, "every byte is echoed before the server closes (\(echoed.count) bytes)")
        }
    }

    @Test func closeAfterFlushDeliversEverythingQueued() async throws {
        try await withLoop { loop in
            let size = 4 * 1024 * 1024
            let port = try await loop.submit {
                let server = try TCPServer(loop: loop, address: localhost, maxPendingWriteBytes: size) { connection in
                    let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 / 7) }
                    try? connection.write(bytes)
                    connection.closeAfterFlush()
                    #expect(throws: TransportError.self) { try connection.write([0]) }
                }
                return server.localAddress.port
            }
            let client = try BlockingClient(port: port)
            let received = client.receiveUntilClosed(limit: size + 1)
            #expect(received.count == size)
            #expect(received.elementsEqual((0..<size).lazy.map { UInt8(truncatingIfNeeded: $0 / 7) }))
        }
    }

    @Test func pausedReadingDeliversNothingUntilResumed() async throws {
        try await withLoop { loop in
            let events = Recorder<String>()
            let port = try await loop.submit {
                let server = try TCPServer(loop: loop, address: localhost) { connection in
                    connection.onRead = { connection, bytes in
                        events.record("read:" + String(decoding: bytes, as: UTF8.self))
                        guard bytes.first == UInt8(ascii: "a") else { return }
                        connection.stopReading()
                        events.record("paused")
                        guard let timer = try? LoopTimer(loop: loop) else { return }
                        try? timer.schedule(after: .milliseconds(50)) { timer in
                            events.record("resumed")
                            try? connection.startReading()
                            timer.close()
                        }
                    }
                    try? connection.startReading()
                }
                return server.localAddress.port
            }
            let client = try BlockingClient(port: port)
            client.send("a")
            #expect(await events.wait { $0.contains("paused") })
            client.send("b")
            #expect(await events.wait { $0.contains("read:b") })
            #expect(events.all == ["read:a", "paused", "resumed", "read:b"])
        }
    }

    @Test func connectToAClosedPortFailsWithConnectionRefused() async throws {
        try await withLoop { loop in
            let outcome = Recorder<String>()
            try await loop.submit {
                let server = try TCPServer(loop: loop, address: localhost) { _ in }
                let address = server.localAddress
                server.close()
                _ = try TCPConnection.connect(to: address, on: loop) { result in
                    switch result {
                    case .success: outcome.record("connected")
                    case .failure(let error): outcome.record(error.name)
                    }
                }
            }
            #expect(await outcome.wait(forCount: 1))
            #expect(outcome.all == ["ECONNREFUSED"])
        }
    }

    @Test func bindingABusyPortThrowsAddressInUse() async throws {
        try await withLoop { loop in
            let name = try await loop.submit { () -> String in
                let first = try TCPServer(loop: loop, address: localhost) { _ in }
                do {
                    _ = try TCPServer(loop: loop, address: first.localAddress) { _ in }
                    return "bound twice"
                } catch let error as UVError {
                    return error.name
                }
            }
            #expect(name == "EADDRINUSE")
        }
    }

    @Test func ipv6LoopbackWorksWhenAvailable() async throws {
        try await withLoop { loop in
            let bound = try await loop.submit { () -> SocketAddress? in
                try? TCPServer(loop: loop, address: SocketAddress(parsing: "[::1]:0")) { _ in }.localAddress
            }
            // Containers may lack IPv6; when it binds, the reported address must be the real one.
            if let bound {
                #expect(bound.family == .ipv6)
                #expect(bound.port != 0)
                #expect(bound.host == "::1")
            }
        }
    }
}

/// Reads a loop-bound server's connection count from a test (blocking hop to the loop).
func serverLoopConnectionCount(_ server: LoopBound<TCPServer>) throws -> Int {
    let result = Mutex<Int?>(nil)
    try server.loop.execute { result.withLock { $0 = server.value.connectionCount } }
    for _ in 0..<1000 {
        if let value = result.withLock({ $0 }) { return value }
        usleep(1000)
    }
    throw TransportError(.loopNotRunning, "loop did not answer")
}

@Suite struct TCPEndOfInputTests {
    @Test func ownerCanAnswerAfterThePeerHalfCloses() async throws {
        try await withLoop { loop in
            let ids = Recorder<UInt64>()
            let port = try await loop.submit {
                let server = try TCPServer(loop: loop, address: localhost) { connection in
                    ids.record(connection.id)
                    var request: [UInt8] = []
                    connection.onRead = { _, bytes in request.append(contentsOf: bytes) }
                    connection.onEndOfInput = { connection in
                        // The reply is produced later, as an engine reply would be.
                        guard let timer = try? LoopTimer(loop: loop) else { return }
                        try? timer.schedule(after: .milliseconds(20)) { timer in
                            try? connection.write("got \(request.count) bytes\n")
                            connection.closeAfterFlush()
                            timer.close()
                        }
                    }
                    try? connection.startReading()
                }
                return server.localAddress.port
            }
            for _ in 0..<2 {
                let client = try BlockingClient(port: port)
                client.send("PING\r\n")
                shutdown(client.fd, Int32(SHUT_WR))
                #expect(String(decoding: client.receiveUntilClosed(), as: UTF8.self) == "got 6 bytes\n")
            }
            #expect(ids.all.count == 2 && ids.all[0] != ids.all[1], "connection ids are unique: \(ids.all)")
        }
    }
}

@Suite struct TCPLingerTests {
    @Test func replyReachesAClientThatIsStillSending() async throws {
        try await withLoop { loop in
            let port = try await loop.submit {
                let server = try TCPServer(loop: loop, address: localhost) { connection in
                    connection.onRead = { connection, _ in
                        // Refuse at the first byte, as a protocol refuses an oversized request.
                        try? connection.write("-ERR request too large\r\n")
                        connection.closeAfterFlush()
                    }
                    try? connection.startReading()
                }
                return server.localAddress.port
            }
            for round in 0..<5 {
                let client = try BlockingClient(port: port)
                // More than the server reads before it answers: unread input at close time.
                client.send([UInt8](repeating: 0x41, count: 512 * 1024))
                #expect(client.receive(until: "\r\n") == "-ERR request too large\r\n", "round \(round)")
                #expect(client.endsWithOrderlyEOF(), "then a FIN, not a RST, round \(round)")
            }
        }
    }

    @Test func lingerEndsAfterTheTimeoutWhenThePeerNeverCloses() async throws {
        try await withLoop { loop in
            let closed = Recorder<Bool>()
            let port = try await loop.submit {
                let server = try TCPServer(loop: loop, address: localhost) { connection in
                    connection.lingerTimeout = .milliseconds(50)
                    connection.onClose = { _, error in closed.record(error == nil) }
                    try? connection.write("bye\n")
                    connection.closeAfterFlush()
                }
                return server.localAddress.port
            }
            let client = try BlockingClient(port: port)
            #expect(client.receive(until: "\n") == "bye\n")
            // The client keeps its socket open and never sends a FIN.
            #expect(await closed.wait(forCount: 1))
            #expect(closed.all == [true])
            _ = client
        }
    }
}

@Suite struct TCPReuseAddressTests {
    /// The server closing first leaves its side in TIME_WAIT on the listening port; only
    /// SO_REUSEADDR (set by libuv on every TCP bind) lets a restarted server bind it at once.
    @Test func portCanBeReboundWhileAConnectionSitsInTimeWait() async throws {
        try await withLoop { loop in
            let closed = Recorder<Bool>()
            let server = try await loop.submit {
                LoopBound(try TCPServer(loop: loop, address: localhost) { connection in
                    connection.onClose = { _, _ in closed.record(true) }
                    connection.close()  // active close on the server side: TIME_WAIT is ours
                }, loop: loop)
            }
            let address = try await loop.submit { server.value.localAddress }
            let client = try BlockingClient(port: address.port)
            #expect(await closed.wait(forCount: 1))
            #expect(client.endsWithOrderlyEOF())
            let rebound = try await loop.submit { () -> UInt16 in
                server.value.close()
                return try TCPServer(loop: loop, address: address) { _ in }.localAddress.port
            }
            #expect(rebound == address.port)
        }
    }
}
