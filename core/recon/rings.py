"""Ring-artifact removal: stripe filters applied to sinograms before reconstruction.

A detector pixel whose response differs from its neighbours adds the same offset to its
column at every angle: a vertical stripe in the sinogram, a ring in the slice. Methods:

``sort``
    Vo, Atwood & Drakopoulos (2018, Opt. Express 26, 28396), "sorting-based" removal:
    sort each column along the angle axis, median-filter the sorted sinogram across
    columns, and put the values back in their original order. Real structure sorts into
    smooth intensity profiles that the median keeps; a stripe is a column-wise offset that
    the median removes.
``mean``
    Normalisation by the column means: subtract the difference between each column's mean
    over all angles and a median-smoothed version of that profile. Fast; handles constant
    offsets (full stripes) well, not partial ones.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METHODS: tuple[str, ...] = ("none", "sort", "mean")


def _odd(size: int) -> int:
    size = max(3, int(size))
    return size if size % 2 else size + 1


def remove_stripes_sorting(sinogram: np.ndarray, size: int = 21) -> np.ndarray:
    """Sorting-based stripe removal (Vo et al. 2018, algorithm 3) on one sinogram.

    Parameters
    ----------
    sinogram : numpy.ndarray
        ``(n_angles, n_det)``.
    size : int
        Median window across detector columns (odd; larger removes wider stripes).

    Returns
    -------
    numpy.ndarray
        Corrected sinogram, float32.
    """
    sino = np.asarray(sinogram, dtype=np.float32)
    order = np.argsort(sino, axis=0, kind="stable")
    sorted_sino = np.take_along_axis(sino, order, axis=0)
    smoothed = ndimage.median_filter(sorted_sino, size=(1, _odd(size)), mode="reflect")
    out = np.empty_like(sino)
    np.put_along_axis(out, order, smoothed, axis=0)
    return out


def remove_stripes_mean(sinogram: np.ndarray, size: int = 21) -> np.ndarray:
    """Column-mean normalisation stripe removal on one sinogram.

    Parameters
    ----------
    sinogram : numpy.ndarray
        ``(n_angles, n_det)``.
    size : int
        Median window (columns) defining the smooth profile.

    Returns
    -------
    numpy.ndarray
        Corrected sinogram, float32.
    """
    sino = np.asarray(sinogram, dtype=np.float32)
    profile = sino.mean(axis=0)
    smooth = ndimage.median_filter(profile, size=_odd(size), mode="reflect")
    return sino - (profile - smooth)[None, :]


def remove_rings(data: np.ndarray, method: str = "sort", size: int = 21) -> np.ndarray:
    """Remove stripes from a sinogram or from every row of a projection stack.

    Parameters
    ----------
    data : numpy.ndarray
        ``(n_angles, n_det)`` sinogram or ``(n_angles, n_rows, n_det)`` projections.
    method : {"sort", "mean", "none"}
        See the module docstring.
    size : int
        Filter width across detector columns.

    Returns
    -------
    numpy.ndarray
        Same shape, float32.

    Raises
    ------
    ValueError
        Unknown method or shape.
    """
    if method not in METHODS:
        raise ValueError(f"unknown ring removal {method!r}; choose one of {', '.join(METHODS)}")
    arr = np.asarray(data, dtype=np.float32)
    if method == "none":
        return arr
    one = remove_stripes_sorting if method == "sort" else remove_stripes_mean
    if arr.ndim == 2:
        return one(arr, size)
    if arr.ndim != 3:
        raise ValueError(f"expected a sinogram or projections, got shape {arr.shape}")
    out = np.empty_like(arr)
    for r in range(arr.shape[1]):
        out[:, r, :] = one(arr[:, r, :], size)
    return out


def radial_profile(image: np.ndarray, bin_width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal mean of an image about the grid centre.

    Parameters
    ----------
    image : numpy.ndarray
        ``(N, N)``.
    bin_width : float
        Radial bin width in pixels.

    Returns
    -------
    radii, means : numpy.ndarray
        Bin centres (pixels) and the mean of the image in each bin.
    """
    n = image.shape[-1]
    c = (n - 1) / 2.0
    yy, xx = np.indices(image.shape[-2:])
    r = np.hypot(yy - c, xx - c).ravel()
    bins = (r / bin_width).astype(np.intp)
    counts = np.bincount(bins)
    sums = np.bincount(bins, weights=np.asarray(image, dtype=float).ravel())
    means = sums / np.maximum(counts, 1)
    return (np.arange(means.size) + 0.5) * bin_width, means


def ring_amplitude(artifact: np.ndarray, radius: float, width: float = 3.0) -> float:
    """Strength of a ring: RMS of the azimuthal mean of an artifact image near a radius.

    Rings are rotationally symmetric, so the azimuthal mean keeps them and averages away
    everything else (noise, streaks, local damage to the object).

    Parameters
    ----------
    artifact : numpy.ndarray
        ``(N, N)`` difference between a reconstruction and its artifact-free reference.
    radius : float
        Ring radius in pixels about the grid centre.
    width : float
        Half-width of the annulus considered, in pixels.

    Returns
    -------
    float
    """
    radii, means = radial_profile(artifact, 0.5)
    band = np.abs(radii - radius) <= width
    return float(np.sqrt(np.mean(np.square(means[band]))))
