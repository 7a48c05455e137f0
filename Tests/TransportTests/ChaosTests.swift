import TestSupport
import Testing
@testable import Transport

/// Random interleavings of reads, writes, pauses, half-closes and closes on both sides. Whatever
/// happens, nothing may crash, every connection must end, and both loops must stop with no handle
/// open and no handle object alive.
@Suite struct ChaosTests {
    @Test func randomLifecyclesEndCleanly() async throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        let connections = 100
        try await withLoop { serverLoop in
            let server = try await serverLoop.submit {
                var generator = SplitMix64(seed: seed)
                let server = try TCPServer(loop: serverLoop, address: localhost, maxConnections: 64,
                                           maxPendingWriteBytes: 512 * 1024) { connection in
                    connection.lingerTimeout = .milliseconds(50)
                    connection.onRead = { connection, bytes in
                        switch Int.random(in: 0..<100, using: &generator) {
                        case 0..<75:
                            do { try connection.write(bytes) } catch { connection.close() }
                        case 75..<83:
                            connection.stopReading()
                            guard let timer = try? LoopTimer(loop: serverLoop) else { return }
                            try? timer.schedule(after: .milliseconds(Int64.random(in: 1...20, using: &generator))) { timer in
                                try? connection.startReading()
                                timer.close()
                            }
                        case 83..<88:
                            try? connection.write("bye\n")
                            connection.closeAfterFlush()
                        case 88..<93:
                            connection.close()
                        default:
                            do {
                                try connection.write([UInt8](repeating: 9, count: 200 * 1024))
                            } catch {
                                connection.close()
                            }
                        }
                    }
                    try? connection.startReading()
                }
                server.onRefuse = { connection in try? connection.write("full\n") }
                return LoopBound(server, loop: serverLoop)
            }
            let port = try await serverLoop.submit { server.value.localAddress.port }

            let ended = Recorder<Int>()
            try await withLoop { clientLoop in
                try await clientLoop.submit {
                    var generator = SplitMix64(seed: seed ^ 0x5EED)
                    let target = try SocketAddress(host: "127.0.0.1", port: port)
                    for index in 0..<connections {
                        let chunks = Int.random(in: 1...30, using: &generator)
                        let closeAfter = Int64.random(in: 1...200, using: &generator)
                        let halfClose = Bool.random(using: &generator)
                        try TCPConnection.connect(to: target, on: clientLoop, maxPendingWriteBytes: 256 * 1024) { result in
                            guard case .success(let connection) = result else {
                                ended.record(index)
                                return
                            }
                            connection.onRead = { _, _ in }
                            connection.onClose = { _, _ in ended.record(index) }
                            try? connection.startReading()
                            for chunk in 0..<chunks {
                                do { try connection.write([UInt8](repeating: UInt8(truncatingIfNeeded: chunk), count: 1000 * (chunk + 1))) } catch { break }
                            }
                            guard let timer = try? LoopTimer(loop: clientLoop) else { return }
                            try? timer.schedule(after: .milliseconds(closeAfter)) { timer in
                                if halfClose { connection.closeAfterFlush() } else { connection.close() }
                                timer.close()
                            }
                        }
                    }
                }
                #expect(await ended.wait(forCount: connections, timeout: .seconds(20)),
                        "seed \(seed): \(ended.count) of \(connections) connections ended")
            }
            #expect(await Recorder<Int>().wait(timeout: .seconds(10)) { _ in (try? serverLoopConnectionCount(server)) == 0 },
                    "seed \(seed): the server saw every connection end")
        }
    }
}
