"""The watched folder: volumes the scanner drops there queue up for the operator.

A file (or a Zarr folder, or a folder of TIFF slices) enters the queue once it has stopped
changing: same size and modification time on two polls in a row, so a volume still being
written is never opened half-way. The folder is polled (network shares do not always send
change notifications) and :class:`QFileSystemWatcher` makes new files show up sooner.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6 import QtCore

#: Suffixes of volume files the queue picks up.
VOLUME_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5", ".hdf", ".nxs", ".nx", ".npy", ".raw", ".zarr")
IGNORED_PREFIXES = (".", "~")


def _signature(path: Path) -> tuple[int, float] | None:
    """(size, mtime) of a file, or of a folder's content; None when it vanished."""
    try:
        if path.is_dir():
            total, latest = 0, path.stat().st_mtime
            for entry in os.scandir(path):
                st = entry.stat()
                total += st.st_size
                latest = max(latest, st.st_mtime)
            return total, latest
        st = path.stat()
        return st.st_size, st.st_mtime
    except OSError:
        return None


def is_volume_candidate(path: Path) -> bool:
    """Whether ``path`` in the watched folder looks like a volume to inspect."""
    name = path.name
    if name.startswith(IGNORED_PREFIXES) or name.endswith((".part", ".tmp", ".json", ".pdf")):
        return False
    if path.is_dir():
        if name.lower().endswith(".zarr"):
            return True
        try:
            tiffs = [e for e in os.scandir(path) if e.name.lower().endswith((".tif", ".tiff"))]
        except OSError:
            return False
        return len(tiffs) >= 2
    return path.suffix.lower() in VOLUME_SUFFIXES


class FolderQueue(QtCore.QObject):
    """Watches one folder; emits ``added(path)`` for each volume that is complete."""

    added = QtCore.Signal(str)
    folder_changed = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None, poll_ms: int = 2000):
        super().__init__(parent)
        self.folder: Path | None = None
        self.pending: list[str] = []
        self._seen: set[str] = set()
        self._growing: dict[str, tuple[int, float]] = {}
        self._watcher = QtCore.QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(lambda _: self.poll())
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll)

    def watch(self, folder: str | os.PathLike[str], *, include_existing: bool = True) -> None:
        """Start watching ``folder``; volumes already there queue too unless told otherwise."""
        folder = Path(folder)
        if self._watcher.directories():
            self._watcher.removePaths(self._watcher.directories())
        self.folder = folder
        self.pending.clear()
        self._seen.clear()
        self._growing.clear()
        if not include_existing and folder.is_dir():
            self._seen.update(str(p) for p in folder.iterdir())
        if folder.is_dir():
            self._watcher.addPath(str(folder))
        self._timer.start()
        self.folder_changed.emit(str(folder))
        self.poll()

    def stop(self) -> None:
        self._timer.stop()
        if self._watcher.directories():
            self._watcher.removePaths(self._watcher.directories())
        self.folder = None
        self.folder_changed.emit("")

    @QtCore.Slot()
    def poll(self) -> None:
        """Look at the folder once: new volumes start growing-checks, stable ones queue."""
        if self.folder is None or not self.folder.is_dir():
            return
        try:
            entries = sorted(self.folder.iterdir(), key=lambda p: p.name)
        except OSError:
            return
        for path in entries:
            key = str(path)
            if key in self._seen or not is_volume_candidate(path):
                continue
            sig = _signature(path)
            if sig is None:
                continue
            if self._growing.get(key) == sig:  # unchanged since the last poll: complete
                del self._growing[key]
                self._seen.add(key)
                self.pending.append(key)
                self.added.emit(key)
            else:
                self._growing[key] = sig

    def enqueue(self, path: str | os.PathLike[str]) -> None:
        """Add a volume by hand (dropped on the window while busy)."""
        key = str(path)
        if key not in self.pending:
            self._seen.add(key)
            self.pending.append(key)
            self.added.emit(key)

    def take(self, path: str | None = None) -> str | None:
        """Remove and return ``path`` (or the oldest pending volume) from the queue."""
        if not self.pending:
            return None
        if path is None:
            return self.pending.pop(0)
        if path in self.pending:
            self.pending.remove(path)
            return path
        return None

    def find(self, cell_id: str) -> str | None:
        """The pending volume whose file name contains ``cell_id`` (case-insensitive)."""
        needle = cell_id.strip().lower()
        if not needle:
            return None
        for path in self.pending:
            if needle in Path(path).name.lower():
                return path
        return None
