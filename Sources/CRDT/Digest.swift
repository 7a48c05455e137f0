/// A 128-bit digest computed with MurmurHash3 x64-128 (Austin Appleby's public-domain algorithm),
/// seed 0. Not cryptographic: it detects divergence between honest replicas, not tampering.
/// `hex` prints the 16 bytes as the reference implementation lays them out (h1, then h2, each
/// little-endian), so it matches published test vectors.
public struct Digest128: Hashable, Sendable, CustomStringConvertible {
    /// The first 64-bit half of the hash (h1).
    public let high: UInt64
    /// The second 64-bit half of the hash (h2).
    public let low: UInt64

    /// The digest of `bytes`.
    public init<C: Collection>(hashing bytes: C) where C.Element == UInt8 {
        (high, low) = murmur3x64_128(Array(bytes), seed: 0)
    }

    /// The 16 bytes in reference order, as lowercase hex.
    public var hex: String {
        var result = ""
        for word in [high, low] {
            for index in 0..<8 {
                let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt64(index)))
                result += String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16)
            }
        }
        return result
    }

    public var description: String { hex }
}

private func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }

private func fmix(_ k: UInt64) -> UInt64 {
    var k = k
    k ^= k >> 33
    k &*= 0xff51_afd7_ed55_8ccd
    k ^= k >> 33
    k &*= 0xc4ce_b9fe_1a85_ec53
    k ^= k >> 33
    return k
}

func murmur3x64_128(_ data: [UInt8], seed: UInt64) -> (UInt64, UInt64) {
    let c1: UInt64 = 0x87c3_7b91_1142_53d5
    let c2: UInt64 = 0x4cf5_ad43_2745_937f
    var h1 = seed
    var h2 = seed
    let blockCount = data.count / 16

    func word(_ at: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(data[at + index]) << (8 * UInt64(index)) }
        return value
    }

    for block in 0..<blockCount {
        var k1 = word(block * 16)
        var k2 = word(block * 16 + 8)
        k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
        h1 = rotl(h1, 27); h1 &+= h2; h1 = h1 &* 5 &+ 0x52dc_e729
        k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
        h2 = rotl(h2, 31); h2 &+= h1; h2 = h2 &* 5 &+ 0x3849_5ab5
    }

    let tail = blockCount * 16
    let rest = data.count & 15
    var k1: UInt64 = 0
    var k2: UInt64 = 0
    if rest > 8 {
        for index in stride(from: rest - 1, through: 8, by: -1) { k2 ^= UInt64(data[tail + index]) << (8 * UInt64(index - 8)) }
        k2 &*= c2; k2 = rotl(k2, 33); k2 &*= c1; h2 ^= k2
    }
    if rest > 0 {
        for index in stride(from: min(rest, 8) - 1, through: 0, by: -1) { k1 ^= UInt64(data[tail + index]) << (8 * UInt64(index)) }
        k1 &*= c1; k1 = rotl(k1, 31); k1 &*= c2; h1 ^= k1
    }

    h1 ^= UInt64(data.count)
    h2 ^= UInt64(data.count)
    h1 &+= h2
    h2 &+= h1
    h1 = fmix(h1)
    h2 = fmix(h2)
    h1 &+= h2
    h2 &+= h1
    return (h1, h2)
}
