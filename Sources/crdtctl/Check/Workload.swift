import Foundation
import NodeControl
import RESP
import RESPClient
import Synchronization

/// The keys of one run, prefixed with a run id so that data already in a cluster (nodes given by
/// `--addr`, or an earlier run) cannot change the sums the checker expects.
struct CheckKeys: Codable, Sendable {
    var hotCounter: String
    /// Every counter, the hot one first.
    var counters: [String]
    var hotSet: String
    var registers: [String]

    init(runID: String) {
        let prefix = "check:\(runID):"
        hotCounter = prefix + "counter:hot"
        counters = [hotCounter] + (1...3).map { prefix + "counter:\($0)" }
        hotSet = prefix + "set:hot"
        registers = (1...4).map { prefix + "register:\($0)" }
    }
}

/// Seconds since the run started, on the monotonic clock.
struct RunClock: Sendable {
    let origin = monotonic()
    func now() -> Double { Double(monotonic() - origin) / 1e9 }
    func seconds(atNanoseconds instant: UInt64) -> Double { Double(Int64(instant) - Int64(origin)) / 1e9 }
}

/// A small seeded generator (SplitMix64), so the mix of operations of a run can be replayed with `--seed`.
struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Set when the run must end (duration over, or the operator pressed ^C).
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .releasing) }
    var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// Counts by outcome, for the progress line.
final class Progress: Sendable {
    private let counts = Mutex([Outcome: Int]())
    func add(_ outcome: Outcome) { counts.withLock { $0[outcome, default: 0] += 1 } }
    var snapshot: [Outcome: Int] { counts.withLock { $0 } }
}

/// Elements whose add was acknowledged recently, shared so that clients on other nodes read them
/// (SISMEMBER): a read that misses one is a stale read, which the report lists.
final class AcknowledgedAdds: Sendable {
    private let recent = Mutex([String]())
    private static let kept = 4096

    func record(_ element: String) {
        recent.withLock { list in
            if list.count >= Self.kept { list.removeFirst(list.count / 2) }
            list.append(element)
        }
    }

    func pick(using generator: inout SplitMix64) -> String? {
        recent.withLock { list in list.isEmpty ? nil : list[Int.random(in: 0..<list.count, using: &generator)] }
    }
}

/// One client: a connection to one node, issuing operations at a fixed rate until told to stop.
///
/// Its set elements are its own (`c<client>-<n>`): each is added once, and removed (at most once) only by
/// this client after the add was acknowledged, so the checker knows exactly what each element's fate
/// must be.
struct CheckClient {
    let id: Int
    let node: Int
    let host: String
    let port: Int
    let keys: CheckKeys
    let timeout: Duration
    let clock: RunClock
    /// A netns cluster's lab: no connection is made once its bridge is gone (see CheckCluster.connect).
    let network: NetnsLab?
    var generator: SplitMix64
    private var connection: RESPConnection?
    private var removable: [String] = []
    private var sequence = 0
    private(set) var operations: [Operation] = []

    init(id: Int, node: Int, host: String, port: Int, keys: CheckKeys, timeout: Duration, clock: RunClock, seed: UInt64,
         network: NetnsLab? = nil) {
        self.id = id
        self.network = network
        self.node = node
        self.host = host
        self.port = port
        self.keys = keys
        self.timeout = timeout
        self.clock = clock
        generator = SplitMix64(seed: seed &+ UInt64(id) &* 0x1000_0001)
    }

    /// Issues operations every `1/rate` seconds until `stop` is set. A client that falls behind (a paused
    /// node makes each call wait for its timeout) skips the slots it missed rather than bursting.
    mutating func run(rate: Double, stop: StopFlag, acknowledged: AcknowledgedAdds, progress: Progress,
                      watcher: VisibilityWatcher? = nil) {
        let interval = 1 / rate
        var due = clock.now() + Double.random(in: 0..<interval, using: &generator)
        while !stop.isSet {
            let now = clock.now()
            if now < due {
                Thread.sleep(forTimeInterval: min(due - now, 0.1))
                continue
            }
            due = max(due + interval, now)
            let op = next(acknowledged: acknowledged, watcher: watcher)
            progress.add(op.outcome)
            operations.append(op)
        }
        connection?.close()
    }

    /// Chooses and performs one operation. The mix: 30 % INCRBY (most on the hot counter), 45 % SADD,
    /// 8 % SREM, 10 % SET, 3 % GET, 4 % SISMEMBER.
    mutating func next(acknowledged: AcknowledgedAdds, watcher: VisibilityWatcher? = nil) -> Operation {
        let roll = Int.random(in: 0..<100, using: &generator)
        switch roll {
        case ..<30:
            let key = Int.random(in: 0..<10, using: &generator) < 8 ? keys.hotCounter : keys.counters.dropFirst().randomElement(using: &generator)!
            let delta = [-3, -2, -1, 1, 2, 3, 4, 5].randomElement(using: &generator)!
            return perform(.incrby, key, String(delta), ["INCRBY", key, String(delta)])
        case 75..<83 where !removable.isEmpty:
            let element = removable.remove(at: Int.random(in: 0..<removable.count, using: &generator))
            watcher?.removing(element)
            return perform(.srem, keys.hotSet, element, ["SREM", keys.hotSet, element])
        case 83..<93:
            let key = keys.registers.randomElement(using: &generator)!
            sequence += 1
            let value = "c\(id)-v\(sequence)"
            return perform(.set, key, value, ["SET", key, value])
        case 93..<96:
            let key = keys.counters.randomElement(using: &generator)!
            return perform(.get, key, "", ["GET", key])
        case 96...:
            if let element = acknowledged.pick(using: &generator) {
                return perform(.sismember, keys.hotSet, element, ["SISMEMBER", keys.hotSet, element])
            }
            fallthrough
        default:
            sequence += 1
            let element = "c\(id)-\(sequence)"
            let op = perform(.sadd, keys.hotSet, element, ["SADD", keys.hotSet, element])
            if op.outcome == .ok {
                removable.append(element)
                acknowledged.record(element)
                watcher?.acknowledged(element, node: node, at: op.complete)
            }
            return op
        }
    }

    /// Sends one command, reconnecting first if the last call broke the connection. Not sent at all
    /// (no connection) or answered with an error: failed. Sent without a reply: indeterminate.
    mutating func perform(_ kind: OperationKind, _ key: String, _ argument: String, _ command: [String]) -> Operation {
        let invoke = clock.now()
        func finish(_ outcome: Outcome, _ reply: String) -> Operation {
            Operation(client: id, node: node, kind: kind, key: key, argument: argument, invoke: invoke,
                      complete: clock.now(), outcome: outcome, reply: reply)
        }
        if connection == nil || connection?.isConnected == false {
            if let network, !network.isUp { return finish(.failed, "not sent: the network \(network.bridge) is gone") }
            do {
                connection = try RESPConnection(host: host, port: port, timeout: timeout)
            } catch {
                connection = nil
                return finish(.failed, "not sent: \(error.message)")
            }
        }
        do {
            let reply = try connection!.send(command)
            if case .error(let message) = reply { return finish(.failed, message) }
            return finish(.ok, reply.text)
        } catch {
            connection = nil
            return finish(.indeterminate, error.message)
        }
    }
}
