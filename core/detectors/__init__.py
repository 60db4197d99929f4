"""Detectors: one module each, one signature ``detect(ctx) -> DetectorOutput``, a registry.

Importing this package registers every shipped detector in :data:`DETECTORS`.
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
    DetectorContext,
    DetectorOutput,
    Finding,
    register,
    severity_for,
)

__all__ = ["DETECTORS", "DetectorContext", "DetectorOutput", "Finding", "register", "severity_for"]
