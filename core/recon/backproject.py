"""Vectorised parallel-beam backprojection (numpy only, threads over angle groups).

Pixel-driven backprojection with linear interpolation on the detector. Two things make it
fast in plain numpy:

* **90° symmetry.** On a square grid centred on the rotation axis, the detector coordinate
  map of angle ``θ + 90°`` is the map of ``θ`` turned by 90° (``numpy.rot90``). Angles are
  grouped by ``θ mod 90°``; the coordinate map, integer index and interpolation weight are
  computed once per group and reused by every member (2 members for a 180° scan whose step
  divides 90°, 4 for a 360° scan), and each member's contribution is accumulated in its own
  image that is turned back once at the end.
* **Threads.** numpy's gathers and arithmetic release the GIL, so angle groups are split
  between threads, each with its own accumulator.

Only pixels inside the circle the detector sees at every angle are computed (when asked).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def default_threads() -> int:
    """Threads used for backprojection: ``$CELLQC_RECON_THREADS`` or the CPU count (≤ 8)."""
    env = os.environ.get("CELLQC_RECON_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return max(1, min(8, os.cpu_count() or 1))


def group_angles(angles_deg: np.ndarray) -> list[tuple[float, list[tuple[int, int]]]]:
    """Group angles by their remainder modulo 90°.

    Parameters
    ----------
    angles_deg : numpy.ndarray
        Angles in degrees.

    Returns
    -------
    list of (base_deg, [(quarter_turns, angle_index), ...])
        ``angle = base + 90 · quarter_turns (mod 360)`` with ``0 ≤ base < 90``.
    """
    theta = np.mod(np.asarray(angles_deg, dtype=float), 360.0)
    quarters = np.floor(theta / 90.0 + 1e-9)
    base = theta - 90.0 * quarters
    base = np.where(base < 0, 0.0, base)
    groups: dict[float, list[tuple[int, int]]] = {}
    for i, (b, q) in enumerate(zip(base, quarters, strict=True)):
        key = round(float(b), 6)
        k = int(q) % 4
        if key >= 90.0:
            key, k = 0.0, (k + 1) % 4
        groups.setdefault(key, []).append((k, i))
    return sorted(groups.items())


def _pixel_list(size: int, radius: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices, x and y (pixels, y up) of the grid pixels to compute."""
    c = (size - 1) / 2.0
    coords = np.arange(size, dtype=np.float64) - c
    xx = np.broadcast_to(coords[None, :], (size, size))
    yy = np.broadcast_to(-coords[:, None], (size, size))
    if radius is None:
        flat = np.arange(size * size)
    else:
        flat = np.flatnonzero((xx * xx + yy * yy).ravel() <= radius * radius)
    return flat, xx.ravel()[flat], yy.ravel()[flat]


def backproject_parallel(
    filtered: np.ndarray,
    angles_deg: np.ndarray,
    center: float,
    size: int,
    *,
    radius: float | None = None,
    threads: int | None = None,
    max_bytes: float = 256e6,
) -> np.ndarray:
    """Sum of filtered projections smeared back over the grid (no scaling).

    Parameters
    ----------
    filtered : numpy.ndarray
        ``(n_angles, n_rows, n_det)`` filtered projections (float32).
    angles_deg : numpy.ndarray
        ``n_angles`` angles in degrees.
    center : float
        Column of the rotation axis in ``filtered``.
    size : int
        Output grid N (the axis at pixel ``(N - 1) / 2``).
    radius : float, optional
        Compute only pixels within this radius of the axis (pixels); others are 0.
    threads : int, optional
        Default :func:`default_threads`.
    max_bytes : float
        Rough bound on the accumulators' memory; rows are processed in slabs to keep it.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, N, N)`` float32, ``Σ_θ q_θ(x cos θ + y sin θ)``.
    """
    filtered = np.asarray(filtered, dtype=np.float32)
    n_angles, n_rows, n_det = filtered.shape
    angles_deg = np.asarray(angles_deg, dtype=float)
    if angles_deg.shape != (n_angles,):
        raise ValueError(f"{angles_deg.size} angles for {n_angles} projections")
    threads = default_threads() if threads is None else max(1, int(threads))
    flat, px, py = _pixel_list(size, radius)
    t_max = float(np.sqrt(np.max(px * px + py * py))) + 2.0 if flat.size else 2.0
    pad_l = max(0, int(math.ceil(t_max - center)) + 1)
    pad_r = max(0, int(math.ceil(t_max + center - (n_det - 1))) + 2)
    groups = group_angles(angles_deg)
    quarters_used = sorted({k for _, members in groups for k, _ in members})
    n_acc = len(quarters_used)
    slot = {k: i for i, k in enumerate(quarters_used)}
    per_row = 4.0 * flat.size * n_acc * min(threads, len(groups))
    row_chunk = max(1, min(n_rows, int(max_bytes // max(per_row, 1.0))))
    out = np.zeros((n_rows, size, size), dtype=np.float32)
    px32 = px.astype(np.float32)
    py32 = py.astype(np.float32)
    offset = np.float32(center + pad_l)

    for r0 in range(0, n_rows, row_chunk):
        r1 = min(n_rows, r0 + row_chunk)
        rows = r1 - r0
        padded = np.zeros((n_angles, rows, n_det + pad_l + pad_r), dtype=np.float32)
        padded[:, :, pad_l : pad_l + n_det] = filtered[:, r0:r1]
        slope = np.zeros_like(padded)
        slope[:, :, :-1] = padded[:, :, 1:] - padded[:, :, :-1]

        def work(chunk: list[Any], padded: np.ndarray = padded, slope: np.ndarray = slope,
                 rows: int = rows) -> np.ndarray:
            acc = np.zeros((n_acc, rows, flat.size), dtype=np.float32)
            tmp = np.empty((rows, flat.size), dtype=np.float32)
            for base, members in chunk:
                b = math.radians(base)
                t = px32 * np.float32(math.cos(b))
                t += py32 * np.float32(math.sin(b))
                t += offset
                idx = t.astype(np.intp)
                frac = t - idx
                for k, ia in members:
                    a = slot[k]
                    if rows == 1:
                        acc[a, 0] += padded[ia, 0].take(idx)
                        np.multiply(slope[ia, 0].take(idx), frac, out=tmp[0])
                        acc[a, 0] += tmp[0]
                    else:
                        acc[a] += np.take(padded[ia], idx, axis=1)
                        np.multiply(np.take(slope[ia], idx, axis=1), frac, out=tmp)
                        acc[a] += tmp
            return acc

        n_workers = min(threads, len(groups))
        chunks = [groups[i::n_workers] for i in range(n_workers)]
        if n_workers == 1:
            results = [work(chunks[0])]
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                results = list(pool.map(work, chunks))
        total = results[0]
        for extra in results[1:]:
            total += extra
        image = np.zeros((rows, size * size), dtype=np.float32)
        for k in quarters_used:
            image[:] = 0.0
            image[:, flat] = total[slot[k]]
            # The map of θ + 90k is the map of θ turned k times (numpy.rot90 convention).
            out[r0:r1] += np.rot90(image.reshape(rows, size, size), k, axes=(1, 2))
    return out
