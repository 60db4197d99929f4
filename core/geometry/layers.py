"""Jelly-roll layer tracking in one slice: Cu collectors and cathode sheets along the spiral.

In the unwrap (t, rho) an Archimedean roll is a family of straight lines
``rho_n(t) = pitch · (phase + n + s · t / 2π)`` (s = ±1, the winding direction). The pitch
comes from the autocorrelation of radial profiles; the direction, the pitch's last percent
and the phase from the sharpness of the spiral-phase-binned Cu response. Every Cu collector
is then traced angle by angle as the maximum of a thin-bright-line response (white top-hat)
near its model path, shifted by the local phase of the layer pattern, with a z-score as
confidence; its winding index is its order along the ray (0 = innermost). Each cathode sheet
is the bright band between two collectors, bounded by half-maximum crossings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from core.geometry.unwrap import EllipticFrame, UnwrapGrid, unwrap

# The can's inner edge is blurred over a couple of voxels; its ridge response there would
# pass for one more collector. Layers are searched this far inside it.
CAN_EDGE_MARGIN_PX = 3.0


# Ridge z-score (noise level ~1) from which a traced collector sample is trusted: the layer
# tracer's own threshold, and the one every detector that reads the traces applies.
TRUSTED_TRACE_ZSCORE = 3.5


@dataclass
class GeometryParams:
    """Physical parameters of the geometry stage (µm unless stated)."""

    pitch_min_um: float = 150.0
    pitch_max_um: float = 700.0
    cu_foil_um: float = 10.0
    al_foil_um: float = 15.0
    max_can_wall_um: float = 1000.0
    radial_step_vox: float = 0.5
    arc_step_vox: float = 1.0
    cu_search_fraction: float = 0.3
    min_layer_zscore: float = TRUSTED_TRACE_ZSCORE
    min_roll_score: float = 0.25
    angular_smoothing_um: float = 40.0
    # Sheets this close (axially) to a roll end are its coated edge, not measured (roll.py).
    coating_edge_band_um: float = 500.0


@dataclass
class SliceRoll:
    """Layers of the jelly roll in one slice.

    Radii are elliptical radii in µm about ``frame`` (for a round roll, the distance from
    the axis); arrays are indexed [winding, angle] with angles ``t_rad``.
    """

    z: int
    is_roll: bool
    note: str = ""
    frame: EllipticFrame | None = None
    score: float = 0.0
    pitch_um: float = math.nan
    direction: int = 1
    phase: float = math.nan
    t_rad: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cu_radius_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    cu_zscore: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sheet_inner_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sheet_outer_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sheet_thickness_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    cu_al_gap_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sheet_intensity: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sheet_cu_contact: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    # Sheet samples set aside after tracing (a sheet's end at the roll end, an uncoated strip):
    # not measured, and no detector looks for voids there.
    sheet_excluded: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    windings: int = 0
    seam_deg: float = math.nan
    outer_end_deg: float = math.nan
    roll_inner_radius_um: float = math.nan
    roll_outer_radius_um: float = math.nan


def near_layer_ends(roll: SliceRoll, degrees: float, k_max: int | None = None) -> np.ndarray:
    """Where a layer's ray index changes or its end is: detectors look elsewhere.

    At the seam (where the innermost turn starts) the ray index of *every* layer changes; at
    the outer end only the last turns begin or stop. Without ``k_max``: the angles within
    ``degrees`` of either (shape (n_angles,)). With ``k_max``: a (k_max, n_angles) mask, the
    seam's angles for every winding and the outer end's for the last two only (masking every
    winding there hid a 0.002 mm³ void in winding 4 that lay at the outer end's angle).
    """
    def near(end: float) -> np.ndarray:
        if not math.isfinite(end):
            return np.zeros(roll.t_rad.size, bool)
        return np.abs(((roll.t_rad - math.radians(end)) + np.pi) % (2 * np.pi) - np.pi) < math.radians(degrees)

    if k_max is None:
        return near(roll.seam_deg) | near(roll.outer_end_deg)
    mask = np.zeros((k_max, roll.t_rad.size), bool)
    mask[:] = near(roll.seam_deg)[None, :]
    mask[max(0, roll.windings - 2):] |= near(roll.outer_end_deg)[None, :]
    return mask


def estimate_pitch(profiles: np.ndarray, step_um: float, params: GeometryParams) -> tuple[float, float]:
    """Pitch (µm) and its score (0–1) from radial profiles (rays × rho).

    The pitch is the first autocorrelation peak, within the recipe's pitch range, whose
    prominence (height above the lowest value since the previous peak) is at least 80 % of the
    largest; the score is half that prominence. Wound layers give a deep dip at half the pitch and a high peak at the pitch
    (score ≈ 0.5–0.9); caps, tabs and smooth shading give a monotone decay (score ≈ 0).
    """
    detrend_sigma = params.pitch_max_um / step_um
    if profiles.ndim != 2 or profiles.shape[0] == 0 or profiles.shape[1] < 8:
        return math.nan, 0.0
    # A moving average over the largest pitch removes shading, not layers; O(n) whatever its size.
    x = profiles - ndimage.uniform_filter1d(profiles, max(int(2 * detrend_sigma), 3), axis=1, mode="nearest")
    n = x.shape[1]
    spec = np.fft.rfft(x, 2 * n, axis=1)
    ac = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :n].mean(axis=0)
    if ac[0] <= 0:
        return math.nan, 0.0
    ac /= ac[0]
    lo = max(int(params.pitch_min_um / step_um), 2)
    hi = min(int(params.pitch_max_um / step_um), n - 2)
    if hi <= lo + 2:
        return math.nan, 0.0
    inner = ac[lo:hi + 1]
    is_peak = (inner[1:-1] > inner[:-2]) & (inner[1:-1] >= inner[2:])
    peaks = lo + 1 + np.nonzero(is_peak)[0]
    if peaks.size == 0:
        return math.nan, 0.0
    # Prominence of each peak above the deepest point since the previous peak (or lag 0).
    bounds = np.r_[0, peaks]
    prominence = np.array([ac[p] - ac[b:p].min() for b, p in zip(bounds[:-1], peaks, strict=True)])
    # The pitch is the first strong peak: multiples of it are about as high, never higher.
    strong = np.nonzero(prominence >= 0.8 * prominence.max())[0]
    j = int(strong[0])
    i = int(peaks[j])
    a, b, c = ac[i - 1], ac[i], ac[i + 1]
    denom = a - 2 * b + c
    shift = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0
    return (i + shift) * step_um, float(prominence[j] / 2)


def _binned_phase(values: np.ndarray, rho: np.ndarray, t: np.ndarray, pitch: float, direction: int,
                  bins: int = 48) -> np.ndarray:
    phase = ((rho[None, :] - direction * pitch * t[:, None] / (2 * np.pi)) / pitch) % 1.0
    idx = np.minimum((phase * bins).astype(np.int64), bins - 1).ravel()
    total = np.bincount(idx, weights=values.ravel(), minlength=bins)
    count = np.bincount(idx, minlength=bins)
    return total / np.maximum(count, 1)


def fit_spiral_phase(cu_response: np.ndarray, rho_px: np.ndarray, t: np.ndarray, pitch_px: float,
                     direction: int | None = None, refine_pitch: bool = True) -> tuple[float, int, float]:
    """Find (pitch_px, direction, phase) maximising the sharpness of the phase-binned response."""
    sub_t = slice(None, None, max(1, len(t) // 720))
    sub_r = slice(None, None, 1)
    vals = cu_response[sub_t, sub_r]
    tt, rr = t[sub_t], rho_px[sub_r]
    directions = [direction] if direction else [1, -1]
    factors = np.linspace(0.97, 1.03, 25) if refine_pitch else np.array([1.0])
    best = (-np.inf, pitch_px, 1, 0.0)
    for d in directions:
        for f in factors:
            p = pitch_px * f
            prof = _binned_phase(vals, rr, tt, p, d)
            sharp = prof.max() - np.median(prof)
            if sharp > best[0]:
                i = int(np.argmax(prof))
                n = len(prof)
                a, b, c = prof[(i - 1) % n], prof[i], prof[(i + 1) % n]
                denom = a - 2 * b + c
                shift = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0
                best = (sharp, p, d, ((i + 0.5 + shift) / n) % 1.0)
    return best[1], best[2], best[3]


def _parabolic(values: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Sub-sample offset of a maximum at index ``i`` along the last axis of ``values``."""
    n = values.shape[-1]

    def at(k: np.ndarray) -> np.ndarray:
        return np.take_along_axis(values, k[..., None], axis=-1)[..., 0]

    a = at(np.clip(i - 1, 0, n - 1))
    b = at(i)
    c = at(np.clip(i + 1, 0, n - 1))
    denom = a - 2 * b + c
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom < 0, 0.5 * (a - c) / denom, 0.0)
    return np.clip(shift, -0.5, 0.5)


def _local_phase_shift(smooth: np.ndarray, t: np.ndarray, pitch_px: float, direction: int,
                       n_sec: int = 72):
    """Where the layers sit against the global spiral, locally (in rho samples).

    Real rolls are not perfect spirals: a few turns near the mandrel may be shifted by a
    fraction of a pitch against the outer ones (a gap at the electrode start, a tab). The
    local Fourier phase of the layer pattern, per angular sector and radial band of two
    pitches, measures that shift; the tracker follows it instead of the global model.
    Returns a function ``shift(t, rho) -> samples``.
    """
    n_t, n_rho = smooth.shape
    # A moving average over exactly one pitch cancels the layer pattern and keeps the shading.
    detrended = smooth - ndimage.uniform_filter1d(smooth, max(int(round(pitch_px)), 3), axis=1, mode="nearest")
    rho_idx = np.arange(n_rho, dtype=float)
    band_w = 2.0 * pitch_px
    band_starts = np.arange(0, n_rho, band_w).astype(int)
    n_band = band_starts.size
    sec_starts = np.unique(np.arange(n_sec) * n_t // n_sec)
    n_sec = sec_starts.size
    # exp(-2πi φ) with φ = rho/p - s t/2π factorises: two 1-D carriers, sums by blocks.
    carrier_r = np.exp(-2j * np.pi * rho_idx / pitch_px)
    carrier_t = np.exp(1j * direction * t)
    zr = np.add.reduceat(detrended * carrier_r.real[None, :], band_starts, axis=1)
    zi = np.add.reduceat(detrended * carrier_r.imag[None, :], band_starts, axis=1)
    zt = (zr + 1j * zi) * carrier_t[:, None]
    z = np.add.reduceat(zt, sec_starts, axis=0)
    wsum = np.add.reduceat(np.add.reduceat(np.abs(detrended), band_starts, axis=1), sec_starts, axis=0)
    z = z + 0.5 * (np.roll(z, 1, axis=0) + np.roll(z, -1, axis=0))
    wsum = wsum + 0.5 * (np.roll(wsum, 1, axis=0) + np.roll(wsum, -1, axis=0))
    coherence = np.abs(z) / np.maximum(wsum, 1e-12)
    reference = z[coherence > np.percentile(coherence, 50)].sum()
    # A pattern shifted outwards by d samples turns the phasor by -2π d / pitch.
    cycles = np.angle(z * np.conj(reference)) / (2 * np.pi)
    trust = np.clip(coherence / max(float(np.percentile(coherence, 75)), 1e-12) * 2 - 0.5, 0, 1)
    shift_map = -cycles * pitch_px * trust

    def shift(tt: np.ndarray, rr: np.ndarray) -> np.ndarray:
        si = tt / (2 * np.pi) * n_sec - 0.5  # sectors are (nearly) equal blocks of angles
        bi = np.clip(rr / band_w - 0.5, 0, n_band - 1)
        padded = np.concatenate([shift_map[-1:], shift_map, shift_map[:1]], axis=0)
        return ndimage.map_coordinates(padded, [si + 1, bi], order=1, mode="nearest")

    return shift


def collector_response(unwrapped: np.ndarray, pixel_um: float, params: GeometryParams) -> np.ndarray:
    """How much each sample looks like a Cu collector: a thin bright line on a darker ground.

    A white top-hat along the radius whose window is just wider than the blurred foil
    (foil + 2.5 voxels): a narrow line stands out of the opening, while a coating (60–90 µm,
    several voxels even at 25 µm) survives the opening and scores nothing, whatever bumps
    its surface shows. A curvature (ridge) filter cannot tell the two apart at 25–35 µm.
    """
    step = params.radial_step_vox
    width = int(math.ceil((params.cu_foil_um / pixel_um + 2.5) / step)) | 1
    opened = ndimage.grey_opening(unwrapped, size=(1, width), mode="nearest")
    return ndimage.gaussian_filter1d(unwrapped - opened, 0.5 / step, axis=1, mode="nearest")


def angles_for_radius(rho_max_px: float, params: GeometryParams) -> int:
    """Number of unwrap angles: an arc step of ``params.arc_step_vox`` at the outer radius."""
    return int(math.ceil(2 * np.pi * rho_max_px / params.arc_step_vox / 8.0)) * 8


def analyze_slice(image: np.ndarray, z: int, pixel_um: float, frame: EllipticFrame,
                  max_radius_um: float, params: GeometryParams | None = None,
                  pitch_um: float | None = None, direction: int | None = None,
                  n_angles: int | None = None, grids: dict | None = None,
                  seam_deg: float | None = None) -> SliceRoll:
    """Trace the Cu collectors and cathode sheets of one slice.

    Parameters
    ----------
    image : ndarray (ny, nx)
    z : int
        Slice index (recorded).
    pixel_um : float
        In-plane voxel size.
    frame : EllipticFrame
        Roll centre and ovality used for the unwrap.
    max_radius_um : float
        Outer limit of the search, normally the can's inner radius.
    params : GeometryParams
    pitch_um, direction : optional
        Known pitch and winding direction (from other slices); refined when not given.
    n_angles : int, optional
        Number of angles of the unwrap (the same for every slice of a volume).
    grids : dict, optional
        A cache the caller keeps across the slices of a volume (see :class:`UnwrapGrid`).
    seam_deg : float, optional
        Where the innermost turn starts, when known from the other slices (the electrode's
        start is a straight edge along the axis); found from this slice when not given.
    """
    params = params or GeometryParams()
    step = params.radial_step_vox
    rho_max_px = max_radius_um / pixel_um - CAN_EDGE_MARGIN_PX
    # Sample a little into the can so that filters see the true edge (not a padded one);
    # search for layers only up to rho_max_px.
    rho = np.arange(0.0, rho_max_px + 2 * CAN_EDGE_MARGIN_PX, step)
    n_search = int(np.searchsorted(rho, rho_max_px))
    n_t = n_angles or angles_for_radius(rho_max_px, params)
    t = np.linspace(0.0, 2 * np.pi, n_t, endpoint=False)
    grid = None
    if grids is not None:
        grid = grids.get("grid")
        if grid is None or not grid.matches(frame, t, rho):
            grid = grids["grid"] = UnwrapGrid(frame, t, rho)
    raw = unwrap(image, frame, t, rho, grid=grid)
    step_um = step * pixel_um
    # Smooth along the arc (a physical length, in samples at mid radius) and lightly in rho.
    arc_sigma = params.angular_smoothing_um / (pixel_um * (2 * np.pi * rho_max_px * 0.6 / n_t))
    smooth = ndimage.gaussian_filter1d(raw, max(arc_sigma, 0.5), axis=0, mode="wrap")
    profile = ndimage.gaussian_filter1d(smooth, 0.5 / step, axis=1, mode="nearest")

    rays = smooth[:: max(1, n_t // 90), :n_search]
    inner = int(0.1 * n_search)
    est_pitch, score = estimate_pitch(rays[:, inner:], step_um, params)
    result = SliceRoll(z=z, is_roll=False, frame=frame, score=score, t_rad=t)
    if not math.isfinite(est_pitch) or score < params.min_roll_score:
        result.note = "no periodic layer structure (cap, headspace or tabs): skipped"
        return result

    cu = collector_response(smooth, pixel_um, params)
    pitch_px = (pitch_um if pitch_um else est_pitch) / pixel_um / step  # in rho samples
    pitch_px, direction, phase = fit_spiral_phase(cu[:, :n_search], np.arange(n_search, dtype=float), t, pitch_px,
                                                  direction, refine_pitch=pitch_um is None)
    result.pitch_um = pitch_px * step_um
    result.direction = direction
    result.phase = phase

    # Noise of the response: differences along the arc at a lag beyond the smoothing, where
    # layers have not moved but the (smoothed) noise has decorrelated.
    lag = int(math.ceil(4 * max(arc_sigma, 0.5))) + 1
    noise = 1.4826 * np.median(np.abs(cu[lag:] - cu[:-lag])) / math.sqrt(2) + 1e-12
    half = int(math.ceil(params.cu_search_fraction * pitch_px))
    offsets = np.arange(-half, half + 1)
    n_lo = int(math.floor(-phase - 1))
    n_hi = int(math.ceil(n_search / pitch_px - phase + 1))
    local_shift = _local_phase_shift(smooth[:, :n_search], t, pitch_px, direction)
    reach = max(int(round(1.0 / step)), 1)  # one voxel either side
    # Every candidate layer n at once, (layers, angles[, offsets]): the same arithmetic as one
    # layer at a time, in a few large numpy calls (with the sheets' below: 405 -> 348 ms of CPU a
    # slice of issue 18's volume under cProfile; docs/performance.md).
    layer_n = np.arange(n_lo, n_hi + 1)
    rows_t = np.arange(n_t)
    pred = pitch_px * (phase + layer_n[:, None] + direction * t[None, :] / (2 * np.pi))
    pred = pred + local_shift(np.broadcast_to(t, pred.shape), pred)
    center = np.rint(pred).astype(np.int64)
    cols = center[:, :, None] + offsets
    inside = (cols >= 0) & (cols < n_search)
    flat = np.clip(cols, 0, len(rho) - 1) + (rows_t * len(rho))[None, :, None]
    win = np.where(inside, cu.ravel()[flat], -np.inf)
    j = np.argmax(win, axis=2)
    peak = np.take_along_axis(win, j[..., None], axis=2)[..., 0]
    found_col = np.take_along_axis(cols, j[..., None], axis=2)[..., 0]
    pos = center + offsets[j] + _parabolic(np.where(np.isfinite(win), win, 0.0), j)
    valid = np.isfinite(peak) & (found_col > 0) & (found_col < n_search - 1)
    # A collector is a local maximum of the intensity; the foot of the can's edge (or of
    # a sheet's edge) curves like one in the ridge filter but keeps rising.
    at = np.clip(np.rint(pos).astype(np.int64), reach, len(rho) - 1 - reach)
    smooth_flat, row_start = smooth.ravel(), (rows_t * len(rho))[None, :]
    centre_val = smooth_flat[row_start + at]
    valid &= (centre_val >= smooth_flat[row_start + at - reach]) & (centre_val >= smooth_flat[row_start + at + reach])
    traces_arr = np.where(valid, pos, np.nan)  # (layers, n_t) in rho samples
    z_arr = np.where(valid, peak / noise, 0.0)
    offsets_from_model = np.where(valid, np.abs(pos - pred), np.inf)
    # A real collector is a continuous line: its position agrees with its neighbours along
    # the arc. Noise maxima (in the mandrel hole, the headspace) jump about.
    filled = np.where(np.isfinite(traces_arr), traces_arr, -1e6)
    steady = np.abs(filled - ndimage.median_filter(filled, size=(1, 9), mode="wrap")) < 1.5 / step
    strong = (z_arr >= params.min_layer_zscore) & steady
    # Real collectors sit on the spiral model; band edges beyond the last collector sit at a
    # fixed offset from it, and ring artifacts in the mandrel hole cross it. Only on-model
    # samples count, so a partial turn (the innermost and outermost exist over part of the
    # circle only) is judged where it exists.
    off_model = offsets_from_model
    strong &= off_model < 0.2 * pitch_px
    # Ghosts are also much weaker than real collectors: the typical strength comes from the
    # complete turns, then each layer is judged on its samples at least 30 % as strong (so
    # a partial turn is not drowned by the weak ghosts where it does not exist).
    medians = np.array([np.median(zl[sl]) if sl.sum() >= 3 else 0.0 for zl, sl in zip(z_arr, strong, strict=True)])
    typical = np.percentile(medians, 90) if medians.size else 0.0
    strong &= z_arr >= 0.3 * typical
    per_layer = np.array([np.median(zl[sl]) if sl.sum() >= 3 else 0.0 for zl, sl in zip(z_arr, strong, strict=True)])
    present = (per_layer >= 0.5 * typical) & (strong.mean(axis=1) > 0.015) & (typical > 0)
    if present.sum() < 2:
        result.note = "no Cu collectors traced: skipped"
        return result
    # A single weak turn between traced ones is still a turn (a defect, a tab crossing it).
    present = present | (ndimage.binary_closing(present, structure=np.ones(3, bool)) & (typical > 0))
    labels, n_blocks = ndimage.label(present)
    sizes = ndimage.sum_labels(present, labels, np.arange(1, n_blocks + 1))
    block = np.nonzero(labels == 1 + int(np.argmax(sizes)))[0]
    first, last = block[0], block[-1]
    if last - first < 1:
        result.note = "fewer than two Cu collectors traced: skipped"
        return result
    traces_arr, z_arr, strong = traces_arr[first:last + 1], z_arr[first:last + 1], strong[first:last + 1]

    # Winding index = order along the ray. The innermost turn starts at the seam and the
    # outermost ends somewhere: each is one step function of the angle, fitted to where the
    # first and last turns are traced (robust to ring artifacts mimicking a layer in the hole).
    n_layers = traces_arr.shape[0]
    ahead = direction > 0

    def step_fit(covered: np.ndarray, present_after: bool) -> int:
        """Index s maximising agreement with 'present for t >= s' (or 't < s')."""
        gain = 2.0 * covered - 1.0
        if present_after:
            score = np.r_[np.cumsum(gain[::-1])[::-1], 0.0]  # score[s] = sum over t >= s
        else:
            score = np.r_[0.0, np.cumsum(gain)]  # score[s] = sum over t < s
        return int(np.argmax(score))

    idx_t = np.arange(n_t)
    # Where a partial turn really is, its collector is about as strong as any other; the
    # odd weaker sample beyond its end (a sheet edge) does not extend it.
    solid = strong & (z_arr >= 0.6 * typical)
    if seam_deg is not None and math.isfinite(seam_deg):
        s_in = int(np.argmin(np.abs(((t - math.radians(seam_deg)) + np.pi) % (2 * np.pi) - np.pi)))
    else:
        s_in = step_fit(solid[0], present_after=ahead)
    n_min = np.where(idx_t >= s_in, 0, 1) if ahead else np.where(idx_t < s_in, 0, 1)
    s_out = step_fit(solid[-1], present_after=not ahead)
    last = n_layers - 1
    n_max = np.where(idx_t < s_out, last, last - 1) if ahead else np.where(idx_t >= s_out, last, last - 1)
    counts = n_max - n_min + 1
    n_windings = int(np.median(counts))
    k_max = int(counts.max())
    if n_windings < 2:
        result.note = "fewer than two windings traced: skipped"
        return result
    cols = np.arange(n_t)
    cu_idx = np.full((k_max, n_t), np.nan)
    cu_z = np.zeros((k_max, n_t))
    for k in range(k_max):
        layer = n_min + k
        ok = layer <= n_max
        layer_c = np.clip(layer, 0, n_layers - 1)
        cu_idx[k] = np.where(ok, traces_arr[layer_c, cols], np.nan)
        cu_z[k] = np.where(ok, z_arr[layer_c, cols], 0.0)
    seam_deg = float(np.degrees(t[s_in % n_t]))
    result.outer_end_deg = float(np.degrees(t[s_out % n_t]))
    # A trace that jumps away from its neighbours over a few degrees has caught another
    # feature (the collector is lost in noise there): unknown, not a bend. Real bends are
    # smooth over tens of degrees and follow a running median over 8°.
    window = max(int(n_t * 8 / 360) | 1, 9)
    filled = cu_idx.copy()
    cols_t = np.arange(n_t)
    for row in filled:  # bridge gaps so that they do not drag the running median
        ok_row = np.isfinite(row)
        if 2 <= ok_row.sum() < n_t:
            row[~ok_row] = np.interp(cols_t[~ok_row], cols_t[ok_row], row[ok_row], period=n_t)
    # (a running mean, O(n): a 3° jump still stands 5/8 of its height above an 8° mean)
    local = ndimage.uniform_filter1d(np.nan_to_num(filled, nan=0.0), window, axis=1, mode="wrap")
    jump = np.abs(cu_idx - local) > max(1.5 / step, 0.15 * pitch_px)
    # Two collectors are at least an anode, two separators and a cathode apart (about half a
    # pitch even where one is bent): closer traces have caught the same line, and which one
    # is wrong is unknown here (seen on a real roll, around a gap between windings).
    if k_max > 1:
        crowded = (cu_idx[1:] - cu_idx[:-1]) < 0.5 * pitch_px
        jump[1:] |= crowded
        jump[:-1] |= crowded
    cu_idx[jump] = np.nan
    cu_z[jump] = 0.0

    metric = frame.metric(t)
    result.is_roll = True
    result.windings = n_windings
    result.seam_deg = seam_deg
    result.cu_radius_um = (cu_idx * step_um).astype(np.float32)
    result.cu_zscore = cu_z.astype(np.float32)
    _trace_sheets(result, profile[:, : n_search + int(0.3 * pitch_px)], cu_idx, pitch_px, step_um, metric, params,
                  pixel_um)
    inner_edge = np.nanpercentile(cu_idx[0], 5) - 0.25 * pitch_px if np.isfinite(cu_idx[0]).any() else math.nan
    result.roll_inner_radius_um = float(inner_edge * step_um)
    outer = result.sheet_outer_um[n_windings - 1] if n_windings - 1 < result.sheet_outer_um.shape[0] else cu_idx[-1]
    result.roll_outer_radius_um = float(np.nanpercentile(outer, 95)) if np.isfinite(outer).any() else math.nan
    return result


def _trace_sheets(result: SliceRoll, profile: np.ndarray, cu_idx: np.ndarray, pitch_px: float,
                  step_um: float, metric: np.ndarray, params: GeometryParams, pixel_um: float) -> None:
    """Cathode sheet k: the bright band between collector k and collector k + 1."""
    k_max, n_t = cu_idx.shape
    n_rho = profile.shape[1]
    half = int(math.ceil(0.5 * pitch_px))
    offsets = np.arange(-half, half + 1)
    wide = ndimage.gaussian_filter1d(profile, 0.12 * pitch_px, axis=1, mode="nearest")
    gap_len = max(int(math.ceil((params.al_foil_um / pixel_um + 1.0) / params.radial_step_vox)), 1)
    rows = np.arange(n_t)
    shape = (k_max, n_t)
    # Halfway between the roll's dark layers (separator, electrolyte: its 10th percentile) and
    # its coated cathode (the 90th: the cathode fills ~40 % of the stack, the Cu is thin): a
    # band darker than this is a foil without coating, not a sheet to take levels from.
    finite_cu = cu_idx[np.isfinite(cu_idx)]
    lo_r = int(max(np.min(finite_cu), 0)) if finite_cu.size else 0
    hi_r = int(min(np.max(finite_cu) + pitch_px, n_rho)) if finite_cu.size else n_rho
    inside_roll = wide[:, lo_r:hi_r][:, ::2]
    # (both percentiles from one partition: the same values, half the cost)
    coated_level = (0.5 * np.percentile(inside_roll, [10, 90]).sum() if inside_roll.size else -np.inf)
    # Every winding at once, (windings, angles, offsets): the same arithmetic as one winding at
    # a time, in a few large numpy calls (21 windings: 132 -> 100 ms a slice under cProfile).
    a = cu_idx
    b = np.concatenate([cu_idx[1:], cu_idx[-1:] + pitch_px]) if k_max > 1 else a + pitch_px
    b = np.where(np.isfinite(b), b, a + pitch_px)
    ok = np.isfinite(a)
    mid = np.where(ok, np.rint((a + b) / 2), 0).astype(np.int64)
    rel_idx = mid[..., None] + offsets
    flat = np.clip(rel_idx, 0, n_rho - 1) + (rows * n_rho)[None, :, None]
    win = profile.ravel()[flat]
    wwin = wide.ravel()[flat]
    rel = rel_idx.astype(float)
    # Keep the search between the two collectors (20 % of the pitch clear of each).
    allowed = (rel > (a + 0.2 * pitch_px)[..., None]) & (rel < (b - 0.2 * pitch_px)[..., None])
    c = np.argmax(np.where(allowed, wwin, -np.inf), axis=2)
    # A sheet is a peak of the smoothed profile inside the window; a maximum on the window's
    # edge is the flank of a collector where no cathode is (a healthy 21700's last turn read a
    # 7 µm "sheet" over 8°, an 86 % thin FAIL, where the outermost collector's trace strayed
    # 40 µm out before its end and the window's edge met the anode's flank).
    last_off = len(offsets) - 1
    c_in = (c > 0) & (c < last_off)
    c_in &= np.take_along_axis(allowed, np.clip(c - 1, 0, last_off)[..., None], axis=2)[..., 0]
    c_in &= np.take_along_axis(allowed, np.clip(c + 1, 0, last_off)[..., None], axis=2)[..., 0]
    # Levels from the winding's median profile (aligned on the sheet centre): the maximum
    # of a noisy profile is biased upwards, which would bias every thickness down.
    aligned = np.clip(c[..., None] + offsets, 0, len(offsets) - 1)
    quarter = max(half // 2, 1)
    # One base level for both faces, the brighter of the two: the outermost sheet faces
    # electrolyte, darker than an anode, which would otherwise widen it by ~10 %.
    level = np.full(k_max, np.nan)
    for k in np.nonzero(ok.any(axis=1))[0]:
        sample = np.nonzero(ok[k])[0][::4]  # a statistic: every 4th angle is plenty
        if sample.size >= 8:
            # From the coated sheet only: an uncoated tab window can be most of an inner turn
            # (17 mm of 30), and its foil-only profile would set the levels (a generated
            # 18650's coated part of that turn then read 16 % thick).
            coated = wwin[k, sample, c[k, sample]] >= coated_level
            sample = sample[coated] if coated.sum() >= 8 else sample
        template = np.median(win[k][sample[:, None], aligned[k, sample]], axis=0)
        peak_level = float(np.nanmax(template[half - quarter:half + quarter + 1]))
        base_level = max(float(np.nanmin(template[:half + 1])), float(np.nanmin(template[half:])))
        level[k] = 0.5 * (peak_level + base_level)
    idx = np.arange(len(offsets))
    above = win >= level[:, None, None]
    # Bridge the Al foil's dip inside the sheet so the band is one run.
    closed = ndimage.minimum_filter1d(ndimage.maximum_filter1d(above.astype(np.uint8), gap_len, axis=2),
                                      gap_len, axis=2)
    above |= closed.astype(bool)
    # Inner edge: last sample below the level before c; outer: first after c.
    below_lo = (~above) & (idx < c[..., None])
    j_in = np.where(below_lo.any(axis=2), len(offsets) - 1 - np.argmax(below_lo[..., ::-1], axis=2), -1)
    below_hi = (~above) & (idx > c[..., None])
    j_out = np.where(below_hi.any(axis=2), np.argmax(below_hi, axis=2), -1)
    # A collector pressed against the sheet merges with it: the edge is then unmeasurable.
    clear = max(1.5 / params.radial_step_vox, params.cu_foil_um / pixel_um / params.radial_step_vox + 1.0)
    edge_in_abs = mid - half + j_in
    edge_out_abs = mid - half + j_out
    good = ok & c_in & (j_in >= 0) & (j_out > 0) & np.isfinite(level)[:, None]
    contact = good & ((edge_in_abs <= a + clear) | (edge_out_abs >= b - clear))
    good &= ~contact

    def at(j: np.ndarray) -> np.ndarray:
        return np.take_along_axis(win, j[..., None], axis=2)[..., 0]

    j_in_c = np.clip(j_in, 0, len(offsets) - 2)
    j_out_c = np.clip(j_out, 1, len(offsets) - 1)
    level_t = level[:, None]
    v0, v1 = at(j_in_c), at(j_in_c + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        e_in = j_in_c + np.clip((level_t - v0) / (v1 - v0), 0, 1)
        w0, w1 = at(j_out_c - 1), at(j_out_c)
        e_out = j_out_c - 1 + np.clip((w0 - level_t) / (w0 - w1), 0, 1)
    e_in_abs = mid - half + e_in
    e_out_abs = mid - half + e_out
    inner_e = np.where(good, e_in_abs * step_um, np.nan).astype(np.float32)
    outer_e = np.where(good, e_out_abs * step_um, np.nan).astype(np.float32)
    thick = np.where(good, (e_out_abs - e_in_abs) * step_um * metric, np.nan).astype(np.float32)
    gap = np.where(good, ((e_in_abs + e_out_abs) / 2 - a) * step_um * metric, np.nan).astype(np.float32)
    band = (idx >= np.floor(e_in)[..., None]) & (idx <= np.ceil(e_out)[..., None])
    with np.errstate(invalid="ignore"):
        inten = np.where(good, (win * band).sum(axis=2) / np.maximum(band.sum(axis=2), 1), np.nan).astype(np.float32)
    result.sheet_inner_um = inner_e
    result.sheet_outer_um = outer_e
    result.sheet_thickness_um = thick
    result.cu_al_gap_um = gap
    result.sheet_intensity = inten
    result.sheet_cu_contact = contact
    result.sheet_excluded = np.zeros(shape, bool)


def refine_frame(image: np.ndarray, pixel_um: float, frame: EllipticFrame, max_radius_um: float,
                 params: GeometryParams | None = None, iterations: int = 3) -> tuple[EllipticFrame, float, int, float]:
    """Refine the roll's centre and ovality, and find its pitch and winding direction.

    In each angular sector and radial band the layers' radial phase ``arg Σ w exp(2πi rho/p)``
    is measured (weights: the Cu ridge response squared). Going once round the cell this
    phase turns by exactly one cycle, in the winding direction; what remains is the layers'
    radial deviation from a centred round spiral, fitted per band as
    ``c_band + c1 cos t + s1 sin t + rho (c2 cos 2t + s2 sin 2t)``: the first harmonic is the
    centre's offset, the second the ovality (e cos 2α, e sin 2α). Iterated until the
    correction is below a tenth of a voxel.

    Returns
    -------
    frame : EllipticFrame
    pitch_um : float
        NaN when the slice shows no layers.
    direction : int
        +1 when the radius grows with the angle t, else -1.
    score : float
        Normalised autocorrelation at the pitch (0–1): how clearly the slice shows layers.
    """
    params = params or GeometryParams()
    if not (math.isfinite(max_radius_um) and max_radius_um > 0):
        return frame, math.nan, 1, 0.0
    step = params.radial_step_vox
    rho_max_px = max_radius_um / pixel_um - CAN_EDGE_MARGIN_PX
    rho = np.arange(0.0, rho_max_px, step)
    n_t = min(int(math.ceil(2 * np.pi * rho_max_px / params.arc_step_vox / 8.0)) * 8, 1440)
    t = np.linspace(0.0, 2 * np.pi, n_t, endpoint=False)
    math.hypot(0.8, params.cu_foil_um / pixel_um / 2.35)
    n_sec = 72
    sec_of_t = np.arange(n_t) * n_sec // n_t
    sec_t = (np.arange(n_sec) + 0.5) * 2 * np.pi / n_sec
    pitch_px = math.nan
    direction = 1
    best_quality, best_frame = -1.0, frame
    for it in range(iterations):
        raw = unwrap(image, frame, t, rho)
        smooth = ndimage.gaussian_filter1d(raw, 1.0, axis=0, mode="wrap")
        est, score = estimate_pitch(smooth[:: max(1, n_t // 90), int(0.1 * len(rho)):], step * pixel_um, params)
        if not math.isfinite(est) or score < params.min_roll_score:
            return frame, math.nan, 1, 0.0
        pitch_px = est / pixel_um / step  # in rho samples
        # The local Fourier coefficient of the detrended intensity at the pitch frequency.
        weights = smooth - ndimage.uniform_filter1d(smooth, max(int(round(pitch_px)), 3), axis=1, mode="nearest")
        band_w = 2.0 * pitch_px
        band_of_rho = (np.arange(len(rho)) // band_w).astype(int)
        n_band = int(band_of_rho.max()) + 1
        key = (sec_of_t[:, None] * n_band + band_of_rho[None, :]).ravel()
        carrier = np.exp(2j * np.pi * np.arange(len(rho)) / pitch_px)[None, :]
        zw = (weights * carrier).ravel()
        z = (np.bincount(key, weights=zw.real, minlength=n_sec * n_band)
             + 1j * np.bincount(key, weights=zw.imag, minlength=n_sec * n_band)).reshape(n_sec, n_band)
        wsum = np.bincount(key, weights=np.abs(weights).ravel(), minlength=n_sec * n_band).reshape(n_sec, n_band)
        # Quality of the current frame: coherence of all layers with one ideal spiral.
        spiral = np.exp(-1j * sec_t)[:, None]
        quality = max(float(np.abs((z * spiral).sum(axis=0)).sum()), float(np.abs((z * np.conj(spiral)).sum(axis=0)).sum()))
        quality /= max(float(wsum.sum()), 1e-12)
        if it and quality <= best_quality:
            frame = best_frame  # the last step made the spiral less coherent: keep the previous
            break
        best_quality, best_frame = quality, frame
        # Neighbouring sectors agree: average the phasors to steady the phase against noise.
        z = z + 0.5 * (np.roll(z, 1, axis=0) + np.roll(z, -1, axis=0))
        wsum = wsum + 0.5 * (np.roll(wsum, 1, axis=0) + np.roll(wsum, -1, axis=0))
        coherence = np.abs(z) / np.maximum(wsum, 1e-12)
        band_rho = (np.arange(n_band) + 0.5) * band_w * step  # pixels
        band_coherence = np.median(coherence, axis=0)
        good_band = (band_coherence > 0.5 * np.percentile(band_coherence, 75)) & (band_rho > 0.1 * rho_max_px)
        if good_band.sum() < 2:
            return frame, math.nan, 1, 0.0
        phases = np.unwrap(np.angle(z[:, good_band]), axis=0)
        # Closing the circle: the phase turns by one cycle in the winding direction.
        zg = z[:, good_band]
        turns = np.angle(np.roll(zg, -1, axis=0) * np.conj(zg)).sum(axis=0) / (2 * np.pi)
        direction = 1 if np.median(turns) > 0 else -1
        dev_px = (phases - direction * sec_t[:, None]) / (2 * np.pi) * pitch_px * step
        bands = np.nonzero(good_band)[0]
        rows, rhs, wts = [], [], []
        for j, b in enumerate(bands):
            for si in range(n_sec):
                dummy = np.zeros(len(bands))
                dummy[j] = 1.0
                tt, rr = sec_t[si], band_rho[b]
                rows.append(np.r_[dummy, math.cos(tt), math.sin(tt), rr * math.cos(2 * tt), rr * math.sin(2 * tt)])
                rhs.append(dev_px[si, j])
                wts.append(coherence[si, b])
        design, rhs_a, w = np.array(rows), np.array(rhs), np.array(wts)
        coef, *_ = np.linalg.lstsq(design * w[:, None], rhs_a * w, rcond=None)
        for _ in range(2):  # down-weight sectors disturbed by defects, tabs or streaks
            res = rhs_a - design @ coef
            s = 1.4826 * np.median(np.abs(res)) + 1e-6
            ww = w * np.clip(1 - (res / (4 * s)) ** 2, 0, None) ** 2
            coef, *_ = np.linalg.lstsq(design * ww[:, None], rhs_a * ww, rcond=None)
        c1, s1, c2, s2 = coef[-4:]
        ex = frame.ovality * math.cos(2 * frame.alpha_rad) + c2
        ey = frame.ovality * math.sin(2 * frame.alpha_rad) + s2
        center = (frame.center_yx_px[0] + s1, frame.center_yx_px[1] + c1)
        frame = EllipticFrame((float(center[0]), float(center[1])), float(math.hypot(ex, ey)),
                              float(math.atan2(ey, ex) / 2))
        if math.hypot(c1, s1) < 0.1 and math.hypot(c2, s2) * rho_max_px < 0.1:
            break
    return frame, float(pitch_px * step * pixel_um), int(direction), float(score)
