"""Inputs of inspections in the log: which file (and its fingerprint) each inspection read.

A batch resumes by these rows: a cell whose unchanged input was inspected to completion with
the same recipe is not inspected again (:func:`qc_app.batch.ledger.find_previous`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlite_utils import Database

from core.store.base import utc_now
from core.text import path_text


def record_input_file(db: Database, inspection_id: int, path: str, *, size_bytes: int | None,
                      mtime_ns: int | None, n_files: int | None, sha256: str | None) -> None:
    """File the input an inspection reads, with its fingerprint (inside the inspection's
    write transaction, so that both are filed or neither)."""
    db.conn.execute(
        "INSERT INTO input_files (inspection_id, path, size_bytes, mtime_ns, n_files, sha256,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (inspection_id, path_text(path), size_bytes, mtime_ns, n_files, sha256, utc_now()),
    )


def completed_inspections_of_input(db: Database, path: str, recipe_hashes: Collection[str]
                                   ) -> list[dict[str, Any]]:
    """Complete inspections of one input file under any of some recipes, newest first.

    Parameters
    ----------
    db : sqlite_utils.Database
    path : str
        The input's absolute path, as filed.
    recipe_hashes : collection of str
        SHA-256 of the recipes that count.

    Returns
    -------
    list of dict
        ``id``, ``cell_id``, ``verdict``, ``n_findings``, ``finished_at`` of the inspection and
        the input's fingerprint then: ``size_bytes``, ``mtime_ns``, ``n_files``, ``sha256``.
    """
    hashes = list(recipe_hashes)
    return list(db.query(
        "SELECT i.id, i.cell_id, i.verdict, i.n_findings, i.finished_at, f.size_bytes, f.mtime_ns,"
        " f.n_files, f.sha256 FROM input_files f JOIN inspections i ON i.id = f.inspection_id"
        f" WHERE f.path = ? AND i.recipe_hash IN ({', '.join('?' * len(hashes))}) AND i.status = 'complete'"
        " ORDER BY i.id DESC",
        (path_text(path), *hashes),
    ))
