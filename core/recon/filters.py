"""Ramp filtering of projections and the padding used for truncated (local) tomography.

The ramp is built from the band-limited spatial kernel of Ramachandran–Lakshminarayanan
(Kak & Slaney, eq. 3.61: ``h(0) = 1/4``, ``h(n) = -1/(π n)²`` for odd ``n``, 0 for even),
transformed to the frequency domain on a zero-padded grid. This avoids the DC offset of a
naively sampled ``|ω|`` ramp. With a detector pitch of one pixel the filtered projection is
``q = p ⊛ h`` and parallel-beam FBP is ``f = (π / K) Σ_θ q_θ(t)`` over ``K`` angles in [0, π).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import fft as sfft

FilterName = Literal["ramp", "shepp-logan", "cosine", "hamming", "hann"]
FILTERS: tuple[str, ...] = ("ramp", "shepp-logan", "cosine", "hamming", "hann")

PadMode = Literal["zero", "edge", "circle", "cosine"]
PAD_MODES: tuple[str, ...] = ("zero", "edge", "circle", "cosine")


def next_fast_length(n: int) -> int:
    """A power of two ≥ ``2 n`` (and ≥ 64), the length used for ramp filtering.

    Parameters
    ----------
    n : int
        Detector columns (after any padding).

    Returns
    -------
    int
    """
    return max(64, 1 << int(np.ceil(np.log2(2 * max(int(n), 1)))))


def ramp_filter(n_fft: int, name: str = "ramp") -> np.ndarray:
    """Frequency response of the ramp filter for ``numpy.fft.rfft`` of length ``n_fft``.

    Parameters
    ----------
    n_fft : int
        FFT length (even).
    name : {"ramp", "shepp-logan", "cosine", "hamming", "hann"}
        Apodisation window multiplying the ramp.

    Returns
    -------
    numpy.ndarray
        ``n_fft // 2 + 1`` real coefficients.

    Raises
    ------
    ValueError
        Unknown filter name.
    """
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; choose one of {', '.join(FILTERS)}")
    n = np.concatenate((np.arange(1, n_fft // 2 + 1, 2), np.arange(n_fft // 2 - 1, 0, -2)))
    kernel = np.zeros(n_fft)
    kernel[0] = 0.25
    kernel[1::2] = -1.0 / (np.pi * n) ** 2
    response = 2.0 * np.real(np.fft.fft(kernel))[: n_fft // 2 + 1]
    if name != "ramp":
        omega = np.pi * np.fft.rfftfreq(n_fft) * 2.0  # 0 … π
        if name == "shepp-logan":
            window = np.sinc(omega / (2.0 * np.pi))
        elif name == "cosine":
            window = np.cos(omega / 2.0)
        elif name == "hamming":
            window = 0.54 + 0.46 * np.cos(omega)
        else:  # hann
            window = 0.5 + 0.5 * np.cos(omega)
        response = response * window
    # ``response`` is 2·Re(FFT(h)) (the form scikit-image uses with a π / 2K factor); the
    # kernel's own response Re(FFT(h)) ≈ |ω| / 2π goes with the π / K factor used here.
    return response / 2.0


def pad_projections(
    data: np.ndarray,
    pad: int,
    mode: str = "edge",
    *,
    object_radius: float | None = None,
    center: float | None = None,
) -> np.ndarray:
    """Extend projections on both sides along the last axis (local-tomography padding).

    A truncated projection ends abruptly where the object goes on; filtering it with zeros
    beyond the edge turns the jump into a bright rim and a cupped interior. Extending the
    projection smoothly removes the jump.

    Parameters
    ----------
    data : numpy.ndarray
        Projections, detector columns on the last axis.
    pad : int
        Columns added on each side.
    mode : {"zero", "edge", "circle", "cosine"}
        ``zero``: plain zeros (naive). ``edge``: repeat the edge value. ``circle``: continue as
        the projection of a homogeneous disc of radius ``object_radius`` (pixels, about the
        rotation axis) matched to the edge value; beyond the disc the value is 0. ``cosine``:
        the edge value tapered to 0 over the pad width by a half cosine.
    object_radius : float, optional
        For ``circle``; default ``pad + n_det / 2`` (the object fills the padded width).
    center : float, optional
        Detector column of the rotation axis, for ``circle``; default the detector centre.

    Returns
    -------
    numpy.ndarray
        ``data`` with ``n_det + 2 pad`` columns (float32 or float64 as ``data``).
    """
    if mode not in PAD_MODES:
        raise ValueError(f"unknown padding {mode!r}; choose one of {', '.join(PAD_MODES)}")
    pad = int(pad)
    if pad <= 0:
        return data
    n_det = data.shape[-1]
    widths = [(0, 0)] * (data.ndim - 1) + [(pad, pad)]
    if mode == "zero":
        return np.pad(data, widths)
    out = np.pad(data, widths, mode="edge")
    if mode == "edge":
        return out
    k = np.arange(1, pad + 1, dtype=float)  # distance from the edge column, in columns
    if mode == "cosine":
        taper = 0.5 * (1.0 + np.cos(np.pi * k / (pad + 1)))
        left, right = taper[::-1], taper
    else:  # circle
        c = (n_det - 1) / 2.0 if center is None else float(center)
        radius = pad + n_det / 2.0 if object_radius is None else float(object_radius)
        t_left_edge, t_right_edge = -c, (n_det - 1) - c

        def chord(t: np.ndarray | float) -> np.ndarray:
            return np.sqrt(np.maximum(radius * radius - np.square(t), 0.0))

        left_edge = max(float(chord(t_left_edge)), 1e-6)
        right_edge = max(float(chord(t_right_edge)), 1e-6)
        left = (chord(t_left_edge - k) / left_edge)[::-1]
        right = chord(t_right_edge + k) / right_edge
    out[..., :pad] *= left.astype(out.dtype)
    out[..., n_det + pad :] *= right.astype(out.dtype)
    return out


def filter_projections(
    data: np.ndarray,
    filter_name: str = "ramp",
    *,
    pad: int = 0,
    pad_mode: str = "zero",
    object_radius: float | None = None,
    center: float | None = None,
    scale: float = 1.0,
    workers: int | None = None,
) -> np.ndarray:
    """Ramp-filter projections along their last axis (detector columns).

    Parameters
    ----------
    data : numpy.ndarray
        Projections, any leading shape, columns last.
    filter_name : str
        See :func:`ramp_filter`.
    pad, pad_mode, object_radius, center
        Extension before filtering (see :func:`pad_projections`); the result keeps the padded
        columns so that a backprojector can use them (the extension is data, not zeros).
    scale : float
        Multiplies the result.
    workers : int, optional
        Threads for the FFT (scipy.fft).

    Returns
    -------
    numpy.ndarray
        float32, shape of ``data`` with ``n_det + 2 pad`` columns.
    """
    arr = np.asarray(data, dtype=np.float32)
    arr = pad_projections(arr, pad, pad_mode, object_radius=object_radius, center=center)
    n = arr.shape[-1]
    n_fft = next_fast_length(n)
    response = (ramp_filter(n_fft, filter_name) * scale).astype(np.float32)
    spectrum = sfft.rfft(arr, n=n_fft, axis=-1, workers=workers)
    spectrum *= response
    return sfft.irfft(spectrum, n=n_fft, axis=-1, workers=workers)[..., :n].astype(np.float32, copy=False)
