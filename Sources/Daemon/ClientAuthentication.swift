import Crypto
import Foundation
import Synchronization

/// One client user from the config's `users:`.
public struct ClientUser: Sendable, Equatable {
    /// The name a client gives to `AUTH name password`.
    public var name: String
    /// Any of these passwords is accepted (several while a password is being rotated).
    public var passwordHashes: [PasswordHash]
    /// Reads only: writes and administrative commands answer `-NOPERM`.
    public var readOnly: Bool

    public init(name: String, passwordHashes: [PasswordHash], readOnly: Bool = false) {
        self.name = name
        self.passwordHashes = passwordHashes
        self.readOnly = readOnly
    }
}

/// Who may use the client port: the `users:` of the config (stretched hashes) and the `default` user's
/// password file (plain passwords, one per line). Checked on the loop thread when that is cheap, on a
/// worker thread otherwise. Thread-safe.
public final class ClientAuthentication: Sendable {
    /// The user `AUTH password` (one argument) authenticates as, as in Redis.
    public static let defaultUser = "default"

    /// What a check decided.
    public enum Outcome: Sendable, Equatable {
        case accepted(readOnly: Bool)
        case rejected
    }

    /// Whether clients must authenticate before anything else.
    public let isRequired: Bool
    private let users: [String: ClientUser]
    /// SHA-256 of each of the default user's passwords: compared in constant time whatever the length.
    private let defaultPasswordDigests: [[UInt8]]
    /// Digests of (user, password) pairs that passed a stretched check, so that a client pool
    /// reconnecting does not pay the stretching again. Keyed with a per-process secret, so the set
    /// reveals nothing; bounded (cleared when full).
    private let verified = Mutex<Set<[UInt8]>>([])
    private let cacheKey: [UInt8] = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    static let maximumCachedPairs = 4096
    /// Checked for unknown users so that timing does not tell which names exist.
    private let decoy = PasswordHash(hashing: Array("decoy".utf8), rounds: PasswordHash.minimumRounds)

    /// - Parameters:
    ///   - users: the config's `users:`.
    ///   - defaultPasswords: the lines of the client password file (the `default` user), if any.
    public init(users: [ClientUser], defaultPasswords: [[UInt8]]) {
        var byName: [String: ClientUser] = [:]
        for user in users { byName[user.name] = user }
        self.users = byName
        self.defaultPasswordDigests = defaultPasswords.map { Array(SHA256.hash(data: $0)) }
        self.isRequired = !users.isEmpty || !defaultPasswords.isEmpty
    }

    /// Reads the password file: every non-empty line is one accepted password (line ends stripped).
    public static func readPasswordFile(_ path: String) throws(ConfigurationError) -> [[UInt8]] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: "cannot read the client password file: \(error.localizedDescription)")
        }
        let passwords = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).map { Array($0.utf8) }
            .filter { !$0.isEmpty }
        guard !passwords.isEmpty else {
            throw .invalid("the client password file \(path) holds no password (one per line)")
        }
        return passwords
    }

    /// Answers at once when that costs no stretching: no authentication configured, the `default` user of
    /// the password file, or a pair that passed before. `nil` means: run `check` on a worker thread.
    public func quickCheck(user: String, password: [UInt8]) -> Outcome? {
        guard isRequired else { return user == Self.defaultUser ? .accepted(readOnly: false) : .rejected }
        if user == Self.defaultUser && !defaultPasswordDigests.isEmpty {
            let digest = Array(SHA256.hash(data: password))
            // Every digest is compared, so the time does not tell which line matched.
            var matched = false
            for stored in defaultPasswordDigests where constantTimeEquals(stored, digest) { matched = true }
            return matched ? .accepted(readOnly: false) : .rejected
        }
        guard let known = users[user] else { return nil }
        let tag = pairTag(user: user, password: password)
        return verified.withLock { $0.contains(tag) } ? .accepted(readOnly: known.readOnly) : nil
    }

    /// The full check, stretching included: tens of milliseconds. Call it off the event loop.
    public func check(user: String, password: [UInt8]) -> Outcome {
        if let quick = quickCheck(user: user, password: password) { return quick }
        guard let known = users[user] else {
            _ = decoy.matches(password)
            return .rejected
        }
        var matched = false
        for hash in known.passwordHashes where hash.matches(password) { matched = true }
        guard matched else { return .rejected }
        let tag = pairTag(user: user, password: password)
        verified.withLock { set in
            if set.count >= Self.maximumCachedPairs { set.removeAll() }
            set.insert(tag)
        }
        return .accepted(readOnly: known.readOnly)
    }

    private func pairTag(user: String, password: [UInt8]) -> [UInt8] {
        var message = Array(user.utf8)
        message.append(0)
        message.append(contentsOf: password)
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: cacheKey)))
    }
}

/// Failed attempts are logged, but at most one line per `interval`: a client hammering wrong
/// passwords must not fill the disk. Loop thread only (a plain value the frontend owns).
struct AuthFailureLog {
    let intervalMilliseconds: UInt64
    private var lastLoggedAt: UInt64?
    private var suppressed = 0

    init(intervalMilliseconds: UInt64 = 10_000) { self.intervalMilliseconds = intervalMilliseconds }

    /// Records a failure at `now`; returns the line to log, or nil while within the interval.
    mutating func failed(user: String, from address: String, now: UInt64) -> String? {
        if let last = lastLoggedAt, now < last + intervalMilliseconds {
            suppressed += 1
            return nil
        }
        lastLoggedAt = now
        let earlier = suppressed
        suppressed = 0
        let user = String(user.prefix(64).map { $0.isASCII && !$0.isWhitespace && $0 != "\"" ? $0 : "?" })
        var line = "client authentication failed for user \"\(user)\" from \(address)"
        if earlier > 0 { line += " (and \(earlier) more failures not logged in the last \(intervalMilliseconds / 1000) s)" }
        return line
    }
}
