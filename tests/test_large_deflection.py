"""A collector bent further than the tracer's search window is measured whole.

The layer tracer looks for each collector within 0.3 pitch of the spiral model (≈ 100 µm on an
18650, beyond the 60 µm fail limit). A bend larger than that left the window at its peak: the
collector was unknown there and the bend read as the window's width (a generated 132 µm bend
read 98 µm, and as no deflection finding at all once the peak was lost). The tracer now follows
a collector out of the window from where it was traced.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from core.inspect import inspect_volume
from core.phantom import Artifacts, CellSpec, CollectorDeflection, make_cell
from tests.synthetic import angle_diff


@pytest.mark.slow
@pytest.mark.parametrize("voxel_um", [15.0, 20.0])
def test_a_deflection_beyond_the_search_window_is_measured_within_20_percent(voxel_um):
    seed = int(np.random.default_rng().integers(1 << 31))
    rng = np.random.default_rng(seed)
    n_slices = 14
    spec = CellSpec(kind="18650", voxel_size_um=voxel_um, n_slices=n_slices, can_outer_radius_um=5000.0,
                    anatomy=False)
    # 0.40–0.45 pitch: beyond the 0.3-pitch window by more than the 20 % allowed, short of the
    # next layer.
    amplitude = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.40, 0.45) * spec.pitch_um)
    defect = CollectorDeflection(winding=int(rng.integers(3, spec.windings - 2)), angle_deg=float(rng.uniform(0, 360)),
                                 amplitude_um=amplitude, angular_span_deg=float(rng.uniform(28.0, 40.0)),
                                 z_center=n_slices / 2, height_span_um=10 * voxel_um)
    cell = make_cell(spec, [defect], Artifacts(noise_sigma=float(rng.uniform(0.03, 0.08)), ring_count=0),
                     seed=seed % 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = inspect_volume(cell.volume, "18650-nmc").result  # the user's path: merged findings
    truth = next(d for d in cell.truth["defects"] if d["kind"] == "collector_deflection")
    found = [(f["value"], f["angle_deg"]) for f in result["findings"] if f["detector"] == "collector_deflection"]
    at = [f for f in result["findings"] if f["detector"] == "collector_deflection" and f["severity"] != "info"
          and angle_diff(f["angle_deg"], truth["angle_deg"]) <= truth["params"]["angular_span_deg"] / 2]
    assert at, (seed, amplitude, found)
    measured = max(abs(f["value"]) for f in at)
    # The demand of the validation matrix: within 20 % (before: −26 % and worse).
    assert math.isclose(measured, abs(amplitude), rel_tol=0.2), (seed, amplitude, measured)
    assert len(at) == 1, (seed, found)  # one bend, one finding
