/// The one limit on the size of a peer frame, in bytes, envelope included. The envelope refuses to
/// open a larger frame, the stream framer refuses to buffer one, and the engine packs what it sends
/// (deltas, key digests, states) into frames of at most half this, sending larger states in chunks.
public enum PeerFrameLimit {
    public static let bytes = 1 << 20
}
