"""The work of one cell, as run on a worker: read, inspect, write JSON and PDF. No log.

:func:`run_cell` is what a batch sends to Dask workers (and what the hot folder calls in
its own process). It never touches the SQLite log: it returns a :class:`CellOutcome`, and the
one process that owns the log files it (:mod:`qc_app.batch.ledger`). It never raises either:
an error becomes an outcome with ``ok=False``, its kind (``input``, ``internal``,
``cancelled``) and one line saying what went wrong, so that one bad cell cannot stop a batch
and no exception has to survive pickling between processes.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.recipe import Recipe


@dataclass(frozen=True)
class CellTask:
    """Everything a worker needs to inspect one cell (picklable).

    Attributes
    ----------
    path : str
        The volume.
    cell_id : str
        The id the inspection is filed under (decided by the client from the file).
    recipe : core.recipe.Recipe
        The loaded recipe (its hash is what the log records).
    inspection_id : int or None
        The ``running`` row the client opened for this cell (shown in the PDF).
    voxel_size : str, float, tuple or None
        Overrides the file's voxel size.
    dataset : str or None
        Array inside an HDF5/Zarr file.
    json_out, report_out : str or None
        Where to write the result JSON and the PDF report.
    operator : str or None
        Who runs the batch.
    audit_head : dict or None
        The log's audit chain head when the cell was opened (``AuditHead.as_dict()``); the
        JSON and PDF carry it (workers never open the log).
    """

    path: str
    cell_id: str
    recipe: Recipe | None
    inspection_id: int | None = None
    voxel_size: Any = None
    dataset: str | None = None
    json_out: str | None = None
    report_out: str | None = None
    operator: str | None = None
    audit_head: dict[str, Any] | None = None


@dataclass
class CellOutcome:
    """What came of one cell (picklable; small: no volume, no maps; the thickness summary is at most a few hundred kB).

    Attributes
    ----------
    path, cell_id, inspection_id : as in the task.
    ok : bool
        The inspection finished and produced a verdict.
    result : dict or None
        The inspection result (schema ``cellqc.inspection/1``) when ``ok``.
    error_kind : {"input", "internal", "cancelled"} or None
        Why it did not finish: bad input (a file or a volume that cannot be inspected), a
        bug, or a cancel.
    error : str
        One line.
    json_path, report_path, report_sha256 : str or None
        The files written.
    elapsed_s : float
        Wall time on the worker.
    cpu_s : float
        CPU time of the worker process for this cell (below ``elapsed_s`` when the machine
        is shared).
    worker : str
        ``host:pid`` of the process that ran it.
    peak_rss_bytes : int
        The worker process's peak resident memory so far.
    voxels : int
        Voxels of the inspected volume.
    report_data : bytes or None
        The thickness summary the result names in ``report_data`` (a few hundred kB at most),
        kept beside the log when the outcome is filed (:mod:`core.report.keep`).
    """

    path: str
    cell_id: str
    inspection_id: int | None
    ok: bool
    result: dict[str, Any] | None = None
    error_kind: str | None = None
    error: str = ""
    json_path: str | None = None
    report_path: str | None = None
    report_sha256: str | None = None
    report_data: bytes | None = None
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    worker: str = ""
    peak_rss_bytes: int = 0
    voxels: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str | None:
        """PASS / FAIL / REVIEW, or None when the cell was not inspected."""
        return self.result.get("verdict") if self.result else None


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (``ru_maxrss``; 0 where unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def worker_version() -> str:
    """The cellqc version installed where this runs (checked on remote workers)."""
    from core import __version__

    return __version__


def run_cell(task: CellTask, *, progress: Callable[[float, str], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> CellOutcome:
    """Inspect one cell and write its JSON and PDF; never raises for a bad cell.

    Parameters
    ----------
    task : CellTask
        What to inspect and where to write.
    progress : callable(fraction, message), optional
        Stage progress (in-process use only).
    cancel : callable() -> bool, optional
        Polled between slices (in-process use only).

    Returns
    -------
    CellOutcome
    """
    from core.errors import Cancelled, CellQCError, InputError
    from core.filing import exported_result, report_inputs, write_json_atomic
    from core.inspect import inspect_volume
    from core.io import read_volume
    from core.store.audit import head_from_dict

    t0, c0 = time.perf_counter(), time.process_time()
    outcome = CellOutcome(path=task.path, cell_id=task.cell_id, inspection_id=task.inspection_id,
                          ok=False, worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        options = {"dataset": task.dataset} if task.dataset else {}
        volume = read_volume(task.path, voxel_size=task.voxel_size, cell_id=task.cell_id, **options)
        read_s = time.perf_counter() - t0
        outcome.voxels = int(volume.shape[0]) * int(volume.shape[1]) * int(volume.shape[2])
        inspection = inspect_volume(volume, task.recipe, cell_id=task.cell_id, progress=progress,
                                    cancel=cancel, operator=task.operator)
        from core.report.keep import attach_report_data

        # Named in the result before the JSON and the PDF are written (the PDF's trace hashes it).
        outcome.report_data = attach_report_data(inspection)
        # The read first, as core.filing times it (before the JSON and the report use the result).
        timings = inspection.result["timings_s"]
        inspection.result["timings_s"] = {"read": read_s, **timings, "total": read_s + timings.get("total", 0.0)}
        head = head_from_dict(task.audit_head)
        if task.json_out:
            write_json_atomic(exported_result(inspection.result, head), task.json_out)
            outcome.json_path = str(task.json_out)
        if task.report_out:
            from core.report import write_report

            try:
                outcome.report_sha256 = write_report(
                    report_inputs(inspection, task.inspection_id, head), task.report_out)
            except (OSError, InputError) as exc:
                if outcome.json_path:  # it would show a verdict the log will not hold
                    Path(outcome.json_path).unlink(missing_ok=True)
                    outcome.json_path = None
                if isinstance(exc, InputError):
                    raise
                raise InputError(task.report_out, f"cannot write the report: {exc.strerror or exc}"
                                 ) from None
            outcome.report_path = str(task.report_out)
        outcome.result = inspection.result
        outcome.ok = True
    except Cancelled:
        outcome.error_kind, outcome.error = "cancelled", "cancelled"
    except CellQCError as exc:
        outcome.error_kind, outcome.error = "input", str(exc)
    except MemoryError:
        outcome.error_kind = "internal"
        outcome.error = f"{task.path}: out of memory while inspecting"
    except Exception as exc:  # a bug: one line, the batch goes on
        outcome.error_kind = "internal"
        outcome.error = f"{task.path}: internal error: {type(exc).__name__}: {exc}"
    finally:
        outcome.elapsed_s = time.perf_counter() - t0
        outcome.cpu_s = time.process_time() - c0
        outcome.peak_rss_bytes = peak_rss_bytes()
    return outcome
