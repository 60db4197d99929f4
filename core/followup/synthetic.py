"""Synthetic follow-up data with ground truth: cracked NMC particles and XANES stacks.

Used by the tests and the docs; small enough to generate in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class CrackedParticles:
    """A packed bed of spherical particles cut into fragments by planar cracks.

    Attributes
    ----------
    mask : ndarray of bool
        Solid phase (z, y, x).
    particles : ndarray of int32
        True particle of each solid voxel (1..n).
    fragments : ndarray of int32
        True fragment of each solid voxel (1..m), connected pieces only.
    n_cracks : ndarray of int
        Cracks per particle (index 0 unused).
    spacing_um : float
        Isotropic voxel size in µm.
    """

    mask: np.ndarray
    particles: np.ndarray
    fragments: np.ndarray
    n_cracks: np.ndarray
    spacing_um: float


def cracked_particles(
    shape: tuple[int, int, int] = (64, 96, 96),
    *,
    spacing_um: float = 0.4,
    radius_um: tuple[float, float] = (3.2, 4.8),
    n_particles: int = 14,
    max_cracks: int = 3,
    crack_width_um: float = 0.8,
    cracks_increase_along_z: bool = True,
    min_fragment_um: float = 0.5,
    seed: int = 0,
) -> CrackedParticles:
    """Spheres packed at random (touching allowed, small overlaps), each cut by 0–3 planes.

    Parameters
    ----------
    shape : (nz, ny, nx)
        Volume size in voxels.
    spacing_um : float
        Voxel size in µm.
    radius_um : (float, float)
        Range of particle radii (µm).
    n_particles : int
        Particles attempted (fewer when there is no room).
    max_cracks : int
        Most cracks per particle.
    crack_width_um : float
        Width of each crack (µm); at least 2 voxels keeps pieces apart in any connectivity.
    cracks_increase_along_z : bool
        More cracks at high z (depth gradient like near a delamination void).
    min_fragment_um : float
        True fragments smaller than this equivalent diameter are removed from the truth
        (and from the mask), as a segmentation would drop them.
    seed : int
        Random seed.

    Returns
    -------
    CrackedParticles
    """
    from skimage.measure import label

    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape, dtype=np.float32) * spacing_um
    particles = np.zeros(shape, np.int32)
    codes = np.zeros(shape, np.int32)
    centres: list[tuple[np.ndarray, float]] = []
    extent = np.array(shape, float) * spacing_um
    n_cracks = [0]
    attempts = 0
    while len(centres) < n_particles and attempts < 2000:
        attempts += 1
        r = rng.uniform(*radius_um)
        c = rng.uniform(r * 0.6, extent - r * 0.6)
        if any(np.linalg.norm(c - c2) < 0.93 * (r + r2) for c2, r2 in centres):
            continue
        centres.append((c, r))
        label_id = len(centres)
        inside = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
        inside &= particles == 0
        if cracks_increase_along_z:
            k = int(
                np.clip(np.round(max_cracks * c[0] / extent[0] + rng.normal(0, 0.5)), 0, max_cracks)
            )
        else:
            k = int(rng.integers(0, max_cracks + 1))
        n_cracks.append(k)
        code = np.zeros(shape, np.int32)
        crack = np.zeros(shape, bool)
        for j in range(k):
            normal = rng.normal(size=3)
            normal /= np.linalg.norm(normal)
            offset = rng.uniform(-0.3, 0.3) * r
            d = (zz - c[0]) * normal[0] + (yy - c[1]) * normal[1] + (xx - c[2]) * normal[2] - offset
            code += (d > 0).astype(np.int32) << j
            crack |= np.abs(d) < crack_width_um / 2
        solid = inside & ~crack
        particles[solid] = label_id
        codes[solid] = code[solid]
    values = np.where(particles > 0, particles * 16 + codes + 1, 0)
    fragments = np.asarray(label(values, background=0, connectivity=1), np.int32)
    counts = np.bincount(fragments.ravel())
    min_vox = np.pi / 6 * min_fragment_um**3 / spacing_um**3
    small = counts < min_vox
    small[0] = False
    drop = small[fragments]
    fragments[drop] = 0
    particles[drop] = 0
    lut = np.zeros(counts.size, np.int32)
    keep = counts >= min_vox
    keep[0] = False
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return CrackedParticles(
        mask=particles > 0,
        particles=particles,
        fragments=lut[fragments],
        n_cracks=np.asarray(n_cracks),
        spacing_um=spacing_um,
    )


# ------------------------------------------------------------------------------ XANES


def seed_energy_grid() -> np.ndarray:
    """The seed study's Ni K-edge energies: 63 values from 8178 to 8570 eV.

    Returns
    -------
    ndarray
        8178–8328 eV in 10 eV steps (16), 8330–8365 eV in 1 eV steps (36), 8370–8570 eV in
        20 eV steps (11).
    """
    return np.concatenate(
        [
            np.arange(8178.0, 8329.0, 10.0),
            np.arange(8330.0, 8366.0, 1.0),
            np.arange(8370.0, 8571.0, 20.0),
        ]
    )


def mix_references(
    energies: Sequence[float],
    ref_energies: Sequence[float],
    references: np.ndarray,
    fractions: np.ndarray,
    *,
    density: np.ndarray | float = 1.0,
    shift_ev: np.ndarray | float = 0.0,
    background: tuple[float, float] = (0.0, 0.0),
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Synthetic XANES stack: references mixed per voxel, scaled, shifted, noisy.

    ``μ(E, x) = density(x) · Σ_i f_i(x) ref_i(E - shift(x)) + b0 + b1 (E - E_first)/100 + noise``
    with Gaussian noise of standard deviation ``noise × density``.

    Parameters
    ----------
    energies : sequence of float
        eV of the stack.
    ref_energies : sequence of float
        eV of the references.
    references : ndarray
        (k, n_ref) normalised reference spectra.
    fractions : ndarray
        (k, *spatial) weights.
    density : ndarray or float
        Edge jump per voxel (broadcast to spatial).
    shift_ev : ndarray or float
        Energy shift per voxel (eV; positive moves the edge up).
    background : (float, float)
        Pre-edge offset and slope per 100 eV.
    noise : float
        Noise standard deviation as a fraction of the edge jump.
    rng : numpy.random.Generator, optional
        For reproducible noise.

    Returns
    -------
    ndarray
        (n_energies, *spatial) float64.
    """
    e = np.asarray(energies, dtype=np.float64)
    fr = np.asarray(fractions, dtype=np.float64)
    spatial = fr.shape[1:]
    dens = np.broadcast_to(np.asarray(density, dtype=np.float64), spatial).reshape(-1)
    shift = np.broadcast_to(np.asarray(shift_ev, dtype=np.float64), spatial).reshape(-1)
    w = fr.reshape(fr.shape[0], -1)
    ref_e = np.asarray(ref_energies, dtype=np.float64)
    refs = np.atleast_2d(np.asarray(references, dtype=np.float64))
    if np.all(shift == shift[0]):
        grid = [np.interp(e - shift[0], ref_e, r) for r in refs]
        mu = np.stack(grid).T @ w  # (n, N)
    else:
        mu = np.zeros((e.size, w.shape[1]))
        for i, r in enumerate(refs):
            mu += w[i][None, :] * np.interp(e[:, None] - shift[None, :], ref_e, r)
    mu = mu * dens[None, :]
    mu += background[0] + background[1] * (e[:, None] - e[0]) / 100.0
    if noise > 0:
        rng = rng or np.random.default_rng()
        mu += rng.normal(0.0, 1.0, mu.shape) * (noise * dens)[None, :]
    return mu.reshape((e.size, *spatial))
