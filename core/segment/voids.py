"""Delamination voids found by the learned segmenter (``cellqc inspect --segmenter onnx``).

Every roll slice is unwrapped about the roll frame the geometry stage measured, and the
network gives, per polar sample, the probability of each class. A void is a connected region
(through slices, along the arc and in radius; the angle wraps) where "electrolyte/void" is the
likeliest class, next to cathode sheet and within the roll: the gap between the roll and the can, the mandrel
hole and a thinned coating (which the network labels separator) are not voids. Its volume is
the sum of the void probability over the region (the network was trained on partial-volume
fractions, so the probabilities integrate to a volume) times each sample's physical volume.
The winding, side and depth from the Al foil come from the classic layer tracking (Cu radii and
cathode sheet bounds) at the void's angle. Thresholds are the recipe's (``[rules.delamination]``).
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
)
from core.geometry.layers import near_layer_ends
from core.segment.model import LayerSegmenter, get_segmenter
from core.segment.slices import segment_roll_slice

NAME = "delamination"
VOID, CATHODE = 1, 4


def label_periodic(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components with the last axis periodic (the angle wraps)."""
    labels, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return labels, 0
    first, last = labels[..., 0], labels[..., -1]
    both = (first > 0) & (last > 0)
    if both.any():
        parent = np.arange(n + 1)

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in zip(first[both], last[both], strict=True):
            ra, rb = find(int(a)), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        labels = np.array([find(i) for i in range(n + 1)])[labels]
        uniq = np.unique(labels)
        remap = np.zeros(int(uniq.max()) + 1, labels.dtype)
        remap[uniq] = np.arange(uniq.size)
        labels = remap[labels]
    return labels, int(labels.max())


def sheet_bands(s, t: np.ndarray, rho_um: np.ndarray, half_um: float,
                window_deg: float = 61.0) -> tuple[np.ndarray, np.ndarray]:
    """Which cathode sheet each polar sample of slice ``s`` lies in (-1: none), and the sheets'
    centre lines (windings × angles of ``t``, µm).

    The stack is symmetric about the cathode sheet (Cu | anode | separator | sheet | separator
    | anode | Cu), so sheet k is centred midway between collectors k and k + 1 — collectors a
    void does not move. Each collector's path is a running median over ``window_deg`` (a
    deflected stretch is shorter) and is not used near the seam or the roll's outer end,
    where the ray index of every layer changes.
    """
    n_rho, n_t = rho_um.size, t.size
    labels = np.full((n_rho, n_t), -1, np.int16)
    cu = np.asarray(s.cu_radius_um, float)
    if cu.ndim != 2 or cu.shape[0] == 0 or s.t_rad.size == 0:
        return labels, np.full((0, n_t), np.nan)
    n_geo = s.t_rad.size
    win = max(3, int(round(window_deg / 360.0 * n_geo)) | 1)
    smooth = np.full_like(cu, np.nan)
    idx = np.arange(n_geo)
    for k in range(cu.shape[0]):
        row = cu[k]
        ok = np.isfinite(row)
        if ok.sum() < n_geo // 4:
            continue
        filled = np.interp(idx, idx[ok], row[ok], period=n_geo)
        smooth[k] = ndimage.median_filter(filled, size=win, mode="wrap")
    pitch = s.pitch_um if math.isfinite(s.pitch_um) else float(np.nanmedian(np.diff(smooth, axis=0)))
    nxt = np.vstack([smooth[1:], smooth[-1:] + pitch])
    mid_geo = 0.5 * (smooth + nxt)
    ends = near_layer_ends(s, window_deg / 2)
    mid_geo[:, ends] = np.nan
    # Onto the segmenter's angles (nearest geometry angle).
    j = np.rint((t - s.t_rad[0]) / (2 * np.pi) * n_geo).astype(int) % n_geo
    mid = mid_geo[:, j]
    d_rho = float(rho_um[1] - rho_um[0])
    for k in range(mid.shape[0]):
        ok = np.isfinite(mid[k])
        if not ok.any():
            continue
        lo = np.ceil((mid[k] - half_um - rho_um[0]) / d_rho)
        hi = np.floor((mid[k] + half_um - rho_um[0]) / d_rho)
        r = np.arange(n_rho)[:, None]
        sel = ok[None, :] & (r >= lo[None, :]) & (r <= hi[None, :])
        labels[sel] = k
    return labels, mid


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


def detect(ctx: DetectorContext) -> DetectorOutput:
    """The model-based delamination detector; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    rolls = [s for s in g.slices if s.is_roll]
    if not rolls:
        out.metrics.update(void_count=0, void_total_volume_mm3=0.0, void_max_volume_mm3=None)
        return out
    fail_volume = float(ctx.rules.get("fail_volume_mm3", 0.001))
    fail_length = float(ctx.rules.get("fail_length_um", 300.0))
    review_volume = float(ctx.rules.get("review_volume_mm3", 0.0002))
    min_volume = float(ctx.rules.get("min_volume_mm3", 0.00005))
    al_um = float(ctx.cell.get("al_foil_um", 15.0))
    px = g.pixel_um
    dz_um = g.spacing_um[0]
    rolls, t, rho_um, p_void, p_cath = void_probability(ctx)
    n_t = t.size
    d_rho = float(rho_um[1] - rho_um[0])
    d_t = 2 * np.pi / n_t
    # Physical volume of one sample (µm³): arc × radial step × slice spacing, the ellipse's
    # area element (1 - e²) included.
    sample_um3 = (rho_um * d_t * d_rho * dz_um * (1 - g.ovality**2))[None, :, None]
    nominal = float(ctx.cell.get("cathode_sheet_um", 135.0))
    thickness = g.stacked("sheet_thickness_um")
    if np.isfinite(thickness).any():
        nominal = float(np.nanmedian(thickness))
    sheet = np.full(p_void.shape, -1, np.int16)  # winding of the cathode sheet a sample is in
    mids = []
    for i, s in enumerate(rolls):
        sheet[i], mid = sheet_bands(s, t, rho_um, nominal / 2)
        mids.append(mid)
    in_sheet = sheet >= 0
    mask = (p_void > 0.5) & in_sheet
    structure = np.ones((3, 3, 3), bool)
    labels, n = label_periodic(mask, structure)
    zs_all = np.array([s.z for s in rolls], float)
    grow = np.zeros((3, 3, 3), bool)
    grow[1, 1, :] = grow[1, :, 1] = grow[:, 1, 1] = True
    findings: list[Finding] = []
    total = 0.0
    for lab in range(1, n + 1):
        region = labels == lab
        zi, ri, ti = np.nonzero(region)
        # The void's probability over the region and its rim, inside the sheet only: next to
        # a void the separator is just as dark, and there the network cannot tell them apart.
        grown = ndimage.binary_dilation(region, structure=grow) & in_sheet
        gz, gr, gt = np.nonzero(grown)
        volume_mm3 = float((p_void[gz, gr, gt] * sample_um3[0, gr, 0]).sum() * 1e-9)
        if volume_mm3 < min_volume:
            continue
        w = p_void[zi, ri, ti]
        zs = zs_all[zi]
        ys = np.empty(zi.size)
        xs = np.empty(zi.size)
        for k in np.unique(zi):
            sel = zi == k
            ys[sel], xs[sel] = rolls[k].frame.to_yx(t[ti[sel]], rho_um[ri[sel]] / px)
        centroid, box = box_and_centroid(zs, ys, xs, w)
        winding = int(np.bincount(sheet[zi, ri, ti], weights=w).argmax())
        mid = np.array([mids[a][winding, b] for a, b in zip(zi, ti, strict=True)])
        rho_c = float(np.average(rho_um[ri], weights=w))
        side = "outer" if float(np.average(rho_um[ri] - mid, weights=w)) > 0 else "inner"
        depth_from_al = max(0.0, float(np.min(np.abs(rho_um[ri] - mid))) - al_um / 2)
        cols = np.zeros((len(rolls), n_t))
        np.add.at(cols, (gz, gt), p_void[gz, gr, gt] * d_rho)
        arc_um = len(np.unique(ti)) * d_t * rho_c
        height = (zs.max() - zs.min() + 1) * dz_um
        length = max(arc_um, height)
        if volume_mm3 >= fail_volume or length >= fail_length:
            severity = "fail"
            rule = (f"void {volume_mm3:.4f} mm³ ≥ {fail_volume:g} mm³" if volume_mm3 >= fail_volume
                    else f"void {length:.0f} µm long ≥ {fail_length:.0f} µm")
        elif volume_mm3 >= review_volume:
            severity, rule = "review", f"void {volume_mm3:.4f} mm³ ≥ {review_volume:g} mm³"
        else:
            severity, rule = "info", ""
        total += volume_mm3
        where = f"winding {winding}" if winding is not None else "the roll"
        findings.append(Finding(
            detector=NAME, severity=severity, centroid_zyx_px=centroid, bbox_zyx_px=box, value=volume_mm3,
            unit="mm³", winding=winding, angle_deg=polar_angle_deg(g, *centroid), rule=rule,
            message=(f"void in the {side} cathode coating of {where}: {volume_mm3:.4f} mm³, "
                     f"{arc_um:.0f} µm × {height:.0f} µm × {float(cols.max()):.0f} µm (model)"),
            extra={"arc_length_um": arc_um, "height_um": height, "thickness_um": float(cols.max()),
                   "side": side, "depth_from_al_um": depth_from_al, "segmenter": "onnx"},
        ))
    findings.sort(key=lambda f: -f.value)
    out.findings = findings
    out.metrics.update(void_count=len(findings), void_total_volume_mm3=total,
                       void_max_volume_mm3=max((f.value for f in findings), default=None))
    ctx.report(1.0, "delamination (model): done")
    return out
