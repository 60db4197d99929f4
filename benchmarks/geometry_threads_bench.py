"""Does the geometry's slice thread pool run in parallel? One thread against two, same process.

``core.geometry.roll.measure_geometry`` traces slices (``analyze_slice``) in a
``ThreadPoolExecutor``; that only helps where the work releases the GIL. This measures the
geometry once (for the frame, pitch and can), then runs the pool's part alone — every slice's
``analyze_slice``, as ``measure_geometry`` calls it — with 1 and with 2 threads, alternating
(``--rounds``), and prints wall seconds, process CPU seconds (every thread) and CPU / wall for
each, and the speed-up (one thread's wall / two threads' wall, the best round of each).

On a machine shared with other work the wall times include waiting for a core; the scheduler
shares cores per thread, so a pool whose threads really run in parallel still gets about
twice the CPU share of a single thread, and the speed-up stays meaningful. CPU / wall alone
is not (it is below 1 whenever other processes compete).

Run: ``.venv/bin/python benchmarks/geometry_threads_bench.py [VOLUME] [--slices 30] [--rounds 2]``
(default volume: issue 18's, see ``benchmarks/inspect_bench.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cells import issue18_cell  # noqa: E402
from core.geometry.layers import CAN_EDGE_MARGIN_PX, UnwrapGrid, analyze_slice, angles_for_radius  # noqa: E402
from core.geometry.roll import measure_geometry  # noqa: E402
from core.inspect import geometry_params  # noqa: E402
from core.io import read_volume  # noqa: E402
from core.io.volume import Volume  # noqa: E402
from core.recipe import load_recipe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("volume", nargs="?")
    parser.add_argument("--voxel-size", default=None)
    parser.add_argument("--slices", type=int, default=30, help="the first N slices of the roll's middle")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--recipe", default="18650-nmc")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cellqc-bench")
    opts = parser.parse_args()
    path = Path(opts.volume) if opts.volume else issue18_cell(opts.work)
    full = read_volume(path, voxel_size=opts.voxel_size)
    mid = full.shape[0] // 2
    lo = max(0, mid - opts.slices // 2)
    data = np.ascontiguousarray(full.array[lo:lo + opts.slices])  # in memory: no I/O in the timing
    volume = Volume(data, full.spacing_um, cell_id="threads", source=str(path))
    params = geometry_params(load_recipe(opts.recipe))
    print(f"{path}: slices {lo}–{lo + data.shape[0] - 1} of {full.shape}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    geometry = measure_geometry(volume, params, threads=1)
    print(f"  measure_geometry (1 thread, for the frame): {time.perf_counter() - t0:.2f} s wall")
    pixel_um, can_inner = geometry.pixel_um, geometry.can_inner_um
    n_angles = angles_for_radius(can_inner / pixel_um - CAN_EDGE_MARGIN_PX, params)
    rho_max_px = can_inner / pixel_um - CAN_EDGE_MARGIN_PX
    grids = {"grid": UnwrapGrid(geometry.frame_at(0), np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False),
                                np.arange(0.0, rho_max_px + 2 * CAN_EDGE_MARGIN_PX, params.radial_step_vox))}

    def one(z: int):  # as core.geometry.roll.measure_geometry's pool runs it
        return analyze_slice(volume.slice(z), z, pixel_um, geometry.frame_at(z), can_inner, params,
                             pitch_um=geometry.pitch_um, direction=geometry.direction, n_angles=n_angles, grids=grids)

    best: dict[int, tuple[float, float]] = {}
    for round_ in range(opts.rounds):
        for threads in (1, 2) if round_ % 2 == 0 else (2, 1):
            t0, c0 = time.perf_counter(), time.process_time()
            with ThreadPoolExecutor(max_workers=threads) as pool:
                traced = list(pool.map(one, range(volume.shape[0])))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert sum(s.is_roll for s in traced) == sum(s.is_roll for s in geometry.slices)
            print(f"  round {round_ + 1}, threads={threads}: wall {wall:7.2f} s  CPU {cpu:7.2f} s  "
                  f"CPU/wall {cpu / wall:4.2f}  (load {os.getloadavg()[0]:.2f})", flush=True)
            if threads not in best or wall < best[threads][0]:
                best[threads] = (wall, cpu)
    (w1, c1), (w2, c2) = best[1], best[2]
    print(f"best: 1 thread {w1:.2f} s wall / {c1:.2f} s CPU; 2 threads {w2:.2f} s wall / {c2:.2f} s CPU")
    print(f"speed-up of the pool (analyze_slice on {volume.shape[0]} slices): {w1 / w2:.2f}× "
          "(2.00 = perfectly parallel, 1.00 = none); "
          f"CPU cost of the second thread: {c2 / c1:.2f}×")


if __name__ == "__main__":
    main()
