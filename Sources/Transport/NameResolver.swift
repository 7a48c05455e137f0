internal import CLibUV
import Glibc

/// `HOST:PORT` where HOST is an IP address or a DNS name (`db1.internal`, `crdtd-0.crdtd.default.svc`,
/// `localhost`), for peers that are known by name. Parsing never resolves: ``NameResolver`` does, on the loop.
public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    /// The host as written (an IPv6 address without its brackets).
    public let host: String
    public let port: UInt16
    /// The address when the host is an IP literal; `nil` for a name, which must be resolved.
    public let numeric: SocketAddress?

    /// Parses `NAME:PORT`, `1.2.3.4:PORT` or `[::1]:PORT`.
    /// - Throws: ``TransportError`` ``TransportError/Code/invalidAddress`` naming the problem.
    public init(parsing text: String) throws(TransportError) {
        func invalid(_ why: String) -> TransportError {
            TransportError(.invalidAddress,
                           "invalid address \"\(text)\": \(why); expected HOST:PORT such as db1.internal:7946, 10.0.0.5:7946 or [::1]:7946")
        }
        if text.hasPrefix("[") {
            let address = try SocketAddress(parsing: text)
            self.host = address.host
            self.port = address.port
            self.numeric = address
            return
        }
        guard let colon = text.lastIndex(of: ":") else { throw invalid("missing ':PORT'") }
        let host = String(text[..<colon])
        guard !host.contains(":") else { throw invalid("IPv6 addresses must be written in brackets") }
        guard !host.isEmpty else { throw invalid("missing host") }
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = UInt16(portText), port > 0 else { throw invalid("port must be a number from 1 to 65535") }
        self.host = host
        self.port = port
        var bytes: (UInt64, UInt64) = (0, 0)
        if withUnsafeMutableBytes(of: &bytes, { uv_inet_pton(AF_INET, host, $0.baseAddress) }) == 0 {
            self.numeric = try SocketAddress(host: host, port: port)
            return
        }
        guard Self.isHostName(host) else {
            throw invalid("\"\(host)\" is neither an IPv4 address nor a host name (letters, digits, '-', '_' and '.')")
        }
        self.numeric = nil
    }

    /// RFC 1123 names, plus '_' (seen in service names): labels of 1 to 63 characters, 253 in all.
    static func isHostName(_ host: String) -> Bool {
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
        }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension UInt8 {
    fileprivate var isASCIILetterOrDigit: Bool {
        (self >= 0x30 && self <= 0x39) || (self >= 0x41 && self <= 0x5A) || (self >= 0x61 && self <= 0x7A)
    }
}

/// Resolves host names with libuv's `uv_getaddrinfo`, which runs the blocking `getaddrinfo` on libuv's
/// thread pool and calls back on the loop thread: the loop never waits for DNS.
///
/// Loop thread only, like every handle-owning type of this module. A lookup still running when the loop
/// stops is cancelled if it has not started; one that has started delays the loop's end until it returns.
public final class NameResolver {
    public let loop: EventLoop
    private var pending: [ObjectIdentifier: UnsafeMutablePointer<uv_getaddrinfo_t>] = [:]

    public init(loop: EventLoop) {
        loop.assertInLoop()
        self.loop = loop
    }

    /// Looks `name` up (IPv4 and IPv6, stream sockets) and calls `completion` on the loop thread with
    /// its addresses, each with `port`, in the order the system gave them.
    public func resolve(_ name: String, port: UInt16,
                        completion: @escaping (Result<[SocketAddress], TransportError>) -> Void) throws(TransportError) {
        loop.assertInLoop()
        try loop.checkAcceptsHandles()
        let request = UnsafeMutablePointer<uv_getaddrinfo_t>.allocate(capacity: 1)
        let lookup = Lookup(name: name, port: port, resolver: self, completion: completion)
        uv_req_set_data(UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self),
                        Unmanaged.passRetained(lookup).toOpaque())
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        let status = uv_getaddrinfo(loop.uvLoop, request, nameResolved, name, nil, &hints)
        guard status == 0 else {
            Unmanaged<Lookup>.fromOpaque(uv_req_get_data(UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self))!)
                .release()
            request.deallocate()
            throw TransportError(.invalidArgument, "cannot look up \"\(name)\": \(UVError(code: status, operation: "uv_getaddrinfo"))")
        }
        pending[ObjectIdentifier(lookup)] = request
    }

    /// Cancels the lookups that have not started; their completions report the cancellation.
    public func cancelAll() {
        loop.assertInLoop()
        for request in pending.values {
            _ = uv_cancel(UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self))
        }
    }

    fileprivate func finished(_ lookup: Lookup) { pending[ObjectIdentifier(lookup)] = nil }
}

/// One lookup in flight: what to call back, kept alive by the request until its callback.
private final class Lookup {
    let name: String
    let port: UInt16
    weak var resolver: NameResolver?
    let completion: (Result<[SocketAddress], TransportError>) -> Void

    init(name: String, port: UInt16, resolver: NameResolver, completion: @escaping (Result<[SocketAddress], TransportError>) -> Void) {
        self.name = name
        self.port = port
        self.resolver = resolver
        self.completion = completion
    }
}

private func nameResolved(_ request: UnsafeMutablePointer<uv_getaddrinfo_t>?, _ status: Int32,
                          _ list: UnsafeMutablePointer<addrinfo>?) {
    guard let request else { return }
    defer {
        if let list { uv_freeaddrinfo(list) }
        request.deallocate()
    }
    let raw = UnsafeMutableRawPointer(request).assumingMemoryBound(to: uv_req_t.self)
    guard let data = uv_req_get_data(raw) else { return }
    let lookup = Unmanaged<Lookup>.fromOpaque(data).takeRetainedValue()
    lookup.resolver?.finished(lookup)
    guard status == 0 else {
        lookup.completion(.failure(TransportError(.invalidAddress,
            "\"\(lookup.name)\" does not resolve: \(UVError(code: status, operation: "uv_getaddrinfo"))")))
        return
    }
    var addresses: [SocketAddress] = []
    var current = list
    while let info = current {
        current = info.pointee.ai_next
        guard let sockaddr = info.pointee.ai_addr, let address = SocketAddress(sockaddr) else { continue }
        if let withPort = try? SocketAddress(host: address.host, port: lookup.port), !addresses.contains(withPort) {
            addresses.append(withPort)
        }
    }
    if addresses.isEmpty {
        lookup.completion(.failure(TransportError(.invalidAddress, "\"\(lookup.name)\" resolved to no IPv4 or IPv6 address")))
    } else {
        lookup.completion(.success(addresses))
    }
}
