"""The hot folder: finished scans in, verdicts + reports + log rows out, inputs moved away.

A scanner (or a person) drops volumes into FOLDER. A scan is *finished* when

* ``marker`` is set (e.g. ``.done``): a marker file ``NAME.done`` (or ``STEM.done``) exists
  beside it; or else
* its size, file count and newest modification time have not changed for
  ``stable_seconds`` (checked against the previous poll too when there is one).

Each finished scan is inspected in this process, its result JSON and PDF report go to
``reports/`` (``<cell>_<inspection>.json|pdf``), the inspection is filed in the log, and the
input (with its raw sidecar and marker) moves to ``done/`` — or to ``failed/`` with
``NAME.reason.txt`` when it could not be inspected. A FAIL verdict is a finished
inspection: the input goes to ``done/``; the log and the report say FAIL.

Restarts lose and repeat nothing. The state of each scan is a ``watch_items`` row in the log
(``running`` → ``filed`` → ``done``/``failed``), written in the same transactions as the
inspection rows (:mod:`qc_app.batch.ledger`):

* a crash mid-inspection leaves the item ``running``: the next start re-runs that scan, once
  — after ``max_attempts`` interrupted runs it goes to ``failed/`` instead, so a scan that
  kills the process cannot loop forever;
* a crash after filing leaves it ``filed``: the next start only moves the input;
* a crash during the move is finished from the destination recorded before moving.

One watcher per folder: a lock file (``.cellqc-watch.lock``) refuses a second one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.recipe import Recipe
from core.store.base import utc_now
from core.store.watch_items import (
    active_watch_item,
    get_watch_item,
    insert_watch_item,
    release_stale_watch_items,
    update_watch_item,
    watch_items,
)
from qc_app.batch.inputs import BatchItem, Fingerprint, companion_files, fingerprint
from qc_app.batch.ledger import file_outcome, open_cell, output_paths, read_header
from qc_app.batch.worker import CellOutcome, CellTask, run_cell

LOCK_NAME = ".cellqc-watch.lock"
#: Suffixes of files a scanner is still writing (never picked up).
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".filepart", ".lock")


def volume_suffixes() -> tuple[str, ...]:
    """File extensions of volumes the hot folder picks up (folders are always candidates)."""
    from core.io.hdf5 import HDF5_SUFFIXES
    from core.io.raw import RAW_SUFFIXES
    from core.io.tiff import TIFF_SUFFIXES

    return (*TIFF_SUFFIXES, *HDF5_SUFFIXES, *RAW_SUFFIXES, ".npy")


@dataclass
class WatchOptions:
    """How a hot folder runs.

    Attributes
    ----------
    folder : path
        The watched folder.
    recipe : core.recipe.Recipe or None
        None: each cell's recipe is chosen from its can.
    db_path : path
        The SQLite log (also holds the hot folder's state).
    out_dir : path, optional
        Result JSON and PDF reports; default ``FOLDER/reports``.
    report : bool
        Write PDF reports.
    stable_seconds : float
        A scan without a marker is finished once unchanged this long.
    marker : str, optional
        Suffix of marker files (``.done``): only scans with a marker are picked up.
    voxel_size, dataset, operator : optional
        As for ``cellqc inspect``.
    max_attempts : int
        Runs of one scan (a first run plus re-runs after crashes) before it is given up.
    """

    folder: str | Path
    recipe: Recipe | None
    db_path: str | Path
    out_dir: str | Path | None = None
    report: bool = True
    stable_seconds: float = 10.0
    marker: str | None = None
    voxel_size: Any = None
    dataset: str | None = None
    operator: str | None = None
    max_attempts: int = 2


@dataclass
class WatchEvent:
    """What happened to one scan.

    Attributes
    ----------
    name : str
        The scan's name in the folder.
    outcome : {"PASS", "FAIL", "REVIEW", "ERROR"}
    cell_id : str or None
    inspection_id : int or None
    moved_to : str or None
        Where the input went (``done/...`` or ``failed/...``).
    reason : str
        Why it failed (ERROR) or what was recovered.
    recovered : bool
        The scan was left unfinished by an earlier run and finished by this one.
    attempts : int
        Runs of this scan so far.
    n_findings : int or None
    """

    name: str
    outcome: str
    cell_id: str | None = None
    inspection_id: int | None = None
    moved_to: str | None = None
    reason: str = ""
    recovered: bool = False
    attempts: int = 0
    n_findings: int | None = None


@dataclass
class _Seen:
    fp: Fingerprint
    since: float = field(default_factory=time.monotonic)


class FolderLock:
    """An exclusive lock on a hot folder (``flock`` on a lock file; a no-op where unsupported).

    Parameters
    ----------
    folder : path
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_NAME
        self._fh: Any = None

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        core.errors.InputError
            Another process holds it.
        """
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            import fcntl
        except ImportError:  # Windows: no lock (one watcher per folder is then the user's job)
            self._fh = fh
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise InputError(self.path.parent, f"another cellqc watch is already running here ({owner})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{socket.gethostname()}:{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        """Let go of the lock."""
        if self._fh is not None:
            with contextlib.suppress(Exception):
                self._fh.close()
            self._fh = None


class HotFolder:
    """A watched folder; use as a context manager, then :meth:`poll` or :meth:`run`.

    Parameters
    ----------
    options : WatchOptions

    Examples
    --------
    >>> with HotFolder(WatchOptions(folder, recipe, db_path)) as hot:   # doctest: +SKIP
    ...     events = hot.poll()
    """

    def __init__(self, options: WatchOptions):
        self.options = options
        self.folder = Path(options.folder).resolve()
        self.done_dir = self.folder / "done"
        self.failed_dir = self.folder / "failed"
        self.out_dir = Path(options.out_dir).resolve() if options.out_dir else self.folder / "reports"
        self.db: Any = None
        self._lock = FolderLock(self.folder)
        self._seen: dict[str, _Seen] = {}
        self._suffixes = volume_suffixes()
        self.waiting: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> HotFolder:
        """Take the folder's lock, open the log, and mark every unfinished item as stale.

        Raises
        ------
        core.errors.InputError
            The folder does not exist, another watcher runs on it, or the log cannot be opened.
        """
        from core.store import open_log

        if not self.folder.is_dir():
            raise InputError(self.folder, "the hot folder does not exist or is not a folder")
        self._lock.acquire()
        try:
            for d in (self.done_dir, self.failed_dir, self.out_dir):
                d.mkdir(parents=True, exist_ok=True)
            self.db = open_log(self.options.db_path)
            self._release_stale()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the log and release the lock."""
        if self.db is not None:
            self.db.close()
            self.db = None
        self._lock.release()

    def __enter__(self) -> HotFolder:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state rows
    def _item(self, name: str) -> dict[str, Any] | None:
        return active_watch_item(self.db, self.folder, name)

    def _update(self, item_id: int, **values: Any) -> None:
        update_watch_item(self.db, item_id, **values)

    def _insert(self, name: str, fp: Fingerprint, **values: Any) -> int:
        return insert_watch_item(
            self.db, folder=str(self.folder), name=name, size_bytes=fp.size_bytes,
            mtime_ns=fp.mtime_ns, n_files=fp.n_files, host=socket.gethostname(), pid=os.getpid(),
            **values)

    def _release_stale(self) -> None:
        """Items left ``running`` by an earlier run are not owned by anyone now (we hold the lock)."""
        release_stale_watch_items(self.db, self.folder)

    # ------------------------------------------------------------------ scanning
    def _is_candidate(self, entry: Path) -> bool:
        name = entry.name
        if name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES) or name.endswith(".reason.txt"):
            return False
        if self.options.marker and name.endswith(self.options.marker):
            return False
        if entry.is_dir():
            return entry.resolve() not in (self.done_dir, self.failed_dir, self.out_dir)
        if entry.suffix.lower() not in self._suffixes:
            return False
        return True

    def _marker_files(self, name: str) -> list[Path]:
        marker = self.options.marker
        if not marker:
            return []
        stem = Path(name).stem
        names = dict.fromkeys([name + marker, stem + marker])
        return [self.folder / n for n in names if (self.folder / n).is_file()]

    def candidates(self) -> list[tuple[str, Fingerprint]]:
        """Finished scans in the folder, oldest first; updates :attr:`waiting`.

        Returns
        -------
        list of (name, Fingerprint)
        """
        ready: list[tuple[str, Fingerprint]] = []
        self.waiting = []
        seen_now: dict[str, _Seen] = {}
        try:
            entries = sorted(self.folder.iterdir())
        except OSError as exc:
            raise InputError(self.folder, f"cannot list the hot folder: {exc}") from None
        for entry in entries:
            if not self._is_candidate(entry):
                continue
            name = entry.name
            try:
                fp = fingerprint(entry)
            except InputError:  # vanished or unreadable right now: look again next time
                continue
            if fp.n_files == 0:  # an empty folder: the scan has not started writing
                self.waiting.append(name)
                continue
            before = self._seen.get(name)
            seen_now[name] = before if before is not None and before.fp == fp else _Seen(fp)
            if self.options.marker:
                ok = bool(self._marker_files(name))
            else:
                age_s = (time.time_ns() - fp.mtime_ns) / 1e9
                unchanged = before is None or before.fp == fp
                ok = age_s >= self.options.stable_seconds and unchanged
            if ok:
                ready.append((name, fp))
            else:
                self.waiting.append(name)
        self._seen = seen_now
        ready.sort(key=lambda item: item[1].mtime_ns)
        return ready

    # ------------------------------------------------------------------ processing
    def poll(self, *, cancel: Callable[[], bool] | None = None,
             on_event: Callable[[WatchEvent], None] | None = None,
             progress: Callable[[float, str], None] | None = None) -> list[WatchEvent]:
        """Finish what an earlier run left, then inspect every finished scan once.

        Parameters
        ----------
        cancel : callable() -> bool, optional
            Stop soon: the current inspection is abandoned (and re-run at the next start,
            without counting as an attempt), no further scan is started.
        on_event : callable(WatchEvent), optional
            Called after each scan.
        progress : callable(fraction, message), optional
            Stage progress of the current inspection.

        Returns
        -------
        list of WatchEvent
        """
        events: list[WatchEvent] = []

        def emit(event: WatchEvent | None) -> None:
            if event is not None:
                events.append(event)
                if on_event is not None:
                    on_event(event)

        from core.store import write_transaction

        for row in watch_items(self.db, self.folder, "filed"):
            emit(self._move(row, recovered=True))
        for row in watch_items(self.db, self.folder, "running", unowned=True):
            if not (self.folder / row["name"]).exists():  # removed while nobody watched
                with write_transaction(self.db):
                    self._update(row["id"], status="failed",
                                 reason="the input disappeared before its inspection completed")
        for name, fp in self.candidates():
            if cancel is not None and cancel():
                break
            emit(self.process(name, fp, cancel=cancel, progress=progress))
        return events

    def run(self, interval_s: float = 5.0, *, stop: Callable[[], bool] | None = None,
            on_event: Callable[[WatchEvent], None] | None = None,
            progress: Callable[[float, str], None] | None = None) -> None:
        """Poll every ``interval_s`` seconds until ``stop()`` returns True."""
        stop = stop or (lambda: False)
        while not stop():
            self.poll(cancel=stop, on_event=on_event, progress=progress)
            deadline = time.monotonic() + interval_s
            while not stop() and time.monotonic() < deadline:
                time.sleep(min(0.2, interval_s))

    def process(self, name: str, fp: Fingerprint, *, cancel: Callable[[], bool] | None = None,
                progress: Callable[[float, str], None] | None = None) -> WatchEvent | None:
        """Inspect one finished scan, file it and move it (or finish an interrupted one).

        Parameters
        ----------
        name : str
            The scan's name in the folder.
        fp : Fingerprint
            Its fingerprint when found finished.
        cancel, progress : optional
            See :meth:`poll`.

        Returns
        -------
        WatchEvent or None
            None when the scan was left for later (cancelled, or it changed meanwhile).
        """
        from core.store import write_transaction

        path = self.folder / name
        try:
            if fingerprint(path) != fp:  # still being written after all
                return None
        except InputError:
            return None
        item = self._item(name)
        attempts, recovered = 0, False
        if item is not None:
            same = (item["size_bytes"], item["mtime_ns"], item["n_files"]) == (fp.size_bytes, fp.mtime_ns, fp.n_files)
            if item["status"] == "filed":
                return self._move(item, recovered=True)
            if item["pid"] is not None:  # claimed by this very run and still running: not ours to touch
                return None
            if not same:
                with write_transaction(self.db):
                    self._update(item["id"], status="failed", reason="the input was replaced while interrupted")
                item = None
            else:
                attempts, recovered = int(item["attempts"]), True
                if attempts >= self.options.max_attempts:
                    reason = (f"the inspection was interrupted {attempts} time(s) (the process ended "
                              "mid-inspection); not retried")
                    with write_transaction(self.db):
                        self._update(item["id"], status="filed", outcome="ERROR", reason=reason)
                    return self._move(self._reload(item["id"]), recovered=True)
        # Read the header (cell id, shape); an unreadable input goes straight to failed/.
        try:
            header = read_header(BatchItem(str(path)), voxel_size=self.options.voxel_size,
                                 dataset=self.options.dataset)
        except InputError as exc:
            with write_transaction(self.db):
                if item is None:
                    item_id = self._insert(name, fp, status="filed", attempts=1, outcome="ERROR",
                                           reason=str(exc))
                else:
                    item_id = item["id"]
                    self._update(item_id, status="filed", attempts=attempts + 1, outcome="ERROR",
                                 reason=str(exc), pid=os.getpid())
            return self._move(self._reload(item_id), recovered=recovered)

        item_ref: dict[str, int] = {}

        def claim(db: Any, inspection_id: int | None) -> None:
            if item is None:
                item_ref["id"] = self._insert(name, fp, status="running", attempts=1,
                                              inspection_id=inspection_id)
            else:
                item_ref["id"] = item["id"]
                self._update(item["id"], status="running", attempts=attempts + 1,
                             inspection_id=inspection_id, host=socket.gethostname(), pid=os.getpid(),
                             outcome=None, reason=None)

        iid = open_cell(self.db, path=str(path), header=header, fp=fp, recipe=self.options.recipe,
                        operator=self.options.operator, also=claim)
        json_out, report_out = output_paths(self.out_dir, header.cell_id, iid, report=self.options.report)
        from core.store import audit_head

        head = audit_head(self.db)
        task = CellTask(path=str(path), cell_id=header.cell_id, recipe=self.options.recipe,
                        inspection_id=iid, voxel_size=self.options.voxel_size, dataset=self.options.dataset,
                        json_out=json_out, report_out=report_out, operator=self.options.operator,
                        audit_head=None if head is None else head.as_dict())
        outcome = run_cell(task, progress=progress, cancel=cancel)
        item_id = item_ref["id"]
        if outcome.error_kind == "cancelled":
            from core.store import fail_inspection

            with write_transaction(self.db):
                fail_inspection(self.db, iid, "cancelled: the hot folder was stopped")
                # Not an attempt: the next start runs it again as if it had not begun.
                self._update(item_id, attempts=attempts, pid=None)
            return None

        def filed(db: Any, inspection_id: int | None) -> None:
            self._update(item_id, status="filed", outcome=_outcome_name(outcome),
                         reason=outcome.error or None)

        outcome = file_outcome(self.db, outcome, also=filed)
        return self._move(self._reload(item_id), recovered=recovered, outcome=outcome)

    def _reload(self, item_id: int) -> dict[str, Any]:
        return get_watch_item(self.db, item_id)

    # ------------------------------------------------------------------ moving
    def _move(self, item: dict[str, Any], *, recovered: bool = False,
              outcome: CellOutcome | None = None) -> WatchEvent:
        """Move a filed scan to done/ or failed/ (destination recorded first), mark it finished."""
        from core.store import write_transaction

        name = item["name"]
        failed = item["outcome"] == "ERROR"
        src = self.folder / name
        dest = Path(item["moved_to"]) if item["moved_to"] else None
        if dest is None or (src.exists() and dest.exists()):
            dest = _free_path((self.failed_dir if failed else self.done_dir) / name)
            with write_transaction(self.db):
                self._update(item["id"], moved_to=str(dest))
        companions = companion_files(src) if src.exists() else []
        markers = self._marker_files(name)
        if src.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dest))
        for extra in [*companions, *markers]:
            with contextlib.suppress(OSError):
                shutil.move(str(extra), str(_free_path(dest.parent / extra.name)))
        if failed:
            _write_reason(dest, item)
        with write_transaction(self.db):
            self._update(item["id"], status="failed" if failed else "done")
        cell_id = outcome.cell_id if outcome is not None else None
        n_findings = None
        if outcome is not None and outcome.result is not None:
            n_findings = len(outcome.result.get("findings") or [])
        elif item["inspection_id"] is not None:
            from core.store import get_inspection

            with contextlib.suppress(InputError):  # no such inspection: nothing to show
                row = get_inspection(self.db, item["inspection_id"])
                cell_id, n_findings = row["cell_id"], row["n_findings"]
        return WatchEvent(name=name, outcome=item["outcome"] or "ERROR", cell_id=cell_id,
                          inspection_id=item["inspection_id"], moved_to=str(dest),
                          reason=item["reason"] or "", recovered=recovered,
                          attempts=int(item["attempts"] or 0), n_findings=n_findings)


def _outcome_name(outcome: CellOutcome) -> str:
    return outcome.verdict if outcome.ok and outcome.verdict else "ERROR"


def _free_path(path: Path) -> Path:
    """``path``, or ``stem~N.suffix`` beside it when that name is taken."""
    if not path.exists():
        return path
    suffix = path.suffix if path.is_file() or path.suffix else ""
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    n = 1
    while True:
        candidate = path.with_name(f"{stem}~{n}{suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def _write_reason(dest: Path, item: dict[str, Any]) -> None:
    """``failed/NAME.reason.txt``: why the scan could not be inspected (written atomically)."""
    reason_path = dest.with_name(dest.name + ".reason.txt")
    lines = [
        f"cellqc watch could not inspect {item['name']}",
        f"reason: {item['reason'] or 'unknown'}",
        f"inspection: #{item['inspection_id']}" if item["inspection_id"] else "inspection: none (input unreadable)",
        f"attempts: {item['attempts']}",
        f"at: {utc_now()}",
    ]
    from core.fileio import atomic_write

    atomic_write(reason_path, "\n".join(lines) + "\n")
