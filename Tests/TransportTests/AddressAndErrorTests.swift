import Testing
@testable import Transport

@Suite struct SocketAddressTests {
    @Test(arguments: [
        ("127.0.0.1:7000", "127.0.0.1:7000", SocketAddress.Family.ipv4, UInt16(7000)),
        ("0.0.0.0:0", "0.0.0.0:0", .ipv4, 0),
        ("localhost:6379", "127.0.0.1:6379", .ipv4, 6379),
        ("[::1]:65535", "[::1]:65535", .ipv6, 65535),
        ("[2001:db8::42]:80", "[2001:db8::42]:80", .ipv6, 80),
    ])
    func parsesAndPrintsBack(input: String, printed: String, family: SocketAddress.Family, port: UInt16) throws {
        let address = try SocketAddress(parsing: input)
        #expect(address.description == printed)
        #expect(address.family == family)
        #expect(address.port == port)
        #expect(try SocketAddress(parsing: address.description) == address)
    }

    @Test(arguments: [
        ("127.0.0.1", "missing ':PORT'"),
        ("127.0.0.1:", "port must be"),
        ("127.0.0.1:65536", "port must be"),
        ("127.0.0.1:-1", "port must be"),
        ("127.0.0.1:80x", "port must be"),
        (":80", "missing host"),
        ("example.com:80", "not a dotted IPv4"),
        ("256.1.1.1:80", "not a dotted IPv4"),
        ("::1:80", "must be written in brackets"),
        ("[::1:80", "missing ']'"),
        ("[::1]80", "missing ':PORT'"),
        ("[]:80", "empty IPv6"),
        ("[zz::1]:80", "not an IPv6"),
    ])
    func rejectsMalformedInputWithAClearMessage(input: String, fragment: String) {
        let error = #expect(throws: TransportError.self) { try SocketAddress(parsing: input) }
        #expect(error?.code == .invalidAddress)
        #expect(error?.message.contains(fragment) == true, "message was: \(error?.message ?? "none")")
    }

    @Test func hostAndPortInitializer() throws {
        #expect(try SocketAddress(host: "::1", port: 9).description == "[::1]:9")
        #expect(try SocketAddress(host: "10.0.0.1", port: 9).description == "10.0.0.1:9")
    }
}

@Suite struct UVErrorTests {
    @Test func carriesLibuvNameAndMessage() {
        let error = UVError(code: -98, operation: "uv_tcp_bind")  // EADDRINUSE on Linux
        #expect(error.name == "EADDRINUSE")
        #expect(error.message == "address already in use")
        #expect(error.description == "uv_tcp_bind failed: EADDRINUSE (address already in use)")
    }

    @Test func unknownCodeDoesNotCrash() {
        let error = UVError(code: -123_456, operation: "x")
        #expect(error.name.contains("123456"))
    }

    @Test func checkPassesSuccessAndThrowsFailure() throws {
        #expect(try uvCheck(5, "ok") == 5)
        #expect(throws: UVError.self) { try uvCheck(-4095, "read") }
        #expect((try? uvCheck(-4095, "read")) == nil)
        let eof = UVError(code: -4095, operation: "read")
        #expect(eof.isEndOfFile)
    }
}
