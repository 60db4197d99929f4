"""One physical defect, one finding (core/findings.py) and buckling measured whole.

Demanded (issue 17): findings of one detector that are parts of one defect (slices, fragments,
chunks) are one finding with the whole defect's measure and extent; a finding of another
detector at the same place is linked (``related``) and not counted again in the reasons; a
buckle of several windings reads its full size (a 0.6 mm buckle reads 0.6 mm, not a third).
"""

from __future__ import annotations

import numpy as np
import pytest

from core.detectors.base import Finding
from core.detectors.delamination import judge_void
from core.detectors.winding_quality import spiral_residuals
from core.findings import box_gap_um, link_related, merge_parts, reasons_by_group, recount_metrics

SPACING = (20.0, 20.0, 20.0)
RULES = {"delamination": {"fail_volume_mm3": 0.001, "fail_length_um": 300.0, "review_volume_mm3": 0.0002}}


def _void(box, volume, winding=5, severity="review", arc=200.0):
    z = 0.5 * (box[0] + box[3])
    return Finding(detector="delamination", severity=severity, centroid_zyx_px=(z, box[1], box[2]), bbox_zyx_px=box,
                   value=volume, unit="mm³", winding=winding,
                   message=f"void in the outer cathode coating of winding {winding}: {volume:.4f} mm³, {arc:.0f} µm × "
                           "100 µm × 40 µm", rule="void", extra={"arc_length_um": arc})


def test_box_gap_in_physical_units():
    assert box_gap_um((0, 0, 0, 2, 2, 2), (2, 0, 0, 4, 2, 2), (20.0, 10.0, 10.0)) == 0.0  # touching
    assert box_gap_um((0, 0, 0, 2, 2, 2), (4, 0, 0, 6, 2, 2), (20.0, 10.0, 10.0)) == pytest.approx(40.0)
    assert box_gap_um((0, 0, 0, 1, 1, 1), (0, 4, 4, 1, 5, 5), (20.0, 10.0, 10.0)) == pytest.approx(np.hypot(30, 30))


def test_parts_of_one_void_are_one_finding_judged_whole():
    rng = np.random.default_rng(3)
    for _ in range(20):
        gap_px = int(rng.integers(0, 9))  # ≤ 160 µm at 20 µm voxels: within the 200 µm merge gap
        a = _void((4, 100, 100, 8, 110, 110), float(rng.uniform(0.0003, 0.0006)))
        b = _void((8 + gap_px, 100, 100, 12 + gap_px, 110, 110), float(rng.uniform(0.0005, 0.0008)))
        total = a.value + b.value
        (whole,) = merge_parts([a, b], SPACING, RULES, judge_void)
        assert whole.value == pytest.approx(total)
        assert whole.severity == "fail"  # two review-sized parts are one fail-sized void
        assert whole.extra["parts"] == 2
        assert whole.extra["z_range_px"] == [4, 11 + gap_px]
        assert whole.bbox_zyx_px[0] == 4 and whole.bbox_zyx_px[3] == 12 + gap_px
        assert f"{total:.4f} mm³" in whole.message


def test_separate_defects_stay_separate():
    a = _void((4, 100, 100, 8, 110, 110), 0.0005)
    far = _void((4, 100, 130, 8, 110, 140), 0.0005)  # 400 µm away
    other_sheet = _void((4, 100, 100, 8, 110, 110), 0.0005, winding=8)  # same place, three windings out
    assert len(merge_parts([a, far], SPACING, RULES, judge_void)) == 2
    assert len(merge_parts([a, other_sheet], SPACING, RULES, judge_void)) == 2


def test_a_buckle_in_many_fragments_is_one_finding():
    rng = np.random.default_rng(7)
    parts = []
    for i in range(28):  # a departure hovering about the limit: one fragment per slice or so
        z = 3 * i
        value = float(rng.uniform(75, 95))
        parts.append(Finding(detector="winding_quality", severity="review", centroid_zyx_px=(z, 200, 300),
                             bbox_zyx_px=(z, 190, 290, z + 2, 210, 312), value=value, unit="µm", winding=int(rng.integers(4, 7)),
                             message="buckling", rule="winding departure", extra={"kind": "buckling"}))
    (whole,) = merge_parts(parts, SPACING)
    assert whole.value == pytest.approx(max(p.value for p in parts))
    assert whole.extra["parts"] == 28


def test_other_detectors_at_one_place_are_linked_and_give_one_reason():
    void = _void((4, 100, 100, 8, 110, 110), 0.002, severity="fail").to_json() | {"id": "D1"}
    thin = Finding(detector="electrode_thickness", severity="fail", centroid_zyx_px=(6, 104, 104),
                   bbox_zyx_px=(5, 101, 101, 9, 112, 112), value=-30.0, unit="%", winding=5,
                   message="cathode sheet of winding 5 30 % thinner", rule="thin").to_json() | {"id": "T1"}
    elsewhere = Finding(detector="collector_deflection", severity="review", centroid_zyx_px=(6, 400, 400),
                        bbox_zyx_px=(5, 395, 395, 9, 405, 405), value=40.0, unit="µm", winding=12,
                        message="Cu collector of winding 12 deflected", rule="deflection").to_json() | {"id": "C1"}
    findings = [void, thin, elsewhere]
    groups = link_related(findings, SPACING)
    assert void["related"] == ["T1"] and thin["related"] == ["D1"] and "related" not in elsewhere
    assert void.get("primary") is True and "primary" not in thin
    reasons = reasons_by_group(findings, groups)
    assert len(reasons) == 2  # one per place
    assert any("(finding D1); the same place also seen as T1" in r for r in reasons)
    assert not any("(finding T1)" in r for r in reasons)


def test_a_buckle_speaks_for_its_place_not_the_deflection_inside_it():
    deflection = Finding(detector="collector_deflection", severity="fail", centroid_zyx_px=(6, 200, 200),
                         bbox_zyx_px=(0, 190, 190, 12, 210, 210), value=168.0, unit="µm", winding=6,
                         message="Cu collector deflected 168 µm", rule="deflection").to_json() | {"id": "C1"}
    buckle = Finding(detector="winding_quality", severity="fail", centroid_zyx_px=(6, 200, 200),
                     bbox_zyx_px=(0, 180, 180, 12, 220, 220), value=600.0, unit="µm", winding=5,
                     message="buckling: windings 3–7 depart up to 600 µm", rule="departure").to_json() | {"id": "F1"}
    findings = [deflection, buckle]
    groups = link_related(findings, SPACING)
    assert buckle.get("primary") is True
    assert reasons_by_group(findings, groups)[0].startswith("FAIL: departure — buckling")


@pytest.mark.parametrize("seed", range(6))
def test_a_buckle_of_several_windings_reads_its_whole_size(seed):
    """Several windings pushed ~0.6 mm inwards together: the departure from the roll's spiral
    (fitted away from the buckle) reads the buckle, within 10 %; the undisturbed windings stay
    under 20 µm. Randomised: pitch, windings, noise, buckle size, span, angle and layers."""
    rng = np.random.default_rng(seed)
    n_t = 2000
    t = np.linspace(0, 2 * np.pi, n_t, endpoint=False)
    k_n = int(rng.integers(15, 25))
    pitch = float(rng.uniform(300, 400))
    # The roll's own shape (a residual offset and ovality) is common to its layers; each layer
    # wobbles a little about it.
    shape_c = rng.uniform(-30, 30, 4)
    common = shape_c[0] * np.cos(t) + shape_c[1] * np.sin(t) + shape_c[2] * np.cos(2 * t) + shape_c[3] * np.sin(2 * t)
    r = np.array([2000 + pitch * (k + t / (2 * np.pi)) + common + rng.uniform(-5, 5) * np.cos(t + rng.uniform(0, 6))
                  for k in range(k_n)])
    r += rng.normal(0, 3, r.shape)
    amplitude = float(rng.uniform(400, 800))
    span_deg = float(rng.uniform(30, 60))
    centre = float(rng.uniform(0, 360))
    k0 = int(rng.integers(2, k_n - 8))
    layers = slice(k0, k0 + int(rng.integers(3, 7)))
    d = np.abs((np.degrees(t) - centre + 180) % 360 - 180)
    shape = np.clip(1 - d / (span_deg / 2), 0, 1)
    r[layers] -= amplitude * shape
    res = spiral_residuals(r, t, 0.0, 1)
    assert abs(-np.nanmin(res[layers]) - amplitude) <= 0.10 * amplitude
    away = np.abs(res[: k0 - 1])
    assert np.nanpercentile(away, 99) < 20.0


def test_recount_follows_the_merged_findings():
    metrics = {"void_count": 5, "void_total_volume_mm3": 9.0, "void_max_volume_mm3": 9.0, "winding_quality_count": 3}
    findings = [_void((0, 0, 0, 1, 1, 1), 0.002), _void((0, 50, 50, 1, 51, 51), 0.001)]
    recount_metrics(metrics, findings)
    assert metrics == {"void_count": 2, "void_total_volume_mm3": pytest.approx(0.003), "void_max_volume_mm3": 0.002,
                       "winding_quality_count": 0}
