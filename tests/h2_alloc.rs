//! HPACK decoding allocates nothing per header field once its buffers have grown: a counting
//! allocator (this test binary only) measures a steady-state connection.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use tlspeek::classify::http::h2::{H2Direction, H2Event, H2Limits, Start};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations are counted on the test's own thread only: the test harness's other threads
    /// allocate too (on a loaded machine, now and then, during the measurement).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    // `try_with`: no panic while the thread-local is being torn down.
    if COUNTED.try_with(|c| c.get()).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// A response header block: literals with incremental indexing (Huffman-free, as the test
/// builds them by hand), so that every block inserts and evicts entries, plus indexed fields.
fn block(i: usize) -> Vec<u8> {
    let mut b = vec![0x88]; // :status 200
    for (name, value) in [
        ("x-request-id", format!("{:032x}", i * 2654435761)),
        ("x-envoy-upstream-service-time", format!("{}", i % 97)),
        ("content-type", "application/grpc".to_string()),
    ] {
        b.push(0x40);
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
    }
    b.extend_from_slice(&[0xbe, 0xbf, 0xc0]); // the three newest entries again
    let l = b.len();
    let mut f = vec![(l >> 16) as u8, (l >> 8) as u8, l as u8, 1, 4 | 1, 0, 0, 0, (2 * i + 1) as u8 & 0x7f];
    f.extend_from_slice(&b);
    f
}

#[test]
fn steady_state_decoding_allocates_nothing() {
    let frames: Vec<Vec<u8>> = (0..2000).map(block).collect();
    let mut d = H2Direction::new(
        Start::Frame,
        H2Limits { max_block_bytes: 64 * 1024, max_list_bytes: 64 * 1024, lean: false },
    );
    let mut fields = 0usize;
    let feed = |d: &mut H2Direction, f: &[u8], fields: &mut usize| {
        d.feed(f, &mut |e| {
            if let H2Event::Headers(h) = e {
                assert_eq!((h.fields.len(), h.fields.unknown), (7, 0));
                *fields += h.fields.len();
            }
        })
    };
    // Warm-up: the buffers and the table reach their working size.
    for f in &frames[..200] {
        feed(&mut d, f, &mut fields);
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    fields = 0;
    COUNTED.with(|c| c.set(true));
    for f in &frames[200..] {
        feed(&mut d, f, &mut fields);
    }
    COUNTED.with(|c| c.set(false));
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(fields, 1800 * 7);
    // Measured: 0 allocations for 12,600 fields (1,800 blocks, 5,400 table inserts).
    assert_eq!(allocs, 0, "{allocs} allocations for {fields} fields");
}
