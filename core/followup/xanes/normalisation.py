"""Pre-/post-edge normalisation of XANES spectra, vectorised over all spectra at once.

Pre-edge and post-edge lines are fitted by linear least squares through one pseudo-inverse
shared by all spectra (``coef = pinv(A) @ Y``); ``norm = (μ - pre)/jump`` with
``jump = post(E0) - pre(E0)``, optionally flattened above E0 (as Athena does). Spectra
measured over a window too narrow for those fits are handled by
:func:`core.followup.xanes.robust.normalize_robust`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.followup.xanes._base import (
    POST_EDGE_START,
    PRE_EDGE_END,
    as_block,
    check_energies,
    derivative,
    eval_poly,
    fit_poly,
    parabola_vertex,
)


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
    e = check_energies(energies)
    block, _ = as_block(mu, e.size)
    step = max(1, block.shape[1] // 65536)  # a strided sample is plenty for the mean
    sample = block[:, ::step]
    finite = np.all(np.isfinite(sample), axis=0)
    if not finite.any():
        raise ValueError("no finite spectrum to estimate the edge energy from")
    mean = sample[:, finite].mean(axis=1)
    d = derivative(e, mean[:, None])[:, 0]
    i = int(np.nanargmax(d))
    return float(parabola_vertex(e, d[:, None], np.array([i]))[0])


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
    e = check_energies(energies)
    y, spatial = as_block(mu, e.size)
    e0 = estimate_e0(e, y) if e0 is None else float(e0)
    pre_range = pre_range or (e[0] - 1.0, e0 + PRE_EDGE_END)
    post_range = post_range or (e0 + POST_EDGE_START, e[-1] + 1.0)
    pre_sel = (e >= pre_range[0]) & (e <= pre_range[1])
    post_sel = (e >= post_range[0]) & (e <= post_range[1])
    pre_c, pre_rms = fit_poly(e, y, pre_sel, e0, 1)
    post_c, post_rms = fit_poly(e, y, post_sel, e0, post_order)
    # The basis is 1 at E0 for the constant term and 0 for the others: line(E0) = coef[0].
    jump = post_c[0] - pre_c[0]
    if rows is not None:
        e, y = e[rows], y[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(jump) > 0, jump, np.nan)
        norm = y - eval_poly(e, e0, pre_c)
        norm *= inv
        if flatten:
            above = np.flatnonzero(e >= e0)
            if above.size:
                a0 = int(above[0])
                post_minus_pre = eval_poly(e[a0:], e0, post_c) - eval_poly(e[a0:], e0, pre_c)
                norm[a0:] -= post_minus_pre * inv
                norm[a0:] += 1.0
    return Normalized(
        norm=norm.reshape((e.size, *spatial)),
        edge_jump=jump.reshape(spatial),
        pre_rms=pre_rms.reshape(spatial),
        post_rms=post_rms.reshape(spatial),
        e0=e0,
    )

