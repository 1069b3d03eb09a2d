//! Decrypted TLS (`--keylog`): the application bytes of each side go to the HTTP/1 or HTTP/2
//! classifier, as plaintext would, while `protocol` stays `tls`.

use super::http::{self, HttpFeed};
use super::{istio, FlowClassifier};
use crate::wire::{Feed, Probe, Side};

/// What the decrypted application bytes of a TLS side go to (`--keylog`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Tunnel {
    /// Nothing decrypted yet.
    #[default]
    Undecided,
    /// HTTP/1 (ALPN `http/1.1`, `istio-http/1.1`, or a request/status line).
    Http,
    /// HTTP/2 (ALPN `h2`, `istio-h2`).
    H2,
    /// Neither, or the classifier is done: no more application bytes wanted.
    Off,
}

impl FlowClassifier {
    /// Feeds the application bytes decrypted from `side` (TLS with `--keylog`) to the HTTP/1
    /// or HTTP/2 classifier, as plaintext would be: HTTP/2 when the ALPN chosen says so (`h2`,
    /// Istio's `istio-h2`), HTTP/1 for `http/1.1`, `istio-http/1.1` or bytes that start like
    /// HTTP/1; anything else is not classified (and no longer decrypted).
    pub(super) fn feed_tunnel(&mut self, side: Side) {
        let Some(t) = self.tls.as_mut() else { return };
        let data = t.take_app(side);
        if data.is_empty() {
            return;
        }
        let s = side.idx();
        let mut data = &data[..];
        if self.sides[s].tunnel == Tunnel::Undecided {
            let client = t.client_side().unwrap_or(side.other());
            let alpn = t.alpn_selected();
            if alpn == Some(b"istio-peer-exchange") {
                // Istio's TCP metadata exchange opens each direction: its header and Struct
                // come before the application's bytes.
                match istio::skip_metadata_exchange(data) {
                    Some([]) => return,
                    Some(rest) => data = rest,
                    None => {}
                }
            }
            self.sides[s].tunnel = match alpn {
                Some(b"h2" | b"istio-h2") => {
                    self.h2_session().set_client(client);
                    Tunnel::H2
                }
                Some(b"http/1.1" | b"istio-http/1.1" | b"http/1.0") => Tunnel::Http,
                _ if http::probe_request(data) != Probe::NoMatch
                    || http::probe_response(data) != Probe::NoMatch =>
                {
                    Tunnel::Http
                }
                _ if http::is_h2_preface(data) != Probe::NoMatch => {
                    self.h2_session().set_client(client);
                    Tunnel::H2
                }
                _ => Tunnel::Off,
            };
        }
        let done = match self.sides[s].tunnel {
            Tunnel::Http => !matches!(self.http().feed(side, data), HttpFeed::More),
            Tunnel::H2 => self.h2_session().feed(side, data) == Feed::Done,
            Tunnel::Undecided | Tunnel::Off => true,
        };
        if done {
            self.sides[s].tunnel = Tunnel::Off;
            if let Some(t) = self.tls.as_mut() {
                t.app_done(side);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::cfg;
    use super::super::*;

    #[test]
    fn decrypted_istio_peer_exchange_skips_the_metadata_exchange_then_reads_http() {
        use tls::decrypt::tests::{key_lines, sealed_streams};
        let mx = |payload: &[u8]| {
            let mut m = vec![0x3d, 0x23, 0x04, 0x67];
            m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            m.extend_from_slice(payload);
            m
        };
        let (client, server) = sealed_streams(
            b"istio-peer-exchange",
            &[&mx(b"client-metadata"), b"GET /behind-mx HTTP/1.1\r\nHost: reviews\r\n\r\n"],
            &[&mx(b"server-metadata"), b"HTTP/1.1 204 No Content\r\n\r\n"],
        );
        let mut c = FlowClassifier::new(ClassifyConfig {
            keylog: Some(std::sync::Arc::new(tls::decrypt::KeyLog::from_text(key_lines().as_bytes()))),
            ..cfg()
        });
        let ts = Timestamp::new(1_800_000_000, 0);
        c.data(Side::A, &client[..client.len() / 2], ts);
        c.data(Side::B, &server, ts);
        c.data(Side::A, &client[client.len() / 2..], ts);
        let r = c.finish(Side::A);
        assert_eq!(r.protocol, Protocol::Tls);
        let t = r.tls.unwrap().into_report();
        assert_eq!(t.alpn_selected.unwrap().as_bytes(), b"istio-peer-exchange");
        let h = r.http.unwrap();
        assert_eq!(h.requests[0].path(), b"/behind-mx");
        assert_eq!(h.responses[0].status, 204);
        assert_eq!(r.warnings, Vec::<String>::new());
    }
}
