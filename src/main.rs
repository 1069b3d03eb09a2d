//! CLI edge: arguments → pipeline → exit code. Only `main` prints the final error line.

use clap::Parser;
use std::io::{self, BufWriter, IsTerminal, LineWriter, Write};
use std::process::ExitCode;
use tlspeek::cli::Args;
use tlspeek::run::run_with_writer;

#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

/// mimalloc, asked for an alignment only when a block needs more than every block has.
/// `mimalloc::MiMalloc` passes every request to `mi_malloc_aligned`, whose fast path in mimalloc
/// 3 covers blocks up to 1 KiB only: a larger one (a message's headers, a rendered line) took the
/// aligned slow path, ~300 instructions instead of ~30 (12M of 644M instructions on the mesh
/// bench file). mimalloc aligns every block to the machine word, and to 16 bytes from 16 bytes
/// on, so a layout asking no more than that gets what it needs from the plain calls.
struct Mimalloc;

/// Alignment every mimalloc block has (a word: blocks of 8 bytes are only 8-aligned).
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

// SAFETY: every block comes from mimalloc and goes back to it; an alignment above
// `PLAIN_ALIGN` goes through its aligned calls, which honour it.
unsafe impl std::alloc::GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys as mi;
        if layout.align() <= PLAIN_ALIGN {
            mi::mi_malloc(layout.size()).cast()
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys as mi;
        if layout.align() <= PLAIN_ALIGN {
            mi::mi_zalloc(layout.size()).cast()
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        libmimalloc_sys::mi_free(ptr.cast());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys as mi;
        if layout.align() <= PLAIN_ALIGN {
            mi::mi_realloc(ptr.cast(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
        }
    }
}

/// Exit codes (also in `--help` and the README).
mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// `--expect mtls` or `--fail-on-plaintext` failed.
    pub const EXPECTATION: u8 = 1;
    /// An input could not be read to its end, or another error (partial results printed).
    pub const ERROR: u8 = 2;
}

/// mimalloc's purge delay (see `main`).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

fn main() -> ExitCode {
    // How long mimalloc keeps freed pages before returning them (option 15 is
    // mi_option_purge_delay in mimalloc 2 and 3): briefly, so RSS follows the live flows without
    // the kernel zeroing every page freed and taken again (bench/RESULTS.md, seventh landing).
    // SAFETY: sets a process-wide allocator option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(15, PURGE_DELAY_MS) };
    // No transparent huge pages for this process (what mimalloc's MIMALLOC_ALLOW_THP=0 does,
    // but its option is read before `main`): with purging, a 2 MiB page freed and taken again is
    // zeroed whole, and half-used huge pages raise max RSS (bench/RESULTS.md). Failure (old
    // kernel) changes nothing else.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if std::env::args_os().nth(1).is_some_and(|a| a == "report") {
        return report(std::env::args_os().skip(1));
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    if args.list_interfaces && !args.read.is_empty() {
        eprintln!("tlspeek: -D lists the interfaces to capture on; it cannot be combined with -r");
        return ExitCode::from(exit::ERROR);
    }
    if args.list_interfaces {
        return match tlspeek::capture::live::list_interfaces() {
            Ok(lines) => {
                // Not println!: a reader that stops early (`tlspeek -D | grep -q eth0`) closes
                // the pipe, and println! panics on that; it is a normal end here.
                let mut out = io::stdout().lock();
                for l in lines {
                    if writeln!(out, "{l}").is_err() {
                        break;
                    }
                }
                ExitCode::from(exit::OK)
            }
            Err(e) => {
                eprintln!("tlspeek: {e}");
                ExitCode::from(exit::ERROR)
            }
        };
    }
    let mut cfg = match args.into_config(io::stderr().is_terminal()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tlspeek: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    if let Err(e) = cfg.load_ca() {
        eprintln!("tlspeek: {e}");
        return ExitCode::from(exit::ERROR);
    }
    match cfg.open_keylogs() {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("tlspeek: {w}");
            }
        }
        Err(e) => {
            eprintln!("tlspeek: {e}");
            return ExitCode::from(exit::ERROR);
        }
    }
    cfg.table.width = tlspeek::report::table::output_width();
    let stdout = io::stdout();
    // Block-buffered (a pipe or a file), or flushed at each line with -l (as tcpdump -l).
    let mut out: Box<dyn Write> = if cfg.line_buffered {
        Box::new(LineWriter::new(stdout.lock()))
    } else {
        Box::new(BufWriter::with_capacity(1 << 16, stdout.lock()))
    };
    let mut diag = io::stderr();
    match run_with_writer(&cfg, &mut out, &mut diag) {
        Ok(outcome) => {
            if !outcome.errors.is_empty() {
                ExitCode::from(exit::ERROR)
            } else if outcome.violations > 0 {
                ExitCode::from(exit::EXPECTATION)
            } else {
                ExitCode::from(exit::OK)
            }
        }
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(e) => {
            let _ = out.flush();
            eprintln!("tlspeek: writing output: {e}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// `tlspeek report FILE.jsonl...`: merges tlspeek's JSON Lines (src/run/report.rs).
fn report(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = match tlspeek::report_cli::ReportArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => return report_usage_error(e),
    };
    let cfg = args.into_config(tlspeek::report::table::output_width());
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut diag = io::stderr();
    match tlspeek::run::report::report_with_writer(&cfg, &mut out, &mut diag) {
        Ok(outcome) if outcome.errors.is_empty() => ExitCode::from(exit::OK),
        Ok(_) => ExitCode::from(exit::ERROR),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(exit::OK),
        Err(e) => {
            let _ = out.flush();
            eprintln!("tlspeek: writing output: {e}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// `tlspeek report`'s command line could not be parsed: one line, exit 2 (help and version as
/// clap prints them). clap's text puts what is missing on the line after a colon.
fn report_usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines.next().unwrap_or("invalid command line").trim_start_matches("error: ").to_string();
    if first.ends_with(':') {
        first.push(' ');
        first.push_str(lines.next().unwrap_or(""));
    }
    eprintln!("tlspeek report: {first} (`tlspeek report --help` lists the options)");
    ExitCode::from(exit::ERROR)
}

/// A command line clap cannot parse: one line on stderr (`tlspeek: ...`), exit 2; help and
/// version are printed as clap does. clap's own text spans several lines, with a tip about
/// `-- -n` that misleads a tcpdump user (a mistyped or unknown option is not a value).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        ErrorKind::UnknownArgument => {
            let arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(a)) => a.clone(),
                _ => String::new(),
            };
            let hint = match e.get(ContextKind::SuggestedArg) {
                Some(ContextValue::String(s)) => format!("; did you mean {s}?"),
                _ => String::new(),
            };
            eprintln!("tlspeek: unknown option {arg}{hint} (`tlspeek --help` lists the options)");
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            eprintln!(
                "tlspeek: {} (`tlspeek --help` lists the options)",
                first.trim_start_matches("error: ")
            );
        }
    }
    ExitCode::from(exit::ERROR)
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        // Each alignment from 1 to 4 KiB, sizes around mimalloc's small/large boundaries, fresh,
        // zeroed and grown: aligned, writable, and zeroed when asked.
        let a = super::Mimalloc;
        for align in (0..=12).map(|k| 1usize << k) {
            for size in [1, 7, 8, 15, 16, 24, 100, 1023, 1024, 1025, 4096, 70_000, 300_000] {
                let size = size.max(align);
                let l = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is freed once with its layout.
                unsafe {
                    let p = a.alloc(l);
                    assert!(!p.is_null() && (p as usize).is_multiple_of(align), "alloc {size} {align}");
                    p.write_bytes(0xa5, size);
                    let q = a.realloc(p, l, 2 * size + 1);
                    assert!(!q.is_null() && (q as usize).is_multiple_of(align), "realloc {size} {align}");
                    assert_eq!(*q.add(size - 1), 0xa5);
                    a.dealloc(q, Layout::from_size_align(2 * size + 1, align).unwrap());
                    let z = a.alloc_zeroed(l);
                    assert!(!z.is_null() && (z as usize).is_multiple_of(align), "zeroed {size} {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, l);
                }
            }
        }
    }
}
