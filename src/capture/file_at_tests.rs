//! [`Packet::at`] is where the packet's bytes are in the file: the reassembler reads them back
//! from there (see `flow::reassembly::window`).
use super::{CaptureReader, Packet, PacketSource};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Reads every packet of `path` and checks its bytes against the file at its offset; returns
/// how many packets.
fn check(path: &Path) -> usize {
    let mut r = CaptureReader::open(path).expect("open");
    let file = r.file().expect("a regular file can be read again");
    let mut n = 0;
    while let Some(Packet { data, at, .. }) = r.next_packet().expect("read") {
        let at = at.expect("a regular file has offsets");
        let mut back = vec![0; data.len()];
        file.read_exact_at(&mut back, at).expect("read back");
        assert_eq!(back, data, "packet {n} at {at}");
        n += 1;
    }
    n
}

#[test]
fn a_packet_is_at_its_offset_in_pcapng() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    assert_eq!(check(&dir.join("pcapng-multi-if.pcapng")), 42);
}

#[test]
fn a_packet_is_at_its_offset_across_buffer_refills() {
    // 3,000 records of 1 to 600 bytes (~0.9 MB): the 128 KiB read buffer is refilled and its
    // tail moved to the front many times.
    let mut f =
        vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
    for i in 0..3000u32 {
        let len = 1 + (i * 7919) % 600;
        for w in [i, 0, len, len] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend((0..len).map(|k| (i + k) as u8));
    }
    let path = std::env::temp_dir().join(format!("tlspeek-file-at-{}.pcap", std::process::id()));
    std::fs::write(&path, &f).expect("write");
    let n = check(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(n, 3000);
}

#[test]
fn standard_input_and_pipes_have_no_offsets() {
    let f =
        std::fs::File::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/pcapng-multi-if.pcapng"));
    let mut r = CaptureReader::from_reader("-".into(), Box::new(f.expect("open")), None).expect("header");
    let p = r.next_packet().expect("read").expect("a packet");
    assert!(p.at.is_none());
    assert!(r.file().is_none());
}
