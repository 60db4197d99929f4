"""The OPC UA server's application certificate: a self-signed X.509 certificate (cryptography).

OPC UA's Basic256Sha256 security policy signs and encrypts every message with the server's
RSA key; the certificate carries the server's application URI (``urn:…``) and the host names
and addresses clients use, as subject alternative names, as OPC UA Part 6 asks.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from core.errors import InputError

#: RSA key size: Basic256Sha256 allows 2048–4096 bits.
KEY_BITS = 2048


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write bytes atomically (:func:`core.fileio.atomic_write`) created with ``mode``."""
    from core.fileio import atomic_write

    atomic_write(path, data, mode=mode)


def create_certificate(
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    *,
    application_uri: str,
    hostnames: Sequence[str],
    days: int = 730,
    common_name: str = "cellqc OPC UA server",
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Create an RSA key (PEM, mode 0600) and a self-signed certificate (DER) for the server.

    Parameters
    ----------
    cert_path, key_path : path
        Where to write them.
    application_uri : str
        The server's ApplicationUri; goes into the subject alternative names.
    hostnames : sequence of str
        DNS names and IP addresses clients connect to.
    days : int
        Validity from now.
    common_name : str
    overwrite : bool
        Replace existing files (otherwise an existing file is an error).

    Returns
    -------
    (Path, Path)
        The certificate and key paths.

    Raises
    ------
    core.errors.InputError
        A file exists and ``overwrite`` is false, or ``days`` is not positive.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_path, key_path = Path(cert_path), Path(key_path)
    if days < 1:
        raise InputError("--days", f"must be 1 or more, got {days}")
    for path in (cert_path, key_path):
        if path.exists() and not overwrite:
            raise InputError(path, "exists already (give --overwrite to replace it)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for host in dict.fromkeys(h for h in hostnames if h):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cellqc")])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                                     data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.DER), 0o644)
    return cert_path, key_path


def certificate_summary(cert_path: str | os.PathLike[str]) -> dict[str, object]:
    """Subject, validity, SHA-1 thumbprint (what OPC UA clients show) and alternative names.

    Raises
    ------
    core.errors.InputError
        The file is missing or not a DER/PEM certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    path = Path(cert_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the certificate: {exc.strerror or exc}") from None
    try:
        cert = x509.load_pem_x509_certificate(data) if data.startswith(b"-----") else \
            x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise InputError(path, f"not an X.509 certificate ({exc})") from None
    try:
        san = [str(getattr(n, "value", n)) for n in
               cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
    except x509.ExtensionNotFound:
        san = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha1_thumbprint": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 (OPC UA's thumbprint)
        "alternative_names": san,
    }
