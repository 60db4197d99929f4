"""Cathode sheet thickness over the unrolled electrode.

The geometry stage measures every cathode sheet's thickness along the roll normal at every
angle of every slice (half-maximum edges). Here the map is summarised (mean, std, CV) and
smoothed over about 0.1 mm of arc and one slice; regions whose deviation from the cell's
median exceeds the recipe's tolerance, connected on the unrolled sheet, become patches.
A patch is a finding when its area reaches the recipe's minimum patch area.

The review limit is guarded by the map's own noise (ISO 14253-1's rule for proving a
nonconformance: the measured value must lie beyond the limit by the measurement's expanded
uncertainty). The noise is measured on the same scan, as the robust spread of the smoothed
map about each row's running mean over :data:`NOISE_BASELINE_ARC_UM` of arc. Why: at 25 µm
voxels the smoothed map's noise is ~2 % (a z-constant moiré of the sheet edges against the
voxel grid, 1.6 %, and slice noise), so a healthy turn whose coating is truly 6 % thick (a
3σ coat weight, seen in a generated 18650: 5.9 % true, 6.0 % measured) read "10–11 % thicker"
over 1.4 mm² where the noise peaked, a REVIEW of a healthy cell.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register
from core.detectors.numerics import (
    box_and_centroid,
    label_periodic,
    nan_gaussian,
    points_to_yx,
    polar_angle_deg,
)
from core.detectors.spec import DetectorSpec, Limit, Metric, Rule

#: Arc over which a map row's running mean is the baseline the noise is measured about (long
#: beside the ~0.1 mm smoothing and the moiré's ~1.5 mm period, short beside a turn).
NOISE_BASELINE_ARC_UM = 3000.0
#: Coverage factor of the review guard (expanded uncertainty, k = 2).
NOISE_GUARD_K = 2.0
#: The guard never takes more than this share of the gap between the review and fail limits
#: (a very noisy map still reviews what is halfway to failing).
MAX_GUARD_SHARE = 0.5
#: Slices the noise is measured on (evenly spaced): the spread of thousands of samples each.
NOISE_SLICES = 24

NAME = "electrode_thickness"
SPEC = DetectorSpec(
    name=NAME,
    label="Cathode thickness off",
    value_name="thickness deviation",
    prefix="T",
    order=2,
    merge_gap_um=300.0,
    layered=True,
    speaks_for=3,
    rules={
        "fail_deviation": Rule(0.20, 0.0, 1.0, "",
                               "A patch off the cell median by more than this fraction over the minimum area fails."),
        "review_deviation": Rule(0.10, 0.0, 1.0, "",
                                 "A patch off the cell median by more than this fraction is for review; the "
                                 "limit is raised by twice the scan's own thickness-map noise (at most half-way "
                                 "to the fail deviation)."),
        "min_patch_area_mm2": Rule(0.1, 0.0, None, "mm²", "Smaller patches of the unrolled sheet are not reported."),
    },
    ordered=(("review_deviation", "fail_deviation"),),
    limits={
        "cathode_thickness_max_deviation_pct": Limit(
            "Worst cathode thickness patch",
            "Mean deviation of the cathode sheet thickness from the cell median over a patch of the unrolled sheet "
            "beyond the review deviation; a patch counts when its area reaches the recipe's minimum patch area, "
            "and fails when the part beyond the fail deviation does.",
            "%", review="review_deviation", fail="fail_deviation", scale=100.0),
    },
    metrics={
        "cathode_sheet_thickness_mean_um": Metric("mean", "Cathode sheet thickness, mean", "µm"),
        "cathode_sheet_thickness_std_um": Metric("pooled_std", "Cathode sheet thickness, standard deviation", "µm",
                                                 of=("cathode_sheet_thickness_mean_um",)),
        "cathode_sheet_thickness_cv": Metric("ratio", "Cathode sheet thickness, coefficient of variation", "%", 100,
                                             of=("cathode_sheet_thickness_std_um", "cathode_sheet_thickness_mean_um")),
        "cathode_sheet_thickness_median_um": Metric("mean", "Cathode sheet thickness, median (the cell median)", "µm"),
        "cathode_thickness_patch_count": Metric("sum", "Cathode thickness patches (findings)"),
        "cathode_thickness_map_noise_pct": Metric(
            "mean", "Cathode thickness map noise (robust spread of the smoothed map; guards the review limit)", "%"),
        "cathode_thickness_max_deviation_pct": Metric(
            "max", "Cathode thickness, largest local deviation from the median (smoothed, any area)", "%"),
    },
)


@register(SPEC)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Measure the cathode sheet thickness map and find patches out of tolerance."""
    g = ctx.geometry
    out = DetectorOutput()
    rolls = [s for s in g.slices if s.is_roll]
    keys = ("cathode_sheet_thickness_mean_um", "cathode_sheet_thickness_std_um", "cathode_sheet_thickness_cv",
            "cathode_sheet_thickness_median_um")
    if not rolls:
        out.metrics.update({k: None for k in keys})
        return out
    rules = SPEC.rules_for(ctx.rules)
    review = float(rules["review_deviation"])
    fail = float(rules["fail_deviation"])
    min_area_mm2 = float(rules["min_patch_area_mm2"])
    thickness = g.stacked("sheet_thickness_um")[:, : g.windings]  # (z, k, t)
    radius = 0.5 * (g.stacked("sheet_inner_um") + g.stacked("sheet_outer_um"))[:, : g.windings]
    values = thickness[np.isfinite(thickness)]
    if values.size == 0:
        out.metrics.update({k: None for k in keys})
        return out
    # The cell's median: measured on the whole volume when this is one chunk of it.
    median = float(ctx.reference.get("cathode_sheet_thickness_median_um", np.median(values)))
    out.metrics.update(
        cathode_sheet_thickness_mean_um=float(values.mean()),
        cathode_sheet_thickness_std_um=float(values.std()),
        cathode_sheet_thickness_cv=float(values.std() / values.mean()),
        cathode_sheet_thickness_median_um=float(np.median(values)),
    )
    t = rolls[0].t_rad
    n_t = t.size
    r_typ = float(np.nanmedian(radius)) if np.isfinite(radius).any() else 5000.0
    arc_step_um = 2 * np.pi * r_typ / n_t
    sigma_t = max(50.0 / arc_step_um, 1.0)  # ~0.1 mm FWHM along the arc
    sigma_z = 1.0 if len(rolls) >= 3 else 0.0
    smoothed = nan_gaussian(thickness.astype(float), (sigma_z, 0.0, sigma_t))
    deviation = (smoothed - median) / median
    out.maps["cathode_thickness_um"] = thickness
    out.maps["cathode_thickness_deviation"] = deviation.astype(np.float32)
    noise = map_noise(deviation, arc_step_um)
    guard = min(NOISE_GUARD_K * noise, MAX_GUARD_SHARE * max(fail - review, 0.0))
    review_at = review + guard
    out.metrics["cathode_thickness_map_noise_pct"] = 100 * noise

    dz_um = g.spacing_um[0]
    dev_filled = np.where(np.isfinite(deviation), deviation, 0.0)
    structure = np.zeros((3, 3, 3), bool)
    structure[:, 1, :] = True
    findings = []
    zs_all = np.array([s.z for s in rolls], float)
    for sign in (-1, 1):
        beyond = sign * dev_filled > review_at
        # Hysteresis: a patch whose deviation hovers about the limit is one patch, not one per
        # stretch above it; its area is what lies beyond the limit.
        grown = sign * dev_filled > 0.5 * review
        labels, n = label_periodic(grown, structure)
        for lab in np.unique(labels[beyond & (labels > 0)]):
            idx = np.nonzero((labels == lab) & beyond)
            ii, kk, tt = idx
            r_here = radius[idx]
            r_here = np.where(np.isfinite(r_here), r_here, r_typ)
            cell_area_mm2 = (2 * np.pi * r_here / n_t) * dz_um * 1e-6
            area = float(cell_area_mm2.sum())
            if area < min_area_mm2:
                continue
            dev_here = dev_filled[idx]
            fail_area = float(cell_area_mm2[sign * dev_here > fail].sum())
            severity = "fail" if fail_area >= min_area_mm2 else "review"
            mean_dev = float(np.average(dev_here, weights=cell_area_mm2))
            zs = zs_all[ii]
            ys, xs = points_to_yx(g, zs, t[tt], r_here)
            centroid, box = box_and_centroid(zs, ys, xs, np.abs(dev_here))
            k = int(np.bincount(kk).argmax())
            limit = fail if severity == "fail" else review
            guarded = (f" (+ {100 * guard:.1f} % for this scan's map noise)"
                       if severity == "review" and guard >= 0.0005 else "")
            findings.append(Finding(
                detector=NAME, severity=severity, centroid_zyx_px=centroid, bbox_zyx_px=box,
                value=100 * mean_dev, unit="%", winding=k, angle_deg=polar_angle_deg(g, *centroid),
                rule=(f"sheet {'thinner' if sign < 0 else 'thicker'} than the cell median by > {100 * limit:.0f} %"
                      f"{guarded} over {area if severity == 'review' else fail_area:.2f} mm² ≥ {min_area_mm2:g} mm²"),
                message=(f"cathode sheet of winding {k} {abs(100 * mean_dev):.0f} % "
                         f"{'thinner' if sign < 0 else 'thicker'} than the cell median ({median:.0f} µm) "
                         f"over {area:.2f} mm²"),
                extra={"area_mm2": area, "area_beyond_fail_mm2": fail_area, "review_guard_pct": 100 * guard,
                       "mean_thickness_um": float(np.nanmean(thickness[idx])),
                       "arc_length_um": float(len(np.unique(tt)) * 2 * np.pi * np.median(r_here) / n_t),
                       "height_span_um": float((zs.max() - zs.min() + 1) * dz_um)},
            ))
    findings.sort(key=lambda f: -abs(f.value))
    out.metrics["cathode_thickness_patch_count"] = len(findings)
    out.findings = findings + _uncoated_zone_findings(g, rolls)
    out.metrics["cathode_thickness_max_deviation_pct"] = (
        float(100 * np.nanmax(np.abs(deviation))) if np.isfinite(deviation).any() else None)
    if not math.isfinite(out.metrics["cathode_sheet_thickness_cv"] or 0.0):
        out.metrics["cathode_sheet_thickness_cv"] = None
    return out


def map_noise(deviation: np.ndarray, arc_step_um: float) -> float:
    """Robust noise of a smoothed (slice, winding, angle) deviation map, as a fraction.

    The spread (1.4826 × MAD) of the map about each row's running mean over
    :data:`NOISE_BASELINE_ARC_UM` of arc, on up to :data:`NOISE_SLICES` evenly spaced slices.
    A turn's own offset, a step at the seam and a patch move the running mean, not the MAD's
    bulk. Returns 0 when fewer than 100 samples are finite.
    """
    n_z = deviation.shape[0]
    pick = np.unique(np.linspace(0, n_z - 1, min(n_z, NOISE_SLICES)).round().astype(int))
    rows = deviation[pick]
    finite = np.isfinite(rows)
    size = max(3, int(round(NOISE_BASELINE_ARC_UM / max(arc_step_um, 1e-6))))
    size = min(size, rows.shape[-1])
    num = ndimage.uniform_filter1d(np.where(finite, rows, 0.0), size, axis=-1, mode="wrap")
    den = ndimage.uniform_filter1d(finite.astype(float), size, axis=-1, mode="wrap")
    ok = finite & (den > 0.5)
    if ok.sum() < 100:
        return 0.0
    resid = rows[ok] - num[ok] / den[ok]
    return float(1.4826 * np.median(np.abs(resid - np.median(resid))))


def _uncoated_zone_findings(g, rolls) -> list[Finding]:
    """Information findings for the uncoated strips (tab windows) the geometry set aside."""
    out = []
    t = rolls[0].t_rad
    s_mid = rolls[len(rolls) // 2]
    z_lo, z_hi = rolls[0].z, rolls[-1].z
    for zone in g.uncoated_zones:
        mask = zone.sheet_mask(s_mid, s_mid.sheet_thickness_um.shape[0])
        kk, tt = np.nonzero(mask)
        if kk.size == 0:
            continue
        radius = np.full(kk.size, zone.radius_um)
        ys, xs = points_to_yx(g, np.full(kk.size, float(s_mid.z)), t[tt], radius)
        mid = kk.size // 2  # the middle of the stretch along the sheet
        centroid = (0.5 * (z_lo + z_hi), float(ys[mid]), float(xs[mid]))
        box = (int(z_lo), int(np.floor(ys.min())), int(np.floor(xs.min())), int(z_hi) + 1,
               int(np.floor(ys.max())) + 1, int(np.floor(xs.max())) + 1)
        out.append(Finding(
            detector=NAME, severity="info", centroid_zyx_px=centroid, bbox_zyx_px=box, value=zone.arc_length_mm,
            unit="mm", winding=zone.winding, angle_deg=polar_angle_deg(g, *centroid), rule="",
            message=(f"uncoated cathode strip in winding {zone.winding} (tab window?): {zone.arc_length_mm:.1f} mm "
                     f"long over the whole {zone.height_mm:.1f} mm of roll seen; not measured, the collectors "
                     f"either side not judged"),
            extra={"kind": "uncoated_zone", **zone.to_json()},
        ))
    return out
