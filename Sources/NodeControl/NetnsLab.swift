// A small network of Linux network namespaces joined by a bridge, so that nodes talk over a real
// (virtual) network and can be partitioned there, without the daemons being told. Shared by crdtctl
// (`cluster start --netns`, `check --partitions netns`) and the thesis suite in Benchmarks/.
//
// The layout, for prefix P and subnet S (the first three octets of a /24):
//   bridge P-br in the root namespace, address S.254/24 (crdtctl and the test clients talk from there);
//   for node i (1-based): namespace P-ni, a veth pair P-vi (root side, a port of the bridge) and eth0
//   inside the namespace, address S.i/24.
// A partition is nftables rules inside the receiving node's namespace (table `inet crdtns`, chain
// `input`) that drop packets from the nodes it must not hear. Nothing is added to the root namespace's
// firewall; the host's own address is never blocked, so clients keep reaching every side.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why a network lab could not be set up or changed. `unavailable` means this machine cannot run one
/// (not root, no iproute2 or nftables, no network namespaces): a caller reports "could not run".
public struct NetnsError: Error, CustomStringConvertible {
    public var description: String
    public var unavailable: Bool
    public init(_ description: String, unavailable: Bool = false) {
        self.description = description
        self.unavailable = unavailable
    }
}

/// Namespaces, veths and a bridge, named with one prefix; see the file header for the layout.
public struct NetnsLab: Codable, Sendable, Equatable {
    /// Every name this lab creates starts with `prefix-`; leftovers with it are removed on set-up.
    public var prefix: String
    /// The first three octets of the lab's /24, such as "10.77.0".
    public var subnet: String
    public var nodes: Int

    /// The nftables table each namespace's cuts live in.
    public static let table = "crdtns"

    public init(prefix: String = "crdtns", subnet: String = "10.77.0", nodes: Int) throws {
        // Interface names are at most 15 bytes: "P-br", "P-v64".
        guard !prefix.isEmpty, prefix.count <= 9,
              prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw NetnsError("the namespace prefix '\(prefix)' must be 1 to 9 letters or digits")
        }
        let octets = subnet.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 3, octets.allSatisfy({ UInt8($0) != nil }) else {
            throw NetnsError("the subnet '\(subnet)' must be three octets, such as 10.77.0 (the lab's /24)")
        }
        guard (1...64).contains(nodes) else { throw NetnsError("a network lab holds 1 to 64 nodes") }
        self.prefix = prefix
        self.subnet = subnet
        self.nodes = nodes
    }

    public var bridge: String { "\(prefix)-br" }
    /// The root namespace's address on the bridge: where clients and crdtctl talk from.
    public var hostAddress: String { "\(subnet).254" }
    /// Node `i`'s (0-based) namespace.
    public func namespace(_ i: Int) -> String { "\(prefix)-n\(i + 1)" }
    /// Node `i`'s (0-based) address.
    public func address(_ i: Int) -> String { "\(subnet).\(i + 1)" }
    func hostVeth(_ i: Int) -> String { "\(prefix)-v\(i + 1)" }
    func innerVeth(_ i: Int) -> String { "\(prefix)-i\(i + 1)" }

    /// Whether the bridge still exists. Connections to the lab's addresses are made only while it does:
    /// without it the kernel would route them to the default gateway, off this machine.
    public var isUp: Bool { FileManager.default.fileExists(atPath: "/sys/class/net/\(bridge)") }

    // MARK: Availability

    /// Nil when this machine can run a lab; otherwise why not, said for a person.
    public static func unavailableReason() -> String? {
        if geteuid() != 0 {
            return "network namespaces need root (ip netns, veth pairs, nftables): run as root, or use the daemon's own fault injection (no --netns)"
        }
        guard let ip = tool("ip") else { return "iproute2's `ip` is not installed: run scripts/setup (apt-get install iproute2)" }
        guard tool("nft") != nil else { return "nftables' `nft` is not installed: run scripts/setup (apt-get install nftables)" }
        let listed = run([ip, "netns", "list"])
        guard listed.status == 0 else { return "`ip netns` does not work here: \(listed.output.trimmingCharacters(in: .whitespacesAndNewlines))" }
        return nil
    }

    /// The path of `name` on the PATH or in the system binary folders (root's PATH may lack /usr/sbin).
    public static func tool(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for directory in path + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] where !directory.isEmpty {
            let candidate = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The command that runs `arguments` inside node `i`'s namespace (`ip netns exec` execs in place,
    /// so the process id is the program's own and signals reach it).
    public func execPrefix(_ i: Int) throws -> [String] {
        [try Self.required("ip"), "netns", "exec", namespace(i)]
    }

    // MARK: Set-up and tear-down

    /// Removes leftovers of an earlier lab with this prefix (a crashed run), then creates the bridge,
    /// namespaces and veth pairs. On failure everything created is removed again.
    public func setUp() throws {
        if let reason = Self.unavailableReason() { throw NetnsError(reason, unavailable: true) }
        Self.removeLeftovers(prefix: prefix)
        try checkSubnetIsFree()
        do {
            try ip(["link", "add", bridge, "type", "bridge"])
            try ip(["addr", "add", "\(hostAddress)/24", "dev", bridge])
            try ip(["link", "set", bridge, "up"])
            for i in 0..<nodes {
                let ns = namespace(i)
                do {
                    try ip(["netns", "add", ns])
                } catch let error as NetnsError {
                    throw NetnsError("cannot create network namespace \(ns): \(error.description)", unavailable: true)
                }
                try ip(["link", "add", hostVeth(i), "type", "veth", "peer", "name", innerVeth(i)])
                try ip(["link", "set", innerVeth(i), "netns", ns])
                try ip(["link", "set", hostVeth(i), "master", bridge, "up"])
                try ip(["-n", ns, "link", "set", "lo", "up"])
                try ip(["-n", ns, "link", "set", innerVeth(i), "name", "eth0"])
                try ip(["-n", ns, "addr", "add", "\(address(i))/24", "dev", "eth0"])
                try ip(["-n", ns, "link", "set", "eth0", "up"])
            }
            try waitUntilReachable()
        } catch {
            tearDown()
            throw error
        }
    }

    /// Kills whatever still runs in the lab's namespaces (processes the lab's user started there), then
    /// removes the namespaces (which removes their veths), any veth left behind and the bridge. Safe to
    /// call twice, or on a lab that was never set up.
    public func tearDown() {
        Self.removeLeftovers(prefix: prefix)
    }

    /// Removes every namespace and link named `prefix-*`, killing the processes in those namespaces.
    public static func removeLeftovers(prefix: String) {
        guard let ip = tool("ip") else { return }
        let mine = "\(prefix)-"
        let namespaces = run([ip, "netns", "list"]).output.split(whereSeparator: \.isNewline)
            .compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(mine) }
        for ns in namespaces {
            let pids = run([ip, "netns", "pids", ns]).output.split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            for pid in pids { kill(pid, SIGCONT); kill(pid, SIGKILL) }
            // A killed process leaves its namespace only once it is gone; wait up to 5 s.
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline,
                  !run([ip, "netns", "pids", ns]).output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                Thread.sleep(forTimeInterval: 0.02)
            }
            _ = run([ip, "netns", "delete", ns])
        }
        // `ip -o link` names a veth "NAME@PEER:"; a link removed with its namespace is gone already.
        let links = run([ip, "-o", "link", "show"]).output.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let name = String(fields[1].dropLast().split(separator: "@").first ?? "")
            return name.hasPrefix(mine) ? name : nil
        }
        for link in links where !link.hasSuffix("-br") { _ = run([ip, "link", "delete", link]) }
        for link in links where link.hasSuffix("-br") { _ = run([ip, "link", "delete", link]) }
    }

    /// Refuses a subnet that an interface outside the lab already uses: its addresses would not be ours.
    func checkSubnetIsFree() throws {
        let ip = try Self.required("ip")
        for line in Self.run([ip, "-o", "-4", "addr", "show"]).output.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ")
            guard fields.count > 3 else { continue }
            let device = String(fields[1]), cidr = String(fields[3])
            if cidr.hasPrefix(subnet + ".") && !device.hasPrefix("\(prefix)-") {
                throw NetnsError("\(device) already has \(cidr) in the lab's subnet \(subnet).0/24: choose another (--netns-subnet)")
            }
        }
    }

    /// Pings every node from the host once, so a set-up that looks right but does not forward is caught
    /// here rather than as nodes that never meet.
    func waitUntilReachable() throws {
        guard let ping = Self.tool("ping") else { return }
        for i in 0..<nodes {
            let deadline = ContinuousClock.now + .seconds(5)
            var reached = false
            while !reached && ContinuousClock.now < deadline {
                reached = Self.run([ping, "-c", "1", "-W", "1", "-I", bridge, address(i)]).status == 0
            }
            guard reached else { throw NetnsError("the host cannot reach \(address(i)) in \(namespace(i)) over \(bridge)") }
        }
    }

    // MARK: Partitions

    /// Replaces every cut: `blocked[i]` lists the nodes whose packets node `i` no longer receives. A full
    /// partition blocks both directions; a one-way cut from a to b is `b` blocking `a`.
    public func setCuts(_ blocked: [[Int]]) throws {
        var errors: [String] = []
        for i in 0..<nodes {
            let sources = i < blocked.count ? blocked[i].filter { $0 != i } : []
            if let error = nft(i, rules(sources: sources, replace: true)) { errors.append(error) }
        }
        if !errors.isEmpty { throw NetnsError(errors.joined(separator: "; ")) }
    }

    /// Adds one one-way cut: packets from node `from` no longer reach node `to`. Earlier cuts stay.
    public func cut(from: Int, to: Int) throws {
        if let error = nft(to, rules(sources: [from], replace: false)) { throw NetnsError(error) }
    }

    /// Takes node `i`'s link down (or up again): it is cut off from everyone, its clients included, as
    /// by a pulled cable.
    public func unplug(_ i: Int, _ down: Bool = true) throws {
        try ip(["-n", namespace(i), "link", "set", "eth0", down ? "down" : "up"])
    }

    /// Lifts every cut, loss, delay and unplugged link.
    public func heal() throws {
        try setCuts([])
        var errors: [String] = []
        for i in 0..<nodes {
            do { try unplug(i, false) } catch { errors.append("\(error)") }
            if let error = nft(i, "table inet \(Self.lossTable)\ndelete table inet \(Self.lossTable)\n") { errors.append(error) }
            // Without netem (none set, or a kernel without it) there is nothing to delete.
            let result = Self.run(try execPrefix(i) + [try Self.required("tc"), "qdisc", "show", "dev", "eth0"])
            if result.output.contains("netem") {
                let deleted = Self.run(try execPrefix(i) + [try Self.required("tc"), "qdisc", "del", "dev", "eth0", "root"])
                if deleted.status != 0 { errors.append("\(namespace(i)): tc: \(deleted.output.trimmingCharacters(in: .whitespacesAndNewlines))") }
            }
        }
        if !errors.isEmpty { throw NetnsError(errors.joined(separator: "; ")) }
    }

    /// The nftables table of a node's packet loss (its output chain), apart from the cuts.
    public static let lossTable = "crdtnsloss"

    /// Drops `lossPercent` percent of the packets node `i` sends (nftables, counted), and/or delays them
    /// (tc netem, which needs a kernel with CONFIG_NET_SCH_NETEM). Replaces the node's earlier loss and delay.
    public func degrade(_ i: Int, delayMilliseconds: Int, jitterMilliseconds: Int = 0, lossPercent: Int) throws {
        let table = "inet \(Self.lossTable)"
        var script = "table \(table)\ndelete table \(table)\n"
        if lossPercent > 0 {
            script += "table \(table) {\n  chain output {\n    type filter hook output priority 0; policy accept;\n"
                + "    oifname \"eth0\" numgen random mod 100 < \(lossPercent) counter drop\n  }\n}\n"
        }
        if let error = nft(i, script) { throw NetnsError(error) }
        guard delayMilliseconds > 0 || jitterMilliseconds > 0 else { return }
        let netem = ["qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "\(delayMilliseconds)ms"]
            + (jitterMilliseconds > 0 ? ["\(jitterMilliseconds)ms"] : [])
        let result = Self.run(try execPrefix(i) + [try Self.required("tc")] + netem)
        guard result.status == 0 else {
            let said = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            if said.contains("qdisc kind is unknown") {
                throw NetnsError("this kernel has no netem (CONFIG_NET_SCH_NETEM), so packets cannot be delayed here; loss works without it",
                                 unavailable: true)
            }
            throw NetnsError("\(namespace(i)): tc \(netem.joined(separator: " ")): \(said)")
        }
    }

    /// How many packets node `i`'s loss rule has dropped so far (0 without one).
    public func droppedByLoss(_ i: Int) throws -> Int {
        let result = Self.run(try execPrefix(i) + [try Self.required("nft"), "list", "table", "inet", Self.lossTable])
        guard result.status == 0 else { return 0 }
        let words = result.output.split(whereSeparator: \.isWhitespace)
        guard let at = words.firstIndex(of: "packets"), at + 1 < words.count else { return 0 }
        return Int(words[at + 1]) ?? 0
    }

    /// The addresses node `i` drops packets from now, read back from its namespace's ruleset.
    public func blockedSources(_ i: Int) throws -> [String] {
        let result = Self.run(try execPrefix(i) + [try Self.required("nft"), "list", "ruleset"])
        guard result.status == 0 else { throw NetnsError("\(namespace(i)): nft list ruleset: \(result.output)") }
        return result.output.split(whereSeparator: \.isNewline).compactMap { line in
            let words = line.split(separator: " ")
            guard let at = words.firstIndex(of: "saddr"), words.last == "drop", at + 1 < words.count else { return nil }
            return String(words[at + 1])
        }
    }

    /// An nft script for one namespace: the table and its input chain (declared idempotently), emptied
    /// first when `replace`, then one drop rule per source.
    func rules(sources: [Int], replace: Bool) -> String {
        let table = "inet \(Self.table)"
        var script = replace ? "table \(table)\ndelete table \(table)\n" : ""
        // Healed: no table at all, so a healed namespace's ruleset is empty.
        if replace && sources.isEmpty { return script }
        script += "table \(table) {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n"
        for source in sources { script += "add rule \(table) input ip saddr \(address(source)) drop\n" }
        return script
    }

    /// Runs an nft script inside node `i`'s namespace; an error text, or nil.
    func nft(_ i: Int, _ script: String) -> String? {
        do {
            let result = Self.run(try execPrefix(i) + [try Self.required("nft"), "-f", "-"], input: script)
            return result.status == 0 ? nil : "\(namespace(i)): nft: \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))"
        } catch {
            return "\(error)"
        }
    }

    // MARK: Processes

    func ip(_ arguments: [String]) throws {
        let result = Self.run([try Self.required("ip")] + arguments)
        guard result.status == 0 else {
            throw NetnsError("ip \(arguments.joined(separator: " ")): \(result.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    static func required(_ name: String) throws -> String {
        guard let path = tool(name) else { throw NetnsError("`\(name)` is not installed: run scripts/setup", unavailable: true) }
        return path
    }

    /// Runs a program to completion; its exit status and its output and errors together.
    @discardableResult
    public static func run(_ arguments: [String], input: String? = nil) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let stdin = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        do {
            try process.run()
        } catch {
            return (127, "cannot run \(arguments[0]): \(error.localizedDescription)")
        }
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try? stdin.fileHandleForWriting.close()
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
