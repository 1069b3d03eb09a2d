//! Arbitrary bytes as a capture file (pcap or pcapng): read every packet until the end or the
//! first error. The reader must never panic, loop or allocate past its record limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use tlspeek::capture::{CaptureReader, Next, PacketSource, MAX_RECORD_BYTES};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let Ok(mut r) =
        CaptureReader::from_reader("fuzz.pcap".into(), Box::new(Cursor::new(data.to_vec())), Some(len))
    else {
        return;
    };
    let _ = (r.name(), r.nanosecond_precision(), r.total_len(), r.is_live());
    // Every yielded packet consumes at least one header (12 or 16 bytes): the count is bounded.
    let mut packets = 0u64;
    loop {
        let before = r.position();
        match r.next() {
            Ok(Next::Packet(p)) => {
                assert!(p.data.len() <= MAX_RECORD_BYTES, "packet of {} bytes", p.data.len());
                assert!(
                    p.orig_len as usize >= p.data.len(),
                    "orig_len {} < caplen {}",
                    p.orig_len,
                    p.data.len()
                );
                assert!(p.ts.nanos < 1_000_000_000);
                std::hint::black_box((p.linktype, p.data.first(), p.ts.rfc3339(true)));
                packets += 1;
            }
            Ok(Next::Idle(_)) => panic!("a file yielded an idle tick"),
            Ok(Next::End) => break,
            Err(e) => {
                std::hint::black_box(e.to_string());
                break;
            }
        }
        assert!(r.position() > before, "no progress at byte {before}");
        assert!(r.position() <= len, "position {} past the end {len}", r.position());
        assert!(packets <= len / 12 + 1);
    }
});
