"""Synthetic wound cells with known defects (exact ground truth): the embedded demo data."""

from core.phantom.render import SyntheticCell, default_defects, make_cell, truth_layer_radius_um
from core.phantom.spec import (
    MATERIAL_MU,
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    Defect,
    DelaminationVoid,
    ForeignParticle,
)

__all__ = [
    "MATERIAL_MU",
    "Artifacts",
    "CellSpec",
    "CoatingPatch",
    "CollectorDeflection",
    "Defect",
    "DelaminationVoid",
    "ForeignParticle",
    "SyntheticCell",
    "default_defects",
    "make_cell",
    "truth_layer_radius_um",
]
