"""Out-of-core inspection: chunks of slices with halos give the in-memory result, in bounded memory."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from core.chunked import estimated_bytes, inspection_budget_bytes, merge_metrics, plan_chunks
from core.errors import InputError
from core.inspect import inspect_volume, validate_result
from core.io import read_volume
from core.phantom import make_cell
from tests.synthetic import angle_diff, defective_conditions, random_conditions


@pytest.mark.parametrize("nz, size, ends", [(100, 16, []), (100, 32, [(60, 1)]), (500, 48, [(37, 1), (470, -1)]),
                                            (7, 16, []), (64, 8, [(0, 1), (63, -1)])])
def test_chunks_partition_the_slices_within_the_size(nz, size, ends):
    plan = plan_chunks((nz, 100, 100), 20.0, 2**30, slices_per_chunk=size, centre_on=ends)
    owned = np.concatenate([np.arange(c.core_lo, c.core_hi) for c in plan])
    assert np.array_equal(owned, np.arange(nz))  # every slice once, in order
    assert all(1 <= c.core_hi - c.core_lo <= size for c in plan)
    assert all(c.view_lo <= c.core_lo and c.view_hi >= c.core_hi for c in plan)
    for end, inward in ends:  # each end well inside its chunk, three quarters of it in the roll
        c = next(c for c in plan if c.core_lo <= end < c.core_hi)
        if 0 < end < nz - 1 and size < nz:
            into_roll = (c.core_hi - end) if inward > 0 else (end - c.core_lo + 1)
            assert into_roll >= size // 2


def test_budget_sets_the_chunk_size_and_refuses_too_little():
    shape = (2000, 1000, 1000)
    plan = plan_chunks(shape, 10.0, 2 * 2**30)
    views = max(c.view_hi - c.view_lo for c in plan)
    assert estimated_bytes(shape, views) <= 2 * 2**30
    assert len(plan) > 10
    with pytest.raises(InputError, match="memory budget of 0.10 GB holds"):
        plan_chunks(shape, 10.0, 100 * 2**20)


def test_bad_budget_is_a_one_line_input_error(monkeypatch, capsys):
    from qc_app.cli import main

    assert main(["inspect", "nothing.tif", "--memory-gb", "-1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--memory-gb" in err
    monkeypatch.setenv("CELLQC_INSPECTION_BUDGET_GB", "lots")
    with pytest.raises(InputError, match="CELLQC_INSPECTION_BUDGET_GB"):
        inspection_budget_bytes()


def test_metrics_merge_by_kind():
    merged = merge_metrics([({"void_max_volume_mm3": 0.002, "cu_al_gap_min_um": 150.0, "cathode_sheet_thickness_mean_um": 130.0,
                              "cathode_sheet_thickness_std_um": 4.0, "can_slices_measured": 10}, 10.0, 0.5),
                            ({"void_max_volume_mm3": 0.001, "cu_al_gap_min_um": 140.0, "cathode_sheet_thickness_mean_um": 140.0,
                              "cathode_sheet_thickness_std_um": 4.0, "can_slices_measured": 10}, 10.0, 0.5)])
    assert merged["void_max_volume_mm3"] == 0.002 and merged["cu_al_gap_min_um"] == 140.0
    assert merged["cathode_sheet_thickness_mean_um"] == pytest.approx(135.0)
    assert merged["cathode_sheet_thickness_std_um"] == pytest.approx(np.sqrt(16 + 25))  # pooled: spread of means too
    assert merged["can_slices_measured"] == 10  # each counted over a view twice its own slices


@pytest.mark.parametrize("seed", [3, 11])
@pytest.mark.slow
def test_chunked_inspection_finds_what_the_in_memory_one_finds(seed):
    """16 slices in two chunks of 8 (halo 4): every defect crosses the chunk boundary."""
    spec, defects, artifacts = defective_conditions(seed, n_slices=16)
    cell = make_cell(spec, defects, artifacts, seed=seed)
    recipe = "21700-nmc" if spec.kind == "21700" else "18650-nmc"
    whole = inspect_volume(cell.volume, recipe)
    chunked = inspect_volume(cell.volume, recipe, slices_per_chunk=8)
    validate_result(chunked.result)
    assert chunked.verdict == whole.verdict
    assert any("chunks" in n for n in chunked.result["geometry"]["notes"])

    def key(f):
        return (f["detector"], f["winding"])

    for severity in ("fail",):
        a = [f for f in whole.result["findings"] if f["severity"] == severity]
        b = [f for f in chunked.result["findings"] if f["severity"] == severity]
        assert len(b) == len(a), ([f["message"] for f in a], [f["message"] for f in b])
        for fa in a:
            match = [fb for fb in b if key(fb) == key(fa) and angle_diff(fb["angle_deg"], fa["angle_deg"]) < 5]
            assert match, fa["message"]
            assert match[0]["value"] == pytest.approx(fa["value"], rel=0.15, abs=2.0)
    for name in ("cathode_sheet_thickness_mean_um", "collector_deflection_max_um", "void_max_volume_mm3",
                 "winding_residual_rms_um"):
        assert chunked.result["metrics"][name] == pytest.approx(whole.result["metrics"][name], rel=0.05), name
    assert chunked.result["metrics"]["void_count"] == whole.result["metrics"]["void_count"]
    # The unrolled thickness map covers the same sheet.
    m_a, m_b = whole.maps["cathode_thickness_um"], chunked.maps["cathode_thickness_um"]
    assert m_b.values.shape[0] == m_a.values.shape[0]
    assert abs(m_b.arc_mm[-1] - m_a.arc_mm[-1]) < 0.02 * m_a.arc_mm[-1]


@pytest.mark.slow
def test_chunked_memory_does_not_grow_with_the_number_of_slices(tmp_path):
    """Traced peak of a chunked inspection of a lazy (memmap) volume: 48 slices vs 20."""
    spec, artifacts = random_conditions(5, voxel_choices=(25.0,), n_slices=6, kind="18650")
    spec = replace(spec, can_outer_radius_um=5000.0, anatomy=False)  # a small cell: the test is about memory, not accuracy
    base = make_cell(spec, [], artifacts, seed=5).volume
    peaks = {}
    for nz in (20, 48):
        path = tmp_path / f"cell_{nz}.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(nz, *base.shape[1:]))
        for z in range(nz):
            out[z] = base.array[z % base.shape[0]]
        out.flush()
        del out
        volume = read_volume(path, voxel_size=base.spacing_um)
        tracemalloc.start()
        inspect_volume(volume, "18650-nmc", slices_per_chunk=6)
        peaks[nz] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # 2.4× the slices: an in-memory pipeline's state grows ~2×; chunked stays within 20 %.
    assert peaks[48] < 1.2 * peaks[20], peaks


@pytest.mark.slow
def test_a_whole_cells_sample_may_be_millimetres_apart():
    """A full-height cell's 16-slice sample is millimetres apart (3250 slices of 20 µm: 4.08 mm
    between sampled slices), beyond the 1 mm a scanner's voxel may be: the sample is still a
    volume, and the roll prior is measured on it (issue 18: it used to stop every whole cell)."""
    from core import chunked
    from core.geometry.layers import GeometryParams
    from core.io.volume import Volume
    from core.phantom import CellSpec

    rng = np.random.default_rng()
    voxel = float(rng.choice([25.0, 30.0]))
    cell = make_cell(CellSpec(kind="18650", voxel_size_um=voxel, n_slices=2), seed=int(rng.integers(1000)))
    nz = int(rng.integers(2500, 3500))
    tall = Volume(chunked._Slices(cell.volume.array, np.arange(nz) % 2), cell.volume.spacing_um, source="tall")
    step = int(np.ceil(nz / chunked.SAMPLE_SLICES))
    assert voxel * step > 1000.0
    sample = chunked.sub_volume(tall, np.arange(0, nz, step), voxel * step)
    assert sample.spacing_um == (voxel * step, voxel, voxel) and sample.shape[0] == len(range(0, nz, step))
    with pytest.raises(InputError, match="physical range"):  # as input, such a spacing is still refused
        Volume(np.zeros((2, 4, 4)), (voxel * step, voxel, voxel))
    prior, geometry, reference, _ends = chunked.measure_prior(tall, GeometryParams())
    assert prior is not None and len(geometry.roll_slices) == sample.shape[0]
    assert reference["cathode_sheet_thickness_median_um"] > 0
