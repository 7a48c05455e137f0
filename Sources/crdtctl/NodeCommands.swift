import ArgumentParser
import Foundation
import NodeControl
import RESP
import RESPClient

extension CRDTCTL {
    struct Node: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decommission nodes.", subcommands: [Remove.self])

        struct Remove: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Decommission a node for good: the cluster forgets it (CRDT.FORGET) and refuses its identity.",
                discussion: """
                    In a local cluster the node is stopped first (it leaves gracefully), forgotten on a running \
                    member, and waited for until no running member lists it; its data directory is deleted and it \
                    is dropped from cluster.json. With --addr, the node must already be stopped: CRDT.FORGET is sent \
                    to the node at that address, and gossip tells the others.
                    A node that comes back with the forgotten identity is refused and refuses writes; with a wiped \
                    data directory it joins as a new replica.
                    """)
            @OptionGroup var options: ClusterOptions
            @Option(name: .customLong("addr"), help: ArgumentHelp("Any running member, instead of a local cluster's.", valueName: "host:port"))
            var address: String?
            @Option(help: "Seconds to wait for the cluster to see the node gone, then to forget it.") var timeout = 30
            @Argument(help: "The node's name (its --node-id).") var name: String

            func run() throws {
                if let address {
                    var target = NodeOptions()
                    target.address = address
                    _ = try target.send(["CRDT.FORGET", name])
                    print("\(name) forgotten by \(address); gossip carries it to the other members")
                    return
                }
                var cluster = try options.load()
                let i = try cluster.index(of: name)
                cluster.stop(i)
                let survivors = cluster.nodes.indices.filter { $0 != i && cluster.isRunning(cluster.nodes[$0].pid) }
                guard let via = survivors.first else { throw ClusterError("no other node of the cluster is running to forget \(name)") }
                // A stopped node says it leaves; a killed one is declared dead after the suspicion timeout.
                let gone = waitUntil(timeout: .seconds(timeout), every: .milliseconds(100)) {
                    state(of: name, on: via, in: cluster).map { $0 == "left" || $0 == "dead" } ?? true
                }
                guard gone != nil else { throw ClusterError("\(cluster.nodes[via].name) still sees \(name) as reachable after \(timeout) s") }
                let reply = try cluster.command(via, ["CRDT.FORGET", name])
                if case .error(let message) = reply, !message.hasPrefix("ERR no member") {
                    throw ClusterError("\(cluster.nodes[via].name) refused CRDT.FORGET \(name): \(message)")
                }
                let everywhere = waitUntil(timeout: .seconds(timeout), every: .milliseconds(100)) {
                    survivors.allSatisfy { state(of: name, on: $0, in: cluster) == nil }
                }
                guard everywhere != nil else { throw ClusterError("\(name) is still listed by a member after \(timeout) s") }
                let witnesses = survivors.map { cluster.nodes[$0].name }.joined(separator: ", ")
                try? FileManager.default.removeItem(atPath: cluster.nodes[i].dataDir)
                cluster.nodes.remove(at: i)
                try cluster.save()
                print("\(name) decommissioned: forgotten by \(witnesses); its data directory was deleted")
            }

            /// `node`'s state as member `i` sees it (nil when `i` does not list it, or does not answer).
            func state(of node: String, on i: Int, in cluster: LocalCluster) -> String? {
                guard let reply = try? cluster.command(i, ["CRDT.PEERS"]) else { return nil }
                return peerFields(reply).first { $0["node"] == node }?["state"]
            }
        }
    }
}
