"""The model's second opinion on the classic delamination detector (``--segmenter classic+onnx``).

The classic detector decides, as always; the learned segmenter then looks at the same roll
(:mod:`core.segment.voids`) and
- every classic void finding gets the model's view in its ``extra``: ``model_void_fraction``
  (the share of the finding's box, on its roll slices, that the model labels electrolyte/void),
  ``model_agrees`` (a void of the model in the same winding, ±1, overlaps the box),
  ``model_volume_mm3`` (the volume of those model voids, measured as the model path measures
  it; ``None`` when there is none);
- every void of the model that overlaps no classic finding is listed as an ``info`` finding
  (``second_opinion: true``, ``model_severity``: what the model path would have called it). It
  never changes the verdict.

When the model cannot be used (no ONNX Runtime, a missing or altered model file), the classic
findings are returned with ``model_agrees: None`` and the reason in ``model_note``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from core.detectors.base import DetectorContext, DetectorOutput, Finding
from core.segment.polar import image_polar_coords

NAME = "delamination"


def _boxes_overlap(a, b, margin: int = 1) -> bool:
    return all(a[i] - margin < b[i + 3] and b[i] - margin < a[i + 3] for i in range(3))


def _same_winding(a: Finding, b: Finding) -> bool:
    return a.winding is None or b.winding is None or abs(a.winding - b.winding) <= 1


def box_void_fraction(box, rolls, t: np.ndarray, rho_um: np.ndarray, p_void: np.ndarray,
                      pixel_um: float) -> float | None:
    """Share of the voxels of ``box`` (z0, y0, x0, z1, y1, x1) on roll slices that the model
    labels void (probability > 0.5); ``None`` when the box holds no segmented voxel."""
    z0, y0, x0, z1, y1, x1 = (int(b) for b in box)
    n_t = t.size
    d_t = 2 * np.pi / n_t
    d_rho = float(rho_um[1] - rho_um[0])
    hits = total = 0
    for i, s in enumerate(rolls):
        if not z0 <= s.z < z1 or y1 <= y0 or x1 <= x0:
            continue
        tt, rr = image_polar_coords(s.frame, (y1, x1), (y0, x0, y1, x1))
        ti = np.rint((tt - t[0]) / d_t).astype(int) % n_t
        ri = np.rint((rr * pixel_um - rho_um[0]) / d_rho).astype(int)
        inside = (ri >= 0) & (ri < rho_um.size)
        p = np.zeros(tt.shape, np.float32)
        p[inside] = p_void[i, ri[inside], ti[inside]]
        hits += int((p > 0.5).sum())
        total += p.size
    return hits / total if total else None


def annotate(classic: DetectorOutput, model: DetectorOutput, rolls, t, rho_um, p_void,
             pixel_um: float) -> DetectorOutput:
    """Classic findings with the model's view, plus the model's own voids as ``info``."""
    used: set[int] = set()
    for f in classic.findings:
        mine = [m for m in model.findings if _same_winding(f, m) and _boxes_overlap(f.bbox_zyx_px, m.bbox_zyx_px)]
        used.update(id(m) for m in mine)
        fraction = box_void_fraction(f.bbox_zyx_px, rolls, t, rho_um, p_void, pixel_um)
        f.extra.update(model_void_fraction=None if fraction is None else round(fraction, 4),
                       model_agrees=bool(mine),
                       model_volume_mm3=float(sum(m.value for m in mine)) if mine else None)
    for m in model.findings:
        if id(m) in used:
            continue
        classic.findings.append(Finding(
            detector=NAME, severity="info", centroid_zyx_px=m.centroid_zyx_px, bbox_zyx_px=m.bbox_zyx_px,
            value=m.value, unit=m.unit, winding=m.winding, angle_deg=m.angle_deg, rule="",
            message=f"second opinion, not found by the classic detector: {m.message}",
            extra={**m.extra, "second_opinion": True, "model_severity": m.severity}))
    return classic


def detect(ctx: DetectorContext) -> DetectorOutput:
    """The classic delamination detector with the model's second opinion (module docstring)."""
    from core.detectors import DETECTORS
    from core.segment import voids
    from core.segment.model import ModelError, get_segmenter

    part = dataclasses.replace(ctx, progress=lambda f, m: ctx.report(0.25 * f, m))
    out = DETECTORS[NAME](part)
    rolls = [s for s in ctx.geometry.slices if s.is_roll]
    if not rolls:
        return out
    try:
        seg = get_segmenter()
    except (ModelError, ImportError, OSError) as exc:
        note = f"model unavailable: {exc}"
        for f in out.findings:
            f.extra.update(model_void_fraction=None, model_agrees=None, model_volume_mm3=None, model_note=note)
        ctx.report(1.0, f"delamination: no second opinion ({note})")
        return out
    part = dataclasses.replace(ctx, progress=lambda f, m: ctx.report(0.25 + 0.75 * f, m))
    rolls, t, rho_um, p_void, _ = voids.void_probability(part, seg)
    model = voids.find_voids(part, rolls, t, rho_um, p_void)
    px = ctx.geometry.pixel_um
    if not math.isfinite(px):
        return out
    annotate(out, model, rolls, t, rho_um, p_void, px)
    ctx.report(1.0, "delamination: classic, with the model's second opinion")
    return out
