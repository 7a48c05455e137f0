import Testing
@testable import RESP
import TestSupport


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
