import CRDT
import RESP
import Testing
@testable import Engine

/// The `GEO*` commands: the same scores, positions and distances redis-server 7.0 answers (the
/// expected values are redis-server's, as redis-py's test suite records them).
@Suite struct GeoCommandTests {
    func barcelona() throws -> Harness {
        var h = try Harness()
        #expect(h.run("GEOADD", "b", "2.1909389952632", "41.433791470673", "place1", "2.1873744593677", "41.406342043777", "place2")
                == .integer(2))
        return h
    }

    @Test func scoresPositionsHashesAndDistances() throws {
        var h = try barcelona()
        #expect(h.run("ZSCORE", "b", "place1") == .bulk("3471609698139488"), "the 52-bit geohash is the score")
        guard case .array(let positions) = h.run("GEOPOS", "b", "place1", "nowhere"),
              case .array(let place1) = positions[0],
              case .bulkString(let longitude) = place1[0], case .bulkString(let latitude) = place1[1] else {
            Issue.record("GEOPOS"); return
        }
        #expect(Double(String(decoding: longitude, as: UTF8.self)) == 2.19093829393386841)
        #expect(Double(String(decoding: latitude, as: UTF8.self)) == 41.43379028184083523)
        #expect(positions[1] == .nullArray)
        #expect(h.run("GEOHASH", "b", "place1", "place2", "nowhere") == .array([.bulk("sp3e9yg3kd0"), .bulk("sp3e9cbc3t0"), .null]))
        #expect(h.run("GEODIST", "b", "place1", "place2") == .bulk("3067.4157"))
        #expect(h.run("GEODIST", "b", "place1", "place2", "km") == .bulk("3.0674"))
        #expect(h.run("GEODIST", "b", "place1", "nowhere") == .null)
        #expect(h.run("GEOADD", "b", "181", "0", "bad") == .error("ERR invalid longitude,latitude pair 181.000000,0.000000"))
        #expect(h.run("GEOADD", "b", "NX", "1", "1", "m") != .integer(1), "NX needs coordination: refused")
    }

    @Test func searchesByRadiusAndBox() throws {
        var h = try barcelona()
        h.run("GEOADD", "b", "2.583333", "41.316667", "place3")
        #expect(h.run("GEOSEARCH", "b", "FROMLONLAT", "2.191", "41.433", "BYRADIUS", "1000", "m") == .array([.bulk("place1")]))
        #expect(h.run("GEOSEARCH", "b", "FROMLONLAT", "2.191", "41.433", "BYBOX", "1000", "1000", "m") == .array([.bulk("place1")]))
        #expect(h.run("GEOSEARCH", "b", "FROMMEMBER", "place3", "BYRADIUS", "100", "km", "COUNT", "2")
                == .array([.bulk("place3"), .bulk("place2")]), "COUNT alone means the nearest")
        #expect(h.run("GEOSEARCH", "b", "FROMLONLAT", "2.191", "41.433", "BYRADIUS", "1", "km", "WITHDIST", "WITHHASH")
                == .array([.array([.bulk("place1"), .bulk("0.0881"), .integer(3471609698139488)])]))
        #expect(h.run("GEORADIUS", "b", "2.191", "41.433", "1000", "m", "STOREDIST", "d") == .integer(1))
        #expect(h.run("ZSCORE", "d", "place1") == .bulk("88.05060698409301"))
        #expect(h.run("GEOSEARCHSTORE", "s", "b", "FROMMEMBER", "place1", "BYRADIUS", "10", "km") == .integer(2))
        #expect(h.run("ZCARD", "s") == .integer(2))
        #expect(h.run("GEOSEARCH", "b", "FROMMEMBER", "nowhere", "BYRADIUS", "1", "m")
                == .error("ERR could not decode requested zset member"))
        #expect(h.run("GEOSEARCH", "b", "BYRADIUS", "1", "m") != .array([]), "a centre is required")
    }

    @Test func scoresNoGeoaddMakesAreNotPositions() throws {
        var h = try barcelona()
        h.run("ZADD", "b", "-1", "negative", "inf", "infinite", "1.5", "fraction")
        #expect(h.run("GEOPOS", "b", "negative", "infinite", "fraction") == .array([.nullArray, .nullArray, .nullArray]))
        #expect(h.run("GEOHASH", "b", "infinite") == .array([.null]))
        #expect(h.run("GEODIST", "b", "place1", "negative") == .null)
        #expect(h.run("GEOSEARCH", "b", "FROMMEMBER", "infinite", "BYRADIUS", "1", "km")
                == .error("ERR could not decode requested zset member"))
        #expect(h.run("GEOSEARCH", "b", "FROMLONLAT", "2.191", "41.433", "BYRADIUS", "10", "km") == .array([.bulk("place2"), .bulk("place1")]))
        #expect(h.run("GEOADD", "b", "1e300", "0", "m") != .integer(1), "refused, not a crash")
    }
}
