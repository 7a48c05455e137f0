import Crypto
import _CryptoExtras
import Foundation

/// A salted, stretched password hash as the config's `users:` holds it:
/// `pbkdf2-sha256$ROUNDS$SALT$HASH`, with SALT (16 bytes) and HASH (32 bytes) in base64.
/// `crdtd hash-password` prints one. Stretching makes a leaked config file expensive to attack;
/// the cost is paid once per new (user, password) pair, off the event loop (see `ClientAuthentication`).
public struct PasswordHash: Sendable, Equatable, CustomStringConvertible {
    public static let scheme = "pbkdf2-sha256"
    /// What `crdtd hash-password` uses: swift-crypto's floor for PBKDF2-SHA256.
    public static let defaultRounds = 210_000
    /// Fewer rounds are refused: they would make the hash little better than a plain digest.
    public static let minimumRounds = 10_000
    static let saltBytes = 16
    static let hashBytes = 32

    public let rounds: Int
    public let salt: [UInt8]
    public let hash: [UInt8]

    /// Parses the text form; the error says what is wrong and how to make a valid one.
    public init(parsing text: String) throws(ConfigurationError) {
        func invalid(_ why: String) -> ConfigurationError {
            .invalid("password hash '\(text.prefix(24))…': \(why); make one with `crdtd hash-password`")
        }
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == Self.scheme else {
            throw invalid("expected \(Self.scheme)$ROUNDS$SALT$HASH")
        }
        guard let rounds = Int(parts[1]), rounds >= Self.minimumRounds, rounds <= 100_000_000 else {
            throw invalid("ROUNDS must be a number from \(Self.minimumRounds) to 100000000")
        }
        guard let salt = Data(base64Encoded: String(parts[2])), salt.count >= 8 else {
            throw invalid("SALT must be base64 of at least 8 bytes")
        }
        guard let hash = Data(base64Encoded: String(parts[3])), hash.count == Self.hashBytes else {
            throw invalid("HASH must be base64 of \(Self.hashBytes) bytes")
        }
        self.rounds = rounds
        self.salt = Array(salt)
        self.hash = Array(hash)
    }

    /// Hashes `password` with a fresh random salt.
    public init(hashing password: [UInt8], rounds: Int = PasswordHash.defaultRounds) {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<Self.saltBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
        self.rounds = max(rounds, Self.minimumRounds)
        self.salt = salt
        self.hash = Self.derive(password, salt: salt, rounds: self.rounds)
    }

    /// Whether `password` is the one hashed. Costs `rounds` HMAC computations; compares in constant time.
    public func matches(_ password: [UInt8]) -> Bool {
        constantTimeEquals(Self.derive(password, salt: salt, rounds: rounds), hash)
    }

    public var description: String {
        "\(Self.scheme)$\(rounds)$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    static func derive(_ password: [UInt8], salt: [UInt8], rounds: Int) -> [UInt8] {
        // Only fails for parameters that `init` already refuses (zero rounds or output length).
        let key = try? KDF.Insecure.PBKDF2.deriveKey(from: password, salt: salt, using: .sha256,
                                                     outputByteCount: hashBytes, unsafeUncheckedRounds: rounds)
        return key.map { $0.withUnsafeBytes { Array($0) } } ?? []
    }
}

/// Compares two byte strings in time that depends on their lengths only, never on where they differ.
func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in a.indices { difference |= a[i] ^ b[i] }
    return difference == 0
}
