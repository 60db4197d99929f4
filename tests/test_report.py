"""The PDF report: content, missing data, escaping, atomic writing, CLI re-write."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core.io.volume import Volume
from core.report import ReportInputs, write_report
from core.report import document as report_document
from core.report import pdf as pdf_module
from core.report.figures import (
    NoFigure,
    finding_figure,
    thickness_histogram_figure,
    thickness_map_figure,
)
from core.report.pdf import fmt, limit_status, metric_label

PDFTOTEXT = shutil.which("pdftotext")


def synthetic_volume(nz: int = 24, n: int = 128, spacing_um: float = 70.0) -> Volume:
    """A wound cell in miniature: can, bright rings around a mandrel hole, one dark void."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:n, :n]
    r_um = np.hypot(y - n / 2, x - n / 2) * spacing_um
    image = np.zeros((n, n), np.float32)
    roll = (r_um > 1500) & (r_um < 4000)
    image[roll] = 0.3
    image[roll & (np.mod(r_um - 1500, 330) < 150)] = 0.8
    image[(r_um >= 4100) & (r_um < 4350)] = 1.0
    volume = np.repeat(image[None], nz, axis=0)
    volume[10:14, 30:34, 60:66] = 0.05
    volume += rng.normal(0, 0.04, volume.shape).astype(np.float32)
    return Volume(volume, (spacing_um,) * 3, cell_id="SYN-1")


def make_result(cell_id: str = "18650-A-0042", verdict: str = "FAIL") -> dict:
    return {
        "schema": "cellqc.inspection/1",
        "cell_id": cell_id,
        "verdict": verdict,
        "voxel_size_um": 70.0,
        "shape_zyx": [24, 128, 128],
        "recipe": "18650-nmc",
        "recipe_hash": "c0ffee" * 10 + "abcd",
        "software_version": "0.1.0",
        "operator": "line-3",
        "source": "/nonexistent/cell.npy",
        "spacing_um": [70.0, 70.0, 70.0],
        "started_at": "2026-03-02T10:14:03+00:00",
        "finished_at": "2026-03-02T10:15:41+00:00",
        "geometry": {
            "axis_center_yx_px": [64.0, 64.0],
            "windings": 8,
            "can_outer_radius_um": 4350.0,
        },
        "metrics": {
            "void_count": 2,
            "void_total_volume_mm3": 0.0021,
            "collector_deflection_max_um": 41.0,
            "cathode_sheet_thickness_cv": 0.04,
        },
        "limits": {
            "void_total_volume_mm3": {"review": 0.0002, "fail": 0.001, "unit": "mm3"},
            "collector_deflection_max_um": {"review": 30.0, "fail": 60.0, "unit": "µm"},
        },
        "reasons": ["FAIL: delamination void 0.0021 mm³ ≥ 0.001 mm³ (finding D1)"],
        "findings": [
            {
                "id": "D1",
                "detector": "delamination",
                "severity": "fail",
                "centroid_zyx_px": [11.5, 31.5, 62.5],
                "bbox_zyx_px": [10, 30, 60, 14, 34, 66],
                "winding": 4,
                "angle_deg": 300.0,
                "value": 0.0021,
                "unit": "mm3",
                "message": "Delamination void inside the cathode sheet",
            },
            {
                "id": "C1",
                "detector": "collector_deflection",
                "severity": "review",
                "centroid_zyx_px": [20.0, 90.0, 40.0],
                "bbox_zyx_px": [18, 86, 36, 22, 94, 44],
                "winding": 6,
                "angle_deg": 150.0,
                "value": 41.0,
                "unit": "um",
                "message": "Cu collector deflected toward the Al foil",
            },
        ],
        "timings_s": {"total": 98.0},
    }


def thickness_map(nz: int = 24, n_arc: int = 300) -> np.ndarray:
    values = 135.0 + 5.0 * np.random.default_rng(1).standard_normal((nz, n_arc))
    values[8:12, 100:120] = 105.0
    values[:, :4] = np.nan
    return values


def pdf_text(path: Path) -> str:
    if PDFTOTEXT:
        return subprocess.run(
            [PDFTOTEXT, "-layout", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    try:
        from pypdf import PdfReader
    except ImportError:
        pytest.skip("neither pdftotext (poppler-utils) nor pypdf is installed")
    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete report (volume + thickness data), shared by the content tests."""
    path = tmp_path_factory.mktemp("report") / "cell.pdf"
    inputs = ReportInputs(
        make_result(),
        volume=synthetic_volume(),
        thickness_map_um=thickness_map(),
        thickness_map_extent_mm=(0.0, 250.0, 0.0, 24 * 0.07),
        inspection_id=42,
    )
    write_report(inputs, path, invariant=True, compress=False)
    return path


@pytest.mark.slow
def test_report_is_a_complete_pdf(full_report: Path) -> None:
    data = full_report.read_bytes()
    assert data.startswith(b"%PDF")
    assert data.rstrip().endswith(b"%%EOF")
    # The document information (plain text in an uncompressed PDF) names cell and verdict.
    assert b"18650-A-0042" in data and b"FAIL" in data
    assert not list(full_report.parent.glob(".*.part"))


@pytest.mark.slow
def test_report_text_holds_verdict_cell_and_findings(full_report: Path) -> None:
    text = pdf_text(full_report)
    assert "18650-A-0042" in text
    assert "FAIL" in text and "Cell rejected" in text
    flat = " ".join(text.split())
    from core import describe

    result = make_result()
    for reason in describe.reasons(result):  # page 1 says why, as the CLI and the GUI do
        if reason.finding_id:
            assert reason.value in flat and reason.finding_id in flat
    for finding in result["findings"]:
        assert finding["id"] in text
        assert describe.value_text(finding) in flat
        assert describe.finding_location(finding, result).slice_text() in flat
    for word in ("18650-nmc", "c0ffeec0ffee", "cellqc 0.1.0", "line-3", "Quality sign-off"):
        assert word in text
    assert "Findings on the slices" in text and "The cell in section" in text
    assert "Page 1 of" in text
    assert "Not shown" not in text  # every figure had its data


def test_report_is_reproducible_with_invariant(tmp_path: Path) -> None:
    inputs = ReportInputs(make_result(), inspection_id=3)
    a = write_report(inputs, tmp_path / "a.pdf", invariant=True)
    b = write_report(inputs, tmp_path / "b.pdf", invariant=True)
    assert a == b == hashlib.sha256((tmp_path / "a.pdf").read_bytes()).hexdigest()


def test_missing_figure_data_gives_notes_not_a_crash(tmp_path: Path) -> None:
    result = make_result(verdict="REVIEW")
    result["findings"].append({"id": "X9", "detector": "foreign_particle", "severity": "info"})
    del result["limits"], result["geometry"]
    bad_volume = synthetic_volume(nz=4)  # D1 and C1 lie below its last slice
    inputs = ReportInputs(
        result,
        volume=bad_volume,
        thickness_map_um=np.full((4, 5), np.nan),
        thickness_values_um=np.array([np.nan]),
    )
    path = tmp_path / "r.pdf"
    write_report(inputs, path)
    text = pdf_text(path)
    assert "REVIEW" in text and "X9" in text
    assert "outside the volume" in text
    assert "has no position" in text
    assert "holds no measured value" in text  # one note for the map and its histogram (one summary)
    with pytest.raises(NoFigure, match="fewer than two thickness values"):
        thickness_histogram_figure(np.array([np.nan, 120.0]))


def test_report_without_any_figure_data(tmp_path: Path) -> None:
    result = make_result(verdict="PASS")
    result["findings"], result["reasons"] = [], []
    path = tmp_path / "pass.pdf"
    write_report(ReportInputs(result, volume_note="the volume was deleted."), path)
    text = pdf_text(path)
    assert "PASS" in text and "Cell accepted" in text
    assert "the volume was deleted" in text and "no thickness map or values" in text
    # An empty result still gives a report.
    write_report(ReportInputs({}), tmp_path / "empty.pdf")
    assert "NO VERDICT" in pdf_text(tmp_path / "empty.pdf")


def test_text_from_users_is_escaped(tmp_path: Path) -> None:
    result = make_result(cell_id="<b>C&1</b>")
    result["operator"] = "O'Brien <ops>"
    result["reasons"] = ["FAIL: a < b & c > d"]
    overrides = [
        {
            "old_verdict": "FAIL",
            "new_verdict": "REVIEW",
            "user": "eve",
            "reason": "<font color=red>artefact</font>",
            "created_at": "2026-03-03T09:00:00",
        }
    ]
    path = tmp_path / "r.pdf"
    write_report(ReportInputs(result, overrides=overrides), path)
    text = " ".join(pdf_text(path).split())
    # (pdftotext may close up the spaces of a short table cell: compare that one without them)
    assert "<b>C&1</b>" in text and "O'Brien <ops>" in text and "a<b&c>d" in text.replace(" ", "")
    assert "<font color=red>artefact</font>" in text and "overridden" in text


def test_many_findings_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_document, "MAX_FINDING_FIGURES", 1)
    path = tmp_path / "r.pdf"
    write_report(ReportInputs(make_result(), volume=synthetic_volume()), path)
    text = pdf_text(path)
    assert "1 more finding(s) omitted" in text


def test_roi_and_followup_sections(tmp_path: Path) -> None:
    inputs = ReportInputs(
        make_result(),
        roi_plans=[{"title": "ROI around D1", "voxel_size_um": 1.2, "center_zyx_mm": [1, 2, 3]}],
        followups=[{"title": "XANES grain 7", "edge_energy_ev": 8345.2}],
    )
    path = tmp_path / "r.pdf"
    write_report(inputs, path)
    text = pdf_text(path)
    assert "ROI around D1" in text and "XANES grain 7" in text and "8345" in text


def test_report_is_recorded_in_the_log(tmp_path: Path) -> None:
    from core.store import list_inspections, open_log, record_inspection, verify_audit

    with open_log(tmp_path / "log.db") as db:
        iid = record_inspection(db, make_result())
        path = tmp_path / "out" / "r.pdf"
        sha = write_report(ReportInputs(make_result()), path, db=db, inspection_id=iid)
        row = db["reports"].get(1)
        assert row["sha256"] == sha == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row["path"] == str(path.resolve())
        assert list_inspections(db)[0]["report_path"] == str(path.resolve())
        assert verify_audit(db) is None
        with pytest.raises(ValueError, match="inspection id"):
            write_report(ReportInputs(make_result()), path, db=db)


# ------------------------------------------------------------------- crash safety


def test_crash_while_writing_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.pdf"

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pdf_module.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_report(ReportInputs(make_result()), path)
    assert list(tmp_path.iterdir()) == []

    # A previous report under that name survives intact.
    path.write_bytes(b"%PDF-previous")
    with pytest.raises(OSError):
        write_report(ReportInputs(make_result()), path)
    assert path.read_bytes() == b"%PDF-previous"
    assert [p.name for p in tmp_path.iterdir()] == ["r.pdf"]


def test_crash_while_building_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self) -> None:
        raise RuntimeError("layout bug")

    monkeypatch.setattr(report_document.ReportDocument, "findings_table", broken)
    with pytest.raises(RuntimeError, match="layout bug"):
        write_report(ReportInputs(make_result()), tmp_path / "r.pdf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_killed_writer_leaves_no_pdf_under_final_name(tmp_path: Path) -> None:
    path = tmp_path / "r.pdf"
    code = f"""
        import os, time, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_report import make_result
        from core.report import ReportInputs, write_report
        from core.report import pdf
        def slow_fsync(fd):
            print("writing", flush=True)
            time.sleep(60)
        pdf.os.fsync = slow_fsync
        write_report(ReportInputs(make_result()), {str(path)!r})
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.05)
        assert list(tmp_path.glob(".r.pdf.*.part"))  # the bytes are in a temporary file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert not path.exists()


# -------------------------------------------------------------------------- the CLI


@pytest.mark.slow
def test_cli_report_rewrites_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.store import open_log, record_inspection
    from qc_app.cli import main

    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))
    volume_path = tmp_path / "cell.npy"
    np.save(volume_path, np.asarray(synthetic_volume().array))
    result = make_result()
    result["source"] = str(volume_path)
    db_path = tmp_path / "log.db"
    with open_log(db_path) as db:
        iid = record_inspection(db, result)
    out = tmp_path / "again.pdf"
    assert main(["report", str(iid), "--db", str(db_path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = pdf_text(out)
    assert "18650-A-0042" in text and "D1" in text and "re-written from the log" in text
    # Whether or not core.io could read the volume again, the report is complete.
    assert ("Findings on the slices" in text) or ("could not be read again" in text)
    with open_log(db_path) as db:
        assert db["reports"].count == 1
    # The default location is under $CELLQC_HOME/reports.
    assert main(["report", str(iid), "--db", str(db_path), "--no-volume"]) == 0
    default = Path(capsys.readouterr().out.strip())
    assert default.parent == tmp_path / "home" / "reports" and default.exists()
    assert main(["report", "999", "--db", str(db_path)]) == 2
    assert "no such inspection" in capsys.readouterr().err


# ----------------------------------------------------------------------- small parts


def test_metric_labels_limits_and_numbers() -> None:
    assert metric_label("void_total_volume_mm3") == ("Void volume, total", "mm³")
    assert metric_label("cathode_sheet_thickness_cv") == ("Cathode sheet thickness, coefficient of variation", "%")
    assert metric_label("cu_al_gap_mean_um")[0] == "Cu–Al gap, mean"
    assert metric_label("some_new_cu_al_thing_um") == ("Some new Cu–Al thing", "µm")
    assert limit_status(0.0021, {"review": 0.0002, "fail": 0.001}) == "FAIL"
    assert limit_status(41.0, {"review": 30, "fail": 60}) == "REVIEW"
    assert limit_status(10.0, {"review": 30, "fail": 60}) == "OK"
    assert limit_status(5.0, {"review": 40, "fail": 20}) == "FAIL"  # a lower bound
    assert limit_status(None, {"review": 30}) is None and limit_status(3, None) is None
    assert fmt(0.0021) == "0.0021" and fmt(12) == "12" and fmt(float("nan")) == "—"
    assert fmt(np.float32(41.25)) == "41.25"


def test_figures_refuse_bad_data_with_a_reason() -> None:
    volume = synthetic_volume(nz=4, n=32)
    with pytest.raises(NoFigure, match="outside the volume"):
        finding_figure(volume, {"centroid_zyx_px": [10, 5, 5], "bbox_zyx_px": [9, 4, 4, 11, 6, 6]})
    with pytest.raises(NoFigure, match="no volume"):
        finding_figure(None, {"centroid_zyx_px": [1, 5, 5]})
    with pytest.raises(NoFigure, match="2-D"):
        thickness_map_figure(np.zeros(5))
    png = finding_figure(volume, {"centroid_zyx_px": [1, 16, 16], "severity": "fail", "id": "A"})
    assert png.startswith(b"\x89PNG")
