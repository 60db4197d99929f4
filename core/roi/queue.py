"""The ROI request queue in the log: filing plans, state changes, the scanner's scan list.

States: ``planned → scheduled → acquired → reconstructed → attached``; any state before
``attached`` may go to ``cancelled``. Each change updates ``roi_requests`` and appends a
``roi.state`` row to the audit chain in the same transaction; anything else is refused with
one line. An imported ROI volume is filed in ``followups`` (kind ``roi-ct``) with its
registration against the overview.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.errors import InputError
from core.store.audit import append_audit, canonical_json, utc_now
from core.store.schema import write_transaction

STATES: tuple[str, ...] = ("planned", "scheduled", "acquired", "reconstructed", "attached", "cancelled")
#: Allowed next states.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "planned": ("scheduled", "cancelled"),
    "scheduled": ("acquired", "cancelled"),
    "acquired": ("reconstructed", "cancelled"),
    "reconstructed": ("attached", "cancelled"),
    "attached": (),
    "cancelled": (),
}
#: States of a request that is still on its way.
ACTIVE_STATES: tuple[str, ...] = ("planned", "scheduled", "acquired", "reconstructed")
#: ``followups.kind`` of an imported ROI volume.
FOLLOWUP_KIND = "roi-ct"
#: Columns of the scanner's scan list.
EXPORT_COLUMNS: tuple[str, ...] = (
    "id", "cell_id", "status", "priority", "objective", "voxel_um", "fov_diameter_mm",
    "fov_height_mm", "x_mm", "y_mm", "z_mm", "radius_mm", "angle_deg", "center_z_px",
    "center_y_px", "center_x_px", "projections", "exposure_s", "estimated_minutes",
    "finding_ids", "inspection_id",
)


def _row(db: Database, roi_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM roi_requests WHERE id = ?", [int(roi_id)]))
    if not rows:
        raise InputError(f"ROI {roi_id}", "no such ROI request in the log")
    return rows[0]


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["plan"] = json.loads(row["plan_json"]) if row.get("plan_json") else {}
    return out


def get_request(db: Database, roi_id: int) -> dict[str, Any]:
    """One ROI request with its parsed plan (``plan``).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    roi_id : int
        ``roi_requests.id``.

    Returns
    -------
    dict

    Raises
    ------
    core.errors.InputError
        No such request.
    """
    return _decode(_row(db, roi_id))


def list_requests(
    db: Database,
    *,
    status: str | Sequence[str] | None = None,
    cell_id: str | None = None,
    inspection_id: int | None = None,
) -> list[dict[str, Any]]:
    """ROI requests, most urgent first (priority, then age).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    status : str or sequence of str, optional
        Only these states.
    cell_id : str, optional
        Only this cell.
    inspection_id : int, optional
        Only requests planned from this inspection.

    Returns
    -------
    list of dict
        Rows with the parsed ``plan``.
    """
    where, params = [], []
    if status is not None:
        states = [status] if isinstance(status, str) else list(status)
        for s in states:
            if s not in STATES:
                raise InputError("--status", f"unknown state {s!r}; states are {', '.join(STATES)}")
        where.append(f"status IN ({', '.join('?' for _ in states)})")
        params.extend(states)
    if cell_id is not None:
        where.append("cell_id = ?")
        params.append(cell_id)
    if inspection_id is not None:
        where.append("inspection_id = ?")
        params.append(int(inspection_id))
    sql = "SELECT * FROM roi_requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY COALESCE(priority, 99), id"
    return [_decode(r) for r in db.query(sql, params)]


def _finding_row_id(db: Database, inspection_id: int | None, finding_id: str | None) -> int | None:
    if inspection_id is None or finding_id is None:
        return None
    row = db.conn.execute(
        "SELECT id FROM findings WHERE inspection_id = ? AND finding_id = ?",
        (int(inspection_id), str(finding_id)),
    ).fetchone()
    return int(row[0]) if row else None


def file_plan(
    db: Database,
    plan: Mapping[str, Any],
    *,
    actor: str | None = None,
    replace: bool = False,
) -> list[int]:
    """File a plan's ROIs as ``planned`` requests (one transaction, one audit row each).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    plan : mapping
        Plan document (:func:`core.roi.plan.plan_document`); its ROI ``id`` fields are set
        to the new request ids.
    actor : str, optional
        Who planned.
    replace : bool
        Cancel the inspection's requests still ``planned`` or ``scheduled`` first; without
        it, an inspection that already has active requests is refused.

    Returns
    -------
    list of int
        The new request ids, in plan order.

    Raises
    ------
    core.errors.InputError
        Active requests exist (and ``replace`` is false or some are already acquired), or
        the plan names no cell.
    """
    cell_id = str(plan.get("cell_id") or "").strip()
    if not cell_id:
        raise InputError("inspection result", "has no cell_id; cannot file ROI requests")
    inspection_id = plan.get("inspection_id")
    ids: list[int] = []
    with write_transaction(db):
        if inspection_id is not None:
            active = list_requests(db, status=ACTIVE_STATES, inspection_id=int(inspection_id))
            if active and not replace:
                listed = ", ".join(str(r["id"]) for r in active[:5]) + (", …" if len(active) > 5 else "")
                raise InputError(
                    f"inspection {inspection_id}",
                    f"already has active ROI requests ({listed}); use --replace to re-plan",
                )
            busy = [r for r in active if r["status"] not in ("planned", "scheduled")]
            if busy:
                listed = ", ".join(f"{r['id']} ({r['status']})" for r in busy)
                raise InputError(
                    f"inspection {inspection_id}", f"ROI requests already under way: {listed}"
                )
            for r in active:
                _set_state(db, r, "cancelled", actor=actor, note="replaced by a new plan")
        db.conn.execute(
            "INSERT OR IGNORE INTO cells (id, first_seen_at) VALUES (?, ?)", (cell_id, utc_now())
        )
        for roi in plan.get("rois") or []:
            first = (roi.get("finding_ids") or [None])[0]
            now = utc_now()
            cursor = db.conn.execute(
                "INSERT INTO roi_requests (cell_id, inspection_id, finding_id, status, priority,"
                " plan_json, created_at, updated_at) VALUES (?, ?, ?, 'planned', ?, ?, ?, ?)",
                (
                    cell_id,
                    None if inspection_id is None else int(inspection_id),
                    _finding_row_id(db, inspection_id, first),
                    roi.get("priority"),
                    "{}",
                    now,
                    now,
                ),
            )
            roi_id = int(cursor.lastrowid)
            stored = dict(roi)
            stored["id"] = roi_id
            stored["inspection_id"] = inspection_id
            stored["overview"] = plan.get("overview")
            db.conn.execute(
                "UPDATE roi_requests SET plan_json = ? WHERE id = ?", (canonical_json(stored), roi_id)
            )
            append_audit(
                db,
                "roi.plan",
                entity="roi_requests",
                entity_id=roi_id,
                actor=actor,
                details={
                    "cell_id": cell_id,
                    "inspection_id": inspection_id,
                    "label": roi.get("label"),
                    "objective": roi.get("objective"),
                    "center_zyx_px": roi.get("center_zyx_px"),
                    "finding_ids": roi.get("finding_ids"),
                    "priority": roi.get("priority"),
                },
            )
            roi["id"] = roi_id  # type: ignore[index]
            ids.append(roi_id)
    return ids


def _set_state(
    db: Database,
    row: Mapping[str, Any],
    new: str,
    *,
    actor: str | None,
    note: str | None,
    details: Mapping[str, Any] | None = None,
) -> None:
    old = str(row["status"])
    if new not in STATES:
        raise InputError(f"ROI {row['id']}", f"unknown state {new!r}; states are {', '.join(STATES)}")
    if new not in TRANSITIONS.get(old, ()):
        allowed = " or ".join(TRANSITIONS.get(old, ())) or "nothing (final state)"
        raise InputError(f"ROI {row['id']}", f"cannot go from {old} to {new}; next can be {allowed}")
    now = utc_now()
    cursor = db.conn.execute(
        "UPDATE roi_requests SET status = ?, updated_at = ?, note = COALESCE(?, note)"
        " WHERE id = ? AND status = ?",
        (new, now, note, int(row["id"]), old),
    )
    if cursor.rowcount != 1:
        raise InputError(f"ROI {row['id']}", "changed meanwhile by someone else; try again")
    info: dict[str, Any] = {"from": old, "to": new, "cell_id": row["cell_id"]}
    if note:
        info["note"] = note
    if details:
        info.update(details)
    append_audit(db, "roi.state", entity="roi_requests", entity_id=row["id"], actor=actor, details=info)


def set_state(
    db: Database,
    roi_id: int,
    new: str,
    *,
    actor: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Move an ROI request to its next state (logged and audited).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    roi_id : int
        ``roi_requests.id``.
    new : str
        One of :data:`STATES`; must be allowed by :data:`TRANSITIONS`.
    actor : str, optional
        Who did it.
    note : str, optional
        Stored in the request's ``note`` and the audit row.

    Returns
    -------
    dict
        The updated request.

    Raises
    ------
    core.errors.InputError
        No such request, or a transition that is not allowed (one line naming both states).
    """
    with write_transaction(db):
        _set_state(db, _row(db, roi_id), new, actor=actor, note=note)
    return get_request(db, roi_id)


def export_rows(requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The scanner's scan list: one flat row per request (:data:`EXPORT_COLUMNS`).

    Parameters
    ----------
    requests : sequence of dict
        From :func:`list_requests`.

    Returns
    -------
    list of dict
    """
    rows = []
    for r in requests:
        p = r.get("plan") or {}
        center_mm = p.get("center_mm") or [None, None, None]
        center_px = p.get("center_zyx_px") or [None, None, None]
        polar = p.get("center_polar") or {}
        fov = p.get("fov_mm") or {}
        rows.append(
            {
                "id": r["id"],
                "cell_id": r["cell_id"],
                "status": r["status"],
                "priority": r.get("priority"),
                "objective": p.get("objective"),
                "voxel_um": p.get("voxel_um"),
                "fov_diameter_mm": fov.get("diameter"),
                "fov_height_mm": fov.get("height"),
                "x_mm": center_mm[2],
                "y_mm": center_mm[1],
                "z_mm": center_mm[0],
                "radius_mm": polar.get("radius_mm"),
                "angle_deg": polar.get("angle_deg"),
                "center_z_px": center_px[0],
                "center_y_px": center_px[1],
                "center_x_px": center_px[2],
                "projections": p.get("projections"),
                "exposure_s": p.get("exposure_s"),
                "estimated_minutes": p.get("estimated_minutes"),
                "finding_ids": " ".join(p.get("finding_ids") or []),
                "inspection_id": r.get("inspection_id"),
            }
        )
    return rows


def _sha256(path: Path) -> str | None:
    from core.fileio import sha256_file

    return sha256_file(path) if path.is_file() else None


def attach_volume(
    db: Database,
    roi_id: int,
    *,
    source: str | os.PathLike[str],
    spacing_um: Sequence[float],
    shape_zyx: Sequence[int],
    registration: Mapping[str, Any],
    actor: str | None = None,
    summary: Mapping[str, Any] | None = None,
) -> int:
    """File an imported ROI volume and mark the request ``attached``.

    A request that is ``scheduled`` or ``acquired`` passes through the missing states
    (each audited, marked ``via: import``); a ``planned`` request is refused: it was never
    sent to the scanner.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    roi_id : int
        ``roi_requests.id``.
    source : str or os.PathLike
        The volume file.
    spacing_um, shape_zyx : sequence
        The ROI volume's voxel size and shape.
    registration : mapping
        :meth:`core.roi.register.Registration.to_dict`.
    actor : str, optional
        Who imported.
    summary : mapping, optional
        Anything else to keep with the follow-up.

    Returns
    -------
    int
        The ``followups`` row id.

    Raises
    ------
    core.errors.InputError
        No such request, or it is planned, attached or cancelled.
    """
    path = Path(source)
    body = {
        "roi_request_id": int(roi_id),
        "spacing_um": [float(s) for s in spacing_um],
        "shape_zyx": [int(n) for n in shape_zyx],
        "sha256": _sha256(path),
        "registration": dict(registration),
    }
    if summary:
        body.update(summary)
    with write_transaction(db):
        row = _row(db, roi_id)
        status = str(row["status"])
        if status not in ("scheduled", "acquired", "reconstructed"):
            hint = "; schedule it first (cellqc roi state ID scheduled)" if status == "planned" else ""
            raise InputError(f"ROI {roi_id}", f"is {status}; cannot attach a volume{hint}")
        path_chain = STATES[STATES.index(status) + 1 : STATES.index("reconstructed") + 1]
        for nxt in path_chain:
            _set_state(db, row, nxt, actor=actor, note=None, details={"via": "import"})
            row = _row(db, roi_id)
        cursor = db.conn.execute(
            "INSERT INTO followups (cell_id, inspection_id, roi_request_id, kind, source,"
            " summary_json, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row["cell_id"], row["inspection_id"], int(roi_id), FOLLOWUP_KIND, str(path),
             canonical_json(body), utc_now()),
        )
        followup_id = int(cursor.lastrowid)
        _set_state(db, row, "attached", actor=actor, note=None,
                   details={"followup_id": followup_id, "source": str(path), "sha256": body["sha256"],
                            "registration": dict(registration)})
    return followup_id


def attachment_of(db: Database, roi_id: int) -> dict[str, Any] | None:
    """The imported ROI volume of a request (its ``followups`` row, summary parsed).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    roi_id : int
        ``roi_requests.id``.

    Returns
    -------
    dict or None
        The newest ``roi-ct`` follow-up, with ``summary`` parsed; None if none.
    """
    rows = list(
        db.query(
            "SELECT * FROM followups WHERE roi_request_id = ? AND kind = ? ORDER BY id DESC LIMIT 1",
            [int(roi_id), FOLLOWUP_KIND],
        )
    )
    if not rows:
        return None
    out = dict(rows[0])
    out["summary"] = json.loads(out["summary_json"]) if out.get("summary_json") else {}
    return out
