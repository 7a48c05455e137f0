import Synchronization
import Testing
@testable import Transport

@Suite struct HostAndPortTests {
    @Test(arguments: [
        ("db1.internal:7946", "db1.internal", UInt16(7946), false),
        ("crdtd-0.crdtd.default.svc.cluster.local.:7946", "crdtd-0.crdtd.default.svc.cluster.local.", 7946, false),
        ("_peer.example:1", "_peer.example", 1, false),
        ("localhost:6379", "localhost", 6379, false),
        ("10.0.0.5:7946", "10.0.0.5", 7946, true),
        ("[::1]:7946", "::1", 7946, true),
    ])
    func namesAndAddressesParse(text: String, host: String, port: UInt16, numeric: Bool) throws {
        let parsed = try HostAndPort(parsing: text)
        #expect(parsed.host == host)
        #expect(parsed.port == port)
        #expect((parsed.numeric != nil) == numeric)
        #expect(try HostAndPort(parsing: parsed.description) == parsed)
    }

    @Test(arguments: [
        ("db1.internal", "missing ':PORT'"),
        ("db1.internal:0", "port must be"),
        ("db1..internal:80", "neither an IPv4 address nor a host name"),
        ("-db1:80", "neither an IPv4 address nor a host name"),
        ("db 1:80", "neither an IPv4 address nor a host name"),
        ("::1:80", "must be written in brackets"),
        (":80", "missing host"),
    ])
    func malformedTextIsRefused(text: String, fragment: String) {
        let error = #expect(throws: TransportError.self) { try HostAndPort(parsing: text) }
        #expect(error?.message.contains(fragment) == true, "message was: \(error?.message ?? "none")")
    }
}

@Suite struct NameResolverTests {
    /// localhost comes from /etc/hosts, so no DNS query leaves the machine.
    @Test func localhostResolvesOnTheLoopThread() async throws {
        try await withLoop { loop in
            let answer = Mutex<Result<[SocketAddress], TransportError>?>(nil)
            let onLoop = Mutex(false)
            try await loop.submit {
                let resolver = NameResolver(loop: loop)
                try resolver.resolve("localhost", port: 7946) { result in
                    onLoop.withLock { $0 = loop.inEventLoop }
                    answer.withLock { $0 = result }
                }
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while answer.withLock({ $0 }) == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            let addresses = try #require(try answer.withLock { $0 }?.get())
            #expect(addresses.contains(try SocketAddress(parsing: "127.0.0.1:7946")))
            #expect(addresses.allSatisfy { $0.port == 7946 })
            #expect(onLoop.withLock { $0 }, "the completion runs on the loop thread")
        }
    }
}
