//! The mTLS verdict ([`MtlsVerdict`] with its reason) and how a session was resumed. TLS ≤ 1.2
//! shows the client's Certificate in cleartext; TLS 1.3 hides it, and the verdict is inferred
//! from the size of the client's first encrypted flight (the "tail" walked by `records.rs`):
//! [`TlsSession::tls13_decision`] decides and returns its evidence as data,
//! [`Tls13Evidence::reason`] words it. These functions only read session state: they run at
//! report time and may run more than once (a live flow's `classified` event, then its end).

use super::names::{is_tls13, TLS_AES_128_CCM_8_SHA256, TLS_AES_256_GCM_SHA384, VERSION_SSL2};
use std::borrow::Cow;

use super::{MtlsVerdict, Resumption, ServerHello, SideTls, TlsSession, CERT_FLIGHT_MIN_EXTRA, TAIL_RECORDS};

/// A verdict and its reason in words (most reasons are fixed texts, borrowed).
pub(super) type Verdict = (MtlsVerdict, Cow<'static, str>);

/// What the TLS 1.3 verdict rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tls13Evidence {
    /// The session was resumed with a PSK: no certificates in this handshake.
    Resumed,
    /// No encrypted record of the client was seen (`lost`: a capture gap broke the walk).
    FlightNotSeen {
        /// Lost in a capture gap (else simply not captured).
        lost: bool,
    },
    /// The client's first encrypted records, and what their sizes say.
    Flight {
        /// Their lengths, the first `n`.
        records: [u16; TAIL_RECORDS],
        /// Records kept (1 to [`TAIL_RECORDS`]).
        n: usize,
        /// The length of a record holding a Finished alone, for the cipher.
        finished_record: usize,
        /// The reading of the sizes.
        reading: FlightReading,
    },
}

/// What the sizes of the client's first encrypted records say, when at least one was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FlightReading {
    /// The first record is an empty Certificate (8 bytes), the Finished not seen.
    EmptyCertificateOnly,
    /// No Finished-sized record, and the first too small for a certificate.
    NoFinished,
    /// The flight is its first `k` records (`k` ≥ 1), `extra` bytes more than a Finished alone.
    Flight {
        /// Records in the flight.
        k: usize,
        /// Plaintext bytes beyond a Finished alone.
        extra: usize,
    },
}

impl FlightReading {
    /// The verdict the reading gives.
    fn verdict(self) -> MtlsVerdict {
        match self {
            FlightReading::EmptyCertificateOnly => MtlsVerdict::Unlikely,
            FlightReading::NoFinished => MtlsVerdict::Unknown,
            FlightReading::Flight { extra, .. } if extra >= CERT_FLIGHT_MIN_EXTRA => MtlsVerdict::Likely,
            FlightReading::Flight { .. } => MtlsVerdict::Unlikely,
        }
    }
}

impl Tls13Evidence {
    /// The verdict this evidence gives.
    pub(super) fn verdict(self) -> MtlsVerdict {
        match self {
            Tls13Evidence::Resumed | Tls13Evidence::FlightNotSeen { .. } => MtlsVerdict::Unknown,
            Tls13Evidence::Flight { reading, .. } => reading.verdict(),
        }
    }

    /// The reason in words: `TLS 1.3: client's first encrypted records 69, 23, 19 bytes; the
    /// first (69) is a Finished alone: no client certificate was sent`.
    pub(super) fn reason(self) -> Cow<'static, str> {
        let (records, n, fin_rec, reading) = match self {
            Tls13Evidence::Resumed => {
                return "TLS 1.3 session resumption (PSK): no certificates in this handshake; the client was authenticated, if at all, in the handshake that made the session".into();
            }
            Tls13Evidence::FlightNotSeen { lost: true } => {
                return "TLS 1.3: the client's encrypted flight was lost in a capture gap".into();
            }
            Tls13Evidence::FlightNotSeen { lost: false } => {
                return "TLS 1.3: the client's encrypted flight was not seen".into();
            }
            Tls13Evidence::Flight { records, n, finished_record, reading } => {
                (records, n, finished_record, reading)
            }
        };
        let records = &records[..n];
        let first = records[0] as usize;
        let push_sizes = |out: &mut String, n: usize, sep: &str| {
            for (i, &l) in records[..n].iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                push_decimal(out, l.into());
            }
        };
        // One string, numbers written by hand: this runs for every TLS 1.3 flow, and with
        // `write!` it took ~1,300 instructions a flow (default bench file, callgrind).
        let mut text = String::with_capacity(200);
        text.push_str("TLS 1.3: client's first encrypted records ");
        push_sizes(&mut text, records.len(), ", ");
        text.push_str(" bytes; ");
        let (k, extra) = match reading {
            FlightReading::EmptyCertificateOnly => {
                text.push_str("the first (");
                push_decimal(&mut text, first);
                text.push_str(
                    ") is an empty Certificate: a certificate was requested and the client sent none",
                );
                return text.into();
            }
            FlightReading::NoFinished => {
                text.push_str("no Finished (");
                push_decimal(&mut text, fin_rec);
                text.push_str(") among them and the first is too small to hold a certificate");
                return text.into();
            }
            FlightReading::Flight { k, extra } => (k, extra),
        };
        if k == 1 {
            text.push_str("the first (");
            push_decimal(&mut text, first);
            text.push(')');
        } else {
            text.push_str("the first ");
            push_decimal(&mut text, k);
            text.push_str(" (");
            push_sizes(&mut text, k, " + ");
            text.push(')');
        }
        match extra {
            0 => text.push_str(" is a Finished alone: no client certificate was sent"),
            8 => text.push_str(
                " is an empty Certificate and a Finished: a certificate was requested and the client sent none",
            ),
            e => {
                text.push_str(" is ");
                push_decimal(&mut text, e);
                text.push_str(" bytes more than a Finished alone (");
                push_decimal(&mut text, fin_rec);
                text.push_str(if e >= CERT_FLIGHT_MIN_EXTRA {
                    "): it carries a client certificate"
                } else {
                    "): too few for a certificate (a client EncryptedExtensions, as Chrome sends for ALPS, or padding)"
                });
            }
        }
        text.into()
    }
}

/// Appends `v` in decimal (what `write!(out, "{v}")` writes, without the formatting machinery).
fn push_decimal(out: &mut String, v: usize) {
    // Digits as chars: `str::from_utf8` on them cost more than writing them (~50 of ~140).
    crate::wire::decimal(v as u64, &mut [0; 20]).iter().for_each(|&d| out.push(char::from(d)));
}

/// `client sent a certificate (WHO)` and the rest, WHO the certificate's first URI SAN, else its
/// subject (one string, not `format!`: it runs for every mTLS flow).
fn client_cert_reason(c: &super::CertInfo, rest: &str) -> String {
    let who = c.san_uris.first().or(c.subject.as_ref()).map_or("unparsed", String::as_str);
    let mut text = String::with_capacity(27 + who.len() + 1 + rest.len());
    text.push_str("client sent a certificate (");
    text.push_str(who);
    text.push(')');
    text.push_str(rest);
    text
}

impl TlsSession {
    /// How the session was resumed, if it was.
    pub(super) fn resumption(&self, sh: &ServerHello, v: u16, server: &SideTls) -> Option<Resumption> {
        if sh.psk {
            return Some(Resumption::Psk);
        }
        if is_tls13(v) || sh.sslv2 {
            return None;
        }
        let ch = self.ch.as_ref();
        // Abbreviated handshake (RFC 5246 §7.3): ServerHello then ChangeCipherSpec, with no
        // Certificate or ServerHelloDone in between.
        let abbreviated = server.ccs && !server.cert_msg && !server.hello_done;
        let ticket = ch.is_some_and(|c| c.ticket);
        let echoed = ch.is_some_and(|c| !c.session_id.as_slice().is_empty() && c.session_id == sh.session_id);
        if abbreviated && ticket {
            // RFC 5077 §3.4: the server echoes the client's session id when it accepts a ticket.
            Some(Resumption::SessionTicket)
        } else if echoed {
            Some(Resumption::SessionId)
        } else if abbreviated && ch.is_some_and(|c| c.ticket_ext) {
            Some(Resumption::SessionTicket)
        } else {
            None
        }
    }

    pub(super) fn verdict(
        &self,
        negotiated: Option<u16>,
        resumed: bool,
        client: &SideTls,
        server: &SideTls,
    ) -> Verdict {
        use MtlsVerdict::{No, Unknown, Yes};
        if let Some(c) = client.certs.first() {
            return (Yes, client_cert_reason(c, "").into());
        }
        if self.cut_hello {
            return (
                Unknown,
                "handshake cut short by the capture: packets truncated by the snaplen (record with -s 0 to see it whole)".into(),
            );
        }
        match negotiated {
            Some(v) if is_tls13(v) => {
                let evidence = self.tls13_decision(resumed, client);
                return (evidence.verdict(), evidence.reason());
            }
            Some(VERSION_SSL2) => return (Unknown, "SSL 2.0: client authentication is encrypted".into()),
            Some(_) => {}
            // Without hellos, a cleartext server Certificate or ServerHelloDone still says ≤ 1.2.
            None if server.cert_msg || server.hello_done || server.cert_request => {}
            None if self.ch.is_none() => {
                return (Unknown, "handshake not seen (capture started mid-stream)".into())
            }
            None => return (Unknown, "no ServerHello seen".into()),
        }
        if server.cert_request && client.cert_empty {
            return (No, "client certificate requested but the client sent none".into());
        }
        if resumed {
            return (
                Unknown,
                "abbreviated handshake (session resumption): client authentication, if any, happened in an earlier handshake"
                    .into(),
            );
        }
        if server.cert_request {
            return (Unknown, "client certificate requested; the client's answer was not seen".into());
        }
        // "Not requested" needs the whole server flight: a capture that starts inside it may have
        // missed the CertificateRequest.
        if server.hello_done && negotiated.is_some() {
            return (No, "server did not request a client certificate".into());
        }
        if server.hello_done {
            return (Unknown, "server flight seen only in part (capture started mid-handshake)".into());
        }
        (Unknown, "server handshake not seen to its end".into())
    }

    /// TLS 1.3 with the key log: the verdict read from the decrypted handshake, when it shows
    /// the answer, with the record-size inference it replaces (both `(verdict, reason)`).
    pub(super) fn proven_verdict(
        &self,
        resumed: bool,
        client_side: crate::wire::Side,
        client: &SideTls,
        server: &SideTls,
    ) -> Option<(Verdict, Verdict)> {
        const PROOF: &str = "; proven with the key log";
        let client_done = self.dec_finished(client_side);
        let server_done = self.dec_finished(client_side.other());
        let proven = if let Some(c) = client.certs.first() {
            (MtlsVerdict::Yes, client_cert_reason(c, PROOF).into())
        } else if server.cert_request && client.cert_empty {
            (
                MtlsVerdict::No,
                format!("client certificate requested but the client sent an empty Certificate{PROOF}")
                    .into(),
            )
        } else if server_done && !server.cert_request && resumed {
            (
                MtlsVerdict::Unknown,
                format!("TLS 1.3 session resumption (PSK): no certificates in this handshake (decrypted), the client was authenticated, if at all, in the handshake that made the session{PROOF}").into(),
            )
        } else if server_done && !server.cert_request {
            (MtlsVerdict::No, format!("server did not request a client certificate{PROOF}").into())
        } else if client_done && server.cert_request && !client.cert_msg {
            (
                MtlsVerdict::No,
                format!("client certificate requested; the client's flight had no Certificate{PROOF}").into(),
            )
        } else {
            return None;
        };
        let e = self.tls13_decision(resumed, client);
        Some((proven, (e.verdict(), e.reason())))
    }

    /// TLS 1.3 hides certificates, but not the size of the client's first encrypted flight
    /// (RFC 8446 §4.4): Finished alone when no certificate was requested; an empty Certificate
    /// (8 bytes) and Finished when one was requested and the client had none; Certificate,
    /// CertificateVerify and Finished — hundreds of bytes more — when it sent one. Stacks put
    /// that flight in one record (OpenSSL) or one record per message (Go, rustls), so the first
    /// encrypted record decides: its plaintext is the record length minus the inner content
    /// type byte and the AEAD tag. docs/istio.md states the rule and its limits (record padding,
    /// 0-RTT, post-handshake authentication); captures/tls13-calib.md the calibration.
    fn tls13_decision(&self, resumed: bool, client: &SideTls) -> Tls13Evidence {
        if resumed {
            return Tls13Evidence::Resumed;
        }
        let t = &client.tail;
        let n = t.n as usize;
        if n == 0 {
            return Tls13Evidence::FlightNotSeen { lost: t.broken };
        }
        let cipher = self.sh.as_ref().map_or(0, |sh| sh.cipher);
        // TLS_AES_256_GCM_SHA384 has a 48-byte Finished; TLS_AES_128_CCM_8_SHA256 an 8-byte tag.
        let hash = if cipher == TLS_AES_256_GCM_SHA384 { 48 } else { 32 };
        let tag = if cipher == TLS_AES_128_CCM_8_SHA256 { 8 } else { 16 };
        let overhead = 1 + tag;
        let finished = 4 + hash;
        // Plaintext lengths (fixed arrays: this runs for every TLS 1.3 flow).
        let mut lens = [0usize; TAIL_RECORDS];
        for (p, &l) in lens.iter_mut().zip(&t.lens[..n]) {
            *p = (l as usize).saturating_sub(overhead);
        }
        let lens = &lens[..n];
        // The flight: the first record when it is at least a Finished (one record for the whole
        // flight, or a Certificate alone), else the records up to the first Finished-sized one
        // (one message per record).
        let k = if lens[0] >= finished {
            Some(1)
        } else {
            lens.iter().position(|&p| p == finished).map(|i| i + 1)
        };
        let reading = match k {
            Some(k) => FlightReading::Flight { k, extra: lens[..k].iter().sum::<usize>() - finished },
            None if lens[0] == 8 => FlightReading::EmptyCertificateOnly,
            None => FlightReading::NoFinished,
        };
        Tls13Evidence::Flight { records: t.lens, n, finished_record: finished + overhead, reading }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tls::testutil::*;
    use crate::classify::tls::*;

    #[test]
    fn tls12_mtls_capture() {
        let (mut t, done) = run(TLS12_MTLS);
        assert_eq!(done, [true, true]);
        assert!(t.saw_tls());
        assert_eq!(t.client_side(), Some(Side::A));
        assert_eq!(t.take_warnings(), Vec::<String>::new());
        let r = t.finish(Side::B);
        assert_eq!(
            r.sni.as_ref().unwrap().as_bytes(),
            b"outbound_.9080_._.reviews.default.svc.cluster.local"
        );
        let alpn: Vec<&[u8]> = r.alpn_offered.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(alpn, [&b"istio-peer-exchange"[..], b"istio"]);
        assert_eq!(r.alpn_selected.as_ref().unwrap().as_bytes(), b"istio-peer-exchange");
        assert_eq!(r.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.legacy_version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.cipher.as_deref(), Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"));
        assert!(!r.hello_retry_request && r.resumption.is_none() && r.alerts.is_empty());
        assert_eq!(r.server_certs.len(), 2);
        let leaf = &r.server_certs[0];
        assert_eq!(leaf.subject.as_deref(), Some("CN=reviews,O=cluster.local"));
        assert_eq!(leaf.issuer.as_deref(), Some("CN=Test Root CA,O=cluster.local"));
        assert_eq!(leaf.serial.as_deref(), Some("a1b2c3d4"));
        assert_eq!(leaf.san_uris, ["spiffe://cluster.local/ns/default/sa/reviews"]);
        assert_eq!(leaf.san_dns, ["reviews.default.svc.cluster.local"]);
        assert_eq!(leaf.not_before.as_deref(), Some("2026-11-23T04:16:03Z"));
        assert_eq!(leaf.not_after.as_deref(), Some("2036-11-20T04:16:03Z"));
        assert!(!leaf.expired && !leaf.not_yet_valid && leaf.parse_error.is_none());
        assert_eq!(r.server_certs[1].subject.as_deref(), Some("CN=Test Root CA,O=cluster.local"));
        assert_eq!(r.client_certs.len(), 2); // s_client completes the chain from -CAfile
        assert_eq!(r.client_certs[0].subject.as_deref(), Some("CN=productpage,O=cluster.local"));
        assert_eq!(r.client_certs[0].san_uris, ["spiffe://cluster.local/ns/default/sa/productpage"]);
        assert!(r.client_cert_requested && !r.client_cert_empty && !r.sslv2_client_hello);
        assert_eq!(r.mtls.as_str(), "yes");
        assert_eq!(
            r.mtls_reason,
            "client sent a certificate (spiffe://cluster.local/ns/default/sa/productpage)"
        );
        // Validity is judged at the time the certificate was seen.
        let mut late = TlsSession::new(limits());
        for (side, d) in segments(TLS12_MTLS) {
            late.feed(side, d, Timestamp { secs: 2_200_000_000, nanos: 0 });
        }
        assert!(late.finish(Side::A).server_certs[0].expired);
    }

    #[test]
    fn tls13_capture() {
        let (mut t, done) = run(TLS13);
        assert_eq!(done, [false, true], "the client side still walks its encrypted records");
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert_eq!(r.sni.as_ref().unwrap().as_bytes(), b"reviews.example");
        assert_eq!(r.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(r.legacy_version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.versions_offered.names().collect::<Vec<_>>(), ["TLS 1.3"]);
        assert_eq!(r.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        let alpn: Vec<&[u8]> = r.alpn_offered.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(alpn, [&b"h2"[..], b"http/1.1"]);
        assert!(r.alpn_selected.is_none() && r.server_certs.is_empty() && r.client_certs.is_empty());
        // openssl s_client without a certificate: its first encrypted record is a Finished alone.
        assert_eq!(r.client_encrypted_records[..], [69, 23, 19]);
        assert_eq!(
            (r.mtls.as_str(), &*r.mtls_reason),
            (
                "unlikely",
                "TLS 1.3: client's first encrypted records 69, 23, 19 bytes; the first (69) is a Finished alone: no client certificate was sent"
            )
        );
        // The server is done right after its ServerHello: the first segment it sends.
        let mut t = TlsSession::new(limits());
        let segs = segments(TLS13);
        t.feed(segs[0].0, segs[0].1, SEEN);
        assert_eq!(t.feed(segs[1].0, segs[1].1, SEEN), Feed::Done);
    }

    /// A TLS 1.3 handshake with `cipher` whose client then sends application_data records of
    /// the given lengths (after a middlebox-compatibility CCS), fed in one chunk.
    fn tls13_flight(cipher: u16, client_records: &[usize]) -> TlsReport {
        let mut t = TlsSession::new(limits());
        let ts = Timestamp::default();
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[0x0304]))]), ts);
        let sh = record(&[(2, server_hello([2; 32], cipher, &[ext(43, &[3, 4])]))]);
        assert_eq!(t.feed(Side::B, &sh, ts), Feed::Done);
        let mut c = vec![20, 3, 3, 0, 1, 1];
        for &n in client_records {
            c.extend_from_slice(&[23, 3, 3]);
            c.extend_from_slice(&(n as u16).to_be_bytes());
            c.extend(std::iter::repeat_n(0xaa, n));
        }
        t.feed(Side::A, &c, ts);
        t.finish(Side::A)
    }

    #[test]
    fn tls13_client_flight_sizes_give_the_verdict() {
        let cases: &[(u16, &[usize], &str)] = &[
            (0x1301, &[53, 40], "unlikely"),        // Finished alone (SHA-256)
            (0x1302, &[69], "unlikely"),            // Finished alone (SHA-384)
            (0x1303, &[53], "unlikely"),            // ChaCha20-Poly1305, SHA-256
            (0x1305, &[45], "unlikely"),            // AES-128-CCM-8: 8-byte tag
            (0x1301, &[25, 53], "unlikely"),        // empty Certificate, then Finished
            (0x1301, &[61], "unlikely"),            // empty Certificate + Finished in one record
            (0x1302, &[77], "unlikely"),            // same, SHA-384
            (0x1301, &[487, 96, 53], "likely"),     // Certificate, CertificateVerify, Finished
            (0x1302, &[1209], "likely"),            // the three in one record
            (0x1301, &[90], "unlikely"),            // Finished + 37 bytes: no room for a certificate
            (0x1301, &[63], "unlikely"),            // Chrome: EncryptedExtensions (ALPS) + Finished
            (0x1301, &[27, 480, 96, 53], "likely"), // EncryptedExtensions, Certificate, CV, Finished
            (0x1301, &[27, 53], "unlikely"),        // EncryptedExtensions, Finished
            (0x1301, &[25], "unlikely"),            // an empty Certificate, Finished not seen
            (0x1301, &[30, 40], "unknown"),         // no Finished-sized record
            (0x1301, &[], "unknown"),               // flight not seen
        ];
        for (cipher, recs, want) in cases {
            let r = tls13_flight(*cipher, recs);
            assert_eq!(r.mtls.as_str(), *want, "{cipher:04x} {recs:?}: {}", r.mtls_reason);
            let kept: Vec<u16> = recs.iter().take(4).map(|&n| n as u16).collect();
            assert_eq!(r.client_encrypted_records[..], kept);
        }
        let r = tls13_flight(0x1301, &[61]);
        assert_eq!(
            r.mtls_reason,
            "TLS 1.3: client's first encrypted records 61 bytes; the first (61) is an empty Certificate and a Finished: a certificate was requested and the client sent none"
        );
        assert_eq!(
            tls13_flight(0x1301, &[]).mtls_reason,
            "TLS 1.3: the client's encrypted flight was not seen"
        );
    }

    #[test]
    fn tls12_ticket_resumption_capture() {
        let (mut t, done) = run(TLS12_RESUME);
        assert_eq!(done, [true, true]);
        assert!(t.take_warnings().is_empty());
        let r = t.finish(Side::A);
        assert_eq!(r.resumption, Some(Resumption::SessionTicket));
        assert_eq!(r.version.as_deref(), Some("TLS 1.2"));
        assert_eq!(r.mtls.as_str(), "unknown");
        assert!(r.mtls_reason.starts_with("abbreviated handshake"));
    }

    #[test]
    fn alerts_and_midstream() {
        let mut t = TlsSession::new(limits());
        t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[]))]), SEEN);
        assert_eq!(t.feed(Side::B, &[21, 3, 3, 0, 2, 2, 40], SEEN), Feed::More);
        let r = t.finish(Side::B);
        assert_eq!(r.alerts.len(), 1);
        assert_eq!((r.alerts[0].from.as_str(), r.alerts[0].level.as_text().as_ref()), ("server", "fatal"));
        assert_eq!(r.alerts[0].description, "handshake_failure");
        assert_eq!(
            (r.mtls.as_str(), &*r.mtls_reason),
            ("unknown", "refused by the server: handshake_failure alert (no ServerHello)")
        );
        assert_eq!(r.refused, Some(Refusal::Alert("handshake_failure".into())));
        assert_eq!(
            r.fatal_alert().map(|a| a.meaning()),
            Some(Some(
                "the server gave up: no parameters in common, or a client certificate missing or refused"
            ))
        );
        // Application data only (capture started mid-stream).
        let mut t = TlsSession::new(limits());
        assert_eq!(t.feed(Side::B, &[23, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3], SEEN), Feed::Done);
        assert!(t.saw_tls());
        let r = t.finish(Side::A);
        assert_eq!(r.mtls_reason, "handshake not seen (capture started mid-stream)");
        assert_eq!(r.version, None);
    }

    /// (ServerHello sent, alerts as (sender is the server, level, description)) -> refused?,
    /// mTLS reason, first fatal alert's meaning.
    #[test]
    fn refusals_and_alert_meanings() {
        #[allow(clippy::type_complexity)]
        let cases: &[(bool, &[(bool, u8, u8)], bool, &str, Option<&str>)] = &[
            (false, &[], false, "no ServerHello seen", None),
            (false, &[(true, 2, 70)], true, "refused by the server: protocol_version alert (no ServerHello)", Some("no TLS version in common")),
            (false, &[(true, 2, 120)], true, "refused by the server: no_application_protocol alert (no ServerHello)", Some("no ALPN protocol in common")),
            (false, &[(true, 2, 112)], true, "refused by the server: unrecognized_name alert (no ServerHello)", Some("the server does not serve this SNI")),
            // A warning does not refuse; nor does an alert the client sends.
            (false, &[(true, 1, 112)], false, "no ServerHello seen", None),
            (false, &[(false, 2, 40)], false, "no ServerHello seen; the handshake failed (handshake_failure alert from the client)", None),
            // After a ServerHello an alert is a failure, not a refusal.
            (true, &[(false, 2, 45)], false, "server handshake not seen to its end; the handshake failed (certificate_expired alert from the client)", Some("the client rejected the server's certificate")),
            (true, &[(true, 2, 48)], false, "server handshake not seen to its end; the handshake failed (unknown_ca alert from the server)", Some("the server rejected the client's certificate")),
            (true, &[(true, 2, 116)], false, "server handshake not seen to its end; the handshake failed (certificate_required alert from the server)", Some("the server requires a client certificate")),
            (true, &[(false, 2, 47)], false, "server handshake not seen to its end; the handshake failed (illegal_parameter alert from the client)", Some("a malformed or unexpected handshake message")),
            (true, &[(false, 2, 99)], false, "server handshake not seen to its end; the handshake failed (99 alert from the client)", None),
        ];
        for (i, &(sh, alerts, refused, reason, meaning)) in cases.iter().enumerate() {
            let mut t = TlsSession::new(limits());
            t.feed(Side::A, &record(&[(1, client_hello("x.test", &[], &[]))]), SEEN);
            if sh {
                t.feed(Side::B, &record(&[(2, server_hello([9; 32], 0xc02f, &[]))]), SEEN);
            }
            for &(server, level, desc) in alerts {
                let side = if server { Side::B } else { Side::A };
                t.feed(side, &[21, 3, 3, 0, 2, level, desc], SEEN);
            }
            let r = t.finish(Side::A);
            assert_eq!(
                (r.refused.is_some(), r.mtls.as_str(), &*r.mtls_reason),
                (refused, "unknown", reason),
                "case {i}"
            );
            assert_eq!(r.awaiting_server, !sh, "case {i}");
            assert_eq!(r.fatal_alert().and_then(|a| a.meaning()), meaning, "case {i}");
        }
    }
}
