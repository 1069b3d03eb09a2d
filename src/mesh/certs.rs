//! Certificate lifetime warnings (`--cert-warn`) on finished flows.

use crate::record::{Flag, FlowReport};

use std::fmt::{self, Write};

/// `2h 5m`, `39m 12s`, `3d 4h`: a duration for people.
pub(crate) fn human_duration(secs: i64) -> String {
    Human(secs).to_string()
}

/// [`human_duration`] written where it goes.
struct Human(i64);

impl fmt::Display for Human {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.unsigned_abs();
        let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
        match (d, h, m) {
            (0, 0, 0) => write!(out, "{sec}s"),
            (0, 0, _) if sec == 0 => write!(out, "{m}m"),
            (0, 0, _) => write!(out, "{m}m {sec}s"),
            (0, _, _) if m == 0 => write!(out, "{h}h"),
            (0, _, _) => write!(out, "{h}h {m}m"),
            _ if h == 0 => write!(out, "{d}d"),
            _ => write!(out, "{d}d {h}h"),
        }
    }
}

/// Which certificate of a chain: `server certificate`, `client chain certificate 2`.
struct Which(&'static str, usize);

impl fmt::Display for Which {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            0 => write!(out, "{} certificate", self.0),
            i => write!(out, "{} chain certificate {}", self.0, i + 1),
        }
    }
}

/// Adds warnings and flags for certificates that were expired, not yet valid, or within
/// `warn_secs` of expiry at capture time (Istio workload certificates live 24 h and are
/// rotated at about half-life: one close to its end means rotation is failing).
///
/// Each warning is written once into a string with room for it: built by `format!` from parts
/// formatted first (the certificate's role, two durations), one was four allocations and a
/// reallocation or two, for every mTLS flow of a mesh whose certificates near their end (the
/// mesh bench file's: a quarter of the `realloc`s of a one-thread run).
pub(crate) fn cert_warnings(f: &mut FlowReport, warn_secs: i64) {
    let Some(t) = &f.tls else { return };
    let mut warnings = Vec::new();
    let mut flags = Vec::new();
    for (role, certs) in [("server", &t.server_certs), ("client", &t.client_certs)] {
        for (i, c) in certs.iter().enumerate() {
            let who = c.san_uris.first().or(c.subject.as_ref()).map_or("(unparsed)", String::as_str);
            let what = Which(role, i);
            let after = c.not_after.as_deref().unwrap_or("?");
            let line = |extra: usize| String::with_capacity(120 + who.len() + after.len() + extra);
            // (Writing into a `String` cannot fail.)
            if c.expired {
                flags.push(Flag::CertExpired);
                let mut w = line(0);
                let _ = write!(w, "{what} {who} had expired at capture time (not after {after})");
                warnings.push(w);
            } else if c.not_yet_valid {
                let before = c.not_before.as_deref().unwrap_or("?");
                flags.push(Flag::CertNotYetValid);
                let mut w = line(before.len());
                let _ = write!(w, "{what} {who} was not yet valid at capture time (not before {before})");
                warnings.push(w);
            } else if let Some(left) = c.expires_in_secs.filter(|&l| l <= warn_secs) {
                flags.push(Flag::CertExpiring);
                let mut w = line(0);
                let _ = write!(
                    w,
                    "{what} {who} expires {} after the capture (not after {after}; --cert-warn {})",
                    Human(left),
                    Human(warn_secs)
                );
                warnings.push(w);
            }
        }
    }
    for fl in flags {
        f.flags.insert(fl);
    }
    f.warnings.extend(warnings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(2352), "39m 12s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(7500), "2h 5m");
        assert_eq!(human_duration(86_400 * 3 + 3600 * 4), "3d 4h");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(-120), "2m");
    }

    #[test]
    fn which_certificate() {
        assert_eq!(Which("server", 0).to_string(), "server certificate");
        assert_eq!(Which("client", 2).to_string(), "client chain certificate 3");
    }
}
