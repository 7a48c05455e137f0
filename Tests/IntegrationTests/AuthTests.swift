import Foundation
import RESP
import RESPClient
import Testing

/// Client authentication on a real node: a password file for `default`, hashed users, a read-only user.
@Suite(.serialized) struct AuthTests {
    /// A node with `default` (password file), `app` (read-write) and `viewer` (read-only).
    func startNode() throws -> DaemonProcess {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("crdtd-auth-\(UUID().uuidString)").path
        try "letmein\nnext-password\n".write(toFile: base + ".password", atomically: true, encoding: .utf8)
        let appHash = try hashPassword("app-secret")
        let viewerHash = try hashPassword("viewer-secret")
        try """
            users:
              - name: app
                password_hash: "\(appHash)"
              - name: viewer
                password_hashes: ["\(viewerHash)"]
                read_only: true
            """.write(toFile: base + ".yaml", atomically: true, encoding: .utf8)
        let node = DaemonProcess(extraArguments: ["--insecure", "--config", base + ".yaml", "--client-password-file", base + ".password"])
        node.password = "letmein"
        try node.start()
        return node
    }

    /// `crdtd hash-password`, the way an operator makes a hash (few rounds: the test must be quick).
    func hashPassword(_ password: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
        process.arguments = ["hash-password", "--rounds", "10000"]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(password.utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0, text.hasPrefix("pbkdf2-sha256$10000$") else {
            throw TestFailure("hash-password failed (\(process.terminationStatus)): \(text)")
        }
        return text
    }

    func commandsProcessed(_ node: DaemonProcess) throws -> Int {
        switch try node.run("INFO", "stats") {
        case .bulkString(let bytes), .verbatimString(_, let bytes):
            return Self.field("total_commands_processed", in: String(decoding: bytes, as: UTF8.self))
        default:
            return -1
        }
    }

    static func field(_ name: String, in text: String) -> Int {
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix(name + ":") {
            return Int(line.dropFirst(name.count + 1)) ?? -1
        }
        return -1
    }

    @Test func withoutAPasswordNothingButAuthIsAnsweredAndTheEngineSeesNothing() throws {
        let node = try startNode()
        defer { #expect(node.stop() == 0) }
        _ = try node.run("SET", "k", "v")
        let before = try commandsProcessed(node)
        let anonymous = try node.connectAnonymously()
        #expect(try anonymous.send(["GET", "k"]) == .error("NOAUTH Authentication required."))
        #expect(try anonymous.send(["PING"]) == .error("NOAUTH Authentication required."))
        #expect(try anonymous.send(["HELLO", "3"]).errorText.hasPrefix("NOAUTH HELLO must be called with the client already authenticated"))
        // The shell answered all of it: the engine processed nothing for that client (INFO counts itself).
        #expect(try commandsProcessed(node) == before + 1)
        // Pipelined: the command after AUTH runs authenticated, the one before did not.
        let replies = try anonymous.send(many: [["GET", "k"], ["AUTH", "letmein"], ["GET", "k"]])
        #expect(replies == [.error("NOAUTH Authentication required."), .simpleString("OK"), .bulk("v")])
        // Every line of the password file is accepted (rotation).
        let second = try node.connectAnonymously()
        #expect(try second.send(["AUTH", "default", "next-password"]) == .simpleString("OK"))
        #expect(try second.send(["QUIT"]) == .simpleString("OK"))
    }

    @Test func wrongPasswordsAreRefusedCountedAndLoggedSparingly() throws {
        let node = try startNode()
        defer { #expect(node.stop() == 0) }
        let client = try node.connectAnonymously()
        for _ in 0..<5 {
            #expect(try client.send(["AUTH", "wrong"]) == .error("WRONGPASS invalid username-password pair or user is disabled."))
        }
        #expect(try client.send(["AUTH", "app", "wrong"]).errorText.hasPrefix("WRONGPASS"), "a hashed user, checked off the loop")
        #expect(try client.send(["AUTH", "nobody", "app-secret"]).errorText.hasPrefix("WRONGPASS"))
        #expect(try client.send(["GET", "k"]).errorText.hasPrefix("NOAUTH"), "still unauthenticated")
        // A hashed user, with requests pipelined behind its AUTH while the hash is checked.
        let replies = try client.send(many: [["AUTH", "app", "app-secret"], ["SET", "k", "v"], ["GET", "k"]])
        #expect(replies == [.simpleString("OK"), .simpleString("OK"), .bulk("v")])
        let metrics = try rawExchange(port: node.metricsPort, send: Array("GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".utf8))
        #expect(metrics.contains("crdtd_auth_failures_total 7"), "7 failures counted")
        let logged = node.log.components(separatedBy: "client authentication failed").count - 1
        #expect(logged == 1, "7 failures within 10 s log one line, got \(logged)")
    }

    @Test func aReadOnlyUserReadsButCannotWrite() throws {
        let node = try startNode()
        defer { #expect(node.stop() == 0) }
        _ = try node.run("SADD", "s", "a")
        let viewer = try node.connectAnonymously()
        #expect(try viewer.send(["AUTH", "viewer", "viewer-secret"]) == .simpleString("OK"))
        #expect(try viewer.send(["SMEMBERS", "s"]) == .array([.bulk("a")]))
        #expect(try viewer.send(["SADD", "s", "b"]) == .error("NOPERM this user has no permissions to run the 'sadd' command"))
        #expect(try viewer.send(["SHUTDOWN"]).errorText.hasPrefix("NOPERM"))
        #expect(try viewer.send(["SCARD", "s"]) == .integer(1), "nothing was written")
    }

    @Test func helloAuthAuthenticatesAndSwitchesProtocol() throws {
        let node = try startNode()
        defer { #expect(node.stop() == 0) }
        let client = try node.connectAnonymously()
        #expect(try client.send(["HELLO", "3", "AUTH", "app", "nope"]).errorText.hasPrefix("WRONGPASS"))
        guard case .map(let fields) = try client.send(["HELLO", "3", "AUTH", "app", "app-secret", "SETNAME", "tester"]) else {
            Issue.record("HELLO 3 answers a map")
            return
        }
        #expect(fields.contains { $0.key == .bulk("proto") && $0.value == .integer(3) })
        #expect(try client.send(["CLIENT", "GETNAME"]) == .bulk("tester"), "the rest of HELLO reached the engine")
        #expect(try client.send(["INCR", "c"]) == .integer(1))
    }
}
