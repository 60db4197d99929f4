"""Can metrology: outer diameter, wall thickness, ovality and dent depth per slice.

The geometry stage fits the can in a subset of slices (``geometry.cans``: RANSAC ellipse on
the outer edge, wall from the inner and outer half-maximum crossings along rays, dent depth
as the deepest inward departure of the outer edge from the fitted ellipse). This detector
turns them into metrics and judges them against the recipe: the diameter against the
cell's nominal ``can_outer_diameter_mm``, the thinnest wall, the ovality and the deepest dent.
A dent finding sits at the dent: the deepest point of the dented outer surface in the worst
slice (``geometry.cans``' ``dent_yx_px``), with its polar angle and its position about the cell
axis in µm; the other findings concern the whole slice and sit at the can's centre.
Only slices alongside the roll's interior are judged: the groove that holds the cap and the
crimp that closes the can are narrower by design (the geometry reports them as
``can_narrowings``); every measured slice is in the ``can_metrology`` map.
"""

from __future__ import annotations

import math

import numpy as np

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register
from core.detectors.spec import DetectorSpec, Metric, Rule

NAME = "can_metrology"
SPEC = DetectorSpec(
    name=NAME,
    label="Can out of tolerance",
    value_name="measured value",
    order=6,
    speaks_for=6,
    # Every limit is optional: absent from the recipe, that quantity is measured, not judged.
    rules={
        "diameter_review_mm": Rule(None, 0.0, None, "mm", "Outer diameter this far off the [cell] nominal: review."),
        "diameter_fail_mm": Rule(None, 0.0, None, "mm", "Outer diameter this far off the [cell] nominal: fail."),
        "wall_fail_min_um": Rule(None, 0.0, None, "µm", "A wall thinner than this fails."),
        "wall_review_min_um": Rule(None, 0.0, None, "µm", "A wall thinner than this is for review."),
        "ovality_review": Rule(None, 0.0, 1.0, "", "Ovality (a − b)/(a + b) at least this: review."),
        "ovality_fail": Rule(None, 0.0, 1.0, "", "Ovality (a − b)/(a + b) at least this: fail."),
        "dent_review_um": Rule(None, 0.0, None, "µm", "A dent at least this deep is for review."),
        "dent_fail_um": Rule(None, 0.0, None, "µm", "A dent at least this deep fails."),
    },
    check=("Can out of tolerance", "The can's outer diameter, ovality, wall and dents per slice beside the roll."),
    metrics={
        "can_slices_measured": Metric("sum", "Can, slices measured beside the roll"),
        "can_outer_diameter_mm": Metric("mean", "Can outer diameter, median", "mm"),
        "can_outer_diameter_min_mm": Metric("min", "Can outer diameter, smallest", "mm"),
        "can_outer_diameter_max_mm": Metric("max", "Can outer diameter, largest", "mm"),
        "can_outer_diameter_deviation_mm": Metric("mean", "Can outer diameter, largest deviation from nominal", "mm"),
        "can_wall_min_um": Metric("min", "Can wall, thinnest", "µm"),
        "can_wall_mean_um": Metric("mean", "Can wall, median of the slices' means", "µm"),
        "can_ovality_max": Metric("max", "Can ovality (a − b)/(a + b), largest", "%", 100),
        "can_dent_max_um": Metric("max", "Can dent, deepest", "µm"),
        "can_metrology_count": Metric("sum", "Can out of tolerance (findings)"),
    },
)
_COLUMNS = ("z", "outer_diameter_mm", "wall_min_um", "wall_mean_um", "ovality", "dent_depth_um")


def can_table(ctx: DetectorContext) -> np.ndarray:
    """One row per measured slice: z, outer diameter (mm), wall min/mean (µm), ovality, dent (µm)."""
    rows = [(c.z, 2e-3 * c.outer_radius_um, c.wall_min_um, c.wall_mean_um, c.ovality, c.dent_depth_um)
            for c in ctx.geometry.cans if c.found and math.isfinite(c.outer_radius_um)]
    return np.array(rows, float).reshape(-1, len(_COLUMNS))


def _judged(ctx: DetectorContext, table: np.ndarray) -> np.ndarray:
    """The rows of ``table`` beside the roll's interior (the straight can); none without a roll."""
    judged = ctx.geometry.judged_can_slices
    if judged is None:  # geometry from before the roll was known: every slice with windings
        zs = [s.z for s in ctx.geometry.slices if s.is_roll]
        judged = [z for z in table[:, 0].astype(int) if zs and min(zs) <= z <= max(zs)]
    return table[np.isin(table[:, 0].astype(int), list(judged))]


@register(SPEC)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Can metrics per slice and findings beyond the recipe's limits; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    table = can_table(ctx)
    out.maps["can_metrology"] = table
    if table.size == 0:
        out.metrics.update(can_slices_measured=0, can_metrology_count=0)
        return out
    judged = _judged(ctx, table)
    if judged.size == 0:
        out.metrics.update(can_slices_measured=0, can_metrology_count=0)
        return out
    nominal = ctx.cell.get("can_outer_diameter_mm")
    nominal_wall = ctx.cell.get("can_wall_um")
    r = SPEC.rules_for(ctx.rules)

    def finite(col: int) -> np.ndarray:
        v = judged[:, col]
        return v[np.isfinite(v)]

    diam, wall_min, wall_mean, oval, dent = (finite(i) for i in range(1, 6))
    out.metrics.update(
        can_slices_measured=int(judged.shape[0]),
        can_outer_diameter_mm=float(np.median(diam)) if diam.size else None,
        can_outer_diameter_min_mm=float(diam.min()) if diam.size else None,
        can_outer_diameter_max_mm=float(diam.max()) if diam.size else None,
        can_wall_min_um=float(wall_min.min()) if wall_min.size else None,
        can_wall_mean_um=float(np.median(wall_mean)) if wall_mean.size else None,
        can_ovality_max=float(oval.max()) if oval.size else None,
        can_dent_max_um=float(dent.max()) if dent.size else None,
    )
    if nominal:
        out.metrics["can_outer_diameter_deviation_mm"] = (
            float(np.max(np.abs(diam - nominal))) if diam.size else None)
    checks = []
    if nominal:
        checks.append(("outer diameter off nominal", 1, lambda v: abs(v - nominal), "mm",
                       r.get("diameter_review_mm"), r.get("diameter_fail_mm"), 3))
    checks.append(("ovality", 4, lambda v: v, "", r.get("ovality_review"), r.get("ovality_fail"), 4))
    checks.append(("dent", 5, lambda v: v, "µm", r.get("dent_review_um"), r.get("dent_fail_um"), 0))
    for label, col, measure, unit, review, fail, digits in checks:
        if review is None and fail is None:
            continue
        vals = np.array([measure(v) if math.isfinite(v) else math.nan for v in judged[:, col]])
        found = _exceed(g, judged, vals, label, unit, review, fail, digits, higher_is_worse=True)
        if label == "dent":
            found = [_at_dent(g, f) for f in found]
        out.findings.extend(found)
    wall_fail = r.get("wall_fail_min_um")
    wall_review = r.get("wall_review_min_um")
    if wall_fail is not None or wall_review is not None:
        out.findings.extend(_exceed(g, judged, judged[:, 2], "thinnest wall", "µm", wall_review, wall_fail, 0,
                                    higher_is_worse=False, nominal=nominal_wall))
    out.metrics["can_metrology_count"] = len(out.findings)
    return out


def _exceed(g, table: np.ndarray, vals: np.ndarray, label: str, unit: str, review, fail, digits: int,
            higher_is_worse: bool, nominal=None) -> list[Finding]:
    """One finding for the worst slice beyond the review (or fail) limit, with the slice range."""
    sign = 1.0 if higher_is_worse else -1.0
    ok = np.isfinite(vals)
    if not ok.any():
        return []
    limit = review if review is not None else fail
    bad = ok & (sign * vals >= sign * limit)
    if not bad.any():
        return []
    worst = int(np.nanargmax(np.where(bad, sign * vals, -np.inf)))
    value = float(vals[worst])
    if fail is not None and sign * value >= sign * fail:
        sev, lim = "fail", fail
    else:
        sev, lim = "review", review
    zs = table[bad, 0]
    z = float(table[worst, 0])
    cy, cx = g.axis.center_at(z)
    r_px = 0.5e3 * table[worst, 1] / g.pixel_um
    ny, nx = g.shape[1], g.shape[2]
    box = (int(zs.min()), max(int(cy - r_px), 0), max(int(cx - r_px), 0), int(zs.max()) + 1,
           min(int(cy + r_px) + 1, ny), min(int(cx + r_px) + 1, nx))
    cmp = "≥" if higher_is_worse else "≤"
    extra = {"slices": [int(v) for v in zs], "metric": label}
    if nominal:
        extra["nominal"] = nominal
    return [Finding(
        detector=NAME, severity=sev, centroid_zyx_px=(z, float(cy), float(cx)), bbox_zyx_px=box,
        value=value, unit=unit, rule=f"can {label} {value:.{digits}f} {unit} {cmp} {lim:.{digits}f} {unit}".replace("  ", " "),
        message=f"can {label} {value:.{digits}f} {unit} at slice {int(z)} ({len(zs)} slice(s) beyond the limit)",
        extra=extra,
    )]


def _at_dent(g, finding: Finding) -> Finding:
    """Move a dent finding from the can's centre to the dent of its worst slice (when located)."""
    z = int(round(finding.centroid_zyx_px[0]))
    can = next((c for c in g.cans if c.found and c.z == z), None)
    if can is None or not all(math.isfinite(v) for v in (*can.dent_yx_px, can.dent_angle_deg)):
        return finding
    y, x = can.dent_yx_px
    cy, cx = g.axis.center_at(z)
    # The box: the dent's half-depth arc (its chord) and the wall's depth, over the slices beyond the limit.
    r_px = math.hypot(y - cy, x - cx)
    half_px = max(r_px * math.sin(math.radians(min(can.dent_span_deg, 180.0)) / 2), 1.0)
    wall_um = can.wall_mean_um if math.isfinite(can.wall_mean_um) else 0.0
    reach = half_px + (can.dent_depth_um + wall_um) / g.pixel_um
    ny, nx = g.shape[1], g.shape[2]
    z0, _, _, z1, _, _ = finding.bbox_zyx_px
    finding.bbox_zyx_px = (z0, max(int(math.floor(y - reach)), 0), max(int(math.floor(x - reach)), 0),
                           z1, min(int(math.floor(y + reach)) + 1, ny), min(int(math.floor(x + reach)) + 1, nx))
    finding.centroid_zyx_px = (float(z), float(y), float(x))
    finding.angle_deg = float(can.dent_angle_deg)
    finding.message += f", at {can.dent_angle_deg:.0f}°"
    finding.extra.update(
        dent_angle_deg=float(can.dent_angle_deg),
        dent_span_deg=float(can.dent_span_deg),
        # x, y of the dented surface about the cell axis, µm (y grows with the row index).
        location_xy_um=[float((x - cx) * g.pixel_um), float((y - cy) * g.pixel_um)],
    )
    return finding
