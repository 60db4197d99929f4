"""``cellqc watch FOLDER``: the hot folder of an unattended station.

Runs until stopped (Ctrl-C or SIGTERM: the current inspection is abandoned and re-run at
the next start). With ``--once`` it handles what is finished now and exits with the
batch's codes over those scans: 0 all PASS (or nothing to do), 1 any FAIL, 3 any REVIEW,
2 any scan that could not be inspected.

``--user NAME`` is checked once, at the start (see :mod:`qc_app.auth`); every scan is filed
under that name.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from qc_app.auth import add_user_arguments
from qc_app.commands.base import (
    add_log_option,
    add_recipe_option,
    add_volume_options,
    progress_printer,
    register,
)

if TYPE_CHECKING:
    from qc_app.batch.watch import WatchEvent


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="the folder the scanner writes finished volumes to")
    p.add_argument("--once", action="store_true", help="handle the finished scans now, then exit")
    p.add_argument("--interval", type=float, default=5.0, metavar="S", help="seconds between polls (default 5)")
    p.add_argument("--stable-seconds", type=float, default=10.0, metavar="S",
                   help="a scan is finished when unchanged this long (default 10); not used with --marker")
    p.add_argument("--marker", metavar="SUFFIX",
                   help="only pick up scans with a marker file NAME+SUFFIX (e.g. .done: cell1.tif.done "
                        "or cell1.done)")
    add_recipe_option(p)
    add_log_option(p)
    p.add_argument("--out", metavar="DIR", help="result JSON and PDF reports (default FOLDER/reports)")
    p.add_argument("--no-report", action="store_true", help="JSON results only, no PDF")
    add_volume_options(p, many=True)
    p.add_argument("--max-attempts", type=int, default=2, metavar="N",
                   help="runs of a scan whose inspection was interrupted by a crash before it is "
                        "moved to failed/ (default 2: re-run once)")
    p.add_argument("--verbose", action="store_true", help="inspection progress on stderr")
    add_user_arguments(p, operator_alias=True,
                       help="who runs the station (filed with every scan); required with the password "
                            "once the log has users")


def _line(event: WatchEvent) -> str:
    """One line per scan for stdout: time, name, cell, verdict, where the input went."""
    stamp = datetime.now().isoformat(timespec="seconds")
    where = event.moved_to or ""
    what = event.outcome
    if event.inspection_id is not None:
        what += f" (inspection #{event.inspection_id}"
        what += f", {event.n_findings} findings)" if event.n_findings is not None else ")"
    text = f"{stamp} {event.name}: {event.cell_id + ' ' if event.cell_id else ''}{what} -> {where}"
    if event.outcome == "ERROR" and event.reason:
        text += f" — {event.reason}"
    if event.recovered:
        text += " [resumed after an interruption]"
    from core.text import printable

    return printable(text)  # file names and cell ids from the hot folder: never raw


def run(args: argparse.Namespace) -> int:
    from core.errors import InputError
    from core.recipe import is_auto, load_recipe
    from core.store import default_db_path
    from qc_app.auth import login_to_log
    from qc_app.batch.runner import CellRow, exit_code
    from qc_app.batch.watch import HotFolder, WatchOptions

    if args.max_attempts < 1:
        raise InputError("--max-attempts", f"must be 1 or more, got {args.max_attempts}")
    recipe = None if is_auto(args.recipe) else load_recipe(args.recipe)
    db_path = args.db or default_db_path()
    operator = login_to_log(db_path, args, "inspect")  # before the folder is touched
    options = WatchOptions(
        folder=args.folder, recipe=recipe, db_path=db_path,
        out_dir=args.out, report=not args.no_report, stable_seconds=args.stable_seconds,
        marker=args.marker, voxel_size=args.voxel_size, dataset=args.dataset,
        operator=operator, max_attempts=args.max_attempts)
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stopping.is_set():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        print("cellqc watch: stopping after the current step (the current scan re-runs at the next start)",
              file=sys.stderr, flush=True)
        stopping.set()

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    events: list[WatchEvent] = []

    def on_event(event: WatchEvent) -> None:
        events.append(event)
        print(_line(event), flush=True)

    progress = progress_printer("  ") if args.verbose else None
    try:
        with HotFolder(options) as hot:
            if args.once:
                hot.poll(cancel=stopping.is_set, on_event=on_event, progress=progress)
                if hot.waiting:
                    print(f"cellqc watch: not finished yet, left for later: {', '.join(hot.waiting)}",
                          file=sys.stderr)
            else:
                how = f"marker {options.marker}" if options.marker else f"stable for {options.stable_seconds:g} s"
                print(f"cellqc watch: watching {hot.folder} (finished = {how}); reports in {hot.out_dir}; "
                      "Ctrl-C to stop", file=sys.stderr, flush=True)
                hot.run(args.interval, stop=stopping.is_set, on_event=on_event, progress=progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.once:
        return 0
    rows = [CellRow(e.name, e.cell_id, e.outcome) for e in events]
    return exit_code(rows)


register("watch", "hot folder: inspect finished scans as they arrive, move them to done/ or failed/",
         add_arguments, run)
