"""Writing files safely: the one atomic-write helper and the one SHA-256-of-a-file helper.

Every file cellqc writes goes through :func:`atomic_writer` (or its short forms
:func:`atomic_write` and :func:`write_json`): the data go to a hidden temporary file in the
target's own folder (``.NAME.<pid>.<random>.part``), are flushed and fsynced, and the file is
renamed over the target with :func:`os.replace`. A crash at any moment leaves either the old
file or the new one under the final name, never a truncated one; an error removes the
temporary file.

Targets that are not regular files are refused before anything is written: a device
(``--json /dev/full`` must not replace the device node), a FIFO, a socket or a folder. A
symbolic link as the target is replaced by the new file (the rename acts on the link itself):
the file the link points to is never written through it. Folders written as a whole (a Zarr
store) are swapped in with :func:`replace_folder`.

This module is the only place in cellqc that calls :func:`os.replace` (a test checks it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from core.errors import InputError

#: Bytes read at once when hashing a file.
HASH_BLOCK_BYTES = 1 << 20


def check_output_target(path: str | os.PathLike[str]) -> Path:
    """Refuse to write over anything but a regular file (or a missing one).

    Parameters
    ----------
    path : str or os.PathLike
        Where a file is about to be written.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    core.errors.InputError
        ``path`` is a folder, a device, a FIFO or a socket.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise InputError(path, f"cannot write here: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return path
    kind = (
        "a folder" if stat.S_ISDIR(mode)
        else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a FIFO" if stat.S_ISFIFO(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise InputError(path, f"is {kind}, not a regular file; refusing to replace it")


def temporary_sibling(path: str | os.PathLike[str], suffix: str = ".part") -> Path:
    """A fresh hidden name beside ``path`` for a file that will be renamed onto it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _opener(mode: int):
    """``open(..., opener=)`` creating the file with ``mode`` and never through a link."""

    def opener(name: str, flags: int) -> int:
        return os.open(name, flags | getattr(os, "O_NOFOLLOW", 0), mode)

    return opener


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    *,
    text: bool = False,
    encoding: str = "utf-8",
    newline: str | None = None,
    mode: int = 0o666,
    durable: bool = True,
    suffix: str = ".part",
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit, fsync it and rename it there.

    Parameters
    ----------
    path : str or os.PathLike
        The final name; its folder is created when missing.
    text : bool
        Yield a text handle (``encoding``, ``newline``) instead of a binary one.
    encoding, newline : str
        For text handles.
    mode : int
        Permission bits of a new file (the process umask still applies); ``0o600`` for
        secrets. A replaced file gets the new file's bits, not the old one's.
    durable : bool
        fsync the file and its folder (default). ``False`` only for files that may lag
        behind after a power cut.
    suffix : str
        Suffix of the temporary name (some writers pick the format from it, e.g. ``.npz``).

    Yields
    ------
    file object
        Write the whole content to it.

    Raises
    ------
    core.errors.InputError
        ``path`` is not a regular file (see :func:`check_output_target`).
    OSError
        The folder cannot be created or the file cannot be written (disk full, read-only);
        nothing is left under the final name or as a temporary file.
    """
    path = check_output_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, suffix)
    # "x": created here, exclusively (handle.name is the path: some writers need it)
    handle: IO[Any] = (
        open(tmp, "x", encoding=encoding, newline=newline, opener=_opener(mode))  # noqa: SIM115
        if text
        else open(tmp, "xb", opener=_opener(mode))  # noqa: SIM115
    )
    try:
        with handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        check_output_target(path)  # something may have appeared there meanwhile
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_folder(path.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, **options: Any) -> str:
    """Write ``data`` (bytes, or text as UTF-8) atomically; return its SHA-256 (hex).

    ``options`` are those of :func:`atomic_writer` (``mode``, ``durable``, ``suffix``).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_writer(path, **options) as handle:
        handle.write(raw)
    return hashlib.sha256(raw).hexdigest()


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 1, **json_options: Any) -> Path:
    """Write ``value`` as UTF-8 JSON atomically (``json.dump`` options pass through)."""
    json_options.setdefault("ensure_ascii", False)
    with atomic_writer(path, text=True) as handle:
        json.dump(value, handle, indent=indent, **json_options)
        handle.write("\n")
    return Path(path)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str], *, durable: bool = True) -> Path:
    """Rename a finished temporary file onto ``path`` (for writers that need a file name).

    Use :func:`temporary_sibling` for ``tmp``; prefer :func:`atomic_writer` whenever the
    writer accepts an open file. ``tmp`` is removed when the rename is refused or fails.

    Raises
    ------
    core.errors.InputError
        ``path`` is not a regular file.
    """
    tmp, path = Path(tmp), Path(path)
    try:
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        check_output_target(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_folder(path.parent)
    return path


def replace_folder(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Swap a completely written folder ``tmp`` in at ``path`` (e.g. a Zarr store).

    An existing folder at ``path`` is moved aside first and deleted only after the new one is
    in place; if the swap fails the old folder is put back. A file at ``path`` is refused.

    Raises
    ------
    core.errors.InputError
        ``path`` exists and is not a folder.
    """
    tmp, path = Path(tmp), Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise InputError(path, "exists and is not a folder; refusing to replace it")
    old: Path | None = None
    try:
        if path.exists():
            old = temporary_sibling(path, ".old")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old, path)
            old = None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    fsync_folder(path.parent)
    return path


def sha256_file(path: str | os.PathLike[str], *, into: Any = None) -> str:
    """SHA-256 of a file's bytes, read in blocks (memory stays bounded).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    into : hashlib object, optional
        Update this hash instead of a new one (to hash several files together); its
        hex digest so far is returned.

    Returns
    -------
    str
        64 hex digits.

    Raises
    ------
    core.errors.InputError
        The file cannot be read (one line naming it).
    """
    digest = into if into is not None else hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(HASH_BLOCK_BYTES):
                digest.update(block)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    return digest.hexdigest()
