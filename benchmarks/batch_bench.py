"""Batch throughput: N cells on a Dask LocalCluster vs one after the other in this process.

Generates ``--cells`` synthetic 18650 cells (half with the default defects) as TIFF files
and measures, in the same run:

1. the detectors issue's baseline for every cell: read the volume, convert to float32, one
   3-D Gaussian (σ = 1) pass — the least any inspection must do;
2. ``run_batch(workers=0)``: every cell inspected and filed in this process, one after the
   other (the sequential baseline);
3. ``run_batch(workers=W)``: the same cells on a new LocalCluster of W processes (cluster
   start-up included; measured alone too);
4. the same batch again: every cell skipped (the cost of resuming).

It prints seconds, cells per hour, voxels per second, the ratios (sequential / parallel and
each against the baseline), and checks that every cell appears exactly once, complete, in
each log with the same verdict in both modes.

Run: ``.venv/bin/python benchmarks/batch_bench.py [--cells 4] [--workers 2] [--slices 3]
[--voxel-size 25] [--report]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage


def make_cells(folder: Path, n: int, slices: int, voxel_um: float) -> list[Path]:
    from core.io import write_tiff
    from core.phantom import Artifacts, CellSpec, default_defects, make_cell

    folder.mkdir(parents=True, exist_ok=True)
    spec = CellSpec(kind="18650", voxel_size_um=voxel_um, n_slices=slices)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        defects = default_defects(spec, rng) if i % 2 == 0 else []
        cell = make_cell(spec, defects, Artifacts(), seed=100 + i, cell_id=f"BENCH-{i:03d}")
        paths.append(write_tiff(cell.volume, folder / f"bench_{i:03d}.tif"))
    return paths


def baseline(paths: list[Path]) -> tuple[float, int]:
    """Read + float32 + one 3-D Gaussian σ=1 per cell: (seconds, voxels)."""
    from core.io import read_volume

    t0 = time.perf_counter()
    voxels = 0
    for p in paths:
        v = read_volume(p)
        a = np.asarray(v.array, dtype=np.float32)
        ndimage.gaussian_filter(a, 1.0)
        voxels += a.size
    return time.perf_counter() - t0, voxels


def check_log(db_path: Path, n: int) -> dict[str, str]:
    """Every cell once, complete; returns cell id → verdict."""
    from core.store import open_log

    with open_log(db_path) as db:
        rows = list(db.query("SELECT cell_id, status, verdict FROM inspections"))
    cells = [r["cell_id"] for r in rows]
    assert len(rows) == n and len(set(cells)) == n, f"{len(rows)} rows for {n} cells"
    assert all(r["status"] == "complete" for r in rows), rows
    return {r["cell_id"]: r["verdict"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--voxel-size", type=float, default=25.0)
    parser.add_argument("--report", action="store_true", help="also write PDF reports")
    args = parser.parse_args()

    from core.recipe import load_recipe
    from qc_app.batch.inputs import BatchItem
    from qc_app.batch.runner import BatchOptions, dask_client, run_batch

    load0 = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="cellqc-batch-bench-"))
    try:
        paths = make_cells(tmp / "cells", args.cells, args.slices, args.voxel_size)
        items = [BatchItem(str(p)) for p in paths]
        recipe = load_recipe(None)
        t_base, voxels = baseline(paths)

        def run(workers: int, name: str) -> tuple[float, object]:
            options = BatchOptions(recipe=recipe, db_path=tmp / f"{name}.db", out_dir=tmp / name,
                                   report=args.report, workers=workers)
            t0 = time.perf_counter()
            summary = run_batch(items, options)
            return time.perf_counter() - t0, summary

        t_seq, s_seq = run(0, "sequential")
        t0 = time.perf_counter()
        with dask_client(args.workers):
            pass
        t_start = time.perf_counter() - t0
        t_par, s_par = run(args.workers, "parallel")
        t_resume, s_resume = run(args.workers, "parallel")
        v_seq = check_log(tmp / "sequential.db", args.cells)
        v_par = check_log(tmp / "parallel.db", args.cells)
        assert v_seq == v_par, "verdicts differ between sequential and parallel runs"
        assert all(r.skipped for r in s_resume.rows), "the resumed batch inspected cells again"

        shape = f"{args.cells} cells of {voxels // args.cells / 1e6:.1f} Mvoxel ({args.slices} slices at {args.voxel_size:g} µm)"
        print(f"batch benchmark: {shape}; verdicts {sorted(v_seq.values())}; PDF reports: {args.report}")
        print(f"{'mode':42s} {'seconds':>8s} {'cells/h':>8s} {'Mvox/s':>7s} {'× baseline':>10s}")
        for name, t in (("baseline (read + float32 + Gaussian σ=1)", t_base),
                        ("sequential, in process (run_batch workers=0)", t_seq),
                        (f"LocalCluster, {args.workers} workers (start-up incl.)", t_par),
                        (f"LocalCluster, {args.workers} workers, minus start-up", t_par - t_start)):
            print(f"{name:42s} {t:8.1f} {args.cells / t * 3600:8.0f} {voxels / t / 1e6:7.2f} {t / t_base:10.1f}")
        print(f"cluster start-up alone: {t_start:.1f} s; resumed batch (all {args.cells} skipped): {t_resume:.1f} s")
        print(f"speed-up sequential / {args.workers} workers: {t_seq / t_par:.2f} "
              f"(without start-up {t_seq / (t_par - t_start):.2f}); ideal {args.workers}")
        def med(summary: object, attr: str) -> float:
            return float(np.median([getattr(r, attr) for r in summary.rows if getattr(r, attr)]))

        print(f"per cell, median: on a worker {med(s_par, 'elapsed_s'):.1f} s wall / {med(s_par, 'cpu_s'):.1f} s CPU; "
              f"in process {med(s_seq, 'elapsed_s'):.1f} s wall / {med(s_seq, 'cpu_s'):.1f} s CPU")
        print(f"load average (1 min) before / after: {load0:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
              "(other processes on the machine take CPU from the workers)")
        print(f"every cell appears once, complete, in both logs: OK ({args.cells} cells)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
