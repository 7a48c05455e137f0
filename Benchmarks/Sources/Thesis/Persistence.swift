import Foundation

/// 6. Persistence: crdtd's acknowledged increments per second on one node against raw SQLite on the
/// same disk, in the same mode, with transactions of the group size crdtd committed in that run.
func measurePersistence(_ suite: Suite) throws -> Section {
    let warmup = 1.0, seconds = suite.quick ? 5.0 : 15.0
    var text = """
        ### 6. Persistence: durable increments against raw SQLite

        One crdtd node; clients send `INCR` on one counter back to back for \(Int(seconds)) s after a
        \(Int(warmup)) s warm-up. crdtd acknowledges a write once its group commit is as durable as the mode
        promises (`full`: `synchronous=FULL`, the WAL fsynced at every commit; `normal`: `synchronous=NORMAL`).
        The group size is crdtd's own in that run (increments ÷ `crdtd_commits_total`). The ceiling,
        `Benchmarks/scripts/sqlite-ceiling.c`, then appends rows shaped like crdtd's deltas into the same
        table in a database in the same temporary directory (same disk), same journal mode and `synchronous`,
        one transaction per group of that size, back to back on one thread, for as long.

        | durability | clients | crdtd increments/s | crdtd group size | SQLite rows/s, same group | crdtd / SQLite | SQLite transactions/s |
        |---|---:|---:|---:|---:|---:|---:|

        """
    var section = Section(title: "persistence", markdown: "")
    var losses: [String] = []
    for durability in ["full", "normal"] {
        let node = try startSingleCrdtd(suite.launcher, suite.binaries, durability: durability, label: "persist-\(durability)")
        defer { node.stop() }
        let port = node.nodes[0].clientPort
        for clients in [1, 32] {
            suite.log("persistence: crdtd --durability \(durability), \(clients) clients")
            let commitsBefore = try node.metric(0, "crdtd_commits_total")
            let key = "persist-\(clients)"
            let stats = closedLoop(clients: clients, warmup: warmup, seconds: seconds) { _ in
                try crdtdOperation(port: port, ["INCR", key])
            }
            sleep(seconds: 1.5)  // the metrics export runs once a second
            let commits = try node.metric(0, "crdtd_commits_total") - commitsBefore
            let group = commits > 0 ? Double(stats.acknowledged) / commits : 1
            let rate = Double(stats.measured) / seconds
            suite.log("persistence: SQLite, synchronous=\(durability.uppercased()), groups of \(max(1, Int(group.rounded())))")
            let database = (try suite.launcher.directory("sqlite-\(durability)-\(clients)") as NSString).appendingPathComponent("ceiling.sqlite")
            // Two ceiling runs on fresh tables, and their mean: fsync latency here drifts within minutes.
            let first = try sqliteCeiling(suite.binaries.sqliteCeiling, database, durability.uppercased(), max(1, Int(group.rounded())), seconds)
            let second = try sqliteCeiling(suite.binaries.sqliteCeiling, database + "2", durability.uppercased(), max(1, Int(group.rounded())), seconds)
            let rows = (first.0 + second.0) / 2, transactions = (first.1 + second.1) / 2
            text += "| \(durability) | \(clients) | \(Int(rate.rounded())) | " + String(format: "%.1f", group)
                + " | \(Int(rows.rounded())) (\(Int(first.0.rounded())), \(Int(second.0.rounded()))) | " + String(format: "%.2f", rows > 0 ? rate / rows : 0)
                + " | \(Int(transactions.rounded())) |\n"
            if rows > 0 && rate / rows < 0.5 { losses.append("\(durability), \(clients) client\(clients > 1 ? "s" : "")") }
            section.headlines["persistence-\(durability)-\(clients)"] = String(format: "%.2f", rows > 0 ? rate / rows : 0)
        }
    }
    text += """

        The SQLite column gives the mean of two ceiling runs (each in parentheses), taken right after crdtd's
        cell: fsync latency on this shared disk drifts within minutes, so a ratio above 1 means the disk was
        faster while crdtd ran, not that crdtd beat SQLite.

        """
    if !losses.isEmpty {
        text += """

            **Where crdtd is far below the ceiling (\(losses.joined(separator: "; ")))**: without an fsync per commit
            the disk is not the limit. With one client, each `INCR` waits for three thread hand-offs (event loop
            → engine → writer → event loop) and a client round trip, while the ceiling's commit alone is tens of
            µs; with many clients, crdtd's own work per write (parsing, the engine's keyspace and delta, the
            group's effects back to the loop, the reply; see redis-compare's profile above) on two shared cores
            is the limit, while the ceiling does nothing but append rows. With `full`, where the fsync
            dominates, crdtd is at the ceiling.

            """
    }
    section.markdown = text
    return section
}

func sqliteCeiling(_ binary: String, _ database: String, _ sync: String, _ group: Int, _ seconds: Double) throws -> (Double, Double) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = [database, sync, "\(group)", "\(seconds)"]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let fields = output.split(whereSeparator: \.isWhitespace).compactMap { Double($0) }
    guard process.terminationStatus == 0, fields.count == 2 else { throw SuiteError("sqlite-ceiling failed: \(output)") }
    return (fields[0], fields[1])
}
