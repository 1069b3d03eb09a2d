#!/usr/bin/env python3
"""Makes the throwaway test PKI in captures/pki/ (only if missing, so subjects stay stable).

Mesh CA (O=cluster.local) → workload certs with SPIFFE URI SANs, like Istio's; a second chain
root → intermediate → leaf with 4096-bit RSA keys (big, to span many segments); an expired and a
not-yet-valid server certificate. Test keys only: never use them for anything else.
"""
import datetime as dt
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "pki")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def name(cn, o=None):
    attrs = []
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def save(stem, key, cert):
    with open(os.path.join(OUT, stem + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(OUT, stem + ".crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def make(subject, issuer, issuer_key, key, serial, ca=False, sans=(), start=None, days=3650,
         path_length=None, eku=None):
    start = start or NOW - dt.timedelta(days=1)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(serial)
         .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def main():
    os.makedirs(OUT, exist_ok=True)
    if not os.path.exists(os.path.join(OUT, "ca.crt")):
        base()
    extra()


def base():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("cluster.local root", "cluster.local")
    ca = make(ca_name, ca_name, ca_key, ca_key, 0x1001, ca=True)
    save("ca", ca_key, ca)
    for stem, sa, dns, serial in [("reviews", "reviews", "reviews.default.svc.cluster.local", 0x2001),
                                  ("productpage", "productpage", None, 0x2002)]:
        k = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.UniformResourceIdentifier(f"spiffe://cluster.local/ns/default/sa/{sa}")]
        if dns:
            sans.append(x509.DNSName(dns))
        save(stem, k, make(name(stem, "cluster.local"), ca_name, ca_key, k, serial, sans=sans))
    # Plain web server certificate (RSA) for api.example.test.
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    save("api", k, make(name("api.example.test", "Example Test"), ca_name, ca_key, k, 0x2003,
                        sans=[x509.DNSName("api.example.test"), x509.IPAddress(ipaddress.ip_address("10.99.0.1"))]))
    # Expired and not-yet-valid.
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    save("expired", k, make(name("expired.example.test", "Example Test"), ca_name, ca_key, k, 0x2004,
                            sans=[x509.DNSName("expired.example.test")],
                            start=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), days=366))
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    save("future", k, make(name("future.example.test", "Example Test"), ca_name, ca_key, k, 0x2005,
                           sans=[x509.DNSName("future.example.test")],
                           start=dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc), days=365))
    # Big chain: RSA-4096 root -> intermediate -> leaf.
    rk = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    rn = name("Big Test Root CA", "Big Test")
    root = make(rn, rn, rk, rk, 0x3001, ca=True)
    ik = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    inn = name("Big Test Intermediate CA", "Big Test")
    inter = make(inn, rn, rk, ik, 0x3002, ca=True)
    lk = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    leaf = make(name("big.example.test", "Big Test"), inn, ik, lk, 0x3003,
                sans=[x509.DNSName(f"host{i}.big.example.test") for i in range(40)])
    save("big-root", rk, root)
    save("big-inter", ik, inter)
    save("big-leaf", lk, leaf)
    with open(os.path.join(OUT, "big-chain.crt"), "wb") as f:
        for c in (leaf, inter, root):
            f.write(c.public_bytes(serialization.Encoding.PEM))


def load(stem):
    with open(os.path.join(OUT, stem + ".key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(OUT, stem + ".crt"), "rb") as f:
        return key, x509.load_pem_x509_certificate(f.read())


def extra():
    """Certificates added later (make-protocols.sh), each made only if its file is missing."""
    have = lambda stem: os.path.exists(os.path.join(OUT, stem + ".crt"))
    ca_key, ca = load("ca")
    # Wildcard server certificate: covers a.example.test, not a.b.example.test nor example.test.
    if not have("wildcard"):
        k = ec.generate_private_key(ec.SECP256R1())
        save("wildcard", k, make(name("*.example.test", "Example Test"), ca.subject, ca_key, k, 0x2006,
                                 sans=[x509.DNSName("*.example.test")]))
    # Server certificate without a subjectAltName extension: only its CN names the host.
    if not have("cn-only"):
        k = ec.generate_private_key(ec.SECP256R1())
        save("cn-only", k, make(name("cn-only.example.test", "Example Test"), ca.subject, ca_key, k,
                                0x2007))
    # A second, unrelated root and a client certificate it signed (unknown to the mesh CA).
    if not have("other-ca"):
        k = ec.generate_private_key(ec.SECP256R1())
        n = name("Other Test Root", "Other Test")
        save("other-ca", k, make(n, n, k, k, 0x4001, ca=True))
    if not have("intruder"):
        ok, oca = load("other-ca")
        k = ec.generate_private_key(ec.SECP256R1())
        save("intruder", k, make(name("intruder", "Other Test"), oca.subject, ok, k, 0x4002,
                                 sans=[x509.DNSName("intruder.other.test")]))
    chains()


def chains():
    """Chains for the --ca checks (make-chain.sh), each made only if its file is missing: a leaf
    usable by servers only, a mesh intermediate CA (pathLen 0, as an Istio plug-in CA's) with a
    leaf, a CA under that intermediate (breaks its pathLen) with a leaf, and a leaf signed by a
    workload certificate (not a CA)."""
    have = lambda stem: os.path.exists(os.path.join(OUT, stem + ".crt"))
    ca_key, ca = load("ca")
    uri = lambda sa: x509.UniformResourceIdentifier(f"spiffe://cluster.local/ns/default/sa/{sa}")
    if not have("eku-server"):
        k = ec.generate_private_key(ec.SECP256R1())
        save("eku-server", k, make(name("eku-server", "cluster.local"), ca.subject, ca_key, k, 0x5001,
                                   sans=[uri("eku-server")], eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    if not have("mesh-inter"):
        k = ec.generate_private_key(ec.SECP256R1())
        save("mesh-inter", k, make(name("cluster.local intermediate", "cluster.local"), ca.subject, ca_key,
                                   k, 0x5002, ca=True, path_length=0))
    ik, inter = load("mesh-inter")
    if not have("details"):
        k = ec.generate_private_key(ec.SECP256R1())
        save("details", k, make(name("details", "cluster.local"), inter.subject, ik, k, 0x5003,
                                sans=[uri("details")]))
    if not have("sub-inter"):
        k = ec.generate_private_key(ec.SECP256R1())
        save("sub-inter", k, make(name("cluster.local sub-intermediate", "cluster.local"), inter.subject,
                                  ik, k, 0x5004, ca=True))
    sk, sub = load("sub-inter")
    if not have("deep"):
        k = ec.generate_private_key(ec.SECP256R1())
        save("deep", k, make(name("deep", "cluster.local"), sub.subject, sk, k, 0x5005, sans=[uri("deep")]))
    if not have("by-workload"):
        rk, reviews = load("reviews")
        k = ec.generate_private_key(ec.SECP256R1())
        save("by-workload", k, make(name("by-workload", "cluster.local"), reviews.subject, rk, k, 0x5006,
                                    sans=[uri("by-workload")]))


if __name__ == "__main__":
    main()
