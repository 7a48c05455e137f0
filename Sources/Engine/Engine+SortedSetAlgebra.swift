import CRDT
import RESP

/// Sorted-set algebra, random reads and multi-key pops: local reads of this node's sets; the
/// `STORE` forms replace the destination as `storeSortedSet` does (not atomic across nodes).
extension Engine {
    mutating func runSortedSet(_ command: SortedSetCommand, for client: ClientID, into output: inout EngineOutput) -> RESPReply {
        switch command {
        case .combine(let combination, let keys, let weights, let aggregate, let withScores, let destination):
            guard let inputs = scoredInputs(keys) else { return Self.wrongType }
            let result = Self.combine(combination, inputs, weights: weights ?? Array(repeating: 1, count: keys.count), aggregate: aggregate)
            if let destination {
                return storeSortedSet(destination, result.map { ScorePair(score: $0.score, member: $0.member) }, into: &output)
            }
            return scoredReply(result, withScores: withScores, nested: protocolVersion(of: client) == .resp3)
        case .intersectionCount(let keys, let limit):
            guard let inputs = scoredInputs(keys) else { return Self.wrongType }
            let count = Self.combine(.intersection, inputs, weights: Array(repeating: 1, count: keys.count), aggregate: .sum).count
            return .integer(Int64(limit > 0 ? min(limit, count) : count))
        case .rangeStore(let destination, let source, let query):
            guard typeAllows(.sortedSet, source) else { return Self.wrongType }
            guard case .array(let items) = sortedSetRange(source, ZRangeQuery(by: query.by, reverse: query.reverse, limit: query.limit),
                                                          for: client) else { return .integer(0) }
            let zset = live(source)?.sortedSet
            let pairs: [ScorePair] = items.compactMap { item in
                guard case .bulkString(let member) = item, let score = zset?.score(of: member) else { return nil }
                return ScorePair(score: score, member: member)
            }
            return storeSortedSet(destination, pairs, into: &output)
        case .randomMember(let key, let count, let withScores):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            let members = live(key)?.sortedSet.sortedMembers ?? []
            guard let count else { return members.randomElement(using: &random).map { .bulkString($0.member) } ?? .null }
            if members.isEmpty || count == 0 { return .array([]) }
            let chosen: [ScoredMember]
            if count > 0 {
                chosen = Array(members.shuffled(using: &random).prefix(Int(min(count, Int64(members.count)))))
            } else {
                guard count > -1_000_000 else { return .error("ERR value is out of range") }
                chosen = (0..<Int(-count)).map { _ in members.randomElement(using: &random)! }
            }
            return scoredReply(chosen, withScores: withScores, nested: protocolVersion(of: client) == .resp3)
        case .multiPop(let keys, let highest, let count):
            guard keys.allSatisfy({ typeAllows(.sortedSet, $0) }) else { return Self.wrongType }
            guard let key = keys.first(where: { (live($0)?.sortedSet.count ?? 0) > 0 }) else { return .nullArray }
            let popped = sortedSetPop(key, count: count, highest: highest, for: client, into: &output)
            guard case .array(let flat) = popped else { return popped }
            // ZMPOP pairs each member with its score in both protocols.
            if protocolVersion(of: client) == .resp3 { return .array([.bulkString(key), popped]) }
            let pairs = stride(from: 0, to: flat.count - 1, by: 2).map { RESPReply.array([flat[$0], flat[$0 + 1]]) }
            return .array([.bulkString(key), .array(pairs)])
        }
    }

    /// Each key's members and scores (a set's members score 1, as Redis reads them); nil when a key
    /// holds another type.
    func scoredInputs(_ keys: [Bytes]) -> [[Bytes: Double]]? {
        var inputs: [[Bytes: Double]] = []
        for key in keys {
            guard let object = live(key) else { inputs.append([:]); continue }
            switch object.visibleType {
            case .sortedSet?:
                inputs.append(Dictionary(uniqueKeysWithValues: object.sortedSet.sortedMembers.map { ($0.member, $0.score) }))
            case .set?:
                inputs.append(Dictionary(uniqueKeysWithValues: object.set.elements.map { ($0, 1.0) }))
            default:
                return nil
            }
        }
        return inputs
    }

    /// Union, intersection or difference with weights and an aggregate, ordered by score then member.
    static func combine(_ combination: SortedSetCommand.Combination, _ inputs: [[Bytes: Double]], weights: [Double],
                        aggregate: SortedSetCommand.Aggregate) -> [ScoredMember] {
        func weighted(_ score: Double, _ i: Int) -> Double {
            let value = score * weights[i]
            return value.isNaN ? 0 : value   // 0 * inf: Redis counts 0
        }
        func merge(_ a: Double, _ b: Double) -> Double {
            switch aggregate {
            case .sum: let sum = a + b; return sum.isNaN ? 0 : sum
            case .min: return Swift.min(a, b)
            case .max: return Swift.max(a, b)
            }
        }
        var result: [Bytes: Double] = [:]
        switch combination {
        case .union:
            for (i, input) in inputs.enumerated() {
                for (member, score) in input {
                    let value = weighted(score, i)
                    result[member] = result[member].map { merge($0, value) } ?? value
                }
            }
        case .intersection:
            for (member, score) in inputs[0] {
                var value = weighted(score, 0)
                var everywhere = true
                for i in 1..<inputs.count {
                    guard let other = inputs[i][member] else { everywhere = false; break }
                    value = merge(value, weighted(other, i))
                }
                if everywhere { result[member] = value }
            }
        case .difference:
            for (member, score) in inputs[0] where !inputs.dropFirst().contains(where: { $0[member] != nil }) {
                result[member] = score
            }
        }
        return result.map { ScoredMember(member: $0.key, score: $0.value) }.sorted()
    }
}
