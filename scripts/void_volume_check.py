"""Void volume accuracy on random middle-of-roll cells with two voids each (docs/validation.md).

    .venv/bin/python scripts/void_volume_check.py 0 1 2 3 4 5 6 7 [--cache DIR]

Each cell index draws a random 18650 or 21700 at 15, 20 or 25 µm (slices up to 2× coarser,
the validation matrix's artifacts and anatomy) with two delamination voids of random size,
depth and side; the geometry is measured once and cached, then the delamination detector runs
and every void is matched to the findings within 1 mm of its centre. Prints each void's true
and measured volume, then the mean and RMS relative error and the fraction within 20 %.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cell(i: int, cache: Path) -> dict:
    from core.geometry.roll import measure_geometry
    from core.inspect import geometry_params
    from core.phantom import defect_placement_problem
    from core.phantom.render import make_cell
    from core.phantom.spec import Artifacts, DelaminationVoid
    from core.phantom.validation import cell_spec, draw_case
    from core.recipe import load_recipe

    path = cache / f"void_cell_{i}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    case = draw_case(i, False, 777, regions=("middle",), region_weights=(1.0,), voxels=(15.0, 20.0, 25.0),
                     voxel_weights=(1, 1, 1))
    spec = cell_spec(case)
    rng = np.random.default_rng([i, 99])
    dz = spec.slice_spacing_um or spec.voxel_size_um
    height = spec.n_slices * dz
    voids: list = []
    for _ in range(2):
        for _ in range(80):
            h = max(float(min(rng.uniform(300, 700), 0.7 * height)), 3 * dz)
            d = DelaminationVoid(winding=int(rng.integers(3, spec.windings - 3)), angle_deg=float(rng.uniform(0, 360)),
                                 thickness_um=float(rng.uniform(35, 55)), arc_length_um=float(rng.uniform(700, 1500)),
                                 height_um=h, z_center=float(rng.uniform(0.35, 0.65) * spec.n_slices),
                                 side=str(rng.choice(["inner", "outer"])), depth_um=float(rng.uniform(5, 15)))
            apart = all(abs(d.winding - v.winding) > 1 or abs((d.angle_deg - v.angle_deg + 180) % 360 - 180) > 60
                        for v in voids)
            if apart and not defect_placement_problem(spec, d):
                voids.append(d)
                break
    c = make_cell(spec, voids, Artifacts(**case.artifacts), seed=case.seed, cell_id=f"V{i}")
    recipe = load_recipe("18650-nmc" if case.kind == "18650" else "21700-nmc")
    data = {"vol": c.volume, "geo": measure_geometry(c.volume, geometry_params(recipe)), "truth": c.truth,
            "recipe": recipe, "desc": case.describe()}
    path.write_bytes(pickle.dumps(data))
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cells", type=int, nargs="+")
    p.add_argument("--cache", type=Path, default=Path("/tmp/cellqc-void-check"))
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", RuntimeWarning)
    from core.detectors import DETECTORS
    from core.detectors.base import DetectorContext

    errors = []
    for i in args.cells:
        data = cell(i, args.cache)
        ctx = DetectorContext(volume=data["vol"], geometry=data["geo"], cell=data["recipe"].cell,
                              rules=data["recipe"].rules.get("delamination", {}))
        out = DETECTORS["delamination"](ctx)
        scale = np.array(data["vol"].spacing_um)
        for d in [d for d in data["truth"]["defects"] if d["kind"] == "delamination"]:
            centre = np.array(d["centroid_zyx_px"]) * scale
            near = [f.value for f in out.findings
                    if np.linalg.norm(np.array(f.centroid_zyx_px) * scale - centre) < 1000.0]
            true = d["rendered_volume_mm3"]
            err = (max(near) - true) / true if near else float("nan")
            errors.append(err)
            print(f"{data['desc']}: winding {d['winding']} at {d['angle_deg']:.0f}°, true {true:.4f} mm³, "
                  f"measured {[round(v, 4) for v in sorted(near, reverse=True)]}, error {err:+.2f}", flush=True)
    e = np.array(errors)
    seen = e[np.isfinite(e)]
    print(f"{seen.size} of {e.size} voids measured: mean error {seen.mean():+.3f}, RMS {np.sqrt((seen**2).mean()):.3f}, "
          f"within 20 %: {(np.abs(seen) <= 0.2).sum()} of {seen.size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
