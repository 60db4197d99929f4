"""Detectors: one module each, one signature ``detect(ctx) -> DetectorOutput``, a registry.

Importing this package registers every shipped detector in :data:`DETECTORS` (its function)
and :data:`SPECS` (its declaration: label, rules, limits, metrics; see
:class:`core.detectors.spec.DetectorSpec`). A new detector is a new module here, imported
below; the recipe schema, the result's limits, the chunk merge and the report's and GUI's
names follow from its declaration.
"""

from core.detectors import (  # noqa: E402,F401  (registration)
    anode_overhang,
    can_metrology,
    collector_deflection,
    delamination,
    electrode_thickness,
    foreign_particle,
    winding_quality,
)
from core.detectors.base import (
    DETECTORS,
    SPECS,
    DetectorContext,
    DetectorOutput,
    Finding,
    register,
    severity_for,
    specs,
)
from core.detectors.spec import DetectorSpec, Limit, Metric, Rule

__all__ = ["DETECTORS", "SPECS", "DetectorContext", "DetectorOutput", "DetectorSpec", "Finding", "Limit", "Metric",
           "Rule", "register", "severity_for", "specs"]
