"""Detectors: one module each, one signature ``detect(ctx) -> DetectorOutput``, a registry.

Importing this package registers every shipped detector in :data:`DETECTORS`.
"""

from core.detectors import (  # noqa: E402,F401  (registration)
    collector_deflection,
    delamination,
    electrode_thickness,
    foreign_particle,
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
