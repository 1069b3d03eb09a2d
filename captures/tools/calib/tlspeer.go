// Go crypto/tls TLS 1.3 peer for captures/make-tls13-calib.sh (standard library only).
//
//	tlspeer server -port 8443 -cert C -key K [-ca CA -auth none|require|optional] [-p256only] [-count N]
//	tlspeer client -addr HOST:PORT -sni NAME -ca CA [-cert C -key K] -conn SPORT:PATH [-conn ...]
//
// Go has no setting for the TLS 1.3 cipher suites: its client always offers
// AES_128_GCM, CHACHA20, AES_256_GCM (AES first on AES-NI hardware) and its server takes the
// first of its own list the client offers. -p256only limits the server to P-256, so the Go
// client (key share X25519 only) gets a HelloRetryRequest.
// The client makes one connection per -conn, in order, sharing one LRU session cache, so a
// second -conn resumes the first's session. Each connection: handshake, GET /PATH, read the
// reply to the server's close_notify, then close (close_notify + FIN).
// Key log: SSLKEYLOGFILE (appended), NSS format, via tls.Config.KeyLogWriter.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func keylog() io.Writer {
	name := os.Getenv("SSLKEYLOGFILE")
	if name == "" {
		return nil
	}
	f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	return f
}

func pool(path string) *x509.CertPool {
	pem, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		log.Fatalf("no certificate in %s", path)
	}
	return p
}

func server(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	port := fs.Int("port", 8443, "")
	cert := fs.String("cert", "", "")
	key := fs.String("key", "", "")
	ca := fs.String("ca", "", "")
	auth := fs.String("auth", "none", "")
	p256 := fs.Bool("p256only", false, "")
	count := fs.Int("count", 1, "")
	fs.Parse(args)
	kp, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS13, KeyLogWriter: keylog()}
	switch *auth {
	case "require":
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pool(*ca)
	case "optional":
		cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, pool(*ca)
	}
	if *p256 {
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	}
	ln, err := net.Listen("tcp4", ":"+strconv.Itoa(*port))
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *count; i++ {
		raw, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		c := tls.Server(raw, cfg)
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		for {
			h, err := r.ReadString('\n')
			if err != nil {
				log.Fatal(err)
			}
			if h == "\r\n" {
				break
			}
		}
		path := strings.Fields(line)[1]
		body := "calib ok " + path + "\n"
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
		c.CloseWrite() // close_notify (keeps the TCP connection open)
		io.Copy(io.Discard, r) // until the client's close_notify
		st := c.ConnectionState()
		log.Printf("go server: %s %s suite %s resumed %v client certs %d", raw.RemoteAddr(), path,
			tls.CipherSuiteName(st.CipherSuite), st.DidResume, len(st.PeerCertificates))
		c.Close()
	}
}

func client(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "")
	sni := fs.String("sni", "calib.test", "")
	ca := fs.String("ca", "", "")
	cert := fs.String("cert", "", "")
	key := fs.String("key", "", "")
	var conns multi
	fs.Var(&conns, "conn", "SPORT:PATH")
	fs.Parse(args)
	cfg := &tls.Config{ServerName: *sni, RootCAs: pool(*ca), MinVersion: tls.VersionTLS13,
		KeyLogWriter: keylog(), ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	if *cert != "" {
		kp, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	for _, cp := range conns {
		sport, path, _ := strings.Cut(cp, ":")
		p, _ := strconv.Atoi(sport)
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: p}}
		raw, err := d.Dial("tcp4", *addr)
		if err != nil {
			log.Fatal(err)
		}
		c := tls.Client(raw, cfg)
		fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: calib\r\n\r\n", path)
		resp, err := io.ReadAll(c)
		if err != nil {
			log.Fatal(err)
		}
		st := c.ConnectionState()
		log.Printf("go client: /%s suite %s resumed %v -> %q", path, tls.CipherSuiteName(st.CipherSuite),
			st.DidResume, strings.SplitN(string(resp), "\r\n", 2)[0])
		c.Close()
	}
}

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: tlspeer server|client ...")
	}
	switch os.Args[1] {
	case "server":
		server(os.Args[2:])
	case "client":
		client(os.Args[2:])
	default:
		log.Fatal("usage: tlspeer server|client ...")
	}
}
