"""Timing of the synthetic cell renderer against a baseline measured in the same process.

Renders an 18650 at 18.85 µm (≈ 1000 × 1000 px) with 32 slices through the middle of the roll,
default defects and default artifacts (blur, noise, rings, cupping), and compares it with the
cost of the bare minimum any such render must do: fill an array of the same size with Gaussian
noise and run one ``gaussian_filter`` pass over every slice. Prints seconds and the ratio
(render / baseline); the ratio, not the seconds, is what to compare across machines. It also
renders the idealised roll (``anatomy=False``, the renderer before the anatomy) and prints the
cost of the anatomy as the ratio of the two renders.

Run: ``.venv/bin/python benchmarks/phantom_bench.py [--slices N] [--voxel-size UM] [--repeat R]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from core.phantom import Artifacts, CellSpec, default_defects, make_cell


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--voxel-size", type=float, default=18.85)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    spec = CellSpec(kind="18650", voxel_size_um=args.voxel_size, n_slices=args.slices)
    ideal = CellSpec(kind="18650", voxel_size_um=args.voxel_size, n_slices=args.slices, anatomy=False)
    defects = default_defects(spec, np.random.default_rng(0))
    shape = make_cell(
        CellSpec(kind="18650", voxel_size_um=args.voxel_size, n_slices=1), [], Artifacts.clean()
    ).volume.shape
    shape = (args.slices, shape[1], shape[2])

    def baseline() -> None:
        rng = np.random.default_rng(0)
        vol = rng.standard_normal(shape, dtype=np.float32)
        for z in range(shape[0]):
            vol[z] = ndimage.gaussian_filter(vol[z], 0.7)

    def render() -> None:
        make_cell(spec, defects, Artifacts(), seed=0)

    def render_clean() -> None:
        make_cell(spec, defects, Artifacts.clean(), seed=0)

    def render_ideal() -> None:
        make_cell(ideal, defects, Artifacts(), seed=0)

    render()  # warm-up (imports, page faults)
    t_base = best_of(args.repeat, baseline)
    t_render = best_of(args.repeat, render)
    t_clean = best_of(args.repeat, render_clean)
    t_ideal = best_of(args.repeat, render_ideal)
    voxels = int(np.prod(shape))
    print(
        f"volume {shape[0]} x {shape[1]} x {shape[2]} ({voxels / 1e6:.1f} Mvoxel), "
        f"18650 at {args.voxel_size} µm, 4 defects; best of {args.repeat}"
    )
    print(f"baseline (normal fill + 1 gaussian_filter pass): {t_base:7.3f} s")
    print(
        f"render, default artifacts:                       {t_render:7.3f} s   ratio {t_render / t_base:5.2f}"
    )
    print(
        f"render, clean (no artifacts):                    {t_clean:7.3f} s   ratio {t_clean / t_base:5.2f}"
    )
    print(
        f"render, idealised roll (no anatomy), artifacts:  {t_ideal:7.3f} s   ratio {t_ideal / t_base:5.2f}"
    )
    print(f"anatomy cost: render / idealised render = {t_render / t_ideal:5.2f}")


if __name__ == "__main__":
    main()
