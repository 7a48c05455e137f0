import Foundation

/// What a client asked a node to do. Each kind maps to one Redis command.
enum OperationKind: String, Codable, Sendable, CaseIterable {
    case incrby, sadd, srem, set, get, sismember

    var isWrite: Bool { self != .get && self != .sismember }
}

/// How an operation ended, in Jepsen's terms.
enum Outcome: String, Codable, Sendable, CaseIterable {
    /// The node answered with a success reply: the operation took effect.
    case ok
    /// The operation certainly did not take effect: it was never sent (no connection), or the node
    /// answered with an error reply.
    case failed
    /// It may or may not have taken effect: sent, but no reply within the timeout, or the connection broke.
    case indeterminate
}

/// One client operation, from invocation to completion. Times are seconds since the run started,
/// on the monotonic clock.
struct Operation: Codable, Sendable {
    var client: Int
    var node: Int
    var kind: OperationKind
    var key: String
    /// The delta (incrby), the element (sadd, srem, sismember) or the value written (set); empty for get.
    var argument: String
    var invoke: Double
    var complete: Double
    var outcome: Outcome
    /// The reply (ok), or what went wrong (failed, indeterminate).
    var reply: String

    var latency: Double { complete - invoke }
}

/// What the nemesis did and when, for the report's shading and the verdict.
struct FaultWindow: Codable, Sendable {
    /// `partition`, `kill`, `pause`, `disk full` or `disk stall`.
    var kind: String
    /// The partition shape, or the node killed, paused or given a bad disk.
    var detail: String
    /// Nodes (indices) the fault acts on: every node for a partition, one for kill and pause.
    var nodes: [Int]
    var start: Double
    var end: Double
    /// A step that did not work (a node refused CRDT.PARTITION, a restart that did not serve in time).
    var errors: [String] = []
}

/// Writes the history as JSON lines: the nemesis' windows first, then every operation in invocation order,
/// each line carrying `type` ("fault" or "op") and node names instead of indices.
func writeHistory(_ operations: [Operation], faults: [FaultWindow], nodeNames: [String], to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var out = Data()
    struct FaultLine: Encodable {
        var type = "fault"
        var kind: String, detail: String, nodes: [String], start: Double, end: Double, errors: [String]
    }
    struct OperationLine: Encodable {
        var type = "op"
        var client: Int, node: String, kind: OperationKind, key: String, argument: String
        var invoke: Double, complete: Double, outcome: Outcome, reply: String
    }
    for fault in faults {
        out += try encoder.encode(FaultLine(kind: fault.kind, detail: fault.detail, nodes: fault.nodes.map { nodeNames[$0] },
                                            start: fault.start, end: fault.end, errors: fault.errors))
        out.append(0x0A)
    }
    for op in operations {
        out += try encoder.encode(OperationLine(client: op.client, node: nodeNames[op.node], kind: op.kind, key: op.key,
                                                argument: op.argument, invoke: op.invoke, complete: op.complete,
                                                outcome: op.outcome, reply: op.reply))
        out.append(0x0A)
    }
    try out.write(to: URL(fileURLWithPath: path))
}
