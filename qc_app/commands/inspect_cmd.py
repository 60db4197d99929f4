"""``cellqc inspect VOLUME``: load → geometry → detectors → verdict → result.

With ``--db`` the inspection is filed in the log, as ``--user NAME``: once the log has users,
that user must give their password (see :mod:`qc_app.auth`); a refusal writes nothing. Without
``--db`` nothing is filed (only the files asked for) and no user is checked.
"""

from __future__ import annotations

import argparse
import sys

from core.segment import DEFAULT_SEGMENTER, SEGMENTERS
from qc_app.auth import add_user_arguments
from qc_app.commands.base import (
    VERDICT_EXIT,
    add_recipe_option,
    add_volume_options,
    progress_printer,
    register,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("volume", help="volume file or folder of TIFF slices")
    add_volume_options(p)
    add_recipe_option(p)
    p.add_argument("--cell-id", default=None)
    p.add_argument("--json", dest="json_out", help="write the inspection result here")
    p.add_argument("--report", help="write the PDF report here")
    p.add_argument("--maps", help="folder for the unrolled electrode maps (.npz + .png) and a traced-layer overlay")
    p.add_argument("--db", help="SQLite log file (default: none; $CELLQC_HOME/cellqc.db with --db default)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--profile", action="store_true",
                   help="print the time per stage (read, recipe, geometry, each detector, verdict, outputs, "
                        "log) to stderr; the same numbers are in the result's timings_s")
    p.add_argument("--segmenter", choices=SEGMENTERS, default=DEFAULT_SEGMENTER,
                   help="void detection: classic image analysis (default), the learned ONNX segmenter, or "
                        "classic+onnx: classic decides, the model's view is added to each void finding and "
                        "its own finds are listed as info (models/layerseg_card.md)")
    p.add_argument("--memory-gb", type=float, default=None,
                   help="memory the inspection may use (default: $CELLQC_INSPECTION_BUDGET_GB or 2); a larger "
                        "volume is inspected in chunks of slices")
    add_user_arguments(p, operator_alias=True,
                       help="who inspects (filed with the inspection); with --db only, and required "
                            "with the password once the log has users")


def print_summary(result: dict, inspection_id: int | None = None, out=None) -> None:
    """The verdict, big and first, then one line per place that set it (what, how much against
    which limit, where: :mod:`core.describe`, as the report and the workstation say it)."""
    from core import describe
    from core.text import printable

    out = out or sys.stdout
    print(f"{printable(result['cell_id'], 128)}: {result['verdict']}", file=out)
    for reason in describe.reasons(result):
        print(f"  {printable(reason.line())}", file=out)
    geo = result.get("geometry", {})
    if geo.get("windings"):
        print(f"  geometry: {geo['windings']} windings, can Ø {describe.quantity(geo.get('can_outer_diameter_mm'), 'mm')}, "
              f"pitch {describe.quantity(geo.get('pitch_um'), 'µm')}", file=out)
    if any(r.finding_id for r in describe.reasons(result)):
        print(f"  ({describe.SLICE_CONVENTION})", file=out)
    if inspection_id is not None:
        print(f"  logged as inspection {inspection_id}", file=out)


def run(args: argparse.Namespace) -> int:
    from core.chunked import inspection_budget_bytes
    from core.errors import InputError
    from core.filing import inspect_and_file
    from core.store import default_db_path
    from qc_app.auth import login_to_log, user_name

    inspection_budget_bytes(args.memory_gb)  # a bad budget is refused before anything is read
    if "onnx" in args.segmenter:  # ONNX Runtime: said before anything is read or filed
        from core.extras import require_extra

        require_extra("onnx", f"--segmenter {args.segmenter}")
    db = default_db_path() if args.db == "default" else args.db
    if db is not None:  # who files it: checked before anything is read or written
        operator = login_to_log(db, args, "inspect")
    elif user_name(args):
        raise InputError("--user", "is checked against the log: add --db FILE (or --db default)")
    else:
        operator = None
    timings: dict[str, float] = {}  # every stage, the JSON's and the log's included (--profile)
    inspection, iid = inspect_and_file(
        args.volume, voxel_size=args.voxel_size, dataset=args.dataset, recipe=args.recipe,
        cell_id=args.cell_id, json_out=args.json_out, report_out=args.report, maps_dir=args.maps, db_path=db,
        operator=operator, progress=None if args.quiet else progress_printer(),
        segmenter=args.segmenter, memory_budget_gb=args.memory_gb, stage_timings=timings)
    print_summary(inspection.result, iid)
    if args.profile:
        from core.timings import format_profile

        print(format_profile(timings), file=sys.stderr)
    return VERDICT_EXIT[inspection.verdict]


register("inspect", "inspect one cell volume and print its verdict", add_arguments, run)
