"""Opening the log: the schema and its ordered migrations (the top layer of the store).

Connection settings and the write transaction are in :mod:`core.store.base` (re-exported
here). The log is one SQLite file read and written through sqlite-utils. Every table has a plain
name and real foreign keys so that the file reads well in Datasette
(``datasette cellqc.db``). The schema is versioned: :data:`MIGRATIONS` is an ordered list of
functions, and :func:`open_log` applies the ones a file has not seen yet, each in its own
transaction, recording each in the ``schema_version`` table.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from core.errors import InputError
from core.store.audit import append_audit
from core.store.base import (  # re-exported: imported from here by other code and tests
    BUSY_TIMEOUT_S,
    ROLES,
    STATUSES,
    VERDICTS,
    connect,
    default_db_path,
    restrict_log_permissions,
    schema_version,
    utc_now,
    write_transaction,
)
from core.store.keys import AuditKeyError
from core.store.log import mark_stale_interrupted
from core.store.users import record_user_snapshots

__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "ROLES",
    "SCHEMA_VERSION",
    "STATUSES",
    "VERDICTS",
    "connect",
    "default_db_path",
    "migrate",
    "open_log",
    "restrict_log_permissions",
    "schema_version",
    "write_transaction",
]

# --------------------------------------------------------------------------- migrations


def _run(db: Database, statements: list[str]) -> None:
    for sql in statements:
        db.conn.execute(sql)


def _migration_1(db: Database) -> None:
    """Initial schema: people, cells, scans, inspections, findings, reports, audit."""
    _run(
        db,
        [
            """CREATE TABLE roles (
                name TEXT PRIMARY KEY,
                description TEXT NOT NULL
            )""",
            """CREATE TABLE users (
                name TEXT PRIMARY KEY,
                full_name TEXT,
                role TEXT NOT NULL DEFAULT 'operator' REFERENCES roles(name),
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE cells (
                id TEXT PRIMARY KEY,
                cell_format TEXT,
                first_seen_at TEXT NOT NULL,
                note TEXT
            )""",
            """CREATE TABLE scans (
                id INTEGER PRIMARY KEY,
                cell_id TEXT NOT NULL REFERENCES cells(id),
                source TEXT,
                modality TEXT,
                shape_zyx TEXT,
                spacing_um TEXT,
                voxel_size_um REAL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX idx_scans_cell_id ON scans(cell_id)",
            """CREATE TABLE inspections (
                id INTEGER PRIMARY KEY,
                cell_id TEXT NOT NULL REFERENCES cells(id),
                scan_id INTEGER REFERENCES scans(id),
                status TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'complete', 'interrupted', 'failed')),
                verdict TEXT CHECK (verdict IS NULL OR verdict IN ('PASS', 'FAIL', 'REVIEW')),
                recipe TEXT,
                recipe_hash TEXT,
                software_version TEXT,
                operator TEXT REFERENCES users(name),
                started_at TEXT NOT NULL,
                finished_at TEXT,
                n_findings INTEGER,
                result_json TEXT,
                result_sha256 TEXT,
                host TEXT,
                pid INTEGER,
                error TEXT,
                CHECK (status != 'complete'
                       OR (verdict IS NOT NULL AND result_json IS NOT NULL))
            )""",
            "CREATE INDEX idx_inspections_cell_id ON inspections(cell_id)",
            "CREATE INDEX idx_inspections_status ON inspections(status)",
            "CREATE INDEX idx_inspections_verdict ON inspections(verdict)",
            """CREATE TABLE findings (
                id INTEGER PRIMARY KEY,
                inspection_id INTEGER NOT NULL REFERENCES inspections(id),
                finding_id TEXT NOT NULL,
                detector TEXT NOT NULL,
                severity TEXT NOT NULL,
                value REAL,
                unit TEXT,
                message TEXT,
                centroid_z_px REAL,
                centroid_y_px REAL,
                centroid_x_px REAL,
                bbox_zyx_px TEXT,
                winding INTEGER,
                angle_deg REAL,
                UNIQUE (inspection_id, finding_id)
            )""",
            "CREATE INDEX idx_findings_inspection_id ON findings(inspection_id)",
            """CREATE TABLE roi_requests (
                id INTEGER PRIMARY KEY,
                cell_id TEXT NOT NULL REFERENCES cells(id),
                inspection_id INTEGER REFERENCES inspections(id),
                finding_id INTEGER REFERENCES findings(id),
                status TEXT NOT NULL DEFAULT 'planned',
                priority INTEGER,
                plan_json TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT,
                note TEXT
            )""",
            "CREATE INDEX idx_roi_requests_cell_id ON roi_requests(cell_id)",
            """CREATE TABLE followups (
                id INTEGER PRIMARY KEY,
                cell_id TEXT NOT NULL REFERENCES cells(id),
                inspection_id INTEGER REFERENCES inspections(id),
                roi_request_id INTEGER REFERENCES roi_requests(id),
                kind TEXT NOT NULL,
                source TEXT,
                summary_json TEXT,
                imported_at TEXT NOT NULL,
                note TEXT
            )""",
            "CREATE INDEX idx_followups_cell_id ON followups(cell_id)",
            """CREATE TABLE reports (
                id INTEGER PRIMARY KEY,
                inspection_id INTEGER NOT NULL REFERENCES inspections(id),
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                size_bytes INTEGER,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX idx_reports_inspection_id ON reports(inspection_id)",
            """CREATE TABLE overrides (
                id INTEGER PRIMARY KEY,
                inspection_id INTEGER NOT NULL REFERENCES inspections(id),
                old_verdict TEXT,
                new_verdict TEXT NOT NULL CHECK (new_verdict IN ('PASS', 'FAIL', 'REVIEW')),
                reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
                user TEXT NOT NULL REFERENCES users(name),
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX idx_overrides_inspection_id ON overrides(inspection_id)",
            """CREATE TABLE audit (
                id INTEGER PRIMARY KEY,
                at TEXT NOT NULL,
                actor TEXT,
                action TEXT NOT NULL,
                entity TEXT,
                entity_id TEXT,
                details TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL UNIQUE
            )""",
            # Append-only: the log refuses to change or remove what it has written.
            """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
               BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
            """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
               BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END""",
            """CREATE TRIGGER overrides_no_update BEFORE UPDATE ON overrides
               BEGIN SELECT RAISE(ABORT, 'overrides are append-only'); END""",
            """CREATE TRIGGER overrides_no_delete BEFORE DELETE ON overrides
               BEGIN SELECT RAISE(ABORT, 'overrides are append-only'); END""",
            # A finished inspection is not edited afterwards (overrides go to `overrides`).
            """CREATE TRIGGER inspections_frozen BEFORE UPDATE ON inspections
               WHEN OLD.status != 'running'
               BEGIN SELECT RAISE(ABORT, 'a finished inspection cannot be changed'); END""",
        ],
    )
    db.conn.executemany("INSERT INTO roles (name, description) VALUES (?, ?)", list(ROLES.items()))


def _migration_2(db: Database) -> None:
    """The ``inspection_log`` view: one row per inspection with its final verdict."""
    _run(
        db,
        [
            """CREATE VIEW inspection_log AS
            SELECT
                i.id AS id,
                i.cell_id AS cell_id,
                i.started_at AS started_at,
                i.finished_at AS finished_at,
                i.status AS status,
                i.verdict AS verdict,
                o.new_verdict AS override_verdict,
                COALESCE(o.new_verdict, i.verdict) AS final_verdict,
                i.n_findings AS n_findings,
                i.recipe AS recipe,
                i.recipe_hash AS recipe_hash,
                i.software_version AS software_version,
                i.operator AS operator,
                s.source AS source,
                r.path AS report_path
            FROM inspections i
            LEFT JOIN scans s ON s.id = i.scan_id
            LEFT JOIN overrides o ON o.id = (
                SELECT max(id) FROM overrides WHERE inspection_id = i.id)
            LEFT JOIN reports r ON r.id = (
                SELECT max(id) FROM reports WHERE inspection_id = i.id)""",
        ],
    )


def _migration_3(db: Database) -> None:
    """Input fingerprints of inspections and the hot folder's work items."""
    _run(
        db,
        [
            # What an inspection read, so that a batch can skip a cell already inspected
            # from the same, unchanged file with the same recipe.
            """CREATE TABLE input_files (
                inspection_id INTEGER PRIMARY KEY REFERENCES inspections(id),
                path TEXT NOT NULL,
                size_bytes INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                n_files INTEGER NOT NULL DEFAULT 1,
                sha256 TEXT,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX idx_input_files_path ON input_files(path)",
            "CREATE INDEX idx_input_files_sha256 ON input_files(sha256)",
            # One row per scan a hot folder picked up: running -> filed -> done | failed.
            """CREATE TABLE watch_items (
                id INTEGER PRIMARY KEY,
                folder TEXT NOT NULL,
                name TEXT NOT NULL,
                size_bytes INTEGER,
                mtime_ns INTEGER,
                n_files INTEGER,
                status TEXT NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'filed', 'done', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                inspection_id INTEGER REFERENCES inspections(id),
                outcome TEXT,
                reason TEXT,
                moved_to TEXT,
                host TEXT,
                pid INTEGER,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            "CREATE INDEX idx_watch_items_folder_status ON watch_items(folder, status)",
            "CREATE INDEX idx_watch_items_inspection_id ON watch_items(inspection_id)",
        ],
    )


def _migration_4(db: Database) -> None:
    """Users' scrypt secrets and disabling; recipe changes with their diff."""
    _run(
        db,
        [
            # scrypt hash of the user's password or PIN (see core.store.users); never the secret.
            "ALTER TABLE users ADD COLUMN secret_hash TEXT",
            # When an admin disabled the user (NULL: active). Users are never deleted.
            "ALTER TABLE users ADD COLUMN disabled_at TEXT",
            # A disabled user cannot override a verdict, whatever the code calling in does.
            """CREATE TRIGGER overrides_user_enabled BEFORE INSERT ON overrides
               WHEN EXISTS (SELECT 1 FROM users WHERE name = NEW.user
                            AND disabled_at IS NOT NULL)
               BEGIN SELECT RAISE(ABORT, 'a disabled user cannot override verdicts'); END""",
            """CREATE TABLE recipe_changes (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                old_sha256 TEXT,
                new_sha256 TEXT NOT NULL,
                diff TEXT NOT NULL,
                new_text TEXT NOT NULL,
                user TEXT NOT NULL REFERENCES users(name),
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX idx_recipe_changes_name ON recipe_changes(name)",
            """CREATE TRIGGER recipe_changes_no_update BEFORE UPDATE ON recipe_changes
               BEGIN SELECT RAISE(ABORT, 'recipe changes are append-only'); END""",
            """CREATE TRIGGER recipe_changes_no_delete BEFORE DELETE ON recipe_changes
               BEGIN SELECT RAISE(ABORT, 'recipe changes are append-only'); END""",
        ],
    )


def _migration_5(db: Database) -> None:
    """Keyed audit chain; users, roles and secrets in the chain; login lockout; log file 0600."""
    _run(
        db,
        [
            # Consecutive failed logins and the lockout they caused (core.store.users).
            "ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE users ADD COLUMN locked_until TEXT",
            # Looking up a user's audited state and one action's rows.
            "CREATE INDEX IF NOT EXISTS idx_audit_entity ON audit(entity, entity_id)",
            "CREATE INDEX IF NOT EXISTS idx_audit_action ON audit(action)",
        ],
    )
    # The first audit row written here seals the plain chain of older logs under the key
    # (core.store.audit); then every user's state as it is now enters the keyed chain.
    record_user_snapshots(db)
    restrict_log_permissions(db)


Migration = Callable[[Database], None]

#: Ordered migrations; version ``n`` is ``MIGRATIONS[n - 1]``. Append, never edit or reorder.
MIGRATIONS: list[Migration] = [_migration_1, _migration_2, _migration_3, _migration_4, _migration_5]

#: The schema version this software writes.
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: Database) -> list[int]:
    """Apply the migrations a log has not seen yet, each in its own transaction.

    Safe to call from several processes at once: the version is read again under the write
    lock, so each migration runs exactly once.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open database.

    Returns
    -------
    list of int
        The versions applied by this call (empty when the schema was current).
    """
    applied: list[int] = []
    if schema_version(db) >= SCHEMA_VERSION:
        return applied
    for version, migration in enumerate(MIGRATIONS, start=1):
        with write_transaction(db):
            db.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            if schema_version(db) >= version:
                continue
            migration(db)
            description = (migration.__doc__ or migration.__name__).strip().splitlines()[0]
            db.conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (version, description, utc_now()),
            )
            append_audit(
                db,
                "schema.migrate",
                entity="schema_version",
                entity_id=version,
                details={"version": version, "description": description},
            )
            applied.append(version)
    return applied


def open_log(
    path: str | os.PathLike[str] | None = None,
    *,
    recover: bool = True,
    stale_after_s: float = 24 * 3600.0,
) -> Database:
    """Open (creating if needed) the log, bring its schema up to date, recover stale rows.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The log file; :func:`default_db_path` when omitted.
    recover : bool
        Mark ``running`` inspections whose process is gone as ``interrupted`` (see
        :func:`core.store.log.mark_stale_interrupted`).
    stale_after_s : float
        A ``running`` row started on another host is considered stale after this long.

    Returns
    -------
    sqlite_utils.Database
        The open log. Close it with ``db.close()`` (or use it as a context manager).

    Raises
    ------
    core.errors.InputError
        The file cannot be opened, is not a SQLite database, or was written by a newer
        cellqc whose schema this version does not know.
    """
    path = Path(path) if path is not None else default_db_path()
    db = connect(path)
    try:
        found = schema_version(db)
        if found > SCHEMA_VERSION:
            raise InputError(
                path,
                f"the log has schema version {found}, newer than this cellqc knows "
                f"({SCHEMA_VERSION}); update cellqc",
            )
        migrate(db)
        if recover:
            with contextlib.suppress(AuditKeyError):  # no key: still readable; recovered later
                mark_stale_interrupted(db, stale_after_s=stale_after_s)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise InputError(path, f"cannot use the log: {exc}") from None
    except BaseException:
        db.close()
        raise
    return db
