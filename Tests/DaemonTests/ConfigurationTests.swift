import Daemon
import Testing

@Suite struct ConfigurationTests {
    @Test func yamlSettingsApplyOverDefaults() throws {
        var c = Configuration()
        try c.apply(yaml: """
            node_id: n7
            data_dir: /var/lib/crdtd
            client_addr: 127.0.0.1:7001
            peer_addr: "[::1]:7101"
            seeds: [127.0.0.1:7102, 127.0.0.1:7103]
            insecure: true
            durability: full
            gossip_interval_ms: 50
            limits:
              max_clients: 3
              max_pending_pubsub_bytes: 2048
            """)
        #expect(c.nodeID == "n7")
        #expect(c.peerAddr == "[::1]:7101")
        #expect(c.seeds == ["127.0.0.1:7102", "127.0.0.1:7103"])
        #expect(c.durability == "full")
        #expect(c.gossipIntervalMilliseconds == 50)
        #expect(c.limits.maxClients == 3)
        #expect(c.limits.maxPendingPubSubBytes == 2048)
        #expect(c.limits.maxBulkBytes == Configuration.Limits().maxBulkBytes, "unset limits keep their defaults")
        try c.validate()
    }

    @Test(arguments: [
        ("node_idd: x", "unknown setting 'node_idd'"),
        ("fanout: many", "fanout must be an integer"),
        ("seeds: 127.0.0.1:1", "seeds must be a list"),
        ("limits:\n  max_clientz: 1", "unknown setting limits.max_clientz"),
        ("- a\n- b", "top level must be a mapping"),
    ])
    func badYAMLIsRefusedWithTheSettingNamed(yaml: String, message: String) {
        var c = Configuration()
        do {
            try c.apply(yaml: yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.description.contains(message), "got: \(error)")
        }
    }

    @Test func validationSaysWhatToChange() {
        func failure(_ change: (inout Configuration) -> Void) -> String {
            var c = Configuration()
            c.nodeID = "n1"
            c.insecure = true
            change(&c)
            do {
                try c.validate()
                return "valid"
            } catch {
                return error.description
            }
        }
        #expect(failure { _ in } == "valid")
        #expect(failure { $0.nodeID = "" }.contains("node_id is required"))
        #expect(failure { $0.clientAddr = "nohost" }.contains("client_addr"))
        #expect(failure { $0.seeds = ["1.2.3.4:99999"] }.contains("seed"))
        #expect(failure { $0.insecure = false }.contains("--cluster-key-file"))
        #expect(failure { $0.durability = "sometimes" }.contains("durability"))
        #expect(failure { $0.limits.maxBulkBytes = 100 << 20 }.contains("max_bulk_bytes"))
        #expect(failure { $0.fanout = 0 }.contains("fanout"))
        #expect(failure { $0.limits.maxPendingPubSubBytes = 10 }.contains("max_pending_pubsub_bytes"))
        let hash = PasswordHash(hashing: Array("pw".utf8), rounds: PasswordHash.minimumRounds)
        #expect(failure { $0.users = [ClientUser(name: "a", passwordHashes: [hash]), ClientUser(name: "a", passwordHashes: [hash])] }
            .contains("'a' is listed twice"))
        #expect(failure { $0.users = [ClientUser(name: "a b", passwordHashes: [hash])] }.contains("without spaces"))
        #expect(failure { $0.users = [ClientUser(name: "a", passwordHashes: [])] }.contains("crdtd hash-password"))
        #expect(failure {
            $0.users = [ClientUser(name: "default", passwordHashes: [hash])]
            $0.clientPasswordFile = "/run/secrets/pw"
        }.contains("keep one of the two"))
    }

    @Test func usersAreReadFromYAML() throws {
        let hash = PasswordHash(hashing: Array("pw".utf8), rounds: PasswordHash.minimumRounds)
        var c = Configuration()
        try c.apply(yaml: """
            client_password_file: /run/secrets/crdtd-password
            users:
              - name: app
                password_hash: "\(hash)"
              - name: dashboard
                password_hashes: ["\(hash)", "\(hash)"]
                read_only: true
            """)
        #expect(c.clientPasswordFile == "/run/secrets/crdtd-password")
        #expect(c.users == [ClientUser(name: "app", passwordHashes: [hash]),
                            ClientUser(name: "dashboard", passwordHashes: [hash, hash], readOnly: true)])
        for (yaml, message) in [
            ("users: {name: app}", "users must be a list"),
            ("users:\n  - name: app\n    password: plain", "unknown setting users.password"),
            ("users:\n  - name: app\n    password_hash: md5$x", "expected pbkdf2-sha256"),
            ("users:\n  - name: app\n    read_only: maybe", "read_only must be true or false"),
        ] {
            var bad = Configuration()
            #expect(throws: ConfigurationError.self, "\(yaml)") { try bad.apply(yaml: yaml) }
            do { try bad.apply(yaml: yaml) } catch { #expect(error.description.contains(message), "\(error)") }
        }
    }
}
