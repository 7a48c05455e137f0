import Testing
@testable import Transport

@Suite struct UDPTests {
    @Test func roundTripCarriesTheSenderAddress() async throws {
        try await withLoop { loop in
            let received = Recorder<(String, UInt16)>()
            let ports = try await loop.submit { () -> (UInt16, UInt16) in
                let echo = try UDPSocket(loop: loop, bindTo: localhost) { _, _ in }
                // Rebinding the handler through a second socket keeps the closure free of self-capture.
                let echoAddress = echo.localAddress
                echo.close()
                let server = try UDPSocket(loop: loop, bindTo: echoAddress) { bytes, sender in
                    received.record(("server got " + String(decoding: bytes, as: UTF8.self), sender.port))
                }
                let client = try UDPSocket(loop: loop, bindTo: localhost) { bytes, sender in
                    received.record(("client got " + String(decoding: bytes, as: UTF8.self), sender.port))
                }
                try client.send(Array("ping".utf8), to: server.localAddress)
                try server.send(Array("pong".utf8), to: client.localAddress)
                return (server.localAddress.port, client.localAddress.port)
            }
            #expect(await received.wait(forCount: 2))
            let byMessage = Dictionary(uniqueKeysWithValues: received.all)
            #expect(byMessage["server got ping"] == ports.1, "the server sees the client's port")
            #expect(byMessage["client got pong"] == ports.0, "the client sees the server's port")
        }
    }

    @Test func oversizeDatagramsAreRefusedOnSendAndDroppedOnReceive() async throws {
        try await withLoop { loop in
            let received = Recorder<Int>()
            let socket = try await loop.submit {
                LoopBound(try UDPSocket(loop: loop, bindTo: localhost, maxDatagramSize: 1400) { bytes, _ in
                    received.record(bytes.count)
                }, loop: loop)
            }
            let sendError = try await loop.submit { () -> TransportError.Code? in
                do {
                    try socket.value.send([UInt8](repeating: 0, count: 1401), to: socket.value.localAddress)
                    return nil
                } catch let error as TransportError {
                    return error.code
                }
            }
            #expect(sendError == .datagramTooLarge)
            try await loop.submit {
                let big = try UDPSocket(loop: loop, bindTo: localhost, maxDatagramSize: 9000) { _, _ in }
                try big.send([UInt8](repeating: 1, count: 1500), to: socket.value.localAddress)
                try big.send([UInt8](repeating: 2, count: 1400), to: socket.value.localAddress)
                big.close()
            }
            #expect(await received.wait(forCount: 1))
            #expect(received.all == [1400], "the 1500-byte datagram is dropped, the 1400-byte one delivered")
            let dropped = try await loop.submit { socket.value.oversizeDatagramsDropped }
            #expect(dropped == 1)
        }
    }

    @Test func rejectsImpossibleLimits() async throws {
        try await withLoop { loop in
            let codes = try await loop.submit { () -> [TransportError.Code?] in
                [0, 65_508].map { size in
                    do {
                        _ = try UDPSocket(loop: loop, bindTo: localhost, maxDatagramSize: size) { _, _ in }
                        return nil
                    } catch {
                        return (error as? TransportError)?.code
                    }
                }
            }
            #expect(codes == [.invalidArgument, .invalidArgument])
        }
    }

    @Test func manyDatagramsArriveIntact() async throws {
        let count = 2_000
        try await withLoop { loop in
            let received = Recorder<UInt32>()
            try await loop.submit {
                var arrived = 0
                let server = try UDPSocket(loop: loop, bindTo: localhost) { bytes, _ in
                    arrived += 1
                    // Each datagram is its index repeated to fill 1000 bytes; a torn one fails the check.
                    let index = bytes.load(as: UInt32.self)
                    let intact = bytes.count == 1000 && stride(from: 0, to: 1000, by: 4).allSatisfy {
                        bytes.loadUnaligned(fromByteOffset: $0, as: UInt32.self) == index
                    }
                    received.record(intact ? index : UInt32.max)
                }
                let client = try UDPSocket(loop: loop, bindTo: localhost) { _, _ in }
                // At most 64 datagrams in flight: libuv reads 32 per loop iteration, so an unpaced
                // sender on a busy machine overflows the receive buffer, which is UDP working as designed.
                var next = 0
                let pacer = try LoopTimer(loop: loop)
                try pacer.schedule(after: .milliseconds(1), repeatEvery: .milliseconds(1)) { timer in
                    while next < count && next - arrived < 64 {
                        let payload = [UInt32](repeating: UInt32(next), count: 250).withUnsafeBytes { Array($0) }
                        do { try client.send(payload, to: server.localAddress) } catch { received.record(UInt32.max - 1) }
                        next += 1
                    }
                    if next == count { timer.close() }
                }
            }
            #expect(await received.wait(timeout: .seconds(10)) { $0.count >= count - 5 }, "received \(received.count) of \(count)")
            #expect(!received.all.contains(UInt32.max), "no datagram was torn or merged")
            #expect(!received.all.contains(UInt32.max - 1), "no send failed")
            #expect(Set(received.all).count == received.count, "no datagram was duplicated")
        }
    }
}
