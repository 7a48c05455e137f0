import ArgumentParser
import Engine
import Foundation
import NodeControl
import RESP

extension CRDTCTL {
    /// The main job: a local cluster is mutated, partitioned (both sides keep writing), healed and verified;
    /// then a node is killed with -9 during writes, restarted, and verified to catch up.
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a local cluster, mutate, partition, heal, kill -9, restart, and verify convergence.")

        @Option(help: "Directory for the demo cluster (removed and recreated).") var dir = "./cluster-demo"
        @Option(help: "Number of nodes (at least 3).") var nodes = 3
        @Option(help: "Base port (clients base+1.., peers base+101.., metrics base+201..).") var basePort = 17_000
        @Flag(help: "Leave the cluster running at the end.") var keep = false

        func validate() throws {
            guard (3...17).contains(nodes) else { throw ValidationError("--nodes must be between 3 and 17") }
        }

        func run() throws {
            var failures: [String] = []
            func check(_ condition: Bool, _ message: String) {
                print(condition ? "  ok    \(message)" : "  FAIL  \(message)")
                if !condition { failures.append(message) }
            }

            print("== starting \(nodes) nodes in \(dir) (authenticated peers, fresh data)")
            var cluster = try startCluster(dir: dir, nodes: nodes, basePort: basePort, insecure: false)
            defer {
                if !keep {
                    for i in cluster.nodes.indices { cluster.stop(i) }
                    print("== stopped the cluster (logs in \(dir))")
                }
            }
            let n = cluster.nodes.count
            func run(_ i: Int, _ arguments: String...) throws -> RESPReply { try cluster.command(i, arguments) }

            print("== 1. writes on every node")
            var expectedCounter = 0
            var expectedMembers = Set<String>()
            for i in 0..<n {
                _ = try run(i, "INCRBY", "visits", "\(10 * (i + 1))")
                expectedCounter += 10 * (i + 1)
                _ = try run(i, "SADD", "tags", "from-\(cluster.nodes[i].name)")
                expectedMembers.insert("from-\(cluster.nodes[i].name)")
            }
            _ = try run(0, "HSET", "user:1", "name", "ada", "lang", "swift")
            let firstConvergence = cluster.waitForConvergence(timeout: .seconds(10))
            check(firstConvergence != nil, "converged after the first writes (\(firstConvergence.map { "\($0)" } ?? "timeout"))")
            try expectValues(cluster, counter: expectedCounter, members: expectedMembers, check: check)

            print("== 2. partition: majority split; both sides keep accepting writes")
            try partition(cluster, shape: .majority, victim: 0)
            let left = 0, right = n - 1
            let a = try run(left, "INCRBY", "visits", "5")
            let b = try run(right, "INCRBY", "visits", "7")
            let c = try run(left, "SADD", "tags", "left-side")
            let d = try run(right, "SADD", "tags", "right-side")
            let e = try run(right, "SREM", "tags", "from-n1")
            expectedCounter += 12
            expectedMembers.formUnion(["left-side", "right-side"])
            expectedMembers.remove("from-n1")
            check([a, b, c, d, e].allSatisfy { if case .error = $0 { false } else { true } },
                  "every write was accepted on both sides of the partition")
            Thread.sleep(forTimeInterval: 1)
            let split = cluster.digests()
            check(split[left] != split[right], "the two sides diverged while partitioned")

            print("== 3. heal and verify")
            try heal(cluster)
            let healed = cluster.waitForConvergence(timeout: .seconds(20))
            check(healed != nil, "converged after the heal (\(healed.map { "\($0)" } ?? "timeout"))")
            try expectValues(cluster, counter: expectedCounter, members: expectedMembers, check: check)

            print("== 4. kill -9 \(cluster.nodes[n - 1].name) right after acknowledged writes, write elsewhere, restart it")
            for _ in 0..<10 { _ = try run(n - 1, "INCR", "visits") }
            _ = try run(n - 1, "SADD", "tags", "from-n1")  // re-added after its removal: present again
            expectedCounter += 10
            expectedMembers.insert("from-n1")
            cluster.stop(n - 1, signal: SIGKILL)
            for _ in 0..<5 { _ = try run(0, "INCR", "visits") }
            expectedCounter += 5
            try cluster.launch(n - 1, seeds: Array(0..<n))
            try cluster.save()
            try cluster.waitUntilServing(n - 1)
            let caughtUp = cluster.waitForConvergence(timeout: .seconds(20))
            check(caughtUp != nil, "the restarted node caught up (\(caughtUp.map { "\($0)" } ?? "timeout"))")
            try expectValues(cluster, counter: expectedCounter, members: expectedMembers, check: check)

            if failures.isEmpty {
                print("== all checks passed: every replica converged with every acknowledged write")
            } else {
                throw ClusterError("\(failures.count) checks failed: \(failures.joined(separator: "; "))")
            }
        }

        func expectValues(_ cluster: LocalCluster, counter: Int, members: Set<String>, check: (Bool, String) -> Void) throws {
            for i in cluster.nodes.indices where cluster.isRunning(cluster.nodes[i].pid) {
                let value = try cluster.command(i, ["GET", "visits"])
                check(value == .bulkString(Array(String(counter).utf8)),
                      "\(cluster.nodes[i].name): visits = \(value.text) (expected \(counter))")
                guard case .array(let items) = try cluster.command(i, ["SMEMBERS", "tags"]) else {
                    check(false, "\(cluster.nodes[i].name): SMEMBERS tags is not an array")
                    continue
                }
                let got = Set(items.map(\.text))
                check(got == members, "\(cluster.nodes[i].name): tags = \(got.sorted()) (expected \(members.sorted()))")
            }
        }
    }
}
