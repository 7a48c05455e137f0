import CRDT
import RESP

/// Sorted sets (`ZADD`, `ZINCRBY`, `ZRANGE`, ...) and HyperLogLogs (`PFADD`, `PFCOUNT`, `PFMERGE`).
extension Engine {
    // MARK: HyperLogLog

    /// `PFADD`: 1 when the key's sketch changed (or was created), 0 otherwise.
    mutating func hyperLogLogAdd(_ key: Bytes, _ elements: [Bytes], into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.hyperLogLog, key) else { return Self.wrongType }
        var changed = false
        mutate(key, into: &output) { object, m in
            var delta = KeyObject()
            (delta.hyperLogLog, changed) = object.hyperLogLog.add(elements, replica: m.replica)
            return delta
        }
        return .integer(changed ? 1 : 0)
    }

    /// `PFCOUNT key [key ...]`: the estimated cardinality of the union of the keys' sketches.
    func hyperLogLogCount(_ keys: [Bytes]) -> RESPReply {
        guard keys.allSatisfy({ typeAllows(.hyperLogLog, $0) }) else { return Self.wrongType }
        if keys.count == 1 { return .integer(Int64(clamping: live(keys[0])?.hyperLogLog.count ?? 0)) }
        return .integer(Int64(clamping: HyperLogLog.unionCount(keys.compactMap { live($0)?.hyperLogLog.union })))
    }

    /// `PFMERGE destination source ...`: the union of the sources, merged into this node's sketch of
    /// the destination (only the registers it raises are shipped).
    mutating func hyperLogLogMerge(_ destination: Bytes, _ sources: [Bytes], into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.hyperLogLog, destination), sources.allSatisfy({ typeAllows(.hyperLogLog, $0) }) else { return Self.wrongType }
        var merged = HyperLogLog()
        for source in sources { if let sketch = live(source)?.hyperLogLog.union { merged.join(sketch) } }
        mutate(destination, into: &output) { object, m in
            var delta = KeyObject()
            delta.hyperLogLog = object.hyperLogLog.merge(merged, replica: m.replica).delta
            return delta
        }
        return .ok
    }

    // MARK: Sorted sets: writes

    /// `ZADD`: sets scores (last writer wins by Lamport time). `GT`/`LT` compare with the score this
    /// node holds when the command runs; `CH` counts changed members too.
    mutating func sortedSetAdd(_ key: Bytes, _ pairs: [ScorePair], _ options: ZAddOptions,
                               into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.sortedSet, key) else { return Self.wrongType }
        if options.increment { return sortedSetIncrement(key, pairs[0].member, by: pairs[0].score, options: options, into: &output) }
        var added = 0
        var changed = 0
        mutate(key, into: &output) { object, m in
            var delta = KeyObject()
            for pair in pairs {
                if let current = object.sortedSet.score(of: pair.member) {
                    if options.onlyGreater && !(pair.score > current) { continue }
                    if options.onlyLess && !(pair.score < current) { continue }
                    if pair.score == current { continue }
                    changed += 1
                } else {
                    added += 1
                }
                delta.sortedSet.join(object.sortedSet.add(pair.member, score: pair.score, clock: &m.clock))
            }
            return delta
        }
        return .integer(Int64(options.countChanged ? added + changed : added))
    }

    /// `ZINCRBY`, `ZADD ... INCR`: an increment of the member's counter, so concurrent ones on two
    /// nodes both count. Answers the new score, or nil when `GT`/`LT` refused it.
    mutating func sortedSetIncrement(_ key: Bytes, _ member: Bytes, by amount: Double, options: ZAddOptions,
                                     into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.sortedSet, key) else { return Self.wrongType }
        let current = live(key)?.sortedSet.score(of: member)
        let result = (current ?? 0) + amount
        guard !result.isNaN else { return .error("ERR resulting score is not a number (NaN)") }
        if let current {
            if options.onlyGreater && !(result > current) { return .null }
            if options.onlyLess && !(result < current) { return .null }
        }
        let replica = configuration.replica
        do {
            try mutate(key, into: &output) { (object: inout KeyObject, _: inout Mutation) throws(CRDTMutationError) -> KeyObject in
                var delta = KeyObject()
                delta.sortedSet = try object.sortedSet.increment(member, by: amount, replica: replica)
                return delta
            }
        } catch {
            return .error("ERR the increments of a score must stay finite on each node; use ZADD to set an infinite score")
        }
        return .double(live(key)?.sortedSet.score(of: member) ?? result)
    }

    /// Removes members this node holds (`ZREM`, `ZREMRANGEBY*`, `ZPOPMIN`); returns how many.
    mutating func sortedSetRemove(_ key: Bytes, _ members: [Bytes], into output: inout EngineOutput) -> Int {
        var removed = 0
        mutate(key, into: &output) { object, _ in
            var delta = KeyObject()
            for member in members where object.sortedSet.score(of: member) != nil {
                removed += 1
                delta.sortedSet.join(object.sortedSet.remove(member))
            }
            return delta
        }
        return removed
    }

    /// `ZPOPMIN`/`ZPOPMAX`: a local read, then an observed remove. Two nodes popping concurrently
    /// can pop the same member (docs/redis-compatibility.md).
    mutating func sortedSetPop(_ key: Bytes, count: Int?, highest: Bool, for client: ClientID,
                               into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.sortedSet, key) else { return Self.wrongType }
        guard let zset = live(key)?.sortedSet, zset.count > 0 else { return .array([]) }
        let wanted = min(count ?? 1, zset.count)
        let range = highest ? (zset.count - wanted)..<zset.count : 0..<wanted
        var popped = zset.members(inRanks: range)
        if highest { popped.reverse() }
        _ = sortedSetRemove(key, popped.map(\.member), into: &output)
        return scoredReply(popped, withScores: true, nested: count != nil && protocolVersion(of: client) == .resp3)
    }

    // MARK: Sorted sets: reads

    /// The ascending positions a rank, score or lex range selects.
    static func ranks(_ zset: SortedSet, _ by: ZRangeQuery.By) -> Range<Int> {
        switch by {
        case .rank(let start, let stop):
            let count = Int64(zset.count)
            let first = max(0, start < 0 ? count + start : start)
            let last = min(count - 1, stop < 0 ? count + stop : stop)
            guard first <= last, first < count else { return 0..<0 }
            return Int(first)..<Int(last + 1)
        case .score(let minimum, let maximum):
            return zset.ranks(scoresFrom: minimum, to: maximum)
        case .lex(let minimum, let maximum):
            let lower: LexBound
            switch minimum {
            case .minusInfinity: lower = .unbounded
            case .plusInfinity: return 0..<0
            case .inclusive(let member): lower = .inclusive(member)
            case .exclusive(let member): lower = .exclusive(member)
            }
            let upper: LexBound
            switch maximum {
            case .plusInfinity: upper = .unbounded
            case .minusInfinity: return 0..<0
            case .inclusive(let member): upper = .inclusive(member)
            case .exclusive(let member): upper = .exclusive(member)
            }
            return zset.ranks(membersFrom: lower, to: upper)
        }
    }

    /// `ZRANGE` in all its forms: O(log n + k) for k members returned.
    func sortedSetRange(_ key: Bytes, _ query: ZRangeQuery, for client: ClientID) -> RESPReply {
        guard typeAllows(.sortedSet, key) else { return Self.wrongType }
        guard let zset = live(key)?.sortedSet, zset.count > 0 else { return .array([]) }
        let selected = Self.selectedRanks(zset, query)
        guard !selected.isEmpty else { return .array([]) }
        return Self.rangeReply(zset, selected, query, nested: protocolVersion(of: client) == .resp3)
    }

    /// The members of `selected`, in the query's direction, as the reply. O(k).
    static func rangeReply(_ zset: SortedSet, _ selected: Range<Int>, _ query: ZRangeQuery, nested: Bool) -> RESPReply {
        var members = zset.members(inRanks: selected)
        if query.reverse { members.reverse() }
        return scoredReply(members, withScores: query.withScores, nested: nested)
    }

    /// The ranks a `ZRANGE` query selects (empty when its `LIMIT` is out of range). O(log n).
    static func selectedRanks(_ zset: SortedSet, _ query: ZRangeQuery) -> Range<Int> {
        var selected: Range<Int>
        if case .rank(let start, let stop) = query.by, query.reverse {
            // Positions counted from the highest score.
            let fromTop = Self.ranks(zset, .rank(start: start, stop: stop))
            selected = (zset.count - fromTop.upperBound)..<(zset.count - fromTop.lowerBound)
        } else {
            selected = Self.ranks(zset, query.by)
        }
        if let limit = query.limit {
            guard limit.offset >= 0, limit.offset < Int64(selected.count) else { return 0..<0 }
            let offset = Int(limit.offset)
            let taken = limit.count < 0 ? selected.count - offset : min(Int(clamping: limit.count), selected.count - offset)
            selected = query.reverse
                ? (selected.upperBound - offset - taken)..<(selected.upperBound - offset)
                : (selected.lowerBound + offset)..<(selected.lowerBound + offset + taken)
        }
        return selected
    }

    /// Members, with their scores flattened after each one (RESP2) or paired (RESP3).
    func scoredReply(_ members: [ScoredMember], withScores: Bool, nested: Bool) -> RESPReply {
        Self.scoredReply(members, withScores: withScores, nested: nested)
    }

    static func scoredReply(_ members: [ScoredMember], withScores: Bool, nested: Bool) -> RESPReply {
        guard withScores else { return .array(members.map { .bulkString($0.member) }) }
        if nested { return .array(members.map { .array([.bulkString($0.member), .double($0.score)]) }) }
        var flat: [RESPReply] = []
        flat.reserveCapacity(members.count * 2)
        for member in members {
            flat.append(.bulkString(member.member))
            flat.append(.double(member.score))
        }
        return .array(flat)
    }

    func protocolVersion(of client: ClientID) -> RESPVersion {
        sessions[client]?.protocolVersion ?? .resp2
    }
}
