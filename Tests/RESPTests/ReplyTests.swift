import Testing
@testable import RESP

@Suite struct ReplyEncoderTests {
    func wire(_ reply: RESPReply, _ version: RESPVersion) -> String {
        String(decoding: reply.encoded(protocol: version), as: UTF8.self)
    }

    @Test func shapesCommonToBothProtocols() {
        for version in [RESPVersion.resp2, .resp3] {
            #expect(wire(.ok, version) == "+OK\r\n")
            #expect(wire(.error("ERR unknown command"), version) == "-ERR unknown command\r\n")
            #expect(wire(.integer(0), version) == ":0\r\n")
            #expect(wire(.integer(-42), version) == ":-42\r\n")
            #expect(wire(.integer(.min), version) == ":-9223372036854775808\r\n")
            #expect(wire(.integer(.max), version) == ":9223372036854775807\r\n")
            #expect(wire(.bulkString("hi"), version) == "$2\r\nhi\r\n")
            #expect(wire(.bulkString([]), version) == "$0\r\n\r\n")
            #expect(wire(.array([.integer(1), .bulkString("a")]), version) == "*2\r\n:1\r\n$1\r\na\r\n")
            #expect(wire(.array([]), version) == "*0\r\n")
        }
    }

    @Test func lineEndsInsideSimpleRepliesBecomeSpaces() {
        #expect(wire(.error("ERR bad\r\nthing"), .resp2) == "-ERR bad  thing\r\n")
        #expect(wire(.simpleString("a\nb"), .resp3) == "+a b\r\n")
    }

    @Test func resp3Shapes() {
        #expect(wire(.null, .resp3) == "_\r\n")
        #expect(wire(.nullArray, .resp3) == "_\r\n")
        #expect(wire(.map([.init(key: .bulkString("a"), value: .integer(1))]), .resp3) == "%1\r\n$1\r\na\r\n:1\r\n")
        #expect(wire(.set([.bulkString("x")]), .resp3) == "~1\r\n$1\r\nx\r\n")
        #expect(wire(.push([.bulkString("x")]), .resp3) == ">1\r\n$1\r\nx\r\n")
        #expect(wire(.double(1.5), .resp3) == ",1.5\r\n")
        #expect(wire(.double(3), .resp3) == ",3\r\n")
        #expect(wire(.double(.infinity), .resp3) == ",inf\r\n")
        #expect(wire(.double(-.infinity), .resp3) == ",-inf\r\n")
        #expect(wire(.double(.nan), .resp3) == ",nan\r\n")
        #expect(wire(.boolean(true), .resp3) == "#t\r\n")
        #expect(wire(.boolean(false), .resp3) == "#f\r\n")
        #expect(wire(.bigNumber("12345678901234567890"), .resp3) == "(12345678901234567890\r\n")
        #expect(wire(.verbatimString(format: "txt", text: bytes("Some string")), .resp3) == "=15\r\ntxt:Some string\r\n")
    }

    @Test func resp2DowngradesLikeRedis() {
        #expect(wire(.null, .resp2) == "$-1\r\n")
        #expect(wire(.nullArray, .resp2) == "*-1\r\n")
        #expect(wire(.map([.init(key: .bulkString("a"), value: .integer(1)),
                           .init(key: .bulkString("b"), value: .null)]), .resp2)
                == "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n")
        #expect(wire(.set([.bulkString("x")]), .resp2) == "*1\r\n$1\r\nx\r\n")
        #expect(wire(.push([.bulkString("x")]), .resp2) == "*1\r\n$1\r\nx\r\n")
        #expect(wire(.double(1.5), .resp2) == "$3\r\n1.5\r\n")
        #expect(wire(.double(-.infinity), .resp2) == "$4\r\n-inf\r\n")
        #expect(wire(.boolean(true), .resp2) == ":1\r\n")
        #expect(wire(.boolean(false), .resp2) == ":0\r\n")
        #expect(wire(.bigNumber("-123"), .resp2) == "$4\r\n-123\r\n")
        #expect(wire(.verbatimString(format: "txt", text: bytes("hi")), .resp2) == "$2\r\nhi\r\n")
        // Downgrading applies inside aggregates too.
        #expect(wire(.array([.set([.boolean(true)])]), .resp2) == "*1\r\n*1\r\n:1\r\n")
    }

    @Test func requestEncoderRoundTripsThroughTheRequestParser() throws {
        var wire: [UInt8] = []
        let request: [[UInt8]] = [bytes("HSET"), [0, 1, 2, 13, 10], []]
        RESPRequestEncoder.encode(request, into: &wire)
        #expect(try parseRequests(wire) == [request])
    }
}

@Suite struct ReplyParserTests {
    // No .nullArray: RESP3 has a single null, so it comes back as .null.
    static let samples: [RESPReply] = [
        .ok, .error("WRONGTYPE Operation against a key holding the wrong kind of value"),
        .integer(0), .integer(-7), .integer(.max), .bulkString([0, 13, 10, 255]), .bulkString([]),
        .null, .array([]), .array([.integer(1), .array([.bulkString("nested")])]),
        .map([.init(key: .bulkString("k"), value: .set([.bulkString("m")]))]),
        .set([.integer(3)]), .push([.bulkString("message")]), .double(2.25), .double(-.infinity),
        .boolean(true), .boolean(false), .bigNumber("-123456789012345678901234567890"),
        .verbatimString(format: "mkd", text: bytes("# title\r\n")),
    ]

    func parseAll(_ input: [UInt8], limits: RESPLimits = .default) throws -> [RESPReply] {
        var parser = RESPReplyParser(limits: limits)
        try parser.append(input)
        var replies: [RESPReply] = []
        while let reply = try parser.next() { replies.append(reply) }
        #expect(parser.bufferedByteCount == 0)
        return replies
    }

    @Test func resp3RoundTripsEveryShape() throws {
        var wire: [UInt8] = []
        for reply in Self.samples { reply.encode(protocol: .resp3, into: &wire) }
        #expect(try parseAll(wire) == Self.samples)
    }

    @Test func resp2RoundTripsItsShapes() throws {
        let replies: [RESPReply] = [.ok, .error("ERR x"), .integer(5), .bulkString("v"), .null, .nullArray,
                                    .array([.bulkString("a"), .null])]
        var wire: [UInt8] = []
        for reply in replies { reply.encode(protocol: .resp2, into: &wire) }
        #expect(try parseAll(wire) == replies)
    }

    @Test func everySplitPointGivesTheSameReplies() throws {
        var wire: [UInt8] = []
        for reply in Self.samples { reply.encode(protocol: .resp3, into: &wire) }
        for split in 0...wire.count {
            var parser = RESPReplyParser()
            var replies: [RESPReply] = []
            try parser.append(wire[..<split])
            while let reply = try parser.next() { replies.append(reply) }
            try parser.append(wire[split...])
            while let reply = try parser.next() { replies.append(reply) }
            #expect(replies == Self.samples, "split at \(split)")
        }
    }

    @Test func byteByByte() throws {
        var wire: [UInt8] = []
        for reply in Self.samples { reply.encode(protocol: .resp3, into: &wire) }
        var parser = RESPReplyParser()
        var replies: [RESPReply] = []
        for byte in wire {
            try parser.append(CollectionOfOne(byte))
            while let reply = try parser.next() { replies.append(reply) }
        }
        #expect(replies == Self.samples)
    }

    @Test func blobErrorAndAttributes() throws {
        let replies = try parseAll(bytes("!21\r\nSYNTAX invalid syntax\r\n|1\r\n+ttl\r\n:3\r\n:42\r\n"))
        #expect(replies == [.error("SYNTAX invalid syntax"), .integer(42)])
    }

    @Test func integerMayHaveAPlusSign() throws {
        #expect(try parseAll(bytes(":+5\r\n")) == [.integer(5)])
    }

    func expectError(_ input: String, _ code: RESPError.Code, limits: RESPLimits = .default,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        let error = respError { _ = try parseAll(bytes(input), limits: limits) }
        #expect(error?.code == code, "\(input.debugDescription)", sourceLocation: sourceLocation)
    }

    @Test func errors() {
        expectError("?x\r\n", .invalidReplyType)
        expectError(":1.5\r\n", .invalidInteger)
        expectError(":99999999999999999999\r\n", .invalidInteger)
        expectError(",one\r\n", .invalidDouble)
        expectError("#x\r\n", .invalidBoolean)
        expectError("(12a\r\n", .invalidBigNumber)
        expectError("_x\r\n", .invalidNull)
        expectError("=2\r\nab\r\n", .invalidVerbatimString)
        expectError("$-2\r\n", .invalidBulkLength)
        expectError("$17\r\n", .invalidBulkLength, limits: RESPLimits(maxBulkLength: 16))
        expectError("!-1\r\n", .invalidBulkLength)
        expectError("$1\r\nab\r\n", .expectedCRLF)
        expectError("+OK\n", .expectedCRLF)
        expectError("*x\r\n", .invalidMultibulkLength)
        expectError("~-1\r\n", .invalidMultibulkLength)
        expectError("*5\r\n", .tooManyArguments, limits: RESPLimits(maxArguments: 4))
        expectError("%3\r\n", .tooManyArguments, limits: RESPLimits(maxArguments: 4))
        expectError(String(repeating: "*1\r\n", count: 33) + ":1\r\n", .nestingTooDeep)
        expectError("+" + String(repeating: "a", count: 200), .lineTooLong, limits: RESPLimits(maxInlineLength: 100))
    }

    @Test func nestingAtTheLimitIsAccepted() throws {
        let input = String(repeating: "*1\r\n", count: 32) + ":1\r\n"
        var expected = RESPReply.integer(1)
        for _ in 0..<32 { expected = .array([expected]) }
        #expect(try parseAll(bytes(input)) == [expected])
    }

    @Test func bufferLimit() throws {
        var parser = RESPReplyParser(limits: RESPLimits(maxBufferedBytes: 8))
        try parser.append(bytes("$10\r\n"))
        #expect(respError { try parser.append(bytes("0123")) }?.code == .bufferLimitExceeded)
    }

    @Test func largeBulkInSmallChunks() throws {
        let payload = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let wire = RESPReply.array([.bulkString(payload), .integer(1)]).encoded(protocol: .resp2)
        var parser = RESPReplyParser()
        var result: RESPReply?
        var index = 0
        while index < wire.count {
            let end = min(wire.count, index + 8 << 10)
            try parser.append(wire[index..<end])
            index = end
            if let reply = try parser.next() { result = reply }
        }
        #expect(result == .array([.bulkString(payload), .integer(1)]))
    }
}
