import Engine

/// Who a client connection is, as far as the shell knows.
enum ClientIdentity: Equatable {
    /// Authentication is required and the client has not passed it.
    case anonymous
    case user(name: String, readOnly: Bool)
}

/// Decides, on the loop thread and before the engine sees anything, what happens to one request:
/// the engine runs it, or the shell answers it (authentication, refusals, backups). A client that has
/// not authenticated costs the engine nothing. Pure: tested without sockets.
enum ClientGate {
    enum Decision: Equatable {
        /// Hand the request to the engine as it is.
        case forward
        /// Answer with these bytes (a RESP reply); `close` ends the connection once it is written.
        case answer(String, close: Bool)
        /// Check the credentials; on success answer `+OK` (`AUTH`) or forward `then` (the `HELLO`
        /// without its `AUTH` part); on failure answer `-WRONGPASS`.
        case authenticate(user: String, password: [UInt8], then: [Bytes]?)
        /// Write a backup named `name` into the backup directory (the reply comes once it is written).
        case backup(name: String)
    }

    static let noAuth = "-NOAUTH Authentication required.\r\n"
    static let noAuthHello = "-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        + "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP "
        + "protocol version at the same time\r\n"
    static let wrongPass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    static let noPasswordConfigured = "-ERR AUTH <password> called without any password configured for the default "
        + "user. Are you sure your configuration is correct?\r\n"
    static let ok = "+OK\r\n"

    /// Commands the shell answers itself, as metric labels.
    static let shellCommands: Set<String> = ["auth", "crdt.backup"]

    /// - Parameters:
    ///   - name: the command name, lower-cased (as the frontend computes it for the metrics).
    ///   - authRequired: whether the node has users or a client password.
    static func decide(_ request: [Bytes], name: String, identity: ClientIdentity, authRequired: Bool) -> Decision {
        switch name {
        case "auth":
            switch request.count {
            case 2:
                guard authRequired else { return .answer(noPasswordConfigured, close: false) }
                return .authenticate(user: ClientAuthentication.defaultUser, password: request[1], then: nil)
            case 3:
                return .authenticate(user: String(decoding: request[1], as: UTF8.self), password: request[2], then: nil)
            default:
                return .answer("-ERR wrong number of arguments for 'auth' command\r\n", close: false)
            }
        case "hello":
            if let (user, password, rest) = helloCredentials(request) {
                return .authenticate(user: user, password: password, then: rest)
            }
            if request.count > 2 && request[2...].contains(where: { upper($0) == "AUTH" }) {
                return .answer("-ERR Syntax error in HELLO option 'AUTH'\r\n", close: false)
            }
            return identity == .anonymous ? .answer(noAuthHello, close: false) : .forward
        case "quit" where identity == .anonymous:
            return .answer(ok, close: true)
        default:
            break
        }
        guard case .user(_, let readOnly) = identity else { return .answer(noAuth, close: false) }
        if name == "crdt.backup" {
            if readOnly { return noPermission(name) }
            guard request.count == 2 else { return .answer("-ERR wrong number of arguments for 'crdt.backup' command\r\n", close: false) }
            guard let file = backupName(request[1]) else {
                return .answer("-ERR backup name must be a plain file name (letters, digits, '.', '-', '_'), written into the backup directory\r\n",
                               close: false)
            }
            return .backup(name: file)
        }
        if readOnly, case .success(let command) = CommandParser.parse(request), refusedToReaders(command) {
            return noPermission(name)
        }
        return .forward
    }

    /// A backup is named, not given a path, so a client cannot make the daemon write anywhere else.
    static func backupName(_ bytes: Bytes) -> String? {
        guard !bytes.isEmpty, bytes.count <= 200, bytes.first != UInt8(ascii: "."),
              bytes.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                  || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// What a read-only user may not run: writes, and commands that act on the node itself.
    static func refusedToReaders(_ command: Command) -> Bool {
        if command.isWrite { return true }
        switch command {
        case .shutdown, .partition, .heal, .forget, .configSetKeyspaceEvents: return true
        default: return false
        }
    }

    static func noPermission(_ name: String) -> Decision {
        .answer("-NOPERM this user has no permissions to run the '\(name)' command\r\n", close: false)
    }

    /// `HELLO protover AUTH user pass [SETNAME name]`: the credentials and the request without them.
    static func helloCredentials(_ request: [Bytes]) -> (String, [UInt8], [Bytes])? {
        var i = 2
        while i < request.count {
            if upper(request[i]) == "AUTH" {
                guard i + 2 < request.count else { return nil }
                var rest = request
                rest.removeSubrange(i...(i + 2))
                return (String(decoding: request[i + 1], as: UTF8.self), request[i + 2], rest)
            }
            i += upper(request[i]) == "SETNAME" ? 2 : 1
        }
        return nil
    }

    private static func upper(_ bytes: Bytes) -> String { String(decoding: bytes.prefix(16), as: UTF8.self).uppercased() }
}
