// Starting and watching crdtd nodes from another process: their command line, the cluster key, when they
// all see each other, their digests and their metrics. Shared by crdtctl (local clusters, bench, check)
// and the thesis suite in Benchmarks/, which used to carry a copy each.
import Foundation
import RESP
import RESPClient
#if canImport(Glibc)
import Glibc
#endif

/// What went wrong talking to a node, said for a person.
public struct NodeControlError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The flags that start node `name` on 127.0.0.1 with fault injection on (test clusters only), seeded with
/// the peer ports in `seeds`, under the cluster key in `keyFile` (nil: `--insecure`). Callers append their
/// own flags (durability, log level, passwords).
public func crdtdArguments(name: String, dataDir: String, clientPort: Int, peerPort: Int, metricsPort: Int,
                           seeds: [Int], keyFile: String?) -> [String] {
    crdtdArguments(name: name, dataDir: dataDir, host: "127.0.0.1", clientPort: clientPort, peerPort: peerPort,
                   metricsPort: metricsPort, seedAddresses: seeds.map { "127.0.0.1:\($0)" }, keyFile: keyFile)
}

/// The same flags for a node listening on `host` (its address in a network namespace, say), seeded
/// with the peer addresses (`host:port`) in `seedAddresses`.
public func crdtdArguments(name: String, dataDir: String, host: String, clientPort: Int, peerPort: Int, metricsPort: Int,
                           seedAddresses: [String], keyFile: String?) -> [String] {
    var arguments = [
        "--node-id", name, "--data-dir", dataDir,
        "--client-addr", "\(host):\(clientPort)", "--peer-addr", "\(host):\(peerPort)",
        "--metrics-addr", "\(host):\(metricsPort)", "--allow-fault-injection",
    ]
    for seed in seedAddresses { arguments += ["--seed", seed] }
    arguments += keyFile.map { ["--cluster-key-file", $0] } ?? ["--insecure"]
    return arguments
}

/// Writes a fresh random 32-byte cluster key, base64 on one line, as `--cluster-key-file` reads it.
public func writeClusterKey(to path: String) throws {
    var generator = SystemRandomNumberGenerator()
    let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    try (Data(key).base64EncodedString() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
}

/// CRDT.PEERS as one dictionary per member: RESP3 maps, or the flat field/value arrays RESP2 shows them
/// as. Integers are plain digits.
public func peerFields(_ reply: RESPReply) -> [[String: String]] {
    guard case .array(let members) = reply else { return [] }
    func plain(_ value: RESPReply) -> String {
        if case .integer(let number) = value { return String(number) }
        return value.text
    }
    return members.map { member in
        var fields: [String: String] = [:]
        switch member {
        case .map(let entries):
            for entry in entries { fields[plain(entry.key)] = plain(entry.value) }
        case .array(let flat):
            for pair in stride(from: 0, to: flat.count - 1, by: 2) { fields[plain(flat[pair])] = plain(flat[pair + 1]) }
        default:
            break
        }
        return fields
    }
}

/// Polls every 100 ms until each of `count` nodes lists the other `count - 1` as alive in CRDT.PEERS
/// (`peers(i)` asks node `i`, nil when it does not answer); false after `timeout`. `checkRunning(i)` throws
/// when node `i` has exited, so a node that died during start is reported at once.
public func waitForMembership(count: Int, timeout: Duration, peers: (Int) -> RESPReply?,
                              checkRunning: (Int) throws -> Void = { _ in }) throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        for i in 0..<count { try checkRunning(i) }
        let ready = (0..<count).allSatisfy { i in
            guard let reply = peers(i) else { return false }
            return peerFields(reply).count { ($0["state"] ?? "").hasPrefix("alive") } >= count - 1
        }
        if ready { return true }
        Thread.sleep(forTimeInterval: 0.1)
    }
    return false
}

/// Polls `condition` every `interval` until it holds; the time that took, or nil after `timeout`.
public func waitUntil(timeout: Duration, every interval: Duration = .milliseconds(20), _ condition: () -> Bool) -> Duration? {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < timeout {
        if condition() { return ContinuousClock.now - start }
        Thread.sleep(forTimeInterval: interval / .seconds(1))
    }
    return nil
}

/// A minimal HTTP GET to `host` (an IPv4 address) over a blocking socket, for scraping crdtd's /metrics;
/// a read waits `timeout` seconds at most.
public func httpGet(host: String = "127.0.0.1", port: Int, path: String, timeout: Int = 5) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr(host)
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else { throw NodeControlError("cannot reach metrics on \(host):\(port)") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        out += buffer[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

/// The sum of a Prometheus metric's samples in `text` over the series whose labels contain `labels`.
public func metricSum(_ text: String, _ name: String, labels: String = "") -> Double {
    var total = 0.0
    for line in text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
        let series = line.split(separator: " ").first.map(String.init) ?? ""
        guard series == name || series.hasPrefix(name + "{") else { continue }
        guard labels.isEmpty || series.contains(labels) else { continue }
        total += Double(line.split(separator: " ").last ?? "0") ?? 0
    }
    return total
}

extension RESPReply {
    /// A short human rendering, as redis-cli shows replies.
    public var text: String {
        switch self {
        case .simpleString(let s): return s
        case .error(let e): return "(error) \(e)"
        case .integer(let i): return "(integer) \(i)"
        case .bulkString(let b): return String(decoding: b, as: UTF8.self)
        case .null, .nullArray: return "(nil)"
        case .array(let items), .set(let items), .push(let items): return "[" + items.map(\.text).joined(separator: ", ") + "]"
        case .map(let entries): return "{" + entries.map { "\($0.key.text): \($0.value.text)" }.joined(separator: ", ") + "}"
        case .double(let d): return "\(d)"
        case .boolean(let b): return "\(b)"
        case .bigNumber(let n): return n
        case .verbatimString(_, let t): return String(decoding: t, as: UTF8.self)
        }
    }
}
