import TestSupport
import Testing
@testable import RESP

@Suite struct RequestParserTests {
    @Test func parsesMultibulkRequest() throws {
        let requests = try parseRequests(bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"))
        #expect(requests.map(strings) == [["SET", "k", "value"]])
    }

    @Test func bulkStringsAreBinarySafe() throws {
        let payload: [UInt8] = [0, 13, 10, 255, 36, 42]
        var input = bytes("*2\r\n$4\r\nECHO\r\n$6\r\n")
        input += payload + [13, 10]
        let requests = try parseRequests(input)
        #expect(requests == [[bytes("ECHO"), payload]])
    }

    @Test func emptyBulkStringIsAnArgument() throws {
        #expect(try parseRequests(bytes("*2\r\n$3\r\nGET\r\n$0\r\n\r\n")) == [[bytes("GET"), []]])
    }

    @Test func parsesInlineCommandsLikeRedisCli() throws {
        let requests = try parseRequests(bytes("PING\r\nSET  k   v\nECHO \"a b\\n\\x41\" 'it\\'s'\r\n"))
        #expect(requests.map(strings) == [["PING"], ["SET", "k", "v"], ["ECHO", "a b\nA", "it's"]])
    }

    @Test func skipsEmptyInlineLinesAndEmptyArrays() throws {
        let requests = try parseRequests(bytes("\r\n   \r\n*0\r\n*-1\r\nPING\r\n"))
        #expect(requests.map(strings) == [["PING"]])
    }

    @Test func needsMoreBytesReturnsNil() throws {
        var parser = RESPRequestParser()
        try parser.append(bytes("*2\r\n$4\r\nECHO\r\n$5\r\nhel"))
        #expect(try parser.next() == nil)
        #expect(try parser.next() == nil)
        try parser.append(bytes("lo\r\n"))
        #expect(try parser.next().map(strings) == ["ECHO", "hello"])
        #expect(try parser.next() == nil)
        #expect(parser.bufferedByteCount == 0)
    }

    static let splitSample = bytes(
        "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\nab\r\ncd\r\nef\r\n" + "PING\r\n" + "ECHO \"x y\"\n"
            + "*1\r\n$4\r\nPING\r\n" + "*0\r\n" + "*2\r\n$3\r\nGET\r\n$0\r\n\r\n")
    static let splitExpected: [[String]] = [["SET", "key", "ab\r\ncd\r\nef"], ["PING"], ["ECHO", "x y"], ["PING"], ["GET", ""]]

    @Test func everySplitPointGivesTheSameRequests() throws {
        let input = Self.splitSample
        for split in 0...input.count {
            var parser = RESPRequestParser()
            var requests: [[String]] = []
            try parser.append(input[..<split])
            while let request = try parser.next() { requests.append(strings(request)) }
            try parser.append(input[split...])
            while let request = try parser.next() { requests.append(strings(request)) }
            #expect(requests == Self.splitExpected, "split at \(split)")
        }
    }

    @Test func byteByByteGivesTheSameRequests() throws {
        var parser = RESPRequestParser()
        var requests: [[String]] = []
        for byte in Self.splitSample {
            try parser.append(CollectionOfOne(byte))
            while let request = try parser.next() { requests.append(strings(request)) }
        }
        #expect(requests == Self.splitExpected)
    }

    @Test func randomChunkingGivesTheSameRequests() throws {
        let seed: UInt64 = 0x5EED_0001
        var random = SplitMix64(seed: seed)
        var input: [UInt8] = []
        for _ in 0..<50 { input += Self.splitSample }
        let expected = Array(repeating: Self.splitExpected, count: 50).flatMap { $0 }
        for round in 0..<20 {
            var parser = RESPRequestParser()
            var requests: [[String]] = []
            var index = 0
            while index < input.count {
                let size = Int.random(in: 1...40, using: &random)
                let end = min(input.count, index + size)
                try parser.append(input[index..<end])
                index = end
                while let request = try parser.next() { requests.append(strings(request)) }
            }
            #expect(requests == expected, "seed \(seed) round \(round)")
        }
    }

    @Test func manyPipelinedRequestsInOneChunk() throws {
        var input: [UInt8] = []
        for i in 0..<100_000 { RESPRequestEncoder.encode(["INCR", "k\(i % 7)"], into: &input) }
        var parser = RESPRequestParser()
        try parser.append(input)
        var count = 0
        while let request = try parser.next() {
            #expect(request.count == 2)
            count += 1
        }
        #expect(count == 100_000)
        #expect(parser.bufferedByteCount == 0)
    }

    @Test func largeBulkArrivingInSmallChunks() throws {
        let payload = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var input: [UInt8] = []
        RESPRequestEncoder.encode([bytes("SET"), bytes("big"), payload], into: &input)
        var parser = RESPRequestParser()
        var result: [[UInt8]]?
        var index = 0
        while index < input.count {
            let end = min(input.count, index + 16 << 10)
            try parser.append(input[index..<end])
            index = end
            if let request = try parser.next() { result = request }
        }
        #expect(result?[2] == payload)
    }

    // MARK: - Errors, each with Redis' wording where Redis has one

    func expectError(_ input: String, _ code: RESPError.Code, _ message: String? = nil,
                     limits: RESPLimits = .default, sourceLocation: SourceLocation = #_sourceLocation) {
        let error = respError { _ = try parseRequests(bytes(input), limits: limits) }
        #expect(error?.code == code, "\(input.debugDescription)", sourceLocation: sourceLocation)
        if let message {
            #expect(error?.errorReplyMessage == message, sourceLocation: sourceLocation)
        }
    }

    @Test func invalidMultibulkLength() {
        expectError("*x\r\n", .invalidMultibulkLength, "ERR Protocol error: invalid multibulk length")
        expectError("*01\r\n", .invalidMultibulkLength)
        expectError("*+1\r\n", .invalidMultibulkLength)
        expectError("*\r\n", .invalidMultibulkLength)
        expectError("*99999999999\r\n", .invalidMultibulkLength)
        expectError("*99999999999999999999\r\n", .invalidMultibulkLength)
    }

    @Test func invalidBulkLength() {
        expectError("*1\r\n$x\r\n", .invalidBulkLength, "ERR Protocol error: invalid bulk length")
        expectError("*1\r\n$-1\r\n", .invalidBulkLength)
        expectError("*1\r\n$\r\n", .invalidBulkLength)
        expectError("*1\r\n$17\r\n", .invalidBulkLength, limits: RESPLimits(maxBulkLength: 16))
    }

    @Test func expectedDollar() {
        expectError("*1\r\n:1\r\n", .expectedDollar, "ERR Protocol error: expected '$', got ':'")
        expectError("*2\r\n$1\r\na\r\n+b\r\n", .expectedDollar, "ERR Protocol error: expected '$', got '+'")
    }

    @Test func missingCRLFAfterBulk() {
        expectError("*1\r\n$1\r\nabc\r\n", .expectedCRLF)
    }

    @Test func headerWithoutLineEnd() {
        expectError("*" + String(repeating: "1", count: 40), .multibulkCountTooLong,
                    "ERR Protocol error: too big mbulk count string")
        expectError("*1\r\n$" + String(repeating: "1", count: 40), .bulkCountTooLong,
                    "ERR Protocol error: too big bulk count string")
    }

    @Test func inlineTooLong() throws {
        let limits = RESPLimits(maxInlineLength: 100)
        expectError(String(repeating: "a", count: 101), .inlineTooLong, "ERR Protocol error: too big inline request", limits: limits)
        expectError(String(repeating: "a", count: 150) + "\r\n", .inlineTooLong, limits: limits)
        #expect(try parseRequests(bytes(String(repeating: "a", count: 100) + "\n"), limits: limits).count == 1)
    }

    @Test func unbalancedQuotes() {
        expectError("SET \"abc\r\n", .unbalancedQuotes, "ERR Protocol error: unbalanced quotes in request")
        expectError("SET 'abc\r\n", .unbalancedQuotes)
        expectError("SET \"a\"b\r\n", .unbalancedQuotes)
        expectError("SET 'a'b\r\n", .unbalancedQuotes)
    }

    @Test func tooManyArguments() {
        expectError("*5\r\n", .tooManyArguments, limits: RESPLimits(maxArguments: 4))
        expectError("*1048577\r\n", .tooManyArguments)
    }

    @Test func requestTooLarge() throws {
        let limits = RESPLimits(maxRequestBytes: 30)  // exactly the first request: 4 + 4 + 5 + 5 + 12
        #expect(try parseRequests(bytes("*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n"), limits: limits).count == 1)
        expectError("*2\r\n$3\r\nGET\r\n$11\r\n01234567890\r\n", .requestTooLarge, limits: limits)
    }

    @Test func declaredLengthsAreCheckedBeforeTheirBytesArrive() throws {
        // A header alone must fail: no waiting for (or allocating) the 1 GiB it announces.
        var parser = RESPRequestParser()
        try parser.append(bytes("*1\r\n$1073741824\r\n"))
        #expect(respError { _ = try parser.next() }?.code == .invalidBulkLength)
    }

    @Test func bufferLimit() throws {
        var parser = RESPRequestParser(limits: RESPLimits(maxBufferedBytes: 10))
        try parser.append(bytes("*1\r\n$5\r\n"))
        #expect(respError { try parser.append(bytes("abc")) }?.code == .bufferLimitExceeded)
        #expect(parser.bufferedByteCount == 8)
        try parser.append(bytes("ab"))
        #expect(parser.bufferedByteCount == 10)
    }

    @Test func consumedBytesAreReleasedFromTheBuffer() throws {
        var parser = RESPRequestParser(limits: RESPLimits(maxBufferedBytes: 100))
        // Far more than maxBufferedBytes in total flows through, as long as it is consumed.
        for _ in 0..<10_000 {
            try parser.append(bytes("*1\r\n$4\r\nPING\r\nPING\r\n"))
            #expect(try parser.next() != nil)
            #expect(try parser.next() != nil)
        }
        #expect(parser.bufferedByteCount == 0)
    }
}

@Suite struct InlineSplitTests {
    func split(_ line: String) throws(RESPError) -> [String] {
        try splitInlineArguments(ArraySlice(bytes(line))).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func matchesSdssplitargs() throws {
        #expect(try split("") == [])
        #expect(try split("  \t ") == [])
        #expect(try split("a b\tc") == ["a", "b", "c"])
        #expect(try split("\"\"") == [""])
        #expect(try split("\"\\t\\r\\b\\a\\\\\\\"\\q\"") == ["\t\r\u{8}\u{7}\\\"q"])
        #expect(try split("\"\\x4a\\x4B\\xzz\"") == ["JKxzz"])
        #expect(try split("'a\\nb'") == ["a\\nb"])
        #expect(try split("ab\"cd\"") == ["abcd"])
        #expect(try split("a\u{0}b c") == ["a"])
    }
}
