"""Parallel-beam filtered backprojection (FBP), including local (ROI) tomography.

Sinogram layout follows tomopy: a 2-D sinogram is ``(n_angles, n_det)``; a stack of
projections is ``(n_angles, n_rows, n_det)`` and reconstructs to ``(n_rows, N, N)``, indexed
``(z, y, x)``. Geometry conventions are those of :mod:`core.recon.phantoms`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np

from core.recon.backproject import backproject_parallel
from core.recon.filters import PAD_MODES, filter_projections

BACKENDS: tuple[str, ...] = ("auto", "numpy", "tomopy")


def tomopy_available() -> bool:
    """Whether tomopy can be imported (it is an optional backend, not on PyPI)."""
    return importlib.util.find_spec("tomopy") is not None


def default_angles(n_angles: int, full_turn: bool = False) -> np.ndarray:
    """Equally spaced angles (degrees) over 180° (or 360°), the last one excluded.

    Parameters
    ----------
    n_angles : int
        Number of projections.
    full_turn : bool
        Span 360° instead of 180°.

    Returns
    -------
    numpy.ndarray
    """
    return np.linspace(0.0, 360.0 if full_turn else 180.0, int(n_angles), endpoint=False)


def _as_stack(sinogram: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(sinogram)
    if arr.ndim == 2:
        return arr[:, None, :], True
    if arr.ndim == 3:
        return arr, False
    raise ValueError(f"expected a sinogram (angles, det) or projections (angles, rows, det), got {arr.shape}")


def fbp(
    sinogram: np.ndarray,
    angles_deg: Sequence[float] | np.ndarray | None = None,
    *,
    center: float | None = None,
    filter_name: str = "ramp",
    size: int | None = None,
    pixel_size: float = 1.0,
    circle: bool = True,
    pad: int | None = None,
    pad_mode: str = "zero",
    object_radius: float | None = None,
    threads: int | None = None,
    backend: str = "numpy",
    axis_on_pixel: bool = False,
) -> np.ndarray:
    """Reconstruct parallel-beam data by filtered backprojection.

    Parameters
    ----------
    sinogram : numpy.ndarray
        ``(n_angles, n_det)`` or ``(n_angles, n_rows, n_det)`` line integrals.
    angles_deg : array_like, optional
        Projection angles in degrees; default 180° equally spaced. Angles should cover 180°
        or 360° evenly (the weight per angle is π / K).
    center : float, optional
        Detector column of the rotation axis; default ``(n_det - 1) / 2``.
    filter_name : str
        ``ramp`` (Ram-Lak), ``shepp-logan``, ``cosine``, ``hamming`` or ``hann``.
    size : int, optional
        Output grid N (pixels of the detector pitch); default ``n_det``.
    pixel_size : float
        Detector pitch (at the object) in the unit wanted for the result: the result is the
        attenuation per that unit. Default 1 (per pixel).
    circle : bool
        Compute only the disc that every projection sees (zero outside).
    pad : int, optional
        Columns added on each side before filtering; default ``n_det`` for the local
        tomography modes and 0 for ``zero``.
    pad_mode : {"zero", "edge", "circle", "cosine"}
        How truncated projections are extended (see
        :func:`core.recon.filters.pad_projections`). ``zero`` is plain FBP; use ``edge``
        or ``circle`` for interior (ROI) scans whose object is wider than the detector.
    object_radius : float, optional
        Object radius in pixels about the axis, for ``pad_mode="circle"``.
    threads : int, optional
        Backprojection threads.
    backend : {"numpy", "tomopy", "auto"}
        ``auto`` uses tomopy's gridrec when importable and ``pad_mode`` is ``zero``.
    axis_on_pixel : bool
        Put the rotation axis on pixel ``N // 2`` (scikit-image's convention) instead of the
        grid centre ``(N - 1) / 2``; the two differ for even ``N`` only.

    Returns
    -------
    numpy.ndarray
        ``(N, N)`` or ``(n_rows, N, N)`` float32.

    Raises
    ------
    ValueError
        Inconsistent shapes or unknown options.
    """
    stack, single = _as_stack(sinogram)
    n_angles, _n_rows, n_det = stack.shape
    angles = default_angles(n_angles) if angles_deg is None else np.asarray(angles_deg, dtype=float)
    if angles.shape != (n_angles,):
        raise ValueError(f"{angles.size} angles for {n_angles} projections")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"unknown padding {pad_mode!r}; choose one of {', '.join(PAD_MODES)}")
    if not pixel_size > 0:
        raise ValueError("pixel_size must be > 0")
    c = (n_det - 1) / 2.0 if center is None else float(center)
    n = n_det if size is None else int(size)
    if backend == "tomopy" or (backend == "auto" and pad_mode == "zero" and tomopy_available()):
        out = _fbp_tomopy(stack, angles, c, filter_name, n, circle)
        out /= np.float32(pixel_size)
        return out[0] if single else out
    pad = (0 if pad_mode == "zero" else n_det) if pad is None else max(0, int(pad))
    filtered = filter_projections(
        stack, filter_name, pad=pad, pad_mode=pad_mode, object_radius=object_radius, center=c
    )
    radius = None
    if circle:
        # The disc seen at every angle: the smaller distance from the axis to a detector edge.
        radius = max(0.0, min(c, n_det - 1 - c)) + 0.5
        radius = min(radius, n / 2.0)
    grid = n + 1 if (axis_on_pixel and n % 2 == 0) else n
    out = backproject_parallel(filtered, angles, c + pad, grid, radius=radius, threads=threads)
    if grid != n:
        out = np.ascontiguousarray(out[:, :n, :n])
    out *= np.float32(np.pi / n_angles / pixel_size)
    return out[0] if single else out


def _fbp_tomopy(
    stack: np.ndarray, angles: np.ndarray, center: float, filter_name: str, size: int, circle: bool
) -> np.ndarray:  # pragma: no cover - tomopy is not installable here
    import tomopy

    names = {"ramp": "ramlak", "shepp-logan": "shepp", "cosine": "cosine", "hamming": "hamming",
             "hann": "hann"}
    rec = tomopy.recon(
        np.ascontiguousarray(stack, dtype=np.float32),
        np.radians(angles),
        center=center,
        algorithm="gridrec",
        filter_name=names.get(filter_name, "ramlak"),
    )
    if rec.shape[-1] != size:
        from scipy import ndimage

        rec = ndimage.zoom(rec, (1, size / rec.shape[-2], size / rec.shape[-1]), order=1)
    if circle:
        rec = tomopy.circ_mask(rec, axis=0, ratio=1.0)
    return np.asarray(rec, dtype=np.float32)
