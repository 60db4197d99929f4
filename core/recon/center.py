"""Centre-of-rotation search for parallel-beam data.

Three estimators, chosen by ``method``:

``registration``
    Projections 180° apart are mirror images about the rotation axis:
    ``p(θ + π, u) = p(θ, 2c - u)``. Every pair of opposite projections is registered against
    the other's mirror image (FFT cross-correlation for the integer shift, then a bounded
    least-squares refinement of a Fourier sub-pixel shift); ``c`` follows from the shift.
    Needs opposite angles (a 360° scan, or a 180° scan that includes both 0° and 180°).
``centroid``
    The centre of mass of each projection traces ``u(θ) = c + a cos θ + b sin θ``; a linear
    least-squares fit over all angles gives ``c``. Needs the whole object inside the field
    of view (not for interior scans) and a flat background.

For both, each projection's background (the median of its outermost ``n/32`` columns) is
subtracted first.
``sharpness``
    Reconstruct the slice for candidate centres and keep the one with the lowest
    histogram entropy (coarse-to-fine). Slowest; works for any data that FBP handles.

``auto`` uses ``registration`` when opposite angles exist, else ``centroid``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize

from core.recon.fbp import default_angles, fbp
from core.recon.phantoms import disk_mask

METHODS: tuple[str, ...] = ("auto", "registration", "centroid", "sharpness")


def _as_sinogram(data: np.ndarray) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 3:  # (angles, rows, det): the row sum obeys the same relations
        arr = arr.sum(axis=1)
    if arr.ndim != 2:
        raise ValueError(f"expected a sinogram (angles, det) or projections, got shape {arr.shape}")
    return arr


def _remove_baseline(sino: np.ndarray) -> np.ndarray:
    """Subtract from each projection the median of its outermost columns (its background).

    Registration pads with zeros and the centroid fit weighs every column: both assume line
    integrals that fall to ~0 outside the object. Real data often keep an offset there (a
    flat field recorded at another beam current, air or a container): the real Savu test
    scan carries ~0.35-0.39, which moved the registration centre by 1.1 columns.
    """
    n = sino.shape[1]
    k = max(2, n // 32)
    if 2 * k >= n:
        return sino
    edges = np.concatenate([sino[:, :k], sino[:, -k:]], axis=1)
    return sino - np.median(edges, axis=1, keepdims=True)


def opposite_pairs(angles_deg: np.ndarray, tolerance_deg: float | None = None) -> list[tuple[int, int]]:
    """Index pairs of projections whose angles differ by 180° (mod 360°).

    Parameters
    ----------
    angles_deg : numpy.ndarray
        Angles in degrees.
    tolerance_deg : float, optional
        Largest mismatch accepted; default 2 % of the median angular step (at least 1e-3°).

    Returns
    -------
    list of (i, j)
        Each unordered pair once, ``i`` the smaller angle.
    """
    theta = np.mod(np.asarray(angles_deg, dtype=float), 360.0)
    if theta.size < 2:
        return []
    if tolerance_deg is None:
        steps = np.diff(np.sort(theta))
        steps = steps[steps > 0]
        tolerance_deg = max(1e-3, 0.02 * float(np.median(steps))) if steps.size else 1e-3
    order = np.argsort(theta)
    st = theta[order]
    pairs: list[tuple[int, int]] = []
    for i in range(theta.size):
        target = (theta[i] + 180.0) % 360.0
        k = int(np.searchsorted(st, target))
        for cand in (k - 1, k, k + 1, 0, st.size - 1):
            if 0 <= cand < st.size:
                diff = abs((st[cand] - target + 180.0) % 360.0 - 180.0)
                j = int(order[cand])
                if diff <= tolerance_deg and j != i:
                    a, b = (i, j) if theta[i] < theta[j] else (j, i)
                    if (a, b) not in pairs:
                        pairs.append((a, b))
                    break
    return pairs


def _mirror_shift(first: np.ndarray, second: np.ndarray) -> float:
    """Shift δ (columns) such that ``second[::-1](u) ≈ first(u + δ)``, jointly over rows."""
    n = first.shape[-1]
    n_fft = 1 << int(np.ceil(np.log2(2 * n)))
    # Line integrals fall to ~0 at the detector edges, so zero padding does not add jumps.
    fa = np.fft.rfft(first, n_fft)
    fb = np.fft.rfft(second[:, ::-1], n_fft)
    corr = np.fft.irfft((fa * np.conj(fb)).sum(axis=0), n_fft)
    lag = int(np.argmax(corr))
    if lag > n_fft // 2:
        lag -= n_fft
    omega = 2.0 * np.pi * np.fft.rfftfreq(n_fft)

    def cost(delta: float) -> float:
        shifted = fa * np.exp(1j * omega * delta)  # spectrum of first(u + δ)
        return float(np.sum(np.abs(shifted - fb) ** 2))

    res = optimize.minimize_scalar(cost, bounds=(lag - 1.5, lag + 1.5), method="bounded",
                                   options={"xatol": 1e-4})
    return float(res.x)


def _center_registration(sino: np.ndarray, angles: np.ndarray) -> float:
    pairs = opposite_pairs(angles)
    if not pairs:
        raise ValueError("no projections 180° apart; use method='centroid' or 'sharpness'")
    first = sino[[i for i, _ in pairs]]
    second = sino[[j for _, j in pairs]]
    delta = _mirror_shift(first, second)
    n = sino.shape[-1]
    # flipped(u) = p(θ, 2c - (n - 1 - u)) = first(u + 2c - (n - 1))  ⇒  δ = 2c - (n - 1)
    return ((n - 1) + delta) / 2.0


def _center_centroid(sino: np.ndarray, angles: np.ndarray) -> float:
    mass = sino.sum(axis=1)
    ok = mass > 1e-12 * max(float(np.abs(mass).max()), 1e-30)
    if ok.sum() < 3:
        raise ValueError("projections are empty; cannot find the centre by centroid")
    u = np.arange(sino.shape[1], dtype=float)
    centre_of_mass = (sino[ok] * u).sum(axis=1) / mass[ok]
    th = np.radians(angles[ok])
    design = np.stack([np.ones_like(th), np.cos(th), np.sin(th)], axis=1)
    coef, *_ = np.linalg.lstsq(design, centre_of_mass, rcond=None)
    return float(coef[0])


def _entropy(image: np.ndarray, value_range: tuple[float, float]) -> float:
    hist, _ = np.histogram(image, bins=256, range=value_range)
    p = hist[hist > 0] / max(hist.sum(), 1)
    return float(-(p * np.log(p)).sum())


def _center_sharpness(sino: np.ndarray, angles: np.ndarray, search: float) -> float:
    # Half a turn only: a 360° scan reconstructed with a wrong centre shows a ghost, not arcs.
    half = np.mod(angles - angles[0], 360.0) < 180.0 - 1e-6
    sino, angles = sino[half], angles[half]
    n = sino.shape[1]
    mid = (n - 1) / 2.0
    inner = disk_mask(n, 0.45 * n)
    coarse_step = max(1, sino.shape[0] // 180)  # at most ~180 angles for the coarse pass

    def recon(c: float, step: int) -> np.ndarray:
        return fbp(sino[::step], angles[::step], center=c, size=n, circle=False, threads=1)[inner]

    first = recon(mid, coarse_step)
    lo, hi = np.percentile(first, [0.1, 99.9])
    value_range = (float(lo - 0.25 * (hi - lo)), float(hi + 0.25 * (hi - lo)))

    def score(c: float, step: int) -> float:
        return _entropy(recon(c, step), value_range)

    coarse = np.arange(mid - search, mid + search + 1e-9, 1.0)
    best = float(coarse[int(np.argmin([score(c, coarse_step) for c in coarse]))])
    fine = np.arange(best - 1.0, best + 1.0 + 1e-9, 0.1)
    fine_step = max(1, sino.shape[0] // 360)
    return float(fine[int(np.argmin([score(c, fine_step) for c in fine]))])


def find_center(
    data: np.ndarray,
    angles_deg: Sequence[float] | np.ndarray | None = None,
    *,
    method: str = "auto",
    search: float | None = None,
) -> float:
    """Estimate the detector column of the rotation axis.

    Parameters
    ----------
    data : numpy.ndarray
        Sinogram ``(n_angles, n_det)`` or projections ``(n_angles, n_rows, n_det)``.
    angles_deg : array_like, optional
        Default 180° equally spaced.
    method : {"auto", "registration", "centroid", "sharpness"}
        See the module docstring.
    search : float, optional
        Half-width of the candidate range for ``sharpness`` (columns); default ``n_det / 16``.

    Returns
    -------
    float
        Centre of rotation in detector columns (``(n_det - 1) / 2`` when centred).

    Raises
    ------
    ValueError
        Unknown method, or the data do not allow the method chosen.
    """
    sino = _as_sinogram(data)
    angles = default_angles(sino.shape[0]) if angles_deg is None else np.asarray(angles_deg, float)
    if angles.shape != (sino.shape[0],):
        raise ValueError(f"{angles.size} angles for {sino.shape[0]} projections")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        method = "registration" if opposite_pairs(angles) else "centroid"
    if method == "registration":
        return _center_registration(_remove_baseline(sino), angles)
    if method == "centroid":
        return _center_centroid(_remove_baseline(sino), angles)
    return _center_sharpness(sino, angles, sino.shape[1] / 16.0 if search is None else float(search))
