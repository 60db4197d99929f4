"""Uncoated cathode strips (tab windows), neighbour-relative deflection and the common seam."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.detectors.collector_deflection import relative_to_neighbours
from core.geometry.layers import SliceRoll
from core.geometry.roll import _agree_on_seam
from core.geometry.zones import find_uncoated_zones


def _rolls(rng, n_slices=20, k=10, n_t=720, seam_deg=30.0, sheet_um=150.0):
    """Fake traced slices: sheets of ``sheet_um`` ± 3 % noise on an Archimedean roll."""
    t = np.linspace(0, 2 * np.pi, n_t, endpoint=False)
    out = []
    for z in range(n_slices):
        radius = 2000.0 + 400.0 * (np.arange(k)[:, None] + t[None, :] / (2 * np.pi))
        thick = sheet_um * (1 + 0.03 * rng.standard_normal((k, n_t)))
        s = SliceRoll(z=z, is_roll=True, t_rad=t, windings=k, seam_deg=seam_deg, direction=1)
        s.sheet_thickness_um = thick.astype(np.float32)
        s.sheet_inner_um = (radius - thick / 2).astype(np.float32)
        s.sheet_outer_um = (radius + thick / 2).astype(np.float32)
        s.sheet_excluded = np.zeros((k, n_t), bool)
        out.append(s)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_a_strip_uncoated_over_the_height_is_found_with_its_length(seed):
    rng = np.random.default_rng(seed)
    rolls = _rolls(rng)
    n_t = rolls[0].t_rad.size
    k = int(rng.integers(2, 8))
    # Clear of the seam (sample 60) so the strip is one row here; crossing it is the real test.
    start = int(rng.integers(80, 460))
    width = int(rng.integers(60, 200))  # samples of 0.5°: 6–20 mm of arc
    cols = start + np.arange(width)
    for s in rolls:
        s.sheet_thickness_um[k, cols] = rng.uniform(5, 40, cols.size)  # the Al foil alone
    zones = find_uncoated_zones(rolls, slice_um=68.0)
    assert len(zones) == 1
    zone = zones[0]
    radius = 2000.0 + 400.0 * (k + (cols.mean() / n_t))
    expected_mm = width * 2 * np.pi * radius / n_t / 1000
    assert zone.arc_length_mm == pytest.approx(expected_mm, rel=0.15)
    assert zone.winding == k
    mask = zone.sheet_mask(rolls[5], 10)
    assert mask[k, cols].all() and mask.sum() <= 1.1 * width


def test_voids_thin_patches_and_short_stacks_are_not_strips():
    rng = np.random.default_rng(7)
    rolls = _rolls(rng)
    # A void lens: 40 % thinner over 100 samples, in the middle third of the height only.
    for s in rolls[7:14]:
        s.sheet_thickness_um[3, 100:200] *= 0.6
    # A thin patch (25 %) over the whole height.
    for s in rolls:
        s.sheet_thickness_um[5, 300:500] *= 0.75
    # A real void that empties the sheet, but only in half the slices.
    for s in rolls[:10]:
        s.sheet_thickness_um[6, 400:600] = 20.0
    assert find_uncoated_zones(rolls, slice_um=68.0) == []


def test_a_strip_seen_in_few_slices_is_still_a_strip():
    """A void never takes both coatings off over millimetres of arc: a sheet reduced to its foil
    over a third of a turn is a tab window however few slices show it (a 12 mm window in a
    12-slice generated cell used to be a 0.29 mm³ "void"); a caller may still ask for height."""
    rng = np.random.default_rng(8)
    short = _rolls(rng, n_slices=6)
    n_t = short[0].t_rad.size
    for s in short:
        s.sheet_thickness_um[4, 0:n_t // 3] = 20.0
    (zone,) = find_uncoated_zones(short, slice_um=68.0)
    assert zone.winding == 4
    assert find_uncoated_zones(short, slice_um=68.0, min_height_um=1000.0) == []


def test_the_stack_moving_together_is_not_a_deflection_a_single_bend_is():
    rng = np.random.default_rng(3)
    k, n_t = 12, 360
    angle = np.arange(n_t)
    bulge = 100.0 * np.exp(-0.5 * ((angle - 150) / 12.0) ** 2)  # every layer, as over a tab
    departure = np.tile(bulge, (k, 1)) + rng.normal(0, 3.0, (k, n_t))
    bend = 55.0 * np.exp(-0.5 * ((angle - 260) / 8.0) ** 2)
    departure[6] += bend  # one collector bent
    rel = relative_to_neighbours(departure)
    interior = rel[2:-2]
    assert np.nanmax(np.abs(interior[:, 120:180])) < 20.0  # the common bulge is gone
    assert rel[6, 260] == pytest.approx(55.0, abs=8.0)  # the bend keeps its amplitude
    assert np.nanmax(np.abs(rel[[4, 5, 7, 8]][:, 240:280])) < 15.0  # neighbours not dragged
    # The innermost and outermost turns have a neighbour on one side only: not judged.
    assert np.isnan(rel[0]).all() and np.isnan(rel[-1]).all()


def test_a_slice_with_a_stray_seam_is_retraced_with_the_common_one():
    slices = []
    for z in range(9):
        s = SliceRoll(z=z, is_roll=True, seam_deg=14.0 + (z % 3), t_rad=np.zeros(4))
        slices.append(s)
    slices[4].seam_deg = 151.0
    slices.append(SliceRoll(z=9, is_roll=False))
    calls = []

    def retrace(todo):
        calls.extend(todo)
        return [SliceRoll(z=z, is_roll=True, seam_deg=seam) for z, seam in todo]

    _agree_on_seam(slices, retrace)
    assert [c[0] for c in calls] == [4]
    assert calls[0][1] == pytest.approx(15.0, abs=1.0)
    assert math.isclose(slices[4].seam_deg, calls[0][1])


@pytest.mark.parametrize("seed", [2, 9])
@pytest.mark.slow
def test_defects_near_the_roll_end_are_not_taken_for_its_edge(seed):
    """Three cap/headspace slices above the roll: voids and the thin patch in the first slices of
    the roll (within the end band) are still found; only sheet edges running out of the end
    are set aside."""
    from dataclasses import replace

    from core.inspect import inspect_volume
    from core.phantom import make_cell
    from tests.synthetic import defective_conditions

    spec, defects, artifacts = defective_conditions(seed, n_slices=12)
    spec = replace(spec, headspace_slices=3)  # the roll starts at slice 3
    v = spec.voxel_size_um
    # Within the end band (300 µm) but with normal sheet between them and the end: slices 6–9.
    defects = [replace(d, z_center=7.5, **({"height_span_um": 4 * v} if d.kind == "collector_deflection"
                                            else {"height_um": 4 * v})) for d in defects]
    cell = make_cell(spec, defects, artifacts, seed=seed)
    ins = inspect_volume(cell.volume, "21700-nmc" if spec.kind == "21700" else "18650-nmc")
    found = ins.result["findings"]
    # Matched by place (the truth counts the separator-only turns as windings, cellqc does not).
    truths = {(t["kind"], round(t["angle_deg"], 3)): t for t in cell.truth["defects"]}
    for d in defects:
        t = truths[(d.kind, round(d.angle_deg % 360.0, 3))]
        near = [f for f in found if f["severity"] != "info"
                and math.dist(f["centroid_zyx_px"][1:], t["centroid_zyx_px"][1:]) * v < 400.0]
        if d.kind == "delamination":
            hits = [f for f in near if f["detector"] == "delamination" and f["severity"] == "fail"]
            assert hits, (d, [f["message"] for f in found])
        if d.kind == "coating_patch":
            hits = [f for f in near if f["detector"] == "electrode_thickness"]
            assert hits, (d, [f["message"] for f in found])
