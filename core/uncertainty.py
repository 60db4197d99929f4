"""Expanded uncertainties (k = 2) of what cellqc measures, from its validation matrix.

No vendor states how well its CT inspection measures. cellqc does: the validation matrix
(``scripts/validate.py``, ``docs/validation.md``) inspects randomised generated cells with
exact ground truth at voxel sizes of 8–25 µm and records every measurement's error. For each
quantity the errors are fitted, by voxel size, with a root-mean-square model
``u(v) = sqrt(a² + (b·v)²)`` (a floor plus a part that grows with the voxel), and the expanded
uncertainty is ``U = k·u`` with k = 2 (about 95 % coverage for normal errors). Relative
quantities (a void's volume) are modelled on the relative error. The fitted coefficients live
in ``resources/uncertainty.json`` with the command that produced them; a result carries
``uncertainty`` beside each value it can, so a report can say "overhang 460 ± 30 µm".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from resources import RESOURCES_DIR

UNCERTAINTY_PATH = RESOURCES_DIR / "uncertainty.json"
COVERAGE_K = 2.0

# Which quantity each detector's finding value is, and which metrics are which quantity.
FINDING_QUANTITY = {
    "collector_deflection": "collector_deflection_um",
    "winding_quality": "winding_departure_um",
    "delamination": "void_volume_mm3",
    "electrode_thickness": "sheet_thickness_deviation_pct",
    "foreign_particle": "particle_diameter_um",
    "anode_overhang": "anode_overhang_um",
}
METRIC_QUANTITY = {
    "collector_deflection_max_um": "collector_deflection_um",
    "winding_deviation_max_um": "winding_departure_um",
    "void_max_volume_mm3": "void_volume_mm3",
    "void_total_volume_mm3": "void_volume_mm3",
    "cathode_sheet_thickness_mean_um": "sheet_thickness_um",
    "cathode_sheet_thickness_median_um": "sheet_thickness_um",
    "anode_overhang_mean_um": "anode_overhang_um",
    "anode_overhang_min_um": "anode_overhang_um",
    "anode_overhang_median_um": "anode_overhang_um",
    "can_outer_diameter_mm": "can_outer_diameter_mm",
}


@dataclass(frozen=True)
class UncertaintyModel:
    """``U(v) = k · sqrt(a² + (b·v)²)`` in the quantity's unit (or relative, × value)."""

    quantity: str
    unit: str
    a: float
    b: float
    relative: bool = False
    samples: int = 0
    # The voxel sizes the model was fitted on: beyond them it claims nothing (the real 21700's
    # 68 µm slices would have read "−11 ± 20 %" from a fit made at 12–30 µm).
    voxel_range_um: tuple[float, float] = (0.0, math.inf)

    def expanded(self, value: float | None, voxel_um: float, k: float = COVERAGE_K) -> float | None:
        """Expanded uncertainty of ``value`` measured at voxel size ``voxel_um``."""
        if value is None or not math.isfinite(float(value)) or not math.isfinite(voxel_um):
            return None
        lo, hi = self.voxel_range_um
        if not lo <= voxel_um <= hi:
            return None
        u = math.hypot(self.a, self.b * voxel_um)
        return float(k * u * (abs(float(value)) if self.relative else 1.0))


@cache
def load_models() -> dict[str, UncertaintyModel]:
    """The fitted models (empty when the table is missing: no uncertainty is claimed)."""
    try:
        data = json.loads(UNCERTAINTY_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for name, m in data.get("quantities", {}).items():
        try:
            lo, hi = m.get("voxel_range_um") or (0.0, math.inf)
            out[name] = UncertaintyModel(name, str(m["unit"]), float(m["a"]), float(m["b"]),
                                         bool(m.get("relative", False)), int(m.get("samples", 0)),
                                         (float(lo), float(hi)))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def expanded_uncertainty(quantity: str, value: float | None, voxel_um: float) -> float | None:
    """U (k = 2) of a measured ``quantity`` (see :data:`FINDING_QUANTITY`), or None."""
    model = load_models().get(quantity)
    return None if model is None else model.expanded(value, voxel_um)


def annotate(result: dict[str, Any]) -> None:
    """Add ``uncertainty`` (k = 2, the value's unit) to each finding and a block of metric
    uncertainties to an inspection result, for its voxel size (the coarsest axis: what limits
    the measurement)."""
    spacing = result.get("spacing_um") or [result.get("voxel_size_um")] * 3
    try:
        voxel = float(max(float(s) for s in spacing if s is not None))
    except ValueError:
        return
    models = load_models()
    for f in result.get("findings", []):
        model = models.get(FINDING_QUANTITY.get(f.get("detector"), ""))
        if model is None or model.unit != f.get("unit"):  # e.g. a tab window's length (mm)
            continue
        u = model.expanded(f.get("value"), voxel)
        if u is not None:
            f["uncertainty"] = u
            f["uncertainty_k"] = COVERAGE_K
    metrics = result.get("metrics", {})
    block = {}
    for name, quantity in METRIC_QUANTITY.items():
        u = expanded_uncertainty(quantity, metrics.get(name), voxel)
        if u is not None:
            block[name] = u
    if block:
        result["uncertainty"] = {"k": COVERAGE_K, "voxel_um": voxel, "metrics": block,
                                 "method": "validation matrix of generated cells (docs/validation.md)"}


def format_value(value: float | None, unit: str, uncertainty: float | None = None, digits: int | None = None) -> str:
    """``"460 ± 30 µm"``: the value with its expanded uncertainty, rounded together."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    value = float(value)
    if digits is None:
        ref = abs(uncertainty) if uncertainty else abs(value)
        digits = 0 if ref >= 10 else (1 if ref >= 1 else (3 if ref >= 0.01 else 4))
    text = f"{value:.{digits}f}"
    if uncertainty is not None and math.isfinite(uncertainty):
        text += f" ± {uncertainty:.{digits}f}"
    return f"{text} {unit}".strip()
