"""Synchrotron follow-up: nano holotomography and Ni K-edge XANES spectro-tomography.

Modules
-------
io
    Readers: holotomography volumes (TIFF, HDF5, PyHST2 ``.vol``), XANES stacks with their
    energies (HDF5, TIFF + energy list, Xradia ``.xrm``/``.txrm`` through
    :mod:`core.io.xradia`), flat fields, single images (:func:`~core.followup.io.read_image`).
phase
    Paganin single-distance and multi-distance CTF phase retrieval, Fresnel simulation.
xanes
    A package: vectorised normalisation, edge energies, per-voxel maps with a quality mask,
    linear-combination fitting; spectra files (XDI, Athena ``.prj``, tables) with robust
    normalisation and reference-foil calibration.
particles
    Particle/fragment segmentation (distance-transform watershed), size statistics, depth
    regions, damage classes.
analysis
    The seed study's analyses on a holotomography volume or a XANES stack.
figures
    PNG figures for the report, the GUI and files.
records, pipeline
    Import into the log (sha256, audit), analyses recorded against their follow-up.
synthetic
    Generated data with ground truth.
"""

from core.followup.analysis import (
    HoloParams,
    HoloResult,
    Reference,
    XanesParams,
    XanesResult,
    analyze_holo,
    analyze_xanes,
)
from core.followup.io import (
    XanesStack,
    detect_kind,
    read_energy_file,
    read_holo_volume,
    read_pyhst_vol,
    read_xanes,
    sha256_file,
    to_ev,
)
from core.followup.phase import ctf_phase, paganin_filter, paganin_phase, simulate_holograms
from core.followup.records import (
    get_followup,
    import_followup,
    list_followups,
    record_analysis,
    report_items,
    verify_files,
)
from core.followup.xanes import (
    EdgeMaps,
    analyze_spectra_file,
    edge_energy_map,
    fit_linear_combination,
    normalize,
    read_spectra,
    read_spectra_table,
    seed_energy_grid,
)

__all__ = [
    "EdgeMaps",
    "HoloParams",
    "HoloResult",
    "Reference",
    "XanesParams",
    "XanesResult",
    "XanesStack",
    "analyze_holo",
    "analyze_spectra_file",
    "analyze_xanes",
    "ctf_phase",
    "detect_kind",
    "edge_energy_map",
    "fit_linear_combination",
    "get_followup",
    "import_followup",
    "list_followups",
    "normalize",
    "paganin_filter",
    "paganin_phase",
    "read_energy_file",
    "read_holo_volume",
    "read_pyhst_vol",
    "read_spectra",
    "read_spectra_table",
    "read_xanes",
    "record_analysis",
    "report_items",
    "seed_energy_grid",
    "sha256_file",
    "simulate_holograms",
    "to_ev",
    "verify_files",
]
