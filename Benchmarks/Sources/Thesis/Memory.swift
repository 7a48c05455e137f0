import Foundation
import NodeControl
import RESP
import RESPClient

/// 5. Memory: resident size with a million counters, and with one set of a million 16-byte members,
/// crdtd (one node) against redis-server holding the same data.
func measureMemory(_ suite: Suite) throws -> Section {
    let count = 1_000_000
    enum Data { case counters, set }
    var text = """
        ### 5. Memory

        One crdtd node (`--durability normal`) and one redis-server (no persistence), each fresh, loaded
        with the same data through pipelined commands (1,000 `INCR c:i` per round trip; `SADD s` with 100
        members per command, 10 commands per round trip, members `m` + 15 digits = 16 bytes). Resident size
        (`VmRSS`) empty, and at rest after the last reply: sampled every half second until it stops falling
        (two samples within 1 %, at least 2 s after the reply, at most 30 s), which lets crdtd finish the
        staged snapshot of a large object and return its copies. "Peak" is the most ever resident
        (`VmHWM`), during the load or after it. The check reads the data back from both.

        | data | server | RSS empty | RSS at rest | peak | growth at rest | bytes per item | crdtd / Redis (at rest) | crdtd / Redis (peak) | load time | check |
        |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|

        """
    var section = Section(title: "memory", markdown: "")
    for data in [Data.counters, .set] {
        let label = data == .counters ? "counters" : "set"
        let name = data == .counters ? "\(grouped(count)) counters" : "one set of \(grouped(count)) 16-byte members"
        var measured: [(server: String, empty: Int, loaded: Int, peak: Int, seconds: Double, check: String)] = []
        for server in ["Redis", "crdtd"] {
            suite.log("memory: \(name) in \(server)")
            let process: ServerProcess, port: Int
            var cluster: CrdtdCluster?
            if server == "Redis" {
                (process, port) = try startRedis(suite.launcher, suite.binaries, label: "memory-\(label)")
            } else {
                let single = try startSingleCrdtd(suite.launcher, suite.binaries, durability: "normal", label: "memory-\(label)")
                cluster = single
                process = single.nodes[0].server
                port = single.nodes[0].clientPort
            }
            defer { if let cluster { cluster.stop() } else { process.stop() } }
            sleep(seconds: 1)
            let empty = process.residentBytes() ?? 0
            let connection = try RESPConnection(host: "127.0.0.1", port: port, timeout: .seconds(120))
            let t0 = now()
            var batch: [[String]] = []
            func flush() throws {
                guard !batch.isEmpty else { return }
                for reply in try connection.send(many: batch) {
                    if case .error(let e) = reply { throw SuiteError("\(server) refused a load command: \(e)") }
                }
                batch.removeAll(keepingCapacity: true)
            }
            switch data {
            case .counters:
                for i in 0..<count {
                    batch.append(["INCR", "c:\(i)"])
                    if batch.count == 1000 { try flush() }
                }
            case .set:
                var command = ["SADD", "s"]
                for i in 0..<count {
                    command.append("m" + String(format: "%015d", i))
                    if command.count == 102 {
                        batch.append(command)
                        command = ["SADD", "s"]
                        if batch.count == 10 { try flush() }
                    }
                }
                if command.count > 2 { batch.append(command) }
            }
            try flush()
            let seconds = now() - t0
            sleep(seconds: 2)
            var loaded = process.residentBytes() ?? 0
            for _ in 0..<56 {
                sleep(seconds: 0.5)
                let next = process.residentBytes() ?? 0
                defer { loaded = next }
                if abs(next - loaded) * 100 <= loaded { break }
            }
            let peak = process.peakResidentBytes() ?? 0
            let check: String
            switch data {
            case .counters:
                let last = try connection.send(["GET", "c:\(count - 1)"]), first = try connection.send(["GET", "c:0"])
                check = (last == .bulkString("1") && first == .bulkString("1")) ? "first and last = 1" : "**read back \(first.text), \(last.text)**"
            case .set:
                let card = try connection.send(["SCARD", "s"])
                check = card == .integer(Int64(count)) ? "SCARD = \(grouped(count))" : "**SCARD \(card.text)**"
            }
            measured.append((server, empty, loaded, peak, seconds, check))
        }
        let redisLoaded = measured.first { $0.server == "Redis" }?.loaded ?? 0
        let redisPeak = measured.first { $0.server == "Redis" }?.peak ?? 0
        for m in measured {
            let ratio = m.server == "crdtd" && redisLoaded > 0 ? String(format: "%.2f", Double(m.loaded) / Double(redisLoaded)) : "-"
            let peakRatio = m.server == "crdtd" && redisPeak > 0 ? String(format: "%.2f", Double(m.peak) / Double(redisPeak)) : "-"
            text += "| \(name) | \(m.server) | \(mib(m.empty)) | \(mib(m.loaded)) | \(mib(m.peak)) | \(mib(m.loaded - m.empty)) | "
                + "\(Int((Double(m.loaded - m.empty) / Double(count)).rounded())) | \(ratio) | \(peakRatio) | " + String(format: "%.1f s", m.seconds) + " | \(m.check) |\n"
            if m.server == "crdtd" && redisLoaded > 0 {
                section.headlines["memory-\(label)"] = String(format: "%.2f", Double(m.loaded) / Double(redisLoaded))
            }
        }
    }
    if let c = section.headlines["memory-counters"].flatMap(Double.init), let m = section.headlines["memory-set"].flatMap(Double.init), c > 1 || m > 1 {
        text += """

            **Where crdtd loses: memory (goal: no more than Redis; here \(String(format: "%.1f", c))x for counters, \(String(format: "%.1f", m))x
            for the set at rest).** Per counter, crdtd keeps a `KeyObject` (counter, string and expiry slots
            inline, the collection slots boxed and allocated only when used; `Sources/Engine/Keyspace/KeyObject.swift`),
            the counter's per-replica entries in an array of their own, the key's bytes as a separate heap array,
            and an entry for the key in the keyspace, the compaction bookkeeping, the digest index and the
            store's collector (four hash tables per key). Redis keeps one dict entry per key, the key an `sds`
            string and a small integer a shared object. Per set member, crdtd keeps the member's bytes in a heap
            array (48 bytes for 16), an entry in the set's map (the member's reference and its one dot, held
            inline: 32 bytes) and one in the dot index (the dot and the reference: 24 bytes), both in Swift
            dictionaries that are at most three quarters full and sized in powers of two (2 Mi buckets each for
            1 M members); Redis keeps an `sds` in one hash table. What would fix it: member bytes held in one
            arena and referred to by offset from a single open-addressed table that also holds each member's
            dot, and small values (counters) encoded inline in the keyspace. While a large set grows, crdtd also
            holds, for a few seconds per staged snapshot, a copy-on-write copy of the set's tables and its
            serialised bytes: the peak column.

            """
    }
    section.markdown = text
    return section
}

func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
