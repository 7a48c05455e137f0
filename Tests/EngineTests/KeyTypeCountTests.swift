import Testing
@testable import Engine

/// `keysByType` is kept on every write instead of walking the keyspace; it must equal the walk.
@Suite struct KeyTypeCountTests {
    /// What a walk of the keyspace counts: the definition `typeCounts` must match.
    static func recount(_ engine: Engine) -> [String: Int] {
        var counts: [String: Int] = [:]
        for object in engine.keyspace.allObjects {
            if let type = object.visibleType { counts[type.rawValue, default: 0] += 1 }
        }
        return counts
    }

    @Test func countsFollowEveryWriteAndDelete() throws {
        let seed: UInt64 = 0x5EED_0004
        var random = SplitMix64(seed: seed)
        var harness = try Harness()
        let commands: [(String, [String])] = [
            ("SET", ["v"]), ("INCR", []), ("SADD", ["a", "b"]), ("SREM", ["a", "b"]), ("HSET", ["f", "v"]),
            ("HDEL", ["f"]), ("DEL", []), ("DECR", []), ("CRDT.BINCRBY", ["3"]),
        ]
        for step in 0..<3000 {
            let key = "k\(random.next() % 16)"
            let (name, rest) = commands[Int(random.next() % UInt64(commands.count))]
            harness.run([Array(name.utf8), Array(key.utf8)] + rest.map { Array($0.utf8) })
            let expected = Self.recount(harness.engine)
            #expect(harness.engine.keysByType == expected, "seed \(seed), step \(step): \(name) \(key)")
            if harness.engine.keysByType != expected { return }
        }
    }

    @Test func recoveredKeysAreCounted() throws {
        var first = try Harness()
        var deltas: [Bytes: [Bytes]] = [:]
        for command in [["SET", "s", "v"], ["INCR", "c"], ["SADD", "t", "x"]] {
            first.run(command.map { Array($0.utf8) })
            for case .delta(let key, let bytes) in first.lastOutput.records { deltas[key, default: []].append(bytes) }
        }
        let recovery = EngineRecovery(objects: deltas.map { .init(key: $0.key, snapshot: nil, deltas: $0.value) })
        let second = try Harness(recovery: recovery)
        #expect(second.engine.keysByType == ["string": 1, "counter": 1, "set": 1])
        #expect(second.engine.keysByType == Self.recount(second.engine))
    }
}
