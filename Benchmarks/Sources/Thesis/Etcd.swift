import Foundation
import Glibc

/// What a client saw when a request failed, in words a table can show.
struct RequestFailure: Error, CustomStringConvertible {
    var description: String
    /// True when no answer came within the client's timeout (as opposed to an error answer).
    var timedOut = false
}

/// A blocking HTTP/1.1 keep-alive connection for POST requests with JSON bodies: enough for etcd's v3
/// JSON gateway. Reconnects on the next request after any failure.
final class HTTPConnection {
    let host: String
    let port: Int
    let timeout: Double
    private var fd: Int32 = -1
    private var pending: [UInt8] = []
    private var scratch = [UInt8](repeating: 0, count: 64 << 10)

    init(host: String = "127.0.0.1", port: Int, timeout: Double) {
        self.host = host
        self.port = port
        self.timeout = timeout
    }

    deinit { disconnect() }

    func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        pending = []
    }

    private func connectIfNeeded() throws(RequestFailure) {
        guard fd < 0 else { return }
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw RequestFailure(description: "socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else {
            let reason = String(cString: strerror(errno))
            close(s)
            throw RequestFailure(description: "connect: \(reason)")
        }
        fd = s
    }

    /// POSTs `body` to `path`; returns the status code and the body.
    func post(_ path: String, _ body: [UInt8]) throws(RequestFailure) -> (status: Int, body: [UInt8]) {
        do throws(RequestFailure) {
            try connectIfNeeded()
            let request = Array("POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
            var offset = 0
            while offset < request.count {
                let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioFailure("send")
                }
                offset += n
            }
            let headEnd = try readUntilHeaderEnd()
            let head = String(decoding: pending[..<headEnd], as: UTF8.self)
            pending.removeFirst(headEnd + 4)
            let lines = head.split(separator: "\r\n")
            guard let statusLine = lines.first, statusLine.split(separator: " ").count >= 2,
                  let status = Int(statusLine.split(separator: " ")[1]) else {
                throw RequestFailure(description: "malformed HTTP status line")
            }
            var length: Int?
            var chunked = false
            for line in lines.dropFirst() {
                let lower = line.lowercased()
                if lower.hasPrefix("content-length:") { length = Int(lower.dropFirst(15).trimmingCharacters(in: .whitespaces)) }
                if lower.hasPrefix("transfer-encoding:") && lower.contains("chunked") { chunked = true }
            }
            let responseBody: [UInt8]
            if chunked {
                responseBody = try readChunked()
            } else {
                let count = length ?? 0
                try fill(count)
                responseBody = Array(pending[..<count])
                pending.removeFirst(count)
            }
            return (status, responseBody)
        } catch {
            disconnect()
            throw error
        }
    }

    private func ioFailure(_ what: String) -> RequestFailure {
        if errno == EAGAIN || errno == EWOULDBLOCK {
            return RequestFailure(description: "no answer within \(Int(timeout)) s", timedOut: true)
        }
        return RequestFailure(description: "\(what): \(String(cString: strerror(errno)))")
    }

    private func readMore() throws(RequestFailure) {
        while true {
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioFailure("recv")
            }
            if n == 0 { throw RequestFailure(description: "connection closed by the server") }
            pending += scratch[..<n]
            return
        }
    }

    private func fill(_ count: Int) throws(RequestFailure) {
        while pending.count < count { try readMore() }
    }

    private func find(_ needle: [UInt8], from start: Int = 0) -> Int? {
        guard pending.count >= needle.count + start else { return nil }
        var i = start
        while i + needle.count <= pending.count {
            if pending[i] == needle[0] && Array(pending[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    private func readUntilHeaderEnd() throws(RequestFailure) -> Int {
        while true {
            if let end = find([13, 10, 13, 10]) { return end }
            try readMore()
        }
    }

    private func readChunked() throws(RequestFailure) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            var lineEnd = find([13, 10])
            while lineEnd == nil { try readMore(); lineEnd = find([13, 10]) }
            let size = Int(String(decoding: pending[..<lineEnd!], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
            pending.removeFirst(lineEnd! + 2)
            try fill(size + 2)
            body += pending[..<size]
            pending.removeFirst(size + 2)
            if size == 0 { return body }
        }
    }
}

/// etcd's v3 API through its JSON gateway: keys and values in base64, 64-bit integers as strings.
final class EtcdClient {
    let http: HTTPConnection

    init(host: String = "127.0.0.1", port: Int, timeout: Double = 10) { http = HTTPConnection(host: host, port: port, timeout: timeout) }

    private func call(_ path: String, _ request: [String: Any]) throws(RequestFailure) -> [String: Any] {
        let body: [UInt8]
        do { body = Array(try JSONSerialization.data(withJSONObject: request)) } catch {
            throw RequestFailure(description: "cannot encode the request")
        }
        let (status, reply) = try http.post(path, body)
        let object = (try? JSONSerialization.jsonObject(with: Data(reply))) as? [String: Any]
        guard status == 200, let object else {
            let message = (object?["message"] as? String) ?? String(decoding: reply.prefix(120), as: UTF8.self)
            throw RequestFailure(description: "HTTP \(status): \(message)")
        }
        return object
    }

    static func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// The counter stored at `key` (0 if absent) and the key's mod_revision (0 if absent).
    func read(_ key: String) throws(RequestFailure) -> (value: Int, modRevision: String) {
        let reply = try call("/v3/kv/range", ["key": Self.b64(key)])
        return Self.counter(in: reply)
    }

    private static func counter(in range: [String: Any]) -> (value: Int, modRevision: String) {
        guard let kv = (range["kvs"] as? [[String: Any]])?.first else { return (0, "0") }
        let text = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        return (Int(text ?? "") ?? 0, kv["mod_revision"] as? String ?? "0")
    }

    /// The consensus way to increment a counter: read it, then write value+1 in a transaction that
    /// holds only if the key's revision is still the one read; on conflict the transaction's failure
    /// branch returns the current value and revision, and the client tries again. Returns the retries.
    func compareAndSwapIncrement(_ key: String) throws(RequestFailure) -> Int {
        var (value, revision) = try read(key)
        var conflicts = 0
        while true {
            let txn: [String: Any] = [
                "compare": [["key": Self.b64(key), "result": "EQUAL", "target": "MOD", "mod_revision": revision]],
                "success": [["request_put": ["key": Self.b64(key), "value": Self.b64(String(value + 1))]]],
                "failure": [["request_range": ["key": Self.b64(key)]]],
            ]
            let reply = try call("/v3/kv/txn", txn)
            if reply["succeeded"] as? Bool == true { return conflicts }
            conflicts += 1
            guard let range = ((reply["responses"] as? [[String: Any]])?.first?["response_range"]) as? [String: Any] else {
                throw RequestFailure(description: "a failed transaction without its range")
            }
            (value, revision) = Self.counter(in: range)
        }
    }

    func put(_ key: String, _ value: String) throws(RequestFailure) {
        _ = try call("/v3/kv/put", ["key": Self.b64(key), "value": Self.b64(value)])
    }

    /// This member's ID and the leader's, as the member sees them.
    func status() throws(RequestFailure) -> (member: String, leader: String) {
        let reply = try call("/v3/maintenance/status", [:])
        let header = reply["header"] as? [String: Any]
        return (header?["member_id"] as? String ?? "", reply["leader"] as? String ?? "")
    }
}
