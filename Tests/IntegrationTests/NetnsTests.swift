import Foundation
import RESP
import RESPClient
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Why this machine cannot run NetnsTests (printed once), or nil.
let netnsUnavailableReason: String? = {
    var reason: String?
    if geteuid() != 0 {
        reason = "not root"
    } else if NetnsTests.run(["ip", "netns", "list"]).status != 0 {
        reason = "`ip netns` is unavailable"
    }
    if let reason { print("NetnsTests skipped: \(reason); network-namespace partitions are not tested on this machine") }
    return reason
}()

/// Partitions in a real (virtual) network: three crdtd nodes in Linux network namespaces joined by a
/// bridge, cut by nftables rules the daemons know nothing of. Needs root and `ip netns`; without them the
/// suite is skipped and says why. Its names (prefix crdtnst, crdtnsc) and addresses (10.77.9.0/24,
/// 10.77.10.0/24) are its own, so it touches nothing else.
@Suite(.serialized, .enabled(if: netnsUnavailableReason == nil, "needs root and ip netns (see the printed reason)"))
struct NetnsTests {
    static let prefix = "crdtnst", subnet = "10.77.9", basePort = 43_000

    static var binaries: String { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path }

    /// Runs a program (looked up on the PATH plus the system folders); its status and output.
    @discardableResult
    static func run(_ arguments: [String], limit: Duration = .seconds(60)) -> (status: Int32, output: String) {
        let out = NSTemporaryDirectory() + "netns-test-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: out) }
        guard let handle = FileHandle(forWritingAtPath: out) else { return (127, "cannot write \(out)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = binaries + ":/usr/sbin:/usr/bin:/sbin:/bin"
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (127, "\(error)") }
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            kill(process.processIdentifier, SIGINT)
            Thread.sleep(forTimeInterval: 10)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    /// Every namespace and link whose name starts with `prefix-`.
    static func leftovers(_ prefix: String) -> [String] {
        let namespaces = run(["ip", "netns", "list"]).output.split(whereSeparator: \.isNewline)
            .compactMap { $0.split(separator: " ").first.map(String.init) }
        let links = run(["ip", "-o", "link", "show"]).output.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            let fields = line.split(separator: " ")
            return fields.count > 1 ? String(fields[1].dropLast().split(separator: "@").first ?? "") : nil
        }
        return (namespaces + links).filter { $0.hasPrefix(prefix + "-") }
    }

    func connect(_ node: Int) throws -> RESPConnection {
        try RESPConnection(host: "\(Self.subnet).\(node)", port: Self.basePort + node, timeout: .seconds(3))
    }

    func command(_ node: Int, _ arguments: String...) -> RESPReply? {
        guard let connection = try? connect(node) else { return nil }
        defer { connection.close() }
        return try? connection.send(arguments)
    }

    @Test func bothSidesOfANetworkPartitionAcceptWritesAndConvergeWithEveryAcknowledgedWriteAfterTheHeal() throws {
        let dir = NSTemporaryDirectory() + "crdtd-netns-\(UUID().uuidString)"
        func crdtctl(_ arguments: [String]) -> (status: Int32, output: String) { Self.run(["crdtctl"] + arguments + ["--dir", dir]) }
        func ctl(_ arguments: String...) -> (status: Int32, output: String) {
            let result = crdtctl(arguments)
            #expect(result.status == 0, "crdtctl \(arguments.joined(separator: " ")) exited \(result.status):\n\(result.output)")
            return result
        }

        // A crashed earlier run's leftovers: a namespace with a process still in it, and a stray veth pair.
        Self.run(["ip", "netns", "add", "\(Self.prefix)-n2"])
        Self.run(["ip", "link", "add", "\(Self.prefix)-v9", "type", "veth", "peer", "name", "\(Self.prefix)-i9"])
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        sleeper.arguments = ["ip", "netns", "exec", "\(Self.prefix)-n2", "sleep", "120"]
        try sleeper.run()
        defer { if sleeper.isRunning { kill(sleeper.processIdentifier, SIGKILL) } }
        #expect(Self.leftovers(Self.prefix).count >= 3)

        let start = ctl("cluster", "start", "--netns", "--nodes", "3", "--base-port", String(Self.basePort),
                        "--netns-prefix", Self.prefix, "--netns-subnet", Self.subnet)
        defer { _ = crdtctl(["cluster", "stop"]) }
        guard start.status == 0 else { return }
        #expect(eventually(timeout: .seconds(5)) { !sleeper.isRunning }, "the leftover namespace's process was killed")
        #expect(!Self.leftovers(Self.prefix).contains("\(Self.prefix)-v9"), "the stray veth was removed")
        #expect(start.output.contains("netns \(Self.prefix)-n1"), "\(start.output)")

        // Each crdtd runs in its own namespace, at its own address.
        let cluster = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/cluster.json"))) as? [String: Any]
        let pids = (cluster?["nodes"] as? [[String: Any]] ?? []).compactMap { $0["pid"] as? Int }
        #expect(pids.count == 3)
        for (i, pid) in pids.enumerated() {
            let identified = Self.run(["ip", "netns", "identify", String(pid)]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(identified == "\(Self.prefix)-n\(i + 1)", "crdtd pid \(pid) runs in its own namespace")
        }

        // n1 alone against n2 and n3, in the network only.
        _ = ctl("partition", "n1", "n2,n3")
        let ruleset = Self.run(["ip", "netns", "exec", "\(Self.prefix)-n1", "nft", "list", "ruleset"]).output
        #expect(ruleset.contains("ip saddr \(Self.subnet).2 drop") && ruleset.contains("ip saddr \(Self.subnet).3 drop"), "\(ruleset)")
        let status = (try? JSONSerialization.jsonObject(with: Data(ctl("status", "--json").output.utf8))) as? [[String: Any]] ?? []
        let cutFrom = Dictionary(uniqueKeysWithValues: status.compactMap { row in
            (row["node"] as? String).map { ($0, (row["partitionedFrom"] as? [String]) ?? []) }
        })
        #expect(cutFrom == ["n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]], "status shows the network's cuts: \(status)")
        if case .array(let peers)? = command(1, "CRDT.PEERS") {
            #expect(!peers.map { String(describing: $0) }.joined().contains("partitioned"), "the daemon was not told of the partition")
        }

        // Writes on both sides, each acknowledged.
        var acknowledged: [(node: Int, member: String, delta: Int)] = []
        for k in 0..<20 {
            for (node, delta) in [(1, 1), (3, 10)] {
                guard let connection = try? connect(node) else { continue }
                defer { connection.close() }
                let member = "n\(node)-\(k)"
                let replies = try? connection.send(many: [["INCRBY", "visits", String(delta)], ["SADD", "seen", member]])
                if let replies, !replies[0].isError, replies[1] == .integer(1) { acknowledged.append((node, member, delta)) }
            }
        }
        #expect(acknowledged.filter { $0.node == 1 }.count == 20, "the lone side accepted every write")
        #expect(acknowledged.filter { $0.node == 3 }.count == 20, "the majority side accepted every write")

        // The cut is real: after 2 s neither side has the other's writes.
        Thread.sleep(forTimeInterval: 2)
        #expect(command(2, "SISMEMBER", "seen", "n1-0") == .integer(0), "n1's write crossed the partition")
        #expect(command(1, "SISMEMBER", "seen", "n3-0") == .integer(0), "n3's write crossed the partition")
        #expect(command(2, "SISMEMBER", "seen", "n3-0") == .integer(1), "n3's side still replicates within itself")

        // Heal; every digest agrees, and every acknowledged write is on every node.
        _ = ctl("heal")
        #expect(Self.run(["ip", "netns", "exec", "\(Self.prefix)-n1", "nft", "list", "ruleset"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "the heal removed every rule")
        let agreed = eventually(timeout: .seconds(30)) {
            let digests = (1...3).map { command($0, "CRDT.DIGEST") }
            return digests.allSatisfy { $0 != nil && !$0!.isError } && Set(digests.map { String(describing: $0!) }).count == 1
        }
        #expect(agreed, "the nodes converged: \((1...3).map { command($0, "CRDT.DIGEST").map { String(describing: $0) } ?? "no answer" })")
        let expectedCount = acknowledged.reduce(0) { $0 + $1.delta }
        for node in 1...3 {
            #expect(command(node, "GET", "visits") == .bulk(String(expectedCount)), "n\(node) holds every acknowledged increment")
            guard case .array(let members)? = command(node, "SMEMBERS", "seen") else {
                Issue.record("n\(node) did not answer SMEMBERS")
                continue
            }
            let present = Set(members.compactMap { if case .bulkString(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } })
            let missing = acknowledged.map(\.member).filter { !present.contains($0) }
            #expect(missing.isEmpty, "n\(node) lost acknowledged adds: \(missing)")
        }

        // A one-way cut: n2's packets no longer enter n1 or n3; n2 still hears both. n2's writes stay on n2.
        _ = ctl("cut", "n2", "n1")
        _ = ctl("cut", "n2", "n3")
        for (node, expected) in [(1, true), (2, false), (3, true)] {
            let rules = Self.run(["ip", "netns", "exec", "\(Self.prefix)-n\(node)", "nft", "list", "ruleset"]).output
            #expect(rules.contains("ip saddr \(Self.subnet).2 drop") == expected, "n\(node)'s rules: \(rules)")
        }
        #expect(command(2, "SADD", "seen", "one-way") == .integer(1))
        Thread.sleep(forTimeInterval: 1.5)
        #expect(command(1, "SISMEMBER", "seen", "one-way") == .integer(0), "n2's packets are dropped on their way to n1")
        #expect(command(3, "SISMEMBER", "seen", "one-way") == .integer(0), "and on their way to n3")
        _ = ctl("heal")
        #expect(eventually(timeout: .seconds(30)) { (1...3).allSatisfy { command($0, "SISMEMBER", "seen", "one-way") == .integer(1) } },
                "after the heal n2's write reached everyone")

        // Loss in the network: 20 % of n1's packets are dropped (nftables counts them); TCP retransmits, so
        // n1 still answers and its writes still spread. The heal lifts the loss.
        _ = ctl("netem", "n1", "--loss", "20")
        let lossy = try RESPConnection(host: "\(Self.subnet).1", port: Self.basePort + 1, timeout: .seconds(15))
        for k in 0..<30 { #expect((try? lossy.send(["SADD", "seen", "lossy-\(k)"])) == .integer(1), "n1 answers through the loss") }
        lossy.close()
        let counted = Self.run(["ip", "netns", "exec", "\(Self.prefix)-n1", "nft", "list", "table", "inet", "crdtnsloss"]).output
        let dropped = counted.split(whereSeparator: \.isWhitespace).drop { $0 != "packets" }.dropFirst().first.flatMap { Int($0) } ?? 0
        #expect(dropped > 0, "the loss rule dropped packets: \(counted)")
        _ = ctl("heal")
        #expect(Self.run(["ip", "netns", "exec", "\(Self.prefix)-n1", "nft", "list", "ruleset"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "the heal removed the loss")
        #expect(eventually(timeout: .seconds(20)) { (2...3).allSatisfy { command($0, "SCARD", "seen") == command(1, "SCARD", "seen") } })
        // Delay needs netem in the kernel; without it crdtctl says so and exits 2 (could not run).
        let hasNetem = FileManager.default.fileExists(atPath: "/proc/config.gz")
            ? Self.run(["sh", "-c", "zcat /proc/config.gz | grep -q '^CONFIG_NET_SCH_NETEM=[ym]'"]).status == 0 : true
        let delay = crdtctl(["netem", "n1", "--delay", "300"])
        if hasNetem && delay.status == 0 {
            let start = ContinuousClock.now
            _ = command(1, "PING")
            #expect(ContinuousClock.now - start >= .milliseconds(300), "n1 answered through the delay")
            _ = ctl("heal")
        } else {
            #expect(delay.status == 2 && delay.output.contains("netem"), "without netem, exit 2 naming it: \(delay.output)")
        }

        // A pulled cable: n3's link is down, so neither peers nor clients reach it, and a write on n1 waits
        // for it; the heal plugs it back in and n3 catches up.
        _ = ctl("unplug", "n3")
        #expect(command(3, "PING") == nil, "an unplugged node does not answer")
        #expect(command(1, "SADD", "seen", "while-unplugged") == .integer(1))
        _ = ctl("heal")
        #expect(eventually(timeout: .seconds(30)) { command(3, "SISMEMBER", "seen", "while-unplugged") == .integer(1) },
                "after the heal n3 has the write it missed")

        // Stop removes the namespaces, veths and bridge.
        _ = ctl("cluster", "stop")
        #expect(Self.leftovers(Self.prefix).isEmpty, "left behind: \(Self.leftovers(Self.prefix))")
    }

    @Test func checkWithNetworkPartitionsPassesAndCleansUp() throws {
        let prefix = "crdtnsc"
        let report = NSTemporaryDirectory() + "crdtd-netns-check-\(UUID().uuidString)"
        let result = Self.run(["crdtctl", "check", "--partitions", "netns", "--netns-prefix", prefix, "--netns-subnet", "10.77.10",
                               "--nodes", "3", "--base-port", "43400", "--dir", report + "-cluster", "--faults", "partition",
                               "--rate", "60", "--duration", "9", "--fault-duration", "1", "--fault-gap", "0.3",
                               "--converge-timeout", "20", "--seed", "7", "--report", report], limit: .seconds(50))
        #expect(result.status == 0, "check with netns partitions must pass:\n\(result.output)")
        #expect(result.output.contains("each in a network namespace"), "\(result.output)")
        let verdict = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report + "/verdict.json")))) as? [String: Any]
        let injected = verdict?["faultsInjected"] as? [String: Int] ?? [:]
        #expect(injected.keys.filter { $0.hasPrefix("partition") }.count >= 3, "partitions were injected: \(injected)")
        #expect(Self.leftovers(prefix).isEmpty, "left behind: \(Self.leftovers(prefix))")
    }

    @Test func anInterruptedCheckStillJudgesAndRemovesItsNamespaces() throws {
        let prefix = "crdtnsi"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binaries + "/crdtctl")
        process.arguments = ["check", "--partitions", "netns", "--netns-prefix", prefix, "--netns-subnet", "10.77.11",
                             "--nodes", "3", "--base-port", "43700", "--dir", NSTemporaryDirectory() + "crdtd-netns-int-\(UUID().uuidString)",
                             "--faults", "partition", "--rate", "40", "--duration", "120", "--fault-duration", "1", "--seed", "3"]
        let out = NSTemporaryDirectory() + "crdtd-netns-int-\(UUID().uuidString).out"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = process.standardOutput
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Once the nodes serve in their namespaces, and the load has run a little, ^C.
        #expect(eventually(timeout: .seconds(30)) {
            Self.run(["ip", "netns", "pids", "\(prefix)-n3"]).output.contains(where: \.isNumber)
        }, "the check started its nodes in namespaces")
        Thread.sleep(forTimeInterval: 5)
        kill(process.processIdentifier, SIGINT)
        #expect(eventually(timeout: .seconds(40)) { !process.isRunning }, "check ends after ^C")
        process.waitUntilExit()
        let printed = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "judged as valid after ^C:\n\(printed)")
        #expect(printed.contains("VALID"), "\(printed)")
        #expect(Self.leftovers(prefix).isEmpty, "left behind after ^C: \(Self.leftovers(prefix))")
    }

    @Test func saysItCannotRunWithoutRoot() {
        // As nobody: exit 2, "could not run", naming root, and nothing created.
        let result = Self.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               Self.binaries + "/crdtctl", "cluster", "start", "--netns", "--netns-prefix", "crdtnsu",
                               "--dir", NSTemporaryDirectory() + "crdtd-netns-nobody"])
        #expect(result.status == 2, "exit 2 without root:\n\(result.output)")
        #expect(result.output.contains("could not run") && result.output.contains("root"), "\(result.output)")
        #expect(Self.leftovers("crdtnsu").isEmpty)
    }
}
