import CRDT
import RESP
import Testing
@testable import Engine

/// Random arguments for issue 16's later command families on two engines: every request answers
/// (no trap), every delta decodes, and once both engines have each other's deltas they hold the same
/// state, however the commands interleaved.
@Suite struct NewCommandsFuzzTests {
    static let commands = [
        "LPUSH", "RPUSH", "LPUSHX", "LPOP", "RPOP", "LRANGE", "LINDEX", "LREM", "LSET", "LINSERT", "LPOS", "LTRIM", "LMOVE",
        "RPOPLPUSH", "LMPOP", "GEOADD", "GEOPOS", "GEODIST", "GEOHASH", "GEOSEARCH", "GEORADIUS", "ZUNIONSTORE", "ZINTER",
        "ZDIFF", "ZRANGESTORE", "ZRANDMEMBER", "ZMPOP", "ZADD", "SORT", "INCRBYFLOAT", "SETBIT", "GETBIT", "BITCOUNT", "BITPOS",
        "BITOP", "BITFIELD", "LCS", "RENAME", "COPY", "SPOP", "SMOVE", "SINTERCARD", "HRANDFIELD", "SADD", "HSET", "SET", "DEL",
    ]
    static let words = [
        "k", "l", "z", "s", "h", "0", "1", "-1", "2", "7", "-9223372036854775808", "9223372036854775807", "1.5", "inf", "-inf",
        "nan", "", "LEFT", "RIGHT", "BEFORE", "AFTER", "COUNT", "RANK", "MAXLEN", "LIMIT", "BYSCORE", "REV", "WITHSCORES",
        "FROMLONLAT", "FROMMEMBER", "BYRADIUS", "BYBOX", "km", "m", "STORE", "STOREDIST", "ASC", "DESC", "ANY", "AND", "NOT",
        "GET", "SET", "INCRBY", "OVERFLOW", "SAT", "FAIL", "u8", "i64", "#3", "IDX", "LEN", "REPLACE", "BY", "ALPHA", "*",
        "WEIGHTS", "AGGREGATE", "MAX", "MIN", "WITHVALUES", "41.4", "2.19", "181", "85.1",
    ]

    @Test(arguments: [UInt64(0x5EED_0016), 0x5EED_0017, 0x5EED_0018])
    func randomRequestsNeverTrapAndTwoEnginesConverge(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var engines = [try Harness(node: "n1", replica: 1), try Harness(node: "n2", replica: 2)]
        for i in engines.indices { _ = engines[i].engine.handle(.tick(monotonicMilliseconds: 1, wallMilliseconds: 1_767_225_600_000)) }
        var unshipped: [[EngineOutput]] = [[], []]
        for step in 0..<10_000 {
            let side = random.below(2)
            var arguments = [Self.commands[random.below(Self.commands.count)]]
            for _ in 0..<random.below(8) { arguments.append(Self.words[random.below(Self.words.count)]) }
            _ = engines[side].run(arguments.map { Array($0.utf8) })
            for case .delta(let key, let bytes) in engines[side].lastOutput.records {
                #expect((try? KeyObject(serialized: bytes)) != nil, "seed \(seed) step \(step): \(arguments) made an undecodable delta for \(key)")
            }
            unshipped[side].append(engines[side].lastOutput)
            if Double.random(in: 0..<1, using: &random) < 0.3 {
                // Deliver the other side's pending deltas, in a shuffled order.
                let other = 1 - side
                for output in unshipped[other].shuffled(using: &random) { ship(output, to: &engines[side]) }
                unshipped[other] = []
            }
        }
        for side in 0...1 {
            for output in unshipped[side] { ship(output, to: &engines[1 - side]) }
        }
        #expect(engines[0].run("CRDT.DIGEST") == engines[1].run("CRDT.DIGEST"), "seed \(seed): the engines diverged")
    }

    /// Found by the test above: `SET` over a value a peer wrote shipped a delta without the removal of
    /// that value, so after a later `DEL` the peer showed the old value again.
    @Test func setThenDelOnOneNodeRemovesThePeersValueOnTheOther() throws {
        var left = try Harness(node: "n1", replica: 1)
        var right = try Harness(node: "n2", replica: 2)
        left.run("SET", "k", "old")
        ship(left.lastOutput, to: &right)
        right.run("SET", "k", "new")
        ship(right.lastOutput, to: &left)
        right.run("DEL", "k")
        ship(right.lastOutput, to: &left)
        #expect(left.run("GET", "k") == .null)
        #expect(left.engine.keyspace[Array("k".utf8)] == right.engine.keyspace[Array("k".utf8)])
    }
}

/// What an engine persisted, joined into another: deltas, and the snapshots compaction writes instead
/// of a delta now and then (a snapshot is the key's whole state, which joins as well).
private func ship(_ output: EngineOutput, to target: inout Harness) {
    for record in output.records {
        switch record {
        case .delta(let key, let bytes), .snapshot(let key, let bytes):
            guard let state = try? KeyObject(serialized: bytes) else { continue }
            _ = target.engine.keyspace.join(remote: state, bytes: bytes, into: key)
        case .meta, .snapshotBegin, .snapshotPart, .snapshotSeal, .remove:
            break
        }
    }
}

extension SplitMix64 {
    fileprivate mutating func below(_ bound: Int) -> Int { Int.random(in: 0..<bound, using: &self) }
}
