"""One story, readable: the JSON, the PDF text, the command line and the workstation agree (issue 23).

Three cells go through the user's path (``inspect_and_file`` with a log, a JSON and a PDF): the
demo cell, a generated 21700 (random seed, printed on failure) and the real 21700 scan
(``../shared/data/real/cell21700_top``, slices 40–99: cap groove, headspace and roll; skipped
when absent). For each:

- every finding's slice, height, value and (for thickness patches) areas are computed here from
  the JSON's fields by the documented convention (slices from 0, z = (slice + ½)·dz from the
  face of slice 0) and must appear, the same, in the PDF text, the GUI's findings list and
  the command line's summary; every "slice N (z X mm)" anywhere in the PDF obeys it;
- a sentence about a thickness patch names only its own two areas (beyond the review and beyond
  the fail deviation), and the recipe's check shows the worst patch's value, not another statistic;
- the workstation, opened from the log, starts on the worst finding, shows the map kept in the
  log, and at 1440 × 900 and 1920 × 1080 in engineer mode shows table rows, the whole voxel
  text and uncut axis labels;
- ``cellqc report ID`` (from the log) has the same pages as the report written at inspection,
  and after an ROI plan the report lists the plans.
"""

from __future__ import annotations

import io
import math
import os
import random
import re
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtCore, QtWidgets  # noqa: E402

from tests.test_report import pdf_text  # noqa: E402

pytestmark = pytest.mark.slow  # three whole inspections (demo, a 21700, the real scan) and reports

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "cell21700_top"
REAL_SPACING = (67.94, 33.97, 33.97)
SEED = int(os.environ.get("CELLQC_TEST_SEED", random.SystemRandom().randrange(10_000)))
SEVERITY_ORDER = {"fail": 0, "review": 1, "info": 2}
SIZES = ((1440, 900), (1920, 1080))


# ----------------------------------------------------------------------------- cells


def _demo(folder: Path) -> tuple[Path, str | None]:
    from qc_app.commands.demo_cmd import generate_demo_cell

    path, _ = generate_demo_cell(folder)
    return path, None


def _generated_21700(folder: Path) -> tuple[Path, str | None]:
    from core.io import write_tiff
    from core.phantom import default_defects, make_cell
    from tests.synthetic import random_conditions

    spec, artifacts = random_conditions(SEED, voxel_choices=(20.0, 25.0), n_slices=8, kind="21700")
    cell = make_cell(spec, default_defects(spec, np.random.default_rng(SEED)), artifacts, seed=SEED,
                     cell_id=f"SYN-21700-{SEED}")
    path = folder / "c21700.tif"
    write_tiff(cell.volume, path)
    return path, None


def _real(folder: Path) -> tuple[Path, str | None]:
    if not REAL.is_dir():
        pytest.skip(f"real 21700 data not found at {REAL}")
    from core.io import read_volume

    volume = read_volume(REAL, voxel_size=list(REAL_SPACING))
    path = folder / "real21700_40-99.npy"
    np.save(path, np.asarray(volume.array[40:100]))
    return path, ",".join(str(v) for v in REAL_SPACING)


MAKERS = {"demo": _demo, "21700": _generated_21700, "real": _real}


@pytest.fixture(scope="module", params=list(MAKERS))
def case(request, tmp_path_factory):
    """One cell inspected as a user does: log, JSON and PDF written; the texts extracted."""
    from core.filing import inspect_and_file

    folder = tmp_path_factory.mktemp(f"story-{request.param}")
    volume_path, voxel = MAKERS[request.param](folder)
    db_path = folder / "cellqc.db"
    inspection, iid = inspect_and_file(volume_path, voxel_size=voxel, json_out=folder / "result.json",
                                       report_out=folder / "report.pdf", db_path=db_path)
    import json

    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    text = pdf_text(folder / "report.pdf")
    return {"name": request.param, "folder": folder, "db": db_path, "iid": iid, "result": result,
            "pdf": folder / "report.pdf", "text": text, "flat": " ".join(text.split()),
            "nz": int(result["shape_zyx"][0]), "dz": float(result["spacing_um"][0])}


# ----------------------------------------------------------------------------- the convention


def shown_slice(f: dict, nz: int) -> int:
    """The documented rule, written here independently: centroid z rounded halves up, inside
    its bbox (end exclusive) and the volume."""
    z = math.floor(float(f["centroid_zyx_px"][0]) + 0.5)
    b = f["bbox_zyx_px"]
    z = min(max(z, int(b[0])), max(int(b[3]) - 1, int(b[0])))
    return min(max(z, 0), nz - 1)


def slice_text(z: int, dz: float) -> str:
    return f"slice {z} (z {(z + 0.5) * dz / 1000:.2f} mm)"


QUANTITY = re.compile(r"^([−-]?[0-9.]+)(?: ± ([0-9.]+))?\s*(\S*)$")


def parse_quantity(text: str) -> tuple[float, float | None, str, int]:
    m = QUANTITY.match(text.strip())
    assert m, f"not a value with a unit: {text!r}"
    number = m.group(1).replace("−", "-")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number), float(m.group(2)) if m.group(2) else None, m.group(3), decimals


def assert_value_matches(text: str, f: dict, where: str) -> None:
    """A shown value is the JSON's, in the shown unit, within its rounding."""
    value, u, unit, decimals = parse_quantity(text)
    expected = float(f["value"])
    if f.get("detector") == "can_metrology" and f.get("metric") == "ovality":
        expected *= 100.0  # a ratio shown in %
        assert unit == "%"
    else:
        assert unit.replace("um", "µm") in (f["unit"], f["unit"].replace("um", "µm").replace("mm3", "mm³")), (
            f"{where}: {f['id']} shown in {unit!r}, the JSON says {f['unit']!r} [seed {SEED}]")
    assert abs(value - expected) <= 0.5 * 10 ** -decimals + 1e-12, (
        f"{where}: {f['id']} shows {text!r}, the JSON says {expected} [seed {SEED}]")
    if f.get("uncertainty") is not None:
        assert u is not None, f"{where}: {f['id']} lost its uncertainty"


# ----------------------------------------------------------------------------- JSON ↔ PDF ↔ CLI


def test_pdf_and_cli_say_what_the_json_says(case):
    from qc_app.commands.inspect_cmd import print_summary

    result, flat, nz, dz = case["result"], case["flat"], case["nz"], case["dz"]
    out = io.StringIO()
    print_summary(result, case["iid"], out=out)
    cli = " ".join(out.getvalue().split())
    # Every place the PDF names obeys the convention (no second numbering anywhere).
    pairs = re.findall(r"slice (\d+) \(z ([0-9.]+) mm\)", flat)
    assert pairs, f"{case['name']}: the PDF names no slice"
    for n, z in pairs:
        assert z == f"{(int(n) + 0.5) * dz / 1000:.2f}", f"{case['name']}: 'slice {n} (z {z} mm)' breaks the convention"
    assert "Slices are numbered from 0" in flat
    judged = [f for f in result["findings"] if f["severity"] in ("fail", "review")]
    for f in result["findings"]:
        if f.get("centroid_zyx_px") is None:
            continue
        where = slice_text(shown_slice(f, nz), dz)
        assert f["id"] in flat
        assert where in flat, f"{case['name']}: {f['id']} is not at {where!r} in the PDF [seed {SEED}]"
    for f in judged:
        if f.get("related") and not f.get("primary"):
            continue  # a linked finding is named once, with the place's worst
        assert slice_text(shown_slice(f, nz), dz) in cli, f"{case['name']}: the CLI does not place {f['id']}"
    # Thickness patches: each sentence names its own areas only, formatted from the JSON.
    patches = [f for f in result["findings"] if f["detector"] == "electrode_thickness" and f["unit"] == "%"]
    beyond_review = {f"{f['area_mm2']:.2f}" for f in patches}
    beyond_fail = {f"{f['area_beyond_fail_mm2']:.2f}" for f in patches if f["area_beyond_fail_mm2"] > 0}
    shown_review = set(re.findall(r"([0-9.]+) mm² more than", flat))
    shown_fail = set(re.findall(r"([0-9.]+) mm² of it more than", flat))
    assert shown_review == beyond_review and shown_fail <= beyond_fail, (
        f"{case['name']}: areas {shown_review}/{shown_fail}, JSON {beyond_review}/{beyond_fail} [seed {SEED}]")
    # The recipe's check on thickness shows the worst patch (the judged quantity), with its id.
    if patches:
        from core.describe import value_text

        worst = min(patches, key=lambda f: (SEVERITY_ORDER[f["severity"]], -abs(f["value"])))
        assert f"{value_text(worst)} ({worst['id']})" in flat
        assert_value_matches(value_text(worst), worst, "checks")


def test_report_from_the_log_is_the_same_report_and_tells_the_plans(case):
    from core.report import inputs_from_log
    from core.report.pdf import build_pdf
    from core.roi.objectives import get_objective
    from core.roi.plan import plan_document, plan_rois
    from core.roi.queue import file_plan
    from core.store import open_log

    first_pages = case["text"].count("\f")
    with open_log(case["db"]) as db:
        again = build_pdf(inputs_from_log(db, case["iid"]))
    path = case["folder"] / "again.pdf"
    path.write_bytes(again)
    text = pdf_text(path)
    assert text.count("\f") == first_pages, f"{case['name']}: {first_pages} pages at inspection, " \
                                            f"{text.count(chr(12))} from the log"
    flat = " ".join(text.split())
    for heading in ("Why this verdict", "The recipe's checks", "All measurements", "Cathode sheet thickness"):
        assert (heading in flat) == (heading in case["flat"])
    assert ("coating) unrolled" in flat) == ("coating) unrolled" in case["flat"])
    assert "thickness map kept for this inspection" not in flat  # found beside the log, hash checked
    from core.report.keep import data_dir

    kept = list(data_dir(case["db"]).glob("*.npz"))
    if "coating) unrolled" in flat:
        assert kept and all(p.stat().st_size < 512 * 1024 for p in kept), "a kept map is not a few hundred kB"
    if not any(f["severity"] in ("fail", "review") for f in case["result"]["findings"]):
        return
    objective = get_objective()
    with open_log(case["db"]) as db:
        ids = file_plan(db, plan_document(case["result"], plan_rois(case["result"], objective), objective,
                                          inspection_id=case["iid"]))
        told = build_pdf(inputs_from_log(db, case["iid"]))
    path.write_bytes(told)
    flat = " ".join(pdf_text(path).split())
    assert f"ROI local-tomography plans ({len(ids)})" in flat and "No ROI scan is planned" not in flat
    for roi_id in ids:
        assert f"#{roi_id}" in flat


# ----------------------------------------------------------------------------- the workstation


def _wait(condition, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("condition not met in time")
        QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.005)


def _settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        QtWidgets.QApplication.processEvents()
        time.sleep(0.02)


@pytest.fixture(scope="module")
def themed(qapp):
    from qc_app.gui import app, theme

    app._quiet_qt_messages()
    theme.apply_theme(qapp)
    return qapp


def test_workstation_tells_the_same_story_and_fits_the_screen(case, themed):
    from core.store import open_log
    from core.store.users import add_user
    from qc_app.gui.main_window import MainWindow

    result, nz, dz = case["result"], case["nz"], case["dz"]
    with open_log(case["db"]) as db:
        if not list(db.query("SELECT name FROM users WHERE name = 'erik'")):
            add_user(db, "ada", "admin", secret="admin-pw")
            add_user(db, "erik", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
    window = MainWindow(db_path=case["db"], reports_dir=case["folder"] / "reports", dialogs=False)
    try:
        window.resize(*SIZES[0])
        window.show()
        assert window.open_from_log(case["iid"])
        _wait(lambda: window.volume is not None and window.load_task is None)
        _settle()
        # The findings list: the JSON's slice, height and value, as the PDF says them.
        rows = {text[0].split()[0]: text for text in window.findings.texts()}
        for f in result["findings"]:
            if f.get("centroid_zyx_px") is None:
                continue
            _, what_where, value = rows[f["id"]]
            where = slice_text(shown_slice(f, nz), dz)
            assert where in what_where, f"{case['name']}: GUI puts {f['id']} at {what_where!r}, not {where!r}"
            assert value in case["flat"], f"{case['name']}: GUI value {value!r} of {f['id']} not in the PDF"
            assert_value_matches(value, f, "GUI list")
            if f.get("winding") is not None:
                assert f"winding {f['winding']}" in what_where
        # It opens on the worst finding (else the middle of the roll: never the headspace).
        judged = sorted((f for f in result["findings"] if f["severity"] in ("fail", "review")),
                        key=lambda f: SEVERITY_ORDER[f["severity"]])
        rng = result["geometry"].get("roll_slice_range")
        if judged:
            z = window.viewer.z
            assert window.viewer.selected_id is not None
            chosen = next(f for f in result["findings"] if f["id"] == window.viewer.selected_id)
            assert chosen["severity"] == judged[0]["severity"] and z == shown_slice(chosen, nz)
            assert f"slice {z} of 0–{nz - 1} · z {(z + 0.5) * dz / 1000:.2f} mm" == window.viewer.slice_label.text()
        if rng:
            window.viewer.open_on([], tuple(rng))
            assert window.viewer.z == (rng[0] + rng[1]) // 2 and rng[0] <= window.viewer.z <= rng[1]
        # The checks are the report's.
        for _label, status, value, _review, _fail in window.engineer.finding.check_texts():
            shown, _, fid = value.partition(" (")
            assert shown in case["flat"] and fid.rstrip(")") in case["flat"] and status in ("FAIL", "REVIEW", "OK")
        # The map kept in the log is shown, with the findings that have a place on the sheet.
        if "coating) unrolled" in case["flat"]:
            assert window.map_view.current == "cathode_thickness_um"
            on_sheet = {m.finding_id for m in window.map_view.marks if m.kind == "finding"}
            assert on_sheet, f"{case['name']}: no finding placed on the unrolled sheet"
        # Engineer mode at common screen sizes: rows, whole texts, uncut axis labels.
        assert window.login_engineer("erik", "eng-pw")
        window.voxel.setText("67.94,33.97,33.97")
        for w, h in SIZES:
            window.resize(w, h)
            _settle()
            assert (window.width(), window.height()) == (w, h), f"engineer mode does not fit {w} × {h}"
            details = window.engineer.finding.details
            window.engineer.setCurrentWidget(window.engineer.finding)
            _settle()
            rows_visible = details.viewport().height() // details.verticalHeader().defaultSectionSize()
            assert rows_visible >= 3, f"{w} × {h}: the finding table shows {rows_visible} rows"
            window.engineer.setCurrentWidget(window.engineer.checks)
            _settle()
            limits = window.engineer.finding.limits
            assert limits.viewport().height() >= min(limits.rowCount(), 3) * limits.verticalHeader().defaultSectionSize()
            assert all(limits.visualRect(limits.model().index(r, 0)).isValid() for r in range(limits.rowCount()))
            metrics = window.voxel.fontMetrics()
            assert metrics.horizontalAdvance(window.voxel.text()) < window.voxel.contentsRect().width()
            for plot in (window.viewer.section, window.viewer.axial):
                for side in ("bottom", "left"):
                    axis = plot.getAxis(side)
                    label = axis.label.boundingRect()
                    span = axis.width() if side == "bottom" else axis.height()
                    assert label.width() <= span + 1, f"{w} × {h}: the {side} axis label is cut"
            column = window.findings.header().sectionSize(1) - 8  # the cell's padding
            fm = window.findings.fontMetrics()
            for i in range(window.findings.topLevelItemCount()):
                second_line = window.findings.topLevelItem(i).text(1).split("\n")[-1]
                assert fm.horizontalAdvance(second_line) <= column, (
                    f"{w} × {h}: {second_line!r} does not fit the findings list ({column} px)")
    finally:
        window.close()
        _settle()
