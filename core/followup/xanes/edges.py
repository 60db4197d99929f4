"""Edge energies of normalised spectra: half jump, maximum of dμ/dE, first inflection, white line.

All functions take a block of normalised spectra ``(n_energies, N)`` and return one energy
(eV) per column, NaN where none is found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.followup.xanes._base import derivative, parabola_vertex


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
    return _peak_energy(e, derivative(e, norm), window)


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
    return _peak_energy(np.asarray(energies, dtype=np.float64), norm, window)


def _peak_energy(e: np.ndarray, values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Energy of each column's maximum of ``values`` (n, N) inside ``window`` (parabolic
    refinement); NaN where the window holds no finite value."""
    sel = np.flatnonzero((e >= window[0]) & (e <= window[1]))
    sub = np.where(np.isfinite(values[sel]), values[sel], -np.inf)
    i = np.argmax(sub, axis=0)
    out = parabola_vertex(e[sel], sub, i)
    return np.where(np.isfinite(sub.max(axis=0)), out, np.nan)



def first_inflection(
    energies: Sequence[float],
    norm: np.ndarray,
    *,
    window: tuple[float, float],
    fraction: float = 0.5,
) -> np.ndarray:
    """Energy of the first inflection point of the edge: the first strong maximum of dμ/dE.

    A metal foil's tabulated edge energy (8333 eV for Ni) is its *first* inflection point,
    on the pre-edge shoulder, which is often not the highest maximum of dμ/dE. The first
    local maximum of dμ/dE in ``window`` that reaches ``fraction`` of the window's largest
    dμ/dE is taken (weaker maxima are noise or pre-edge features), refined by a parabola.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    norm : ndarray
        (n, N) normalised spectra.
    window : (float, float)
        Absolute energy range (eV) searched.
    fraction : float
        Smallest height of the maximum taken, relative to the largest dμ/dE in the window.

    Returns
    -------
    ndarray
        (N,) eV; NaN where the window holds fewer than 3 energies or no maximum.
    """
    e = np.asarray(energies, dtype=np.float64)
    norm = np.asarray(norm, dtype=np.float64)
    sel = np.flatnonzero((e >= window[0]) & (e <= window[1]))
    n_cols = norm.shape[1]
    if sel.size < 3:
        return np.full(n_cols, np.nan)
    d = derivative(e, norm)[sel]
    d = np.where(np.isfinite(d), d, -np.inf)
    top = d.max(axis=0)
    peak = np.zeros_like(d, dtype=bool)
    peak[1:-1] = (d[1:-1] >= d[:-2]) & (d[1:-1] > d[2:])
    peak &= d >= fraction * top[None, :]
    peak &= top[None, :] > 0
    has = peak.any(axis=0)
    first = np.argmax(peak, axis=0)
    out = parabola_vertex(e[sel], d, first)
    return np.where(has & np.isfinite(top), out, np.nan)
