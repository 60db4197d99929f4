"""The ``cellqc`` command.

Exit codes: 0 PASS, 1 FAIL, 3 REVIEW, 2 usage or input error. Progress goes to stderr;
results go to stdout or to the files asked for.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import CellQCError

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_REVIEW = 0, 1, 2, 3
VERDICT_EXIT = {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL, "REVIEW": EXIT_REVIEW}


def cellqc_home() -> Path:
    """Where cellqc keeps its log and demo files: ``$CELLQC_HOME`` or ~/.local/share/cellqc."""
    home = os.environ.get("CELLQC_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "cellqc"


def progress_printer(prefix: str = "") -> Callable[[float, str], None]:
    """A progress callback that writes ``[ 42%] stage`` lines to stderr."""

    def report(fraction: float, message: str) -> None:
        print(f"{prefix}[{100 * fraction:5.1f}%] {message}", file=sys.stderr, flush=True)

    return report


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        print(f"cellqc: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]
#: Commands whose module has been imported: name → (help, add_arguments, run).
COMMANDS: dict[str, tuple[str, AddArguments, Run]] = {}


def register(name: str, help_text: str, add_arguments: AddArguments, run: Run) -> None:
    """Register the sub-command ``cellqc NAME``; ``run`` returns the exit code.

    Called by the command's module when it is imported; the module is named in
    :data:`qc_app.commands.COMMAND_TABLE`, which is what ``cellqc --help`` lists.
    """
    COMMANDS[name] = (help_text, add_arguments, run)


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

    parser = _Parser(prog="cellqc", description="X-ray CT quality control of cylindrical Li-ion cells")
    parser.add_argument("--version", action="version", version=f"cellqc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellqc`` console script; returns the exit code."""
    _escape_undecodable_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:  # `cellqc --self-test [...]` is `cellqc self-test [...]`
        argv[0] = "self-test"
    parser = build_parser(argv)
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    # `python -m qc_app.cli`: run the imported module's main, whose COMMANDS the command modules
    # register into (this file as __main__ is a second copy with its own, empty, table).
    from qc_app.cli import main as _main

    sys.exit(_main())
