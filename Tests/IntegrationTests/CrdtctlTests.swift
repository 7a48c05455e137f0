import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// crdtctl's operator commands end to end, invoked by name from the PATH as an installed tool would be.
@Suite(.serialized) struct CrdtctlTests {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    let dir = NSTemporaryDirectory() + "crdtctl-test-\(UUID().uuidString)"
    /// Below the kernel's ephemeral ports (32768 up), where outgoing connections could take a node's port.
    let basePort = Int.random(in: 20...31) * 1000 + 700

    /// Runs `crdtctl ARGS` through /bin/sh from another folder, with only the build folder added to the PATH:
    /// crdtctl must find crdtd on its own.
    func crdtctl(_ arguments: [String], dir useDir: Bool = true) throws -> Result {
        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let out = dir + "-\(UUID().uuidString).out", err = out + ".err"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        let quoted = (arguments + (useDir ? ["--dir", dir] : [])).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        process.arguments = ["-c", "cd / && exec crdtctl \(quoted.joined(separator: " ")) >'\(out)' 2>'\(err)'"]
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = binaries + ":/usr/bin:/bin"
        process.environment = environment
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        func read(_ path: String) -> String {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return Result(status: process.terminationStatus, stdout: read(out), stderr: read(err))
    }

    func ok(_ arguments: String...) throws -> String {
        let result = try crdtctl(arguments)
        #expect(result.status == 0, "crdtctl \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        return result.stdout
    }

    func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) }

    @Test func startsFromThePathAndRunsEveryTypedCommandStatusAndGroupPartitions() throws {
        let start = try crdtctl(["cluster", "start", "--nodes", "3", "--base-port", String(basePort)])
        #expect(start.status == 0, "crdtctl on the PATH starts crdtd without a path to it: \(start.stderr)")
        defer { _ = try? crdtctl(["cluster", "stop"]) }
        let n2 = "127.0.0.1:\(basePort + 2)"

        // Counters, on a named node and by address.
        #expect(try ok("counter", "incr", "visits", "5", "--node", "n1") == "5")
        #expect(try ok("counter", "decr", "visits", "--node", "n1") == "4")
        #expect(try ok("verify").contains("converged"))
        #expect(try ok("counter", "incr", "visits", "10", "--addr", n2) == "14", "n2 had n1's writes")
        #expect(try ok("verify").contains("converged"))
        #expect(try ok("counter", "get", "visits", "--node", "n3") == "14")
        #expect((json(try ok("counter", "get", "visits", "--json")) as? [String: Any])?["value"] as? Int == 14)

        // Sets.
        #expect(try ok("set", "add", "tags", "a", "b", "c", "--node", "n2") == "3")
        #expect(try ok("set", "rm", "tags", "b", "--node", "n2") == "1")
        #expect(try ok("set", "members", "tags", "--node", "n2") == "a\nc")
        #expect((json(try ok("set", "members", "tags", "--node", "n2", "--json")) as? [String: Any])?["value"] as? [String] == ["a", "c"])
        #expect(try ok("set", "contains", "tags", "a", "--node", "n2") == "true")
        #expect(try ok("set", "contains", "tags", "b", "--node", "n2") == "false")
        #expect(try ok("set", "card", "tags", "--addr", n2) == "2")

        // Registers and hashes.
        #expect(try ok("register", "set", "motd", "hello world") == "OK")
        #expect(try ok("register", "get", "motd") == "hello world")
        #expect(try ok("register", "get", "nothing") == "(nil)")
        #expect((json(try ok("register", "get", "nothing", "--json")) as? [String: Any])?["value"] is NSNull)
        #expect(try ok("hash", "set", "user:1", "name", "ada", "lang", "swift") == "2")
        #expect(try ok("hash", "get", "user:1", "name") == "ada")
        #expect(try ok("hash", "all", "user:1") == "FIELD  VALUE\nlang   swift\nname   ada")
        #expect(json(try ok("hash", "all", "user:1", "--json")) as? [String: String] == ["lang": "swift", "name": "ada"])
        #expect(try ok("hash", "del", "user:1", "lang") == "1")

        // Keys, types, delete.
        #expect(try ok("verify").contains("converged"))
        #expect(try ok("keys", "--node", "n1") == "motd\ntags\nuser:1\nvisits")
        #expect(json(try ok("keys", "u*", "--json")) as? [String] == ["user:1"])
        #expect(try ok("type", "tags", "--node", "n2") == "set")
        #expect(try ok("type", "missing") == "none")
        #expect(try ok("del", "motd") == "1")

        // Errors name the node and have their exit codes.
        let wrongType = try crdtctl(["set", "add", "visits", "x", "--node", "n1"])
        #expect(wrongType.status == 1 && wrongType.stderr.contains("n1 refused SADD: WRONGTYPE"), "\(wrongType)")
        let unreachable = try crdtctl(["counter", "get", "visits", "--addr", "127.0.0.1:\(basePort + 99)"])
        #expect(unreachable.status == 2 && unreachable.stderr.contains("cannot reach 127.0.0.1:\(basePort + 99)"), "\(unreachable)")
        let unknown = try crdtctl(["counter", "get", "visits", "--node", "n9"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no node 'n9'"), "\(unknown)")

        // Status: an aligned table, and JSON.
        let table = try ok("status").split(separator: "\n").map(String.init)
        #expect(table.count == 4 && table[0].hasPrefix("NODE") && table[0].contains("PEERS A/S/D") && table[0].contains("LAG"), "\(table)")
        let column = table[0].range(of: "STATE")!.lowerBound.utf16Offset(in: table[0])
        for row in table.dropFirst() {
            #expect(row.dropFirst(column).hasPrefix("running"), "the STATE column lines up: \(row)")
            #expect(row.contains("2/0/0"), "each node sees its two peers alive: \(row)")
        }
        let rows = json(try ok("status", "--json")) as? [[String: Any]] ?? []
        #expect(rows.map { $0["node"] as? String } == ["n1", "n2", "n3"])
        #expect(rows.allSatisfy { $0["state"] as? String == "running" && ($0["peersAlive"] as? NSNumber)?.intValue == 2 }, "\(rows)")
        // Converged, so every peer has acknowledged every delta of every node.
        #expect(rows.allSatisfy { ($0["replicationLag"] as? NSNumber)?.intValue == 0 }, "no replication lag once converged: \(rows)")

        // Partition by named groups; a node left out is refused with the reason.
        let partial = try crdtctl(["partition", "n1,n2"])
        #expect(partial.status != 0 && partial.stderr.contains("missing: n3"), "\(partial)")
        _ = try ok("partition", "n1", "n2,n3")
        let cut = json(try ok("status", "--json")) as? [[String: Any]] ?? []
        #expect(cut.map { $0["partitionedFrom"] as? [String] ?? [] } == [["n2", "n3"], ["n1"], ["n1"]], "\(cut)")
        #expect(try ok("counter", "incr", "visits", "100", "--node", "n1") == "114")
        Thread.sleep(forTimeInterval: 1)
        #expect(try ok("counter", "get", "visits", "--node", "n3") == "14", "n3 is cut from n1")
        let behind = json(try ok("status", "--json")) as? [[String: Any]] ?? []
        #expect((behind.first?["replicationLag"] as? NSNumber)?.intValue ?? 0 >= 1, "n1's peers have not taken its delta: \(behind)")
        _ = try ok("heal")
        #expect(try ok("verify").contains("converged"))
        #expect(try ok("counter", "get", "visits", "--node", "n3") == "114")

        // Bounded counters: a node decrements only within the rights it holds, and rights move.
        #expect(try ok("bcounter", "incr", "stock", "5", "--node", "n1") == "5")
        #expect(try ok("bcounter", "rights", "stock", "--node", "n1") == "5")
        #expect(try ok("verify").contains("converged"))
        #expect(try ok("bcounter", "rights", "stock", "--node", "n2") == "0")
        let refused = try crdtctl(["bcounter", "decr", "stock", "1", "--node", "n2"])
        #expect(refused.status == 1 && refused.stderr.contains("n2 refused CRDT.BDECRBY") && refused.stderr.contains("insufficient rights"),
                "\(refused)")
        #expect(try ok("bcounter", "transfer", "stock", "n2", "2", "--node", "n1") == "5")
        #expect(try ok("verify").contains("converged"))
        #expect(try ok("bcounter", "decr", "stock", "2", "--node", "n2") == "3")
        #expect(try ok("verify").contains("converged"))
        #expect(try ok("bcounter", "get", "stock", "--node", "n3") == "3")
        #expect((json(try ok("bcounter", "rights", "stock", "--node", "n1", "--json")) as? [String: Any])?["value"] as? Int == 3)
    }

    @Test func nodeRemoveDecommissionsANodeForGood() throws {
        let start = try crdtctl(["cluster", "start", "--nodes", "3", "--base-port", String(basePort + 100)])
        #expect(start.status == 0, "\(start.stderr)")
        defer { _ = try? crdtctl(["cluster", "stop"]) }
        #expect(try ok("set", "add", "tags", "a", "b", "--node", "n3") == "2")
        #expect(try ok("verify").contains("converged"))

        let removed = try ok("node", "remove", "n3")
        #expect(removed.contains("n3 decommissioned: forgotten by n1, n2"), "\(removed)")
        // The cluster is two nodes now; both list only each other, and kept n3's writes.
        let status = try ok("status")
        #expect(!status.contains("n3"), "\(status)")
        func run(_ arguments: String...) throws -> String {
            let result = try crdtctl(["run", "--dir", dir] + arguments, dir: false)
            #expect(result.status == 0, "\(result.stderr)")
            return result.stdout
        }
        let peers = try run("n1", "CRDT.PEERS")
        #expect(peers.contains("n2") && !peers.contains("n3"), "\(peers)")
        #expect(try ok("set", "card", "tags", "--node", "n2") == "2")
        #expect(try run("n2", "INFO", "replication").contains("forgotten:n3="))
        // Unknown names are refused clearly.
        let unknown = try crdtctl(["node", "remove", "n9"])
        #expect(unknown.status != 0 && unknown.stderr.contains("n9"), "\(unknown.stderr)")
    }
}
