//! JSON Lines output: one `flow` object per line, then one `summary` object (docs/json.md).

use super::{FlowReport, Summary};
use std::io::{self, Write};

/// Writes one flow as a JSON line.
pub fn write_flow(out: &mut dyn Write, f: &FlowReport) -> io::Result<()> {
    serde_json::to_writer(&mut *out, f)?;
    out.write_all(b"\n")
}

/// Writes the summary as the last JSON line.
pub fn write_summary(out: &mut dyn Write, s: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s)?;
    out.write_all(b"\n")
}
