"""HTTPS for the HTTP server (``--https``): your certificate (``--cert`` and
``--key``, mkcert's files for instance), or one made on first use and kept
in your cache folder, for this machine's names and addresses. A made one is
self-signed: the browser asks once (compare the fingerprint we print), or
you trust it like any other. Made with ``cryptography``; used by ``ssl``.

The key is kept only in a folder of the user's that nobody else may write
to (else one line, and no HTTPS), written to a fresh name with
O_EXCL|O_NOFOLLOW (a planted symlink never receives it) and renamed into
place. A kept key that others may read is made 0600, and that is said once.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import stat
from pathlib import Path

log = logging.getLogger("sigreload.http")

DAYS = 825  # what browsers accept for a certificate's lifetime
NAMES = ["localhost", "127.0.0.1", "::1"]  # always in a made certificate


def cache_folder() -> Path:
    """Where a made certificate is kept: $XDG_CACHE_HOME/sigreload (~/.cache/sigreload)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sigreload"


def fingerprint(cert_pem: bytes) -> str:
    """The certificate's SHA-256 fingerprint, as browsers show it (AB:CD:...)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def covers(cert_pem: bytes, names: list[str]) -> bool:
    """Whether the certificate names every one of ``names`` and is valid for a while yet."""
    return shortfall(cert_pem, names) is None


def shortfall(cert_pem: bytes, names: list[str]) -> str | None:
    """Why the certificate does not do for ``names`` ("it did not cover
    10.237.0.1", "it expires on 2027-01-02"), or None when it does."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    ends = cert.not_valid_after_utc
    if ends < datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=7):
        return f"it expires on {ends:%Y-%m-%d}"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it named no host"
    have = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    missing = [n for n in names if (str(ipaddress.ip_address(n)) if is_address(n) else n) not in have]
    return f"it did not cover {', '.join(missing)}" if missing else None


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def make(names: list[str]) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``names`` (host names and addresses) and its key, as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sigreload on {socket.gethostname()}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.IPAddress(ipaddress.ip_address(n)) if is_address(n) else x509.DNSName(n) for n in names]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


FIRST = "none was kept"  # why a certificate is made: the first time


def kept(names: list[str], folder: Path | None = None) -> tuple[Path, Path, str | None]:
    """The made certificate and key for ``names`` in ``folder`` (the cache
    folder): made anew when missing or when it does not cover them. Returns
    (cert, key, why it was made now: FIRST, "it did not cover 10.237.0.1"...;
    None when the kept one does). Raises OSError (its strerror one line for a
    person: a folder others may write to is refused)."""
    folder = folder or cache_folder()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    closed(folder)
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        why = shortfall(cert.read_bytes(), names)
        if why is None and private_key(key):
            return cert, key, None
        why = why or "its key was not a private file of yours"
    except FileNotFoundError:
        why = FIRST
    except (OSError, ValueError):
        why = "the one kept could not be read"
    cert_pem, key_pem = make(list(dict.fromkeys(NAMES + names)))
    put(key, key_pem)
    put(cert, cert_pem)
    return cert, key, why


def closed(folder: Path) -> None:
    """Raise PermissionError unless ``folder`` is a folder (not a link) of this user that nobody else may write to."""
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(errno.EACCES, f"{folder} is not a folder of yours that only you may write to: "
                              "no key is kept there (set XDG_CACHE_HOME, or pass --cert and --key)", str(folder))


def private_key(key: Path) -> bool:
    """Whether ``key`` is this user's plain file; one that others may read is made 0600 (said once: then it is)."""
    try:
        fd = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return False
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
            log.warning("the HTTPS key %s was readable by others (mode %o): it is 0600 now", key,
                        stat.S_IMODE(st.st_mode))
        return True
    finally:
        os.close(fd)


def put(path: Path, data: bytes) -> None:
    """Write ``path`` (0600) as a new file of a name nobody could plant, then rename it into place."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def readable_by_others(key: str | os.PathLike[str]) -> bool:
    """Whether a key given with --key may be read by other users (said, never changed: it is the user's file)."""
    try:
        return bool(os.stat(key).st_mode & 0o077)
    except OSError:
        return False


def server_context(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A TLS server context for ``cert`` and ``key``; raises OSError or ssl.SSLError when they do not load."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context
