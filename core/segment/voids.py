"""Delamination voids found by the learned segmenter (``cellqc inspect --segmenter onnx``).

**Where** is the model's: every roll slice is unwrapped about the roll frame the geometry stage
measured, and the network gives, per polar sample, the probability of each class. Void samples
(void probability > 0.5) inside a cathode sheet are grouped into connected regions (through
slices, along the arc and in radius; the angle wraps). A sheet is the band of its nominal
thickness about its centre line, found as the classic detector finds it (the midpoint of the
collectors either side, which a void does not move); the seam, collector contacts and sheets
the geometry set aside (electrode ends, tab windows) are not looked into, as in the classic
detector. Regions of one sheet whose gaps along the arc and in height are at most
``merge_gap_um`` (recipe ``[rules.delamination]``, default :data:`MERGE_GAP_UM`) are one void:
the network can break one void into fragments.

**How much** is the image's: next to a void the separator is just as dark, and the network
labels it void too, so counting labelled samples overestimates a void by about half. The volume
integrates the intensity deficit against the sheet's expected profile across depth (the median
over angles and slices), as a fraction of the coating's contrast above the gas level of the
mandrel hole, over whole columns of the region's footprint — the classic detector's measure
(:mod:`core.detectors.delamination`), inside the model's region instead of a threshold on the
deficit. Lengths count columns where the deficit is at least half a voxel thick; a region whose
deficit is below ``min_volume_mm3`` is no void (a dark separator or an electrolyte gap the
network mistook). Winding, side and depth from the Al foil come from the sheet's centre line.
Thresholds are the recipe's (``[rules.delamination]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding
from core.detectors.delamination import SPEC as DELAMINATION
from core.detectors.delamination import judge_void
from core.detectors.numerics import (
    box_and_centroid,
    hole_level,
    label_periodic,
    polar_angle_deg,
    sheet_centre_lines,
)
from core.geometry.layers import near_layer_ends
from core.segment.model import LayerSegmenter, get_segmenter
from core.segment.slices import segment_roll_slice

NAME = "delamination"
VOID, CATHODE = 1, 4
# Fragments of one sheet closer than this along the arc and in height are one void (µm).
MERGE_GAP_UM = 200.0
# Degrees either side of the seam and the roll's outer end not looked into (as the classic detector).
SEAM_DEG = 4.0


@dataclass
class Sheets:
    """The cathode sheets of the roll slices on the geometry's angles."""

    t: np.ndarray  # geometry angles (radians, n_t)
    centres: np.ndarray  # (slices, windings, n_t) µm from the roll centre; NaN where unknown
    usable: np.ndarray  # (slices, windings, n_t): a centre, and not seam, contact or set aside
    nominal_um: float  # sheet thickness

    def angle_index(self, t: np.ndarray) -> np.ndarray:
        """Nearest geometry angle of angles ``t`` (radians)."""
        n = self.t.size
        return np.rint((np.asarray(t) - self.t[0]) / (2 * np.pi) * n).astype(int) % n


def sheet_geometry(ctx: DetectorContext, rolls) -> Sheets:
    """Sheet centre lines and where to look, as the classic delamination detector has them."""
    g = ctx.geometry
    n_k = g.windings
    t = rolls[0].t_rad
    n_t = t.size
    thickness = g.stacked("sheet_thickness_um")[:, :n_k]
    nominal = (float(np.nanmedian(thickness)) if np.isfinite(thickness).any()
               else float(ctx.cell.get("cathode_sheet_um", 135.0)))
    nominal = float(ctx.reference.get("cathode_sheet_thickness_median_um", nominal))
    centres = np.full((len(rolls), n_k, n_t), np.nan, np.float32)
    usable = np.zeros((len(rolls), n_k, n_t), bool)
    for i, s in enumerate(rolls):
        if s.sheet_inner_um.ndim != 2 or s.sheet_inner_um.shape[0] == 0:
            continue
        k_here = min(n_k, s.sheet_inner_um.shape[0])
        centres[i, :k_here] = sheet_centre_lines(s, n_k, t)
        use = np.isfinite(centres[i])
        use &= ~near_layer_ends(s, SEAM_DEG, max(n_k, s.windings))[:n_k]
        if s.sheet_cu_contact.size:
            touching = ndimage.binary_dilation(s.sheet_cu_contact[:n_k], structure=np.ones((1, 9), bool))
            use[: touching.shape[0]] &= ~touching
        if s.sheet_excluded.size:
            m = min(n_k, s.sheet_excluded.shape[0])
            use[:m] &= ~s.sheet_excluded[:m]
        usable[i] = use
    return Sheets(t=t, centres=centres, usable=usable, nominal_um=nominal)


def sheet_index(sheets: Sheets, i: int, t: np.ndarray, rho_um: np.ndarray) -> np.ndarray:
    """Which cathode sheet each polar sample (rho, t) of roll slice ``i`` lies in (-1: none,
    or a place not looked into)."""
    n_rho = rho_um.size
    out = np.full((n_rho, t.size), -1, np.int16)
    j = sheets.angle_index(t)
    c = sheets.centres[i][:, j]
    use = sheets.usable[i][:, j]
    half = sheets.nominal_um / 2
    d_rho = float(rho_um[1] - rho_um[0])
    r = np.arange(n_rho)[:, None]
    for k in range(c.shape[0]):
        if not use[k].any():
            continue
        lo = np.ceil((np.where(use[k], c[k], np.nan) - half - rho_um[0]) / d_rho)
        hi = np.floor((c[k] + half - rho_um[0]) / d_rho)
        out[(r >= lo[None, :]) & (r <= hi[None, :])] = k
    return out


def void_probability(ctx: DetectorContext, segmenter: LayerSegmenter | None = None):
    """Per roll slice, the void and cathode probabilities on the polar grid (angle last).

    Returns (slices, t, rho_um, p_void (z, rho, t) float32, p_cathode (z, rho, t) float32);
    radii beyond the roll (plus half a pitch) are not segmented.
    """
    g = ctx.geometry
    seg = segmenter or get_segmenter()
    rolls = [s for s in g.slices if s.is_roll]
    pitch = g.pitch_um if math.isfinite(g.pitch_um) else 325.0
    r_outer = max(s.roll_outer_radius_um for s in rolls)
    r_max = (r_outer if math.isfinite(r_outer) else g.can_stat("inner_radius_um")) + 0.5 * pitch
    pv, pc = [], []
    t = rho_um = None
    for i, s in enumerate(rolls):
        ctx.check_cancel()
        ps = segment_roll_slice(ctx.volume, g, s.z, seg, r_max_um=r_max)
        t, rho_um = ps.t, ps.rho_um
        pv.append(ps.probabilities[VOID].T.astype(np.float32))
        pc.append(ps.probabilities[CATHODE].T.astype(np.float32))
        ctx.report(0.8 * (i + 1) / len(rolls), f"delamination (model): slice {s.z}")
    return rolls, t, rho_um, np.stack(pv), np.stack(pc)


@dataclass
class _Profiles:
    """Intensity across sheet k along its normal, at every geometry angle of every roll slice."""

    depth: np.ndarray  # µm from the sheet's centre (n_d)
    values: dict[int, np.ndarray]  # winding → (slices, n_t, n_d) float16
    dark: float  # gas level (mandrel hole)


def _sheet_profiles(ctx: DetectorContext, rolls, sheets: Sheets, windings: list[int]) -> _Profiles:
    """Sample the image along the normals of the given sheets (as the classic detector does)."""
    px = ctx.geometry.pixel_um
    step_um = 0.5 * px
    reach_um = sheets.nominal_um / 2 + 2.5 * px
    depth = np.arange(-reach_um, reach_um + step_um / 2, step_um)
    t = sheets.t
    # float16 as in the classic detector: a long volume has many slices.
    values = {k: np.full((len(rolls), t.size, depth.size), np.nan, np.float16) for k in windings}
    darks = []
    for i, s in enumerate(rolls):
        ctx.check_cancel()
        image = ctx.volume.slice(s.z)
        darks.append(hole_level(image, s.frame, s.roll_inner_radius_um / px))
        cy, cx = s.frame.center_yx_px
        dir_y, dir_x = s.frame.to_yx(t, np.ones_like(t))
        dir_y, dir_x = (dir_y - cy).astype(np.float32), (dir_x - cx).astype(np.float32)
        c = sheets.centres[i, windings]  # (n_w, n_t)
        rho = ((c[:, :, None] + depth[None, None, :]) / px).astype(np.float32)
        y = cy + rho * dir_y[None, :, None]
        x = cx + rho * dir_x[None, :, None]
        ok = np.isfinite(rho)
        sampled = ndimage.map_coordinates(image, [np.where(ok, y, 0), np.where(ok, x, 0)], order=1, mode="nearest")
        sampled = np.where(ok, sampled, np.nan)
        for n, k in enumerate(windings):
            values[k][i] = sampled[n]
        ctx.report(0.8 + 0.1 * (i + 1) / len(rolls), f"delamination (model): profiles, slice {s.z}")
    finite = [d for d in darks if math.isfinite(d)]
    if finite:
        dark = float(np.median(finite))
    else:
        dark = float(np.nanpercentile(np.concatenate([v[:, ::8].ravel() for v in values.values()]), 1))
    return _Profiles(depth=depth, values=values, dark=dark)


@dataclass
class ModelVoid:
    """One void of the model: its samples on the polar grid, its sheet, and its footprint on
    the sheet (slices × angles: the fragments and the gaps between them)."""

    winding: int
    zi: np.ndarray
    ri: np.ndarray
    ti: np.ndarray
    footprint: np.ndarray  # (slices, n_t) bool


def _closing(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Binary closing of a (slices, angles) mask by a rectangle: the angle wraps, the slices end
    (nothing grows beyond the first and last slice)."""
    pad = size[0]
    m = np.pad(mask.astype(np.uint8), ((pad, pad), (0, 0)))
    m = ndimage.maximum_filter(m, size=size, mode=("constant", "wrap"))
    m = ndimage.minimum_filter(m, size=size, mode=("constant", "wrap"))
    return m[pad:pad + mask.shape[0]] > 0


def model_regions(ctx: DetectorContext, sheets: Sheets, t: np.ndarray, rho_um: np.ndarray,
                  p_void: np.ndarray) -> list[ModelVoid]:
    """Void regions of the model inside the sheets, fragments of one sheet merged."""
    g = ctx.geometry
    sheet = np.stack([sheet_index(sheets, i, t, rho_um) for i in range(p_void.shape[0])])
    mask = (p_void > 0.5) & (sheet >= 0)
    labels, n = label_periodic(mask, np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    zi, ri, ti = np.nonzero(labels)
    lab = labels[zi, ri, ti]
    k_of = sheet[zi, ri, ti]
    # Each region's sheet: where most of its samples are (regions do not cross bands).
    counts = np.zeros((n + 1, int(k_of.max()) + 1), np.int64)
    np.add.at(counts, (lab, k_of), 1)
    region_k = counts.argmax(axis=1)
    first = np.zeros(n + 1, np.int64)
    u, i0 = np.unique(lab, return_index=True)
    first[u] = i0
    gap_um = float(ctx.rules.get("merge_gap_um", MERGE_GAP_UM))
    dz_um = g.spacing_um[0]
    d_t = 2 * np.pi / t.size
    group = np.zeros(n + 1, np.int64)  # region → merged void
    n_groups = 0
    footprints: list[np.ndarray] = []
    for k in np.unique(region_k[1:]):
        regions = np.nonzero(region_k == k)[0]
        regions = regions[regions > 0]
        sel = np.isin(lab, regions)
        foot = np.zeros((p_void.shape[0], t.size), bool)  # (z, angle) footprint on the sheet
        foot[zi[sel], ti[sel]] = True
        r_k = float(np.nanmedian(sheets.centres[:, k])) if np.isfinite(sheets.centres[:, k]).any() else 5000.0
        half_t = int(math.ceil(gap_um / 2 / max(r_k * d_t, 1e-6)))
        half_z = int(math.ceil(gap_um / 2 / dz_um))
        size = (2 * half_z + 1, 2 * half_t + 1)
        grown = ndimage.maximum_filter(foot.astype(np.uint8), size=size, mode=("constant", "wrap"))
        merged, n_m = label_periodic(grown > 0, np.ones((3, 3), bool))
        # The fragments and the gaps between them along the arc and in height (the void goes on
        # there, unseen): closings along each axis alone, which do not fill a void's corners.
        closed = foot | _closing(foot, (1, size[1])) | _closing(foot, (size[0], 1))
        a = first[regions]  # one sample of each region: all of it lies in one merged patch
        group[regions] = n_groups + merged[zi[a], ti[a]]
        footprints += [closed & (merged == m) for m in range(1, n_m + 1)]
        n_groups += n_m
    out = []
    gl = group[lab]
    order = np.argsort(gl, kind="stable")
    bounds = np.searchsorted(gl[order], np.arange(1, n_groups + 2))
    for m in range(n_groups):
        idx = order[bounds[m]:bounds[m + 1]]
        if idx.size:
            out.append(ModelVoid(int(region_k[lab[idx[0]]]), zi[idx], ri[idx], ti[idx], footprints[m]))
    return out


def find_voids(ctx: DetectorContext, rolls, t: np.ndarray, rho_um: np.ndarray, p_void: np.ndarray,
               source: str = "onnx") -> DetectorOutput:
    """Findings from the model's void probabilities (see the module docstring)."""
    g = ctx.geometry
    out = DetectorOutput()
    min_volume = float(DELAMINATION.rules_for(ctx.rules)["min_volume_mm3"])
    al_um = float(ctx.cell.get("al_foil_um", 15.0))
    px = g.pixel_um
    dz_um = g.spacing_um[0]
    sheets = sheet_geometry(ctx, rolls)
    voids = model_regions(ctx, sheets, t, rho_um, p_void)
    findings: list[Finding] = []
    total = 0.0
    if voids:
        prof = _sheet_profiles(ctx, rolls, sheets, sorted({v.winding for v in voids}))
    zs_all = np.array([s.z for s in rolls], float)
    own = None  # one chunk of a volume (core.chunked): measure the part in its own slices
    if "core_first_slice" in ctx.reference:
        own = (zs_all >= ctx.reference["core_first_slice"]) & (zs_all <= ctx.reference["core_last_slice"])
    n_geo = sheets.t.size
    d_geo = 2 * np.pi / n_geo
    seg_of_geo = np.rint((sheets.t - t[0]) / (2 * np.pi) * t.size).astype(int) % t.size
    coating = (sheets.nominal_um - al_um) / 2
    expected: dict[int, tuple] = {}
    for v in voids:
        ctx.check_cancel()
        k = v.winding
        if own is not None and not own[v.zi].any():
            continue
        if k not in expected:
            prof_k = prof.values[k].astype(np.float32)
            if not np.isfinite(prof_k).any():
                continue
            exp_k = np.nanmedian(prof_k, axis=(0, 1))
            interior = np.abs(prof.depth) <= sheets.nominal_um / 2 - max(0.75 * px, 10.0)
            peak = float(np.nanmax(exp_k[interior])) if np.isfinite(exp_k[interior]).any() else float(np.nanmax(exp_k))
            contrast = peak - prof.dark
            # The share of the coating missing, smoothed a little as in the classic detector:
            # noise alone makes single samples half dark.
            frac = (exp_k[None, None, :] - prof_k) / np.maximum(exp_k - prof.dark, 0.3 * contrast)[None, None, :]
            frac = ndimage.gaussian_filter(np.where(np.isfinite(frac), frac, 0.0), (0, 0.7, 0.7),
                                           mode=("nearest", "wrap", "nearest"))
            expected[k] = (exp_k, contrast, frac)
        exp_k, contrast, frac_s = expected[k]
        if not contrast > 0 or not np.isfinite(exp_k).any():
            continue
        # The region's footprint on the sheet (slices × geometry angles), widened by two
        # samples along the arc as the classic detector does (the blur of a thin void).
        foot = v.footprint[:, seg_of_geo]
        foot = ndimage.binary_dilation(foot, structure=np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], bool),
                                       iterations=2)
        foot &= np.isfinite(sheets.centres[:, k])
        if own is not None:
            foot &= own[:, None]
        cz, ct = np.nonzero(foot)
        if cz.size == 0:
            continue
        cols = prof.values[k][cz, ct].astype(np.float32)  # (n_cols, n_d)
        deficit = np.where(np.isfinite(cols), exp_k[None, :] - cols, 0.0)
        column_um3 = sheets.centres[cz, k, ct] * d_geo * (0.5 * px) * dz_um  # arc × depth step × slice
        volume_mm3 = float((deficit.sum(axis=1) / contrast * column_um3).sum() * 1e-9)
        if volume_mm3 < min_volume:
            continue
        # Depth of the model's samples from the sheet's centre (the Al foil).
        j = sheets.angle_index(t[v.ti])
        depth = rho_um[v.ri] - sheets.centres[v.zi, k, j]
        # A void opens inside the coating and reaches its inner half: there the image must show
        # a sample with more than half its coating missing. A coating thinned at its surface
        # only darkens the outer rim (the thickness detector's business), and a sheet beside a
        # deflected collector sits off the collectors' midpoint, dark on one rim only.
        inner_half = np.abs(prof.depth) <= al_um / 2 + 0.5 * coating
        if not (frac_s[cz, ct][:, inner_half] > 0.5).any():
            continue
        # Net missing coating per column: a sheet that only sits off the centre line (beside a
        # deflected collector) is darker on one side and brighter on the other; a void is not.
        col_thick = np.clip(deficit.sum(axis=1) / contrast, 0, None) * 0.5 * px
        solid = col_thick >= 0.5 * px
        if not solid.any():
            solid = col_thick >= col_thick.max()
        r_cols = float(np.nanmedian(sheets.centres[cz, k, ct]))
        arc_um = float(len(np.unique(ct[solid])) * d_geo * r_cols)
        height = float((zs_all[cz[solid]].max() - zs_all[cz[solid]].min() + 1) * dz_um)
        length = max(arc_um, height)
        severity, rule = judge_void(volume_mm3, length, ctx.rules)
        w = p_void[v.zi, v.ri, v.ti]
        zs = zs_all[v.zi]
        ys = np.empty(v.zi.size)
        xs = np.empty(v.zi.size)
        for z in np.unique(v.zi):
            sel = v.zi == z
            ys[sel], xs[sel] = rolls[z].frame.to_yx(t[v.ti[sel]], rho_um[v.ri[sel]] / px)
        centroid, box = box_and_centroid(zs, ys, xs, w)
        side = "outer" if float(np.average(depth, weights=w)) > 0 else "inner"
        depth_from_al = max(0.0, float(np.min(np.abs(depth))) - al_um / 2)
        thickness = float(col_thick.max())
        total += volume_mm3
        findings.append(Finding(
            detector=NAME, severity=severity, centroid_zyx_px=centroid, bbox_zyx_px=box, value=volume_mm3,
            unit="mm³", winding=k, angle_deg=polar_angle_deg(g, *centroid), rule=rule,
            message=(f"void in the {side} cathode coating of winding {k}: {volume_mm3:.4f} mm³, "
                     f"{arc_um:.0f} µm × {height:.0f} µm × {thickness:.0f} µm (model)"),
            extra={"arc_length_um": arc_um, "height_um": height, "thickness_um": thickness,
                   "side": side, "depth_from_al_um": depth_from_al, "segmenter": source},
        ))
    findings.sort(key=lambda f: -f.value)
    out.findings = findings
    out.metrics.update(void_count=len(findings), void_total_volume_mm3=total,
                       void_max_volume_mm3=max((f.value for f in findings), default=None))
    return out


def detect(ctx: DetectorContext) -> DetectorOutput:
    """The model-based delamination detector; see the module docstring."""
    rolls = [s for s in ctx.geometry.slices if s.is_roll]
    if not rolls:
        out = DetectorOutput()
        out.metrics.update(void_count=0, void_total_volume_mm3=0.0, void_max_volume_mm3=None)
        return out
    rolls, t, rho_um, p_void, p_cathode = void_probability(ctx)
    del p_cathode
    out = find_voids(ctx, rolls, t, rho_um, p_void)
    ctx.report(1.0, "delamination (model): done")
    return out
