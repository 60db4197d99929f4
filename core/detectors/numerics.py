"""Numerics shared by detectors: sheet coordinates, robust path fits, sheet centre lines.

The interface every detector implements (its context, output, findings and declaration) is
:mod:`core.detectors.base`; this module holds the arithmetic several detectors (and the
model-based variants in :mod:`core.segment`) share, so that one fix reaches all of them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.geometry.layers import TRUSTED_TRACE_ZSCORE
from core.geometry.roll import CellGeometry
from core.geometry.unwrap import unwrap
from core.nanmedian import nanmedian_last_axis

# A change of the gap between two collectors beyond this (µm) is one of them bent: their midpoint
# is no guide to the sheet between them (the deflection review limit is 30 µm).
DEFLECTED_GAP_UM = 20.0


def points_to_yx(geometry: CellGeometry, z: np.ndarray, t: np.ndarray, rho_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (y, x) of unwrap points (slice z, angle t, elliptical radius in µm)."""
    z = np.atleast_1d(np.asarray(z, dtype=float))
    t = np.atleast_1d(np.asarray(t, dtype=float))
    rho = np.atleast_1d(np.asarray(rho_um, dtype=float)) / geometry.pixel_um
    ys = np.empty(np.broadcast(z, t, rho).shape)
    xs = np.empty_like(ys)
    zb, tb, rb = np.broadcast_arrays(z, t, rho)
    for zz in np.unique(zb):
        sel = zb == zz
        y, x = geometry.frame_at(float(zz)).to_yx(tb[sel], rb[sel])
        ys[sel], xs[sel] = y, x
    return ys, xs


def box_and_centroid(z: np.ndarray, y: np.ndarray, x: np.ndarray, w: np.ndarray | None = None):
    """Centroid (weighted) and inclusive-exclusive bounding box of points in voxel indices."""
    w = np.ones_like(z, dtype=float) if w is None else np.clip(w, 0, None)
    ok = np.isfinite(z) & np.isfinite(y) & np.isfinite(x) & np.isfinite(w)
    z, y, x, w = z[ok], y[ok], x[ok], w[ok]
    if z.size == 0:
        raise ValueError("no finite point to locate a finding")
    if w.sum() <= 0:
        w = np.ones_like(w)
    c = (float(np.average(z, weights=w)), float(np.average(y, weights=w)), float(np.average(x, weights=w)))
    box = (int(math.floor(z.min())), int(math.floor(y.min())), int(math.floor(x.min())),
           int(math.floor(z.max())) + 1, int(math.floor(y.max())) + 1, int(math.floor(x.max())) + 1)
    return c, box


def nan_gaussian(values: np.ndarray, sigma: float | tuple[float, ...], min_weight: float = 0.3) -> np.ndarray:
    """Gaussian smoothing that ignores NaN (normalised convolution).

    The last axis is the angle and wraps; the others (slices, windings) end. A result is kept
    where the smoothed weight of finite neighbours is at least ``min_weight`` and the sample
    itself was finite; elsewhere NaN.
    """
    sigma = tuple(sigma) if np.ndim(sigma) else (0.0,) * (values.ndim - 1) + (float(sigma),)
    modes = ("nearest",) * (values.ndim - 1) + ("wrap",)
    finite = np.isfinite(values)
    num = ndimage.gaussian_filter(np.where(finite, values, 0.0), sigma, mode=modes)
    den = ndimage.gaussian_filter(finite.astype(np.float32), sigma, mode=modes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite & (den >= min_weight), num / den, np.nan)


def polar_angle_deg(geometry: CellGeometry, z: float, y: float, x: float) -> float:
    cy, cx = geometry.frame_at(z).center_yx_px
    return float(np.degrees(np.arctan2(y - cy, x - cx)) % 360.0)


@dataclass
class Spiral:
    """Lay (slice, winding, angle) arrays out along the wound sheet: (slice, position).

    Winding k's angles are ordered from the seam in the winding direction, so the last
    sample of winding k meets the first of winding k + 1: one physical layer is one run
    of positions, also where it crosses the seam (where its ray index changes).
    """

    order: np.ndarray  # (n_slices, n_t) angle index of each position within a winding
    n_windings: int

    @classmethod
    def from_geometry(cls, geometry: CellGeometry, n_windings: int | None = None) -> Spiral:
        rolls = [s for s in geometry.slices if s.is_roll]
        t = rolls[0].t_rad
        orders = []
        for s in rolls:
            seam = math.radians(s.seam_deg) if math.isfinite(s.seam_deg) else 0.0
            orders.append(np.argsort((s.direction * (t - seam)) % (2 * np.pi), kind="stable"))
        return cls(np.array(orders), n_windings if n_windings is not None else geometry.windings)

    @property
    def n_t(self) -> int:
        return self.order.shape[1]

    def lay_out(self, per_slice: np.ndarray) -> np.ndarray:
        """(slices, windings, angles, ...) → (slices, windings · angles, ...)."""
        k = self.n_windings
        n_z = per_slice.shape[0]
        taken = np.take_along_axis(per_slice[:, :k], self.order[:, None, :].reshape(n_z, 1, -1, *([1] * (per_slice.ndim - 3))), axis=2)
        return taken.reshape(n_z, k * self.n_t, *per_slice.shape[3:])

    def winding_and_angle(self, z: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Winding index and angle index of positions along the sheet."""
        k = position // self.n_t
        return k, self.order[z, position % self.n_t]


def label_periodic(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components with the last axis periodic (the angle wraps at 360°)."""
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
        roots = np.array([find(i) for i in range(n + 1)])
        labels = roots[labels]
    return labels, int(labels.max())


# ------------------------------------------------------------------ robust path fits


def shallower_than_deep(values: np.ndarray, peak: tuple[int, int, int], depth_um: float, level: float,
                        slice_z: list[int], slice_um: float, n_slices: int, half_width: int = 2) -> bool:
    """Whether a layer's departure is less tall than it is deep: no bend a foil can make.

    A Cu foil pushed ``depth_um`` out of its path bends over at least about as much height
    (a particle's dent, a fold, a buckle: as tall as they are deep, or taller). A departure
    shorter than its depth is a trace that caught something else in a slice or two: at a roll
    end, where the cathode's edge wanders, a healthy 21700 at 12 µm × 18 µm slices FAILed on
    eleven "deflections" of 60–181 µm and a 195 µm "buckle", each 1–2 slices (18–36 µm) tall.

    The height is walked from the peak through the slices while the departure at the same
    layer and angle (± ``half_width`` samples) stays beyond ``level`` with the peak's sign,
    in ``values`` (slices, layers, angles; ``slice_z`` the slices' numbers in the volume of
    ``n_slices``). The walk is the bend's, not its finding's: a bend found as one part per
    slice (the spiral's layout shifting with the seam) is still measured whole. It ends at a
    slice that traced the layer there within the level, or at the roll's end. Slices that did
    not trace the layer there count as the bend's, so the height is a bound from above (a
    roll end's first slice had the next slice's collectors set aside as jumps, then clean
    ones). A walk that reaches the volume's first or last slice leaves the height unknown, and
    the departure is kept (False).
    """
    i0, k, t0 = peak
    sign = 1.0 if depth_um >= 0 else -1.0
    n_t = values.shape[2]
    cols = np.arange(t0 - half_width, t0 + half_width + 1) % n_t
    lo = hi = i0
    for step in (-1, 1):
        i = i0
        while True:
            j = i + step
            if j < 0 or j >= values.shape[0]:
                if slice_z[i] <= 0 or slice_z[i] >= n_slices - 1:
                    return False  # the volume ends: the bend may go on beyond it
                break  # the roll ends
            if slice_z[j] != slice_z[i] + step:  # slices between not traced as roll (its end)
                break
            here = values[j, k, cols] if k < values.shape[1] else np.full(cols.size, np.nan)
            if np.isfinite(here).any() and not np.nanmax(sign * here) >= level:
                break
            i = j  # beyond the level, or not traced there (counted: the height is a bound from above)
        if step < 0:
            lo = i
        else:
            hi = i
    return (slice_z[hi] - slice_z[lo] + 1) * slice_um < abs(depth_um)


def _design(t: np.ndarray, seam_rad: float, direction: int) -> np.ndarray:
    theta = (direction * (t - seam_rad)) % (2 * np.pi)
    return np.column_stack([np.ones_like(t), theta, np.cos(t), np.sin(t), np.cos(2 * t), np.sin(2 * t)])


def tukey_weights(residual: np.ndarray, scale: np.ndarray | float, tuning: float = 6.0,
                  squared: bool = True) -> np.ndarray:
    """Tukey biweight ``(1 - (r / (c s))²)²`` of residuals, zero beyond ``c`` scales.

    ``squared=False`` gives the unsquared ``1 - (r / (c s))²``, which winding quality's joint
    spiral fit has always used (its validated numbers depend on it). The one weight function of
    the detectors' two robust fits, which are otherwise different problems: :func:`smooth_path_residual` (an independent fit per winding) and
    :func:`core.detectors.winding_quality.spiral_residuals` (one joint fit of all windings).
    """
    weight = np.clip(1 - (residual / (tuning * scale)) ** 2, 0, None)
    return weight ** 2 if squared else weight


def trusted_collector_radius(s, excluded: np.ndarray | None = None) -> np.ndarray:
    """A slice's Cu collector radii (µm, float64, windings × angles) where the trace is trusted
    (z-score ≥ :data:`core.geometry.layers.TRUSTED_TRACE_ZSCORE`), NaN elsewhere and where
    ``excluded`` (a collector lost in noise is unknown, not bent)."""
    radius = np.where(s.cu_zscore >= TRUSTED_TRACE_ZSCORE, s.cu_radius_um, np.nan).astype(float)
    if excluded is not None:
        radius[excluded] = np.nan
    return radius


def smooth_path_residual(radius: np.ndarray, t: np.ndarray, seam_rad: float, direction: int,
                         window_deg: float = 90.0) -> np.ndarray:
    """Deflection of each layer (rows of ``radius``, µm) from the smooth path of its winding."""
    x = _design(t, seam_rad, direction)
    valid = np.isfinite(radius)
    r = np.where(valid, radius, 0.0)
    w = valid.astype(float)
    coef = np.zeros((radius.shape[0], x.shape[1]))
    for _ in range(4):  # iteratively reweighted least squares (Tukey biweight)
        # Normal equations by matmul: the same numbers as einsum("kt,tp,tq->kpq") in 0.41 ms
        # instead of 4.6 ms on 20 windings × 2792 angles (benchmarks/kernels_bench.py).
        wx = w[:, :, None] * x[None, :, :]  # (k, t, p)
        gram = np.matmul(wx.transpose(0, 2, 1), x) + 1e-9 * np.eye(x.shape[1])
        rhs = (wx * r[:, :, None]).sum(axis=1)
        coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
        res = r - coef @ x.T
        scale = 1.4826 * np.nanmedian(np.where(valid, np.abs(res), np.nan), axis=1, keepdims=True) + 1e-6
        w = valid * tukey_weights(res, scale)
    res = np.where(valid, r - coef @ x.T, np.nan)
    # Running median over ±window/2 on 2° bins: slow departures of a real roll stay in the
    # path, a local bend (tens of degrees) does not.
    n_t = t.size
    n_bins = 180
    per_bin = int(math.ceil(n_t / n_bins))
    padded_res = np.full((radius.shape[0], n_bins * per_bin), np.nan)
    padded_res[:, :n_t] = res
    n_bins = int(math.ceil(n_t / per_bin))  # bins of per_bin consecutive angles (last one shorter)
    padded_res = padded_res[:, : n_bins * per_bin]
    padded_t = np.full(n_bins * per_bin, np.nan)
    padded_t[:n_t] = t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
        binned = nanmedian_last_axis(padded_res.reshape(radius.shape[0], n_bins, per_bin))
        centers = np.nanmean(padded_t.reshape(n_bins, per_bin), axis=1)
    bin_width = per_bin * 2 * np.pi / n_t
    half = max(int(math.radians(window_deg / 2) / bin_width), 1)
    padded = np.concatenate([binned[:, -half:], binned, binned[:, :half]], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=1)
    baseline_bins = nanmedian_last_axis(windows)
    baseline_bins = np.where(np.isfinite(baseline_bins), baseline_bins, 0.0)
    ext_c = np.r_[centers[-1] - 2 * np.pi, centers, centers[0] + 2 * np.pi]
    baseline = np.stack([np.interp(t, ext_c, np.r_[b[-1], b, b[0]]) for b in baseline_bins]) if n_t else res
    return res - baseline


# ------------------------------------------------------------- sheet centre lines


def hole_level(image: np.ndarray, frame, radius_px: float) -> float:
    """Median intensity of the mandrel hole (gas), the level of an empty void."""
    if not math.isfinite(radius_px) or radius_px < 3:
        return math.nan
    annulus = unwrap(image, frame, np.linspace(0, 2 * np.pi, 48, endpoint=False), np.linspace(0, 0.6 * radius_px, 12))
    return float(np.median(annulus))


def sheet_centre_lines(s, n_k: int, t: np.ndarray) -> np.ndarray:
    """Centre lines (the Al foil, elliptical radius µm) of a slice's first ``n_k`` sheets.

    From the smooth path of the measured centres (a void eats into the band and would drag
    the measured centre with it), better where both collectors around the sheet are traced:
    their midpoint plus the winding's own offset. A void in the cathode does not move the Cu,
    and the midpoint follows the layers' real bends (over an electrode's start, beside a tab
    window), which the smooth path cuts across: a 50 µm bulge would read as a dark inner
    coating. Short gaps are filled so a void that hides an edge is still sampled.
    """
    n_t = t.size
    measured_mid = 0.5 * (s.sheet_inner_um[:n_k] + s.sheet_outer_um[:n_k]).astype(float)
    seam = math.radians(s.seam_deg) if math.isfinite(s.seam_deg) else 0.0
    mid = measured_mid - smooth_path_residual(measured_mid, t, seam, s.direction)
    mid = _centre_from_collectors(s, measured_mid, mid)
    # Gaps are filled along each winding from its seam (θ from 0 to 2π): across the seam angle
    # the ray index changes and the centre jumps by a pitch, which a periodic fill in angle
    # would bridge with a ramp through the neighbouring layers.
    order = np.argsort((s.direction * (t - seam)) % (2 * np.pi), kind="stable")
    idx = np.arange(n_t)
    for k in range(mid.shape[0]):
        row = mid[k, order]
        ok = np.isfinite(row)
        if ok.sum() >= 8 and not ok.all():
            mid[k, order] = np.interp(idx, idx[ok], row[ok])
    return mid


def _centre_from_collectors(s, measured_mid: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Sheet centre lines from the midpoints of the collectors either side, where traced."""
    out = fallback.copy()
    cu = trusted_collector_radius(s)
    k_here = min(measured_mid.shape[0], cu.shape[0] - 1)
    if k_here <= 0:
        return out
    between = 0.5 * (cu[:k_here] + cu[1:k_here + 1])
    between = nan_gaussian(between, (0.0, 2.0), min_weight=0.5)  # a few samples: trace noise only
    # Where one collector bends away from the other (a deflected foil: the gap between them
    # changes) their midpoint leaves the sheet, which did not move: there the sheet's own smooth
    # path is its centre (a 114 µm deflection read as a 1 mm "void" beside it otherwise); or,
    # where the sheet's two faces are traced, their midpoint: at a buckle the layers leave the
    # smooth path together (by 118 µm on a real 21700, whose midpoint-less centre read the
    # cathode's inner face as a 0.001 mm³ "void").
    seam = math.radians(s.seam_deg) if math.isfinite(s.seam_deg) else 0.0
    gap = cu[1:k_here + 1] - cu[:k_here]
    bent = np.abs(smooth_path_residual(gap, s.t_rad, seam, s.direction)) > DEFLECTED_GAP_UM
    for k in range(k_here):
        ok = np.isfinite(between[k]) & np.isfinite(measured_mid[k])
        if ok.sum() < 16:
            continue
        offset = float(np.median(measured_mid[k, ok] - between[k, ok]))
        bent_here = ndimage.binary_dilation(bent[k], iterations=3)
        use = np.isfinite(between[k]) & ~bent_here
        out[k, use] = between[k, use] + offset
        traced = bent_here & np.isfinite(measured_mid[k])
        out[k, traced] = measured_mid[k, traced]
    return out
