"""What a report needs beyond the result, kept beside the log by hash.

A report written again from the log (``cellqc report ID``) must be the same report. The
result is in the log; the unrolled thickness map is not (it is large and not a result). So
when an inspection is filed, its :class:`core.report.thickness.ThicknessSummary` (a few
hundred kB at most) is written into a folder beside the log, named by its SHA-256
(``LOG.data/SHA256.npz``), and the result says which one it is::

    result["report_data"] = {"thickness_summary": {"sha256": ..., "bytes": ..., "format": ...}}

The result is filed with the audit chain, so the hash cannot be changed without the chain
showing it; a summary file that was changed, replaced or removed is refused with one sentence
and the report says the map is missing rather than drawing another one. (Against whom: the
operator and other local accounts who can write beside the log are caught; someone who can
rewrite the log is the audit chain's business.)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from core.report.thickness import FORMAT, ThicknessSummary

KEY = "thickness_summary"


def data_dir(db_path: str | os.PathLike[str]) -> Path:
    """The folder beside the log that holds its report data: ``LOG.data``."""
    path = Path(db_path)
    return path.with_name(path.name + ".data")


def attach_report_data(inspection: Any) -> bytes | None:
    """Make the inspection's thickness summary, name it in ``result["report_data"]`` and
    return its bytes (None when the inspection has no thickness map).

    Call it before the result is written anywhere (JSON, report, log): the report's trace
    hashes the result as it is filed.
    """
    try:
        summary = ThicknessSummary.from_inspection(inspection)
    except Exception:  # noqa: BLE001 - the report then says the map is missing; the inspection stands
        summary = None
    if summary is None:
        return None
    data = summary.to_bytes()
    inspection.result.setdefault("report_data", {})[KEY] = {
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "format": FORMAT}
    return data


def keep(db_path: str | os.PathLike[str], data: bytes) -> tuple[Path, bool]:
    """Write ``data`` beside the log under its SHA-256 (atomically; an existing file with the
    same content is left as it is).

    Returns
    -------
    (Path, bool)
        The file, and whether this call created it (to remove it if filing then fails).
    """
    from core.errors import InputError
    from core.fileio import atomic_write, sha256_file

    sha = hashlib.sha256(data).hexdigest()
    folder = data_dir(db_path)
    path = folder / f"{sha}.npz"
    if path.is_file():
        try:
            if sha256_file(path) == sha:
                return path, False
        except (InputError, OSError):
            pass
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return path, True


def load_summary(db_path: str | os.PathLike[str] | None, result: dict[str, Any]) -> tuple[ThicknessSummary | None, str]:
    """The thickness summary a filed result names, checked against its hash.

    Returns
    -------
    (ThicknessSummary or None, str)
        The summary, or None and the sentence the report prints instead.
    """
    entry = ((result.get("report_data") or {}).get(KEY)) or {}
    sha = str(entry.get("sha256") or "")
    if not sha:
        return None, "this inspection was filed without a thickness map (it had none, or an older cellqc filed it)."
    if db_path is None:
        return None, "the log's folder is not known, so its thickness map cannot be found."
    path = data_dir(db_path) / f"{sha}.npz"
    try:
        data = path.read_bytes()
    except OSError:
        return None, f"the thickness map kept for this inspection ({path}) is missing."
    if hashlib.sha256(data).hexdigest() != sha:
        return None, f"the thickness map kept for this inspection ({path}) has changed since it was filed."
    try:
        return ThicknessSummary.from_bytes(data), ""
    except ValueError as exc:
        return None, f"the thickness map kept for this inspection ({path}) cannot be read ({exc})."


def db_file(db: Any) -> str | None:
    """The file of an open log (None for an in-memory one)."""
    try:
        for _, name, file in db.conn.execute("PRAGMA database_list").fetchall():
            if name == "main" and file:
                return str(file)
    except Exception:  # noqa: BLE001
        return None
    return None
