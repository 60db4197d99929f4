"""What every ``cellqc`` sub-command shares: exit codes, the command registry, the log's home
folder, the one-line usage error and the progress printer.

Command modules import from here, never from :mod:`qc_app.cli` (which imports them): the
dependency runs one way, ``qc_app.cli → qc_app.commands.<name> → qc_app.commands.base``.
Only the standard library is imported here, so that ``cellqc --help`` stays light
(``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_REVIEW = 0, 1, 2, 3
VERDICT_EXIT = {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL, "REVIEW": EXIT_REVIEW}

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


#: The ``--recipe`` option of the commands that inspect (inspect, batch, watch).
RECIPE_HELP = ("recipe name (18650-nmc, 21700-nmc, 26650-nmc, 4680-nmc), TOML file, or auto "
               "(the default: chosen from the measured can diameter)")
#: The ``--db`` option of the commands that read or write the log at its default place.
LOG_HELP = "SQLite log (default $CELLQC_HOME/cellqc.db)"


def add_recipe_option(p: argparse.ArgumentParser) -> None:
    """``--recipe NAME|FILE|auto`` (default None: chosen from the measured can diameter)."""
    p.add_argument("--recipe", default=None, help=RECIPE_HELP)


def add_log_option(p: argparse.ArgumentParser, *, metavar: str | None = None) -> None:
    """``--db FILE``: the SQLite log (None: the default log under :func:`cellqc_home`)."""
    p.add_argument("--db", metavar=metavar, help=LOG_HELP)


def add_volume_options(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--voxel-size`` and ``--dataset`` for reading volumes (``many``: the help speaks of inputs)."""
    p.add_argument("--voxel-size", help=f"µm: one number or z,y,x (overrides the file{'s' if many else ''})")
    p.add_argument("--dataset", help="dataset path inside HDF5 / Zarr inputs" if many
                   else "dataset path inside an HDF5 / Zarr file")


def cellqc_home() -> Path:
    """Where cellqc keeps its log and demo files: ``$CELLQC_HOME`` or ~/.local/share/cellqc."""
    home = os.environ.get("CELLQC_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "cellqc"


def print_json(value: object, *, ascii_only: bool = False) -> None:
    """``value`` as indented JSON on stdout, one newline after it (``--json`` listings)."""
    json.dump(value, sys.stdout, indent=1, ensure_ascii=ascii_only)
    sys.stdout.write("\n")


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A header and rows of text as left-aligned columns two spaces apart (no trailing blanks)."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for line in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def progress_printer(prefix: str = "") -> Callable[[float, str], None]:
    """A progress callback that writes ``[ 42%] stage`` lines to stderr."""

    def report(fraction: float, message: str) -> None:
        print(f"{prefix}[{100 * fraction:5.1f}%] {message}", file=sys.stderr, flush=True)

    return report


class UsageErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # one line, exit code 2
        print(f"cellqc: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)
