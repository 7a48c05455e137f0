import CRDT
import RESP

/// Reads of large objects answered off the engine thread (`Effect.deferredReply`): `SMEMBERS`,
/// `HGETALL`, `ZRANGE` (any form) selecting 10,000 members or more, and the first page of `SSCAN`,
/// `HSCAN` and `ZSCAN` over as many when the key changed since its scan order was built
/// (`deferredScan`). `SMEMBERS` of a
/// million members took the engine 1.5 s to sort and encode (7.8 s before the byte order used
/// `memcmp`; docs/benchmarks.md, "Large replies"), and every other client waited behind it. The engine
/// now takes a copy-on-write copy of the set or hash, which costs a retain, and hands the sorting and
/// encoding to the shell, which runs it on a worker thread and puts the bytes in the reply's place.
extension Engine {
    /// Members or fields from which a full read is deferred: below it, sorting and encoding take under
    /// a few milliseconds and are not worth a thread hop.
    static let deferredReplyElements = 10_000

    /// The deferred reply to `command`, if it is a full read of a large set or hash; nil otherwise
    /// (the command then runs as usual, which also gives the errors, WRONGTYPE and the like).
    mutating func deferredRead(_ command: Command, for client: ClientID) -> DeferredReply? {
        let version = sessions[client]?.protocolVersion ?? .resp2
        let id = stats.commandsProcessed
        switch command {
        case .sMembers(let key):
            guard typeAllows(.set, key), let set = live(key)?.set, set.count >= Self.deferredReplyElements else { return nil }
            return DeferredReply(id: id, elements: set.count) {
                RESPReply.set(ByteOrder.sorted(set.store.entries.keys).map { .bulkString($0) }).encoded(protocol: version)
            }
        case .hGetAll(let key):
            guard typeAllows(.hash, key), let hash = live(key)?.hash, hash.count >= Self.deferredReplyElements else { return nil }
            return DeferredReply(id: id, elements: hash.count) {
                RESPReply.map(ByteOrder.sorted(hash.keys).compactMap { field in
                    hash[field].flatMap(Engine.shownValue).map { RESPReply.MapEntry(key: .bulkString(field), value: .bulkString($0)) }
                }).encoded(protocol: version)
            }
        case .zRange(let key, let query):
            // The ranks are found here (O(log n)); the members are read and encoded on the worker.
            guard typeAllows(.sortedSet, key), let zset = live(key)?.sortedSet, zset.count >= Self.deferredReplyElements else { return nil }
            let selected = Self.selectedRanks(zset, query)
            guard selected.count >= Self.deferredReplyElements else { return nil }
            return DeferredReply(id: id, elements: selected.count) {
                Engine.rangeReply(zset, selected, query, nested: version == .resp3).encoded(protocol: version)
            }
        case .sScan(let key, 0, let match, let count):
            guard typeAllows(.set, key), let object = live(key) else { return nil }
            return deferredScan(key: key, object.set.store.entries.keys, version: object.digest(key: key), match: match,
                                count: count, id: id, protocol: version) { [.bulkString($0)] }
        case .hScan(let key, 0, let match, let count, let novalues):
            guard typeAllows(.hash, key), let object = live(key) else { return nil }
            let hash = object.hash
            return deferredScan(key: key, hash.keys, version: object.digest(key: key), match: match,
                                count: count, id: id, protocol: version) { field in
                novalues ? [.bulkString(field)] : [.bulkString(field), .bulkString(hash[field].flatMap(Engine.shownValue) ?? [])]
            }
        case .zScan(let key, 0, let match, let count):
            guard typeAllows(.sortedSet, key), let object = live(key) else { return nil }
            let zset = object.sortedSet
            return deferredScan(key: key, zset.store.entries.keys, version: object.digest(key: key), match: match,
                                count: count, id: id, protocol: version) { member in
                [.bulkString(member), .bulkString(Array(Engine.formatScore(zset.score(of: member) ?? 0).utf8))]
            }
        default:
            return nil
        }
    }
}
