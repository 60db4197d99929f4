"""Ground-truth consistency of the synthetic cell generator (core.phantom) and its commands.

Measurements are made on the rendered images the way a detector would (bright-line radii
along rays, half-maximum edges, occupancy from image differences) and compared with the
truth dict, under randomised conditions: seeds, voxel sizes 5–25 µm, off-centre and oval
rolls. Images stay small (1–4 slices, a reduced can where the voxels are small).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import find_peaks

from core.phantom import (
    MATERIAL_MU,
    Anatomy,
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    DelaminationVoid,
    ForeignParticle,
    default_defects,
    defect_placement_problem,
    make_cell,
    random_anatomy,
    truth_layer_radius_um,
    truth_strip_position,
    truth_windings_with,
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
    """An 18650 with random placement, ovality, spiral start and anatomy (small can for small
    voxels)."""
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
    spec = CellSpec(**kw)
    if "anatomy" not in overrides:
        anatomy = random_anatomy(rng, "18650", spec)
        if float(spec.can_outer_radius_um) < 6000:  # a small test can: keep the tab stretches short
            anatomy = replace(anatomy, tab_window_mm=min(anatomy.tab_window_mm, 6.0),
                              positive_tab_width_mm=min(anatomy.positive_tab_width_mm, 3.0),
                              positive_tab_offset_mm=0.0, negative_tab_width_mm=3.0)
        spec = CellSpec(**{**kw, "anatomy": anatomy})
    return spec


def ray_hits_tab(truth, angle, margin_turns=0.03):
    """Whether the ray at ``angle`` crosses a tab strip (a thick band, no thin line) or the tab
    window (its bare Al foil between electrolyte is a thin line that is not Cu)."""
    anatomy = truth.get("anatomy")
    if not anatomy:
        return False
    n = truth["roll"]["windings"]
    stretches = list(anatomy["tabs"]) + ([anatomy["tab_window"]] if anatomy["tab_window"] else [])
    for tab in stretches:
        s0, s1 = tab["start"]["strip_turns"], tab["end"]["strip_turns"]
        for k in range(n + 1):
            s = float(truth_strip_position(truth, k, angle))
            if s0 - margin_turns <= s <= s1 + margin_turns:
                return True
    return False


def cu_only_image(cell, spec, seed, z):
    """The Cu foils alone on an anode-coloured background: the cell minus the same cell
    rendered with Cu as anode (the renderer is linear in the attenuations), so that tabs, bare
    foils and single coatings at the electrode ends cannot pass for Cu lines."""
    from core.phantom.labels import material_values

    with material_values({"cu": MU["anode"]}):
        without = make_cell(spec, [], Artifacts.clean(), seed=seed).volume.array[z]
    return cell.volume.array[z].astype(np.float64) - without + ANODE


def check_cu_lines(cell, z, angles, spec=None, seed=0, min_checked=3, limit=6):
    """Every Cu line along every ray: position within 0.5 voxel, count = the windings whose
    anode exists on that ray (the truth's electrode ends). With the anatomy (``spec`` given)
    the Cu is isolated first (:func:`cu_only_image`); without it, it is read off the image."""
    truth = cell.truth
    v = truth["voxel_size_um"]
    img = cell.volume.array[z].astype(np.float64) if spec is None else cu_only_image(cell, spec, seed, z)
    center = truth["axis_center_yx_px"][z]
    pitch = truth["roll"]["pitch_um"]
    r_max = truth["can"]["inner_radius_um"] - v
    worst = 0.0
    checked = 0
    for angle in angles[:limit]:
        checked += 1
        windings = truth_windings_with(truth, "cu", angle)
        r, p = ray_profile(img, center, angle, r_max, v)
        lines = bright_lines(r, p, v)
        assert len(lines) == len(windings), (
            f"ray {angle:.1f}°: {len(lines)} bright lines, truth {len(windings)} Cu windings"
        )
        for k in windings:
            expected = float(
                truth_layer_radius_um(truth, k, truth["stack"]["cu_center_um"][k], angle)
            )
            found = line_radius(r, p, expected, pitch / 4, cu_half_window(v))
            err = abs(found - expected) / v
            worst = max(worst, err)
            assert err < 0.5, (
                f"ray {angle:.1f}°, winding {k}: Cu at {found:.1f} µm, truth {expected:.1f} µm"
            )
    assert checked >= min(min_checked, len(angles))
    return worst


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize(
    ("seed", "voxel_um"),
    [(0, 5.0), (1, 7.3), (2, 11.6), (3, 14.9), (4, 19.2), (5, 22.4), (6, 25.0)],
)
@pytest.mark.slow
def test_cu_line_radii_and_count_match_truth(seed, voxel_um):
    rng = np.random.default_rng(1000 + seed)
    spec = random_spec(rng, voxel_um, n_slices=int(rng.integers(1, 3)))
    cell = make_cell(spec, [], Artifacts.clean(), seed=seed)
    assert cell.truth["roll"]["windings"] == spec.windings
    check_cu_lines(cell, spec.n_slices - 1, rng.uniform(0, 360, 6), spec, seed)


@pytest.mark.parametrize("voxel_um", [6.0, 17.0])
@pytest.mark.slow
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
    check_cu_lines(cell, 0, [35.0, 125.0, 215.0, 305.0, *rng.uniform(0, 360, 4)], spec, 11, limit=8)


@pytest.mark.slow
def test_full_size_18650_at_5_um_one_slice():
    """The big case: a whole 18650 at 5 µm (≈ 3700 × 3700 px), one slice."""
    rng = np.random.default_rng(5)
    spec = CellSpec(
        kind="18650", voxel_size_um=5.0, n_slices=1, ovality=0.015, center_offset_um=(300.0, 200.0)
    )
    cell = make_cell(spec, [], Artifacts.clean(), seed=5)
    assert cell.volume.shape[1] > 3600
    check_cu_lines(cell, 0, rng.uniform(0, 360, 3), spec, 5)


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
    check_cu_lines(cell, 2, [200.0, 300.0], spec, 3)


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


def placed(rng, spec, defect):
    """The defect moved to a random winding and angle where its layers exist (the anatomy's
    electrode ends, single-sided stretches and tab window have none to put it in)."""
    for _ in range(500):
        if not defect_placement_problem(spec, defect):
            return defect
        defect = replace(defect, winding=int(rng.integers(1, spec.windings - 1)),
                         angle_deg=float(rng.uniform(0, 360)))
    raise AssertionError("no place for the defect")


def _pair(spec, defects, seed, artifacts=None):
    """The same cell rendered with and without the defects (identical roll and jitter)."""
    art = artifacts or Artifacts.clean()
    with_d = make_cell(spec, defects, art, seed=seed)
    without = make_cell(spec, [], art, seed=seed)
    return with_d, without


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.slow
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
    void = placed(rng, spec, void)
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
@pytest.mark.slow
def test_deflection_moves_the_cu_line_by_the_truth_amplitude(seed):
    rng = np.random.default_rng(300 + seed)
    v = float(rng.uniform(6, 20))
    spec = random_spec(
        rng, v, n_slices=3, ovality=0.0, can_outer_radius_um=5600.0 if v < 10 else None
    )
    defl = CollectorDeflection(
        winding=int(rng.integers(1, spec.windings - 1)),
        angle_deg=float(rng.uniform(0, 360)),
        amplitude_um=float(rng.uniform(30, 60)),
        angular_span_deg=float(rng.uniform(20, 40)),
        z_center=1.0,
        height_span_um=6 * v,
    )
    defl = placed(rng, spec, replace(defl, angular_span_deg=defl.angular_span_deg * 2))
    defl = replace(defl, angular_span_deg=defl.angular_span_deg / 2)  # room for the check beyond it
    k, angle = defl.winding, defl.angle_deg
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
@pytest.mark.slow
def test_patch_changes_the_measured_sheet_width(seed, change):
    rng = np.random.default_rng(400 + seed)
    v = float(rng.uniform(5, 10))
    spec = random_spec(rng, v, n_slices=1, ovality=0.0, can_outer_radius_um=4800.0)
    patch = CoatingPatch(
        winding=int(rng.integers(1, spec.windings - 1)),
        angle_deg=float(rng.uniform(0, 360)),
        sheet_change=change,
        arc_length_um=1200.0,
        height_um=200.0,
        z_center=0.0,
    )
    patch = placed(rng, spec, patch)
    k, angle = patch.winding, patch.angle_deg
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
@pytest.mark.slow
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
        voxel_size_um=25.0, n_slices=1, can_outer_radius_um=3600.0, mandrel_radius_um=1500.0,
        anatomy=False,  # a tiny cell, too small for a real cell's tab window
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# --------------------------------------------------------------------------- anatomy
#
# Each element of a real cell's anatomy is found on the rendered image where the truth says.
# Along the strip, a layer's thickness along a ray is the integral of the image of that
# material alone (the renderer is linear in the attenuations: the same cell rendered with
# attenuation 1 for the material and 0 for every other is the fraction of each voxel it fills),
# so neighbouring layers cannot contaminate it; the cathode, bright enough, is also measured on
# the ordinary image. Along the axis, a sheet's edge is read from the partial volume of the
# slices it crosses.

MATERIAL_LAYERS = {
    "anode": ("anode_inner", "anode_outer"),
    "cu": ("cu",),
    "cathode": ("cathode_inner", "cathode_outer"),
    "al": ("al",),
    "separator": ("separator_a", "separator_b"),
    "polymer": ("tape",),
}


def anatomy_spec(rng, v, kind="18650", **overrides):
    """A cell with a random anatomy, placement, ovality and spiral start."""
    kw = dict(
        kind=kind,
        voxel_size_um=float(v),
        n_slices=1,
        can_outer_radius_um=5200.0 if v < 12 else None,
        ovality=float(rng.uniform(0.0, 0.02)),
        ovality_angle_deg=float(rng.uniform(0, 180)),
        center_offset_um=(float(rng.uniform(-500, 500)), float(rng.uniform(-500, 500))),
        spiral_start_deg=float(rng.uniform(0, 360)),
    )
    kw.update(overrides)
    spec = CellSpec(**kw)
    anatomy = random_anatomy(rng, kind, spec)
    if float(spec.can_outer_radius_um) < 6000:  # a small test can: short tab stretches
        anatomy = replace(anatomy, tab_window_mm=min(anatomy.tab_window_mm, 6.0),
                          positive_tab_width_mm=min(anatomy.positive_tab_width_mm, 3.0),
                          positive_tab_offset_mm=0.0, negative_tab_width_mm=3.0)
    return replace(spec, anatomy=anatomy, n_slices=spec.n_slices)


def material_image(spec, seed, materials, z=0):
    """Fraction of every voxel of slice ``z`` filled by ``materials`` (exact, no artifacts)."""
    from core.phantom.labels import material_values

    with material_values({m: (1.0 if m in materials else 0.0) for m in MU}):
        return make_cell(spec, [], Artifacts.clean(), seed=seed).volume.array[z].astype(np.float64)


def strip_ray(spec, truth, s, depth_lo, depth_hi):
    """Ray angle through strip position ``s`` and the radii of depths [lo, hi] of its winding."""
    from core.phantom.anatomy import strip_to_polar

    k, angle = strip_to_polar(spec, s)
    r_lo = float(truth_layer_radius_um(truth, k, depth_lo, angle))
    r_hi = float(truth_layer_radius_um(truth, k, depth_hi, angle))
    return k, angle, r_lo, r_hi


def integral_along_ray(img, center, angle, r_lo, r_hi, v, baseline=0.0, sigma_px=2.0):
    """∫ (image - baseline) dr (µm) across a layer lying between radii r_lo and r_hi on the ray
    at ``angle``: the pixels centred in the band r_lo - 0.6 v .. r_hi + 0.6 v near the ray,
    weighted by a Gaussian of the arc length along the layer (σ = ``sigma_px`` pixels), summed
    as areas. A pixel holds its radial footprint's average, so a band half a voxel wider than
    the layer holds all of it and next to nothing of layers 20 µm away.

    (A single ray's integral through an interpolated image of a layer one or two pixels thin
    depends on how the layer crosses the pixel grid — ±10 % on diagonals — the band's does not.)
    """
    cy, cx = center
    r_mid = 0.5 * (r_lo + r_hi)
    sigma = sigma_px * v
    half_deg = math.degrees(4 * sigma / r_mid)
    a = math.radians(angle)
    reach = (r_hi + 3 * v) / v
    y0, y1 = int(cy + min(0, math.sin(a) * reach) - reach * 0.3) - 3, int(cy + max(0, math.sin(a) * reach) + reach * 0.3) + 4
    x0, x1 = int(cx + min(0, math.cos(a) * reach) - reach * 0.3) - 3, int(cx + max(0, math.cos(a) * reach) + reach * 0.3) + 4
    y0, x0 = max(y0, 0), max(x0, 0)
    yy, xx = np.mgrid[y0:min(y1, img.shape[0]), x0:min(x1, img.shape[1])]
    r = np.hypot(yy - cy, xx - cx) * v
    dang = (np.degrees(np.arctan2(yy - cy, xx - cx)) - angle + 180.0) % 360.0 - 180.0
    sel = (r > r_lo - 0.6 * v) & (r < r_hi + 0.6 * v) & (np.abs(dang) < half_deg)
    arc = np.radians(dang[sel]) * r_mid
    w = np.exp(-0.5 * (arc / sigma) ** 2)
    values = img[yy[sel], xx[sel]] - baseline
    # Pixel areas at radius r cover r/r_mid as much arc at the layer's radius.
    return float((w * values * v * v * r_mid / r[sel]).sum() / (sigma * math.sqrt(2 * math.pi)))


def layer_depths(truth, k, layers):
    """Union depth range (µm in winding k) and each layer's range."""
    bounds = truth["stack"]["layer_bounds_um"]
    tape = truth["anatomy"]["strip"]["end_tape"]
    out = {}
    for layer in layers:
        if layer == "tape":
            out[layer] = (0.0, tape["thickness_um"] if tape else 0.0)
        else:
            kk = min(k, len(bounds[layer]) - 1)
            out[layer] = tuple(bounds[layer][kk])
    lo = min(a for a, _ in out.values())
    hi = max(b for _, b in out.values())
    return lo, hi, out


def expected_thickness(truth, s, layers):
    """Thickness (µm along the winding's normal) of the layers present at strip position s."""
    k = math.floor(s)
    _, _, each = layer_depths(truth, k, layers)
    total = 0.0
    for layer, (a, b) in each.items():
        if k < truth["roll"]["windings"] or layer == "tape":
            present = any(lo <= s < hi for lo, hi in truth["anatomy"]["presence"][layer])
            total += (b - a) if present else 0.0
    return total


def measured_thickness(spec, truth, img, s, layers):
    """Thickness along the ray through s, scaled to the winding's normal (oval rolls)."""
    k = math.floor(s)
    lo, hi, _ = layer_depths(truth, k, layers)
    _, angle, r_lo, r_hi = strip_ray(spec, truth, s, lo, hi)
    v = truth["voxel_size_um"]
    center = truth["axis_center_yx_px"][0]
    return integral_along_ray(img, center, angle, r_lo, r_hi, v) * (hi - lo) / (r_hi - r_lo)


def breakpoints(truth, layers):
    """Strip positions where any of the layers starts or ends, and every tab's edges."""
    an = truth["anatomy"]
    pts = {p for layer in layers for iv in an["presence"][layer] for p in iv}
    for tab in an["tabs"]:
        pts |= {tab["start"]["strip_turns"], tab["end"]["strip_turns"]}
    return sorted(pts)


def turns_per_um(spec, s):
    r = spec.mandrel_radius_um + spec.pitch_um * (s + 0.5)
    return 1.0 / (2 * np.pi * r * (1 - abs(spec.ovality)))


def near_tab(truth, s, margin):
    """Whether s (or the windings inside/outside it on the same ray) lies on a tab."""
    for tab in truth["anatomy"]["tabs"]:
        for m in (-1, 0, 1):
            if tab["start"]["strip_turns"] - margin <= s + m <= tab["end"]["strip_turns"] + margin:
                return True
    return False


@pytest.mark.parametrize(("seed", "voxel_um"), [(0, 8.0), (1, 12.5), (2, 16.0), (3, 20.0), (4, 25.0)])
@pytest.mark.slow
def test_layers_exist_exactly_where_the_truth_says(seed, voxel_um):
    """Along the whole strip, each material's thickness on the ray is the truth's: the electrode
    ends, separator-only turns, single-sided stretches, tab window and end tape included; and
    every start and end of a layer is within one voxel (of arc) of the truth's position."""
    rng = np.random.default_rng(7000 + seed)
    spec = anatomy_spec(rng, voxel_um)
    truth = make_cell(spec, [], Artifacts.clean(), seed=seed).truth
    n = truth["roll"]["windings"]
    v = voxel_um
    located = []
    for material, layers in MATERIAL_LAYERS.items():
        if material == "polymer" and not truth["anatomy"]["strip"]["end_tape"]:
            continue
        img = material_image(spec, seed, {material})
        edges = breakpoints(truth, layers)
        # 1. Away from any edge, the thickness on the ray is the truth's.
        samples = rng.uniform(0.0, n + 0.99, 80)
        checked = 0
        for s in samples:
            margin = 8.0 * v * turns_per_um(spec, s)  # the band's Gaussian reaches ±4σ = ±8 pixels
            if any(abs(s - e) < margin for e in edges) or near_tab(truth, s, margin):
                continue
            expected = expected_thickness(truth, s, layers)
            found = measured_thickness(spec, truth, img, s, layers)
            # ±2 µm: the band's reading of films one pixel thin (measured: ±1.7 µm for the two
            # 21 µm separators at 20 µm voxels, ±0.6 µm for the Al foil at 8 µm).
            assert found == pytest.approx(expected, abs=2.0 + 0.03 * expected), (material, s, found, expected)
            checked += 1
        assert checked >= 15
        # 2. Each edge is where the truth says: the thickness crosses half-way within a voxel.
        for e in edges:
            if e <= 0 or e >= n:
                continue
            dt = v * turns_per_um(spec, e)
            others = [x for x in edges if x != e]
            if any(abs(x - e) < 12 * dt for x in others) or near_tab(truth, e, 12 * dt):
                continue
            before = expected_thickness(truth, e - 8 * dt, layers)
            after = expected_thickness(truth, e + 8 * dt, layers)
            if abs(before - after) < 5.0:
                continue
            ss = np.linspace(e - 8 * dt, e + 8 * dt, 65)
            t = np.array([measured_thickness(spec, truth, img, s, layers) for s in ss])
            assert t[0] == pytest.approx(before, abs=2.0 + 0.03 * before)
            assert t[-1] == pytest.approx(after, abs=2.0 + 0.03 * after)
            half = 0.5 * (before + after)
            above = (t - half) * np.sign(after - before) > 0
            i = int(np.argmax(above))
            assert above[i:].all(), (material, e, t)  # one clean step
            crossing = ss[i - 1] + (half - t[i - 1]) / (t[i] - t[i - 1]) * (ss[i] - ss[i - 1])
            assert abs(crossing - e) / dt < 0.25, (material, e, (crossing - e) / dt)  # ≤ 1 asked
            located.append((material, round(e, 3), round(float((crossing - e) / dt), 3)))
    # Most starts and ends are checked (a few sit too close to another edge or a tab).
    assert len(located) >= 8, located


@pytest.mark.parametrize(("seed", "voxel_um"), [(10, 10.0), (11, 17.0), (12, 25.0)])
def test_cathode_outer_coating_is_absent_over_the_truth_stretch(seed, voxel_um):
    """On the ordinary image: the cathode sheet's profile along a ray is one coating + Al over
    the single-sided stretch the truth gives, both coatings just before it, nothing after the
    cathode's end."""
    rng = np.random.default_rng(7100 + seed)
    spec = anatomy_spec(rng, voxel_um)
    cell = make_cell(spec, [], Artifacts.clean(), seed=seed)
    truth = cell.truth
    img = cell.volume.array[0].astype(np.float64)
    center = truth["axis_center_yx_px"][0]
    (stretch,) = [d for d in truth["anatomy"]["single_sided"] if d["electrode"] == "cathode"]
    assert stretch["coating"] == "outer" and stretch["faces"] == "can"
    s0, s1 = stretch["start"]["strip_turns"], stretch["end"]["strip_turns"]
    assert s1 == pytest.approx(truth["anatomy"]["strip"]["cathode"]["end"]["strip_turns"])
    electrolyte = MU["electrolyte"]

    def excess(s):
        k = math.floor(s)
        lo, hi, each = layer_depths(truth, k, ("cathode_inner", "al", "cathode_outer"))
        _, angle, r_lo, r_hi = strip_ray(spec, truth, s, lo, hi)
        scale = (hi - lo) / (r_hi - r_lo)
        return integral_along_ray(img, center, angle, r_lo, r_hi, voxel_um, electrolyte) * scale, each

    dt = voxel_um * turns_per_um(spec, s1)
    for s in (s0 - 4 * dt, *np.linspace(s0 + 4 * dt, s1 - 4 * dt, 4), s1 + 4 * dt):
        found, each = excess(s)
        coat_in = each["cathode_inner"][1] - each["cathode_inner"][0]
        coat_out = each["cathode_outer"][1] - each["cathode_outer"][0]
        al = each["al"][1] - each["al"][0]
        if s < s0:
            expected = (MU["cathode"] - electrolyte) * (coat_in + coat_out) + (MU["al"] - electrolyte) * al
        elif s < s1:
            expected = (MU["cathode"] - electrolyte) * coat_in + (MU["al"] - electrolyte) * al
        else:
            expected = 0.0
        # Full sheet ~110, one coating ~57: ±4 for the band's reading and the anode coatings
        # 20 µm away (0.18 per µm of them within the band's reach).
        assert found == pytest.approx(expected, abs=4.0), (s, found, expected)
    # The stretch's length is measured along the layer.
    assert stretch["arc_length_mm"] > 0.3 * 2 * np.pi * stretch["start"]["radius_um"] / 1000


@pytest.mark.parametrize(("seed", "voxel_um"), [(20, 9.0), (21, 15.0), (22, 24.0)])
@pytest.mark.slow
def test_tab_window_and_tabs_where_the_truth_says(seed, voxel_um):
    """The window: only the Al foil between the coatings' places; the Al tab inside it and the
    Ni tab on the anode's Cu at the truth's strip positions, thicknesses and radii."""
    rng = np.random.default_rng(7200 + seed)
    spec = anatomy_spec(rng, voxel_um)
    truth = make_cell(spec, [], Artifacts.clean(), seed=seed).truth
    an = truth["anatomy"]
    window = an["tab_window"]
    assert window["electrode"] == "cathode" and window["coatings_absent"] == ["inner", "outer"]
    w0, w1 = window["start"]["strip_turns"], window["end"]["strip_turns"]
    assert window["winding"] == math.floor(w0)
    arc = window["arc_length_mm"]
    assert arc == pytest.approx(spec.anatomy.tab_window_mm, rel=1e-3)
    (pos,) = [t for t in an["tabs"] if t["polarity"] == "positive"]
    (neg,) = [t for t in an["tabs"] if t["polarity"] == "negative"]
    assert w0 < pos["start"]["strip_turns"] < pos["end"]["strip_turns"] < w1
    cathode = material_image(spec, seed, {"cathode"})
    tab_al = material_image(spec, seed, {"tab_al"})
    tab_ni = material_image(spec, seed, {"tab_ni"})
    center = truth["axis_center_yx_px"][0]
    v = voxel_um
    # Inside the window, away from the tab: no coating.
    dt = v * turns_per_um(spec, w0)
    checked = 0
    for s in np.linspace(w0 + 9 * dt, w1 - 9 * dt, 12):  # the band reaches 8 pixels along
        if pos["start"]["strip_turns"] - 9 * dt < s < pos["end"]["strip_turns"] + 9 * dt:
            continue
        assert measured_thickness(spec, truth, cathode, s, MATERIAL_LAYERS["cathode"]) < 0.6
        checked += 1
    assert checked >= 3
    # The tabs: thickness on the ray at their middle, radial position, nothing beside them.
    for tab, img in ((pos, tab_al), (neg, tab_ni)):
        t0, t1 = tab["start"]["strip_turns"], tab["end"]["strip_turns"]
        assert tab["width_mm"] == pytest.approx(
            spec.anatomy.positive_tab_width_mm if tab is pos else spec.anatomy.negative_tab_width_mm)
        dt = v * turns_per_um(spec, t0)
        for s in np.linspace(t0 + 9 * dt, t1 - 9 * dt, 5):
            from core.phantom.anatomy import strip_to_polar

            k, angle = strip_to_polar(spec, s)
            lo, hi = tab["depth_in_winding_um"]
            r_lo = float(truth_layer_radius_um(truth, k, lo, angle))
            r_hi = float(truth_layer_radius_um(truth, k, hi, angle))
            found = integral_along_ray(img, center, angle, r_lo, r_hi, v) * (hi - lo) / (r_hi - r_lo)
            assert found == pytest.approx(tab["thickness_um"], abs=1.0)
            r, p = ray_profile(img, center, angle, r_hi + 3 * v, v, step_px=0.05)
            centroid = float((p * r).sum() / p.sum())
            assert centroid == pytest.approx(0.5 * (r_lo + r_hi), abs=0.5 * v)
        for s in (t0 - 2 * dt, t1 + 2 * dt):
            k, angle = strip_to_polar(spec, s)
            r, p = ray_profile(img, center, angle, float(spec.can_inner_radius_um), v)
            assert p.max() < 1e-6
    # The Ni tab sits on the anode's uncoated face at its inner or outer end.
    end = an["strip"]["anode"]["start" if spec.anatomy.negative_tab == "inner" else "end"]["strip_turns"]
    assert abs(0.5 * (neg["start"]["strip_turns"] + neg["end"]["strip_turns"]) - end) < 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_innermost_turn_wobble_moves_the_layers_by_the_truth(seed):
    rng = np.random.default_rng(7300 + seed)
    v = float(rng.uniform(8.0, 14.0))
    spec = anatomy_spec(rng, v)
    # A strong wobble that has not faded where the first Cu lies.
    spec = replace(spec, anatomy=replace(spec.anatomy, wobble_um=float(rng.uniform(100, 150)),
                                         wobble_fade_turns=float(rng.uniform(2.5, 3.0)),
                                         separator_inner_turns=float(rng.uniform(0.5, 0.8))),
                   n_slices=1)
    cell = make_cell(spec, [], Artifacts.clean(), seed=seed)
    truth = cell.truth
    inner = truth["anatomy"]["innermost_turn"]
    assert inner["wobble_um"] == spec.anatomy.wobble_um and inner["direction"] == "inwards"
    flat = replace(spec, anatomy=replace(spec.anatomy, wobble_um=0.0), n_slices=1)
    flat_truth = make_cell(flat, [], Artifacts.clean(), seed=seed).truth
    img = cu_only_image(cell, spec, seed, 0)
    center = truth["axis_center_yx_px"][0]
    moved = 0
    for angle in np.linspace(0, 360, 24, endpoint=False):
        windings = truth_windings_with(truth, "cu", angle)
        k = windings[0]  # the innermost Cu on this ray
        cu = truth["stack"]["cu_center_um"][k]
        expected = float(truth_layer_radius_um(truth, k, cu, angle))
        unmoved = float(truth_layer_radius_um(flat_truth, k, cu, angle))
        r, p = ray_profile(img, center, angle, expected + 200, v)
        found = line_radius(r, p, expected, 0.3 * spec.pitch_um, cu_half_window(v))
        assert abs(found - expected) < 0.5 * v, (angle, found, expected, unmoved)
        if unmoved - expected > 2 * v:
            moved += 1
            assert abs(found - unmoved) > 1.5 * v
    assert moved >= 3  # the wobble is real, and inwards


def roll_end_spec(rng, side, in_plane=25.0):
    """A slab just around one roll end, slices 10–25 µm apart, with a random anatomy."""
    from core.phantom.anatomy import cell_layout

    dz = float(rng.uniform(10.0, 25.0))
    spec = anatomy_spec(rng, in_plane, can_outer_radius_um=5200.0)
    anatomy = replace(
        spec.anatomy,
        overhang_top_um=float(rng.uniform(250, 500)), overhang_top_amplitude_um=float(rng.uniform(0, 150)),
        overhang_bottom_um=float(rng.uniform(250, 500)),
        overhang_bottom_amplitude_um=float(rng.uniform(0, 150)),
        separator_beyond_anode_top_um=float(rng.uniform(200, 400)),
        separator_beyond_anode_bottom_um=float(rng.uniform(200, 400)),
    )
    spec = replace(spec, anatomy=anatomy, slice_spacing_um=dz, n_slices=1)
    layout = cell_layout(spec)
    end = layout.top if side == "top" else layout.bottom
    reach = anatomy.separator_beyond_anode_top_um + 650.0 if side == "top" else anatomy.separator_beyond_anode_bottom_um + 650.0
    if side == "top":
        z0 = end.separator_z - 4 * dz - float(rng.uniform(0, dz))
    else:
        z0 = end.separator_z - reach - 4 * dz - float(rng.uniform(0, dz))
    return replace(spec, slab_top_um=z0, n_slices=int(math.ceil((reach + 8 * dz) / dz)))


def edge_from_fractions(profile, lo_value, hi_value, dz, present_below):
    """Voxel-index coordinate (from the profile's first slice) of a sheet's edge, from a
    voxel's values through the slices: the sheet fills the fraction (value - lo) / (hi - lo)
    of each slice; before the edge it is absent (top end) or present (bottom end)."""
    f = np.clip((profile - lo_value) / (hi_value - lo_value), 0.0, 1.0)
    before = (1 - f).sum() if present_below else f.sum()  # slices' worth before the edge
    return before - 0.5


@pytest.mark.parametrize(("seed", "side"), [(0, "top"), (1, "bottom"), (2, "top"), (3, "bottom")])
@pytest.mark.slow
def test_roll_end_edges_in_z_where_the_truth_says(seed, side):
    """Separator, anode and cathode edges at a roll end, from each voxel's partial volume, within
    one voxel of the truth (slices 10–25 µm apart); the cathode's edge follows the overhang's
    variation with the angle."""
    rng = np.random.default_rng(7400 + seed)
    spec = roll_end_spec(rng, side)
    cell = make_cell(spec, [], Artifacts.clean(), seed=seed)
    truth = cell.truth
    dz = spec.slice_spacing_um
    assert truth["spacing_um"] == [dz, spec.voxel_size_um, spec.voxel_size_um]
    assert cell.volume.spacing_um == (dz, spec.voxel_size_um, spec.voxel_size_um)
    end = truth["anatomy"]["roll_ends"][side]
    assert end["in_volume"]
    vol = cell.volume.array.astype(np.float64)
    nz = vol.shape[0]
    below = side == "top"  # the sheets are present below a top edge, above a bottom edge
    interior = vol[-1] if below else vol[0]
    center = truth["axis_center_yx_px"][0]
    yy, xx = np.indices(interior.shape)
    polar = np.degrees(np.arctan2(yy - center[0], xx - center[1])) % 360
    assert truth["slices"]["roll_end"], truth["slices"]
    # Cathode: voxels wholly inside a cathode coating (value 1) → electrolyte beyond its edge.
    pure = np.argwhere(np.abs(interior - MU["cathode"]) < 1e-6)
    assert len(pure) > 50
    anode_px = end["anode_edge_z_px"]
    for y, x in pure[rng.choice(len(pure), 40, replace=False)]:
        prof = vol[:, y, x]
        # Only the slices between the anode's edge and the cathode's (electrolyte, then cathode).
        first = int(math.floor(anode_px + 0.5)) + 1 if below else 0
        last = nz if below else int(math.floor(anode_px + 0.5))
        seg = prof[first:last]
        f = np.clip((seg - MU["electrolyte"]) / (MU["cathode"] - MU["electrolyte"]), 0, 1)
        if below:
            edge = first - 0.5 + (1 - f).sum()
        else:
            edge = first - 0.5 + f.sum()
        ov = end["overhang_um_mean"] + end["overhang_um_amplitude"] * math.cos(
            math.radians(polar[y, x] - end["overhang_angle_deg"]))
        expected = anode_px + (ov / dz if below else -ov / dz)
        assert abs(edge - expected) < 1.0, (y, x, edge, expected)
        assert abs(edge - expected) < 0.2  # in fact exact up to the ray angle across a voxel
    # Anode: voxels wholly inside an anode coating (value 0.3) → gas beyond its edge.
    pure = np.argwhere(np.abs(interior - MU["anode"]) < 1e-6)
    assert len(pure) > 50
    sep_px = end["separator_edge_z_px"]
    # Only the slices on the roll's side of the separators' edge (insulators lie beyond it).
    first = int(math.floor(sep_px + 0.5)) + 1 if below else 0
    last = nz if below else int(math.floor(sep_px + 0.5))
    for y, x in pure[rng.choice(len(pure), 20, replace=False)]:
        edge = first + edge_from_fractions(vol[first:last, y, x], MU["gas"], MU["anode"], dz, below)
        assert abs(edge - anode_px) < 0.2, (edge, anode_px)
    # Separators (their own image: a 20 µm film fills no voxel wholly).
    sep = material_image(spec, seed, {"separator"}, z=nz - 1 if below else 0)
    from core.phantom.labels import material_values

    with material_values({m: (1.0 if m == "separator" else 0.0) for m in MU}):
        sep_vol = make_cell(spec, [], Artifacts.clean(), seed=seed).volume.array.astype(np.float64)
    spots = np.argwhere(sep > 0.5)
    for y, x in spots[rng.choice(len(spots), 20, replace=False)]:
        edge = edge_from_fractions(sep_vol[:, y, x], 0.0, sep[y, x], dz, below)
        assert abs(edge - sep_px) < 0.2, (edge, sep_px)
    assert end["separator_beyond_anode_um"] == pytest.approx(abs(anode_px - end["separator_edge_z_px"]) * dz)
    # The truth's per-angle table is the formula.
    by_angle = np.array(end["overhang_um_by_angle"])
    assert by_angle.min() >= 200 and by_angle.max() <= 1500 + 1e-6


def top_spec(rng, kind="18650", v=25.0, dz=50.0):
    spec = anatomy_spec(rng, v, kind=kind, can_outer_radius_um=5200.0 if kind == "18650" else 5600.0,
                        slice_spacing_um=dz)
    return replace(spec, region="top", n_slices=None)


def outer_radius(img, center, v, r_start, angles):
    """Radius of the outer face of the outermost bright shell (half the steel level)."""
    out = []
    for angle in angles:
        r, p = ray_profile(img, center, angle, r_start, v)
        above = np.nonzero(p > 0.5 * MU["steel"])[0]
        if not len(above):
            out.append(np.nan)
            continue
        i = above[-1]
        half = 0.5 * MU["steel"]
        out.append(r[i] + (p[i] - half) / (p[i] - p[i + 1]) * (r[i + 1] - r[i]))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.slow
def test_top_slab_groove_crimp_cap_and_slice_kinds(seed):
    """The groove narrows the can by the truth's depth (within one voxel) where the truth says;
    the crimped rim, the cap and the slice kinds are where the truth puts them."""
    rng = np.random.default_rng(7500 + seed)
    v = float(rng.uniform(15.0, 25.0))
    spec = top_spec(rng, kind=str(rng.choice(["18650", "21700"])), v=v, dz=float(rng.uniform(25, 60)))
    cell = make_cell(spec, [], Artifacts.clean(), seed=seed)
    truth = cell.truth
    vol = cell.volume.array.astype(np.float64)
    nz = vol.shape[0]
    assert truth["region"] == "top"
    slices = truth["slices"]
    assert sorted(sum(slices.values(), [])) == list(range(nz))  # a partition
    assert not slices["bottom"]
    center = truth["axis_center_yx_px"][0]
    r_out = float(spec.can_outer_radius_um)
    angles = rng.uniform(0, 360, 12)
    groove = truth["anatomy"]["can"]["groove"]
    g0, g1 = groove["z_range_px"]
    radii = np.array([np.median(outer_radius(vol[z], center, v, r_out + 4 * v, angles))
                      if z not in slices["outside"] else np.nan for z in range(nz)])
    straight = slices["roll_interior"] + slices["roll_end"]
    assert np.abs(radii[straight] - r_out).max() < 0.5 * v
    in_groove = [z for z in range(nz) if g0 <= z <= g1]
    z_min = in_groove[int(np.argmin(radii[in_groove]))]
    assert abs(z_min - groove["center_z_px"]) <= 1.0
    assert radii[z_min] == pytest.approx(r_out - groove["depth_um"], abs=v)
    assert groove["outer_radius_at_center_um"] == pytest.approx(r_out - groove["depth_um"])
    assert 0.5 * groove["wall_displacement_um"] < groove["depth_um"] <= groove["wall_displacement_um"] + 1e-6
    # Crimp: steel at the rim's curled-in lip over the crimp's slices, none above them.
    crimp = truth["anatomy"]["can"]["crimp"]
    c0, c1 = crimp["z_range_px"]
    r_lip = crimp["inner_radius_um"] + 2 * v
    for z in range(nz):
        vals = [ray_profile(vol[z], center, a, r_lip + v, v)[1][-10] for a in angles[:4]]
        if c0 <= z - 0.5 and z + 0.5 <= c1:  # the slice lies wholly in the lip
            assert min(vals) > 0.8 * MU["steel"], (z, vals)
        if z < c0 - 1:
            assert max(vals) < 0.05, (z, vals)
    # Cap: the terminal disc is steel on the axis; the headspace has nothing on the axis.
    t0, t1 = truth["anatomy"]["can"]["cap"]["terminal_z_px"]
    cy, cx = int(round(center[0])), int(round(center[1]))
    for z in range(nz):
        if t0 <= z - 0.5 and z + 0.5 <= t1:
            assert vol[z, cy, cx] == pytest.approx(MU["steel"], abs=0.05)
        if z in slices["headspace"]:
            assert vol[z, cy, cx] < 0.5  # gas, or the Al tab's weld under the cap: no steel
        if z in slices["outside"]:
            assert np.abs(vol[z]).max() < 1e-6
    # Interior slices of the roll are identical; roll-end slices are not.
    inner = slices["roll_interior"]
    assert len(inner) >= 2
    for z in inner[1:]:
        np.testing.assert_array_equal(vol[z], vol[inner[0]])
    assert not np.array_equal(vol[slices["roll_end"][len(slices["roll_end"]) // 2]], vol[inner[0]])


def test_bottom_slab_can_bottom_and_negative_tab():
    rng = np.random.default_rng(7600)
    spec = anatomy_spec(rng, 25.0, can_outer_radius_um=5200.0, slice_spacing_um=40.0)
    spec = replace(spec, region="bottom", n_slices=None,
                   anatomy=replace(spec.anatomy, negative_tab="outer"))
    cell = make_cell(spec, [], Artifacts.clean(), seed=3)
    truth = cell.truth
    vol = cell.volume.array.astype(np.float64)
    slices = truth["slices"]
    assert slices["bottom"] and slices["roll_end"] and slices["roll_interior"] and not slices["cap"]
    center = truth["axis_center_yx_px"][0]
    cy, cx = int(round(center[0])), int(round(center[1]))
    b0, b1 = truth["anatomy"]["can"]["bottom"]["z_range_px"]
    for z in range(vol.shape[0]):
        if b0 <= z - 0.5 and z + 0.5 <= b1:
            assert vol[z, cy, cx] == pytest.approx(MU["steel"], abs=0.05)
        if z > b1 + 1:
            assert np.abs(vol[z]).max() < 1e-6
    # The negative tab leaves the roll downwards and reaches the can bottom: Ni below the roll.
    (neg,) = [t for t in truth["anatomy"]["tabs"] if t["polarity"] == "negative"]
    assert neg["exit"] == "bottom"
    ni = material_image(spec, 3, {"tab_ni"}, z=slices["bottom"][0])
    assert ni.sum() * 25.0**2 > 0.5 * neg["width_mm"] * 1000 * neg["thickness_um"]
    weld_z = neg["strip_path_rho_um_z_px"][-1][1]
    assert b0 - 3 <= weld_z <= b0


@pytest.mark.slow
def test_labels_of_a_top_slab_sum_to_one_and_show_no_electrode_above_the_roll():
    from core.phantom.labels import CLASSES, class_fractions

    rng = np.random.default_rng(7700)
    spec = top_spec(rng, v=25.0, dz=80.0)
    frac = class_fractions(spec, [], seed=1)
    truth = make_cell(spec, [], Artifacts.clean(), seed=1).truth
    assert np.isfinite(frac).all()
    np.testing.assert_allclose(frac.sum(axis=0), 1.0, atol=1e-5)
    electrode = [CLASSES.index(c) for c in ("anode_coating", "cu_collector", "cathode_sheet")]
    for z in truth["slices"]["cap"] + truth["slices"]["headspace"] + truth["slices"]["outside"]:
        assert frac[electrode, z].max() < 1e-6, z
    for z in truth["slices"]["roll_interior"]:
        assert frac[CLASSES.index("cu_collector"), z].sum() > 0


@pytest.mark.slow
def test_same_seed_same_bytes_with_random_anatomy_and_no_nan():
    def render(seed):
        rng = np.random.default_rng(seed)
        spec = top_spec(rng, v=25.0, dz=100.0)
        return make_cell(spec, default_defects(spec, np.random.default_rng(seed)), Artifacts(), seed=seed)

    a, b, c = render(5), render(5), render(6)
    assert a.volume.array.tobytes() == b.volume.array.tobytes()
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    assert a.truth["anatomy"] != c.truth["anatomy"]
    assert np.isfinite(a.volume.array).all()
    json.dumps(a.truth)  # JSON-serialisable (no numpy scalars)


def test_anatomy_is_on_by_default_and_off_on_request():
    spec = CellSpec()
    assert isinstance(spec.anatomy, Anatomy) and spec.region == "middle" and spec.n_slices == 8
    assert CellSpec(anatomy=False).anatomy is None
    cell = make_cell(CellSpec(voxel_size_um=25.0, n_slices=1), [], Artifacts.clean())
    assert cell.truth["anatomy"]["tab_window"]["arc_length_mm"] == pytest.approx(12.0, rel=1e-3)
    ideal = make_cell(CellSpec(voxel_size_um=25.0, n_slices=1, anatomy=False), [], Artifacts.clean())
    assert "anatomy" not in ideal.truth
    with pytest.raises(ValueError, match="anatomy"):
        CellSpec(region="top", anatomy=False)


@pytest.mark.parametrize("seed", range(6))
def test_default_defects_avoid_the_anatomy(seed):
    rng = np.random.default_rng(7800 + seed)
    kind = str(rng.choice(["18650", "21700"]))
    spec = CellSpec(kind=kind, voxel_size_um=25.0, n_slices=4, spiral_start_deg=float(rng.uniform(0, 360)))
    spec = replace(spec, anatomy=random_anatomy(rng, kind, spec), n_slices=4)
    defects = default_defects(spec, rng)
    for d in defects:
        assert defect_placement_problem(spec, d) == ""
    cell = make_cell(spec, defects, Artifacts.clean(), seed=seed)
    assert all(d["present"] for d in cell.truth["defects"])


def test_a_void_where_the_coating_is_absent_is_refused():
    spec = CellSpec(voxel_size_um=25.0, n_slices=1)
    truth = make_cell(spec, [], Artifacts.clean()).truth
    (stretch,) = [d for d in truth["anatomy"]["single_sided"] if d["electrode"] == "cathode"]
    s = 0.5 * (stretch["start"]["strip_turns"] + stretch["end"]["strip_turns"])
    from core.phantom.anatomy import strip_to_polar

    k, angle = strip_to_polar(spec, s)
    void = DelaminationVoid(winding=k, angle_deg=angle, arc_length_um=300.0, side="outer")
    assert "cathode outer is absent" in defect_placement_problem(spec, void)
    with pytest.raises(ValueError, match="absent"):
        make_cell(spec, [void], Artifacts.clean())
    inner = replace(void, side="inner")
    assert defect_placement_problem(spec, inner) == ""  # the inner coating is there


@pytest.mark.slow
def test_phantom_command_region_anatomy_and_anisotropic_voxels(tmp_path, capsys):
    out = tmp_path / "top.tif"
    code = main(["phantom", str(out), "--region", "top", "--voxel-size", "120,30,30", "--kind", "21700",
                 "--random-anatomy", "--seed", "4", "--defects", "none", "--noise", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "tab window" in printed and "single-sided" in printed and "cap" in printed
    truth = json.loads((tmp_path / "top.truth.json").read_text())
    assert truth["spacing_um"] == [120.0, 30.0, 30.0] and truth["region"] == "top"
    assert truth["anatomy"]["can"]["groove"]["wall_displacement_um"] == truth["spec"]["anatomy"]["groove_depth_um"]
    if _read_volume is not None:
        assert _read_volume(out).spacing_um == (120.0, 30.0, 30.0)
    rng = np.random.default_rng(4)
    spec = CellSpec(kind="21700", voxel_size_um=30.0, slice_spacing_um=120.0, region="top")
    assert truth["spec"]["anatomy"] == json.loads(json.dumps(
        replace(spec, anatomy=random_anatomy(rng, "21700", spec), n_slices=None).as_dict()["anatomy"]))
    out2 = tmp_path / "ideal.tif"
    assert main(["phantom", str(out2), "--no-anatomy", "--slices", "1", "--voxel-size", "25"]) == 0
    assert "anatomy" not in json.loads((tmp_path / "ideal.truth.json").read_text())


@pytest.mark.parametrize(
    "options",
    [
        ["--region", "side"],
        ["--region", "top", "--no-anatomy"],
        ["--no-anatomy", "--random-anatomy"],
        ["--voxel-size", "60,30,25"],
        ["--voxel-size", "60,30"],
        ["--voxel-size", "900,30,30"],
        ["--region", "top", "--headspace", "2"],
    ],
)
def test_phantom_command_rejects_bad_anatomy_options(tmp_path, capsys, options):
    out = tmp_path / "x.tif"
    code = run_cli(["phantom", str(out), *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("cellqc: error:")
    assert not out.exists()
