#!/usr/bin/env python3
"""The validation matrix (docs/validation.md): randomised healthy and defective generated cells
inspected through the user's path, scored against their exact truth.

    .venv/bin/python scripts/validate.py --healthy 40 --defective 40 --seed 0 --workers 2 \\
        --out validation.json [--write-uncertainty] [--markdown]

Prints a line per cell as it finishes and the summary tables at the end; ``--out`` keeps every
row (the case, what was found and missed, the false findings, the measurement errors) and the
summary. ``--write-uncertainty`` fits the expanded uncertainties from the measured errors and
writes resources/uncertainty.json (the table the inspection results quote).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _one(args: tuple) -> dict:
    import os
    import traceback

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from core.phantom.validation import draw_case, run_case

    index, healthy, seed0, workdir, regions, voxels = args
    draw = {"regions": regions, "region_weights": (1.0,) * len(regions)} if regions else {}
    if voxels:
        draw.update(voxels=voxels, voxel_weights=(1.0,) * len(voxels))
    case = draw_case(index, healthy, seed0, **draw)
    try:
        return run_case(case, workdir)
    except Exception as exc:  # a case that cannot be generated or inspected is reported, not hidden
        from dataclasses import asdict

        return {"case": asdict(case), "describe": case.describe(), "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--healthy", type=int, default=40)
    p.add_argument("--defective", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first", type=int, default=0, help="index of the first cell drawn (to split a run)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--regions", default=None, help="comma-separated: middle,top,bottom (default: all, mostly middle)")
    p.add_argument("--voxels", default=None,
                   help="comma-separated in-plane voxel sizes in µm to draw from, equally likely "
                        "(default: 8–25 µm, weighted as in core.phantom.validation.VOXEL_WEIGHTS)")
    p.add_argument("--write-uncertainty", action="store_true")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown (docs/validation.md)")
    p.add_argument("--summarize", type=Path, nargs="+", default=None,
                   help="summarise the rows of earlier --out files (e.g. healthy and defective cells run "
                        "apart) instead of running cells")
    args = p.parse_args(argv)
    from core.phantom.validation import fit_uncertainty, markdown, summarize

    regions = tuple(args.regions.split(",")) if args.regions else None
    voxels = tuple(float(v) for v in args.voxels.split(",")) if args.voxels else None
    jobs = [(i, True, args.seed, None, regions, voxels) for i in range(args.first, args.first + args.healthy)]
    jobs += [(i, False, args.seed, None, regions, voxels) for i in range(args.first, args.first + args.defective)]
    rows = []
    t0 = time.perf_counter()
    if args.summarize is not None:
        rows = [row for part in args.summarize for row in json.loads(part.read_text())["rows"]]
        jobs = []
    with tempfile.TemporaryDirectory(prefix="cellqc-validation-") as tmp:
        jobs = [(i, h, s, tmp, r, v) for i, h, s, _w, r, v in jobs]
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(_one, job) for job in jobs]
            for fut in as_completed(futures):
                row = fut.result()
                rows.append(row)
                if args.out:  # every finished cell kept at once: a long run stopped early loses nothing
                    args.out.write_text(json.dumps({"rows": rows}, default=str))
                if "error" in row:
                    print(f"{row['describe']}: ERROR {row['error']}", flush=True)
                else:
                    found = ", ".join(f"{d['kind']}:{'found' if d['found'] else 'MISSED'}" for d in row["defects"])
                    false = f"; {len(row['false_findings'])} false finding(s)" if row["false_findings"] else ""
                    print(f"{row['describe']}: {row['verdict']} ({row['inspect_s']:.0f} s) {found}{false}", flush=True)
    summary = summarize(rows)
    summary["wall_s"] = time.perf_counter() - t0
    summary["command"] = " ".join(["scripts/validate.py", *(argv if argv is not None else sys.argv[1:])])
    if args.markdown:
        print(markdown(summary))
    else:
        print(json.dumps({k: v for k, v in summary.items() if k != "errors_by_quantity"}, indent=1, default=str))
    if args.write_uncertainty:
        fitted = fit_uncertainty(summary["errors_by_quantity"])
        doc = {"schema": "cellqc.uncertainty/1", "k": 2,
               "method": "u(v) = sqrt(a^2 + (b v)^2) fitted to the errors of the validation matrix by voxel size "
                         "(v: the coarser of the in-plane voxel and the slice spacing, or the slice spacing for the "
                         "overhang); U = k u. void_volume_mm3 is relative (U × value).",
               "generated_by": summary["command"], "quantities": fitted}
        (ROOT / "resources" / "uncertainty.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote resources/uncertainty.json ({len(fitted)} quantities)")
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
