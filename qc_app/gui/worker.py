"""Background work: everything slow runs in a QThread, never on the UI thread.

A :class:`Task` wraps a function ``fn(progress, cancel) -> value``. Its signals are
delivered to the UI thread (queued connections to slots of objects living there):
``progress(fraction, message)``, then exactly one of ``succeeded(value)``,
``failed(message)`` or ``cancelled()``, then ``done()``.

Errors become one line for a person: :class:`core.errors.CellQCError` messages as they
are (they name the file and the problem), anything else as "internal error: …".
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from core.errors import Cancelled, CellQCError

Progress = Callable[[float, str], None]
Work = Callable[[Progress, Callable[[], bool]], Any]


def one_line_error(exc: BaseException) -> str:
    """A one-line message for a person: what failed, never a traceback."""
    if isinstance(exc, CellQCError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory for this volume"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"internal error: {type(exc).__name__}: {text}"


class Task(QtCore.QObject):
    """One piece of background work, run by :class:`TaskRunner` in its own QThread."""

    progress = QtCore.Signal(float, str)
    succeeded = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    cancelled = QtCore.Signal()
    done = QtCore.Signal()

    def __init__(self, name: str, work: Work):
        super().__init__()
        self.name = name
        self._work = work
        self._cancel = threading.Event()
        self.traceback: str | None = None

    def cancel(self) -> None:
        """Ask the work to stop at its next cancel check (thread-safe)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.emit(float(fraction), str(message))

    @QtCore.Slot()
    def run(self) -> None:
        try:
            if self._cancel.is_set():
                raise Cancelled("cancelled before it started")
            value = self._work(self._progress, self._cancel.is_set)
        except Cancelled:
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - reported to the person, never raised
            self.traceback = traceback.format_exc()
            if self._cancel.is_set():
                self.cancelled.emit()
            else:
                self.failed.emit(one_line_error(exc))
        else:
            if self._cancel.is_set() and value is None:
                self.cancelled.emit()
            else:
                self.succeeded.emit(value)
        finally:
            self.done.emit()
            # Hand the object back to the UI thread, so that it is deleted there.
            app = QtCore.QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())


class TaskRunner(QtCore.QObject):
    """Starts tasks in QThreads and keeps them alive until they end."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._running: dict[Task, QtCore.QThread] = {}

    def start(self, task: Task) -> Task:
        thread = QtCore.QThread()
        thread.setObjectName(f"cellqc-{task.name}")
        task.moveToThread(thread)
        thread.started.connect(task.run)
        task.done.connect(thread.quit)
        thread.finished.connect(self._reap)
        self._running[task] = thread
        thread.start()
        return task

    @QtCore.Slot()
    def _reap(self) -> None:
        for task, thread in list(self._running.items()):
            if thread.isFinished():
                thread.wait()
                del self._running[task]
                task.deleteLater()
                thread.deleteLater()

    def busy(self, name: str | None = None) -> bool:
        return any(name is None or t.name == name for t, th in self._running.items() if th.isRunning())

    def cancel_all(self) -> None:
        for task in self._running:
            task.cancel()

    def wait_all(self, timeout_ms: int = 30000) -> bool:
        """Wait for every thread to end (on close); True when all ended."""
        ok = True
        for thread in list(self._running.values()):
            ok = thread.wait(QtCore.QDeadlineTimer(timeout_ms)) and ok
        self._reap()
        return ok
