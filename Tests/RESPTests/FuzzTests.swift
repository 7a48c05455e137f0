#if canImport(Glibc)
import TestSupport
import Glibc
#endif
import Testing
@testable import RESP

/// Random and mutated inputs: no input may crash a parser, make it buffer past its limit, or make it
/// return more bytes than it was given. Replay a failure with the printed seed and input index.
@Suite struct FuzzTests {
    static let limits = RESPLimits(
        maxBulkLength: 64, maxRequestBytes: 256, maxArguments: 16, maxInlineLength: 128,
        maxBufferedBytes: 512, maxNestingDepth: 8)
    static let alphabet: [UInt8] = Array("*$+-:_,#(!=%~>|0123456789\r\n \"'\\xtf-".utf8) + [0, 255]

    static func validRequest(_ random: inout SplitMix64) -> [UInt8] {
        var wire: [UInt8] = []
        if Bool.random(using: &random) {
            let arguments = (0..<Int.random(in: 1...4, using: &random)).map { _ in
                (0..<Int.random(in: 0...8, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
            RESPRequestEncoder.encode(arguments, into: &wire)
        } else {
            wire = Array("SET \"k\\x41\" 'v w' x\r\n".utf8)
        }
        return wire
    }

    static func randomReply(_ random: inout SplitMix64, depth: Int = 0) -> RESPReply {
        let leaf = depth >= 3 || Int.random(in: 0..<3, using: &random) > 0
        if leaf {
            switch Int.random(in: 0..<9, using: &random) {
            case 0: return .simpleString("OK")
            case 1: return .error("ERR x")
            case 2: return .integer(Int64.random(in: -1000...1000, using: &random))
            case 3: return .bulkString((0..<Int.random(in: 0...10, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
            case 4: return .null
            case 5: return .double(Double(Int.random(in: -100...100, using: &random)) / 4)
            case 6: return .boolean(Bool.random(using: &random))
            case 7: return .bigNumber(String(Int.random(in: -1_000_000...1_000_000, using: &random)))
            default: return .verbatimString(format: "txt", text: Array("hello".utf8))
            }
        }
        let elements = (0..<Int.random(in: 0...3, using: &random)).map { _ in randomReply(&random, depth: depth + 1) }
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return .array(elements)
        case 1: return .set(elements)
        case 2: return .push(elements)
        default: return .map(elements.map { .init(key: $0, value: .integer(1)) })
        }
    }

    static func mutate(_ input: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            switch Int.random(in: 0..<4, using: &random) {
            case 0 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = alphabet.randomElement(using: &random)!
            case 1:
                bytes.insert(alphabet.randomElement(using: &random)!, at: Int.random(in: 0...bytes.count, using: &random))
            case 2 where !bytes.isEmpty:
                bytes.remove(at: Int.random(in: 0..<bytes.count, using: &random))
            default:
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
            }
        }
        return bytes
    }

    static func randomBytes(_ random: inout SplitMix64) -> [UInt8] {
        (0..<Int.random(in: 0...48, using: &random)).map { _ in
            Int.random(in: 0..<4, using: &random) == 0 ? UInt8.random(in: 0...255, using: &random) : alphabet.randomElement(using: &random)!
        }
    }

    /// Feeds `input` in random chunks to `feed`, which returns false once the parser has thrown.
    static func inChunks(_ input: [UInt8], _ random: inout SplitMix64, _ feed: (ArraySlice<UInt8>) -> Bool) {
        var index = 0
        while index < input.count {
            let end = min(input.count, index + Int.random(in: 1...24, using: &random))
            guard feed(input[index..<end]) else { return }
            index = end
        }
    }

    /// Resident set size from /proc/self/statm (second field, in pages); 0 where unavailable.
    static func residentBytes() -> Int {
        #if canImport(Glibc)
        let fd = open("/proc/self/statm", O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return 0 }
        let fields = buffer[..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return 0
        #endif
    }

    @Test func requestParserSurvivesOneMillionInputs() {
        let seed: UInt64 = 0xF0_22_01
        var random = SplitMix64(seed: seed)
        let residentBefore = Self.residentBytes()
        var outcomes = (requests: 0, errors: 0)
        for case_ in 0..<1_000_000 {
            let input: [UInt8] = switch case_ % 3 {
            case 0: Self.randomBytes(&random)
            case 1: Self.mutate(Self.validRequest(&random) + Self.validRequest(&random), &random)
            default: Self.validRequest(&random)
            }
            var parser = RESPRequestParser(limits: Self.limits)
            var returnedBytes = 0
            var failed = false
            Self.inChunks(input, &random) { chunk in
                do {
                    try parser.append(chunk)
                    while let request = try parser.next() {
                        outcomes.requests += 1
                        #expect(!request.isEmpty && request.count <= Self.limits.maxArguments, "seed \(seed) case \(case_)")
                        returnedBytes += request.reduce(0) { $0 + $1.count }
                    }
                } catch {
                    outcomes.errors += 1
                    failed = true
                    return false
                }
                if parser.bufferedByteCount > Self.limits.maxBufferedBytes {
                    Issue.record("seed \(seed) case \(case_): \(parser.bufferedByteCount) bytes buffered")
                }
                return true
            }
            if returnedBytes > input.count {
                Issue.record("seed \(seed) case \(case_): returned \(returnedBytes) bytes from \(input.count)")
            }
            if case_ % 3 == 2, failed {
                Issue.record("seed \(seed) case \(case_): a valid request was refused")
            }
        }
        // Both outcomes must be common, or the generator is not exercising the parser.
        #expect(outcomes.requests > 300_000 && outcomes.errors > 100_000, "seed \(seed): \(outcomes)")
        let growth = Self.residentBytes() - residentBefore
        #expect(growth < 64 << 20, "seed \(seed): resident memory grew by \(growth) bytes")
    }

    @Test func replyParserSurvivesOneMillionInputs() {
        let seed: UInt64 = 0xF0_22_02
        var random = SplitMix64(seed: seed)
        let residentBefore = Self.residentBytes()
        var outcomes = (replies: 0, errors: 0)
        for case_ in 0..<1_000_000 {
            let original = Self.randomReply(&random)
            let valid = original.encoded(protocol: Bool.random(using: &random) ? .resp3 : .resp2)
            let input: [UInt8] = switch case_ % 3 {
            case 0: Self.randomBytes(&random)
            case 1: Self.mutate(valid, &random)
            default: valid
            }
            var parser = RESPReplyParser(limits: Self.limits)
            var replies: [RESPReply] = []
            Self.inChunks(input, &random) { chunk in
                do {
                    try parser.append(chunk)
                    while let reply = try parser.next() {
                        outcomes.replies += 1
                        replies.append(reply)
                    }
                } catch {
                    outcomes.errors += 1
                    return false
                }
                if parser.bufferedByteCount > Self.limits.maxBufferedBytes {
                    Issue.record("seed \(seed) case \(case_): \(parser.bufferedByteCount) bytes buffered")
                }
                return true
            }
            if case_ % 3 == 2 {
                // An unmutated reply must round-trip (RESP2 downgrades shapes, so compare re-encodings).
                let reencoded = replies.first?.encoded(protocol: .resp2)
                if replies.count != 1 || reencoded != original.encoded(protocol: .resp2) {
                    Issue.record("seed \(seed) case \(case_): \(original) parsed as \(replies)")
                }
            }
        }
        #expect(outcomes.replies > 300_000 && outcomes.errors > 100_000, "seed \(seed): \(outcomes)")
        let growth = Self.residentBytes() - residentBefore
        #expect(growth < 64 << 20, "seed \(seed): resident memory grew by \(growth) bytes")
    }
}
