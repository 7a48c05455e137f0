import Foundation
import Transport
import Yams

/// Everything a crdtd process needs to start. Built from defaults, then a YAML file, then command-line flags.
public struct Configuration: Sendable, Equatable {
    /// Human-readable, unique name of this node in the cluster (`n1`, `eu-west-a`).
    public var nodeID: String = ""
    /// Folder holding the SQLite database and the node's identity.
    public var dataDir: String = "./data"
    /// Where Redis-protocol clients connect.
    public var clientAddr: String = "127.0.0.1:6379"
    /// Where peers connect (TCP) and send datagrams (UDP).
    public var peerAddr: String = "127.0.0.1:7946"
    /// Peers to contact at start (`HOST:PORT`, HOST an IP address or a host name); membership spreads by
    /// gossip from there.
    public var seeds: [String] = []
    /// Prometheus `/metrics` over HTTP; `nil` disables the endpoint.
    public var metricsAddr: String? = nil
    /// Keyring file: one base64 key (16, 24 or 32 bytes) per line; the first line encrypts.
    public var clusterKeyFile: String? = nil
    /// Passwords of the `default` client user, one per line (any line is accepted, for rotation). With
    /// this or `users`, clients must `AUTH` before anything else.
    public var clientPasswordFile: String? = nil
    /// Named client users with stretched password hashes, optionally read-only.
    public var users: [ClientUser] = []
    /// Run without peer authentication (loudly logged). Refused unless asked for explicitly.
    public var insecure: Bool = false
    /// Names the cluster; bound into every frame so that two clusters on one network never mix.
    public var clusterLabel: String = "crdtd"
    /// Accept `CRDT.PARTITION` / `CRDT.HEAL` from clients (tests only).
    public var allowFaultInjection: Bool = false
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`.
    public var logLevel: String = "info"
    /// How the store syncs a commit: `normal` survives a process crash (kill -9), `full` also a power cut.
    public var durability: String = "normal"
    /// Period of the gossip / anti-entropy round, in milliseconds.
    public var gossipIntervalMilliseconds: Int = 200
    /// Number of random live peers each delta is pushed to.
    public var fanout: Int = 3
    /// Client-facing limits.
    public var limits = Limits()
    /// Where `CRDT.BACKUP name` writes; `nil` means `<data_dir>/backups`.
    public var backupDir: String? = nil
    /// Start from this backup (`--restore`): only into an empty data directory, with a new replica identity.
    public var restoreFrom: String? = nil

    /// The node's SQLite database.
    public var databasePath: String { (dataDir as NSString).appendingPathComponent("crdtd.db") }

    /// The directory backups are written to.
    public var resolvedBackupDir: String { backupDir ?? (dataDir as NSString).appendingPathComponent("backups") }

    /// Client-facing limits; every one answers a clear error when exceeded and disconnects the client.
    public struct Limits: Sendable, Equatable {
        /// Concurrent client connections; the next one is refused.
        public var maxClients: Int = 10_000
        /// Bytes in one request (all its arguments together).
        public var maxRequestBytes: Int = 64 << 20
        /// Bytes in one bulk string argument.
        public var maxBulkBytes: Int = 16 << 20
        /// Arguments in one command.
        public var maxArguments: Int = 1 << 20
        /// Replies queued for one client that it has not read yet.
        public var maxPendingReplyBytes: Int = 64 << 20
        /// Output a client with pushed messages (pub/sub, keyspace notifications) has not read yet, past
        /// which it is disconnected (Redis's `client-output-buffer-limit pubsub` hard limit, 32 MiB).
        public var maxPendingPubSubBytes: Int = 32 << 20

        public init() {}
    }

    public init() {}

    /// Checks what defaults cannot guarantee; the message says what to change.
    public func validate() throws(ConfigurationError) {
        if nodeID.isEmpty { throw .invalid("node_id is required (flag --node-id or node_id: in the config file)") }
        if nodeID.utf8.count > 64 || nodeID.contains(where: { $0.isWhitespace }) {
            throw .invalid("node_id '\(nodeID)' must be at most 64 bytes without spaces")
        }
        // Listen addresses are IP addresses (the peer address is also what peers are told to send to);
        // seeds may be host names, resolved on the loop once running.
        for (name, address) in [("client_addr", clientAddr), ("peer_addr", peerAddr)]
            + (metricsAddr.map { [("metrics_addr", $0)] } ?? []) {
            do {
                _ = try SocketAddress(parsing: address)
            } catch {
                throw .invalid("\(name): \(error.message)")
            }
        }
        for seed in seeds {
            do {
                _ = try HostAndPort(parsing: seed)
            } catch {
                throw .invalid("seed: \(error.message)")
            }
        }
        var names = Set<String>()
        for user in users {
            guard !user.name.isEmpty, user.name.utf8.count <= 64, !user.name.contains(where: { $0.isWhitespace }) else {
                throw .invalid("users: name '\(user.name)' must be 1 to 64 bytes without spaces")
            }
            guard names.insert(user.name).inserted else { throw .invalid("users: '\(user.name)' is listed twice") }
            guard !user.passwordHashes.isEmpty else {
                throw .invalid("users: '\(user.name)' has no password_hash (make one with `crdtd hash-password`)")
            }
        }
        if clientPasswordFile != nil && names.contains(ClientAuthentication.defaultUser) {
            throw .invalid("users: 'default' is also given by client_password_file; keep one of the two")
        }
        if clusterKeyFile == nil && !insecure {
            throw .invalid("no cluster key: pass --cluster-key-file FILE (see config/cluster.key.example) or --insecure for a test cluster")
        }
        guard ["normal", "full"].contains(durability) else {
            throw .invalid("durability '\(durability)' must be 'normal' or 'full'")
        }
        guard gossipIntervalMilliseconds >= 10 && gossipIntervalMilliseconds <= 60_000 else {
            throw .invalid("gossip_interval_ms \(gossipIntervalMilliseconds) must be between 10 and 60000")
        }
        guard fanout >= 1 && fanout <= 64 else { throw .invalid("fanout \(fanout) must be between 1 and 64") }
        guard limits.maxBulkBytes <= 60 << 20 else {
            throw .invalid("max_bulk_bytes \(limits.maxBulkBytes) is over 60 MiB: a key's state must fit the 64 MiB that peers accept")
        }
        guard limits.maxClients >= 1, limits.maxRequestBytes >= 1024, limits.maxBulkBytes >= 1,
              limits.maxArguments >= 1, limits.maxPendingReplyBytes >= 1024, limits.maxPendingPubSubBytes >= 1024 else {
            throw .invalid("limits must be positive (max_request_bytes, max_pending_reply_bytes and max_pending_pubsub_bytes at least 1024)")
        }
    }
}

/// A configuration that cannot be used, with what to change.
public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "cannot read config file \(path): \(reason)"
        case .invalid(let message): return "invalid configuration: \(message)"
        }
    }
}

extension Configuration {
    /// Applies a YAML config file over `self`. Unknown keys are an error: a typo must not silently fall back to a default.
    public mutating func apply(yamlFile path: String) throws(ConfigurationError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        try apply(yaml: text, source: path)
    }

    /// Applies YAML text over `self`; `source` names it in errors.
    public mutating func apply(yaml text: String, source: String = "config") throws(ConfigurationError) {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw .unreadable(path: source, reason: "not valid YAML: \(error)")
        }
        guard let node else { return }
        guard let mapping = node.mapping else { throw .invalid("\(source): the top level must be a mapping of settings") }
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw .invalid("\(source): setting names must be strings") }
            try apply(key: key, value: value, source: source)
        }
    }

    private mutating func apply(key: String, value: Node, source: String) throws(ConfigurationError) {
        func string() throws(ConfigurationError) -> String {
            guard let s = value.string else { throw .invalid("\(source): \(key) must be a string") }
            return s
        }
        func int() throws(ConfigurationError) -> Int {
            guard let i = value.int else { throw .invalid("\(source): \(key) must be an integer") }
            return i
        }
        func bool() throws(ConfigurationError) -> Bool {
            guard let b = value.bool else { throw .invalid("\(source): \(key) must be true or false") }
            return b
        }
        switch key {
        case "node_id": nodeID = try string()
        case "data_dir": dataDir = try string()
        case "client_addr": clientAddr = try string()
        case "peer_addr": peerAddr = try string()
        case "metrics_addr": metricsAddr = try string()
        case "cluster_key_file": clusterKeyFile = try string()
        case "client_password_file": clientPasswordFile = try string()
        case "backup_dir": backupDir = try string()
        case "users": users = try Self.parseUsers(value, source: source)
        case "cluster_label": clusterLabel = try string()
        case "insecure": insecure = try bool()
        case "allow_fault_injection": allowFaultInjection = try bool()
        case "log_level": logLevel = try string()
        case "durability": durability = try string()
        case "gossip_interval_ms": gossipIntervalMilliseconds = try int()
        case "fanout": fanout = try int()
        case "seeds":
            guard let items = value.sequence else { throw .invalid("\(source): seeds must be a list of HOST:PORT") }
            var parsed: [String] = []
            for item in items {
                guard let s = item.string else { throw .invalid("\(source): seeds must be a list of HOST:PORT") }
                parsed.append(s)
            }
            seeds = parsed
        case "limits":
            guard let mapping = value.mapping else { throw .invalid("\(source): limits must be a mapping") }
            for (k, v) in mapping {
                guard let name = k.string, let number = v.int else {
                    throw .invalid("\(source): limits.\(k.string ?? "?") must be an integer")
                }
                switch name {
                case "max_clients": limits.maxClients = number
                case "max_request_bytes": limits.maxRequestBytes = number
                case "max_bulk_bytes": limits.maxBulkBytes = number
                case "max_arguments": limits.maxArguments = number
                case "max_pending_reply_bytes": limits.maxPendingReplyBytes = number
                case "max_pending_pubsub_bytes": limits.maxPendingPubSubBytes = number
                default: throw .invalid("\(source): unknown setting limits.\(name)")
                }
            }
        default:
            throw .invalid("\(source): unknown setting '\(key)'")
        }
    }

    /// `users:` is a list of `{name, password_hash | password_hashes, read_only}`.
    private static func parseUsers(_ value: Node, source: String) throws(ConfigurationError) -> [ClientUser] {
        let shape = "\(source): users must be a list of {name, password_hash, read_only}"
        guard let items = value.sequence else { throw .invalid(shape) }
        var users: [ClientUser] = []
        for item in items {
            guard let mapping = item.mapping else { throw .invalid(shape) }
            var user = ClientUser(name: "", passwordHashes: [])
            for (k, v) in mapping {
                switch k.string {
                case "name":
                    guard let name = v.string else { throw .invalid("\(source): users.name must be a string") }
                    user.name = name
                case "password_hash":
                    guard let text = v.string else { throw .invalid("\(source): users.password_hash must be a string") }
                    user.passwordHashes.append(try PasswordHash(parsing: text))
                case "password_hashes":
                    guard let list = v.sequence else { throw .invalid("\(source): users.password_hashes must be a list") }
                    for entry in list {
                        guard let text = entry.string else { throw .invalid("\(source): users.password_hashes must be strings") }
                        user.passwordHashes.append(try PasswordHash(parsing: text))
                    }
                case "read_only":
                    guard let flag = v.bool else { throw .invalid("\(source): users.read_only must be true or false") }
                    user.readOnly = flag
                default:
                    throw .invalid("\(source): unknown setting users.\(k.string ?? "?")")
                }
            }
            users.append(user)
        }
        return users
    }
}
