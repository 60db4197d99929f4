"""``cellqc users add|list|disable`` and ``cellqc override``: people, roles and verdict overrides.

Secrets are asked for, never passed as arguments (they would land in shell history and ``ps``):
the acting user's password comes from ``--password-file FILE``, else ``$CELLQC_PASSWORD``, else
a prompt on a terminal, else the first line of stdin; a new user's password from
``$CELLQC_NEW_PASSWORD``, else a prompt (twice), else the next line of stdin (see
:mod:`qc_app.auth`).

    cellqc users add alice --role admin          # the first admin of a log: no --user
    cellqc users add bob --role engineer --user alice
    cellqc users list
    cellqc users disable bob --user alice
    cellqc users unlock bob --user alice           # after 5 failed logins in a row
    cellqc override 12 PASS --reason "void is a scan artefact" --user bob
    cellqc recipes save my-18650.toml --user bob  # into $CELLQC_HOME/recipes, diff audited
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

from core.errors import InputError
from qc_app.auth import actor_secret, add_user_arguments, ask_secret
from qc_app.commands.base import register


def _db_path(args: argparse.Namespace) -> Path:
    from core.store import default_db_path

    return Path(args.db) if args.db else default_db_path()


@contextlib.contextmanager
def clear_lock_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's "database is locked" (after the busy timeout) into one clear line."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        from core.store import base

        raise InputError(path, f"the log is locked by another process (waited "
                               f"{base.BUSY_TIMEOUT_S:g} s); try again when it has finished"
                         ) from None


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="FILE", help="SQLite log (default $CELLQC_HOME/cellqc.db)")


# ------------------------------------------------------------------------------ users


def add_users_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="users_action", metavar="ACTION", parser_class=type(p))
    sub.required = True
    add = sub.add_parser("add", help="create a user or change their role/password (admin)")
    add.add_argument("name")
    add.add_argument("--role", default="operator", choices=("operator", "engineer", "admin"))
    add.add_argument("--full-name", default=None)
    add.add_argument("--no-password", action="store_true",
                     help="keep the user's password as is (role or name change only)")
    add_user_arguments(add, help="the admin doing it (omit only for a log's first admin)")
    _add_db(add)
    ls = sub.add_parser("list", help="list users and their roles")
    ls.add_argument("--active", action="store_true", help="hide disabled users")
    _add_db(ls)
    dis = sub.add_parser("disable", help="disable a user (admin); their history stays")
    dis.add_argument("name")
    add_user_arguments(dis, required=True, help="the admin doing it")
    _add_db(dis)
    unl = sub.add_parser("unlock", help="end a user's lockout after repeated failed logins (admin)")
    unl.add_argument("name")
    add_user_arguments(unl, required=True, help="the admin doing it")
    _add_db(unl)


def _admin_secret(db, args: argparse.Namespace) -> str | None:
    """The acting admin's password, asked only when the log has users (else: bootstrap)."""
    from core.store.users import has_passwords

    if not has_passwords(db):
        return None
    if not args.user:
        raise InputError("users", "this log has users: a change needs --user ADMIN and that "
                                  "admin's password")
    return actor_secret(args.user, args.password_file)


def run_users(args: argparse.Namespace) -> int:
    from core.store import open_log
    from core.store.users import add_user, disable_user, list_users, unlock_user
    from core.text import printable
    from qc_app.auth import command_source

    path = _db_path(args)
    with clear_lock_errors(path), open_log(path) as db:
        if args.users_action == "list":
            rows = list_users(db, include_disabled=not args.active)
            if not rows:
                print("no users yet", file=sys.stderr)
            for r in rows:
                state = f"disabled {r['disabled_at'][:10]}" if r["disabled_at"] else "active"
                if r.get("locked_until") and not r["disabled_at"]:
                    state += f", locked until {str(r['locked_until'])[:16].replace('T', ' ')} UTC"
                pw = "" if r["has_secret"] else "  (no password)"
                name = printable(r["name"], 64) + (
                    f" ({printable(r['full_name'], 64)})" if r["full_name"] else "")
                print(f"{name:30s} {r['role']:9s} {state}{pw}")
            return 0
        source = command_source(args)
        admin_secret = _admin_secret(db, args)  # before anything else is asked or written
        shown = printable(args.name, 64)
        if args.users_action == "add":
            secret = None
            if not args.no_password:
                secret = ask_secret(f"new password of {shown}", "CELLQC_NEW_PASSWORD", confirm=True)
            add_user(db, args.name, args.role, secret=secret, full_name=args.full_name,
                     actor=args.user, actor_secret=admin_secret, source=source)
            print(f"user {shown}: {args.role}", file=sys.stderr)
            return 0
        if args.users_action == "unlock":
            unlock_user(db, args.name, actor=args.user, actor_secret=admin_secret, source=source)
            print(f"user {shown}: unlocked", file=sys.stderr)
            return 0
        disable_user(db, args.name, actor=args.user, actor_secret=admin_secret, source=source)
        print(f"user {shown}: disabled", file=sys.stderr)
        return 0


# --------------------------------------------------------------------------- override


def add_override_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inspection_id", type=int, metavar="INSPECTION_ID")
    p.add_argument("verdict", type=str.upper, choices=("PASS", "FAIL", "REVIEW"))
    p.add_argument("--reason", required=True, help="why (kept in the log and the audit chain)")
    add_user_arguments(p, required=True, help="an engineer or admin")
    _add_db(p)


def run_override(args: argparse.Namespace) -> int:
    from core.store import open_log
    from core.store.users import override_as
    from core.text import printable
    from qc_app.auth import command_source

    path = _db_path(args)
    if not path.exists():
        raise InputError(path, "no log here")
    with clear_lock_errors(path), open_log(path) as db:
        override_id = override_as(db, args.inspection_id, args.verdict, args.reason, args.user,
                                  actor_secret(args.user, args.password_file),
                                  source=command_source(args))
    print(f"inspection {args.inspection_id}: verdict overridden to {args.verdict} "
          f"(override {override_id}, by {printable(args.user, 64)})")
    return 0


# ---------------------------------------------------------------------------- recipes


def add_recipes_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="recipes_action", metavar="ACTION", parser_class=type(p))
    sub.required = True
    save = sub.add_parser("save", help="validate a recipe and save it into $CELLQC_HOME/recipes "
                          "(engineer/admin; the diff goes to the audit chain)")
    save.add_argument("file", help="the edited TOML recipe")
    save.add_argument("--name", help="saved as NAME.toml (default: the file's stem)")
    add_user_arguments(save, required=True, help="an engineer or admin")
    _add_db(save)


def _recipe_target(name: str) -> Path:
    """``$CELLQC_HOME/recipes/NAME.toml``, refused when it leads out of ``$CELLQC_HOME``.

    Neither the recipes folder nor the file may be a symbolic link (or anything but a folder
    and a regular file): saving must never read or replace a file outside cellqc's home.
    """
    import stat

    from core.errors import RecipeError
    from qc_app.commands.base import cellqc_home

    home = cellqc_home()
    folder = home / "recipes"
    target = folder / f"{name}.toml"
    for path, want_dir in ((folder, True), (target, False)):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise RecipeError(path, f"cannot check: {exc.strerror or exc}") from None
        if stat.S_ISLNK(mode):
            raise RecipeError(path, "is a symbolic link; recipes are saved only as plain files "
                                    "inside $CELLQC_HOME/recipes")
        if (want_dir and not stat.S_ISDIR(mode)) or (not want_dir and not stat.S_ISREG(mode)):
            raise RecipeError(path, "is not a " + ("folder" if want_dir else "regular file"))
    if home.exists():
        inside = target.parent.resolve()
        if inside != home.resolve() / "recipes":
            raise RecipeError(target, "leads out of $CELLQC_HOME; refusing to save there")
    return target


def _read_saved_recipe(target: Path) -> str | None:
    """The recipe saved at ``target`` now (None when there is none); never through a link."""
    from core.errors import RecipeError

    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecipeError(target, f"cannot read the saved recipe: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(2_000_001)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(target, "the saved recipe is not UTF-8 text") from None


def run_recipes(args: argparse.Namespace) -> int:
    from core.errors import RecipeError
    from core.store import open_log
    from core.store.users import authorize, save_recipe
    from qc_app.auth import command_source

    source = Path(args.file)
    try:
        new_text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(source, f"cannot read recipe: {exc}") from None
    name = args.name or source.stem
    if (not name or any(c in name for c in "/\\") or name.startswith(".")
            or not name.isprintable() or len(name) > 64):
        raise InputError(f"--name {name[:64]!r}", "a plain file name (printable, at most 64 "
                                                  "characters), without folders")
    target = _recipe_target(name)
    old_text = _read_saved_recipe(target)
    path = _db_path(args)
    with clear_lock_errors(path), open_log(path) as db:
        # refused before anything is written
        authorize(db, args.user, actor_secret(args.user, args.password_file), "edit_recipe",
                  source=command_source(args))
        if old_text == new_text:
            print(f"{target}: unchanged", file=sys.stderr)
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        _recipe_target(name)  # again: nothing may have become a link meanwhile
        try:  # filed first: a change that cannot be audited is not made
            change_id = save_recipe(target, new_text, old_text=old_text, db=db, name=name,
                                    user=args.user)
        except OSError as exc:
            raise RecipeError(target, f"cannot save: {exc.strerror or exc}") from None
    print(f"{target}: saved (recipe change {change_id}, by {args.user})")
    return 0


register("users", "manage users and roles (operator, engineer, admin)", add_users_arguments,
         run_users)
register("override", "override an inspection's verdict with a reason (engineer/admin)",
         add_override_arguments, run_override)
register("recipes", "save an edited recipe, audited with its diff (engineer/admin)",
         add_recipes_arguments, run_recipes)
