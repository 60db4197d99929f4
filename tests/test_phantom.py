"""Ground-truth consistency of the synthetic cell generator (core.phantom) and its commands.

Measurements are made on the rendered images the way a detector would (bright-line radii
along rays, half-maximum edges, occupancy from image differences) and compared with the
truth dict, under randomised conditions: seeds, voxel sizes 5–25 µm, off-centre and oval
rolls. Images stay small (1–4 slices, a reduced can where the voxels are small).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import find_peaks

from core.phantom import (
    MATERIAL_MU,
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    DelaminationVoid,
    ForeignParticle,
    default_defects,
    make_cell,
    truth_layer_radius_um,
)
from qc_app.cli import main

MU = MATERIAL_MU
ANODE = MU["anode"]

try:  # core.io is written by another engineer; fall back to tifffile if it is not there yet
    from core.io import read_volume as _read_volume
except ImportError:  # pragma: no cover
    _read_volume = None


def read_array(path):
    if _read_volume is not None:
        return np.asarray(_read_volume(path).array)
    import tifffile  # pragma: no cover

    return tifffile.imread(path)  # pragma: no cover


# --------------------------------------------------------------------------- measurement


def ray_profile(img, center_yx, angle_deg, r_max_um, v, step_px=0.1):
    """Bilinear samples of ``img`` along the ray from the cell axis at ``angle_deg``."""
    r = np.arange(0.0, r_max_um, step_px * v)
    a = math.radians(angle_deg)
    ys = center_yx[0] + r * math.sin(a) / v
    xs = center_yx[1] + r * math.cos(a) / v
    return r, ndimage.map_coordinates(img, [ys, xs], order=1, mode="nearest")


def line_radius(r, p, guess_um, search_um, half_um, background=ANODE, iterations=3):
    """Radius of the brightest thin line near ``guess_um``: the local maximum, refined by
    the centroid of the excess over ``background`` within ±``half_um``."""
    sel = np.abs(r - guess_um) < search_um
    rc = r[sel][np.argmax(p[sel])]
    for _ in range(iterations):
        m = np.abs(r - rc) < half_um
        w = np.clip(p[m] - background, 0.0, None)
        rc = float((w * r[m]).sum() / w.sum())
    return rc


def bright_lines(r, p, v, step_px=0.1):
    """Radii of thin bright lines in a dark (anode-like) surround: local maxima whose
    lowest value within a Cu line's footprint on both sides is below the Al level."""
    reach = int(round((5.0 + 1.5 * v + 5.0) / (step_px * v)))
    peaks, _ = find_peaks(p, plateau_size=(1, None))
    lines = []
    for i in peaks:
        left = p[max(i - reach, 0) : i].min() if i > 0 else p[i]
        right = p[i + 1 : i + reach + 1].min() if i + 1 < len(p) else p[i]
        base = max(left, right)
        if base < 0.5 * (ANODE + MU["al"]) and p[i] - base > 0.3:
            lines.append(r[i])
    return np.asarray(lines)


def cu_half_window(v):
    """Half width of the window holding one Cu line's image: foil/2 + voxel box + bilinear tent."""
    return 5.0 + 1.8 * v


def random_spec(rng, v, **overrides):
    """An 18650 with random placement, ovality and spiral start (small can for small voxels)."""
    kw = dict(
        kind="18650",
        voxel_size_um=float(v),
        n_slices=1,
        can_outer_radius_um=4600.0 if v < 10 else None,
        ovality=float(rng.uniform(0.0, 0.02)),
        ovality_angle_deg=float(rng.uniform(0, 180)),
        center_offset_um=(float(rng.uniform(-600, 600)), float(rng.uniform(-600, 600))),
        spiral_start_deg=float(rng.uniform(0, 360)),
    )
    kw.update(overrides)
    return CellSpec(**kw)


def check_cu_lines(cell, z, angles):
    """Every winding's Cu line along every ray: position within 0.5 voxel, count = windings."""
    truth = cell.truth
    v = truth["voxel_size_um"]
    img = cell.volume.array[z].astype(np.float64)
    center = truth["axis_center_yx_px"][z]
    n = truth["roll"]["windings"]
    pitch = truth["roll"]["pitch_um"]
    r_max = truth["can"]["inner_radius_um"] - v
    worst = 0.0
    for angle in angles:
        r, p = ray_profile(img, center, angle, r_max, v)
        lines = bright_lines(r, p, v)
        assert len(lines) == n, f"ray {angle:.1f}°: {len(lines)} bright lines, truth {n} windings"
        for k in range(n):
            expected = float(
                truth_layer_radius_um(truth, k, truth["stack"]["cu_center_um"][k], angle)
            )
            found = line_radius(r, p, expected, pitch / 4, cu_half_window(v))
            err = abs(found - expected) / v
            worst = max(worst, err)
            assert err < 0.5, (
                f"ray {angle:.1f}°, winding {k}: Cu at {found:.1f} µm, truth {expected:.1f} µm"
            )
    return worst


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize(
    ("seed", "voxel_um"),
    [(0, 5.0), (1, 7.3), (2, 11.6), (3, 14.9), (4, 19.2), (5, 22.4), (6, 25.0)],
)
def test_cu_line_radii_and_count_match_truth(seed, voxel_um):
    rng = np.random.default_rng(1000 + seed)
    spec = random_spec(rng, voxel_um, n_slices=int(rng.integers(1, 3)))
    cell = make_cell(spec, [], Artifacts.clean(), seed=seed)
    assert cell.truth["roll"]["windings"] == spec.windings
    check_cu_lines(cell, spec.n_slices - 1, rng.uniform(0, 360, 6))


@pytest.mark.parametrize("voxel_um", [6.0, 17.0])
def test_cu_lines_on_an_oval_off_centre_cell(voxel_um):
    rng = np.random.default_rng(int(voxel_um))
    spec = random_spec(
        rng, voxel_um, ovality=0.02, ovality_angle_deg=35.0, center_offset_um=(520.0, -730.0)
    )
    cell = make_cell(spec, [], Artifacts.clean(), seed=11)
    cy, cx = cell.truth["axis_center_yx_px"][0]
    size = cell.truth["shape_zyx"][1]
    assert abs(cy - (size - 1) / 2 - 520.0 / voxel_um) < 1e-9
    assert abs(cx - (size - 1) / 2 + 730.0 / voxel_um) < 1e-9
    # Rays along the long and short axes and in between.
    check_cu_lines(cell, 0, [35.0, 125.0, 215.0, 305.0, *rng.uniform(0, 360, 4)])


@pytest.mark.slow
def test_full_size_18650_at_5_um_one_slice():
    """The big case: a whole 18650 at 5 µm (≈ 3700 × 3700 px), one slice."""
    rng = np.random.default_rng(5)
    spec = CellSpec(
        kind="18650", voxel_size_um=5.0, n_slices=1, ovality=0.015, center_offset_um=(300.0, 200.0)
    )
    cell = make_cell(spec, [], Artifacts.clean(), seed=5)
    assert cell.volume.shape[1] > 3600
    check_cu_lines(cell, 0, rng.uniform(0, 360, 3))


def test_headspace_slices_have_no_layers():
    spec = CellSpec(kind="18650", voxel_size_um=25.0, n_slices=3, headspace_slices=2)
    cell = make_cell(spec, [], Artifacts.clean(), seed=3)
    truth = cell.truth
    assert truth["roll"]["roll_slices"] == [2]
    v = spec.voxel_size_um
    for z in (0, 1):
        img = cell.volume.array[z].astype(np.float64)
        cy, cx = truth["axis_center_yx_px"][z]
        yy, xx = np.indices(img.shape)
        inner = np.hypot(yy - cy, xx - cx) * v < spec.can_inner_radius_um - v
        values = np.unique(np.round(img[inner], 4))
        # Only gas, the tab strip and (cap slice) steel: no separator, anode, Al, cathode, Cu.
        assert set(values.tolist()) <= {MU["gas"], MU["tab"], MU["steel"]}, values
        for angle in (200.0, 250.0, 300.0, 340.0):  # rays that miss the tab strip
            r, p = ray_profile(img, (cy, cx), angle, spec.can_inner_radius_um - v, v)
            assert len(bright_lines(r, p, v)) == 0
    check_cu_lines(cell, 2, [200.0, 300.0])


def test_spiral_has_no_artificial_zero_regions():
    """The whole mandrel hole is gas and the roll–can gap electrolyte, at every angle."""
    spec = CellSpec(
        kind="21700", voxel_size_um=20.0, n_slices=1, ovality=0.02, spiral_start_deg=10.0
    )
    cell = make_cell(spec, [], Artifacts.clean(), seed=0)
    img = cell.volume.array[0]
    cy, cx = cell.truth["axis_center_yx_px"][0]
    yy, xx = np.indices(img.shape)
    r = np.hypot(yy - cy, xx - cx) * spec.voxel_size_um
    assert np.allclose(img[r < 0.9 * spec.mandrel_radius_um], MU["gas"])
    gap = (r > cell.truth["roll"]["outer_radius_um"] * 1.03) & (
        r < spec.can_inner_radius_um - 2 * spec.voxel_size_um
    )
    assert gap.sum() > 100
    assert np.allclose(img[gap], MU["electrolyte"])


# --------------------------------------------------------------------------- defects


def _pair(spec, defects, seed, artifacts=None):
    """The same cell rendered with and without the defects (identical roll and jitter)."""
    art = artifacts or Artifacts.clean()
    with_d = make_cell(spec, defects, art, seed=seed)
    without = make_cell(spec, [], art, seed=seed)
    return with_d, without


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_void_volume_matches_rendered_occupancy(seed):
    rng = np.random.default_rng(200 + seed)
    v = float(rng.uniform(8, 20))
    height = float(rng.uniform(150, 400))
    n_slices = int(math.ceil(height / v)) + 2
    spec = random_spec(rng, v, n_slices=n_slices, ovality=0.0, can_outer_radius_um=5200.0)
    thickness = float(rng.uniform(25, 40))
    void = DelaminationVoid(
        winding=int(rng.integers(1, spec.windings - 1)),
        angle_deg=float(rng.uniform(0, 360)),
        thickness_um=thickness,
        arc_length_um=float(rng.uniform(400, 900)),
        height_um=height,
        z_center=(n_slices - 1) / 2 + float(rng.uniform(-0.5, 0.5)),
        side=str(rng.choice(["inner", "outer"])),
        depth_um=float(rng.uniform(3, 50 - thickness)),
    )
    cell, base = _pair(spec, [void], seed)
    truth = cell.truth["defects"][0]
    assert truth["present"] and truth["kind"] == "delamination"
    diff = cell.volume.array.astype(np.float64) - base.volume.array
    assert diff.max() <= 1e-6  # a void only removes material
    occupancy = diff.sum() / (MU["void"] - MU["cathode"])  # voxels (the void lies in the coating)
    measured_mm3 = occupancy * v**3 * 1e-9
    assert measured_mm3 == pytest.approx(truth["volume_mm3"], rel=0.10)
    assert truth["rendered_volume_mm3"] == pytest.approx(measured_mm3, rel=0.02)
    # Its bounding box and centroid hold what was painted.
    z0, y0, x0, z1, y1, x1 = truth["bbox_zyx_px"]
    inside = np.zeros(diff.shape, bool)
    inside[z0:z1, y0:y1, x0:x1] = True
    assert np.abs(diff[inside]).sum() > 0.95 * np.abs(diff).sum()
    cz, cy, cx = truth["centroid_zyx_px"]
    assert z0 <= cz < z1 and y0 <= cy < y1 and x0 <= cx < x1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deflection_moves_the_cu_line_by_the_truth_amplitude(seed):
    rng = np.random.default_rng(300 + seed)
    v = float(rng.uniform(6, 20))
    spec = random_spec(
        rng, v, n_slices=3, ovality=0.0, can_outer_radius_um=5600.0 if v < 10 else None
    )
    k = int(rng.integers(1, spec.windings - 1))
    angle = float(rng.uniform(0, 360))
    defl = CollectorDeflection(
        winding=k,
        angle_deg=angle,
        amplitude_um=float(rng.uniform(30, 60)),
        angular_span_deg=float(rng.uniform(20, 40)),
        z_center=1.0,
        height_span_um=6 * v,
    )
    cell, base = _pair(spec, [defl], seed)
    truth = cell.truth["defects"][0]
    assert truth["present"] and truth["winding"] == k
    amplitude = truth["amplitude_um"]
    assert amplitude == pytest.approx(defl.amplitude_um)  # the centre slice is rendered
    center = cell.truth["axis_center_yx_px"][1]
    expected = float(
        truth_layer_radius_um(cell.truth, k, cell.truth["stack"]["cu_center_um"][k], angle)
    )
    r, p = ray_profile(cell.volume.array[1].astype(np.float64), center, angle, expected + 300, v)
    r0, p0 = ray_profile(base.volume.array[1].astype(np.float64), center, angle, expected + 300, v)
    half = 5.0 + v  # tighter than usual: the moved foil comes near the separator and cathode
    moved = line_radius(r, p, expected + amplitude, 0.5 * amplitude, half)
    before = line_radius(r0, p0, expected, 0.5 * amplitude, half)
    assert abs(before - expected) < 0.5 * v
    assert abs((moved - before) - amplitude) <= v
    # Far from the defect (beyond its angular span) the foil is where the truth says.
    away = angle + defl.angular_span_deg
    r2, p2 = ray_profile(cell.volume.array[1].astype(np.float64), center, away, expected + 300, v)
    expected2 = float(
        truth_layer_radius_um(cell.truth, k, cell.truth["stack"]["cu_center_um"][k], away)
    )
    assert abs(line_radius(r2, p2, expected2, 40, cu_half_window(v)) - expected2) < 0.5 * v


def test_deflection_across_the_spiral_start_stays_on_one_layer():
    """A defect straddling the spiral's start angle moves one physical foil, not two."""
    v = 10.0
    spec = CellSpec(voxel_size_um=v, n_slices=1, can_outer_radius_um=5600.0, spiral_start_deg=40.0)
    defl = CollectorDeflection(
        winding=4,
        angle_deg=40.0,
        amplitude_um=50.0,
        angular_span_deg=30.0,
        z_center=0.0,
        height_span_um=1000.0,
    )
    cell, base = _pair(spec, [defl], 0)
    diff = cell.volume.array[0].astype(np.float64) - base.volume.array[0]
    changed = np.abs(diff) > 0.05
    labels, n = ndimage.label(ndimage.binary_dilation(changed, iterations=3))
    assert n == 1  # one continuous deflected arc (a torn one would leave two pieces a pitch apart)


@pytest.mark.parametrize(("seed", "change"), [(0, -0.3), (1, -0.15), (2, 0.2)])
def test_patch_changes_the_measured_sheet_width(seed, change):
    rng = np.random.default_rng(400 + seed)
    v = float(rng.uniform(5, 10))
    spec = random_spec(rng, v, n_slices=1, ovality=0.0, can_outer_radius_um=4800.0)
    k = int(rng.integers(1, spec.windings - 1))
    angle = float(rng.uniform(0, 360))
    patch = CoatingPatch(
        winding=k,
        angle_deg=angle,
        sheet_change=change,
        arc_length_um=1200.0,
        height_um=200.0,
        z_center=0.0,
    )
    cell, base = _pair(spec, [patch], seed)
    truth = cell.truth
    assert truth["defects"][0]["sheet_change"] == change
    start = float(
        truth_layer_radius_um(truth, k, truth["stack"]["cathode_sheet_start_um"][k], angle)
    )
    end = float(truth_layer_radius_um(truth, k, truth["stack"]["cathode_sheet_end_um"][k], angle))
    center = truth["axis_center_yx_px"][0]

    def sheet_width(img):
        r, p = ray_profile(img.astype(np.float64), center, angle, end + 200, v, step_px=0.05)
        half = 0.5 * (MU["separator"] + MU["cathode"])
        margin = 0.25 * (end - start)
        sel = (r > start - margin) & (r < end + margin)
        rr, above = r[sel], p[sel] >= half
        edges = np.nonzero(np.diff(above.astype(int)))[0]
        i, j = edges[0], edges[-1]  # outer faces of the sheet (the Al foil may dip in between)

        def crossing(a):
            return rr[a] + (half - p[sel][a]) / (p[sel][a + 1] - p[sel][a]) * (rr[a + 1] - rr[a])

        return crossing(j) - crossing(i)

    nominal = sheet_width(base.volume.array[0])
    assert nominal == pytest.approx(truth["stack"]["cathode_sheet_thickness_um"][k], abs=0.5 * v)
    measured = (sheet_width(cell.volume.array[0]) - nominal) / nominal
    assert measured == pytest.approx(change, abs=0.05)


@pytest.mark.parametrize("seed", [0, 1])
def test_particle_is_brighter_than_steel(seed):
    rng = np.random.default_rng(500 + seed)
    v = float(rng.uniform(10, 25))
    diameter = float(rng.uniform(max(80.0, 4 * v), 150.0))
    n_slices = int(math.ceil(diameter / v)) + 2  # the whole sphere
    spec = random_spec(rng, v, n_slices=n_slices, ovality=0.0)
    zc = (n_slices - 1) / 2 + float(rng.uniform(-0.5, 0.5))
    particle = ForeignParticle(
        radius_um=spec.mandrel_radius_um + 0.6 * spec.windings * spec.pitch_um,
        angle_deg=float(rng.uniform(0, 360)),
        diameter_um=diameter,
        z_center=zc,
    )
    for art in (Artifacts.clean(), Artifacts()):
        cell = make_cell(spec, [particle], art, seed=seed)
        truth = cell.truth
        d = truth["defects"][0]
        z0, y0, x0, z1, y1, x1 = d["bbox_zyx_px"]
        peak = cell.volume.array[z0:z1, y0:y1, x0:x1].max()
        img = cell.volume.array[0]
        cy, cx = truth["axis_center_yx_px"][0]
        yy, xx = np.indices(img.shape)
        r = np.hypot(yy - cy, xx - cx) * v
        can = img[(r > spec.can_inner_radius_um + v) & (r < float(spec.can_outer_radius_um) - v)]
        assert peak > np.percentile(can, 99.9), (peak, can.max())
        assert peak > MU["steel"]
    # Partial-volume rendering keeps the sphere's volume.
    sphere_mm3 = math.pi / 6 * diameter**3 * 1e-9
    assert d["rendered_volume_mm3"] == pytest.approx(sphere_mm3, rel=0.05)


def test_default_defects_are_present_with_consistent_truth():
    spec = CellSpec(
        kind="21700",
        voxel_size_um=24.0,
        n_slices=4,
        headspace_slices=1,
        center_offset_um=(-300.0, 450.0),
        ovality=0.01,
    )
    defects = default_defects(spec, np.random.default_rng(8))
    cell = make_cell(spec, defects, Artifacts(), seed=8)
    truth = json.loads(json.dumps(cell.truth))  # JSON-serialisable
    assert [d["kind"] for d in truth["defects"]] == [
        "collector_deflection",
        "delamination",
        "coating_patch",
        "foreign_particle",
    ]
    nz, ny, nx = cell.volume.shape
    assert truth["shape_zyx"] == [nz, ny, nx]
    for d in truth["defects"]:
        assert d["present"], d["kind"]
        z0, y0, x0, z1, y1, x1 = d["bbox_zyx_px"]
        assert 0 <= z0 < z1 <= nz and 0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx
        assert min(d["slices"]) >= spec.headspace_slices  # nothing painted in the headspace
        cz, cy, cx = d["centroid_zyx_px"]
        assert z0 <= cz < z1 and y0 <= cy < y1 and x0 <= cx < x1
        # The centroid lies in the direction the truth angle says.
        acy, acx = truth["axis_center_yx_px"][int(round(cz))]
        angle = math.degrees(math.atan2(cy - acy, cx - acx)) % 360
        assert abs((angle - d["angle_deg"] + 180) % 360 - 180) < 8.0


# --------------------------------------------------------------------------- artifacts


def test_rings_are_centred_on_the_image_centre_not_the_cell():
    v = 25.0
    spec = CellSpec(voxel_size_um=v, n_slices=1, center_offset_um=(700.0, -1100.0))
    rings = Artifacts(
        blur_sigma_px=0.0, noise_sigma=0.0, ring_count=5, ring_amplitude=0.2, cupping=0.0
    )
    with_rings = make_cell(spec, [], rings, seed=4).volume.array[0].astype(np.float64)
    clean_cell = make_cell(spec, [], Artifacts.clean(), seed=4)
    diff = with_rings - clean_cell.volume.array[0]
    assert np.abs(diff).max() > 0.1
    img_c = (diff.shape[0] - 1) / 2
    cell_c = clean_cell.truth["axis_center_yx_px"][0]
    assert math.hypot(cell_c[0] - img_c, cell_c[1] - img_c) > 40  # the cell is well off-centre
    # Each ring is a thin circle about the image centre: fit a circle to every ring.
    labels, n = ndimage.label(np.abs(diff) > 0.02)
    assert n >= 3
    for i in range(1, n + 1):
        yy, xx = np.nonzero(labels == i)
        if len(yy) < 50:
            continue
        w = np.abs(diff[yy, xx])
        cy, cx = np.average(yy, weights=w), np.average(xx, weights=w)
        r_img = np.hypot(yy - img_c, xx - img_c)
        r_cell = np.hypot(yy - cell_c[0], xx - cell_c[1])
        assert np.hypot(cy - img_c, cx - img_c) < 1.0
        assert np.std(r_img) < 2.0 < np.std(r_cell)


def test_cupping_darkens_the_centre():
    v = 25.0
    spec = CellSpec(voxel_size_um=v, n_slices=1, center_offset_um=(400.0, 300.0))
    cupped = make_cell(
        spec, [], Artifacts(blur_sigma_px=0.0, noise_sigma=0.0, ring_count=0, cupping=0.15), seed=2
    )
    clean = make_cell(spec, [], Artifacts.clean(), seed=2)
    a, b = cupped.volume.array[0].astype(np.float64), clean.volume.array[0].astype(np.float64)
    cy, cx = clean.truth["axis_center_yx_px"][0]
    yy, xx = np.indices(a.shape)
    r = np.hypot(yy - cy, xx - cx) * v
    solid = b > 0.2
    inner = solid & (r < spec.mandrel_radius_um + 3 * spec.pitch_um)
    outer = solid & (r > spec.can_inner_radius_um) & (r < float(spec.can_outer_radius_um))
    ratio_inner = np.median(a[inner] / b[inner])
    ratio_outer = np.median(a[outer] / b[outer])
    assert ratio_inner < 0.92
    assert ratio_outer > 0.99
    assert np.all(a[solid] <= b[solid] + 1e-6)


def test_fbp_mode_reconstructs_the_slice():
    spec = CellSpec(
        voxel_size_um=25.0, n_slices=1, can_outer_radius_um=3600.0, mandrel_radius_um=1500.0
    )
    art = Artifacts(
        blur_sigma_px=0.0,
        noise_sigma=0.0,
        ring_count=0,
        cupping=0.0,
        streaks_fbp=True,
        fbp_angles=180,
    )
    fbp = make_cell(spec, [], art, seed=1).volume.array[0].astype(np.float64)
    clean = make_cell(spec, [], Artifacts.clean(), seed=1).volume.array[0].astype(np.float64)
    assert np.corrcoef(fbp.ravel(), clean.ravel())[0, 1] > 0.8
    assert not np.allclose(fbp, clean, atol=0.05)  # streaks and ramp-filter ringing exist


# --------------------------------------------------------------------------- determinism, size


def test_same_seed_gives_identical_bytes():
    spec = CellSpec(voxel_size_um=25.0, n_slices=3, center_offset_um=(100.0, -50.0), ovality=0.01)
    defects = default_defects(spec, np.random.default_rng(3))
    a = make_cell(spec, defects, Artifacts(), seed=3)
    b = make_cell(spec, defects, Artifacts(), seed=3)
    c = make_cell(spec, defects, Artifacts(), seed=4)
    assert a.volume.array.tobytes() == b.volume.array.tobytes()
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    assert a.volume.array.tobytes() != c.volume.array.tobytes()


def test_a_1000_by_1000_by_32_volume_renders():
    """The size the issue asks to render in seconds; benchmarks/phantom_bench.py times it."""
    spec = CellSpec(kind="18650", voxel_size_um=18.85, n_slices=32)
    cell = make_cell(spec, default_defects(spec), Artifacts(), seed=0)
    nz, ny, nx = cell.volume.shape
    assert nz == 32 and 990 <= ny <= 1010 and ny == nx
    assert cell.volume.array.dtype == np.float32
    assert np.isfinite(cell.volume.array[::8]).all()
    assert cell.volume.spacing_um == (18.85, 18.85, 18.85)


# --------------------------------------------------------------------------- commands


def run_cli(argv):
    """``cellqc ARGV`` in-process: its exit code (argparse usage errors raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_phantom_command_writes_volume_and_truth(tmp_path, capsys):
    out = tmp_path / "cell.tif"
    code = main(
        [
            "phantom",
            str(out),
            "--voxel-size",
            "25",
            "--slices",
            "2",
            "--defects",
            "void,particle",
            "--seed",
            "3",
            "--noise",
            "0",
            "--rings",
            "0",
            "--cupping",
            "0",
            "--blur",
            "0",
            "--ovality",
            "0.02",
            "--offset-um",
            "200,-300",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert (
        "cell.tif" in captured.out and "%]" in captured.err
    )  # summary on stdout, progress on stderr
    truth = json.loads((tmp_path / "cell.truth.json").read_text())
    assert [d["kind"] for d in truth["defects"]] == ["delamination", "foreign_particle"]
    assert truth["spec"]["ovality"] == 0.02 and truth["spec"]["center_offset_um"] == [200.0, -300.0]
    assert truth["output"]["dtype"] == "float32"
    vol = read_array(out)
    assert list(vol.shape) == truth["shape_zyx"] and vol.dtype == np.float32
    # Same options in-process give the same array (the command adds nothing of its own).
    spec = CellSpec(voxel_size_um=25.0, n_slices=2, ovality=0.02, center_offset_um=(200.0, -300.0))
    defects = [
        d
        for d in default_defects(spec, np.random.default_rng(3))
        if d.kind in ("delamination", "foreign_particle")
    ]
    direct = make_cell(spec, defects, Artifacts.clean(), seed=3)
    np.testing.assert_array_equal(vol, direct.volume.array)
    if _read_volume is not None:
        assert _read_volume(out).spacing_um == (25.0, 25.0, 25.0)


def test_phantom_command_uint16_scaling_is_documented(tmp_path):
    out = tmp_path / "c16.tiff"
    assert (
        main(
            [
                "phantom",
                str(out),
                "--voxel-size",
                "25",
                "--slices",
                "1",
                "--defects",
                "particle",
                "--dtype",
                "uint16",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    truth = json.loads((tmp_path / "c16.truth.json").read_text())
    stored = read_array(out)
    assert stored.dtype == np.uint16
    o = truth["output"]
    assert o["dtype"] == "uint16" and "value_scale" in o["formula"]
    values = stored.astype(np.float64) / o["value_scale"] + o["value_offset"]
    spec = CellSpec(voxel_size_um=25.0, n_slices=1)
    defects = [
        d for d in default_defects(spec, np.random.default_rng(1)) if d.kind == "foreign_particle"
    ]
    direct = make_cell(spec, defects, Artifacts(), seed=1).volume.array
    assert np.abs(values - direct).max() <= 0.5 / o["value_scale"] + 1e-6


@pytest.mark.parametrize(
    "options",
    [
        ["--defects", "deflection,crack"],
        ["--voxel-size", "abc"],
        ["--voxel-size", "0.2"],
        ["--kind", "4680"],
        ["--slices", "0"],
        ["--slices", "two"],
        ["--offset-um", "5"],
        ["--headspace", "4", "--slices", "4"],
        ["--noise", "-0.1"],
        ["--cupping", "1.5"],
        ["--ovality", "0.5"],
        ["--dtype", "int8"],
    ],
)
def test_phantom_command_rejects_bad_options(tmp_path, capsys, options):
    out = tmp_path / "x.tif"
    code = run_cli(["phantom", str(out), *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("cellqc: error:")
    assert not out.exists()


def test_phantom_command_rejects_bad_output_paths(tmp_path, capsys):
    assert run_cli(["phantom", str(tmp_path / "missing" / "x.tif")]) == 2
    assert run_cli(["phantom", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "output folder does not exist" in err[0] and ".tif" in err[1]


def test_phantom_command_refuses_volumes_beyond_the_memory_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CELLQC_MEMORY_BUDGET_GB", "0.01")
    assert (
        run_cli(["phantom", str(tmp_path / "big.tif"), "--voxel-size", "5", "--slices", "50"]) == 2
    )
    assert "memory budget" in capsys.readouterr().err


def test_demo_generates_a_defective_cell(tmp_path, monkeypatch, capsys):
    from qc_app.commands.demo_cmd import generate_demo_cell

    path, truth = generate_demo_cell(tmp_path, n_slices=4)
    assert path == tmp_path / "demo" / "demo_cell.tif" and path.exists()
    assert (tmp_path / "demo" / "demo_cell.truth.json").exists()
    assert len(truth["defects"]) == 4 and all(d["present"] for d in truth["defects"])
    assert list(read_array(path).shape) == truth["shape_zyx"]

    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))
    assert main(["demo", "--slices", "4"]) == 1  # the demo cell is defective: FAIL
    out = capsys.readouterr().out
    assert "demo_cell.tif" in out and "delamination void" in out
    assert (tmp_path / "home" / "demo" / "demo_cell.truth.json").exists()
