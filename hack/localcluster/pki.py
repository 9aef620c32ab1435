"""A throwaway PKI for a loopback control plane, made with the openssl CLI.

One CA signs the API server's serving certificate and the client certificates
(admin in group system:masters); a separate key pair signs service-account
tokens so the TokenRequest API works. EC P-256 keys: fast to generate.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

#: The API server's names: loopback, and for pods (the `kubernetes` Service's first address).
SERVING_SANS = (
    "IP:127.0.0.1", "DNS:localhost", "IP:10.96.0.1", "DNS:kubernetes", "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local",
)  # fmt: skip
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"


@dataclass(frozen=True)
class KeyPair:
    """A certificate (or public key) and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Every file the control plane components and clients need."""

    ca: KeyPair
    serving: KeyPair
    admin: KeyPair
    service_account: KeyPair  # cert = public key, key = private key


def _openssl(openssl: Path, *args: str | Path) -> None:
    subprocess.run([str(openssl), *map(str, args)], check=True, capture_output=True)


def _new_key(openssl: Path, path: Path) -> None:
    _openssl(openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def _signed(openssl: Path, ca: KeyPair, directory: Path, name: str, subject: str, ext: str) -> KeyPair:
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    csr, ext_file = directory / f"{name}.csr", directory / f"{name}.ext"
    _new_key(openssl, pair.key)
    _openssl(openssl, "req", "-new", "-key", pair.key, "-subj", subject, "-out", csr)
    ext_file.write_text(ext)
    _openssl(
        openssl, "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
        "-days", "7", "-extfile", ext_file, "-out", pair.cert,
    )  # fmt: skip
    return pair


def serving_ext(extra_ips: tuple[str, ...] = ()) -> str:
    sans = ",".join([*SERVING_SANS, *(f"IP:{address}" for address in extra_ips)])
    return f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"


def client_cert(openssl: Path, pki: Pki, name: str, subject: str) -> KeyPair:
    """One more client certificate signed by pki's CA (a kubelet's, kube-proxy's)."""
    return _signed(openssl, pki.ca, pki.ca.cert.parent, name, subject, CLIENT_EXT)


def loopback_serving_cert(openssl: Path, pki: Pki, directory: Path) -> KeyPair:
    """tls.crt / tls.key for a server on 127.0.0.1 (an admission webhook the API server calls),
    signed by pki's CA: the file names controller-runtime's webhook server reads."""
    directory.mkdir(parents=True, exist_ok=True)
    return _signed(openssl, pki.ca, directory, "tls", "/CN=127.0.0.1", serving_ext())


def make_pki(openssl: Path, directory: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Generate the CA, serving, admin and service-account keys under directory; extra_ips are
    more addresses the API server serves on (the real nodes' underlay address)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = KeyPair(directory / "ca.crt", directory / "ca.key")
    _new_key(openssl, ca.key)
    _openssl(
        openssl,
        "req",
        "-x509",
        "-new",
        "-key",
        ca.key,
        "-subj",
        "/CN=rag-test-ca",
        "-days",
        "7",
        "-out",
        ca.cert,
    )
    sa = KeyPair(directory / "sa.pub", directory / "sa.key")
    _new_key(openssl, sa.key)
    _openssl(openssl, "pkey", "-in", sa.key, "-pubout", "-out", sa.cert)
    return Pki(
        ca=ca,
        serving=_signed(openssl, ca, directory, "apiserver", "/CN=kube-apiserver", serving_ext(extra_ips)),
        admin=_signed(openssl, ca, directory, "admin", "/O=system:masters/CN=rag-test-admin", CLIENT_EXT),
        service_account=sa,
    )
