"""Walk an HDF5 file's structure in a child process, with a time limit, before reading it.

libhdf5 can loop forever on a damaged file: reading a variable-length string attribute
whose global-heap collection is corrupt never returns (HDFGroup/hdf5#1707, open; h5py
leaves such library bugs to libhdf5). ``scripts/fuzz.sh`` found such a file among mangled
copies of a 10 kB NeXus file: ``read_volume`` sat at full CPU for over an hour. No Python code
can interrupt a loop inside the C library, so before cellqc reads an HDF5 file in its own
process, :func:`ensure_hdf5_parses` forks a child that opens it and touches everything the
readers touch — every group and dataset header, every attribute value (up to
:data:`MAX_ATTRIBUTE_BYTES`), the values of small datasets and the first and last element of
large ones. A child that does not finish within the time limit is killed and the file refused
in one line; a child that crashes (a segfault in the library) refuses it too. Errors the child
meets are left to the readers, which word them better.

A file's outcome is remembered by (device, inode, size, modification time) for the rest of
the process, so a batch that reads one file several times walks it once.

Holds against a damaged or crafted file. It does not hold against another local account that
replaces the file between the walk and the read (and keeps size and time): such an account
can hand cellqc any bytes anyway; keep input folders writable only by the station.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from core.errors import InputError

#: Environment variable with the time limit in seconds (default :data:`DEFAULT_TIMEOUT_S`).
TIMEOUT_ENV = "CELLQC_HDF5_PROBE_TIMEOUT_S"
#: Seconds the walk may take: a healthy file needs milliseconds, a large NeXus tree on a
#: network share a few seconds.
DEFAULT_TIMEOUT_S = 60.0
#: Attribute values larger than this are not read (by the walk nor by the readers).
MAX_ATTRIBUTE_BYTES = 16 * 2**20
#: Datasets with at most this many elements are read whole by the walk (the readers read
#: such small datasets whole: energies, angles, image keys, pixel sizes).
SMALL_DATASET = 10**6

_passed: set[tuple[int, int, int, int]] = set()
#: Files refused, with the reason: asked again, they are refused at once.
_refused: dict[tuple[int, int, int, int], str] = {}


def _timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < 1e6):
        raise InputError(TIMEOUT_ENV, f"must be a positive number of seconds, got {text!r}")
    return value


def small_attributes(obj: Any) -> dict[str, Any]:
    """The attributes of an HDF5 object as a dict, skipping values over the size cap.

    Parameters
    ----------
    obj : h5py.Group or h5py.Dataset

    Returns
    -------
    dict
        Name to value; unreadable or oversized attributes are left out.
    """
    import h5py

    out: dict[str, Any] = {}
    try:
        names = list(obj.attrs.keys())
    except Exception:  # noqa: BLE001 - unreadable attributes are simply not used
        return out
    for name in names:
        try:
            attr = h5py.h5a.open(obj.id, name.encode("utf-8"))
            if attr.get_storage_size() > MAX_ATTRIBUTE_BYTES:
                continue
            out[name] = obj.attrs[name]
        except Exception:  # noqa: BLE001
            continue
    return out


def walk(path: str) -> None:
    """Touch everything the readers touch (run in the child process)."""
    import h5py
    import numpy as np

    with h5py.File(path, "r") as f:
        small_attributes(f)

        def visit(_name: str, obj: Any) -> None:
            small_attributes(obj)
            if not isinstance(obj, h5py.Dataset) or obj.shape is None:
                return
            size = int(np.prod(obj.shape, dtype=np.float64))
            if size == 0:
                return
            if size <= SMALL_DATASET:
                obj[()]
            else:
                obj[(0,) * len(obj.shape)]
                obj[tuple(n - 1 for n in obj.shape)]

        f.visititems(visit)


def _fork_walk(path: str) -> int:
    """Fork; the child walks the file and leaves with ``os._exit``. Returns the child's pid.

    h5py's global lock is held across the fork, so no other thread of this process (the GUI,
    a batch worker) is inside the HDF5 library when the child is made: the child never waits
    for a lock that nobody in it will release.
    """
    import warnings

    from h5py._objects import phil

    with phil, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Python ≥ 3.12 warns about fork with threads
        pid = os.fork()
    if pid == 0:  # the child: never returns to the caller
        code = 0
        try:
            walk(path)
        except BaseException:  # noqa: BLE001 - the readers report errors; hangs matter here
            code = 0
        finally:
            os._exit(code)
    return pid


def ensure_hdf5_parses(path: str | os.PathLike[str], *, timeout_s: float | None = None) -> None:
    """Refuse an HDF5 file on which the HDF5 library hangs or crashes.

    Parameters
    ----------
    path : str or path-like
        The file.
    timeout_s : float, optional
        Time limit; default ``$CELLQC_HDF5_PROBE_TIMEOUT_S``, else 60 s.

    Raises
    ------
    InputError
        The walk did not finish in time, or the child process died of a signal.

    Notes
    -----
    Needs ``os.fork`` (Linux, macOS); where there is none the walk is skipped.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return  # the reader says what is wrong with a missing file
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _passed or not hasattr(os, "fork"):
        return
    if key in _refused:
        raise InputError(p, _refused[key])
    limit = _timeout() if timeout_s is None else float(timeout_s)
    pid = _fork_walk(str(p))
    deadline = time.monotonic() + limit
    delay = 0.001
    status = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() >= deadline:
                _refused[key] = (
                    f"the HDF5 library did not finish reading its structure in {limit:g} s: a "
                    f"damaged file (set {TIMEOUT_ENV} for very large files on slow storage)"
                )
                raise InputError(p, _refused[key])
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except BaseException:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise
    if os.WIFSIGNALED(status):
        _refused[key] = (
            f"the HDF5 library crashed reading it (signal {os.WTERMSIG(status)}): a damaged file"
        )
        raise InputError(p, _refused[key])
    _passed.add(key)
