//! rustls TLS 1.3 peer for captures/make-tls13-calib.sh.
//!
//!   rustls-peer server PORT CERT KEY [--ca CA --auth none|require|optional] [--suite S]
//!                      [--groups p256] [--count N]
//!   rustls-peer client HOST PORT --sni NAME --ca CA [--cert C --key K] [--suite S]
//!                      --conn SPORT:PATH [--conn SPORT:PATH ...]
//!
//! S is aes128 | aes256 | chacha (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
//! TLS_CHACHA20_POLY1305_SHA256); default: rustls' own list. `--groups p256` limits the server to
//! secp256r1, so a client whose key share is X25519 gets a HelloRetryRequest.
//! The client makes one connection per --conn, in order, from that source port, with one
//! ClientConfig (its in-memory session cache), so a second --conn resumes the first's session.
//! Each connection: handshake, "GET /PATH HTTP/1.1", read the reply to the server's
//! close_notify, send close_notify, close. The server answers one short HTTP/1.1 200 per
//! connection, sends close_notify and waits for the client's before closing.
//! Key log: rustls::KeyLogFile (NSS format, file named by SSLKEYLOGFILE).

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn certs(path: &str) -> Res<Vec<CertificateDer<'static>>> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    Ok(rustls_pemfile::certs(&mut r).collect::<Result<Vec<_>, _>>()?)
}

fn key(path: &str) -> Res<PrivateKeyDer<'static>> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    Ok(rustls_pemfile::private_key(&mut r)?.ok_or("no private key")?)
}

fn roots(path: &str) -> Res<RootCertStore> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store.add(c)?;
    }
    Ok(store)
}

fn crypto(suite: Option<&str>, groups: Option<&str>) -> Res<Arc<rustls::crypto::CryptoProvider>> {
    let mut p = provider::default_provider();
    if let Some(s) = suite {
        let want = match s {
            "aes128" => provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
            "aes256" => provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
            "chacha" => provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            _ => return Err(format!("unknown suite {s}").into()),
        };
        p.cipher_suites = vec![want];
    }
    if let Some(g) = groups {
        match g {
            "p256" => p.kx_groups = vec![provider::kx_group::SECP256R1],
            _ => return Err(format!("unknown groups {g}").into()),
        }
    }
    Ok(Arc::new(p))
}

struct Opts {
    pos: Vec<String>,
    flags: Vec<(String, String)>,
}

impl Opts {
    fn parse(args: Vec<String>) -> Opts {
        let (mut pos, mut flags) = (vec![], vec![]);
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                flags.push((name.to_string(), it.next().expect("flag value")));
            } else {
                pos.push(a);
            }
        }
        Opts { pos, flags }
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.flags.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

fn server(o: &Opts) -> Res<()> {
    let port: u16 = o.pos[1].parse()?;
    let prov = crypto(o.get("suite"), o.get("groups"))?;
    let builder = ServerConfig::builder_with_provider(prov.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let auth = o.get("auth").unwrap_or("none");
    let builder = if auth == "none" {
        builder.with_no_client_auth()
    } else {
        let roots = Arc::new(roots(o.get("ca").ok_or("--ca needed")?)?);
        let vb = WebPkiClientVerifier::builder_with_provider(roots, prov.clone());
        let v = if auth == "optional" { vb.allow_unauthenticated().build()? } else { vb.build()? };
        builder.with_client_cert_verifier(v)
    };
    let mut cfg = builder.with_single_cert(certs(&o.pos[2])?, key(&o.pos[3])?)?;
    cfg.key_log = Arc::new(rustls::KeyLogFile::new());
    let cfg = Arc::new(cfg);
    let count: usize = o.get("count").unwrap_or("1").parse()?;
    let ls = TcpListener::bind(("0.0.0.0", port))?;
    for _ in 0..count {
        let (tcp, peer) = ls.accept()?;
        tcp.set_nodelay(true)?;
        let mut tls = StreamOwned::new(ServerConnection::new(cfg.clone())?, tcp);
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf)?;
            if n == 0 {
                return Err("client closed before its request".into());
            }
            req.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&req);
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        let body = format!("calib ok {path}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            body
        );
        tls.write_all(resp.as_bytes())?;
        tls.flush()?;
        tls.conn.send_close_notify();
        tls.flush()?;
        // Wait for the client's close_notify / FIN so that the close is clean (no RST).
        loop {
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = tls.sock.shutdown(std::net::Shutdown::Both);
        let msg = format!(
            "rustls server: {peer} {path} {:?} client certs: {}",
            tls.conn.handshake_kind(),
            tls.conn.peer_certificates().map(|c| c.len()).unwrap_or(0)
        );
        let _ = std::io::stderr().write_all(format!("{msg}\n").as_bytes());
    }
    Ok(())
}

fn connect_from(host: &str, port: u16, sport: u16) -> Res<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let dst: SocketAddr = format!("{host}:{port}").parse()?;
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from(([0, 0, 0, 0], sport)).into())?;
    s.connect(&dst.into())?;
    let t: TcpStream = s.into();
    t.set_nodelay(true)?;
    Ok(t)
}

fn client(o: &Opts) -> Res<()> {
    let host = o.pos[1].clone();
    let port: u16 = o.pos[2].parse()?;
    let prov = crypto(o.get("suite"), o.get("groups"))?;
    let builder = ClientConfig::builder_with_provider(prov)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(o.get("ca").ok_or("--ca needed")?)?);
    let mut cfg = match (o.get("cert"), o.get("key")) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(certs(c)?, key(k)?)?,
        _ => builder.with_no_client_auth(),
    };
    cfg.key_log = Arc::new(rustls::KeyLogFile::new());
    let cfg = Arc::new(cfg);
    let sni = ServerName::try_from(o.get("sni").unwrap_or("calib.test").to_string())?;
    for conn in o.all("conn") {
        let (sport, path) = conn.split_once(':').ok_or("--conn SPORT:PATH")?;
        let tcp = connect_from(&host, port, sport.parse()?)?;
        let mut tls = StreamOwned::new(ClientConnection::new(cfg.clone(), sni.clone())?, tcp);
        let req = format!("GET /{path} HTTP/1.1\r\nHost: calib\r\n\r\n");
        tls.write_all(req.as_bytes())?;
        tls.flush()?;
        let mut resp = Vec::new();
        tls.read_to_end(&mut resp)?; // ends at the server's close_notify
        tls.conn.send_close_notify();
        tls.flush()?;
        let _ = tls.sock.shutdown(std::net::Shutdown::Write);
        let mut rest = [0u8; 64];
        let _ = tls.sock.read(&mut rest); // the server's FIN
        let first = String::from_utf8_lossy(&resp);
        let msg = format!(
            "rustls client: /{path} {:?} {:?} -> {}",
            tls.conn.negotiated_cipher_suite().map(|s| s.suite()),
            tls.conn.handshake_kind(),
            first.lines().next().unwrap_or("(no reply)")
        );
        let _ = std::io::stderr().write_all(format!("{msg}\n").as_bytes());
    }
    Ok(())
}

fn main() {
    let o = Opts::parse(std::env::args().skip(1).collect());
    let r = match o.pos.first().map(String::as_str) {
        Some("server") => server(&o),
        Some("client") => client(&o),
        _ => Err("usage: rustls-peer server|client ...".into()),
    };
    if let Err(e) = r {
        eprintln!("rustls-peer: {e}");
        std::process::exit(1);
    }
}
