// LargeObjectBench: a 1 M-member set grown through the engine into a real store, as the daemon's
// engine and writer threads do it (minus the network), with staged snapshots and with every snapshot
// written in one commit (the behaviour before staging: `stagedSnapshotBytes = .max`), side by side.
//
//   swift run -c release --package-path Benchmarks LargeObjectBench [grow] [members] [per-command] [commands-per-step]
//   swift run -c release --package-path Benchmarks LargeObjectBench reply [members]
//   swift run -c release --package-path Benchmarks LargeObjectBench scan [members]
//
// `reply`: how long the engine thread is busy answering SMEMBERS, HGETALL and ZRANGE 0 -1 of one key
// holding `members` members (what a PING on another connection waits behind), and the reply's size.
//
// Each step is one pipelined batch: `commands-per-step` SADDs of `per-command` new 16-byte members,
// handled into one output and committed in one transaction (synchronous=NORMAL, the daemon's default).
// Per step it times the engine (commands + flush, where a staged snapshot serialises the object at its
// begin) and the commit; it prints the largest, the p99 and the rate.
import BenchSupport
import CRDT
import Engine
import Foundation
import RESP
import Store

let mode = CommandLine.arguments.dropFirst().first { Int($0) == nil } ?? "grow"
let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let totalMembers = arguments.count > 0 ? arguments[0] : 1_000_000
let perCommand = arguments.count > 1 ? arguments[1] : 1000
let commandsPerStep = arguments.count > 2 ? arguments[2] : 4

struct Result {
    var label: String
    var seconds: Double
    var largestCommitMs: Double
    var p99CommitMs: Double
    var largestEngineMs: Double
    var largestEngineCPUMs: Double
    var largestCommitCPUMs: Double
    var largestStepMs: Double
    var snapshotBytesWritten: Int
    var largestCommitBytes: Int
    var databaseBytes: Int
    var restartSeconds: Double
}

/// CPU time of the calling thread, in nanoseconds: on a machine shared with other builds a step's wall
/// time mostly measures waiting for a core, its CPU time what the step itself costs.
func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func fileSize(_ path: String) -> Int {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
}

func member(_ index: Int) -> Bytes {
    // "m" + 15 digits: 16 bytes, as in the memory benchmark.
    var text = String(index)
    text = "m" + String(repeating: "0", count: max(0, 15 - text.count)) + text
    return Array(text.utf8)
}

/// The daemon's serialisation worker (`EngineConfiguration.background`), for the third variant.
let serialising = DispatchQueue(label: "bench-serialise", qos: .utility)

func run(label: String, staged: Bool, offThread: Bool = false) throws -> Result {
    let directory = NSTemporaryDirectory() + "large-object-bench-\(getpid())-\(label)"
    try? FileManager.default.removeItem(atPath: directory)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/crdtd.db"
    let store = try Store(path: path, options: StoreOptions(synchronous: .normal))
    _ = try store.load()
    var configuration = EngineConfiguration(nodeID: "bench", replica: ReplicaID(1))
    if !staged { configuration.stagedSnapshotBytes = .max }
    if offThread { configuration.background = { work in serialising.async(execute: work) } }
    var engine = try Engine(configuration: configuration)
    let client = ClientID(1)
    _ = engine.handle(.clientConnected(client, address: "bench"))
    let sadd = Array("SADD".utf8), key = Array("big".utf8)
    var commitTimes: [Double] = []
    var largestEngine = 0.0, largestStep = 0.0, largestEngineCPU = 0.0, largestCommitCPU = 0.0
    var snapshotBytes = 0, largestCommitBytes = 0
    var next = 0
    var stepCosts: [(cpu: Double, step: Int, members: Int, begins: Bool)] = []
    let start = monotonicNanoseconds()
    func commit(_ output: EngineOutput) throws {
        var records: [StoreRecord] = []
        var bytes = 0
        for record in output.records {
            switch record {
            case .delta(let k, let b): records.append(.delta(key: k, bytes: b)); bytes += b.count
            case .snapshot(let k, let b): records.append(.snapshot(key: k, bytes: b)); bytes += b.count; snapshotBytes += b.count
            case .snapshotBegin(let k): records.append(.snapshotBegin(key: k))
            case .snapshotPart(let k, let b): records.append(.snapshotPart(key: k, bytes: b)); bytes += b.count; snapshotBytes += b.count
            case .snapshotSeal(let k): records.append(.snapshotSeal(key: k))
            case .meta(let n, let v): records.append(.meta(name: n, value: v)); bytes += v.count
            case .remove(let k): records.append(.remove(key: k))
            }
        }
        let t0 = monotonicNanoseconds(), c0 = threadCPUNanoseconds()
        if !records.isEmpty { try store.commit(records) }
        commitTimes.append(Double(monotonicNanoseconds() - t0) / 1e6)
        largestCommitCPU = max(largestCommitCPU, Double(threadCPUNanoseconds() - c0) / 1e6)
        largestCommitBytes = max(largestCommitBytes, bytes)
    }
    while next < totalMembers {
        let t0 = monotonicNanoseconds(), c0 = threadCPUNanoseconds()
        var output = EngineOutput()
        for _ in 0..<commandsPerStep where next < totalMembers {
            let count = min(perCommand, totalMembers - next)
            let members = (next..<(next + count)).map(member)
            next += count
            engine.handle(.clientCommand(client, [sadd, key] + members), into: &output)
        }
        engine.flush(into: &output)
        let engineMs = Double(monotonicNanoseconds() - t0) / 1e6
        largestEngine = max(largestEngine, engineMs)
        let stepCPU = Double(threadCPUNanoseconds() - c0) / 1e6
        largestEngineCPU = max(largestEngineCPU, stepCPU)
        let begins = output.records.filter { if case .snapshotBegin = $0 { true } else { false } }.count
        stepCosts.append((stepCPU, stepCosts.count, next, begins > 0))
        try commit(output)
        largestStep = max(largestStep, Double(monotonicNanoseconds() - t0) / 1e6)
    }
    let seconds = Double(monotonicNanoseconds() - start) / 1e9
    let top = stepCosts.sorted { $0.cpu > $1.cpu }.prefix(4)
    print("\(label): costliest engine steps (CPU ms, step, members after it, began a stage): "
        + top.map { String(format: "%.0f ms #%d %d%@", $0.cpu, $0.step, $0.members, $0.begins ? " begin" : "") }.joined(separator: ", "))
    // Let a stage in progress finish on ticks, as an idle daemon does (not timed).
    for tick in 0..<2000 {
        var output = EngineOutput()
        engine.handle(.tick(monotonicMilliseconds: UInt64(tick * 10), wallMilliseconds: 1), into: &output)
        engine.flush(into: &output)
        try commit(output)
        // An idle daemon ticks every 10 ms: the worker serialising a stage gets the time it needs.
        if engine.stagedSnapshotsInProgress > 0, output.records.isEmpty { usleep(10_000) }
    }
    precondition(engine.stagedSnapshotsInProgress == 0, "a stage was left unsealed")
    store.close()
    let dbBytes = fileSize(path) + fileSize(path + "-wal")
    // Restart: load and rebuild the engine (what a daemon does at start).
    let r0 = monotonicNanoseconds()
    let reopened = try Store(path: path, options: StoreOptions(synchronous: .normal))
    let recovered = try reopened.load()
    let restartedEngine = try Engine(configuration: configuration, recovery: EngineRecovery(
        objects: recovered.keys.map { .init(key: $0.key, snapshot: $0.value.snapshot, deltas: $0.value.deltas) },
        meta: recovered.meta))
    let restart = Double(monotonicNanoseconds() - r0) / 1e9
    var check = restartedEngine
    let reply = check.handle(.clientCommand(client, [Array("SCARD".utf8), key]))
    blackHole(reply)
    reopened.close()
    let sorted = commitTimes.sorted()
    return Result(label: label, seconds: seconds, largestCommitMs: sorted.last ?? 0,
                  p99CommitMs: sorted[min(sorted.count - 1, sorted.count * 99 / 100)],
                  largestEngineMs: largestEngine, largestEngineCPUMs: largestEngineCPU, largestCommitCPUMs: largestCommitCPU,
                  largestStepMs: largestStep, snapshotBytesWritten: snapshotBytes,
                  largestCommitBytes: largestCommitBytes, databaseBytes: dbBytes, restartSeconds: restart)
}

func replies() throws {
    var engine = try Engine(configuration: EngineConfiguration(nodeID: "bench", replica: ReplicaID(1)))
    let client = ClientID(1)
    _ = engine.handle(.clientConnected(client, address: "bench"))
    func command(_ words: [Bytes]) -> EngineOutput { engine.handle(.clientCommand(client, words)) }
    var next = 0
    while next < totalMembers {
        let count = min(1000, totalMembers - next)
        let members = (next..<(next + count)).map(member)
        _ = command([Array("SADD".utf8), Array("s".utf8)] + members)
        _ = command([Array("HSET".utf8), Array("h".utf8)] + members.flatMap { [$0, Array("value".utf8)] })
        _ = command([Array("ZADD".utf8), Array("z".utf8)] + members.enumerated().flatMap { [Array(String(next + $0.offset).utf8), $0.element] })
        next += count
    }
    var rows: [[String]] = []
    for words in [["SMEMBERS", "s"], ["HGETALL", "h"], ["ZRANGE", "z", "0", "-1"]] {
        var times: [Double] = []
        var bytes = 0
        for _ in 0..<3 {
            let t0 = monotonicNanoseconds()
            let output = command(words.map { Array($0.utf8) })
            times.append(Double(monotonicNanoseconds() - t0) / 1e6)
            bytes = 0
            for case .reply(_, let reply) in output.immediate + output.effects { bytes += reply.count }
        }
        rows.append([words.joined(separator: " "), "\(totalMembers)", String(format: "%.0f ms", median(times)), "\(bytes >> 20) MiB"])
    }
    printTable(header: ["command", "members", "engine busy (median of 3)", "reply"], rows: rows)
}

/// `scan`: what one SSCAN page costs the engine thread against the size of the set: the first page of
/// an iteration (cursor 0, which builds the key's scan order when the key changed: from 10,000 members
/// on the daemon's large-reply worker, timed here apart), the later pages (median), and a whole
/// iteration, at COUNT 10 and 1000.
func scans() throws {
    var rows: [[String]] = []
    for size in [1_000, 100_000, totalMembers] {
        var engine = try Engine(configuration: EngineConfiguration(nodeID: "bench", replica: ReplicaID(1)))
        let client = ClientID(1)
        _ = engine.handle(.clientConnected(client, address: "bench"))
        var next = 0
        while next < size {
            let count = min(1000, size - next)
            _ = engine.handle(.clientCommand(client, [Array("SADD".utf8), Array("s".utf8)] + (next..<(next + count)).map(member)))
            next += count
        }
        for count in [10, 1000] {
            var workerMs = 0.0
            var copyingWriteMs = 0.0
            func page(_ cursor: String) -> (String, Double) {
                let t0 = monotonicNanoseconds()
                let output = engine.handle(.clientCommand(client, ["SSCAN", "s", cursor, "COUNT", String(count)].map { Array($0.utf8) }))
                let ms = Double(monotonicNanoseconds() - t0) / 1e6
                var parser = RESPReplyParser()
                for effect in output.immediate + output.effects {
                    switch effect {
                    case .reply(_, let bytes): try? parser.append(bytes)
                    case .deferredReply(_, let deferred):
                        // A write while the worker holds its copy: the engine copies the set's tables.
                        let c0 = monotonicNanoseconds()
                        _ = engine.handle(.clientCommand(client, [Array("SADD".utf8), Array("s".utf8), Array("during-\(count)".utf8)]))
                        copyingWriteMs = Double(monotonicNanoseconds() - c0) / 1e6
                        // The daemon runs this on its large-reply worker, off the engine thread.
                        let w0 = monotonicNanoseconds()
                        try? parser.append(deferred.encode())
                        workerMs += Double(monotonicNanoseconds() - w0) / 1e6
                    default: continue
                    }
                }
                guard case .array(let parts)? = try? parser.next(), case .bulkString(let next) = parts.first else { return ("0", ms) }
                return (String(decoding: next, as: UTF8.self), ms)
            }
            // A write first, so the iteration's first page builds the order, as on a key in use.
            _ = engine.handle(.clientCommand(client, [Array("SADD".utf8), Array("s".utf8), Array("fresh-\(count)".utf8)]))
            let t0 = monotonicNanoseconds()
            var (cursor, first) = page("0")
            var later: [Double] = []
            while cursor != "0", later.count < 2_000_000 {
                let (after, ms) = page(cursor)
                later.append(ms)
                cursor = after
            }
            let whole = Double(monotonicNanoseconds() - t0) / 1e6
            rows.append(["\(size)", "\(count)", String(format: "%.3f ms", first), String(format: "%.1f ms", workerMs),
                         String(format: "%.1f ms", copyingWriteMs),
                         String(format: "%.4f ms", median(later.isEmpty ? [0] : later)),
                         String(format: "%.3f ms", later.max() ?? 0), "\(later.count + 1)", String(format: "%.0f ms", whole)])
        }
    }
    printTable(header: ["members", "COUNT", "first page, engine", "first page, worker (builds the order)", "a write meanwhile", "later page, median", "later page, max", "pages", "whole iteration"], rows: rows)
}

if mode == "reply" {
    try replies()
    exit(0)
}
/// `restart PATH`: grows the set into PATH if it does not exist (as `grow` does, serialised off the
/// engine thread), then restarts from it three times, timing open + load, decoding the snapshots and
/// joining the deltas (what `Engine.init` does), and the whole `Engine.init`.
func restarts(path: String) throws {
    if !FileManager.default.fileExists(atPath: path) {
        let store = try Store(path: path, options: StoreOptions(synchronous: .normal))
        _ = try store.load()
        var configuration = EngineConfiguration(nodeID: "bench", replica: ReplicaID(1))
        configuration.background = { work in serialising.async(execute: work) }
        var engine = try Engine(configuration: configuration)
        let client = ClientID(1)
        _ = engine.handle(.clientConnected(client, address: "bench"))
        var next = 0, tick = 0
        func commit(_ output: EngineOutput) throws {
            try store.commit(output.records.map { record -> StoreRecord in
                switch record {
                case .delta(let k, let b): .delta(key: k, bytes: b)
                case .snapshot(let k, let b): .snapshot(key: k, bytes: b)
                case .snapshotBegin(let k): .snapshotBegin(key: k)
                case .snapshotPart(let k, let b): .snapshotPart(key: k, bytes: b)
                case .snapshotSeal(let k): .snapshotSeal(key: k)
                case .meta(let n, let v): .meta(name: n, value: v)
                case .remove(let k): .remove(key: k)
                }
            })
        }
        while next < totalMembers || engine.stagedSnapshotsInProgress > 0 {
            var output = EngineOutput()
            if next < totalMembers {
                let count = min(1000, totalMembers - next)
                engine.handle(.clientCommand(client, [Array("SADD".utf8), Array("big".utf8)] + (next..<(next + count)).map(member)), into: &output)
                next += count
            } else {
                tick += 1
                engine.handle(.tick(monotonicMilliseconds: UInt64(tick * 10), wallMilliseconds: 1), into: &output)
                usleep(1000)
            }
            engine.flush(into: &output)
            try commit(output)
        }
        store.close()
    }
    var rows: [[String]] = []
    for _ in 0..<3 {
        let t0 = monotonicNanoseconds()
        let store = try Store(path: path, options: StoreOptions(synchronous: .normal))
        let recovered = try store.load()
        let t1 = monotonicNanoseconds()
        var deltas = 0
        for (_, key) in recovered.keys {
            var state = try key.snapshot.map { try KeyObject(serialized: $0, limits: DecodingLimits(maxBytes: .max, maxElements: .max, maxDepth: 8)) } ?? KeyObject()
            blackHole(state)
            for delta in key.deltas {
                state.join(try KeyObject(serialized: delta, limits: DecodingLimits(maxBytes: .max, maxElements: .max, maxDepth: 8)))
                deltas += 1
            }
            blackHole(state)
        }
        let t2 = monotonicNanoseconds()
        let engine = try Engine(configuration: EngineConfiguration(nodeID: "bench", replica: ReplicaID(1)), recovery: EngineRecovery(
            objects: recovered.keys.map { .init(key: $0.key, snapshot: $0.value.snapshot, deltas: $0.value.deltas) }, meta: recovered.meta))
        let t3 = monotonicNanoseconds()
        blackHole(engine.stagedSnapshotsInProgress)
        store.close()
        let snapshot = recovered.keys.values.map { $0.snapshot?.count ?? 0 }.reduce(0, +)
        rows.append([String(format: "%.0f ms", Double(t1 - t0) / 1e6), "\(snapshot >> 20) MiB, \(deltas) deltas",
                     String(format: "%.0f ms", Double(t2 - t1) / 1e6), String(format: "%.0f ms", Double(t3 - t2) / 1e6),
                     String(format: "%.2f s", Double(t1 - t0 + t3 - t2) / 1e9)])
    }
    printTable(header: ["open + load()", "recovered", "decode + join deltas", "Engine.init", "restart (load + init)"], rows: rows)
}

if mode == "restart" {
    try restarts(path: CommandLine.arguments.dropFirst(2).first ?? NSTemporaryDirectory() + "large-object-restart.db")
    exit(0)
}
if mode == "scan" {
    try scans()
    exit(0)
}

print("LargeObjectBench: \(totalMembers) members, \(perCommand) per SADD, \(commandsPerStep) SADDs per step (one commit)")
// Interleaved, before then after, twice: drift on a shared machine hits both alike.
var results: [Result] = []
let rounds = mode == "grow1" ? 1 : 2
for round in 1...rounds {
    for (label, staged, offThread) in [("one commit per snapshot", false, false), ("staged, serialised in the step", true, false),
                                        ("staged, serialised off the engine thread", true, true)] {
        results.append(try run(label: "\(label), round \(round)", staged: staged, offThread: offThread))
    }
}
func f(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
printTable(header: ["snapshots", "members/s", "largest commit (wall / CPU)", "p99 commit", "largest engine step (wall / CPU)", "largest step (engine + commit)",
                    "largest commit bytes", "snapshot bytes written", "database", "restart"],
           rows: results.map { r in
               [r.label, f(Double(totalMembers) / r.seconds, 0), f(r.largestCommitMs) + " / " + f(r.largestCommitCPUMs) + " ms",
                f(r.p99CommitMs, 2) + " ms", f(r.largestEngineMs) + " / " + f(r.largestEngineCPUMs) + " ms", f(r.largestStepMs) + " ms", "\(r.largestCommitBytes / 1024) KiB",
                "\(r.snapshotBytesWritten >> 20) MiB", "\(r.databaseBytes >> 20) MiB", f(r.restartSeconds, 2) + " s"]
           })
for round in stride(from: 0, to: results.count, by: 3) {
    let results = Array(results[round..<(round + 3)])
    print("largest commit, staged / one commit: wall \(f(results[1].largestCommitMs / results[0].largestCommitMs, 3)), CPU \(f(results[1].largestCommitCPUMs / results[0].largestCommitCPUMs, 3)), bytes \(f(Double(results[1].largestCommitBytes) / Double(results[0].largestCommitBytes), 3)); rate staged / one commit: \(f(results[0].seconds / results[1].seconds, 2))")
    print("largest engine step, off the engine thread / in the step: wall \(f(results[2].largestEngineMs / results[1].largestEngineMs, 3)), CPU \(f(results[2].largestEngineCPUMs / results[1].largestEngineCPUMs, 3)); rate \(f(results[1].seconds / results[2].seconds, 2))")
}
