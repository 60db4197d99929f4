"""A few spectra at a time: robust normalisation, edge energies, reference-foil calibration.

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

Calibration: when a file carries a reference-foil channel (XDI ``irefer``/``murefer``), the
foil's first inflection point (:func:`~core.followup.xanes.edges.first_inflection`) is moved to
its tabulated edge energy (:data:`TABULATED_EDGES_EV`, 8333 eV for Ni K) and every spectrum of
the file is shifted by the same amount. A shift larger than :data:`MAX_CALIBRATION_SHIFT_EV`
means the channel is not that foil: not applied, and a warning says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.followup.xanes._base import (
    EDGE_WINDOW,
    POST_EDGE_START,
    PRE_EDGE_END,
    check_energies,
    derivative,
    eval_poly,
    fit_poly,
)
from core.followup.xanes.edges import (
    edge_half_jump,
    edge_max_derivative,
    first_inflection,
    white_line,
)
from core.followup.xanes.files import SpectraFile, Spectrum, read_spectra
from core.followup.xanes.normalisation import estimate_e0, normalize

#: Tabulated edge energies (eV) of metal foils used for calibration (Bearden & Burr, as in
#: Athena and xraydb): the first inflection point of the foil's absorption edge.
TABULATED_EDGES_EV: dict[tuple[str, str], float] = {
    ("Ti", "K"): 4966.0,
    ("V", "K"): 5465.0,
    ("Cr", "K"): 5989.0,
    ("Mn", "K"): 6539.0,
    ("Fe", "K"): 7112.0,
    ("Co", "K"): 7709.0,
    ("Ni", "K"): 8333.0,
    ("Cu", "K"): 8979.0,
    ("Zn", "K"): 9659.0,
}
#: Largest calibration shift (eV) believed; a larger one means the channel is not that foil.
MAX_CALIBRATION_SHIFT_EV = 20.0
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
            "e0_ev": _f(self.e0),
            "edge_jump": _f(self.edge_jump),
            "pre_range_ev": None if self.pre_range_ev is None else [*map(float, self.pre_range_ev)],
            "post_range_ev": (
                None if self.post_range_ev is None else [*map(float, self.post_range_ev)]
            ),
            "notes": list(self.notes),
        }


def _f(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


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


# ------------------------------------------------------------------------ calibration


@dataclass
class Calibration:
    """An energy calibration by a reference foil.

    Attributes
    ----------
    reference : str
        The spectrum (channel) used.
    tabulated_edge_ev : float
        The foil's tabulated edge energy.
    measured_edge_ev : float or None
        Its first inflection point as measured.
    shift_ev : float
        Added to every energy of the file (tabulated - measured) when applied.
    applied : bool
        False when the shift was implausible or the edge not found.
    element, edge : str or None
        The foil's element and edge, when known.
    note : str
        Why it was not applied, or "".
    """

    reference: str
    tabulated_edge_ev: float
    measured_edge_ev: float | None
    shift_ev: float
    applied: bool
    element: str | None = None
    edge: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "method": "reference foil, first inflection point",
            "reference": self.reference,
            "element": self.element,
            "edge": self.edge,
            "tabulated_edge_ev": self.tabulated_edge_ev,
            "measured_edge_ev": _f(self.measured_edge_ev),
            "shift_ev": _f(self.shift_ev),
            "applied": self.applied,
            "note": self.note,
        }


def foil_edge_ev(element: str | None, edge: str | None = "K") -> float | None:
    """Tabulated edge energy (eV) of a metal foil, or None when not tabulated here."""
    if not element:
        return None
    return TABULATED_EDGES_EV.get((element.strip().capitalize(), (edge or "K").strip().upper()))


def calibrate_by_reference(
    energies: Sequence[float],
    reference_mu: np.ndarray,
    tabulated_edge_ev: float,
    *,
    name: str = "reference",
    element: str | None = None,
    edge: str | None = None,
) -> Calibration:
    """Energy shift that moves a reference foil's first inflection to its tabulated edge.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    reference_mu : ndarray
        (n,) the foil's absorption.
    tabulated_edge_ev : float
        Where the foil's edge belongs (8333 eV for Ni K).
    name, element, edge : str, optional
        Recorded in the result.

    Returns
    -------
    Calibration
    """
    e = check_energies(energies)
    tab = float(tabulated_edge_ev)
    base = Calibration(name, tab, None, 0.0, False, element, edge)
    window = (tab - 2 * MAX_CALIBRATION_SHIFT_EV, tab + 2 * MAX_CALIBRATION_SHIFT_EV)
    if np.count_nonzero((e >= window[0]) & (e <= window[1])) < 4:
        base.note = f"the reference holds no energies near {tab:g} eV"
        return base
    try:
        norm, info = normalize_robust(e, reference_mu)
    except ValueError as exc:
        base.note = f"the reference cannot be normalised: {exc}"
        return base
    if info.quality in ("inverted", "no-edge"):
        base.note = f"the reference channel has no usable edge ({info.quality})"
        return base
    measured = float(first_inflection(e, norm[:, None], window=window)[0])
    if not math.isfinite(measured):
        base.note = "no inflection point found on the reference"
        return base
    shift = tab - measured
    base.measured_edge_ev = measured
    base.shift_ev = shift
    if abs(shift) > MAX_CALIBRATION_SHIFT_EV:
        base.note = (
            f"the reference's edge is {measured:.2f} eV, {abs(shift):.1f} eV from the tabulated "
            f"{tab:g} eV: not that foil? not calibrated"
        )
        return base
    base.applied = True
    return base


# ------------------------------------------------------------------------- analysis


def analyze_spectrum(
    energies: Sequence[float],
    mu: np.ndarray,
    name: str,
    *,
    e0: float | None = None,
    window: tuple[float, float] | None = None,
    declared_normalised: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Normalise one spectrum and find its edge energies.

    Parameters
    ----------
    energies : sequence of float
        eV, increasing.
    mu : ndarray
        (n,) absorption.
    name : str
        Reported name.
    e0 : float, optional
        Nominal edge energy (eV); default the maximum of dμ/dE.
    window : (float, float), optional
        Absolute range (eV) searched for the edge (default E0 - 20 … E0 + 30 eV).
    declared_normalised : bool
        The file says the spectrum is normalised.

    Returns
    -------
    row : dict
        ``name, e0_half_ev, e0_deriv_ev, first_inflection_ev, white_line_ev, edge_jump,
        e0_nominal_ev, normalisation`` (method, quality, ranges, notes) and ``warnings``.
    norm : ndarray
        The normalised spectrum.
    """
    e = check_energies(energies)
    norm, info = normalize_robust(e, mu, e0=e0, declared_normalised=declared_normalised)
    e0v = info.e0
    win = window or (e0v + EDGE_WINDOW[0], e0v + EDGE_WINDOW[1])
    row: dict[str, Any] = {
        "name": str(name),
        "e0_half_ev": None,
        "e0_deriv_ev": None,
        "first_inflection_ev": None,
        "white_line_ev": None,
        "edge_jump": _f(info.edge_jump),
        "e0_nominal_ev": _f(e0v),
        "energy_range_ev": [float(e[0]), float(e[-1])],
        "n_energies": int(e.size),
        "normalisation": info.to_dict(),
        "warnings": [],
    }
    if info.quality in ("inverted", "no-edge"):
        row["warnings"].append(f"{name}: {info.notes[-1]}")
        return row, norm
    col = norm[:, None]

    def enough(lo: float, hi: float) -> bool:
        return int(np.count_nonzero((e >= lo) & (e <= hi))) >= 3

    if enough(*win):
        row["e0_half_ev"] = _f(edge_half_jump(e, col, window=win)[0])
    if enough(win[0], win[1] - 10.0):
        row["e0_deriv_ev"] = _f(edge_max_derivative(e, col, window=(win[0], win[1] - 10.0))[0])
        row["first_inflection_ev"] = _f(
            first_inflection(e, col, window=(win[0], win[1] - 10.0))[0]
        )
    if enough(win[0] + 5.0, win[1]):
        row["white_line_ev"] = _f(white_line(e, col, window=(win[0] + 5.0, win[1]))[0])
    if info.quality == "poor":
        row["warnings"].append(
            f"{name}: normalised by {info.method} (the window has no pre-/post-edge to fit); "
            "edge energies are approximate"
        )
    if row["e0_half_ev"] is None:
        row["warnings"].append(f"{name}: no half-jump crossing in {win[0]:.1f}–{win[1]:.1f} eV")
    return row, norm


def analyze_spectra(
    energies: Sequence[float],
    spectra: np.ndarray,
    names: Sequence[str],
    *,
    e0: float | None = None,
    window: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """Edge energies of a few spectra on one energy axis (each normalised on its own).

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
        One row per spectrum, see :func:`analyze_spectrum`.
    """
    e = check_energies(energies)
    data = np.asarray(spectra, dtype=np.float64).reshape(e.size, -1)
    return [
        analyze_spectrum(e, data[:, j], name, e0=e0, window=window)[0]
        for j, name in enumerate(names)
    ]


@dataclass
class SpectraReport:
    """What :func:`analyze_spectra_file` found.

    Attributes
    ----------
    summary : dict
        JSON-ready (schema ``cellqc.xanes-spectra/1``): file, format, element, edge,
        calibration, spectra (one row each), notes, warnings.
    curves : list of (str, ndarray, ndarray, float or None)
        Per spectrum: name, energies (eV, calibrated), normalised μ, half-jump energy.
    """

    summary: dict[str, Any]
    curves: list[tuple[str, np.ndarray, np.ndarray, float | None]]


def analyze_spectra_file(
    path: str | os.PathLike[str],
    *,
    e0: float | None = None,
    window: tuple[float, float] | None = None,
    calibrate: bool = True,
    foil_edge: float | None = None,
) -> SpectraReport:
    """Read a spectra file (XDI, Athena project, table), calibrate, normalise, find edges.

    Parameters
    ----------
    path : str or path-like
        The file.
    e0 : float, optional
        Nominal edge energy (eV) for every spectrum; default each one's own.
    window : (float, float), optional
        Edge search window (eV).
    calibrate : bool
        Calibrate by the file's reference channel when it has one.
    foil_edge : float, optional
        The reference foil's edge energy (eV); default tabulated for the file's element.

    Returns
    -------
    SpectraReport

    Raises
    ------
    InputError
        Unreadable file, a spectrum that cannot be analysed, or no spectrum with a usable
        edge (all inverted, flat or without a half-jump crossing), naming the file.
    """
    sf: SpectraFile = read_spectra(path)
    source = Path(path)
    warnings: list[str] = []
    calibration: Calibration | None = None
    reference = next((s for s in sf.spectra if s.role == "reference"), None)
    if calibrate and reference is not None:
        tab = foil_edge if foil_edge is not None else foil_edge_ev(sf.element, sf.edge)
        if tab is None:
            warnings.append(
                f"{source.name}: a reference channel but no known foil edge "
                f"(element {sf.element or '?'}); pass --foil-edge EV to calibrate"
            )
        else:
            try:
                calibration = calibrate_by_reference(
                    reference.energy_ev, reference.mu, tab, name=reference.name,
                    element=sf.element, edge=sf.edge,
                )
            except ValueError as exc:
                raise InputError(source, f"{reference.name}: {exc}") from None
            if not calibration.applied:
                warnings.append(f"{source.name}: {calibration.note}")
    shift = calibration.shift_ev if calibration is not None and calibration.applied else 0.0
    rows: list[dict[str, Any]] = []
    curves: list[tuple[str, np.ndarray, np.ndarray, float | None]] = []
    for s in sf.spectra:
        energies = s.energy_ev + shift
        try:
            row, norm = analyze_spectrum(
                energies, s.mu, s.name, e0=e0, window=window,
                declared_normalised=s.quantity == "normalised",
            )
        except ValueError as exc:
            raise InputError(source, f"spectrum {s.name!r}: {exc}") from None
        row["role"] = s.role
        row["quantity"] = s.quantity
        row["energy_shift_ev"] = float(shift)
        row["notes"] = list(s.notes)
        rows.append(row)
        warnings.extend(row["warnings"])
        curves.append((s.name, energies, norm, row["e0_half_ev"]))
    if not any(row["e0_half_ev"] is not None for row in rows):
        why = warnings[-1] if warnings else "no edge found"
        raise InputError(source, f"no spectrum with a usable edge ({why})")
    summary = {
        "schema": "cellqc.xanes-spectra/1",
        "file": str(path),
        "format": sf.format,
        "element": sf.element,
        "edge": sf.edge,
        "calibration": calibration.to_dict() if calibration is not None else None,
        "spectra": rows,
        "notes": list(sf.notes),
        "warnings": warnings,
    }
    return SpectraReport(summary=summary, curves=curves)


def sample_spectra(
    path: str | os.PathLike[str], *, calibrate: bool = True
) -> list[Spectrum]:
    """The sample spectra of a file, calibrated by its reference-foil channel when it has one.

    What an end member for linear-combination fitting should be: the reference channel itself
    is left out, and the energies are moved to the foil's tabulated edge when the file
    allows it (an implausible shift is not applied).

    Parameters
    ----------
    path : str or path-like
        Any file :func:`~core.followup.xanes.files.read_spectra` reads.
    calibrate : bool
        Apply the reference-foil calibration when possible.

    Returns
    -------
    list of Spectrum
        ``energy_ev`` shifted when calibrated (noted in ``notes``).
    """
    sf = read_spectra(path)
    samples = [s for s in sf.spectra if s.role == "sample"]
    ref = next((s for s in sf.spectra if s.role == "reference"), None)
    tab = foil_edge_ev(sf.element, sf.edge)
    if calibrate and ref is not None and tab is not None:
        try:
            cal = calibrate_by_reference(ref.energy_ev, ref.mu, tab)
        except ValueError:
            cal = None
        if cal is not None and cal.applied:
            for s in samples:
                s.energy_ev = s.energy_ev + cal.shift_ev
                s.notes.append(f"calibrated by the reference foil: {cal.shift_ev:+.3f} eV")
    return samples
