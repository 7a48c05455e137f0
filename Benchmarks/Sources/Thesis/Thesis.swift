import ArgumentParser
import Foundation
import NodeControl

/// One measurement's part of the report: its Markdown, and the figures the summary and README quote.
struct Section {
    var title: String
    var markdown: String
    var headlines: [String: String] = [:]
}

/// What every measurement needs: the mode, the launcher, the binaries, where plots go.
final class Suite {
    let quick: Bool
    let launcher: Launcher
    let binaries: Binaries
    let imageDirectory: String
    /// The network lab the partition measurement runs both systems in, cut with nftables; nil: crdtd cut
    /// by CRDT.PARTITION and etcd members frozen with SIGSTOP.
    let partitionLab: NetnsLab?

    init(quick: Bool, launcher: Launcher, binaries: Binaries, imageDirectory: String, partitionLab: NetnsLab? = nil) {
        self.quick = quick
        self.partitionLab = partitionLab
        self.launcher = launcher
        self.binaries = binaries
        self.imageDirectory = imageDirectory
    }

    func log(_ message: String) {
        FileHandle.standardError.write(Data("thesis: \(message)\n".utf8))
    }
}

/// The thesis suite's measurements; `Benchmarks/scripts/thesis.sh` installs the peers, builds, and runs this.
@main
struct Thesis: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "crdtd against a 3-member etcd cluster and Redis: increments, availability under partition, visibility latency, scale, memory, persistence.")

    @Flag(help: "The quick version (a few minutes): shorter cells, fewer sizes, no 10,000 writes/s run.") var quick = false
    @Option(help: "Working directory for data, logs and the pids file (the script's trap stops every PID in it).") var work: String
    @Option(help: "crdtd binary (release).") var crdtd: String
    @Option(help: "etcd binary.") var etcd = "/usr/bin/etcd"
    @Option(help: "redis-server binary.") var redisServer = "/usr/bin/redis-server"
    @Option(help: "The compiled Benchmarks/scripts/sqlite-ceiling.c.") var sqliteCeiling: String
    @Option(help: "Comma-separated measurements to run: increments,partition,visibility,scale,memory,persistence.")
    var only = "increments,partition,visibility,scale,memory,persistence"
    @Option(help: "table.md written by Benchmarks/scripts/redis-compare.sh in this run.") var redisCompare: String?
    @Option(help: "The Markdown file whose thesis section is rewritten (between <!-- thesis:begin --> and <!-- thesis:end -->).")
    var doc: String?
    @Option(help: "README whose headline section is rewritten (between <!-- thesis-headline:begin --> and <!-- thesis-headline:end -->).")
    var readme: String?
    @Option(help: "Directory for the SVG plots (the doc links them as img/NAME).") var images: String
    @Option(help: "The command line that ran the suite, for the report.") var commandLine = "Benchmarks/scripts/thesis.sh"
    @Option(help: "The crdtd revision measured.") var revision = "?"
    @Option(help: ArgumentHelp("""
        How the partition measurement cuts both systems: netns (every node and member in a network namespace \
        of its own, the same nftables cut for both; root), freeze (crdtd by CRDT.PARTITION, etcd members \
        frozen with SIGSTOP), or auto (netns where this machine can, else freeze, saying why).
        """, valueName: "auto|netns|freeze"))
    var partitionVia = "auto"

    func validate() throws {
        guard ["auto", "netns", "freeze"].contains(partitionVia) else { throw ValidationError("--partition-via is auto, netns or freeze") }
    }

    func run() throws {
        let startedAt = Date()
        let loadBefore = loadAverage()
        let launcher = try Launcher(work: work)
        var lab: NetnsLab?
        if partitionVia != "freeze" {
            if let reason = NetnsLab.unavailableReason() {
                guard partitionVia == "auto" else { throw ValidationError("--partition-via netns: \(reason)") }
                FileHandle.standardError.write(Data("thesis: partitions by freezing etcd members, not in the network: \(reason)\n".utf8))
            } else {
                lab = try NetnsLab(prefix: "crdtnsb", subnet: "10.77.30", nodes: 3)
            }
        }
        let suite = Suite(quick: quick, launcher: launcher,
                          binaries: Binaries(crdtd: crdtd, etcd: etcd, redisServer: redisServer, sqliteCeiling: sqliteCeiling),
                          imageDirectory: images, partitionLab: lab)
        let wanted = Set(only.split(separator: ",").map(String.init))
        let measurements: [(String, (Suite) throws -> Section)] = [
            ("increments", measureIncrements), ("partition", measurePartition), ("visibility", measureVisibility),
            ("scale", measureScale), ("memory", measureMemory), ("persistence", measurePersistence),
        ]
        var sections: [Section] = []
        for (name, measure) in measurements where wanted.contains(name) {
            let t0 = now()
            sections.append(try measure(suite))
            suite.log("\(name) done in \(Int(now() - t0)) s")
        }
        let report = Report(sections: sections, quick: quick, startedAt: startedAt, seconds: Date().timeIntervalSince(startedAt),
                            loadBefore: loadBefore, loadAfter: loadAverage(), commandLine: commandLine, revision: revision,
                            binaries: suite.binaries, redisCompareTable: try redisCompare.map { try String(contentsOfFile: $0, encoding: .utf8) },
                            partitionNetwork: wanted.contains("partition") ? lab.map { "its own addresses \($0.subnet).1-3 in network namespaces" } : nil)
        let markdown = report.section()
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try markdown.write(toFile: (work as NSString).appendingPathComponent("thesis.md"), atomically: true, encoding: .utf8)
        if let doc {
            try replaceBetweenMarkers(in: doc, begin: "<!-- thesis:begin -->", end: "<!-- thesis:end -->", with: markdown)
            suite.log("rewrote the thesis section of \(doc)")
        }
        if let readme {
            try replaceBetweenMarkers(in: readme, begin: "<!-- thesis-headline:begin -->", end: "<!-- thesis-headline:end -->",
                                      with: report.headline(), insertBefore: "## Two commands")
            suite.log("rewrote the headline section of \(readme)")
        }
        print(markdown)
    }
}

func loadAverage() -> String {
    ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
}

/// Replaces what lies between the markers (keeping them); without markers, adds them with the text
/// before the line `insertBefore` or, failing that, at the end.
func replaceBetweenMarkers(in path: String, begin: String, end: String, with body: String, insertBefore: String? = nil) throws {
    var text = try String(contentsOfFile: path, encoding: .utf8)
    let block = begin + "\n" + body.trimmingCharacters(in: .newlines) + "\n" + end
    if let b = text.range(of: begin), let e = text.range(of: end, range: b.upperBound..<text.endIndex) {
        text.replaceSubrange(b.lowerBound..<e.upperBound, with: block)
    } else if let insertBefore, let anchor = text.range(of: "\n" + insertBefore) {
        text.insert(contentsOf: "\n" + block + "\n", at: anchor.lowerBound)
    } else {
        text = text.trimmingCharacters(in: .newlines) + "\n\n" + block + "\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}
