import CRDT

/// Per replica, the node-wide number of the last local write it made to this key: a write stamp.
///
/// Dots count events within one key, so they cannot say what a node has seen of the whole keyspace. A
/// write stamp `(replica, n)` numbers every local write a node makes, across all keys, without gaps; a
/// key's object keeps, per replica, the greatest stamp among the writes it reflects, joined by `max`.
/// Deltas and repair states carry it like any other slot, so whoever joins a key's content learns the
/// stamps of the writes in it: that is what lets a node count the writes it has applied (`Stability`),
/// and, from every member's count, which writes every member has applied (the stability frontier).
///
/// Almost every key is written by one replica: the first entry is stored inline, so a key pays no
/// allocation for its stamps until a second replica writes it.
struct WriteStamps: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        var replica: ReplicaID
        var stamp: UInt64
    }

    /// The entry of the lowest replica, when `first.stamp > 0`.
    private var first = Entry(replica: ReplicaID(0), stamp: 0)
    /// The other entries, sorted by replica, all above `first.replica`.
    private var rest: [Entry] = []

    init() {}

    /// One stamp.
    init(_ replica: ReplicaID, _ stamp: UInt64) {
        precondition(stamp > 0, "stamps start at 1")
        first = Entry(replica: replica, stamp: stamp)
    }

    var isEmpty: Bool { first.stamp == 0 }

    /// Every entry, sorted by replica.
    var entries: [Entry] { isEmpty ? [] : [first] + rest }

    /// The stamp of `replica` (0 when it never wrote this key).
    func stamp(of replica: ReplicaID) -> UInt64 {
        if isEmpty { return 0 }
        if first.replica == replica { return first.stamp }
        return rest.first { $0.replica == replica }?.stamp ?? 0
    }

    /// Raises `replica`'s stamp to at least `stamp`; returns whether it grew.
    @discardableResult
    mutating func raise(_ replica: ReplicaID, to stamp: UInt64) -> Bool {
        guard stamp > 0 else { return false }
        if isEmpty {
            first = Entry(replica: replica, stamp: stamp)
            return true
        }
        if first.replica == replica {
            guard stamp > first.stamp else { return false }
            first.stamp = stamp
            return true
        }
        if replica < first.replica {
            rest.insert(first, at: 0)
            first = Entry(replica: replica, stamp: stamp)
            return true
        }
        if let index = rest.firstIndex(where: { $0.replica >= replica }) {
            if rest[index].replica == replica {
                guard stamp > rest[index].stamp else { return false }
                rest[index].stamp = stamp
                return true
            }
            rest.insert(Entry(replica: replica, stamp: stamp), at: index)
        } else {
            rest.append(Entry(replica: replica, stamp: stamp))
        }
        return true
    }

    /// Pointwise maximum; returns whether anything grew. O(other's entries x these entries), both tiny.
    @discardableResult
    mutating func formMaximum(_ other: WriteStamps) -> Bool {
        guard !other.isEmpty else { return false }
        var grew = raise(other.first.replica, to: other.first.stamp)
        for entry in other.rest { grew = raise(entry.replica, to: entry.stamp) || grew }
        return grew
    }

    /// Whether every stamp is at or below `vector`'s entry for its replica: every write this key reflects
    /// is among those `vector` covers.
    func isCovered(by vector: [ReplicaID: UInt64]) -> Bool {
        guard !isEmpty else { return true }
        guard first.stamp <= vector[first.replica, default: 0] else { return false }
        return rest.allSatisfy { $0.stamp <= vector[$0.replica, default: 0] }
    }

    // MARK: Encoding

    /// Count, then (replica, stamp) pairs sorted by replica; canonical, so equal stamps encode equally.
    func encode(to writer: inout BinaryWriter) {
        writer.write(varint: UInt64(1 + rest.count))
        writer.write(varint: first.replica.rawValue)
        writer.write(varint: first.stamp)
        for entry in rest {
            writer.write(varint: entry.replica.rawValue)
            writer.write(varint: entry.stamp)
        }
    }

    /// Rejects an empty list (encoded only when non-empty), zero stamps and unsorted or repeated replicas.
    init(from reader: inout BinaryReader) throws(CRDTDecodingError) {
        let offset = reader.offset
        let count = try reader.readCount(minimumElementSize: 2)
        guard count > 0 else { throw .invalidValue(reason: "empty write stamps", offset: offset) }
        var previous: ReplicaID?
        for _ in 0..<count {
            let replica = ReplicaID(try reader.readVarint())
            let stamp = try reader.readVarint()
            guard stamp > 0 else { throw .invalidValue(reason: "write stamp 0", offset: reader.offset) }
            if let previous, replica <= previous {
                throw .invalidValue(reason: "write stamps not sorted by replica", offset: reader.offset)
            }
            previous = replica
            if isEmpty { first = Entry(replica: replica, stamp: stamp) } else { rest.append(Entry(replica: replica, stamp: stamp)) }
        }
    }
}
