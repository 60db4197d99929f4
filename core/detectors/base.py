"""What every detector shares: its signature, its findings and the registry.

A detector is one module under ``core/detectors/`` holding its code and one
:class:`core.detectors.spec.DetectorSpec` (in :mod:`core.detectors.spec`): its label, its
recipe rules (type, range, default, unit, help), the limits it reports, how each of its
metrics merges across chunks, its finding id prefix. ``@register(SPEC)`` on its ``detect``
function adds it to :data:`DETECTORS` and :data:`SPECS`; the recipe schema
(:mod:`core.recipe`), the result's ``limits`` (:mod:`core.inspect`), the chunk merge
(:mod:`core.chunked`) and the names the report and the GUI use (:mod:`core.describe`) are
built from :data:`SPECS`, so adding a detector is adding its module and importing it in
``core/detectors/__init__.py``.

Numerics several detectors share are in :mod:`core.detectors.numerics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.detectors.spec import DetectorSpec
from core.geometry.roll import CellGeometry
from core.io.volume import Volume

SEVERITIES = ("fail", "review", "info")


@dataclass
class DetectorContext:
    """Inputs of a detector: the volume, its geometry, and the recipe's rules and cell."""

    volume: Volume
    geometry: CellGeometry
    rules: dict[str, float]
    cell: dict[str, Any]
    progress: Callable[[float, str], None] | None = None
    cancel: Callable[[], bool] | None = None
    segmenter: str = "classic"  # "onnx" / "classic+onnx": model-based variants or second opinion (core.segment)
    # Values measured on the whole volume when it is inspected a chunk at a time (core.chunked),
    # e.g. "cathode_sheet_thickness_median_um"; detectors use them instead of their own.
    reference: dict[str, float] = field(default_factory=dict)

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(fraction, message)

    def check_cancel(self) -> None:
        from core.errors import Cancelled

        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled")


@dataclass
class Finding:
    """One located, measured anomaly (DESIGN.md, inspection result ``findings``)."""

    detector: str
    severity: str
    centroid_zyx_px: tuple[float, float, float]
    bbox_zyx_px: tuple[int, int, int, int, int, int]
    value: float
    unit: str
    message: str
    winding: int | None = None
    angle_deg: float | None = None
    rule: str = ""
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "detector": self.detector,
            "severity": self.severity,
            "centroid_zyx_px": [float(c) for c in self.centroid_zyx_px],
            "bbox_zyx_px": [int(b) for b in self.bbox_zyx_px],
            "winding": None if self.winding is None else int(self.winding),
            "angle_deg": None if self.angle_deg is None else float(self.angle_deg),
            "value": float(self.value),
            "unit": self.unit,
            "message": self.message,
            "rule": self.rule,
        }
        for key, val in self.extra.items():
            out[key] = _plain(val)
        return out


@dataclass
class DetectorOutput:
    """Findings, scalar metrics and optional unrolled maps of one detector."""

    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    maps: dict[str, Any] = field(default_factory=dict)


Detector = Callable[[DetectorContext], DetectorOutput]
DETECTORS: dict[str, Detector] = {}


SPECS: dict[str, DetectorSpec] = {}


def register(spec: DetectorSpec) -> Callable[[Detector], Detector]:
    """Register a detector function under its declaration (one module per detector)."""
    unknown = {k for lim in spec.limits.values() for k in (lim.review, lim.fail) if k is not None} - set(spec.rules)
    unknown |= {k for pair in spec.ordered for k in pair} - set(spec.rules)
    if unknown:
        raise ValueError(f"detector {spec.name}: limits or ordered pairs name undeclared rules {sorted(unknown)}")

    def wrap(func: Detector) -> Detector:
        DETECTORS[spec.name] = func
        SPECS[spec.name] = spec
        return func

    return wrap


def specs() -> list[DetectorSpec]:
    """The registered declarations in the order people read them (:attr:`DetectorSpec.order`)."""
    return sorted(SPECS.values(), key=lambda s: s.order)


def severity_for(value: float, fail: float | None, review: float | None) -> str:
    """``fail`` when value ≥ fail, ``review`` when ≥ review, else ``info``."""
    if fail is not None and value >= fail:
        return "fail"
    if review is not None and value >= review:
        return "review"
    return "info"


def _plain(val: Any) -> Any:
    if isinstance(val, np.generic):
        return val.item()
    if isinstance(val, float) and not math.isfinite(val):
        return None
    if isinstance(val, list | tuple):
        return [_plain(v) for v in val]
    return val
