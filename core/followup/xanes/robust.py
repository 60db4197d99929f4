"""Robust normalisation of one spectrum: whatever pre- and post-edge its energy window has.

Spectra measured on a beamline or a TXM come in many shapes: a full XAS scan with hundreds of
eV of pre- and post-edge, or a 40 eV window that starts a few eV below the edge and is already
normalised. :func:`normalize_robust` picks what the window allows and says what it did
(``method``) and how far to trust it (``quality``):

=============================  =========  ==================================================
method                         quality    used when
=============================  =========  ==================================================
``pre-edge line + post-edge    good       ≥ 3 energies spanning ≥ 10 eV below E0 - 15 eV and
line``                                    ≥ 3 spanning ≥ 40 eV above E0 + 25 eV (Athena-like,
                                          flattened above E0; identical to
                                          :func:`~core.followup.xanes.normalisation.normalize`)
``already normalised``         fair       no full pre/post-edge line, and the spectrum starts
                                          near 0 (|mean of the first points| ≤ 0.15) and ends
                                          near 1 (0.75–1.35), or the file declares it
                                          normalised: used as given
``pre-edge line|level|window   fair/poor  otherwise: a line where the window allows one, a
start + post-edge line|level|             constant level over the points in the range, or
window end``                              the mean of the first/last points of the window
                                          (``window start``/``window end``: poor)
=============================  =========  ==================================================

An edge jump ≤ 0 (the spectrum falls at the edge: transmitted intensity given where
absorption was expected) is never turned into numbers: its edge energies are ``None`` and a
one-line warning says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.followup.xanes._base import (
    POST_EDGE_START,
    PRE_EDGE_END,
    check_energies,
    derivative,
    eval_poly,
    finite_or_none,
    fit_poly,
)
from core.followup.xanes.normalisation import estimate_e0, normalize

#: Fewest energies, and smallest span (eV), of a pre-edge line.
PRE_LINE_MIN = (3, 10.0)
#: Fewest energies, and smallest span (eV), of a post-edge line (a line through a few eV of
#: post-edge oscillations is a tangent to them, not the atomic background).
POST_LINE_MIN = (3, 40.0)
#: An already-normalised spectrum starts within this of 0 ...
NORMALISED_START = 0.15
#: ... averages this much above E0 + 10 eV (post-edge oscillations swing by ±0.2) ...
NORMALISED_POST = (0.8, 1.3)
#: ... or, for a window that begins on the rising edge, starts at most this high.
NORMALISED_ON_EDGE = 0.5


@dataclass
class Normalisation:
    """How one spectrum was normalised, and how far to trust it.

    Attributes
    ----------
    method : str
        See the module docstring.
    quality : str
        ``"good"``, ``"fair"``, ``"poor"``, ``"inverted"`` (edge jump < 0) or ``"no-edge"``.
    e0 : float
        Nominal edge energy used (eV).
    edge_jump : float
        Post-edge minus pre-edge level at E0, in the input's units (1 when used as given).
    pre_range_ev, post_range_ev : (float, float) or None
        Energies that defined the pre- and post-edge levels.
    notes : list of str
        Why this method (e.g. "no energies 25 eV above E0").
    """

    method: str
    quality: str
    e0: float
    edge_jump: float
    pre_range_ev: tuple[float, float] | None = None
    post_range_ev: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "method": self.method,
            "quality": self.quality,
            "e0_ev": finite_or_none(self.e0),
            "edge_jump": finite_or_none(self.edge_jump),
            "pre_range_ev": None if self.pre_range_ev is None else [*map(float, self.pre_range_ev)],
            "post_range_ev": (
                None if self.post_range_ev is None else [*map(float, self.post_range_ev)]
            ),
            "notes": list(self.notes),
        }


def _span(e: np.ndarray, sel: np.ndarray) -> float:
    return float(np.ptp(e[sel])) if sel.any() else 0.0


def looks_normalised(energies: Sequence[float], mu: np.ndarray, e0: float) -> str | None:
    """Whether a spectrum looks already normalised, and how surely.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    mu : ndarray
        (n,) values.
    e0 : float
        Nominal edge energy (eV).

    Returns
    -------
    str or None
        ``"yes"``: the mean above E0 + 10 eV (over the post-edge oscillations) lies in
        0.8–1.3 and the spectrum starts near 0 (mean of its first two values within ±0.15);
        ``"starts on the edge"``: the same above the edge, but the window begins on the rising
        edge (first values 0.15–0.5); None otherwise (or values beyond -0.5…3).
    """
    e = np.asarray(energies, dtype=np.float64)
    y = np.asarray(mu, dtype=np.float64)
    if float(np.max(y)) > 3.0 or float(np.min(y)) < -0.5:
        return None
    post = y[e > e0 + 10.0]
    if post.size < 3 or not NORMALISED_POST[0] <= float(np.mean(post)) <= NORMALISED_POST[1]:
        return None
    first = float(np.mean(y[:2]))
    if abs(first) <= NORMALISED_START:
        return "yes"
    if NORMALISED_START < first <= NORMALISED_ON_EDGE:
        return "starts on the edge"
    return None


def normalize_robust(
    energies: Sequence[float],
    mu: np.ndarray,
    *,
    e0: float | None = None,
    pre_range: tuple[float, float] | None = None,
    post_range: tuple[float, float] | None = None,
    post_order: int = 1,
    flatten: bool = True,
    declared_normalised: bool = False,
) -> tuple[np.ndarray, Normalisation]:
    """Normalise one spectrum with whatever pre- and post-edge its energy window has.

    Parameters
    ----------
    energies : sequence of float
        eV, strictly increasing (at least 8).
    mu : ndarray
        (n,) absorption.
    e0 : float, optional
        Nominal edge energy (eV); default the maximum of dμ/dE.
    pre_range, post_range : (float, float), optional
        Absolute fit ranges (eV); default first energy … E0 - 15 eV and E0 + 25 eV … last.
    post_order : int
        Order of the post-edge polynomial when a line fits (1 or 2).
    flatten : bool
        Flatten above E0 when a post-edge line was fitted (Athena's "flattened").
    declared_normalised : bool
        The file says the spectrum is normalised: used as given unless full lines fit.

    Returns
    -------
    norm : ndarray
        (n,) normalised spectrum (0 before the edge, 1 after it).
    info : Normalisation

    Raises
    ------
    ValueError
        Fewer than 8 increasing energies, non-finite values, or no energy below E0.
    """
    e = check_energies(energies)
    y = np.asarray(mu, dtype=np.float64).ravel()
    if y.size != e.size:
        raise ValueError(f"{y.size} values for {e.size} energies")
    if not np.all(np.isfinite(y)):
        raise ValueError("the spectrum holds NaN or infinite values")
    options = {"pre_range": pre_range, "post_range": post_range, "post_order": post_order,
               "flatten": flatten, "declared_normalised": declared_normalised}
    if e0 is not None:
        return _normalise_at(e, y, float(e0), **options)
    # Where is the edge? Where μ rises fastest — unless the spectrum falls faster than it
    # rises and ends lower than it starts around that fall: transmitted intensity given as
    # absorption. Normalised at its fall it gets a negative jump and is flagged "inverted",
    # never silently turned into numbers.
    d = derivative(e, y[:, None])[:, 0]
    if float(np.max(-d)) > float(np.max(d)):
        e_down = estimate_e0(e, -y[:, None])
        below, above = y[e < e_down - 10.0], y[e > e_down + 10.0]
        if below.size and above.size and float(np.mean(above)) < float(np.mean(below)):
            return _normalise_at(e, y, e_down, **options)
    return _normalise_at(e, y, estimate_e0(e, y[:, None]), **options)


def _side_curve(
    e: np.ndarray,
    y: np.ndarray,
    e0: float,
    sel: np.ndarray,
    order: int | None,
    side: str,
    fallback: np.ndarray,
    fallback_name: str,
) -> tuple[np.ndarray, str, tuple[float, float], bool]:
    """One side of the edge as :func:`_normalise_at` uses it: a polynomial of ``order`` fitted
    to the energies ``sel`` (``order`` None: too few for a line), else their mean level, else
    the mean of the ``fallback`` indices (the window's first or last few energies).

    Returns the curve over all energies, its name, its energy range and whether it came from
    the side's own fit range.
    """
    if order is not None:
        coeffs, _ = fit_poly(e, y[:, None], sel, e0, order)
        return eval_poly(e, e0, coeffs)[:, 0], f"{side} line", (float(e[sel][0]), float(e[sel][-1])), True
    if sel.any():
        return (np.zeros(e.size) + float(np.mean(y[sel])), f"{side} level",
                (float(e[sel][0]), float(e[sel][-1])), True)
    return (np.zeros(e.size) + float(np.mean(y[fallback])), fallback_name,
            (float(e[fallback[0]]), float(e[fallback[-1]])), False)


def _normalise_at(
    e: np.ndarray,
    y: np.ndarray,
    e0: float,
    *,
    pre_range: tuple[float, float] | None,
    post_range: tuple[float, float] | None,
    post_order: int,
    flatten: bool,
    declared_normalised: bool,
) -> tuple[np.ndarray, Normalisation]:
    """:func:`normalize_robust` at a given E0."""
    if not (e[0] < e0 < e[-1]):
        raise ValueError(
            f"E0 = {e0:.1f} eV is not inside the energies {e[0]:.1f}–{e[-1]:.1f} eV"
        )
    pre = pre_range or (float(e[0]) - 1.0, e0 + PRE_EDGE_END)
    post = post_range or (e0 + POST_EDGE_START, float(e[-1]) + 1.0)
    pre_sel = (e >= pre[0]) & (e <= pre[1])
    post_sel = (e >= post[0]) & (e <= post[1])
    pre_line = int(pre_sel.sum()) >= PRE_LINE_MIN[0] and _span(e, pre_sel) >= PRE_LINE_MIN[1]
    post_line = (
        int(post_sel.sum()) >= max(POST_LINE_MIN[0], post_order + 2)
        and _span(e, post_sel) >= POST_LINE_MIN[1]
    )

    def rng(sel: np.ndarray) -> tuple[float, float]:
        return (float(e[sel][0]), float(e[sel][-1]))

    if pre_line and post_line:
        nz = normalize(e, y[:, None], e0=e0, pre_range=pre, post_range=post,
                       post_order=post_order, flatten=flatten)
        jump = float(nz.edge_jump[0])
        info = Normalisation("pre-edge line + post-edge line", "good", e0, jump,
                             rng(pre_sel), rng(post_sel))
        return _check_jump(nz.norm[:, 0], info)

    notes = []
    if not pre_line:
        notes.append(
            f"{int(pre_sel.sum())} energies over {_span(e, pre_sel):.0f} eV before E0 - 15 eV: "
            "too few for a pre-edge line"
        )
    if not post_line:
        notes.append(
            f"{int(post_sel.sum())} energies over {_span(e, post_sel):.0f} eV after E0 + 25 eV: "
            "too few for a post-edge line"
        )
    looks = None if declared_normalised else looks_normalised(e, y, e0)
    if declared_normalised or looks is not None:
        if declared_normalised:
            why, quality = "the file declares it normalised", "fair"
        elif looks == "yes":
            why, quality = "it starts near 0 and averages near 1 above the edge", "fair"
        else:
            why, quality = (
                f"it averages near 1 above the edge and starts at {float(y[0]):.2f}, on the "
                "rising edge",
                "poor",
            )
        info = Normalisation("already normalised", quality, e0, 1.0, None, None,
                             [*notes, f"used as given: {why}"])
        return y.copy(), info

    k = max(1, min(3, e.size // 10))
    below = np.flatnonzero(e < e0)
    above = np.flatnonzero(e > e0)
    if below.size == 0 or above.size == 0:
        raise ValueError("no energies on both sides of the edge")
    pre_curve, pre_name, pre_rng, pre_ok = _side_curve(
        e, y, e0, pre_sel, 1 if pre_line else None, "pre-edge", below[:k], "window start")
    post_curve, post_name, post_rng, post_ok = _side_curve(
        e, y, e0, post_sel, post_order if post_line else None, "post-edge", above[-k:], "window end")
    # The levels at E0 (a line's value there, or the constant level).
    jump = float(np.interp(e0, e, post_curve) - np.interp(e0, e, pre_curve))
    quality = "fair" if (pre_ok and post_ok) else "poor"
    info = Normalisation(f"{pre_name} + {post_name}", quality, e0, jump, pre_rng, post_rng, notes)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = (y - pre_curve) / jump if jump != 0 else np.full(e.size, np.nan)
        if post_line and flatten and jump != 0:
            a0 = int(np.flatnonzero(e >= e0)[0])
            norm[a0:] -= (post_curve[a0:] - pre_curve[a0:]) / jump - 1.0
    return _check_jump(norm, info)


def _check_jump(norm: np.ndarray, info: Normalisation) -> tuple[np.ndarray, Normalisation]:
    if not math.isfinite(info.edge_jump) or info.edge_jump == 0:
        info.quality = "no-edge"
        info.notes.append("no edge: the post-edge level equals the pre-edge level")
    elif info.edge_jump < 0:
        info.quality = "inverted"
        info.notes.append(
            "the edge jump is negative: the spectrum falls at the edge (transmitted "
            "intensity given where absorption was expected?); give μ = ln(I0/I)"
        )
    return norm, info
