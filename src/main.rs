//! CLI edge: arguments → pipeline → exit code. Only `main` prints the final error line.

use clap::Parser;
use std::io::{self, BufWriter, IsTerminal, LineWriter, Write};
use std::process::ExitCode;
use tlspeek::cli::Args;
use tlspeek::run::run_with_writer;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
