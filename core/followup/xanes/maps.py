"""Per-voxel XANES maps: normalisation, edge energies and a quality mask for a whole stack.

The stack is processed in blocks of spectra (bounded memory); HDF5 stacks are read slab by
slab; blocks may run on several threads (numpy releases the GIL).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.followup.xanes._base import (
    EDGE_WINDOW,
    as_block,
    check_energies,
    derivative,
    parabola_vertex,
)
from core.followup.xanes.normalisation import estimate_e0, normalize
from core.io.validate import check_memory_budget, memory_budget

#: Default quality thresholds: edge jump / pre-edge noise, post-edge residual / jump.
MIN_SNR = 10.0
MAX_POST_RESIDUAL = 0.15
#: Spectra processed at once (bounded memory).
CHUNK_SPECTRA = 8192


@dataclass
class EdgeMaps:
    """Per-voxel XANES results, each of the stack's spatial shape.

    Attributes
    ----------
    e0_half, e0_deriv, white_line : ndarray
        Edge energies (eV): half jump, maximum derivative, white-line peak.
    edge_jump : ndarray
        Edge jump (input units; proportional to the Ni content along the ray / in the voxel).
    snr : ndarray
        Edge jump / pre-edge residual RMS.
    post_residual : ndarray
        Post-edge residual RMS / edge jump.
    mask : ndarray of bool
        Quality mask: jump > 0, ``snr ≥ min_snr``, ``post_residual ≤ max_post_residual``,
        and a half-jump crossing found.
    e0 : float
        Nominal edge energy used (eV).
    energies : ndarray
        The energies (eV).
    params : dict
        The settings used.
    """

    e0_half: np.ndarray
    e0_deriv: np.ndarray
    white_line: np.ndarray
    edge_jump: np.ndarray
    snr: np.ndarray
    post_residual: np.ndarray
    mask: np.ndarray
    e0: float
    energies: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts and statistics of the masked edge energies."""
        keep = self.mask
        vals = self.e0_half[keep]
        out: dict[str, Any] = {
            "n_voxels": int(self.mask.size),
            "n_kept": int(keep.sum()),
            "kept_fraction": float(keep.mean()) if keep.size else 0.0,
            "e0_nominal_ev": self.e0,
        }
        if vals.size:
            out.update(
                e0_half_mean_ev=float(np.mean(vals)),
                e0_half_std_ev=float(np.std(vals)),
                e0_half_p05_ev=float(np.percentile(vals, 5)),
                e0_half_p95_ev=float(np.percentile(vals, 95)),
                e0_deriv_mean_ev=float(np.nanmean(self.e0_deriv[keep])),
                white_line_mean_ev=float(np.nanmean(self.white_line[keep])),
            )
        return out


_BLOCK_KEYS = ("half", "deriv", "wl", "jump", "snr", "res")


def _argmax_rows(a: np.ndarray) -> np.ndarray:
    """First row index of each column's maximum (as ``argmax(axis=0)``, via fast reductions)."""
    m = a.shape[0]
    weights = np.arange(m, 0, -1, dtype=np.int32)[:, None]
    first = m - ((a == a.max(axis=0)) * weights).max(axis=0)
    return np.clip(first, 0, m - 1)


def _last_true_rows(c: np.ndarray) -> np.ndarray:
    """Last row index where each column is True; -1 where it never is."""
    weights = np.arange(1, c.shape[0] + 1, dtype=np.int32)[:, None]
    return (c * weights).max(axis=0) - 1


def _edge_block(
    e: np.ndarray,
    y: np.ndarray,
    e0: float,
    win: tuple[float, float],
    pre_range: tuple[float, float] | None,
    post_range: tuple[float, float] | None,
) -> dict[str, np.ndarray]:
    """Edge energies and quality numbers of one block of spectra (n, N).

    The same results as :func:`edge_half_jump`, :func:`edge_max_derivative` and
    :func:`white_line` on the normalised spectra, computed with fewer passes: only the edge
    region is normalised (one extra energy on each side keeps the derivative identical),
    and spectra with a non-finite value are set aside once instead of in every step.
    """
    finite = np.isfinite(y).all(axis=0)
    if not finite.all():
        y = np.where(finite[None, :], y, 0.0)
    inside = np.flatnonzero((e >= win[0]) & (e <= win[1]))
    if inside.size < 4:
        raise ValueError(
            f"only {inside.size} energies in the edge window {win[0]:.1f}–{win[1]:.1f} eV; "
            "check E0 and the window"
        )
    rows = slice(max(int(inside[0]) - 1, 0), min(int(inside[-1]) + 2, e.size))
    nz = normalize(e, y, e0=e0, pre_range=pre_range, post_range=post_range, rows=rows)
    ew, norm = e[rows], nz.norm
    m, n = norm.shape
    cols = np.arange(n)

    def span(lo: float, hi: float) -> tuple[int, int]:
        idx = np.flatnonzero((ew >= lo) & (ew <= hi))
        return int(idx[0]), int(idx[-1]) + 1

    with np.errstate(divide="ignore", invalid="ignore"):
        # Half jump: last crossing of 0.5 below the maximum of the window.
        a, b = span(*win)
        sub = norm[a:b]
        peak = _argmax_rows(sub)
        cand = sub < 0.5
        cand &= np.arange(b - a)[:, None] < peak[None, :]
        last = _last_true_rows(cand)
        has = last >= 0
        i0 = np.clip(last, 0, b - a - 2)
        y0, y1 = sub[i0, cols], sub[i0 + 1, cols]
        es = ew[a:b]
        half = es[i0] + (0.5 - y0) / (y1 - y0) * (es[i0 + 1] - es[i0])
        half = np.where(has & (y1 >= 0.5) & np.isfinite(half), half, np.nan)
        # Maximum derivative, from the neighbours of the window's energies only.
        d0, d1 = span(win[0], win[1] - 10.0)
        g0, g1 = max(d0 - 1, 0), min(d1 + 1, m)
        grad = derivative(ew[g0:g1], norm[g0:g1])[d0 - g0 : d1 - g0]
        deriv = parabola_vertex(ew[d0:d1], grad, _argmax_rows(grad))
        # White line.
        w0, w1 = span(win[0] + 5.0, win[1])
        wl = parabola_vertex(ew[w0:w1], norm[w0:w1], _argmax_rows(norm[w0:w1]))
        jump = nz.edge_jump
        finite = finite & (jump != 0)  # no jump: nothing to normalise
        out = {
            "half": half,
            "deriv": deriv,
            "wl": wl,
            "jump": jump,
            "snr": jump / np.where(nz.pre_rms > 0, nz.pre_rms, np.nan),
            "res": nz.post_rms / np.abs(np.where(jump != 0, jump, np.nan)),
        }
    if not finite.all():
        for key in out:
            out[key] = np.where(finite, out[key], np.nan)
    return out


def _collect(
    item: tuple[Any, float],
    parts: dict[str, list[np.ndarray]],
    progress: Callable[[float, str], None] | None,
) -> None:
    future, frac = item
    result = future.result()
    for key in _BLOCK_KEYS:
        parts[key].append(result[key])
    if progress is not None:
        progress(frac, "edge-energy map")


def edge_energy_map(
    data: Any,
    energies: Sequence[float] | None = None,
    *,
    e0: float | None = None,
    pre_range: tuple[float, float] | None = None,
    post_range: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    min_snr: float = MIN_SNR,
    max_post_residual: float = MAX_POST_RESIDUAL,
    chunk: int = CHUNK_SPECTRA,
    workers: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> EdgeMaps:
    """Normalise every spectrum of a XANES stack and map its edge energies.

    Parameters
    ----------
    data : ndarray or XanesStack
        (n_energies, *spatial) spectra, or a :class:`core.followup.io.XanesStack` (read in
        slabs along the first spatial axis, flat field applied).
    energies : sequence of float, optional
        eV, increasing; taken from the stack when ``data`` is one.
    e0 : float, optional
        Nominal edge energy (eV); default the max-derivative energy of the mean spectrum.
    pre_range, post_range : (float, float), optional
        Fit ranges (eV), see :func:`normalize`.
    window : (float, float), optional
        Absolute range (eV) searched for the edge and the white line (default E0-20 … E0+30).
    min_snr, max_post_residual : float
        Quality-mask thresholds.
    chunk : int
        Spectra per block (memory bound; small blocks stay in the CPU cache).
    workers : int, optional
        Threads working on blocks at once (numpy releases the GIL); default 1.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    EdgeMaps
    """
    from core.followup.io import XanesStack

    if isinstance(data, XanesStack):
        e = check_energies(data.energies)
        spatial = data.spatial_shape
        # Six float64 maps and a mask of the stack's spatial shape are kept whole, and one
        # slab is read to find E0: refuse a declared shape (a lazy HDF5 stack) that would
        # not fit before reading anything.
        budget = memory_budget()
        check_memory_budget((len(_BLOCK_KEYS) + 1, *spatial), np.float64, budget,
                            data.source or "XANES stack")
        check_memory_budget((e.size, *spatial[1:]), np.float64, budget,
                            data.source or "XANES stack")
        rows = spatial[0]
        per_row = math.prod(spatial[1:])
        step = max(1, chunk // max(per_row, 1))

        def blocks() -> Any:
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                yield data.block(r0, r1).reshape(e.size, -1), r1 / rows

        if e0 is None:
            mid = rows // 2
            e0 = estimate_e0(e, data.block(mid, mid + 1))
    else:
        e = check_energies(energies)
        arr = np.asarray(data)
        block, spatial = as_block(arr, e.size)
        if e0 is None:
            e0 = estimate_e0(e, block)

        def blocks() -> Any:
            n = block.shape[1]
            for c0 in range(0, n, chunk):
                yield block[:, c0 : c0 + chunk], min(1.0, (c0 + chunk) / n)

    win = window or (e0 + EDGE_WINDOW[0], e0 + EDGE_WINDOW[1])

    def one(y: np.ndarray) -> dict[str, np.ndarray]:
        return _edge_block(e, y, float(e0), win, pre_range, post_range)

    parts: dict[str, list[np.ndarray]] = {k: [] for k in _BLOCK_KEYS}
    n_workers = max(1, int(workers or 1))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        pending: list[Any] = []
        for y, frac in blocks():  # at most 2 × workers blocks in flight: bounded memory
            pending.append((pool.submit(one, y), frac))
            while len(pending) > 2 * n_workers:
                _collect(pending.pop(0), parts, progress)
        for item in pending:
            _collect(item, parts, progress)
    maps = {k: np.concatenate(v).reshape(spatial) for k, v in parts.items()}
    mask = (
        (maps["jump"] > 0)
        & (np.nan_to_num(maps["snr"], nan=0.0) >= min_snr)
        & (np.nan_to_num(maps["res"], nan=np.inf) <= max_post_residual)
        & np.isfinite(maps["half"])
    )
    return EdgeMaps(
        e0_half=maps["half"],
        e0_deriv=maps["deriv"],
        white_line=maps["wl"],
        edge_jump=maps["jump"],
        snr=maps["snr"],
        post_residual=maps["res"],
        mask=mask,
        e0=float(e0),
        energies=e,
        params={
            "window_ev": list(win),
            "pre_range_ev": list(pre_range) if pre_range else None,
            "post_range_ev": list(post_range) if post_range else None,
            "min_snr": min_snr,
            "max_post_residual": max_post_residual,
        },
    )

