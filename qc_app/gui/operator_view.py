"""The operator station's panels: verdict banner, findings, recent inspections, queue, report.

Written for the line: no jargon, the verdict first and big (icon + word + colour), every
action a large button with a keyboard shortcut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from core import describe
from qc_app.gui import theme

#: Human names of the detectors (one place: :mod:`core.describe`).
DETECTOR_NAMES = describe.DETECTOR_LABELS


def _fmt_value(value: Any, unit: str = "", uncertainty: Any = None) -> str:
    """``"46 ± 9 µm"``: the value and, when the result gives it, its expanded uncertainty (k = 2)
    (:func:`core.describe.quantity`, as the report and the command line print it)."""
    return describe.quantity(value, unit, uncertainty)


class VerdictBanner(QtWidgets.QFrame):
    """PASS / FAIL / REVIEW, readable from two metres: icon, word, colour, and the reasons."""

    MAX_REASONS = 4

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("verdictBanner")
        self.state = "IDLE"
        self.icon = QtWidgets.QLabel()
        self.icon.setFixedSize(104, 104)
        self.icon.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.word = QtWidgets.QLabel()
        self.word.setObjectName("verdictWord")
        self.subtitle = QtWidgets.QLabel()
        self.subtitle.setObjectName("verdictSubtitle")
        self.subtitle.setWordWrap(True)
        self.reasons = QtWidgets.QLabel()
        self.reasons.setObjectName("verdictReasons")
        self.reasons.setWordWrap(True)
        self.reasons.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.reasons.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.reasons.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        head = QtWidgets.QHBoxLayout()
        head.setSpacing(16)
        head.addWidget(self.icon)
        words = QtWidgets.QVBoxLayout()
        words.setSpacing(0)
        words.addWidget(self.word)
        words.addWidget(self.subtitle)
        head.addLayout(words, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 12)
        layout.addLayout(head)
        layout.addWidget(self.reasons)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Minimum)
        self.set_state("IDLE")

    def set_state(self, state: str, subtitle: str = "", reasons: list[str] | None = None) -> None:
        """Show a verdict (PASS/FAIL/REVIEW) or a station state (IDLE, LOADED, RUNNING, ERROR,
        CANCELLED) with a subtitle and reasons."""
        self.state = state.upper()
        style = theme.verdict_style(self.state)
        self.setStyleSheet(
            f"QFrame#verdictBanner {{ background-color: {style.background}; border: 4px solid "
            f"{'#000000' if style.foreground == '#000000' else '#FFFFFF'}; border-radius: 10px; }}"
            f"QFrame#verdictBanner QLabel {{ color: {style.foreground}; background: transparent; }}")
        self.icon.setPixmap(theme.pixmap(style.icon, 96))
        self.word.setText(style.word)
        self._fit_word()
        self.word.setAccessibleName(f"verdict {style.word}")
        self.subtitle.setText(subtitle or style.hint)
        items = list(reasons or [])
        if not items and subtitle:
            items = [style.hint]
        shown = items[: self.MAX_REASONS]
        html = "".join(f"<li>{_escape(r)}</li>" for r in shown)
        if len(items) > len(shown):
            html += f"<li>… and {len(items) - len(shown)} more (see Findings)</li>"
        self.reasons.setText(f"<ul style='margin-left:-20px'>{html}</ul>" if html else "")
        self.reasons.setVisible(bool(html))
        self._fit_reasons()

    MAX_WORD_PX = 76

    def _fit_word(self) -> None:
        """The largest type (≤ 76 px) that shows the whole word in the space left by the icon."""
        available = max(self.width() - self.icon.width() - 60, 120)
        font = QtGui.QFont(self.word.font())
        size = self.MAX_WORD_PX
        while size > 28:
            font.setPixelSize(size)
            font.setBold(True)
            font.setLetterSpacing(QtGui.QFont.SpacingType.AbsoluteSpacing, 4)
            if QtGui.QFontMetrics(font).horizontalAdvance(self.word.text()) <= available:
                break
            size -= 2
        self.word.setStyleSheet(f"font-size: {size}px;")

    def _fit_reasons(self) -> None:
        """Keep room for every shown reason at the label's current width (word-wrapped rich
        text does not always report its height to the layout)."""
        width = self.reasons.width() if self.reasons.width() > 50 else max(self.width() - 40, 200)
        self.reasons.setMinimumHeight(max(self.reasons.heightForWidth(width), 0))

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_word()
        self._fit_reasons()

    def text(self) -> str:
        """Everything the banner says, as plain text (for tests and screen readers)."""
        return " | ".join([self.word.text(), self.subtitle.text(), self.reasons.text()])


def _escape(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def plain_reason(reason: str) -> str:
    """A reason without the rule's jargon prefix: "FAIL: … — message (finding C1)" → message."""
    text = reason
    if " — " in text:
        head, _, tail = text.partition(" — ")
        level = head.split(":", 1)[0].strip()
        text = f"{level}: {tail}" if level in ("FAIL", "REVIEW", "PASS") else tail
    return text


def banner_reasons(result: dict[str, Any]) -> list[str]:
    """The verdict's reasons for the banner: one per place, what, how much, where and which
    finding (:func:`core.describe.reasons`, the report's and the command line's too)."""
    out = []
    for r in describe.reasons(result):
        if r.finding_id is None:
            out.append(plain_reason(r.text))
            continue
        also = f" (also {', '.join(r.also)})" if r.also else ""
        out.append(f"{describe.SEVERITY_WORD.get(r.severity, r.severity)}: {r.label} {r.value} — {r.where} — "
                   f"{r.finding_id}{also}")
    return out


def _two_line_value(text: str) -> str:
    """``"72 ± 36 µm"`` → ``"72 µm\n± 36 µm"``: the uncertainty on the row's second line, so the
    value column stays narrow and the place beside it fits at 1440 × 900."""
    value, sep, rest = text.partition(" ± ")
    if not sep:
        return text
    unit = rest.split(" ", 1)[1] if " " in rest else ""
    return f"{value} {unit}".rstrip() + f"\n± {rest}"


class FindingsList(QtWidgets.QTreeWidget):
    """The findings of the shown inspection; choosing one emits ``finding_selected``."""

    finding_selected = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("findingsList")
        self.setColumnCount(3)
        self.setHeaderLabels(["Finding", "What · where", "Value"])
        self.headerItem().setToolTip(1, describe.SLICE_CONVENTION)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(False)
        self.setAlternatingRowColors(True)
        self.setIconSize(QtCore.QSize(30, 30))
        self.setWordWrap(False)
        self.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.header()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.findings: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {}
        self.currentItemChanged.connect(self._current_changed)

    def set_findings(self, findings: list[dict[str, Any]], result: dict[str, Any] | None = None) -> None:
        """List the findings, worst first: the name and the place on two lines, the value.

        ``result`` gives heights in mm (its voxel size) and the sentences' context."""
        self.blockSignals(True)
        self.clear()
        self.result = dict(result or {})
        self.findings = list(describe.ordered_findings(findings or []))
        for f in self.findings:
            sev = str(f.get("severity", "info"))
            loc = describe.finding_location(f, self.result)
            what = describe.finding_label(f)
            # The list's second line: slice, height and winding (the angle is in the tooltip).
            where = ", ".join(x for x in (loc.slice_text(), f"winding {loc.winding}" if loc.winding is not None
                                          else loc.roll_text()) if x)
            item = QtWidgets.QTreeWidgetItem([f"{f.get('id', '')}\n{describe.SEVERITY_WORD.get(sev, sev)}",
                                              f"{what}\n{where}" if where else what,
                                              _two_line_value(describe.value_text(f))])
            item.setData(2, QtCore.Qt.ItemDataRole.UserRole, describe.value_text(f))  # read in one line
            item.setIcon(0, theme.icon(theme.SEVERITY_ICONS.get(sev, "info.svg")))
            item.setToolTip(1, describe.finding_sentence(f, self.result) + "\n" + loc.text(span=True))
            item.setToolTip(0, describe.limit_phrase(f, self.result) or f.get("rule", ""))
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, f.get("id"))
            self.addTopLevelItem(item)
        self.blockSignals(False)

    def texts(self) -> list[tuple[str, str, str]]:
        """What each row says (id and severity, name and place, value), for tests and screen readers."""
        out = []
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            value = item.data(2, QtCore.Qt.ItemDataRole.UserRole) or item.text(2)
            out.append((item.text(0), item.text(1), str(value)))
        return out

    def select_id(self, finding_id: str) -> None:
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item.data(0, QtCore.Qt.ItemDataRole.UserRole) == finding_id:
                if item is self.currentItem():  # chosen again: go back to it (the view may have moved)
                    self._current_changed(item, None)
                else:
                    self.setCurrentItem(item)
                return

    def step(self, delta: int) -> None:
        """Select the next (delta=1) or previous (delta=-1) finding."""
        n = self.topLevelItemCount()
        if not n:
            return
        current = self.indexOfTopLevelItem(self.currentItem()) if self.currentItem() else -1
        self.setCurrentItem(self.topLevelItem((current + delta) % n))

    def _current_changed(self, current: QtWidgets.QTreeWidgetItem | None, _previous: Any) -> None:
        if current is None:
            return
        fid = current.data(0, QtCore.Qt.ItemDataRole.UserRole)
        finding = next((f for f in self.findings if f.get("id") == fid), None)
        if finding is not None:
            self.finding_selected.emit(finding)


class RecentList(QtWidgets.QTreeWidget):
    """The newest inspections in the log with their final verdicts; Enter opens one."""

    open_requested = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("recentList")
        self.setHeaderLabels(["#", "When (UTC)", "Cell", "Verdict", "Findings"])
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setIconSize(QtCore.QSize(26, 26))
        header = self.header()
        for col in (0, 1, 3, 4):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        self.itemActivated.connect(self._activated)
        self.rows: list[dict[str, Any]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows of :func:`core.store.list_inspections`, shown newest first."""
        self.clear()
        self.rows = list(reversed(rows))
        for row in self.rows:
            verdict = row.get("final_verdict") or row.get("verdict") or ""
            status = row.get("status") or ""
            shown = verdict if status == "complete" else status.upper()
            if row.get("override_verdict"):
                shown += " (overridden)"
            when = (row.get("finished_at") or row.get("started_at") or "")[5:16].replace("T", " ")
            item = QtWidgets.QTreeWidgetItem([str(row.get("id")), when, str(row.get("cell_id") or ""), shown,
                                              str(row.get("n_findings") if row.get("n_findings") is not None else "")])
            style = theme.verdict_style(verdict if status == "complete" else "ERROR")
            item.setIcon(3, theme.icon(style.icon))
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, int(row.get("id")))
            item.setToolTip(2, str(row.get("source") or ""))
            self.addTopLevelItem(item)

    def _activated(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        self.open_requested.emit(int(item.data(0, QtCore.Qt.ItemDataRole.UserRole)))


class QueuePanel(QtWidgets.QWidget):
    """The watched folder's queue: volumes waiting for the operator."""

    open_requested = QtCore.Signal(str)
    watch_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.folder_label = QtWidgets.QLabel("No folder watched.")
        self.folder_label.setProperty("role", "hint")
        self.folder_label.setWordWrap(True)
        self.watch_button = QtWidgets.QPushButton(theme.icon("watch"), "Watch folder…")
        self.watch_button.setToolTip("Choose the folder the scanner writes volumes to (Ctrl+Shift+W)")
        self.watch_button.clicked.connect(self.watch_requested)
        self.next_button = QtWidgets.QPushButton(theme.icon("run"), "Inspect next")
        self.next_button.setToolTip("Open and inspect the oldest volume in the queue (Ctrl+N)")
        self.next_button.clicked.connect(lambda: self.open_requested.emit(""))
        self.auto_box = QtWidgets.QCheckBox("Inspect new volumes automatically")
        self.list = QtWidgets.QListWidget()
        self.list.setObjectName("queueList")
        self.list.itemActivated.connect(lambda item: self.open_requested.emit(item.data(QtCore.Qt.ItemDataRole.UserRole)))
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.watch_button)
        buttons.addWidget(self.next_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 6, 4, 4)
        layout.addWidget(self.folder_label)
        layout.addLayout(buttons)
        layout.addWidget(self.auto_box)
        layout.addWidget(self.list, 1)

    def set_folder(self, folder: str) -> None:
        self.folder_label.setText(f"Watching {folder}" if folder else "No folder watched.")

    def set_pending(self, paths: list[str]) -> None:
        self.list.clear()
        for p in paths:
            item = QtWidgets.QListWidgetItem(Path(p).name)
            item.setToolTip(p)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, p)
            self.list.addItem(item)
        self.next_button.setEnabled(bool(paths))


class ReportPanel(QtWidgets.QWidget):
    """Generate, open and print the PDF report of the shown inspection."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.generate_button = QtWidgets.QPushButton(theme.icon("report"), "Report")
        self.generate_button.setToolTip("Write the PDF report and file it in the log (Ctrl+R)")
        self.open_button = QtWidgets.QPushButton(theme.icon("view"), "Open")
        self.open_button.setToolTip("Open the PDF report (Ctrl+Shift+R)")
        self.print_button = QtWidgets.QPushButton(theme.icon("print"), "Print")
        self.print_button.setToolTip("Print the PDF report (Ctrl+P)")
        for b in (self.generate_button, self.open_button, self.print_button):
            b.setIconSize(QtCore.QSize(28, 28))
        self.label = QtWidgets.QLabel("No report yet.")
        self.label.setProperty("role", "hint")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.generate_button)
        row.addWidget(self.open_button)
        row.addWidget(self.print_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.label)
        self.set_report(None, can_generate=False)

    def set_report(self, path: str | None, *, can_generate: bool, busy: bool = False) -> None:
        self.generate_button.setEnabled(can_generate and not busy)
        self.open_button.setEnabled(bool(path) and not busy)
        self.print_button.setEnabled(bool(path) and not busy)
        if busy:
            self.label.setText("Writing the report…")
        elif path:
            self.label.setText(f"Report: {path}")
        else:
            self.label.setText("No report yet." if can_generate else "Inspect a cell to report on it.")


class ShortcutHelp(QtWidgets.QDialog):
    """The keyboard shortcuts, generated from the window's actions."""

    def __init__(self, actions: list[QtGui.QAction], parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("cellqc — keyboard shortcuts")
        table = QtWidgets.QTableWidget(0, 2)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        for act in actions:
            keys = ", ".join(s.toString(QtGui.QKeySequence.SequenceFormat.NativeText) for s in act.shortcuts())
            if not keys:
                continue
            r = table.rowCount()
            table.insertRow(r)
            table.setItem(r, 0, QtWidgets.QTableWidgetItem(keys))
            table.setItem(r, 1, QtWidgets.QTableWidgetItem(act.text().replace("&", "")))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        close = QtWidgets.QPushButton("Close")
        close.clicked.connect(self.accept)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(close)
        self.resize(640, 720)
