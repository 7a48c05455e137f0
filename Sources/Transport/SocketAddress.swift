internal import CLibUV

/// An IPv4 or IPv6 socket address (numeric host and port). Host names are not resolved, except
/// `localhost`, which means `127.0.0.1`, so that configuration never blocks on DNS.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address family.
    public enum Family: Sendable, Hashable {
        /// IPv4 (`AF_INET`).
        case ipv4
        /// IPv6 (`AF_INET6`).
        case ipv6
    }

    /// The address family.
    public let family: Family
    /// The port in host byte order; `0` asks the system for an ephemeral port when binding.
    public let port: UInt16
    // The address bytes exactly as they sit in sockaddr_in/sockaddr_in6 (network order); IPv4 uses
    // the first four bytes of `high`. Two integers rather than an array: received datagrams build one
    // of these per packet, and this keeps that free of heap allocation.
    private let high: UInt64
    private let low: UInt64
    private let scopeID: UInt32

    /// Parses `HOST:PORT`, where HOST is a dotted IPv4 address, `localhost`, or a bracketed IPv6
    /// address such as `[::1]:7000` (zone indices like `%eth0` are not supported).
    ///
    /// - Throws: ``TransportError`` with code ``TransportError/Code/invalidAddress`` and a message
    ///   naming the problem.
    public init(parsing text: String) throws(TransportError) {
        func invalid(_ why: String) -> TransportError {
            TransportError(.invalidAddress,
                           "invalid address \"\(text)\": \(why); expected HOST:PORT such as 127.0.0.1:7000 or [::1]:7000")
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw invalid("missing ']' after the IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("missing ':PORT' after ']'") }
            portText = rest.dropFirst()
            guard !host.isEmpty else { throw invalid("empty IPv6 address") }
            self = try SocketAddress.make(ipv6: String(host), portText: portText, invalid: invalid)
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw invalid("missing ':PORT'") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { throw invalid("IPv6 addresses must be written in brackets") }
            guard !host.isEmpty else { throw invalid("missing host") }
            let literal = host == "localhost" ? "127.0.0.1" : String(host)
            self = try SocketAddress.make(ipv4: literal, portText: portText, invalid: invalid)
        }
    }

    /// Creates an address from a numeric host (IPv4 dotted or IPv6 without brackets) and a port.
    public init(host: String, port: UInt16) throws(TransportError) {
        try self.init(parsing: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
    }

    private init(family: Family, port: UInt16, high: UInt64, low: UInt64, scopeID: UInt32) {
        self.family = family
        self.port = port
        self.high = high
        self.low = low
        self.scopeID = scopeID
    }

    private static func parsePort(_ text: Substring, invalid: (String) -> TransportError) throws(TransportError) -> UInt16 {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = UInt32(text), value <= UInt32(UInt16.max)
        else { throw invalid("port must be a number from 0 to 65535") }
        return UInt16(value)
    }

    private static func make(ipv4 host: String, portText: Substring,
                             invalid: (String) -> TransportError) throws(TransportError) -> SocketAddress {
        let port = try parsePort(portText, invalid: invalid)
        var bytes: (UInt64, UInt64) = (0, 0)
        let status = withUnsafeMutableBytes(of: &bytes) { uv_inet_pton(AF_INET, host, $0.baseAddress) }
        guard status == 0 else { throw invalid("\"\(host)\" is not a dotted IPv4 address (host names are not resolved)") }
        return SocketAddress(family: .ipv4, port: port, high: bytes.0, low: 0, scopeID: 0)
    }

    private static func make(ipv6 host: String, portText: Substring,
                             invalid: (String) -> TransportError) throws(TransportError) -> SocketAddress {
        let port = try parsePort(portText, invalid: invalid)
        var bytes: (UInt64, UInt64) = (0, 0)
        let status = withUnsafeMutableBytes(of: &bytes) { uv_inet_pton(AF_INET6, host, $0.baseAddress) }
        guard status == 0 else { throw invalid("\"\(host)\" is not an IPv6 address") }
        return SocketAddress(family: .ipv6, port: port, high: bytes.0, low: bytes.1, scopeID: 0)
    }

    /// The numeric host, without brackets or port.
    public var host: String {
        var bytes = (high, low)
        var text = [CChar](repeating: 0, count: 64)
        _ = withUnsafeBytes(of: &bytes) { raw in
            uv_inet_ntop(family == .ipv4 ? AF_INET : AF_INET6, raw.baseAddress, &text, text.count)
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `1.2.3.4:5` or `[::1]:5`; parses back with ``init(parsing:)``.
    public var description: String {
        family == .ipv4 ? "\(host):\(port)" : "[\(host)]:\(port)"
    }

    /// Calls `body` with this address as a `sockaddr` for the duration of the call.
    @discardableResult
    func withSockAddr<Result>(_ body: (UnsafePointer<sockaddr>) throws(UVError) -> Result) throws(UVError) -> Result {
        switch family {
        case .ipv4:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin_addr) { raw in
                withUnsafeBytes(of: high) { raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(4))) }
            }
            return try withUnsafePointer(to: &address) { pointer throws(UVError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(UVError) in try body(address) }
            }
        case .ipv6:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_scope_id = scopeID
            var bytes = (high, low)
            withUnsafeMutableBytes(of: &address.sin6_addr) { raw in
                withUnsafeBytes(of: &bytes) { raw.copyMemory(from: $0) }
            }
            return try withUnsafePointer(to: &address) { pointer throws(UVError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(UVError) in try body(address) }
            }
        }
    }

    /// Reads a `sockaddr_in` or `sockaddr_in6`; `nil` for any other family.
    init?(_ address: UnsafePointer<sockaddr>) {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            let ipv4 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self)
            var bytes: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &bytes) { raw in
                withUnsafeBytes(of: ipv4.sin_addr) { raw.copyMemory(from: $0) }
            }
            self.init(family: .ipv4, port: UInt16(bigEndian: ipv4.sin_port), high: bytes.0, low: 0, scopeID: 0)
        case AF_INET6:
            let ipv6 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self)
            var bytes: (UInt64, UInt64) = (0, 0)
            withUnsafeMutableBytes(of: &bytes) { raw in
                withUnsafeBytes(of: ipv6.sin6_addr) { raw.copyMemory(from: $0) }
            }
            self.init(family: .ipv6, port: UInt16(bigEndian: ipv6.sin6_port), high: bytes.0, low: bytes.1,
                      scopeID: ipv6.sin6_scope_id)
        default:
            return nil
        }
    }
}
