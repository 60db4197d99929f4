"""Propagation-based phase retrieval: Paganin single-distance and multi-distance CTF.

Conventions (SI inside, friendly units at the API):

* The object's refractive index is ``n = 1 - δ + iβ``; a projected thickness ``T`` gives the
  exit wave ``u = exp(-B + iφ)`` with phase ``φ = -k δ T`` and amplitude attenuation
  ``B = k β T`` (``k = 2π/λ``); the contact intensity is ``exp(-2B) = exp(-μT)`` with
  ``μ = 4πβ/λ``. Retrieved phases are therefore negative where there is material.
* Free-space (paraxial Fresnel) propagation over ``z`` multiplies the wave's spectrum by
  ``exp(-iπλz|f|²)`` (``f`` in cycles per metre). Distances are effective (parallel-beam
  equivalent) distances; in a cone-beam set-up use ``z_eff = z₁z₂/(z₁+z₂)`` and the
  demagnified pixel size.
* Paganin et al., J. Microsc. 206 (2002) 33, eq. 9, for a homogeneous object (δ/β fixed)::

      φ = (δ/2β) · ln( F⁻¹[ F[I/I₀] / (1 + π λ z (δ/β) |f|²) ] )

* Multi-distance contrast transfer function (Cloetens et al., APL 75 (1999) 2912; Zabler et
  al., Rev. Sci. Instrum. 76 (2005) 073705), linearised in φ and B::

      F[I_z/I₀] - δ(f) = -2 cos(χ_z) B̂ + 2 sin(χ_z) φ̂,   χ_z = π λ z |f|²

  With the homogeneous-object coupling ``B = -(β/δ) φ`` every distance gives
  ``2 H_z φ̂`` with ``H_z = sin χ_z + (β/δ) cos χ_z``; the Tikhonov-regularised least squares
  over the distances is, per frequency, ``φ̂ = Σ_z H_z Ĩ_z / (2 Σ_z H_z² + α)``. Without δ/β
  (a pure phase object) ``H_z = sin χ_z``.

All functions work on 2-D images (one projection) or on stacks ``(..., ny, nx)``; the FFTs
run over the last two axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: h·c in keV·Å: λ[Å] = HC_KEV_ANGSTROM / E[keV].
HC_KEV_ANGSTROM = 12.398419843320026
#: Classical electron radius in metres.
R_ELECTRON_M = 2.8179403262e-15


def wavelength_m(energy_kev: float) -> float:
    """X-ray wavelength for a photon energy.

    Parameters
    ----------
    energy_kev : float
        Photon energy in keV (33.6 for the seed study's holotomography).

    Returns
    -------
    float
        Wavelength in metres (0.369 Å at 33.6 keV).
    """
    if not energy_kev > 0:
        raise ValueError(f"energy must be > 0 keV, got {energy_kev}")
    return HC_KEV_ANGSTROM / float(energy_kev) * 1e-10


def delta_from_electron_density(electron_density_per_m3: float, energy_kev: float) -> float:
    """Refractive index decrement δ far from absorption edges: ``r_e λ² n_e / (2π)``.

    Parameters
    ----------
    electron_density_per_m3 : float
        Electrons per m³ (NMC532 at 4.7 g/cm³ ≈ 1.33e30).
    energy_kev : float
        Photon energy in keV.

    Returns
    -------
    float
        δ (≈ 8e-7 for NMC532 at 33.6 keV).
    """
    lam = wavelength_m(energy_kev)
    return R_ELECTRON_M * lam**2 * float(electron_density_per_m3) / (2.0 * np.pi)


def frequencies_sq(shape: Sequence[int], pixel_um: float) -> np.ndarray:
    """``|f|²`` on the FFT grid of a 2-D image, in cycles²/m².

    Parameters
    ----------
    shape : (ny, nx)
        Image shape (after any padding).
    pixel_um : float
        Pixel size in µm.

    Returns
    -------
    ndarray
        Shape (ny, nx), float64.
    """
    pixel_m = float(pixel_um) * 1e-6
    fy = np.fft.fftfreq(int(shape[-2]), d=pixel_m)
    fx = np.fft.fftfreq(int(shape[-1]), d=pixel_m)
    return fy[:, None] ** 2 + fx[None, :] ** 2


def paganin_filter(
    shape: Sequence[int],
    pixel_um: float,
    distance_mm: float,
    energy_kev: float,
    delta_beta: float,
) -> np.ndarray:
    """The Paganin low-pass ``1 / (1 + π λ z (δ/β) |f|²)`` on an FFT grid.

    Parameters
    ----------
    shape : (ny, nx)
        Image shape (after any padding).
    pixel_um : float
        Pixel size in µm.
    distance_mm : float
        Effective propagation distance in mm.
    energy_kev : float
        Photon energy in keV.
    delta_beta : float
        δ/β of the (homogeneous) material, e.g. ≈ 160 for NMC532 at 33.6 keV.

    Returns
    -------
    ndarray
        Shape (ny, nx); 1 at zero frequency, decreasing with ``|f|``.
    """
    lam = wavelength_m(energy_kev)
    z = float(distance_mm) * 1e-3
    return 1.0 / (1.0 + np.pi * lam * z * float(delta_beta) * frequencies_sq(shape, pixel_um))


def _pad(images: np.ndarray, pad: int) -> np.ndarray:
    if pad <= 0:
        return images
    widths = [(0, 0)] * (images.ndim - 2) + [(pad, pad), (pad, pad)]
    return np.pad(images, widths, mode="edge")


def _crop(images: np.ndarray, pad: int) -> np.ndarray:
    if pad <= 0:
        return images
    return images[..., pad:-pad, pad:-pad]


def _default_pad(shape: Sequence[int]) -> int:
    return int(max(shape[-2], shape[-1]) // 2)


def fresnel_propagate(
    wave: np.ndarray,
    pixel_um: float,
    distance_mm: float,
    energy_kev: float,
) -> np.ndarray:
    """Propagate a complex wave over ``z`` with the paraxial Fresnel transfer function.

    Multiplies the spectrum by ``exp(-iπλz|f|²)`` (periodic boundaries: pad the wave
    yourself if the field of view must not wrap around).

    Parameters
    ----------
    wave : ndarray of complex
        Shape (..., ny, nx).
    pixel_um : float
        Pixel size in µm.
    distance_mm : float
        Propagation distance in mm.
    energy_kev : float
        Photon energy in keV.

    Returns
    -------
    ndarray of complex128
        The propagated wave, same shape.
    """
    lam = wavelength_m(energy_kev)
    chi = np.pi * lam * float(distance_mm) * 1e-3 * frequencies_sq(wave.shape, pixel_um)
    return np.fft.ifft2(np.fft.fft2(wave) * np.exp(-1j * chi))


def simulate_holograms(
    phase: np.ndarray,
    distances_mm: Sequence[float],
    pixel_um: float,
    energy_kev: float,
    *,
    delta_beta: float | None = None,
    pad: int | None = None,
) -> np.ndarray:
    """Forward-simulate flat-field-corrected holograms of a thin object (exact Fresnel).

    Parameters
    ----------
    phase : ndarray
        Exit-wave phase φ (radians, ≤ 0 for material), shape (ny, nx).
    distances_mm : sequence of float
        Effective propagation distances in mm.
    pixel_um : float
        Pixel size in µm.
    energy_kev : float
        Photon energy in keV.
    delta_beta : float, optional
        δ/β of a homogeneous object; its attenuation is ``B = -φ/(δ/β)``. None: pure phase.
    pad : int, optional
        Edge padding on every side (default half the larger image side).

    Returns
    -------
    ndarray
        ``I_z/I₀``, shape (len(distances), ny, nx), float64.
    """
    phase = np.asarray(phase, dtype=np.float64)
    pad = _default_pad(phase.shape) if pad is None else int(pad)
    absorption = np.zeros_like(phase) if delta_beta is None else -phase / float(delta_beta)
    wave = _pad(np.exp(-absorption + 1j * phase), pad)
    out = []
    for z in distances_mm:
        propagated = wave if float(z) == 0.0 else fresnel_propagate(wave, pixel_um, z, energy_kev)
        out.append(_crop(np.abs(propagated) ** 2, pad))
    return np.stack(out)


def paganin_phase(
    intensity: np.ndarray,
    pixel_um: float,
    distance_mm: float,
    energy_kev: float,
    delta_beta: float,
    *,
    pad: int | None = None,
) -> np.ndarray:
    """Single-distance Paganin phase retrieval of a homogeneous object.

    Parameters
    ----------
    intensity : ndarray
        Flat-field-corrected intensity ``I/I₀``, shape (..., ny, nx).
    pixel_um : float
        Pixel size in µm.
    distance_mm : float
        Effective propagation distance in mm.
    energy_kev : float
        Photon energy in keV.
    delta_beta : float
        δ/β of the material (≈ 160 for NMC532 at 33.6 keV).
    pad : int, optional
        Edge padding on every side against wrap-around (default half the larger side).

    Returns
    -------
    ndarray
        Phase φ in radians (≤ 0 where there is material), float64, same shape. The projected
        thickness is ``-φ/(k δ)``.
    """
    images = np.asarray(intensity, dtype=np.float64)
    pad = _default_pad(images.shape) if pad is None else int(pad)
    padded = _pad(images, pad)
    filt = paganin_filter(padded.shape[-2:], pixel_um, distance_mm, energy_kev, delta_beta)
    filtered = np.real(np.fft.ifft2(np.fft.fft2(padded) * filt))
    filtered = np.clip(filtered, 1e-12, None)
    return _crop(0.5 * float(delta_beta) * np.log(filtered), pad)


def ctf_transfer(
    shape: Sequence[int],
    pixel_um: float,
    distances_mm: Sequence[float],
    energy_kev: float,
    delta_beta: float | None = None,
) -> np.ndarray:
    """The per-distance phase transfer ``H_z(f) = sin χ_z + (β/δ) cos χ_z``.

    Parameters
    ----------
    shape : (ny, nx)
        FFT grid shape.
    pixel_um : float
        Pixel size in µm.
    distances_mm : sequence of float
        Effective distances in mm.
    energy_kev : float
        Photon energy in keV.
    delta_beta : float, optional
        δ/β; None for a pure phase object (``H = sin χ``).

    Returns
    -------
    ndarray
        Shape (n_distances, ny, nx).
    """
    lam = wavelength_m(energy_kev)
    f2 = frequencies_sq(shape, pixel_um)
    z = np.asarray(distances_mm, dtype=np.float64).reshape(-1, 1, 1) * 1e-3
    chi = np.pi * lam * z * f2[None]
    h = np.sin(chi)
    if delta_beta is not None:
        h = h + np.cos(chi) / float(delta_beta)
    return h


def ctf_phase(
    intensities: np.ndarray,
    distances_mm: Sequence[float],
    pixel_um: float,
    energy_kev: float,
    *,
    delta_beta: float | None = None,
    alpha: float = 1e-3,
    pad: int | None = None,
) -> np.ndarray:
    """Multi-distance CTF phase retrieval (Tikhonov-regularised least squares).

    Solves, per spatial frequency and in closed form for all frequencies at once,
    ``min_φ̂ Σ_z |Ĩ_z - 2 H_z φ̂|² + 2α |φ̂|²``, i.e.
    ``φ̂ = Σ_z H_z Ĩ_z / (2 Σ_z H_z² + α)``, with ``Ĩ_z = F[I_z/I₀ - 1]``.

    Parameters
    ----------
    intensities : ndarray
        ``I_z/I₀`` per distance, shape (n_distances, ny, nx), registered to each other and
        scaled to the same pixel size.
    distances_mm : sequence of float
        Effective distances in mm, one per image.
    pixel_um : float
        Pixel size in µm.
    energy_kev : float
        Photon energy in keV.
    delta_beta : float, optional
        δ/β of a homogeneous object (≈ 160 for NMC532 at 33.6 keV); None treats the object as
        pure phase, whose zero frequency is then set by ``alpha`` alone.
    alpha : float
        Tikhonov regularisation added to the denominator (``H`` is of order 1).
    pad : int, optional
        Edge padding on every side (default half the larger side).

    Returns
    -------
    ndarray
        Phase φ in radians, shape (ny, nx), float64.
    """
    stack = np.asarray(intensities, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] != len(distances_mm):
        raise ValueError(
            f"expected ({len(distances_mm)}, ny, nx) intensities, got shape {stack.shape}"
        )
    pad = _default_pad(stack.shape) if pad is None else int(pad)
    padded = _pad(stack - 1.0, pad)
    h = ctf_transfer(padded.shape[-2:], pixel_um, distances_mm, energy_kev, delta_beta)
    spectra = np.fft.fft2(padded)
    numerator = np.sum(h * spectra, axis=0)
    denominator = 2.0 * np.sum(h * h, axis=0) + float(alpha)
    phase = np.real(np.fft.ifft2(numerator / denominator))
    return _crop(phase, pad)


def phase_error(retrieved: np.ndarray, truth: np.ndarray) -> float:
    """Relative RMS error ``‖φ - φ_true‖ / ‖φ_true‖`` after removing the mean offset.

    Parameters
    ----------
    retrieved, truth : ndarray
        Phase maps of the same shape.

    Returns
    -------
    float
    """
    r = np.asarray(retrieved, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    diff = (r - r.mean()) - (t - t.mean())
    return float(np.sqrt(np.mean(diff**2)) / np.sqrt(np.mean((t - t.mean()) ** 2)))


def retrieve_phase(
    images: Sequence[np.ndarray] | np.ndarray,
    distances_mm: Sequence[float],
    pixel_um: float,
    energy_kev: float,
    *,
    delta_beta: float | None = None,
    alpha: float = 1e-8,
    source: object = "phase retrieval",
) -> np.ndarray:
    """Phase from flat-field-corrected images: Paganin for one distance, CTF for several.

    Parameters
    ----------
    images : sequence of ndarray or ndarray
        One 2-D ``I/I₀`` image per distance, all the same shape.
    distances_mm : sequence of float
        Effective distances (mm), one per image.
    pixel_um : float
        Pixel size (µm).
    energy_kev : float
        Photon energy (keV).
    delta_beta : float, optional
        δ/β; needed for one distance (Paganin), optional for CTF.
    alpha : float
        CTF Tikhonov regularisation.
    source : object
        Named in errors.

    Returns
    -------
    ndarray
        Phase φ (rad), float64, shape (ny, nx).

    Raises
    ------
    core.errors.InputError
        Images that are not 2-D or differ in shape, a count that does not match the
        distances, non-finite or non-positive parameters.
    """
    from core.errors import InputError

    stack = [np.asarray(im, dtype=np.float64) for im in images]
    if not stack or any(im.ndim != 2 for im in stack) or len({im.shape for im in stack}) != 1:
        raise InputError(source, "phase retrieval needs one 2-D image per distance, all one shape")
    if len(stack) != len(distances_mm):
        raise InputError(
            "--distance", f"give one per image ({len(stack)} images, {len(distances_mm)} distances)"
        )
    for name, value in (("--pixel", pixel_um), ("--energy", energy_kev),
                        *(("--distance", d) for d in distances_mm)):
        if not (np.isfinite(value) and value > 0):
            raise InputError(name, f"must be a positive number, got {value!r}")
    if delta_beta is not None and not (np.isfinite(delta_beta) and delta_beta > 0):
        raise InputError("--delta-beta", f"must be a positive number, got {delta_beta!r}")
    if not all(np.all(np.isfinite(im)) for im in stack):
        raise InputError(source, "images hold NaN or infinite values")
    if len(stack) == 1:
        if delta_beta is None:
            raise InputError("--delta-beta", "single-distance (Paganin) retrieval needs δ/β")
        return paganin_phase(stack[0], pixel_um, distances_mm[0], energy_kev, delta_beta)
    return ctf_phase(np.stack(stack), distances_mm, pixel_um, energy_kev,
                     delta_beta=delta_beta, alpha=alpha)
