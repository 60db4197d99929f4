"""Anode overhang at the ends of the jelly roll.

The anode sheet of a wound cell is made wider than the cathode so that every cathode
edge faces anode (otherwise lithium plates at the edge). Near a roll end the CT slices
therefore show, walking out of the roll along the axis: full windings, then windings without
the bright cathode sheet (only anode coatings, Cu foil and separator: the overhang), then
nothing (gas under the cap).

Method. The layer positions (cathode sheet edges, per winding and angle) are taken from
complete roll slices well inside the end (``geometry.slices``, ``is_roll``; at most
``max_depth_um`` in, or the middle of the roll): the geometry stage's first roll slices need
not hold every sheet, since where the overhang varies around the roll by more than a slice
the cathode is still missing over part of the circumference there. In every slice from there
out to the volume's edge, the mean intensity of each cathode band and of each anode band (the
space between two cathode sheets: anode coatings + Cu foil) is sampled at the same positions
about that slice's own axis centre, averaged in angular bins per winding. Along z each
(winding, bin) profile falls from its interior level to the level beyond the roll. Walking out
from inside, the sheet ends where the profile first drops below half-way between the deep
level and the level beyond the roll; its end is then the half-level crossing of its own level
just before the drop, interpolated between slice centres (exact for a sheet edge filling a
slice partially). Bands without the typical contrast deep inside (a tab, bare foil) are not
followed. The overhang is ``(cathode end − anode end)`` in µm, measured outwards: positive
when the anode sticks out beyond the cathode. A negative overhang (the cathode reaching
beyond the anode) is FAIL by default. A sheet whose band never falls, beyond the roll, half-way
to what the cathode's end leaves behind runs past the volume's edge (the volume starts inside
the overhang): its end, and the overhang there, are not measurable and are not reported.

Resolution: the end positions are interpolated to a fraction of a slice on clean edges; with
real edges (uneven, tilted, tabs) a slice spacing is the honest uncertainty.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import ndimage

from core.detectors.base import DetectorContext, DetectorOutput, Finding, register
from core.detectors.spec import DetectorSpec, Metric, Rule
from core.geometry.layers import near_layer_ends

NAME = "anode_overhang"
SPEC = DetectorSpec(
    name=NAME,
    label="Anode overhang too short",
    value_name="overhang",
    order=5,
    speaks_for=5,
    rules={
        "fail_min_um": Rule(0.0, None, None, "µm",
                            "An overhang below this (the cathode reaching beyond the anode) fails."),
        "review_min_um": Rule(None, None, None, "µm", "An overhang below this is for review (absent: fail_min_um)."),
        "bin_deg": Rule(10.0, 1.0, 90.0, "°", "Angular bins per winding in which the sheet ends are found."),
        "min_bins": Rule(2, 1.0, None, "",
                         "A group of fewer bins below a limit is not reported."),
    },
    check=("Shortest anode overhang",
           "How far the anode reaches beyond the cathode at a roll end (negative: the cathode reaches further)."),
    metrics={
        "anode_overhang_min_um": Metric("min", "Anode overhang, smallest", "µm"),
        "anode_overhang_p05_um": Metric("mean", "Anode overhang, 5th percentile", "µm"),
        "anode_overhang_mean_um": Metric("mean", "Anode overhang, mean", "µm"),
        "anode_overhang_median_um": Metric("mean", "Anode overhang, median", "µm"),
        "anode_overhang_p95_um": Metric("mean", "Anode overhang, 95th percentile", "µm"),
        "anode_overhang_std_um": Metric("pooled_std", "Anode overhang, standard deviation", "µm",
                                        of=("anode_overhang_mean_um",)),
        "anode_overhang_samples": Metric("sum", "Anode overhang, samples"),
        "anode_overhang_count": Metric("sum", "Short anode overhangs (findings)"),
        "anode_overhang_z_resolution_um": Metric("mean", "Anode overhang, height resolution (slice spacing)", "µm"),
        # Where the sheets end (voxel z), per roll end: shown as heights.
        **{f"{sheet}_end_{side}_z_px": Metric("mean") for sheet in ("anode", "cathode") for side in ("top", "bottom")},
    },
)
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


def _beyond_level(profiles: np.ndarray, n_out: int) -> np.ndarray:
    """Each column's level beyond the roll: the 10th percentile of its last ``n_out`` slices."""
    if n_out <= 0:
        return np.full(profiles.shape[1:], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(profiles[profiles.shape[0] - n_out:], 10, axis=0)


def _seen_to_end(levels: dict[str, np.ndarray], deep_level: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Whether each band's column falls, beyond the roll, at least half-way to what the roll's
    end leaves behind.

    What is left beyond the roll (gas, electrolyte) is read where the cathode has ended: the
    median over the cathode band's columns of their level beyond the roll's end slice. A column
    still at least half-way to its deep level there never ended in the volume: its sheet runs
    past the volume's edge (a volume whose first slice cuts through the anode overhang), and
    its own "beyond" level is the sheet itself, so any dip of the noise would be read as its
    end (a 21700 crop starting 0.2 mm inside its overhang read -478 µm, "cathode beyond anode").
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        left = np.nanmedian(levels["cathode"]) if np.isfinite(levels["cathode"]).any() else math.nan
        with np.errstate(invalid="ignore"):
            return {name: (levels[name] - left) < 0.5 * (deep_level[name] - left) for name in levels}


def _sheet_ends(profiles: np.ndarray, n_out: int, deep_level: np.ndarray, n_ref: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-level crossing (fractional index into the profile) of each column, walking out.

    ``profiles`` (z, ...) runs outwards: slices inside the roll first, the last ``n_out``
    slices from the roll's end slice to the volume's edge. ``deep_level`` is each column's
    level well inside the roll, where every sheet is complete; a slice holds the sheet where
    it is at least half-way between that and the level beyond the roll. Walking out from the
    first slice, the sheet ends at the first two slices in a row without it; the column's own
    level there is the median of the ``n_ref`` slices before them, and the end is where the
    profile first falls below half of that level (and stays below for a second slice, or
    meets the edge), interpolated between slice centres. Walking out from inside, bright
    parts beyond the roll's end (tabs, the cap) are never taken for the sheet.

    Columns whose deep contrast is less than half the typical one are not followed: their band
    does not hold a coated sheet there (a tab, a foil left bare). Returns the crossings and
    whether each column's walk started inside its sheet (its first ``n_ref`` slices hold it;
    columns not followed count as started: deeper slices would not help them).
    """
    n_z = profiles.shape[0]
    outside = _beyond_level(profiles, n_out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        deep_contrast = deep_level - outside
        typical = np.nanmedian(deep_contrast) if np.isfinite(deep_contrast).any() else math.nan
    followed = np.isfinite(deep_contrast) & (deep_contrast >= 0.5 * typical)
    with np.errstate(invalid="ignore"):
        present = profiles >= (0.5 * (deep_level + outside))[None]
    gone = ~present
    gone[:-1] &= gone[1:]
    has_drop = gone.any(axis=0)
    drop = np.argmax(gone, axis=0)
    started = present[:n_ref].all(axis=0)
    out = np.full(profiles.shape[1:], np.nan)
    for pos in zip(*np.nonzero(followed & has_drop), strict=True):
        e = int(drop[pos])
        if e < 1:
            continue
        col = profiles[(slice(None), *pos)]
        first = max(e - n_ref, 0)
        half = 0.5 * (float(np.nanmedian(col[first:e])) + outside[pos])
        for j in range(first + 1, n_z):
            if col[j] < half and (j + 1 == n_z or col[j + 1] < half):
                a, b = col[j - 1], col[j]
                if np.isfinite(a) and np.isfinite(b):
                    frac = (a - half) / (a - b) if a != b else 0.5
                    out[pos] = (j - 1) + float(np.clip(frac, 0.0, 1.0))
                break
    return out, started | ~followed


def measure_roll_end(ctx: DetectorContext, side: str, bin_deg: float = 10.0, n_ref: int = 3,
                     max_depth_um: float = 3000.0) -> dict | None:
    """Anode and cathode ends per (winding, angular bin) at one end of the roll.

    The geometry stage's first roll slices need not hold every sheet: where the overhang
    varies around the roll the cathode may still be missing over part of the circumference
    there. So the deep level and the layer positions come from ``n_ref`` roll slices
    ``max_depth_um`` in from the roll's end slice (beyond any electrode overhang), or from the
    middle of the roll when that is nearer, and each column's walk starts further in until its
    first ``n_ref`` slices hold the sheet (see :func:`_sheet_ends`), at most at that depth.

    Returns None when the volume holds no slices beyond that end of the roll.
    """
    g = ctx.geometry
    rolls = [s for s in g.slices if s.is_roll]
    nz = g.shape[0]
    if len(rolls) < n_ref + 1:
        return None
    # Inspected a chunk at a time (core.chunked), the chunk knows where the whole roll begins
    # and ends (in its own slice numbers): an edge of the chunk inside the roll is a cut, not
    # an end, however its last slices were judged (a top slab of a healthy 21700 read -163 µm
    # "at the bottom end" where a chunk's edge cut its roll).
    first, last = ctx.reference.get("roll_first_slice"), ctx.reference.get("roll_last_slice")
    if ctx.reference.get(f"overhang_{side}_elsewhere"):  # this chunk holds the end but not the interior
        return None
    if side == "top" and first is not None and first <= 0:
        return None
    if side == "bottom" and last is not None and last >= nz - 1:
        return None
    if side == "top":
        outward, inward = -1, rolls
        if rolls[0].z == 0:
            return None
        beyond = list(range(rolls[0].z - 1, -1, -1))
    else:
        outward, inward = 1, rolls[::-1]
        if rolls[-1].z == nz - 1:
            return None
        beyond = list(range(rolls[-1].z + 1, nz))
    end_z = inward[0].z
    depth_px = max_depth_um / g.spacing_um[0]
    deep_at = next((i for i, s in enumerate(inward) if abs(s.z - end_z) >= depth_px), len(inward))
    deep_at = min(deep_at, len(inward) // 2)
    deep_at = deep_at if deep_at >= n_ref + 1 and deep_at + n_ref <= len(inward) else 1
    deep = inward[deep_at:deep_at + n_ref]
    # Layer positions from the deep slices too: where a sheet is missing the tracer may count
    # the windings differently, and the bands sampled there would belong to other sheets.
    ref = deep
    t = ref[0].t_rad
    n_t = t.size
    n_bins = max(int(round(360.0 / bin_deg)), 4)
    bin_of_t = np.minimum((t / (2 * np.pi) * n_bins).astype(int), n_bins - 1)
    layers = _reference(ref, len(ref))
    k_use = min(int(np.median([s.windings for s in ref])), layers["inner"].shape[0])
    inner, outer = layers["inner"][:k_use], layers["outer"][:k_use]
    valid = np.ones((k_use, n_t), bool)
    for s in ref:
        valid &= ~near_layer_ends(s, 6.0, max(k_use, s.windings))[:k_use]
    # An uncoated tab window holds bare foil in its cathode band: no sheet end to find, and
    # bins across the window's ends mix coated and bare columns (a healthy generated 21700 read
    # -827 µm there). The window's sheet, the one inside it (which relaxes into the gap) and
    # the anode band outside it (bounded by the sheet's outer edge) are left out over the
    # window and a bin's arc and a pitch beyond its ends.
    for zone in g.uncoated_zones:
        radius = zone.radius_um if math.isfinite(zone.radius_um) else 0.0
        margin_um = radius * math.radians(bin_deg) + (g.pitch_um if math.isfinite(g.pitch_um) else 0.0)
        for s in ref:
            in_zone = zone.sheet_mask(s, k_use, margin_um)
            valid &= ~in_zone
            valid[1:] &= ~in_zone[:-1]
            valid[:-1] &= ~in_zone[1:]  # the sheet inside relaxes into the window's gap
    # Cathode band k: the sheet; anode band k: between sheet k-1's outer and sheet k's inner edge.
    an_lo = np.vstack([np.full((1, n_t), np.nan), outer[:-1]])
    bands = {"cathode": (inner, outer, _CATHODE_FRACTIONS), "anode": (an_lo, inner, _ANODE_FRACTIONS)}
    cache: dict[int, dict[str, np.ndarray]] = {}

    def sample(zs: list[int]) -> None:
        new = [z for z in zs if z not in cache]
        if not new:
            return
        got = {name: _band_profiles(ctx, new, t, lo, hi, fr, bin_of_t, n_bins, valid)
               for name, (lo, hi, fr) in bands.items()}
        for i, z in enumerate(new):
            cache[z] = {name: got[name][i] for name in bands}

    def stack(zs: list[int], name: str) -> np.ndarray:
        return np.stack([cache[z][name] for z in zs])

    sample([s.z for s in deep])
    deep_level = {name: np.nanmedian(stack([s.z for s in deep], name), axis=0) for name in bands}
    step_in = -outward
    deepest = deep[-1].z
    reach = n_ref  # slices inside the end slice walked so far
    while True:
        walk = [end_z + step_in * i for i in range(reach, 0, -1)]
        walk = [z for z in walk if 0 <= z < nz]
        zs = walk + [end_z] + beyond
        sample(zs)
        found = {name: _sheet_ends(stack(zs, name), len(beyond) + 1, deep_level[name], n_ref) for name in bands}
        ctx.check_cancel()
        if all(f[1].all() for f in found.values()) or step_in * (walk[0] - deepest) >= 0:
            break
        reach = min(2 * reach, abs(deepest - end_z))  # doubling: few passes on long walks
    # A sheet that never ends within the volume has no end to measure (NaN), however its
    # noise dips: see _seen_to_end.
    seen = _seen_to_end({name: _beyond_level(stack(zs, name), len(beyond) + 1) for name in bands}, deep_level)
    end_c = np.where(seen["cathode"], found["cathode"][0], np.nan)
    end_a = np.where(seen["anode"], found["anode"][0], np.nan)
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
            "deep_z": [s.z for s in deep], "profiles_z": zs}


@register(SPEC)
def detect(ctx: DetectorContext) -> DetectorOutput:
    """Measure the anode overhang at the roll ends in the volume; see the module docstring."""
    g = ctx.geometry
    out = DetectorOutput()
    rules = SPEC.rules_for(ctx.rules)
    fail_min = float(rules["fail_min_um"])
    review_min = float(rules.get("review_min_um", fail_min))
    min_bins = int(rules["min_bins"])
    bin_deg = float(rules["bin_deg"])
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
        with np.errstate(all="ignore"), warnings.catch_warnings():
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
