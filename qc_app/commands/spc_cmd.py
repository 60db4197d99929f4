"""``cellqc spc METRIC [--by lot|line|day] [--db FILE] [--png OUT] [--json OUT]``: control charts.

Individuals / moving-range and X̄–R (by lot, line or day) charts of any metric of the logged
inspections, with the Western Electric rules flagged. Exit 0 when no point is flagged, 1
when a rule is violated, 2 on usage or input errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import InputError
from qc_app.commands.base import add_log_option, register


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("metric", help="a metric or geometry key of the results, e.g. can_outer_diameter_mm")
    p.add_argument("--by", choices=("lot", "line", "day"), default="lot", help="subgroups of the X̄–R chart")
    add_log_option(p, metavar="FILE")
    p.add_argument("--png", metavar="OUT", help="write the charts here")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the charts as JSON here")


def run(args: argparse.Namespace) -> int:
    from core import spc
    from core.fileio import atomic_write
    from core.store import default_db_path, open_log

    path = Path(args.db) if args.db else default_db_path()
    if not path.exists():
        raise InputError(path, "no log here yet; file an inspection with --db first")
    db = open_log(path)
    try:
        points = spc.collect(db, args.metric, args.by)
    finally:
        db.close()
    if len(points) < 2:
        raise InputError(path, f"fewer than two complete inspections carry the metric {args.metric!r}")
    report = spc.spc_report(points, args.metric, args.by)
    print(spc.format_table(report))
    if args.png:
        spc.render_png(report, args.png)
        print(f"charts written to {args.png}")
    if args.json_out:
        atomic_write(args.json_out, json.dumps(spc.report_to_json(report), indent=1))
    flagged = any(report[k] is not None and report[k].violations for k in ("individuals", "moving_range", "xbar", "range"))
    return 1 if flagged else 0


register("spc", "control charts of a metric over the log (Western Electric rules)", add_arguments, run)
