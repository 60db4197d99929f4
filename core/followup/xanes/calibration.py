"""Energy calibration of a spectra file by its reference foil.

When a file carries a reference-foil channel (XDI ``irefer``/``murefer``), the
foil's first inflection point (:func:`~core.followup.xanes.edges.first_inflection`) is moved to
its tabulated edge energy (:data:`TABULATED_EDGES_EV`, 8333 eV for Ni K) and every spectrum of
the file is shifted by the same amount. A shift larger than :data:`MAX_CALIBRATION_SHIFT_EV`
means the channel is not that foil: not applied, and a warning says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.followup.xanes._base import check_energies, finite_or_none
from core.followup.xanes.edges import first_inflection
from core.followup.xanes.robust import normalize_robust

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
            "measured_edge_ev": finite_or_none(self.measured_edge_ev),
            "shift_ev": finite_or_none(self.shift_ev),
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
