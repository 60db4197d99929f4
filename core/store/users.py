"""Users, roles and their secrets: scrypt-hashed passwords/PINs, logins, role checks, recipe audit.

Roles (see :data:`core.store.base.ROLES`): ``operator`` runs inspections; ``engineer`` may
also override verdicts and edit recipes; ``admin`` may also manage users. Secrets are never
stored, only their scrypt hash (``hashlib.scrypt``, stdlib)::

    scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>

The one login check for every caller — the CLI, the GUI, a network service — is
:func:`authorize` (name + secret + action + a ``source`` naming the caller for the audit); it
raises :class:`PermissionDenied` on every refusal. Inside it:

- **Equal cost.** An unknown, disabled or locked user costs one scrypt run like a real one
  (against :data:`DUMMY_SECRET_HASH`), so timing does not tell whether a name exists.
- **Failed logins are audited** (``user.login_failed``: name, time, source, reason) and
  counted; after :attr:`LockoutPolicy.max_failures` consecutive failures the account is
  locked for :attr:`LockoutPolicy.lock_minutes` (``user.locked``) or until an admin unlocks it
  (:func:`unlock_user`). The numbers are set in one place: :func:`lockout_policy`.
- **The users table is checked against the audit chain.** Every change of a user (role,
  secret, disabled) is an audit row carrying the user's whole state (the secret as the SHA-256
  of its scrypt hash); a ``users`` row that disagrees with its newest keyed audit row — someone
  ran ``UPDATE users SET role = 'admin'`` or copied a password hash — is refused at login and
  reported by :func:`check_users` (``cellqc audit verify``).

Roles cannot be climbed: the first admin of a log is created without credentials only while
the log has never had a user with a password (:func:`has_passwords`, which also reads the
audit chain); after that every user change needs an admin's name *and* password, and
demoting or disabling the last active admin is refused.

Users are never deleted (their names sit in inspections, overrides and the audit chain):
:func:`disable_user` sets ``disabled_at``; a disabled user cannot log in, and a trigger in the
log refuses an override by a disabled user whatever the calling code does.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.errors import CellQCError, InputError
from core.fileio import atomic_writer
from core.store.audit import append_audit, row_is_authentic, utc_now
from core.store.base import ROLES, write_transaction
from core.store.log import override_verdict
from core.text import printable

#: scrypt cost parameters (n=2**14, r=8 → 16 MiB, ~50 ms per check): slow for a guesser.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32
#: Shortest secret accepted: a 4-digit PIN on the line, a password elsewhere.
MIN_SECRET_LEN = 4
MAX_SECRET_LEN = 1024

#: A scrypt hash (default cost) of a random secret nobody knows: checked instead of a real
#: hash when the user is unknown, disabled, locked or has none, so every login costs the same.
DUMMY_SECRET_HASH = (
    "scrypt$16384$8$1$01+0rb1M2O9Q+/wLNxZb1Q==$tanlWqQSC6LMbGJHN6aI27y6hLCJxePFa1ougM6ChaA="
)

#: Audit actions that carry a user's whole state (``details["state"]``).
USER_STATE_ACTIONS = ("user.add", "user.change", "user.disable", "user.unlock", "user.snapshot")

#: What each role may do; a role may do everything a lower one may.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "inspect": ("operator", "engineer", "admin"),
    "report": ("operator", "engineer", "admin"),
    "override": ("engineer", "admin"),
    "edit_recipe": ("engineer", "admin"),
    "plan_roi": ("engineer", "admin"),
    "followup": ("engineer", "admin"),
    "manage_users": ("admin",),
}

#: How an action is named in a one-line refusal.
ACTION_NAMES = {
    "inspect": "inspecting",
    "report": "filing a report",
    "override": "overriding a verdict",
    "edit_recipe": "changing a recipe",
    "plan_roi": "changing ROI requests",
    "followup": "filing follow-up results",
    "manage_users": "managing users",
}


class PermissionDenied(InputError):
    """A refused login or action: unknown, disabled or locked user, wrong secret, or a role
    that may not do it. The one exception type :func:`authorize` raises."""


@dataclass(frozen=True)
class LockoutPolicy:
    """How many consecutive failed logins lock an account, and for how long.

    Attributes
    ----------
    max_failures : int
        Consecutive failures that lock the account (default 5).
    lock_minutes : float
        How long it stays locked (default 15); an admin may unlock it earlier.
    """

    max_failures: int = 5
    lock_minutes: float = 15.0


def lockout_policy() -> LockoutPolicy:
    """The lockout policy: the defaults, or ``$CELLQC_MAX_FAILED_LOGINS`` and
    ``$CELLQC_LOCKOUT_MINUTES`` (the one place to configure it).

    Raises
    ------
    core.errors.InputError
        An environment value that is not a positive number.
    """
    policy = LockoutPolicy()
    values: dict[str, Any] = {}
    for env, field_name, kind in (("CELLQC_MAX_FAILED_LOGINS", "max_failures", int),
                                  ("CELLQC_LOCKOUT_MINUTES", "lock_minutes", float)):
        text = os.environ.get(env)
        if text is None or not text.strip():
            continue
        try:
            value = kind(text)
        except ValueError:
            raise InputError(f"${env}", f"{printable(text, 40)!r} is not a number") from None
        if not value > 0 or value > 10**6:
            raise InputError(f"${env}", "must be a positive number")
        values[field_name] = value
    return LockoutPolicy(**{**policy.__dict__, **values})


# ------------------------------------------------------------------------------ secrets


def hash_secret(secret: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The scrypt hash string of a password or PIN (random 16-byte salt).

    Parameters
    ----------
    secret : str
        The password or PIN, at least :data:`MIN_SECRET_LEN` characters.
    n, r, p : int
        scrypt cost parameters (stored in the string, so they may be raised later).

    Returns
    -------
    str
        ``scrypt$n$r$p$salt$hash`` (base64 parts).
    """
    _check_secret(secret)
    salt = os.urandom(16)
    digest = hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_DKLEN, maxmem=64 * 2**20
    )
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str | None) -> bool:
    """Whether ``secret`` matches a :func:`hash_secret` string (constant-time compare).

    Returns False (never raises) for a missing or malformed stored hash.
    """
    if not stored or not isinstance(secret, str) or len(secret) > MAX_SECRET_LEN:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        if len(expected) != SCRYPT_DKLEN or not 2 <= int(n) <= 2**20:
            return False  # a truncated hash would match a prefix; a huge n would hang
        got = hashlib.scrypt(
            secret.encode("utf-8"),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 2**20,
        )
    except (ValueError, TypeError, MemoryError):
        return False
    return hmac.compare_digest(got, expected)


def _check_secret(secret: str) -> None:
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LEN:
        raise InputError("password", f"must have at least {MIN_SECRET_LEN} characters")
    if len(secret) > MAX_SECRET_LEN:
        raise InputError("password", f"must have at most {MAX_SECRET_LEN} characters")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InputError("user name", "must not be empty")
    name = name.strip()
    if len(name) > 64 or any(ord(c) < 32 or c in "\x7f" for c in name):
        raise InputError(f"user name {name[:64]!r}", "at most 64 printable characters")
    return name


# -------------------------------------------------------------------------------- users


def get_user(db: Database, name: str) -> dict[str, Any] | None:
    """The ``users`` row of ``name`` (with ``secret_hash``), or None."""
    rows = list(db.query("SELECT * FROM users WHERE name = ?", [name]))
    return rows[0] if rows else None


def list_users(db: Database, *, include_disabled: bool = True) -> list[dict[str, Any]]:
    """Users by name: name, full_name, role, created_at, disabled_at, locked_until,
    failed_logins, has_secret (no hashes)."""
    sql = (
        "SELECT name, full_name, role, created_at, disabled_at, locked_until, failed_logins,"
        " secret_hash IS NOT NULL AS has_secret FROM users"
    )
    if not include_disabled:
        sql += " WHERE disabled_at IS NULL"
    return [
        {**row, "has_secret": bool(row["has_secret"])} for row in db.query(sql + " ORDER BY name")
    ]


def _active_admins(db: Database) -> list[str]:
    return [
        str(r[0])
        for r in db.conn.execute(
            "SELECT name FROM users WHERE role = 'admin' AND disabled_at IS NULL"
            " AND secret_hash IS NOT NULL ORDER BY name"
        )
    ]


def has_passwords(db: Database) -> bool:
    """Whether the log has (ever had) a user with a password: then every change needs a login.

    A fresh log has none (the README quick start runs without users); the first
    ``cellqc users add NAME --role admin`` gives it one. Names recorded from ``--user`` on a
    log without passwords (``users`` rows without ``secret_hash``) do not count. The audit
    chain is read too, so removing every hash from the ``users`` table does not turn the log
    back into a fresh one (nor reopen the first-admin bootstrap).
    """
    if db.conn.execute("SELECT 1 FROM users WHERE secret_hash IS NOT NULL LIMIT 1").fetchone():
        return True
    marks = ", ".join("?" * len(USER_STATE_ACTIONS))
    row = db.conn.execute(
        f"SELECT 1 FROM audit WHERE action IN ({marks})"
        " AND json_extract(details, '$.state.secret_sha256') IS NOT NULL LIMIT 1",
        USER_STATE_ACTIONS,
    ).fetchone()
    return row is not None


# ------------------------------------------------------------- users in the audit chain


def secret_digest(secret_hash: str | None) -> str | None:
    """What the audit chain keeps of a user's secret: the SHA-256 of its scrypt hash."""
    return None if not secret_hash else hashlib.sha256(secret_hash.encode("utf-8")).hexdigest()


def user_state(row: dict[str, Any]) -> dict[str, Any]:
    """A ``users`` row's security-relevant state: role, secret digest, disabled."""
    return {
        "role": row["role"],
        "secret_sha256": secret_digest(row.get("secret_hash")),
        "disabled": bool(row.get("disabled_at")),
    }


#: The state of a name recorded from ``--user`` on a log without users (never audited).
_UNAUDITED_STATE = {"role": "operator", "secret_sha256": None, "disabled": False}


def audited_user_state(db: Database, name: str) -> tuple[dict[str, Any] | None, bool]:
    """A user's state as the newest audit row about them records it.

    Returns
    -------
    (dict or None, bool)
        The state (None when no audit row records one) and whether that row is a keyed row
        whose hash verifies.
    """
    marks = ", ".join("?" * len(USER_STATE_ACTIONS))
    rows = list(db.query(  # rows of cellqc ≤ schema 4 carry no state: they are skipped
        f"SELECT * FROM audit WHERE entity = 'users' AND entity_id = ? AND action IN ({marks})"
        " AND json_extract(details, '$.state') IS NOT NULL ORDER BY id DESC LIMIT 1",
        [name, *USER_STATE_ACTIONS],
    ))
    if not rows:
        return None, True
    try:
        state = json.loads(rows[0]["details"]).get("state")
    except (ValueError, AttributeError):
        state = None
    if not isinstance(state, dict):
        return None, False
    return state, row_is_authentic(db, rows[0])


def user_record_problem(db: Database, row: dict[str, Any]) -> str | None:
    """Why a ``users`` row cannot be trusted, or None when it matches the audit chain."""
    audited, authentic = audited_user_state(db, row["name"])
    actual = user_state(row)
    if audited is None:
        if not authentic:
            return "its newest audit entry carries no state"
        if actual != _UNAUDITED_STATE:  # the state of a name recorded from --user only
            return (f"role {actual['role']}, password or disabled state set without any audit "
                    "entry")
        return None
    if not authentic:
        return "its newest audit entry does not verify with the audit key"
    for field_name, label in (("role", "role"), ("secret_sha256", "password"),
                              ("disabled", "disabled state")):
        if audited.get(field_name) != actual[field_name]:
            return f"its {label} differs from the audit chain"
    return None


def check_users(db: Database) -> list[str]:
    """Cross-check every ``users`` row against the audit chain (one sentence per mismatch)."""
    problems = []
    names = set()
    for row in db.query("SELECT * FROM users ORDER BY name"):
        names.add(row["name"])
        problem = user_record_problem(db, row)
        if problem is not None:
            problems.append(f"user {printable(row['name'], 64)!r}: {problem}")
    marks = ", ".join("?" * len(USER_STATE_ACTIONS))
    for (name,) in db.conn.execute(
        f"SELECT DISTINCT entity_id FROM audit WHERE entity = 'users' AND action IN ({marks})"
        " AND json_extract(details, '$.state') IS NOT NULL",
        USER_STATE_ACTIONS,
    ):
        if name not in names:
            problems.append(f"user {printable(name, 64)!r}: in the audit chain, missing from the "
                            "users table")
    return problems


def record_user_snapshots(db: Database) -> int:
    """Put every user's current state into the audit chain (``user.snapshot``; migration 5).

    Names only ever recorded from ``--user`` on a log without users (operator, no password,
    active, never in the chain) need no entry. Returns the number of rows written.
    """
    marks = ", ".join("?" * len(USER_STATE_ACTIONS))
    audited = {str(r[0]) for r in db.conn.execute(
        f"SELECT DISTINCT entity_id FROM audit WHERE entity = 'users' AND action IN ({marks})",
        USER_STATE_ACTIONS)}
    written = 0
    for row in list(db.query("SELECT * FROM users ORDER BY name")):
        state = user_state(row)
        if state == _UNAUDITED_STATE and row["name"] not in audited:
            continue
        append_audit(
            db, "user.snapshot", entity="users", entity_id=row["name"],
            details={"state": state, "note": "the user as found when the audit chain was keyed"},
        )
        written += 1
    return written


def _record_user(db: Database, action: str, name: str, actor: str | None,
                 **details: Any) -> None:
    row = get_user(db, name)
    assert row is not None
    append_audit(db, action, entity="users", entity_id=name, actor=actor,
                 details={**details, "state": user_state(row)})


# ------------------------------------------------------------------------------- logins


def _parse_time(text: Any) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def _locked_until(row: dict[str, Any] | None) -> datetime | None:
    if row is None or not row.get("locked_until"):
        return None
    until = _parse_time(row["locked_until"])
    if until is None or until <= datetime.now(UTC):
        return None
    return until


def _refuse(db: Database, name: str, known: bool, reason: str, message: str, source: str,
            *, count: bool) -> PermissionDenied:
    """Record a failed login (audit, failure count, lockout) and return the exception to raise."""
    shown = printable(name, 64)
    policy = lockout_policy()
    try:
        with write_transaction(db):
            details: dict[str, Any] = {"source": source, "reason": reason}
            row = get_user(db, name) if known else None
            locked_now = None
            if row is not None and count:
                failures = int(row.get("failed_logins") or 0) + 1
                details["consecutive_failures"] = failures
                if failures >= policy.max_failures and _locked_until(row) is None:
                    locked_now = (datetime.now(UTC) + timedelta(minutes=policy.lock_minutes)
                                  ).isoformat(timespec="seconds")
                db.conn.execute(
                    "UPDATE users SET failed_logins = ?, locked_until = COALESCE(?, locked_until)"
                    " WHERE name = ?", (failures, locked_now, name))
            append_audit(db, "user.login_failed", entity="users", entity_id=shown,
                         details=details)
            if locked_now is not None:
                append_audit(db, "user.locked", entity="users", entity_id=name,
                             details={"until": locked_now, "failures": details["consecutive_failures"],
                                      "source": source})
                message += (f"; {details['consecutive_failures']} failed logins in a row: locked "
                            f"until {locked_now[11:16]} UTC (an admin can unlock it)")
    except (CellQCError, OSError) as exc:  # e.g. the audit key is missing: still refused
        message += f" (and the failed login could not be recorded: {exc})"
    return PermissionDenied(f"user {shown!r}", message)


def authenticate(db: Database, name: str, secret: str, *, source: str = "api") -> dict[str, Any]:
    """Check a user's secret; return their row (without the hash).

    Every call costs one scrypt run, whoever ``name`` is. A refusal is recorded in the audit
    chain (``user.login_failed``) and, for a wrong secret, counted towards the lockout. Call
    it outside a write transaction (the record of a refusal must be committed although the
    refusal raises).

    Parameters
    ----------
    db : sqlite_utils.Database
    name : str
        The user.
    secret : str
        Their password or PIN.
    source : str
        Who asks, for the audit: ``"cellqc inspect"``, ``"gui"``, ``"opcua"``, …

    Raises
    ------
    PermissionDenied
        Unknown user or wrong secret (one message for both, so names cannot be probed by
        it), disabled user, no secret set, account locked, or a users row that disagrees
        with the audit chain.
    """
    name = str(name or "")
    row = get_user(db, name)
    stored = row.get("secret_hash") if row is not None else None
    matches = verify_secret(secret, stored or DUMMY_SECRET_HASH)  # the same cost for everyone
    ok = matches and stored is not None
    if row is None:
        raise _refuse(db, name, False, "unknown user", "unknown user or wrong password", source,
                      count=False)
    if row.get("disabled_at"):
        raise _refuse(db, name, True, "disabled", "is disabled; ask an admin", source, count=False)
    if not stored:
        raise _refuse(db, name, True, "no password", "has no password yet; ask an admin to set "
                      "one (cellqc users add)", source, count=False)
    until = _locked_until(row)
    if until is not None:
        raise _refuse(db, name, True, "locked", f"is locked until {until.strftime('%H:%M')} UTC "
                      "after repeated failed logins; wait, or ask an admin to unlock it "
                      "(cellqc users unlock)", source, count=False)
    if not ok:
        raise _refuse(db, name, True, "wrong password", "unknown user or wrong password", source,
                      count=True)
    try:
        problem = user_record_problem(db, row)
    except CellQCError as exc:  # the audit key is missing or another log's
        problem = f"it cannot be checked against the audit chain ({exc})"
    if problem is not None:
        raise _refuse(db, name, True, "record differs from the audit chain",
                      f"refused: {problem} (the log was edited outside cellqc; tell QA)", source,
                      count=False)
    if row.get("failed_logins") or row.get("locked_until"):
        with write_transaction(db):
            db.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?",
                            (name,))
    row = dict(row)
    row.pop("secret_hash", None)
    return row


def require_role(db: Database, name: str | None, action: str) -> str:
    """Check that an active user may do ``action`` (a key of :data:`PERMISSIONS`).

    Returns
    -------
    str
        The user's role.

    Raises
    ------
    PermissionDenied
        No user given, unknown or disabled user, a users row that disagrees with the audit
        chain, or a role not allowed to do it.
    """
    allowed = PERMISSIONS[action]
    if not name:
        raise PermissionDenied(action.replace("_", " "), "needs --user")
    row = get_user(db, name)
    shown = printable(name, 64)
    if row is None:
        raise PermissionDenied(f"user {shown!r}", "unknown user")
    if row.get("disabled_at"):
        raise PermissionDenied(f"user {shown!r}", "is disabled")
    if row["role"] not in allowed:
        raise PermissionDenied(
            f"user {shown!r}",
            f"role {row['role']} may not {action.replace('_', ' ')}; needs {' or '.join(allowed)}",
        )
    if has_passwords(db):
        try:
            problem = user_record_problem(db, row)
        except CellQCError as exc:
            problem = f"it cannot be checked against the audit chain ({exc})"
        if problem is not None:
            raise PermissionDenied(f"user {shown!r}", f"refused: {problem} (the log was edited "
                                   "outside cellqc; tell QA)")
    return str(row["role"])


def authorize(db: Database, name: str, secret: str | None, action: str, *, source: str
              ) -> dict[str, Any]:
    """The login of every caller: check ``name``'s secret, then that they may do ``action``.

    This is what a command, the GUI or a network service calls before acting for a user of
    the log. Lockout, the audit of failures and equal timing are inside.

    Parameters
    ----------
    db : sqlite_utils.Database
    name : str
        The user.
    secret : str or None
        Their password or PIN.
    action : str
        A key of :data:`PERMISSIONS` (``"inspect"``, ``"override"``, ``"manage_users"``, …).
    source : str
        Who asks, recorded with a failure: ``"cellqc override"``, ``"gui"``, ``"opcua"``.

    Returns
    -------
    dict
        The user's row (without the secret hash).

    Raises
    ------
    PermissionDenied
        Every refusal, as one line.
    """
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}")
    row = authenticate(db, name, secret or "", source=source)
    require_role(db, name, action)
    return row


def acting_user(
    db: Database, name: str | None, action: str, secret: str | Callable[[], str] | None,
    *, source: str = "api",
) -> str | None:
    """Who does ``action``: the one rule for every command that changes the log.

    - The log has users with passwords (:func:`has_passwords`): ``name`` is required and is
      checked by :func:`authorize` (password, active, not locked, role).
    - It has none (a fresh install): nobody can be checked; ``name`` (or None) is recorded
      as given, and no password is asked.

    Parameters
    ----------
    db : sqlite_utils.Database
    name : str or None
        The ``--user`` given.
    action : str
        A key of :data:`PERMISSIONS`.
    secret : str, callable() -> str, or None
        The password/PIN, or how to ask for it.
    source : str
        Who asks (for the audit of a failure).

    Returns
    -------
    str or None
        The name to record.

    Raises
    ------
    PermissionDenied
    """
    allowed = PERMISSIONS[action]
    if not has_passwords(db):
        return name or None
    if not name:
        raise PermissionDenied(
            ACTION_NAMES.get(action, action),
            f"needs --user NAME ({' or '.join(allowed)}) and the password: this log has users",
        )
    authorize(db, name, (secret() if callable(secret) else secret) or "", action, source=source)
    return name


def _admin_check(db: Database, actor: str | None, actor_secret: str | None, source: str) -> str:
    """The acting admin of a user change, authenticated (outside any transaction)."""
    if not actor:
        raise PermissionDenied("users", "this log has users: a change needs --user ADMIN and "
                               "that admin's password")
    if actor_secret is None:
        raise PermissionDenied(f"user {printable(actor, 64)!r}", "a user change needs the acting "
                               "admin's password")
    authorize(db, actor, actor_secret, "manage_users", source=source)
    return actor


def add_user(
    db: Database,
    name: str,
    role: str = "operator",
    *,
    secret: str | None = None,
    full_name: str | None = None,
    actor: str | None = None,
    actor_secret: str | None = None,
    source: str = "api",
) -> None:
    """Create a user, or change their role/secret/full name (audited with their whole state).

    Parameters
    ----------
    db : sqlite_utils.Database
    name : str
        Short login name.
    role : str
        One of :data:`core.store.base.ROLES`.
    secret : str, optional
        Password or PIN; stored as its scrypt hash. Required for the first admin.
    full_name : str, optional
    actor, actor_secret : str, optional
        The admin doing it and their password (checked with :func:`authorize`). Both may be
        omitted only while the log has never had a user with a password: then the only thing
        allowed is the first admin, with a password (bootstrap).
    source : str
        Who asks (for the audit of a failed login).

    Raises
    ------
    core.errors.InputError, PermissionDenied
        Bad name or role; no or wrong admin credentials; the bootstrap asked for anything
        but an admin with a password; demoting the last active admin.
    """
    name = _check_name(name)
    if role not in ROLES:
        raise InputError(f"role {role!r}", f"unknown role; use one of {', '.join(ROLES)}")
    bootstrap = not has_passwords(db)
    if bootstrap:
        if role != "admin" or secret is None:
            raise PermissionDenied(
                "users", "this log has no admin yet: first add an admin with a password"
            )
    else:
        _admin_check(db, actor, actor_secret, source)
    secret_hash = hash_secret(secret) if secret is not None else None  # slow: outside the lock
    with write_transaction(db):
        if bootstrap and has_passwords(db):  # another process bootstrapped meanwhile
            raise PermissionDenied("users", "this log got its first admin meanwhile; ask them")
        if not bootstrap:
            require_role(db, actor, "manage_users")  # still active, under the lock
        existing = get_user(db, name)
        if (existing is not None and existing["role"] == "admin" and role != "admin"
                and _active_admins(db) == [name]):
            raise PermissionDenied(f"user {printable(name, 64)!r}",
                                   "is the last active admin; make another admin first")
        db.conn.execute(
            "INSERT INTO users (name, full_name, role, created_at, secret_hash)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET role = excluded.role,"
            " full_name = COALESCE(excluded.full_name, users.full_name),"
            " secret_hash = COALESCE(excluded.secret_hash, users.secret_hash)",
            (name, full_name, role, utc_now(), secret_hash),
        )
        if secret_hash is not None:  # a new password ends a lockout
            db.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?",
                            (name,))
        _record_user(
            db, "user.add" if existing is None else "user.change", name,
            actor=name if bootstrap else actor,
            role=role, old_role=None if existing is None else existing["role"],
            full_name=full_name, secret_changed=secret_hash is not None, source=source,
            bootstrap=bootstrap,
        )


def disable_user(db: Database, name: str, *, actor: str | None, actor_secret: str | None = None,
                 source: str = "api") -> None:
    """Disable a user (audited). They keep their history but can no longer log in.

    Raises
    ------
    PermissionDenied
        The actor is not an active admin or gave a wrong password, or would disable the last
        active admin.
    """
    _admin_check(db, actor, actor_secret, source)
    with write_transaction(db):
        require_role(db, actor, "manage_users")
        row = get_user(db, name)
        if row is None:
            raise InputError(f"user {printable(name, 64)!r}", "unknown user")
        if row.get("disabled_at"):
            return
        if row["role"] == "admin" and _active_admins(db) == [name]:
            raise PermissionDenied(f"user {printable(name, 64)!r}", "is the last active admin")
        db.conn.execute("UPDATE users SET disabled_at = ? WHERE name = ?", (utc_now(), name))
        _record_user(db, "user.disable", name, actor=actor, role=row["role"], source=source)


def unlock_user(db: Database, name: str, *, actor: str | None, actor_secret: str | None = None,
                source: str = "api") -> None:
    """End a user's lockout and reset their failed-login count (an admin; audited)."""
    _admin_check(db, actor, actor_secret, source)
    with write_transaction(db):
        require_role(db, actor, "manage_users")
        row = get_user(db, name)
        if row is None:
            raise InputError(f"user {printable(name, 64)!r}", "unknown user")
        db.conn.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE name = ?",
                        (name,))
        _record_user(db, "user.unlock", name, actor=actor, was_locked_until=row.get("locked_until"),
                     failures=row.get("failed_logins"), source=source)


# ------------------------------------------------------------------------------ actions


def override_as(
    db: Database,
    inspection_id: int,
    new_verdict: str,
    reason: str,
    user: str,
    secret: str | None = None,
    *,
    source: str = "api",
) -> int:
    """Override a verdict after checking the user (and their secret when one is given).

    The checks of :func:`core.store.log.override_verdict` (engineer/admin, a reason, a
    complete inspection) still apply; this adds "active user" and authentication.

    Returns
    -------
    int
        The override's id.
    """
    if secret is not None:
        authenticate(db, user, secret, source=source)
    require_role(db, user, "override")
    return override_verdict(db, inspection_id, new_verdict, reason, user)


def recipe_diff(name: str, old_text: str | None, new_text: str) -> str:
    """Unified diff between two versions of a recipe's TOML text."""
    return "".join(
        difflib.unified_diff(
            (old_text or "").splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{name} (before)",
            tofile=f"{name} (after)",
        )
    )


def _sha(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_recipe_change(
    db: Database, name: str, old_text: str | None, new_text: str, user: str
) -> int:
    """File a recipe change with its diff in ``recipe_changes`` and the audit chain.

    Only engineers and admins may change recipes. The new text is checked by the recipe
    parser first, so a broken recipe is refused, not filed.

    Parameters
    ----------
    db : sqlite_utils.Database
    name : str
        The recipe's name (e.g. ``18650-nmc``).
    old_text : str or None
        The TOML before (None for a new recipe).
    new_text : str
        The TOML after.
    user : str
        Who changed it.

    Returns
    -------
    int
        The ``recipe_changes`` row id.

    Raises
    ------
    PermissionDenied, core.errors.RecipeError
    """
    from core.recipe import parse_recipe_toml, recipe_from_dict

    recipe_from_dict(parse_recipe_toml(new_text, name), source=name, sha256=_sha(new_text) or "")
    diff = recipe_diff(name, old_text, new_text)
    with write_transaction(db):
        require_role(db, user, "edit_recipe")
        now = utc_now()
        cursor = db.conn.execute(
            "INSERT INTO recipe_changes (name, old_sha256, new_sha256, diff, new_text, user,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, _sha(old_text), _sha(new_text), diff, new_text, user, now),
        )
        change_id = int(cursor.lastrowid)
        append_audit(
            db,
            "recipe.change",
            entity="recipe_changes",
            entity_id=change_id,
            actor=user,
            details={
                "name": name,
                "old_sha256": _sha(old_text),
                "new_sha256": _sha(new_text),
                "diff": diff,
            },
        )
    return change_id


def save_recipe(
    path: str | os.PathLike[str],
    new_text: str,
    *,
    old_text: str | None,
    db: Database | None = None,
    name: str | None = None,
    user: str | None = None,
) -> int | None:
    """Write a recipe file, its change filed in the log first: the CLI's and the GUI's one save.

    The text goes to a temporary file beside ``path``; when ``db`` is given and the text
    differs from ``old_text``, the change is filed (:func:`record_recipe_change`: role check,
    validation, diff in the audit chain) before that file is renamed over ``path``. A change
    that cannot be audited is therefore not made: any error leaves the saved recipe as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Where the recipe is saved (the caller has checked that it may write there).
    new_text : str
        The TOML text to save.
    old_text : str or None
        The text saved at ``path`` now (None: a new recipe).
    db : sqlite_utils.Database, optional
        The log; None saves without an audit entry (a station without a log).
    name : str, optional
        The recipe's name in the log (default: the file's stem).
    user : str, optional
        Who changes it (required with ``db``).

    Returns
    -------
    int or None
        The ``recipe_changes`` row id, or None when nothing was filed.

    Raises
    ------
    OSError
        The file cannot be written.
    PermissionDenied, core.errors.RecipeError
        From :func:`record_recipe_change` (nothing is written).
    """
    path = os.fspath(path)
    change_id = None
    with atomic_writer(path, text=True) as handle:
        handle.write(new_text)
        handle.flush()
        if db is not None and old_text != new_text:
            change_id = record_recipe_change(db, name or Path(path).stem, old_text, new_text,
                                             user)  # type: ignore[arg-type]  # require_role refuses None
    return change_id
