"""Synthetic wound cells with known defects (exact ground truth): the embedded demo data."""

from core.phantom.anatomy import random_anatomy
from core.phantom.render import (
    SyntheticCell,
    default_defects,
    defect_placement_problem,
    make_cell,
    truth_layer_present,
    truth_layer_radius_um,
    truth_strip_position,
    truth_windings_with,
)
from core.phantom.spec import (
    MATERIAL_MU,
    Anatomy,
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
    "Anatomy",
    "Artifacts",
    "CellSpec",
    "CoatingPatch",
    "CollectorDeflection",
    "Defect",
    "DelaminationVoid",
    "ForeignParticle",
    "SyntheticCell",
    "default_defects",
    "defect_placement_problem",
    "make_cell",
    "random_anatomy",
    "truth_layer_present",
    "truth_layer_radius_um",
    "truth_strip_position",
    "truth_windings_with",
]
