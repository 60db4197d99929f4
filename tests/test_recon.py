"""Reconstruction: FBP, FDK, centre of rotation, ring removal, local tomography, `cellqc recon`."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import iradon

from core.recon import (
    default_angles,
    fbp,
    fdk,
    find_center,
    opposite_pairs,
    pad_projections,
    ramp_filter,
    remove_rings,
    ring_amplitude,
)
from core.recon.backproject import group_angles
from core.recon.phantoms import (
    disk_mask,
    ellipse_image,
    ellipse_sinogram,
    ellipsoid_cone_projections,
    ellipsoid_volume,
    rmse,
)
from qc_app.cli import main

N = 128
ANGLES = default_angles(180)

#: FBP of the 128² modified Shepp–Logan from 180 exact projections: measured 0.069.
FBP_RMSE_BOUND = 0.08
#: FDK of a 40³ three-ellipsoid phantom, cone half-angle ~10°: measured ~0.056.
FDK_RMSE_BOUND = 0.075


@pytest.fixture(scope="module")
def shepp() -> tuple[np.ndarray, np.ndarray]:
    return ellipse_image(N), ellipse_sinogram(N, ANGLES)


def test_ramp_filter_is_the_band_limited_ramp():
    h = ramp_filter(256)
    freq = np.fft.rfftfreq(256)
    assert h[0] == pytest.approx(0.0, abs=1e-3)  # no DC offset beyond the kernel's own
    assert h[-1] == pytest.approx(0.5, abs=1e-3)  # |ω| / 2π at Nyquist
    assert np.allclose(h[10:], freq[10:], atol=2e-3)
    assert np.all(ramp_filter(256, "hann") <= h + 1e-12)
    with pytest.raises(ValueError):
        ramp_filter(64, "bogus")


def test_group_angles_pairs_quarter_turns():
    groups = group_angles(np.array([0.0, 45.0, 90.0, 135.0, 180.0, 270.0, 89.9999999]))
    bases = dict(groups)
    assert sorted(k for k, _ in bases[0.0]) == [0, 1, 1, 2, 3]
    assert [k for k, _ in bases[45.0]] == [0, 1]


def test_fbp_reconstructs_shepp_logan_within_bound(shepp):
    truth, sino = shepp
    rec = fbp(sino, ANGLES)
    assert rec.shape == (N, N) and rec.dtype == np.float32
    assert rmse(rec, truth, disk_mask(N, N / 2 - 1)) < FBP_RMSE_BOUND


def test_fbp_error_no_worse_than_skimage_iradon():
    # scikit-image puts the axis on pixel N // 2; give both the same data in that convention.
    truth = ellipse_image(N, center=N // 2)
    sino = ellipse_sinogram(N, ANGLES, center=N // 2)
    mask = disk_mask(N, N / 2 - 1, center=N // 2)
    ours = fbp(sino, ANGLES, center=N // 2, axis_on_pixel=True)
    theirs = iradon(sino.T, ANGLES, filter_name="ramp")
    assert rmse(ours, truth, mask) <= rmse(theirs, truth, mask) * 1.001
    assert rmse(ours, theirs, mask) < 1e-4  # the same algorithm, to float32 rounding


def test_fbp_stack_equals_slices_and_threads_agree(shepp):
    _, sino = shepp
    stack = np.stack([sino, 0.5 * sino], axis=1)  # (angles, rows, det)
    rec = fbp(stack, ANGLES, threads=2)
    single = fbp(sino, ANGLES, threads=1)
    assert rec.shape == (2, N, N)
    assert np.allclose(rec[0], single, atol=1e-4)
    assert np.allclose(rec[1], 0.5 * single, atol=1e-4)


def test_fbp_360_degree_scan_has_the_same_scale(shepp):
    truth, _ = shepp
    angles = default_angles(240, full_turn=True)
    rec = fbp(ellipse_sinogram(N, angles), angles)
    assert rmse(rec, truth, disk_mask(N, N / 2 - 1)) < FBP_RMSE_BOUND


def test_fbp_pixel_size_scales_to_physical_units(shepp):
    _, sino = shepp
    assert np.allclose(fbp(sino, ANGLES, pixel_size=0.01), fbp(sino, ANGLES) / 0.01, rtol=1e-5)


def test_fbp_rejects_bad_input(shepp):
    _, sino = shepp
    with pytest.raises(ValueError):
        fbp(sino, ANGLES[:-1])
    with pytest.raises(ValueError):
        fbp(sino[0], None)
    with pytest.raises(ValueError):
        fbp(sino, ANGLES, pad_mode="mirror")


# ------------------------------------------------------------------------------- FDK

ELLIPSOIDS = [
    (1.0, 0.8, 0.7, 0.6, 0.0, 0.0, 0.0, 0.0),
    (0.5, 0.3, 0.2, 0.25, 0.3, 0.1, 0.1, 30.0),
    (-0.5, 0.2, 0.25, 0.2, -0.3, -0.2, -0.15, 0.0),
]


def test_fdk_reconstructs_an_analytic_phantom():
    n, k = 40, 90
    angles = default_angles(k, full_turn=True)
    sod, sdd = 125.0, 250.0  # cone half-angle ≈ 10° over the volume
    scale = n / 2 * 0.9
    proj = ellipsoid_cone_projections(angles, (n, n + 8), sod=sod, sdd=sdd, det_spacing=sdd / sod,
                                      scale=scale, ellipsoids=ELLIPSOIDS)
    truth = ellipsoid_volume((n, n, n), ELLIPSOIDS, scale=scale)
    rec = fdk(proj, angles, sod=sod, sdd=sdd, det_spacing=sdd / sod, shape=(n, n, n), voxel_size=1.0)
    mask = np.broadcast_to(disk_mask(n, n / 2 - 2), rec.shape)
    assert rmse(rec, truth, mask) < FDK_RMSE_BOUND
    # Scale derived, not fitted: the big ellipsoid's core comes back at its value (1.0).
    from scipy import ndimage

    core = ndimage.binary_erosion(truth == 1.0, iterations=3)
    assert abs(float(rec[core].mean()) - 1.0) < 0.02


def test_fdk_tends_to_parallel_fbp_for_a_distant_source():
    n, k = 32, 60
    angles = default_angles(k, full_turn=True)
    sod, sdd = 1e6, 2e6
    proj = ellipsoid_cone_projections(angles, (4, n), sod=sod, sdd=sdd, det_spacing=2.0, scale=n / 2 * 0.9,
                                      ellipsoids=ELLIPSOIDS)
    rec = fdk(proj, angles, sod=sod, sdd=sdd, det_spacing=2.0, shape=(4, n, n), voxel_size=1.0)
    par = fbp(proj, angles)  # zero outside the disc every projection sees
    inside = np.broadcast_to(disk_mask(n, n / 2 - 1), rec.shape)
    assert np.allclose(rec[inside], par[inside], atol=1e-3)


def test_fdk_rejects_bad_geometry():
    with pytest.raises(ValueError):
        fdk(np.zeros((4, 4, 4)), sod=10.0, sdd=5.0)
    with pytest.raises(ValueError):
        fdk(np.zeros((4, 4)), sod=10.0, sdd=20.0)


# --------------------------------------------------------------------- centre of rotation


@pytest.mark.parametrize("shift", [3.3, -7.8])
def test_center_found_within_half_a_pixel(shift):
    rng = np.random.default_rng(0)
    true_c = (N - 1) / 2 + shift
    for angles, method in (
        (default_angles(360, full_turn=True), "registration"),
        (np.linspace(0.0, 180.0, 181), "registration"),
        (default_angles(180), "centroid"),
    ):
        sino = ellipse_sinogram(N, angles, center=true_c)
        sino += rng.normal(0.0, 0.5, sino.shape)  # ~0.5 % of the largest line integral
        assert abs(find_center(sino, angles, method=method) - true_c) < 0.5, method


def test_center_by_sharpness_on_a_small_slice():
    n = 64
    angles = default_angles(90)
    true_c = (n - 1) / 2 + 2.6
    sino = ellipse_sinogram(n, angles, center=true_c)
    assert abs(find_center(sino, angles, method="sharpness", search=4) - true_c) < 0.5


def test_center_auto_and_errors():
    angles = default_angles(180)
    assert opposite_pairs(angles) == []
    assert len(opposite_pairs(default_angles(8, full_turn=True))) == 4
    sino = ellipse_sinogram(N, angles, center=60.0)
    assert abs(find_center(sino, angles) - 60.0) < 0.5  # auto → centroid here
    with pytest.raises(ValueError, match="180"):
        find_center(sino, angles, method="registration")


# -------------------------------------------------------------------------------- rings

#: A stripe (constant offset on one column, ~1 % of the largest line integral) inside the
#: object: ring amplitude measured 15× / 4.6× lower (sort, width 11) and 22× / 10× (mean) at
#: the two columns tested; the bound is the issue's ~4×. The reference is the same filter
#: applied to the stripe-free data, so the ratio measures the ring, not the filter's own
#: (separately bounded) change of the object.
RING_REDUCTION = 4.0


@pytest.mark.parametrize("method", ["sort", "mean"])
@pytest.mark.parametrize("column", [83, 73])
def test_ring_removal_cuts_ring_amplitude(shepp, method, column):
    truth, sino = shepp
    rng = np.random.default_rng(1)
    noisy = sino + rng.normal(0.0, 0.1, sino.shape)
    clean = fbp(noisy, ANGLES)
    clean_filtered = fbp(remove_rings(noisy, method, 11), ANGLES)
    striped = noisy.copy()
    striped[:, column] += 1.0
    radius = abs(column - (N - 1) / 2)
    before = ring_amplitude(fbp(striped, ANGLES) - clean, radius)
    after = ring_amplitude(fbp(remove_rings(striped, method, 11), ANGLES) - clean_filtered, radius)
    assert before / after >= RING_REDUCTION
    mask = disk_mask(N, N / 2 - 1)
    assert rmse(clean_filtered, truth, mask) < 1.15 * rmse(clean, truth, mask)  # object kept
    stack = remove_rings(striped[:, None, :], method, 11)
    assert stack.shape == (len(ANGLES), 1, N)
    assert remove_rings(striped, "none") is not None
    with pytest.raises(ValueError):
        remove_rings(striped, "wavelet")


# -------------------------------------------------------------------- local tomography


def test_pad_projections_modes():
    row = np.array([[1.0, 2.0, 3.0]])
    assert pad_projections(row, 2, "zero").tolist() == [[0, 0, 1, 2, 3, 0, 0]]
    assert pad_projections(row, 2, "edge").tolist() == [[1, 1, 1, 2, 3, 3, 3]]
    cos = pad_projections(row, 3, "cosine")
    assert cos[0, 0] < cos[0, 1] < cos[0, 2] < 1.0 and cos[0, -1] < cos[0, -2]
    circ = pad_projections(row, 4, "circle", object_radius=4.0)
    assert circ[0, 0] == 0.0 and 0 < circ[0, 3] < 1.0


def test_interior_scan_padding_beats_naive_fbp():
    """Truncated (interior) projections: padding cuts the ROI error ≥ 30 % (measured ~94 %)."""
    big, n_det = 256, 64
    angles = default_angles(180)
    truth = ellipse_image(big)
    sino = ellipse_sinogram(big, angles, n_det=n_det)  # detector sees only the central 64 px
    lo = int((big - 1) / 2 - n_det / 2 + 0.5)
    roi_truth = truth[lo : lo + n_det, lo : lo + n_det]
    mask = disk_mask(n_det, n_det / 2 - 2)
    naive = rmse(fbp(sino, angles, pad_mode="zero"), roi_truth, mask)
    padded = rmse(fbp(sino, angles, pad_mode="edge"), roi_truth, mask)
    assert padded < 0.7 * naive
    assert rmse(fbp(sino, angles, pad_mode="circle", object_radius=0.9 * big / 2), roi_truth, mask) < 0.7 * naive


# ------------------------------------------------------------------------------- CLI


def test_cli_recon_parallel_with_auto_center_and_rings(tmp_path, shepp, capsys):
    truth, _ = shepp
    true_c = (N - 1) / 2 + 2.0
    sino = ellipse_sinogram(N, ANGLES, center=true_c).astype(np.float32)
    src = tmp_path / "sino.npy"
    np.save(src, sino)
    out = tmp_path / "slice.tif"
    code = main([
        "recon", str(src), "--out", str(out), "--center", "auto", "--ring-removal", "sort",
        "--pixel-size", "10",
    ])
    assert code == 0
    err = capsys.readouterr().err
    assert "centre of rotation" in err
    from core.io import read_volume

    vol = read_volume(out)
    assert vol.shape == (1, N, N)
    assert vol.spacing_um == pytest.approx((10.0, 10.0, 10.0))
    rec = np.asarray(vol.array[0]) * 0.01  # per mm → per 10 µm pixel
    assert rmse(rec, truth, disk_mask(N, N / 2 - 1)) < FBP_RMSE_BOUND + 0.02


def test_cli_recon_cone(tmp_path):
    n = 24
    angles = default_angles(48, full_turn=True)
    proj = ellipsoid_cone_projections(angles, (n, n), sod=100.0, sdd=200.0, det_spacing=2.0,
                                      scale=n / 2 * 0.8, ellipsoids=ELLIPSOIDS).astype(np.float32)
    src = tmp_path / "proj.npy"
    np.save(src, proj)
    out = tmp_path / "vol.npy"
    # detector pitch 2 "mm"-units → give µm: 2000 µm at 100/200 mm → 1000 µm voxels
    assert main(["recon", str(src), "--out", str(out), "--geometry", "cone", "--sod", "100", "--sdd", "200",
                 "--pixel-size", "2000"]) == 0
    vol = np.load(out)
    assert vol.shape == (n, n, n)
    truth = ellipsoid_volume((n, n, n), ELLIPSOIDS, scale=n / 2 * 0.8)
    assert rmse(vol, truth) < 0.1  # per mm with 1 mm voxels: the phantom's values


def test_cli_recon_errors(tmp_path, capsys):
    src = tmp_path / "s.npy"
    np.save(src, np.ones((10, 16), dtype=np.float32))
    assert main(["recon", str(src), "--out", str(tmp_path / "o.tif"), "--geometry", "cone"]) == 2
    assert main(["recon", str(src), "--out", str(tmp_path / "o.png")]) == 2
    assert main(["recon", str(src), "--out", str(tmp_path / "o.tif"), "--angles", "0:180:5"]) == 2
    assert main(["recon", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "o.tif")]) == 2
    err = capsys.readouterr().err
    assert all(line.startswith("cellqc: error:") for line in err.strip().splitlines() if "error" in line)
