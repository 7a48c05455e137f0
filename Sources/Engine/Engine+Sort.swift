import CRDT
import RESP

/// `SORT`, `SORT_RO`: a local read of a list, set or sorted set, and of the keys its `BY` and `GET`
/// patterns name. `STORE` replaces the destination with a list, in one delta, not atomic across nodes.
extension Engine {
    mutating func sort(_ query: SortQuery, into output: inout EngineOutput) -> RESPReply {
        var elements: [Bytes]
        // A sorted set keeps its own order under `BY nosort`, a set is read in byte order (Redis's
        // order there is its hash table's), a list in its order.
        switch live(query.key)?.visibleType {
        case nil: elements = []
        case .list?: elements = live(query.key)!.list.values
        case .set?: elements = ByteOrder.sorted(live(query.key)!.set.store.entries.keys)
        case .sortedSet?: elements = live(query.key)!.sortedSet.sortedMembers.map(\.member)
        default: return Self.wrongType
        }
        let sorts = query.by.map { $0.contains(UInt8(ascii: "*")) } ?? true
        if sorts {
            var keyed: [(element: Bytes, weight: Bytes?)] = elements.map { element in
                (element, query.by.map { by in lookUp(by, for: element) } ?? element)
            }
            if query.alpha {
                keyed.sort { lhs, rhs in
                    let (l, r) = (lhs.weight ?? [], rhs.weight ?? [])
                    if l == r { return lhs.element.lexicographicallyPrecedes(rhs.element) != query.descending }
                    return l.lexicographicallyPrecedes(r) != query.descending
                }
            } else {
                var numbers: [Double] = []
                numbers.reserveCapacity(keyed.count)
                for entry in keyed {
                    guard let weight = entry.weight else { numbers.append(0); continue }
                    guard let number = try? CommandParser.parseDouble(weight, error: .syntax) else {
                        return .error("ERR One or more scores can't be converted into double")
                    }
                    numbers.append(number)
                }
                let order = keyed.indices.sorted { i, j in
                    if numbers[i] == numbers[j] { return keyed[i].element.lexicographicallyPrecedes(keyed[j].element) != query.descending }
                    return (numbers[i] < numbers[j]) != query.descending
                }
                keyed = order.map { keyed[$0] }
            }
            elements = keyed.map(\.element)
        }
        if let limit = query.limit {
            let offset = Int(clamping: max(0, limit.offset))
            let count = limit.count < 0 ? elements.count : Int(clamping: limit.count)
            let end = count >= elements.count - offset ? elements.count : offset + count
            elements = offset >= elements.count ? [] : Array(elements[offset..<end])
        }
        var rows: [Bytes?] = []
        if query.get.isEmpty {
            rows = elements
        } else {
            for element in elements {
                for pattern in query.get { rows.append(pattern == [UInt8(ascii: "#")] ? element : lookUp(pattern, for: element)) }
            }
        }
        guard let destination = query.store else { return .array(rows.map { $0.map { .bulkString($0) } ?? .null }) }
        if let object = keyspace[destination], object.bounded != BoundedCounter() { return Self.boundedCounterStays }
        mutate(destination, into: &output) { object, m in
            var delta = object.removeObserved()
            for row in rows { delta.list.join(object.list.insert(row ?? [], at: object.list.count, clock: &m.clock)) }
            return delta
        }
        return .integer(Int64(rows.count))
    }

    /// The value a `BY` or `GET` pattern names for `element`: its first `*` replaced, then a string
    /// key, or with `->field` after the `*` a field of a hash. nil when absent.
    func lookUp(_ pattern: Bytes, for element: Bytes) -> Bytes? {
        guard let star = pattern.firstIndex(of: UInt8(ascii: "*")) else { return nil }
        var keyPattern = pattern
        var field: Bytes?
        if let arrow = ((star + 1)..<max(star + 1, pattern.count - 2)).first(where: {
            pattern[$0] == UInt8(ascii: "-") && pattern[$0 + 1] == UInt8(ascii: ">")
        }) {
            keyPattern = Array(pattern[..<arrow])
            field = Array(pattern[(arrow + 2)...])
        }
        let name = Array(keyPattern[..<star]) + element + Array(keyPattern[(star + 1)...])
        if let field { return typeAllows(.hash, name) ? hashValue(name, field) : nil }
        if case .value(let value) = stringValue(name) { return value }
        return nil
    }
}
