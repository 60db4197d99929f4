"""Placing an ROI volume in its overview: from the planned centre, refined by correlation.

The ROI volume (fine voxels) is smoothed and resampled to the overview's voxel size; the
central part of the field of view (the square inscribed in the reconstructed disc, where
local tomography is trustworthy) is the template. Normalised cross-correlation
(``skimage.feature.match_template``) over a search window around the planned centre finds
the best integer position, refined to sub-voxel precision by a parabola through the peak
and its neighbours on each axis. Both images are high-pass filtered first, since interior
reconstructions carry a smooth offset the overview does not have. The ROI is assumed to
be scanned with the same orientation as the overview (same mount); rotation is not searched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.feature import match_template

#: Below this correlation the planned centre is kept.
MIN_SCORE = 0.3


@dataclass
class Registration:
    """Where an ROI volume sits in its overview.

    Attributes
    ----------
    center_zyx_px : list of float
        Position of the ROI volume's centre voxel in overview voxels.
    planned_zyx_px : list of float
        The plan's centre.
    shift_px : list of float
        ``center - planned`` in overview voxels.
    scale : list of float
        ROI voxel size / overview voxel size per axis.
    score : float or None
        Peak normalised cross-correlation (None when not refined).
    method : str
        ``"ncc"`` (refined) or ``"plan"`` (planned centre kept).
    note : str
        Why the plan was kept, when it was.
    """

    center_zyx_px: list[float]
    planned_zyx_px: list[float]
    shift_px: list[float]
    scale: list[float]
    score: float | None
    method: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def roi_to_overview(self, index_zyx: Sequence[float], roi_shape: Sequence[int]) -> np.ndarray:
        """Overview voxel position of an ROI voxel index.

        Parameters
        ----------
        index_zyx : sequence of float
            Voxel index in the ROI volume.
        roi_shape : sequence of int
            Shape of the ROI volume.

        Returns
        -------
        numpy.ndarray
            (z, y, x) in overview voxels.
        """
        mid = (np.asarray(roi_shape, dtype=float) - 1.0) / 2.0
        rel = (np.asarray(index_zyx, dtype=float) - mid) * np.asarray(self.scale)
        return np.asarray(self.center_zyx_px) + rel


def _as3d(a: np.ndarray) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float32)
    return arr[None] if arr.ndim == 2 else arr


def _highpass(a: np.ndarray, sigma: float) -> np.ndarray:
    sig = [0.0 if n < 4 else sigma for n in a.shape]
    return a - ndimage.gaussian_filter(a, sig)


def downsample_to(roi: np.ndarray, scale: Sequence[float]) -> np.ndarray:
    """Resample an ROI volume to the overview grid (anti-aliased linear interpolation).

    Parameters
    ----------
    roi : numpy.ndarray
        ``(z, y, x)`` ROI volume.
    scale : sequence of 3 float
        ROI voxel size / overview voxel size per axis (< 1 for a finer ROI).

    Returns
    -------
    numpy.ndarray
        float32; the centre voxel maps to the centre voxel.
    """
    arr = _as3d(roi)
    scale = np.asarray(scale, dtype=float)
    sigma = np.where(scale < 1.0, np.maximum(0.0, (1.0 / scale - 1.0) / 2.0), 0.0)
    smooth = ndimage.gaussian_filter(arr, sigma) if np.any(sigma > 0) else arr
    out_shape = np.maximum(1, np.round((np.asarray(arr.shape) - 1) * scale).astype(int) + 1)
    grids = [
        (np.arange(m) - (m - 1) / 2.0) / s + (n - 1) / 2.0 if m > 1 else np.array([(n - 1) / 2.0])
        for m, n, s in zip(out_shape, arr.shape, scale, strict=True)
    ]
    coords = np.meshgrid(*grids, indexing="ij")
    return ndimage.map_coordinates(smooth, coords, order=1, mode="nearest").astype(np.float32)


def _parabola(c_minus: float, c0: float, c_plus: float) -> float:
    denom = c_minus - 2.0 * c0 + c_plus
    if denom >= 0 or not np.isfinite(denom):
        return 0.0
    return float(np.clip(0.5 * (c_minus - c_plus) / denom, -0.5, 0.5))


def register_roi(
    overview: np.ndarray,
    roi: np.ndarray,
    *,
    overview_spacing_um: Sequence[float],
    roi_spacing_um: Sequence[float],
    planned_center_zyx_px: Sequence[float],
    search_px: float = 8.0,
    fov_diameter_px: float | None = None,
    highpass_px: float = 4.0,
) -> Registration:
    """Find where an ROI volume sits in the overview volume.

    Parameters
    ----------
    overview : numpy.ndarray
        Overview volume ``(z, y, x)`` (or one 2-D slice); may be lazy (only the search
        window is read).
    roi : numpy.ndarray
        ROI volume ``(z, y, x)`` (or one slice).
    overview_spacing_um, roi_spacing_um : sequence of 3 float
        Voxel sizes (z, y, x).
    planned_center_zyx_px : sequence of 3 float
        The plan's centre in overview voxels.
    search_px : float
        Largest correction searched, in overview voxels per axis.
    fov_diameter_px : float, optional
        Diameter of the reconstructed disc in ROI voxels; default the ROI's width.
    highpass_px : float
        Gaussian sigma (overview voxels) of the smooth part removed before correlating.

    Returns
    -------
    Registration
    """
    planned = np.asarray(planned_center_zyx_px, dtype=float)
    ov_shape = np.asarray(overview.shape if np.ndim(overview) == 3 else (1, *np.shape(overview)))
    scale = np.asarray(roi_spacing_um, dtype=float) / np.asarray(overview_spacing_um, dtype=float)

    def keep(note: str, score: float | None = None) -> Registration:
        return Registration([float(v) for v in planned], [float(v) for v in planned], [0.0, 0.0, 0.0],
                            [float(s) for s in scale], score, "plan", note)

    small = downsample_to(roi, scale)
    n_y, n_x = small.shape[1:]
    diameter = (fov_diameter_px if fov_diameter_px is not None else min(np.shape(roi)[-2:])) * scale[1]
    side = int(np.floor(min(diameter / np.sqrt(2.0), n_y, n_x)))
    if side < 5:
        return keep(f"the ROI spans only {side} overview voxels; too small to register")
    y0, x0 = (n_y - side) // 2, (n_x - side) // 2
    template = small[:, y0 : y0 + side, x0 : x0 + side]
    t_shape = np.asarray(template.shape)
    # template centre relative to the ROI centre, in overview voxels
    t_offset = np.array([0.0, y0 + (side - 1) / 2.0 - (n_y - 1) / 2.0, x0 + (side - 1) / 2.0 - (n_x - 1) / 2.0])

    half = (t_shape - 1) / 2.0
    search = np.array([search_px if ov_shape[0] > 1 else 0.0, search_px, search_px])
    start = np.floor(planned + t_offset - half - search).astype(int)
    stop = np.ceil(planned + t_offset + half + search).astype(int) + 1
    start = np.clip(start, 0, ov_shape)
    stop = np.clip(stop, 0, ov_shape)
    window_shape = stop - start
    if np.any(window_shape < t_shape):
        return keep("the planned position is too close to the overview's edge to search")
    ov = overview if np.ndim(overview) == 3 else np.asarray(overview)[None]
    window = np.asarray(ov[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]], dtype=np.float32)
    if highpass_px > 0:
        window = _highpass(window, highpass_px)
        template = _highpass(template, highpass_px)
    if float(template.std()) == 0.0:
        return keep("the ROI volume is uniform; nothing to register")
    ncc = match_template(window, template)
    peak = np.array(np.unravel_index(int(np.argmax(ncc)), ncc.shape))
    score = float(ncc[tuple(peak)])
    sub = np.zeros(3)
    for axis in range(3):
        if 0 < peak[axis] < ncc.shape[axis] - 1:
            lo, hi = peak.copy(), peak.copy()
            lo[axis] -= 1
            hi[axis] += 1
            sub[axis] = _parabola(float(ncc[tuple(lo)]), score, float(ncc[tuple(hi)]))
    found = start + peak + sub + half - t_offset
    if score < MIN_SCORE:
        return keep(f"best correlation {score:.2f} is below {MIN_SCORE}", score)
    return Registration(
        [round(float(v), 3) for v in found],
        [float(v) for v in planned],
        [round(float(v), 3) for v in found - planned],
        [float(s) for s in scale],
        round(score, 4),
        "ncc",
    )
