"""Deflected Cu current collectors.

Each traced collector (slice × winding) is compared with the smooth path of its own winding:
first a robust fit of ``r = a + b·θ + harmonics(1, 2)`` (θ unwrapped from the seam), then a
running median of the residual over ±45° that follows slow real-roll wiggles but not a
local bend. From that departure the common departure of the neighbouring windings (median
of two inside, two outside) is taken away: where the whole stack moves together (over an
electrode's start, around a tab window) no gap between layers changes, and that is the
roll's shape (winding quality), not a bent collector. What remains is the radial deflection
(µm, + outwards). The innermost and outermost turns, with neighbours on one side only, are
not judged. Stretches beyond the recipe's review limit, grown to half that limit
(hysteresis), connected along the arc and through slices, become findings with their
maximum amplitude, spans, winding and centroid. The Cu–Al gap (collector to the next
cathode sheet's Al foil) is reported alongside. Collectors bounding an uncoated strip of
cathode (a tab window, see :mod:`core.geometry.zones`) are not judged there. A departure
less tall than it is deep is no bend a foil can make (a trace that caught something else in a
slice or two at a roll end; :func:`core.detectors.numerics.shallower_than_deep`). A bend
that reaches near the edge of the tracer's search window (0.3 pitch) is followed on the image
to its peak (:func:`_followed_departure`): the trace alone read a 132 µm bend as 98 µm.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register, severity_for
from core.detectors.numerics import (
    Spiral,
    box_and_centroid,
    nan_gaussian,
    points_to_yx,
    polar_angle_deg,
    shallower_than_deep,
    smooth_path_residual,
    trusted_collector_radius,
)
from core.detectors.spec import DetectorSpec, Limit, Metric, Rule
from core.geometry.layers import near_layer_ends
from core.nanmedian import nanmedian_last_axis
from core.parallel import map_slices

NAME = "collector_deflection"
SPEC = DetectorSpec(
    name=NAME,
    label="Cu collector bent",
    value_name="deflection",
    prefix="C",
    order=1,
    merge_gap_um=500.0,
    layered=True,
    speaks_for=2,
    rules={
        "fail_um": Rule(60.0, 0.0, None, "µm", "A bend at least this large (peak radial deflection) fails."),
        "review_um": Rule(30.0, 0.0, None, "µm", "A bend at least this large is for review."),
        "min_arc_um": Rule(250.0, 0.0, None, "µm",
                           "Stretches shorter than this arc are single-voxel tracing noise, not a deflected foil."),
        "max_span_deg": Rule(120.0, 1.0, 360.0, "°",
                             "Longer deviations are the winding's own shape (winding quality), not a local bend."),
    },
    ordered=(("review_um", "fail_um"),),
    limits={
        "collector_deflection_max_um": Limit(
            "Largest Cu collector bend",
            "Radial displacement of a traced Cu collector from the smooth path of its own winding, less the "
            "common movement of its neighbours, smoothed over about a slice and 0.1 mm of arc; the peak of a bend.",
            "µm", review="review_um", fail="fail_um"),
    },
    metrics={
        "collector_deflection_max_um": Metric("max", "Cu collector deflection, largest single sample (unsmoothed)",
                                              "µm"),
        "collector_deflection_p99_um": Metric("max", "Cu collector deflection, 99th percentile", "µm"),
        "collector_deflection_count": Metric("sum", "Bent Cu collectors (findings)"),
        "cu_al_gap_mean_um": Metric("mean", "Cu–Al gap, mean", "µm"),
        "cu_al_gap_min_um": Metric("min", "Cu–Al gap, smallest (0.1th percentile)", "µm"),
    },
)


def relative_to_neighbours(deflection: np.ndarray, reach: int = 2) -> np.ndarray:
    """Deflection of each winding less the common displacement of its neighbours.

    A deflected collector bends towards its neighbours: the gap to them changes. Where the
    whole stack moves together (the step where the inner electrode starts, a tab, an oval or
    buckled inner winding) no gap changes; that is the roll's shape, which winding quality
    reports. On a real 21700 every inner winding bulges by 90–130 µm over 40° on either side
    of the seam; without this, each of them read as a deflected collector.

    Parameters
    ----------
    deflection : ndarray (windings, angles)
        Each winding's departure from its own smooth path (µm); NaN where unknown.
    reach : int
        Windings on either side whose median is the common displacement.

    Returns
    -------
    ndarray
        Same shape; NaN where the winding has no known neighbour inside or outside it.
    """
    k_max = deflection.shape[0]
    if k_max < 2:
        return deflection
    neighbours = np.full((2 * reach,) + deflection.shape, np.nan, dtype=deflection.dtype)
    for i, off in enumerate([o for o in range(-reach, reach + 1) if o != 0]):
        lo, hi = max(0, -off), min(k_max, k_max - off)
        neighbours[i, lo:hi] = deflection[lo + off:hi + off]
    common = nanmedian_last_axis(np.moveaxis(neighbours, 0, -1))  # NaN where no neighbour is known
    relative = deflection - np.where(np.isfinite(common), common, 0.0)
    # A gap closes only between two layers: the innermost turn (nothing inside it) and the
    # outermost are free edges of the stack. On a real 21700 the innermost turn climbs the
    # electrode's start tens of degrees before the turns above it do; against those it
    # reads as a 60–110 µm "deflection" that closes no gap. Their departures (sagging into
    # the mandrel hole, lifting off) are the winding-quality detector's business.
    known = np.isfinite(neighbours)
    both_sides = known[:reach].any(axis=0) & known[reach:].any(axis=0)
    relative = np.where(both_sides, relative, np.nan)
    return np.where(np.isfinite(deflection), relative, np.nan)


def _slice_deflection(item, t: np.ndarray) -> np.ndarray:
    """One slice's collector deflections (windings × angles, µm), less the neighbours' common
    movement; ``item`` is the slice and its (windings × angles) mask of excluded collectors."""
    s, excluded = item
    seam = math.radians(s.seam_deg) if math.isfinite(s.seam_deg) else 0.0
    d = smooth_path_residual(trusted_collector_radius(s, excluded), t, seam, s.direction)
    d *= s.frame.metric(t)[None, :]  # elliptical radius → distance along the normal
    d = relative_to_neighbours(d)
    # The ray index jumps at the seam: a few samples there are not a path.
    d[near_layer_ends(s, 3.0, d.shape[0])] = np.nan
    return d


# The tracer (core.geometry.layers) looks for a collector within ±cu_search_fraction (0.3) of a
# pitch of the roll's spiral: a bend that reaches near that edge is followed on the image.
BEYOND_WINDOW_FRACTION = 0.2


def _followed_departure(image: np.ndarray, s, k: int, t: np.ndarray, centre: int, half_width: int,
                        sign: int, pixel_um: float, pitch_um: float, excluded: np.ndarray | None) -> float | None:
    """A bend's departure (µm along the normal, signed) followed on the slice's image.

    The tracer searches each collector within about a third of a pitch of the roll's spiral,
    so a bend that goes further leaves its window at the peak: the trace stops there, and the
    deflection read from the rest was 98 µm for a 132 µm bend at 12 µm voxels. Here the
    collector of winding ``k`` is followed on the unrolled image from both ends of the angles
    ``centre ± half_width``, where the trace holds it, one angle at a time, each step taking
    the brightest sample within a voxel of the last (the Cu foil is the brightest line of the
    roll, and a foil bends smoothly). Only when both walks meet over the whole bend (within 1.5
    voxels) is the walk trusted; its largest departure from the winding's smooth path
    (:func:`smooth_path_residual`, bridged linearly over the bend), less the neighbours' common
    departure there (as :func:`relative_to_neighbours`), is returned. None when the walks part,
    the trace holds no end, or the neighbours move with it.
    """
    from core.geometry.unwrap import unwrap

    n_t = t.size
    idx = (centre + np.arange(-half_width, half_width + 1)) % n_t
    radius = trusted_collector_radius(s, excluded)
    seam = math.radians(s.seam_deg) if math.isfinite(s.seam_deg) else 0.0
    residual = smooth_path_residual(radius, t, seam, s.direction)
    own = residual[k]
    # A bend of one collector: its neighbours stay on their paths. Where they move too (a
    # buckle of several windings), the deflection is the gap's change, not the own departure
    # followed here, and winding quality measures the whole.
    for other in (k - 1, k + 1):
        if 0 <= other < residual.shape[0]:
            near = residual[other][idx]
            if not np.isfinite(near).any() or np.nanmax(sign * near) > 0.25 * pitch_um:
                return None
    path = (radius[k] - own)[idx]
    known = np.isfinite(path)
    if known.sum() < 4 or not known[0] or not known[-1]:
        return None
    steps = np.arange(idx.size)
    path = np.interp(steps, steps[known], path[known])
    step_px = 0.5
    lo_um, hi_um = path.min() - 0.9 * pitch_um, path.max() + 0.9 * pitch_um
    rho_px = np.arange(max(lo_um, 0.0) / pixel_um, hi_um / pixel_um, step_px)
    ring = unwrap(np.asarray(image, dtype=np.float32), s.frame, t[idx], rho_px)
    ring = ndimage.gaussian_filter(ring, (1.0, 0.5 / step_px))
    reach = max(int(round(1.0 / step_px)), 1)  # a voxel either way per angle

    def walk(order: np.ndarray) -> np.ndarray:
        track = np.full(idx.size, np.nan)
        pos = int(round((radius[k][idx[order[0]]] / pixel_um - rho_px[0]) / step_px))
        for j in order:
            a, b = max(pos - reach, 0), min(pos + reach + 1, rho_px.size)
            if a >= b:
                break
            pos = a + int(np.argmax(ring[j, a:b]))
            track[j] = rho_px[0] + pos * step_px
        return track * pixel_um

    forward, backward = walk(steps), walk(steps[::-1])
    both = np.isfinite(forward) & np.isfinite(backward)
    if not both.all() or np.abs(forward - backward).max() > 1.5 * pixel_um:
        return None
    departure = 0.5 * (forward + backward) - path
    peak = int(np.argmax(sign * departure))
    neighbours = residual[[o for o in range(k - 2, k + 3) if o != k and 0 <= o < residual.shape[0]], idx[peak]]
    common = float(np.nanmedian(neighbours)) if np.isfinite(neighbours).any() else 0.0
    return float((departure[peak] - common) * s.frame.metric(t[idx[peak]]))


def _followed_peak(ctx: DetectorContext, rolls: list, zi: np.ndarray, vals: np.ndarray, kk: np.ndarray,
                   tt: np.ndarray, i_rel: int, amp: float, span_samples: int, g, max_slices: int = 9) -> float:
    """The bend's amplitude, followed on the image where the trace reached near its window's
    edge (see :func:`_followed_departure`): the largest over the slices nearest the peak that
    read at least 80 % of it, when larger than ``amp``; else ``amp``."""
    sign = 1 if amp > 0 else -1
    n_t = rolls[0].t_rad.size
    k, centre = int(kk[i_rel]), int(tt[i_rel])
    margin = int(math.ceil(5.0 / 360.0 * n_t))
    half_width = min(span_samples // 2 + margin, n_t // 4)
    near_peak = sorted({int(j) for j, v in zip(zi, vals, strict=True) if sign * v >= 0.8 * abs(amp)},
                       key=lambda j: abs(j - int(zi[i_rel])))[:max_slices]
    best = amp
    for j in near_peak:
        ctx.check_cancel()
        s = rolls[j]
        if k >= s.cu_radius_um.shape[0]:
            continue
        followed = _followed_departure(ctx.volume.slice(s.z), s, k, s.t_rad, centre, half_width, sign, g.pixel_um,
                                       g.pitch_um, g.collector_exclusion(s, s.cu_radius_um.shape[0]))
        if followed is not None and sign * followed > sign * best:
            best = followed
    return best


@register(SPEC)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Find deflected Cu current collectors; see the module docstring."""
    g = ctx.geometry
    rolls = [s for s in g.slices if s.is_roll]
    out = DetectorOutput()
    if not rolls:
        out.metrics.update(collector_deflection_max_um=None, collector_deflection_count=0)
        return out
    rules = SPEC.rules_for(ctx.rules)
    review_um = float(rules["review_um"])
    fail_um = float(rules["fail_um"])
    min_arc_um = float(rules["min_arc_um"])
    max_span_deg = float(rules["max_span_deg"])
    t = rolls[0].t_rad
    n_t = t.size
    k_max = max(s.cu_radius_um.shape[0] for s in rolls)
    deflection = np.full((len(rolls), k_max, n_t), np.nan, np.float32)
    # Collectors bounding an uncoated strip (tab window) relax into it by design.
    items = ((s, g.collector_exclusion(s, s.cu_radius_um.shape[0])) for s in rolls)
    task = partial(_slice_deflection, t=t)
    # Each slice's fit is independent: in worker processes for a large volume (core.parallel).
    fitted = map_slices(task, items, len(rolls), ctx.volume.shape, ctx.cancel)
    for i, (s, d) in enumerate(zip(rolls, fitted, strict=True)):
        ctx.check_cancel()
        deflection[i, : d.shape[0]] = d
        ctx.report(0.8 * (i + 1) / len(rolls), f"collector deflection: slice {s.z}")
    smoothed = nan_gaussian(deflection, 1.0)
    finite = np.isfinite(smoothed)
    # Label along the wound sheet: a bend that crosses the seam stays one finding.
    spiral = Spiral.from_geometry(g, k_max)
    along = spiral.lay_out(smoothed)  # (slices, positions)
    filled = np.where(np.isfinite(along), along, 0.0)
    seam_gap = int(math.ceil(5.0 / 360.0 * n_t)) + 1
    bridge = np.zeros((1, 2 * seam_gap + 1), bool)
    bridge[0] = True
    findings = []
    for sign in (1, -1):
        seed = sign * filled >= review_um
        grown = sign * filled >= 0.5 * review_um
        grown = grown | (ndimage.binary_closing(grown, structure=bridge) & ~np.isfinite(along))
        labels, n = ndimage.label(grown, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        for lab in np.unique(labels[seed & (labels > 0)]):
            zi, pos = np.nonzero((labels == lab) & np.isfinite(along))
            vals = along[zi, pos]
            i_rel = int(np.argmax(sign * vals))
            amp = float(vals[i_rel])
            kk, tt = spiral.winding_and_angle(zi, pos)
            s_peak = rolls[int(zi[i_rel])]
            k = int(kk[i_rel])
            r_peak = float(s_peak.cu_radius_um[k, tt[i_rel]])
            span_samples = int(pos.max() - pos.min() + 1)
            arc_um = span_samples * (2 * np.pi / n_t) * r_peak
            span_deg_all = span_samples * 360.0 / n_t
            # A bend is local. A deviation over more than a third of a turn is the winding's
            # own shape (an oval or collapsed inner winding), which winding quality reports.
            if arc_um < min_arc_um or span_deg_all > max_span_deg:
                continue
            zs = np.array([rolls[j].z for j in zi], float)
            if shallower_than_deep(smoothed, (int(zi[i_rel]), k, int(tt[i_rel])), amp, 0.5 * review_um,
                                   [s.z for s in rolls], g.spacing_um[0], ctx.volume.shape[0]):
                continue
            if abs(amp) >= BEYOND_WINDOW_FRACTION * g.pitch_um:
                amp = _followed_peak(ctx, rolls, zi, vals, kk, tt, i_rel, amp, span_samples, g)
            rad = np.array([rolls[j].cu_radius_um[kk[m], tt[m]] for m, j in enumerate(zi)], float)
            ys, xs = points_to_yx(g, zs, t[tt], rad)
            _, box = box_and_centroid(zs, ys, xs)
            py, px = points_to_yx(g, np.array([s_peak.z]), t[tt[i_rel:i_rel + 1]], np.array([r_peak]))
            centroid = (float(s_peak.z), float(py[0]), float(px[0]))
            angle = polar_angle_deg(g, *centroid)
            height_um = (zs.max() - zs.min() + 1) * g.spacing_um[0]
            span_deg = span_samples * 360.0 / n_t
            gaps = np.array([rolls[j].cu_al_gap_um[kk[m], tt[m]] if kk[m] < rolls[j].cu_al_gap_um.shape[0] else np.nan
                             for m, j in enumerate(zi)], float)
            gap_min = float(np.nanmin(gaps)) if np.isfinite(gaps).any() else None
            sev = severity_for(abs(amp), fail_um, review_um)
            limit = fail_um if sev == "fail" else review_um
            findings.append(Finding(
                detector=NAME, severity=sev, centroid_zyx_px=centroid, bbox_zyx_px=box,
                value=abs(amp), unit="µm", winding=k, angle_deg=angle,
                rule=f"deflection {abs(amp):.0f} µm ≥ {limit:.0f} µm" if sev != "info" else "",
                message=(f"Cu collector of winding {k} deflected {abs(amp):.0f} µm "
                         f"{'outwards' if amp > 0 else 'inwards'} over {span_deg:.0f}° × {height_um / 1000:.2f} mm"),
                extra={"amplitude_signed_um": amp, "angular_span_deg": span_deg, "arc_length_um": arc_um,
                       "height_span_um": height_um, "cu_al_gap_min_um": gap_min},
            ))
    findings.sort(key=lambda f: -f.value)
    out.findings = findings
    absd = np.abs(smoothed[finite]) if finite.any() else np.array([0.0])
    gaps = g.stacked("cu_al_gap_um")
    gaps = gaps[:, : g.windings][np.isfinite(gaps[:, : g.windings])] if gaps.size else np.array([])
    out.metrics.update(
        collector_deflection_max_um=float(absd.max()),
        collector_deflection_p99_um=float(np.percentile(absd, 99)),
        collector_deflection_count=len(findings),
        cu_al_gap_mean_um=float(gaps.mean()) if gaps.size else None,
        cu_al_gap_min_um=float(np.percentile(gaps, 0.1)) if gaps.size else None,
    )
    out.maps["collector_deflection_um"] = deflection
    return out
