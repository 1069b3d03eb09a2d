//! tlspeek: is the traffic really encrypted, and with whose certificates?
//!
//! The pipeline follows the folder layout:
//! capture (files → packets) → decode (link/IP/TCP views) → flow (TCP reassembly per direction)
//! → classify (TLS, HTTP/1, h2c, unknown) → mesh (legs, XFCC confirmation, per-server readings,
//! --expect checks) → report (table, JSON Lines).

pub mod capture;
pub mod classify;
pub mod cli;
pub mod decode;
pub mod flow;
pub mod mesh;
pub mod record;
pub mod report;
pub mod report_cli;
pub mod run;
pub mod sanitize;
pub mod wire;
