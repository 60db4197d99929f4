"""The ``cellqc`` command.

Exit codes: 0 PASS, 1 FAIL, 3 REVIEW, 2 usage or input error. Progress goes to stderr;
results go to stdout or to the files asked for.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence

from core.errors import CellQCError

# The shared pieces live in qc_app.commands.base (the command modules import them from there);
# re-exported here for callers of the cellqc API that predate the split.
from qc_app.commands.base import (
    COMMANDS,
    EXIT_FAIL,
    EXIT_PASS,
    EXIT_REVIEW,
    EXIT_USAGE,
    VERDICT_EXIT,
    AddArguments,
    Run,
    UsageErrorParser,
    cellqc_home,
    progress_printer,
    register,
)

__all__ = [
    "COMMANDS", "EXIT_FAIL", "EXIT_PASS", "EXIT_REVIEW", "EXIT_USAGE", "VERDICT_EXIT",
    "build_parser", "cellqc_home", "command_named", "load_command", "main", "progress_printer", "register",
]


def load_command(name: str) -> tuple[str, AddArguments, Run]:
    """``(help, add_arguments, run)`` of command ``name``, importing its module if needed."""
    if name not in COMMANDS:
        from qc_app.commands import COMMAND_TABLE

        importlib.import_module(COMMAND_TABLE[name][0])
    return COMMANDS[name]


def command_named(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` asks for: its first positional token (None if there is none).

    The top-level parser's own options (``-h``, ``--version``) take no value, so the first
    token that is not an option is the command.
    """
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            return next(tokens, None)
        if not token.startswith("-"):
            return token
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``cellqc`` argument parser.

    With ``argv``, only the command it names gets its options (only that command's module is
    imported: ``cellqc --help`` imports none); without, every command does (all modules
    imported), e.g. for documentation or tests.
    """
    from core import __version__
    from qc_app.commands import COMMAND_TABLE

    parser = UsageErrorParser(prog="cellqc", description="X-ray CT quality control of cylindrical Li-ion cells")
    parser.add_argument("--version", action="version", version=f"cellqc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=UsageErrorParser)
    sub.required = True
    wanted = None if argv is None else command_named(argv)
    for name, (_module, help_text) in COMMAND_TABLE.items():
        if argv is not None and name != wanted:  # listed by name and help only
            sub.add_parser(name, help=help_text, description=help_text)
            continue
        description, add_arguments, run = load_command(name)
        p = sub.add_parser(name, help=help_text, description=description)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def _log_file_named(args: argparse.Namespace) -> str:
    """The log file a command used, for an error line (``--db default`` resolved)."""
    from core.store import default_db_path

    db = getattr(args, "db", None)
    if db is None or str(db) == "default":
        return str(default_db_path())
    return str(db)


def _escape_undecodable_output() -> None:
    """Print file names with undecodable bytes as ``\\xNN`` instead of failing on them."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured: leave it
                pass


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_workers() -> None:
    """Stop the inspection's worker processes, if it started any (core.parallel)."""
    parallel = sys.modules.get("core.parallel")
    if parallel is not None:
        parallel.stop_workers()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellqc`` console script; returns the exit code."""
    _escape_undecodable_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:  # `cellqc --self-test [...]` is `cellqc self-test [...]`
        argv[0] = "self-test"
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    # SIGTERM (a station or service manager stopping the run) ends it as Ctrl-C does: nothing
    # half-written, the worker processes stopped (commands that serve, such as `serve` and
    # `watch`, install their own handlers). Only the main thread may set a handler; the
    # caller's is restored after the command (main() is also called in-process).
    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; every error it may meet becomes one line and an exit code."""
    try:
        return int(args._run(args))
    except CellQCError as exc:
        print(f"cellqc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cellqc log | head`: the reader left, nothing more to say
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        _stop_workers()
        print("cellqc: cancelled", file=sys.stderr)
        return 130
    except sqlite3.OperationalError as exc:  # the log is locked too long, or its disk is full
        db = _log_file_named(args)
        hint = ("free space on its disk" if "full" in str(exc)
                else "another cellqc may be writing; try again" if "lock" in str(exc) or "busy" in str(exc)
                else "check the file")
        print(f"cellqc: error: {db}: {exc} ({hint})", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file the command writes: name it (disk full, read-only, ...)
        where = exc.filename or getattr(args, "volume", None) or args.command
        print(f"cellqc: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug: still one line for the operator, details on demand
        if os.environ.get("CELLQC_DEBUG"):
            raise
        where = getattr(args, "volume", None) or args.command
        print(f"cellqc: internal error while running {args.command} on {where}: {type(exc).__name__}: {exc} "
              "(set CELLQC_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # `python -m qc_app.cli` (the registry lives in qc_app.commands.base)
    sys.exit(main())
