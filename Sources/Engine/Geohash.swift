import Foundation

/// Redis's geohash arithmetic (src/geohash.c, geohash_helper.c), reproduced operation for operation
/// so scores, positions and distances come out as the same doubles redis-server computes.
enum Geohash {
    static let step: UInt64 = 26
    static let latitudeLimit = 85.05112878
    static let earthRadiusMetres = 6372797.560856

    /// Whether Redis accepts the pair (`GEOADD` refuses the others).
    static func isValid(longitude: Double, latitude: Double) -> Bool {
        longitude >= -180 && longitude <= 180 && latitude >= -latitudeLimit && latitude <= latitudeLimit
    }

    /// The 52-bit interleaved hash of a position over the given ranges (Redis `geohashEncode`).
    static func encode(longitude: Double, latitude: Double, latitudeRange: Double = latitudeLimit) -> UInt64 {
        let latitudeOffset = (latitude + latitudeRange) / (2 * latitudeRange) * Double(1 << step)
        let longitudeOffset = (longitude + 180) / 360 * Double(1 << step)
        return interleave(UInt32(latitudeOffset), UInt32(longitudeOffset))
    }

    /// The centre of the cell a score names (Redis `geohashDecodeToLongLatWGS84`), or nil for a score
    /// no `GEOADD` makes (negative, fractional, 2^52 or more: a member added with `ZADD`).
    static func decode(_ score: Double) -> (longitude: Double, latitude: Double)? {
        guard score >= 0, score < Double(UInt64(1) << 52), score == score.rounded() else { return nil }
        let bits = UInt64(score)
        let separated = deinterleave(bits)
        let latitudeCell = Double(UInt32(truncatingIfNeeded: separated))
        let longitudeCell = Double(UInt32(truncatingIfNeeded: separated >> 32))
        let cells = Double(1 << step)
        let latitudeScale = 2 * latitudeLimit
        let longitudeScale = 360.0
        let latitudeMin = -latitudeLimit + (latitudeCell * 1.0 / cells) * latitudeScale
        let latitudeMax = -latitudeLimit + ((latitudeCell + 1) * 1.0 / cells) * latitudeScale
        let longitudeMin = -180 + (longitudeCell * 1.0 / cells) * longitudeScale
        let longitudeMax = -180 + ((longitudeCell + 1) * 1.0 / cells) * longitudeScale
        let longitude = min(180, max(-180, (longitudeMin + longitudeMax) / 2))
        let latitude = min(latitudeLimit, max(-latitudeLimit, (latitudeMin + latitudeMax) / 2))
        return (longitude, latitude)
    }

    /// The 11-character base-32 geohash `GEOHASH` answers: the standard one, over latitudes ±90.
    static func text(of score: Double) -> String? {
        guard let position = decode(score) else { return nil }
        let bits = encode(longitude: position.longitude, latitude: position.latitude, latitudeRange: 90)
        let alphabet = Array("0123456789bcdefghjkmnpqrstuvwxyz")
        var text = ""
        for i in 0..<10 {
            let shift = UInt64(52 - (i + 1) * 5)
            text.append(alphabet[Int((bits >> shift) & 0x1f)])
        }
        // 52 bits make 10.4 characters; Redis pads the eleventh with zero bits.
        text.append(alphabet[0])
        return text
    }

    /// The great-circle distance in metres (Redis `geohashGetDistance`, haversine).
    static func distance(_ lon1: Double, _ lat1: Double, _ lon2: Double, _ lat2: Double) -> Double {
        let lon1r = radians(lon1), lon2r = radians(lon2)
        let v = sin((lon2r - lon1r) / 2)
        if v == 0 { return latitudeDistance(lat1, lat2) }
        let lat1r = radians(lat1), lat2r = radians(lat2)
        let u = sin((lat2r - lat1r) / 2)
        let a = u * u + cos(lat1r) * cos(lat2r) * v * v
        return 2 * earthRadiusMetres * asin(sqrt(a))
    }

    static func latitudeDistance(_ lat1: Double, _ lat2: Double) -> Double {
        earthRadiusMetres * abs(radians(lat2) - radians(lat1))
    }

    private static func radians(_ degrees: Double) -> Double { degrees * (Double.pi / 180.0) }

    private static func spread(_ value: UInt32) -> UInt64 {
        var x = UInt64(value)
        x = (x | (x << 16)) & 0x0000FFFF0000FFFF
        x = (x | (x << 8)) & 0x00FF00FF00FF00FF
        x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F
        x = (x | (x << 2)) & 0x3333333333333333
        x = (x | (x << 1)) & 0x5555555555555555
        return x
    }

    private static func squash(_ value: UInt64) -> UInt64 {
        var x = value & 0x5555555555555555
        x = (x | (x >> 1)) & 0x3333333333333333
        x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F
        x = (x | (x >> 4)) & 0x00FF00FF00FF00FF
        x = (x | (x >> 8)) & 0x0000FFFF0000FFFF
        x = (x | (x >> 16)) & 0x00000000FFFFFFFF
        return x
    }

    /// Latitude in the even bits, longitude in the odd ones.
    static func interleave(_ latitude: UInt32, _ longitude: UInt32) -> UInt64 { spread(latitude) | (spread(longitude) << 1) }

    /// Latitude in the low 32 bits, longitude in the high ones.
    static func deinterleave(_ bits: UInt64) -> UInt64 { squash(bits) | (squash(bits >> 1) << 32) }
}
