"""The workstation GUI (pytest-qt, offscreen): inspection in a worker, verdict banner, findings
that move the viewer, cancel, report, errors in dialogs, engineer override, recipe editor,
watched-folder queue, barcode Enter, drag and drop, headless screenshot, slice switching.

Screenshots of the main views go to /tmp/cellqc_gui/ (look at them after a change).
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any QApplication exists

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

SHOTS = Path("/tmp/cellqc_gui")


def shot(widget: QtWidgets.QWidget, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    QtWidgets.QApplication.processEvents()
    path = SHOTS / f"{name}.png"
    widget.grab().save(str(path))
    return path


def wait_until(predicate, timeout: float = 90.0) -> None:
    """Process Qt events until ``predicate()`` is true (module fixtures cannot use qtbot)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("condition not met in time")
        QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.005)


pytestmark = pytest.mark.usefixtures("collect_in_the_ui_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def cell_path(tmp_path_factory) -> Path:
    """A small defective cell: 3 slices at 25 µm (an inspection takes a few seconds)."""
    from core.io import write_tiff
    from core.phantom import Artifacts, CellSpec, default_defects, make_cell

    spec = CellSpec(voxel_size_um=25, n_slices=3)
    cell = make_cell(spec, default_defects(spec), Artifacts())
    path = tmp_path_factory.mktemp("gui") / "CELL-0042.tif"
    write_tiff(cell.volume, path)
    return path


@pytest.fixture(scope="module")
def themed_app(qapp):
    from qc_app.gui import app, theme

    app._quiet_qt_messages()
    theme.apply_theme(qapp)
    collector = app.UiThreadGarbageCollector()  # as the application does
    yield qapp
    collector.stop()


def make_window(tmp: Path, **kwargs):
    from qc_app.gui.main_window import MainWindow

    window = MainWindow(db_path=tmp / "cellqc.db", reports_dir=tmp / "reports", **kwargs)
    window.show()
    return window


@pytest.fixture(scope="module")
def ran(themed_app, cell_path, tmp_path_factory):
    """One window that opened the cell and ran its inspection through the worker thread."""
    window = make_window(tmp_path_factory.mktemp("ran"))
    outcomes = []
    window.outcome.connect(outcomes.append)
    assert window.open_volume(cell_path, run=True)
    assert window.banner.state in ("LOADED", "RUNNING")  # the UI thread returned at once
    wait_until(lambda: outcomes)
    yield window
    window.close()


# ----------------------------------------------------------------------------- operator


@pytest.mark.slow
def test_inspection_shows_fail_banner_with_reasons(ran):
    assert ran.last_outcome == "FAIL"
    assert ran.banner.state == "FAIL"
    assert ran.banner.word.text() == "FAIL"
    assert not ran.banner.icon.pixmap().isNull()  # icon + word + colour
    text = ran.banner.text()
    assert "FAIL:" in text and ran.result["cell_id"] in text
    findings = ran.result["findings"]
    assert findings and ran.findings.topLevelItemCount() == len(findings)
    assert ran.inspection_id is not None
    from core.store import get_inspection

    assert get_inspection(ran.db(), ran.inspection_id)["status"] == "complete"
    assert ran.recent.topLevelItemCount() >= 1
    assert ran.recent.topLevelItem(0).text(3).startswith("FAIL")
    assert ran.width() >= 1280 and ran.height() >= 800
    shot(ran, "operator_fail")


@pytest.mark.slow
def test_choosing_a_finding_moves_the_viewer_to_it(ran):
    from qc_app.gui.viewer import finding_slice

    viewer = ran.viewer
    viewer.set_slice(0 if viewer.nz > 1 else 0)
    viewer.reset_view()
    (wx0, wx1), _ = viewer.axial_range()
    target = max(ran.result["findings"], key=lambda f: finding_slice(f, viewer.nz) != 0)
    ran.findings.select_id(target["id"])
    assert viewer.z == finding_slice(target, viewer.nz)
    assert viewer.selected_id == target["id"]
    (x0, x1), (y0, y1) = viewer.axial_range()
    _, sy, sx = (s / 1000 for s in viewer.volume.spacing_um)
    cz, cy, cx = target["centroid_zyx_px"]
    assert x0 <= (cx + 0.5) * sx <= x1 and y0 <= (cy + 0.5) * sy <= y1
    assert (x1 - x0) < 0.5 * (wx1 - wx0)  # zoomed in on it
    # The finding is outlined (selected style) on the axial slice.
    rects = [i for i in viewer._slice_items if isinstance(i, QtWidgets.QGraphicsRectItem)]
    assert any(r.pen().color().name().upper() == "#FFFFFF" for r in rects)
    # The vertical section turned to pass through it.
    along, across = viewer._to_section(np.array([cy]), np.array([cx]))
    assert abs(across[0]) < 1.5
    shot(ran, "operator_finding_selected")
    # Clicking another finding's outline on the slice selects it in the list.
    other = next((f for f in ran.result["findings"] if f["id"] != target["id"]
                  and finding_slice(f, viewer.nz) == viewer.z), None)
    if other is not None:
        viewer.reset_view()
        QtWidgets.QApplication.processEvents()

        class Click:
            def __init__(self, pos):
                self._pos = pos

            def scenePos(self):  # noqa: N802 - pyqtgraph's name
                return self._pos

            def double(self):
                return False

        _, oy, ox = other["centroid_zyx_px"]
        pos = viewer.axial.getViewBox().mapViewToScene(QtCore.QPointF((ox + 0.5) * sx, (oy + 0.5) * sy))
        viewer._axial_clicked(Click(pos))
        assert ran.findings.currentItem().data(0, QtCore.Qt.ItemDataRole.UserRole) == other["id"]
        assert viewer.selected_id == other["id"]


@pytest.mark.slow
def test_electrode_map_with_colour_bar(ran):
    mv = ran.map_view
    assert mv.current == "cathode_thickness_um"
    umap = ran.inspection.maps["cathode_thickness_um"]
    assert mv.img.image.shape == umap.values.shape
    lo, hi = mv.colour_bar.levels()
    med = float(np.nanmedian(umap.values))
    assert lo < med < hi
    ran.view_tabs.setCurrentWidget(mv)
    shot(ran, "electrode_map")
    ran.view_tabs.setCurrentWidget(ran.viewer)


@pytest.mark.slow
def test_report_is_written_and_filed(ran, qtbot):
    with qtbot.waitSignal(ran.report_written, timeout=90000) as blocker:
        assert ran.generate_report()
        assert ran.report_panel.label.text().startswith("Writing")
    path = Path(blocker.args[0])
    assert path.is_file() and path.read_bytes()[:5] == b"%PDF-"
    rows = list(ran.db().query("SELECT * FROM reports WHERE inspection_id = ?", [ran.inspection_id]))
    assert rows and Path(rows[-1]["path"]) == path.resolve()
    assert ran.report_panel.open_button.isEnabled() and ran.report_panel.print_button.isEnabled()


@pytest.mark.slow
def test_recent_inspection_opens_from_the_log(ran, qtbot):
    iid = ran.inspection_id
    with qtbot.waitSignal(ran.volume_loaded, timeout=30000):
        assert ran.open_from_log(iid)
    assert ran.banner.state == "FAIL" and ran.inspection is None
    assert ran.findings.topLevelItemCount() == len(ran.result["findings"])
    assert ran.viewer.volume is not None and ran.viewer.findings
    assert ran.report_path  # the report filed above
    ran.left_tabs.setCurrentWidget(ran.recent)
    shot(ran, "operator_recent")
    ran.left_tabs.setCurrentWidget(ran.findings)


@pytest.mark.slow
def test_engineer_override_is_audited_and_role_gated(ran):
    from core.store import audit_rows, overrides_for
    from core.store.users import add_user

    db = ran.db()
    add_user(db, "ada", "admin", secret="admin-pw")
    add_user(db, "olga", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
    add_user(db, "erik", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
    add_user(db, "ines", "engineer", secret="ines-pw", actor="ada", actor_secret="admin-pw")
    assert not ran.engineer.isVisibleTo(ran)  # operators do not see the drill-down
    with pytest.raises(ValueError, match="needs a login"):
        ran.set_role("engineer")  # no way into engineer mode without a password
    for user, secret, why in (("olga", "1234", "needs the engineer or admin role"),
                              ("erik", "guess", "wrong password"), ("nobody", "eng-pw", "wrong password")):
        assert not ran.login_engineer(user, secret)
        assert why in ran.last_error
        assert ran.role == "operator" and not ran.engineer.isVisibleTo(ran) and ran.signer is None
    ran.error_box and ran.error_box.close()
    assert ran.login_engineer("erik", "eng-pw")
    assert ran.role == "engineer" and ran.engineer.isVisibleTo(ran) and ran.signer == "erik"
    panel = ran.engineer.override
    assert panel.user.isReadOnly() and panel.user.text() == "erik" and panel.signer == "erik"
    # The field only shows the signer: text put into it names nobody else.
    panel.user.setText("ines")
    panel.reason.setPlainText("   ")
    assert not panel.apply() and "reason" in panel.status.text()
    panel.verdict.setCurrentText("REVIEW")
    panel.reason.setPlainText("void is at the edge of the field of view; ROI scan requested")
    assert panel.apply()
    assert ran.banner.state == "REVIEW" and "overridden" in ran.banner.text()
    rows = overrides_for(db, ran.inspection_id)
    assert [r["user"] for r in rows] == ["erik"]
    entry = [r for r in audit_rows(db) if r["action"] == "verdict.override"][-1]
    assert entry["actor"] == "erik"
    assert ran.recent.topLevelItem(0).text(3).startswith("REVIEW")
    ran.findings.select_id(ran.result["findings"][0]["id"])
    assert ran.engineer.finding.details.rowCount() > 5
    assert ran.engineer.finding.limits.rowCount() == 4
    ran.engineer.setCurrentWidget(ran.engineer.finding)
    shot(ran, "engineer_finding")
    ran.engineer.setCurrentWidget(ran.engineer.override)
    shot(ran, "engineer_override")
    ran.engineer.setCurrentWidget(ran.engineer.recipe)
    shot(ran, "engineer_recipe")
    # ROI requests planned for this cell show in their panel (listing only).
    from core.roi.objectives import get_objective
    from core.roi.plan import plan_document, plan_rois
    from core.roi.queue import file_plan

    objective = get_objective()
    ids = file_plan(db, plan_document(ran.result, plan_rois(ran.result, objective), objective,
                                      inspection_id=ran.inspection_id))
    ran.open_from_log(ran.inspection_id)
    assert ran.engineer.roi.table.rowCount() == len(ids) > 0
    assert ran.engineer.roi.table.item(0, 1).text() == "planned"
    ran.engineer.setCurrentWidget(ran.engineer.roi)
    shot(ran, "engineer_roi")
    ran.set_role("operator")  # logs erik out: nobody signs any more
    assert ran.signer is None and panel.signer is None and panel.user.text() == ""
    panel.reason.setPlainText("one more")
    assert not panel.apply() and "log in first" in panel.status.text()
    assert len(overrides_for(db, ran.inspection_id)) == 1


def test_recipe_editor_validates_before_use(themed_app, qtbot, tmp_path):
    from qc_app.gui.engineer_view import RecipeEditor

    editor = RecipeEditor()
    qtbot.addWidget(editor)
    assert editor.validate() and "Valid" in editor.status.text()
    good = editor.editor.toPlainText()
    editor.editor.setPlainText(good.replace("review_um = 30.0", "review_um = 90.0"))
    assert not editor.validate()
    assert "review_um is above fail_um" in editor.status.text()
    editor.editor.setPlainText(good.replace("[cell]", "[cell"))
    assert not editor.validate() and "TOML syntax error" in editor.status.text()
    editor.editor.setPlainText(good.replace("fail_um = 60.0", "fail_um = 70.0"))
    assert not editor.activate()  # edited but not saved
    target = tmp_path / "strict.toml"
    assert editor.save_to(target) and target.read_text().count("fail_um = 70.0") == 1
    with qtbot.waitSignal(editor.recipe_activated) as blocker:
        assert editor.activate()
    assert blocker.args == [str(target)]
    from core.recipe import RECIPES_DIR

    assert not editor.save_to(RECIPES_DIR / "mine.toml")  # shipped folder is read-only


def test_cancel_stops_a_run(themed_app, qtbot, cell_path, tmp_path):
    window = make_window(tmp_path)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.volume_loaded, timeout=30000):
        window.open_volume(cell_path)
    with qtbot.waitSignal(window.outcome, timeout=60000) as blocker:
        assert window.run_inspection()
        assert window.cancel_button.isEnabled() and not window.run_button.isEnabled()
        qtbot.waitUntil(lambda: window.progress.value() > 0, timeout=30000)  # it is running
        qtbot.keyClick(window, QtCore.Qt.Key.Key_Escape)  # Esc = Cancel
    assert blocker.args == ["CANCELLED"]
    assert window.banner.state == "CANCELLED" and window.result is None
    assert window.run_button.isEnabled() and not window.cancel_button.isEnabled()
    from core.store import list_inspections

    rows = list_inspections(window.db())
    assert rows and rows[-1]["status"] != "complete"
    shot(window, "operator_cancelled")


def test_bad_file_shows_clear_error_dialog(themed_app, qtbot, tmp_path):
    bad = tmp_path / "scan_0001.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 20)
    window = make_window(tmp_path)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.volume_loaded, timeout=30000) as blocker:
        window.open_volume(bad, run=True)
    assert blocker.args == [False]
    box = window.error_box
    assert box is not None and box.isVisible()
    assert "scan_0001.tif" in box.text() and "\n" not in box.text().strip()
    assert "Traceback" not in box.text()
    assert window.banner.state == "ERROR" and not window.inspecting
    shot(window, "operator_error")
    shot(box, "operator_error_dialog")
    box.close()


def test_barcode_enter_opens_the_queued_volume_and_runs(themed_app, qtbot, cell_path, tmp_path, monkeypatch):
    window = make_window(tmp_path)
    qtbot.addWidget(window)
    runs = []
    monkeypatch.setattr(window, "run_inspection", lambda: runs.append(window.volume_path) or True)
    window.queue.enqueue(str(cell_path))
    assert window.queue_panel.list.count() == 1
    window.cell_id.setFocus()
    with qtbot.waitSignal(window.volume_loaded, timeout=30000):
        qtbot.keyClicks(window.cell_id, "cell-0042")
        qtbot.keyClick(window.cell_id, QtCore.Qt.Key.Key_Return)
    assert runs == [str(cell_path)]
    assert window.queue.pending == []


def test_watched_folder_queues_complete_volumes(themed_app, tmp_path):
    from qc_app.gui.hotfolder import FolderQueue

    q = FolderQueue(poll_ms=10_000)
    added = []
    q.added.connect(added.append)
    q.watch(tmp_path)
    vol = tmp_path / "C-7.tif"
    vol.write_bytes(b"x" * 10)
    (tmp_path / ".C-8.tif.part").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    q.poll()
    assert added == []  # seen once: may still be growing
    q.poll()
    assert added == [str(vol)] and q.find("c-7") == str(vol)
    q.poll()
    assert added == [str(vol)]
    assert q.take() == str(vol) and q.pending == []
    q.stop()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_drop_opens_first_and_queues_the_rest(themed_app, qtbot, tmp_path, monkeypatch):
    window = make_window(tmp_path)
    qtbot.addWidget(window)
    opened = []
    monkeypatch.setattr(window, "open_volume", lambda p, run=False: opened.append(p) or True)
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(a)), QtCore.QUrl.fromLocalFile(str(b))])
    pos = QtCore.QPointF(200, 200)
    enter = QtGui.QDragEnterEvent(pos.toPoint(), QtCore.Qt.DropAction.CopyAction, mime,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton,
                            QtCore.Qt.KeyboardModifier.NoModifier)
    window.dropEvent(drop)
    assert opened == [str(a)] and window.queue.pending == [str(b)]


def test_every_operator_action_has_a_shortcut(themed_app, tmp_path):
    window = make_window(tmp_path)
    try:
        for act in (window.act_focus_id, window.act_open, window.act_run, window.act_cancel, window.act_report,
                    window.act_open_report, window.act_print, window.act_next, window.act_watch,
                    window.act_next_finding, window.act_tab_recent, window.act_next_slice, window.act_help):
            assert act.shortcuts(), act.text()
        keys = [s.toString() for a in window.operator_actions() for s in a.shortcuts()]
        assert len(keys) == len(set(keys)), "a key sequence is bound twice"
        # Touch-sized targets.
        assert window.run_button.sizeHint().height() >= 40
        window.show_shortcuts()  # F1: the list is built from the actions
        dialog = window.findChild(QtWidgets.QDialog)
        table = dialog.findChild(QtWidgets.QTableWidget)
        assert table.rowCount() >= 25
        dialog.close()
    finally:
        window.close()


@pytest.mark.slow
def test_headless_screenshot_exits_with_the_verdict(themed_app, cell_path, tmp_path):
    from qc_app.cli import main

    out = tmp_path / "shot.png"
    code = main(["gui", "--open", str(cell_path), "--run", "--screenshot", str(out), "--db",
                 str(tmp_path / "h.db"), "--finding", "D1"])
    assert code == 1  # FAIL
    image = QtGui.QImage(str(out))
    assert image.width() >= 1280 and image.height() >= 800
    code = main(["gui", "--open", str(tmp_path / "missing.tif"), "--screenshot", str(out), "--db", "none"])
    assert code == 2


def test_slice_switching_on_a_large_volume(themed_app, qtbot, tmp_path, monkeypatch):
    """1000 × 1000 × 100 (lazy .npy memmap): switching slices reads one slice and draws it."""
    from core.io import read_volume
    from qc_app.gui.viewer import VolumeViewer

    path = tmp_path / "big.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(100, 1000, 1000))
    yy, xx = np.mgrid[:1000, :1000]
    ring = ((np.hypot(yy - 500, xx - 500) // 20) % 2 * 1000).astype(np.uint16)
    for z in range(0, 100, 9):
        arr[z] = ring + z
    arr.flush()
    del arr
    volume = read_volume(path, voxel_size=10)
    assert not isinstance(volume.array, np.ndarray) or isinstance(volume.array, np.memmap)
    viewer = VolumeViewer()
    qtbot.addWidget(viewer)
    viewer.resize(1000, 700)
    viewer.show()
    viewer.set_volume(volume)
    # Baseline in the same run: read one slice and hand it to the image item.
    t0 = time.perf_counter()
    for z in range(20, 40):
        viewer.axial_img.setImage(np.asarray(volume.array[z], np.float32), autoLevels=False)
    baseline = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    for z in range(40, 80):
        viewer.set_slice(z)
        QtWidgets.QApplication.processEvents()
    per_switch = (time.perf_counter() - t0) / 40
    print(f"\nslice switch 1000x1000: {1000 * per_switch:.1f} ms "
          f"({per_switch / baseline:.1f}x a bare read + setImage of {1000 * baseline:.1f} ms)")
    assert viewer.z == 79
    assert np.array_equal(viewer.axial_img.image, volume.slice(79))
    assert viewer.cache.hits > 0  # prefetched neighbours were used
    viewer.set_slice(81)
    assert np.array_equal(viewer.axial_img.image, volume.slice(81))
    assert viewer.section_img.image.shape[0] == 100
    # A volume too large to read a section at once: the section arrives from a worker thread.
    from qc_app.gui import slices

    monkeypatch.setattr(slices, "SYNC_SECTION_BYTES", 0)
    viewer.set_section_angle(45)
    assert not viewer.section_ready
    qtbot.waitUntil(lambda: viewer.section_ready, timeout=20000)
    assert viewer.section_img.image.shape[0] == 100
    viewer.shutdown()


# ------------------------------------------------------------------ logins (issue 13)


def _staffed_log(path: Path) -> Path:
    from core.store import open_log
    from core.store.users import add_user

    with open_log(path) as db:
        add_user(db, "ada", "admin", secret="admin-pw")
        add_user(db, "erik", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
        add_user(db, "olga", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
    return path


def test_recipe_save_is_signed_by_the_login_and_audited(themed_app, qtbot, tmp_path):
    from core.store import open_log, verify_audit

    _staffed_log(tmp_path / "cellqc.db")
    window = make_window(tmp_path)
    qtbot.addWidget(window)
    editor = window.engineer.recipe
    good = editor.editor.toPlainText()
    target = tmp_path / "recipes" / "strict.toml"
    editor.editor.setPlainText(good.replace("fail_um = 60.0", "fail_um = 70.0"))
    assert not editor.save_to(target)  # nobody logged in: no unaudited change
    assert "log in" in editor.status.text() and not target.exists()
    assert not list(target.parent.glob(".*.part"))
    assert window.login_engineer("erik", "eng-pw")
    assert editor.save_to(target) and "recipe change" in editor.status.text()
    editor.editor.setPlainText(good.replace("fail_um = 60.0", "fail_um = 65.0"))
    assert editor.save_to(target)
    window.set_role("operator")  # logged out
    editor.editor.setPlainText(good.replace("fail_um = 60.0", "fail_um = 99.0"))
    assert not editor.save_to(target)
    assert "fail_um = 65.0" in target.read_text() and "99.0" not in target.read_text()
    with open_log(window.db_path) as db:
        rows = list(db.query("SELECT name, user, diff FROM recipe_changes ORDER BY id"))
        assert verify_audit(db) is None
    assert [(r["name"], r["user"]) for r in rows] == [("strict", "erik"), ("strict", "erik")]
    assert "-fail_um = 70.0" in rows[1]["diff"] and "+fail_um = 65.0" in rows[1]["diff"]
    window.close()


def _spy_on_dispose(monkeypatch) -> dict:
    """What the window of a `cellqc gui` run looked like when it was closed."""
    from qc_app.gui import app as gui_app

    seen: dict = {}
    real = gui_app._dispose

    def spy(app, window):
        seen.update(role=window.role, signer=window.signer, panel=window.engineer.override.signer,
                    operator=window.operator, error=window.last_error)
        real(app, window)

    monkeypatch.setattr(gui_app, "_dispose", spy)
    return seen


@pytest.mark.slow
def test_headless_engineer_role_needs_a_login(themed_app, tmp_path, monkeypatch, capsys):
    from qc_app.cli import main

    log = _staffed_log(tmp_path / "e.db")
    seen = _spy_on_dispose(monkeypatch)
    base = ["gui", "--role", "engineer", "--screenshot", str(tmp_path / "s.png"), "--db", str(log)]
    monkeypatch.delenv("CELLQC_PASSWORD", raising=False)
    assert main(base) == 2
    assert "needs a login" in capsys.readouterr().err
    for user, secret, why in (("erik", "guess", "wrong password"), ("olga", "1234", "engineer or admin role"),
                              ("ghost", "eng-pw", "wrong password")):
        monkeypatch.setenv("CELLQC_PASSWORD", secret)
        assert main([*base, "--user", user]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, err
        assert seen["role"] == "operator" and seen["signer"] is None and seen["panel"] is None
    password_file = tmp_path / "pw.txt"
    password_file.write_text("eng-pw\n")
    monkeypatch.setenv("CELLQC_PASSWORD", "wrong")  # the file wins over the environment
    assert main([*base, "--user", "erik", "--password-file", str(password_file)]) == 0
    assert seen["role"] == "engineer" and seen["signer"] == seen["panel"] == "erik"
    assert (tmp_path / "s.png").is_file()


@pytest.mark.slow
def test_interactive_engineer_role_logs_in_first(themed_app, tmp_path, monkeypatch):
    from qc_app.cli import main
    from qc_app.gui import login

    log = _staffed_log(tmp_path / "i.db")
    seen = _spy_on_dispose(monkeypatch)
    typed: dict[str, str] = {}
    shown: list[str] = []

    def fake_exec(dialog):  # the login dialog, typed into
        shown.append(dialog.user.text())
        dialog.user.setText(typed["user"])
        dialog.secret.setText(typed["secret"])
        return QtWidgets.QDialog.DialogCode.Accepted

    def fake_app_exec(app):  # the event loop: run what is due, then "quit"
        for _ in range(5):
            app.processEvents()
        return 0

    monkeypatch.setattr(login.LoginDialog, "exec", fake_exec)
    monkeypatch.setattr(type(themed_app), "exec", fake_app_exec)
    args = ["gui", "--role", "engineer", "--db", str(log), "--user", "erik"]
    typed.update(user="erik", secret="guess")
    assert main(args) == 0
    assert shown == ["erik"]  # the dialog opened, with --user filled in
    assert seen["role"] == "operator" and seen["signer"] is None and "wrong password" in seen["error"]
    typed.update(user="erik", secret="eng-pw")
    assert main(args) == 0
    assert seen["role"] == "engineer" and seen["signer"] == seen["panel"] == "erik"
    assert seen["operator"] == "erik"  # inspections are filed under the login too
