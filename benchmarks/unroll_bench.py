"""Time the virtual unrolling of a 1000 × 1000 × 100 volume against one map_coordinates pass.

Prints seconds and ratios measured in the same process (absolute seconds mean little on a
shared machine):
- unwrap: the polar (elliptical) resampling of every slice at the sampling the geometry stage
  uses (0.5 voxel radially, ~1 voxel of arc at the can) against one order-1
  ``scipy.ndimage.map_coordinates`` pass over the same volume (identity coordinates);
- geometry: the whole geometry stage (can, axis, roll frame, layer tracking, sheet edges).

Run: ``.venv/bin/python benchmarks/unroll_bench.py [N_SLICES]``
"""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from benchmarks._cells import benchmark_cell  # noqa: E402
from core.geometry import measure_geometry  # noqa: E402
from core.geometry.layers import CAN_EDGE_MARGIN_PX, GeometryParams, angles_for_radius  # noqa: E402
from core.geometry.unwrap import UnwrapGrid, unwrap  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    _, volume = benchmark_cell(n)
    array = volume.array.astype(np.float32)
    nz, ny, nx = array.shape
    print(f"volume {nz} x {ny} x {nx} ({array.size / 1e6:.0f} Mvoxel)")

    t0 = time.perf_counter()
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    for z in range(nz):
        ndimage.map_coordinates(array[z], [yy, xx], order=1, prefilter=False)
    baseline = time.perf_counter() - t0
    print(f"baseline: map_coordinates (order 1) over the volume   {baseline:7.2f} s")

    geometry = measure_geometry(volume)
    params = GeometryParams()
    can_inner = geometry.to_json()["can_inner_radius_um"] / geometry.pixel_um
    rho = np.arange(0.0, can_inner - CAN_EDGE_MARGIN_PX + 2 * CAN_EDGE_MARGIN_PX, params.radial_step_vox)
    n_t = angles_for_radius(can_inner - CAN_EDGE_MARGIN_PX, params)
    t = np.linspace(0, 2 * np.pi, n_t, endpoint=False)
    grid = UnwrapGrid(geometry.frame_at(0), t, rho)
    t0 = time.perf_counter()
    for z in range(nz):
        unwrap(array[z], geometry.frame_at(z), t, rho, grid=grid)
    unwrap_s = time.perf_counter() - t0
    print(f"unwrap of every slice ({n_t} angles x {rho.size} radii)   {unwrap_s:7.2f} s   ratio {unwrap_s / baseline:5.2f}")

    t0 = time.perf_counter()
    measure_geometry(volume)
    geometry_s = time.perf_counter() - t0
    print(f"whole geometry stage (layers, sheets, maps' data)     {geometry_s:7.2f} s   ratio {geometry_s / baseline:5.2f}")


if __name__ == "__main__":
    main()
