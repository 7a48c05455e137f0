import ArgumentParser
import Daemon
import Foundation
import Logging

/// `crdtd`: the replication daemon (`crdtd serve`, the default) and its helpers.
@main
struct CRDTD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crdtd",
        abstract: "A coordination-free replication daemon: CRDT counters, sets, registers and maps over the Redis protocol.",
        subcommands: [Serve.self, HashPassword.self],
        defaultSubcommand: Serve.self)
}

/// `crdtd hash-password`: prints the `password_hash` of a config `users:` entry.
struct HashPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Read a password on standard input (one line) and print its hash for users: in the config.",
        discussion: """
            The hash is PBKDF2-SHA256 with a random salt: pbkdf2-sha256$ROUNDS$SALT$HASH. The password is \
            read from standard input so that it stays out of the shell history: \
            `printf %s "$PASSWORD" | crdtd hash-password`.
            """)

    @Option(help: ArgumentHelp("PBKDF2 rounds (at least \(PasswordHash.minimumRounds)).", valueName: "n"))
    var rounds = PasswordHash.defaultRounds

    func validate() throws {
        guard rounds >= PasswordHash.minimumRounds else {
            throw ValidationError("--rounds must be at least \(PasswordHash.minimumRounds)")
        }
    }

    func run() throws {
        guard var line = readLine(strippingNewline: true) else {
            throw ValidationError("no password on standard input: printf %s \"$PASSWORD\" | crdtd hash-password")
        }
        if line.hasSuffix("\r") { line.removeLast() }
        guard !line.isEmpty else { throw ValidationError("the password is empty") }
        print(PasswordHash(hashing: Array(line.utf8), rounds: rounds))
    }
}

/// `crdtd serve`: the replication daemon. Settings come from defaults, then `--config`, then these flags.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "A coordination-free replication daemon: CRDT counters, sets, registers and maps over the Redis protocol.",
        discussion: """
            Every node accepts every write, even during a partition; nodes exchange CRDT deltas and converge once \
            messages flow. Settings are read from --config (YAML; see config/crdtd.example.yaml) and overridden by \
            flags. SIGTERM or SIGINT shuts down gracefully: stop accepting, finish in-flight work, flush, close the \
            database, exit 0.
            """)

    @Option(name: .long, help: ArgumentHelp("YAML configuration file.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Unique name of this node in the cluster (required).", valueName: "name"))
    var nodeID: String?

    @Option(name: .long, help: ArgumentHelp("Directory for the database (created if missing). Default ./data.", valueName: "dir"))
    var dataDir: String?

    @Option(name: .long, help: ArgumentHelp("Redis-protocol listen address. Default 127.0.0.1:6379.", valueName: "host:port"))
    var clientAddr: String?

    @Option(name: .long, help: ArgumentHelp("Peer listen address, TCP and UDP (an IP address). Default 127.0.0.1:7946.", valueName: "host:port"))
    var peerAddr: String?

    @Option(name: .customLong("seed"), help: ArgumentHelp("A peer to join through (repeatable).", valueName: "host:port"))
    var seeds: [String] = []

    @Option(name: .long, help: ArgumentHelp("Prometheus /metrics listen address. Off by default.", valueName: "host:port"))
    var metricsAddr: String?

    @Option(name: .long, help: ArgumentHelp("Cluster keyring: one base64 AES key (16, 24 or 32 bytes) per line, primary first.", valueName: "file"))
    var clusterKeyFile: String?

    @Option(name: .long, help: ArgumentHelp("Cluster label bound into every frame. Default crdtd.", valueName: "label"))
    var clusterLabel: String?

    @Option(name: .long, help: ArgumentHelp("Client passwords of the default user, one per line; clients must AUTH.", valueName: "file"))
    var clientPasswordFile: String?

    @Option(name: .long, help: ArgumentHelp("Where CRDT.BACKUP writes. Default DATA_DIR/backups.", valueName: "dir"))
    var backupDir: String?

    @Option(name: .long, help: ArgumentHelp("""
        Start from this backup (from CRDT.BACKUP or crdtctl backup) in an empty data directory: the node takes \
        a new replica identity and catches up from its peers.
        """, valueName: "file"))
    var restore: String?

    @Flag(name: .long, help: "Run without a cluster key: peer traffic unauthenticated and in clear (tests only).")
    var insecure = false

    @Flag(name: .long, help: "Accept CRDT.PARTITION and CRDT.HEAL from clients (partition tests only).")
    var allowFaultInjection = false

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical. Default info.", valueName: "level"))
    var logLevel: String?

    @Option(name: .long, help: ArgumentHelp("normal (survives kill -9) or full (also survives power loss). Default normal.", valueName: "mode"))
    var durability: String?

    @Option(name: .long, help: ArgumentHelp("Gossip round period in milliseconds. Default 200.", valueName: "ms"))
    var gossipInterval: Int?

    @Option(name: .long, help: ArgumentHelp("Random peers each new delta is pushed to. Default 3.", valueName: "n"))
    var fanout: Int?

    func resolvedConfiguration() throws -> Configuration {
        var configuration = Configuration()
        if let config { try configuration.apply(yamlFile: config) }
        if let nodeID { configuration.nodeID = nodeID }
        if let dataDir { configuration.dataDir = dataDir }
        if let clientAddr { configuration.clientAddr = clientAddr }
        if let peerAddr { configuration.peerAddr = peerAddr }
        if !seeds.isEmpty { configuration.seeds = seeds }
        if let metricsAddr { configuration.metricsAddr = metricsAddr }
        if let clusterKeyFile { configuration.clusterKeyFile = clusterKeyFile }
        if let clusterLabel { configuration.clusterLabel = clusterLabel }
        if let clientPasswordFile { configuration.clientPasswordFile = clientPasswordFile }
        if let backupDir { configuration.backupDir = backupDir }
        if let restore { configuration.restoreFrom = restore }
        if insecure { configuration.insecure = true }
        if allowFaultInjection { configuration.allowFaultInjection = true }
        if let logLevel { configuration.logLevel = logLevel }
        if let durability { configuration.durability = durability }
        if let gossipInterval { configuration.gossipIntervalMilliseconds = gossipInterval }
        if let fanout { configuration.fanout = fanout }
        try configuration.validate()
        guard Logger.Level(rawValue: configuration.logLevel) != nil else {
            throw ValidationError("log level '\(configuration.logLevel)' must be one of trace, debug, info, notice, warning, error, critical")
        }
        return configuration
    }

    func run() throws {
        let configuration: Configuration
        do {
            configuration = try resolvedConfiguration()
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "crdtd")
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        let code = Daemon.run(configuration, logger: logger, allocator: .jemalloc())
        if code != 0 { throw ExitCode(code) }
    }
}
