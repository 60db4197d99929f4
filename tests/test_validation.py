"""The validation matrix, reduced and seeded for CI (docs/validation.md has the full one).

Cells drawn by the matrix's own draw (``core.phantom.validation.draw_case``: random format,
anatomy, artifacts, ovality, off-centre, anisotropic slices), restricted to coarse voxels so
that CI stays within minutes, written to TIFF and inspected through the user's path
(``core.filing.inspect_and_file``), then scored against the truth by the matrix's scorer. The
demands are the matrix's: a healthy cell never FAILs and has no FAIL/REVIEW finding; in a
defective cell every defect is found, with at most 2 findings at it, and no FAIL/REVIEW finding
lies away from a true defect; void volume and deflection within 20 %.
"""

from __future__ import annotations

import pytest

from core.phantom.validation import draw_case, run_case

pytestmark = pytest.mark.slow  # about a minute per matrix cell on two cores

# The CI's seed of the matrix (scripts/validate.py --seed): fixed so the same commit always
# gives the same result; scripts/validate.py draws the full matrix from other seeds.
CI_SEED = 20261207
# Coarse voxels keep each cell under a minute on two cores; the full matrix covers 8–25 µm.
CI_VOXELS_UM = (20.0, 25.0)


def _case(index: int, healthy: bool):
    return draw_case(index, healthy, CI_SEED, regions=("middle",), region_weights=(1.0,),
                     voxels=CI_VOXELS_UM, voxel_weights=(1.0, 1.0))


@pytest.mark.parametrize("index", [0, 1])
def test_healthy_cells_of_the_matrix(index, tmp_path):
    row = run_case(_case(index, True), tmp_path)
    assert row["verdict"] != "FAIL", (row["describe"], row["reasons"])
    assert not row["false_findings"], (row["describe"], row["false_findings"])


@pytest.mark.parametrize("index", [0, 1])
def test_defective_cells_of_the_matrix(index, tmp_path):
    row = run_case(_case(index, False), tmp_path)
    assert row["defects"], row["describe"]
    for d in row["defects"]:
        assert d["found"], (row["describe"], d)
        assert d["n_findings_at"] <= 2, (row["describe"], d)
        if d["kind"] in ("delamination", "collector_deflection") and d.get("rel_error") is not None:
            assert abs(d["rel_error"]) <= 0.20, (row["describe"], d)
    assert not row["false_findings"], (row["describe"], row["false_findings"])


@pytest.mark.parametrize("region", ["top", "bottom"])
def test_healthy_roll_ends_inspected_as_a_whole_cell_is(region, tmp_path):
    """A top or bottom slab of a healthy cell (roll end with a known overhang, headspace, tabs,
    cap or bottom, groove), inspected as `cellqc inspect` does (the default 2 GB budget: in
    chunks). Before: such slabs FAILed with 9–13 negative overhangs — a chunk's edge inside the
    roll taken for the roll's end, the tab window's bins read as sheet ends — and a top slab's
    overhang went unmeasured or read −11 µm for 742. The issue's demands: no FAIL, no
    FAIL/REVIEW finding, overhang within 2 slices."""
    case = draw_case(0, True, CI_SEED, regions=(region,), region_weights=(1.0,), voxels=(25.0,),
                     voxel_weights=(1.0,))
    row = run_case(case, tmp_path)
    assert row["verdict"] != "FAIL", (row["describe"], row["reasons"])
    assert not row["false_findings"], (row["describe"], row["false_findings"])
    overhang = row["geometry_errors"]["anode_overhang_um"]
    assert overhang["measured"] is not None, (row["describe"], overhang)
    assert abs(overhang["error"]) <= 2 * overhang["slice_um"], (row["describe"], overhang)


def test_overhang_measured_when_chunks_are_shorter_than_it(tmp_path):
    """With chunks shorter than the overhang and the interior it is compared with (a 0.7 GB
    budget cuts this top slab into 47-slice chunks, 1.2 mm; a 21700 at 15 µm gets 46-slice
    chunks at the default budget), no chunk holds a roll end whole: the end is measured on a
    view of its own (core.chunked.end_view). Before, such an end went unmeasured (a 15 µm
    bottom slab of the validation run) or read about 0 µm. Only the overhang is asserted here:
    what else such small chunks get wrong is open (docs/validation.md, "Roll ends")."""
    case = draw_case(0, True, CI_SEED, regions=("top",), region_weights=(1.0,), voxels=(25.0,),
                     voxel_weights=(1.0,))
    row = run_case(case, tmp_path, memory_budget_gb=0.7)
    overhang = row["geometry_errors"]["anode_overhang_um"]
    assert overhang["measured"] is not None, (row["describe"], overhang)
    assert abs(overhang["error"]) <= 2 * overhang["slice_um"], (row["describe"], overhang)
