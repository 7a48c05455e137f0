import Testing
@testable import Wire
import TestSupport

private func key(_ byte: UInt8, _ count: Int = 32) -> [UInt8] { [UInt8](repeating: byte, count: count) }

@Suite struct EnvelopeTests {
    @Test func sealedFramesOpenWithTheSameKeyAndLabel() throws {
        let envelope = try Envelope(label: "prod", keyring: Keyring(keys: [key(1)]))
        let payload: [UInt8] = Array("hello, peer".utf8)
        let frame = envelope.seal(payload)
        #expect(frame.count == payload.count + envelope.overhead)
        #expect(try envelope.open(frame) == payload)
        #expect(!frame.contains(subsequence: payload), "the payload must not travel in clear")
    }

    @Test func everyRejectionReasonIsReported() throws {
        let secure = try Envelope(label: "prod", keyring: Keyring(keys: [key(1)]))
        let otherKey = try Envelope(label: "prod", keyring: Keyring(keys: [key(2)]))
        let otherCluster = try Envelope(label: "staging", keyring: Keyring(keys: [key(1)]))
        let insecure = try Envelope(label: "prod", keyring: nil)
        let frame = secure.seal([1, 2, 3])

        #expect(throws: FrameRejection.authenticationFailed) { try otherKey.open(frame) }
        #expect(throws: FrameRejection.wrongCluster) { try otherCluster.open(frame) }
        #expect(throws: FrameRejection.noKey) { try insecure.open(frame) }
        #expect(throws: FrameRejection.unauthenticated) { try secure.open(insecure.seal([1, 2, 3])) }
        var wrongVersion = frame
        wrongVersion[2] = 99
        #expect(throws: FrameRejection.unknownVersion) { try secure.open(wrongVersion) }
        #expect(throws: FrameRejection.malformed) { try secure.open([0x43]) }
        let small = try Envelope(label: "prod", keyring: Keyring(keys: [key(1)]), maximumFrameSize: 10)
        #expect(throws: FrameRejection.oversized) { try small.open(frame) }
    }

    @Test func everyFlippedBitIsDetected() throws {
        let envelope = try Envelope(label: "prod", keyring: Keyring(keys: [key(7, 16)]))
        let frame = envelope.seal(Array("a delta".utf8))
        for index in frame.indices {
            var tampered = frame
            tampered[index] ^= 0x01
            #expect(throws: FrameRejection.self, "flipping a bit of byte \(index) must be detected") {
                try envelope.open(tampered)
            }
        }
    }

    @Test func oldKeysStillDecryptDuringRotation() throws {
        let old = try Envelope(label: "prod", keyring: Keyring(keys: [key(1)]))
        let rotating = try Envelope(label: "prod", keyring: Keyring(keys: [key(2), key(1)]))
        let new = try Envelope(label: "prod", keyring: Keyring(keys: [key(2)]))
        #expect(try rotating.open(old.seal([9])) == [9])
        #expect(try new.open(rotating.seal([8])) == [8])
        #expect(throws: FrameRejection.authenticationFailed) { try old.open(rotating.seal([8])) }
    }

    @Test func keyringFileFormat() throws {
        let ring = try Keyring.parse("""
        # primary first
        AAECAwQFBgcICQoLDA0ODw==

        \(String(repeating: "A", count: 43))=
        """)
        #expect(ring.keyBytes.count == 2)
        #expect(ring.keyBytes[0] == Array(0..<16))
        #expect(throws: WireError.self) { try Keyring.parse("not base64!") }
        #expect(throws: WireError.self) { try Keyring.parse("AAEC") }  // 3 bytes
        #expect(throws: WireError.self) { try Keyring.parse("# only a comment\n") }
    }

    @Test func randomAndMutatedFramesNeverCrash() throws {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let envelope = try Envelope(label: "prod", keyring: Keyring(keys: [key(3)]))
        let insecure = try Envelope(label: "prod", keyring: nil)
        let valid = envelope.seal(Array(repeating: 5, count: 40))
        var opened = 0
        for _ in 0..<100_000 {
            var input: [UInt8]
            if rng.next() % 2 == 0 {
                input = (0..<Int(rng.next() % 80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                input = valid
                for _ in 0..<(1 + rng.next() % 4) where !input.isEmpty {
                    input[Int(rng.next() % UInt64(input.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 4 == 0 { input.removeLast(Int(rng.next() % UInt64(input.count))) }
            }
            if (try? envelope.open(input)) != nil { opened += 1 }
            _ = try? insecure.open(input)
        }
        // Only unmutated copies (a mutation that rewrote a byte to its own value) may open.
        #expect(opened < 100_000 / 8)
    }
}

@Suite struct StreamFramerTests {
    @Test func framesSurviveEverySplitPoint() throws {
        let frames: [[UInt8]] = [[], [1], Array(0..<200), [9, 9, 9]]
        let stream = frames.flatMap(StreamFramer.encode)
        for split in 0...stream.count {
            var framer = StreamFramer(maximumFrameSize: 1000)
            var out: [[UInt8]] = []
            framer.append(stream[..<split])
            while let f = try framer.next() { out.append(f) }
            framer.append(stream[split...])
            while let f = try framer.next() { out.append(f) }
            #expect(out == frames, "split at \(split)")
            #expect(framer.bufferedByteCount == 0)
        }
    }

    @Test func oversizedDeclaredLengthIsRefusedBeforeBuffering() {
        var framer = StreamFramer(maximumFrameSize: 100)
        framer.append([0x7F, 0xFF, 0xFF, 0xFF])
        #expect(throws: FrameRejection.oversized) { try framer.next() }
    }
}


extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { self[$0..<($0 + subsequence.count)].elementsEqual(subsequence) }
    }
}
