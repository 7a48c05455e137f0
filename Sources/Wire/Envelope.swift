import Crypto
import Foundation

/// The cluster keyring: the first key encrypts, every key decrypts, so keys rotate without downtime
/// (add the new key second, roll it out, move it first, roll out, remove the old one). As memberlist's.
public struct Keyring: Sendable {
    /// The key material, primary first. Kept as bytes because `SymmetricKey` is not `Sendable`.
    public let keyBytes: [[UInt8]]

    public init(keys: [[UInt8]]) throws(WireError) {
        guard !keys.isEmpty else { throw .invalidKeyring("the keyring holds no key") }
        guard keys.allSatisfy({ [16, 24, 32].contains($0.count) }) else {
            throw .invalidKeyring("a key has 16, 24 or 32 bytes (AES-128/192/256)")
        }
        self.keyBytes = keys
    }

    var keys: [SymmetricKey] { keyBytes.map { SymmetricKey(data: $0) } }

    /// Parses a keyring file: one base64-encoded key of 16, 24 or 32 bytes per line, primary first.
    /// Blank lines and lines starting with `#` are ignored.
    public static func parse(_ text: String) throws(WireError) -> Keyring {
        var keys: [[UInt8]] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let data = Data(base64Encoded: line) else {
                throw .invalidKeyring("line \(number + 1) is not base64")
            }
            guard [16, 24, 32].contains(data.count) else {
                throw .invalidKeyring("line \(number + 1) holds \(data.count) bytes; a key has 16, 24 or 32 (AES-128/192/256)")
            }
            keys.append(Array(data))
        }
        return try Keyring(keys: keys)
    }
}

/// Why a frame from the network was dropped. Each reason is counted separately in the metrics.
public enum FrameRejection: String, Error, Sendable, CaseIterable {
    /// Too short, a bad length, or bytes that do not decode.
    case malformed
    /// A protocol version this node does not speak.
    case unknownVersion = "unknown_version"
    /// A frame for another cluster (its label differs).
    case wrongCluster = "wrong_cluster"
    /// Encrypted, but no key of ours opens it (or it was tampered with).
    case authenticationFailed = "auth_failed"
    /// Plaintext, but this node requires authenticated peers.
    case unauthenticated
    /// Encrypted, but this node runs `--insecure` and holds no key.
    case noKey = "no_key"
    /// Larger than the configured maximum.
    case oversized
    /// A message type this node does not know.
    case unknownType = "unknown_type"
}

/// Errors in the peer-protocol configuration.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case invalidKeyring(String)
    case invalidLabel(String)

    public var description: String {
        switch self {
        case .invalidKeyring(let why): return "invalid cluster keyring: \(why)"
        case .invalidLabel(let why): return "invalid cluster label: \(why)"
        }
    }
}

/// Seals and opens peer frames: a small plaintext header (magic, version, flags, cluster label) bound as
/// associated data to an AES-GCM ciphertext, so a frame cannot be moved to another cluster or altered.
///
/// ```
/// "CD" | version u8 | flags u8 (bit 0: encrypted, bit 1: probe) | label length u8 | label |
///     encrypted: nonce (12) | ciphertext | tag (16)      plaintext (insecure): payload
/// ```
public struct Envelope: Sendable {
    /// The only protocol version this build speaks.
    public static let version: UInt8 = 1
    static let magic: [UInt8] = [0x43, 0x44]  // "CD"
    static let encryptedFlag: UInt8 = 1
    /// Marks a SWIM probe (ping, ack, ping request), readable without opening the frame: a receiver
    /// queues probes ahead of data, so a backlog of deltas never makes a live node look dead. It is part
    /// of the authenticated header, so it cannot be set on another's frame without failing to open.
    static let probeFlag: UInt8 = 2
    static let nonceSize = 12
    static let tagSize = 16

    /// The largest frame this node accepts, in bytes (envelope included).
    public let maximumFrameSize: Int
    private let label: [UInt8]
    private let keyring: Keyring?

    /// - Parameters:
    ///   - label: the cluster label, at most 255 bytes.
    ///   - keyring: `nil` runs without authentication (`--insecure`).
    public init(label: String, keyring: Keyring?, maximumFrameSize: Int = PeerFrameLimit.bytes) throws(WireError) {
        let bytes = Array(label.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { throw .invalidLabel("it must be 1 to 255 bytes") }
        self.label = bytes
        self.keyring = keyring
        self.maximumFrameSize = maximumFrameSize
    }

    /// Bytes the envelope adds around a payload.
    public var overhead: Int {
        Self.magic.count + 3 + label.count + (keyring == nil ? 0 : Self.nonceSize + Self.tagSize)
    }

    /// Wraps `payload` for the network.
    public func seal(_ payload: [UInt8], probe: Bool = false) -> [UInt8] {
        var frame = Self.magic
        frame.reserveCapacity(overhead + payload.count)
        frame.append(Self.version)
        frame.append((keyring == nil ? 0 : Self.encryptedFlag) | (probe ? Self.probeFlag : 0))
        frame.append(UInt8(label.count))
        frame.append(contentsOf: label)
        guard let key = keyring?.keys.first else {
            frame.append(contentsOf: payload)
            return frame
        }
        // A random 96-bit nonce per frame: frames are far fewer than the 2^32 per key that this allows safely.
        // `seal` only fails for a nonce of the wrong size, which AES.GCM.Nonce() never is.
        let box = try! AES.GCM.seal(payload, using: key, nonce: AES.GCM.Nonce(), authenticating: frame)
        frame.append(contentsOf: box.nonce)
        frame.append(contentsOf: box.ciphertext)
        frame.append(contentsOf: box.tag)
        return frame
    }

    /// Whether a frame from the network says it is a membership probe, read without opening it (a frame
    /// that lies about it fails `open` like any altered frame).
    public static func isProbe(_ frame: [UInt8]) -> Bool {
        frame.count > 3 && frame[0] == magic[0] && frame[1] == magic[1] && frame[3] & probeFlag != 0
    }

    /// Checks and unwraps a frame from the network, or says why it must be dropped.
    public func open(_ frame: [UInt8]) throws(FrameRejection) -> [UInt8] {
        guard frame.count <= maximumFrameSize else { throw .oversized }
        guard frame.count >= Self.magic.count + 3, frame[0] == Self.magic[0], frame[1] == Self.magic[1] else {
            throw .malformed
        }
        guard frame[2] == Self.version else { throw .unknownVersion }
        let flags = frame[3]
        guard flags & ~(Self.encryptedFlag | Self.probeFlag) == 0 else { throw .malformed }
        let labelCount = Int(frame[4])
        let headerEnd = 5 + labelCount
        guard frame.count >= headerEnd else { throw .malformed }
        guard frame[5..<headerEnd].elementsEqual(label) else { throw .wrongCluster }
        let encrypted = flags & Self.encryptedFlag != 0
        guard let keyring else {
            if encrypted { throw .noKey }
            return Array(frame[headerEnd...])
        }
        guard encrypted else { throw .unauthenticated }
        guard frame.count >= headerEnd + Self.nonceSize + Self.tagSize else { throw .malformed }
        let nonceEnd = headerEnd + Self.nonceSize
        let tagStart = frame.count - Self.tagSize
        guard let nonce = try? AES.GCM.Nonce(data: frame[headerEnd..<nonceEnd]),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: frame[nonceEnd..<tagStart], tag: frame[tagStart...]) else {
            throw .malformed
        }
        let header = frame[..<headerEnd]
        for key in keyring.keys {
            if let plaintext = try? AES.GCM.open(box, using: key, authenticating: header) {
                return Array(plaintext)
            }
        }
        throw .authenticationFailed
    }
}
