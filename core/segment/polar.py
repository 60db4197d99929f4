"""The polar sampling the learned segmenter works on, its input normalisation, and the way back.

A slice is unwrapped about the roll's (elliptical) frame on a grid of angles ``t`` and
elliptical radii ``rho``: the layers of the jelly roll become nearly straight lines along
``t``, so a small 2-D network sees the same pattern at every angle. Sampling is tied to the
voxel (one voxel radially; angles spaced by ``arc_step_vox`` voxels of arc at a reference
radius near the can), so a volume costs about as many samples as it has voxels inside the can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.geometry.unwrap import EllipticFrame, unwrap

# Percentiles of the roll's samples that map to 0 and 1 (see ``normalise``).
NORM_LOW_PCT = 5.0
NORM_HIGH_PCT = 80.0


@dataclass(frozen=True)
class PolarSampling:
    """Grid spacing in voxels: radial step, and arc step at the reference radius."""

    radial_step_vox: float = 1.0
    arc_step_vox: float = 1.5


def polar_axes(pixel_um: float, r_max_um: float, r_ref_um: float | None = None,
               sampling: PolarSampling = PolarSampling(), multiple: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Angles (radians, ``n_t`` a multiple of ``multiple``) and radii (pixels) of the grid."""
    r_ref = r_max_um if r_ref_um is None else r_ref_um
    n_t = max(int(math.ceil(2 * math.pi * r_ref / (sampling.arc_step_vox * pixel_um))), multiple)
    n_t = int(math.ceil(n_t / multiple) * multiple)
    step_px = sampling.radial_step_vox
    n_rho = int(math.ceil(r_max_um / (step_px * pixel_um))) + 1
    t = np.arange(n_t) * (2 * np.pi / n_t)
    rho_px = np.arange(n_rho) * step_px
    return t, rho_px


def to_polar(image: np.ndarray, frame: EllipticFrame, t: np.ndarray, rho_px: np.ndarray) -> np.ndarray:
    """``image`` on the (t, rho) grid, float32 (n_t, n_rho)."""
    return unwrap(image, frame, t, rho_px, order=1)


def normalisation_levels(polar: np.ndarray, rho_um: np.ndarray, roll_inner_um: float,
                         roll_outer_um: float) -> tuple[float, float]:
    """The input levels mapped to 0 and 1: percentiles of the samples inside the roll.

    The roll is a repeating stack (separator 12 %, anode 43 %, Al 5 %, cathode 37 %, Cu 3 % of
    a winding), so its 5th percentile sits near the separator and its 80th on the cathode
    coating whatever the scanner's gain, offset or voxel size.
    """
    sel = (rho_um >= roll_inner_um) & (rho_um <= roll_outer_um)
    if sel.sum() < 4:
        sel = np.ones_like(rho_um, bool)
    vals = polar[:, sel]
    vals = vals[:: max(1, vals.shape[0] // 256)]
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [NORM_LOW_PCT, NORM_HIGH_PCT])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalise(polar: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    lo, hi = levels
    return ((polar - lo) / (hi - lo)).astype(np.float32)


def image_polar_coords(frame: EllipticFrame, shape_yx: tuple[int, int],
                       box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Angle t (radians, [0, 2π)) and elliptical radius (pixels) of every pixel of ``box``
    (y0, x0, y1, x1; default the whole image): the inverse of ``EllipticFrame.to_yx``."""
    y0, x0, y1, x1 = box or (0, 0, shape_yx[0], shape_yx[1])
    dy = (np.arange(y0, y1, dtype=np.float64) - frame.center_yx_px[0])[:, None]
    dx = (np.arange(x0, x1, dtype=np.float64) - frame.center_yx_px[1])[None, :]
    a, e = frame.alpha_rad, frame.ovality
    u = (dx * math.cos(a) + dy * math.sin(a)) / (1 + e)
    v = (-dx * math.sin(a) + dy * math.cos(a)) / (1 - e)
    rho = np.hypot(u, v)
    t = (np.arctan2(v, u) + a) % (2 * np.pi)
    return t, rho


def polar_to_image(values: np.ndarray, t: np.ndarray, rho_px: np.ndarray, frame: EllipticFrame,
                   shape_yx: tuple[int, int], fill: float | np.ndarray = 0.0,
                   box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Resample polar maps (C, n_t, n_rho) back onto image pixels: (C, ny, nx) of ``box``.

    Bilinear, periodic in angle; pixels beyond the grid's largest radius get ``fill``
    (a scalar or one value per map).
    """
    tt, rr = image_polar_coords(frame, shape_yx, box)
    n_t = t.size
    dt = 2 * np.pi / n_t
    ti = (tt - t[0]) / dt
    ri = rr / (rho_px[1] - rho_px[0]) if rho_px.size > 1 else rr
    # One extra row makes the angle periodic for the interpolation.
    wrapped = np.concatenate([values, values[:, :1]], axis=1)
    out = np.empty((values.shape[0],) + tt.shape, np.float32)
    fills = np.broadcast_to(np.asarray(fill, np.float32), (values.shape[0],))
    outside = ri > rho_px.size - 1
    for c in range(values.shape[0]):
        out[c] = ndimage.map_coordinates(wrapped[c], [ti, ri], order=1, mode="nearest", prefilter=False)
        out[c][outside] = fills[c]
    return out
