internal import CLibUV

private let sendRequestCountOffset = (uv_req_size(UV_UDP_SEND) + 15) & ~15
private let sendRequestPayloadOffset = sendRequestCountOffset + 16

/// A bound UDP socket with an explicit maximum datagram size.
///
/// Received datagrams larger than ``maxDatagramSize`` are dropped and counted in
/// ``oversizeDatagramsDropped`` (the kernel truncates them; a truncated datagram is never delivered).
/// Sending one larger than ``maxDatagramSize`` throws.
public final class UDPSocket: LoopHandle {
    /// Default maximum payload: fits one Ethernet frame with IP/UDP headers and room for tunnels.
    public static let defaultMaxDatagramSize = 1400
    /// Largest payload UDP over IPv4 can carry.
    public static let largestDatagramSize = 65_507
    /// Default bound on bytes of datagrams waiting for the kernel (1 MiB).
    public static let defaultMaxPendingSendBytes = 1024 * 1024

    /// The bound address (with the real port when port 0 was requested).
    public private(set) var localAddress: SocketAddress
    /// Largest datagram sent or accepted.
    public let maxDatagramSize: Int
    /// Bound on bytes queued in libuv waiting for the socket to become writable.
    public let maxPendingSendBytes: Int
    /// Bytes queued and not yet sent.
    public private(set) var pendingSendBytes = 0
    /// Received datagrams dropped for being larger than ``maxDatagramSize``.
    public private(set) var oversizeDatagramsDropped = 0

    private var onDatagram: ((UnsafeRawBufferPointer, SocketAddress) -> Void)?

    /// Binds to `address` and starts receiving; call on the loop thread.
    ///
    /// `onDatagram` receives each datagram and its sender; the bytes are valid only during the call.
    public init(loop: EventLoop, bindTo address: SocketAddress,
                maxDatagramSize: Int = UDPSocket.defaultMaxDatagramSize,
                maxPendingSendBytes: Int = UDPSocket.defaultMaxPendingSendBytes,
                onDatagram: @escaping (UnsafeRawBufferPointer, SocketAddress) -> Void) throws {
        loop.assertInLoop()
        guard (1...UDPSocket.largestDatagramSize).contains(maxDatagramSize) else {
            throw TransportError(.invalidArgument,
                                 "maxDatagramSize must be between 1 and \(UDPSocket.largestDatagramSize), got \(maxDatagramSize)")
        }
        guard maxPendingSendBytes >= maxDatagramSize else {
            throw TransportError(.invalidArgument, "maxPendingSendBytes (\(maxPendingSendBytes)) must hold at least one datagram of \(maxDatagramSize) bytes")
        }
        self.localAddress = address
        self.maxDatagramSize = maxDatagramSize
        self.maxPendingSendBytes = maxPendingSendBytes
        self.onDatagram = onDatagram
        try super.init(loop: loop, type: UV_UDP, initialize: { raw in
            uv_udp_init(loop.uvLoop, raw.assumingMemoryBound(to: uv_udp_t.self))
        }, operation: "uv_udp_init")
        do {
            let udp = typed(uv_udp_t.self)
            try address.withSockAddr { sockaddr throws(UVError) in
                try uvCheck(uv_udp_bind(udp, sockaddr, 0), "uv_udp_bind(\(address))")
            }
            var storage = sockaddr_storage()
            var length = Int32(MemoryLayout<sockaddr_storage>.size)
            try uvCheck(withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_udp_getsockname(udp, $0, &length) }
            }, "uv_udp_getsockname")
            if let bound = withUnsafePointer(to: &storage, { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0) }
            }) {
                localAddress = bound
            }
            try uvCheck(uv_udp_recv_start(udp, { handle, _, buffer in
                guard let handle, let buffer else { return }
                let socket = knownOwner(of: UnsafeMutableRawPointer(handle), as: UDPSocket.self)
                // Exactly the maximum: anything longer is truncated by the kernel and flagged UV_UDP_PARTIAL.
                buffer.pointee = uv_buf_t(base: socket.loop.readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                                          len: socket.maxDatagramSize)
            }, { handle, count, buffer, sender, flags in
                guard let handle else { return }
                knownOwner(of: UnsafeMutableRawPointer(handle), as: UDPSocket.self)
                    .received(count: count, buffer: buffer, sender: sender, flags: flags)
            }), "uv_udp_recv_start")
        } catch {
            close()
            throw error
        }
    }

    private func received(count: Int, buffer: UnsafePointer<uv_buf_t>?, sender: UnsafePointer<sockaddr>?, flags: UInt32) {
        // count == 0 with no sender means "nothing more to read"; errors on an unconnected UDP socket
        // (ICMP unreachable) are not about any datagram we could act on.
        guard count >= 0, let sender, let base = buffer?.pointee.base else { return }
        if flags & UInt32(UV_UDP_PARTIAL.rawValue) != 0 {
            oversizeDatagramsDropped += 1
            return
        }
        guard let from = SocketAddress(sender) else { return }
        onDatagram?(UnsafeRawBufferPointer(start: base, count: count), from)
    }

    /// Sends one datagram to `address`; the bytes are copied if they cannot be sent at once.
    /// - Throws: ``TransportError/Code/datagramTooLarge`` over ``maxDatagramSize``;
    ///   ``TransportError/Code/sendQueueFull`` when ``maxPendingSendBytes`` are already waiting (the
    ///   datagram is dropped; UDP may drop it anyway); ``UVError`` if the kernel refused it.
    public func send(_ bytes: UnsafeRawBufferPointer, to address: SocketAddress) throws {
        loop.assertInLoop()
        guard !isClosed else { throw TransportError(.connectionClosed, "send on a closed UDP socket") }
        guard bytes.count <= maxDatagramSize else {
            throw TransportError(.datagramTooLarge,
                                 "a \(bytes.count)-byte datagram exceeds the maximum of \(maxDatagramSize) bytes; send it over a stream instead")
        }
        let udp = typed(uv_udp_t.self)
        let base = bytes.baseAddress ?? UnsafeRawPointer(loop.readBuffer.baseAddress!)
        if pendingSendBytes == 0 {
            var buffer = uv_buf_t(base: UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: CChar.self)), len: bytes.count)
            let sent = try address.withSockAddr { sockaddr throws(UVError) in uv_udp_try_send(udp, &buffer, 1, sockaddr) }
            if sent >= 0 { return }
            if sent != UV_EAGAIN.rawValue { throw UVError(code: sent, operation: "uv_udp_try_send(\(address))") }
        }
        guard bytes.count <= maxPendingSendBytes - pendingSendBytes else {
            throw TransportError(.sendQueueFull,
                                 "\(pendingSendBytes) bytes of datagrams are already waiting (limit \(maxPendingSendBytes)); datagram dropped")
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: sendRequestPayloadOffset + bytes.count, alignment: 16)
        raw.storeBytes(of: bytes.count, toByteOffset: sendRequestCountOffset, as: Int.self)
        let payload = raw + sendRequestPayloadOffset
        payload.copyMemory(from: base, byteCount: bytes.count)
        let request = raw.bindMemory(to: uv_udp_send_t.self, capacity: 1)
        // Unretained: send callbacks (ECANCELED on close) run before the close callback.
        uv_req_set_data(raw.assumingMemoryBound(to: uv_req_t.self), Unmanaged.passUnretained(self).toOpaque())
        var buffer = uv_buf_t(base: payload.assumingMemoryBound(to: CChar.self), len: bytes.count)
        let status = try address.withSockAddr { sockaddr throws(UVError) in
            uv_udp_send(request, udp, &buffer, 1, sockaddr) { request, _ in
                guard let request else { return }
                let raw = UnsafeMutableRawPointer(request)
                let count = raw.load(fromByteOffset: sendRequestCountOffset, as: Int.self)
                let data = uv_req_get_data(raw.assumingMemoryBound(to: uv_req_t.self))!
                raw.deallocate()
                Unmanaged<UDPSocket>.fromOpaque(data).takeUnretainedValue().pendingSendBytes -= count
            }
        }
        if status < 0 {
            raw.deallocate()
            throw UVError(code: status, operation: "uv_udp_send(\(address))")
        }
        pendingSendBytes += bytes.count
    }

    /// Sends one datagram; see ``send(_:to:)-(UnsafeRawBufferPointer,_)``.
    public func send(_ bytes: [UInt8], to address: SocketAddress) throws {
        try bytes.withUnsafeBytes { try send($0, to: address) }
    }

    override func didClose() { onDatagram = nil }
}
