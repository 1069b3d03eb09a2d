//! One captured frame: byte 0 picks the link type among the supported ones, byte 1 whether the
//! capture cut the frame and bytes 2..4 by how much (`orig_len`), the rest is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlspeek::decode::defrag::Defragmenter;
use tlspeek::decode::{decode, decode_tcp, is_supported_linktype, linktype_name, Decoded};
use tlspeek::wire::Timestamp;

/// Every link type `decode` handles, and one it does not.
const LINKTYPES: [u32; 11] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147];

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let linktype = LINKTYPES[data[0] as usize % LINKTYPES.len()];
    let frame = &data[4..];
    let extra = u16::from_le_bytes([data[2], data[3]]) as u32;
    let orig_len = match data[1] & 3 {
        0 => frame.len() as u32,
        1 => frame.len() as u32 + extra,
        2 => 0,
        _ => extra,
    };
    std::hint::black_box(linktype_name(linktype));
    let range = frame.as_ptr_range();
    match decode(linktype, frame, orig_len) {
        Decoded::Tcp(seg) => {
            assert!(is_supported_linktype(linktype));
            let p = seg.payload.as_ptr_range();
            assert!(seg.payload.is_empty() || (range.start <= p.start && p.end <= range.end));
            assert!(seg.wire_len as usize >= seg.payload.len());
        }
        Decoded::Fragment(f) => {
            assert!(is_supported_linktype(linktype));
            // A lone fragment: reassembly completes only a first-and-last fragment.
            let mut d = Defragmenter::default();
            if let Some(dg) = d.push(&f, Timestamp::default()) {
                if dg.proto == 6 {
                    let src = std::net::IpAddr::from(dg.src);
                    let dst = std::net::IpAddr::from(dg.dst);
                    std::hint::black_box(decode_tcp(src, dst, &dg.payload, dg.payload.len()));
                }
            }
        }
        Decoded::Udp(u) => {
            assert!(is_supported_linktype(linktype));
            std::hint::black_box(u);
        }
        Decoded::Other(k) => {
            std::hint::black_box(k.key());
        }
    }
});
