import Testing
@testable import RESP

/// A small, fast, seedable generator so randomised tests can be replayed from the printed seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Parses everything in `input` fed in one chunk, returning all requests.
func parseRequests(_ input: [UInt8], limits: RESPLimits = .default) throws(RESPError) -> [[[UInt8]]] {
    var parser = RESPRequestParser(limits: limits)
    try parser.append(input)
    var requests: [[[UInt8]]] = []
    while let request = try parser.next() { requests.append(request) }
    return requests
}

/// The error `body` throws, or nil if it throws none.
func respError(_ body: () throws -> Void) -> RESPError? {
    do {
        try body()
        return nil
    } catch let error as RESPError {
        return error
    } catch {
        Issue.record("expected a RESPError, got \(error)")
        return nil
    }
}

func strings(_ request: [[UInt8]]) -> [String] { request.map { String(decoding: $0, as: UTF8.self) } }
