"""XANES analysis: normalisation, edge energies, maps, linear combinations, spectra files.

Modules, by what they are about:

normalisation
    Pre-/post-edge normalisation of many spectra at once (closed-form least squares).
edges
    Edge energies of normalised spectra: half jump, max dμ/dE, first inflection, white line.
maps
    Per-voxel maps of a whole stack with a quality mask (blocks, threads, bounded memory).
lcf
    Linear-combination fitting with end members; resampling of references.
files
    Reading spectra: XDI, Athena projects, text/CSV tables with any delimiter.
robust
    One spectrum normalised with whatever its energy window allows, with a method and a
    quality flag.
calibration
    Energy calibration of a spectra file by its reference foil (tabulated edges).
spectra
    A few spectra at a time: the ``cellqc followup xanes-spectra`` analysis of a file.

Synthetic stacks (:func:`mix_references`) and the seed study's energy grid
(:func:`seed_energy_grid`) live in :mod:`core.followup.synthetic`; they are re-exported here,
as is everything that ``core.followup.xanes`` offered before it was split.
Energies are in eV throughout.
"""

from core.followup.synthetic import mix_references, seed_energy_grid
from core.followup.xanes._base import EDGE_WINDOW, POST_EDGE_START, PRE_EDGE_END
from core.followup.xanes.calibration import (
    TABULATED_EDGES_EV,
    Calibration,
    calibrate_by_reference,
    foil_edge_ev,
)
from core.followup.xanes.edges import (
    edge_half_jump,
    edge_max_derivative,
    first_inflection,
    white_line,
)
from core.followup.xanes.files import (
    SpectraFile,
    Spectrum,
    read_athena,
    read_spectra,
    read_spectra_table,
    read_table,
    read_xdi,
)
from core.followup.xanes.lcf import (
    LcfResult,
    fit_linear_combination,
    prepare_references,
    resample,
)
from core.followup.xanes.maps import (
    CHUNK_SPECTRA,
    MAX_POST_RESIDUAL,
    MIN_SNR,
    EdgeMaps,
    edge_energy_map,
)
from core.followup.xanes.normalisation import Normalized, estimate_e0, normalize
from core.followup.xanes.robust import Normalisation, looks_normalised, normalize_robust
from core.followup.xanes.spectra import (
    SpectraReport,
    analyze_spectra,
    analyze_spectra_file,
    analyze_spectrum,
    sample_spectra,
)

__all__ = [
    "CHUNK_SPECTRA",
    "EDGE_WINDOW",
    "MAX_POST_RESIDUAL",
    "MIN_SNR",
    "POST_EDGE_START",
    "PRE_EDGE_END",
    "TABULATED_EDGES_EV",
    "Calibration",
    "EdgeMaps",
    "LcfResult",
    "Normalisation",
    "Normalized",
    "SpectraFile",
    "SpectraReport",
    "Spectrum",
    "analyze_spectra",
    "analyze_spectra_file",
    "analyze_spectrum",
    "calibrate_by_reference",
    "edge_energy_map",
    "edge_half_jump",
    "edge_max_derivative",
    "estimate_e0",
    "first_inflection",
    "fit_linear_combination",
    "foil_edge_ev",
    "looks_normalised",
    "mix_references",
    "normalize",
    "normalize_robust",
    "prepare_references",
    "read_athena",
    "read_spectra",
    "read_spectra_table",
    "read_table",
    "read_xdi",
    "resample",
    "sample_spectra",
    "seed_energy_grid",
    "white_line",
]
