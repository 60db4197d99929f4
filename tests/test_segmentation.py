"""The learned layer/void segmenter (issue 9): model file, checksum, outputs, held-out accuracy,
the model-based delamination path of ``inspect --segmenter onnx`` and the second opinion of
``--segmenter classic+onnx``.

Stated numbers (models/layerseg_card.md): on a generated cell the training never saw (seed
900000 + 40, the phantom's own artifact pipeline), pixel accuracy inside the can ≥ ACCURACY_MIN
and per-class IoU ≥ IOU_MIN for every class but electrolyte/void, which is rare and thin. On a
held-out cell with two voids, the model path gives one finding per void, also when the model's
region is cut in two, and each volume within VOLUME_ERROR_MAX of the truth.
One ONNX Runtime thread throughout.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.phantom.labels import CLASSES, class_labels
from core.segment.model import LayerSegmenter, ModelError, model_info, sha256_file

ACCURACY_MIN = 0.90
VOLUME_ERROR_MAX = 0.15  # measured ≤ 7 % on 24 generated cells (card); 15 % stated
IOU_MIN = {"background_can_separator": 0.80, "anode_coating": 0.85, "cu_collector": 0.55, "cathode_sheet": 0.90}


@pytest.fixture(scope="module")
def seg():
    return LayerSegmenter(threads=1)


def test_model_loads_checksum_and_classes(seg):
    info = model_info()
    assert info.path.stat().st_size < 5e6  # lives in git
    assert sha256_file(info.path) == info.sha256
    assert seg.classes == CLASSES
    assert seg.threads == 1


def test_altered_model_is_refused(tmp_path):
    info = model_info()
    shutil.copy(info.path, tmp_path / info.path.name)
    meta = dict(info.meta, sha256="0" * 64)
    (tmp_path / "layerseg.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="checksum"):
        LayerSegmenter(threads=1, models_dir=tmp_path)


def test_output_shape_probabilities_and_tiling(seg):
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.3, (300, 170)).astype(np.float32)  # not a multiple of anything
    prob = seg.predict(x)
    assert prob.shape == (len(CLASSES), 300, 170)
    assert prob.dtype == np.float32
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-4)
    # Tiles with overlap agree with one big tile away from the borders.
    whole = LayerSegmenter(threads=1, tile=512, overlap=48).predict(x)
    assert np.max(np.abs(whole[:, 40:-40, 40:-40] - prob[:, 40:-40, 40:-40])) < 0.05


@pytest.fixture(scope="module")
def held_out():
    from models.eval_layerseg import held_out_cell

    return held_out_cell(40, 20.0)


# On cells with a real cell's anatomy (single-sided stretches, staggered electrode ends, wobble),
# which the model was not trained on, it reads worse (measured 0.887 on seed 900040): a floor
# that catches a regression, and the reason the classic detector stays the default.
ACCURACY_MIN_ANATOMY = 0.85


@pytest.mark.slow
def test_accuracy_on_held_out_volume_with_anatomy(seg):
    from models.eval_layerseg import held_out_cell, segment_with_truth_frame

    cell, frac, spec = held_out_cell(40, 20.0, anatomy=True)
    truth = class_labels(frac[:, 0])
    pred = segment_with_truth_frame(cell, spec, seg, 0)
    cy, cx = cell.truth["axis_center_yx_px"][0]
    yy, xx = np.ogrid[: truth.shape[0], : truth.shape[1]]
    inside = np.hypot(yy - cy, xx - cx) * spec.voxel_size_um <= float(spec.can_outer_radius_um) + 2 * spec.voxel_size_um
    assert float(np.mean(pred[inside] == truth[inside])) >= ACCURACY_MIN_ANATOMY


def test_accuracy_on_held_out_volume(seg, held_out):
    from models.eval_layerseg import segment_with_truth_frame
    from models.train_layerseg import iou_table

    cell, frac, spec = held_out
    truth = class_labels(frac[:, 0])
    pred = segment_with_truth_frame(cell, spec, seg, 0)
    assert pred.shape == truth.shape and pred.dtype == np.uint8 and pred.max() < len(CLASSES)
    cy, cx = cell.truth["axis_center_yx_px"][0]
    yy, xx = np.ogrid[: truth.shape[0], : truth.shape[1]]
    v = spec.voxel_size_um
    inside = np.hypot(yy - cy, xx - cx) * v <= float(spec.can_outer_radius_um) + 2 * v
    accuracy = float(np.mean(pred[inside] == truth[inside]))
    iou = dict(zip(CLASSES, iou_table(pred[inside], truth[inside], len(CLASSES)), strict=True))
    assert accuracy >= ACCURACY_MIN, (accuracy, iou)
    for name, lo in IOU_MIN.items():
        assert iou[name] >= lo, (name, iou)


@pytest.mark.slow
def test_inspect_with_onnx_segmenter_finds_the_void(monkeypatch):
    from core.inspect import inspect_volume, validate_result
    from core.phantom import Artifacts, CellSpec, DelaminationVoid, make_cell

    monkeypatch.setenv("CELLQC_SEGMENT_THREADS", "1")
    spec = CellSpec(voxel_size_um=25.0, n_slices=4, spiral_start_deg=40.0)
    void = DelaminationVoid(winding=9, angle_deg=200.0, thickness_um=55.0, arc_length_um=900.0,
                            height_um=100.0, z_center=1.5, side="outer", depth_um=3.0)
    cell = make_cell(spec, [void], Artifacts(), seed=900123)
    ins = inspect_volume(cell.volume, "18650-nmc", segmenter="onnx")
    validate_result(ins.result)
    assert ins.result["segmenter"] == "onnx"
    found = [f for f in ins.result["findings"] if f["detector"] == "delamination"]
    assert found and found[0]["segmenter"] == "onnx"
    truth = cell.truth["defects"][0]
    best = min(found, key=lambda f: np.hypot(f["centroid_zyx_px"][1] - truth["centroid_zyx_px"][1],
                                             f["centroid_zyx_px"][2] - truth["centroid_zyx_px"][2]))
    assert np.hypot(best["centroid_zyx_px"][1] - truth["centroid_zyx_px"][1],
                    best["centroid_zyx_px"][2] - truth["centroid_zyx_px"][2]) <= 4
    assert best["severity"] == "fail"


def test_unknown_segmenter_is_refused():
    from core.segment import detector_for

    with pytest.raises(ValueError, match="segmenter"):
        detector_for("delamination", "magic")
    from core.detectors import DETECTORS

    assert detector_for("delamination", "classic") is DETECTORS["delamination"]
    assert detector_for("collector_deflection", "onnx") is DETECTORS["collector_deflection"]
    assert detector_for("collector_deflection", "classic+onnx") is DETECTORS["collector_deflection"]


@pytest.fixture(scope="module")
def two_voids(seg):
    """A held-out cell (seed 900777) with two voids, its geometry and the model's void probability."""
    from core.detectors import DetectorContext
    from core.geometry.roll import measure_geometry
    from core.inspect import geometry_params
    from core.phantom import Artifacts, CellSpec, DelaminationVoid, make_cell
    from core.recipe import load_recipe
    from core.segment.voids import void_probability

    spec = CellSpec(voxel_size_um=25.0, n_slices=5, spiral_start_deg=110.0, ovality=0.01)
    defects = [DelaminationVoid(winding=8, angle_deg=150.0, thickness_um=50.0, arc_length_um=1000.0,
                                height_um=100.0, z_center=2.0, side="outer", depth_um=5.0),
               DelaminationVoid(winding=14, angle_deg=300.0, thickness_um=55.0, arc_length_um=700.0,
                                height_um=100.0, z_center=2.0, side="inner", depth_um=3.0)]
    cell = make_cell(spec, defects, Artifacts(noise_sigma=0.06, ring_count=3, cupping=0.1), seed=900777)
    rec = load_recipe("18650-nmc")
    g = measure_geometry(cell.volume, geometry_params(rec))

    def ctx(**rules):
        return DetectorContext(volume=cell.volume, geometry=g, rules={**rec.rules["delamination"], **rules},
                               cell=rec.cell)

    return cell, ctx, void_probability(ctx(), seg)


def _nearest(finding_list, truth):
    def dist(f):
        return float(np.hypot(f.centroid_zyx_px[1] - truth["centroid_zyx_px"][1],
                              f.centroid_zyx_px[2] - truth["centroid_zyx_px"][2]))
    best = min(finding_list, key=dist)
    return best, dist(best)


@pytest.mark.slow
def test_one_finding_per_void_and_its_volume(two_voids):
    from core.phantom.render import cellqc_winding
    from core.segment.voids import find_voids

    cell, ctx, (rolls, t, rho_um, p_void, _) = two_voids
    out = find_voids(ctx(), rolls, t, rho_um, p_void)
    truth = [d for d in cell.truth["defects"] if d["kind"] == "delamination"]
    assert len(out.findings) == len(truth), [f.message for f in out.findings]
    for d in truth:
        f, dist = _nearest(out.findings, d)
        # The truth counts winding slots from the mandrel; cellqc from the cathode's start.
        winding = cellqc_winding(cell.truth, d["winding"], d["angle_deg"], "cathode")
        assert dist <= 4 and f.severity == "fail" and f.winding == winding
        assert abs(f.value / d["volume_mm3"] - 1) <= VOLUME_ERROR_MAX, (f.value, d["volume_mm3"])


@pytest.mark.slow
def test_fragments_of_one_void_are_one_finding(two_voids):
    """Cut the model's region of the first void in two with a 100 µm gap along the sheet: one
    finding with about the same volume (merge_gap_um 200 µm), two without merging."""
    import math

    from core.segment.voids import find_voids

    cell, ctx, (rolls, t, rho_um, p_void, _) = two_voids
    d = cell.truth["defects"][0]
    whole = _nearest(find_voids(ctx(), rolls, t, rho_um, p_void).findings, d)[0]
    cy, cx = rolls[0].frame.center_yx_px
    angle = math.atan2(d["centroid_zyx_px"][1] - cy, d["centroid_zyx_px"][2] - cx) % (2 * math.pi)
    radius_um = math.hypot(d["centroid_zyx_px"][1] - cy, d["centroid_zyx_px"][2] - cx) * cell.truth["voxel_size_um"]
    gap = np.abs((t - angle + math.pi) % (2 * math.pi) - math.pi) * radius_um <= 50.0
    cut = p_void.copy()
    cut[:, :, gap] = 0.0
    merged = find_voids(ctx(), rolls, t, rho_um, cut).findings
    assert len(merged) == 2, [f.message for f in merged]
    f, dist = _nearest(merged, d)
    assert dist <= 4 and abs(f.value / whole.value - 1) <= 0.05, (f.value, whole.value)
    apart = find_voids(ctx(merge_gap_um=0.0), rolls, t, rho_um, cut).findings
    assert len(apart) == 3, [f.message for f in apart]


@pytest.mark.slow
def test_second_opinion_on_classic_findings(two_voids, monkeypatch):
    from core.detectors import DETECTORS, DetectorOutput, Finding
    from core.segment import detector_for
    from core.segment.opinion import annotate

    monkeypatch.setenv("CELLQC_SEGMENT_THREADS", "1")
    cell, ctx, (rolls, t, rho_um, p_void, _) = two_voids
    assert detector_for("delamination", "classic+onnx") is not DETECTORS["delamination"]
    out = detector_for("delamination", "classic+onnx")(ctx())
    classic = DETECTORS["delamination"](ctx())
    assert [f.severity for f in out.findings if not f.extra.get("second_opinion")] == [f.severity for f in classic.findings]
    truth = [d for d in cell.truth["defects"] if d["kind"] == "delamination"]
    for d in truth:
        f, dist = _nearest([f for f in out.findings if not f.extra.get("second_opinion")], d)
        assert dist <= 4 and f.severity == "fail"
        assert f.extra["model_agrees"] is True
        assert 0.05 <= f.extra["model_void_fraction"] <= 1.0
        assert abs(f.extra["model_volume_mm3"] / f.value - 1) <= 0.3
    assert all(f.severity == "info" for f in out.findings if f.extra.get("second_opinion"))
    # A void only the model saw is listed as info; a classic finding it does not see disagrees.
    g = ctx().geometry
    model_only = Finding(detector="delamination", severity="fail", centroid_zyx_px=(2.0, 50.0, 50.0),
                         bbox_zyx_px=(0, 45, 45, 5, 55, 55), value=0.002, unit="mm³", message="void (model)",
                         winding=3)
    lonely = Finding(detector="delamination", severity="fail", centroid_zyx_px=(2.0, 10.0, 10.0),
                     bbox_zyx_px=(0, 8, 8, 5, 12, 12), value=0.002, unit="mm³", message="void", winding=12)
    both = annotate(DetectorOutput(findings=[lonely]), DetectorOutput(findings=[model_only]), rolls, t, rho_um,
                    p_void, g.pixel_um)
    assert lonely.extra["model_agrees"] is False and lonely.extra["model_volume_mm3"] is None
    added = both.findings[1]
    assert added.severity == "info" and added.extra["second_opinion"] and added.extra["model_severity"] == "fail"


@pytest.mark.slow
def test_inspect_with_second_opinion(monkeypatch):
    """classic+onnx: the classic verdict, the model's view in the void finding, a valid result."""
    from core.inspect import inspect_volume, validate_result
    from core.phantom import Artifacts, CellSpec, DelaminationVoid, make_cell

    monkeypatch.setenv("CELLQC_SEGMENT_THREADS", "1")
    spec = CellSpec(voxel_size_um=25.0, n_slices=4, spiral_start_deg=40.0)
    void = DelaminationVoid(winding=9, angle_deg=200.0, thickness_um=55.0, arc_length_um=900.0,
                            height_um=100.0, z_center=1.5, side="outer", depth_um=3.0)
    cell = make_cell(spec, [void], Artifacts(), seed=900123)
    ins = inspect_volume(cell.volume, "18650-nmc", segmenter="classic+onnx")
    validate_result(ins.result)
    assert ins.result["segmenter"] == "classic+onnx" and ins.result["verdict"] == "FAIL"
    found = [f for f in ins.result["findings"] if f["detector"] == "delamination" and not f.get("second_opinion")]
    assert len(found) == 1 and found[0]["severity"] == "fail"
    assert found[0]["model_agrees"] is True and found[0]["model_void_fraction"] > 0
    assert "segmenter" not in found[0]  # the classic detector's finding
