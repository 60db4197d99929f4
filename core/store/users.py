"""Users, roles and their secrets: scrypt-hashed passwords/PINs, role checks, recipe audit.

Roles (see :data:`core.store.schema.ROLES`): ``operator`` runs inspections; ``engineer`` may
also override verdicts and edit recipes; ``admin`` may also manage users. Secrets are never
stored, only their scrypt hash (``hashlib.scrypt``, stdlib)::

    scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>

Users are never deleted (their names sit in inspections, overrides and the audit chain):
:func:`disable_user` sets ``disabled_at``; a disabled user cannot log in, and a trigger in the
log refuses an override by a disabled user whatever the calling code does.

The first admin of a log is created without an acting admin (bootstrap); after that every
user change needs an authenticated admin.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database

from core.errors import InputError
from core.store.audit import append_audit, utc_now
from core.store.schema import ROLES, write_transaction

#: scrypt cost parameters (n=2**14, r=8 → 16 MiB, ~50 ms per check): slow for a guesser.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**14, 8, 1, 32
#: Shortest secret accepted: a 4-digit PIN on the line, a password elsewhere.
MIN_SECRET_LEN = 4
MAX_SECRET_LEN = 1024

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
    """A user who may not do what was asked, an unknown or disabled user, or a wrong secret."""


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
    """Users by name: name, full_name, role, created_at, disabled_at, has_secret (no hashes)."""
    sql = (
        "SELECT name, full_name, role, created_at, disabled_at,"
        " secret_hash IS NOT NULL AS has_secret FROM users"
    )
    if not include_disabled:
        sql += " WHERE disabled_at IS NULL"
    return [
        {**row, "has_secret": bool(row["has_secret"])} for row in db.query(sql + " ORDER BY name")
    ]


def _has_admin(db: Database) -> bool:
    row = db.conn.execute(
        "SELECT 1 FROM users WHERE role = 'admin' AND disabled_at IS NULL"
        " AND secret_hash IS NOT NULL LIMIT 1"
    ).fetchone()
    return row is not None


def has_passwords(db: Database) -> bool:
    """Whether the log holds a user with a password: then every change needs a login.

    A fresh log has none (the README quick start runs without users); the first
    ``cellqc users add NAME --role admin`` gives it one. Names recorded from ``--user`` on a
    log without passwords (``users`` rows without ``secret_hash``) do not count.
    """
    row = db.conn.execute("SELECT 1 FROM users WHERE secret_hash IS NOT NULL LIMIT 1").fetchone()
    return row is not None


def acting_user(
    db: Database, name: str | None, action: str, secret: str | Callable[[], str] | None
) -> str | None:
    """Who does ``action``: the one rule for every command that changes the log.

    - The log has users with passwords (:func:`has_passwords`): ``name`` is required, must
      be active, must give their password (``secret``, or a callable asked only then) and
      must have a role allowed to do ``action`` (:data:`PERMISSIONS`).
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

    Returns
    -------
    str or None
        The name to record.

    Raises
    ------
    PermissionDenied
        No user given on a log with users, unknown or disabled user, wrong password, or a
        role not allowed to do it.
    """
    allowed = PERMISSIONS[action]
    if not has_passwords(db):
        return name or None
    if not name:
        raise PermissionDenied(
            ACTION_NAMES.get(action, action),
            f"needs --user NAME ({' or '.join(allowed)}) and the password: this log has users",
        )
    authenticate(db, name, (secret() if callable(secret) else secret) or "")
    require_role(db, name, action)
    return name


def authenticate(db: Database, name: str, secret: str) -> dict[str, Any]:
    """Check a user's secret; return their row (without the hash).

    Raises
    ------
    PermissionDenied
        Unknown user, disabled user, no secret set, or a wrong secret (one message for
        unknown user and wrong secret, so that names cannot be probed).
    """
    row = get_user(db, name)
    if row is not None and row.get("disabled_at"):
        raise PermissionDenied(f"user {name!r}", "is disabled; ask an admin")
    if row is not None and not row.get("secret_hash"):
        raise PermissionDenied(
            f"user {name!r}", "has no password yet; ask an admin to set one (cellqc users add)"
        )
    if row is None or not verify_secret(secret, row["secret_hash"]):
        raise PermissionDenied(f"user {name!r}", "unknown user or wrong password")
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
        No user given, unknown or disabled user, or a role not allowed to do it.
    """
    allowed = PERMISSIONS[action]
    if not name:
        raise PermissionDenied(action.replace("_", " "), "needs --user")
    row = get_user(db, name)
    if row is None:
        raise PermissionDenied(f"user {name!r}", "unknown user")
    if row.get("disabled_at"):
        raise PermissionDenied(f"user {name!r}", "is disabled")
    if row["role"] not in allowed:
        raise PermissionDenied(
            f"user {name!r}",
            f"role {row['role']} may not {action.replace('_', ' ')}; needs {' or '.join(allowed)}",
        )
    return str(row["role"])


def add_user(
    db: Database,
    name: str,
    role: str = "operator",
    *,
    secret: str | None = None,
    full_name: str | None = None,
    actor: str | None = None,
) -> None:
    """Create a user, or change their role/secret/full name (audited, never the secret).

    Parameters
    ----------
    db : sqlite_utils.Database
    name : str
        Short login name.
    role : str
        One of :data:`core.store.schema.ROLES`.
    secret : str, optional
        Password or PIN; stored as its scrypt hash. Required for a new admin.
    full_name : str, optional
    actor : str, optional
        The admin doing it (checked with :func:`require_role`). May be omitted only while the
        log has no active admin with a password (bootstrap of the first admin).

    Raises
    ------
    core.errors.InputError, PermissionDenied
    """
    name = _check_name(name)
    if role not in ROLES:
        raise InputError(f"role {role!r}", f"unknown role; use one of {', '.join(ROLES)}")
    secret_hash = hash_secret(secret) if secret is not None else None  # slow: outside the lock
    with write_transaction(db):
        if _has_admin(db):
            require_role(db, actor, "manage_users")
        elif actor is None and (role != "admin" or secret is None):
            raise PermissionDenied(
                "users", "this log has no admin yet: first add an admin with a password"
            )
        existing = get_user(db, name)
        db.conn.execute(
            "INSERT INTO users (name, full_name, role, created_at, secret_hash)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET role = excluded.role,"
            " full_name = COALESCE(excluded.full_name, users.full_name),"
            " secret_hash = COALESCE(excluded.secret_hash, users.secret_hash)",
            (name, full_name, role, utc_now(), secret_hash),
        )
        append_audit(
            db,
            "user.add" if existing is None else "user.change",
            entity="users",
            entity_id=name,
            actor=actor or name,
            details={
                "role": role,
                "old_role": None if existing is None else existing["role"],
                "full_name": full_name,
                "secret_changed": secret_hash is not None,
            },
        )


def disable_user(db: Database, name: str, *, actor: str | None) -> None:
    """Disable a user (audited). They keep their history but can no longer log in.

    Raises
    ------
    PermissionDenied
        The actor is not an active admin, or would disable the last active admin.
    """
    with write_transaction(db):
        require_role(db, actor, "manage_users")
        row = get_user(db, name)
        if row is None:
            raise InputError(f"user {name!r}", "unknown user")
        if row.get("disabled_at"):
            return
        if row["role"] == "admin":
            others = db.conn.execute(
                "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL"
                " AND name != ?",
                [name],
            ).fetchone()[0]
            if not others:
                raise PermissionDenied(f"user {name!r}", "is the last active admin")
        db.conn.execute("UPDATE users SET disabled_at = ? WHERE name = ?", (utc_now(), name))
        append_audit(
            db, "user.disable", entity="users", entity_id=name, actor=actor,
            details={"role": row["role"]},
        )


# ------------------------------------------------------------------------------ actions


def override_as(
    db: Database,
    inspection_id: int,
    new_verdict: str,
    reason: str,
    user: str,
    secret: str | None = None,
) -> int:
    """Override a verdict after checking the user (and their secret when one is given).

    The checks of :func:`core.store.log.override_verdict` (engineer/admin, a reason, a
    complete inspection) still apply; this adds "active user" and authentication.

    Returns
    -------
    int
        The override's id.
    """
    from core.store.log import override_verdict

    if secret is not None:
        authenticate(db, user, secret)
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
    import tomllib

    from core.errors import RecipeError
    from core.recipe import recipe_from_dict

    try:
        recipe_from_dict(tomllib.loads(new_text), source=name, sha256=_sha(new_text) or "")
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(name, f"TOML syntax error: {exc}") from None
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
