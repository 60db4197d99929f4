"""Winding quality: the roll's spiral, buckling and inner-winding collapse.

The Cu layers of a slice are fitted together, robustly, with one Archimedean spiral:
``r_k(θ) = a_k + b·θ/2π + c1 cos t + s1 sin t + c2 cos 2t + s2 sin 2t`` (θ unwrapped from the
seam; one offset per layer, one pitch and one residual frame shape shared by every layer; the
roll's centre and ovality are already in the elliptical frame). A buckle pushes several
windings in or out together over tens of degrees; fitted per layer, or compared with its
neighbours, it hides in the fit or in the neighbours. Fitted jointly and robustly (Tukey
biweight), the undisturbed roll away from the buckle sets the spiral, and the departure
reads the whole buckle (a 0.6 mm buckle reads 0.6 mm). The residual RMS per layer measures
how well the roll is wound. Departures smoothed over a few degrees, grown from the review
limit down to half of it (hysteresis) and connected through windings, angles and slices are
one finding each. The innermost turns around the mandrel are irregular by design (the
electrode's start, the tab, the pin): within ``inner_turns`` of the mandrel the recipe's
``inner_review_um`` / ``inner_fail_um`` apply, so an inner-winding collapse is still found.
Departures narrower than the smoothing, or less tall than they are deep
(:func:`core.detectors.numerics.shallower_than_deep`), are trace artefacts, not buckles.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register
from core.detectors.numerics import (
    nan_gaussian,
    points_to_yx,
    polar_angle_deg,
    shallower_than_deep,
    trusted_collector_radius,
    tukey_weights,
)
from core.detectors.spec import DetectorSpec, Metric, Rule
from core.geometry.layers import near_layer_ends
from core.parallel import map_slices

NAME = "winding_quality"
SPEC = DetectorSpec(
    name=NAME,
    label="Winding irregular",
    value_name="departure from the spiral",
    order=7,
    merge_gap_um=1000.0,
    speaks_for=4,
    rules={
        "fail_um": Rule(150.0, 0.0, None, "µm", "A Cu layer departing this far from the roll's spiral fails."),
        "review_um": Rule(75.0, 0.0, None, "µm", "A Cu layer departing this far from the roll's spiral: review."),
        "inner_turns": Rule(2, 0.0, 10.0, "",
                            "Turns around the mandrel, irregular by design, judged by the inner limits instead."),
        "inner_review_um": Rule(250.0, 0.0, None, "µm", "Review limit within inner_turns of the mandrel."),
        "inner_fail_um": Rule(500.0, 0.0, None, "µm", "Fail limit within inner_turns of the mandrel (a collapse)."),
        "smoothing_deg": Rule(5.0, 0.0, 90.0, "°", "Departures are smoothed along the arc over this angle."),
    },
    ordered=(("review_um", "fail_um"), ("inner_review_um", "inner_fail_um")),
    check=("Largest winding departure", "How far a winding departs from the roll's fitted spiral (buckling, collapse)."),
    metrics={
        "winding_residual_rms_um": Metric("mean", "Winding spiral fit residual, RMS", "µm"),
        "winding_residual_rms_p95_um": Metric("mean", "Winding spiral fit residual, RMS (95th percentile of layers)",
                                              "µm"),
        "winding_layers_fitted": Metric("sum", "Winding layers fitted"),
        "winding_deviation_max_um": Metric("max", "Winding departure from the spiral, largest", "µm"),
        "winding_inner_deviation_max_um": Metric("max", "Winding departure, largest in the inner turns", "µm"),
        "winding_quality_count": Metric("sum", "Irregular windings (findings)"),
    },
)


def spiral_residuals(radius: np.ndarray, t: np.ndarray, seam_rad: float, direction: int) -> np.ndarray:
    """Residual (µm) of each layer (rows: windings from the mandrel out) from the slice's spiral.

    One robust fit for all layers: an offset per layer, one slope (the pitch) and the first two
    harmonics of the angle shared by all; see the module docstring. The offsets are eliminated
    per layer (weighted means), so each iteration is one 5 × 5 solve, not a lstsq over all
    samples (30× faster on 25 layers × 2000 angles).
    """
    out = np.full(radius.shape, np.nan)
    theta = (direction * (t - seam_rad)) % (2 * np.pi) / (2 * np.pi)
    shared = np.column_stack([theta, np.cos(t), np.sin(t), np.cos(2 * t), np.sin(2 * t)])
    valid = np.isfinite(radius)
    valid[valid.sum(axis=1) < 16] = False
    kk, tt = np.nonzero(valid)
    if kk.size == 0:
        return out
    n_k = radius.shape[0]
    x = shared[tt]
    r = radius[kk, tt].astype(float)
    w = np.ones(r.size)
    for _ in range(5):  # Tukey biweight IRLS: a buckle is an outlier of the roll, not its shape
        wsum = np.maximum(np.bincount(kk, w, n_k), 1e-12)
        x_mean = np.stack([np.bincount(kk, w * x[:, j], n_k) for j in range(x.shape[1])], axis=1) / wsum[:, None]
        r_mean = np.bincount(kk, w * r, n_k) / wsum
        xc, rc = x - x_mean[kk], r - r_mean[kk]
        gram = (xc * w[:, None]).T @ xc + 1e-9 * np.eye(x.shape[1])
        coef = np.linalg.solve(gram, (xc * w[:, None]).T @ rc)
        res = rc - xc @ coef
        scale = 1.4826 * np.median(np.abs(res[w > 0])) + 1e-6
        w = tukey_weights(res, scale, squared=False)
    out[kk, tt] = res
    return out


def _slice_residuals(item, t: np.ndarray) -> np.ndarray:
    """One slice's departures from its spiral (windings × angles, µm along the normal); ``item``
    is the slice and its (windings × angles) mask of excluded collectors."""
    s, excluded = item
    radius = trusted_collector_radius(s, excluded)
    res = spiral_residuals(radius[: s.windings], t, math.radians(s.seam_deg), s.direction)
    res *= s.frame.metric(t)[None, :]
    res[near_layer_ends(s, 3.0, res.shape[0])] = np.nan
    return res


@register(SPEC)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Spiral fit residuals and the largest winding departure; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    rolls = [s for s in g.slices if s.is_roll and math.isfinite(s.seam_deg)]
    if not rolls:
        out.metrics.update(winding_residual_rms_um=None, winding_deviation_max_um=None, winding_quality_count=0)
        return out
    rules = SPEC.rules_for(ctx.rules)
    review = float(rules["review_um"])
    fail = float(rules["fail_um"])
    inner_turns = int(rules["inner_turns"])
    inner_review = float(rules["inner_review_um"])
    inner_fail = float(rules["inner_fail_um"])
    smooth_deg = float(rules["smoothing_deg"])
    t = rolls[0].t_rad
    n_t = t.size
    k_max = max(s.cu_radius_um.shape[0] for s in rolls)
    dev = np.full((len(rolls), k_max, n_t), np.nan, np.float32)
    rms_layers = []
    # Collectors bounding an uncoated strip (tab window) relax into it by design.
    items = ((s, g.collector_exclusion(s, s.cu_radius_um.shape[0])) for s in rolls)
    task = partial(_slice_residuals, t=t)
    # Each slice's fit is independent: in worker processes for a large volume (core.parallel).
    fitted = map_slices(task, items, len(rolls), ctx.volume.shape, ctx.cancel)
    for i, (s, res) in enumerate(zip(rolls, fitted, strict=True)):
        ctx.check_cancel()
        dev[i, : res.shape[0]] = res
        for row in res:
            if np.isfinite(row).sum() >= 16:
                rms_layers.append(float(np.sqrt(np.nanmean(row**2))))
        ctx.report((i + 1) / len(rolls), f"winding quality: slice {s.z}")
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
    # The limits per winding: the innermost turns are irregular by design (module docstring).
    review_k = np.full(k_max, review)
    fail_k = np.full(k_max, fail)
    review_k[:inner_turns], fail_k[:inner_turns] = inner_review, inner_fail
    filled = np.where(np.isfinite(absd), absd, 0.0)
    ratio = filled / review_k[None, :, None]
    findings = []
    seed = ratio >= 1.0
    if seed.any():
        # Hysteresis: a departure that hovers about the limit is one buckle, not one per slice.
        grown = ratio >= 0.5
        labels, n = ndimage.label(grown, structure=np.ones((3, 3, 3), bool))
        for lab in np.unique(labels[seed]):
            zi, kk, tt = np.nonzero((labels == lab) & np.isfinite(absd))
            span_deg = len(np.unique(tt)) * 360.0 / n_t
            # Narrower than the smoothing, a departure is a few trace samples beside a gap, not
            # a buckle (which spans tens of degrees): a healthy 18650 at 25 µm REVIEWed on "78 µm
            # over 0° × 0.04 mm" at its outermost layer's trace gap.
            if span_deg < smooth_deg:
                continue
            over = filled[zi, kk, tt] >= review_k[kk]
            vals = smoothed[zi, kk, tt]
            j = int(np.argmax(np.where(over, np.abs(vals), -1.0)))
            value = float(abs(vals[j]))
            k = int(kk[j])
            sev = "fail" if value >= fail_k[k] else "review"
            s_peak = rolls[int(zi[j])]
            r_peak = float(s_peak.cu_radius_um[k, tt[j]])
            py, px = points_to_yx(g, np.array([s_peak.z]), t[tt[j:j + 1]], np.array([r_peak]))
            centroid = (float(s_peak.z), float(py[0]), float(px[0]))
            zs = np.array([rolls[m].z for m in zi], float)
            if shallower_than_deep(smoothed, (int(zi[j]), k, int(tt[j])), float(vals[j]), 0.5 * review_k[k],
                                   [s.z for s in rolls], g.spacing_um[0], ctx.volume.shape[0]):
                continue
            rad = np.array([rolls[m].cu_radius_um[kk[q], tt[q]] for q, m in enumerate(zi)], float)
            ys, xs = points_to_yx(g, zs, t[tt], np.where(np.isfinite(rad), rad, r_peak))
            box = (int(zs.min()), int(np.floor(ys.min())), int(np.floor(xs.min())), int(zs.max()) + 1,
                   int(np.floor(ys.max())) + 1, int(np.floor(xs.max())) + 1)
            windings = sorted({int(v) for v in kk[over]})
            inner = k < inner_turns
            kind = "inner-winding collapse" if inner and vals[j] < 0 else "buckling"
            limit = fail_k[k] if sev == "fail" else review_k[k]
            layers = (f"windings {windings[0]}–{windings[-1]}" if len(windings) > 1 else f"winding {k}")
            findings.append(Finding(
                detector=NAME, severity=sev, centroid_zyx_px=centroid, bbox_zyx_px=box, value=value, unit="µm",
                winding=k, angle_deg=polar_angle_deg(g, *centroid),
                rule=(f"winding departure {value:.0f} µm ≥ {limit:.0f} µm"
                      + (f" (within {inner_turns} turns of the mandrel)" if inner else "")),
                message=(f"{kind}: {layers} {'depart' if len(windings) > 1 else 'departs'} up to {value:.0f} µm "
                         f"{'inwards' if vals[j] < 0 else 'outwards'} from the roll's spiral over {span_deg:.0f}° × "
                         f"{(zs.max() - zs.min() + 1) * g.spacing_um[0] / 1000:.2f} mm"),
                extra={"kind": kind, "deviation_signed_um": float(vals[j]), "angular_span_deg": span_deg,
                       "windings": windings,
                       "arc_length_um": float(span_deg / 360.0 * 2 * np.pi * abs(r_peak)),
                       "height_um": float((zs.max() - zs.min() + 1) * g.spacing_um[0])},
            ))
    findings.sort(key=lambda f: -f.value)
    out.findings = findings
    out.metrics["winding_quality_count"] = len(findings)
    return out
