import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `crdtctl check` against real daemons: it passes on a healthy cluster, fails with a clear report when a
/// fault is planted, refuses to run when it cannot inject faults, and (the CI configuration of issue 8)
/// holds under 5 nodes, >= 300 ops/s, a hot set past 10 k members and every fault.
@Suite(.serialized) struct CheckTests {
    /// What `crdtctl check` printed and how it exited, with its report folder.
    struct Run {
        var status: Int32
        var output: String
        var report: String
        var verdict: [String: Any]

        var text: String { (try? String(contentsOfFile: report + "/verdict.txt", encoding: .utf8)) ?? "" }
        var html: String { (try? String(contentsOfFile: report + "/index.html", encoding: .utf8)) ?? "" }
        var faultsInjected: [String: Int] { verdict["faultsInjected"] as? [String: Int] ?? [:] }
        var convergenceSeconds: Double? { (verdict["convergence"] as? [String: Any])?["seconds"] as? Double }
        var set: [String: Any] { verdict["set"] as? [String: Any] ?? [:] }
        var throughput: Double { (verdict["stats"] as? [String: Any])?["throughput"] as? Double ?? 0 }
        var visibility: [String: Any] { verdict["visibility"] as? [String: Any] ?? [:] }
        var traffic: [String: Any] { verdict["traffic"] as? [String: Any] ?? [:] }
    }

    static var crdtctl: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("crdtctl").path
    }

    /// Runs `crdtctl check` with `arguments`, stopping it (by PID) if it outlives `limit`.
    func check(_ arguments: [String], limit: Duration = .seconds(170), crdtctl: String = Self.crdtctl) throws -> Run {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-check-\(UUID().uuidString)").path
        let outputPath = report + ".out"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: crdtctl)
        process.arguments = ["check", "--report", report, "--seed", "42"] + arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning {
            kill(process.processIdentifier, SIGINT)  // check heals, reports and stops its nodes on ^C
            Thread.sleep(forTimeInterval: 20)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        let printed = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        var verdict: [String: Any] = [:]
        if let data = FileManager.default.contents(atPath: report + "/verdict.json"),
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            verdict = object
        }
        return Run(status: process.terminationStatus, output: printed, report: report, verdict: verdict)
    }

    /// A base port for a local cluster (clients base+1.., peers base+101.., metrics base+201..) whose ports
    /// are free now, below the kernel's ephemeral range (32768 up), where outgoing connections could take them.
    func basePort(nodes: Int = 5) -> String {
        for base in (20...26).map({ $0 * 1000 + 500 }).shuffled() {
            let ports = (1...nodes).flatMap { [base + $0, base + 100 + $0, base + 200 + $0] }
            if ports.allSatisfy(isFree) { return String(base) }
        }
        return "20500"
    }

    /// Whether `port` on 127.0.0.1 can be bound for TCP and UDP (the peer port uses both).
    func isFree(_ port: Int) -> Bool {
        [Int32(SOCK_STREAM.rawValue), Int32(SOCK_DGRAM.rawValue)].allSatisfy { type in
            let fd = socket(AF_INET, type, 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
    }

    static let allFaults: Set<String> = [
        "partition isolate", "partition minority", "partition majority", "partition ring", "partition bridge", "kill", "pause",
    ]

    @Test func passesOnAHealthyClusterUnderEveryFaultAndTheReportRendersInABrowser() throws {
        let run = try check([
            "--nodes", "3", "--base-port", basePort(nodes: 3), "--dir", NSTemporaryDirectory() + "crdtd-check-\(UUID().uuidString)",
            "--rate", "60", "--duration", "14", "--fault-duration", "1", "--fault-gap", "0.5", "--converge-timeout", "20",
        ])
        #expect(run.status == 0, "check must pass on a healthy cluster:\n\(run.output)")
        #expect(run.verdict["valid"] as? Bool == true)
        #expect(Set(run.faultsInjected.keys) == Self.allFaults, "every fault was injected: \(run.faultsInjected)")
        #expect(run.text.hasPrefix("VALID"))
        let history = (try? String(contentsOfFile: run.report + "/history.jsonl", encoding: .utf8)) ?? ""
        #expect(history.split(separator: "\n").count > 500, "the history holds every operation")
        #expect(history.contains("\"type\":\"fault\"") && history.contains("\"outcome\":\"ok\""))
        for node in ["n1", "n2", "n3"] {
            #expect(FileManager.default.fileExists(atPath: run.report + "/logs/\(node).log"), "node logs are copied")
        }
        // Every acknowledged add was watched until each node showed it; those written during the faults
        // took longer than the others (they waited for the heal).
        let visibility = run.visibility
        let afterWrite = visibility["afterWrite"] as? [String: Any] ?? [:]
        let acknowledgedAdds = (run.set["adds"] as? [String: Int])?["ok"] ?? 0
        #expect(acknowledgedAdds > 100 && visibility["watched"] as? Int == acknowledgedAdds, "every acknowledged add watched: \(visibility)")
        #expect((afterWrite["count"] as? Int ?? 0) > 100 && visibility["neverEverywhere"] as? Int == 0, "\(visibility)")
        let during = visibility["duringFaults"] as? [String: Any] ?? [:], outside = visibility["outsideFaults"] as? [String: Any] ?? [:]
        #expect((during["max"] as? Double ?? 0) > (outside["p50"] as? Double ?? .infinity), "\(visibility)")
        // Peer traffic from all three nodes' metrics, per acknowledged operation.
        let traffic = run.traffic
        #expect((traffic["nodes"] as? [[String: Any]])?.count == 3 && (traffic["unavailable"] as? [String: String])?.isEmpty == true, "\(traffic)")
        #expect((traffic["bytesOutPerOperation"] as? Double ?? 0) > 10 && (traffic["framesOutPerOperation"] as? Double ?? 0) > 0.1, "\(traffic)")
        #expect(run.text.contains("visibility of \(acknowledgedAdds) acknowledged adds") && run.text.contains("peer traffic: "))
        try expectVisibilityAgreesWithTheClientsReads(run)
        for file in ["visibility.jsonl", "metrics.jsonl"] {
            let lines = ((try? String(contentsOfFile: run.report + "/" + file, encoding: .utf8)) ?? "").split(separator: "\n")
            #expect(lines.count > 10, "\(file) holds the observations")
        }
        try expectChartsRender(run)
    }

    @Test func failsWithAClearReportWhenANodeHasAnotherClusterKey() throws {
        let good = try keyFile(3), other = try keyFile(4)
        let nodes = (1...3).map { DaemonProcess(name: "n\($0)", extraArguments: ["--cluster-key-file", good, "--allow-fault-injection"]) }
        for node in nodes.dropFirst() { node.seeds = [nodes[0].peerPort] }
        nodes[0].seeds = [nodes[1].peerPort]
        // The planted fault: a fourth node under another key, seeded with the others, so it never converges.
        let intruder = DaemonProcess(name: "n4", extraArguments: ["--cluster-key-file", other, "--allow-fault-injection"])
        intruder.seeds = [nodes[0].peerPort]
        for node in nodes + [intruder] { try node.start() }
        defer { for node in nodes + [intruder] { node.stop() } }

        let run = try check((nodes + [intruder]).flatMap { ["--addr", "127.0.0.1:\($0.clientPort)"] }
            + ["--rate", "80", "--duration", "6", "--fault-duration", "1", "--fault-gap", "0.5", "--converge-timeout", "3"])
        #expect(run.status == 1, "a cluster that never converges is invalid:\n\(run.output)")
        #expect(run.verdict["valid"] as? Bool == false)
        #expect(run.text.hasPrefix("INVALID"))
        #expect(run.text.contains("did not agree within 3.00 s"), "the report says the nodes never agreed:\n\(run.text)")
        #expect(run.text.contains("n4 differs from n1"), "and names the odd node out:\n\(run.text)")
        #expect((run.set["lost"] as? Int ?? 0) > 0, "acknowledged adds on one side are missing on the other:\n\(run.text)")
        #expect(run.text.contains("lost") && run.text.contains("absent"), "with examples of lost elements:\n\(run.text)")
        #expect(run.html.contains("INVALID"))
        // Nodes given by address are scraped where INFO server says they serve metrics.
        #expect((run.traffic["nodes"] as? [[String: Any]])?.count == 4, "all four nodes' metrics: \(run.traffic)")
        #expect(((run.visibility["neverEverywhere"] as? Int) ?? 0) > 0, "adds that never reached the odd node out: \(run.visibility)")
    }

    @Test func cannotRunWhenANodeRefusesFaultInjection() throws {
        let node = DaemonProcess(name: "n1", extraArguments: ["--insecure"])
        try node.start()
        defer { node.stop() }
        let run = try check(["--addr", "127.0.0.1:\(node.clientPort)", "--duration", "2"], limit: .seconds(30))
        #expect(run.status == 2, "exit 2: could not run:\n\(run.output)")
        #expect(run.output.contains("--allow-fault-injection"), "the message says what to change:\n\(run.output)")

        let unreachable = try check(["--addr", "127.0.0.1:\(freePort())", "--duration", "2"], limit: .seconds(30))
        #expect(unreachable.status == 2)
        #expect(unreachable.output.contains("cannot reach"), "\(unreachable.output)")
    }

    /// Issue 15's storage nemesis: one node's data directory fills up (ENOSPC), stalls (every write and
    /// fsync waits) or fails (EIO) for a while, through the fault shim preloaded into every node. Writes to
    /// a full disk are refused with MISCONF, which the checker counts as failed, and the node takes writes
    /// again by itself when the disk comes back; a failing disk stops the node, which the nemesis restarts.
    /// The run ends valid. About 25 s.
    @Test func aFullOrStalledDiskIsOneMoreNemesisAndTheVerdictStaysValid() throws {
        let run = try check([
            "--nodes", "3", "--base-port", basePort(nodes: 3), "--dir", NSTemporaryDirectory() + "crdtd-check-\(UUID().uuidString)",
            "--faults", "disk", "--rate", "60", "--duration", "18", "--fault-duration", "3", "--fault-gap", "1.5",
            "--converge-timeout", "30",
        ], limit: .seconds(120))
        #expect(run.status == 0, "check must pass through full and stalled disks:\n\(run.output)")
        #expect(run.verdict["valid"] as? Bool == true, "report: \(run.report)")
        #expect(["disk full", "disk stall", "disk error"].allSatisfy { run.faultsInjected[$0, default: 0] >= 1 },
                "every storage fault was injected: \(run.faultsInjected)")

        let lines = ((try? String(contentsOfFile: run.report + "/history.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
        let records = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let windows = records.filter { $0["type"] as? String == "fault" }
        let operations = records.filter { $0["type"] as? String == "op" }
        for window in windows {
            #expect((window["errors"] as? [String] ?? []).isEmpty, "the node showed the fault in INFO persistence: \(window)")
        }
        let refused = operations.filter { ($0["reply"] as? String ?? "").hasPrefix("MISCONF") }
        #expect(!refused.isEmpty, "writes to the full disk's node were refused with MISCONF")
        #expect(refused.allSatisfy { $0["outcome"] as? String == "failed" }, "a MISCONF write is failed, not indeterminate")
        for window in windows where window["kind"] as? String == "disk error" {
            let node = (window["nodes"] as? [String])?.first ?? ""
            let log = (try? String(contentsOfFile: run.report + "/logs/\(node).log", encoding: .utf8)) ?? ""
            guard (window["detail"] as? String ?? "").contains("stopped") else { continue }  // cut short by the end
            #expect(log.contains("crdtd stops: the data directory"), "\(node) said in one line why it stopped")
            #expect(log.components(separatedBy: "crdtd is serving").count >= 3, "and served again after its restart")
        }
        for window in windows where window["kind"] as? String == "disk full" {
            let node = (window["nodes"] as? [String])?.first ?? "", end = window["end"] as? Double ?? 0
            let start = window["start"] as? Double ?? 0
            guard end - start >= 1 else { continue }  // one the end of the load cut short
            #expect(refused.contains { $0["node"] as? String == node && ($0["invoke"] as? Double ?? 0) >= start },
                    "\(node) refused writes while its disk was full")
            // It resumes by itself: a write to it acknowledged within 6 s of the disk coming back (it retries
            // every 2 s at most), unless the run ended first.
            let loadEnded = (run.verdict["stats"] as? [String: Any])?["duration"] as? Double ?? .infinity
            guard end + 6 < loadEnded else { continue }
            #expect(operations.contains { op in
                op["node"] as? String == node && op["outcome"] as? String == "ok" && ["incrby", "sadd", "set", "srem"].contains(op["kind"] as? String ?? "")
                    && (end...(end + 6)).contains(op["invoke"] as? Double ?? 0)
            }, "\(node) took writes again within 6 s of its disk coming back at \(end) s")
        }
    }

    /// The planted fault for the storage nemesis: crdtctl and crdtd copied beside a shim that does nothing,
    /// so no disk ever fills. The run must not pass as if the nodes had survived full disks. About 15 s.
    @Test func aStorageFaultThatNeverTakesMakesTheRunInvalid() throws {
        let folder = NSTemporaryDirectory() + "crdtd-inert-shim-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let binaries = URL(fileURLWithPath: Self.crdtctl).deletingLastPathComponent()
        for name in ["crdtctl", "crdtd"] {
            try FileManager.default.copyItem(atPath: binaries.appendingPathComponent(name).path, toPath: folder + "/" + name)
        }
        try "int crdtd_inert_shim;\n".write(toFile: folder + "/inert.c", atomically: true, encoding: .utf8)
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        compiler.arguments = ["cc", "-shared", "-fPIC", "-o", folder + "/libcrdtd-storage-faults.so", folder + "/inert.c"]
        try compiler.run()
        compiler.waitUntilExit()
        try #require(compiler.terminationStatus == 0, "cc builds the inert shim (scripts/setup installs a C compiler)")

        let run = try check([
            "--nodes", "3", "--base-port", basePort(nodes: 3), "--dir", folder + "/cluster",
            "--faults", "disk", "--rate", "40", "--duration", "7", "--fault-duration", "2", "--fault-gap", "1",
            "--converge-timeout", "30",
        ], limit: .seconds(90), crdtctl: folder + "/crdtctl")
        #expect(run.status == 1, "a storage fault that never took is invalid:\n\(run.output)")
        #expect(run.text.contains("a storage fault did not take")
                    && (run.text.contains("did not show the disk") || run.text.contains("did not stop on the disk error")),
                "the report says which fault the node never showed:\n\(run.text)")
    }

    /// Issue 8's evidence, as CI runs it: 5 nodes, >= 300 ops/s in total on one hot counter and one hot
    /// set that grows past 10 k members, every partition shape, kill -9 with restart and pauses; every
    /// acknowledged write survives and the digests agree soon after the final heal.
    @Test func holdsUnderLoadAndFaultsInTheCIConfiguration() throws {
        let run = try check([
            "--nodes", "5", "--base-port", basePort(), "--dir", NSTemporaryDirectory() + "crdtd-check-\(UUID().uuidString)",
            "--rate", "500", "--duration", "70", "--fault-duration", "3", "--fault-gap", "2", "--converge-timeout", "30",
            // The set starts at 8 k acknowledged members and grows past 10 k under the load, whatever
            // share of the requested rate a loaded machine reaches.
            "--preload", "8000",
        ])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.verdict["valid"] as? Bool == true, "report: \(run.report)")
        #expect(Set(run.faultsInjected.keys) == Self.allFaults, "every fault was injected: \(run.faultsInjected)")
        // Liveness, with generous bounds (the brief: throughput figures belong in benchmarks, and CI's
        // two cores are shared with the five daemons and the clients): half of the issue's 300 ops/s,
        // and three times its 5 s to agree. docs/benchmarks.md records what runs reach.
        #expect(run.throughput >= 150, "acknowledged operations per second: \(run.throughput)")
        let sizes = run.set["finalSize"] as? [String: Int] ?? [:]
        #expect(sizes.count == 5 && sizes.values.allSatisfy { $0 > 10_000 }, "the hot set grew past 10 k members: \(sizes)")
        let converged = run.convergenceSeconds ?? .infinity
        #expect(converged <= 15, "digests agreed \(converged) s after the final heal (infinity: never)")
    }

    // MARK: Helpers

    func keyFile(_ byte: UInt8) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-key-\(UUID().uuidString)").path
        try (Data(repeating: byte, count: 32).base64EncodedString() + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The watch and the clients' own SISMEMBER reads observe the same nodes independently: a read that
    /// found an element absent after the watch had seen it on that node (and before any remove) would
    /// mean one of them is wrong; a read that found it present means the watch saw it there too.
    func expectVisibilityAgreesWithTheClientsReads(_ run: Run) throws {
        func records(_ file: String) -> [[String: Any]] {
            ((try? String(contentsOfFile: run.report + "/" + file, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        var seen: [String: [String: Double]] = [:]
        for record in records("visibility.jsonl") where record["removedFirst"] as? Bool == false {
            seen[record["element"] as? String ?? ""] = record["seen"] as? [String: Double] ?? [:]
        }
        let operations = records("history.jsonl").filter { $0["type"] as? String == "op" }
        var removed: [String: Double] = [:]
        for op in operations where op["kind"] as? String == "srem" { removed[op["argument"] as? String ?? ""] = op["invoke"] as? Double }
        var compared = 0
        for read in operations where read["kind"] as? String == "sismember" && read["outcome"] as? String == "ok" {
            let element = read["argument"] as? String ?? "", node = read["node"] as? String ?? ""
            let invoke = read["invoke"] as? Double ?? 0, complete = read["complete"] as? Double ?? 0
            guard let sightings = seen[element], (removed[element] ?? .infinity) >= complete else { continue }
            compared += 1
            if read["reply"] as? String == "(integer) 0", let at = sightings[node] {
                #expect(at >= invoke, "\(element) read absent on \(node) at \(invoke) s, though the watch saw it there at \(at) s")
            } else if read["reply"] as? String == "(integer) 1" {
                #expect(sightings[node] != nil, "\(element) read present on \(node) at \(complete) s, never seen there by the watch")
            }
        }
        #expect(compared > 10, "enough reads to compare: \(compared)")
    }

    /// Opens the report in headless Chromium and reads back the DOM after load: the page's script marks
    /// the body with how many of its SVG charts laid out with a non-empty box and drawn marks.
    func expectChartsRender(_ run: Run) throws {
        let charts = ["timeline", "latency-over-time", "latency-percentiles", "throughput", "convergence",
                      "visibility-over-time", "visibility-cdf", "traffic"]
        for id in charts {
            #expect(run.html.contains("class=\"chart\" id=\"\(id)\""), "the report has the \(id) chart")
        }
        // The new charts carry how many observations they plot: real data, not an empty frame.
        for id in ["visibility-over-time", "visibility-cdf", "traffic"] {
            let points = run.html.firstMatch(of: try Regex("data-points=\"([0-9]+)\"[^>]*id=\"\(id)\"|id=\"\(id)\" data-points=\"([0-9]+)\""))
            let count = points.flatMap { match in (1..<match.count).compactMap { match[$0].substring.flatMap { Int($0) } }.first } ?? 0
            #expect(count > 3, "the \(id) chart plots \(count) points")
        }
        let outside = run.html.replacingOccurrences(of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "")
        #expect(!outside.contains("http://") && !outside.contains("https://") && !outside.contains(" src="), "the page fetches nothing")
        guard let chromium = ["chromium", "chromium-browser"].lazy.compactMap(which).first else {
            Issue.record("chromium is not installed: run scripts/setup, which installs it for this test")
            return
        }
        let profile = NSTemporaryDirectory() + "crdtd-chromium-\(UUID().uuidString)"
        let dom = run.report + "/dom.html"
        _ = FileManager.default.createFile(atPath: dom, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile)",
                             "--virtual-time-budget=5000", "--dump-dom", "file://\(run.report)/index.html"]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: dom))
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(90)
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: profile)
        let rendered = (try? String(contentsOfFile: dom, encoding: .utf8)) ?? ""
        let mark = rendered.firstMatch(of: /data-charts-rendered="[^"]*"/).map { String($0.output) } ?? "no mark"
        let empty = rendered.firstMatch(of: /data-charts-empty="[^"]*"/).map { String($0.output) } ?? ""
        #expect(rendered.contains("data-charts-rendered=\"\(charts.count)/\(charts.count)\""),
                "chromium laid out all \(charts.count) charts, each with drawn data marks (body: \(mark) \(empty))")
    }

    func which(_ name: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
