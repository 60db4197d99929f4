"""Per-slice work in worker processes: one policy and one pool for the geometry and detectors.

Half of a slice's work in the geometry and the detectors is Python and small numpy calls that
hold the GIL: on 2 cores threads ran the geometry at 1.6× on an idle machine and 0.9–1.1× on a
shared one, processes at 1.9× (docs/performance.md). joblib's reusable loky executor is used:
its workers are reused between calls and stop after ``IDLE_WORKER_S`` idle (starting them
again costs over a second), they do not re-run the caller's
``__main__`` (a script without a ``__name__`` guard works), and a GUI or server process that
runs threads is never forked. Results are the same as in one process, to the bit.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from core.errors import Cancelled

T = TypeVar("T")

# Worker processes stop after this many idle seconds. Long enough to live through the main
# process's own work between two per-slice stages of a chunk (with joblib's default, 10 s, new
# worker processes were seen starting during a whole cell; a start costs over a second: 1.1 s
# measured with numpy alone); short enough not to hold their memory (≈ 0.3 GiB each) long after
# an inspection.
IDLE_WORKER_S = 60

# Below this many voxels a volume's slices stay in this process: handing slices to worker
# processes (and their first start, ~1 s) would be a large part of the work.
PROCESS_MIN_VOXELS = 40_000_000


def default_workers(n_items: int, requested: int | None = None) -> int:
    """Workers for ``n_items`` independent items: the CPUs (or ``requested``), at most 8."""
    return max(1, min(requested or (os.cpu_count() or 1), n_items, 8))


def processes_allowed() -> bool:
    """Whether work may go to worker processes: not from a frozen (PyInstaller) bundle, and not
    from a daemonic process (a Dask worker of ``cellqc batch``: Python forbids it children, and
    the batch already runs one inspection per core)."""
    import multiprocessing

    return not getattr(sys, "frozen", False) and not multiprocessing.current_process().daemon


def worth_processes(shape: tuple[int, ...], workers: int, forced: bool | None = None) -> bool:
    """Use worker processes for a volume of ``shape``? ``forced`` (True/False) decides when given."""
    if forced is not None:
        return bool(forced) and workers > 1
    voxels = 1
    for n in shape:
        voxels *= int(n)
    return workers > 1 and voxels >= PROCESS_MIN_VOXELS and processes_allowed()


def map_in_processes(task: Callable[[Any], T], items: Iterable[Any], workers: int,
                     cancel: Callable[[], bool] | None = None) -> Iterator[T]:
    """Results of ``task`` on ``items``, in order, from worker processes.

    ``task`` must be a module-level function (or a ``functools.partial`` of one) and the items
    picklable. At most two items per worker are in flight, so only that many are read ahead and
    held (all of a chunk's slices at once would double the inspection's memory). ``cancel`` is
    checked while waiting; :class:`core.errors.Cancelled` drops what has not started.
    """
    from concurrent.futures import TimeoutError as FutureTimeout

    from joblib.externals.loky import get_reusable_executor

    executor = get_reusable_executor(max_workers=workers, timeout=IDLE_WORKER_S)

    def check() -> None:
        if cancel is not None and cancel():
            raise Cancelled("cancelled")

    def result(future):
        check()
        while True:
            try:
                return future.result(timeout=0.2)
            except FutureTimeout:
                check()

    in_flight: deque = deque()
    try:
        for item in items:
            if len(in_flight) >= 2 * workers:
                yield result(in_flight.popleft())
            in_flight.append(executor.submit(_quiet_call, task, item))
        while in_flight:
            yield result(in_flight.popleft())
    finally:  # cancelled, or the caller stopped: drop what has not started
        for future in in_flight:
            future.cancel()


def stop_workers() -> None:
    """Stop this process's worker processes now, without waiting for their work.

    For a run that is cancelled or terminated: a worker whose parent is gone blocks for ever
    writing its result to a pipe nobody reads (a ``cellqc inspect`` stopped with SIGTERM left its
    two workers, 0.3 GiB each, behind for as long as the machine ran).
    """
    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(loky, "_executor", None) if loky is not None else None
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=True)


def _quiet_call(task: Callable[[Any], T], item: Any) -> T:
    """``task(item)`` in a worker without numpy's RuntimeWarnings (an all-NaN row of a roll-end
    slice), as the caller's process runs it: a worker starts with the default filters, and its
    warnings reached the operator's terminal by the hundred on a large volume."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return task(item)


def map_slices(task: Callable[[Any], T], items: Iterable[Any], n_items: int, shape: tuple[int, ...],
               cancel: Callable[[], bool] | None = None) -> Iterator[T]:
    """``task`` on each of ``n_items`` items of a volume of ``shape``, in order: in worker
    processes when :func:`worth_processes` says so, else one after the other in this process."""
    workers = default_workers(n_items)
    if worth_processes(shape, workers):
        return map_in_processes(task, items, workers, cancel)
    return map(task, items)
