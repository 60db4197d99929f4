"""Time a full inspection of a 1000 × 1000 × 100 uint16 volume against a baseline.

Baseline, measured in the same run: read the volume, convert it to float32, one 3-D Gaussian
filter with σ = 1. Prints both times, their ratio and the inspection's peak memory (traced
allocations, tracemalloc) against the volume's bytes.

Run: ``.venv/bin/python benchmarks/inspect_bench.py [N_SLICES]``
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cells import benchmark_cell  # noqa: E402
from core.inspect import inspect_volume  # noqa: E402
from core.io import read_volume  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    path, _ = benchmark_cell(n)

    t0 = time.perf_counter()
    volume = read_volume(path)
    data = np.asarray(volume.array, dtype=np.float32)
    ndimage.gaussian_filter(data, 1.0)
    baseline = time.perf_counter() - t0
    nbytes = volume.nbytes
    del data
    print(f"volume {volume.shape} {volume.dtype} ({nbytes / 1e6:.0f} MB) at {volume.spacing_um[1]:.2f} µm")
    print(f"baseline: read + float32 + 3-D Gaussian σ=1     {baseline:7.2f} s")

    volume = read_volume(path)
    tracemalloc.start()
    t0 = time.perf_counter()
    inspection = inspect_volume(volume)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"inspection ({inspection.verdict}, {len(inspection.result['findings'])} findings)  {elapsed:7.2f} s   ratio {elapsed / baseline:5.2f}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in inspection.result["timings_s"].items())
    print(f"  stages (s): {stages}")
    print(f"peak traced memory {peak / 1e6:.0f} MB = {peak / nbytes:.2f} × the volume's bytes")


if __name__ == "__main__":
    main()
