/// A HyperLogLog cardinality estimator (Redis `PFADD`, `PFCOUNT`, `PFMERGE`), which is a CRDT by
/// nature: each of its registers only grows, and the join is the register-wise maximum.
///
/// It follows Redis 7's `hyperloglog.c` so that estimates match Redis's for the same elements:
/// 2^14 = 16,384 registers (standard error 1.04/sqrt(16384) = 0.81%), an element's register and
/// rank from MurmurHash64A with Redis's seed, and Otmar Ertl's improved raw estimator
/// (*New cardinality estimation algorithms for HyperLogLog sketches*, 2017), which needs no bias
/// tables or small-range correction.
///
/// Small sketches are *sparse*: only the non-zero registers are held (sorted), so the delta of a
/// `PFADD` that raises one register is that one register, a few bytes. Past
/// ``sparseLimit`` non-zero registers the sketch turns *dense* (one byte per register in memory, 6
/// bits each encoded, 12 KiB) and never goes back, as registers never decrease. The form is a
/// function of the registers, so equal sketches are `==` and encode to the same bytes.
public struct HyperLogLog: DeltaCRDT, Hashable, CustomStringConvertible {
    /// Bits of the hash that choose the register.
    public static let precision = 14
    /// Number of registers.
    public static let registerCount = 1 << precision
    /// The greatest rank a register can hold: one more than the hash bits left after the index.
    public static let maxRank = UInt8(64 - precision + 1)
    /// Sketches with more non-zero registers than this are dense.
    public static let sparseLimit = 4_096

    /// One non-zero register of a sparse sketch.
    @usableFromInline
    struct SparseRegister: Hashable, Sendable {
        @usableFromInline let index: UInt16
        @usableFromInline var rank: UInt8

        @inlinable init(index: UInt16, rank: UInt8) {
            self.index = index
            self.rank = rank
        }
    }

    @usableFromInline
    enum Registers: Hashable, Sendable {
        /// Non-zero registers sorted by index, at most `sparseLimit` of them.
        case sparse([SparseRegister])
        /// Every register, more than `sparseLimit` of them non-zero.
        case dense([UInt8])
    }

    @usableFromInline var registers: Registers

    /// The empty sketch.
    public init() { registers = .sparse([]) }

    @usableFromInline init(registers: Registers) { self.registers = registers }

    /// True when no element was ever added.
    public var isEmpty: Bool {
        if case .sparse(let entries) = registers { return entries.isEmpty }
        return false
    }

    /// Whether the sketch is in its dense form.
    public var isDense: Bool {
        if case .dense = registers { return true }
        return false
    }

    /// The rank held by register `index` (0 when never raised).
    public func register(_ index: Int) -> UInt8 {
        switch registers {
        case .dense(let ranks): return ranks[index]
        case .sparse(let entries):
            let position = Self.position(of: UInt16(index), in: entries)
            return position < entries.count && entries[position].index == UInt16(index) ? entries[position].rank : 0
        }
    }

    /// Number of non-zero registers.
    public var nonZeroRegisterCount: Int {
        switch registers {
        case .sparse(let entries): return entries.count
        case .dense(let ranks): return ranks.reduce(0) { $0 + ($1 == 0 ? 0 : 1) }
        }
    }

    /// Adds one element (its bytes, as Redis hashes them) and returns the delta: the register it
    /// raised, or the empty sketch when it raised none (`PFADD` then answers 0).
    @discardableResult
    public mutating func add<Bytes: Collection>(_ element: Bytes) -> HyperLogLog where Bytes.Element == UInt8 {
        let (index, rank) = Self.registerAndRank(of: element)
        guard raise(index, to: rank) else { return HyperLogLog() }
        return HyperLogLog(registers: .sparse([SparseRegister(index: index, rank: rank)]))
    }

    /// Adds every element and returns one delta holding the registers raised (`PFADD key e1 e2 ...`).
    @discardableResult
    public mutating func add<Elements: Sequence>(contentsOf elements: Elements) -> HyperLogLog
    where Elements.Element: Collection, Elements.Element.Element == UInt8 {
        var raised: [UInt16: UInt8] = [:]
        for element in elements {
            let (index, rank) = Self.registerAndRank(of: element)
            if raise(index, to: rank) { raised[index] = rank }
        }
        return HyperLogLog(sparse: raised)
    }

    /// Joins `other` in (`PFMERGE destination source`) and returns the delta: only the registers
    /// `other` raised, so merging a sketch that adds nothing new ships nothing.
    @discardableResult
    public mutating func merge(_ other: HyperLogLog) -> HyperLogLog {
        var raised: [UInt16: UInt8] = [:]
        other.forEachNonZero { index, rank in
            if rank > register(Int(index)) { raised[index] = rank }
        }
        let delta = HyperLogLog(sparse: raised)
        join(delta)
        return delta
    }

    /// The join, reporting whether a register rose. O(other) for a sparse `other` (a delta).
    public mutating func inflate(with other: HyperLogLog) -> Bool {
        if case .sparse(let theirs) = other.registers, theirs.count <= 64 {
            var raised = false
            for entry in theirs where raise(entry.index, to: entry.rank) { raised = true }
            return raised
        }
        let before = self
        join(other)
        return self != before
    }

    public mutating func join(_ other: HyperLogLog) {
        switch (registers, other.registers) {
        case (.sparse(let mine), .sparse(let theirs)):
            if theirs.isEmpty { return }
            if theirs.count == 1 {
                _ = raise(theirs[0].index, to: theirs[0].rank)
                return
            }
            registers = .sparse([])  // release the old array so a large merge does not copy it
            let merged = Self.mergeSorted(mine, theirs)
            if merged.count > Self.sparseLimit {
                registers = .dense(Self.dense(from: merged))
            } else {
                registers = .sparse(merged)
            }
        case (.dense(var ranks), .sparse(let theirs)):
            registers = .sparse([])
            for entry in theirs where entry.rank > ranks[Int(entry.index)] { ranks[Int(entry.index)] = entry.rank }
            registers = .dense(ranks)
        case (.sparse(let mine), .dense(var ranks)):
            for entry in mine where entry.rank > ranks[Int(entry.index)] { ranks[Int(entry.index)] = entry.rank }
            registers = .dense(ranks)
        case (.dense(var ranks), .dense(let theirs)):
            registers = .sparse([])
            for index in 0..<Self.registerCount where theirs[index] > ranks[index] { ranks[index] = theirs[index] }
            registers = .dense(ranks)
        }
    }

    /// The estimated number of distinct elements added (`PFCOUNT`), as Redis computes it.
    public var count: UInt64 {
        var histogram = [Int](repeating: 0, count: Int(Self.maxRank) + 1)
        switch registers {
        case .sparse(let entries):
            histogram[0] = Self.registerCount - entries.count
            for entry in entries { histogram[Int(entry.rank)] += 1 }
        case .dense(let ranks):
            for rank in ranks { histogram[Int(rank)] += 1 }
        }
        let m = Double(Self.registerCount)
        let q = 64 - Self.precision
        var z = m * Self.tau((m - Double(histogram[q + 1])) / m)
        for rank in stride(from: q, through: 1, by: -1) {
            z += Double(histogram[rank])
            z *= 0.5
        }
        z += m * Self.sigma(Double(histogram[0]) / m)
        let alphaInfinity = 0.721347520444481703680  // 1 / (2 ln 2)
        return UInt64((alphaInfinity * m * m / z).rounded())
    }

    /// A short summary: the form and the number of registers set (not all 16,384 of them).
    public var description: String { "HyperLogLog(\(isDense ? "dense" : "sparse"), \(nonZeroRegisterCount) registers set)" }

    /// The estimated size of the union of several sketches (`PFCOUNT k1 k2 ...`), without changing any.
    public static func unionCount(_ sketches: [HyperLogLog]) -> UInt64 {
        var union = HyperLogLog()
        for sketch in sketches { union.join(sketch) }
        return union.count
    }

    // MARK: Internals

    /// Raises register `index` to `rank` if it is lower; returns whether it changed.
    @usableFromInline
    mutating func raise(_ index: UInt16, to rank: UInt8) -> Bool {
        switch registers {
        case .dense(var ranks):
            guard rank > ranks[Int(index)] else { return false }
            registers = .sparse([])
            ranks[Int(index)] = rank
            registers = .dense(ranks)
            return true
        case .sparse(var entries):
            let position = Self.position(of: index, in: entries)
            if position < entries.count && entries[position].index == index {
                guard rank > entries[position].rank else { return false }
                registers = .sparse([])
                entries[position].rank = rank
                registers = .sparse(entries)
                return true
            }
            registers = .sparse([])
            entries.insert(SparseRegister(index: index, rank: rank), at: position)
            registers = entries.count > Self.sparseLimit ? .dense(Self.dense(from: entries)) : .sparse(entries)
            return true
        }
    }

    /// A sparse sketch of the given registers (callers pass at most a delta's worth).
    init(sparse raised: [UInt16: UInt8]) {
        let entries = raised.map { SparseRegister(index: $0.key, rank: $0.value) }.sorted { $0.index < $1.index }
        registers = entries.count > Self.sparseLimit ? .dense(Self.dense(from: entries)) : .sparse(entries)
    }

    func forEachNonZero(_ body: (UInt16, UInt8) -> Void) {
        switch registers {
        case .sparse(let entries): for entry in entries { body(entry.index, entry.rank) }
        case .dense(let ranks): for index in ranks.indices where ranks[index] != 0 { body(UInt16(index), ranks[index]) }
        }
    }

    @usableFromInline
    static func position(of index: UInt16, in entries: [SparseRegister]) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].index < index { low = middle + 1 } else { high = middle }
        }
        return low
    }

    static func mergeSorted(_ mine: [SparseRegister], _ theirs: [SparseRegister]) -> [SparseRegister] {
        var merged: [SparseRegister] = []
        merged.reserveCapacity(mine.count + theirs.count)
        var i = 0
        var j = 0
        while i < mine.count || j < theirs.count {
            if j == theirs.count || (i < mine.count && mine[i].index < theirs[j].index) {
                merged.append(mine[i]); i += 1
            } else if i == mine.count || theirs[j].index < mine[i].index {
                merged.append(theirs[j]); j += 1
            } else {
                merged.append(SparseRegister(index: mine[i].index, rank: max(mine[i].rank, theirs[j].rank)))
                i += 1; j += 1
            }
        }
        return merged
    }

    static func dense(from entries: [SparseRegister]) -> [UInt8] {
        var ranks = [UInt8](repeating: 0, count: registerCount)
        for entry in entries { ranks[Int(entry.index)] = entry.rank }
        return ranks
    }

    /// Redis's `hllPatLen`: the low 14 bits of the hash pick the register; the rank is the position
    /// of the first set bit in the rest (from 1), with a sentinel bit so it is at most `maxRank`.
    @inlinable
    public static func registerAndRank<Bytes: Collection>(of element: Bytes) -> (index: UInt16, rank: UInt8) where Bytes.Element == UInt8 {
        let hash = murmurHash64A(element, seed: 0xadc8_3b19)
        let index = UInt16(truncatingIfNeeded: hash & UInt64(registerCount - 1))
        let rest = (hash >> UInt64(precision)) | (1 << UInt64(64 - precision))
        return (index, UInt8(rest.trailingZeroBitCount + 1))
    }

    /// Ertl's sigma, as in Redis's `hllSigma`.
    static func sigma(_ x: Double) -> Double {
        if x == 1 { return .infinity }
        var x = x
        var y = 1.0
        var z = x
        var previous: Double
        repeat {
            x *= x
            previous = z
            z += x * y
            y += y
        } while previous != z
        return z
    }

    /// Ertl's tau, as in Redis's `hllTau`.
    static func tau(_ x: Double) -> Double {
        if x == 0 || x == 1 { return 0 }
        var x = x
        var y = 1.0
        var z = 1 - x
        var previous: Double
        repeat {
            x = x.squareRoot()
            previous = z
            y *= 0.5
            z -= (1 - x) * (1 - x) * y
        } while previous != z
        return z / 3
    }
}

/// MurmurHash64A (Austin Appleby, public domain), byte for byte as Redis uses it for HyperLogLog:
/// little-endian 8-byte blocks, the tail folded in from its last byte down.
@inlinable
public func murmurHash64A<Bytes: Collection>(_ bytes: Bytes, seed: UInt64) -> UInt64 where Bytes.Element == UInt8 {
    if let hash = bytes.withContiguousStorageIfAvailable({ murmurHash64A(buffer: $0, seed: seed) }) { return hash }
    return Array(bytes).withUnsafeBufferPointer { murmurHash64A(buffer: $0, seed: seed) }
}

@usableFromInline
func murmurHash64A(buffer data: UnsafeBufferPointer<UInt8>, seed: UInt64) -> UInt64 {
    let m: UInt64 = 0xc6a4_a793_5bd1_e995
    let r: UInt64 = 47
    var h = seed ^ (UInt64(data.count) &* m)
    let blockEnd = data.count - data.count % 8
    var offset = 0
    while offset < blockEnd {
        var k = UInt64(littleEndian: UnsafeRawBufferPointer(data).loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        k &*= m
        k ^= k >> r
        k &*= m
        h ^= k
        h &*= m
        offset += 8
    }
    let rest = data.count % 8
    if rest > 0 {
        for index in stride(from: rest - 1, through: 0, by: -1) { h ^= UInt64(data[blockEnd + index]) << (8 * UInt64(index)) }
        h &*= m
    }
    h ^= h >> r
    h &*= m
    h ^= h >> r
    return h
}
