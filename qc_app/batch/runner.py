"""Batch inspection with Dask distributed: many cells in parallel, one writer of the log.

:func:`run_batch` plans the batch (cells whose unchanged input was already inspected with
the same recipe are skipped), then sends the others to Dask workers — a
``LocalCluster`` of processes with one thread each by default, or the workers of an
existing scheduler — at most two per worker at a time. Workers read, inspect and write the
JSON and PDF; they never open the log. This process, the only writer, opens each cell's
``running`` row before sending it and files its outcome when it returns
(:mod:`qc_app.batch.ledger`). A cell that fails is filed ``failed`` with its reason and the
batch goes on. ``workers=0`` runs the cells one after the other in this process, without
Dask (the baseline of the benchmarks, and a fallback for debugging).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.recipe import Recipe, shipped_recipes
from qc_app.batch.inputs import BatchItem, Fingerprint, fingerprint
from qc_app.batch.ledger import file_outcome, find_previous, open_cell, output_paths, read_header
from qc_app.batch.worker import CellOutcome, CellTask, run_cell, worker_version

#: Exit codes of a batch (as ``cellqc inspect``): all PASS, any FAIL, any error, REVIEW only.
EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_REVIEW = 0, 1, 2, 3
#: Environment of LocalCluster workers: one thread each, also inside numeric libraries.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class BatchOptions:
    """How a batch runs.

    Attributes
    ----------
    recipe : core.recipe.Recipe or None
        The loaded recipe (its hash decides which cells are already done), or None: each
        cell's recipe is chosen from its can (:func:`core.recipe.select_recipe`).
    db_path : path
        The SQLite log.
    out_dir : path or None
        Where the JSON results and PDF reports go (none when None).
    report : bool
        Write PDF reports (with ``out_dir``).
    voxel_size : optional
        Overrides every file's voxel size (a manifest's own column wins).
    dataset : str, optional
        Array inside HDF5/Zarr inputs.
    operator : str, optional
        Who runs the batch.
    workers : int
        LocalCluster workers (processes, one thread each); 0 runs in this process.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); overrides ``workers``.
    checksum : bool
        Fingerprint inputs by SHA-256 as well (a touched but unchanged file is still skipped).
    force : bool
        Inspect every cell again, even when already done.
    memory_limit : str or float
        Memory limit of each LocalCluster worker (Dask syntax, ``"auto"`` shares the RAM).
    """

    recipe: Recipe | None
    db_path: str | Path
    out_dir: str | Path | None = None
    report: bool = True
    voxel_size: Any = None
    dataset: str | None = None
    operator: str | None = None
    workers: int = 2
    scheduler: str | None = None
    checksum: bool = False
    force: bool = False
    memory_limit: str | float = "auto"


@dataclass
class CellRow:
    """One line of the batch summary.

    Attributes
    ----------
    path : str
        The input.
    cell_id : str or None
    status : {"PASS", "FAIL", "REVIEW", "ERROR"}
    skipped : bool
        Already inspected (the verdict is the logged one).
    inspection_id : int or None
    n_findings : int or None
    elapsed_s : float or None
        Time on the worker.
    cpu_s : float or None
        CPU time on the worker.
    error_kind : {"input", "internal", "cancelled"} or None
    note : str
        The error, or what the skip refers to.
    worker : str
        ``host:pid`` of the worker.
    voxels : int
        Voxels inspected (0 when skipped or failed early).
    """

    path: str
    cell_id: str | None
    status: str
    skipped: bool = False
    inspection_id: int | None = None
    n_findings: int | None = None
    elapsed_s: float | None = None
    cpu_s: float | None = None
    error_kind: str | None = None
    note: str = ""
    worker: str = ""
    voxels: int = 0


@dataclass
class BatchSummary:
    """Every cell's row plus how the batch ran.

    Attributes
    ----------
    rows : list of CellRow
        In completion order (skipped and unreadable cells first).
    total : int
        Cells in the batch.
    wall_s : float
        Wall time of the batch (planning included).
    workers : int
        Workers used (0: in this process).
    scheduler : str or None
        The scheduler's address (LocalCluster's or the given one).
    """

    rows: list[CellRow] = field(default_factory=list)
    total: int = 0
    wall_s: float = 0.0
    workers: int = 0
    scheduler: str | None = None

    def count(self, status: str, *, skipped: bool | None = None) -> int:
        """How many rows have this status (and skip flag, when given)."""
        return sum(1 for r in self.rows if r.status == status and (skipped is None or r.skipped == skipped))

    @property
    def inspected(self) -> list[CellRow]:
        """Rows of cells inspected in this run (not skipped, not failed)."""
        return [r for r in self.rows if not r.skipped and r.status != "ERROR"]

    @property
    def input_errors(self) -> int:
        """Cells that could not be inspected because of their input."""
        return sum(1 for r in self.rows if r.status == "ERROR" and r.error_kind == "input")

    @property
    def exit_code(self) -> int:
        """2 when any cell could not be inspected; else 1 any FAIL, 3 any REVIEW, 0 all PASS."""
        return exit_code(self.rows)


def exit_code(rows: list[CellRow]) -> int:
    """The batch's exit code from its rows (skipped cells count with their logged verdict).

    Parameters
    ----------
    rows : list of CellRow

    Returns
    -------
    int
        2 if any cell could not be inspected (input error, internal error, cancel); else 1 if
        any FAIL; else 3 if any REVIEW; else 0.
    """
    statuses = {r.status for r in rows}
    if "ERROR" in statuses:
        return EXIT_ERROR
    if "FAIL" in statuses:
        return EXIT_FAIL
    if "REVIEW" in statuses:
        return EXIT_REVIEW
    return EXIT_PASS


OnRow = Callable[[CellRow, BatchSummary], None]


def _row_from_outcome(outcome: CellOutcome) -> CellRow:
    if outcome.ok and outcome.result is not None:
        return CellRow(outcome.path, outcome.cell_id, outcome.result["verdict"],
                       inspection_id=outcome.inspection_id,
                       n_findings=len(outcome.result.get("findings") or []),
                       elapsed_s=outcome.elapsed_s, cpu_s=outcome.cpu_s, worker=outcome.worker,
                       voxels=outcome.voxels)
    return CellRow(outcome.path, outcome.cell_id, "ERROR", inspection_id=outcome.inspection_id,
                   elapsed_s=outcome.elapsed_s, error_kind=outcome.error_kind or "internal",
                   note=outcome.error, worker=outcome.worker)


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None = None, *,
                memory_limit: str | float = "auto") -> Iterator[Any]:
    """A Dask client: on an existing scheduler, or on a new LocalCluster of processes.

    Parameters
    ----------
    workers : int
        LocalCluster workers (one thread each); ignored with ``scheduler``.
    scheduler : str, optional
        Address of a running scheduler.
    memory_limit : str or float
        Per-worker memory limit of the LocalCluster.

    Yields
    ------
    distributed.Client

    Raises
    ------
    core.errors.InputError
        The scheduler cannot be reached, has no workers, or its workers run another
        cellqc version (or none).
    """
    from core.extras import require_extra

    require_extra("batch", "cellqc batch")
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}", f"cannot connect: {exc}") from None
        try:
            try:
                client.wait_for_workers(1, timeout=30)
            except TimeoutError:
                raise InputError(f"--scheduler {scheduler}", "the scheduler has no workers") from None
            mine = worker_version()
            try:
                theirs = client.run(worker_version)
            except Exception as exc:  # cellqc not importable there
                raise InputError(f"--scheduler {scheduler}",
                                 f"its workers cannot run cellqc: {type(exc).__name__}: {exc}") from None
            other = {addr: v for addr, v in theirs.items() if v != mine}
            if other:
                addr, version = next(iter(other.items()))
                raise InputError(f"--scheduler {scheduler}",
                                 f"worker {addr} runs cellqc {version}, this client {mine}")
            yield client
        finally:
            client.close()
        return
    # A worker that dies (out of memory) takes its one cell with it; retry that cell once.
    # Dask's default MALLOC_TRIM_THRESHOLD_=65536 makes glibc give every freed array back to
    # the OS at once: measured +40 % per inspection (many medium-sized numpy temporaries).
    # Workers keep glibc's own adaptive threshold instead.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.nanny.pre-spawn-environ": dict(WORKER_ENV)}):
        cluster = LocalCluster(n_workers=max(1, int(workers)), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR,
                               memory_limit=memory_limit)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


def recipe_hashes(recipe: Recipe | None) -> list[str]:
    """The recipe hashes under which a cell counts as already inspected: the batch's recipe, or
    (recipe chosen per cell) any shipped recipe as it is now."""
    return [recipe.sha256] if recipe is not None else [r.sha256 for r in shipped_recipes()]


def plan_batch(items: list[BatchItem], db: Any, recipe: Recipe | None, *, checksum: bool = False,
               force: bool = False) -> tuple[list[tuple[BatchItem, Fingerprint]], list[CellRow]]:
    """Split a batch into cells to inspect and cells already done (or unreadable).

    Parameters
    ----------
    items : list of BatchItem
    db : sqlite_utils.Database
        The open log.
    recipe : core.recipe.Recipe
    checksum : bool
        Hash every input too.
    force : bool
        Skip nothing.

    Returns
    -------
    (list of (BatchItem, Fingerprint), list of CellRow)
        The cells to inspect, and the rows of skipped cells and of inputs that do not exist.
    """
    todo: list[tuple[BatchItem, Fingerprint]] = []
    rows: list[CellRow] = []
    for item in items:
        try:
            fp = fingerprint(item.path, checksum=checksum)
        except InputError as exc:
            rows.append(CellRow(item.path, item.cell_id, "ERROR", error_kind="input", note=str(exc)))
            continue
        previous = None if force else find_previous(db, item.path, fp, recipe_hashes(recipe))
        if previous is not None and previous["verdict"]:
            rows.append(CellRow(item.path, previous["cell_id"], previous["verdict"], skipped=True,
                                inspection_id=previous["id"], n_findings=previous["n_findings"],
                                note=f"already inspected (#{previous['id']}, {previous['finished_at']})"))
        else:
            todo.append((item, fp))
    return todo, rows


def run_batch(items: list[BatchItem], options: BatchOptions, *, on_row: OnRow | None = None) -> BatchSummary:
    """Inspect many cells; file every outcome in the log from this process only.

    Parameters
    ----------
    items : list of BatchItem
        From :func:`qc_app.batch.inputs.expand_inputs`.
    options : BatchOptions
    on_row : callable(CellRow, BatchSummary), optional
        Called in this process for every finished, skipped or failed cell (a progress bar).

    Returns
    -------
    BatchSummary

    Raises
    ------
    core.errors.InputError
        The log cannot be opened, or the scheduler cannot be used.
    KeyboardInterrupt
        After marking the cells in flight ``failed`` ("cancelled").
    """
    from core.store import audit_head, fail_inspection, open_log

    t0 = time.perf_counter()
    summary = BatchSummary(total=len(items))

    def add(row: CellRow) -> None:
        summary.rows.append(row)
        summary.wall_s = time.perf_counter() - t0
        if on_row is not None:
            on_row(row, summary)

    db = open_log(options.db_path)
    inflight: dict[Any, Any] = {}  # inspection id -> its future (or id in this process)
    try:
        todo, early = plan_batch(items, db, options.recipe, checksum=options.checksum, force=options.force)
        for row in early:
            add(row)
        pending = deque(todo)

        def start_next() -> CellTask | None:
            """Open the next readable cell's row and build its task (None when none is left)."""
            while pending:
                item, fp = pending.popleft()
                try:
                    header = read_header(item, voxel_size=options.voxel_size, dataset=options.dataset)
                except InputError as exc:
                    add(CellRow(item.path, item.cell_id, "ERROR", error_kind="input", note=str(exc)))
                    continue
                iid = open_cell(db, path=item.path, header=header, fp=fp, recipe=options.recipe,
                                operator=options.operator)
                json_out, report_out = output_paths(options.out_dir, header.cell_id, iid,
                                                    report=options.report)
                head = audit_head(db)
                return CellTask(path=item.path, cell_id=header.cell_id, recipe=options.recipe,
                                inspection_id=iid, voxel_size=item.voxel_size or options.voxel_size,
                                dataset=options.dataset, json_out=json_out, report_out=report_out,
                                operator=options.operator,
                                audit_head=None if head is None else head.as_dict())
            return None

        def finish(outcome: CellOutcome) -> None:
            inflight.pop(outcome.inspection_id, None)
            add(_row_from_outcome(file_outcome(db, outcome)))

        if not pending:
            pass  # everything skipped or unreadable: no cluster needed
        elif options.workers <= 0 and not options.scheduler:
            summary.workers = 0
            while (task := start_next()) is not None:
                inflight[task.inspection_id] = task.inspection_id
                finish(run_cell(task))
        else:
            _run_distributed(options, summary, start_next, finish, inflight)
    except BaseException:
        for iid in list(inflight):
            with contextlib.suppress(Exception):
                fail_inspection(db, iid, "cancelled: the batch was stopped")
        raise
    finally:
        db.close()
    summary.wall_s = time.perf_counter() - t0
    return summary


def _run_distributed(options: BatchOptions, summary: BatchSummary,
                     start_next: Callable[[], CellTask | None],
                     finish: Callable[[CellOutcome], None], inflight: dict[Any, Any]) -> None:
    """Keep every worker busy (two tasks each at most in flight) and file results as they come."""
    from core.extras import require_extra

    require_extra("batch", "cellqc batch")
    from distributed import as_completed

    with dask_client(options.workers, options.scheduler, memory_limit=options.memory_limit) as client:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        summary.workers = n_workers
        summary.scheduler = client.scheduler_info().get("address")
        limit = 2 * n_workers
        futures: dict[Any, CellTask] = {}
        done = as_completed()

        def fill() -> None:
            while len(futures) < limit:
                task = start_next()
                if task is None:
                    return
                future = client.submit(run_cell, task, key=f"cellqc-cell-{task.inspection_id}",
                                       pure=False)
                futures[future.key] = task
                inflight[task.inspection_id] = future
                done.add(future)

        try:
            fill()
            for future in done:
                task = futures.pop(future.key)
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died (memory?) or the task was lost
                    outcome = CellOutcome(path=task.path, cell_id=task.cell_id,
                                          inspection_id=task.inspection_id, ok=False,
                                          error_kind="internal",
                                          error=f"{task.path}: the worker failed: {type(exc).__name__}: {exc}")
                future.release()
                finish(outcome)
                fill()
        except BaseException:
            for future in list(inflight.values()):
                if hasattr(future, "cancel"):
                    with contextlib.suppress(Exception):
                        future.cancel()
            raise
