import CRDT
import Foundation
import RESP

/// `GEO*`: a sorted set whose scores are 52-bit geohashes, as in Redis, so positions merge by the
/// sorted set's rules (concurrent `GEOADD`s of one member keep the later Lamport write; a `ZREM`
/// concurrent with a `GEOADD` keeps the member). Searches are local reads of this node's set.
extension Engine {
    mutating func runGeo(_ command: GeoCommand, into output: inout EngineOutput) -> RESPReply {
        switch command {
        case .add(let key, let points, let countChanged):
            let pairs = points.map { ScorePair(score: Double(Geohash.encode(longitude: $0.longitude, latitude: $0.latitude)), member: $0.member) }
            var options = ZAddOptions()
            options.countChanged = countChanged
            return sortedSetAdd(key, pairs, options, into: &output)
        case .position(let key, let members):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            let zset = live(key)?.sortedSet
            return .array(members.map { member in
                guard let score = zset?.score(of: member), let position = Geohash.decode(score) else { return .nullArray }
                return .array([.double(position.longitude), .double(position.latitude)])
            })
        case .distance(let key, let from, let to, let unit):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            guard let zset = live(key)?.sortedSet, let a = zset.score(of: from), let b = zset.score(of: to),
                  let p = Geohash.decode(a), let q = Geohash.decode(b) else { return .null }
            return Self.distanceReply(Geohash.distance(p.longitude, p.latitude, q.longitude, q.latitude) / unit.metres)
        case .hash(let key, let members):
            guard typeAllows(.sortedSet, key) else { return Self.wrongType }
            let zset = live(key)?.sortedSet
            return .array(members.map { member in zset?.score(of: member).flatMap(Geohash.text(of:)).map { .bulkString($0) } ?? .null })
        case .search(let key, let query):
            return geoSearch(key, query, into: &output)
        }
    }

    /// A distance as Redis prints one: four decimals.
    static func distanceReply(_ value: Double) -> RESPReply { .bulkString(String(format: "%.4f", value)) }

    /// One member a search found.
    struct GeoMatch {
        var member: Bytes
        var score: Double
        var distance: Double
        var longitude: Double
        var latitude: Double
    }

    /// `GEOSEARCH`, `GEOSEARCHSTORE`, `GEORADIUS*`: every member within the shape, by exact distance.
    /// Without an order, members come in score (geohash) order, which is Redis's order when they lie
    /// in one geohash cell.
    mutating func geoSearch(_ key: Bytes, _ query: GeoQuery, into output: inout EngineOutput) -> RESPReply {
        guard typeAllows(.sortedSet, key) else { return Self.wrongType }
        guard let zset = live(key)?.sortedSet else {
            if let store = query.store { return storeSortedSet(store.key, [], into: &output) }
            return .array([])
        }
        let center: (longitude: Double, latitude: Double)
        switch query.center {
        case .coordinates(let longitude, let latitude): center = (longitude, latitude)
        case .member(let member):
            guard let score = zset.score(of: member), let position = Geohash.decode(score) else {
                return .error("ERR could not decode requested zset member")
            }
            center = position
        }
        var matches: [GeoMatch] = []
        for candidate in zset.sortedMembers {
            guard let position = Geohash.decode(candidate.score) else { continue }
            let distance: Double
            switch query.shape {
            case .radius(let radius):
                distance = Geohash.distance(center.longitude, center.latitude, position.longitude, position.latitude)
                guard distance <= radius * query.unit.metres else { continue }
            case .box(let width, let height):
                guard Geohash.latitudeDistance(position.latitude, center.latitude) <= height * query.unit.metres / 2,
                      Geohash.distance(position.longitude, position.latitude, center.longitude, position.latitude)
                        <= width * query.unit.metres / 2 else { continue }
                distance = Geohash.distance(center.longitude, center.latitude, position.longitude, position.latitude)
            }
            matches.append(GeoMatch(member: candidate.member, score: candidate.score, distance: distance / query.unit.metres,
                                    longitude: position.longitude, latitude: position.latitude))
            if query.any, let count = query.count, matches.count >= count { break }
        }
        switch query.order {
        case .none: break
        case .ascending: matches.sort { $0.distance < $1.distance }
        case .descending: matches.sort { $0.distance > $1.distance }
        }
        if let count = query.count { matches = Array(matches.prefix(count)) }
        if let store = query.store {
            let pairs = matches.map { ScorePair(score: store.distances ? $0.distance : $0.score, member: $0.member) }
            return storeSortedSet(store.key, pairs, into: &output)
        }
        let plain = !(query.withDistance || query.withHash || query.withCoordinates)
        return .array(matches.map { match in
            if plain { return .bulkString(match.member) }
            var item: [RESPReply] = [.bulkString(match.member)]
            if query.withDistance { item.append(Self.distanceReply(match.distance)) }
            if query.withHash { item.append(.integer(Int64(match.score))) }
            if query.withCoordinates { item.append(.array([.double(match.longitude), .double(match.latitude)])) }
            return .array(item)
        })
    }

    /// The `STORE` forms of sorted-set commands: the destination becomes exactly `pairs` (an observed
    /// remove of what it held, of any type, and adds), not atomic across nodes: a concurrent `ZADD` to
    /// the destination on another node survives. An empty result deletes the destination, as in Redis.
    mutating func storeSortedSet(_ destination: Bytes, _ pairs: [ScorePair], into output: inout EngineOutput) -> RESPReply {
        if let object = keyspace[destination], object.bounded != BoundedCounter() { return Self.boundedCounterStays }
        mutate(destination, into: &output) { object, m in
            var delta = object.removeObserved()
            for pair in pairs { delta.sortedSet.join(object.sortedSet.add(pair.member, score: pair.score, clock: &m.clock)) }
            return delta
        }
        return .integer(Int64(Set(pairs.map(\.member)).count))
    }
}
