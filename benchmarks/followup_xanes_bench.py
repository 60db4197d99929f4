"""Edge-energy map of 1 million voxels × 63 energies: vectorised vs a per-spectrum loop.

Prints the vectorised time, the per-spectrum loop's time (measured on a sample of spectra in
the same run, scaled to all of them) and their ratio. Usage: python bench_followup_xanes.py [N]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from core.followup import xanes as X


def per_spectrum(e: np.ndarray, mu: np.ndarray, e0: float) -> tuple[float, float, float]:
    """The same work, one spectrum at a time (what a fitting-library loop does, minus the library)."""
    pre, post = e <= e0 - 15, e >= e0 + 25
    cp = np.polyfit(e[pre], mu[pre], 1)
    cq = np.polyfit(e[post], mu[post], 1)
    norm = (mu - np.polyval(cp, e)) / (np.polyval(cq, e0) - np.polyval(cp, e0))
    w = (e >= e0 - 20) & (e <= e0 + 30)
    ew, yw = e[w], norm[w]
    i = int(np.argmax(yw))
    below = np.flatnonzero(yw[:i] < 0.5)
    k = below[-1] if below.size else 0
    half = ew[k] + (0.5 - yw[k]) * (ew[k + 1] - ew[k]) / (yw[k + 1] - yw[k])
    d = np.gradient(norm, e)
    return half, float(e[w][np.argmax(d[w])]), float(ew[i])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    g = X.seed_energy_grid()
    rng = np.random.default_rng(0)
    ref_e = np.linspace(8150.0, 8600.0, 901)
    ref = 1 / (1 + np.exp(-(ref_e - 8342) / 1.5)) + 0.4 * np.exp(-(((ref_e - 8349) / 3.0) ** 2))
    mu = X.mix_references(g, ref_e, ref[None], np.ones((1, n)), noise=0.03, rng=rng).astype(np.float32)
    t0 = time.perf_counter()
    maps = X.edge_energy_map(mu, g, e0=8342.0)
    vec = time.perf_counter() - t0
    sample = min(n, 5000)
    t0 = time.perf_counter()
    loop_half = [per_spectrum(g, mu[:, j].astype(np.float64), 8342.0)[0] for j in range(sample)]
    loop = (time.perf_counter() - t0) * n / sample
    agree = np.nanmax(np.abs(np.asarray(loop_half) - maps.e0_half[:sample]))
    print(f"voxels {n}  energies {g.size}")
    print(f"vectorised        {vec:8.2f} s  ({n / vec / 1e6:.2f} M spectra/s)")
    print(f"per-spectrum loop {loop:8.2f} s  (from {sample} spectra)")
    print(f"ratio             {loop / vec:8.1f} x")
    print(f"max |ΔE½| vectorised vs loop on the sample: {agree:.2e} eV")


if __name__ == "__main__":
    main()
