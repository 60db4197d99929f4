"""Phase retrieval against the published formulas and a forward-simulated phase object.

Stated tolerances (NMC532 at 33.6 keV, δ/β = 160, 0.1 µm pixels, particles 2–8 µm across,
phase down to about -2.2 rad):
- Paganin single distance (2 mm): relative RMS phase error ≤ 1 % (measured ≈ 0.4 %);
- CTF over four distances (1, 1.5, 2.5, 4 mm): ≤ 2 % (measured ≈ 1.1 %; the linearisation
  costs a little on this strong object), ≤ 0.5 % on a ten times weaker one (≈ 0.1 %).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from core.followup.phase import (
    ctf_phase,
    ctf_transfer,
    delta_from_electron_density,
    frequencies_sq,
    paganin_filter,
    paganin_phase,
    phase_error,
    simulate_holograms,
    wavelength_m,
)

ENERGY_KEV = 33.6
DELTA_BETA = 160.0
PIXEL_UM = 0.1


def test_wavelength_and_nmc_delta() -> None:
    assert wavelength_m(ENERGY_KEV) == pytest.approx(0.36900e-10, rel=1e-4)
    # NMC532, 4.7 g/cm³, Z/A ≈ 0.47 → 1.33e30 electrons/m³ → δ ≈ 8.1e-7 at 33.6 keV.
    assert delta_from_electron_density(1.33e30, ENERGY_KEV) == pytest.approx(8.12e-7, rel=0.01)


def test_paganin_filter_is_the_published_formula() -> None:
    shape, z_mm = (64, 48), 5.0
    filt = paganin_filter(shape, PIXEL_UM, z_mm, ENERGY_KEV, DELTA_BETA)
    lam, z = wavelength_m(ENERGY_KEV), z_mm * 1e-3
    for iy, ix in ((0, 0), (3, 7), (32, 24), (63, 1)):
        fy = np.fft.fftfreq(shape[0], PIXEL_UM * 1e-6)[iy]
        fx = np.fft.fftfreq(shape[1], PIXEL_UM * 1e-6)[ix]
        expected = 1.0 / (1.0 + np.pi * lam * z * DELTA_BETA * (fx * fx + fy * fy))
        assert filt[iy, ix] == pytest.approx(expected, rel=1e-12)
    assert filt[0, 0] == 1.0


def test_ctf_transfer_and_its_paganin_limit() -> None:
    shape, z_mm = (32, 32), 3.0
    h = ctf_transfer(shape, PIXEL_UM, [z_mm], ENERGY_KEV, DELTA_BETA)[0]
    chi = np.pi * wavelength_m(ENERGY_KEV) * z_mm * 1e-3 * frequencies_sq(shape, PIXEL_UM)
    np.testing.assert_allclose(h, np.sin(chi) + np.cos(chi) / DELTA_BETA, rtol=1e-12)
    # At low frequency (sin χ ≈ χ, cos χ ≈ 1), one distance with α = 0 is linearised
    # Paganin: 1/(2H) = (δ/2β) · 1/(1 + π λ z (δ/β) f²).
    small = chi < 1e-3
    filt = paganin_filter(shape, PIXEL_UM, z_mm, ENERGY_KEV, DELTA_BETA)
    np.testing.assert_allclose(1 / (2 * h[small]), DELTA_BETA / 2 * filt[small], rtol=1e-3)


def _phantom(scale: float = 1.0, n: int = 256) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:n, :n] * PIXEL_UM
    thickness = np.zeros((n, n))
    for _ in range(12):
        cy, cx = rng.uniform(5, n * PIXEL_UM - 5, 2)
        r = rng.uniform(1, 4)
        thickness += 2 * np.sqrt(np.clip(r * r - (yy - cy) ** 2 - (xx - cx) ** 2, 0, None)) * 1e-6
    thickness = ndi.gaussian_filter(thickness, 1.0)
    delta = delta_from_electron_density(1.33e30, ENERGY_KEV)
    return -2 * np.pi / wavelength_m(ENERGY_KEV) * delta * thickness * scale


def test_paganin_retrieves_a_simulated_nmc_phase_object() -> None:
    phi = _phantom()
    assert phi.min() < -1.5  # a strong phase object, as real NMC particles are
    intensity = simulate_holograms(phi, [2.0], PIXEL_UM, ENERGY_KEV, delta_beta=DELTA_BETA)[0]
    retrieved = paganin_phase(intensity, PIXEL_UM, 2.0, ENERGY_KEV, DELTA_BETA)
    assert phase_error(retrieved, phi) <= 0.01
    # Without phase retrieval the contrast is far from the truth.
    assert phase_error(DELTA_BETA / 2 * np.log(intensity), phi) > 0.02


@pytest.mark.parametrize(("scale", "tolerance"), [(1.0, 0.02), (0.1, 0.005)])
def test_multi_distance_ctf_retrieves_the_phase(scale: float, tolerance: float) -> None:
    phi = _phantom(scale)
    distances = [1.0, 1.5, 2.5, 4.0]
    holograms = simulate_holograms(phi, distances, PIXEL_UM, ENERGY_KEV, delta_beta=DELTA_BETA)
    retrieved = ctf_phase(
        holograms, distances, PIXEL_UM, ENERGY_KEV, delta_beta=DELTA_BETA, alpha=1e-8
    )
    assert phase_error(retrieved, phi) <= tolerance
    # Too strong a regulariser visibly damps the low frequencies: α matters.
    damped = ctf_phase(
        holograms, distances, PIXEL_UM, ENERGY_KEV, delta_beta=DELTA_BETA, alpha=1e-3
    )
    assert phase_error(damped, phi) > 5 * tolerance


def test_ctf_refuses_mismatched_distances() -> None:
    with pytest.raises(ValueError, match="expected"):
        ctf_phase(np.ones((2, 8, 8)), [1.0, 2.0, 3.0], PIXEL_UM, ENERGY_KEV)
