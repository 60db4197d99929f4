"""Winding quality: per-layer spiral fit residual, buckling and inner-winding collapse.

Every traced Cu layer (slice × winding) is fitted, robustly, with the Archimedean path
``r = a + b·θ`` (θ unwrapped from the seam; the roll's centre and ovality are already in the
elliptical frame). The residual RMS per layer measures how well the roll is wound; the
largest departure, smoothed over a few degrees, locates buckling (a winding pushed in or
out over a long arc) and the collapse of the innermost windings into the mandrel hole.
Unlike the collector-deflection detector there is no running baseline: slow departures
over the whole turn count here. A departure beyond the recipe's limits is a finding.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from core.detectors.base import (
    DetectorContext,
    DetectorOutput,
    Finding,
    nan_gaussian,
    points_to_yx,
    polar_angle_deg,
    register,
)
from core.geometry.layers import near_layer_ends

NAME = "winding_quality"
MIN_TRACE_ZSCORE = 3.5


def spiral_residuals(radius: np.ndarray, t: np.ndarray, seam_rad: float, direction: int) -> np.ndarray:
    """Residual (µm) of each layer (rows) from its robust ``a + b·θ`` fit."""
    theta = (direction * (t - seam_rad)) % (2 * np.pi)
    x = np.column_stack([np.ones_like(theta), theta])
    out = np.full(radius.shape, np.nan)
    for k, r in enumerate(radius):
        ok = np.isfinite(r)
        if ok.sum() < 16:
            continue
        w = np.ones(ok.sum())
        xa, ra = x[ok], r[ok]
        for _ in range(4):  # Tukey biweight IRLS: a buckled stretch does not pull the fit
            coef = np.linalg.lstsq(xa * w[:, None], ra * w, rcond=None)[0]
            res = ra - xa @ coef
            s = 1.4826 * np.median(np.abs(res)) + 1e-6
            w = np.sqrt(np.clip(1 - (res / (6 * s)) ** 2, 0, None) ** 2 + 1e-9)
        out[k, ok] = ra - xa @ coef
    return out


@register(NAME)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Spiral fit residuals and the largest winding departure; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    rolls = [s for s in g.slices if s.is_roll and math.isfinite(s.seam_deg)]
    if not rolls:
        out.metrics.update(winding_residual_rms_um=None, winding_deviation_max_um=None, winding_quality_count=0)
        return out
    review = float(ctx.rules.get("review_um", 75.0))
    fail = float(ctx.rules.get("fail_um", 150.0))
    smooth_deg = float(ctx.rules.get("smoothing_deg", 5.0))
    t = rolls[0].t_rad
    n_t = t.size
    k_max = max(s.cu_radius_um.shape[0] for s in rolls)
    dev = np.full((len(rolls), k_max, n_t), np.nan, np.float32)
    rms_layers = []
    for i, s in enumerate(rolls):
        ctx.check_cancel()
        radius = np.where(s.cu_zscore >= MIN_TRACE_ZSCORE, s.cu_radius_um, np.nan).astype(float)
        # Collectors bounding an uncoated strip (tab window) relax into it by design.
        radius[g.collector_exclusion(s, radius.shape[0])] = np.nan
        res = spiral_residuals(radius[: s.windings], t, math.radians(s.seam_deg), s.direction)
        res *= s.frame.metric(t)[None, :]
        res[:, near_layer_ends(s, 3.0)] = np.nan
        dev[i, : res.shape[0]] = res
        for row in res:
            if np.isfinite(row).sum() >= 16:
                rms_layers.append(float(np.sqrt(np.nanmean(row**2))))
    # Smooth along the arc (ignoring gaps) so one noisy trace sample is not a buckle.
    sigma = max(smooth_deg / 360.0 * n_t / 2.0, 0.5)
    smoothed = nan_gaussian(dev, sigma, min_weight=0.5)
    out.maps["winding_deviation_um"] = smoothed.astype(np.float32)
    absd = np.abs(smoothed)
    per_winding = np.nanmax(np.where(np.isfinite(absd), absd, -1), axis=(0, 2))
    out.metrics.update(
        winding_residual_rms_um=float(np.median(rms_layers)) if rms_layers else None,
        winding_residual_rms_p95_um=float(np.percentile(rms_layers, 95)) if rms_layers else None,
        winding_layers_fitted=len(rms_layers),
        winding_deviation_max_um=float(np.nanmax(absd)) if np.isfinite(absd).any() else None,
        winding_inner_deviation_max_um=float(per_winding[: min(3, per_winding.size)].max()) if per_winding.size else None,
    )
    findings = []
    if np.isfinite(absd).any():
        over = np.where(np.isfinite(absd), absd, 0) >= review
        labels, n = ndimage.label(over, structure=np.ones((3, 3, 3), bool))
        for lab in range(1, n + 1):
            zi, kk, tt = np.nonzero(labels == lab)
            vals = smoothed[zi, kk, tt]
            j = int(np.argmax(np.abs(vals)))
            value = float(abs(vals[j]))
            sev = "fail" if value >= fail else "review"
            s_peak = rolls[int(zi[j])]
            k = int(kk[j])
            r_peak = float(s_peak.cu_radius_um[k, tt[j]])
            py, px = points_to_yx(g, np.array([s_peak.z]), t[tt[j:j + 1]], np.array([r_peak]))
            centroid = (float(s_peak.z), float(py[0]), float(px[0]))
            zs = np.array([rolls[m].z for m in zi], float)
            rad = np.array([rolls[m].cu_radius_um[kk[q], tt[q]] for q, m in enumerate(zi)], float)
            ys, xs = points_to_yx(g, zs, t[tt], np.where(np.isfinite(rad), rad, r_peak))
            box = (int(zs.min()), int(np.floor(ys.min())), int(np.floor(xs.min())), int(zs.max()) + 1,
                   int(np.floor(ys.max())) + 1, int(np.floor(xs.max())) + 1)
            span_deg = len(np.unique(tt)) * 360.0 / n_t
            kind = "inner-winding collapse" if k <= 2 and vals[j] < 0 else "buckling"
            limit = fail if sev == "fail" else review
            findings.append(Finding(
                detector=NAME, severity=sev, centroid_zyx_px=centroid, bbox_zyx_px=box, value=value, unit="µm",
                winding=k, angle_deg=polar_angle_deg(g, *centroid),
                rule=f"winding departure {value:.0f} µm ≥ {limit:.0f} µm",
                message=(f"{kind}: winding {k} departs {value:.0f} µm {'inwards' if vals[j] < 0 else 'outwards'} "
                         f"from its spiral over {span_deg:.0f}°"),
                extra={"kind": kind, "deviation_signed_um": float(vals[j]), "angular_span_deg": span_deg},
            ))
    findings.sort(key=lambda f: -f.value)
    out.findings = findings
    out.metrics["winding_quality_count"] = len(findings)
    return out
