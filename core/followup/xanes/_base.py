"""Shared pieces of the XANES code: energy checks, spectra blocks, polynomial fits, derivatives.

Spectra are handled as blocks ``(n_energies, N)``: one column per spectrum, so that every
per-spectrum quantity is computed for all columns at once in closed form.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Default fit ranges relative to the nominal edge energy E0 (eV): the pre-edge line ends at
#: E0 - 15 eV, the post-edge line starts at E0 + 25 eV.
PRE_EDGE_END = -15.0
POST_EDGE_START = 25.0
#: Window (relative to E0) in which edge and white line are looked for.
EDGE_WINDOW = (-20.0, 30.0)


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float for JSON, or None when it is not a finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def as_block(mu: np.ndarray, n_e: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Spectra ``(n_e, *spatial)`` as a block ``(n_e, N)`` of float64 and the spatial shape."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.shape[0] != n_e:
        raise ValueError(f"spectra have {mu.shape[0]} energies, the energy axis {n_e}")
    spatial = tuple(mu.shape[1:])
    return mu.reshape(n_e, -1), spatial


def check_energies(energies: Any) -> np.ndarray:
    """Energies (eV) as float64, at least 8 and strictly increasing (else ValueError)."""
    e = np.asarray(energies, dtype=np.float64).ravel()
    if e.size < 8 or np.any(np.diff(e) <= 0):
        raise ValueError("energies must be at least 8 strictly increasing values (eV)")
    return e


def parabola_vertex(x: np.ndarray, y: np.ndarray, i: np.ndarray) -> np.ndarray:
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


def line_basis(e: np.ndarray, e0: float, order: int) -> np.ndarray:
    """Polynomial basis ``((E - E0)/100)^k``, k = 0..order, one row per energy."""
    t = (e - e0) / 100.0  # scaled for conditioning
    return np.stack([t**k for k in range(order + 1)], axis=1)


def eval_poly(e: np.ndarray, e0: float, coef: np.ndarray) -> np.ndarray:
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


def derivative(e: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy/dE along axis 0: central differences inside, one-sided at the two ends."""
    d = np.empty_like(y, dtype=np.float64)
    d[1:-1] = (y[2:] - y[:-2]) / (e[2:] - e[:-2])[:, None]
    d[0] = (y[1] - y[0]) / (e[1] - e[0])
    d[-1] = (y[-1] - y[-2]) / (e[-1] - e[-2])
    return d


def fit_poly(
    e: np.ndarray, y: np.ndarray, sel: np.ndarray, e0: float, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form least squares of all columns of y at once: coefficients and residual RMS."""
    a = line_basis(e[sel], e0, order)
    if a.shape[0] <= order:
        raise ValueError(f"only {a.shape[0]} energies in a fit range that needs more than {order}")
    pinv = np.linalg.pinv(a)  # (order+1, m): the same for every spectrum
    ys = y[sel]
    coef = pinv @ ys
    resid = ys - eval_poly(e[sel], e0, coef)
    dof = max(a.shape[0] - (order + 1), 1)
    rms = np.sqrt(np.sum(resid**2, axis=0) / dof)
    return coef, rms

