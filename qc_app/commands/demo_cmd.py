"""``cellqc demo``: a synthetic defective 18650 cell with exact ground truth.

It generates the demo cell under ``$CELLQC_HOME/demo/`` (default
``~/.local/share/cellqc/demo/``), writes ``demo_cell.tif`` + ``demo_cell.truth.json``, inspects
it, writes ``demo_result.json`` and ``demo_report.pdf`` and files the inspection in the log,
then prints the verdict with its reasons.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qc_app.commands.base import VERDICT_EXIT, cellqc_home, progress_printer, register

DEMO_SEED = 2024
DEMO_NAME = "demo_cell"


def demo_spec(n_slices: int = 16) -> Any:
    """The demo cell: an 18650 at 20 µm voxels, slightly off-centre and oval."""
    from core.phantom import CellSpec

    return CellSpec(
        kind="18650",
        voxel_size_um=20.0,
        n_slices=n_slices,
        ovality=0.01,
        ovality_angle_deg=25.0,
        center_offset_um=(180.0, -260.0),
    )


def generate_demo_cell(
    home: str | Path | None = None, n_slices: int = 16, progress: Any = None
) -> tuple[Path, dict[str, Any]]:
    """Render the demo cell and write it under ``HOME/demo/``.

    Parameters
    ----------
    home : path, optional
        cellqc's data folder; default :func:`qc_app.commands.base.cellqc_home`.
    n_slices : int
        Number of axial slices (16 for the demo; fewer for quick tests).
    progress : callable(fraction, message), optional
        Progress callback.

    Returns
    -------
    (Path, dict)
        The volume file (``HOME/demo/demo_cell.tif``) and its ground truth (also written as
        ``demo_cell.truth.json`` beside it).
    """
    import numpy as np

    from core.phantom import Artifacts, default_defects, make_cell
    from core.phantom.files import write_cell

    folder = Path(home) if home is not None else cellqc_home()
    folder = folder / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    spec = demo_spec(n_slices)
    defects = default_defects(spec, np.random.default_rng(DEMO_SEED))
    if progress:
        progress(
            0.0, f"rendering the demo cell ({spec.n_slices} slices at {spec.voxel_size_um:g} µm)"
        )
    cell = make_cell(
        spec, defects, Artifacts(), seed=DEMO_SEED, cell_id=f"DEMO-{spec.kind}-{DEMO_SEED}"
    )
    path = folder / f"{DEMO_NAME}.tif"
    if progress:
        progress(0.7, f"writing {path}")
    _, truth = write_cell(cell, path, "float32")
    if progress:
        progress(1.0, "demo cell ready")
    return path, truth


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slices", type=int, default=16, help="number of slices of the demo cell")
    p.add_argument("--db", default=None, help="SQLite log (default $CELLQC_HOME/cellqc.db)")
    from qc_app.auth import add_user_arguments

    add_user_arguments(p, help="who runs it; needed (with the password) only once the log has users")


def run(args: argparse.Namespace) -> int:
    from core.filing import inspect_and_file
    from core.store import default_db_path
    from qc_app.auth import login_to_log
    from qc_app.commands.inspect_cmd import print_summary
    from qc_app.commands.phantom_cmd import describe_anatomy, describe_defect

    db = args.db or default_db_path()
    operator = login_to_log(db, args, "inspect")  # before anything is written
    path, truth = generate_demo_cell(n_slices=args.slices, progress=progress_printer("demo "))
    nz, ny, nx = truth["shape_zyx"]
    v = truth["voxel_size_um"]
    print(f"Demo cell {truth['cell_id']}: synthetic {truth['spec']['kind']} cell, "
          f"{truth['roll']['windings']} windings, {nz} × {ny} × {nx} voxels of {v:g} µm")
    print(f"  volume: {path}")
    print("  anatomy (by design, never a finding):")
    for line in describe_anatomy(truth):
        print(f"    - {line}")
    print(f"  injected defects ({len(truth['defects'])}):")
    for d in truth["defects"]:
        print(f"    - {describe_defect(d, v, truth)}")
    folder = path.parent
    inspection, iid = inspect_and_file(
        path, cell_id=truth["cell_id"], json_out=folder / "demo_result.json",
        report_out=folder / "demo_report.pdf", maps_dir=folder / "maps", db_path=db, operator=operator,
        progress=progress_printer("inspect "))
    print()
    print_summary(inspection.result, iid)
    print(f"  result: {folder / 'demo_result.json'}")
    print(f"  report: {folder / 'demo_report.pdf'}")
    print(f"  maps:   {folder / 'maps'}")
    print(f"  log:    {db}")
    return VERDICT_EXIT[inspection.verdict]


register("demo", "inspect a synthetic defective demo cell: verdict, PDF report and log", add_arguments, run)
