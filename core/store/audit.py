"""The append-only audit chain, keyed with HMAC-SHA-256, and its heads kept outside the log.

Each audit row stores the hash of the row before it (``prev_hash``) and its own hash::

    hash = HMAC-SHA-256(key, prev_hash + canonical_json({id, at, actor, action, entity,
                                                       entity_id, details}))

with the audit key of :mod:`core.store.keys` (a file outside the log). Without the key nobody
can write a row that verifies: someone who edits the log file — drops the triggers, flips a
verdict, recomputes every hash — breaks the chain at the first row they touched, and
:func:`find_audit_break` names it.

**Sealing.** The first keyed row of a log is an ``audit.key`` row: it names the key (its id,
never the key) and gives the log a random ``log_id``. In a new log it is row 1. A log written by
cellqc ≤ schema 4 holds a plain SHA-256 chain (``hash = sha256(prev_hash + content)``); the
first write by this version appends the ``audit.key`` row after it, recording how many plain
rows it seals and their head, so those rows are protected from then on too (changing one
changes the plain head, which the keyed row commits to). Rows are never rewritten.

**Heads outside the log.** Deleting the newest rows (the "tail") leaves a valid shorter chain.
So after every commit the newest row's id and hash are also written (HMAC-signed) to
``audit-heads/<log_id>.json`` beside the key, and every PDF report and exported result carries
the head at its time (:class:`AuditHead`): a log that lost its tail, or was replaced by an
older copy, no longer holds a head recorded outside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.errors import InputError
from core.fileio import atomic_write
from core.store.base import log_file, on_transaction_end, schema_version, utc_now, write_transaction
from core.store.keys import (
    AUDIT_KEY_ENV,
    AuditKey,
    AuditKeyError,
    create_audit_key,
    heads_folder,
    load_audit_key,
)

#: ``prev_hash`` of the first audit row.
GENESIS_HASH = "0" * 64



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


def legacy_row_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """The hash of a row of the plain chain written by cellqc ≤ schema 4 (no key).

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


def row_mac(key: AuditKey, prev_hash: str, content: dict[str, Any]) -> str:
    """The hash a keyed audit row must carry: HMAC-SHA-256 of ``prev_hash + content``."""
    return key.mac(prev_hash + canonical_json(content))


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


#: Action of the row that seals a log's chain under the audit key (row 1 of a new log).
SEAL_ACTION = "audit.key"
#: The first schema version whose audit chain must be sealed with a key.
KEYED_SCHEMA = 5

_KEY_ATTR = "_cellqc_audit_key"
_SEAL_ATTR = "_cellqc_audit_seal"
_PENDING_ATTR = "_cellqc_pending_head"


@dataclass(frozen=True)
class _Seal:
    row_id: int
    log_id: str
    key_id: str


def _watch_transactions(db: Database) -> None:
    """Have the write transaction tell this module about each commit and rollback of ``db``.

    Registered whenever this module touches a database, before it caches a seal or a pending
    head on it, so that neither outlives a rollback.
    """
    on_transaction_end(db, __name__, after_commit=after_commit, after_rollback=after_rollback)


def _find_seal(db: Database) -> _Seal | None:
    _watch_transactions(db)
    cached = getattr(db, _SEAL_ATTR, None)
    if cached is not None:
        return cached
    try:
        row = db.conn.execute(
            "SELECT id, details FROM audit WHERE action = ? ORDER BY id LIMIT 1", (SEAL_ACTION,)
        ).fetchone()
    except sqlite3.Error:  # no audit table yet (a new file before migration 1)
        return None
    if row is None:
        return None
    info = _details(row[1])
    seal = _Seal(int(row[0]), str(info.get("log_id") or ""), str(info.get("key_id") or ""))
    setattr(db, _SEAL_ATTR, seal)
    return seal


def _details(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def log_id(db: Database) -> str | None:
    """The random id the log got when its chain was sealed (None before that)."""
    seal = _find_seal(db)
    return seal.log_id if seal is not None else None


def audit_key_of(db: Database, *, create: bool = False) -> AuditKey:
    """The audit key this log is (or will be) sealed with, checked against the log.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    create : bool
        Create the key file when it is missing and the log is not sealed yet (a new log, or
        the first write to a log of cellqc ≤ schema 4).

    Returns
    -------
    AuditKey

    Raises
    ------
    core.store.keys.AuditKeyError
        The key is missing although the log is sealed (restore it from the backup), it is
        another key than the log's (a log from another station), or it cannot be read.
    """
    key = getattr(db, _KEY_ATTR, None)
    if key is not None:
        return key
    seal = _find_seal(db)
    try:
        key = load_audit_key()
    except AuditKeyError as exc:
        missing = isinstance(exc.__cause__, FileNotFoundError)
        if missing and seal is not None:
            raise AuditKeyError(
                exc.source,
                f"the audit key of this log (key id {seal.key_id[:12]}…) is missing; restore it "
                f"from the backup, or set ${AUDIT_KEY_ENV} to its file (see docs/reliability.md)",
            ) from None
        if not (missing and create):
            raise
        key = create_audit_key()
    if seal is not None and seal.key_id != key.key_id:
        raise AuditKeyError(
            key.path,
            f"this log was sealed with audit key {seal.key_id[:12]}…, not with this one "
            f"({key.key_id[:12]}…): a log from another station? set ${AUDIT_KEY_ENV} to that "
            "log's key file",
        )
    setattr(db, _KEY_ATTR, key)
    return key


def _log_path(db: Database) -> str | None:
    file = log_file(db)
    return None if file is None else str(file.resolve())


def _last_row(db: Database) -> tuple[int, str]:
    last = db.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS_HASH)


def _insert_row(
    db: Database,
    key: AuditKey,
    action: str,
    *,
    entity: str | None,
    entity_id: object,
    details: dict[str, Any] | None,
    actor: str | None,
) -> AuditHead:
    prev_id, prev_hash = _last_row(db)
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
    row["hash"] = row_mac(key, prev_hash, _content(row))
    db.conn.execute(
        "INSERT INTO audit (id, at, actor, action, entity, entity_id, details, prev_hash, hash)"
        " VALUES (:id, :at, :actor, :action, :entity, :entity_id, :details, :prev_hash, :hash)",
        row,
    )
    return AuditHead(log_id="", row=int(row["id"]), hash=str(row["hash"]), at=str(row["at"]))


def _seal_chain(db: Database, key: AuditKey) -> _Seal:
    """Append the ``audit.key`` row: from here on every row is keyed (see the module doc)."""
    prev_id, prev_hash = _last_row(db)
    if prev_id:
        _refuse_rewritten_log(db, key)
    new_log_id = uuid.uuid4().hex
    note = (
        "new log: every row is keyed"
        if not prev_id
        else f"upgrade: the plain SHA-256 chain of rows 1-{prev_id} is sealed under the audit key"
    )
    head = _insert_row(
        db, key, SEAL_ACTION, entity="audit", entity_id=None, actor=None,
        details={"key_id": key.key_id, "log_id": new_log_id, "scheme": "hmac-sha256",
                 "sealed_rows": prev_id, "sealed_head": prev_hash, "note": note},
    )
    seal = _Seal(head.row, new_log_id, key.key_id)
    setattr(db, _SEAL_ATTR, seal)
    return seal


def _refuse_rewritten_log(db: Database, key: AuditKey) -> None:
    """Refuse to seal a plain chain at a path where a keyed log was kept before.

    Otherwise someone without the key could rewrite a keyed log as a plain (schema 4) one
    and have the next cellqc seal the forgery.
    """
    path = _log_path(db)
    folder = heads_folder(key)
    if path is None or not folder.is_dir():
        return
    for head_file in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, RecursionError):
            recorded = json.loads(head_file.read_text(encoding="utf-8"))
            if isinstance(recorded, dict) and recorded.get("log_path") == path:
                raise InputError(
                    path,
                    f"a keyed log (log id {str(recorded.get('log_id'))[:8]}…) was kept here "
                    f"({head_file}), but this file holds an unkeyed audit chain: it was "
                    "replaced or rewritten without the audit key; keep it as evidence (if you "
                    "put an old log here on purpose, move that head file aside first)",
                )


def append_audit(
    db: Database,
    action: str,
    *,
    entity: str | None = None,
    entity_id: object = None,
    details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> int:
    """Append one keyed row to the audit chain.

    Call it inside :func:`core.store.base.write_transaction` together with the change it
    records, so that both are committed or neither is; called outside one it takes its own.
    The first row written to a log that is not sealed yet is preceded by the ``audit.key``
    row (see the module doc). After the commit the new head is recorded outside the log.

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

    Raises
    ------
    core.store.keys.AuditKeyError
        The audit key is missing or is not this log's (nothing is written).
    """
    _watch_transactions(db)
    key = audit_key_of(db, create=True)
    with write_transaction(db):
        seal = _find_seal(db)
        if seal is None:
            seal = _seal_chain(db, key)
        head = _insert_row(db, key, action, entity=entity, entity_id=entity_id,
                           details=details, actor=actor)
        setattr(db, _PENDING_ATTR, (key, AuditHead(seal.log_id, head.row, head.hash, head.at)))
    return head.row


# ---------------------------------------------------------------------- chain heads


@dataclass(frozen=True)
class AuditHead:
    """The newest audit row of a log at some moment: what a report or export is anchored to.

    Attributes
    ----------
    log_id : str
        The log's random id (32 hex digits), from its ``audit.key`` row.
    row : int
        The newest row's id.
    hash : str
        Its keyed hash (64 hex digits).
    at : str
        Its time (ISO 8601 UTC); informative, not part of the anchor check.
    """

    log_id: str
    row: int
    hash: str
    at: str = ""

    #: How a head is written into a PDF's metadata or any text.
    TEXT_PREFIX = "cellqc-audit-head/1"

    def anchor_text(self) -> str:
        """``cellqc-audit-head/1 log=<id> row=<n> hash=<hex>``: one line, ASCII."""
        return f"{self.TEXT_PREFIX} log={self.log_id} row={self.row} hash={self.hash}"

    def as_dict(self) -> dict[str, Any]:
        """For a result JSON: ``{"log_id", "row", "hash", "at"}``."""
        return {"log_id": self.log_id, "row": self.row, "hash": self.hash, "at": self.at}


_ANCHOR_RE = re.compile(
    r"cellqc-audit-head/1 log=([0-9a-f]{32}) row=([0-9]{1,18}) hash=([0-9a-f]{64})"
)


def parse_anchor(text: str | bytes) -> AuditHead | None:
    """The first audit head written by :meth:`AuditHead.anchor_text` in ``text``, or None."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    match = _ANCHOR_RE.search(text)
    if match is None:
        return None
    return AuditHead(log_id=match.group(1), row=int(match.group(2)), hash=match.group(3))


def head_from_dict(value: Any) -> AuditHead | None:
    """An :class:`AuditHead` from a result JSON's ``audit_head`` entry (None when malformed)."""
    if not isinstance(value, dict):
        return None
    text = f"{AuditHead.TEXT_PREFIX} log={value.get('log_id')} row={value.get('row')} hash={value.get('hash')}"
    head = parse_anchor(text)
    return None if head is None else AuditHead(head.log_id, head.row, head.hash, str(value.get("at") or ""))


def audit_head(db: Database) -> AuditHead | None:
    """The log's chain head now (None for a log not sealed yet)."""
    seal = _find_seal(db)
    if seal is None:
        return None
    row = db.conn.execute("SELECT id, hash, at FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return AuditHead(seal.log_id, int(row[0]), str(row[1]), str(row[2]))


def check_anchor(db: Database, head: AuditHead) -> str | None:
    """Whether the head a report or export carries is part of this log's chain.

    Returns
    -------
    str or None
        None when the log holds that row with that hash; otherwise why not, in one sentence.
        (Run :func:`find_audit_break` too: the row being there proves nothing about a chain
        that is broken elsewhere.)
    """
    seal = _find_seal(db)
    if seal is None:
        return "this log is not sealed with an audit key, so it cannot hold the report's head"
    if head.log_id != seal.log_id:
        return (f"the head belongs to another log (log id {head.log_id[:8]}…; this log is "
                f"{seal.log_id[:8]}…)")
    row = db.conn.execute("SELECT hash FROM audit WHERE id = ?", (int(head.row),)).fetchone()
    if row is None:
        last = _last_row(db)[0]
        return (f"the log has no row {head.row} (it ends at row {last}): rows were deleted after "
                "the report was made, or the log was replaced by an older copy")
    if str(row[0]) != head.hash:
        return (f"row {head.row} differs from the one the report recorded: the log was rewritten "
                "after the report was made")
    return None


def _head_mac(key: AuditKey, data: dict[str, Any]) -> str:
    return key.mac(
        "cellqc-audit-head-file|{log_id}|{row}|{hash}|{at}|{log_path}".format(
            **{k: data.get(k) for k in ("log_id", "row", "hash", "at", "log_path")}
        )
    )


def head_file_path(key: AuditKey, log_id_value: str) -> Path:
    """``audit-heads/<log_id>.json`` beside the key: the newest head recorded outside the log."""
    return heads_folder(key) / f"{log_id_value}.json"


def recorded_head(key: AuditKey, log_id_value: str) -> tuple[AuditHead | None, str | None]:
    """The head recorded outside the log for ``log_id``.

    Returns
    -------
    (AuditHead or None, str or None)
        The head (None when no file exists) and a problem (the file was altered: its HMAC
        does not match, or it is unreadable).
    """
    path = head_file_path(key, log_id_value)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"{path}: the head recorded outside the log cannot be read ({exc})"
    if not isinstance(data, dict) or data.get("mac") != _head_mac(key, data):
        return None, f"{path}: the head recorded outside the log was altered (its HMAC does not match)"
    head = head_from_dict(data)
    if head is None or head.log_id != log_id_value:
        return None, f"{path}: the head recorded outside the log is malformed"
    return head, None


@contextlib.contextmanager
def _folder_lock(folder: Path):
    try:
        import fcntl
    except ImportError:  # Windows: best effort (a racing writer may record an older head)
        yield
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_head(key: AuditKey, head: AuditHead, log_path: str | None) -> None:
    """Write ``head`` to its head file unless the file already holds a newer one.

    Errors are ignored: the commit already happened, and a head file that lags only
    weakens the tail check (it never makes a valid log look broken).
    """
    folder = heads_folder(key)
    with contextlib.suppress(OSError, ValueError):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _folder_lock(folder):
            current, _problem = recorded_head(key, head.log_id)
            if current is not None and current.row >= head.row:
                return
            data = {**head.as_dict(), "log_path": log_path}
            data["mac"] = _head_mac(key, data)
            atomic_write(head_file_path(key, head.log_id), json.dumps(data, indent=1) + "\n",
                         mode=0o600, durable=False)


def after_commit(db: Database) -> None:
    """Called by :func:`core.store.base.write_transaction` after COMMIT: record the head."""
    pending = getattr(db, _PENDING_ATTR, None)
    if pending is None:
        return
    setattr(db, _PENDING_ATTR, None)
    key, head = pending
    record_head(key, head, _log_path(db))


def after_rollback(db: Database) -> None:
    """Called after ROLLBACK: the rows the pending head named were not written."""
    setattr(db, _PENDING_ATTR, None)
    with contextlib.suppress(AttributeError):
        delattr(db, _SEAL_ATTR)  # a seal row rolled back with them


# ------------------------------------------------------------------------ verification


@dataclass(frozen=True)
class AuditBreak:
    """The first place where the audit chain does not hold.

    Attributes
    ----------
    row_id : int
        The first audit row that fails verification (for a lost tail: the newest row
        recorded outside the log, which the log no longer holds).
    problem : str
        What is wrong with it, in one sentence.
    """

    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit row {self.row_id}: {self.problem}"


def row_is_authentic(db: Database, row: dict[str, Any], key: AuditKey | None = None) -> bool:
    """Whether one audit row is a keyed row whose hash matches its content and link.

    Checks the row alone (fast): used before trusting a single row, e.g. a user's audited
    role. Rows of the plain chain before the seal are not keyed and return False.
    """
    seal = _find_seal(db)
    if seal is None or int(row["id"]) < seal.row_id:
        return False
    key = key or audit_key_of(db)
    return str(row["hash"]) == row_mac(key, str(row["prev_hash"]), _content(row))


def row_verifies(db: Database, row: dict[str, Any], key: AuditKey | None = None) -> bool:
    """Like :func:`row_is_authentic`, but a row of the plain chain before the seal passes when
    its plain hash matches (weaker: only the whole-chain walk protects those rows)."""
    seal = _find_seal(db)
    if seal is not None and int(row["id"]) < seal.row_id:
        return str(row["hash"]) == legacy_row_hash(str(row["prev_hash"]), _content(row))
    return row_is_authentic(db, row, key)


def find_audit_break(db: Database, key: AuditKey | None = None, *, check_tail: bool = True
                     ) -> AuditBreak | None:
    """Walk the audit chain from the first row and report the first broken link.

    Rows before the ``audit.key`` row (a log upgraded from schema 4) are checked as a plain
    SHA-256 chain, the seal row and every later row with the key. With ``check_tail`` the
    newest head recorded outside the log (``audit-heads/<log_id>.json``) must still be in the
    log: a log whose newest rows were deleted, or that was replaced by an older copy, is
    broken at that head's row. No head file (a log copied from another machine) is not a
    break.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    key : AuditKey, optional
        Default: the log's key (:func:`audit_key_of`).
    check_tail : bool
        Also compare with the head recorded outside the log.

    Returns
    -------
    AuditBreak or None
        None when every row's hash and link hold.

    Raises
    ------
    core.store.keys.AuditKeyError
        The chain cannot be checked: the key is missing, or the log was sealed with
        another key.
    """
    sealed_schema = schema_version(db) >= KEYED_SCHEMA
    if key is None:
        if _find_seal(db) is not None:
            key = audit_key_of(db)
        else:  # a plain chain (schema ≤ 4, opened read-only) needs no key to be checked
            try:
                key = audit_key_of(db)
            except AuditKeyError:
                key = None
    expected_prev = GENESIS_HASH
    expected_id = 1
    seal_id: int | None = None
    seal_log_id = ""
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
        if seal_id is None and row["action"] == SEAL_ACTION:
            info = _details(row["details"])
            if key is None:
                key = audit_key_of(db)
            if info.get("key_id") != key.key_id:
                raise AuditKeyError(
                    key.path,
                    f"the log's chain is sealed with audit key {str(info.get('key_id'))[:12]}…, "
                    f"not with this one ({key.key_id[:12]}…); it cannot be verified with it",
                )
            if info.get("sealed_rows") != rid - 1 or info.get("sealed_head") != row["prev_hash"]:
                return AuditBreak(rid, "the sealing row does not match the rows before it")
            seal_id, seal_log_id = rid, str(info.get("log_id") or "")
        if seal_id is not None and key is not None:
            if row["hash"] != row_mac(key, row["prev_hash"], _content(row)):
                return AuditBreak(rid, "its content does not match its keyed hash (the row was "
                                       "altered, or written without the audit key)")
        elif row["hash"] != legacy_row_hash(row["prev_hash"], _content(row)):
            return AuditBreak(rid, "its content does not match its hash (the row was altered)")
        expected_prev = row["hash"]
        expected_id = rid + 1
    if seal_id is None and expected_id > 1 and sealed_schema:
        return AuditBreak(expected_id - 1, "the chain is not sealed with the audit key although "
                                           "the log's schema is: it was rewritten without the key")
    if check_tail and seal_id is not None and key is not None:
        recorded, problem = recorded_head(key, seal_log_id)
        if problem is not None:
            return AuditBreak(expected_id - 1, problem)
        if recorded is not None:
            row = db.conn.execute("SELECT hash FROM audit WHERE id = ?", (recorded.row,)).fetchone()
            if row is None:
                return AuditBreak(
                    recorded.row,
                    f"the log ends at row {expected_id - 1}, but row {recorded.row} was recorded "
                    f"outside it ({head_file_path(key, seal_log_id)}): its newest rows were "
                    "deleted, or it was replaced by an older copy",
                )
            if str(row[0]) != recorded.hash:
                return AuditBreak(recorded.row, "differs from the head recorded outside the log")
    return None


def verify_audit(db: Database) -> int | None:
    """Check the audit chain (see :func:`find_audit_break`).

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


def audit_row_count(db: Database) -> int:
    """How many rows the audit chain holds."""
    return int(db.conn.execute("SELECT count(*) FROM audit").fetchone()[0])


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
