//! Certificate lifetime warnings (`--cert-warn`) on finished flows.

use crate::record::{Flag, FlowReport};

/// `2h 5m`, `39m 12s`, `3d 4h`: a duration for people.
pub(crate) fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// Adds warnings and flags for certificates that were expired, not yet valid, or within
/// `warn_secs` of expiry at capture time (Istio workload certificates live 24 h and are
/// rotated at about half-life: one close to its end means rotation is failing).
pub(crate) fn cert_warnings(f: &mut FlowReport, warn_secs: i64) {
    let Some(t) = &f.tls else { return };
    let mut warnings = Vec::new();
    let mut flags = Vec::new();
    for (role, certs) in [("server", &t.server_certs), ("client", &t.client_certs)] {
        for (i, c) in certs.iter().enumerate() {
            let who = c.san_uris.first().or(c.subject.as_ref()).map_or("(unparsed)", String::as_str);
            // Only for a warning: formatting it for every certificate was an allocation each.
            let what = || {
                if i == 0 {
                    format!("{role} certificate")
                } else {
                    format!("{role} chain certificate {}", i + 1)
                }
            };
            let after = c.not_after.as_deref().unwrap_or("?");
            if c.expired {
                flags.push(Flag::CertExpired);
                warnings.push(format!("{} {who} had expired at capture time (not after {after})", what()));
            } else if c.not_yet_valid {
                let before = c.not_before.as_deref().unwrap_or("?");
                flags.push(Flag::CertNotYetValid);
                warnings.push(format!(
                    "{} {who} was not yet valid at capture time (not before {before})",
                    what()
                ));
            } else if let Some(left) = c.expires_in_secs.filter(|&l| l <= warn_secs) {
                flags.push(Flag::CertExpiring);
                warnings.push(format!(
                    "{} {who} expires {} after the capture (not after {after}; --cert-warn {})",
                    what(),
                    human_duration(left),
                    human_duration(warn_secs)
                ));
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
    }
}
