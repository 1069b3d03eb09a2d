#!/usr/bin/env python3
"""Makes the short-lived Istio-style workload certificates in captures/pki/istio/ for
captures/make-istio.sh, signed by the mesh CA captures/pki/ca.crt + ca.key (made by pki.py).

    mesh_pki.py [PKI_DIR]        (default: captures/pki; writes PKI_DIR/istio/)

Like the certificates istiod issues: ECDSA P-256, empty subject, one critical SAN holding the
SPIFFE URI, key usage digitalSignature + keyEncipherment, extended key usage serverAuth +
clientAuth, authority key id of the mesh CA. Re-made at every run (their validity is relative to
now); the keys are kept once made, so only dates and signatures change between regenerations.

    ratings        spiffe://cluster.local/ns/default/sa/ratings   valid now-1h .. now+23h (24 h)
    reviews-short  spiffe://cluster.local/ns/default/sa/reviews   valid now-1h .. now+40min
                   (about to expire when the capture is made: a rotation that did not happen)
Test keys only: never use them for anything else.
"""
import datetime as dt
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

PKI = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "pki")
OUT = os.path.join(PKI, "istio")

CERTS = [
    # stem, service account, serial, lifetime after now
    ("ratings", "ratings", 0x5a01, dt.timedelta(hours=23)),
    ("reviews-short", "reviews", 0x5a02, dt.timedelta(minutes=40)),
]


def load_key(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), None)
    k = ec.generate_private_key(ec.SECP256R1())
    with open(path, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    return k


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(PKI, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(PKI, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for stem, sa, serial, life in CERTS:
        key = load_key(os.path.join(OUT, stem + ".key"))
        uri = f"spiffe://cluster.local/ns/default/sa/{sa}"
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(ca.subject)
                .public_key(key.public_key())
                .serial_number(serial)
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + life)
                .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                               critical=True)
                .sign(ca_key, hashes.SHA256()))
        with open(os.path.join(OUT, stem + ".crt"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        print(f"{stem}: {uri} notBefore {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} "
              f"notAfter {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")


if __name__ == "__main__":
    main()
