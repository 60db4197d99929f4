"""Parallel-beam forward projection of sampled images (ray-driven, linear interpolation).

Used to simulate scans of generated cells, in particular interior (ROI) scans: the
rotation axis may sit anywhere in the image and the detector may be narrower than the
object, which is what a local-tomography acquisition records.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def forward_project(
    image: np.ndarray,
    angles_deg: Sequence[float] | np.ndarray,
    *,
    n_det: int | None = None,
    det_spacing: float = 1.0,
    axis_yx: tuple[float, float] | None = None,
    step: float = 0.5,
    order: int = 1,
) -> np.ndarray:
    """Line integrals through an image for parallel rays (pixel units).

    Parameters
    ----------
    image : numpy.ndarray
        ``(ny, nx)`` image; values outside it are 0.
    angles_deg : array_like
        Angles in degrees (convention of :mod:`core.recon.phantoms`).
    n_det : int, optional
        Detector columns, centred on the axis (column ``(n_det - 1) / 2``); default wide
        enough to see the whole image.
    det_spacing : float
        Detector pitch in image pixels (< 1 for a finer detector).
    axis_yx : (row, column), optional
        Where the rotation axis pierces the image (pixels); default the image centre.
    step : float
        Sampling step along each ray in pixels.
    order : int
        Interpolation order (``scipy.ndimage.map_coordinates``).

    Returns
    -------
    numpy.ndarray
        ``(n_angles, n_det)`` float32.
    """
    img = np.asarray(image, dtype=np.float32)
    ny, nx = img.shape
    ay, ax = ((ny - 1) / 2.0, (nx - 1) / 2.0) if axis_yx is None else axis_yx
    corners = np.array([[0, 0], [0, nx - 1], [ny - 1, 0], [ny - 1, nx - 1]], dtype=float)
    reach = float(np.max(np.hypot(corners[:, 0] - ay, corners[:, 1] - ax))) + 1.0
    if n_det is None:
        n_det = int(np.ceil(2 * reach / det_spacing)) + 1
    t = (np.arange(n_det) - (n_det - 1) / 2.0) * det_spacing
    s = np.arange(-reach, reach + step / 2, step)
    out = np.empty((len(angles_deg), n_det), dtype=np.float32)
    for i, theta in enumerate(np.radians(np.asarray(angles_deg, dtype=float))):
        c, sn = np.cos(theta), np.sin(theta)
        x = t[:, None] * c - s[None, :] * sn
        y = t[:, None] * sn + s[None, :] * c
        rows = ay - y
        cols = ax + x
        values = ndimage.map_coordinates(img, [rows.ravel(), cols.ravel()], order=order,
                                         mode="constant", cval=0.0, prefilter=False)
        out[i] = values.reshape(n_det, s.size).sum(axis=1) * step
    return out
