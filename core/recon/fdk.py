"""Cone-beam FDK reconstruction (Feldkamp–Davis–Kress) for a circular orbit, flat detector.

Derivation (Kak & Slaney ch. 3.6; Feldkamp et al. 1984), with the detector rescaled to a
virtual detector through the rotation axis (pitch ``du' = du · sod / sdd``):

1. cosine weighting ``w(u', v') = sod / sqrt(sod² + u'² + v'²)``;
2. ramp filtering along detector rows in physical units: ``q = (1 / du') · (w p) ⊛ h`` with
   the discrete Ram-Lak kernel ``h`` of unit pitch (see :mod:`core.recon.filters`);
3. weighted backprojection over the full turn,
   ``f(x, y, z) = ½ ∫₀^{2π} U² q_β(u', v') dβ ≈ (π / K) Σ_β U² q_β`` with
   ``U = sod / (sod - s)``, ``s = -x sin β + y cos β``, ``u' = U (x cos β + y sin β)``,
   ``v' = U z``.

For ``sod → ∞`` this is parallel-beam FBP over 360° with the same scale, which the tests
check. Geometry conventions are those of :mod:`core.recon.phantoms`. The result is the
attenuation per unit of length of ``sod``/``sdd``/``det_spacing``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from core.recon.backproject import default_threads, group_angles
from core.recon.fbp import default_angles
from core.recon.filters import filter_projections


def _pair(value: float | Sequence[float]) -> tuple[float, float]:
    if np.ndim(value) == 0:
        v = float(value)  # type: ignore[arg-type]
        return v, v
    a, b = value  # type: ignore[misc]
    return float(a), float(b)


def fdk(
    projections: np.ndarray,
    angles_deg: Sequence[float] | np.ndarray | None = None,
    *,
    sod: float,
    sdd: float,
    det_spacing: float | Sequence[float] = 1.0,
    det_center: Sequence[float] | None = None,
    shape: Sequence[int] | None = None,
    voxel_size: float | None = None,
    filter_name: str = "ramp",
    pad: int = 0,
    pad_mode: str = "zero",
    threads: int | None = None,
    z_chunk: int | None = None,
) -> np.ndarray:
    """Reconstruct cone-beam projections from a full circular orbit with FDK.

    Parameters
    ----------
    projections : numpy.ndarray
        ``(n_angles, n_rows, n_cols)`` line integrals (``-log(I / I0)``).
    angles_deg : array_like, optional
        Source angles in degrees; default 360° equally spaced.
    sod, sdd : float
        Source–axis and source–detector distances (same length unit as ``det_spacing``).
    det_spacing : float or (row, column)
        Detector pixel pitch at the detector.
    det_center : (row, column), optional
        Detector pixel hit by the central ray (the axis column is the centre of rotation);
        default the detector centre.
    shape : (nz, ny, nx), optional
        Output grid; default ``(n_rows, n_cols, n_cols)``.
    voxel_size : float, optional
        Output voxel size; default the virtual detector pitch ``du · sod / sdd``.
    filter_name : str
        Ramp window (see :func:`core.recon.filters.ramp_filter`).
    pad, pad_mode
        Extension of truncated projections before filtering (local tomography).
    threads : int, optional
        Backprojection threads.
    z_chunk : int, optional
        Slices reconstructed at a time (bounds memory); default so that one chunk holds
        about 16 M voxels.

    Returns
    -------
    numpy.ndarray
        ``(nz, ny, nx)`` float32, indexed (z, y, x) with z increasing with detector row.

    Raises
    ------
    ValueError
        Inconsistent geometry or shapes.
    """
    proj = np.asarray(projections, dtype=np.float32)
    if proj.ndim != 3:
        raise ValueError(f"expected projections (angles, rows, cols), got shape {proj.shape}")
    n_angles, n_rows, n_cols = proj.shape
    if not (sod > 0 and sdd > sod):
        raise ValueError(f"need 0 < sod < sdd, got sod={sod}, sdd={sdd}")
    angles = default_angles(n_angles, full_turn=True) if angles_deg is None else np.asarray(angles_deg, float)
    if angles.shape != (n_angles,):
        raise ValueError(f"{angles.size} angles for {n_angles} projections")
    dv, du = _pair(det_spacing)
    cv, cu = ((n_rows - 1) / 2.0, (n_cols - 1) / 2.0) if det_center is None else _pair(det_center)
    mag = sdd / sod
    dvv, duv = dv / mag, du / mag  # virtual detector at the axis
    nz, ny, nx = (n_rows, n_cols, n_cols) if shape is None else (int(s) for s in shape)
    if ny != nx:
        raise ValueError(f"the slice grid must be square, got {ny} × {nx}")
    vox = duv if voxel_size is None else float(voxel_size)
    threads = default_threads() if threads is None else max(1, int(threads))

    # 1. cosine weighting on the virtual detector
    uu = (np.arange(n_cols) - cu) * duv
    vv = (np.arange(n_rows) - cv) * dvv
    weight = (sod / np.sqrt(sod * sod + uu[None, :] ** 2 + vv[:, None] ** 2)).astype(np.float32)
    # 2. ramp filter along rows, in physical units of the virtual detector
    filtered = filter_projections(proj * weight, filter_name, pad=pad, pad_mode=pad_mode, center=cu,
                                  scale=1.0 / duv)
    cu_p = cu + pad
    # 3. weighted backprojection; 2 zero rows and columns on each side take out-of-range hits
    q = np.zeros((n_angles, n_rows + 4, filtered.shape[-1] + 4), dtype=np.float32)
    q[:, 2:-2, 2:-2] = filtered
    width = q.shape[-1]
    max_row, max_col = q.shape[1] - 2, width - 2

    c_xy = (nx - 1) / 2.0
    coords = (np.arange(nx) - c_xy) * vox
    xg = np.broadcast_to(coords[None, :], (ny, nx)).ravel()
    yg = np.broadcast_to(-coords[:, None], (ny, nx)).ravel()
    zc = (np.arange(nz) - (nz - 1) / 2.0) * vox
    groups = group_angles(angles)
    quarters = sorted({k for _, members in groups for k, _ in members})
    slot = {k: i for i, k in enumerate(quarters)}
    chunk = z_chunk or max(1, int(16e6 // (ny * nx)))
    out = np.empty((nz, ny, nx), dtype=np.float32)
    n_workers = max(1, min(threads, len(groups)))

    for z0 in range(0, nz, chunk):
        z1 = min(nz, z0 + chunk)
        zs = zc[z0:z1, None]

        def work(part: list[Any], zs: np.ndarray = zs) -> np.ndarray:
            acc = np.zeros((len(quarters), zs.shape[0], ny * nx), dtype=np.float32)
            for base, members in part:
                b = math.radians(base)
                t = xg * math.cos(b) + yg * math.sin(b)
                s = -xg * math.sin(b) + yg * math.cos(b)
                mag_u = sod / (sod - s)
                col = t * mag_u / duv + (cu_p + 2.0)
                row = zs * (mag_u / dvv)[None, :] + (cv + 2.0)
                ci = np.clip(np.floor(col), 0, max_col).astype(np.intp)
                cf = (col - ci).astype(np.float32)
                ri = np.clip(np.floor(row), 0, max_row).astype(np.intp)
                rf = (row - ri).astype(np.float32)
                w2 = (mag_u * mag_u).astype(np.float32)
                flat = ri * width + ci[None, :]
                for k, ia in members:
                    qa = q[ia].ravel()
                    top = qa.take(flat)
                    top += cf * (qa.take(flat + 1) - top)
                    bottom = qa.take(flat + width)
                    bottom += cf * (qa.take(flat + width + 1) - bottom)
                    top += rf * (bottom - top)
                    top *= w2
                    acc[slot[k]] += top
            return acc

        parts = [groups[i::n_workers] for i in range(n_workers)]
        if n_workers == 1:
            results = [work(parts[0])]
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                results = list(pool.map(work, parts))
        total = results[0]
        for extra in results[1:]:
            total += extra
        slab = np.zeros((z1 - z0, ny, nx), dtype=np.float32)
        for k in quarters:
            slab += np.rot90(total[slot[k]].reshape(z1 - z0, ny, nx), k, axes=(1, 2))
        out[z0:z1] = slab
    out *= np.float32(np.pi / n_angles)
    return out
