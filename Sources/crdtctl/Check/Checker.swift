import Foundation

/// What one node held after the run, read once every node agreed (or the wait for that gave up).
struct FinalRead: Codable, Sendable {
    var node: String
    /// Counter values; a key the node does not hold is 0.
    var counters: [String: Int64] = [:]
    /// The hot set's members, or nil when they could not be read.
    var members: [String]?
    /// Register values; a missing key was never written on this node.
    var registers: [String: String] = [:]
    /// Why (part of) the state could not be read.
    var error: String?
}

/// How the wait for agreement after the final heal went.
struct Convergence: Codable, Sendable {
    struct Sample: Codable, Sendable {
        /// Seconds after the final heal.
        var at: Double
        /// How many different digests the nodes reported, and how many nodes answered.
        var distinct: Int
        var answered: Int
    }
    var converged: Bool
    /// Seconds from the end of the final heal until every node reported the same digest.
    var seconds: Double?
    var timeout: Double
    var digests: [String: String]
    /// Nodes that had not taken the final CRDT.HEAL when the wait ended, with why.
    var unhealed: [String]
    var samples: [Sample]
}

/// The judgment of one run, by Maelstrom's and Jepsen's rules.
struct Verdict: Codable, Sendable {
    var valid: Bool
    /// Every reason the run is invalid, in words.
    var problems: [String]
    var counters: [CounterResult]
    var set: SetResult
    var registers: [RegisterResult]
    var convergence: Convergence
    /// The faults injected, by description (e.g. "partition ring"), with how often.
    var faultsInjected: [String: Int]
    var stats: Stats
    /// How long acknowledged adds took to show on every node (measured by `check`, not judged).
    var visibility: VisibilityResult? = nil
    /// Replication bytes and frames per acknowledged operation, from the nodes' metrics.
    var traffic: TrafficResult? = nil
}

/// A counter is valid when each node's value is the sum of the acknowledged deltas plus some subset of
/// the indeterminate ones (failed ones certainly did not happen).
struct CounterResult: Codable, Sendable {
    var key: String
    var acknowledgedSum: Int64
    var acknowledged: Int
    var indeterminate: Int
    var failed: Int
    /// The range of allowed values (every value in it may not be reachable; `values` are checked exactly).
    var minimum: Int64
    var maximum: Int64
    var values: [String: Int64]
    var valid: Bool
}

/// Each element of the hot set, classified as in Jepsen's `set-full`, extended to removes.
struct SetResult: Codable, Sendable {
    var key: String
    var adds: [String: Int]  // by outcome
    var removes: [String: Int]  // by outcome
    /// Members per node at the end.
    var finalSize: [String: Int]
    /// Present on every node, not removed.
    var stable = 0
    /// Known (add acknowledged, or seen by a read), never successfully removed, but absent on some node.
    var lost = 0
    /// Add indeterminate, never seen by any read, absent everywhere: allowed.
    var neverRead = 0
    /// Remove acknowledged or indeterminate, absent everywhere.
    var removed = 0
    /// Remove acknowledged, yet present on some node.
    var resurrected = 0
    /// Present on some node although its add failed, or never attempted.
    var unexpected = 0
    /// Either outcome allowed, but the nodes disagree.
    var divergent = 0
    /// Add failed and absent everywhere: correctly not there.
    var notAdded = 0
    /// Up to ten elements of each bad class, with why.
    var examples: [String] = []
    /// Reads (SISMEMBER) during the run that missed an element whose add had been acknowledged before the
    /// read began, and not removed: expected under partitions, listed worst first.
    var staleReads = 0
    var reads = 0
    var worstStaleReads: [StaleRead] = []

    var valid: Bool { lost == 0 && resurrected == 0 && unexpected == 0 && divergent == 0 }
}

struct StaleRead: Codable, Sendable {
    var element: String
    var node: String
    /// Seconds since the add was acknowledged when the read began.
    var age: Double
    var at: Double
}

/// A register must hold a value some client wrote (acknowledged or indeterminate), the same on every node.
struct RegisterResult: Codable, Sendable {
    var key: String
    var written: Int
    var values: [String: String]
    var valid: Bool
    var reason: String?
}

struct Stats: Codable, Sendable {
    struct Row: Codable, Sendable {
        var kind: String
        var ok: Int
        var failed: Int
        var indeterminate: Int
        /// Latency of the acknowledged operations, in milliseconds, by percentile label (p50 ... max).
        var latencyMilliseconds: [String: Double]
    }
    var duration: Double
    /// Acknowledged operations per second over the run.
    var throughput: Double
    var total: Row
    var byKind: [Row]

    static let percentiles: [(String, Double)] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999), ("max", 1)]
}

/// Judges a history against the final reads.
struct Checker {
    let keys: CheckKeys
    let nodeNames: [String]
    let operations: [Operation]
    let finals: [FinalRead]
    let convergence: Convergence
    let faults: [FaultWindow]
    let duration: Double

    func verdict() -> Verdict {
        var problems: [String] = []
        for final in finals {
            if let error = final.error { problems.append("could not read the final state of \(final.node): \(error)") }
        }
        if !convergence.converged {
            problems.append("the nodes did not agree within \(format(convergence.timeout)) s of the final heal "
                + "(digests: \(convergence.digests.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.prefix(12))" }.joined(separator: ", ")))"
                + (convergence.unhealed.isEmpty ? "" : "; never healed: \(convergence.unhealed.joined(separator: "; "))"))
        }
        let counters = keys.counters.map(checkCounter)
        for counter in counters where !counter.valid {
            let values = counter.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            problems.append("counter \(counter.key): \(values), but the acknowledged sum is \(counter.acknowledgedSum) "
                + "and \(counter.indeterminate) indeterminate deltas allow \(counter.minimum)...\(counter.maximum) (only exact subset sums)")
        }
        let set = checkSet()
        if !set.valid {
            problems.append("set \(set.key): \(set.lost) lost, \(set.resurrected) resurrected, \(set.unexpected) unexpected, "
                + "\(set.divergent) divergent elements; e.g. \(set.examples.prefix(5).joined(separator: "; "))")
        }
        let registers = keys.registers.map(checkRegister)
        for register in registers where !register.valid {
            problems.append("register \(register.key): \(register.reason ?? "invalid")")
        }
        problems += disagreements()
        var injected: [String: Int] = [:]
        for fault in faults {
            injected[fault.kind == "partition" ? "partition \(fault.detail.prefix { $0 != ":" })" : fault.kind, default: 0] += 1
        }
        return Verdict(valid: problems.isEmpty, problems: problems, counters: counters, set: set, registers: registers,
                       convergence: convergence, faultsInjected: injected, stats: stats())
    }

    // MARK: Counters

    func checkCounter(_ key: String) -> CounterResult {
        let ops = operations.filter { $0.kind == .incrby && $0.key == key }
        var acknowledged: Int64 = 0
        var indeterminate: [Int64] = []
        var failed = 0
        for op in ops {
            let delta = Int64(op.argument) ?? 0
            switch op.outcome {
            case .ok: acknowledged += delta
            case .indeterminate: indeterminate.append(delta)
            case .failed: failed += 1
            }
        }
        let sums = SubsetSums(base: acknowledged, optional: indeterminate)
        var values: [String: Int64] = [:]
        var valid = true
        for final in finals where final.error == nil {
            let value = final.counters[key] ?? 0
            values[final.node] = value
            if !sums.contains(value) { valid = false }
        }
        return CounterResult(key: key, acknowledgedSum: acknowledged, acknowledged: ops.count - indeterminate.count - failed,
                             indeterminate: indeterminate.count, failed: failed, minimum: sums.minimum, maximum: sums.maximum,
                             values: values, valid: valid)
    }

    // MARK: Set

    func checkSet() -> SetResult {
        var adds: [String: Operation] = [:]
        var removes: [String: Operation] = [:]
        var seen = Set<String>()  // observed by a read during the run
        var reads: [Operation] = []
        for op in operations where op.key == keys.hotSet {
            switch op.kind {
            case .sadd: adds[op.argument] = op
            case .srem: removes[op.argument] = op
            case .sismember where op.outcome == .ok:
                reads.append(op)
                if op.reply == "(integer) 1" { seen.insert(op.argument) }
            default: break
            }
        }
        let readable = finals.filter { $0.members != nil }
        let present = readable.map { Set($0.members!) }
        var result = SetResult(
            key: keys.hotSet,
            adds: Dictionary(grouping: adds.values, by: { $0.outcome.rawValue }).mapValues(\.count),
            removes: Dictionary(grouping: removes.values, by: { $0.outcome.rawValue }).mapValues(\.count),
            finalSize: Dictionary(uniqueKeysWithValues: readable.map { ($0.node, $0.members!.count) }))
        var examples: [String: [String]] = [:]
        func example(_ kind: String, _ text: String) {
            if examples[kind, default: []].count < 10 { examples[kind, default: []].append(text) }
        }
        func whereIs(_ element: String) -> String {
            let on = zip(readable, present).filter { $0.1.contains(element) }.map(\.0.node)
            let off = readable.map(\.node).filter { !on.contains($0) }
            if on.isEmpty { return "absent everywhere" }
            if off.isEmpty { return "present everywhere" }
            return "present on \(on.joined(separator: ",")), absent on \(off.joined(separator: ","))"
        }

        for (element, add) in adds {
            let holders = present.filter { $0.contains(element) }.count
            let everywhere = holders == present.count, nowhere = holders == 0
            let remove = removes[element]
            if add.outcome == .failed {
                if nowhere { result.notAdded += 1 } else {
                    result.unexpected += 1
                    example("unexpected", "\(element): add failed (\(add.reply)) at \(format(add.invoke)) s but \(whereIs(element))")
                }
            } else if remove?.outcome == .ok {
                if nowhere { result.removed += 1 } else {
                    result.resurrected += 1
                    example("resurrected", "\(element): remove acknowledged at \(format(remove!.complete)) s but \(whereIs(element))")
                }
            } else if remove?.outcome == .indeterminate {
                if nowhere { result.removed += 1 } else if everywhere { result.stable += 1 } else {
                    result.divergent += 1
                    example("divergent", "\(element): remove indeterminate, \(whereIs(element))")
                }
            } else if add.outcome == .ok || seen.contains(element) {
                if everywhere { result.stable += 1 } else {
                    result.lost += 1
                    let how = add.outcome == .ok ? "add acknowledged by \(nodeNames[add.node]) at \(format(add.complete)) s"
                        : "add indeterminate but seen by a read"
                    example("lost", "\(element): \(how), \(whereIs(element))")
                }
            } else if nowhere {
                result.neverRead += 1
            } else if everywhere {
                result.stable += 1
            } else {
                result.divergent += 1
                example("divergent", "\(element): add indeterminate, \(whereIs(element))")
            }
        }
        let neverAdded = present.reduce(into: Set<String>()) { $0.formUnion($1) }.filter { adds[$0] == nil }
        for element in neverAdded.sorted() {
            result.unexpected += 1
            example("unexpected", "\(element): never added, \(whereIs(element))")
        }
        result.examples = ["lost", "resurrected", "unexpected", "divergent"].flatMap { examples[$0] ?? [] }

        var stale: [StaleRead] = []
        for read in reads where read.reply == "(integer) 0" {
            guard let add = adds[read.argument], add.outcome == .ok, add.complete < read.invoke else { continue }
            if let remove = removes[read.argument], remove.invoke < read.complete { continue }
            stale.append(StaleRead(element: read.argument, node: nodeNames[read.node], age: read.invoke - add.complete, at: read.invoke))
        }
        result.reads = reads.count
        result.staleReads = stale.count
        result.worstStaleReads = Array(stale.sorted { $0.age > $1.age }.prefix(10))
        return result
    }

    // MARK: Registers

    func checkRegister(_ key: String) -> RegisterResult {
        let writes = operations.filter { $0.kind == .set && $0.key == key }
        let possible = Set(writes.filter { $0.outcome != .failed }.map(\.argument))
        let acknowledged = writes.contains { $0.outcome == .ok }
        var values: [String: String] = [:]
        var reasons: [String] = []
        for final in finals where final.error == nil {
            guard let value = final.registers[key] else {
                if acknowledged { reasons.append("\(final.node) holds no value although a write was acknowledged") }
                continue
            }
            values[final.node] = value
            if !possible.contains(value) { reasons.append("\(final.node) holds '\(value)', which no client wrote (or whose write failed)") }
        }
        if Set(values.values).count > 1 { reasons.append("the nodes disagree") }
        return RegisterResult(key: key, written: writes.count, values: values, valid: reasons.isEmpty,
                              reason: reasons.isEmpty ? nil : reasons.joined(separator: "; "))
    }

    // MARK: Agreement

    /// Nodes whose final state differs from the first readable node's.
    func disagreements() -> [String] {
        let readable = finals.filter { $0.error == nil }
        guard let first = readable.first else { return [] }
        var problems: [String] = []
        for other in readable.dropFirst() {
            var differences: [String] = []
            for key in keys.counters where (first.counters[key] ?? 0) != (other.counters[key] ?? 0) {
                differences.append("\(key) \(first.counters[key] ?? 0) vs \(other.counters[key] ?? 0)")
            }
            if let a = first.members.map(Set.init), let b = other.members.map(Set.init), a != b {
                differences.append("\(keys.hotSet): \(a.subtracting(b).count) members only on \(first.node), \(b.subtracting(a).count) only on \(other.node)")
            }
            for key in keys.registers where first.registers[key] != other.registers[key] {
                differences.append("\(key) '\(first.registers[key] ?? "nil")' vs '\(other.registers[key] ?? "nil")'")
            }
            if !differences.isEmpty {
                problems.append("\(other.node) differs from \(first.node): \(differences.joined(separator: "; "))")
            }
        }
        return problems
    }

    // MARK: Statistics

    func stats() -> Stats {
        func row(_ kind: String, _ ops: [Operation]) -> Stats.Row {
            let latencies = ops.filter { $0.outcome == .ok }.map(\.latency).sorted()
            var percentiles: [String: Double] = [:]
            for (label, p) in Stats.percentiles {
                percentiles[label] = percentile(latencies, p) * 1000
            }
            return Stats.Row(kind: kind, ok: ops.count { $0.outcome == .ok }, failed: ops.count { $0.outcome == .failed },
                             indeterminate: ops.count { $0.outcome == .indeterminate }, latencyMilliseconds: percentiles)
        }
        let load = operations.filter { $0.client >= 0 }  // without the preload
        let total = row("all", load)
        return Stats(duration: duration, throughput: duration > 0 ? Double(total.ok) / duration : 0, total: total,
                     byKind: OperationKind.allCases.map { kind in row(kind.rawValue, load.filter { $0.kind == kind }) })
    }
}

/// Nearest-rank percentile of sorted values (exact: the whole history is at hand, so no histogram).
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((Double(sorted.count) * p).rounded(.up)) - 1
    return sorted[min(sorted.count - 1, max(0, rank))]
}

func format(_ seconds: Double) -> String { String(format: "%.2f", seconds) }

/// The sums `base + (any subset of optional)`, exactly: a bitset over the offsets from the smallest
/// reachable sum, filled by shift-or with repeated deltas grouped in powers of two (bounded knapsack),
/// so tens of thousands of indeterminate deltas cost a few hundred shifts.
struct SubsetSums {
    let minimum: Int64
    let maximum: Int64
    private var bits: [UInt64]

    init(base: Int64, optional deltas: [Int64]) {
        // Start with every negative delta taken: leaving one out then adds its magnitude, like a positive one.
        minimum = base + deltas.filter { $0 < 0 }.reduce(0, +)
        maximum = base + deltas.filter { $0 > 0 }.reduce(0, +)
        let width = Int(maximum - minimum) + 1
        bits = [UInt64](repeating: 0, count: (width + 63) / 64)
        bits[0] = 1
        var multiplicity: [Int64: Int] = [:]
        for delta in deltas where delta != 0 { multiplicity[abs(delta), default: 0] += 1 }
        for (magnitude, count) in multiplicity.sorted(by: { $0.key < $1.key }) {
            var remaining = count, chunk = 1
            while remaining > 0 {
                let take = min(chunk, remaining)
                shiftOr(by: Int(magnitude) * take)
                remaining -= take
                chunk *= 2
            }
        }
    }

    func contains(_ value: Int64) -> Bool {
        guard value >= minimum, value <= maximum else { return false }
        let offset = Int(value - minimum)
        return bits[offset / 64] & (1 << UInt64(offset % 64)) != 0
    }

    private mutating func shiftOr(by shift: Int) {
        let words = shift / 64, rest = shift % 64
        guard words < bits.count else { return }
        for i in stride(from: bits.count - 1, through: words, by: -1) {
            var moved = bits[i - words] << UInt64(rest)
            if rest > 0, i - words - 1 >= 0 { moved |= bits[i - words - 1] >> UInt64(64 - rest) }
            bits[i] |= moved
        }
    }
}
