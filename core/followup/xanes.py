"""XANES analysis, vectorised over all pixels/voxels at once.

Every per-spectrum quantity is computed for a whole block of spectra ``(n_energies, N)`` in
closed form — no per-spectrum fitting loop:

* normalisation: pre-edge and post-edge lines fitted by linear least squares through one
  pseudo-inverse shared by all spectra (``coef = pinv(A) @ Y``); ``norm = (μ - pre)/jump``
  with ``jump = post(E0) - pre(E0)``, optionally flattened above E0 (as Athena does);
* edge energy: energy at half the normalised jump (linear interpolation of the last crossing
  below the white line), maximum of dμ/dE (parabolic refinement), white-line peak
  (parabolic refinement);
* quality: edge jump against the pre-edge noise, post-edge line residual;
* linear-combination fitting with end members (sum to one, non-negative), closed form.

Energies are in eV throughout. :func:`seed_energy_grid` is the 63-energy Ni K-edge grid of
the seed study (8178–8570 eV: 10 eV pre-edge, 1 eV near the edge, 20 eV post-edge).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError

#: Default half-width windows relative to the nominal edge energy E0 (eV).
PRE_EDGE_END = -15.0
POST_EDGE_START = 25.0
#: Window (relative to E0) in which edge and white line are looked for.
EDGE_WINDOW = (-20.0, 30.0)
#: Default quality thresholds: edge jump / pre-edge noise, post-edge residual / jump.
MIN_SNR = 10.0
MAX_POST_RESIDUAL = 0.15
#: Spectra processed at once (bounded memory).
CHUNK_SPECTRA = 8192


def seed_energy_grid() -> np.ndarray:
    """The seed study's Ni K-edge energies: 63 values from 8178 to 8570 eV.

    Returns
    -------
    ndarray
        8178–8328 eV in 10 eV steps (16), 8330–8365 eV in 1 eV steps (36), 8370–8570 eV in
        20 eV steps (11).
    """
    return np.concatenate(
        [
            np.arange(8178.0, 8329.0, 10.0),
            np.arange(8330.0, 8366.0, 1.0),
            np.arange(8370.0, 8571.0, 20.0),
        ]
    )


# ------------------------------------------------------------------------------- helpers


def _as_block(mu: np.ndarray, n_e: int) -> tuple[np.ndarray, tuple[int, ...]]:
    mu = np.asarray(mu, dtype=np.float64)
    if mu.shape[0] != n_e:
        raise ValueError(f"spectra have {mu.shape[0]} energies, the energy axis {n_e}")
    spatial = tuple(mu.shape[1:])
    return mu.reshape(n_e, -1), spatial


def _check_energies(energies: Any) -> np.ndarray:
    e = np.asarray(energies, dtype=np.float64).ravel()
    if e.size < 8 or np.any(np.diff(e) <= 0):
        raise ValueError("energies must be at least 8 strictly increasing values (eV)")
    return e


def _parabola_vertex(x: np.ndarray, y: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Vertex of the parabola through points i-1, i, i+1 (columns), clipped to [x[i-1], x[i+1]]."""
    n = x.shape[0]
    i = np.clip(i, 1, n - 2)
    cols = np.arange(y.shape[1])
    x0, x1, x2 = x[i - 1], x[i], x[i + 1]
    y0, y1, y2 = y[i - 1, cols], y[i, cols], y[i + 1, cols]
    num = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    den = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = x1 - 0.5 * num / den
    vertex = np.where(np.isfinite(vertex), vertex, x1)
    return np.clip(vertex, x0, x2)


def _line_basis(e: np.ndarray, e0: float, order: int) -> np.ndarray:
    t = (e - e0) / 100.0  # scaled for conditioning
    return np.stack([t**k for k in range(order + 1)], axis=1)


def _eval_poly(e: np.ndarray, e0: float, coef: np.ndarray) -> np.ndarray:
    """Evaluate polynomials (coef (order+1, N)) at energies e: (len(e), N), by broadcasting.

    A matrix product with an inner dimension of 2 is slow in BLAS; Horner's rule is not.
    """
    t = ((np.asarray(e, dtype=np.float64) - e0) / 100.0)[:, None]
    out = t * coef[-1][None, :]
    for k in range(coef.shape[0] - 2, 0, -1):
        out += coef[k][None, :]
        out *= t
    out += coef[0][None, :]
    return out


def _derivative(e: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy/dE along axis 0: central differences inside, one-sided at the two ends."""
    d = np.empty_like(y, dtype=np.float64)
    d[1:-1] = (y[2:] - y[:-2]) / (e[2:] - e[:-2])[:, None]
    d[0] = (y[1] - y[0]) / (e[1] - e[0])
    d[-1] = (y[-1] - y[-2]) / (e[-1] - e[-2])
    return d


def _fit_poly(
    e: np.ndarray, y: np.ndarray, sel: np.ndarray, e0: float, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form least squares of all columns of y at once: coefficients and residual RMS."""
    a = _line_basis(e[sel], e0, order)
    if a.shape[0] <= order:
        raise ValueError(f"only {a.shape[0]} energies in a fit range that needs more than {order}")
    pinv = np.linalg.pinv(a)  # (order+1, m): the same for every spectrum
    ys = y[sel]
    coef = pinv @ ys
    resid = ys - _eval_poly(e[sel], e0, coef)
    dof = max(a.shape[0] - (order + 1), 1)
    rms = np.sqrt(np.sum(resid**2, axis=0) / dof)
    return coef, rms


# ------------------------------------------------------------------------ normalisation


@dataclass
class Normalized:
    """Normalised spectra and the fit they come from (columns = spectra).

    Attributes
    ----------
    norm : ndarray
        (n_energies, *spatial) normalised μ: 0 before the edge, 1 after it.
    edge_jump : ndarray
        (*spatial) post(E0) - pre(E0) in the input's units.
    pre_rms, post_rms : ndarray
        (*spatial) residual RMS of the pre-edge and post-edge fits (input units).
    e0 : float
        The nominal edge energy used for the fit ranges and the jump (eV).
    """

    norm: np.ndarray
    edge_jump: np.ndarray
    pre_rms: np.ndarray
    post_rms: np.ndarray
    e0: float


def estimate_e0(energies: Sequence[float], mu: np.ndarray) -> float:
    """Nominal edge energy: the maximum of dμ/dE of the mean spectrum.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    mu : ndarray
        (n_energies, ...) spectra.

    Returns
    -------
    float
        eV.
    """
    e = _check_energies(energies)
    block, _ = _as_block(mu, e.size)
    step = max(1, block.shape[1] // 65536)  # a strided sample is plenty for the mean
    sample = block[:, ::step]
    finite = np.all(np.isfinite(sample), axis=0)
    if not finite.any():
        raise ValueError("no finite spectrum to estimate the edge energy from")
    mean = sample[:, finite].mean(axis=1)
    d = _derivative(e, mean[:, None])[:, 0]
    i = int(np.nanargmax(d))
    return float(_parabola_vertex(e, d[:, None], np.array([i]))[0])


def normalize(
    energies: Sequence[float],
    mu: np.ndarray,
    *,
    e0: float | None = None,
    pre_range: tuple[float, float] | None = None,
    post_range: tuple[float, float] | None = None,
    post_order: int = 1,
    flatten: bool = True,
    rows: slice | None = None,
) -> Normalized:
    """Pre-/post-edge normalisation of many spectra at once (closed-form least squares).

    Parameters
    ----------
    energies : sequence of float
        eV, strictly increasing, length n.
    mu : ndarray
        (n, N) or (n, *spatial) absorption / optical density.
    e0 : float, optional
        Nominal edge energy (eV); default :func:`estimate_e0` of the mean spectrum.
    pre_range, post_range : (float, float), optional
        Absolute energy ranges (eV) of the pre-edge and post-edge fits; default from the
        first energy to E0-15 eV and from E0+25 eV to the last energy.
    post_order : int
        1 for a post-edge line (default), 2 for a quadratic.
    flatten : bool
        Above E0 divide out the post-edge line's slope (Athena's "flattened" spectrum).
    rows : slice, optional
        Return the normalised spectra only at ``energies[rows]`` (the fits still use every
        energy); saves time when only the edge region is needed.

    Returns
    -------
    Normalized
        Arrays shaped like the input (``norm``) or its spatial part (the others).
    """
    e = _check_energies(energies)
    y, spatial = _as_block(mu, e.size)
    e0 = estimate_e0(e, y) if e0 is None else float(e0)
    pre_range = pre_range or (e[0] - 1.0, e0 + PRE_EDGE_END)
    post_range = post_range or (e0 + POST_EDGE_START, e[-1] + 1.0)
    pre_sel = (e >= pre_range[0]) & (e <= pre_range[1])
    post_sel = (e >= post_range[0]) & (e <= post_range[1])
    pre_c, pre_rms = _fit_poly(e, y, pre_sel, e0, 1)
    post_c, post_rms = _fit_poly(e, y, post_sel, e0, post_order)
    # The basis is 1 at E0 for the constant term and 0 for the others: line(E0) = coef[0].
    jump = post_c[0] - pre_c[0]
    if rows is not None:
        e, y = e[rows], y[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(jump) > 0, jump, np.nan)
        norm = y - _eval_poly(e, e0, pre_c)
        norm *= inv
        if flatten:
            above = np.flatnonzero(e >= e0)
            if above.size:
                a0 = int(above[0])
                post_minus_pre = _eval_poly(e[a0:], e0, post_c) - _eval_poly(e[a0:], e0, pre_c)
                norm[a0:] -= post_minus_pre * inv
                norm[a0:] += 1.0
    return Normalized(
        norm=norm.reshape((e.size, *spatial)),
        edge_jump=jump.reshape(spatial),
        pre_rms=pre_rms.reshape(spatial),
        post_rms=post_rms.reshape(spatial),
        e0=e0,
    )


# ------------------------------------------------------------------------ edge energies


def edge_half_jump(
    energies: Sequence[float],
    norm: np.ndarray,
    *,
    window: tuple[float, float],
    level: float = 0.5,
    cubic: bool = False,
) -> np.ndarray:
    """Energy where the normalised spectrum crosses ``level`` (default half the jump).

    The crossing taken is the last one below the white line (so pre-edge noise does not
    trigger it), interpolated between the two energies around it.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    norm : ndarray
        (n, N) normalised spectra.
    window : (float, float)
        Absolute energy range (eV) searched.
    level : float
        Normalised level of the crossing.
    cubic : bool
        Refine the linear interpolation with the cubic through the four energies around
        the crossing (removes most of the bias of coarse 1 eV steps on a curved edge).

    Returns
    -------
    ndarray
        (N,) eV; NaN where no crossing is found.
    """
    e = np.asarray(energies, dtype=np.float64)
    sel = np.flatnonzero((e >= window[0]) & (e <= window[1]))
    sub = norm[sel]
    es = e[sel]
    m, n = sub.shape
    cols = np.arange(n)
    filled = np.where(np.isfinite(sub), sub, -np.inf)
    peak = np.argmax(filled, axis=0)
    idx = np.arange(m)[:, None]
    cand = (sub < level) & (idx < peak[None, :])
    has = cand.any(axis=0)
    last = m - 1 - np.argmax(cand[::-1], axis=0)
    i0 = np.clip(last, 0, m - 2)
    i1 = i0 + 1
    y0, y1 = sub[i0, cols], sub[i1, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (level - y0) / (y1 - y0)
    out = es[i0] + frac * (es[i1] - es[i0])
    ok = has & (y1 >= level) & np.isfinite(out)
    if cubic and m >= 4:
        out = _cubic_crossing(es, sub, i0, level, out)
    return np.where(ok, out, np.nan)


def _cubic_crossing(
    e: np.ndarray, y: np.ndarray, i0: np.ndarray, level: float, start: np.ndarray
) -> np.ndarray:
    """Refine a bracketed crossing with the cubic through the 4 points around it (bisection)."""
    m = e.shape[0]
    cols = np.arange(y.shape[1])
    base = np.clip(i0 - 1, 0, m - 4)
    xs = np.stack([e[base + k] for k in range(4)])  # (4, N)
    ys = np.stack([y[base + k, cols] for k in range(4)])
    lo, hi = e[i0], e[i0 + 1]

    def cubic(x: np.ndarray) -> np.ndarray:
        total = np.zeros_like(x)
        for j in range(4):
            term = ys[j].copy()
            for k in range(4):
                if k != j:
                    term = term * (x - xs[k]) / (xs[j] - xs[k])
            total += term
        return total

    f_lo = cubic(lo) - level
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        f_mid = cubic(mid) - level
        left = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(left, mid, lo)
        f_lo = np.where(left, f_mid, f_lo)
        hi = np.where(left, hi, mid)
    refined = 0.5 * (lo + hi)
    good = np.all(np.isfinite(ys), axis=0) & np.isfinite(refined)
    return np.where(good, refined, start)


def edge_max_derivative(
    energies: Sequence[float], norm: np.ndarray, *, window: tuple[float, float]
) -> np.ndarray:
    """Energy of the maximum of dμ/dE in ``window`` (parabolic refinement).

    dμ/dE is taken by central differences ``(μ[i+1] - μ[i-1]) / (E[i+1] - E[i-1])``.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    norm : ndarray
        (n, N) normalised spectra.
    window : (float, float)
        Absolute energy range (eV).

    Returns
    -------
    ndarray
        (N,) eV.
    """
    e = np.asarray(energies, dtype=np.float64)
    d = _derivative(e, norm)
    sel = np.flatnonzero((e >= window[0]) & (e <= window[1]))
    sub = np.where(np.isfinite(d[sel]), d[sel], -np.inf)
    i = np.argmax(sub, axis=0)
    out = _parabola_vertex(e[sel], sub, i)
    return np.where(np.isfinite(sub.max(axis=0)), out, np.nan)


def white_line(
    energies: Sequence[float], norm: np.ndarray, *, window: tuple[float, float]
) -> np.ndarray:
    """Energy of the white-line peak (maximum of the normalised spectrum) in ``window``.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    norm : ndarray
        (n, N) normalised spectra.
    window : (float, float)
        Absolute energy range (eV).

    Returns
    -------
    ndarray
        (N,) eV.
    """
    e = np.asarray(energies, dtype=np.float64)
    sel = np.flatnonzero((e >= window[0]) & (e <= window[1]))
    sub = np.where(np.isfinite(norm[sel]), norm[sel], -np.inf)
    i = np.argmax(sub, axis=0)
    out = _parabola_vertex(e[sel], sub, i)
    return np.where(np.isfinite(sub.max(axis=0)), out, np.nan)


# ---------------------------------------------------------------------------- the map


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
        grad = _derivative(ew[g0:g1], norm[g0:g1])[d0 - g0 : d1 - g0]
        deriv = _parabola_vertex(ew[d0:d1], grad, _argmax_rows(grad))
        # White line.
        w0, w1 = span(win[0] + 5.0, win[1])
        wl = _parabola_vertex(ew[w0:w1], norm[w0:w1], _argmax_rows(norm[w0:w1]))
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
        e = _check_energies(data.energies)
        spatial = data.spatial_shape
        rows = spatial[0]
        per_row = int(np.prod(spatial[1:])) if len(spatial) > 1 else 1
        step = max(1, chunk // max(per_row, 1))

        def blocks() -> Any:
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                yield data.block(r0, r1).reshape(e.size, -1), r1 / rows

        if e0 is None:
            mid = rows // 2
            e0 = estimate_e0(e, data.block(mid, mid + 1))
    else:
        e = _check_energies(energies)
        arr = np.asarray(data)
        block, spatial = _as_block(arr, e.size)
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


# --------------------------------------------------------------- linear combinations


@dataclass
class LcfResult:
    """Linear-combination fit of normalised spectra with end members.

    Attributes
    ----------
    fractions : ndarray
        (k, *spatial) weight of each reference.
    residual : ndarray
        (*spatial) RMS misfit over the fit range.
    names : list of str
        Reference names, in the order of ``fractions``.
    fit_range : (float, float)
        Energies (eV) used.
    """

    fractions: np.ndarray
    residual: np.ndarray
    names: list[str]
    fit_range: tuple[float, float]


def fit_linear_combination(
    energies: Sequence[float],
    norm: np.ndarray,
    references: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    fit_range: tuple[float, float] | None = None,
    sum_to_one: bool = True,
    nonnegative: bool = True,
) -> LcfResult:
    """Fit every normalised spectrum as a weighted sum of reference spectra (closed form).

    With ``sum_to_one`` the last weight is ``1 - Σ others`` and the others come from one
    shared pseudo-inverse of the reference differences; with ``nonnegative`` the weights are
    then clipped at 0 and rescaled to sum to one — exact for two end members (a 1-D convex
    problem), an approximation for three or more.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing, length n.
    norm : ndarray
        (n, N) or (n, *spatial) normalised spectra.
    references : ndarray
        (k, n) normalised reference spectra on the same energies.
    names : sequence of str, optional
        Reference names.
    fit_range : (float, float), optional
        eV; default all energies.
    sum_to_one, nonnegative : bool
        Constraints, see above.

    Returns
    -------
    LcfResult
    """
    e = _check_energies(energies)
    y, spatial = _as_block(norm, e.size)
    refs = np.atleast_2d(np.asarray(references, dtype=np.float64))
    if refs.shape[1] != e.size:
        raise ValueError(f"references have {refs.shape[1]} energies, the spectra {e.size}")
    k = refs.shape[0]
    sel = np.ones(e.size, bool) if fit_range is None else (e >= fit_range[0]) & (e <= fit_range[1])
    r = refs[:, sel].T  # (m, k)
    ys = np.nan_to_num(y[sel])
    if sum_to_one and k > 1:
        basis = r[:, :-1] - r[:, -1:]
        w = np.linalg.pinv(basis) @ (ys - r[:, -1:])
        w = np.vstack([w, 1.0 - w.sum(axis=0, keepdims=True)])
    elif sum_to_one:
        w = np.ones((1, ys.shape[1]))
    else:
        w = np.linalg.pinv(r) @ ys
    if nonnegative:
        w = np.clip(w, 0.0, None)
        if sum_to_one:
            total = w.sum(axis=0, keepdims=True)
            w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / k)
    resid = np.sqrt(np.mean((ys - r @ w) ** 2, axis=0))
    rng = (float(e[sel][0]), float(e[sel][-1]))
    return LcfResult(
        fractions=w.reshape((k, *spatial)),
        residual=resid.reshape(spatial),
        names=list(names) if names is not None else [f"ref{i + 1}" for i in range(k)],
        fit_range=rng,
    )


def prepare_references(
    ref_energies: Sequence[float] | Sequence[Sequence[float]],
    references: Sequence[np.ndarray],
    energies: Sequence[float],
    *,
    e0: float,
    pre_range: tuple[float, float] | None = None,
    post_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Resample reference spectra onto the stack's energies and normalise them the same way.

    Normalising the end members with the stack's own E0 and fit ranges makes the linear
    combination consistent (the normalisation of a mixture is the jump-weighted mixture of
    the normalised end members).

    Parameters
    ----------
    ref_energies : sequence of float, or one sequence per reference
        eV of the references.
    references : sequence of ndarray
        Raw or normalised reference spectra.
    energies : sequence of float
        eV of the stack.
    e0 : float
        The nominal edge energy used for the stack.
    pre_range, post_range : (float, float), optional
        As for :func:`normalize`.

    Returns
    -------
    ndarray
        (k, n_energies) normalised references.
    """
    e = _check_energies(energies)
    refs = [np.asarray(r, dtype=np.float64) for r in references]
    if np.ndim(ref_energies[0]) == 0:
        grids = [np.asarray(ref_energies, dtype=np.float64)] * len(refs)
    else:
        grids = [np.asarray(g, dtype=np.float64) for g in ref_energies]
    sampled = np.stack([resample(g, r, e) for g, r in zip(grids, refs, strict=True)], axis=1)
    nz = normalize(e, sampled, e0=e0, pre_range=pre_range, post_range=post_range)
    return nz.norm.T


# ------------------------------------------------------------------ spectra as tables


def read_spectra_table(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Read a text/CSV table: first column energy (eV or keV), one column per spectrum.

    A header row (names) is optional; ``#`` comments and blank lines are skipped; columns
    are separated by commas, semicolons, tabs or spaces.

    Parameters
    ----------
    path : str or path-like
        The table.

    Returns
    -------
    energies : ndarray
        eV, ascending.
    names : list of str
        Column names from the header, else ``<file stem>`` / ``<file stem>_<i>``.
    spectra : ndarray
        (n_energies, n_spectra), rows sorted by energy.
    """
    from core.followup.io import to_ev

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "no such file")
    header: list[str] | None = None
    rows: list[list[float]] = []
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        cells = [c for c in re.split(r"[,;\t ]+", text) if c != ""]
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            if rows:
                raise InputError(p, f"line {n}: not a number in {text[:40]!r}") from None
            header = cells
            continue
    if not rows:
        raise InputError(p, "no numeric rows")
    width = len(rows[0])
    if width < 2 or any(len(r) != width for r in rows):
        raise InputError(p, "needs the same number (≥ 2) of columns on every row: energy, spectra…")
    table = np.asarray(rows, dtype=np.float64)
    energies = to_ev(table[:, 0], p)
    order = np.argsort(energies)
    if header is not None and len(header) == width:
        names = header[1:]
    else:
        names = [p.stem] if width == 2 else [f"{p.stem}_{i}" for i in range(1, width)]
    return energies[order], names, table[order, 1:]


def analyze_spectra(
    energies: Sequence[float],
    spectra: np.ndarray,
    names: Sequence[str],
    *,
    e0: float | None = None,
    window: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """Edge energies of a few spectra (each normalised on its own nominal E0).

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    spectra : ndarray
        (n_energies, n_spectra).
    names : sequence of str
        One per spectrum.
    e0 : float, optional
        Nominal edge energy; default each spectrum's max-derivative energy.
    window : (float, float), optional
        Search window (eV).

    Returns
    -------
    list of dict
        ``name, e0_half_ev, e0_deriv_ev, white_line_ev, edge_jump, e0_nominal_ev``.
    """
    e = _check_energies(energies)
    out = []
    for j, name in enumerate(names):
        col = spectra[:, j : j + 1]
        maps = edge_energy_map(col, e, e0=e0, window=window, min_snr=0.0, max_post_residual=np.inf)
        out.append(
            {
                "name": str(name),
                "e0_half_ev": _f(maps.e0_half[0]),
                "e0_deriv_ev": _f(maps.e0_deriv[0]),
                "white_line_ev": _f(maps.white_line[0]),
                "edge_jump": _f(maps.edge_jump[0]),
                "e0_nominal_ev": _f(maps.e0),
            }
        )
    return out


def _f(value: Any) -> float | None:
    v = float(value)
    return v if np.isfinite(v) else None


def resample(
    energies_from: Sequence[float], spectrum: np.ndarray, energies_to: Sequence[float]
) -> np.ndarray:
    """Linear interpolation of a spectrum onto other energies, constant beyond its ends.

    Parameters
    ----------
    energies_from : sequence of float
        eV, increasing.
    spectrum : ndarray
        (n,) values.
    energies_to : sequence of float
        eV.

    Returns
    -------
    ndarray
    """
    return np.interp(
        np.asarray(energies_to, float),
        np.asarray(energies_from, float),
        np.asarray(spectrum, float),
    )


def mix_references(
    energies: Sequence[float],
    ref_energies: Sequence[float],
    references: np.ndarray,
    fractions: np.ndarray,
    *,
    density: np.ndarray | float = 1.0,
    shift_ev: np.ndarray | float = 0.0,
    background: tuple[float, float] = (0.0, 0.0),
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Synthetic XANES stack: references mixed per voxel, scaled, shifted, noisy.

    ``μ(E, x) = density(x) · Σ_i f_i(x) ref_i(E - shift(x)) + b0 + b1 (E - E_first)/100 + noise``
    with Gaussian noise of standard deviation ``noise × density``.

    Parameters
    ----------
    energies : sequence of float
        eV of the stack.
    ref_energies : sequence of float
        eV of the references.
    references : ndarray
        (k, n_ref) normalised reference spectra.
    fractions : ndarray
        (k, *spatial) weights.
    density : ndarray or float
        Edge jump per voxel (broadcast to spatial).
    shift_ev : ndarray or float
        Energy shift per voxel (eV; positive moves the edge up).
    background : (float, float)
        Pre-edge offset and slope per 100 eV.
    noise : float
        Noise standard deviation as a fraction of the edge jump.
    rng : numpy.random.Generator, optional
        For reproducible noise.

    Returns
    -------
    ndarray
        (n_energies, *spatial) float64.
    """
    e = np.asarray(energies, dtype=np.float64)
    fr = np.asarray(fractions, dtype=np.float64)
    spatial = fr.shape[1:]
    dens = np.broadcast_to(np.asarray(density, dtype=np.float64), spatial).reshape(-1)
    shift = np.broadcast_to(np.asarray(shift_ev, dtype=np.float64), spatial).reshape(-1)
    w = fr.reshape(fr.shape[0], -1)
    ref_e = np.asarray(ref_energies, dtype=np.float64)
    refs = np.atleast_2d(np.asarray(references, dtype=np.float64))
    if np.all(shift == shift[0]):
        grid = [resample(ref_e, r, e - shift[0]) for r in refs]
        mu = np.stack(grid).T @ w  # (n, N)
    else:
        mu = np.zeros((e.size, w.shape[1]))
        for i, r in enumerate(refs):
            mu += w[i][None, :] * np.interp(e[:, None] - shift[None, :], ref_e, r)
    mu = mu * dens[None, :]
    mu += background[0] + background[1] * (e[:, None] - e[0]) / 100.0
    if noise > 0:
        rng = rng or np.random.default_rng()
        mu += rng.normal(0.0, 1.0, mu.shape) * (noise * dens)[None, :]
    return mu.reshape((e.size, *spatial))
