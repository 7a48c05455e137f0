import Foundation

/// The thesis section of docs/benchmarks.md and the README's headline, from one run's sections.
struct Report {
    var sections: [Section]
    var quick: Bool
    var startedAt: Date
    var seconds: Double
    var loadBefore: String
    var loadAfter: String
    var commandLine: String
    var revision: String
    var binaries: Binaries
    var redisCompareTable: String?
    /// The partition measurement's network lab, when it ran in one.
    var partitionNetwork: String?

    private var headlines: [String: String] {
        sections.reduce(into: [:]) { $0.merge($1.headlines) { a, _ in a } }
    }

    func section() -> String {
        let date = ISO8601DateFormatter().string(from: startedAt)
        var text = """
            ## The thesis, measured: crdtd against a 3-member etcd cluster and Redis

            _Written by `Benchmarks/scripts/thesis.sh`, which rewrites everything between the `thesis:begin` and
            `thesis:end` markers on each run; edit the suite (`Benchmarks/Sources/Thesis`), not this text._

            **This run:** `\(commandLine)` (\(quick ? "the quick version" : "the full suite")), \(date), \(Int(seconds / 60)) min,
            crdtd at `\(revision)`. **Machine:** \(machine()). **Versions:** \(versions()).
            Load average (1, 5, 15 min) \(loadBefore) before and \(loadAfter) after: **the machine is shared with other
            engineers' builds and tests, and every server, peer and load generator shares its 2 cores**, so absolute
            figures are noisy; the ratios, each taken between two systems in the same run, are the result.
            Every server listens on 127.0.0.1 only\(partitionNetwork.map { " (but in the partition measurement, on \($0))" } ?? ""), on free ports, with its data in a temporary directory, and is
            stopped by PID when the suite ends (a trap in the script stops any left).

            Commands: `Benchmarks/scripts/thesis.sh --quick` (about 10 minutes), `Benchmarks/scripts/thesis.sh`
            (the full suite: cells 3 to 4 times longer, visibility for 60 s at 1,000 and 100 s at 10,000 writes/s
            per value size, scale to 17 and 33 nodes with 5 heals each, redis-compare with 3 rounds; estimated
            at 45 to 60 minutes; not run yet), `--no-build` to reuse the
            release builds, `--only increments,partition,...` for some measurements (printed; docs/ and the README
            are left alone), `--no-redis-compare` to skip the redis-benchmark table, `--partition-via netns|freeze`
            to choose how the partition measurement cuts both systems (default: in network namespaces when root).


            """
        text += goals() + "\n"
        for section in sections { text += section.markdown + "\n" }
        if let table = redisCompareTable {
            text += """
                ### crdtd against a single Redis (redis-benchmark)

                From `Benchmarks/scripts/redis-compare.sh\(quick ? " --rounds 1" : "")`, called by the suite in the same run (see
                "crdtd vs Redis" above for what it does): one crdtd node against one redis-server, 50 clients.

                \(Self.withoutTemporaryPaths(table))


                """
        }
        return text
    }

    /// redis-compare's table as it printed it, less the paths of files this run has removed.
    static func withoutTemporaryPaths(_ table: String) -> String {
        table.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.hasPrefix("redis-server ") else { return String(line) }
            return line.split(separator: ";").filter { !$0.contains("raw runs:") && !$0.contains("crdtd /") }.joined(separator: ";")
        }.joined(separator: "\n")
    }

    /// The issue's goals against this run's figures; a goal missed says so.
    private func goals() -> String {
        let h = headlines
        var rows: [String] = []
        func row(_ goal: String, _ measured: String?, _ met: Bool?) {
            let verdict = met.map { $0 ? "met" : "**missed**" } ?? "not measured in this run"
            rows.append("| \(goal) | \(measured ?? "-") | \(verdict) |")
        }
        for (clients, target) in [(1, 10.0), (8, 200.0), (32, 500.0)] {
            let full = h["increments-full-\(clients)"].flatMap(Double.init)
            let normal = h["increments-normal-\(clients)"].flatMap(Double.init)
            row("crdtd increments ≥ \(Int(target))x etcd's CAS rate, \(clients) client\(clients > 1 ? "s" : "") (`--durability full`)",
                full.map { String(format: "%.0fx (normal: %.0fx)", $0, normal ?? 0) }, full.map { $0 >= target })
        }
        let share = h["partition-crdtd-min-share"].flatMap(Double.init)
        row("crdtd: 100 % of writes acknowledged on every side of a partition", share.map { String(format: "lowest side %.1f %%", $0) },
            share.map { $0 >= 100 })
        if let alone = h["partition-etcd-alone-minority-share"], let split = h["partition-etcd-split-minority-share"] {
            rows.append("| etcd's minority, reported | lone live member \(alone) %; frozen minority \(split) % | reported |")
        }
        let converge = h["scale-converge-5"].flatMap(Double.init)
        row("convergence after a heal within 1 s at 5 nodes", converge.map { String(format: "%.0f ms", $0) }, converge.map { $0 <= 1000 })
        for (key, what) in [("memory-counters", "1,000,000 counters"), ("memory-set", "one set of 1,000,000 members")] {
            let ratio = h[key].flatMap(Double.init)
            row("memory ≤ Redis's, \(what)", ratio.map { String(format: "%.2fx Redis's RSS", $0) }, ratio.map { $0 <= 1 })
        }
        return """
            ### Against the goals of issue 11

            | goal | this run | verdict |
            |---|---|---|
            \(rows.joined(separator: "\n"))

            """
    }

    /// The README's short section: headline ratios and a link.
    func headline() -> String {
        let h = headlines
        var lines = ["## Measured against etcd and Redis", ""]
        lines.append("From one run of `Benchmarks/scripts/thesis.sh --quick` (\(ISO8601DateFormatter().string(from: startedAt).prefix(10)), a shared 2-core machine: ratios count, absolute numbers are noisy):")
        lines.append("")
        if let one = h["increments-full-1"], let eight = h["increments-full-8"], let many = h["increments-full-32"] {
            lines.append("- **Counter increments on three nodes, fsync on every commit for both:** \(one)x a 3-member etcd cluster's "
                + "read-and-compare-and-swap rate with 1 client, \(eight)x with 8 and \(many)x with 32.")
        }
        if let share = h["partition-crdtd-min-share"], let alone = h["partition-etcd-alone-minority-share"] {
            lines.append("- **During a partition** every crdtd node kept acknowledging writes (lowest side: \(share) %); "
                + "etcd's member without a quorum acknowledged \(alone) % (its clients waited 7 s for a timeout error).")
        }
        if let p50 = h["visibility-p50"], let p99 = h["visibility-p99"] {
            lines.append("- **A write on one node is readable on another** after \(p50) at the median and \(p99) at p99 (1,000 writes/s, 3 nodes).")
        }
        if let counters = h["memory-counters"], let set = h["memory-set"] {
            lines.append("- **Memory:** \(counters)x Redis's resident size for a million counters, \(set)x for a set of a million members.")
        }
        if let full = h["persistence-full-32"] {
            lines.append("- **Durable writes:** \(full) of raw SQLite's rate on the same disk, same mode and group size (32 clients).")
        }
        lines.append("")
        lines.append("Every table, the goals met and missed and why: [docs/benchmarks.md](docs/benchmarks.md#the-thesis-measured-crdtd-against-a-3-member-etcd-cluster-and-redis).")
        return lines.joined(separator: "\n")
    }

    private func machine() -> String {
        let cpu = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("model name") }.map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?" } ?? "?"
        let memory = ((try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("MemTotal") }.flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Double($0) } } ?? 0
        let debian = ((try? String(contentsOfFile: "/etc/debian_version", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines)
        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "\(ProcessInfo.processInfo.activeProcessorCount) vCPUs (\(cpu)), "
            + String(format: "%.0f GiB", memory / 1_048_576) + " RAM, Linux \(kernel), Debian \(debian)"
    }

    private func versions() -> String {
        let etcd = firstLine(run(binaries.etcd, ["--version"])).replacingOccurrences(of: "etcd Version: ", with: "")
        let redis = run(binaries.redisServer, ["--version"]).split(separator: " ").first { $0.hasPrefix("v=") }.map { String($0.dropFirst(2)) } ?? "?"
        let sqlite = firstLine(run("/usr/bin/env", ["sqlite3", "--version"])).split(separator: " ").first.map(String.init) ?? "?"
        let swift = firstLine(run("/usr/bin/env", ["swift", "--version"]))
        return "etcd \(etcd), redis-server \(redis), SQLite \(sqlite), \(swift)"
    }

    private func firstLine(_ text: String) -> String { text.split(separator: "\n").first.map(String.init) ?? "?" }

    private func run(_ executable: String, _ arguments: [String]) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        guard (try? process.run()) != nil else { return "?" }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output
    }
}
