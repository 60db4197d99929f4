"""The window's case model without Qt: state changes, what the views are told, what they show."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from qc_app.gui.case_model import ROLES, CaseModel, safe_name


def _result(rng: np.random.Generator, verdict: str | None = None) -> dict:
    verdict = verdict or str(rng.choice(["PASS", "FAIL", "REVIEW"]))
    n = int(rng.integers(0, 5))
    return {"cell_id": f"C-{int(rng.integers(1000))}", "verdict": verdict, "recipe": "18650-nmc",
            "findings": [{"id": f"f{i}"} for i in range(n)]}


def _watched(model: CaseModel) -> list[str]:
    events: list[str] = []
    model.observe(events.append)
    return events


def test_imports_no_qt():
    code = ("import sys, qc_app.gui.case_model; "
            "assert not any(m.startswith(('PySide6', 'shiboken')) for m in sys.modules), 'Qt imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_inspection_then_override_then_report(tmp_path):
    rng = np.random.default_rng(int(np.random.default_rng().integers(1 << 30)))
    model = CaseModel(operator="station")
    events = _watched(model)
    model.volume_path = str(tmp_path / "cell.tif")
    result = _result(rng, "FAIL")
    model.inspected(SimpleNamespace(result=result), 7)
    assert (model.result, model.inspection_id, model.final_verdict, model.last_outcome) == (result, 7, "FAIL", "FAIL")
    assert model.shown_verdict == "FAIL" and not model.is_overridden
    n = len(result["findings"])
    assert model.subtitle() == f"Cell {result['cell_id']} · inspection #7 · {n} finding{'s' if n != 1 else ''}"
    assert model.window_title() == f"cellqc — {result['cell_id']} — FAIL"

    model.overridden("PASS")
    assert events == ["verdict"] and model.shown_verdict == "PASS" and model.is_overridden
    line = model.override_line({"user": "erik", "reason": "ring artefact"})
    assert line == "Automatic verdict FAIL overridden to PASS by erik: ring artefact"
    assert model.override_line(None).endswith("by ?: ")

    model.report_written(str(tmp_path / "r.pdf"))
    assert events[-1] == "report" and model.report_path == str(tmp_path / "r.pdf")

    model.clear()
    assert events[-1] == "cleared"
    assert (model.result, model.inspection_id, model.final_verdict, model.report_path, model.inspection) == (
        None, None, None, None, None)
    assert model.volume_path == str(tmp_path / "cell.tif")  # the volume stays open
    assert model.window_title() == "cellqc — cell inspection" and model.shown_verdict is None


def test_opened_from_log_takes_the_newest_override_and_an_existing_report(tmp_path):
    rng = np.random.default_rng()
    model = CaseModel()
    result = _result(rng, "REVIEW")
    overrides = [{"new_verdict": "FAIL"}, {"new_verdict": "PASS"}]
    report = tmp_path / "kept.pdf"
    report.write_bytes(b"%PDF-1.4\n")
    model.opened_from_log(result, 3, overrides, str(report))
    assert model.final_verdict == "PASS" and model.report_path == str(report)
    model.opened_from_log(result, 3, [], str(tmp_path / "moved-away.pdf"))
    assert model.final_verdict == "REVIEW" and model.report_path is None
    model.opened_from_log(result, 3, [], None)
    assert model.report_path is None


def test_start_inspection_forgets_the_result_silently():
    model = CaseModel()
    events = _watched(model)
    model.inspected(SimpleNamespace(result=_result(np.random.default_rng())), 1)
    model.report_written("x.pdf")
    model.start_inspection()
    assert events == ["report"]
    assert (model.result, model.inspection_id, model.final_verdict, model.report_path) == (None, None, None, None)


@pytest.mark.parametrize("role", ["engineer", "admin"])
def test_login_and_logout(role):
    model = CaseModel(operator="line-3", login_name="")
    events = _watched(model)
    assert model.login("erik", role) is None
    assert (model.role, model.signer, model.operator, model.login_name) == (role, "erik", "erik", "erik")
    assert model.status_texts(None, None)[2] == f"Role: {role} (erik)"
    model.logout()
    assert events == ["role", "role"]
    assert (model.role, model.signer, model.operator) == ("operator", None, "line-3")
    assert model.login_name == "erik"  # the next login starts with the last name
    assert model.status_texts(None, None)[2] == "Role: operator"


@pytest.mark.parametrize("role", ["operator", "auditor", ""])
def test_login_refused_without_an_engineer_role(role):
    model = CaseModel(operator="line-3")
    events = _watched(model)
    refused = model.login("olga", role)
    assert refused is not None and "olga" in refused and "engineer or admin" in refused
    assert events == [] and (model.role, model.signer, model.operator) == ("operator", None, "line-3")
    assert set(ROLES) == {"operator", "engineer", "admin"}


def test_controls_follow_the_case_and_the_tasks():
    rng = np.random.default_rng()
    model = CaseModel()
    for _ in range(50):
        model.volume_path = "v.tif" if rng.random() < 0.5 else None
        model.result = _result(rng) if rng.random() < 0.5 else None
        model.report_path = "r.pdf" if rng.random() < 0.5 else None
        inspecting, cancelling, reporting = (bool(b) for b in rng.random(3) < 0.5)
        can = model.controls(inspecting=inspecting, cancelling=cancelling, reporting=reporting)
        assert can.run == (model.volume_path is not None and not inspecting)
        assert can.cancel_button == (inspecting and not cancelling)
        assert can.cancel_action == inspecting and can.open == (not inspecting)
        assert can.report == (model.result is not None and not inspecting and not reporting)
        assert can.open_report == can.print_report == (model.report_path is not None and not reporting)


def test_status_texts_and_report_name():
    model = CaseModel()
    log, recipe, _role = model.status_texts(None, None)
    assert log == "Log: none (results are not filed)" and recipe == "Recipe: auto (from the can)"
    model.inspected(SimpleNamespace(result={"cell_id": "A/B 7", "verdict": "PASS", "recipe": "21700-nca",
                                            "findings": []}), None)
    log, recipe, _role = model.status_texts("/x/cellqc.db", None)
    assert log == "Log: /x/cellqc.db" and recipe == "Recipe: auto (from the can), this cell: 21700-nca"
    assert model.status_texts(None, "/r/my-18650.toml")[1] == "Recipe: my-18650"
    now = dt.datetime(2026, 12, 7, 13, 5, 9)
    assert model.report_name(now) == "A_B_7_20261207-130509.pdf"  # not filed: a time stamp
    model.inspection_id = 42
    assert model.report_name(now) == "A_B_7_42.pdf"
    assert safe_name("///") == "cell" and safe_name("ok-1.2_x") == "ok-1.2_x"


def test_an_observer_can_stop():
    model = CaseModel()
    events: list[str] = []
    stop = model.observe(events.append)
    model.clear()
    stop()
    model.clear()
    assert events == ["cleared"]
