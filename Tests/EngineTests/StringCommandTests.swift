import CRDT
import RESP
import Testing
@testable import Engine

/// `INCRBYFLOAT`, the bit commands and `LCS`, with the replies redis-server gives.
@Suite struct StringCommandTests {
    @Test func floatIncrementsRewriteTheRegister() throws {
        var h = try Harness()
        #expect(h.run("INCRBYFLOAT", "f", "1") == .bulk("1"))
        #expect(h.run("INCRBYFLOAT", "f", "1.5") == .bulk("2.5"))
        #expect(h.run("TYPE", "f") == .simpleString("string"))
        h.run("INCRBY", "c", "10")
        #expect(h.run("INCRBYFLOAT", "c", "0.5") == .bulk("10.5"), "a counter becomes a string holding its value")
        #expect(h.run("TYPE", "c") == .simpleString("string"))
        h.run("SET", "t", "abc")
        #expect(h.run("INCRBYFLOAT", "t", "1") == .error("ERR value is not a valid float"))
        #expect(h.run("INCRBYFLOAT", "t", "x") == .error("ERR value is not a valid float"))
    }

    @Test func bitsOfAString() throws {
        var h = try Harness()
        #expect(h.run("SETBIT", "b", "7", "1") == .integer(0))
        #expect(h.run("SETBIT", "b", "7", "0") == .integer(1))
        #expect(h.run("SETBIT", "b", "9", "1") == .integer(0))
        #expect(h.run("GET", "b") == .bulkString([0, 0x40]))
        #expect(h.run("GETBIT", "b", "9") == .integer(1))
        #expect(h.run("GETBIT", "b", "1000") == .integer(0))
        #expect(h.run("SETBIT", "b", "-1", "1") == .error("ERR bit offset is not an integer or out of range"))
        h.run("SET", "s", "foobar")
        #expect(h.run("BITCOUNT", "s") == .integer(26))
        #expect(h.run("BITCOUNT", "s", "1", "1") == .integer(6))
        #expect(h.run("BITCOUNT", "s", "5", "30", "BIT") == .integer(17))
        h.run("SET", "p", "\u{0}")
        h.run("SETRANGE", "p", "1", "\u{7f}")
        #expect(h.run("BITPOS", "p", "1") == .integer(9))
        #expect(h.run("BITPOS", "p", "0", "1") == .integer(8))
        #expect(h.run("BITPOS", "missing", "0") == .integer(0))
        h.run("SET", "x", "\u{0f}")
        h.run("SET", "y", "\u{3c}\u{01}")
        #expect(h.run("BITOP", "AND", "d", "x", "y") == .integer(2))
        #expect(h.run("GET", "d") == .bulkString([0x0c, 0]))
        #expect(h.run("BITOP", "NOT", "d", "x") == .integer(1))
        #expect(h.run("GET", "d") == .bulkString([0xf0]))
        #expect(h.run("BITOP", "NOT", "d", "x", "y") == .error("ERR BITOP NOT must be called with a single source key."))
    }

    @Test func bitFieldsWithOverflow() throws {
        var h = try Harness()
        #expect(h.run("BITFIELD", "f", "SET", "u8", "8", "255", "GET", "u4", "12", "GET", "i8", "8")
                == .array([.integer(0), .integer(15), .integer(-1)]))
        #expect(h.run("BITFIELD", "f", "INCRBY", "u8", "8", "1") == .array([.integer(0)]), "WRAP is the default")
        #expect(h.run("BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "i8", "#1", "-200") == .array([.integer(-128)]))
        #expect(h.run("BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "i8", "8", "-1") == .array([.null]))
        #expect(h.run("BITFIELD_RO", "f", "GET", "u16", "0") == .array([.integer(128)]))
        #expect(h.run("BITFIELD_RO", "f", "SET", "u8", "0", "1") == .error("ERR BITFIELD_RO only supports the GET subcommand"))
        #expect(h.run("BITFIELD", "f", "GET", "u64", "0") != .array([]), "u64 is refused, as in Redis")
    }

    @Test func longestCommonSubsequence() throws {
        var h = try Harness()
        h.run("MSET", "a", "ohmytext", "b", "mynewtext")
        #expect(h.run("LCS", "a", "b") == .bulk("mytext"))
        #expect(h.run("LCS", "a", "b", "LEN") == .integer(6))
        let range = { (x: Int64, y: Int64) in RESPReply.array([.integer(x), .integer(y)]) }
        #expect(h.run("LCS", "a", "b", "IDX", "MINMATCHLEN", "3", "WITHMATCHLEN")
                == .array([.bulk("matches"), .array([.array([range(4, 7), range(5, 8), .integer(4)])]), .bulk("len"), .integer(6)]),
                "a map, flattened in RESP2")
        #expect(h.run("LCS", "a", "b", "LEN", "IDX") == .error("ERR If you want both the length and indexes, please just use IDX."))
    }

    @Test func extremeRangesAnswerInsteadOfTrapping() throws {
        var h = try Harness()
        h.run("SET", "s", "foobar")
        #expect(h.run("BITCOUNT", "s", "-9223372036854775808", "9223372036854775807") == .integer(26))
        #expect(h.run("BITPOS", "s", "1", "-9223372036854775808", "9223372036854775807", "BIT") == .integer(1))
        h.run("RPUSH", "l", "3", "1", "2")
        #expect(h.run("SORT", "l", "LIMIT", "1", "9223372036854775807") == .array([.bulk("2"), .bulk("3")]))
        #expect(h.run("LRANGE", "l", "-9223372036854775808", "9223372036854775807") == .array([.bulk("3"), .bulk("1"), .bulk("2")]))
        #expect(h.run("LINDEX", "l", "-9223372036854775808") == .null)
    }
}
