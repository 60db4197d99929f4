"""High-density foreign particles (metal debris) inside the jelly roll.

Metal debris is brighter than anything else in the roll except the Cu foils, which are thin
sheets. A grey-level opening with a disc of the particle's minimum radius removes thin
bright lines (foils, their partial-volume halo) and keeps compact bright blobs; blobs brighter
than the can wall, connected through slices, are measured by their equivalent diameter. A bright
strip millimetres long (a Ni tab on the anode's end, brighter than the steel can) is a tab,
not debris: it is counted (``bright_strips_set_aside``), not reported as a particle.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register
from core.detectors.numerics import box_and_centroid, polar_angle_deg
from core.detectors.spec import DetectorSpec, Limit, Metric, Rule
from core.geometry.unwrap import unwrap
from core.parallel import map_slices

NAME = "foreign_particle"
SPEC = DetectorSpec(
    name=NAME,
    label="Foreign particle",
    value_name="equivalent diameter",
    prefix="P",
    order=4,
    merge_gap_um=100.0,
    speaks_for=1,
    rules={
        "fail_diameter_um": Rule(50.0, 0.0, None, "µm",
                                 "A dense particle of at least this equivalent diameter fails (smaller: review)."),
    },
    limits={
        "foreign_particle_max_diameter_um": Limit(
            "Largest dense particle",
            "Equivalent diameter (of the sphere of the same volume) of a compact region brighter than the can.",
            "µm", fail="fail_diameter_um"),
    },
    metrics={
        "foreign_particle_count": Metric("sum", "Dense particles (findings)"),
        "foreign_particle_max_diameter_um": Metric("max", "Dense particle, largest equivalent diameter", "µm"),
        "bright_strips_set_aside": Metric("mean", "Bright strips set aside as tabs"),
    },
)


def _can_level(image: np.ndarray, frame, can_inner_px: float, wall_px: float) -> float:
    wall = unwrap(image, frame, np.linspace(0, 2 * np.pi, 180, endpoint=False),
                  np.linspace(can_inner_px + 0.3 * wall_px, can_inner_px + 0.7 * wall_px, 4))
    return float(np.median(wall))


def _slice_candidates(item, can_inner: float, wall_px: float, radius_px: float,
                      disc: np.ndarray) -> tuple[float, np.ndarray]:
    """One slice's can level and its mask of bright compact candidates inside the can."""
    image, frame = item
    ny, nx = image.shape
    level = _can_level(image, frame, can_inner, wall_px)
    cy, cx = frame.center_yx_px
    inside = ((np.arange(ny)[:, None] - cy) ** 2 + (np.arange(nx)[None, :] - cx) ** 2) < (can_inner - 2 * wall_px) ** 2
    # Only look where something is brighter than the can: skip the opening elsewhere.
    bright = (image > 1.1 * level) & inside
    mask = np.zeros_like(bright)
    if bright.any():
        labels, n = ndimage.label(ndimage.binary_dilation(bright, iterations=int(radius_px) + 2))
        for sl in ndimage.find_objects(labels):
            opened = ndimage.grey_opening(image[sl], footprint=disc)
            mask[sl] |= (opened > 1.1 * level) & inside[sl]
    return level, mask


@register(SPEC)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Find compact bright particles inside the roll; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    rolls = [s for s in g.slices if s.is_roll]
    fail_d = float(SPEC.rules_for(ctx.rules)["fail_diameter_um"])
    if not rolls:
        out.metrics.update(foreign_particle_count=0, foreign_particle_max_diameter_um=None)
        return out
    px = g.pixel_um
    # (the can's statistics directly: to_json() would also fit every layer's spiral)
    inner_um, outer_um = g.can_stat("inner_radius_um"), g.can_stat("outer_radius_um")
    can_inner = (inner_um if math.isfinite(inner_um) else 0.0) / px
    can_outer = (outer_um if math.isfinite(outer_um) else 0.0) / px
    wall_px = max(can_outer - can_inner, 2.0)
    # A foil is at most ~2 voxels thick at these voxel sizes; the opening disc must be wider.
    radius_px = max(fail_d / 2 / px * 0.8, 1.0, (float(ctx.cell.get("cu_foil_um", 10.0)) / px) + 1.0)
    yy, xx = np.mgrid[-math.ceil(radius_px):math.ceil(radius_px) + 1, -math.ceil(radius_px):math.ceil(radius_px) + 1]
    disc = (yy**2 + xx**2) <= radius_px**2
    masks, levels = [], []
    task = partial(_slice_candidates, can_inner=can_inner, wall_px=wall_px, radius_px=radius_px, disc=disc)
    items = ((np.asarray(ctx.volume.slice(s.z)), s.frame) for s in rolls)
    # Each slice's search is independent: in worker processes for a large volume (core.parallel).
    found = map_slices(task, items, len(rolls), ctx.volume.shape, ctx.cancel)
    for level, mask in found:
        ctx.check_cancel()
        levels.append(level)
        masks.append(mask)
    volume_mask = np.stack(masks)
    labels, n = ndimage.label(volume_mask)
    dz = g.spacing_um[0]
    findings = []
    strips = 0
    zs_all = np.array([s.z for s in rolls], float)
    axial_means: dict[int, np.ndarray] = {}
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        zi, yi, xi = np.nonzero(labels[sl] == lab)
        zi, yi, xi = zi + sl[0].start, yi + sl[1].start, xi + sl[2].start
        z_best = int(np.bincount(zi).argmax())
        if z_best not in axial_means:  # a tab gives dozens of specks in the same few slices
            if len(axial_means) >= 4:  # labels run in z order: the oldest is done with (memory)
                del axial_means[next(iter(axial_means))]
            axial_means[z_best] = _axial_mean(ctx.volume, rolls, z_best, dz)
        if _on_a_strip(axial_means[z_best], yi[zi == z_best], xi[zi == z_best], disc, levels[z_best], px):
            strips += 1
            continue
        # The opening shrinks a sphere's outline by partial volume; add back half a voxel.
        area_px = np.bincount(zi).max()
        eq_d_inplane = 2 * math.sqrt(area_px / math.pi) * px + px
        # A tab runs along the axis past the roll's ends; a particle ends within its size. A
        # speck of noise on a tab's edge (where the opened tab is too thin and too broken to be
        # followed as a strip: an 18650's Ni tab, 64 µm thick at 25 µm voxels, gave three
        # 110–123 µm "particles" one slice tall) stays bright along the axis far beyond its width.
        if _runs_along_axis(ctx.volume, rolls, z_best, yi[zi == z_best], xi[zi == z_best], levels, dz,
                            eq_d_inplane):
            strips += 1
            continue
        vol_um3 = len(zi) * px * px * dz
        eq_d = max(eq_d_inplane, (6 * vol_um3 / math.pi) ** (1 / 3))
        zs = zs_all[zi]
        centroid, box = box_and_centroid(zs, yi.astype(float), xi.astype(float))
        severity = "fail" if eq_d >= fail_d else "review"
        findings.append(Finding(
            detector=NAME, severity=severity, centroid_zyx_px=centroid, bbox_zyx_px=box,
            value=eq_d, unit="µm", angle_deg=polar_angle_deg(g, *centroid),
            rule=f"particle {eq_d:.0f} µm ≥ {fail_d:.0f} µm" if severity == "fail" else "dense particle",
            message=f"dense foreign particle, equivalent diameter {eq_d:.0f} µm",
            extra={"equivalent_diameter_um": eq_d, "volume_mm3": vol_um3 * 1e-9},
        ))
    findings.sort(key=lambda f: -f.value)
    out.findings = findings
    out.metrics.update(foreign_particle_count=len(findings),
                       foreign_particle_max_diameter_um=max((f.value for f in findings), default=None),
                       bright_strips_set_aside=strips)
    return out


# How far along the axis (µm, and at least this many of the candidate's widths) a candidate's
# footprint is followed, and the fraction of those slices (beyond the candidate's own extent)
# in which it must stay bright for it to be a strip running along the axis (a tab).
AXIAL_REACH_UM = 400.0
AXIAL_REACH_WIDTHS = 2.0
AXIAL_BRIGHT_FRACTION = 0.6


def _runs_along_axis(volume, rolls: list, i: int, ys: np.ndarray, xs: np.ndarray, levels: list[float],
                     dz_um: float, width_um: float) -> bool:
    """True when the footprint (``ys``, ``xs``) of a candidate in roll slice ``i`` stays at
    :data:`STRIP_LEVEL` of the can's level in most roll slices beyond the candidate's own
    half-width, out to :data:`AXIAL_REACH_UM` (or :data:`AXIAL_REACH_WIDTHS` widths): a bright
    structure running along the axis, not a compact particle. Reads only the footprint's box."""
    reach_um = max(AXIAL_REACH_UM, AXIAL_REACH_WIDTHS * width_um)
    own_um = 0.5 * width_um + dz_um
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    z0 = rolls[i].z
    bright = looked = 0
    for j, s in enumerate(rolls):
        dist = abs(s.z - z0) * dz_um
        if dist <= own_um or dist > reach_um or not math.isfinite(levels[j]):
            continue
        box = np.asarray(volume.array[(s.z, slice(y0, y1), slice(x0, x1))], dtype=np.float32)
        looked += 1
        bright += float(box[ys - y0, xs - x0].mean()) >= STRIP_LEVEL * levels[j]
    return looked >= 2 and bright >= AXIAL_BRIGHT_FRACTION * looked


# A tab strip (Ni on the anode, brighter than the steel can) is millimetres wide and tens of µm
# thick; metal debris is compact, or a flake well under this length.
STRIP_MIN_LENGTH_UM = 2000.0
STRIP_MIN_ASPECT = 6.0


# How far around a candidate (µm) the strip it may belong to is followed, and how bright (of
# the can's level) the opened image must stay along it: a Ni tab near the axis is darkened by
# cupping (up to 20 %) and its brightness hovers about the particle limit, so that only specks
# of it pass; the opening still removes the thin foils at this level.
STRIP_SEARCH_UM = 3000.0
STRIP_LEVEL = 0.75


# Half-height (µm) of the stack of slices averaged to follow a strip: a tab runs the roll's whole
# height, so the mean keeps it and divides the noise; a thin Ni tab (61 µm at 20 µm voxels, 3
# voxels) opened in one noisy slice broke into specks that read as seven 88–131 µm "particles".
STRIP_AXIAL_HALF_UM = 100.0


def _axial_mean(volume, rolls: list, i: int, dz_um: float) -> np.ndarray:
    """Mean of the roll slices within :data:`STRIP_AXIAL_HALF_UM` of roll slice ``i``."""
    half = max(int(STRIP_AXIAL_HALF_UM // max(dz_um, 1e-6)), 0)
    picks = [rolls[j].z for j in range(max(i - half, 0), min(i + half + 1, len(rolls)))
             if abs(rolls[j].z - rolls[i].z) <= half]
    stack = np.zeros(volume.slice(rolls[i].z).shape, np.float32)
    for z in picks:
        stack += np.asarray(volume.slice(z), dtype=np.float32)
    return stack / max(len(picks), 1)


def _on_a_strip(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, disc: np.ndarray, level: float,
                px_um: float) -> bool:
    """True when the candidate blob (pixels ``ys``, ``xs`` of one slice) is part of a bright
    strip (a tab): the opened image around it, at :data:`STRIP_LEVEL` of the can, joins it to a
    region that :func:`_is_strip` calls a strip."""
    reach = int(math.ceil(STRIP_SEARCH_UM / px_um))
    cy, cx = int(np.mean(ys)), int(np.mean(xs))
    y0, x0 = max(cy - reach, 0), max(cx - reach, 0)
    window = np.asarray(image[y0:cy + reach + 1, x0:cx + reach + 1], dtype=np.float32)
    opened = ndimage.grey_opening(window, footprint=disc)
    labels, _ = ndimage.label(opened > STRIP_LEVEL * level)
    hit = np.unique(labels[ys - y0, xs - x0])
    hit = hit[hit > 0]
    if hit.size == 0:
        return False
    ry, rx = np.nonzero(np.isin(labels, hit))
    return _is_strip(np.zeros(ry.size, int), ry, rx, px_um)


def _is_strip(zi: np.ndarray, yi: np.ndarray, xi: np.ndarray, px_um: float) -> bool:
    """True for a bright object that is a tab, not a particle: in its largest slice it is at
    least :data:`STRIP_MIN_LENGTH_UM` long and :data:`STRIP_MIN_ASPECT` times longer than thick
    (length² / area; a curved tab around the mandrel qualifies, a compact blob reads ~2.5)."""
    if zi.size == 0:
        return False
    z_best = int(np.bincount(zi).argmax())
    sel = zi == z_best
    area_px = int(sel.sum())
    if area_px < 3:
        return False
    length_px = math.hypot(np.ptp(yi[sel]) + 1, np.ptp(xi[sel]) + 1)
    return length_px * px_um >= STRIP_MIN_LENGTH_UM and length_px**2 / area_px >= STRIP_MIN_ASPECT
