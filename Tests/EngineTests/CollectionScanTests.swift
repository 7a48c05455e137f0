import CRDT
import RESP
import Testing
@testable import Engine

/// SSCAN, HSCAN and ZSCAN over large collections: cursors in a stable hash order, pages read from an
/// order built once per iteration, and Redis's guarantee that an element present for the whole
/// iteration is returned.
@Suite struct CollectionScanTests {
    private func fill(_ h: inout Harness, _ command: String, _ key: String, _ range: Range<Int>) {
        for start in stride(from: range.lowerBound, to: range.upperBound, by: 500) {
            let members = (start..<min(range.upperBound, start + 500)).map { "member-\($0)" }
            switch command {
            case "HSET": h.run([command, key].map { Array($0.utf8) } + members.flatMap { [Array($0.utf8), Array("v-\($0)".utf8)] })
            case "ZADD": h.run([command, key].map { Array($0.utf8) } + members.enumerated().flatMap { [Array("\($0.offset)".utf8), Array($0.element.utf8)] })
            default: h.run([command, key].map { Array($0.utf8) } + members.map { Array($0.utf8) })
            }
        }
    }

    /// One page: the next cursor and the page's entries as strings.
    private func page(_ h: inout Harness, _ words: [String]) -> (UInt64, [String]) {
        guard case .array(let parts) = h.run(words.map { Array($0.utf8) }), parts.count == 2,
              case .bulkString(let cursor) = parts[0], case .array(let entries) = parts[1] else {
            Issue.record("\(words) did not answer a cursor and a page")
            return (0, [])
        }
        return (UInt64(String(decoding: cursor, as: UTF8.self))!,
                entries.map { if case .bulkString(let bytes) = $0 { String(decoding: bytes, as: UTF8.self) } else { "?" } })
    }

    /// Walks a whole iteration with `between` run after each page; returns the pages.
    private func iterate(_ h: inout Harness, _ command: String, _ key: String, count: Int, extra: [String] = [],
                         between: (inout Harness, Int) -> Void = { _, _ in }) -> [[String]] {
        var cursor: UInt64 = 0
        var pages: [[String]] = []
        repeat {
            let (next, entries) = page(&h, [command, key, String(cursor), "COUNT", String(count)] + extra)
            pages.append(entries)
            between(&h, pages.count)
            cursor = next
        } while cursor != 0 && pages.count < 100_000
        return pages
    }

    @Test func aFullIterationReturnsEveryElementOnceInPagesOfAboutCount() throws {
        var h = try Harness()
        fill(&h, "SADD", "s", 0..<5000)
        let pages = iterate(&h, "SSCAN", "s", count: 100)
        let all = pages.flatMap { $0 }
        #expect(all.count == 5000 && Set(all).count == 5000, "\(all.count) returned, \(Set(all).count) distinct")
        #expect(pages.count >= 50 && pages.count <= 51, "\(pages.count) pages")
        #expect(pages.dropLast().allSatisfy { $0.count >= 100 && $0.count <= 101 })
        // Not byte order: the hash order (which is what lets a page start anywhere without sorting).
        #expect(all != all.sorted())
    }

    @Test func everyElementPresentForTheWholeIterationIsReturnedWhileOthersComeAndGo() throws {
        var h = try Harness()
        fill(&h, "SADD", "s", 0..<3000)
        var removed = Set<String>()
        let pages = iterate(&h, "SSCAN", "s", count: 50) { h, page in
            // Between pages: 20 new members, and 10 of the original ones removed.
            let added = (0..<20).map { "new-\(page)-\($0)" }
            h.run(["SADD", "s"].map { Array($0.utf8) } + added.map { Array($0.utf8) })
            let gone = (0..<10).map { "member-\((page * 10 + $0) % 3000)" }
            removed.formUnion(gone)
            h.run(["SREM", "s"].map { Array($0.utf8) } + gone.map { Array($0.utf8) })
        }
        let returned = Set(pages.flatMap { $0 })
        let kept = (0..<3000).map { "member-\($0)" }.filter { !removed.contains($0) }
        #expect(kept.allSatisfy(returned.contains), "\(kept.filter { !returned.contains($0) }.count) kept members missed")
        #expect(h.engine.scanOrderBuilds == 1, "one order for the whole iteration: \(h.engine.scanOrderBuilds) built")
    }

    @Test func theOrderIsBuiltOncePerIterationOfAChangedKeyOnly() throws {
        var h = try Harness()
        fill(&h, "SADD", "s", 0..<2000)
        _ = iterate(&h, "SSCAN", "s", count: 100)
        _ = iterate(&h, "SSCAN", "s", count: 100)
        #expect(h.engine.scanOrderBuilds == 1, "an unchanged key keeps its order")
        h.run("SADD", "s", "one-more")
        let all = iterate(&h, "SSCAN", "s", count: 100).flatMap { $0 }
        #expect(h.engine.scanOrderBuilds == 2 && all.contains("one-more") && all.count == 2001)
    }

    @Test func aCursorMeansTheSameAfterARestart() throws {
        var h = try Harness()
        var records: [DurableRecord] = []
        for start in stride(from: 0, to: 1000, by: 250) {
            h.run(["SADD", "s"].map { Array($0.utf8) } + (start..<(start + 250)).map { Array("member-\($0)".utf8) })
            records += h.lastOutput.records
        }
        let (cursor, first) = page(&h, ["SSCAN", "s", "0", "COUNT", "300"])
        #expect(cursor != 0 && first.count >= 300)
        var restarted = try Harness(recovery: recovery(from: records))
        var rest: [String] = []
        var next = cursor
        while next != 0 {
            let (after, entries) = page(&restarted, ["SSCAN", "s", String(next), "COUNT", "300"])
            rest += entries
            next = after
        }
        #expect(Set(first).isDisjoint(with: rest) && Set(first + rest).count == 1000)
    }

    @Test func hashesAndSortedSetsPageTheSameWay() throws {
        var h = try Harness()
        fill(&h, "HSET", "h", 0..<1500)
        fill(&h, "ZADD", "z", 0..<1500)
        let fields = iterate(&h, "HSCAN", "h", count: 64).flatMap { $0 }
        #expect(fields.count == 3000)
        let pairs = stride(from: 0, to: fields.count, by: 2).map { (fields[$0], fields[$0 + 1]) }
        #expect(Set(pairs.map(\.0)).count == 1500 && pairs.allSatisfy { $0.1 == "v-" + $0.0 })
        let names = iterate(&h, "HSCAN", "h", count: 64, extra: ["NOVALUES"]).flatMap { $0 }
        #expect(Set(names) == Set(pairs.map(\.0)) && names.count == 1500)
        let members = iterate(&h, "ZSCAN", "z", count: 64).flatMap { $0 }
        #expect(members.count == 3000 && Set(stride(from: 0, to: 3000, by: 2).map { members[$0] }).count == 1500)
        #expect(h.run("SSCAN", "h", "0").errorText.hasPrefix("WRONGTYPE"))
        let filtered = iterate(&h, "HSCAN", "h", count: 64, extra: ["MATCH", "member-1??", "NOVALUES"]).flatMap { $0 }
        #expect(Set(filtered) == Set((100..<200).map { "member-\($0)" }))
    }

    @Test func smallCollectionsComeWholeInByteOrder() throws {
        var h = try Harness()
        fill(&h, "SADD", "s", 0..<100)
        let (cursor, all) = page(&h, ["SSCAN", "s", "0", "COUNT", "10"])
        #expect(cursor == 0 && all == (0..<100).map { "member-\($0)" }.sorted())
        // A cursor of a larger iteration on a key that shrank: everything, and the end.
        let (end, rest) = page(&h, ["SSCAN", "s", "12345", "COUNT", "10"])
        #expect(end == 0 && rest.count == 100)
    }
    /// The first page of a large collection that changed since its order was built is answered off the
    /// engine thread; the worker's order then serves the later pages, so the engine never builds one.
    @Test func theFirstPageOfALargeChangedCollectionIsBuiltOffTheEngine() throws {
        var h = try Harness()
        let count = Engine.deferredReplyElements + 500
        fill(&h, "SADD", "s", 0..<count)
        fill(&h, "HSET", "h", 0..<count)
        fill(&h, "ZADD", "z", 0..<count)
        for (command, key, entriesPerElement) in [("SSCAN", "s", 1), ("HSCAN", "h", 2), ("ZSCAN", "z", 2)] {
            let builds = h.engine.scanOrderBuilds
            let first = h.engine.handle(.clientCommand(h.client, [command, key, "0", "COUNT", "100"].map { Array($0.utf8) }))
            guard case .deferredReply(_, let deferred)? = (first.immediate + first.effects).first else {
                Issue.record("\(command): expected a deferred first page, got \(first.immediate + first.effects)")
                continue
            }
            // Written after the read: the worker's page is of the copy taken at the read.
            let write = command == "SSCAN" ? ["SADD", key, "after-the-read"]
                : command == "HSCAN" ? ["HSET", key, "after-the-read", "v"] : ["ZADD", key, "1", "after-the-read"]
            h.run(write.map { Array($0.utf8) })
            var parser = RESPReplyParser()
            try parser.append(deferred.encode())
            guard case .array(let parts)? = try parser.next(), case .bulkString(let cursorBytes) = parts[0],
                  case .array(let entries) = parts[1] else {
                Issue.record("\(command): the deferred page is not a cursor and a page")
                continue
            }
            func elements(_ page: [RESPReply]) -> [String] {
                stride(from: 0, to: page.count, by: entriesPerElement).map {
                    if case .bulkString(let bytes) = page[$0] { String(decoding: bytes, as: UTF8.self) } else { "?" }
                }
            }
            var seen = elements(entries)
            var cursor = UInt64(String(decoding: cursorBytes, as: UTF8.self))!
            #expect(seen.count >= 100 && cursor != 0 && !seen.contains("after-the-read"))
            while cursor != 0 {
                let (next, page) = page(&h, [command, key, String(cursor), "COUNT", "100"])
                #expect(!(h.lastOutput.immediate + h.lastOutput.effects).contains { if case .deferredReply = $0 { true } else { false } },
                        "\(command): a later page is the engine's, from the adopted order")
                seen += stride(from: 0, to: page.count, by: entriesPerElement).map { page[$0] }
                cursor = next
            }
            seen.removeAll { $0 == "after-the-read" }  // added during the iteration: may be returned or not
            #expect(h.engine.scanOrderBuilds == builds, "\(command): the worker's order was adopted, none built here")
            #expect(h.engine.pendingScanOrders.isEmpty)
            #expect(Set(seen).count == count && seen.count == count, "\(command): \(seen.count) returned, \(Set(seen).count) distinct, of \(count)")
            // Changed since its order was built (the write above): the next first page is deferred again;
            // once that order is in and the key stays as it is, a first page is the engine's own.
            let changed = h.engine.handle(.clientCommand(h.client, [command, key, "0"].map { Array($0.utf8) }))
            guard case .deferredReply(_, let rebuild)? = (changed.immediate + changed.effects).first else {
                Issue.record("\(command): the changed key's first page is not deferred")
                continue
            }
            _ = rebuild.encode()
            let again = h.engine.handle(.clientCommand(h.client, [command, key, "0"].map { Array($0.utf8) }))
            #expect(!(again.immediate + again.effects).contains { if case .deferredReply = $0 { true } else { false } })
        }
    }
}
