"""Certificates for a small lab cluster: one CA, and a certificate and key for each role.

Dask's TLS is mutual: the scheduler, each worker and the sweep's client each show a certificate
signed by the cluster's CA, and each checks the other side's against it (Dask checks the CA's
signature, not host names; the certificates still name the cluster's hosts). One certificate per
role is shared by all the machines of that role. :func:`make_cluster_certs` writes the files
(private keys readable by their owner only); :func:`command_lines` gives the ``dask scheduler``,
``dask worker`` and ``featurefate sweep`` commands that use them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from featurefate import _validation as v

ROLES = ("scheduler", "worker", "client")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_BLAS_ONE_THREAD = "env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"


@dataclass(frozen=True)
class ClusterCerts:
    """The files of a cluster's TLS: the CA, and per role a certificate and its key."""

    directory: Path
    hosts: tuple[str, ...]

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    def cert(self, role: str) -> Path:
        return self.directory / f"{v.choice('role', role, ROLES)}.pem"

    def key(self, role: str) -> Path:
        return self.directory / f"{v.choice('role', role, ROLES)}-key.pem"

    def files(self) -> list[Path]:
        return [self.ca, self.ca_key] + [f(role) for role in ROLES for f in (self.cert, self.key)]


def _valid_host(host: str) -> str:
    host = host.strip()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host) or len(host) > 253:
        raise ValueError(f"hosts must be host names or IP addresses; got {host!r}")
    return host.lower()


def default_hosts() -> list[str]:
    """This machine's name (where it is a valid host name), ``localhost`` and ``127.0.0.1``."""
    hosts = [socket.gethostname(), "localhost", "127.0.0.1"]
    valid = []
    for host in hosts:
        try:
            valid.append(_valid_host(host))
        except ValueError:
            continue
    return list(dict.fromkeys(valid))


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "featurefate cluster"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _certificate(*, subject, issuer, public_key, signing_key, days, now, extensions):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # machines' clocks differ a bit
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _usage(*, ca: bool):
    from cryptography import x509

    flags = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(digital_signature=True, key_cert_sign=ca, crl_sign=ca, **flags)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write a new file with exactly ``mode`` (a key is never readable by others, not even
    for a moment)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def make_cluster_certs(
    directory,
    *,
    hosts=None,
    days: int = 365,
    force: bool = False,
    now: datetime.datetime | None = None,
) -> ClusterCerts:
    """Write a new CA and a certificate and key for the scheduler, the workers and the client.

    Parameters
    ----------
    directory : path
        Where to write ``ca.pem``, ``ca-key.pem`` and ``<role>.pem``, ``<role>-key.pem`` for
        each role of :data:`ROLES` (created, readable by its owner only, if missing).
    hosts : list of str, optional
        Host names and IP addresses of the cluster's machines, the scheduler's first; the
        certificates name them (default: :func:`default_hosts`).
    days : int
        How long the certificates are valid, >= 1.
    force : bool
        Replace existing files (otherwise any existing file is an error and nothing is
        written).
    now : datetime, optional
        The start of the validity (default: the current time, UTC).

    Returns
    -------
    ClusterCerts

    Raises
    ------
    ValueError
        An invalid host or ``days``.
    FileExistsError
        A file exists already and ``force`` is false.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    days = v.integer("days", days, low=1)
    hosts = default_hosts() if not hosts else [_valid_host(h) for h in hosts]
    certs = ClusterCerts(Path(directory).expanduser().absolute(), tuple(dict.fromkeys(hosts)))
    existing = [path for path in certs.files() if path.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more of its files)" if len(existing) > 1 else ""
        raise FileExistsError(
            f"{existing[0]} exists{more}: give --force to replace the cluster's certificates"
        )
    now = datetime.datetime.now(datetime.UTC) if now is None else now
    certs.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def pem_key(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = _new_key()
    ca_name = _name("featurefate cluster CA")
    ca_cert = _certificate(
        subject=ca_name,
        issuer=ca_name,
        public_key=ca_key.public_key(),
        signing_key=ca_key,
        days=days,
        now=now,
        extensions=[(x509.BasicConstraints(ca=True, path_length=0), True), (_usage(ca=True), True)],
    )
    _write(certs.ca_key, pem_key(ca_key), 0o600)
    _write(certs.ca, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)

    alt_names = []
    for host in certs.hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    # every role both listens and connects (the scheduler and the workers call each other)
    both = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    for role in ROLES:
        key = _new_key()
        cert = _certificate(
            subject=_name(f"featurefate {role}"),
            issuer=ca_name,
            public_key=key.public_key(),
            signing_key=ca_key,
            days=days,
            now=now,
            extensions=[
                (x509.BasicConstraints(ca=False, path_length=None), True),
                (_usage(ca=False), True),
                (both, False),
                (x509.SubjectAlternativeName(alt_names), False),
                (authority, False),
            ],
        )
        _write(certs.key(role), pem_key(key), 0o600)
        _write(certs.cert(role), cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return certs


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def command_lines(certs: ClusterCerts, *, host: str | None = None, port: int = 8786) -> dict:
    """The commands that start a TLS cluster with ``certs`` and run a sweep on it.

    Parameters
    ----------
    certs : ClusterCerts
    host : str, optional
        The scheduler's host (default: the first of ``certs.hosts``).
    port : int
        The scheduler's port.

    Returns
    -------
    dict
        ``{"scheduler": ..., "worker": ..., "sweep": ...}``, each one shell command line.
        Workers run one single-threaded process per core (BLAS limited to one thread before
        NumPy starts; each cell limits XLA itself); ``CONFIG`` and ``STORE`` are placeholders.
    """
    host = certs.hosts[0] if host is None else _valid_host(host)
    port = v.integer("port", port, low=1, high=65535)
    address = f"tls://{_address(host, port)}"

    def tls(role: str) -> str:
        return (
            f"--tls-ca-file {shlex.quote(str(certs.ca))} "
            f"--tls-cert {shlex.quote(str(certs.cert(role)))} "
            f"--tls-key {shlex.quote(str(certs.key(role)))}"
        )

    return {
        "scheduler": f"dask scheduler --protocol tls --host {host} --port {port} {tls('scheduler')}",
        "worker": f"{_BLAS_ONE_THREAD} dask worker {address} --nworkers -1 --nthreads 1 "
        + tls("worker"),
        "sweep": f"featurefate sweep CONFIG --out STORE --scheduler {address} {tls('client')}",
    }
