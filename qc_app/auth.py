"""Who is acting: ``--user NAME`` and its password, the one helper of every command.

Every command that changes the log takes ``--user NAME`` (and ``--password-file FILE``) through
:func:`add_user_arguments` and checks it with :func:`login` (or :func:`login_to_log`), which
applies :func:`core.store.users.acting_user`'s rule:

- a log holding users with passwords (after ``cellqc users add NAME --role admin``): the
  user is required, must be active, must give their password and must have a role allowed
  to do the action; otherwise one line and exit code 2, and nothing is written;
- a fresh log without any (the README quick start): the name, if any, is recorded as given.

The check itself (lockout after repeated failures, failed logins in the audit chain, the same
cost for unknown and known names) is :func:`core.store.users.authorize`, which the GUI and a
network service call too; the command's name is recorded as the ``source`` of a failure.

Secrets never come from the command line (shell history, ``ps``). The acting user's comes
from ``--password-file FILE`` (its first line), else ``$CELLQC_PASSWORD``, else a prompt on a
terminal, else the first line of stdin; a new user's from ``$CELLQC_NEW_PASSWORD``, else a
prompt typed twice, else the next line of stdin.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from core.errors import InputError

_stdin_lines: list[str] | None = None


def _next_stdin_line(what: str) -> str:
    global _stdin_lines
    if _stdin_lines is None:
        _stdin_lines = sys.stdin.read().splitlines() if sys.stdin is not None else []
    if not _stdin_lines:
        raise InputError(what, "no password given (use --password-file, $CELLQC_PASSWORD or stdin)")
    return _stdin_lines.pop(0)


def ask_secret(what: str, env: str, *, confirm: bool = False) -> str:
    """A secret from ``$ENV``, else a prompt on a terminal (twice with ``confirm``), else stdin."""
    value = os.environ.get(env)
    if value is not None:
        return value
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(f"{what}: ")
        if confirm and getpass.getpass(f"{what} again: ") != first:
            raise InputError(what, "the two entries differ")
        return first
    return _next_stdin_line(what)


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The first line of a password file (without its line end)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            line = fh.readline(4096)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the password file: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    line = line.rstrip("\r\n")
    if not line:
        raise InputError(path, "the password file is empty")
    return line


def actor_secret(user: str, password_file: str | os.PathLike[str] | None = None) -> str:
    """The acting user's password: ``--password-file``, ``$CELLQC_PASSWORD``, a prompt, or stdin."""
    if password_file:
        return read_password_file(password_file)
    return ask_secret(f"password of {user}", "CELLQC_PASSWORD")


def add_user_arguments(p: argparse.ArgumentParser, *, required: bool = False, help: str | None = None,
                       operator_alias: bool = False) -> None:
    """``--user NAME`` and ``--password-file FILE`` (and the hidden, deprecated ``--operator``)."""
    p.add_argument("--user", metavar="NAME", required=required,
                   help=help or "who does this; required (with the password) once the log has users")
    p.add_argument("--password-file", metavar="FILE",
                   help="the first line is the password/PIN of --user "
                        "(else $CELLQC_PASSWORD, a prompt, or the first line of stdin)")
    if operator_alias:  # older scripts: `--operator NAME` is `--user NAME`
        p.add_argument("--operator", metavar="NAME", default=None, help=argparse.SUPPRESS)


def user_name(args: argparse.Namespace) -> str | None:
    """``--user``, or the deprecated ``--operator`` (a note on stderr); both must agree."""
    user = getattr(args, "user", None)
    operator = getattr(args, "operator", None)
    if operator:
        if user and user != operator:
            raise InputError("--operator", "is an old name of --user; give only --user")
        print("cellqc: --operator is deprecated; use --user", file=sys.stderr)
        return operator
    return user


def login(db: Any, args: argparse.Namespace, action: str) -> str | None:
    """Check the acting user of ``args`` for ``action`` on an open log; the name to record.

    The password is asked only when the log has users (see the module docstring).

    Raises
    ------
    core.store.users.PermissionDenied
        One line: no user on a log with users, unknown/disabled user, wrong password, or a
        role that may not do ``action``.
    """
    from core.store.users import acting_user

    name = user_name(args)
    return acting_user(db, name, action,
                       lambda: actor_secret(name or "", getattr(args, "password_file", None)),
                       source=command_source(args))


def command_source(args: argparse.Namespace) -> str:
    """How a command is named in the audit of a failed login: ``"cellqc users add"``."""
    parts = ["cellqc", str(getattr(args, "command", None) or "")]
    for sub in ("users_action", "recipes_action", "roi_command", "action"):
        value = getattr(args, sub, None)
        if isinstance(value, str) and value:
            parts.append(value)
            break
    return " ".join(p for p in parts if p)


def login_to_log(path: str | os.PathLike[str], args: argparse.Namespace, action: str) -> str | None:
    """:func:`login` against the log at ``path`` (opened and closed again)."""
    from core.store import open_log

    with open_log(path) as db:
        return login(db, args, action)
