#!/usr/bin/env python3
"""Calibration PKI for captures/make-tls13-calib.sh (python `cryptography`).

    pki.py DIR      writes DIR/{ca,server,client-ecdsa,client-rsa}.{crt,key} if ca.crt is missing

ca            ECDSA P-256 self-signed CA "tlspeek calib CA"
server        ECDSA P-256, SAN DNS:calib.test
client-ecdsa  ECDSA P-256, SAN URI:spiffe://cluster.local/ns/default/sa/calib-client (Istio-like)
client-rsa    RSA-2048, SAN DNS:calib-client-rsa.test
Validity 10 years from generation. Keys are PKCS#8 PEM, unencrypted (test-only material).
"""
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlspeek calibration"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def write(d, stem, cert, key):
    with open(os.path.join(d, stem + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(d, stem + ".crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    if os.path.exists(os.path.join(d, "ca.crt")):
        return
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("tlspeek calib CA")).issuer_name(name("tlspeek calib CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    write(d, "ca", ca, ca_key)

    def leaf(stem, cn, key, san, eku):
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                                             content_commitment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
                .add_extension(x509.SubjectAlternativeName(san), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        write(d, stem, cert, key)

    leaf("server", "calib.test", ec.generate_private_key(ec.SECP256R1()),
         [x509.DNSName("calib.test")], [ExtendedKeyUsageOID.SERVER_AUTH])
    leaf("client-ecdsa", "calib-client", ec.generate_private_key(ec.SECP256R1()),
         [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/calib-client")],
         [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    leaf("client-rsa", "calib-client-rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048),
         [x509.DNSName("calib-client-rsa.test")], [ExtendedKeyUsageOID.CLIENT_AUTH])


if __name__ == "__main__":
    main()
