import ArgumentParser
import Dispatch
import Engine
import Foundation
import NodeControl
import RESP
import RESPClient
import Synchronization

extension CRDTCTL {
    /// A Jepsen/Maelstrom-style test: random operations against every node while a nemesis injects faults,
    /// then a judgment of the final state against every acknowledged write.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a cluster while injecting faults, then check that every acknowledged write survived.",
            discussion: """
                Runs clients against every node (INCRBY on counters, SADD/SREM on one hot set, SET on registers, \
                a few reads), at --rate operations per second in total for --duration seconds, while a nemesis \
                injects partitions (isolate, minority, majority, ring, bridge), kill -9 with restart and SIGSTOP \
                pauses (and, with --faults oneway, one node's traffic cut one way: it hears the others, they do not \
                hear it; with --faults disk, a full, stalled or failing disk on one node), one at a time. \
                Every operation is recorded as ok, failed (certainly not applied) or \
                indeterminate (timed out). After the final heal it waits until all digests agree, reads every \
                node, and judges: each counter is the acknowledged sum plus a subset of the indeterminate deltas; \
                each acknowledged add never removed is present, each acknowledged remove absent, nothing never \
                added present; registers hold a written value; all nodes agree.

                It also measures, without judging: how long each acknowledged add took to show on every node \
                (polled with SMISMEMBER every --visibility-interval), and the peer bytes and frames each node \
                sent per acknowledged operation (from its /metrics, scraped once a second).

                With --partitions netns (root only) the local cluster runs one node per Linux network namespace, \
                joined by a bridge, and partitions are nftables rules dropping packets between namespaces: the \
                daemons are not told. The namespaces, veths and bridge are removed at the end, on ^C too, and \
                leftovers of a crashed run with the same --netns-prefix are removed at the start.

                Exit codes: 0 valid, 1 invalid, 2 could not run (a node did not start or answer, or refuses \
                fault injection), 64 bad arguments.
                """)

        @Option(help: "Nodes of a local cluster to start (ignored with --addr).") var nodes = 5
        @Option(name: .customLong("addr"), help: ArgumentHelp("A node to test instead of a local cluster (repeat for each node).", valueName: "host:port"))
        var addresses: [String] = []
        @Option(help: "Directory of the local cluster (removed and recreated).") var dir = "/tmp/crdtd-check"
        @Option(help: "Base port of the local cluster (clients base+1.., peers base+101.., metrics base+201..).") var basePort = 28_000
        @Option(help: "Operations per second, in total over all clients.") var rate = 300.0
        @Option(help: "Seconds of load.") var duration = 30.0
        @Option(help: "Clients per node.") var clientsPerNode = 2
        @Option(help: "Seconds a client waits for a reply before recording the operation as indeterminate.") var timeout = 2.0
        @Option(help: "Faults to inject: partition, oneway, kill, pause, disk, comma-separated, or none. Default: partition,kill,pause for a local cluster, partition for --addr.")
        var faults: String?
        @Option(help: ArgumentHelp("How partitions are made: daemon (each node's CRDT.PARTITION) or netns (the nodes in network namespaces, cut with nftables; root, local cluster only).",
                                   valueName: "daemon|netns"))
        var partitions = PartitionMechanism.daemon
        @OptionGroup var network: NetnsOptions
        @Option(help: "Seconds each fault lasts.") var faultDuration = 3.0
        @Option(help: "Seconds between one fault's end and the next one's start.") var faultGap = 2.0
        @Option(help: "Seconds to wait after the final heal for every digest to agree.") var convergeTimeout = 30.0
        @Option(help: "Members added to the hot set before the load starts (batches of 1,000 on the first node), to test big sets.")
        var preload = 0
        @Option(help: "Seconds between two polls of a node for the acknowledged adds it has not shown yet (visibility times are late by at most this); 0: no watch.")
        var visibilityInterval = 0.1
        @Option(help: "Directory for the report: history.jsonl, visibility.jsonl, metrics.jsonl, verdict.json, verdict.txt, logs/, index.html.")
        var report: String?
        @Option(help: "Seed for the operation mix and the fault schedule (default: random, printed).") var seed: UInt64?
        @Flag(help: "Leave the local cluster running at the end.") var keep = false
        @Flag(help: "Print only the verdict.") var quiet = false

        func validate() throws {
            if addresses.isEmpty {
                guard (3...17).contains(nodes) else { throw ValidationError("--nodes must be between 3 and 17") }
                guard basePort > 0 && basePort + 300 < 65_536 else { throw ValidationError("--base-port leaves no room for the ports") }
            }
            guard rate > 0, duration > 0, timeout > 0, convergeTimeout > 0, faultDuration > 0, faultGap >= 0 else {
                throw ValidationError("--rate, --duration, --timeout, --converge-timeout and --fault-duration must be positive")
            }
            guard visibilityInterval == 0 || (0.01...10).contains(visibilityInterval) else {
                throw ValidationError("--visibility-interval must be between 0.01 and 10 seconds, or 0 (no watch)")
            }
            guard (1...64).contains(clientsPerNode) else { throw ValidationError("--clients-per-node must be between 1 and 64") }
            let families = try faultFamilies()
            if !addresses.isEmpty, partitions == .netns {
                throw ValidationError("--partitions netns starts its own nodes in namespaces: it cannot be used with --addr")
            }
            if !addresses.isEmpty, let local = families.first(where: \.needsLocalCluster) {
                throw ValidationError("--faults \(local.rawValue) needs a local cluster (its processes): with --addr use --faults partition")
            }
        }

        func faultFamilies() throws -> [FaultFamily] {
            guard let faults else { return addresses.isEmpty ? FaultFamily.localDefault : [.partition] }
            if faults == "none" { return [] }
            return try faults.split(separator: ",").map { name in
                guard let family = FaultFamily(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("unknown fault '\(name)': use partition, oneway, kill, pause, disk (comma-separated) or none")
                }
                return family
            }
        }

        func run() throws {
            let verdict: Verdict
            do {
                verdict = try execute()
            } catch let error as ClusterError {
                print("check could not run: \(error)")
                throw ExitCode(2)
            } catch let error as NetnsError {
                print("check could not run: \(error)")
                throw ExitCode(2)
            }
            throw ExitCode(verdict.valid ? 0 : 1)
        }

        func say(_ line: String) {
            if !quiet { print(line) }
        }

        func execute() throws -> Verdict {
            let families = try faultFamilies()
            let seed = self.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
            let cluster: CheckCluster
            if addresses.isEmpty {
                let lab = partitions == .netns ? try network.lab(nodes: nodes) : nil
                say("== starting \(nodes) nodes in \(dir)" + (lab.map { ", each in a network namespace (\($0.prefix)-n1.., \($0.subnet).0/24)" } ?? ""))
                cluster = CheckCluster(local: try couldNotRun {
                    try startCluster(dir: dir, nodes: nodes, basePort: basePort, insecure: false,
                                     storageFaults: families.contains(.disk), netns: lab)
                })
            } else {
                cluster = try CheckCluster(addresses: addresses)
            }
            defer {
                cluster.thawAll()
                if !keep { cluster.stopAll() }
            }
            try cluster.probe(needsFaultInjection: families.contains(.partition))
            if let report { try FileManager.default.createDirectory(atPath: report, withIntermediateDirectories: true) }

            let names = cluster.nodes.map(\.name)
            let keys = CheckKeys(runID: String(seed, radix: 36))
            let preloaded = try preloadSet(cluster, keys: keys)
            let clock = RunClock()
            let clientCount = cluster.nodes.count * clientsPerNode
            let faultList = Fault.all(of: families)
            say("== \(clientCount) clients on \(names.joined(separator: ", ")), \(Int(rate)) ops/s for \(format(duration)) s, "
                + "faults: \(faultList.isEmpty ? "none" : faultList.map(\.description).joined(separator: ", ")), seed \(seed)")

            // Load and faults, each on threads of their own: clients block on their sockets.
            let stop = StopFlag()
            let stopOnInterrupt = interruptHandler(stop)
            defer { stopOnInterrupt.cancel() }
            let progress = Progress()
            let acknowledged = AcknowledgedAdds()
            let histories = Mutex([[Operation]]())
            let windows = Mutex([FaultWindow]())
            // Watching every acknowledged add until each node shows it, and each node's replication counters.
            let watcher = visibilityInterval > 0
                ? VisibilityWatcher(cluster: cluster, key: keys.hotSet, clock: clock, interval: visibilityInterval) : nil
            let scraper = MetricsScraper(endpoints: cluster.nodes.map(\.metrics), clock: clock, network: cluster.netns)
            scraper.start()
            watcher?.start()
            let group = DispatchGroup()
            let perClient = rate / Double(clientCount)
            let callTimeout = Duration.milliseconds(Int(timeout * 1000))
            for c in 0..<clientCount {
                let node = c % cluster.nodes.count
                let address = cluster.nodes[node]
                group.enter()
                // Each client is made on its own thread: its connection never crosses threads.
                Thread {
                    var client = CheckClient(id: c, node: node, host: address.host, port: address.port, keys: keys,
                                             timeout: callTimeout, clock: clock, seed: seed, network: cluster.netns)
                    client.run(rate: perClient, stop: stop, acknowledged: acknowledged, progress: progress, watcher: watcher)
                    histories.withLock { $0.append(client.operations) }
                    group.leave()
                }.start()
            }
            let quiet = self.quiet, hold = faultDuration, gap = faultGap
            group.enter()
            Thread {
                var nemesis = Nemesis(cluster: cluster, faults: faultList, hold: hold, gap: gap, clock: clock,
                                      seed: seed, restartTimeout: .seconds(30))
                nemesis.run(stop: stop) { line in if !quiet { print("   nemesis \(line)") } }
                windows.withLock { $0 = nemesis.windows }
                group.leave()
            }.start()

            var nextProgress = 2.0
            while clock.now() < duration && !stop.isSet {
                Thread.sleep(forTimeInterval: 0.05)
                if clock.now() >= nextProgress {
                    let counts = progress.snapshot
                    say(String(format: "%6.1f s  ok %d  failed %d  indeterminate %d", clock.now(),
                               counts[.ok] ?? 0, counts[.failed] ?? 0, counts[.indeterminate] ?? 0))
                    nextProgress += 5
                }
            }
            stop.set()
            group.wait()
            let loadEnded = clock.now()

            // The final heal: thaw, restart any node down, then lift partitions (retried while waiting for
            // agreement, since a node busy catching up may not answer the first CRDT.HEAL in time).
            cluster.thawAll()
            var restartErrors: [String] = []
            for i in cluster.nodes.indices where !cluster.isRunning(i) {
                do { try cluster.restart(i, timeout: .seconds(30)) } catch { restartErrors.append("restart of \(names[i]): \(error)") }
            }
            for error in restartErrors { say("   final heal: \(error)") }
            let healed = clock.now()
            say("== final heal at \(format(healed)) s; waiting up to \(format(convergeTimeout)) s for every digest to agree")
            let convergence = waitForAgreement(cluster, timeout: convergeTimeout)
            say(convergence.converged ? "   agreed after \(format(convergence.seconds ?? 0)) s" : "   no agreement")
            let agreedAt = clock.now()
            let visibility = watcher?.finish() ?? []

            let finals = cluster.nodes.indices.map { finalRead(cluster, $0, keys: keys) }
            let operations = preloaded + histories.withLock { $0.flatMap { $0 } }.sorted { $0.invoke < $1.invoke }
            let faultWindows = windows.withLock { $0 }
            let checker = Checker(keys: keys, nodeNames: names, operations: operations, finals: finals, convergence: convergence,
                                  faults: faultWindows, duration: loadEnded)
            var verdict = checker.verdict()
            if let watcher {
                let failed = Dictionary(uniqueKeysWithValues: zip(names, watcher.failedPolls).filter { $0.1 > 0 })
                verdict.visibility = VisibilityResult(records: visibility, faults: faultWindows, healedAt: healed,
                                                      pollInterval: visibilityInterval, failedPolls: failed)
            }
            // The daemons export their counters once a second: the last scrape waits for the export that
            // follows agreement, so the catch-up traffic is counted.
            let rounds = scraper.finish(notBefore: agreedAt + 1.1)
            verdict.traffic = TrafficResult(rounds: rounds, unavailable: scraper.unavailable(rounds), operations: operations, nodeNames: names)
            let missing = Set(faultList.map(\.verdictName)).subtracting(verdict.faultsInjected.keys)
            if !missing.isEmpty {
                say("   note: the run was too short to inject \(missing.sorted().joined(separator: ", "))")
            }
            // A storage fault the node never showed means the shim did not act: the run did not test what
            // it says it tested.
            let untaken = faultWindows.filter { $0.kind.hasPrefix("disk") }.flatMap(\.errors)
            if !untaken.isEmpty {
                verdict.problems.append("a storage fault did not take: \(untaken.joined(separator: "; "))")
                verdict.valid = false
            }
            if !restartErrors.isEmpty {
                verdict.problems.append("a node did not come back for the final heal: \(restartErrors.joined(separator: "; "))")
                verdict.valid = false
            }
            let text = verdictText(verdict, names: names)
            print(text)
            if let report {
                let content = ReportContent(verdict: verdict, operations: operations, faults: faultWindows, nodeNames: names,
                                            keys: keys, healedAt: healed, loadEnded: loadEnded, settings: settingsSummary(seed: seed),
                                            visibility: visibility, metrics: rounds)
                try writeReport(content, text: text, logs: cluster.logFiles, to: report)
                print("report: \(report)/index.html")
            }
            return verdict
        }

        /// Adds `--preload` members (`p-<n>`) to the hot set through the first node, each recorded as an
        /// acknowledged add of client -1 at time 0, so the checker expects every one of them at the end.
        func preloadSet(_ cluster: CheckCluster, keys: CheckKeys) throws -> [Operation] {
            guard preload > 0 else { return [] }
            say("== preloading \(preload) members into \(keys.hotSet) through \(cluster.nodes[0].name)")
            var operations: [Operation] = []
            operations.reserveCapacity(preload)
            do {
                let connection = try cluster.connect(0, timeout: .seconds(60))
                defer { connection.close() }
                for start in stride(from: 0, to: preload, by: 1000) {
                    let members = (start..<min(preload, start + 1000)).map { "p-\($0)" }
                    let reply = try connection.send(["SADD", keys.hotSet] + members)
                    guard reply == .integer(Int64(members.count)) else {
                        throw ClusterError("preloading the hot set: SADD of \(members.count) new members answered \(reply.text)")
                    }
                    operations += members.map {
                        Operation(client: -1, node: 0, kind: .sadd, key: keys.hotSet, argument: $0, invoke: 0, complete: 0,
                                  outcome: .ok, reply: "(integer) 1")
                    }
                }
            } catch let error as RESPClientError {
                throw ClusterError("preloading the hot set through \(cluster.nodes[0].name): \(error.message)")
            }
            return operations
        }

        func settingsSummary(seed: UInt64) -> [String: String] {
            [
                "nodes": addresses.isEmpty ? String(nodes) : addresses.joined(separator: " "),
                "rate": String(rate), "duration": String(duration), "clients per node": String(clientsPerNode),
                "timeout": String(timeout), "faults": faults ?? "default", "partitions": partitions.rawValue, "fault duration": String(faultDuration),
                "fault gap": String(faultGap), "converge timeout": String(convergeTimeout), "seed": String(seed),
                "preload": String(preload), "visibility interval": String(visibilityInterval),
            ]
        }

        /// Sends CRDT.HEAL to every node until each has taken it, and polls every node's digest until they
        /// agree or `timeout` passes; a sample per poll for the report. Time runs from the first HEAL sent.
        func waitForAgreement(_ cluster: CheckCluster, timeout: Double) -> Convergence {
            let start = monotonic()
            var samples: [Convergence.Sample] = []
            var unhealed = cluster.heal(timeout: .seconds(2))
            while true {
                if !unhealed.isEmpty { unhealed = cluster.heal(unhealed.map(\.node), timeout: .seconds(2)) }
                let digests = cluster.digests(timeout: .seconds(5))
                let elapsed = Double(monotonic() - start) / 1e9
                let answered = digests.compactMap { $0 }
                samples.append(.init(at: elapsed, distinct: Set(answered).count, answered: answered.count))
                let agreed = answered.count == digests.count && Set(answered).count == 1
                if agreed || elapsed >= timeout {
                    return Convergence(converged: agreed, seconds: agreed ? elapsed : nil, timeout: timeout,
                                       digests: named(digests, cluster), unhealed: unhealed.map(\.error), samples: samples)
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }

        func named(_ digests: [String?], _ cluster: CheckCluster) -> [String: String] {
            Dictionary(uniqueKeysWithValues: zip(cluster.nodes.map(\.name), digests.map { $0 ?? "no answer" }))
        }

        /// Reads the counters, the hot set and the registers of node `i` with a generous timeout.
        func finalRead(_ cluster: CheckCluster, _ i: Int, keys: CheckKeys) -> FinalRead {
            var read = FinalRead(node: cluster.nodes[i].name)
            do {
                let connection = try cluster.connect(i, timeout: .seconds(15))
                defer { connection.close() }
                let commands = keys.counters.map { ["GET", $0] } + [["SMEMBERS", keys.hotSet]] + keys.registers.map { ["GET", $0] }
                let replies = try connection.send(many: commands)
                for (key, reply) in zip(keys.counters, replies) {
                    switch reply {
                    case .null: break
                    case .bulkString(let bytes):
                        guard let value = Int64(String(decoding: bytes, as: UTF8.self)) else {
                            read.error = "GET \(key) answered \(reply.text), not a number"
                            return read
                        }
                        read.counters[key] = value
                    default:
                        read.error = "GET \(key) answered \(reply.text)"
                        return read
                    }
                }
                switch replies[keys.counters.count] {
                case .array(let items), .set(let items): read.members = items.map(\.text)
                case let other:
                    read.error = "SMEMBERS answered \(other.text.prefix(200))"
                    return read
                }
                for (key, reply) in zip(keys.registers, replies.suffix(keys.registers.count)) {
                    switch reply {
                    case .null: break
                    case .bulkString(let bytes): read.registers[key] = String(decoding: bytes, as: UTF8.self)
                    default:
                        read.error = "GET \(key) answered \(reply.text)"
                        return read
                    }
                }
            } catch {
                read.error = "\(error)"
            }
            return read
        }

        /// ^C (or SIGTERM) ends the load early but still heals, judges and reports, so no node is left
        /// frozen and no namespace left behind.
        func interruptHandler(_ stop: StopFlag) -> Interruption {
            Interruption(sources: [SIGINT, SIGTERM].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { stop.set() }
                source.resume()
                return source
            })
        }
    }
}

/// How `check` cuts the cluster.
enum PartitionMechanism: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Each node's own fault injection (CRDT.PARTITION): the daemon drops the frames.
    case daemon
    /// Nodes in network namespaces, packets dropped by nftables: the daemons are not told.
    case netns
}

/// The signal handlers of one `check` run.
struct Interruption {
    let sources: [any DispatchSourceSignal]
    func cancel() { for source in sources { source.cancel() } }
}
