//! JSON Lines output: one `flow` object per line, then one `summary` object (docs/json.md).

use super::{FlowReport, Summary};
use std::io::{self, Write};

thread_local! {
    /// Serialization buffer, reused: serde_json writing into a `Vec` is inlined and monomorphic,
    /// into `&mut dyn Write` it makes a dynamic call per token (measured: ~20% of JSON time).
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes one flow as a JSON line.
pub fn write_flow(out: &mut dyn Write, f: &FlowReport) -> io::Result<()> {
    LINE.with_borrow_mut(|buf| {
        buf.clear();
        serde_json::to_writer(&mut *buf, f)?;
        buf.push(b'\n');
        out.write_all(buf)?;
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new(); // one huge flow does not keep its buffer
        }
        Ok(())
    })
}

/// Writes the summary as the last JSON line.
pub fn write_summary(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s)?;
    out.write_all(b"\n")
}
