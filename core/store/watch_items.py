"""The hot folder's state in the log: one ``watch_items`` row per scan it picked up.

A row goes ``running`` → ``filed`` → ``done``/``failed`` (see :mod:`qc_app.batch.watch`, the
one caller); these functions are its only reads and writes of the table, so the watcher
holds no SQL. Writes are meant to run inside :func:`core.store.base.write_transaction`
together with the inspection rows they accompany.
"""

from __future__ import annotations

import os
from typing import Any

from sqlite_utils import Database

from core.store.audit import append_audit
from core.store.base import utc_now, write_transaction

#: Columns a caller may set (``id`` is the log's; ``updated_at`` is set on every write).
COLUMNS = ("folder", "name", "size_bytes", "mtime_ns", "n_files", "status", "attempts",
           "inspection_id", "outcome", "reason", "moved_to", "host", "pid", "created_at",
           "updated_at")


def _check_columns(values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:  # a programming error, never input: names are put into the SQL text
        raise ValueError(f"watch_items has no column {', '.join(unknown)}")


def get_watch_item(db: Database, item_id: int) -> dict[str, Any]:
    """One ``watch_items`` row by id (``StopIteration`` when there is none)."""
    return next(db.query("SELECT * FROM watch_items WHERE id = ?", [item_id]))


def active_watch_item(db: Database, folder: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """The newest ``running`` or ``filed`` row of a scan in a folder, or None."""
    rows = list(db.query(
        "SELECT * FROM watch_items WHERE folder = ? AND name = ? AND status IN ('running', 'filed')"
        " ORDER BY id DESC LIMIT 1", [str(folder), name]))
    return rows[0] if rows else None


def watch_items(db: Database, folder: str | os.PathLike[str], status: str, *,
                unowned: bool = False) -> list[dict[str, Any]]:
    """A folder's rows in one status, oldest first.

    Parameters
    ----------
    db : sqlite_utils.Database
    folder : str or os.PathLike
        The watched folder as recorded.
    status : str
        ``running``, ``filed``, ``done`` or ``failed``.
    unowned : bool
        Only rows no process owns (``pid`` is NULL).
    """
    sql = "SELECT * FROM watch_items WHERE folder = ? AND status = ?"
    if unowned:
        sql += " AND pid IS NULL"
    return list(db.query(sql + " ORDER BY id", [str(folder), status]))


def update_watch_item(db: Database, item_id: int, **values: Any) -> None:
    """Set columns of one row (and its ``updated_at``)."""
    values["updated_at"] = utc_now()
    _check_columns(values)
    cols = ", ".join(f"{k} = ?" for k in values)
    db.conn.execute(f"UPDATE watch_items SET {cols} WHERE id = ?", [*values.values(), item_id])


def insert_watch_item(db: Database, **values: Any) -> int:
    """Add a row (``created_at``/``updated_at`` default to now); returns its id."""
    now = utc_now()
    row = {"created_at": now, "updated_at": now, **values}
    _check_columns(row)
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cursor = db.conn.execute(f"INSERT INTO watch_items ({cols}) VALUES ({marks})", list(row.values()))
    return int(cursor.lastrowid)


def release_stale_watch_items(db: Database, folder: str | os.PathLike[str]) -> int:
    """Release a folder's ``running`` rows left owned by an earlier watcher.

    Call it holding the folder's lock: then no process owns them. Each row loses its owner;
    its inspection, if still ``running``, becomes ``interrupted`` (audited), one transaction
    per row.

    Returns
    -------
    int
        How many rows were released.
    """
    stale = list(db.query(
        "SELECT id, inspection_id FROM watch_items WHERE folder = ? AND status = 'running'"
        " AND pid IS NOT NULL", [str(folder)]))
    for row in stale:
        with write_transaction(db):
            update_watch_item(db, row["id"], pid=None)
            if row["inspection_id"] is not None:
                cursor = db.conn.execute(
                    "UPDATE inspections SET status = 'interrupted', finished_at = ?, error = ?"
                    " WHERE id = ? AND status = 'running'",
                    (utc_now(), "the hot folder stopped before this inspection completed",
                     row["inspection_id"]))
                if cursor.rowcount:
                    append_audit(db, "inspection.interrupted", entity="inspections",
                                 entity_id=row["inspection_id"],
                                 details={"reason": "hot folder restarted"})
    return len(stale)
