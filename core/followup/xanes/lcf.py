"""Linear-combination fitting of normalised spectra with end members (closed form)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.followup.xanes._base import as_block, check_energies
from core.followup.xanes.normalisation import normalize


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
    e = check_energies(energies)
    y, spatial = as_block(norm, e.size)
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
    e = check_energies(energies)
    refs = [np.asarray(r, dtype=np.float64) for r in references]
    if np.ndim(ref_energies[0]) == 0:
        grids = [np.asarray(ref_energies, dtype=np.float64)] * len(refs)
    else:
        grids = [np.asarray(g, dtype=np.float64) for g in ref_energies]
    sampled = np.stack([resample(g, r, e) for g, r in zip(grids, refs, strict=True)], axis=1)
    nz = normalize(e, sampled, e0=e0, pre_range=pre_range, post_range=post_range)
    return nz.norm.T



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
