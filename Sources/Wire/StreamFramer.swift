/// Splits a peer TCP stream into frames: each is a 4-byte big-endian length followed by that many bytes.
/// The declared length is checked against the limit before a byte of the frame is buffered.
public struct StreamFramer: Sendable {
    /// The largest frame accepted; a larger declared length is a protocol violation that closes the stream.
    public let maximumFrameSize: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maximumFrameSize: Int) {
        self.maximumFrameSize = maximumFrameSize
    }

    /// Prefixes `frame` with its length.
    public static func encode(_ frame: [UInt8]) -> [UInt8] {
        let n = UInt32(frame.count)
        return [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)] + frame
    }

    /// Appends bytes read from the stream.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// The next complete frame, `nil` when more bytes are needed, or `.oversized` when the peer declared
    /// a frame over the limit (the stream cannot be resynchronised: close it).
    public mutating func next() throws(FrameRejection) -> [UInt8]? {
        guard buffer.count - readIndex >= 4 else { return nil }
        let length = Int(buffer[readIndex]) << 24 | Int(buffer[readIndex + 1]) << 16
            | Int(buffer[readIndex + 2]) << 8 | Int(buffer[readIndex + 3])
        guard length <= maximumFrameSize else { throw .oversized }
        guard buffer.count - readIndex - 4 >= length else { return nil }
        let start = readIndex + 4
        readIndex = start + length
        return Array(buffer[start..<readIndex])
    }
}
