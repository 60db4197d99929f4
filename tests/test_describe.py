"""core.describe (one place for names, places and values) and the thickness map kept beside the log."""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import pytest

from core import describe
from core.describe import (
    finding_location,
    finding_slice,
    metric_label,
    metric_text,
    number,
    quantity,
    section_exaggeration,
    value_text,
)

RNG = random.Random()


def _finding(**kw):
    base = {"id": "X1", "detector": "collector_deflection", "severity": "fail", "value": 72.48, "unit": "µm",
            "centroid_zyx_px": [7.5, 100.0, 100.0], "bbox_zyx_px": [3, 90, 90, 13, 110, 110], "winding": 14,
            "angle_deg": 262.54}
    base.update(kw)
    return base


def test_slices_from_0_heights_from_the_face_of_slice_0():
    dz = RNG.choice([20.0, 25.0, 67.94])
    for _ in range(200):
        z = RNG.uniform(0, 50)
        f = _finding(centroid_zyx_px=[z, 1.0, 1.0], bbox_zyx_px=[0, 0, 0, 60, 2, 2])
        shown = finding_slice(f)
        assert shown == math.floor(z + 0.5)  # halves up, never Python's banker's rounding
        loc = finding_location(f, {"spacing_um": [dz, 10, 10], "shape_zyx": [60, 2, 2]})
        assert loc.z_mm == pytest.approx((shown + 0.5) * dz / 1000)
        assert loc.slice_text() == f"slice {shown} (z {(shown + 0.5) * dz / 1000:.2f} mm)"
    # Kept inside its box (end exclusive) and the volume.
    assert finding_slice(_finding(centroid_zyx_px=[9.7, 1, 1], bbox_zyx_px=[3, 0, 0, 9, 2, 2])) == 8
    assert finding_slice(_finding(centroid_zyx_px=[99, 1, 1], bbox_zyx_px=[0, 0, 0, 200, 2, 2]), nz=50) == 49
    # The GUI's viewer uses the same rule.
    from qc_app.gui.viewer import finding_slice as viewer_slice

    f = _finding(centroid_zyx_px=[8.5, 1, 1], bbox_zyx_px=[7, 0, 0, 10, 2, 2])
    assert viewer_slice(f, 16) == finding_slice(f, 16) == 9


def test_one_rounding_rule_per_unit_and_uncertainty_rounded_with_the_value():
    assert quantity(72.479, "um") == "72 µm" and quantity(4.87, "µm") == "4.9 µm"
    assert quantity(0.0037837, "mm3") == "0.0038 mm³" and quantity(0.00010199, "mm³") == "0.00010 mm³"
    assert quantity(-33.25, "%") == "−33 %" and quantity(3.57, "%") == "3.6 %"
    assert quantity(18.3988, "mm") == "18.40 mm" and quantity(262.54, "deg") == "263°"
    assert quantity(72.48, "µm", 9.3) == "72 ± 9 µm"
    assert quantity(460.2, "µm", 14.0) == "460 ± 14 µm"  # a leading 1 keeps two digits
    assert quantity(0.00378, "mm³", 0.00041) == "0.0038 ± 0.0004 mm³"
    assert quantity(None, "µm") == "—" and quantity(float("nan"), "µm") == "—"
    assert number(0.001, "mm³", strip=True) == "0.001" and number(0.0002, "mm³", strip=True) == "0.0002"
    assert number(-0.0001, "µm") == "0.00010".replace("0.00010", "−0.00010")
    assert value_text(_finding(uncertainty=9.3)) == "72 ± 9 µm"


def test_labels_have_no_raw_ids_and_metrics_have_units():
    for det in ("collector_deflection", "electrode_thickness", "delamination", "foreign_particle",
                "anode_overhang", "can_metrology", "winding_quality"):
        label = describe.finding_label({"detector": det, "value": 1.0, "unit": "µm"})
        assert "_" not in label and label[:1].isupper()
    assert describe.finding_label({"detector": "can_metrology", "metric": "ovality"}) == "Can out of round"
    assert describe.finding_label({"detector": "winding_quality", "kind": "buckling"}) == "Winding buckled"
    assert describe.finding_label({"detector": "electrode_thickness", "kind": "uncoated_zone"}).startswith("Uncoated")
    assert metric_label("cu_al_gap_mean_um") == ("Cu–Al gap, mean", "µm")
    assert metric_label("can_ovality_max")[1] == "%" and metric_text("can_ovality_max", 4.427e-05) == "0.0044 %"
    assert metric_text("cathode_sheet_thickness_cv", 0.03566) == "3.6 %"
    assert metric_text("anode_end_top_z_px", 61.03, {"spacing_um": [67.94, 34, 34]}) == "4.18 mm (slice 61)"
    for name in ("collector_deflection_p99_um", "winding_residual_rms_p95_um", "foo_bar_um"):
        label, unit = metric_label(name)
        assert "_" not in label and unit == "µm"
    # An ovality finding is shown in % too, with its limit.
    f = {"id": "F1", "detector": "can_metrology", "metric": "ovality", "severity": "review", "value": 0.0052,
         "unit": "", "rule": "can ovality 0.0052 ≥ 0.0040"}
    assert value_text(f) == "0.52 %" and describe.limit_phrase(f, {}) == "review at ≥ 0.4 %"


def _thickness_result(patches):
    return {"spacing_um": [20, 20, 20], "shape_zyx": [16, 900, 900],
            "limits": {"cathode_thickness_max_deviation_pct": {"review": 10.0, "fail": 20.0, "unit": "%"}},
            "metrics": {"cathode_thickness_max_deviation_pct": 48.1, "cathode_sheet_thickness_median_um": 136.8},
            "findings": patches, "reasons": []}


def test_a_patch_sentence_names_its_areas_once_and_the_check_is_the_worst_patch():
    patches = []
    for i in range(RNG.randint(1, 4)):
        area = RNG.uniform(0.1, 2.0)
        fail_area = RNG.uniform(0.0, area)
        patches.append(_finding(id=f"T{i + 1}", detector="electrode_thickness", unit="%",
                                severity="fail" if fail_area >= 0.1 else "review",
                                value=-RNG.uniform(10.5, 45.0), area_mm2=area, area_beyond_fail_mm2=fail_area,
                                rule=f"sheet thinner than the cell median by > 20 % over {fail_area:.2f} mm² ≥ 0.1 mm²"))
    result = _thickness_result(patches)
    for f in patches:
        sentence = describe.finding_sentence(f, result)
        areas = [float(a) for a in __import__("re").findall(r"([0-9.]+) mm²", sentence)]
        # Areas are printed to two significant figures at least (0.68, 0.0054 mm²).
        assert areas[0] == pytest.approx(f["area_mm2"], rel=0.01, abs=0.005)
        assert len(areas) <= 2 and (len(areas) == 1
                                    or areas[1] == pytest.approx(f["area_beyond_fail_mm2"], rel=0.01, abs=0.005))
    row = next(r for r in describe.check_rows(result) if r.detector == "electrode_thickness")
    worst = min(patches, key=lambda f: (describe.SEVERITY_RANK[f["severity"]], -abs(f["value"])))
    assert row.value == value_text(worst) and row.finding_id == worst["id"]
    assert "48" not in row.value  # the single-sample statistic is not what the rule judged
    assert row.review == "±10 %, ≥ 0.1 mm²" and row.fail == "±20 %, ≥ 0.1 mm²"
    assert row.status == ("FAIL" if any(f["severity"] == "fail" for f in patches) else "REVIEW")


def test_reasons_one_per_place_and_the_result_notes_kept():
    d1 = _finding(id="D1", detector="delamination", value=0.0038, unit="mm³", related=["T1"], primary=True)
    t1 = _finding(id="T1", detector="electrode_thickness", unit="%", value=-33.0, related=["D1"], area_mm2=0.14,
                  area_beyond_fail_mm2=0.11)
    c1 = _finding(id="C1", severity="review", value=41.0)
    result = _thickness_result([t1, c1, d1])
    result["limits"].update(void_max_volume_mm3={"review": 0.0002, "fail": 0.001, "unit": "mm³"},
                            collector_deflection_max_um={"review": 30.0, "fail": 60.0, "unit": "µm"})
    result["reasons"] = ["FAIL: … (finding D1)", "REVIEW: recipe 18650-nmc does not fit this can"]
    reasons = describe.reasons(result)
    assert [r.finding_id for r in reasons] == ["D1", "C1", None]
    assert reasons[0].also == ["T1"] and "fail at ≥ 0.001 mm³" in reasons[0].text
    assert reasons[1].text.startswith("REVIEW: Cu collector bent 41 µm (review at ≥ 30 µm), slice 8 (z 0.17 mm)")
    assert reasons[2].text == "REVIEW: recipe 18650-nmc does not fit this can"
    assert describe.worst_finding(result["findings"])["id"] == "D1"


def test_section_exaggeration_is_round_and_only_when_needed():
    assert section_exaggeration(6.8, 24.7) == 5.0
    assert section_exaggeration(0.32, 19.4) == 50.0
    assert section_exaggeration(20.0, 20.0) == 1.0
    for _ in range(100):
        h, w = RNG.uniform(0.05, 30), RNG.uniform(5, 30)
        f = section_exaggeration(h, w)
        assert h * f >= describe.MIN_SECTION_ASPECT * w - 1e-9 or f == 1.0
        mantissa = f / 10 ** math.floor(math.log10(f))
        assert round(mantissa, 6) in (1.0, 2.0, 5.0)


# ----------------------------------------------------------------------------- kept beside the log


def _summary():
    from core.report.thickness import ThicknessSummary

    rng = np.random.default_rng(RNG.randrange(1000))
    values = 137 + 5 * rng.standard_normal((12, 3000)).astype(np.float32)
    values[:, :20] = np.nan
    return ThicknessSummary.from_array(values, (0.0, 600.0, 0.0, 0.22), 20.0)


def test_summary_bytes_round_trip_and_are_reproducible():
    from core.report.thickness import MAX_COLUMNS, ThicknessSummary

    s = _summary()
    assert s.values_um.shape[1] <= MAX_COLUMNS
    data = s.to_bytes()
    assert data == s.to_bytes()  # equal summaries, equal bytes, equal hashes
    back = ThicknessSummary.from_bytes(data)
    np.testing.assert_array_equal(back.values_um, s.values_um)
    assert back.median_um == s.median_um and back.n == s.n and int(back.hist_counts.sum()) == s.n
    with pytest.raises(ValueError, match="not a thickness summary"):
        ThicknessSummary.from_bytes(b"PK\x03\x04 not a zip")


def test_a_kept_map_that_changed_or_vanished_is_refused(tmp_path):
    from core.report.keep import data_dir, keep, load_summary

    db_path = tmp_path / "cellqc.db"
    data = _summary().to_bytes()
    sha = hashlib.sha256(data).hexdigest()
    result = {"report_data": {"thickness_summary": {"sha256": sha, "bytes": len(data)}}}
    path, created = keep(db_path, data)
    assert created and path == data_dir(db_path) / f"{sha}.npz"
    assert keep(db_path, data) == (path, False)  # content-addressed: written once
    summary, why = load_summary(db_path, result)
    assert summary is not None and why == ""
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    summary, why = load_summary(db_path, result)
    assert summary is None and "has changed since it was filed" in why
    path.unlink()
    summary, why = load_summary(db_path, result)
    assert summary is None and "is missing" in why
    assert "without a thickness map" in load_summary(db_path, {})[1]
