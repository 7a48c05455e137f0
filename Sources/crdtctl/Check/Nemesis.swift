import Engine
import Foundation

/// The faults `check` can inject, as named by `--faults`.
enum FaultFamily: String, CaseIterable, Sendable {
    case partition, kill, pause
    /// One node's traffic to every other node cut, the reverse still flowing (it hears them, they do not
    /// hear it). Not in the default set.
    case oneway
    /// A full, stalled or failing disk on one node, through the storage fault shim preloaded into every
    /// node (Sources/CStorageFaults). Not in the default set: the nodes must be started with the shim.
    case disk

    var needsLocalCluster: Bool { self != .partition && self != .oneway }

    /// What `check` injects without `--faults`: everything but disk faults on a local cluster.
    static let localDefault: [FaultFamily] = [.partition, .kill, .pause]
}

/// One fault the nemesis schedules: a partition shape, or a kill -9, pause, full disk or stalled disk of
/// some node.
enum Fault: Sendable, Equatable, CustomStringConvertible {
    case partition(PartitionShape)
    /// The victim's frames (or, on a netns cluster, packets) reach no other node; it still hears them.
    case oneWay
    case kill
    case pause
    /// Every write to the node's data directory fails with ENOSPC: the node answers writes `-MISCONF`.
    case diskFull
    /// Every write and fsync in the node's data directory waits: after 1 s the node answers writes `-BUSY`.
    case diskStall
    /// Every write to the node's data directory fails with EIO: the node stops (exit 1) without
    /// acknowledging what it could not commit; the nemesis gives the disk back and restarts it.
    case diskError

    var family: FaultFamily {
        switch self {
        case .partition: .partition
        case .oneWay: .oneway
        case .kill: .kill
        case .pause: .pause
        case .diskFull, .diskStall, .diskError: .disk
        }
    }

    var description: String {
        switch self {
        case .kill: "kill -9"
        default: verdictName
        }
    }

    /// The name the verdict counts it under (`faultsInjected`), which is also its window's kind (but for
    /// partitions, whose windows are all of kind `partition`).
    var verdictName: String {
        switch self {
        case .partition(let shape): "partition \(shape.rawValue)"
        case .oneWay: "partition one-way"
        case .kill: "kill"
        case .pause: "pause"
        case .diskFull: "disk full"
        case .diskStall: "disk stall"
        case .diskError: "disk error"
        }
    }

    /// Every fault of the chosen families: each partition shape counts as its own fault.
    static func all(of families: [FaultFamily]) -> [Fault] {
        families.flatMap { family -> [Fault] in
            switch family {
            case .partition: PartitionShape.allCases.map { Fault.partition($0) }
            case .oneway: [.oneWay]
            case .kill: [.kill]
            case .pause: [.pause]
            case .disk: [.diskFull, .diskStall, .diskError]
            }
        }
    }
}

/// Injects one fault at a time: hold it for `hold` seconds, undo it, wait `gap` seconds, next. Faults come
/// in rounds, each round every fault once in a shuffled order, so a run long enough for one round has
/// seen every shape, a kill and a pause. Faults never overlap, so a restarted node (which forgets its
/// injected partition) never has to rejoin a partition.
struct Nemesis {
    let cluster: CheckCluster
    let faults: [Fault]
    let hold: Double
    let gap: Double
    let clock: RunClock
    var generator: SplitMix64
    /// How long a restarted node may take to answer PING before the window records an error.
    let restartTimeout: Duration
    private(set) var windows: [FaultWindow] = []

    init(cluster: CheckCluster, faults: [Fault], hold: Double, gap: Double, clock: RunClock, seed: UInt64, restartTimeout: Duration) {
        self.cluster = cluster
        self.faults = faults
        self.hold = hold
        self.gap = gap
        self.clock = clock
        self.restartTimeout = restartTimeout
        generator = SplitMix64(seed: seed ^ 0xFA17)
    }

    /// Runs until `stop` is set; the fault in progress is then undone before returning.
    mutating func run(stop: StopFlag, log: (String) -> Void) {
        guard !faults.isEmpty else { return }
        sleep(gap, unless: stop)
        var round: [Fault] = []
        while !stop.isSet {
            if round.isEmpty { round = faults.shuffled(using: &generator) }
            let fault = round.removeFirst()
            let victim = Int.random(in: 0..<cluster.nodes.count, using: &generator)
            let window = inject(fault, victim: victim, stop: stop, log: log)
            log(String(format: "%6.1f s  ", window.end) + "ended \(fault) after \(format(window.end - window.start)) s"
                + (window.errors.isEmpty ? "" : "; errors: " + window.errors.joined(separator: "; ")))
            windows.append(window)
            sleep(gap, unless: stop)
        }
    }

    mutating func inject(_ fault: Fault, victim: Int, stop: StopFlag, log: (String) -> Void) -> FaultWindow {
        let name = cluster.nodes[victim].name
        let start = clock.now()
        let cut = fault.family == .partition ? "" : " \(name)"
        log(String(format: "%6.1f s  ", start) + "\(fault)\(cut)")
        var errors: [String] = []
        var window: FaultWindow
        switch fault {
        case .partition(let shape):
            errors += cluster.partition(shape, victim: victim)
            let detail = "\(shape.rawValue): " + describeSides(shape.blockedPeers(nodes: cluster.nodes.count, victim: victim))
            log("          \(detail)")
            sleep(hold, unless: stop)
            errors += cluster.heal().map(\.error)
            window = FaultWindow(kind: "partition", detail: detail, nodes: Array(cluster.nodes.indices), start: start, end: clock.now())
        case .oneWay:
            errors += cluster.cutOneWay(from: victim)
            let detail = "one-way: \(name) → others cut, \(name) still hears them"
            log("          \(detail)")
            sleep(hold, unless: stop)
            errors += cluster.heal().map(\.error)
            window = FaultWindow(kind: "partition", detail: detail, nodes: Array(cluster.nodes.indices), start: start, end: clock.now())
        case .kill:
            cluster.kill9(victim)
            sleep(hold, unless: stop)
            do {
                try cluster.restart(victim, timeout: restartTimeout)
            } catch {
                errors.append("restart of \(name): \(error)")
            }
            window = FaultWindow(kind: "kill", detail: name, nodes: [victim], start: start, end: clock.now())
        case .pause:
            cluster.pause(victim, frozen: true)
            sleep(hold, unless: stop)
            cluster.pause(victim, frozen: false)
            window = FaultWindow(kind: "pause", detail: name, nodes: [victim], start: start, end: clock.now())
        case .diskFull, .diskStall:
            let (mode, sign) = fault == .diskFull ? ("enospc", "storage_degraded") : ("stall-writes", "storage_oldest_wait_ms")
            if let error = cluster.storageFault(victim, mode) { errors.append(error) }
            sleep(hold, unless: stop)
            // Proof that the fault took: the node says its disk is full, or that a commit is waiting. Asked
            // before the disk comes back, so it cannot be missed; not required of a fault the end of the
            // load cut short, which no write may have reached.
            let heldFully = !stop.isSet
            let shown = cluster.info(victim, "persistence")?[sign]
            if shown == nil || shown == "0", heldFully {
                errors.append("\(name) did not show the \(fault) (\(sign):\(shown ?? "no answer")); did any write reach it?")
            }
            if let error = cluster.storageFault(victim, "") { errors.append(error) }
            window = FaultWindow(kind: fault.verdictName, detail: "\(name) (\(sign):\(shown ?? "?"))", nodes: [victim],
                                 start: start, end: clock.now())
        case .diskError:
            if let error = cluster.storageFault(victim, "eio-write") { errors.append(error) }
            sleep(hold, unless: stop)
            // The first commit after the fault fails and the node stops; one still running never saw it
            // (unless the end of the load cut the fault short). Up to 5 s more for a busy node to exit.
            let heldFully = !stop.isSet
            let deadline = clock.now() + (heldFully ? 5 : 0)
            while cluster.isRunning(victim) && clock.now() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            let stopped = !cluster.isRunning(victim)
            if !stopped && heldFully { errors.append("\(name) did not stop on the disk error; did any write reach it?") }
            if let error = cluster.storageFault(victim, "") { errors.append(error) }
            if stopped {
                do {
                    try cluster.restart(victim, timeout: restartTimeout)
                } catch {
                    errors.append("restart of \(name): \(error)")
                }
            }
            window = FaultWindow(kind: fault.verdictName, detail: "\(name) (\(stopped ? "stopped, restarted" : "still running"))",
                                 nodes: [victim], start: start, end: clock.now())
        }
        window.errors = errors
        return window
    }

    /// "n1 n2 | n3 n4 n5" for a shape that splits the cluster into sides; "n1 sees n2,n5; ..." for shapes
    /// (ring, bridge) where what a node sees depends on the node.
    func describeSides(_ blocked: [[Int]]) -> String {
        let names = cluster.nodes.map(\.name)
        let sides = blocked.indices.map { i in blocked.indices.filter { !blocked[i].contains($0) } }
        let split = sides.indices.allSatisfy { i in sides[i].allSatisfy { sides[$0] == sides[i] } }
        if split {
            var distinct: [[Int]] = []
            for side in sides where !distinct.contains(side) { distinct.append(side) }
            return distinct.map { $0.map { names[$0] }.joined(separator: " ") }.joined(separator: " | ")
        }
        return sides.indices.map { i in
            "\(names[i]) sees \(sides[i].filter { $0 != i }.map { names[$0] }.joined(separator: ","))"
        }.joined(separator: "; ")
    }

    /// Sleeps `seconds`, waking early when `stop` is set.
    func sleep(_ seconds: Double, unless stop: StopFlag) {
        let deadline = clock.now() + seconds
        while !stop.isSet, clock.now() < deadline {
            Thread.sleep(forTimeInterval: min(0.05, max(0, deadline - clock.now())))
        }
    }
}
