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

import numpy as np
from scipy import ndimage

from core.detectors.base import (
    DetectorContext,
    DetectorOutput,
    Finding,
    box_and_centroid,
    polar_angle_deg,
    register,
)
from core.geometry.unwrap import unwrap

NAME = "foreign_particle"


def _can_level(image: np.ndarray, frame, can_inner_px: float, wall_px: float) -> float:
    wall = unwrap(image, frame, np.linspace(0, 2 * np.pi, 180, endpoint=False),
                  np.linspace(can_inner_px + 0.3 * wall_px, can_inner_px + 0.7 * wall_px, 4))
    return float(np.median(wall))


@register(NAME)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Find compact bright particles inside the roll; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    rolls = [s for s in g.slices if s.is_roll]
    fail_d = float(ctx.rules.get("fail_diameter_um", 50.0))
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
    radius_px = max(fail_d / 2 / px * 0.8, 1.5, (float(ctx.cell.get("cu_foil_um", 10.0)) / px) + 1.0)
    yy, xx = np.mgrid[-math.ceil(radius_px):math.ceil(radius_px) + 1, -math.ceil(radius_px):math.ceil(radius_px) + 1]
    disc = (yy**2 + xx**2) <= radius_px**2
    masks, levels = [], []
    nz, ny, nx = ctx.volume.shape
    for s in rolls:
        ctx.check_cancel()
        image = ctx.volume.slice(s.z)
        level = _can_level(image, s.frame, can_inner, wall_px)
        levels.append(level)
        cy, cx = s.frame.center_yx_px
        inside = ((np.arange(ny)[:, None] - cy) ** 2 + (np.arange(nx)[None, :] - cx) ** 2) < (can_inner - 2 * wall_px) ** 2
        # Only look where something is brighter than the can: skip the opening elsewhere.
        bright = (image > 1.1 * level) & inside
        mask = np.zeros_like(bright)
        if bright.any():
            labels, n = ndimage.label(ndimage.binary_dilation(bright, iterations=int(radius_px) + 2))
            for sl in ndimage.find_objects(labels):
                opened = ndimage.grey_opening(image[sl], footprint=disc)
                mask[sl] |= (opened > 1.1 * level) & inside[sl]
        masks.append(mask)
    volume_mask = np.stack(masks)
    # Fragments of one bright object (a tab whose brightness hovers about the limit breaks into
    # dozens) are judged as the whole they make: joined across gaps of ~100 µm in the plane.
    join = max(1, int(round(100.0 / px)))
    joined = ndimage.binary_dilation(volume_mask, structure=np.ones((1, 3, 3), bool), iterations=join)
    joined = ndimage.binary_dilation(joined, structure=np.ones((3, 1, 1), bool))  # and through slices
    groups, _ = ndimage.label(joined)
    strip_groups = {int(gl) for gl, gsl in enumerate(ndimage.find_objects(groups), start=1)
                    if gsl is not None and _is_strip(*[a + b.start for a, b in zip(np.nonzero(
                        (groups[gsl] == gl) & volume_mask[gsl]), gsl, strict=True)], px)}
    labels, n = ndimage.label(volume_mask)
    dz = g.spacing_um[0]
    findings = []
    strips = 0
    zs_all = np.array([s.z for s in rolls], float)
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        zi, yi, xi = np.nonzero(labels[sl] == lab)
        zi, yi, xi = zi + sl[0].start, yi + sl[1].start, xi + sl[2].start
        if int(groups[zi[0], yi[0], xi[0]]) in strip_groups:
            strips += 1
            continue
        # The opening shrinks a sphere's outline by partial volume; add back half a voxel.
        area_px = np.bincount(zi).max()
        eq_d_inplane = 2 * math.sqrt(area_px / math.pi) * px + px
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


# A tab strip (Ni on the anode, brighter than the steel can) is millimetres wide and tens of µm
# thick; metal debris is compact, or a flake well under this length.
STRIP_MIN_LENGTH_UM = 2000.0
STRIP_MIN_ASPECT = 6.0


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
