import ArgumentParser
import Foundation
import NodeControl
import RESP

/// One row of `crdtctl status`.
struct NodeStatus: Codable {
    var node: String
    var address: String
    var pid: Int32
    /// running, paused (SIGSTOP), down, or not answering.
    var state: String
    var lamportClock: Int64?
    var keys: Int64?
    var peersAlive: Int?
    var peersSuspect: Int?
    var peersDead: Int?
    /// How many of this node's deltas its slowest peer (alive or suspect) has not acknowledged yet:
    /// INFO replication's `delta_next_sequence` minus CRDT.PEERS' `acknowledged`. 0 when every peer is
    /// caught up; it grows while a peer is cut off, paused or behind. Values too large for one frame reach
    /// peers by digest repair, outside this count.
    var replicationLag: Int64?
    /// Peers this node blocks through an injected partition, or (on a --netns cluster) whose packets its
    /// namespace drops.
    var partitionedFrom: [String]?
    var digest: String?
}

extension LocalCluster {
    /// Asks every node for its clock, key count, peers and digest (2 s per question).
    func status() -> [NodeStatus] {
        nodes.indices.map { i in
            let node = nodes[i]
            var row = NodeStatus(node: node.name, address: "\(node.address):\(node.clientPort)", pid: node.pid, state: "down")
            // The network's cuts hold whether or not the node runs; the daemon knows nothing of them.
            let networkCuts = netns.flatMap { try? $0.blockedSources(i) }.map { sources in
                nodes.filter { sources.contains($0.address) }.map(\.name)
            }
            if let networkCuts, !networkCuts.isEmpty { row.partitionedFrom = networkCuts }
            guard isRunning(node.pid) else { return row }
            if isPaused(node.pid) {
                row.state = "paused"
                return row
            }
            guard case .integer(let clock)? = try? command(i, ["CRDT.CLOCK"], timeout: .seconds(2)) else {
                row.state = "not answering"
                return row
            }
            row.state = "running"
            row.lamportClock = clock
            if case .integer(let keys)? = try? command(i, ["DBSIZE"], timeout: .seconds(2)) { row.keys = keys }
            if let peers = try? command(i, ["CRDT.PEERS"], timeout: .seconds(2)) {
                let members = peerFields(peers)
                let states = members.map { $0["state"] ?? "" }
                row.peersAlive = states.count { $0.hasPrefix("alive") }
                row.peersSuspect = states.count { $0.hasPrefix("suspect") }
                row.peersDead = states.count { $0.hasPrefix("dead") }
                let daemonCuts = members.filter {
                    let state = $0["state"] ?? ""
                    return state.contains("partitioned") || state.contains("cut here")
                }.compactMap { $0["node"] }
                let network = networkCuts ?? []
                row.partitionedFrom = network + daemonCuts.filter { !network.contains($0) }
                if case .bulkString(let info)? = try? command(i, ["INFO", "replication"], timeout: .seconds(2)),
                   let next = infoFields(String(decoding: info, as: UTF8.self))["delta_next_sequence"].flatMap({ Int64($0) }) {
                    let acknowledged = members.filter { !($0["state"] ?? "").hasPrefix("dead") }.map { Int64($0["acknowledged"] ?? "") ?? 0 }
                    row.replicationLag = acknowledged.map { max(0, next - $0) }.max() ?? 0
                }
            }
            if case .bulkString(let digest)? = try? command(i, ["CRDT.DIGEST"], timeout: .seconds(2)) {
                row.digest = String(decoding: digest, as: UTF8.self)
            }
            return row
        }
    }

    func isPaused(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return false
        }
        return stat[stat.index(close, offsetBy: 2)...].hasPrefix("T")
    }
}

/// `INFO` text as fields.
func infoFields(_ text: String) -> [String: String] {
    var fields: [String: String] = [:]
    for line in text.split(whereSeparator: \.isNewline) {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
    }
    return fields
}

/// Rows of columns, each padded to its widest cell.
func alignedTable(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { c in all.map { $0[c].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { c, cell in c == row.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

extension CRDTCTL {
    /// `crdtctl status` (also `crdtctl cluster status`): one aligned row per node, or JSON.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each node: process, state, Lamport clock, keys, peers alive/suspect/dead, replication lag, partitions, digest.")
        @OptionGroup var options: ClusterOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let rows = try options.load().status()
            if json { return try printJSON(rows) }
            func text<T>(_ value: T?) -> String { value.map { "\($0)" } ?? "-" }
            print(alignedTable(
                ["NODE", "ADDRESS", "PID", "STATE", "CLOCK", "KEYS", "PEERS A/S/D", "LAG", "PARTITIONED FROM", "DIGEST"],
                rows.map { row in
                    [row.node, row.address, String(row.pid), row.state, text(row.lamportClock), text(row.keys),
                     row.peersAlive == nil ? "-" : "\(row.peersAlive!)/\(row.peersSuspect!)/\(row.peersDead!)",
                     text(row.replicationLag),
                     row.partitionedFrom.map { $0.isEmpty ? "-" : $0.joined(separator: ",") } ?? "-",
                     row.digest.map { String($0.prefix(16)) } ?? "-"]
                }))
        }
    }
}
