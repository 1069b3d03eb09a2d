//! Memory stays bounded under adversarial traffic: a capture of 1,000,000 half-open TCP flows
//! (one SYN each, never answered: a SYN flood or a scan) with a flow table of 100,000.

mod common;

use serde_json::Value;
use std::io::Write;
use std::process::Command;

/// Writes a classic pcap of `n` SYN packets from distinct sources to one server port.
fn syn_flood(path: &std::path::Path, n: u32) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])
    .unwrap();
    for i in 0..n {
        let mut p = Vec::with_capacity(54);
        p.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0]);
        let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        p.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&[10, 200, 0, 1]);
        let sport = 1024 + (i % 60000) as u16;
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&443u16.to_be_bytes());
        p.extend_from_slice(&i.wrapping_mul(7919).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
        let (secs, usecs) = (1_700_000_000 + i / 20_000, (i % 20_000) * 50);
        for v in [secs, usecs, 54, 54] {
            out.write_all(&v.to_le_bytes()).unwrap();
        }
        out.write_all(&p).unwrap();
    }
}

/// The JSON output of `tlspeek -r path EXTRA --threads 1`, after checking that every count of
/// `threads` gives the same bytes.
fn same_with_threads(path: &std::path::Path, extra: &[&str], threads: &[&str]) -> Vec<u8> {
    let run = |n: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
            .args(["-q", "-r", path.to_str().unwrap(), "--json", "--threads", n])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        out.stdout
    };
    let one = run("1");
    for n in threads {
        assert!(run(n) == one, "--threads {n} differs from --threads 1");
    }
    one
}

/// Max RSS of the largest child waited for so far, in KiB.
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    }
}

#[test]
fn one_million_half_open_flows_stay_under_the_flow_table_cap() {
    let path = std::env::temp_dir().join(format!("tlspeek-synflood-{}.pcap", std::process::id()));
    syn_flood(&path, 1_000_000);
    let out = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .args(["-q", "-r", path.to_str().unwrap(), "--json", "--summary-only", "--max-flows", "100000"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let rss_mib = children_max_rss_kib() / 1024;
    assert_eq!(out.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["flows"], 1_000_000);
    assert_eq!(summary["packets"], 1_000_000);
    // Every flow beyond the table's 100,000 evicted the least recently active ones.
    let evicted = summary["evicted_flows"].as_u64().unwrap();
    // (A full table evicts 1/64 of itself at a time, so 98,438..100,000 flows stay open.)
    assert!((900_000..=901_562).contains(&evicted), "{evicted}");
    assert_eq!(summary["servers"][0]["name"], "10.200.0.1:443");
    assert_eq!(summary["servers"][0]["no_data"], 1_000_000);
    assert_eq!(summary["servers"][0]["reading"], "no payload (connection attempts only)");
    // 100,000 flows of about 1 KiB each, plus the program: well under 256 MiB, whatever the
    // number of flows in the file.
    assert!(rss_mib < 256, "max RSS {rss_mib} MiB");
    eprintln!("1,000,000 half-open flows, --max-flows 100000: max RSS {rss_mib} MiB");
}

#[test]
fn flows_open_at_the_end_come_out_the_same_with_any_number_of_threads() {
    // 5,000 flows still open at the end of the capture: ended and written 1,024 at a time,
    // across the shards when there are several; the order (by first packet) must not change.
    let path = std::env::temp_dir().join(format!("tlspeek-openatend-{}.pcap", std::process::id()));
    syn_flood(&path, 5_000);
    let one = same_with_threads(&path, &[], &["2", "3", "4"]);
    let _ = std::fs::remove_file(&path);
    let lines: Vec<Value> = one
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let ids: Vec<u64> =
        lines.iter().filter(|v| v["type"] == "flow").map(|v| v["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=5_000).collect::<Vec<u64>>());
    assert!(lines.iter().filter(|v| v["type"] == "flow").all(|v| v["end"] == "capture_end"));
}

#[test]
fn a_fifo_with_threads_is_read_once_not_split_between_workers() {
    // `tlspeek -r <(zcat big.pcap.gz)` or a named pipe: when every thread opened the path, they
    // shared out its bytes (15 flows of 5,977 came out). Now one thread reads any input.
    let dir = std::env::temp_dir().join(format!("tlspeek-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flood.pcap");
    syn_flood(&file, 5_000); // 270 KB: more than one read buffer
    let fifo = dir.join("pipe.pcap");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path it is given.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let bytes = std::fs::read(&file).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            let _ = w.write_all(&bytes);
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .args(["-q", "-r", fifo.to_str().unwrap(), "--json", "--summary-only", "--threads", "2"])
        .output()
        .unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["packets"], 5_000);
    assert_eq!(summary["flows"], 5_000);
    // Standard input, with threads too.
    let out = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .args(["-q", "-r", "-", "--json", "--summary-only", "--threads", "3"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["packets"], 5_000);
    assert_eq!(summary["flows"], 5_000);
}

#[test]
fn idle_flows_end_at_the_same_packet_with_any_number_of_threads() {
    // 60,000 SYNs over 3 s of capture time with a 1 s idle timeout: flows end in the idle sweeps
    // that packets of every shard trigger. With threads, a worker learns of the other shards'
    // packets from the reading thread (a tick per new second); the output must not change.
    let path = std::env::temp_dir().join(format!("tlspeek-idle-{}.pcap", std::process::id()));
    syn_flood(&path, 60_000);
    let one = same_with_threads(&path, &["--idle-timeout", "1"], &["2", "3"]);
    let _ = std::fs::remove_file(&path);
    let ends: Vec<String> =
        common::flow_lines(&one).map(|v| v["end"].as_str().unwrap().to_string()).collect();
    assert_eq!(ends.len(), 60_000);
    // The first two seconds' flows end idle, the last second's at the end of the capture.
    assert_eq!(ends.iter().filter(|e| *e == "idle").count(), 40_000);
    assert_eq!(ends.iter().filter(|e| *e == "capture_end").count(), 20_000);
}

/// Runs tlspeek with `args` and returns (exit code, its own max RSS in KiB).
fn run_measured(args: &[&str]) -> (i32, i64) {
    #[allow(clippy::zombie_processes)] // reaped with wait4 below, to read its own rusage
    let child = Command::new(env!("CARGO_BIN_EXE_tlspeek"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SAFETY: wait4 fills the status and the struct it is given, for our own child.
    unsafe {
        let mut status = 0;
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::wait4(child.id() as i32, &mut status, 0, &mut ru), child.id() as i32);
        (libc::WEXITSTATUS(status), ru.ru_maxrss)
    }
}

#[test]
fn big_packets_do_not_pile_up_between_threads() {
    // 400 segments of 60,000 bytes (24 MB) of one flow of opaque bytes: batches for the other
    // worker are sent by size too, so a few hundred KB are in flight, not the file.
    let path = std::env::temp_dir().join(format!("tlspeek-big-{}.pcap", std::process::id()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0])
        .unwrap();
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    for k in 0..400u32 {
        for (sport, dport) in [(40_000u16, 9_000u16), (40_001, 9_001)] {
            let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&(40 + payload.len() as u16).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            p.extend_from_slice(&sport.to_be_bytes());
            p.extend_from_slice(&dport.to_be_bytes());
            p.extend_from_slice(&(1 + k * 60_000).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xfa, 0xf0, 0, 0, 0, 0]);
            p.extend_from_slice(&payload);
            let len = p.len() as u32;
            for v in [1_700_000_000, k, len, len] {
                out.write_all(&v.to_le_bytes()).unwrap();
            }
            out.write_all(&p).unwrap();
        }
    }
    drop(out);
    let file = path.to_str().unwrap();
    let (code, one) = run_measured(&["-q", "-r", file, "--json", "--threads", "1"]);
    assert_eq!(code, 0);
    let (code, two) = run_measured(&["-q", "-r", file, "--json", "--threads", "2"]);
    assert_eq!(code, 0);
    let _ = std::fs::remove_file(&path);
    // Threads add their stacks and the batches in flight (at most about 2 MB a worker).
    eprintln!("max RSS: {one} KiB with one thread, {two} KiB with two");
    assert!(two < one + 12 * 1024, "max RSS: {one} KiB with one thread, {two} KiB with two");
}

/// Writes a classic pcap of `n` short HTTP/1.1 connections (handshake, one request, one
/// response, both FINs), `wave` of them at a time in lockstep, so that flows end every few
/// packets all through the capture.
fn short_http_flows(path: &std::path::Path, n: u32, wave: u32) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])
    .unwrap();
    let mut k = 0u32;
    let mut packet = |out: &mut std::io::BufWriter<std::fs::File>,
                      i: u32,
                      to_server: bool,
                      seq: u32,
                      ack: u32,
                      flags: u8,
                      data: &[u8]| {
        let client = [10, 1, (i >> 8) as u8, i as u8];
        let server = [10, 2, 0, 1];
        let cport = 20_000 + (i % 40_000) as u16;
        let (src, dst, sport, dport) =
            if to_server { (client, server, cport, 80u16) } else { (server, client, 80, cport) };
        let p = common::Segment {
            src: (src, sport),
            dst: (dst, dport),
            seq,
            ack,
            flags,
            window: 0xfaf0,
            payload: data,
        }
        .frame();
        let (secs, usecs) = (1_700_000_000 + k / 100_000, (k % 100_000) * 10);
        k += 1;
        for v in [secs, usecs, p.len() as u32, p.len() as u32] {
            out.write_all(&v.to_le_bytes()).unwrap();
        }
        out.write_all(&p).unwrap();
    };
    let (syn, ack, psh, fin) = (0x02, 0x10, 0x08, 0x01);
    for base in (0..n).step_by(wave as usize) {
        for step in 0..8 {
            for i in base..(base + wave).min(n) {
                let (c, s) = (i.wrapping_mul(7919), i.wrapping_mul(104_729));
                let req = format!("GET /item/{i} HTTP/1.1\r\nHost: shop\r\n\r\n");
                let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                let (q, r) = (req.len() as u32, resp.len() as u32);
                match step {
                    0 => packet(&mut out, i, true, c, 0, syn, b""),
                    1 => packet(&mut out, i, false, s, c + 1, syn | ack, b""),
                    2 => packet(&mut out, i, true, c + 1, s + 1, ack, b""),
                    3 => packet(&mut out, i, true, c + 1, s + 1, psh | ack, req.as_bytes()),
                    4 => packet(&mut out, i, false, s + 1, c + 1 + q, psh | ack, resp),
                    5 => packet(&mut out, i, true, c + 1 + q, s + 1 + r, fin | ack, b""),
                    6 => packet(&mut out, i, false, s + 1 + r, c + 2 + q, fin | ack, b""),
                    _ => packet(&mut out, i, true, c + 2 + q, s + 2 + r, ack, b""),
                }
            }
        }
    }
}

/// With threads, ended flows of the reading thread's shard are handed to a worker that has
/// nothing queued, to report (`run::parallel::Donations`): 40,000 connections ending all through
/// the capture (320,000 packets, many handovers) come out in the same order and with the same
/// bytes as with one thread, in several runs (the handovers depend on timing).
#[test]
fn flows_reported_by_another_thread_come_out_in_the_same_order() {
    let path = std::env::temp_dir().join(format!("tlspeek-shortflows-{}.pcap", std::process::id()));
    short_http_flows(&path, 40_000, 48);
    let mut one = Vec::new();
    for _ in 0..3 {
        one = same_with_threads(&path, &[], &["2", "3", "4"]);
    }
    let _ = std::fs::remove_file(&path);
    let mut n = 0;
    for v in common::flow_lines(&one) {
        // In end order, which is the order they were opened in here.
        assert_eq!(v["http"]["requests"][0]["path"], format!("/item/{n}"));
        assert_eq!((&v["end"], &v["http"]["responses"][0]["status"]), (&"closed".into(), &200.into()));
        n += 1;
    }
    assert_eq!(n, 40_000);
}
