"""Start the workstation: interactive, or headless for screenshots and checks.

``run_app(args)`` takes the options of ``cellqc gui`` (see :mod:`qc_app.commands.gui_cmd`).
With ``--screenshot`` it runs offscreen, waits for the volume to open (and, with ``--run``,
for the inspection to finish), saves a PNG of the main window and returns the verdict's
exit code: 0 PASS, 1 FAIL, 3 REVIEW, 2 error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_CODES = {"PASS": 0, "FAIL": 1, "REVIEW": 3}


def _size(text: str | None) -> tuple[int, int] | None:
    """``WIDTHxHEIGHT`` → (w, h); raises ValueError with a one-line message."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r}: use WIDTHxHEIGHT, e.g. 1440x900") from None
    return max(w, 640), max(h, 480)


_QUIET = ("This plugin does not support propagateSizeHints()",)


def _quiet_qt_messages() -> None:
    """Drop the offscreen platform's harmless chatter; pass everything else to stderr."""
    from PySide6 import QtCore

    def handler(mode, context, message):  # noqa: ARG001 - Qt's signature
        if message in _QUIET:
            return
        print(message, file=sys.stderr)

    QtCore.qInstallMessageHandler(handler)


class UiThreadGarbageCollector:
    """Python's cyclic garbage collection only in the UI thread, on a timer.

    Automatic collection runs in whichever thread happens to allocate: during an inspection,
    the worker thread. Collecting a cycle that holds Qt objects there destroys them in the
    wrong thread ("Timers cannot be stopped from another thread") and can crash PySide6.
    So automatic collection is switched off and done here, in the UI thread, when due
    (pyqtgraph's GarbageCollector does the same).
    """

    def __init__(self, interval_ms: int = 1000):
        import gc

        from pyqtgraph.util.garbage_collector import GarbageCollector

        self._gc = GarbageCollector(interval=interval_ms / 1000.0)
        self._enable = gc.enable

    def stop(self) -> None:
        self._gc.timer.stop()
        self._enable()


def make_app():
    """The QApplication with the cellqc theme (created once per process)."""
    from PySide6 import QtWidgets

    from qc_app.gui import theme

    _quiet_qt_messages()
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("cellqc")
    app.setApplicationDisplayName("cellqc")
    app.setOrganizationName("cellqc")
    app.setDesktopFileName("cellqc")
    theme.apply_theme(app)
    if getattr(app, "_cellqc_gc", None) is None:
        app._cellqc_gc = UiThreadGarbageCollector()
    return app


def run_app(args: argparse.Namespace) -> int:
    headless = bool(getattr(args, "screenshot", None))
    if args.run and not args.open_path:
        print("cellqc gui: error: --run needs --open VOLUME", file=sys.stderr)
        return 2
    if headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
          and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        print("cellqc gui: error: no display (DISPLAY and WAYLAND_DISPLAY are unset); use --screenshot OUT.png "
              "for a headless run, or set QT_QPA_PLATFORM=offscreen", file=sys.stderr)
        return 2
    try:
        size = _size(getattr(args, "size", None))
        if args.recipe:
            from core.recipe import load_recipe

            load_recipe(args.recipe)  # a bad recipe is a usage error now, not a failed run later
    except Exception as exc:  # noqa: BLE001 - ValueError or core.errors.RecipeError: one line
        print(f"cellqc gui: error: {exc}", file=sys.stderr)
        return 2

    from PySide6 import QtCore

    from core.store import default_db_path
    from qc_app.gui.main_window import MainWindow

    app = make_app()
    if args.db == "none":
        db_path = None
    else:
        db_path = Path(args.db) if args.db else default_db_path()
        db_path.parent.mkdir(parents=True, exist_ok=True)
    window = MainWindow(db_path=db_path, recipe=args.recipe, operator=_station_operator(db_path, args.user),
                        auto_report=bool(args.auto_report), dialogs=not headless, login_name=args.user or "")
    if args.role == "engineer" and headless:  # no dialog: log in with --user and the password
        if not _headless_login(window, args):
            print(f"cellqc gui: error: {window.last_error}", file=sys.stderr)
            app.processEvents()  # the window's start-up timers, before it goes
            _dispose(app, window)
            return 2
    if size:
        window.resize(*size)
    if args.voxel_size:
        window.voxel.setText(str(args.voxel_size))
    if args.watch:
        window.watch_folder(args.watch)
    window.show()
    if not headless:
        if args.role == "engineer":  # the login dialog first; refused or cancelled: operator mode
            QtCore.QTimer.singleShot(0, window.switch_role_dialog)
        if args.open_path:
            window.open_volume(args.open_path, run=args.run)
        code = int(app.exec())
        _dispose(app, window)
        return code

    # ---- headless: wait for what was asked, then take the screenshot
    loop = QtCore.QEventLoop()
    state = {"code": 0, "waiting_report": False}

    def finish(code: int) -> None:
        state["code"] = code
        loop.quit()

    def loaded(ok: bool) -> None:
        if not ok:
            finish(2)
        elif not args.run:
            finish(0)

    def outcome(verdict: str) -> None:
        code = EXIT_CODES.get(verdict, 2)
        if args.auto_report and verdict in EXIT_CODES:
            state["code"], state["waiting_report"] = code, True
        else:
            finish(code)

    def reported(path: str) -> None:
        if state["waiting_report"]:
            finish(state["code"] if path else 2)

    window.volume_loaded.connect(loaded)
    window.outcome.connect(outcome)
    window.report_written.connect(reported)
    if args.open_path:
        QtCore.QTimer.singleShot(0, lambda: window.open_volume(args.open_path, run=args.run))
        loop.exec()
    code = state["code"]
    if args.finding and window.result is not None:
        window.findings.select_id(args.finding)
    tabs = {"slices": (window.view_tabs, window.viewer), "map": (window.view_tabs, window.map_view),
            "recent": (window.left_tabs, window.recent),
            "queue": (window.left_tabs, window.left_tabs.widget(2))}
    if args.tab:
        tabs_widget, page = tabs[args.tab]
        tabs_widget.setCurrentWidget(page)
    for _ in range(3):
        app.processEvents()
    try:
        out = window.save_screenshot(args.screenshot)
    except Exception as exc:  # noqa: BLE001 - one line, exit code 2
        print(f"cellqc gui: error: {exc}", file=sys.stderr)
        code = 2
    else:
        outcome_text = window.last_outcome or ("opened" if window.volume is not None else "no volume")
        print(f"cellqc gui: {outcome_text}; screenshot {out}", file=sys.stderr)
    if window.last_error:
        print(f"cellqc gui: error: {window.last_error}", file=sys.stderr)
    _dispose(app, window)
    return code


def _station_operator(db_path: Path | None, user: str | None) -> str | None:
    """The name filed with inspections while nobody is logged in: ``--user`` on a log without
    users yet (nothing to check it against, as on the command line); none on a log with users,
    where only a login names someone."""
    if not user or db_path is None:
        return None
    from core.store import open_log
    from core.store.users import has_passwords

    with open_log(db_path) as db:
        return None if has_passwords(db) else user


def _headless_login(window, args: argparse.Namespace) -> bool:
    """``--role engineer`` without a display: log ``--user`` in with their password."""
    from core.errors import InputError
    from qc_app.auth import actor_secret

    if not args.user:
        window.last_error = "--role engineer needs a login: give --user NAME (and the password)"
        return False
    try:
        secret = actor_secret(args.user, getattr(args, "password_file", None))
    except InputError as exc:
        window.last_error = str(exc)
        return False
    return window.login_engineer(args.user, secret)


def _dispose(app, window) -> None:
    """Close and delete the window now, in the UI thread, so that nothing Qt is left for
    the interpreter's exit-time garbage collection (PySide6 can crash there)."""
    import gc

    from PySide6 import QtCore

    window.close()
    window.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
    app.processEvents()
    gc.collect()
    collector = getattr(app, "_cellqc_gc", None)
    if collector is not None:  # the UI is gone: automatic collection again
        collector.stop()
        app._cellqc_gc = None
