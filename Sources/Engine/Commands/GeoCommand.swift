/// The `GEO*` commands after their arguments were checked. Redis builds them on a sorted set whose
/// scores are 52-bit geohashes; crdtd does the same on its `SortedSet`, so they merge by its rules.
public enum GeoCommand: Sendable, Equatable {
    /// `GEOADD key [CH] lon lat member ...` (`NX`/`XX` are refused, as for `ZADD`).
    case add(key: Bytes, points: [GeoPoint], countChanged: Bool)
    case position(key: Bytes, members: [Bytes])
    case distance(key: Bytes, from: Bytes, to: Bytes, unit: GeoUnit)
    case hash(key: Bytes, members: [Bytes])
    /// `GEOSEARCH`, `GEOSEARCHSTORE`, `GEORADIUS*`.
    case search(key: Bytes, GeoQuery)

    var isWrite: Bool {
        switch self {
        case .add: true
        case .search(_, let query): query.store != nil
        default: false
        }
    }
}

/// One `longitude latitude member` triple of `GEOADD`.
public struct GeoPoint: Sendable, Equatable {
    public var longitude: Double
    public var latitude: Double
    public var member: Bytes
}

/// `m`, `km`, `ft`, `mi`: metres per unit.
public enum GeoUnit: String, Sendable, Equatable {
    case m, km, ft, mi
    var metres: Double {
        switch self {
        case .m: 1
        case .km: 1000
        case .ft: 0.3048
        case .mi: 1609.34
        }
    }
}

/// What a geo search selects and how it answers.
public struct GeoQuery: Sendable, Equatable {
    public enum Center: Sendable, Equatable {
        case member(Bytes)
        case coordinates(longitude: Double, latitude: Double)
    }
    public enum Shape: Sendable, Equatable {
        case radius(Double)
        case box(width: Double, height: Double)
    }
    public enum Order: Sendable, Equatable { case none, ascending, descending }
    public var center: Center
    public var shape: Shape
    public var unit: GeoUnit
    public var order: Order = .none
    public var count: Int?
    public var any = false
    public var withCoordinates = false
    public var withDistance = false
    public var withHash = false
    /// `STORE`/`STOREDIST` (`GEOSEARCHSTORE`): the destination, and whether its scores are distances.
    public var store: (key: Bytes, distances: Bool)?

    public static func == (lhs: GeoQuery, rhs: GeoQuery) -> Bool {
        lhs.center == rhs.center && lhs.shape == rhs.shape && lhs.unit == rhs.unit && lhs.order == rhs.order
            && lhs.count == rhs.count && lhs.any == rhs.any && lhs.withCoordinates == rhs.withCoordinates
            && lhs.withDistance == rhs.withDistance && lhs.withHash == rhs.withHash
            && lhs.store?.key == rhs.store?.key && lhs.store?.distances == rhs.store?.distances
    }
}
