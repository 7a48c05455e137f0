import Foundation

/// Parsing of the `GEO*` commands.
extension CommandParser {
    static let geoCommandNames: Set<String> = [
        "GEOADD", "GEOPOS", "GEODIST", "GEOHASH", "GEOSEARCH", "GEOSEARCHSTORE",
        "GEORADIUS", "GEORADIUS_RO", "GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO",
    ]

    static func parseGeo(_ name: String, _ a: inout ArgumentCursor) throws(CommandError) -> GeoCommand {
        switch name {
        case "GEOADD":
            var countChanged = false
            var i = 2
            while i < a.count {
                switch a.upper(i) {
                case "NX", "XX":
                    throw CommandError("ERR GEOADD \(a.upper(i)) needs coordination between nodes (agreement on whether the "
                        + "member exists everywhere), which crdtd does not do; use GEOADD without it")
                case "CH": countChanged = true
                default:
                    guard (a.count - i) % 3 == 0 else { throw CommandError.syntax }
                    var points: [GeoPoint] = []
                    while i < a.count {
                        let longitude = try a.double(i, error: CommandError("ERR value is not a valid float"))
                        let latitude = try a.double(i + 1, error: CommandError("ERR value is not a valid float"))
                        guard Geohash.isValid(longitude: longitude, latitude: latitude) else {
                            throw CommandError("ERR invalid longitude,latitude pair " + String(format: "%.6f,%.6f", longitude, latitude))
                        }
                        points.append(GeoPoint(longitude: longitude, latitude: latitude, member: a[i + 2]))
                        i += 3
                    }
                    return .add(key: a[1], points: points, countChanged: countChanged)
                }
                i += 1
            }
            throw CommandError.wrongArity(name)
        case "GEOPOS":
            return .position(key: a[1], members: Array(a.args.dropFirst(2)))
        case "GEOHASH":
            return .hash(key: a[1], members: Array(a.args.dropFirst(2)))
        case "GEODIST":
            try a.arity(min: 4, max: 5)
            return .distance(key: a[1], from: a[2], to: a[3], unit: a.count == 5 ? try geoUnit(a, 4) : .m)
        case "GEORADIUS", "GEORADIUS_RO", "GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO":
            let byMember = name.hasPrefix("GEORADIUSBYMEMBER")
            let center: GeoQuery.Center
            var i: Int
            if byMember {
                try a.arity(min: 5)
                center = .member(a[2])
                i = 3
            } else {
                try a.arity(min: 6)
                center = .coordinates(longitude: try coordinate(a, 2), latitude: try coordinate(a, 3))
                i = 4
            }
            let radius = try distanceArgument(a, i)
            var query = GeoQuery(center: center, shape: .radius(radius), unit: try geoUnit(a, i + 1))
            try parseGeoOptions(&a, from: i + 2, into: &query, allowStore: !name.hasSuffix("_RO"), searchForm: false)
            return .search(key: a[1], query)
        case "GEOSEARCH", "GEOSEARCHSTORE":
            let store = name == "GEOSEARCHSTORE"
            let keyIndex = store ? 2 : 1
            var center: GeoQuery.Center?
            var shape: GeoQuery.Shape?
            var unit = GeoUnit.m
            var rest: [Bytes] = Array(a.args.prefix(keyIndex + 1))
            var i = keyIndex + 1
            while i < a.count {
                switch a.upper(i) {
                case "FROMMEMBER" where center == nil && i + 1 < a.count:
                    center = .member(a[i + 1])
                    i += 2
                case "FROMLONLAT" where center == nil && i + 2 < a.count:
                    center = .coordinates(longitude: try coordinate(a, i + 1), latitude: try coordinate(a, i + 2))
                    i += 3
                case "BYRADIUS" where shape == nil && i + 2 < a.count:
                    shape = .radius(try distanceArgument(a, i + 1))
                    unit = try geoUnit(a, i + 2)
                    i += 3
                case "BYBOX" where shape == nil && i + 3 < a.count:
                    shape = .box(width: try distanceArgument(a, i + 1), height: try distanceArgument(a, i + 2))
                    unit = try geoUnit(a, i + 3)
                    i += 4
                default:
                    rest.append(a[i])
                    i += 1
                }
            }
            guard let center else { throw CommandError("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for \(name.lowercased())") }
            guard let shape else { throw CommandError("ERR exactly one of BYRADIUS and BYBOX can be specified for \(name.lowercased())") }
            var query = GeoQuery(center: center, shape: shape, unit: unit)
            var options = ArgumentCursor(name: a.name, args: rest)
            try parseGeoOptions(&options, from: keyIndex + 1, into: &query, allowStore: false, searchForm: true)
            if store {
                if query.withCoordinates || query.withDistance || query.withHash {
                    throw CommandError("ERR syntax error")
                }
                query.store = (a[1], query.store?.distances ?? false)
                return .search(key: a[2], query)
            }
            return .search(key: a[1], query)
        default:
            throw CommandError("ERR internal error: '\(name.lowercased())' has no geo parser")
        }
    }

    /// `WITHCOORD`, `WITHDIST`, `WITHHASH`, `COUNT n [ANY]`, `ASC`, `DESC`, `STORE k`, `STOREDIST k`
    /// (`STOREDIST` alone, without a key, in `GEOSEARCHSTORE`).
    private static func parseGeoOptions(_ a: inout ArgumentCursor, from start: Int, into query: inout GeoQuery,
                                        allowStore: Bool, searchForm: Bool) throws(CommandError) {
        var i = start
        while i < a.count {
            switch a.upper(i) {
            case "WITHCOORD": query.withCoordinates = true
            case "WITHDIST": query.withDistance = true
            case "WITHHASH": query.withHash = true
            case "ASC": query.order = .ascending
            case "DESC": query.order = .descending
            case "ANY": query.any = true
            case "COUNT" where i + 1 < a.count:
                let n = try a.integer(i + 1)
                guard n > 0 else { throw CommandError("ERR COUNT must be > 0") }
                query.count = Int(min(n, 1_000_000_000))
                i += 1
            case "STOREDIST" where searchForm:
                query.store = ([], true)
            case "STORE" where allowStore && i + 1 < a.count:
                query.store = (a[i + 1], false)
                i += 1
            case "STOREDIST" where allowStore && i + 1 < a.count:
                query.store = (a[i + 1], true)
                i += 1
            default: throw CommandError.syntax
            }
            i += 1
        }
        if query.any && query.count == nil { throw CommandError("ERR the ANY argument requires COUNT argument") }
        if query.store != nil && !searchForm && (query.withCoordinates || query.withDistance || query.withHash) {
            throw CommandError("ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
        }
        // COUNT without ANY means the nearest ones, as in Redis.
        if query.count != nil && !query.any && query.order == .none { query.order = .ascending }
    }

    private static func geoUnit(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> GeoUnit {
        guard let unit = GeoUnit(rawValue: a.string(i).lowercased()) else {
            throw CommandError("ERR unsupported unit provided. please use M, KM, FT, MI")
        }
        return unit
    }

    private static func coordinate(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> Double {
        try a.double(i, error: CommandError("ERR value is not a valid float"))
    }

    private static func distanceArgument(_ a: ArgumentCursor, _ i: Int) throws(CommandError) -> Double {
        let value = try a.double(i, error: CommandError("ERR need numeric radius"))
        guard value >= 0 else { throw CommandError("ERR radius cannot be negative") }
        return value
    }
}
