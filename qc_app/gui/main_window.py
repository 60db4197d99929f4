"""The workstation's main window: operator station + viewer + (role-gated) engineer panel.

The window is a view: the case it shows and the person at the station are a Qt-free
:class:`qc_app.gui.case_model.CaseModel` (``window.case``) that it observes; the window's
``result``, ``role``, ``signer``… read and write that model. Everything slow — reading a volume, the inspection, the PDF report — runs in a
:class:`qc_app.gui.worker.Task` in its own QThread; the UI thread only shows results.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from qc_app.gui import theme
from qc_app.gui.case_model import ROLES, CaseModel, safe_name  # noqa: F401 - ROLES: this module's name too
from qc_app.gui.engineer_view import EngineerPanel
from qc_app.gui.hotfolder import FolderQueue
from qc_app.gui.operator_view import (
    FindingsList,
    QueuePanel,
    RecentList,
    ReportPanel,
    ShortcutHelp,
    VerdictBanner,
    banner_reasons,
)
from qc_app.gui.viewer import MapView, VolumeViewer
from qc_app.gui.worker import Task, TaskRunner

#: Default window size (the headless screenshot's size).
DEFAULT_SIZE = (1440, 900)
RECENT_ROWS = 50
_safe_name = safe_name  # the older private name

#: Attributes of the window that are the case model's state (read and written through).
_CASE_STATE = ("volume_path", "volume", "inspection", "result", "inspection_id", "final_verdict",
               "report_path", "last_outcome", "role", "signer", "operator", "station_operator",
               "login_name")


def _case_attribute(name: str) -> property:
    return property(lambda self: getattr(self.case, name),
                    lambda self, value: setattr(self.case, name, value),
                    doc=f"``self.case.{name}`` (:class:`~qc_app.gui.case_model.CaseModel`).")


class MainWindow(QtWidgets.QMainWindow):
    """The cellqc workstation."""

    #: After an inspection ends: PASS, FAIL, REVIEW, ERROR or CANCELLED.
    outcome = QtCore.Signal(str)
    #: After a volume load attempt: True when it is shown.
    volume_loaded = QtCore.Signal(bool)
    #: After a report attempt: its path, or "" when it failed.
    report_written = QtCore.Signal(str)

    def __init__(self, *, db_path: str | Path | None = None, recipe: str | None = None,
                 operator: str | None = None, auto_report: bool = False,
                 reports_dir: str | Path | None = None, dialogs: bool = True, login_name: str = ""):
        """The window starts in operator mode; engineer mode needs a login
        (:meth:`switch_role_dialog` or :meth:`login_engineer`).

        ``operator`` is the name filed with inspections while nobody is logged in;
        ``login_name`` is the user name the login dialog starts with.
        """
        super().__init__()
        self.case = CaseModel(operator=operator, login_name=login_name)
        self.db_path = Path(db_path) if db_path else None
        self.reports_dir = Path(reports_dir) if reports_dir else (
            self.db_path.parent / "reports" if self.db_path else Path.cwd() / "cellqc-reports")
        self.recipe = recipe
        self.auto_report = auto_report
        self.dialogs = dialogs
        self._db = None
        self.runner = TaskRunner(self)
        self.load_task: Task | None = None
        self.inspect_task: Task | None = None
        self.report_task: Task | None = None
        self._run_after_load = False
        self.last_error: str | None = None
        self.error_box: QtWidgets.QMessageBox | None = None
        self.queue = FolderQueue(self)
        self.setWindowTitle("cellqc — cell inspection")
        self.setWindowIcon(theme.icon("cellqc"))
        self.setAcceptDrops(True)
        self._build()
        self._build_actions()
        self.case.observe(self._case_changed)
        self.set_role("operator")
        self.resize(*DEFAULT_SIZE)
        self._show_idle()
        self.refresh_recent()
        QtCore.QTimer.singleShot(0, self.cell_id.setFocus)

    # ================================================================== layout
    def _build(self) -> None:
        # --- top bar: barcode, open, inspect, cancel, progress
        logo = QtWidgets.QLabel()
        logo.setPixmap(theme.pixmap("cellqc", 44))
        id_label = QtWidgets.QLabel("Cell ID")
        id_label.setProperty("role", "heading")
        self.cell_id = QtWidgets.QLineEdit()
        self.cell_id.setObjectName("cellIdField")
        self.cell_id.setPlaceholderText("scan barcode…")
        self.cell_id.setMinimumWidth(290)
        self.cell_id.setToolTip("Scan the cell's barcode (or type it) and press Enter (F2 jumps here)")
        self.cell_id.setClearButtonEnabled(True)
        self.cell_id.setAcceptDrops(False)  # a dropped file opens; it is not typed into the ID
        self.cell_id.returnPressed.connect(self.submit_cell_id)
        id_label.setBuddy(self.cell_id)
        self.open_button = QtWidgets.QPushButton(theme.icon("open"), "Open…")
        self.open_button.setToolTip("Open a volume file (Ctrl+O), or drop it on the window")
        self.run_button = QtWidgets.QPushButton(theme.icon("run"), "Inspect")
        self.run_button.setProperty("accent", "run")
        self.run_button.setToolTip("Inspect the open volume (F5)")
        self.cancel_button = QtWidgets.QPushButton(theme.icon("cancel"), "Cancel")
        self.cancel_button.setProperty("accent", "cancel")
        self.cancel_button.setToolTip("Stop the running inspection (Esc)")
        for b in (self.open_button, self.run_button, self.cancel_button):
            b.setIconSize(QtCore.QSize(26, 26))
            b.setMinimumWidth(108)
        self.open_button.clicked.connect(self.open_dialog)
        self.run_button.clicked.connect(self.run_inspection)
        self.cancel_button.clicked.connect(self.cancel_inspection)
        self.voxel = QtWidgets.QLineEdit()
        self.voxel.setPlaceholderText("from file")
        # Wide enough for an anisotropic voxel, e.g. "67.94,33.97,33.97" (z,y,x), whole.
        self.voxel.setMinimumWidth(self.voxel.fontMetrics().horizontalAdvance("67.94,33.97,33.97") + 24)
        self.voxel.setToolTip("Voxel size in µm, when the file does not say (one number or z,y,x)")
        voxel_label = QtWidgets.QLabel("Voxel µm")
        voxel_label.setBuddy(self.voxel)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.progress.setMinimumWidth(170)
        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(8, 6, 8, 6)
        top.setSpacing(10)
        for w in (logo, id_label):
            top.addWidget(w)
        top.addWidget(self.cell_id, 2)
        top.addWidget(self.open_button)
        top.addWidget(self.run_button)
        top.addWidget(self.cancel_button)
        top.addWidget(voxel_label)
        top.addWidget(self.voxel)
        top.addWidget(self.progress, 3)
        top_widget = QtWidgets.QWidget()
        top_widget.setLayout(top)

        # --- left: banner, findings / recent / queue, report
        self.banner = VerdictBanner()
        self.findings = FindingsList()
        self.findings.finding_selected.connect(self.select_finding)
        self.recent = RecentList()
        self.recent.open_requested.connect(self.open_from_log)
        self.queue_panel = QueuePanel()
        self.queue_panel.watch_requested.connect(self.watch_dialog)
        self.queue_panel.open_requested.connect(self._queue_open)
        self.queue.added.connect(self._queue_added)
        self.queue.folder_changed.connect(self.queue_panel.set_folder)
        self.queue_panel.set_pending([])
        self.left_tabs = QtWidgets.QTabWidget()
        self.left_tabs.addTab(self.findings, "Findings")
        self.left_tabs.addTab(self.recent, "Recent")
        queue_area = QtWidgets.QScrollArea()  # scrolls when the window is short
        queue_area.setWidgetResizable(True)
        queue_area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        queue_area.setWidget(self.queue_panel)
        self.left_tabs.addTab(queue_area, "Queue")
        self.report_panel = ReportPanel()
        self.report_panel.generate_button.clicked.connect(self.generate_report)
        self.report_panel.open_button.clicked.connect(self.open_report)
        self.report_panel.print_button.clicked.connect(self.print_report)
        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(6, 2, 6, 6)
        left_layout.addWidget(self.banner)
        left_layout.addWidget(self.left_tabs, 1)
        left_layout.addWidget(self.report_panel)
        left.setMinimumWidth(400)

        # --- right: viewer and map; engineer panel below (role-gated)
        self.viewer = VolumeViewer()
        self.viewer.finding_clicked.connect(self.findings.select_id)
        self.viewer.slice_changed.connect(self._slice_changed)
        self.map_view = MapView()
        self.view_tabs = QtWidgets.QTabWidget()
        self.view_tabs.addTab(self.viewer, "Slices")
        self.view_tabs.addTab(self.map_view, "Electrode map")
        # --- SPC tab (qc_app/gui/spc_view.py): control charts over the log, read when shown
        from qc_app.gui.spc_view import SpcView

        self.spc_view = SpcView(self.db)
        self.spc_view.open_requested.connect(self.open_from_log)
        self.view_tabs.addTab(self.spc_view, "SPC")
        self.engineer = EngineerPanel()
        self.engineer.override.overridden.connect(self._overridden)
        self.engineer.recipe.recipe_activated.connect(self.set_recipe)
        self.engineer.recipe.set_active(self.recipe or "auto (chosen from the can)")
        self.right_split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.right_split.addWidget(self.view_tabs)
        self.right_split.addWidget(self.engineer)
        self.right_split.setStretchFactor(0, 3)
        self.right_split.setStretchFactor(1, 2)
        self.right_split.setChildrenCollapsible(False)

        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.right_split)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([560, 880])  # the findings list's second line (slice, z, winding) whole at 1440 px
        split.setChildrenCollapsible(False)

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(top_widget)
        layout.addWidget(split, 1)
        self.setCentralWidget(central)

        # --- status bar
        self.log_label = QtWidgets.QLabel()
        self.recipe_label = QtWidgets.QLabel()
        self.role_label = QtWidgets.QLabel()
        for w in (self.recipe_label, self.log_label, self.role_label):
            self.statusBar().addPermanentWidget(w)
        self._update_status_labels()

    def _build_actions(self) -> None:
        """Every operator action as a QAction with a shortcut, listed in the menus and F1."""
        A = QtGui.QAction
        K = QtGui.QKeySequence

        def act(text: str, keys: list[Any], slot: Any, icon: str | None = None) -> QtGui.QAction:
            a = A(theme.icon(icon), text, self) if icon else A(text, self)
            seqs: list[QtGui.QKeySequence] = []
            for k in keys:
                seq = K(k)
                if not seq.isEmpty() and seq not in seqs:
                    seqs.append(seq)
            a.setShortcuts(seqs)
            a.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(slot)
            self.addAction(a)
            return a

        self.act_focus_id = act("Scan / type the cell ID", ["F2", "Ctrl+L"], self.focus_cell_id)
        self.act_open = act("&Open volume…", [K.StandardKey.Open], self.open_dialog, "open")
        self.act_open_folder = act("Open folder of TIFF &slices…", ["Ctrl+Shift+O"], self.open_folder_dialog)
        self.act_run = act("&Inspect", ["F5", "Ctrl+Return"], self.run_inspection, "run")
        self.act_cancel = act("&Cancel inspection", ["Esc"], self.cancel_inspection, "cancel")
        self.act_report = act("Write &report", ["Ctrl+R"], self.generate_report, "report")
        self.act_open_report = act("Open report", ["Ctrl+Shift+R"], self.open_report, "view")
        self.act_print = act("&Print report", [K.StandardKey.Print], self.print_report, "print")
        self.act_next = act("Inspect &next in queue", ["Ctrl+N"], lambda: self._queue_open(""))
        self.act_watch = act("&Watch folder…", ["Ctrl+Shift+W"], self.watch_dialog, "watch")
        self.act_refresh = act("Refresh recent inspections", ["F9"], self.refresh_recent)
        self.act_next_finding = act("Next finding", ["F3"], lambda: self.findings.step(1))
        self.act_prev_finding = act("Previous finding", ["Shift+F3"], lambda: self.findings.step(-1))
        self.act_tab_findings = act("Show findings", ["Alt+1"], lambda: self.left_tabs.setCurrentIndex(0))
        self.act_tab_recent = act("Show recent inspections", ["Alt+2"], lambda: self.left_tabs.setCurrentIndex(1))
        self.act_tab_queue = act("Show queue", ["Alt+3"], lambda: self.left_tabs.setCurrentIndex(2))
        self.act_tab_slices = act("Show slices", ["Ctrl+1"], lambda: self.view_tabs.setCurrentIndex(0))
        self.act_tab_map = act("Show electrode map", ["Ctrl+2"], lambda: self.view_tabs.setCurrentIndex(1))
        self.act_next_slice = act("Next slice", ["PgDown", "Ctrl+Down"], lambda: self.viewer.step_slice(1))
        self.act_prev_slice = act("Previous slice", ["PgUp", "Ctrl+Up"], lambda: self.viewer.step_slice(-1))
        self.act_first_slice = act("First slice", ["Ctrl+Home"], lambda: self.viewer.set_slice(0))
        self.act_last_slice = act("Last slice", ["Ctrl+End"], lambda: self.viewer.set_slice(self.viewer.nz - 1))
        self.act_zoom_in = act("Zoom in", [K.StandardKey.ZoomIn, "Ctrl+="], lambda: self.viewer.zoom(0.7))
        self.act_zoom_out = act("Zoom out", [K.StandardKey.ZoomOut], lambda: self.viewer.zoom(1 / 0.7))
        self.act_zoom_reset = act("Whole slice", ["Ctrl+0"], self.viewer.reset_view)
        self.act_layers = act("Show / hide traced layers", ["F6"], self.viewer.layers_box.toggle)
        self.act_outlines = act("Show / hide finding outlines", ["F7"], self.viewer.findings_box.toggle)
        self.act_window = act("Automatic window / level", ["F8"], self.viewer.auto_window)
        self.act_role = act("Engineer &mode…", ["Ctrl+E"], self.switch_role_dialog)
        self.act_help = act("Keyboard &shortcuts", [K.StandardKey.HelpContents, "F1"], self.show_shortcuts)
        self.act_quit = act("&Quit", [K.StandardKey.Quit], self.close)

        bar = self.menuBar()
        m = bar.addMenu("&File")
        for a in (self.act_focus_id, self.act_open, self.act_open_folder, self.act_watch, self.act_next, None,
                  self.act_run, self.act_cancel, None, self.act_report, self.act_open_report, self.act_print,
                  None, self.act_quit):
            m.addSeparator() if a is None else m.addAction(a)
        m = bar.addMenu("&View")
        for a in (self.act_tab_findings, self.act_tab_recent, self.act_tab_queue, self.act_tab_slices,
                  self.act_tab_map, None, self.act_next_finding, self.act_prev_finding, None, self.act_next_slice,
                  self.act_prev_slice, self.act_first_slice, self.act_last_slice, None, self.act_zoom_in,
                  self.act_zoom_out, self.act_zoom_reset, self.act_layers, self.act_outlines, self.act_window,
                  None, self.act_refresh):
            m.addSeparator() if a is None else m.addAction(a)
        m = bar.addMenu("&Engineer")
        m.addAction(self.act_role)
        m = bar.addMenu("&Help")
        m.addAction(self.act_help)
        self._update_enabled()

    def operator_actions(self) -> list[QtGui.QAction]:
        return [a for a in self.actions() if isinstance(a, QtGui.QAction)]

    # ================================================================== log
    def db(self):
        """The log, opened once in the UI thread (None without a log or when it cannot open)."""
        if self._db is None and self.db_path is not None:
            from core.store import open_log

            try:
                self._db = open_log(self.db_path)
            except Exception as exc:  # noqa: BLE001 - shown to the person, the station stays up
                self.db_path_error = str(exc)
                self.statusBar().showMessage(f"Log unavailable: {exc}", 15000)
                return None
        return self._db

    def refresh_recent(self) -> None:
        db = self.db()
        if db is None:
            self.recent.set_rows([])
            return
        from core.store import list_inspections

        try:
            self.recent.set_rows(list_inspections(db, limit=RECENT_ROWS))
        except Exception as exc:  # noqa: BLE001
            self.statusBar().showMessage(f"Cannot read the log: {exc}", 15000)

    # ================================================================== state
    @property
    def inspecting(self) -> bool:
        return self.inspect_task is not None

    def _case_changed(self, event: str) -> None:
        """Redraw what the case model says changed (see :mod:`qc_app.gui.case_model`)."""
        if event == "cleared":
            self.findings.set_findings([])
            self.map_view.set_maps(None)
            self.engineer.finding.set_result(None)
            self.engineer.override.set_case(None, None, None, None)
            self.engineer.set_cell(None, None)
            self.setWindowTitle(self.case.window_title())
        elif event == "verdict":
            self._show_result()
        elif event == "report":
            self._update_enabled()
        elif event == "role":
            self._show_role()

    def _update_enabled(self) -> None:
        busy = self.inspecting
        reporting = self.report_task is not None
        can = self.case.controls(
            inspecting=busy, reporting=reporting,
            cancelling=bool(self.inspect_task and self.inspect_task.cancel_requested))
        self.run_button.setEnabled(can.run)
        self.act_run.setEnabled(can.run)
        self.cancel_button.setEnabled(can.cancel_button)
        self.act_cancel.setEnabled(can.cancel_action)
        self.open_button.setEnabled(can.open)
        self.act_open.setEnabled(can.open)
        self.act_open_folder.setEnabled(can.open)
        self.report_panel.set_report(self.report_path, can_generate=self.result is not None and not busy,
                                     busy=reporting)
        self.act_report.setEnabled(can.report)
        self.act_open_report.setEnabled(can.open_report)
        self.act_print.setEnabled(can.print_report)

    def _update_status_labels(self) -> None:
        log, recipe, role = self.case.status_texts(self.db_path, self.recipe)
        self.log_label.setText(log)
        self.recipe_label.setText(recipe)
        self.role_label.setText(role)

    def _show_idle(self) -> None:
        self.banner.set_state("IDLE")

    def _reset_case(self) -> None:
        self.case.clear()  # the widgets follow in _case_changed("cleared")

    def set_role(self, role: str) -> None:
        """Back to ``operator`` (logs the engineer out). Engineer mode only through a login:
        :meth:`switch_role_dialog` or :meth:`login_engineer`."""
        if role != "operator":
            raise ValueError("engineer mode needs a login: use login_engineer() or switch_role_dialog()")
        self.case.logout()  # the widgets follow in _case_changed("role")

    def _show_role(self) -> None:
        """operator: the station only; engineer/admin: the drill-down panel too."""
        self.engineer.setVisible(self.role != "operator")
        # Traced layers are for engineers; operators see the slice and the outlined findings.
        self.viewer.layers_box.setChecked(self.role != "operator")
        if self.role != "operator":
            total = max(sum(self.right_split.sizes()), self.height() - 120)
            self.right_split.setSizes([int(0.55 * total), int(0.45 * total)])
        # Overrides and recipe changes are signed by the logged-in user only (None: refused).
        self.engineer.override.set_signer(self.signer)
        self.engineer.recipe.set_signer(self.db(), self.signer, audited=self.db_path is not None)
        self.act_role.setText("Operator mode" if self.role != "operator" else "Engineer &mode…")
        self._update_status_labels()

    def set_recipe(self, recipe: str | None) -> None:
        self.recipe = recipe
        self.engineer.recipe.set_active(recipe or "auto (chosen from the can)")
        self._update_status_labels()

    # ================================================================== errors
    def show_error(self, title: str, message: str) -> None:
        """A clear one-line error in a (non-blocking) dialog, and in the status bar."""
        self.last_error = message
        self.statusBar().showMessage(message, 30000)
        if not self.dialogs:
            return
        if self.error_box is not None:
            self.error_box.close()
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Critical, title, message,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setIconPixmap(theme.pixmap("error", 64))
        box.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(self._error_box_gone)
        self.error_box = box
        box.open()

    @QtCore.Slot()
    def _error_box_gone(self) -> None:
        self.error_box = None

    # ================================================================== opening
    def focus_cell_id(self) -> None:
        self.cell_id.setFocus()
        self.cell_id.selectAll()

    def open_dialog(self) -> None:
        if self.inspecting:
            return
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a cell volume", str(Path(self.volume_path).parent if self.volume_path else Path.home()),
            "Volumes (*.tif *.tiff *.h5 *.hdf5 *.nxs *.npy *.raw *.zarr);;All files (*)")
        if path:
            self.open_volume(path)

    def open_folder_dialog(self) -> None:
        if self.inspecting:
            return
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a folder of TIFF slices or a Zarr store")
        if path:
            self.open_volume(path)

    def _voxel_size(self) -> str | None:
        text = self.voxel.text().strip()
        return text or None

    def open_volume(self, path: str | Path, *, run: bool = False) -> bool:
        """Show a volume (read in a worker thread); with ``run``, inspect it once it is open."""
        if self.inspecting:
            self.statusBar().showMessage("An inspection is running; the volume waits in the queue.", 8000)
            self.queue.enqueue(str(path))
            return False
        path = str(path)
        self._reset_case()
        self.volume_path = path
        self.volume = None
        self.viewer.set_volume(None)
        self._run_after_load = run
        self.banner.set_state("LOADED", f"Opening {Path(path).name}…")
        self.progress.setValue(0)
        self.progress.setFormat(f"opening {Path(path).name}")
        voxel = self._voxel_size()

        def work(progress, cancel):
            from core.io import read_volume

            return read_volume(path, voxel_size=voxel)

        self.load_task = Task("load", work)
        self.load_task.succeeded.connect(self._volume_ready)
        self.load_task.failed.connect(self._volume_failed)
        self.runner.start(self.load_task)
        self._update_enabled()
        return True

    @QtCore.Slot(object)
    def _volume_ready(self, volume: Any) -> None:
        if self.sender() is not self.load_task:
            return
        self.load_task = None
        self.volume = volume
        self.viewer.set_volume(volume)
        self.view_tabs.setCurrentWidget(self.viewer)
        nz, ny, nx = volume.shape
        sz, sy, sx = volume.spacing_um
        if self.result is None:
            self.progress.setFormat("ready")
        if self.result is not None:  # opened from the log: overlays of its findings
            self._show_overlays()
            self._open_on_worst()
        else:
            if not self.cell_id.text().strip() and volume.cell_id:
                self.cell_id.setText(volume.cell_id)
            self.banner.set_state("LOADED", f"{Path(self.volume_path).name}: {nz} × {ny} × {nx} voxels of "
                                            f"{sx:g} µm", ["Press F5 or Enter to inspect it."])
        self._update_enabled()
        self.volume_loaded.emit(True)
        if self._run_after_load:
            self._run_after_load = False
            self.run_inspection()

    @QtCore.Slot(str)
    def _volume_failed(self, message: str) -> None:
        if self.sender() is not self.load_task:
            return
        self.load_task = None
        self._run_after_load = False
        self.volume_path = None
        self.banner.set_state("ERROR", "This volume cannot be opened.", [message])
        self.progress.setFormat("error")
        self._update_enabled()
        self.show_error("cellqc — cannot open the volume", message)
        self.volume_loaded.emit(False)
        self.last_outcome = "ERROR"

    # ================================================================== drag and drop
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        if urls and all(u.isLocalFile() for u in urls):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        first, rest = paths[0], paths[1:]
        if self.inspecting:
            rest = paths
        else:
            self.open_volume(first)
        for p in rest:
            self.queue.enqueue(p)

    # ================================================================== barcode
    @QtCore.Slot()
    def submit_cell_id(self) -> None:
        """Enter in the cell-ID field (a barcode scanner sends it after the code)."""
        cid = self.cell_id.text().strip()
        if not cid or self.inspecting:
            return
        match = self.queue.find(cid)
        if match:
            self.queue.take(match)
            self._refresh_queue()
            self.open_volume(match, run=True)
            return
        if self.volume_path and self.result is None:
            if self.load_task is not None:
                self._run_after_load = True
            else:
                self.run_inspection()
            return
        # A new cell: forget the previous one and ask for its volume.
        self._reset_case()
        self.volume_path = None
        self.viewer.set_volume(None)
        self.banner.set_state("IDLE", f"Cell {cid}: open its volume (Ctrl+O) or drop it here.")
        self._update_enabled()

    # ================================================================== inspection
    def run_inspection(self) -> bool:
        """Inspect the open volume in a worker thread; False when nothing to do."""
        if self.inspecting or not self.volume_path:
            return False
        if self.load_task is not None:
            self._run_after_load = True
            return True
        path, voxel = self.volume_path, self._voxel_size()
        cell_id = self.cell_id.text().strip() or None
        recipe, db_path, operator = self.recipe, self.db_path, self.operator

        def work(progress, cancel):
            from core.filing import inspect_and_file

            return inspect_and_file(path, voxel_size=voxel, recipe=recipe, cell_id=cell_id, db_path=db_path,
                                    operator=operator, progress=progress, cancel=cancel)

        self.case.start_inspection()
        self.findings.set_findings([])
        self.map_view.set_maps(None, "Inspecting…")
        self.inspect_task = Task("inspect", work)
        self.inspect_task.progress.connect(self._inspection_progress)
        self.inspect_task.succeeded.connect(self._inspection_done)
        self.inspect_task.failed.connect(self._inspection_failed)
        self.inspect_task.cancelled.connect(self._inspection_cancelled)
        self.banner.set_state("RUNNING", f"Inspecting {cell_id or Path(path).name}…")
        self.progress.setValue(0)
        self.progress.setFormat("%p%  starting")
        self.runner.start(self.inspect_task)
        self._update_enabled()
        return True

    @QtCore.Slot()
    def cancel_inspection(self) -> None:
        if self.inspect_task is None:
            return
        self.inspect_task.cancel()
        self.progress.setFormat("%p%  cancelling…")
        self.banner.set_state("RUNNING", "Cancelling…")
        self._update_enabled()

    @QtCore.Slot(float, str)
    def _inspection_progress(self, fraction: float, message: str) -> None:
        if self.sender() is not self.inspect_task or self.inspect_task.cancel_requested:
            return
        self.progress.setValue(int(1000 * min(max(fraction, 0.0), 1.0)))
        self.progress.setFormat(f"%p%  {message}")

    @QtCore.Slot(object)
    def _inspection_done(self, value: Any) -> None:
        if self.sender() is not self.inspect_task:
            return
        self.inspect_task = None
        inspection, iid = value
        self.case.inspected(inspection, iid)
        self.progress.setValue(1000)
        self.progress.setFormat(f"done: {self.final_verdict}")
        if self.volume is None or self.volume.shape != inspection.volume.shape:
            self.volume = inspection.volume
            self.viewer.set_volume(inspection.volume)
        self._show_result()
        self._show_overlays()
        geometry = inspection.geometry
        rolls = [sl for sl in geometry.slices if sl.is_roll] if geometry is not None else []
        self.map_view.set_maps(inspection.maps, spacing_z_um=inspection.volume.spacing_um[0],
                               findings=inspection.result.get("findings", []),
                               seam_deg=rolls[0].seam_deg if rolls else None,
                               direction=geometry.direction if geometry is not None else 1,
                               result=inspection.result)
        self._open_on_worst()
        self.refresh_recent()
        self._update_enabled()
        self.focus_cell_id()
        self.outcome.emit(self.final_verdict)
        if self.auto_report:
            self.generate_report()
        self._maybe_auto_next()

    @QtCore.Slot(str)
    def _inspection_failed(self, message: str) -> None:
        if self.sender() is not self.inspect_task:
            return
        self.inspect_task = None
        self.progress.setFormat("error")
        self.banner.set_state("ERROR", "The inspection could not be done.", [message])
        self.refresh_recent()
        self._update_enabled()
        self.show_error("cellqc — inspection failed", message)
        self.last_outcome = "ERROR"
        self.outcome.emit("ERROR")

    @QtCore.Slot()
    def _inspection_cancelled(self) -> None:
        if self.sender() is not self.inspect_task:
            return
        self.inspect_task = None
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")
        self.banner.set_state("CANCELLED", "Inspection cancelled.",
                              ["Nothing was filed as complete. Press F5 to inspect again."])
        self.refresh_recent()
        self._update_enabled()
        self.last_outcome = "CANCELLED"
        self.outcome.emit("CANCELLED")

    # ================================================================== showing results
    def _show_result(self) -> None:
        result = self.result
        verdict = self.case.shown_verdict
        reasons = banner_reasons(result)
        if self.case.is_overridden:
            last = self._overrides()[-1:] or [{}]
            reasons.insert(0, self.case.override_line(last[0]))
        self.banner.set_state(verdict, self.case.subtitle(), reasons)
        self.findings.set_findings(result.get("findings", []), result)
        self.left_tabs.setCurrentWidget(self.findings)
        self.engineer.finding.set_result(result)
        self.engineer.override.set_case(self.db() if self.inspection_id is not None else None, self.inspection_id,
                                        result["verdict"], verdict)
        self.engineer.set_cell(self.db(), result.get("cell_id"), result)
        self.setWindowTitle(self.case.window_title())
        self._update_status_labels()

    def _show_overlays(self) -> None:
        if self.result is None or self.volume is None:
            return
        centre = (self.result.get("geometry") or {}).get("axis_center_yx_px")
        geometry = self.inspection.geometry if self.inspection is not None else None
        self.viewer.set_inspection(geometry, self.result.get("findings", []),
                                   tuple(centre) if centre and None not in centre else None)

    def _open_on_worst(self) -> None:
        """Open the viewer on the worst finding (chosen in the list: its details follow), else on
        the middle of the jelly roll's slices — never on the headspace of a cell's top scan."""
        from core import describe

        worst = describe.worst_finding(self.result.get("findings", []))
        if worst is not None and worst.get("id") is not None:
            self.findings.select_id(str(worst["id"]))
            if self.viewer.selected_id != worst.get("id"):  # already current in the list
                self.select_finding(dict(worst))
            return
        rng = (self.result.get("geometry") or {}).get("roll_slice_range")
        self.viewer.open_on([], tuple(rng) if rng and len(rng) == 2 and None not in rng else None)

    def _overrides(self) -> list[dict[str, Any]]:
        db = self.db()
        if db is None or self.inspection_id is None:
            return []
        from core.store import overrides_for

        return overrides_for(db, self.inspection_id)

    @QtCore.Slot(object)
    def select_finding(self, finding: dict[str, Any]) -> None:
        """Move the viewer to a finding, outline it, and show its details to engineers."""
        if self.view_tabs.currentWidget() is not self.viewer:
            self.view_tabs.setCurrentWidget(self.viewer)
        self.viewer.select_finding(finding)
        self.map_view.select_finding(finding)
        self.engineer.finding.show_finding(finding)
        if self.role != "operator":
            self.engineer.setCurrentWidget(self.engineer.finding)

    @QtCore.Slot(int)
    def _slice_changed(self, z: int) -> None:
        if self.volume is not None:
            self.map_view.set_slice_height(z, self.volume.spacing_um[0])

    @QtCore.Slot(str, str, str)
    def _overridden(self, verdict: str, reason: str, user: str) -> None:
        self.case.overridden(verdict)  # the banner follows in _case_changed("verdict")
        self.refresh_recent()
        note = " Write the report again (Ctrl+R) to include the override." if self.report_path else ""
        self.statusBar().showMessage(f"Verdict overridden to {verdict} by {user}.{note}", 20000)

    def open_from_log(self, inspection_id: int) -> bool:
        """Show a filed inspection (its volume too, when the file is still there)."""
        if self.inspecting:
            return False
        db = self.db()
        if db is None:
            return False
        from core.errors import CellQCError
        from core.store import get_result, latest_report_path, overrides_for

        try:
            result = get_result(db, int(inspection_id))
        except CellQCError as exc:
            self.show_error("cellqc — cannot show this inspection", str(exc))
            return False
        self._reset_case()
        self.case.opened_from_log(result, int(inspection_id),
                                  overrides_for(db, int(inspection_id)),
                                  latest_report_path(db, int(inspection_id)))
        self.cell_id.setText(str(result.get("cell_id") or ""))
        self.progress.setValue(0)
        self.progress.setFormat(f"inspection #{int(inspection_id)} from the log")
        self._show_result()
        from core.report.keep import load_summary

        summary, why = load_summary(self.db_path, result)
        if summary is not None:
            self.map_view.set_summary(summary, result)
        else:
            self.map_view.set_maps(None, f"No unrolled map: {why}")
        source = result.get("source")
        self.volume = None
        self.viewer.set_volume(None)
        if source and Path(source).exists():
            self.volume_path = source
            spacing = result.get("spacing_um")
            voxel = ",".join(str(v) for v in spacing) if spacing else None

            def work(progress, cancel):
                from core.io import read_volume

                return read_volume(source, voxel_size=voxel)

            self.load_task = Task("load", work)
            self.load_task.succeeded.connect(self._volume_ready)
            self.load_task.failed.connect(self._log_volume_failed)
            self.runner.start(self.load_task)
        else:
            self.volume_path = None
            self.statusBar().showMessage(f"The volume {source} is no longer there; showing the filed result.", 15000)
        self._update_enabled()
        return True

    @QtCore.Slot(str)
    def _log_volume_failed(self, message: str) -> None:
        if self.sender() is not self.load_task:
            return
        self.load_task = None
        self.volume_path = None
        self.statusBar().showMessage(f"Showing the filed result without its volume: {message}", 20000)
        self._update_enabled()

    # ================================================================== report
    def _report_target(self) -> Path:
        return self.reports_dir / self.case.report_name()

    def generate_report(self) -> bool:
        """Write the PDF report in a worker thread and file it in the log."""
        if self.result is None or self.report_task is not None or self.inspecting:
            return False
        target = self._report_target()
        inspection, iid, db_path = self.inspection, self.inspection_id, self.db_path

        def work(progress, cancel):
            from core.report import inputs_from_log, write_report

            db = None
            if db_path is not None and iid is not None:
                from core.store import open_log, overrides_for

                db = open_log(db_path)
            try:
                if inspection is not None:
                    from core.filing import report_inputs

                    inputs = report_inputs(inspection, iid)
                    if db is not None:
                        inputs.overrides = overrides_for(db, iid)
                else:
                    inputs = inputs_from_log(db, iid)
                target.parent.mkdir(parents=True, exist_ok=True)
                write_report(inputs, target, db=db, inspection_id=iid)
            finally:
                if db is not None:
                    db.close()
            return str(target)

        self.report_task = Task("report", work)
        self.report_task.succeeded.connect(self._report_done)
        self.report_task.failed.connect(self._report_failed)
        self.runner.start(self.report_task)
        self._update_enabled()
        return True

    @QtCore.Slot(object)
    def _report_done(self, path: str) -> None:
        if self.sender() is not self.report_task:
            return
        self.report_task = None
        self.case.report_written(path)  # the controls follow in _case_changed("report")
        self.statusBar().showMessage(f"Report written: {path}", 15000)
        self.report_written.emit(path)

    @QtCore.Slot(str)
    def _report_failed(self, message: str) -> None:
        if self.sender() is not self.report_task:
            return
        self.report_task = None
        self._update_enabled()
        self.show_error("cellqc — report not written", message)
        self.report_written.emit("")

    def open_report(self) -> bool:
        if not self.report_path:
            return False
        ok = QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(self.report_path))
        if not ok:
            self.show_error("cellqc — cannot open the report",
                            f"No PDF viewer is set up; the report is at {self.report_path}")
        return ok

    def print_report(self) -> bool:
        """Send the PDF to a printer (CUPS ``lp``); without one, open it to print from the viewer."""
        if not self.report_path:
            return False
        from PySide6 import QtPrintSupport

        printers = QtPrintSupport.QPrinterInfo.availablePrinterNames()
        lp, lpr = shutil.which("lp"), shutil.which("lpr")
        if not printers or not (lp or lpr):
            self.statusBar().showMessage("No printer is set up on this computer: the report is open in the "
                                         "PDF viewer, print it from there.", 20000)
            return self.open_report()
        default = QtPrintSupport.QPrinterInfo.defaultPrinterName()
        index = printers.index(default) if default in printers else 0
        name, ok = QtWidgets.QInputDialog.getItem(self, "Print the report", "Printer", printers, index, False)
        if not ok:
            return False
        cmd = [lp, "-d", name, self.report_path] if lp else [lpr, "-P", name, self.report_path]
        try:
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            self.show_error("cellqc — not printed", f"{cmd[0]}: {exc}")
            return False
        self.statusBar().showMessage(f"Report sent to {name}.", 15000)
        return True

    # ================================================================== queue
    def watch_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder the scanner writes volumes to")
        if folder:
            self.watch_folder(folder)

    def watch_folder(self, folder: str | Path) -> None:
        self.queue.watch(folder)
        self._refresh_queue()
        self.left_tabs.setCurrentIndex(2)

    def _refresh_queue(self) -> None:
        self.queue_panel.set_pending(self.queue.pending)
        n = len(self.queue.pending)
        self.left_tabs.setTabText(2, f"Queue ({n})" if n else "Queue")

    @QtCore.Slot(str)
    def _queue_added(self, path: str) -> None:
        self._refresh_queue()
        self._maybe_auto_next()

    def _maybe_auto_next(self) -> None:
        if self.queue_panel.auto_box.isChecked() and not self.inspecting and self.load_task is None \
                and self.queue.pending:
            QtCore.QTimer.singleShot(300, lambda: self._queue_open(""))

    @QtCore.Slot(str)
    def _queue_open(self, path: str) -> None:
        if self.inspecting or self.load_task is not None:
            return
        taken = self.queue.take(path or None)
        self._refresh_queue()
        if taken:
            self.cell_id.clear()
            self.open_volume(taken, run=True)

    # ================================================================== roles, help
    def switch_role_dialog(self) -> None:
        """Engineer mode after a login (user + password/PIN, scrypt-checked); back to operator."""
        if self.role != "operator":
            self.set_role("operator")
            return
        db = self.db()
        if db is None:
            self.show_error("cellqc — engineer mode", "engineer mode needs the log (users and roles live there)")
            return
        from core.errors import InputError
        from qc_app.gui.login import ask_login

        try:
            login = ask_login(self, db, self.login_name)
        except InputError as exc:  # wrong password, unknown or disabled user: one line
            self.show_error("cellqc — engineer mode", str(exc))
            return
        if login is not None:
            self._grant(*login)

    def login_engineer(self, user: str, secret: str) -> bool:
        """Engineer mode for ``user`` when ``secret`` is theirs and their role allows it."""
        db = self.db()
        if db is None:
            self.show_error("cellqc — engineer mode", "engineer mode needs the log (users and roles live there)")
            return False
        from core.errors import InputError
        from qc_app.gui.login import check_login

        try:
            role = check_login(db, user, secret)
        except InputError as exc:
            self.show_error("cellqc — engineer mode", str(exc))
            return False
        return self._grant(user, role)

    def _grant(self, user: str, role: str) -> bool:
        """After a checked login: engineer mode for engineers and admins, a refusal otherwise."""
        refused = self.case.login(user, role)  # the widgets follow in _case_changed("role")
        if refused:
            self.show_error("cellqc — engineer mode", refused)
            return False
        self.statusBar().showMessage(f"Engineer mode: {user} ({role}); Ctrl+E logs out.", 10000)
        return True

    def show_shortcuts(self) -> None:
        dialog = ShortcutHelp(self.operator_actions(), self)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    # ================================================================== screenshots, closing
    def save_screenshot(self, path: str | Path) -> Path:
        """Save the main window as a PNG (what the headless ``--screenshot`` writes)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        QtWidgets.QApplication.processEvents()
        if not self.grab().save(str(path)):
            from core.errors import InputError

            raise InputError(path, "cannot write the screenshot")
        return path

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.runner.cancel_all()
        self.runner.wait_all(60000)
        self.viewer.shutdown()
        if self._db is not None:
            try:
                self._db.close()
            except Exception:  # noqa: BLE001
                pass
            self._db = None
        super().closeEvent(event)


for _name in _CASE_STATE:
    setattr(MainWindow, _name, _case_attribute(_name))
del _name
