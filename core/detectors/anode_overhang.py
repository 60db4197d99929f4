"""Anode overhang at the ends of the jelly roll.

The anode sheet of a wound cell is made wider than the cathode so that every cathode
edge faces anode (otherwise lithium plates at the edge). Near a roll end the CT slices
therefore show, walking out of the roll along the axis: full windings, then windings without
the bright cathode sheet (only anode coatings, Cu foil and separator: the overhang), then
nothing (gas under the cap).

Method. The layer positions (cathode sheet edges, per winding and angle) are taken from the
roll slices next to the end (``geometry.slices``, ``is_roll``). In every slice from there out
to the volume's edge, the mean intensity of each cathode band and of each anode band (the
space between two cathode sheets: anode coatings + Cu foil) is sampled at the same positions
about that slice's own axis centre, averaged in angular bins per winding. Along z each
(winding, bin) profile falls from its interior level to the level beyond the roll; the sheet's
end is the half-level crossing, interpolated between slice centres (exact for a sheet edge
filling a slice partially). The overhang is ``(cathode end − anode end)`` in µm, measured
outwards: positive when the anode sticks out beyond the cathode. A negative overhang (the
cathode reaching beyond the anode) is FAIL by default.

Resolution: the end positions are interpolated to a fraction of a slice on clean edges; with
real edges (uneven, tilted, tabs) a slice spacing is the honest uncertainty.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register
from core.geometry.layers import near_layer_ends

NAME = "anode_overhang"
_CATHODE_FRACTIONS = np.array([0.25, 0.4, 0.5, 0.6, 0.75])
_ANODE_FRACTIONS = np.array([0.2, 0.35, 0.5, 0.65, 0.8])


def _reference(rolls: list, n_ref: int) -> dict[str, np.ndarray]:
    """Median layer positions over the reference slices (µm), (windings, angles)."""
    k = min(s.sheet_inner_um.shape[0] for s in rolls[:n_ref])
    inner = np.nanmedian(np.stack([s.sheet_inner_um[:k] for s in rolls[:n_ref]]), axis=0)
    outer = np.nanmedian(np.stack([s.sheet_outer_um[:k] for s in rolls[:n_ref]]), axis=0)
    return {"inner": inner, "outer": outer}


def _band_profiles(ctx: DetectorContext, zs: list[int], t: np.ndarray, lo_um: np.ndarray, hi_um: np.ndarray,
                   fractions: np.ndarray, bin_of_t: np.ndarray, n_bins: int, valid: np.ndarray) -> np.ndarray:
    """Mean intensity of a band (lo..hi, µm) per slice, winding and angular bin: (z, k, bins)."""
    g = ctx.geometry
    rho_um = lo_um[..., None] + (hi_um - lo_um)[..., None] * fractions  # (k, t, p)
    ok = valid & np.isfinite(lo_um) & np.isfinite(hi_um) & (hi_um > lo_um)
    rho_px = np.where(ok[..., None], rho_um, 0.0) / g.pixel_um
    n_k = lo_um.shape[0]
    key = (np.arange(n_k)[:, None] * n_bins + bin_of_t[None, :])[ok]
    count = np.bincount(key, minlength=n_k * n_bins).astype(float)
    out = np.full((len(zs), n_k, n_bins), np.nan)
    tt = np.broadcast_to(t[None, :, None], rho_px.shape)
    for i, z in enumerate(zs):
        ctx.check_cancel()
        image = np.asarray(ctx.volume.slice(z), dtype=np.float32)
        y, x = g.frame_at(float(z)).to_yx(tt, rho_px)
        vals = ndimage.map_coordinates(image, [y, x], order=1, mode="nearest").mean(axis=-1)
        total = np.bincount(key, weights=vals[ok], minlength=n_k * n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(count >= 3, total / count, np.nan).reshape(n_k, n_bins)
    return out


def _crossings(profiles: np.ndarray, n_ref: int) -> np.ndarray:
    """Half-level crossing (index into the profile, fractional) of each column, walking out.

    ``profiles`` (z, ...) starts with ``n_ref`` interior slices and runs outwards.
    """
    interior = np.nanmedian(profiles[:n_ref], axis=0)
    outside = np.nanpercentile(profiles[n_ref:], 10, axis=0) if profiles.shape[0] > n_ref else np.full_like(interior, np.nan)
    contrast = interior - outside
    typical = np.nanmedian(contrast) if np.isfinite(contrast).any() else math.nan
    half = 0.5 * (interior + outside)
    below = profiles < half[None]
    n_z = profiles.shape[0]
    out = np.full(interior.shape, np.nan)
    # First slice below the half level that is followed by another one below (or the edge).
    both = below.copy()
    both[:-1] &= below[1:]
    both[: n_ref] = False
    has = both.any(axis=0)
    first = np.argmax(both, axis=0)
    idx = np.nonzero(has & (contrast > 0.3 * typical))
    for pos in zip(*idx, strict=True):
        j = int(first[pos])
        a, b = profiles[(j - 1, *pos)], profiles[(j, *pos)]
        if not (np.isfinite(a) and np.isfinite(b)) or j < 1:
            continue
        frac = (a - half[pos]) / (a - b) if a != b else 0.5
        out[pos] = (j - 1) + float(np.clip(frac, 0.0, 1.0))
    del n_z
    return out


def measure_roll_end(ctx: DetectorContext, side: str, bin_deg: float = 10.0, n_ref: int = 3) -> dict | None:
    """Anode and cathode ends per (winding, angular bin) at one end of the roll.

    Returns None when the volume holds no slices beyond that end of the roll.
    """
    g = ctx.geometry
    rolls = [s for s in g.slices if s.is_roll]
    nz = g.shape[0]
    if len(rolls) < n_ref + 1:
        return None
    if side == "top":
        outward, edge = -1, rolls[0].z
        ref = rolls[1:n_ref + 1]  # one slice in from the last roll slice
        if edge == 0:
            return None
        zs = [s.z for s in reversed(ref)] + list(range(ref[0].z - 1, -1, -1))
    else:
        outward, edge = 1, rolls[-1].z
        ref = rolls[-n_ref - 1:-1][::-1]
        if edge == nz - 1:
            return None
        zs = [s.z for s in reversed(ref)] + list(range(ref[0].z + 1, nz))
    t = ref[0].t_rad
    n_t = t.size
    n_bins = max(int(round(360.0 / bin_deg)), 4)
    bin_of_t = np.minimum((t / (2 * np.pi) * n_bins).astype(int), n_bins - 1)
    layers = _reference(ref, len(ref))
    k_use = min(int(np.median([s.windings for s in ref])), layers["inner"].shape[0])
    inner, outer = layers["inner"][:k_use], layers["outer"][:k_use]
    valid = np.ones((k_use, n_t), bool)
    for s in ref:
        valid[:, near_layer_ends(s, 6.0)] = False
    # Cathode band k: the sheet; anode band k: between sheet k-1's outer and sheet k's inner edge.
    cath = _band_profiles(ctx, zs, t, inner, outer, _CATHODE_FRACTIONS, bin_of_t, n_bins, valid)
    an_lo = np.vstack([np.full((1, n_t), np.nan), outer[:-1]])
    anode = _band_profiles(ctx, zs, t, an_lo, inner, _ANODE_FRACTIONS, bin_of_t, n_bins, valid)
    ctx.check_cancel()
    end_c = _crossings(cath, len(ref))
    end_a = _crossings(anode, len(ref))
    z_of = np.asarray(zs, float)

    def to_z(idx: np.ndarray) -> np.ndarray:
        i0 = np.clip(np.floor(np.nan_to_num(idx)).astype(int), 0, len(zs) - 1)
        i1 = np.clip(i0 + 1, 0, len(zs) - 1)
        f = np.nan_to_num(idx) - i0
        return np.where(np.isfinite(idx), z_of[i0] + f * (z_of[i1] - z_of[i0]), np.nan)

    zc, za = to_z(end_c), to_z(end_a)
    # The outermost winding (it faces the can, a single anode layer) and the innermost anode
    # band (no cathode below it) are left out.
    zc[0] = np.nan
    za[0] = np.nan
    zc[-1] = np.nan
    za[-1] = np.nan
    overhang = outward * (za - zc) * g.spacing_um[0]
    centers = (np.arange(n_bins) + 0.5) * 2 * np.pi / n_bins
    rho_c = np.full((k_use, n_bins), np.nan)
    mid = 0.5 * (inner + outer)
    for b in range(n_bins):
        sel = bin_of_t == b
        chunk = mid[:, sel]
        has = np.isfinite(chunk).any(axis=1)
        rho_c[has, b] = np.nanmedian(chunk[has], axis=1)
    return {"side": side, "outward": outward, "overhang_um": overhang, "cathode_end_z": zc, "anode_end_z": za,
            "bin_t": centers, "rho_um": rho_c, "bin_deg": 360.0 / n_bins, "ref_z": [s.z for s in ref],
            "profiles_z": zs}


@register(NAME)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Measure the anode overhang at the roll ends in the volume; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    fail_min = float(ctx.rules.get("fail_min_um", 0.0))
    review_min = float(ctx.rules.get("review_min_um", fail_min))
    min_bins = int(ctx.rules.get("min_bins", 2))
    bin_deg = float(ctx.rules.get("bin_deg", 10.0))
    values, ends = [], []
    for side in ("top", "bottom"):
        ctx.report(0.1 if side == "top" else 0.5, f"anode overhang: {side} end")
        res = measure_roll_end(ctx, side, bin_deg)
        if res is None:
            continue
        ov = res["overhang_um"]
        if not np.isfinite(ov).any():
            continue
        ends.append(res)
        values.append(ov[np.isfinite(ov)])
        out.maps[f"anode_overhang_{side}_um"] = ov.astype(np.float32)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out.maps[f"anode_overhang_{side}_by_angle_um"] = np.nanmedian(ov, axis=0).astype(np.float32)
        out.findings.extend(_findings(g, res, fail_min, review_min, min_bins))
    if not values:
        out.metrics.update(anode_overhang_min_um=None, anode_overhang_mean_um=None, anode_overhang_count=0)
        return out
    allv = np.concatenate(values)
    out.metrics.update(
        anode_overhang_min_um=float(allv.min()),
        anode_overhang_p05_um=float(np.percentile(allv, 5)),
        anode_overhang_mean_um=float(allv.mean()),
        anode_overhang_median_um=float(np.median(allv)),
        anode_overhang_p95_um=float(np.percentile(allv, 95)),
        anode_overhang_std_um=float(allv.std()),
        anode_overhang_samples=int(allv.size),
        anode_overhang_count=len(out.findings),
        anode_overhang_z_resolution_um=float(g.spacing_um[0]),
    )
    for res in ends:
        out.metrics[f"anode_end_{res['side']}_z_px"] = float(np.nanmedian(res["anode_end_z"]))
        out.metrics[f"cathode_end_{res['side']}_z_px"] = float(np.nanmedian(res["cathode_end_z"]))
    return out


def _findings(g, res: dict, fail_min: float, review_min: float, min_bins: int) -> list[Finding]:
    ov = res["overhang_um"]
    low = np.isfinite(ov) & (ov < max(review_min, fail_min))
    if not low.any():
        return []
    labels, n = ndimage.label(low, structure=np.ones((3, 3), bool))
    # The angle wraps: merge labels across the first and last bin.
    first, last = labels[:, 0], labels[:, -1]
    for a, b in zip(first, last, strict=True):
        if a and b and a != b:
            labels[labels == b] = a
    found = []
    for lab in np.unique(labels[labels > 0]):
        kk, bb = np.nonzero(labels == lab)
        if kk.size < min_bins:
            continue
        vals = ov[kk, bb]
        value = float(np.median(vals))
        if value >= review_min and value >= fail_min:
            continue
        sev = "fail" if value < fail_min else "review"
        zc = res["cathode_end_z"][kk, bb]
        t = res["bin_t"][bb]
        rho = res["rho_um"][kk, bb]
        ok = np.isfinite(zc) & np.isfinite(rho)
        if not ok.any():
            continue
        zs = zc[ok]
        ys, xs = np.empty(zs.size), np.empty(zs.size)
        for i, (zz, tt, rr) in enumerate(zip(zs, t[ok], rho[ok], strict=True)):
            y, x = g.frame_at(float(zz)).to_yx(np.array([tt]), np.array([rr / g.pixel_um]))
            ys[i], xs[i] = float(y[0]), float(x[0])
        # Located where the overhang is worst: a stretch around the roll has its mean position
        # near the axis, which names no angle at all.
        worst = int(np.argmin(vals[ok]))
        centroid = (float(zs[worst]), float(ys[worst]), float(xs[worst]))
        box = (int(math.floor(zs.min())), int(math.floor(ys.min())), int(math.floor(xs.min())),
               int(math.floor(zs.max())) + 1, int(math.floor(ys.max())) + 1, int(math.floor(xs.max())) + 1)
        cy, cx = g.frame_at(centroid[0]).center_yx_px
        angle = float(np.degrees(np.arctan2(centroid[1] - cy, centroid[2] - cx)) % 360.0)
        limit = fail_min if sev == "fail" else review_min
        found.append(Finding(
            detector=NAME, severity=sev, centroid_zyx_px=centroid, bbox_zyx_px=box, value=value, unit="µm",
            winding=int(np.median(kk)), angle_deg=angle,
            rule=f"anode overhang {value:.0f} µm < {limit:.0f} µm",
            message=(f"anode overhang {value:.0f} µm at the {res['side']} end ({'cathode beyond anode' if value < 0 else 'short'})"
                     f" over {kk.size} bin(s), windings {int(kk.min())}–{int(kk.max())}"),
            extra={"side": res["side"], "overhang_min_um": float(vals.min()), "bins": int(kk.size),
                   "angular_span_deg": float(len(np.unique(bb)) * res["bin_deg"])},
        ))
    return found
