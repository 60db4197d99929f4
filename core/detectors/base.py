"""What every detector shares: its signature, its findings, and the registry."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

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


def nan_gaussian(values: np.ndarray, sigma: float | tuple[float, ...], min_weight: float = 0.3) -> np.ndarray:
    """Gaussian smoothing that ignores NaN (normalised convolution).

    The last axis is the angle and wraps; the others (slices, windings) end. A result is kept
    where the smoothed weight of finite neighbours is at least ``min_weight`` and the sample
    itself was finite; elsewhere NaN.
    """
    sigma = tuple(sigma) if np.ndim(sigma) else (0.0,) * (values.ndim - 1) + (float(sigma),)
    modes = ("nearest",) * (values.ndim - 1) + ("wrap",)
    finite = np.isfinite(values)
    num = ndimage.gaussian_filter(np.where(finite, values, 0.0), sigma, mode=modes)
    den = ndimage.gaussian_filter(finite.astype(np.float32), sigma, mode=modes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite & (den >= min_weight), num / den, np.nan)


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


@dataclass
class Spiral:
    """Lay (slice, winding, angle) arrays out along the wound sheet: (slice, position).

    Winding k's angles are ordered from the seam in the winding direction, so the last
    sample of winding k meets the first of winding k + 1: one physical layer is one run
    of positions, also where it crosses the seam (where its ray index changes).
    """

    order: np.ndarray  # (n_slices, n_t) angle index of each position within a winding
    n_windings: int

    @classmethod
    def from_geometry(cls, geometry: CellGeometry, n_windings: int | None = None) -> Spiral:
        rolls = [s for s in geometry.slices if s.is_roll]
        t = rolls[0].t_rad
        orders = []
        for s in rolls:
            seam = math.radians(s.seam_deg) if math.isfinite(s.seam_deg) else 0.0
            orders.append(np.argsort((s.direction * (t - seam)) % (2 * np.pi), kind="stable"))
        return cls(np.array(orders), n_windings if n_windings is not None else geometry.windings)

    @property
    def n_t(self) -> int:
        return self.order.shape[1]

    def lay_out(self, per_slice: np.ndarray) -> np.ndarray:
        """(slices, windings, angles, ...) → (slices, windings · angles, ...)."""
        k = self.n_windings
        n_z = per_slice.shape[0]
        taken = np.take_along_axis(per_slice[:, :k], self.order[:, None, :].reshape(n_z, 1, -1, *([1] * (per_slice.ndim - 3))), axis=2)
        return taken.reshape(n_z, k * self.n_t, *per_slice.shape[3:])

    def winding_and_angle(self, z: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Winding index and angle index of positions along the sheet."""
        k = position // self.n_t
        return k, self.order[z, position % self.n_t]


def label_periodic(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components with the last axis periodic (the angle wraps at 360°)."""
    labels, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return labels, 0
    first, last = labels[..., 0], labels[..., -1]
    both = (first > 0) & (last > 0)
    if both.any():
        parent = np.arange(n + 1)

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in zip(first[both], last[both], strict=True):
            ra, rb = find(int(a)), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        roots = np.array([find(i) for i in range(n + 1)])
        labels = roots[labels]
    return labels, int(labels.max())
