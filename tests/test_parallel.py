"""Per-slice work in worker processes (core/parallel.py): in order, cancellable, and an
inspection whose geometry and delamination run in worker processes says exactly what the
same inspection in one process says."""

from __future__ import annotations

import json

import pytest

import core.parallel
from core.errors import Cancelled
from core.parallel import map_in_processes, worth_processes


def _square(x: int) -> int:
    return x * x


def test_results_come_back_in_order():
    assert list(map_in_processes(_square, range(23), workers=2)) == [x * x for x in range(23)]


def test_cancel_raises_and_stops_handing_out_work():
    handed = []

    def items():
        for x in range(50):
            handed.append(x)
            yield x

    seen = []
    with pytest.raises(Cancelled):
        for value in map_in_processes(_square, items(), workers=2, cancel=lambda: len(seen) >= 3):
            seen.append(value)
    assert len(seen) == 3
    assert len(handed) < 50  # at most two items per worker were read ahead


def test_policy():
    assert not worth_processes((10, 100, 100), workers=2)
    assert worth_processes((10, 100, 100), workers=2, forced=True)
    assert not worth_processes((10, 100, 100), workers=1, forced=True)
    assert worth_processes((100, 1000, 1000), workers=2) == core.parallel.processes_allowed()


@pytest.mark.slow
def test_an_inspection_in_worker_processes_says_the_same(monkeypatch):
    from core.inspect import inspect_volume
    from tests.synthetic import defective_cell

    cell = defective_cell(1)
    recipe = "21700-nmc" if cell.truth["spec"]["kind"] == "21700" else "18650-nmc"

    def said(result: dict) -> str:
        return json.dumps({k: v for k, v in result.items() if k not in ("timings_s", "started_at", "finished_at")},
                          sort_keys=True, default=repr)

    alone = inspect_volume(cell.volume, recipe).result
    monkeypatch.setattr(core.parallel, "PROCESS_MIN_VOXELS", 0)
    parallel = inspect_volume(cell.volume, recipe).result
    assert any(f["detector"] == "delamination" for f in alone["findings"])
    assert said(parallel) == said(alone)


def _allowed_here(queue) -> None:
    queue.put(core.parallel.processes_allowed())


def test_no_worker_processes_from_a_daemonic_process():
    """A Dask worker of `cellqc batch` is daemonic: Python forbids it children, so a large
    volume inspected there stays in its process instead of failing."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_allowed_here, args=(queue,), daemon=True)
    child.start()
    allowed = queue.get(timeout=120)
    child.join(timeout=60)
    assert allowed is False
    assert core.parallel.processes_allowed()  # this (non-daemonic) process may
