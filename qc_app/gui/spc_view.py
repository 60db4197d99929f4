"""The SPC tab: control charts of any metric over the log, Western Electric rules flagged.

All statistics come from :mod:`core.spc` (the same charts as ``cellqc spc``): ungrouped, the
individuals chart (centre x̄, limits x̄ ± 3σ with σ = MR̄ / 1.128) above its moving-range
chart; grouped by lot, line or day, the X̄ chart above the R chart. The I and X̄ charts also
show the 1σ and 2σ zones the rules count in. A point that breaks a rule is drawn as a larger
vermillion diamond with the rule named beside it, and listed in the table below the charts
(double-click an individual's row to open that inspection).

The log is read when the tab is shown (again only when complete inspections were added).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core import spc
from qc_app.gui import theme

GROUPS = ("none", "lot", "line", "day")
#: At most this many points are named on the x axis (every k-th, the others get a bare tick);
#: fewer when the names would not fit the chart's width.
MAX_TICK_LABELS = 12
#: Metric name endings and the unit they mean (the y axes show the unit).
_UNITS = {"_um": "µm", "_mm": "mm", "_mm2": "mm²", "_mm3": "mm³", "_deg": "°", "_px": "px", "_pct": "%"}

_POINTS = "#56B4E9"  # sky blue (Okabe–Ito)
_CENTRE = "#FFFFFF"
_LIMIT = "#E69F00"  # orange
_ZONE = (150, 150, 150, 110)
_FLAG = theme.SEVERITY_COLOURS["fail"]
_TITLES = {"I": "Individuals (I)", "MR": "Moving range (MR)", "Xbar": "Subgroup means (X̄)", "R": "Subgroup ranges (R)"}


def _fmt(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else "–"


def metric_unit(metric: str) -> str:
    """The unit a metric's name ends with (``can_outer_diameter_mm`` → mm), or ""."""
    return next((u for end, u in _UNITS.items() if metric.endswith(end)), "")


class ControlChartPlot(pg.PlotWidget):
    """One control chart: points, centre line, control limits, sigma zones, flagged points."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setMenuEnabled(False)
        self.showGrid(x=False, y=True, alpha=0.15)
        self.getAxis("left").enableAutoSIPrefix(False)
        # Small enough that the SPC tab never makes the window taller than 900 px in engineer mode.
        self.setMinimumHeight(90)
        self.chart: spc.Chart | None = None
        self.x: np.ndarray = np.zeros(0)
        #: The flagged points drawn: (x, value, rule numbers).
        self.flagged: list[tuple[float, float, list[int]]] = []
        self.flag_item: pg.ScatterPlotItem | None = None
        self.tick_labels: list[str] | None = None

    def show_chart(self, chart: spc.Chart | None, x0: int = 0, tick_labels: list[str] | None = None,
                   y_label: str = "", zones: bool = False) -> None:
        """Draw ``chart`` with its points at x = x0, x0 + 1, …; ``tick_labels`` name the x positions."""
        plot = self.getPlotItem()
        plot.clear()
        self.chart = chart
        self.flagged = []
        self.flag_item = None
        if chart is None or len(chart.values) == 0:
            plot.setTitle("")
            self.tick_labels = None
            self._set_ticks()
            return
        values = np.asarray(chart.values, float)
        self.x = x = np.arange(values.size, dtype=float) + x0
        title = (f"{_TITLES.get(chart.name, chart.name)}: centre {_fmt(chart.center)}, "
                 f"LCL {_fmt(chart.lcl)}, UCL {_fmt(chart.ucl)}")
        plot.setTitle(title, color="#FFFFFF", size="11pt")
        plot.setLabel("left", y_label)
        if zones and math.isfinite(chart.sigma) and chart.sigma > 0:
            for k in (-2, -1, 1, 2):
                plot.addItem(pg.InfiniteLine(pos=chart.center + k * chart.sigma, angle=0,
                                             pen=pg.mkPen(_ZONE, width=1, style=QtCore.Qt.PenStyle.DotLine)))
        if math.isfinite(chart.center):
            plot.addItem(pg.InfiniteLine(pos=chart.center, angle=0, pen=pg.mkPen(_CENTRE, width=1.5),
                                         label="CL", labelOpts={"position": 0.015, "color": _CENTRE,
                                                                "anchors": [(0, 1), (0, 1)]}))
        # The limits are named at the right end inside the band, the centre line at the left.
        for level, name, anchor in ((chart.ucl, "UCL", (1, 0)), (chart.lcl, "LCL", (1, 1))):
            if math.isfinite(level):
                plot.addItem(pg.InfiniteLine(pos=level, angle=0,
                                             pen=pg.mkPen(_LIMIT, width=2, style=QtCore.Qt.PenStyle.DashLine),
                                             label=name, labelOpts={"position": 0.985, "color": _LIMIT,
                                                                    "anchors": [anchor, anchor]}))
        plot.addItem(pg.PlotDataItem(x, values, pen=pg.mkPen(_POINTS, width=1.5), symbol="o", symbolSize=7,
                                     symbolBrush=_POINTS, symbolPen=None))
        bad = sorted(chart.violations)
        if bad:
            self.flagged = [(float(x[i]), float(values[i]), list(chart.violations[i])) for i in bad]
            self.flag_item = pg.ScatterPlotItem([f[0] for f in self.flagged], [f[1] for f in self.flagged],
                                                symbol="d", size=17, brush=pg.mkBrush(_FLAG),
                                                pen=pg.mkPen("#FFFFFF", width=1.5))
            self.flag_item.setZValue(20)
            plot.addItem(self.flag_item)
            # Neighbours breaking the same rules share one label, right of the last of them.
            runs: list[list[tuple[float, float, list[int]]]] = []
            for f in self.flagged:
                if runs and f[0] - runs[-1][-1][0] <= 1 and f[2] == runs[-1][-1][2]:
                    runs[-1].append(f)
                else:
                    runs.append([f])
            right_third = x0 + 2 * values.size / 3
            for run in runs:
                fx, fy, rules = run[-1] if run[-1][0] < right_third else run[0]
                # Right of the point, or left of it in the chart's last third (room to the edge).
                anchor = (-0.08, 0.5) if fx < right_third else (1.08, 0.5)
                label = pg.TextItem("; ".join(spc.RULE_TEXT[r] for r in rules), color=_FLAG,
                                    anchor=anchor, fill=pg.mkBrush(0, 0, 0, 150))
                label.setZValue(10)
                label.setPos(fx, fy)
                plot.addItem(label)
        self.tick_labels = tick_labels
        self._set_ticks()
        finite = values[np.isfinite(values)]
        levels = [v for v in (chart.ucl, chart.lcl, chart.center) if math.isfinite(v)]
        lo = min([*finite, *levels]) if finite.size or levels else 0.0
        hi = max([*finite, *levels]) if finite.size or levels else 1.0
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        plot.setYRange(lo - pad, hi + pad, padding=0)
        plot.setXRange(-0.5, max(x0 + values.size, 1) - 0.5, padding=0.02)

    def _set_ticks(self) -> None:
        """Name every k-th point on the x axis: as many names as fit the chart's width."""
        axis = self.getAxis("bottom")
        labels = self.tick_labels
        if labels is None or not len(labels):
            axis.setTicks(None)
            return
        width = max(self.width() - 80, 100)
        name_px = QtGui.QFontMetrics(axis.font()).horizontalAdvance(max(labels, key=len)) + 24
        fit = max(1, min(MAX_TICK_LABELS, int(width // name_px)))
        step = max(1, math.ceil(len(labels) / fit))
        named = [(float(xi), str(t)) for k, (xi, t) in enumerate(zip(self.x, labels, strict=True)) if k % step == 0]
        bare = [(float(xi), "") for k, xi in enumerate(self.x) if k % step]
        axis.setTicks([named, bare])

    def resizeEvent(self, event: QtGui.QResizeEvent | None) -> None:
        super().resizeEvent(event)
        if getattr(self, "tick_labels", None) is not None:  # (pyqtgraph resizes during __init__)
            self._set_ticks()


class SpcView(QtWidgets.QWidget):
    """The SPC tab: metric and grouping choice, two control charts, the flagged points."""

    #: Double-click on an individual point's row: open that inspection.
    open_requested = QtCore.Signal(int)

    def __init__(self, db_provider: Callable[[], Any] | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.db_provider = db_provider
        self.entries: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._log_key: tuple[int, int] | None = None
        self.report: dict[str, Any] | None = None
        self.points: list[spc.Point] = []
        #: The charts on screen (top, bottom) and whether they are X̄–R.
        self.charts: tuple[spc.Chart | None, spc.Chart | None] = (None, None)
        self.grouped = False

        self.metric_box = QtWidgets.QComboBox()
        self.metric_box.setObjectName("spcMetric")
        self.metric_box.setMinimumWidth(320)
        self.metric_box.setToolTip("The metric to chart: any number the inspections in the log have")
        self.group_box = QtWidgets.QComboBox()
        self.group_box.setObjectName("spcGroup")
        for g in GROUPS:
            self.group_box.addItem(g, g)
        self.group_box.setToolTip("none: individuals and moving range; lot, line or day: X̄ and R of the subgroups")
        self.refresh_button = QtWidgets.QPushButton(theme.icon("open"), "Reload log")
        self.refresh_button.setToolTip("Read the log again")
        metric_label = QtWidgets.QLabel("Metric")
        metric_label.setBuddy(self.metric_box)
        group_label = QtWidgets.QLabel("Group by")
        group_label.setBuddy(self.group_box)
        head = QtWidgets.QHBoxLayout()
        head.addWidget(metric_label)
        head.addWidget(self.metric_box, 2)
        head.addWidget(group_label)
        head.addWidget(self.group_box)
        head.addWidget(self.refresh_button)
        self.summary = QtWidgets.QLabel("Open the SPC tab with a log to chart its inspections.")
        self.summary.setProperty("role", "hint")
        self.summary.setWordWrap(True)
        self.summary.setMinimumHeight(2 * self.summary.fontMetrics().lineSpacing() + 6)

        self.top = ControlChartPlot()
        self.bottom = ControlChartPlot()
        self.bottom.setXLink(self.top)
        self.table = QtWidgets.QTableWidget(0, 5)
        self.table.setObjectName("spcTable")
        self.table.setHorizontalHeaderLabels(["Chart", "Point", "Group", "Value", "Western Electric rule"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        for col in range(4):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.itemActivated.connect(self._row_activated)
        self.table.setMinimumHeight(80)

        charts = QtWidgets.QWidget()
        charts_layout = QtWidgets.QVBoxLayout(charts)
        charts_layout.setContentsMargins(0, 0, 0, 0)
        charts_layout.addWidget(self.top, 3)
        charts_layout.addWidget(self.bottom, 2)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(charts)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(head)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)

        self.metric_box.currentIndexChanged.connect(lambda _i: self.redraw())
        self.group_box.currentIndexChanged.connect(lambda _i: self.redraw())
        self.refresh_button.clicked.connect(lambda: self.refresh(force=True))

    # ------------------------------------------------------------------ data
    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        """Read the log's complete inspections (unless unchanged) and redraw."""
        db = self.db_provider() if self.db_provider is not None else None
        if db is None:
            self.set_entries([])
            self.summary.setText("No log: SPC charts the inspections filed in the log.")
            return
        from core.store import list_inspections

        try:
            rows = list_inspections(db, status="complete")
            key = (len(rows), int(rows[-1]["id"]) if rows else 0)
            if force or key != self._log_key:
                self._log_key = key
                self.set_entries(spc.load_results(db))
        except Exception as exc:  # noqa: BLE001 - shown, the station stays up
            self.summary.setText(f"Cannot read the log: {exc}")

    def set_entries(self, entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Chart these (log row, result) pairs (:func:`core.spc.load_results`)."""
        self.entries = list(entries)
        names = spc.metric_names(self.entries)
        current = self.metric
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        self.metric_box.addItems(names)
        if current in names:
            self.metric_box.setCurrentIndex(names.index(current))
        self.metric_box.blockSignals(False)
        self.redraw()

    @property
    def metric(self) -> str | None:
        return self.metric_box.currentText() or None

    @property
    def grouping(self) -> str:
        return str(self.group_box.currentData() or "none")

    def set_metric(self, name: str) -> None:
        i = self.metric_box.findText(name)
        if i < 0:
            raise ValueError(f"no metric {name!r} in the log")
        self.metric_box.setCurrentIndex(i)  # redraws when it changes

    def set_grouping(self, by: str) -> None:
        i = self.group_box.findData(by)
        if i < 0:
            raise ValueError(f"group by one of {', '.join(GROUPS)}, not {by!r}")
        self.group_box.setCurrentIndex(i)  # redraws when it changes

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        metric, by = self.metric, self.grouping
        self.table.setRowCount(0)
        if not metric:
            self.report, self.points, self.charts = None, [], (None, None)
            self.top.show_chart(None)
            self.bottom.show_chart(None)
            if self.entries is not None and self.db_provider is not None:
                self.summary.setText("No complete inspection with a metric in the log yet.")
            return
        self.points = spc.points_of(self.entries, metric, "lot" if by == "none" else by)
        self.report = rep = spc.spc_report(self.points, metric, "lot" if by == "none" else by)
        note = ""
        self.grouped = by != "none" and rep["xbar"] is not None
        unit = metric_unit(metric)
        in_unit = f" ({unit})" if unit else ""
        if self.grouped:
            top, bottom = rep["xbar"], rep["range"]
            ticks = [f"{name} (n={n})" for name, n in zip(top.labels, top.sizes, strict=True)]
            self.top.show_chart(top, 0, ticks, f"mean{in_unit}", zones=True)
            self.bottom.show_chart(bottom, 0, ticks, f"range{in_unit}")
        else:
            top, bottom = rep["individuals"], rep["moving_range"]
            if by != "none":
                note = (f" Grouping by {by} needs at least two {by}s of two or more inspections: "
                        "showing the individuals.")
            ticks = [p.cell_id or str(p.inspection_id) for p in self.points]
            self.top.show_chart(top, 0, ticks, f"value{in_unit}", zones=True)
            self.bottom.show_chart(bottom, 1, ticks[1:], f"moving range{in_unit}")
        self.charts = (top, bottom)
        self.bottom.getPlotItem().setLabel("bottom", f"{by} (filing order)" if self.grouped
                                           else "inspection (filing order)")
        flagged = self._fill_table()
        sigma = f", σ {_fmt(top.sigma)}" if math.isfinite(top.sigma) else ""
        self.summary.setText(
            f"{metric}: {rep['n']} inspection(s)" + (f" in {len(top.values)} {by}s" if self.grouped else "")
            + f"; centre {_fmt(top.center)}{sigma}, limits {_fmt(top.lcl)} … {_fmt(top.ucl)}; "
            + (f"{flagged} point(s) break a Western Electric rule." if flagged else "in control: no rule broken.")
            + note)

    def _fill_table(self) -> int:
        """One row per flagged point of the charts on screen; returns the number of rows."""
        rows = []
        by_label = {f"{p.inspection_id}:{p.cell_id}": p for p in self.points}
        grouped_view = self.grouping != "none"
        for chart in self.charts:
            if chart is None:
                continue
            for i, rules in sorted(chart.violations.items()):
                iid = None
                if chart.name in ("Xbar", "R"):  # a subgroup
                    point, group = f"{chart.sizes[i]} inspections", chart.labels[i]
                else:
                    p = by_label.get(chart.labels[i])
                    point = p.cell_id if p is not None else chart.labels[i]
                    group = p.group if p is not None and grouped_view else ""
                    if chart.name == "MR":  # the range between this point and the one before
                        before = by_label.get(self.charts[0].labels[i]) if self.charts[0] is not None else None
                        point = f"{before.cell_id if before is not None else '…'} → {point}"
                    elif p is not None:
                        iid = p.inspection_id
                rows.append((chart.name, point, group, float(chart.values[i]),
                             "; ".join(f"{r}: {spc.RULE_TEXT[r]}" for r in rules), iid))
        self.table.setColumnHidden(2, not grouped_view)
        self.table.setRowCount(len(rows))
        for r, (name, point, group, value, rules, iid) in enumerate(rows):
            cells = (_TITLES.get(name, name).split(" (")[0], point, group, _fmt(value), rules)
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if c == 0:
                    item.setData(QtCore.Qt.ItemDataRole.UserRole, iid)
                    item.setData(QtCore.Qt.ItemDataRole.UserRole + 1, name)
                if c == 4:
                    item.setForeground(QtGui.QColor(_FLAG))
                self.table.setItem(r, c, item)
        return len(rows)

    def flagged_rows(self) -> list[dict[str, Any]]:
        """The table's rows: chart (I, MR, Xbar, R), point, group, value, rules, inspection id."""
        out = []
        for r in range(self.table.rowCount()):
            first = self.table.item(r, 0)
            out.append({"chart": first.data(QtCore.Qt.ItemDataRole.UserRole + 1),
                        "inspection_id": first.data(QtCore.Qt.ItemDataRole.UserRole),
                        "point": self.table.item(r, 1).text(), "group": self.table.item(r, 2).text(),
                        "value": self.table.item(r, 3).text(), "rules": self.table.item(r, 4).text()})
        return out

    @QtCore.Slot(QtWidgets.QTableWidgetItem)
    def _row_activated(self, item: QtWidgets.QTableWidgetItem) -> None:
        iid = self.table.item(item.row(), 0).data(QtCore.Qt.ItemDataRole.UserRole)
        if iid is not None:
            self.open_requested.emit(int(iid))
