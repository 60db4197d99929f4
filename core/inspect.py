"""The inspection pipeline: load → geometry → detectors → verdict → result.

``inspect_volume`` returns an :class:`Inspection` whose ``result`` is the JSON-ready dict of
schema ``cellqc.inspection/1`` (DESIGN.md); the geometry and the unrolled maps ride along
for reports and viewers.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.detectors import DetectorContext
from core.geometry.layers import GeometryParams
from core.geometry.maps import UnrolledMap, unroll
from core.geometry.roll import CellGeometry, measure_geometry
from core.io.volume import Volume
from core.recipe import Recipe, load_recipe
from core.segment import detector_for
from resources import RESOURCES_DIR

SCHEMA = "cellqc.inspection/1"
SCHEMA_PATH = RESOURCES_DIR / "schema" / "inspection.schema.json"
Progress = Callable[[float, str], None]
_PREFIX = {"delamination": "D", "collector_deflection": "C", "electrode_thickness": "T", "foreign_particle": "P"}
_SEVERITY_ORDER = {"fail": 0, "review": 1, "info": 2}
REQUIRED_METRICS = ("cathode_sheet_thickness_mean_um", "cathode_sheet_thickness_std_um",
                    "cathode_sheet_thickness_cv", "collector_deflection_max_um", "void_count",
                    "void_total_volume_mm3")


@dataclass
class Inspection:
    """An inspection's result dict plus what a report or viewer needs to draw it."""

    result: dict[str, Any]
    volume: Volume
    geometry: CellGeometry | None = None
    maps: dict[str, UnrolledMap] = field(default_factory=dict)
    raw_maps: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.result["verdict"]


def geometry_params(recipe: Recipe) -> GeometryParams:
    """Geometry parameters (µm) from the recipe's cell description."""
    cell = recipe.cell
    params = GeometryParams()
    for key in ("pitch_min_um", "pitch_max_um", "cu_foil_um", "al_foil_um", "max_can_wall_um"):
        if key in cell:
            setattr(params, key, float(cell[key]))
    return params


def decide_verdict(findings: list[dict[str, Any]], geometry: CellGeometry | None) -> tuple[str, list[str]]:
    """PASS / FAIL / REVIEW and the reasons: which rule, which finding, which value and limit."""
    reasons = []
    for f in findings:
        if f["severity"] in ("fail", "review"):
            reasons.append(f"{f['severity'].upper()}: {f['rule']} — {f['message']} (finding {f['id']})")
    if geometry is not None and not geometry.roll_slices:
        reasons.append("REVIEW: no jelly roll found in the volume; nothing could be inspected")
    if any(f["severity"] == "fail" for f in findings):
        verdict = "FAIL"
    elif reasons:
        verdict = "REVIEW"
    else:
        verdict = "PASS"
        reasons.append("PASS: no finding reaches a review or fail limit of the recipe")
    return verdict, reasons


def _limits(recipe: Recipe) -> dict[str, dict[str, Any]]:
    r = recipe.rules
    d, c, e, p = (r.get(n, {}) for n in ("delamination", "collector_deflection", "electrode_thickness",
                                          "foreign_particle"))
    return {
        "void_max_volume_mm3": {"review": d.get("review_volume_mm3"), "fail": d.get("fail_volume_mm3"), "unit": "mm³"},
        "collector_deflection_max_um": {"review": c.get("review_um"), "fail": c.get("fail_um"), "unit": "µm"},
        "cathode_thickness_max_deviation_pct": {
            "review": 100 * e["review_deviation"] if "review_deviation" in e else None,
            "fail": 100 * e["fail_deviation"] if "fail_deviation" in e else None, "unit": "%"},
        "foreign_particle_max_diameter_um": {"review": None, "fail": p.get("fail_diameter_um"), "unit": "µm"},
    }


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def inspect_volume(volume: Volume, recipe: Recipe | str | Path | None = None, *, cell_id: str | None = None,
                   progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                   operator: str | None = None, segmenter: str = "classic") -> Inspection:
    """Inspect one cell volume.

    Parameters
    ----------
    volume : Volume
    recipe : Recipe, name or path, optional
        Default: the 18650 NMC recipe.
    cell_id : str, optional
        Overrides the volume's cell id.
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Polled between slices; raises :class:`core.errors.Cancelled`.
    operator : str, optional
    segmenter : {"classic", "onnx"}
        "onnx" runs the learned segmenter's detector variants (``core.segment``).

    Returns
    -------
    Inspection
    """
    started = _dt.datetime.now(_dt.UTC)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    report = progress or (lambda f, m: None)
    timings: dict[str, float] = {}

    def stage(lo: float, hi: float) -> Progress:
        return lambda f, m: report(lo + (hi - lo) * f, m)

    t0 = time.perf_counter()
    geometry = measure_geometry(volume, geometry_params(recipe), progress=stage(0.0, 0.6), cancel=cancel)
    timings["geometry"] = time.perf_counter() - t0

    findings, metrics, raw_maps = [], {}, {}
    n_det = max(len(recipe.detectors), 1)
    for i, name in enumerate(recipe.detectors):
        t1 = time.perf_counter()
        ctx = DetectorContext(volume=volume, geometry=geometry, rules=recipe.rules.get(name, {}), cell=recipe.cell,
                              progress=stage(0.6 + 0.35 * i / n_det, 0.6 + 0.35 * (i + 1) / n_det), cancel=cancel,
                              segmenter=segmenter)
        out = detector_for(name, segmenter)(ctx)
        findings.extend(out.findings)
        metrics.update(out.metrics)
        raw_maps.update(out.maps)
        timings[name] = time.perf_counter() - t1
    for key in REQUIRED_METRICS:
        metrics.setdefault(key, 0 if key == "void_count" else (0.0 if key == "void_total_volume_mm3" else None))

    findings.sort(key=lambda f: (_SEVERITY_ORDER.get(f.severity, 3), f.detector, -abs(f.value)))
    counters: dict[str, int] = {}
    finding_dicts = []
    for f in findings:
        prefix = _PREFIX.get(f.detector, "F")
        counters[prefix] = counters.get(prefix, 0) + 1
        f.id = f"{prefix}{counters[prefix]}"
        finding_dicts.append(f.to_json())
    verdict, reasons = decide_verdict(finding_dicts, geometry)

    maps: dict[str, UnrolledMap] = {}
    if geometry.roll_slices and "cathode_thickness_um" in raw_maps:
        maps["cathode_thickness_um"] = unroll(geometry, raw_maps["cathode_thickness_um"], "cathode sheet thickness", "µm")
    if geometry.roll_slices:
        maps["cu_al_gap_um"] = unroll(geometry, geometry.stacked("cu_al_gap_um"), "Cu–Al gap", "µm")
        maps["cathode_intensity"] = unroll(geometry, geometry.stacked("sheet_intensity"), "cathode sheet intensity", "a.u.")
    timings["total"] = time.perf_counter() - t0
    report(1.0, f"verdict {verdict}")

    spacing = volume.spacing_um
    result = {
        "schema": SCHEMA,
        "cell_id": cell_id or volume.cell_id or Path(volume.source).stem or "unknown",
        "verdict": verdict,
        "reasons": reasons,
        "voxel_size_um": float(volume.voxel_size_um),
        "spacing_um": [float(s) for s in spacing],
        "shape_zyx": list(volume.shape),
        "recipe": recipe.name,
        "recipe_hash": recipe.sha256,
        "recipe_source": recipe.source,
        "software_version": __version__,
        "source": volume.source,
        "modality": volume.modality,
        "operator": operator,
        "segmenter": segmenter,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "geometry": geometry.to_json(),
        "metrics": metrics,
        "limits": _limits(recipe),
        "findings": finding_dicts,
        "timings_s": timings,
    }
    return Inspection(result=_clean(result), volume=volume, geometry=geometry, maps=maps, raw_maps=raw_maps)


def load_schema() -> dict[str, Any]:
    """The JSON Schema of an inspection result."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_result(result: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``result`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(result, load_schema())
