import TestSupport
import Glibc
import Testing
@testable import Transport

/// Starts a metrics server whose body counts the scrapes, and returns it.
func startMetricsServer(on loop: EventLoop, maxHeaderBytes: Int = MetricsHTTPServer.defaultMaxHeaderBytes)
    async throws -> LoopBound<MetricsHTTPServer> {
    try await loop.submit {
        var scrapes = 0
        let server = try MetricsHTTPServer(loop: loop, address: localhost, maxHeaderBytes: maxHeaderBytes) {
            scrapes += 1
            return "# TYPE crdtd_scrapes counter\ncrdtd_scrapes \(scrapes)\n"
        }
        return LoopBound(server, loop: loop)
    }
}

/// Splits a raw HTTP response into status line, headers (lower-cased names) and body.
func parseResponse(_ text: String) -> (status: String, headers: [String: String], body: String)? {
    guard let split = text.firstRange(of: "\r\n\r\n") else { return nil }
    let head = text[..<split.lowerBound].split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
    var headers: [String: String] = [:]
    for line in head.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " })
    }
    return (head.first ?? "", headers, String(text[split.upperBound...]))
}

@Suite struct MetricsHTTPServerTests {
    @Test func getMetricsReturnsTheBodyWithPrometheusContentType() async throws {
        try await withLoop { loop in
            let server = try await startMetricsServer(on: loop)
            let port = try await loop.submit { server.value.localAddress.port }
            let client = try BlockingClient(port: port)
            client.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let response = try #require(parseResponse(String(decoding: client.receiveUntilClosed(), as: UTF8.self)))
            #expect(response.status == "HTTP/1.1 200 OK")
            #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response.body == "# TYPE crdtd_scrapes counter\ncrdtd_scrapes 1\n")
            #expect(response.headers["content-length"] == "\(response.body.utf8.count)")
            #expect(response.headers["connection"] == "close")
        }
    }

    @Test func keepAliveServesPipelinedRequestsInOrder() async throws {
        try await withLoop { loop in
            let server = try await startMetricsServer(on: loop)
            let port = try await loop.submit { server.value.localAddress.port }
            let client = try BlockingClient(port: port)
            client.send("GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let text = client.receive(until: "crdtd_scrapes 2\n")
            #expect(text.split(separator: "HTTP/1.1 ").map { String($0.prefix(3)) } == ["200", "404", "200"])
            #expect(text.contains("crdtd_scrapes 1\n"))
            #expect(text.contains("Connection: keep-alive"))
            client.send("GET /metrics HTTP/1.0\r\n\r\n")
            let last = String(decoding: client.receiveUntilClosed(), as: UTF8.self)
            #expect(last.hasPrefix("HTTP/1.1 200 OK"), "HTTP/1.0 without keep-alive is answered, then closed")
            #expect(last.contains("crdtd_scrapes 3\n"))
            let counts = try await loop.submit { (server.value.metricsResponses, server.value.errorResponses) }
            #expect(counts == (3, 1))
        }
    }

    @Test(arguments: [
        ("GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 Not Found"),
        ("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", "HTTP/1.1 405 Method Not Allowed"),
        ("DELETE /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        ("\u{1}\u{2}garbage\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("GET /metrics HTTP/9.Z\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("GET /metrics HTTP/1.1\r\nBad Header Without Colon\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 999999\r\n\r\n" + String(repeating: "x", count: 5000), "HTTP/1.1 413 Payload Too Large"),
    ])
    func errorsGetTheirStatusAndClose(request: String, expectedStatus: String) async throws {
        try await withLoop { loop in
            let server = try await startMetricsServer(on: loop)
            let port = try await loop.submit { server.value.localAddress.port }
            let client = try BlockingClient(port: port)
            client.send(request)
            let text = String(decoding: client.receiveUntilClosed(), as: UTF8.self)
            let response = try #require(parseResponse(text), "response was: \(text.debugDescription)")
            #expect(response.status == expectedStatus)
            #expect(response.headers["connection"] == "close")
            if expectedStatus.contains("405") { #expect(response.headers["allow"] == "GET") }
        }
    }

    @Test func oversizedHeadersAreRefusedWith431() async throws {
        try await withLoop { loop in
            let server = try await startMetricsServer(on: loop, maxHeaderBytes: 1024)
            let port = try await loop.submit { server.value.localAddress.port }
            let client = try BlockingClient(port: port)
            // Sent in pieces: the limit must hold across reads, not only within one.
            client.send("GET /metrics HTTP/1.1\r\nX-Padding: ")
            for _ in 0..<8 { client.send(String(repeating: "a", count: 200)) }
            let text = String(decoding: client.receiveUntilClosed(), as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large"), "got \(text.debugDescription)")
            let longURL = try BlockingClient(port: port)
            longURL.send("GET /" + String(repeating: "m", count: 2000) + " HTTP/1.1\r\n\r\n")
            #expect(String(decoding: longURL.receiveUntilClosed(), as: UTF8.self).hasPrefix("HTTP/1.1 431"))
        }
    }

    @Test func closeDropsOpenConnections() async throws {
        try await withLoop { loop in
            let server = try await startMetricsServer(on: loop)
            let port = try await loop.submit { server.value.localAddress.port }
            let client = try BlockingClient(port: port)
            client.send("GET /metrics HTTP/1.1\r\n\r\n")
            #expect(client.receive(until: "crdtd_scrapes 1\n").contains("200 OK"))
            try await loop.submit { server.value.close() }
            #expect(client.receiveUntilClosed().isEmpty, "the kept-alive connection is closed")
        }
    }
}

@Suite struct MetricsHTTPIdleTests {
    @Test func idleConnectionsAreClosedAndActiveOnesKept() async throws {
        try await withLoop { loop in
            let server = try await loop.submit {
                LoopBound(try MetricsHTTPServer(loop: loop, address: localhost, idleTimeout: .seconds(1)) { "x\n" }, loop: loop)
            }
            let port = try await loop.submit { server.value.localAddress.port }
            let idle = try BlockingClient(port: port)
            let started = ContinuousClock.now
            #expect(idle.receiveUntilClosed().isEmpty, "closed without a response")
            #expect(ContinuousClock.now - started < .seconds(4), "closed by the idle sweep, not the client's 5 s timeout")
            #expect(try await loop.submit { server.value.idleClosures } == 1)

            let active = try BlockingClient(port: port)
            for round in 1...10 {
                active.send("GET /metrics HTTP/1.1\r\n\r\n")
                #expect(active.receive(until: "x\n").hasPrefix("HTTP/1.1 200 OK"), "round \(round)")
                // A blocking sleep, not Task.sleep: when CPU-bound tests fill the cooperative pool, a suspended
                // task can wait seconds to resume, and the connection would really be idle that long.
                usleep(40_000)
            }
            #expect(try await loop.submit { server.value.idleClosures } == 1, "a connection in use is never idle-closed")
        }
    }
}

@Suite struct MetricsHTTPFuzzTests {
    @Test func randomBytesNeverCrashTheServerAndGetAnErrorOrNothing() async throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var generator = SplitMix64(seed: seed)
        try await withLoop { loop in
            let server = try await startMetricsServer(on: loop)
            let port = try await loop.submit { server.value.localAddress.port }
            let prefixes = ["", "GET /metrics HTTP/1.1\r\n", "GET ", "POST /metrics HTTP/1.1\r\nContent-Length: ", "GET /metrics HTTP/1.1\r\nHost: "]
            for round in 0..<40 {
                let prefix = Array(prefixes[Int.random(in: 0..<prefixes.count, using: &generator)].utf8)
                let noise = (0..<Int.random(in: 1...3000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let client = try BlockingClient(port: port)
                client.send(prefix + noise + Array("\r\n\r\n".utf8))
                shutdown(client.fd, Int32(SHUT_WR))
                let reply = String(decoding: client.receiveUntilClosed(), as: UTF8.self)
                #expect(reply.isEmpty || reply.hasPrefix("HTTP/1.1 "), "seed \(seed) round \(round): \(reply.prefix(80).debugDescription)")
            }
            // The server is still healthy.
            let client = try BlockingClient(port: port)
            client.send("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
            #expect(String(decoding: client.receiveUntilClosed(), as: UTF8.self).hasPrefix("HTTP/1.1 200 OK"), "seed \(seed)")
        }
    }
}

@Suite struct MetricsHTTPLimitTests {
    @Test func connectionsOverTheLimitGet503() async throws {
        try await withLoop { loop in
            let server = try await loop.submit {
                LoopBound(try MetricsHTTPServer(loop: loop, address: localhost, maxConnections: 1) { "x\n" }, loop: loop)
            }
            let port = try await loop.submit { server.value.localAddress.port }
            let first = try BlockingClient(port: port)
            first.send("GET /metrics HTTP/1.1\r\n\r\n")
            #expect(first.receive(until: "x\n").hasPrefix("HTTP/1.1 200 OK"))
            let second = try BlockingClient(port: port)
            #expect(String(decoding: second.receiveUntilClosed(), as: UTF8.self).hasPrefix("HTTP/1.1 503 Service Unavailable"))
            first.send("GET /metrics HTTP/1.1\r\n\r\n")
            #expect(first.receive(until: "x\n").hasPrefix("HTTP/1.1 200 OK"), "the admitted scraper is unaffected")
        }
    }

    @Test func serverRejectsInvalidLimits() async throws {
        try await withLoop { loop in
            let codes = try await loop.submit { () -> [TransportError.Code?] in
                let attempts: [() throws -> Void] = [
                    { _ = try MetricsHTTPServer(loop: loop, address: localhost, maxHeaderBytes: 10) { "" } },
                    { _ = try MetricsHTTPServer(loop: loop, address: localhost, idleTimeout: .zero) { "" } },
                    { _ = try TCPServer(loop: loop, address: localhost, maxConnections: 0) { _ in } },
                    { _ = try TCPServer(loop: loop, address: localhost, maxPendingWriteBytes: 0) { _ in } },
                ]
                return attempts.map { attempt in
                    do { try attempt(); return nil } catch { return (error as? TransportError)?.code }
                }
            }
            #expect(codes == [.invalidArgument, .invalidArgument, .invalidArgument, .invalidArgument])
        }
    }
}
