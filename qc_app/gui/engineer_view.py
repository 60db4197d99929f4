"""The engineer's drill-down (role-gated): finding details against the recipe's limits,
verdict override with a reason (written to the audit log), the recipe viewer/editor with
validation, and the panels the ROI-planning and follow-up features fill.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from core import describe
from core.errors import CellQCError
from qc_app.gui import theme

#: The result's ``limits`` key of each detector (one place: :data:`core.describe.CHECKS`).
DETECTOR_LIMITS = {det: key for key, (det, _label, _definition) in describe.CHECKS.items()}
_SEVERITY_RANK = {"fail": 2, "review": 1, "info": 0}


def limit_status(value: Any, review: Any, fail: Any) -> str:
    """FAIL / REVIEW / OK of a value against its limits ("—" without a value)."""
    if value is None:
        return "—"
    v = abs(float(value))
    if fail is not None and v >= float(fail):
        return "FAIL"
    if review is not None and v >= float(review):
        return "REVIEW"
    return "OK"


def limits_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per check of the recipe (:func:`core.describe.check_rows`, the report's table):
    the worst finding of the rule's detector, its limits, the status its findings gave."""
    return [{"key": row.key, "detector": row.detector, "label": row.label, "value": row.value,
             "review": row.review, "fail": row.fail, "status": row.status, "finding_id": row.finding_id,
             "definition": row.definition, "raw_value": row.raw_value, "unit": row.unit}
            for row in describe.check_rows(result)]


def _status_item(status: str) -> QtWidgets.QTableWidgetItem:
    item = QtWidgets.QTableWidgetItem(status)
    style = {"FAIL": theme.VERDICT_STYLES["FAIL"], "REVIEW": theme.VERDICT_STYLES["REVIEW"],
             "OK": theme.VERDICT_STYLES["PASS"]}.get(status)
    if style is not None:
        item.setBackground(QtGui.QColor(style.background))
        item.setForeground(QtGui.QColor(style.foreground))
        item.setIcon(theme.icon(style.icon))
    font = item.font()
    font.setBold(True)
    item.setFont(font)
    return item


def _table(headers: list[str]) -> QtWidgets.QTableWidget:
    table = QtWidgets.QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class FindingDetails(QtWidgets.QWidget):
    """The chosen finding's measurements, and the inspection against the recipe's checks.

    Compact enough for 1440 × 900: one heading line, the two tables side by side with their
    headers as titles (no frames), rows of one text line.
    """

    ROW_HEIGHT = 26

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.title = QtWidgets.QLabel("Choose a finding in the list.")
        self.title.setProperty("role", "heading")
        self.title.setWordWrap(True)
        self.verdict_line = QtWidgets.QLabel("")
        self.verdict_line.setWordWrap(True)
        self.details = _table(["This finding", "Value"])
        self.limits = _table(["The recipe's check", "Result", "Worst value", "Review at", "Fail at"])
        header = self.limits.horizontalHeader()
        for c in range(5):
            header.setSectionResizeMode(c, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.limits.horizontalHeaderItem(0).setToolTip("Each rule of the recipe; hover a row for what it compares")
        details_header = self.details.horizontalHeader()
        details_header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Interactive)
        details_header.resizeSection(0, 190)
        for table in (self.limits, self.details):
            table.setMinimumHeight(4 * self.ROW_HEIGHT)
            table.verticalHeader().setDefaultSectionSize(self.ROW_HEIGHT)
            table.setWordWrap(False)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(3)
        layout.addWidget(self.title)
        layout.addWidget(self.verdict_line)
        layout.addWidget(self.details, 1)
        # The checks get a page of their own (the engineer panel's "Checks" tab): side by side
        # with the finding, neither fits 1440 px.
        self.checks_page = QtWidgets.QWidget()
        checks_note = QtWidgets.QLabel("Each rule of the recipe against this cell: the worst finding of its "
                                       "detector (the quantity the rule judges), its limits and the outcome. "
                                       "Hover a check for its definition.")
        checks_note.setProperty("role", "hint")
        checks_note.setWordWrap(True)
        checks_layout = QtWidgets.QVBoxLayout(self.checks_page)
        checks_layout.setContentsMargins(4, 2, 4, 2)
        checks_layout.addWidget(checks_note)
        checks_layout.addWidget(self.limits, 1)
        self.result: dict[str, Any] | None = None

    def set_result(self, result: dict[str, Any] | None) -> None:
        self.result = result
        self.limits.setRowCount(0)
        self.details.setRowCount(0)
        self.title.setText("Choose a finding in the list." if result else "No inspection shown.")
        self.verdict_line.setText("")
        self.verdict_line.setVisible(False)
        if not result:
            return
        for row in describe.check_rows(result):
            r = self.limits.rowCount()
            self.limits.insertRow(r)
            value = row.value + (f" ({row.finding_id})" if row.finding_id else "")
            for c, text in ((0, row.label), (2, value), (3, row.review), (4, row.fail)):
                item = QtWidgets.QTableWidgetItem(text)
                item.setData(QtCore.Qt.ItemDataRole.UserRole, row.detector)
                item.setToolTip(row.definition)
                self.limits.setItem(r, c, item)
            self.limits.setItem(r, 1, _status_item(row.status))

    def check_texts(self) -> list[list[str]]:
        """What the checks table says, row by row (for tests and screen readers)."""
        return [[self.limits.item(r, c).text() if self.limits.item(r, c) else "" for c in range(5)]
                for r in range(self.limits.rowCount())]

    def show_finding(self, finding: dict[str, Any] | None) -> None:
        self.details.setRowCount(0)
        if finding is None or self.result is None:
            return
        det = finding.get("detector", "")
        sev = str(finding.get("severity", ""))
        self.title.setText(f"Finding {finding.get('id')}: {describe.finding_label(finding)} — "
                           f"{describe.SEVERITY_WORD.get(sev, sev)}")
        limit = describe.limit_phrase(finding, self.result)
        self.verdict_line.setText(f"{describe.finding_sentence(finding, self.result)}."
                                  + (f" Value {describe.value_text(finding)}; {limit}." if limit else ""))
        self.verdict_line.setVisible(True)
        loc = describe.finding_location(finding, self.result)
        rows = [("What", describe.finding_label(finding)),
                ("Value", describe.value_text(finding)),
                ("Limit", limit or "—"),
                ("Slice", loc.slice_text() or "—"),
                ("Spans", loc.span_text() or "one slice"),
                ("Winding, angle", loc.roll_text() or "—")]
        if finding.get("related"):
            rows.append(("Also seen as", ", ".join(str(x) for x in finding["related"])))
        skip = {"id", "detector", "severity", "value", "unit", "message", "rule", "winding", "angle_deg",
                "uncertainty", "uncertainty_k", "related", "primary"}
        for key, value in finding.items():
            if key in skip:
                continue
            if isinstance(value, list):
                text = ", ".join(describe.number(v) for v in value)
            elif isinstance(value, float):
                text = describe.number(value, describe.metric_label(key)[1])
            else:
                text = "—" if value is None else str(value)
            rows.append((key.replace("_", " "), text))
        for label, text in rows:
            r = self.details.rowCount()
            self.details.insertRow(r)
            self.details.setItem(r, 0, QtWidgets.QTableWidgetItem(label))
            value_item = QtWidgets.QTableWidgetItem(text)
            value_item.setToolTip(text)
            self.details.setItem(r, 1, value_item)
        self.details.resizeColumnToContents(0)
        for r in range(self.limits.rowCount()):
            item = self.limits.item(r, 0)
            bold = item.data(QtCore.Qt.ItemDataRole.UserRole) == det
            for c in (0, 2, 3, 4):
                cell = self.limits.item(r, c)
                font = cell.font()
                font.setBold(bold)
                cell.setFont(font)


class OverridePanel(QtWidgets.QWidget):
    """Override the shown inspection's verdict with a reason (engineer/admin; audited)."""

    overridden = QtCore.Signal(str, str, str)  # new verdict, reason, user

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.db = None
        self.inspection_id: int | None = None
        self.current = QtWidgets.QLabel("No inspection from the log is shown.")
        self.current.setProperty("role", "heading")
        self.current.setWordWrap(True)
        self.verdict = QtWidgets.QComboBox()
        self.verdict.addItems(["PASS", "FAIL", "REVIEW"])
        for i, name in enumerate(["PASS", "FAIL", "REVIEW"]):
            self.verdict.setItemIcon(i, theme.icon(theme.VERDICT_STYLES[name].icon))
        self.reason = QtWidgets.QPlainTextEdit()
        self.reason.setPlaceholderText("Why (required), e.g. 'ROI scan at 1.2 µm shows the void is a "
                                       "reconstruction artifact'")
        # Overrides are signed by the engineer who logged in (Engineer mode…), never by a
        # name typed here: the field only shows who signs; apply() uses `signer`, not its text.
        self.signer: str | None = None
        self.user = QtWidgets.QLineEdit("")
        self.user.setReadOnly(True)
        self.user.setPlaceholderText("log in with Engineer mode… to override")
        self.user.setToolTip("The engineer who logged in; the override is written to the audit log under this name")
        self.apply_button = QtWidgets.QPushButton("Override verdict")
        self.apply_button.clicked.connect(self.apply)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.history = _table(["When (UTC)", "From", "To", "By", "Reason"])
        self.reason.setMaximumHeight(90)
        form = QtWidgets.QFormLayout()
        form.addRow("New verdict", self.verdict)
        form.addRow("Reason", self.reason)
        user_row = QtWidgets.QHBoxLayout()
        user_row.addWidget(self.user, 1)
        user_row.addWidget(self.apply_button)
        form.addRow("User", user_row)
        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.current)
        left.addLayout(form)
        left.addWidget(self.status)
        left.addStretch(1)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(QtWidgets.QLabel("Overrides of this inspection (also in the audit log):"))
        right.addWidget(self.history, 1)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addLayout(left, 3)
        layout.addLayout(right, 2)
        self._update_enabled()

    def set_signer(self, user: str | None) -> None:
        """The logged-in engineer/admin who signs overrides (None: nobody, overrides refused)."""
        self.signer = user or None
        self.user.setText(self.signer or "")
        self._update_enabled()

    def set_case(self, db: Any, inspection_id: int | None, verdict: str | None, final: str | None) -> None:
        self.db, self.inspection_id = db, inspection_id
        if inspection_id is None or db is None:
            self.current.setText("The shown inspection is not in a log; it cannot be overridden.")
        else:
            text = f"Inspection #{inspection_id}: automatic verdict {verdict}"
            if final and final != verdict:
                text += f", now {final} after override"
            self.current.setText(text + ".")
        self.status.setText("")
        self._refresh_history()
        self._update_enabled()

    def _update_enabled(self) -> None:
        ok = self.db is not None and self.inspection_id is not None
        for w in (self.verdict, self.reason, self.user):
            w.setEnabled(ok)
        self.apply_button.setEnabled(ok and self.signer is not None)

    def _refresh_history(self) -> None:
        self.history.setRowCount(0)
        if self.db is None or self.inspection_id is None:
            return
        from core.store import overrides_for

        for row in overrides_for(self.db, self.inspection_id):
            r = self.history.rowCount()
            self.history.insertRow(r)
            for c, key in enumerate(["created_at", "old_verdict", "new_verdict", "user", "reason"]):
                text = str(row.get(key) or "")
                text = text[:19].replace("T", " ") if key == "created_at" else text
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(str(row.get(key) or ""))
                self.history.setItem(r, c, item)
        self.history.resizeColumnsToContents()

    @QtCore.Slot()
    def apply(self) -> bool:
        """Write the override, signed by the logged-in user; shows the one-line refusal."""
        from core.store.users import override_as

        new = self.verdict.currentText()
        reason = self.reason.toPlainText().strip()
        user = self.signer
        try:
            if not user:
                from core.store.users import PermissionDenied

                raise PermissionDenied("override", "log in first (Engineer mode…, Ctrl+E)")
            if self.db is None or self.inspection_id is None:
                raise CellQCError("the shown inspection is not in a log")
            # The login checked the password; the role and "still active" are checked again now.
            override_as(self.db, int(self.inspection_id), new, reason, user)
        except CellQCError as exc:
            self._refused(f"Not overridden: {exc}")
            return False
        except sqlite3.Error as exc:  # e.g. the log's trigger refusing a disabled user
            self._refused(f"Not overridden: {exc}")
            return False
        self.status.setProperty("role", "status-ok")
        self.status.setText(f"Verdict set to {new} by {user}; written to the audit log.")
        _restyle(self.status)
        self.reason.clear()
        self._refresh_history()
        self.overridden.emit(new, reason, user)
        return True

    def _refused(self, text: str) -> None:
        self.status.setProperty("role", "status-error")
        self.status.setText(text)
        _restyle(self.status)


def _restyle(widget: QtWidgets.QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def user_recipes_dir() -> Path:
    from qc_app.commands.base import cellqc_home

    return cellqc_home() / "recipes"


class RecipeEditor(QtWidgets.QWidget):
    """View and edit inspection recipes (TOML) with validation before they can be used."""

    recipe_activated = QtCore.Signal(str)  # name or path

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        from core.recipe import available_recipes

        self.path: Path | None = None
        self.validated = False
        self.db: Any = None
        self.signer: str | None = None
        self.audited = False  # a stand-alone editor; the main window sets its log
        self.choice = QtWidgets.QComboBox()
        self.choice.addItems(available_recipes())
        self.choice.currentTextChanged.connect(self.load_name)
        self.open_button = QtWidgets.QPushButton("Open file…")
        self.open_button.clicked.connect(self._open_file)
        self.editor = QtWidgets.QPlainTextEdit()
        self.editor.setObjectName("recipeEditor")
        self.editor.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.textChanged.connect(self._edited)
        self.validate_button = QtWidgets.QPushButton("Validate")
        self.validate_button.clicked.connect(self.validate)
        self.save_button = QtWidgets.QPushButton("Save as…")
        self.save_button.clicked.connect(self._save_dialog)
        self.use_button = QtWidgets.QPushButton("Use for inspections")
        self.use_button.setToolTip("Inspections from now on use this recipe (saved and valid)")
        self.use_button.clicked.connect(self.activate)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.active = QtWidgets.QLabel("")
        self.active.setProperty("role", "hint")
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Recipe"))
        top.addWidget(self.choice, 1)
        for b in (self.open_button, self.validate_button, self.save_button, self.use_button):
            top.addWidget(b)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.active)
        layout.addWidget(self.editor, 1)
        if self.choice.count():
            self.load_name(self.choice.currentText())

    def set_active(self, name: str) -> None:
        self.active.setText(f"Inspections use: {name}")

    def set_signer(self, db: Any, user: str | None, *, audited: bool = True) -> None:
        """The log and the logged-in engineer/admin: a saved change is filed with its diff under
        this user (:func:`core.store.users.record_recipe_change`) before the file is written.

        ``audited=False`` (a station without a log) saves plain files; with ``audited`` and no
        open log, nothing is saved.
        """
        self.db, self.signer, self.audited = db, (user or None), audited

    def load_name(self, name: str) -> None:
        from core.recipe import resolve_recipe_path

        if name:
            self.load_path(resolve_recipe_path(name))

    def load_path(self, path: str | Path) -> None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            self._say(False, f"{path}: cannot read: {exc.strerror or exc}")
            return
        self.path = path
        self.editor.blockSignals(True)
        self.editor.setPlainText(text)
        self.editor.blockSignals(False)
        self.validate()

    def _open_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a recipe", str(user_recipes_dir()),
                                                        "Recipes (*.toml)")
        if path:
            self.load_path(path)

    def _edited(self) -> None:
        self.validated = False
        self._say(None, "Edited: validate before saving or using it.")

    def _say(self, ok: bool | None, text: str) -> None:
        self.status.setProperty("role", {True: "status-ok", False: "status-error", None: "hint"}[ok])
        self.status.setText(text)
        _restyle(self.status)

    @QtCore.Slot()
    def validate(self) -> bool:
        """Parse and check the editor's TOML like ``load_recipe`` does; report one line."""
        from core.recipe import parse_recipe_toml, recipe_from_dict

        source = str(self.path) if self.path else "recipe"
        try:
            data = parse_recipe_toml(self.editor.toPlainText(), source)
            recipe = recipe_from_dict(data, source=source)
        except CellQCError as exc:
            self.validated = False
            self._say(False, f"Not valid: {exc}")
            return False
        self.validated = True
        self._say(True, f"Valid: recipe {recipe.name}, detectors {', '.join(recipe.detectors)}.")
        return True

    def _save_dialog(self) -> None:
        if not self.validate():
            return
        folder = user_recipes_dir()
        folder.mkdir(parents=True, exist_ok=True)
        suggested = folder / ((self.path.stem if self.path else "recipe") + "-edited.toml")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the recipe", str(suggested), "Recipes (*.toml)")
        if path:
            self.save_to(path)

    def save_to(self, path: str | Path) -> bool:
        """Validate and write the recipe to ``path`` (never over a shipped recipe)."""
        from core.recipe import RECIPES_DIR

        if not self.validate():
            return False
        path = Path(path)
        if path.resolve().parent == RECIPES_DIR.resolve():
            self._say(False, f"{path}: the shipped recipes are read-only; save a copy elsewhere.")
            return False
        text = self.editor.toPlainText()
        change_id = None
        try:
            from core.store.users import save_recipe

            old_text = path.read_text(encoding="utf-8") if path.is_file() else None
            if self.audited and self.db is None:
                self._say(False, "Not saved: the log is not available, and recipe changes are audited there.")
                return False
            if self.db is not None and old_text != text and not self.signer:
                self._say(False, "Not saved: log in (Engineer mode…, Ctrl+E) to change recipes.")
                return False
            # filed first, under the logged-in user: a change that cannot be audited is not made
            change_id = save_recipe(path, text, old_text=old_text, db=self.db, user=self.signer)
        except OSError as exc:
            self._say(False, f"{path}: cannot write: {exc.strerror or exc}")
            return False
        except CellQCError as exc:
            self._say(False, f"Not saved: {exc}")
            return False
        self.path = path
        audit = f" (recipe change {change_id}, by {self.signer}, in the audit log)" if change_id else ""
        self._say(True, f"Saved {path}{audit}.")
        return True

    @QtCore.Slot()
    def activate(self) -> bool:
        """Use the shown recipe for the next inspections (it must be saved and valid)."""
        from core.recipe import load_recipe

        if not self.validate() or self.path is None:
            return False
        if self.path.read_text(encoding="utf-8") != self.editor.toPlainText():
            self._say(False, "Save the edited recipe first (Save as…), then use it.")
            return False
        try:
            recipe = load_recipe(self.path)
        except CellQCError as exc:
            self._say(False, f"Not valid: {exc}")
            return False
        self._say(True, f"Inspections now use {recipe.name} ({self.path}).")
        self.recipe_activated.emit(str(self.path))
        return True


class RowsPanel(QtWidgets.QWidget):
    """A read-only table of log rows (ROI plans, follow-ups) with a note above it.

    ``columns`` are (header, function(row) -> text); :meth:`set_rows` fills the table.
    """

    def __init__(self, text: str, columns: list[tuple[str, Any]], parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.note = QtWidgets.QLabel(text)
        self.note.setWordWrap(True)
        self.note.setProperty("role", "hint")
        self.columns = columns
        self.table = _table([h for h, _ in columns])
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.table.setRowCount(0)
        for row in rows:
            r = self.table.rowCount()
            self.table.insertRow(r)
            for c, (_, get) in enumerate(self.columns):
                try:
                    text = get(row)
                except Exception:  # noqa: BLE001 - a row of another shape: show what we can
                    text = ""
                item = QtWidgets.QTableWidgetItem("" if text is None else str(text))
                item.setToolTip(item.text())
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()


def _json(row: dict[str, Any], key: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(row.get(key) or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


ROI_COLUMNS = [
    ("#", lambda r: r["id"]),
    ("state", lambda r: r["status"]),
    ("priority", lambda r: r["priority"]),
    ("findings", lambda r: r["findings"]),
    ("where (centre)", lambda r: r["where"]),
    ("field of view", lambda r: r["fov"]),
    ("voxel", lambda r: r["voxel"]),
    ("scan", lambda r: r["scan"]),
    ("note", lambda r: r.get("note")),
]


def roi_rows(rows: list[dict[str, Any]], result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Log rows of ``roi_requests`` as the report's ROI table shows them (:func:`core.describe.roi_plan_rows`)."""
    decoded = [{**row, "plan": _json(row, "plan_json")} for row in rows]
    return [{**shown, "note": row.get("note")}
            for shown, row in zip(describe.roi_plan_rows(decoded, result or {}), rows, strict=True)]


FOLLOWUP_COLUMNS = [
    ("#", lambda r: r["id"]),
    ("kind", lambda r: r.get("kind")),
    ("imported (UTC)", lambda r: str(r.get("imported_at") or "")[:16].replace("T", " ")),
    ("source", lambda r: Path(str(r.get("source") or "")).name),
    ("ROI request", lambda r: r.get("roi_request_id")),
    ("note", lambda r: r.get("note")),
]


def log_rows(db: Any, table: str, cell_id: str) -> list[dict[str, Any]]:
    """Rows of ``roi_requests`` or ``followups`` for one cell (empty when the log has none)."""
    if db is None or table not in ("roi_requests", "followups") or not cell_id:
        return []
    try:
        if table == "roi_requests":
            from core.roi.queue import list_requests

            return sorted(list_requests(db, cell_id=cell_id), key=lambda row: row["id"])
        from core.followup.records import list_followups

        return list_followups(db, cell_id)
    except Exception:  # noqa: BLE001 - an older log without the table
        return []


class EngineerPanel(QtWidgets.QTabWidget):
    """The drill-down tabs: Finding, Checks, Override, Recipe, ROI plans, Follow-up."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("engineerPanel")
        self.finding = FindingDetails()
        self.override = OverridePanel()
        self.recipe = RecipeEditor()
        self.checks = self.finding.checks_page
        self.roi = RowsPanel(
            "ROI local-tomography requests of this cell from the log: which flagged regions are to be "
            "rescanned at high resolution, their field of view and state. Plan them with "
            "`cellqc roi plan INSPECTION_ID`; this panel only lists them.", ROI_COLUMNS)
        self.followup = RowsPanel(
            "Synchrotron follow-up results of this cell imported into the log (nano holotomography, "
            "Ni K-edge XANES). Import them with `cellqc followup import`; their plots are in the PDF "
            "report. This panel only lists them.", FOLLOWUP_COLUMNS)
        # Each page scrolls, so the panel can be short and leave the viewer its room.
        for page, title in ((self.finding, "Finding"), (self.checks, "Checks"), (self.override, "Override"),
                            (self.recipe, "Recipe"), (self.roi, "ROI plans"), (self.followup, "Follow-up")):
            self.addTab(_scrolling(page), title)
        self.setMinimumHeight(160)

    def set_cell(self, db: Any, cell_id: str | None, result: dict[str, Any] | None = None) -> None:
        """List the cell's ROI requests and follow-ups from the log (heights with ``result``'s
        voxel size)."""
        self.roi.set_rows(roi_rows(log_rows(db, "roi_requests", cell_id or ""), result))
        self.followup.set_rows(log_rows(db, "followups", cell_id or ""))
        self.setTabText(4, f"ROI plans ({self.roi.table.rowCount()})" if self.roi.table.rowCount() else "ROI plans")
        self.setTabText(5, f"Follow-up ({self.followup.table.rowCount()})" if self.followup.table.rowCount()
                        else "Follow-up")

    def setCurrentWidget(self, widget: QtWidgets.QWidget) -> None:  # noqa: N802 - Qt's name
        """Select the tab of a page (the pages sit in scroll areas)."""
        for i in range(self.count()):
            area = super().widget(i)
            if area is widget or (isinstance(area, QtWidgets.QScrollArea) and area.widget() is widget):
                self.setCurrentIndex(i)
                return


def _scrolling(page: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    area = QtWidgets.QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    area.setWidget(page)
    return area
