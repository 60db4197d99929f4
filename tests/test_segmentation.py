"""The learned layer/void segmenter (issue 9): model file, checksum, outputs, held-out accuracy,
and the model-based delamination path of ``inspect --segmenter onnx``.

Stated numbers (models/layerseg_card.md): on a generated cell the training never saw (seed
900000 + 40, the phantom's own artifact pipeline), pixel accuracy inside the can ≥ ACCURACY_MIN
and per-class IoU ≥ IOU_MIN for every class but electrolyte/void, which is rare and thin.
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
