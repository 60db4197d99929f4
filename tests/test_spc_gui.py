"""The GUI's SPC tab (pytest-qt, offscreen): a log with known values and one out-of-control
inspection; the tab charts it with core.spc and flags exactly that inspection (and its lot).

The screenshot goes to /tmp/cellqc_gui/spc-*.png (docs/images/gui-spc.png is one of them).
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtWidgets  # noqa: E402

SHOTS = Path("/tmp/cellqc_gui")
N_LOTS, PER_LOT = 6, 4
OUTLIER = (4, 1)  # lot 4, its second cell: 12.0 among 10.0 ± 0.1


def _value(lot: int, i: int) -> float:
    k = lot * PER_LOT + i
    return 12.0 if (lot, i) == OUTLIER else 10.0 + 0.1 * (-1) ** k


pytestmark = pytest.mark.usefixtures("collect_in_the_ui_thread")  # tests/conftest.py


@pytest.fixture
def spc_log(tmp_path) -> tuple[Path, dict[str, int]]:
    """24 inspections in 6 lots (cell ids LOTn-00i) on two lines; one outlier; ids by cell."""
    from core.store import open_log, record_inspection

    db_path = tmp_path / "cellqc.db"
    db = open_log(db_path)
    ids = {}
    for lot in range(N_LOTS):
        for i in range(PER_LOT):
            cell = f"LOT{lot}-{i:03d}"
            metrics = {"can_outer_diameter_mm": _value(lot, i), "can_ovality_max": 0.001 * (i + 1),
                       "label": "not a number", "flag": True}
            if lot % 2 == 0:
                metrics["anode_overhang_min_um"] = 150.0 + i
            ids[cell] = record_inspection(db, {
                "schema": "cellqc.inspection/1", "cell_id": cell, "verdict": "PASS", "findings": [],
                "metrics": metrics, "geometry": {"can_outer_radius_um": 5000.0 + i},
                "line": f"L{lot % 2 + 1}", "started_at": f"2024-05-{lot + 1:02d}T08:{i:02d}:00Z"})
    db.close()
    return db_path, ids


def _window(qapp, tmp_path, db_path):
    from qc_app.gui import theme
    from qc_app.gui.main_window import MainWindow

    theme.apply_theme(qapp)
    window = MainWindow(db_path=db_path, reports_dir=tmp_path / "reports", dialogs=False)
    window.show()
    window.view_tabs.setCurrentWidget(window.spc_view)  # shown: the log is read
    QtWidgets.QApplication.processEvents()
    return window


@pytest.mark.slow
def test_spc_tab_flags_exactly_the_out_of_control_inspection(qapp, qtbot, tmp_path, spc_log):
    db_path, ids = spc_log
    window = _window(qapp, tmp_path, db_path)
    view = window.spc_view
    try:
        # Only the numeric metrics present in the log are offered.
        offered = [view.metric_box.itemText(i) for i in range(view.metric_box.count())]
        assert offered == ["anode_overhang_min_um", "can_outer_diameter_mm", "can_outer_radius_um", "can_ovality_max"]

        view.set_metric("can_outer_diameter_mm")
        view.set_grouping("none")
        i_chart, mr_chart = view.charts
        assert (i_chart.name, mr_chart.name) == ("I", "MR") and len(i_chart.values) == N_LOTS * PER_LOT
        # The same statistics as core.spc: centre x̄, limits x̄ ± 3 MR̄ / 1.128.
        from core.spc import individuals_chart

        ref, _ = individuals_chart(i_chart.values)
        assert (i_chart.center, i_chart.ucl, i_chart.lcl) == (ref.center, ref.ucl, ref.lcl)
        outlier = OUTLIER[0] * PER_LOT + OUTLIER[1]
        assert i_chart.violations == {outlier: [1]}
        # Drawn: one highlighted point, at the outlier, named by its rule.
        assert [(x, y, r) for x, y, r in view.top.flagged] == [(float(outlier), 12.0, [1])]
        rows = view.flagged_rows()
        i_rows = [r for r in rows if r["chart"] == "I"]
        assert len(i_rows) == 1
        cell = f"LOT{OUTLIER[0]}-{OUTLIER[1]:03d}"
        assert i_rows[0]["point"] == cell and i_rows[0]["inspection_id"] == ids[cell]
        assert i_rows[0]["rules"] == "1: beyond 3σ"
        # The moving range flags the two jumps into and out of it, nothing else.
        assert sorted(mr_chart.violations) == [outlier - 1, outlier]
        assert {r["chart"] for r in rows} == {"I", "MR"} and len(rows) == 3
        assert "3 point(s) break a Western Electric rule" in view.summary.text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(SHOTS / "spc-individuals.png"))

        # Grouped by lot: X̄–R; only the outlier's lot is out of control.
        view.set_grouping("lot")
        xbar, r_chart = view.charts
        assert xbar.name == "Xbar" and xbar.labels == [f"LOT{k}" for k in range(N_LOTS)]
        assert xbar.violations == {OUTLIER[0]: [1]} and sorted(r_chart.violations) == [OUTLIER[0]]
        assert [r["group"] for r in view.flagged_rows() if r["chart"] == "Xbar"] == [f"LOT{OUTLIER[0]}"]
        assert len(view.top.flagged) == 1 and view.top.flagged[0][0] == float(OUTLIER[0])
        window.grab().save(str(SHOTS / "spc-lot.png"))

        # By line: two lines of 12 — X̄–R over two subgroups (core.spc keeps up to 10 values each).
        view.set_grouping("line")
        assert view.grouped and view.charts[0].labels == ["L1", "L2"]
        # By day: one day per lot here, the same subgroups as by lot.
        view.set_grouping("day")
        assert view.charts[0].labels == [f"2024-05-{k + 1:02d}" for k in range(N_LOTS)]
        assert view.charts[0].violations == {OUTLIER[0]: [1]}

        # A metric present in half the inspections: only those are charted.
        view.set_grouping("none")
        view.set_metric("anode_overhang_min_um")
        assert len(view.charts[0].values) == N_LOTS // 2 * PER_LOT

        # Double-clicking the flagged individual opens that inspection.
        view.set_metric("can_outer_diameter_mm")
        opened = []
        view.open_requested.connect(opened.append)
        row = next(i for i, r in enumerate(view.flagged_rows()) if r["chart"] == "I")
        view.table.itemActivated.emit(view.table.item(row, 1))
        assert opened == [ids[cell]]
    finally:
        window.close()


def test_spc_tab_new_inspections_appear_when_shown_again(qapp, tmp_path, spc_log):
    from core.store import open_log, record_inspection

    db_path, _ids = spc_log
    window = _window(qapp, tmp_path, db_path)
    try:
        view = window.spc_view
        view.set_metric("can_outer_diameter_mm")
        n = len(view.charts[0].values)
        db = open_log(db_path)
        record_inspection(db, {"schema": "cellqc.inspection/1", "cell_id": "LOT9-000", "verdict": "PASS",
                               "findings": [], "metrics": {"can_outer_diameter_mm": 10.0, "new_metric": 1.0}})
        db.close()
        window.view_tabs.setCurrentWidget(window.viewer)
        window.view_tabs.setCurrentWidget(view)
        QtWidgets.QApplication.processEvents()
        assert len(view.charts[0].values) == n + 1 and view.metric == "can_outer_diameter_mm"
        assert view.metric_box.findText("new_metric") >= 0
    finally:
        window.close()


def test_spc_tab_without_log_or_metrics(qapp, tmp_path):
    from qc_app.gui.spc_view import SpcView

    view = SpcView(lambda: None)
    view.show()
    QtWidgets.QApplication.processEvents()
    assert view.metric is None and view.charts == (None, None)
    assert "No log" in view.summary.text()
    view.close()
