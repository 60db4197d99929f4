"""A few spectra at a time: the ``cellqc followup xanes-spectra`` analysis of a spectra file.

Each spectrum is normalised (:func:`~core.followup.xanes.robust.normalize_robust`, which says
how and how far to trust it), its edge energies found (:mod:`core.followup.xanes.edges`), and
the file's energies calibrated by its reference foil when it has one
(:mod:`core.followup.xanes.calibration`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.followup.xanes._base import EDGE_WINDOW, check_energies, finite_or_none
from core.followup.xanes.calibration import Calibration, calibrate_by_reference, foil_edge_ev
from core.followup.xanes.edges import (
    edge_half_jump,
    edge_max_derivative,
    first_inflection,
    white_line,
)
from core.followup.xanes.files import SpectraFile, Spectrum, read_spectra
from core.followup.xanes.robust import normalize_robust


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
        "edge_jump": finite_or_none(info.edge_jump),
        "e0_nominal_ev": finite_or_none(e0v),
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
        row["e0_half_ev"] = finite_or_none(edge_half_jump(e, col, window=win)[0])
    if enough(win[0], win[1] - 10.0):
        row["e0_deriv_ev"] = finite_or_none(edge_max_derivative(e, col, window=(win[0], win[1] - 10.0))[0])
        row["first_inflection_ev"] = finite_or_none(
            first_inflection(e, col, window=(win[0], win[1] - 10.0))[0]
        )
    if enough(win[0] + 5.0, win[1]):
        row["white_line_ev"] = finite_or_none(white_line(e, col, window=(win[0] + 5.0, win[1]))[0])
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
