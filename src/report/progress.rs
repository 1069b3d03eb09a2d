//! Progress bar on stderr while reading files (only when stderr is a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` bytes, or a spinner when the size is unknown (standard input).
pub(crate) fn bar(total: Option<u64>) -> ProgressBar {
    let pb = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let style = if total.is_some() {
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    } else {
        ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
    };
    if let Ok(s) = style {
        pb.set_style(s);
    }
    pb
}
