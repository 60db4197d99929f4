"""The bottom layer of the log: where it lives, how it is opened, one write transaction.

Every other module of :mod:`core.store` builds on this one, and this one imports nothing of
theirs (only :mod:`core.store.keys` for ``$CELLQC_HOME`` and :mod:`core.errors`), so the
store has no import cycle::

    keys, base  ←  audit  ←  log  ←  users  ←  checks  ←  schema (migrations, open_log)

A layer that must act after a commit or a rollback (the audit chain records its new head
outside the log) registers a hook on the open database with :func:`on_transaction_end`
instead of being imported here. It also holds the vocabulary the tables share (statuses,
verdicts, roles).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from core.errors import InputError
from core.store.keys import cellqc_home

#: Seconds a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 30.0

#: Status of an inspection row.
STATUSES = ("running", "complete", "interrupted", "failed")
#: Verdicts an inspection or an override may carry.
VERDICTS = ("PASS", "FAIL", "REVIEW")
#: Roles a user may have; ``engineer`` and ``admin`` may override verdicts.
ROLES = {
    "operator": "runs inspections and files reports",
    "engineer": "reviews flagged cells; may override a verdict with a reason",
    "admin": "manages users and recipes; may override a verdict with a reason",
}

_HOOKS_ATTR = "_cellqc_transaction_hooks"

#: Called with the database after a transaction's COMMIT or ROLLBACK.
TransactionHook = Callable[[Database], None]


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# --------------------------------------------------------------------------- paths


def default_db_path() -> Path:
    """Where the log lives unless ``--db`` says otherwise.

    Returns
    -------
    pathlib.Path
        ``$CELLQC_HOME/cellqc.db``; ``CELLQC_HOME`` defaults to ``~/.local/share/cellqc``.
    """
    return cellqc_home() / "cellqc.db"


def log_file(db: Database) -> Path | None:
    """The file an open log was read from (None for an in-memory database)."""
    for _, name, file in db.conn.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file)
    return None


def _log_files(db: Database) -> list[Path]:
    main = log_file(db)
    if main is None:
        return []
    return [main, main.with_name(main.name + "-wal"), main.with_name(main.name + "-shm")]


def restrict_log_permissions(db: Database) -> None:
    """Make the log file (and its -wal/-shm files) readable by its owner only (POSIX).

    Only files this process owns are changed; elsewhere (another owner, Windows) nothing is.
    """
    if sys.platform == "win32" or not hasattr(os, "getuid"):
        return
    for file in _log_files(db):
        with contextlib.suppress(OSError):
            info = file.stat()
            if info.st_uid == os.getuid() and info.st_mode & 0o077:
                file.chmod(0o600)


# ---------------------------------------------------------------------- connection


def connect(path: str | os.PathLike[str]) -> Database:
    """Open a SQLite file with cellqc's connection settings, without migrating it.

    Settings: a busy timeout of :data:`BUSY_TIMEOUT_S`, foreign keys enforced, WAL journal,
    ``synchronous=FULL`` (a committed inspection survives a power cut). A new file is created
    with mode 0600 (SQLite gives its -wal and -shm files the same mode).

    Parameters
    ----------
    path : str or os.PathLike
        The log file; its folder is created when missing.

    Returns
    -------
    sqlite_utils.Database

    Raises
    ------
    core.errors.InputError
        The file cannot be opened or is not a SQLite database.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # a new log is created 0600 (owner only)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(os.fsencode(path), timeout=BUSY_TIMEOUT_S)  # any bytes in the name
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # e.g. a file system without shared memory
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")
    except (OSError, sqlite3.DatabaseError) as exc:
        raise InputError(path, f"cannot open the log: {exc}") from None
    return Database(conn, execute_plugins=False)


def schema_version(db: Database) -> int:
    """The schema version of an open log (0 for an empty file).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open database.

    Returns
    -------
    int
        The highest applied migration.
    """
    if not db["schema_version"].exists():
        return 0
    row = db.conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


# ---------------------------------------------------------------------- transactions


def on_transaction_end(db: Database, name: str, *, after_commit: TransactionHook,
                       after_rollback: TransactionHook) -> None:
    """Have :func:`write_transaction` call two functions after each COMMIT / ROLLBACK of ``db``.

    Registering again under the same ``name`` replaces the pair, so a layer may register
    every time it touches the database.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    name : str
        Who registers (one pair per name).
    after_commit, after_rollback : callable(db)
        Called after the outermost transaction's COMMIT, or after its ROLLBACK.
    """
    hooks: dict[str, tuple[TransactionHook, TransactionHook]] | None = getattr(db, _HOOKS_ATTR, None)
    if hooks is None:
        hooks = {}
        setattr(db, _HOOKS_ATTR, hooks)
    hooks[name] = (after_commit, after_rollback)


def _run_hooks(db: Database, which: int) -> None:
    for pair in list((getattr(db, _HOOKS_ATTR, None) or {}).values()):
        pair[which](db)


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """One write transaction, taken with ``BEGIN IMMEDIATE``.

    Taking the write lock up front (instead of SQLite's default deferred transaction, which
    upgrades its lock at the first write) lets concurrent processes queue on the busy
    timeout instead of failing with "database is locked". Nested use joins the outer
    transaction. Everything inside is committed together or rolled back on any exception;
    the hooks of :func:`on_transaction_end` run after either.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log (see :func:`core.store.open_log`).

    Yields
    ------
    sqlite_utils.Database
        The same database.
    """
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        _run_hooks(db, 1)
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            _run_hooks(db, 1)
            raise
        _run_hooks(db, 0)  # e.g. the audit chain's new head, recorded outside the log
