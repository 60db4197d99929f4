"""``cellqc batch PATHS|GLOB|MANIFEST``: many cells in parallel with Dask distributed.

Exit codes: 0 every cell PASS, 1 any FAIL, 3 any REVIEW (no FAIL), 2 when any cell could not
be inspected (an input error, said so in the summary) or on a usage error.

``--user NAME`` is checked once, before the first cell (see :mod:`qc_app.auth`); every cell of
the batch is filed under that name.
"""

from __future__ import annotations

import argparse
import os
import sys

from qc_app.auth import add_user_arguments
from qc_app.commands.base import add_log_option, add_recipe_option, add_volume_options, register


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="PATHS|GLOB|MANIFEST",
                   help="volumes (files or folders), globs ('scans/*.tif', quoted) or manifests "
                        "(.txt one path per line; .csv with a 'path' column)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes, one thread each (default: the number of CPUs; "
                        "0 runs the cells one by one in this process, without Dask)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="use the workers of a running Dask scheduler, e.g. tcp://head:8786")
    add_recipe_option(p)
    add_log_option(p)
    p.add_argument("--out", metavar="DIR",
                   help="write each cell's result JSON and PDF report here (<cell>_<inspection>.json/.pdf)")
    p.add_argument("--no-report", action="store_true", help="with --out: JSON results only, no PDF")
    add_volume_options(p, many=True)
    p.add_argument("--force", action="store_true",
                   help="inspect every cell again, even those already inspected with this recipe")
    p.add_argument("--checksum", action="store_true",
                   help="also compare inputs by SHA-256 (a touched but unchanged file is skipped)")
    p.add_argument("--memory-limit", default="auto",
                   help="memory limit per local worker, e.g. 3GB (default: RAM shared by workers)")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    add_user_arguments(p, operator_alias=True,
                       help="who runs the batch (filed with every cell); required with the password "
                            "once the log has users")


def run(args: argparse.Namespace) -> int:
    from core.errors import InputError
    from core.recipe import is_auto, load_recipe
    from core.store import default_db_path
    from qc_app.auth import login_to_log
    from qc_app.batch.display import ProgressBar, format_summary
    from qc_app.batch.inputs import expand_inputs
    from qc_app.batch.runner import BatchOptions, run_batch

    if args.workers is not None and args.workers < 0:
        raise InputError("--workers", f"must be 0 or more, got {args.workers}")
    if args.workers != 0 or args.scheduler:  # Dask; --workers 0 runs in this process
        from core.extras import require_extra

        require_extra("batch", "cellqc batch")  # before the log is opened
    items = expand_inputs(args.inputs)
    recipe = None if is_auto(args.recipe) else load_recipe(args.recipe)
    db_path = args.db or default_db_path()
    operator = login_to_log(db_path, args, "inspect")  # before any cell is filed
    workers = args.workers if args.workers is not None else max(1, os.cpu_count() or 1)
    options = BatchOptions(
        recipe=recipe, db_path=db_path, out_dir=args.out,
        report=not args.no_report, voxel_size=args.voxel_size, dataset=args.dataset,
        operator=operator, workers=workers, scheduler=args.scheduler,
        checksum=args.checksum, force=args.force, memory_limit=args.memory_limit)
    where = (f"scheduler {args.scheduler}" if args.scheduler
             else ("this process" if workers == 0 else f"{workers} local worker(s)"))
    if not args.quiet:
        print(f"cellqc batch: {len(items)} cell(s), recipe {recipe.name + ' (' + recipe.sha256[:12] + ')' if recipe else 'auto'}, "
              f"on {where}", file=sys.stderr, flush=True)
    bar = ProgressBar(len(items), enabled=not args.quiet)
    summary = run_batch(items, options, on_row=bar)
    print(format_summary(summary))
    return summary.exit_code


register("batch", "inspect many cells in parallel (Dask); resumable; summary table", add_arguments, run)
