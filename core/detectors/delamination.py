"""Delamination voids inside the cathode sheets.

Every cathode sheet is resampled along its own normal (depth from the sheet's centre, the
Al foil) at every angle of every slice. The sheet's expected profile is the median over
angles and slices; a void is where the coating is darker than expected: the deficit as a
fraction of the coating's contrast above the void level (the gas in the mandrel hole).
Connected regions (through slices, along the arc and in depth) where more than half the
coating is missing are voids; their volume integrates the deficit over the region's
columns, so partial-volume and blur do not bias it.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register
from core.detectors.numerics import (
    box_and_centroid,
    hole_level,
    label_periodic,
    points_to_yx,
    polar_angle_deg,
    sheet_centre_lines,
)
from core.detectors.spec import DetectorSpec, Limit, Metric, Rule
from core.geometry.layers import near_layer_ends
from core.nanmedian import nanmedian_float16_columns
from core.parallel import map_slices

NAME = "delamination"
SPEC = DetectorSpec(
    name=NAME,
    label="Void in the cathode (delamination)",
    value_name="void volume",
    prefix="D",
    order=3,
    merge_gap_um=200.0,
    layered=True,
    speaks_for=0,
    rules={
        "fail_volume_mm3": Rule(0.001, 0.0, None, "mm³", "A void of at least this volume fails."),
        "fail_length_um": Rule(300.0, 0.0, None, "µm", "A void at least this long (arc or height) fails."),
        "review_volume_mm3": Rule(0.0002, 0.0, None, "mm³", "A void of at least this volume is for review."),
        "min_volume_mm3": Rule(0.00005, 0.0, None, "mm³",
                               "Smaller dark specks are noise at lab-CT resolution and are not reported."),
        "merge_gap_um": Rule(None, 0.0, None, "µm",
                             "Parts of a void at most this far apart are one void (absent: each path's own "
                             "default: this declaration's merge_gap_um and core.segment.voids.MERGE_GAP_UM)."),
    },
    ordered=(("review_volume_mm3", "fail_volume_mm3"),),
    limits={
        "void_max_volume_mm3": Limit(
            "Largest void",
            "Volume of a void (a connected dark region inside or at the edge of the cathode coating), parts of "
            "one void joined; a void also fails on its length (the recipe's fail_length_um).",
            "mm³", review="review_volume_mm3", fail="fail_volume_mm3"),
    },
    metrics={
        "void_count": Metric("sum", "Voids (findings)"),
        "void_total_volume_mm3": Metric("sum", "Void volume, total", "mm³"),
        "void_max_volume_mm3": Metric("max", "Void volume, largest", "mm³"),
    },
)


# Degrees either side of the seam (where every layer's ray index changes) left out of the search:
# the tracer leaves gaps there whose width varies with the slice (at 1° a 40-slice slab of a real
# 21700 read them as 0.0002–0.0011 mm³ "voids" in every outer winding at the seam).
SEAM_MARGIN_DEG = 4.0


def _slice_samples(item, n_k: int, t: np.ndarray, depth: np.ndarray, px: float):
    """One slice's mandrel-hole level, collector contacts, sheet centre lines and the profiles
    across every sheet (float16), as :func:`detect` uses them; a worker process's task."""
    image, s = item
    dark_level = hole_level(image, s.frame, s.roll_inner_radius_um / px)
    touching = None
    if s.sheet_cu_contact.size:
        touching = ndimage.binary_dilation(s.sheet_cu_contact[:n_k], structure=np.ones((1, 9), bool))
    k_here = min(n_k, s.sheet_inner_um.shape[0])
    centre_lines = sheet_centre_lines(s, n_k, t)[:k_here].astype(np.float32)
    # All sheets of the slice in one gather: a point is centre + rho · (its direction at t),
    # linear in rho for the elliptical frame, so the directions are computed once.
    frame = s.frame
    cy, cx = frame.center_yx_px
    dir_y, dir_x = frame.to_yx(t, np.ones_like(t))
    dir_y, dir_x = (dir_y - cy).astype(np.float32), (dir_x - cx).astype(np.float32)
    rho = ((centre_lines[:, :, None] + depth[None, None, :]) / px).astype(np.float32)
    y = cy + rho * dir_y[None, :, None]
    x = cx + rho * dir_x[None, :, None]
    slice_profiles = ndimage.map_coordinates(image, [y, x], order=1, mode="nearest").astype(np.float16)
    return dark_level, touching, centre_lines, slice_profiles


def close_in_place(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``mask | binary_closing(mask, structure)`` for a 3 × 3 × 3 (or smaller) structure, in place.

    Closed within the mask's bounding box and two samples beyond, where the closing of the
    whole array is zero anyway: the same mask, from ~1 % of the stack on issue 18's volume
    (272 -> 26 ms a winding under a line profiler, the bounding box's search included).
    """
    if not mask.any():
        return mask
    box = []
    for axis in range(mask.ndim):
        occupied = np.nonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))[0]
        box.append(slice(max(int(occupied[0]) - 2, 0), min(int(occupied[-1]) + 3, mask.shape[axis])))
    box = tuple(box)
    mask[box] |= ndimage.binary_closing(mask[box], structure=structure)
    return mask


def judge_void(volume_mm3: float, length_um: float, rules: dict[str, float]) -> tuple[str, str]:
    """Severity and rule text of a void by the recipe's delamination rules (DESIGN.md)."""
    rules = SPEC.rules_for(rules)
    fail_volume = float(rules["fail_volume_mm3"])
    fail_length = float(rules["fail_length_um"])
    review_volume = float(rules["review_volume_mm3"])
    if volume_mm3 >= fail_volume:
        return "fail", f"void {volume_mm3:.4f} mm³ ≥ {fail_volume:g} mm³"
    if length_um >= fail_length:
        return "fail", f"void {length_um:.0f} µm long ≥ {fail_length:.0f} µm"
    if volume_mm3 >= review_volume:
        return "review", f"void {volume_mm3:.4f} mm³ ≥ {review_volume:g} mm³"
    return "info", ""


# Of the darkening a void's core must reach (0.5), the fraction its rim is followed down to
# for the volume; and how far (samples along the arc, the same µm along the axis) the
# footprint is widened for the blur of a thin void.
RIM_FRACTION = 0.3
FOOTPRINT_WIDEN_SAMPLES = 2


@register(SPEC)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Find voids inside the cathode sheets; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    rolls = [s for s in g.slices if s.is_roll]
    if not rolls:
        out.metrics.update(void_count=0, void_total_volume_mm3=0.0, void_max_volume_mm3=None)
        return out
    min_volume = float(SPEC.rules_for(ctx.rules)["min_volume_mm3"])
    px = g.pixel_um
    n_k = g.windings
    t = rolls[0].t_rad
    n_t = t.size
    thickness = g.stacked("sheet_thickness_um")[:, :n_k]
    nominal = float(np.nanmedian(thickness)) if np.isfinite(thickness).any() else float(ctx.cell.get("cathode_sheet_um", 135.0))
    nominal = float(ctx.reference.get("cathode_sheet_thickness_median_um", nominal))
    step_um = 0.5 * px
    reach_um = nominal / 2 + 2.5 * px
    depth = np.arange(-reach_um, reach_um + step_um / 2, step_um)
    n_d = depth.size
    profiles = np.full((len(rolls), n_k, n_t, n_d), np.nan, np.float16)
    centers = np.full((len(rolls), n_k, n_t), np.nan, np.float32)
    # Where a collector presses against the sheet its edge is hidden and the darker
    # separator it displaced is not a void.
    contact = np.zeros((len(rolls), n_k, n_t), bool)
    dark_levels = []
    sample = partial(_slice_samples, n_k=n_k, t=t, depth=depth, px=px)
    items = ((np.asarray(ctx.volume.slice(s.z)), s) for s in rolls)
    # Each slice's sampling is independent (the gather is 60 % of the detector's time): in
    # worker processes for a large volume (core.parallel).
    sampled = map_slices(sample, items, len(rolls), ctx.volume.shape, ctx.cancel)
    for i, (s, (dark_level, touching, centre_lines, slice_profiles)) in enumerate(zip(rolls, sampled, strict=True)):
        ctx.check_cancel()
        dark_levels.append(dark_level)
        if touching is not None:
            contact[i, : touching.shape[0]] = touching
        k_here = centre_lines.shape[0]
        centers[i, :k_here] = centre_lines
        profiles[i, :k_here] = slice_profiles
        ctx.report(0.7 * (i + 1) / len(rolls), f"delamination: slice {s.z}")
    finite_dark = [d for d in dark_levels if math.isfinite(d)]
    # Float32 one winding at a time: a float32 copy of the whole stack would double the
    # detector's memory (measured: 172 MB of 414 MB at 48 slices of 760²).
    dark = float(np.median(finite_dark)) if finite_dark else float(np.nanpercentile(profiles[:, :, ::8], 1))
    interior = np.abs(depth) <= nominal / 2 - max(0.75 * px, 10.0)
    findings = []
    total_volume = 0.0
    dz_um = g.spacing_um[0]
    zs_all = np.array([s.z for s in rolls], float)
    # Inspected a chunk at a time (core.chunked), a void cut by the chunk's edge is measured
    # here only in the chunk's own slices; the part beyond is its neighbour's, and the two add up.
    own = None
    if "core_first_slice" in ctx.reference:
        own = (zs_all >= ctx.reference["core_first_slice"]) & (zs_all <= ctx.reference["core_last_slice"])
    structure = np.ones((3, 3, 3), bool)
    along_arc = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], bool)
    along_z = along_arc.T
    # The ray index jumps at the seam: the samples beside it are not looked at (a void across
    # it is found in its two windings, which touch there, and joined: core.findings).
    near_seam = np.array([near_layer_ends(s, SEAM_MARGIN_DEG, max(n_k, s.windings))[:n_k] for s in rolls])
    # Sheets set aside by the geometry (an edge at the roll end, an uncoated tab window) hold
    # no coating to look into.
    # Within a few degrees of the seam a void's part joins its other part in the next winding.
    seam_band = np.array([near_layer_ends(s, SEAM_MARGIN_DEG + 2.0) for s in rolls])  # (z, t)
    excluded = np.zeros((len(rolls), n_k, n_t), bool)
    for i, s in enumerate(rolls):
        if s.sheet_excluded.size:
            excluded[i, : min(n_k, s.sheet_excluded.shape[0])] = s.sheet_excluded[:n_k]
    for k in range(n_k):
        ctx.check_cancel()
        exp_k = nanmedian_float16_columns(profiles[:, k])  # the sheet's expected profile across depth
        prof_k = profiles[:, k].astype(np.float32)  # (z, t, d)
        if not np.isfinite(exp_k).any():
            continue
        peak = float(np.nanmax(exp_k[interior])) if interior.any() else float(np.nanmax(exp_k))
        contrast = peak - dark
        if not contrast > 0:
            continue
        deficit = exp_k[None, None, :] - prof_k
        bright = (exp_k - dark) > 0.3 * contrast
        frac = deficit / np.maximum(exp_k - dark, 0.3 * contrast)[None, None, :]
        frac = np.where(np.isfinite(frac), frac, 0.0)
        frac_s = ndimage.gaussian_filter(frac, (0, 0.7, 0.7), mode=("nearest", "wrap", "nearest"))
        measured = (np.isfinite(centers[:, k]) & ~contact[:, k] & ~excluded[:, k])[:, :, None]
        mask = (frac_s > 0.5) & (interior & bright)[None, None, :] & ~near_seam[:, k, :, None] & measured
        if not mask.any():
            continue
        # Bridge one-sample cracks so one void is one finding.
        mask = close_in_place(mask, structure)
        # A void tapers to nothing at its rim: the rim thinner than about half a voxel stays
        # below the 0.5 threshold, yet holds part of the volume. The volume is integrated over
        # the region grown into its connected samples at least RIM_FRACTION dark (hysteresis);
        # the region itself (what is found, its extent) is unchanged.
        rim = (frac_s > RIM_FRACTION) & (interior & bright)[None, None, :] & ~near_seam[:, k, :, None] & measured
        grown = ndimage.binary_propagation(mask, structure, mask=rim | mask)
        grown_labels, _ = label_periodic(np.moveaxis(grown, 1, 2), structure)
        grown_labels = np.moveaxis(grown_labels, 2, 1)
        grown_boxes = ndimage.find_objects(grown_labels)
        labels, n = label_periodic(np.moveaxis(mask, 1, 2), structure)  # (z, d, t): angle last
        labels = np.moveaxis(labels, 2, 1)
        r_k = np.nanmedian(centers[:, k]) if np.isfinite(centers[:, k]).any() else 5000.0
        arc_um = 2 * np.pi * r_k / n_t
        widen_z = int(round(FOOTPRINT_WIDEN_SAMPLES * arc_um / dz_um)) if len(rolls) > 1 else 0
        # Each region's samples from its bounding box, not a scan of the whole stack per region
        # (the same indices in the same order; 28 -> 0.1 ms a region on issue 18's volume).
        boxes = ndimage.find_objects(labels)
        for lab in range(1, n + 1):
            box = boxes[lab - 1] if lab <= len(boxes) else None
            if box is None:  # a label merged into another across the seam
                zi = ti = di = np.zeros(0, np.intp)
            else:
                zi, ti, di = (i + b.start for i, b in zip(np.nonzero(labels[box] == lab), box, strict=True))
            if own is not None:  # one chunk of a volume: measure the part in its own slices
                mine = own[zi]
                if not mine.any():
                    continue
                zi, ti, di = zi[mine], ti[mine], di[mine]
            # Integrate the deficit over whole columns (all depths) of the footprint of the
            # region grown into its rim, widened by two samples along the arc and as far
            # along the axis: the blur of a thin void spreads both ways. (Widened along the
            # arc only, and without the rim, 16 voids in random 15–25 µm cells read 12 % small
            # on average, 4 of them by more than 20 %; now 2 % large, none beyond 20 %, and
            # 14 of 14 within 12 % in 8 more cells: docs/validation.md.)
            foot = np.zeros((len(rolls), n_t), bool)
            foot[zi, ti] = True
            for g_lab in np.unique(grown_labels[zi, ti, di]):
                g_box = grown_boxes[g_lab - 1] if 0 < g_lab <= len(grown_boxes) else None
                if g_box is not None:
                    gz, gt, _gd = (i + b.start for i, b in zip(np.nonzero(grown_labels[g_box] == g_lab), g_box,
                                                               strict=True))
                    foot[gz, gt] = True
            foot = ndimage.binary_dilation(foot, structure=along_arc, iterations=FOOTPRINT_WIDEN_SAMPLES)
            if widen_z:
                foot = ndimage.binary_dilation(foot, structure=along_z, iterations=widen_z)
            foot &= np.isfinite(centers[:, k])
            if own is not None:  # the slices beyond are the neighbouring chunk's to count
                foot &= own[:, None]
            col_deficit = np.where(np.isfinite(deficit), deficit, 0.0)[foot]  # (n_cols, d)
            sample_um3 = arc_um * step_um * dz_um
            volume_mm3 = float(col_deficit.sum() / contrast * sample_um3 * 1e-9)
            if volume_mm3 < min_volume:
                continue
            # A void opens inside the coating and reaches its inner half; a coating thinned
            # at its surface only darkens the outer rim (the thickness detector's business).
            coating = (nominal - float(ctx.cell.get("al_foil_um", 15.0))) / 2
            if float(np.min(np.abs(depth[di]))) > float(ctx.cell.get("al_foil_um", 15.0)) / 2 + 0.5 * coating:
                continue
            w = np.clip(frac[zi, ti, di], 0, None)
            zs = zs_all[zi]
            rho = centers[zi, k, ti] + depth[di]
            ys, xs = points_to_yx(g, zs, t[ti], rho)
            centroid, box = box_and_centroid(zs, ys, xs, w)
            column_thick = (np.clip(frac, 0, 1).sum(axis=2) * step_um)[zi, ti]
            # Lengths where the void itself is at least half a voxel thick: a faint web of
            # half-dark samples (noise bridged by the closing) is not a long void (seen on a
            # real 21700: "1.8 mm long" regions of 0.0003 mm³).
            key = zi * n_t + ti
            in_void = np.bincount(key, weights=np.clip(frac[zi, ti, di], 0, 1) * step_um)[key]
            solid = in_void >= 0.5 * px
            if not solid.any():
                solid = in_void >= in_void.max()
            t_cover = np.unique(ti[solid])
            arc_length = len(t_cover) * arc_um
            height = (zs[solid].max() - zs[solid].min() + 1) * dz_um
            side = "outer" if np.average(depth[di], weights=w + 1e-9) > 0 else "inner"
            al_half = float(ctx.cell.get("al_foil_um", 15.0)) / 2
            depth_from_al = max(0.0, float(np.min(np.abs(depth[di]))) - al_half)
            if arc_length < px:
                # Narrower along the sheet than one voxel: dark samples down one ray through
                # several slices (beside the seam of a real 21700: 23 µm × 408 µm, 0.0001 mm³,
                # FAILed by its "length"), not a void the scan resolves.
                continue
            length = max(arc_length, height)
            severity, rule = judge_void(volume_mm3, length, ctx.rules)
            total_volume += volume_mm3
            at_seam = bool(np.any(seam_band[zi, ti]))
            findings.append(Finding(
                detector=NAME, severity=severity, centroid_zyx_px=centroid, bbox_zyx_px=box,
                value=volume_mm3, unit="mm³", winding=k, angle_deg=polar_angle_deg(g, *centroid), rule=rule,
                message=(f"void in the {side} cathode coating of winding {k}: {volume_mm3:.4f} mm³, "
                         f"{arc_length:.0f} µm × {height:.0f} µm × {float(column_thick.max()):.0f} µm"),
                extra={"arc_length_um": arc_length, "height_um": height,
                       "thickness_um": float(column_thick.max()), "side": side,
                       "depth_from_al_um": depth_from_al, "at_seam": at_seam},
            ))
        ctx.report(0.7 + 0.3 * (k + 1) / n_k, f"delamination: winding {k}")
    findings.sort(key=lambda f: -f.value)
    out.findings = findings
    out.metrics.update(
        void_count=len(findings),
        void_total_volume_mm3=total_volume,
        void_max_volume_mm3=max((f.value for f in findings), default=None),
    )
    return out
