"""Filing inspections, findings, reports and overrides in the log (users: core.store.users).

An inspection is filed in two steps. :func:`begin_inspection` writes a row with status
``running`` (and the process that owns it); :func:`complete_inspection` writes the verdict,
the result JSON and every finding in ONE transaction and flips the status to ``complete``.
A crash in between leaves a ``running`` row, never a complete-looking one; the next
:func:`core.store.open_log` marks it ``interrupted`` once its process is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.errors import InputError
from core.store.audit import (
    append_audit,
    audit_key_of,
    canonical_json,
    row_verifies,
    to_jsonable,
    utc_now,
)
from core.store.base import VERDICTS, write_transaction
from core.text import check_cell_id, path_text

#: Roles allowed to override a verdict.
OVERRIDE_ROLES = ("engineer", "admin")


# ------------------------------------------------------------------------------ helpers


def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _age_s(iso: str | None) -> float:
    if not iso:
        return float("inf")
    try:
        started = datetime.fromisoformat(iso)
    except ValueError:
        return float("inf")
    if started.tzinfo is None:
        return float("inf")
    return (datetime.now(started.tzinfo) - started).total_seconds()


def _ensure_user(db: Database, name: str | None) -> None:
    if name:
        db.conn.execute(
            "INSERT OR IGNORE INTO users (name, role, created_at) VALUES (?, 'operator', ?)",
            (name, utc_now()),
        )


def _ensure_cell(db: Database, cell_id: str) -> None:
    db.conn.execute(
        "INSERT OR IGNORE INTO cells (id, first_seen_at) VALUES (?, ?)", (cell_id, utc_now())
    )


def _get_or_create_scan(
    db: Database,
    cell_id: str,
    source: str | None,
    *,
    shape_zyx: Sequence[int] | None,
    spacing_um: Sequence[float] | None,
    voxel_size_um: float | None,
    modality: str | None,
) -> int:
    shape_text = canonical_json(list(shape_zyx)) if shape_zyx is not None else None
    spacing_text = canonical_json(list(spacing_um)) if spacing_um is not None else None
    if source:
        row = db.conn.execute(
            "SELECT id FROM scans WHERE cell_id = ? AND source = ?"
            " AND shape_zyx IS ? AND spacing_um IS ? ORDER BY id DESC LIMIT 1",
            (cell_id, source, shape_text, spacing_text),
        ).fetchone()
        if row:
            return int(row[0])
    cursor = db.conn.execute(
        "INSERT INTO scans (cell_id, source, modality, shape_zyx, spacing_um, voxel_size_um,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (cell_id, source, modality, shape_text, spacing_text, voxel_size_um, utc_now()),
    )
    return int(cursor.lastrowid)


def _one(db: Database, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
    rows = list(db.query(sql, params))
    return rows[0] if rows else None


def get_inspection(db: Database, inspection_id: int) -> dict[str, Any]:
    """One row of the ``inspections`` table.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    inspection_id : int
        The inspection's id.

    Returns
    -------
    dict

    Raises
    ------
    core.errors.InputError
        No inspection has that id.
    """
    row = _one(db, "SELECT * FROM inspections WHERE id = ?", [int(inspection_id)])
    if row is None:
        raise InputError(f"inspection {inspection_id}", "no such inspection in the log")
    return row


# --------------------------------------------------------------------------- inspections


def begin_inspection(
    db: Database,
    cell_id: str,
    *,
    recipe: str | None = None,
    recipe_hash: str | None = None,
    software_version: str | None = None,
    operator: str | None = None,
    source: str | os.PathLike[str] | None = None,
    shape_zyx: Sequence[int] | None = None,
    spacing_um: Sequence[float] | None = None,
    voxel_size_um: float | None = None,
    modality: str | None = None,
    started_at: str | None = None,
) -> int:
    """File an inspection as ``running`` before the work starts.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    cell_id : str
        The cell's identifier (barcode); the cell row is created when new. Printable text of
        at most 128 characters (:func:`core.text.check_cell_id`), else InputError.
    recipe, recipe_hash, software_version, operator : str, optional
        What the inspection runs with and who started it (the operator becomes a user with
        role ``operator`` when unknown).
    source : str or os.PathLike, optional
        The volume file; a ``scans`` row is created or reused for it.
    shape_zyx, spacing_um, voxel_size_um, modality : optional
        Scan metadata.
    started_at : str, optional
        ISO time; now when omitted.

    Returns
    -------
    int
        The new inspection's id.
    """
    cell_id = check_cell_id(cell_id)
    source_text = None if source is None else path_text(source)
    started = started_at or utc_now()
    with write_transaction(db):
        _ensure_cell(db, cell_id)
        _ensure_user(db, operator)
        scan_id = _get_or_create_scan(
            db,
            cell_id,
            source_text,
            shape_zyx=shape_zyx,
            spacing_um=spacing_um,
            voxel_size_um=voxel_size_um,
            modality=modality,
        )
        cursor = db.conn.execute(
            "INSERT INTO inspections (cell_id, scan_id, status, recipe, recipe_hash,"
            " software_version, operator, started_at, host, pid)"
            " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            (
                cell_id,
                scan_id,
                recipe,
                recipe_hash,
                software_version,
                operator,
                started,
                _host(),
                os.getpid(),
            ),
        )
        inspection_id = int(cursor.lastrowid)
        append_audit(
            db,
            "inspection.begin",
            entity="inspections",
            entity_id=inspection_id,
            actor=operator,
            details={
                "cell_id": cell_id,
                "recipe": recipe,
                "recipe_hash": recipe_hash,
                "software_version": software_version,
                "source": source_text,
            },
        )
    return inspection_id


def _finding_row(inspection_id: int, index: int, finding: Mapping[str, Any]) -> dict[str, Any]:
    centroid = list(finding.get("centroid_zyx_px") or [None, None, None])[:3]
    centroid += [None] * (3 - len(centroid))
    bbox = finding.get("bbox_zyx_px")
    return {
        "inspection_id": inspection_id,
        "finding_id": str(finding.get("id") or f"F{index + 1}"),
        "detector": str(finding.get("detector") or "unknown"),
        "severity": str(finding.get("severity") or "info"),
        "value": to_jsonable(finding.get("value")),
        "unit": finding.get("unit"),
        "message": finding.get("message"),
        "centroid_z_px": to_jsonable(centroid[0]),
        "centroid_y_px": to_jsonable(centroid[1]),
        "centroid_x_px": to_jsonable(centroid[2]),
        "bbox_zyx_px": canonical_json(bbox) if bbox is not None else None,
        "winding": to_jsonable(finding.get("winding")),
        "angle_deg": to_jsonable(finding.get("angle_deg")),
    }


def complete_inspection(db: Database, inspection_id: int, result: Mapping[str, Any]) -> None:
    """Write the verdict, the result and its findings, and mark the inspection complete.

    Everything is written in one transaction: either the row is ``complete`` with all its
    findings and its audit entry, or nothing changed and it is still ``running``.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    inspection_id : int
        From :func:`begin_inspection`.
    result : mapping
        The inspection result (schema ``cellqc.inspection/1``); must carry a ``verdict``.

    Raises
    ------
    ValueError
        The result has no valid verdict or names another cell.
    core.errors.InputError
        No running inspection has that id.
    """
    verdict = result.get("verdict")
    if verdict not in VERDICTS:
        raise ValueError(f"inspection result has no valid verdict: {verdict!r}")
    result_json = canonical_json(result)
    result_sha = hashlib.sha256(result_json.encode("utf-8")).hexdigest()
    findings = list(result.get("findings") or [])
    with write_transaction(db):
        row = get_inspection(db, inspection_id)
        if row["status"] != "running":
            raise InputError(
                f"inspection {inspection_id}", f"is {row['status']}, not running; cannot complete"
            )
        if result.get("cell_id") not in (None, row["cell_id"]):
            raise ValueError(
                f"result is for cell {result.get('cell_id')!r}, inspection {inspection_id} "
                f"is for {row['cell_id']!r}"
            )
        db["findings"].insert_all(
            [_finding_row(int(inspection_id), i, f) for i, f in enumerate(findings)]
        )
        db.conn.execute(
            "UPDATE inspections SET status = 'complete', verdict = ?, finished_at = ?,"
            " n_findings = ?, result_json = ?, result_sha256 = ?,"
            " recipe = COALESCE(recipe, ?), recipe_hash = COALESCE(recipe_hash, ?),"
            " software_version = COALESCE(software_version, ?)"
            " WHERE id = ? AND status = 'running'",
            (
                verdict,
                result.get("finished_at") or utc_now(),
                len(findings),
                result_json,
                result_sha,
                result.get("recipe"),
                result.get("recipe_hash"),
                result.get("software_version"),
                int(inspection_id),
            ),
        )
        append_audit(
            db,
            "inspection.complete",
            entity="inspections",
            entity_id=inspection_id,
            actor=row["operator"],
            details={
                "cell_id": row["cell_id"],
                "verdict": verdict,
                "n_findings": len(findings),
                "result_sha256": result_sha,
            },
        )


def fail_inspection(db: Database, inspection_id: int, error: str) -> None:
    """Mark a running inspection as ``failed`` (it raised an error) with the reason.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    inspection_id : int
        From :func:`begin_inspection`.
    error : str
        One line: what went wrong.
    """
    with write_transaction(db):
        cursor = db.conn.execute(
            "UPDATE inspections SET status = 'failed', finished_at = ?, error = ?"
            " WHERE id = ? AND status = 'running'",
            (utc_now(), str(error), int(inspection_id)),
        )
        if cursor.rowcount:
            append_audit(
                db,
                "inspection.failed",
                entity="inspections",
                entity_id=inspection_id,
                details={"error": str(error)},
            )


def record_inspection(
    db: Database, result: Mapping[str, Any], *, operator: str | None = None
) -> int:
    """File a finished inspection result: :func:`begin_inspection` + :func:`complete_inspection`.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    result : mapping
        The inspection result (schema ``cellqc.inspection/1`` plus ``recipe_hash``,
        ``software_version``, ``source``, ``spacing_um``, ``operator``, ``started_at``...).
    operator : str, optional
        Overrides ``result["operator"]``.

    Returns
    -------
    int
        The inspection's id.
    """
    inspection_id = begin_inspection(
        db,
        str(result.get("cell_id") or ""),
        recipe=result.get("recipe"),
        recipe_hash=result.get("recipe_hash"),
        software_version=result.get("software_version"),
        operator=operator or result.get("operator"),
        source=result.get("source"),
        shape_zyx=result.get("shape_zyx"),
        spacing_um=result.get("spacing_um"),
        voxel_size_um=result.get("voxel_size_um"),
        started_at=result.get("started_at"),
    )
    try:
        complete_inspection(db, inspection_id, result)
    except Exception as exc:
        fail_inspection(db, inspection_id, f"{type(exc).__name__}: {exc}")
        raise
    return inspection_id


def mark_stale_interrupted(db: Database, *, stale_after_s: float = 24 * 3600.0) -> list[int]:
    """Mark ``running`` inspections whose process has gone as ``interrupted``.

    A row started on this host is stale when its process no longer exists. A row started
    on another host (a cluster worker sharing the file) is stale after ``stale_after_s``.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    stale_after_s : float
        Age after which a running row from another host is considered abandoned; also caps
        rows from this host whose process id was reused.

    Returns
    -------
    list of int
        The ids marked interrupted.
    """
    rows = db.conn.execute(
        "SELECT id, host, pid, started_at FROM inspections WHERE status = 'running'"
    ).fetchall()
    if not rows:
        return []
    here = _host()
    stale: list[tuple[int, str]] = []
    for rid, host, pid, started_at in rows:
        age = _age_s(started_at)
        if host == here and pid is not None and not _pid_alive(int(pid)):
            stale.append((int(rid), f"process {pid} on {host} ended before it completed"))
        elif age > stale_after_s:
            stale.append((int(rid), f"still running after {age / 3600:.1f} h; abandoned"))
    marked: list[int] = []
    for rid, reason in stale:
        with write_transaction(db):
            cursor = db.conn.execute(
                "UPDATE inspections SET status = 'interrupted', finished_at = ?, error = ?"
                " WHERE id = ? AND status = 'running'",
                (utc_now(), reason, rid),
            )
            if cursor.rowcount:
                append_audit(
                    db,
                    "inspection.interrupted",
                    entity="inspections",
                    entity_id=rid,
                    details={"reason": reason},
                )
                marked.append(rid)
    return marked


def get_result(db: Database, inspection_id: int) -> dict[str, Any]:
    """The stored inspection result of a complete inspection.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    inspection_id : int
        The inspection's id.

    Returns
    -------
    dict
        The result as filed (schema ``cellqc.inspection/1``).

    Raises
    ------
    core.errors.InputError
        No such inspection, or it did not complete.
    """
    row = get_inspection(db, inspection_id)
    if row["status"] != "complete" or not row["result_json"]:
        raise InputError(
            f"inspection {inspection_id}", f"is {row['status']}; it has no result to report"
        )
    return json.loads(row["result_json"])


def list_inspections(
    db: Database,
    *,
    failed: bool = False,
    cell_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of the ``inspection_log`` view, oldest first.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    failed : bool
        Only inspections whose final verdict (after overrides) is FAIL.
    cell_id : str, optional
        Only this cell.
    status : str, optional
        Only this status (``running``, ``complete``, ``interrupted``, ``failed``).
    limit : int, optional
        Only the newest ``limit`` rows.

    Returns
    -------
    list of dict
        Keys: id, cell_id, started_at, finished_at, status, verdict, override_verdict,
        final_verdict, n_findings, recipe, recipe_hash, software_version, operator, source,
        report_path.
    """
    where, params = [], []
    if failed:
        where.append("final_verdict = 'FAIL'")
    if cell_id is not None:
        where.append("cell_id = ?")
        params.append(cell_id)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    sql = "SELECT * FROM inspection_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return list(reversed(list(db.query(sql, params))))


def latest_report_path(db: Database, inspection_id: int) -> str | None:
    """The path of the newest report filed for an inspection (None when none was filed).

    The path is as recorded; the file may have been moved or deleted since.
    """
    row = _one(db, "SELECT path FROM reports WHERE inspection_id = ? ORDER BY id DESC LIMIT 1",
               [int(inspection_id)])
    return row["path"] if row else None


def findings_for(db: Database, inspection_id: int) -> list[dict[str, Any]]:
    """The ``findings`` rows of one inspection, in filing order."""
    return list(
        db.query("SELECT * FROM findings WHERE inspection_id = ? ORDER BY id", [inspection_id])
    )


# ------------------------------------------------------------------ users and overrides


def override_verdict(
    db: Database, inspection_id: int, new_verdict: str, reason: str, user: str
) -> int:
    """Override a complete inspection's verdict, with a reason, as an engineer or admin.

    The automated verdict stays in ``inspections``; the override goes to ``overrides`` and
    the audit chain, and the ``inspection_log`` view shows the final verdict.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    inspection_id : int
        A complete inspection.
    new_verdict : {"PASS", "FAIL", "REVIEW"}
    reason : str
        Why; required.
    user : str
        A user whose role is ``engineer`` or ``admin``.

    Returns
    -------
    int
        The override's id.

    Raises
    ------
    core.errors.InputError
        Unknown verdict, empty reason, unknown user, a role that may not override, or an
        inspection that is not complete.
    """
    new_verdict = str(new_verdict).upper()
    if new_verdict not in VERDICTS:
        raise InputError(f"verdict {new_verdict!r}", "must be PASS, FAIL or REVIEW")
    if not reason or not reason.strip():
        raise InputError("reason", "an override needs a reason")
    with write_transaction(db):
        who = _one(db, "SELECT role FROM users WHERE name = ?", [user])
        if who is None:
            raise InputError(f"user {user!r}", "unknown user")
        if who["role"] not in OVERRIDE_ROLES:
            raise InputError(f"user {user!r}", f"role {who['role']} may not override verdicts")
        row = get_inspection(db, inspection_id)
        if row["status"] != "complete":
            raise InputError(f"inspection {inspection_id}", f"is {row['status']}; not complete")
        previous = _one(
            db,
            "SELECT new_verdict FROM overrides WHERE inspection_id = ? ORDER BY id DESC LIMIT 1",
            [int(inspection_id)],
        )
        old = previous["new_verdict"] if previous else row["verdict"]
        now = utc_now()
        cursor = db.conn.execute(
            "INSERT INTO overrides (inspection_id, old_verdict, new_verdict, reason, user,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (int(inspection_id), old, new_verdict, reason.strip(), user, now),
        )
        override_id = int(cursor.lastrowid)
        append_audit(
            db,
            "verdict.override",
            entity="overrides",
            entity_id=override_id,
            actor=user,
            details={
                "inspection_id": int(inspection_id),
                "old_verdict": old,
                "new_verdict": new_verdict,
                "reason": reason.strip(),
            },
        )
    return override_id


def overrides_for(db: Database, inspection_id: int) -> list[dict[str, Any]]:
    """The overrides of one inspection, oldest first (with the user's full name)."""
    return list(
        db.query(
            "SELECT o.*, u.full_name AS user_full_name, u.role AS user_role FROM overrides o"
            " LEFT JOIN users u ON u.name = o.user WHERE o.inspection_id = ? ORDER BY o.id",
            [int(inspection_id)],
        )
    )


# ----------------------------------------------------------------------------- reports


def record_report(
    db: Database, inspection_id: int, path: str | os.PathLike[str], sha256: str
) -> int:
    """File a written PDF report (path and sha256) against its inspection (audited).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    inspection_id : int
        The inspection the report shows.
    path : str or os.PathLike
        Where the PDF is (stored absolute).
    sha256 : str
        Hex digest of the PDF's bytes.

    Returns
    -------
    int
        The report row's id.
    """
    path = Path(path).resolve()
    size = path.stat().st_size if path.exists() else None
    shown = path_text(path)  # a file name with undecodable bytes is stored escaped
    with write_transaction(db):
        get_inspection(db, inspection_id)
        cursor = db.conn.execute(
            "INSERT INTO reports (inspection_id, path, sha256, size_bytes, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (int(inspection_id), shown, sha256, size, utc_now()),
        )
        report_id = int(cursor.lastrowid)
        append_audit(
            db,
            "report.write",
            entity="reports",
            entity_id=report_id,
            details={"inspection_id": int(inspection_id), "path": shown, "sha256": sha256},
        )
    return report_id


def inspection_record_problem(db: Database, inspection_id: int) -> str | None:
    """Why one inspection's verdict cannot be trusted, or None when its audit entries hold.

    A fast check of one inspection (not the whole chain), made before its report is printed
    again: the ``inspection.complete`` audit row must be a keyed row that verifies and agree
    with the row's verdict and result hash, and each override must match its own verifying
    ``verdict.override`` row. (Rows filed before the log was keyed are checked against their
    plain hash only.)

    Raises
    ------
    core.store.keys.AuditKeyError
        The audit key is missing or is another log's.
    """
    key = audit_key_of(db)
    row = get_inspection(db, inspection_id)
    if row["status"] != "complete":
        return None
    entries = list(db.query(
        "SELECT * FROM audit WHERE action = 'inspection.complete' AND entity_id = ?"
        " ORDER BY id DESC LIMIT 1", [str(int(inspection_id))]))
    if not entries:
        return "no audit entry records its completion"
    if not row_verifies(db, entries[0], key):
        return "its audit entry does not verify with the audit key"
    audited = json.loads(entries[0]["details"])
    actual = hashlib.sha256((row["result_json"] or "").encode("utf-8")).hexdigest()
    if audited.get("verdict") != row["verdict"] or audited.get("result_sha256") not in (
            actual, None) or row["result_sha256"] != actual:
        return "its verdict or result differs from its audit entry"
    for override in overrides_for(db, inspection_id):
        found = list(db.query(
            "SELECT * FROM audit WHERE action = 'verdict.override' AND entity_id = ?",
            [str(override["id"])]))
        if not found or not row_verifies(db, found[0], key):
            return f"override {override['id']} has no verifying audit entry"
        details = json.loads(found[0]["details"])
        if (details.get("new_verdict"), details.get("reason"), found[0]["actor"]) != (
                override["new_verdict"], override["reason"], override["user"]):
            return f"override {override['id']} differs from its audit entry"
    return None
