"""What every detector shares: its signature, its findings, and the registry."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


def register(name: str) -> Callable[[Detector], Detector]:
    """Register a detector function under ``name`` (one module per detector)."""

    def wrap(func: Detector) -> Detector:
        DETECTORS[name] = func
        return func

    return wrap


def severity_for(value: float, fail: float | None, review: float | None) -> str:
    """``fail`` when value ≥ fail, ``review`` when ≥ review, else ``info``."""
    if fail is not None and value >= fail:
        return "fail"
    if review is not None and value >= review:
        return "review"
    return "info"


def points_to_yx(geometry: CellGeometry, z: np.ndarray, t: np.ndarray, rho_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (y, x) of unwrap points (slice z, angle t, elliptical radius in µm)."""
    z = np.atleast_1d(np.asarray(z, dtype=float))
    t = np.atleast_1d(np.asarray(t, dtype=float))
    rho = np.atleast_1d(np.asarray(rho_um, dtype=float)) / geometry.pixel_um
    ys = np.empty(np.broadcast(z, t, rho).shape)
    xs = np.empty_like(ys)
    zb, tb, rb = np.broadcast_arrays(z, t, rho)
    for zz in np.unique(zb):
        sel = zb == zz
        y, x = geometry.frame_at(float(zz)).to_yx(tb[sel], rb[sel])
        ys[sel], xs[sel] = y, x
    return ys, xs


def box_and_centroid(z: np.ndarray, y: np.ndarray, x: np.ndarray, w: np.ndarray | None = None):
    """Centroid (weighted) and inclusive-exclusive bounding box of points in voxel indices."""
    w = np.ones_like(z, dtype=float) if w is None else np.clip(w, 0, None)
    ok = np.isfinite(z) & np.isfinite(y) & np.isfinite(x) & np.isfinite(w)
    z, y, x, w = z[ok], y[ok], x[ok], w[ok]
    if z.size == 0:
        raise ValueError("no finite point to locate a finding")
    if w.sum() <= 0:
        w = np.ones_like(w)
    c = (float(np.average(z, weights=w)), float(np.average(y, weights=w)), float(np.average(x, weights=w)))
    box = (int(math.floor(z.min())), int(math.floor(y.min())), int(math.floor(x.min())),
           int(math.floor(z.max())) + 1, int(math.floor(y.max())) + 1, int(math.floor(x.max())) + 1)
    return c, box


def polar_angle_deg(geometry: CellGeometry, z: float, y: float, x: float) -> float:
    cy, cx = geometry.frame_at(z).center_yx_px
    return float(np.degrees(np.arctan2(y - cy, x - cx)) % 360.0)


def _plain(val: Any) -> Any:
    if isinstance(val, np.generic):
        return val.item()
    if isinstance(val, float) and not math.isfinite(val):
        return None
    if isinstance(val, list | tuple):
        return [_plain(v) for v in val]
    return val
