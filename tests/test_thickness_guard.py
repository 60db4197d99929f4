"""The cathode thickness review is guarded by the map's own noise (core/detectors/electrode_thickness).

A healthy cell's coating varies from turn to turn (coat weight); at coarse voxels the
thickness map is noisy (~2 % at 25 µm after smoothing). Without a guard a turn truly 6 %
thick read "10–11 % thicker" where the noise peaked, and a healthy cell went to REVIEW.
Demanded, on randomised cells through ``inspect_volume``:
- healthy cells at 20–25 µm whose turns are up to ~7 % off the median (coat weight σ 3.5 %):
  no electrode_thickness REVIEW or FAIL, and the map noise is measured (0 < noise < 5 %);
- a patch 15–17 % thinner (between the review and fail limits) at 12–15 µm voxels is still
  reviewed, at its place, with its deviation within 5 % points.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from core.inspect import inspect_volume
from core.phantom import CoatingPatch, make_cell
from tests.synthetic import _place, random_conditions

pytestmark = pytest.mark.slow  # five whole inspections of generated cells


def _thickness_findings(result):
    return [f for f in result["findings"] if f["detector"] == "electrode_thickness" and f["severity"] != "info"]


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_turn_to_turn_coating_variation_is_not_reviewed(seed):
    spec, artifacts = random_conditions(seed, voxel_choices=(20.0, 25.0), n_slices=14)
    spec = replace(spec, coating_jitter=0.035)
    cell = make_cell(spec, [], artifacts, seed=seed)
    turns = np.asarray(cell.truth["stack"]["cathode_sheet_thickness_um"])
    worst_turn = float(np.max(np.abs(turns / np.median(turns) - 1)))
    assert worst_turn >= 0.04, "the draw must hold turns well off the median for the test to mean anything"
    result = inspect_volume(cell.volume, "21700-nmc" if spec.kind == "21700" else "18650-nmc").result
    noise = result["metrics"]["cathode_thickness_map_noise_pct"]
    assert 0.0 < noise < 5.0, noise
    assert not _thickness_findings(result), ([f["message"] for f in _thickness_findings(result)], worst_turn, noise)


@pytest.mark.parametrize("seed", [5, 17])
def test_patch_between_review_and_fail_is_reviewed(seed):
    spec, artifacts = random_conditions(seed, voxel_choices=(12.0, 15.0), n_slices=14)
    rng = np.random.default_rng(seed)
    v = spec.voxel_size_um
    change = float(rng.uniform(-0.17, -0.15))
    patch = CoatingPatch(winding=int(rng.integers(4, spec.windings - 4)), angle_deg=float(rng.uniform(0, 360)),
                         sheet_change=change, arc_length_um=float(rng.uniform(1800, 2600)),
                         height_um=(spec.n_slices - 2) * v, z_center=(spec.n_slices - 1) / 2)
    _place(spec, patch, rng)
    cell = make_cell(spec, [patch], artifacts, seed=seed)
    truth = cell.truth["defects"][0]
    result = inspect_volume(cell.volume, "21700-nmc" if spec.kind == "21700" else "18650-nmc").result
    found = [f for f in _thickness_findings(result)
             if math.dist(f["centroid_zyx_px"][1:], truth["centroid_zyx_px"][1:]) <= 1000.0 / v]
    assert found, ([f["message"] for f in _thickness_findings(result)], result["metrics"]["cathode_thickness_map_noise_pct"])
    assert found[0]["severity"] == "review"
    assert abs(found[0]["value"] - 100 * change) <= 5.0, (found[0]["value"], 100 * change)
