"""TLS for a sweep's Dask cluster: the client's :class:`distributed.security.Security`.

A ``tls://`` scheduler is reached with mutual TLS: the client shows its own certificate (signed
by the cluster's CA) and checks the scheduler's against the same CA. The three files come from
the sweep's ``--tls-ca-file``, ``--tls-cert`` and ``--tls-key`` or, when none of these is given,
from Dask's own configuration (``distributed.comm.tls.ca-file``,
``distributed.comm.tls.client.cert`` and ``distributed.comm.tls.client.key``, in a Dask config
file or as ``DASK_DISTRIBUTED__COMM__TLS__...`` variables). Every problem with them is found
here, before any connection is tried, and named in one line.
"""

from __future__ import annotations

import ssl
from pathlib import Path

# the sweep's option for each file, and Dask's configuration key for the same file
_FLAGS = {"ca_file": "--tls-ca-file", "cert": "--tls-cert", "key": "--tls-key"}
_CONFIG_KEYS = {
    "ca_file": "distributed.comm.tls.ca-file",
    "cert": "distributed.comm.tls.client.cert",
    "key": "distributed.comm.tls.client.key",
}


def scheme(address: str) -> str:
    """The protocol of a Dask address: ``"tls"`` for ``tls://host:port``."""
    return address.split("://", 1)[0].lower() if "://" in address else ""


def _checked_file(path, name: str) -> str:
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "no such file"
        raise ValueError(f"{name} {path}: {what}")
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise ValueError(f"{name} {path}: cannot be read ({err.strerror})") from None
    return str(path)


def cluster_security(
    scheduler: str | None,
    *,
    ca_file=None,
    cert=None,
    key=None,
):
    """The client's TLS settings for ``scheduler``, or ``None`` where it needs none.

    Parameters
    ----------
    scheduler : str or None
        The Dask scheduler's address; ``None`` for local processes.
    ca_file, cert, key : path, optional
        The cluster's CA certificate, and this client's certificate and private key (PEM;
        ``key`` may be left out when ``cert`` holds the key too). Only with a ``tls://``
        scheduler; without any of them, Dask's configuration names the files.

    Returns
    -------
    distributed.security.Security or None
        With ``require_encryption=True`` for a ``tls://`` scheduler; ``None`` otherwise.

    Raises
    ------
    ValueError
        A TLS file given without a ``tls://`` scheduler; a ``tls://`` scheduler without a CA
        or a certificate; a file that does not exist or cannot be read; a certificate and key
        that do not load (the message names the option or the configuration key).
    """
    given = {"ca_file": ca_file, "cert": cert, "key": key}
    flags = [_FLAGS[name] for name, value in given.items() if value is not None]
    if scheduler is None or scheme(scheduler) != "tls":
        if flags:
            where = "no scheduler" if scheduler is None else f"scheduler {scheduler}"
            verb = "needs" if len(flags) == 1 else "need"
            raise ValueError(
                f"{', '.join(flags)} {verb} --scheduler tls://HOST:PORT; got {where} "
                "(start the scheduler with --protocol tls and give --scheduler tls://...)"
            )
        return None

    import dask.config
    from distributed.security import Security

    if flags:
        names = _FLAGS
        files = given
    else:
        names = {name: f"Dask config {key}" for name, key in _CONFIG_KEYS.items()}
        files = {name: dask.config.get(key, None) for name, key in _CONFIG_KEYS.items()}
    missing = [names[name] for name in ("ca_file", "cert") if not files[name]]
    if missing and any(files.values()):
        raise ValueError(f"scheduler {scheduler} needs {' and '.join(missing)} too")
    if missing:
        raise ValueError(
            f"scheduler {scheduler} needs TLS files: give --tls-ca-file, --tls-cert and "
            f"--tls-key, or set {_CONFIG_KEYS['ca_file']}, {_CONFIG_KEYS['cert']} and "
            f"{_CONFIG_KEYS['key']} in Dask's config"
        )
    files = {name: _checked_file(path, names[name]) for name, path in files.items() if path}
    _check_loadable(files, names)
    return Security(
        tls_ca_file=files["ca_file"],
        tls_client_cert=files["cert"],
        tls_client_key=files.get("key"),
        require_encryption=True,
    )


def _check_loadable(files: dict, names: dict) -> None:
    """Load the CA, the certificate and the key now, rather than fail at the first connection."""
    try:
        ssl.create_default_context(cafile=files["ca_file"])
    except (ssl.SSLError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ValueError(
            f"{names['ca_file']} {files['ca_file']}: not a PEM CA certificate ({reason})"
        ) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(files["cert"], files.get("key"))
    except ssl.SSLError as err:
        what = f"{names['cert']} and {names['key']}" if "key" in files else names["cert"]
        raise ValueError(
            f"{what}: cannot load a PEM certificate and its private key ({err.reason or err})"
        ) from None
