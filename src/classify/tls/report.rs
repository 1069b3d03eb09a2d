//! How the TLS report ([`super::TlsReport`]) travels to the flow's report: [`TlsPart`], the
//! ended session written straight into the report's box; and its compact parts: the offered
//! versions as their codes and the client's first encrypted record lengths in place, named only
//! when written. As `Vec`s they were two allocations per TLS flow (~60% of the flows of both
//! bench files), written at the flow's end and read cold when it was rendered.

use super::{version_name, TlsReport, TlsSession, Versions, TAIL_RECORDS};
use crate::wire::Side;
use std::borrow::Cow;

/// The TLS part of a flow's classification ([`crate::classify::Classified`]): a report made
/// while the flow goes on (live `classified` lines, tests), or the ended session, whose report
/// [`crate::record::FlowReport::build_boxed`] has written straight into the flow report's box.
/// Made at the classifier's end, the ~440-byte report was copied three times more on its way
/// there (into the `Classified`, out of the call, into the box), and the session once (moved
/// out of its box to be consumed).
pub(crate) enum TlsPart {
    /// A report already made.
    Report(Box<TlsReport>),
    /// A session that is over, with the side the flow layer took for the client.
    Ended(Box<TlsSession>, Side),
}

impl TlsPart {
    /// The report (tests).
    #[cfg(test)]
    pub(crate) fn into_report(self) -> TlsReport {
        let mut out = None;
        self.write_into(&mut out);
        out.unwrap_or_default()
    }

    /// Writes the report into `out` (the flow report's); returns a warning when the decrypted
    /// verdict contradicts the record-size inference ([`TlsReport::inference_disagreement`]),
    /// which only an ended session's report carries, as before.
    pub(crate) fn write_into(self, out: &mut Option<TlsReport>) -> Option<String> {
        match self {
            TlsPart::Report(r) => {
                *out = Some(*r);
                None
            }
            TlsPart::Ended(mut s, client) => s.report_into(client, out).inference_disagreement(),
        }
    }
}

/// supported_versions of the first ClientHello (GREASE skipped), or its legacy_version, as
/// codes: moved out of the session's ClientHello, inline up to 8 (a client offers two to four).
#[derive(Clone, Debug, Default)]
pub(crate) struct OfferedVersions(Versions);

impl OfferedVersions {
    /// The codes, in the order offered.
    pub(super) fn new(v: Versions) -> OfferedVersions {
        OfferedVersions(v)
    }

    /// Nothing offered (or not seen).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_slice().is_empty()
    }

    /// The versions' names ([`version_name`]), in the order offered.
    pub(crate) fn names(&self) -> impl Iterator<Item = Cow<'static, str>> + '_ {
        self.0.as_slice().iter().map(|&v| version_name(v))
    }

    /// The names joined by `sep`.
    pub(crate) fn join(&self, sep: &str) -> String {
        self.names().collect::<Vec<_>>().join(sep)
    }
}

/// TLS 1.3: lengths of the client's first encrypted records, at most [`TAIL_RECORDS`] (read as
/// a slice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EncryptedRecords {
    lens: [u16; TAIL_RECORDS],
    n: u8,
}

impl EncryptedRecords {
    /// The first `n` of `lens` (all of them when `n` is larger).
    pub(super) fn new(lens: [u16; TAIL_RECORDS], n: u8) -> EncryptedRecords {
        EncryptedRecords { lens, n: n.min(TAIL_RECORDS as u8) }
    }
}

impl std::ops::Deref for EncryptedRecords {
    type Target = [u16];

    fn deref(&self) -> &[u16] {
        &self.lens[..usize::from(self.n)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_versions_are_named_in_order_inline_or_not() {
        let v = OfferedVersions::new(Versions::new([0x0304, 0x0303, 0x7f1c, 0x1234].into_iter()));
        assert_eq!(v.names().collect::<Vec<_>>(), ["TLS 1.3", "TLS 1.2", "TLS 1.3 (draft 28)", "0x1234"]);
        assert_eq!(v.join(","), "TLS 1.3,TLS 1.2,TLS 1.3 (draft 28),0x1234");
        assert!(!v.is_empty() && OfferedVersions::default().is_empty());
        assert_eq!(OfferedVersions::default().join(","), "");
        let many: Vec<u16> = (0..20).map(|i| 0x0300 + (i % 5)).collect();
        let long = OfferedVersions::new(Versions::new(many.iter().copied()));
        let want: Vec<_> = many.iter().map(|&c| version_name(c)).collect();
        assert_eq!(long.names().collect::<Vec<_>>(), want);
    }

    /// An ended session's report, written in place over whatever the slot held, is the one
    /// [`TlsSession::finish`] makes; a report made before is moved in whole.
    #[test]
    fn an_ended_session_writes_the_report_finish_makes() {
        use crate::classify::tls::testutil::{json, run};
        use crate::classify::tls::testutil::{TLS12_MTLS, TLS12_RESUME, TLS13, TLS13_HRR};
        for (i, f) in [TLS12_MTLS, TLS13, TLS13_HRR, TLS12_RESUME].into_iter().enumerate() {
            let (t, _) = run(f);
            let want = t.finish(Side::B);
            let stale = || {
                Some(TlsReport {
                    mtls_reason: "stale".into(),
                    sslv2_client_hello: true,
                    ..Default::default()
                })
            };
            let mut out = stale();
            let warning = TlsPart::Ended(Box::new(t), Side::B).write_into(&mut out);
            assert_eq!(out.as_ref().map(json), Some(json(&want)), "{i}");
            assert_eq!(warning, None, "{i}");
            let mut out = stale();
            assert_eq!(TlsPart::Report(Box::new(want.clone())).write_into(&mut out), None);
            assert_eq!(out.as_ref().map(json), Some(json(&want)), "{i}");
        }
    }

    #[test]
    fn encrypted_records_keep_the_first_n_and_at_most_four() {
        let lens = [487, 96, 53, 300];
        assert_eq!(EncryptedRecords::new(lens, 0)[..], [0u16; 0]);
        assert_eq!(EncryptedRecords::new(lens, 2)[..], [487, 96]);
        assert_eq!(EncryptedRecords::new(lens, 4)[..], lens);
        assert_eq!(EncryptedRecords::new(lens, 9)[..], lens);
        assert_eq!(EncryptedRecords::default()[..], [0u16; 0]);
    }
}
