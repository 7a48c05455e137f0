@testable import Daemon
import Foundation
import Engine
import Testing

@Suite struct PasswordHashTests {
    @Test func aHashMatchesItsPasswordOnlyAndSurvivesItsTextForm() throws {
        let hash = PasswordHash(hashing: Array("correct horse".utf8), rounds: PasswordHash.minimumRounds)
        let parsed = try PasswordHash(parsing: hash.description)
        #expect(parsed == hash)
        #expect(parsed.matches(Array("correct horse".utf8)))
        #expect(!parsed.matches(Array("correct horse ".utf8)))
        #expect(!parsed.matches([]))
        #expect(hash.description.hasPrefix("pbkdf2-sha256$10000$"))
        let again = PasswordHash(hashing: Array("correct horse".utf8), rounds: PasswordHash.minimumRounds)
        #expect(again.salt != hash.salt, "every hash has its own salt")
    }

    @Test(arguments: [
        ("sha256$abc", "expected pbkdf2-sha256$ROUNDS$SALT$HASH"),
        ("pbkdf2-sha256$10$c2FsdHNhbHQ=$AAAA", "ROUNDS must be a number from 10000"),
        ("pbkdf2-sha256$20000$!!$AAAA", "SALT must be base64"),
        ("pbkdf2-sha256$20000$c2FsdHNhbHQ=$AAAA", "HASH must be base64 of 32 bytes"),
    ])
    func malformedHashesAreRefusedWithTheReason(text: String, message: String) {
        do {
            _ = try PasswordHash(parsing: text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(message), "\(error)")
            #expect(error.description.contains("crdtd hash-password"))
        }
    }

    @Test func constantTimeComparisonComparesEveryByte() {
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([9, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2], [1, 2, 3]))
    }
}

@Suite struct ClientAuthenticationTests {
    let hash = PasswordHash(hashing: Array("s3cret".utf8), rounds: PasswordHash.minimumRounds)

    @Test func usersPasswordFileReadOnlyAndUnknownNames() {
        let auth = ClientAuthentication(
            users: [ClientUser(name: "app", passwordHashes: [hash]),
                    ClientUser(name: "viewer", passwordHashes: [hash], readOnly: true)],
            defaultPasswords: [Array("old".utf8), Array("new".utf8)])
        #expect(auth.isRequired)
        #expect(auth.quickCheck(user: "default", password: Array("new".utf8)) == .accepted(readOnly: false))
        #expect(auth.quickCheck(user: "default", password: Array("old".utf8)) == .accepted(readOnly: false), "both lines during a rotation")
        #expect(auth.quickCheck(user: "default", password: Array("ne".utf8)) == .rejected)
        #expect(auth.quickCheck(user: "app", password: Array("s3cret".utf8)) == nil, "the first check of a hashed user is stretched")
        #expect(auth.check(user: "app", password: Array("s3cret".utf8)) == .accepted(readOnly: false))
        #expect(auth.quickCheck(user: "app", password: Array("s3cret".utf8)) == .accepted(readOnly: false), "then remembered")
        #expect(auth.quickCheck(user: "app", password: Array("wrong".utf8)) == nil, "failures are not remembered")
        #expect(auth.check(user: "app", password: Array("wrong".utf8)) == .rejected)
        #expect(auth.check(user: "viewer", password: Array("s3cret".utf8)) == .accepted(readOnly: true))
        #expect(auth.check(user: "nobody", password: Array("s3cret".utf8)) == .rejected)
    }

    @Test func withoutUsersOrPasswordOnlyTheDefaultUserIsAccepted() {
        let auth = ClientAuthentication(users: [], defaultPasswords: [])
        #expect(!auth.isRequired)
        #expect(auth.quickCheck(user: "default", password: Array("anything".utf8)) == .accepted(readOnly: false))
        #expect(auth.quickCheck(user: "app", password: Array("anything".utf8)) == .rejected)
    }

    @Test func thePasswordFileIgnoresBlankLinesAndLineEnds() throws {
        let path = "/tmp/crdtd-password-\(UInt64.random(in: 0 ... .max))"
        try "first\r\n\nsecond\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ClientAuthentication.readPasswordFile(path) == [Array("first".utf8), Array("second".utf8)])
        try "\n\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try ClientAuthentication.readPasswordFile(path) }
    }

    @Test func failuresAreLoggedAtMostOncePerInterval() {
        var log = AuthFailureLog(intervalMilliseconds: 10_000)
        #expect(log.failed(user: "app", from: "1.2.3.4:5", now: 1000)?.contains("user \"app\" from 1.2.3.4:5") == true)
        for t in 1..<50 { #expect(log.failed(user: "app", from: "x", now: 1000 + UInt64(t) * 100) == nil) }
        let summary = log.failed(user: "bad\nname", from: "x", now: 11_000)
        #expect(summary?.contains("and 49 more failures") == true)
        #expect(summary?.contains("\n") == false, "a user name cannot forge log lines")
    }
}

@Suite struct ClientGateTests {
    func args(_ words: String...) -> [Bytes] { words.map { Array($0.utf8) } }
    func decide(_ request: [Bytes], _ identity: ClientIdentity, required: Bool = true) -> ClientGate.Decision {
        let name = String(decoding: request[0], as: UTF8.self).lowercased()
        return ClientGate.decide(request, name: name, identity: identity, authRequired: required)
    }
    let writer = ClientIdentity.user(name: "app", readOnly: false)
    let reader = ClientIdentity.user(name: "viewer", readOnly: true)

    @Test func beforeAuthenticationOnlyAuthHelloAuthAndQuitPass() {
        #expect(decide(args("GET", "k"), .anonymous) == .answer(ClientGate.noAuth, close: false))
        #expect(decide(args("PING"), .anonymous) == .answer(ClientGate.noAuth, close: false))
        #expect(decide(args("HELLO", "3"), .anonymous) == .answer(ClientGate.noAuthHello, close: false))
        #expect(decide(args("QUIT"), .anonymous) == .answer(ClientGate.ok, close: true))
        #expect(decide(args("auth", "pw"), .anonymous) == .authenticate(user: "default", password: Array("pw".utf8), then: nil))
        #expect(decide(args("AUTH", "app", "pw"), .anonymous) == .authenticate(user: "app", password: Array("pw".utf8), then: nil))
        #expect(decide(args("AUTH", "a", "b", "c"), .anonymous).isAnswer("-ERR wrong number of arguments for 'auth'"))
    }

    @Test func helloAuthIsCheckedAndTheRestGoesToTheEngine() {
        #expect(decide(args("HELLO", "3", "AUTH", "app", "pw", "SETNAME", "me"), .anonymous)
            == .authenticate(user: "app", password: Array("pw".utf8), then: args("HELLO", "3", "SETNAME", "me")))
        #expect(decide(args("HELLO", "3", "SETNAME", "auth", "AUTH", "u", "p"), .anonymous)
            == .authenticate(user: "u", password: Array("p".utf8), then: args("HELLO", "3", "SETNAME", "auth")),
                "a client named 'auth' is not an AUTH option")
        #expect(decide(args("HELLO", "3", "AUTH", "app"), .anonymous).isAnswer("-ERR Syntax error in HELLO option 'AUTH'"))
        #expect(decide(args("HELLO", "3"), writer) == .forward)
    }

    @Test func withoutAuthenticationConfiguredAuthSaysSo() {
        let open = ClientIdentity.user(name: "default", readOnly: false)
        #expect(decide(args("AUTH", "pw"), open, required: false) == .answer(ClientGate.noPasswordConfigured, close: false))
        #expect(decide(args("SET", "k", "v"), open, required: false) == .forward)
    }

    @Test func readOnlyUsersMayReadButNotWriteOrAdminister() {
        for read in [args("GET", "k"), args("SMEMBERS", "s"), args("SCAN", "0"), args("CRDT.DIGEST"), args("INFO"), args("PING"),
                     args("SUBSCRIBE", "c"), args("PUBLISH", "c", "m"), args("WAIT", "1", "0")] {
            #expect(decide(read, reader) == .forward, "\(read)")
        }
        for write in [args("SET", "k", "v"), args("INCR", "c"), args("DEL", "k"), args("HSET", "h", "f", "v"),
                      args("CRDT.BDECRBY", "b", "1"), args("SHUTDOWN"), args("CRDT.HEAL"),
                      args("CONFIG", "SET", "notify-keyspace-events", "KEA")] {
            let name = String(decoding: write[0], as: UTF8.self).lowercased()
            #expect(decide(write, reader) == .answer("-NOPERM this user has no permissions to run the '\(name)' command\r\n", close: false))
            #expect(decide(write, writer) == .forward)
        }
        #expect(decide(args("SET", "k"), reader) == .forward, "a malformed command gets the engine's arity error, not NOPERM")
    }

    @Test func backupsAreNamedNotPathsAndNotForReaders() {
        #expect(decide(args("CRDT.BACKUP", "nightly-2026-12-01.db"), writer) == .backup(name: "nightly-2026-12-01.db"))
        for bad in ["../x.db", "/etc/passwd", ".hidden", "a b", ""] {
            #expect(decide(args("CRDT.BACKUP", bad), writer).isAnswer("-ERR backup name must be a plain file name"), "\(bad)")
        }
        #expect(decide(args("CRDT.BACKUP"), writer).isAnswer("-ERR wrong number of arguments"))
        #expect(decide(args("CRDT.BACKUP", "x.db"), reader).isAnswer("-NOPERM"))
        #expect(decide(args("CRDT.BACKUP", "x.db"), .anonymous) == .answer(ClientGate.noAuth, close: false))
    }
}

@Suite struct ReplyQueueTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    func drain(_ queue: inout ReplyQueue) -> [String] {
        var out: [String] = []
        while let entry = queue.popReady() { out.append(String(decoding: entry.pushedBefore + (entry.reply ?? []), as: UTF8.self)) }
        return out
    }

    @Test func shellAnswersWaitForTheEngineRepliesBeforeThem() {
        var queue = ReplyQueue()
        queue.expectEngine(name: "get", started: 0)
        queue.answer(name: "auth", started: 0, reply: bytes("A"))
        queue.expectEngine(name: "get", started: 0)
        let later = queue.reserve(name: "crdt.backup", started: 0)
        queue.expectEngine(name: "get", started: 0)
        #expect(drain(&queue) == [], "the first reply is the engine's and it has not come")
        queue.engineAnswered(bytes("E1"))
        #expect(drain(&queue) == ["E1", "A"])
        queue.engineAnswered(bytes("E2"))
        queue.engineAnswered(bytes("E3"))
        #expect(drain(&queue) == ["E2"], "E3 waits behind the reserved reply")
        queue.fill(later, reply: bytes("B"))
        #expect(drain(&queue) == ["B", "E3"])
        #expect(queue.isEmpty)
        queue.engineAnswered(bytes("unsolicited"))
        #expect(drain(&queue) == ["unsolicited"])
    }

    @Test func pushesGoBeforeTheNextEngineReplyAndCountTheirBytes() {
        var queue = ReplyQueue()
        queue.expectEngine(name: "subscribe", started: 0)
        queue.engineAnswered(bytes("S"))
        queue.expectEngine(name: "ping", started: 0)
        // Sent by the engine after S and before its reply to the PING: written between them.
        #expect(queue.pushed(bytes("m1")) == 2)
        #expect(queue.pushed(bytes("m2")) == 4)
        #expect(drain(&queue) == ["S"])
        queue.engineAnswered(bytes("P"))
        #expect(drain(&queue) == ["m1m2P"])
        #expect(queue.pushedBytes == 0)
        // With no engine reply owed, a push is written at once.
        #expect(queue.pushed(bytes("m3")) == 2)
        #expect(drain(&queue) == ["m3"])
        #expect(queue.pushedBytes == 0 && queue.isEmpty)
        // Shell answers given after the engine's last request keep their place before a later push.
        queue.answer(name: "auth", started: 0, reply: bytes("A"))
        queue.pushed(bytes("m4"))
        #expect(drain(&queue) == ["A", "m4"])
    }

    /// A large read built on a worker keeps its place: the engine's later replies wait behind it.
    @Test func aDeferredEngineReplyKeepsItsPlace() {
        var queue = ReplyQueue()
        for _ in 0..<3 { queue.expectEngine(name: "get", started: 0) }
        queue.engineAnswered(bytes("E1"))
        let later = queue.engineAnsweredLater()
        queue.engineAnswered(bytes("E3"))
        #expect(drain(&queue) == ["E1"], "E3 waits behind the reply being built")
        queue.fill(later, reply: bytes("BIG"))
        #expect(drain(&queue) == ["BIG", "E3"])
        #expect(queue.isEmpty)
    }

    @Test func ticketsStayValidAcrossCompaction() {
        var queue = ReplyQueue()
        let ticket = queue.reserve(name: "x", started: 0)
        for i in 0..<500 {
            queue.expectEngine(name: "get", started: 0)
            queue.answer(name: "auth", started: 0, reply: bytes("L\(i)"))
        }
        for i in 0..<500 { queue.engineAnswered(bytes("E\(i)")) }
        #expect(drain(&queue) == [])
        queue.fill(ticket, reply: bytes("T"))
        let out = drain(&queue)
        #expect(out.count == 1001)
        #expect(out.prefix(3) == ["T", "E0", "L0"])
        #expect(out.last == "L499")
        // After compaction the engine replies still land on engine entries.
        for round in 0..<200 {
            queue.answer(name: "auth", started: 0, reply: bytes("a\(round)"))
            queue.expectEngine(name: "get", started: 0)
            queue.engineAnswered(bytes("e\(round)"))
            #expect(drain(&queue) == ["a\(round)", "e\(round)"])
        }
    }
}

extension ClientGate.Decision {
    func isAnswer(_ prefix: String) -> Bool {
        if case .answer(let text, _) = self { return text.hasPrefix(prefix) }
        return false
    }
}
