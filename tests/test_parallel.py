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


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").path.isdir("/proc"), reason="needs /proc to find child processes")
def test_sigterm_cancels_the_inspection_and_stops_its_workers(tmp_path):
    """``cellqc inspect`` stopped with SIGTERM (a station or a service manager) ends as Ctrl-C
    does: exit 130, "cancelled", no result file, and its worker processes gone (before: they
    blocked for ever writing to a pipe nobody read, 0.3 GiB each)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from core.io import write_tiff
    from core.phantom import CellSpec, make_cell

    spec = CellSpec(kind="18650", voxel_size_um=25.0, n_slices=60, can_outer_radius_um=5000.0, anatomy=False)
    volume = write_tiff(make_cell(spec, [], seed=2, cell_id="S-1").volume, tmp_path / "S-1.tif")
    out = tmp_path / "S-1.json"
    script = ("import sys, core.parallel; core.parallel.PROCESS_MIN_VOXELS = 0\n"
              "from qc_app.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", script, "inspect", str(volume), "--quiet", "--json", str(out)],
                            stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _children(proc.pid)
        if len(workers) >= 2:  # the slice workers (and loky's resource tracker) are up
            break
        time.sleep(0.2)
    assert proc.poll() is None and workers, "the inspection ended before its workers started"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "cancelled" in stderr
    assert not out.exists()
    deadline = time.monotonic() + 15
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if os.path.exists(f"/proc/{pid}")
                 and not open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"]
    assert not alive, f"worker processes left behind: {alive}"
