use super::*;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn fields(l: &HeaderList) -> Vec<(String, String)> {
    l.iter()
        .map(|f| {
            (String::from_utf8_lossy(f.name).into_owned(), String::from_utf8_lossy(f.value).into_owned())
        })
        .collect()
}

fn table(d: &HpackDecoder) -> Vec<(String, String)> {
    (0..d.table_len().0)
        .map(|i| {
            let (n, v) = d.table_entry(i).unwrap();
            (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned())
        })
        .collect()
}

#[test]
fn packed_entries_keep_offset_flags_and_class() {
    // Every role and mark combination, each flag, at the largest offset an arena reaches.
    for role in 0..=FieldRole::LAST as u8 {
        for marks in 0..16u8 {
            for (secret, unknown, dirty, lean) in
                [(false, false, false, false), (true, true, true, true), (true, false, true, false)]
            {
                let class = FieldClass { secret, marks, role: FieldRole::from_bits(role), lean };
                let off = 2 * MAX_TABLE_BYTES - 1;
                let e = Entry::new(off, 65_000, 471, unknown, class, dirty);
                let got = (e.off(), e.name_len, e.value_len, e.name_unknown(), e.class(), e.dirty());
                assert_eq!(got, (off, 65_000, 471, unknown, class, dirty));
                assert_eq!(e.class().role as u8, role);
                assert_eq!(e.read_when_lean(), class.read_when_lean());
            }
        }
    }
    assert_eq!(FieldRole::from_bits(FieldRole::LAST as u8 + 1), FieldRole::Other);
}

#[test]
fn arena_offsets_stay_under_twice_the_largest_table() {
    // Entries of changing sizes through a 64 KiB table: evictions, compactions, growths.
    let mut t = DynamicTable { capacity: MAX_TABLE_BYTES as u32, ..DynamicTable::default() };
    let mut body = b"n\",\"".to_vec();
    for i in 0..5_000usize {
        body.truncate(4);
        body.resize(4 + (i * 7919) % 20_000, b'v');
        t.insert(&body, 1, body.len() - 4, false, FieldClass::default(), false);
        for (k, e) in t.entries.iter().enumerate() {
            assert!(e.off() + e.body_len(false) <= t.arena.len() && t.arena.len() < 2 * MAX_TABLE_BYTES);
            let (_, b) = t.get(t.entries.len() - 1 - k).unwrap();
            assert_eq!(&b[..4], b"n\",\"");
        }
    }
}

#[test]
fn a_growing_arena_keeps_only_what_lives() {
    // 99-byte bodies (128 bytes of table size) in a 4 KiB table: 32 live; the arena grows
    // 1 -> 2 -> 4 KiB with nothing evicted, then, at the 42nd insert, from 4 KiB with 10
    // evicted bodies before 31 live ones, too many to compact in place (the 3/4 rule): the
    // new 8 KiB block holds the live bodies only, from offset 0.
    let mut t = DynamicTable { capacity: DEFAULT_TABLE_BYTES as u32, ..DynamicTable::default() };
    let body = |i: usize| format!("n\",\"{i:0>95}").into_bytes();
    for i in 0..42 {
        t.insert(&body(i), 1, 95, false, FieldClass::default(), false);
        assert_eq!(t.entries.len(), (i + 1).min(32));
    }
    assert_eq!((t.entries.front().map(Entry::off), t.arena.len(), t.arena.capacity()), (Some(0), 3168, 8192));
    for k in 0..32 {
        assert_eq!(t.get(k).map(|(_, b)| b.to_vec()), Some(body(41 - k)), "entry {k}");
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect()
}

/// Decodes `blocks` in order, checking the fields, the table (newest first) and its size
/// after each.
type Step<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)], usize);

fn run(d: &mut HpackDecoder, steps: &[Step<'_>]) {
    let mut out = HeaderList::new();
    for (i, (block, want, tbl, size)) in steps.iter().enumerate() {
        d.decode(&hex(block), &mut out).unwrap_or_else(|e| panic!("block {i}: {e}"));
        assert_eq!(fields(&out), pairs(want), "block {i}");
        assert_eq!(table(d), pairs(tbl), "table after block {i}");
        assert_eq!(d.table_len().1, *size, "size after block {i}");
        assert_eq!(out.unknown, 0);
    }
}

#[test]
fn rfc7541_c2_field_representations() {
    let mut d = HpackDecoder::new(1 << 16);
    let mut out = HeaderList::new();
    // C.2.1 literal with indexing.
    d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[("custom-key", "custom-header")]));
    assert_eq!((table(&d), d.table_len().1), (pairs(&[("custom-key", "custom-header")]), 55));
    // C.2.2 literal without indexing.
    let mut d = HpackDecoder::new(1 << 16);
    d.decode(&hex("040c 2f73 616d 706c 652f 7061 7468"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[(":path", "/sample/path")]));
    assert_eq!(d.table_len(), (0, 0));
    // C.2.3 never indexed: the flag is kept.
    d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[("password", "secret")]));
    assert!(out.get(0).unwrap().never_indexed);
    assert_eq!(d.table_len(), (0, 0));
    // C.2.4 indexed.
    d.decode(&hex("82"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[(":method", "GET")]));
    assert!(!out.get(0).unwrap().never_indexed);
}

const REQ1: &[(&str, &str)] =
    &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const T1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const T2: &[(&str, &str)] = &[("cache-control", "no-cache"), (":authority", "www.example.com")];
const T3: &[(&str, &str)] =
    &[("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")];

#[test]
fn rfc7541_c3_requests_without_huffman() {
    run(
        &mut HpackDecoder::new(1 << 16),
        &[
            ("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", REQ1, T1, 57),
            ("8286 84be 5808 6e6f 2d63 6163 6865", REQ2, T2, 110),
            ("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", REQ3, T3, 164),
        ],
    );
}

#[test]
fn rfc7541_c4_requests_with_huffman() {
    run(
        &mut HpackDecoder::new(1 << 16),
        &[
            ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQ1, T1, 57),
            ("8286 84be 5886 a8eb 1064 9cbf", REQ2, T2, 110),
            ("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", REQ3, T3, 164),
        ],
    );
}

#[test]
fn a_lean_decoder_lists_what_the_session_reads_and_keeps_values_it_does_not_as_lengths() {
    // RFC 7541 C.4 (Huffman) under --summary-only: `:scheme`, `cache-control` and
    // `custom-key` are neither stored nor read then. The table holds the same entries,
    // sizes and indices; the values of those it does not read are kept as lengths only.
    let mut d = HpackDecoder::new(1 << 16).lean(true);
    let mut out = HeaderList::new();
    let blocks = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];
    let lean = [(":method", "GET"), (":path", "/"), (":authority", "www.example.com")];
    let lean3 = [(":method", "GET"), (":path", "/index.html"), (":authority", "www.example.com")];
    let tables = [
        vec![(":authority", "www.example.com")],
        vec![("cache-control", ""), (":authority", "www.example.com")],
        vec![("custom-key", ""), ("cache-control", ""), (":authority", "www.example.com")],
    ];
    let wants = [&lean, &lean, &lean3];
    for (i, ((block, want), (tbl, size))) in
        blocks.iter().zip(wants).zip(tables.iter().zip([57, 110, 164])).enumerate()
    {
        d.decode(&hex(block), &mut out).unwrap();
        assert_eq!(fields(&out), pairs(want), "block {i}");
        assert_eq!((table(&d), d.table_len().1), (pairs(tbl), size), "block {i}");
        // `cache-control: no-cache` (9 + 8 bytes) is counted in the list's size.
        let all: &[(&str, &str)] = [REQ1, REQ2, REQ3][i];
        let bytes: usize = all.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert_eq!(out.list_bytes, bytes as u64, "block {i}");
    }
    // An invalid Huffman value the session would not read still fails the block (EOS
    // inside the string), as it does when decoded in full.
    let bad = hex("4088 25a8 49e9 5ba9 7d7f 84ff ffff ff");
    let mut full = HpackDecoder::new(1 << 16);
    assert_eq!(full.decode(&bad, &mut out), Err(HpackError::Huffman));
    assert_eq!(d.decode(&bad, &mut out), Err(HpackError::Huffman));
}

const DATE1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

/// C.5 and C.6: responses with a 256-byte table, with evictions.
fn responses(blocks: [&str; 3]) {
    let mut d = HpackDecoder::new(1 << 16);
    d.table.capacity = 256;
    let r1 = [(":status", "302"), ("cache-control", "private"), ("date", DATE1), ("location", LOC)];
    let t1 = [("location", LOC), ("date", DATE1), ("cache-control", "private"), (":status", "302")];
    let r2 = [(":status", "307"), ("cache-control", "private"), ("date", DATE1), ("location", LOC)];
    let t2 = [(":status", "307"), ("location", LOC), ("date", DATE1), ("cache-control", "private")];
    let r3 = [
        (":status", "200"),
        ("cache-control", "private"),
        ("date", DATE2),
        ("location", LOC),
        ("content-encoding", "gzip"),
        ("set-cookie", COOKIE),
    ];
    let t3 = [("set-cookie", COOKIE), ("content-encoding", "gzip"), ("date", DATE2)];
    run(&mut d, &[(blocks[0], &r1, &t1, 222), (blocks[1], &r2, &t2, 222), (blocks[2], &r3, &t3, 215)]);
}

#[test]
fn rfc7541_c5_responses_without_huffman() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn rfc7541_c6_responses_with_huffman() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn size_updates_follow_the_encoder_and_flag_the_limit() {
    let mut d = HpackDecoder::new(1 << 16);
    let mut out = HeaderList::new();
    d.decode(&hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"), &mut out).unwrap();
    // Size update to 0 (0x20) empties the table; then to 100 (0x3f 0x45).
    d.decode(&hex("20 3f45 82"), &mut out).unwrap();
    assert_eq!((d.table_len(), d.capacity(), out.over_limit), ((0, 0), 100, false));
    // Above the receiver's limit: flagged, applied; above the hard cap: capped.
    d.set_table_limit(50);
    d.decode(&hex("3f45"), &mut out).unwrap();
    assert!(out.over_limit);
    d.decode(&hex("3fe1 ffff 0f"), &mut out).unwrap();
    assert_eq!(d.capacity(), MAX_TABLE_BYTES);
}

#[test]
fn mid_stream_reports_unknown_fields_then_becomes_exact() {
    // The encoder's table has an entry from before the capture (index 62) when we join.
    let mut d = HpackDecoder::mid_stream(1 << 16);
    let mut out = HeaderList::new();
    // :method GET, index 62 (pre-capture), then a literal with indexing (custom-key).
    d.decode(&hex("82 be 400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"), &mut out)
        .unwrap();
    assert_eq!(fields(&out), pairs(&[(":method", "GET"), ("custom-key", "custom-header")]));
    assert_eq!(out.unknown, 1);
    assert!(!d.is_exact());
    // Now 62 is custom-key (ours), 63 the old unknown entry: alignment kept.
    d.decode(&hex("be bf"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[("custom-key", "custom-header")]));
    assert_eq!(out.unknown, 1);
    // A literal that names the unknown entry and is indexed: its value is stored, its name
    // is unknown; referencing it is unknown too.
    d.decode(&hex("7f01 0376 616c be"), &mut out).unwrap();
    assert_eq!((out.len(), out.unknown), (0, 2));
    // A size update to 0 empties the encoder's table: exact again; an index past the table
    // is then an error.
    d.decode(&hex("20 3f e1 1f"), &mut out).unwrap();
    assert!(d.is_exact());
    assert_eq!(d.decode(&hex("be"), &mut out), Err(HpackError::BadIndex(62)));
    assert!(!d.is_exact(), "an error forgets the table");
}

/// A block of `n` literals with incremental indexing, new name `x`, a 100-byte value
/// starting with the entry's number from `first` (32 + 1 + 100 = 133 bytes each), and
/// the values.
fn inserts(first: usize, n: usize) -> (Vec<u8>, Vec<(String, String)>) {
    let mut block = Vec::new();
    let mut want = Vec::new();
    for i in first..first + n {
        let value = format!("{i:03}{}", "v".repeat(97));
        block.extend_from_slice(&[0x40, 1, b'x', 100]);
        block.extend_from_slice(value.as_bytes());
        want.push(("x".to_owned(), value));
    }
    (block, want)
}

#[test]
fn filling_the_table_makes_a_mid_stream_decoder_exact_once_its_capacity_is_known() {
    let mut d = HpackDecoder::mid_stream(1 << 16);
    let mut out = HeaderList::new();
    // The encoder re-announces 4096 (0x3f 0xe1 0x1f): the capacity is known, the
    // pre-capture entries may still fill it.
    d.decode(&hex("3fe1 1f"), &mut out).unwrap();
    assert!(!d.is_exact());
    let (block, want) = inserts(0, 30);
    d.decode(&block, &mut out).unwrap();
    assert_eq!(fields(&out), want);
    // 30 * 133 = 3990 bytes: 106 left, room for a pre-capture entry.
    assert!(!d.is_exact());
    let (block, want) = inserts(30, 1);
    d.decode(&block, &mut out).unwrap();
    assert_eq!(fields(&out), want);
    // Entry 0 had to go: every older entry went before it.
    assert!(d.is_exact());
    assert_eq!(d.table_len(), (30, 30 * 133));
    d.decode(&hex("be db"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[("x", &want[0].1), ("x", &format!("001{}", "v".repeat(97)))]));
    assert_eq!(d.decode(&hex("dc"), &mut out), Err(HpackError::BadIndex(92)));
}

#[test]
fn an_encoder_table_larger_than_assumed_is_not_taken_as_exact() {
    // The encoder raised its capacity to 8192 before the capture and holds entries from
    // then: our inserts fill the assumed 4096 bytes without evicting them.
    let mut d = HpackDecoder::mid_stream(1 << 16);
    let mut out = HeaderList::new();
    let (block, want) = inserts(0, 31);
    d.decode(&block, &mut out).unwrap();
    assert_eq!(fields(&out), want);
    assert!(!d.is_exact(), "4096 bytes of inserts prove nothing with an assumed capacity");
    assert_eq!(d.table_len(), (30, 30 * 133));
    // Index 92 is entry 0, evicted by us but kept by the encoder; 157 a pre-capture
    // entry: both unknown, neither an error.
    d.decode(&hex("dc ff1e be"), &mut out).unwrap();
    assert_eq!((fields(&out), out.unknown), (pairs(&[("x", &want[30].1)]), 2));
    // The encoder re-announces 8192 (0x3f 0xe1 0x3f): known now, but our 3990 bytes
    // leave room for what we lack.
    d.decode(&hex("3fe1 3f dc"), &mut out).unwrap();
    assert_eq!((d.capacity(), out.len(), out.unknown), (8192, 0, 1));
    assert!(!d.is_exact());
    // 31 more fit in 8192 bytes (61 * 133 = 8113, 79 left); the 32nd evicts one of ours.
    let (block, _) = inserts(31, 31);
    d.decode(&block, &mut out).unwrap();
    assert!(!d.is_exact());
    let (block, want) = inserts(62, 1);
    d.decode(&block, &mut out).unwrap();
    assert!(d.is_exact());
    assert_eq!(d.table_len(), (61, 61 * 133));
    d.decode(&hex("be fa"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[("x", &want[0].1), ("x", &format!("002{}", "v".repeat(97)))]));
    assert_eq!(d.decode(&hex("fb"), &mut out), Err(HpackError::BadIndex(123)));
}

#[test]
fn an_entry_named_after_a_pre_capture_entry_keeps_the_decoder_inexact() {
    // The case a random capture start found: the encoder holds ("te", ...) from before
    // the capture; one of our entries is evicted by a size update, so every pre-capture
    // entry is gone, but an entry we hold has the pre-capture name and the encoder may
    // reference it again.
    let mut d = HpackDecoder::mid_stream(1 << 16);
    let mut out = HeaderList::new();
    // ("a", "aaaaa") with incremental indexing: 38 bytes.
    d.decode(&hex("4001 6105 6161 6161 61"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[("a", "aaaaa")]));
    // Incremental indexing, name index 63 (pre-capture "te"), value "x": the field is
    // unknown; the entry is inserted with an unknown name (33 bytes for us, 35 for the
    // encoder).
    d.decode(&hex("7f00 0178"), &mut out).unwrap();
    assert_eq!((out.len(), out.unknown), (0, 1));
    assert_eq!(d.table_len(), (2, 71));
    assert_eq!(d.table_entry(0), None);
    // Size update to 40 (0x3f 0x09): ("a", "aaaaa") is evicted, so is every pre-capture
    // entry, but ("te", "x") stays, for the encoder too.
    d.decode(&hex("3f09"), &mut out).unwrap();
    assert_eq!((d.capacity(), d.table_len()), (40, (1, 33)));
    assert!(!d.is_exact(), "an entry with an unknown name is held");
    d.decode(&hex("be"), &mut out).unwrap();
    assert_eq!((out.len(), out.unknown), (0, 1));
    // ("b", "bbbbbbb") is 40 bytes: it evicts ("te", "x"); now every index is known.
    d.decode(&hex("4001 6207 6262 6262 6262 62"), &mut out).unwrap();
    assert_eq!(fields(&out), pairs(&[("b", "bbbbbbb")]));
    assert!(d.is_exact());
    d.decode(&hex("be"), &mut out).unwrap();
    assert_eq!((fields(&out), out.unknown), (pairs(&[("b", "bbbbbbb")]), 0));
    assert_eq!(d.decode(&hex("bf"), &mut out), Err(HpackError::BadIndex(63)));
}

#[test]
fn bombs_are_counted_not_copied() {
    // One 4000-byte entry referenced 10000 times: 40 MB of headers from 10 KB.
    let mut d = HpackDecoder::new(64 * 1024);
    let mut out = HeaderList::new();
    let mut block = vec![0x40, 1, b'b', 0x7f];
    let mut len = Vec::new();
    let mut n = 4000 - 127;
    while n >= 128 {
        len.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    len.push(n as u8);
    block.extend_from_slice(&len);
    block.extend_from_slice(&[b'z'; 4000]);
    block.extend(std::iter::repeat_n(0xbe, 10_000));
    d.decode(&block, &mut out).unwrap();
    assert!(out.oversize);
    assert_eq!(out.len(), 16);
    assert_eq!(out.dropped, 10_001 - 16);
    assert_eq!(out.list_bytes, 10_001 * (4000 + 1 + 32));
    // The text is bounded by the list bound plus its JSON punctuation (at most 8 bytes a
    // field, each counted at least 32), then a vector's doubling.
    assert!(out.allocated() < 5 * 64 * 1024 / 2, "{}", out.allocated());
}

#[test]
fn malformed_blocks_are_errors_not_panics() {
    let mut d = HpackDecoder::new(1 << 16);
    let mut out = HeaderList::new();
    for (b, e) in [
        ("80", HpackError::BadIndex(0)),
        ("ff", HpackError::Truncated),
        ("ff ff ff ff ff ff 01", HpackError::IntegerOverflow),
        ("40", HpackError::Truncated),
        ("4005 61", HpackError::Truncated),
        ("0081 ff", HpackError::Huffman),
        ("c0", HpackError::BadIndex(64)),
    ] {
        let mut d2 = HpackDecoder::new(1 << 16);
        assert_eq!(d2.decode(&hex(b), &mut out), Err(e), "{b}");
    }
    // Fields before the fault are kept.
    assert_eq!(d.decode(&hex("82 84 ff"), &mut out), Err(HpackError::Truncated));
    assert_eq!(out.len(), 2);
}
