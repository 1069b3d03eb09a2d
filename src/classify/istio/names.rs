//! The two names Istio writes on the wire that tlspeek reads apart: the SNI Envoy sets for mesh
//! traffic (`outbound_.<port>_.<subset>_.<fqdn>`, [`IstioSni`]) and the SPIFFE identities of
//! workload certificates and XFCC headers (`spiffe://<trust domain>/ns/<ns>/sa/<account>`,
//! [`SpiffeId`]).
//!
//! Each keeps its text once, in one allocation, with its parts as ranges into it (read through
//! accessors): four `String`s each were four allocations written when a flow ended and read
//! cold when it was rendered (~3,800 parses on the mesh 30 MB slice), and 104 + 2 x 96 bytes of
//! every flow's Istio facts (now 56 + 2 x 48). bench/misses cycles~, mesh 30 MB: 88.6 -> 87.5 M
//! (`--json`), 94.9 -> 93.5 M (the table, with [`IstioSni::push_readable`]); default 30 MB:
//! 82.7 -> 81.9 M.

use super::SniDirection;

/// A part of a name: the byte range `start..end` of its text. Built only on char boundaries
/// inside the text, so reading it cannot fail; `get` keeps even a wrong one from panicking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// `part`, a slice of `whole`, as a range of it. Callers check first that `whole` is shorter
    /// than 4 GiB, so the offsets fit.
    fn of(whole: &str, part: &str) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
        Span { start: start as u32, end: (start + part.len()) as u32 }
    }

    fn read(self, text: &str) -> &str {
        text.get(self.start as usize..self.end as usize).unwrap_or_default()
    }
}

/// A parsed Istio SNI: the name once, its parts as ranges into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IstioSni {
    /// The whole SNI, e.g. `outbound_.9080_.v2_.reviews.default.svc.cluster.local`; shared by
    /// the flows whose SNI [`super::parsed_sni`] found parsed.
    text: std::sync::Arc<str>,
    /// `outbound` or `inbound`.
    pub(crate) direction: SniDirection,
    /// Service port.
    pub(crate) port: u16,
    /// DestinationRule subset, none for `_` (or an empty one).
    subset: Option<Span>,
    /// Where the full host name starts; it runs to the end of the text.
    fqdn: u32,
    /// Where the host's first label (the service) ends.
    service_end: u32,
    /// Second label of the host, when the host is a Kubernetes service name.
    namespace: Option<Span>,
}

impl IstioSni {
    /// DestinationRule subset, null for `_`.
    pub(crate) fn subset(&self) -> Option<&str> {
        self.subset.map(|s| s.read(&self.text))
    }

    /// Full host name, e.g. `reviews.default.svc.cluster.local`.
    pub(crate) fn fqdn(&self) -> &str {
        self.text.get(self.fqdn as usize..).unwrap_or_default()
    }

    /// First label of the host (`reviews`).
    pub(crate) fn service(&self) -> &str {
        self.text.get(self.fqdn as usize..self.service_end as usize).unwrap_or_default()
    }

    /// Second label when the host is a Kubernetes service name (`default`).
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.map(|s| s.read(&self.text))
    }

    /// `reviews.default:9080 (subset v2)`.
    pub(crate) fn readable(&self) -> String {
        let mut out = String::with_capacity(self.text.len() - self.fqdn as usize + 24);
        self.push_readable(&mut out, |s, out| out.push_str(s));
        out
    }

    /// Appends [`IstioSni::readable`] to `out`, its wire parts through `text`: the table
    /// escapes them in place (escaping is char by char, so the parts escaped are the whole
    /// escaped), no `format!` and no second string.
    pub(crate) fn push_readable(&self, out: &mut String, text: impl Fn(&str, &mut String)) {
        // `service.namespace` is the host up to the namespace's end: one piece of the text.
        let head = match self.namespace {
            Some(ns) => self.text.get(self.fqdn as usize..ns.end as usize).unwrap_or_default(),
            None => self.fqdn(),
        };
        text(head, out);
        out.push(':');
        // `wire::decimal`: `write!(out, ":{}", port)` went through the formatting machinery.
        let mut digits = [0; 20];
        crate::wire::decimal(self.port.into(), &mut digits).iter().for_each(|&d| out.push(char::from(d)));
        if let Some(s) = self.subset() {
            out.push_str(" (subset ");
            text(s, out);
            out.push(')');
        }
    }
}

/// Parses `outbound_.9080_.v2_.reviews.default.svc.cluster.local` (Envoy's cluster name used as
/// SNI for Istio mTLS); `None` for any other name.
pub(crate) fn parse_sni(sni: &str) -> Option<IstioSni> {
    // Ranges are u32: a longer name (only a JSON file read back could carry one) is not Istio's.
    u32::try_from(sni.len()).ok()?;
    let mut parts = sni_parts(sni);
    let direction = match parts.next()? {
        "outbound" => SniDirection::Outbound,
        "inbound" => SniDirection::Inbound,
        _ => return None,
    };
    let port: u16 = parts.next()?.parse().ok()?;
    let subset = parts.next()?;
    let fqdn = parts.next()?;
    if fqdn.is_empty() {
        return None;
    }
    let host = Span::of(sni, fqdn);
    // The first two labels and `.svc` with memchr: `str::split` and `str::contains` with a
    // string (a searcher built per call) were ~400 instructions a TLS flow.
    let fq = fqdn.as_bytes();
    let (service_end, second) = match memchr::memchr(b'.', fq) {
        Some(i) => {
            let after = &fq[i + 1..];
            let end = memchr::memchr(b'.', after).map_or(fq.len(), |j| i + 1 + j);
            (i, Some((i + 1, end)))
        }
        None => (fq.len(), None),
    };
    let svc = memchr::memchr_iter(b'.', fq).any(|i| fq[i + 1..].starts_with(b"svc"));
    let at = |i: usize| host.start + i as u32;
    Some(IstioSni {
        text: sni.into(),
        direction,
        port,
        subset: (!subset.is_empty() && subset != "_").then(|| Span::of(sni, subset)),
        fqdn: host.start,
        service_end: at(service_end),
        namespace: second.filter(|_| svc).map(|(s, e)| Span { start: at(s), end: at(e) }),
    })
}

/// `sni.splitn(4, "_.")`: `str::splitn` with a two-byte pattern builds a string searcher per
/// call (~390 instructions a TLS flow); the separator is found byte by byte instead.
pub(super) fn sni_parts(sni: &str) -> impl Iterator<Item = &str> {
    let (mut rest, mut left) = (Some(sni), 4);
    std::iter::from_fn(move || {
        let r = rest?;
        left -= 1;
        match (left > 0).then(|| sni_separator(r.as_bytes())).flatten() {
            Some(i) => {
                rest = Some(&r[i + 2..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The first `_.` in `b`: each `_` found with memchr (`windows(2)` compared every pair).
fn sni_separator(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = memchr::memchr(b'_', &b[from..]) {
        let i = from + p;
        if b.get(i + 1) == Some(&b'.') {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// What a SPIFFE URI starts with.
const SPIFFE_PREFIX: &str = "spiffe://";

/// A SPIFFE identity as Istio issues it: `spiffe://<trust domain>/ns/<namespace>/sa/<account>`;
/// the URI once, its parts as ranges into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpiffeId {
    /// The whole URI; shared by the flows whose identity [`super::parsed_spiffe`] found parsed.
    uri: std::sync::Arc<str>,
    /// Where the trust domain ends (it starts after `spiffe://`).
    trust_domain_end: u32,
    /// The segment after the path's first `ns`.
    namespace: Option<Span>,
    /// The segment after the path's first `sa`.
    service_account: Option<Span>,
}

impl SpiffeId {
    /// The whole URI.
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// Trust domain, e.g. `cluster.local`.
    pub(crate) fn trust_domain(&self) -> &str {
        self.uri.get(SPIFFE_PREFIX.len()..self.trust_domain_end as usize).unwrap_or_default()
    }

    /// Kubernetes namespace, when the path has `/ns/<namespace>`.
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.namespace.map(|s| s.read(&self.uri))
    }

    /// Service account, when the path has `/sa/<account>`.
    pub(crate) fn service_account(&self) -> Option<&str> {
        self.service_account.map(|s| s.read(&self.uri))
    }
}

/// Parses a SPIFFE ID; `None` for other URIs.
///
/// One pass over the path's segments, split at `/` byte by byte: a `str::split` per key
/// (`/ns/`, `/sa/`) cost ~1,400 instructions an identity, 2,056 identities a mesh 30 MB slice.
pub(crate) fn parse_spiffe(uri: &str) -> Option<SpiffeId> {
    // Ranges are u32 (a longer URI could only come from a JSON file read back).
    u32::try_from(uri.len()).ok()?;
    let rest = uri.strip_prefix(SPIFFE_PREFIX)?;
    let (td, path) = match memchr::memchr(b'/', rest.as_bytes()) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    if td.is_empty() {
        return None;
    }
    // The segment after the first `ns` and after the first `sa` (`Some(None)`: the key came,
    // its value not yet).
    let (mut ns, mut sa): (Option<Option<&str>>, Option<Option<&str>>) = (None, None);
    let mut start = 0;
    for end in memchr::memchr_iter(b'/', path.as_bytes()).chain([path.len()]) {
        let seg = &path[start..end];
        start = end + 1;
        for (slot, key) in [(&mut ns, "ns"), (&mut sa, "sa")] {
            match slot {
                Some(None) => *slot = Some(Some(seg)),
                None if seg == key => *slot = Some(None),
                _ => {}
            }
        }
    }
    Some(SpiffeId {
        uri: uri.into(),
        trust_domain_end: Span::of(uri, td).end,
        namespace: ns.flatten().map(|s| Span::of(uri, s)),
        service_account: sa.flatten().map(|s| Span::of(uri, s)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::next_digits;
    use super::*;

    #[test]
    fn istio_sni_with_and_without_subset() {
        let s = parse_sni("outbound_.9080_.v2_.reviews.default.svc.cluster.local").unwrap();
        assert_eq!((s.direction, s.port, s.subset()), (SniDirection::Outbound, 9080, Some("v2")));
        assert_eq!((s.service(), s.namespace()), ("reviews", Some("default")));
        assert_eq!(s.fqdn(), "reviews.default.svc.cluster.local");
        assert_eq!(s.readable(), "reviews.default:9080 (subset v2)");
        let s = parse_sni("inbound_.0_._.reviews.default.svc.cluster.local").unwrap();
        assert_eq!(
            (s.direction, s.subset(), s.readable()),
            (SniDirection::Inbound, None, "reviews.default:0".into())
        );
        let s = parse_sni("outbound_.65535_.v1_.api.example.com").unwrap();
        assert_eq!((s.service(), s.namespace()), ("api", None));
        assert_eq!(s.readable(), "api.example.com:65535 (subset v1)");
        // The table escapes the wire parts in place: the same as escaping the whole.
        let s = parse_sni("outbound_.80_.v\x1b_.a\u{202e}.ns.svc").unwrap();
        let mut escaped = String::new();
        s.push_readable(&mut escaped, crate::sanitize::escape_str_into);
        assert_eq!(escaped, crate::sanitize::escape_str(&s.readable()));
        assert_eq!(escaped, "a\\u{202e}.ns:80 (subset v\\x1b)");
        for not in
            ["api.example.test", "outbound_.x_._.a", "outbound_.80_._.", "outbound", "outbound_.70000_._.a"]
        {
            assert_eq!(parse_sni(not), None, "{not}");
        }
    }

    /// The parser [`parse_sni`] replaced (four `String`s), as a tuple of its fields.
    type SniFields = (SniDirection, u16, Option<String>, String, String, Option<String>, String);

    fn parse_sni_before(sni: &str) -> Option<SniFields> {
        let mut parts = sni.splitn(4, "_.");
        let direction = match parts.next()? {
            "outbound" => SniDirection::Outbound,
            "inbound" => SniDirection::Inbound,
            _ => return None,
        };
        let port: u16 = parts.next()?.parse().ok()?;
        let subset = parts.next()?;
        let fqdn = parts.next()?;
        if fqdn.is_empty() {
            return None;
        }
        let mut labels = fqdn.split('.');
        let service = labels.next().unwrap_or_default().to_string();
        let namespace = labels.next().filter(|_| fqdn.contains(".svc")).map(str::to_string);
        let subset = (!subset.is_empty() && subset != "_").then(|| subset.to_string());
        let readable = format!(
            "{}:{port}{}",
            namespace.as_ref().map_or(fqdn.to_string(), |ns| format!("{service}.{ns}")),
            subset.as_ref().map_or(String::new(), |s| format!(" (subset {s})"))
        );
        Some((direction, port, subset, fqdn.to_string(), service, namespace, readable))
    }

    fn sni_fields(s: &IstioSni) -> SniFields {
        let owned = |o: Option<&str>| o.map(str::to_string);
        (
            s.direction,
            s.port,
            owned(s.subset()),
            s.fqdn().to_string(),
            s.service().to_string(),
            owned(s.namespace()),
            s.readable(),
        )
    }

    #[test]
    fn sni_reads_as_the_four_strings_did() {
        // Every SNI of up to five of these pieces after each head: ranges against the strings
        // `split`, `splitn` and `contains` cut (service, namespace with `.svc` anywhere, subset).
        let pieces = ["reviews", ".", "svc", "_", "_.", "v2", "", "\u{e9}"];
        for head in
            ["outbound_.9080_.", "inbound_.1_._", "outbound_.80_._.", "outbound_.443_.v1_.", "outbound_.x_."]
        {
            let mut idx: Vec<usize> = Vec::new();
            loop {
                let sni: String = head.chars().chain(idx.iter().flat_map(|&i| pieces[i].chars())).collect();
                assert_eq!(parse_sni(&sni).as_ref().map(sni_fields), parse_sni_before(&sni), "{sni}");
                if !next_digits(&mut idx, pieces.len(), 5) {
                    break;
                }
            }
        }
    }

    #[test]
    fn sni_parts_split_as_splitn_would() {
        // The byte-by-byte split against `str::splitn(4, "_.")` on strings of the pieces that
        // matter (separators, a lone `_` or `.`, ports, subsets), every combination of four.
        let pieces = ["outbound", "inbound", "_.", "_", ".", "9080", "v2", "a_.b", "x.svc", ""];
        let mut n = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let sni = format!("{a}{b}{c}{d}_.{a}_.{d}");
                        let want: Vec<&str> = sni.splitn(4, "_.").collect();
                        let got: Vec<&str> = sni_parts(&sni).collect();
                        assert_eq!(got, want, "{sni}");
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 10_000);
    }

    /// The parser [`parse_spiffe`] replaced (a `str::split` per key, four `String`s), as a tuple
    /// of its fields.
    type SpiffeFields = (String, String, Option<String>, Option<String>);

    fn parse_spiffe_before(uri: &str) -> Option<SpiffeFields> {
        let rest = uri.strip_prefix("spiffe://")?;
        let (td, path) = rest.split_once('/').unwrap_or((rest, ""));
        if td.is_empty() {
            return None;
        }
        let after = |key: &str| {
            let mut parts = path.split('/');
            parts.by_ref().find(|p| *p == key)?;
            parts.next().map(str::to_string)
        };
        Some((uri.to_string(), td.to_string(), after("ns"), after("sa")))
    }

    fn spiffe_fields(id: &SpiffeId) -> SpiffeFields {
        let owned = |o: Option<&str>| o.map(str::to_string);
        (
            id.uri().to_string(),
            id.trust_domain().to_string(),
            owned(id.namespace()),
            owned(id.service_account()),
        )
    }

    #[test]
    fn spiffe_parses_as_the_split_per_key_parser_did() {
        // Every path of up to five of these segments, after each prefix.
        let segs = ["ns", "sa", "default", "", "n\u{e9}", "nss"];
        for prefix in ["spiffe://cluster.local", "spiffe://", "spiffe://td/", "spiffe:/x", "spiffe://a/ns"] {
            let parse = |uri: &str| parse_spiffe(uri).as_ref().map(spiffe_fields);
            assert_eq!(parse(prefix), parse_spiffe_before(prefix), "{prefix}");
            let mut idx: Vec<usize> = vec![0];
            loop {
                let uri: String =
                    idx.iter().map(|&i| format!("/{}", segs[i])).fold(prefix.to_string(), |a, b| a + &b);
                assert_eq!(parse(&uri), parse_spiffe_before(&uri), "{uri}");
                if !next_digits(&mut idx, segs.len(), 5) {
                    break;
                }
            }
        }
    }

    #[test]
    fn spiffe_ids() {
        let id = parse_spiffe("spiffe://cluster.local/ns/default/sa/reviews").unwrap();
        assert_eq!(
            (id.uri(), id.trust_domain(), id.namespace(), id.service_account()),
            (
                "spiffe://cluster.local/ns/default/sa/reviews",
                "cluster.local",
                Some("default"),
                Some("reviews")
            )
        );
        let id = parse_spiffe("spiffe://td/ns//sa").unwrap();
        assert_eq!((id.trust_domain(), id.namespace(), id.service_account()), ("td", Some(""), None));
        assert_eq!(parse_spiffe("https://example.com/x"), None);
        assert_eq!(parse_spiffe("spiffe:///ns/a"), None);
    }

    #[test]
    fn spans_read_what_they_were_cut_from() {
        let whole = "ab\u{e9}cd";
        let s = Span::of(whole, &whole[2..4]);
        assert_eq!((s, s.read(whole)), (Span { start: 2, end: 4 }, "\u{e9}"));
        // A range that is not on the text's char boundaries reads empty, never panics.
        assert_eq!(Span { start: 3, end: 4 }.read(whole), "");
        assert_eq!(Span { start: 9, end: 12 }.read(whole), "");
    }
}
