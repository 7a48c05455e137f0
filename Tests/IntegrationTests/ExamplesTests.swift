import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The worked examples in examples/ run against the crdtctl and crdtd of this build and print exactly the
/// output written at their end (scripts/check-examples compares them). About 15 s.
@Suite(.serialized) struct ExamplesTests {
    @Test func everyExamplePrintsItsExpectedOutput() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-examples-\(UUID().uuidString).out").path
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = Process()
        process.executableURL = root.appendingPathComponent("scripts/check-examples")
        var environment = ProcessInfo.processInfo.environment
        environment["CRDTD_BIN_DIR"] = binaries
        // Below the kernel's ephemeral ports (32768 up), away from the other suites' ranges.
        environment["CRDTD_EXAMPLE_BASE_PORT"] = String(Int.random(in: 20...31) * 1000 + 100)
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardError = process.standardOutput
        try process.run()
        let deadline = ContinuousClock.now + .seconds(240)
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "scripts/check-examples:\n\(printed)")
        let examples = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("examples").path)
            .filter { $0.hasSuffix(".sh") }
        #expect(examples.count >= 2)
        for example in examples {
            #expect(printed.contains("ok   examples/\(example)"), "\(example) ran and matched:\n\(printed)")
        }
    }
}
