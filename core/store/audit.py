"""The append-only, hash-chained audit table.

Each audit row stores the hash of the row before it (``prev_hash``) and its own hash::

    hash = sha256(prev_hash + canonical_json({id, at, actor, action, entity, entity_id, details}))

The first row's ``prev_hash`` is :data:`GENESIS_HASH`. Triggers refuse UPDATE and DELETE on
the table; someone who edits the file by other means breaks the chain at the row they
touched, and :func:`verify_audit` names that row.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

#: ``prev_hash`` of the first audit row.
GENESIS_HASH = "0" * 64


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def to_jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, tuples, paths and non-finite floats into plain JSON values.

    Parameters
    ----------
    value : object
        Anything found in an inspection result.

    Returns
    -------
    object
        Built from dict, list, str, int, float (finite), bool and None only; NaN and
        infinities become None (SQLite's JSON functions reject them).
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return to_jsonable(tolist())
    if hasattr(value, "__fspath__"):
        return str(value)
    return str(value)


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 text, no NaN.

    Parameters
    ----------
    value : object
        Passed through :func:`to_jsonable` first.

    Returns
    -------
    str
    """
    return json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """The hash an audit row must carry.

    Parameters
    ----------
    prev_hash : str
        Hash of the previous row (hex), or :data:`GENESIS_HASH`.
    content : dict
        The row's ``id, at, actor, action, entity, entity_id, details`` (details as stored).

    Returns
    -------
    str
        sha256 hex digest of ``prev_hash + canonical_json(content)``.
    """
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": row["at"],
        "actor": row["actor"],
        "action": row["action"],
        "entity": row["entity"],
        "entity_id": row["entity_id"],
        "details": row["details"],
    }


def append_audit(
    db: Database,
    action: str,
    *,
    entity: str | None = None,
    entity_id: object = None,
    details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> int:
    """Append one row to the audit chain.

    Call it inside :func:`core.store.schema.write_transaction` together with the change it
    records, so that both are committed or neither is; called outside one it takes its own.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    action : str
        What happened, e.g. ``"inspection.complete"``, ``"verdict.override"``.
    entity, entity_id : str, optional
        The table and row the action concerns.
    details : dict, optional
        Anything else worth keeping (stored as canonical JSON).
    actor : str, optional
        The user name, when known.

    Returns
    -------
    int
        The new audit row's id.
    """
    from core.store.schema import write_transaction

    with write_transaction(db):
        last = db.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev_id, prev_hash = (int(last[0]), str(last[1])) if last else (0, GENESIS_HASH)
        row = {
            "id": prev_id + 1,
            "at": utc_now(),
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id),
            "details": canonical_json(details or {}),
        }
        row["prev_hash"] = prev_hash
        row["hash"] = row_hash(prev_hash, _content(row))
        db.conn.execute(
            "INSERT INTO audit (id, at, actor, action, entity, entity_id, details, prev_hash, hash)"
            " VALUES (:id, :at, :actor, :action, :entity, :entity_id, :details, :prev_hash, :hash)",
            row,
        )
    return int(row["id"])


@dataclass(frozen=True)
class AuditBreak:
    """The first place where the audit chain does not hold.

    Attributes
    ----------
    row_id : int
        The first audit row that fails verification.
    problem : str
        What is wrong with it, in one sentence.
    """

    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit row {self.row_id}: {self.problem}"


def find_audit_break(db: Database) -> AuditBreak | None:
    """Walk the audit chain from the first row and report the first broken link.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.

    Returns
    -------
    AuditBreak or None
        None when every row's hash and link hold.
    """
    expected_prev = GENESIS_HASH
    expected_id = 1
    cursor = db.conn.execute(
        "SELECT id, at, actor, action, entity, entity_id, details, prev_hash, hash"
        " FROM audit ORDER BY id"
    )
    keys = [d[0] for d in cursor.description]
    for values in cursor:
        row = dict(zip(keys, values, strict=True))
        rid = int(row["id"])
        if rid != expected_id:
            return AuditBreak(rid, f"row ids jump from {expected_id - 1} to {rid}")
        if row["prev_hash"] != expected_prev:
            return AuditBreak(rid, "its link to the previous row does not match")
        if row["hash"] != row_hash(row["prev_hash"], _content(row)):
            return AuditBreak(rid, "its content does not match its hash (the row was altered)")
        expected_prev = row["hash"]
        expected_id = rid + 1
    return None


def verify_audit(db: Database) -> int | None:
    """Check the audit hash chain.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.

    Returns
    -------
    int or None
        The id of the first audit row whose link or hash is broken, or None if intact.
    """
    broken = find_audit_break(db)
    return None if broken is None else broken.row_id


def audit_rows(db: Database, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The audit rows, newest last.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    limit : int, optional
        Only the last ``limit`` rows.

    Returns
    -------
    list of dict
    """
    sql = "SELECT * FROM audit ORDER BY id"
    if limit:
        sql = f"SELECT * FROM (SELECT * FROM audit ORDER BY id DESC LIMIT {int(limit)}) ORDER BY id"
    return list(db.query(sql))
