"""The audit key: the secret that makes the audit chain a keyed (HMAC-SHA-256) chain.

The key is 32 random bytes kept **outside** the log, in one file per installation::

    $CELLQC_AUDIT_KEY                     # when set: the key file's path
    $CELLQC_HOME/audit.key                # otherwise (CELLQC_HOME: ~/.local/share/cellqc)

It is created at first use (mode 0600, never overwritten: a second process racing to create it
reads the first one's) and must be backed up together with the logs: a log sealed with a key
can be verified and written only with that key. The chain heads that cellqc keeps outside the
log (see :mod:`core.store.audit`) live beside it, in ``audit-heads/``.

Someone who can write the log file but not read this file cannot rewrite the audit chain
without it being found. Someone who can read this file *and* write the log can (see
docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InputError

#: Environment variable naming the key file (overrides ``$CELLQC_HOME/audit.key``).
AUDIT_KEY_ENV = "CELLQC_AUDIT_KEY"
#: First line of a key file; the second line is the key in hex.
KEY_HEADER = "cellqc-audit-key/1"
KEY_BYTES = 32


class AuditKeyError(InputError):
    """The audit key is missing, unreadable, malformed, too open, or not this log's key."""


def cellqc_home() -> Path:
    """``$CELLQC_HOME``, else ``~/.local/share/cellqc``: where cellqc keeps its data."""
    home = os.environ.get("CELLQC_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "cellqc"


def audit_key_path() -> Path:
    """Where the audit key is: ``$CELLQC_AUDIT_KEY``, else ``$CELLQC_HOME/audit.key``."""
    override = os.environ.get(AUDIT_KEY_ENV)
    return Path(override) if override else cellqc_home() / "audit.key"


@dataclass(frozen=True)
class AuditKey:
    """An audit key loaded from its file.

    Attributes
    ----------
    path : pathlib.Path
        The key file.
    key_id : str
        32 hex digits naming the key (an HMAC of a fixed text; reveals nothing of the key).
        Stored in the log when the chain is sealed, so that a log opened with another key is
        recognised as such.
    """

    path: Path
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hmac.new(self.secret, b"cellqc audit key id", hashlib.sha256).hexdigest()[:32]

    def mac(self, message: str) -> str:
        """HMAC-SHA-256 of ``message`` (UTF-8) under this key, hex."""
        return hmac.new(self.secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def _parse(path: Path, text: str) -> bytes:
    lines = text.strip().splitlines()
    if len(lines) != 2 or lines[0].strip() != KEY_HEADER:
        raise AuditKeyError(path, f"not a cellqc audit key (expected '{KEY_HEADER}' and a hex line)")
    try:
        secret = bytes.fromhex(lines[1].strip())
    except ValueError:
        raise AuditKeyError(path, "the audit key is not hex") from None
    if len(secret) != KEY_BYTES:
        raise AuditKeyError(path, f"the audit key has {len(secret)} bytes, expected {KEY_BYTES}")
    return secret


def load_audit_key(path: str | os.PathLike[str] | None = None) -> AuditKey:
    """Read the audit key.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Default :func:`audit_key_path`.

    Returns
    -------
    AuditKey

    Raises
    ------
    AuditKeyError
        Missing (``FileNotFoundError`` is chained), unreadable, malformed, or readable by
        other users (POSIX: mode must not give group/other any access).
    """
    path = Path(path) if path is not None else audit_key_path()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise AuditKeyError(path, "the audit key is missing") from exc
    except OSError as exc:
        raise AuditKeyError(path, f"cannot read the audit key: {exc.strerror or exc}") from None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise AuditKeyError(path, "the audit key is not a regular file")
        if sys.platform != "win32" and info.st_mode & 0o077:
            raise AuditKeyError(
                path,
                f"the audit key is readable by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run: chmod 600 {path}",
            )
        text = handle.read(4096)
    return AuditKey(path=path, secret=_parse(path, text))


def _write_new(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        if hasattr(os, "fchmod"):
            os.fchmod(handle.fileno(), 0o600)
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def create_audit_key(path: str | os.PathLike[str] | None = None) -> AuditKey:
    """Create the audit key (mode 0600) unless it exists; return the key in the file.

    Safe against several processes creating it at once: the key is written to a temporary
    file and linked into place, which fails when another process got there first; then that
    process's key is read.

    Raises
    ------
    AuditKeyError
        The folder cannot be created or the file cannot be written.
    """
    path = Path(path) if path is not None else audit_key_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        content = f"{KEY_HEADER}\n{secrets.token_bytes(KEY_BYTES).hex()}\n"
        try:
            _write_new(tmp, content)
            try:
                os.link(tmp, path)  # never replaces an existing key
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: create it in place
                with contextlib.suppress(FileExistsError):
                    _write_new(path, content)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    except OSError as exc:
        raise AuditKeyError(path, f"cannot create the audit key: {exc.strerror or exc}") from None
    return load_audit_key(path)


def heads_folder(key: AuditKey) -> Path:
    """Where the chain heads of the logs sealed with ``key`` are kept: ``KEYDIR/audit-heads``."""
    return key.path.parent / "audit-heads"
