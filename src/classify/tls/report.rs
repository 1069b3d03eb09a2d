//! Compact parts of the TLS report ([`super::TlsReport`]): the offered versions as their codes
//! and the client's first encrypted record lengths in place, named only when written. As
//! `Vec`s they were two allocations per TLS flow (~60% of the flows of both bench files),
//! written at the flow's end and read cold when it was rendered.

use super::{version_name, Versions, TAIL_RECORDS};
use std::borrow::Cow;

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
