import CRDT
import RESP

/// Lists (`LPUSH`, `LRANGE`, `LPOP`, ...) on `ReplicatedList`: every element sits at a position in a
/// dense order chosen when it was inserted, so concurrent inserts on two nodes are all kept, in an
/// order both compute the same way. Pops and removes are local reads then observed removes: two
/// nodes popping the same list concurrently can hand the same element to two consumers
/// (docs/redis-compatibility.md, examples/list-pop-partition.sh).
extension Engine {
    mutating func runList(_ command: ListCommand, for client: ClientID, into output: inout EngineOutput) -> RESPReply {
        switch command {
        case .push(let key, let values, let head, let onlyIfExists):
            guard typeAllows(.list, key) else { return Self.wrongType }
            if onlyIfExists && live(key) == nil { return .integer(0) }
            return .integer(Int64(listPush(key, values, head: head, into: &output)))
        case .pop(let key, let count, let head):
            guard typeAllows(.list, key) else { return Self.wrongType }
            guard let list = live(key)?.list, list.count > 0 else { return count == nil ? .null : .nullArray }
            let popped = listPop(key, count: count ?? 1, head: head, into: &output)
            return count == nil ? .bulkString(popped[0]) : .array(popped.map { .bulkString($0) })
        case .range(let key, let start, let stop):
            guard typeAllows(.list, key) else { return Self.wrongType }
            guard let list = live(key)?.list else { return .array([]) }
            return .array(list.values(in: Self.listRange(count: list.count, start: start, stop: stop)).map { .bulkString($0) })
        case .length(let key):
            guard typeAllows(.list, key) else { return Self.wrongType }
            return .integer(Int64(live(key)?.list.count ?? 0))
        case .index(let key, let index):
            guard typeAllows(.list, key) else { return Self.wrongType }
            guard let list = live(key)?.list, let i = Self.listIndex(index, count: list.count) else { return .null }
            return list.value(at: i).map { .bulkString($0) } ?? .null
        case .remove(let key, let count, let value):
            guard typeAllows(.list, key) else { return Self.wrongType }
            guard let list = live(key)?.list else { return .integer(0) }
            let values = list.values
            var matches = values.indices.filter { values[$0] == value }
            if count < 0 { matches.reverse() }
            if count != 0 { matches = Array(matches.prefix(Int(clamping: count.magnitude))) }
            listRemove(key, indices: matches, into: &output)
            return .integer(Int64(matches.count))
        case .set(let key, let index, let value):
            guard typeAllows(.list, key) else { return Self.wrongType }
            guard let list = live(key)?.list else { return .error("ERR no such key") }
            guard let i = Self.listIndex(index, count: list.count) else { return .error("ERR index out of range") }
            mutate(key, into: &output) { object, m in
                var delta = KeyObject()
                delta.list = object.list.set(value, at: i, clock: &m.clock) ?? ReplicatedList()
                return delta
            }
            return .ok
        case .insert(let key, let before, let pivot, let value):
            guard typeAllows(.list, key) else { return Self.wrongType }
            guard let list = live(key)?.list else { return .integer(0) }
            guard let i = list.firstIndex(of: pivot) else { return .integer(-1) }
            mutate(key, into: &output) { object, m in
                var delta = KeyObject()
                delta.list = object.list.insert(value, at: before ? i : i + 1, clock: &m.clock)
                return delta
            }
            return .integer(Int64(live(key)?.list.count ?? 0))
        case .position(let key, let value, let rank, let count, let maxLength):
            guard typeAllows(.list, key) else { return Self.wrongType }
            let found = listPositions(live(key)?.list, of: value, rank: rank, count: count ?? 1, maxLength: maxLength)
            guard count != nil else { return found.first.map { .integer(Int64($0)) } ?? .null }
            return .array(found.map { .integer(Int64($0)) })
        case .trim(let key, let start, let stop):
            guard typeAllows(.list, key) else { return Self.wrongType }
            guard let list = live(key)?.list else { return .ok }
            let kept = Self.listRange(count: list.count, start: start, stop: stop)
            listRemove(key, indices: Array((0..<list.count).filter { !kept.contains($0) }), into: &output)
            return .ok
        case .move(let source, let destination, let fromHead, let toHead):
            guard typeAllows(.list, source), typeAllows(.list, destination) else { return Self.wrongType }
            guard let list = live(source)?.list, list.count > 0 else { return .null }
            let value = listPop(source, count: 1, head: fromHead, into: &output)[0]
            _ = listPush(destination, [value], head: toHead, into: &output)
            return .bulkString(value)
        case .multiPop(let keys, let head, let count):
            guard keys.allSatisfy({ typeAllows(.list, $0) }) else { return Self.wrongType }
            guard let key = keys.first(where: { (live($0)?.list.count ?? 0) > 0 }) else { return .nullArray }
            let popped = listPop(key, count: count, head: head, into: &output)
            return .array([.bulkString(key), .array(popped.map { .bulkString($0) })])
        }
    }

    /// Inserts `values` one by one at the head (so the last ends first, as Redis does) or the tail, in
    /// one delta; answers the new length.
    mutating func listPush(_ key: Bytes, _ values: [Bytes], head: Bool, into output: inout EngineOutput) -> Int {
        mutate(key, into: &output) { object, m in
            var delta = KeyObject()
            for value in values {
                delta.list.join(object.list.insert(value, at: head ? 0 : object.list.count, clock: &m.clock))
            }
            return delta
        }
        return live(key)?.list.count ?? 0
    }

    /// Removes up to `count` elements from one end, as observed removes; returns them in pop order.
    mutating func listPop(_ key: Bytes, count: Int, head: Bool, into output: inout EngineOutput) -> [Bytes] {
        var popped: [Bytes] = []
        mutate(key, into: &output) { object, _ in
            var delta = KeyObject()
            let taken = min(count, object.list.count)
            for _ in 0..<taken {
                let index = head ? 0 : object.list.count - 1
                guard let value = object.list.value(at: index), let removed = object.list.remove(at: index) else { break }
                popped.append(value)
                delta.list.join(removed)
            }
            return delta
        }
        return popped
    }

    /// Removes the elements at `indices` (of the list as it is now) in one delta.
    mutating func listRemove(_ key: Bytes, indices: [Int], into output: inout EngineOutput) {
        guard !indices.isEmpty else { return }
        mutate(key, into: &output) { object, _ in
            var delta = KeyObject()
            // Highest first, so the indices still to remove keep their places.
            for index in indices.sorted(by: >) {
                if let removed = object.list.remove(at: index) { delta.list.join(removed) }
            }
            return delta
        }
    }

    /// `LPOS`: the indices of the matches, from the `rank`-th match on (negative: from the tail),
    /// at most `count` of them (0: all), looking at no more than `maxLength` elements (0: all).
    func listPositions(_ list: ReplicatedList<Bytes>?, of value: Bytes, rank: Int64, count: Int64, maxLength: Int64) -> [Int] {
        guard let list, list.count > 0 else { return [] }
        let values = list.values
        let indices: [Int] = rank > 0 ? Array(values.indices) : values.indices.reversed()
        var skip = rank.magnitude - 1
        var found: [Int] = []
        for (examined, index) in indices.enumerated() {
            if maxLength > 0 && examined >= maxLength { break }
            guard values[index] == value else { continue }
            if skip > 0 { skip -= 1; continue }
            found.append(index)
            if count > 0 && found.count >= count { break }
        }
        return found
    }

    /// An index from the head, negative ones from the tail, or nil when out of range.
    static func listIndex(_ index: Int64, count: Int) -> Int? {
        let resolved = index < 0 ? Int64(count) + index : index
        return resolved >= 0 && resolved < Int64(count) ? Int(resolved) : nil
    }

    /// `LRANGE`'s and `LTRIM`'s inclusive range with negative positions, clamped.
    static func listRange(count: Int, start: Int64, stop: Int64) -> Range<Int> {
        let n = Int64(count)
        let first = max(0, start < 0 ? n + start : start)
        let last = min(n - 1, stop < 0 ? n + stop : stop)
        guard first <= last, first < n else { return 0..<0 }
        return Int(first)..<Int(last + 1)
    }
}
