"""Analytic test objects for the reconstructors: ellipses and ellipsoids with exact projections.

The 2-D phantom is the modified (high-contrast) Shepp–Logan head of Toft; the 3-D phantom
is its ellipsoid version (Kak & Slaney). Both are defined in the unit square/cube
``[-1, 1]`` and scaled so that the unit circle spans the reconstruction grid.

Conventions (shared with :mod:`core.recon.fbp` and :mod:`core.recon.fdk`):

* image pixel ``(i, j)`` (row, column) of an ``N × N`` grid sits at ``x = j - c``,
  ``y = c - i`` pixels with ``c = (N - 1) / 2`` (``y`` points up, to the first row);
* the parallel projection at angle ``θ`` integrates along the line
  ``x cos θ + y sin θ = t``; detector column ``k`` sits at ``t = k - center``;
* cone beam: the source sits at distance ``sod`` from the axis on the ``s`` axis
  (``s = -x sin β + y cos β``), the flat detector at distance ``sdd`` from the source;
  detector column ``u`` runs along ``t``, detector row ``v`` along ``z`` (row 0 images
  slice 0, the lowest ``z``).

Line integrals are returned in *pixel* units (lengths measured in pixels of the grid), so a
reconstruction in "per pixel" units gives back the phantom's values directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Modified Shepp–Logan (Toft): value, semi-axes a, b, centre x0, y0, rotation (degrees).
SHEPP_LOGAN_2D: tuple[tuple[float, ...], ...] = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)

#: 3-D modified Shepp–Logan: value, semi-axes a, b, c, centre x0, y0, z0, rotation about z.
SHEPP_LOGAN_3D: tuple[tuple[float, ...], ...] = (
    (1.0, 0.69, 0.92, 0.81, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.78, 0.0, -0.0184, 0.0, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.22, 0.0, 0.0, -18.0),
    (-0.2, 0.16, 0.41, 0.28, -0.22, 0.0, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.41, 0.0, 0.35, -0.15, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, 0.1, 0.25, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, -0.1, 0.25, 0.0),
    (0.1, 0.046, 0.023, 0.05, -0.08, -0.605, 0.0, 0.0),
    (0.1, 0.023, 0.023, 0.02, 0.0, -0.606, 0.0, 0.0),
    (0.1, 0.023, 0.046, 0.02, 0.06, -0.605, 0.0, 0.0),
)


def _ellipses(ellipses: Sequence[Sequence[float]] | None) -> np.ndarray:
    return np.asarray(SHEPP_LOGAN_2D if ellipses is None else ellipses, dtype=float).reshape(-1, 6)


def _ellipsoids(ellipsoids: Sequence[Sequence[float]] | None) -> np.ndarray:
    return np.asarray(SHEPP_LOGAN_3D if ellipsoids is None else ellipsoids, dtype=float).reshape(-1, 8)


def ellipse_image(
    size: int,
    ellipses: Sequence[Sequence[float]] | None = None,
    *,
    center: float | None = None,
    supersample: int = 1,
) -> np.ndarray:
    """Rasterise ellipses on an ``size × size`` grid.

    Parameters
    ----------
    size : int
        Grid size N; the unit circle has a radius of ``N / 2`` pixels.
    ellipses : sequence of (value, a, b, x0, y0, phi_deg), optional
        Default :data:`SHEPP_LOGAN_2D`.
    center : float, optional
        Pixel index of the origin (both axes); default ``(N - 1) / 2``.
    supersample : int
        Average ``supersample²`` point samples per pixel (1 = point sampling).

    Returns
    -------
    numpy.ndarray
        float64 image (row, column).
    """
    e = _ellipses(ellipses)
    c = (size - 1) / 2.0 if center is None else float(center)
    scale = size / 2.0
    ss = max(1, int(supersample))
    offsets = (np.arange(ss) + 0.5) / ss - 0.5
    out = np.zeros((size, size))
    idx = np.arange(size, dtype=float)
    for oy in offsets:
        for ox in offsets:
            x = ((idx + ox - c) / scale)[None, :]
            y = ((c - idx - oy) / scale)[:, None]
            for value, a, b, x0, y0, phi in e:
                cp, sp = np.cos(np.radians(phi)), np.sin(np.radians(phi))
                xr = (x - x0) * cp + (y - y0) * sp
                yr = -(x - x0) * sp + (y - y0) * cp
                out += value * ((xr / a) ** 2 + (yr / b) ** 2 <= 1.0)
    return out / (ss * ss)


def ellipse_sinogram(
    size: int,
    angles_deg: Sequence[float] | np.ndarray,
    n_det: int | None = None,
    ellipses: Sequence[Sequence[float]] | None = None,
    *,
    center: float | None = None,
    det_spacing: float = 1.0,
) -> np.ndarray:
    """Exact parallel-beam line integrals of ellipses.

    Parameters
    ----------
    size : int
        Grid size N of the matching image (sets the scale: unit circle = N/2 pixels).
    angles_deg : array_like
        Projection angles in degrees.
    n_det : int, optional
        Detector columns; default ``N``.
    ellipses : sequence, optional
        Default :data:`SHEPP_LOGAN_2D`.
    center : float, optional
        Detector column of the rotation axis; default ``(n_det - 1) / 2``.
    det_spacing : float
        Detector column pitch in image pixels.

    Returns
    -------
    numpy.ndarray
        Sinogram ``(n_angles, n_det)`` of line integrals in pixel units.
    """
    e = _ellipses(ellipses)
    n_det = size if n_det is None else int(n_det)
    c = (n_det - 1) / 2.0 if center is None else float(center)
    scale = size / 2.0
    theta = np.radians(np.asarray(angles_deg, dtype=float))[:, None]
    t = ((np.arange(n_det) - c) * det_spacing / scale)[None, :]
    out = np.zeros((theta.shape[0], n_det))
    for value, a, b, x0, y0, phi in e:
        rel = theta - np.radians(phi)
        s2 = (a * np.cos(rel)) ** 2 + (b * np.sin(rel)) ** 2
        tau = t - (x0 * np.cos(theta) + y0 * np.sin(theta))
        inside = s2 - tau**2
        out += np.where(inside > 0, 2.0 * value * a * b * np.sqrt(np.maximum(inside, 0.0)) / s2, 0.0)
    return out * scale


def ellipsoid_volume(
    shape: tuple[int, int, int],
    ellipsoids: Sequence[Sequence[float]] | None = None,
    *,
    scale: float | None = None,
) -> np.ndarray:
    """Rasterise ellipsoids on a (z, y, x) grid, point-sampled at voxel centres.

    Parameters
    ----------
    shape : (nz, ny, nx)
        Grid; the origin is the grid centre.
    ellipsoids : sequence of (value, a, b, c, x0, y0, z0, phi_deg), optional
        Default :data:`SHEPP_LOGAN_3D`.
    scale : float, optional
        Voxels per phantom unit; default ``nx / 2``.

    Returns
    -------
    numpy.ndarray
        float64 volume.
    """
    e = _ellipsoids(ellipsoids)
    nz, ny, nx = shape
    scale = nx / 2.0 if scale is None else float(scale)
    z = ((np.arange(nz) - (nz - 1) / 2.0) / scale)[:, None, None]
    y = (((ny - 1) / 2.0 - np.arange(ny)) / scale)[None, :, None]
    x = ((np.arange(nx) - (nx - 1) / 2.0) / scale)[None, None, :]
    out = np.zeros(shape)
    for value, a, b, cc, x0, y0, z0, phi in e:
        cp, sp = np.cos(np.radians(phi)), np.sin(np.radians(phi))
        xr = (x - x0) * cp + (y - y0) * sp
        yr = -(x - x0) * sp + (y - y0) * cp
        out += value * ((xr / a) ** 2 + (yr / b) ** 2 + ((z - z0) / cc) ** 2 <= 1.0)
    return out


def ellipsoid_cone_projections(
    angles_deg: Sequence[float] | np.ndarray,
    det_shape: tuple[int, int],
    *,
    sod: float,
    sdd: float,
    det_spacing: float | tuple[float, float] = 1.0,
    scale: float,
    ellipsoids: Sequence[Sequence[float]] | None = None,
    det_center: tuple[float, float] | None = None,
) -> np.ndarray:
    """Exact cone-beam line integrals of ellipsoids on a flat detector (circular orbit).

    Parameters
    ----------
    angles_deg : array_like
        Source angles β in degrees.
    det_shape : (n_rows, n_cols)
        Detector size.
    sod, sdd : float
        Source–axis and source–detector distances, in voxel units.
    det_spacing : float or (row, column)
        Detector pixel pitch, in voxel units measured at the detector.
    scale : float
        Voxels per phantom unit (as in :func:`ellipsoid_volume`).
    ellipsoids : sequence, optional
        Default :data:`SHEPP_LOGAN_3D`.
    det_center : (row, column), optional
        Where the central ray hits the detector; default the detector centre.

    Returns
    -------
    numpy.ndarray
        ``(n_angles, n_rows, n_cols)`` line integrals in voxel units.
    """
    e = _ellipsoids(ellipsoids)
    n_rows, n_cols = det_shape
    dv, du = (det_spacing, det_spacing) if np.ndim(det_spacing) == 0 else det_spacing
    cv, cu = ((n_rows - 1) / 2.0, (n_cols - 1) / 2.0) if det_center is None else det_center
    beta = np.radians(np.asarray(angles_deg, dtype=float))
    u = (np.arange(n_cols) - cu) * du
    v = (np.arange(n_rows) - cv) * dv
    out = np.zeros((beta.size, n_rows, n_cols))
    for ia, b in enumerate(beta):
        t_hat = np.array([np.cos(b), np.sin(b), 0.0])
        s_hat = np.array([-np.sin(b), np.cos(b), 0.0])
        src = sod * s_hat
        det = (
            -(sdd - sod) * s_hat[None, None, :]
            + u[None, :, None] * t_hat[None, None, :]
            + v[:, None, None] * np.array([0.0, 0.0, 1.0])[None, None, :]
        )
        d = det - src
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        for value, a, bb, cc, x0, y0, z0, phi in e:
            cp, sp = np.cos(np.radians(phi)), np.sin(np.radians(phi))
            rot = np.array([[cp, sp, 0.0], [-sp, cp, 0.0], [0.0, 0.0, 1.0]])
            axes = np.array([a, bb, cc]) * scale
            p0 = rot @ (src - np.array([x0, y0, z0]) * scale) / axes
            dd = (d @ rot.T) / axes
            qa = np.einsum("...i,...i->...", dd, dd)
            qb = dd @ p0
            qc = p0 @ p0 - 1.0
            disc = qb * qb - qa * qc
            out[ia] += value * np.where(disc > 0, 2.0 * np.sqrt(np.maximum(disc, 0.0)) / qa, 0.0)
    return out


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square difference, optionally inside a boolean mask.

    Parameters
    ----------
    a, b : numpy.ndarray
        Same shape.
    mask : numpy.ndarray of bool, optional
        Where to compare.

    Returns
    -------
    float
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if mask is not None:
        diff = diff[mask]
    return float(np.sqrt(np.mean(diff * diff)))


def disk_mask(size: int, radius: float | None = None, center: float | None = None) -> np.ndarray:
    """Boolean disc on a ``size × size`` grid.

    Parameters
    ----------
    size : int
        Grid size.
    radius : float, optional
        Pixels; default ``size / 2``.
    center : float, optional
        Default ``(size - 1) / 2``.

    Returns
    -------
    numpy.ndarray of bool
    """
    c = (size - 1) / 2.0 if center is None else float(center)
    r = size / 2.0 if radius is None else float(radius)
    yy, xx = np.ogrid[:size, :size]
    return (yy - c) ** 2 + (xx - c) ** 2 <= r * r
