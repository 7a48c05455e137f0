import Testing
@testable import Engine

@Suite struct GlobPatternTests {
    @Test(arguments: [
        ("*", "anything", true), ("h?llo", "hello", true), ("h?llo", "hllo", false),
        ("h*llo", "heeeello", true), ("h[ae]llo", "hallo", true), ("h[ae]llo", "hillo", false),
        ("h[^e]llo", "hallo", true), ("h[^e]llo", "hello", false), ("h[a-b]llo", "hbllo", true),
        ("h\\*llo", "h*llo", true), ("h\\*llo", "hello", false), ("user:*:name", "user:42:name", true),
        ("a*b*c", "axxbyyc", true), ("a*b*c", "axxbyy", false), ("", "", true), ("", "x", false),
    ])
    func matches(pattern: String, subject: String, expected: Bool) {
        #expect(GlobPattern(Array(pattern.utf8)).matches(Array(subject.utf8)) == expected)
    }

    @Test func pathologicalPatternsRunInPolynomialTime() {
        let pattern = Array(String(repeating: "a*", count: 30).utf8) + [UInt8(ascii: "b")]
        let subject = [UInt8](repeating: UInt8(ascii: "a"), count: 2000)
        #expect(!GlobPattern(pattern).matches(subject))
    }
}
