"""``cellqc watch``: finished scans only, done/ and failed/, restarts lose and repeat nothing.

Real inspections of small synthetic cells (25 µm voxels, 2 slices, a 5 mm can: ~1.5 s each).
The crash test kills a ``cellqc watch --once`` process with SIGKILL in the middle of an
inspection and checks that the next start re-runs that scan exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import InputError
from core.io import write_tiff
from core.phantom import Artifacts, CellSpec, make_cell
from core.recipe import load_recipe
from core.store import open_log, record_inspection, verify_audit
from qc_app.batch.inputs import fingerprint
from qc_app.batch.watch import HotFolder, WatchOptions
from qc_app.cli import main

REPO = Path(__file__).resolve().parents[1]
OLD = time.time() - 3600  # an hour ago: "stable" for any --stable-seconds used here


def write_cell(path: Path, cell_id: str, seed: int = 2, n_slices: int = 2) -> Path:
    spec = CellSpec(kind="18650", voxel_size_um=25.0, n_slices=n_slices, can_outer_radius_um=5000.0, anatomy=False,
                    mandrel_radius_um=1500.0)
    write_tiff(make_cell(spec, [], Artifacts(), seed=seed, cell_id=cell_id).volume, path)
    os.utime(path, (OLD, OLD))
    return path


def items(db_path: Path) -> list[dict]:
    with open_log(db_path) as db:
        return list(db.query("SELECT name, status, attempts, inspection_id, outcome, reason FROM watch_items ORDER BY id"))


def inspections(db_path: Path) -> list[dict]:
    with open_log(db_path) as db:
        return list(db.query("SELECT id, cell_id, status, verdict FROM inspections ORDER BY id"))


@pytest.mark.slow
def test_watch_once_with_markers(tmp_path: Path, capsys) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    db = tmp_path / "log.db"
    write_cell(hot / "cell_b.tif", "CELL-B")
    (hot / "cell_b.tif.done").write_text("")
    (hot / "corrupt.tif").write_bytes(b"II*\x00 truncated by the scanner")
    (hot / "corrupt.done").write_text("")  # STEM.done counts too
    write_cell(hot / "unmarked.tif", "CELL-U")  # no marker yet: left alone
    (hot / "notes.txt").write_text("not a volume")
    code = main(["watch", str(hot), "--once", "--marker", ".done", "--db", str(db)])
    out = capsys.readouterr()
    assert code == 2, out.out + out.err  # one scan could not be inspected
    assert "cell_b.tif: CELL-B " in out.out and "corrupt.tif: ERROR" in out.out
    assert "unmarked.tif" in out.err  # named as left for later
    assert sorted(p.name for p in (hot / "done").iterdir()) == ["cell_b.tif", "cell_b.tif.done"]
    assert sorted(p.name for p in (hot / "failed").iterdir()) == ["corrupt.done", "corrupt.tif",
                                                                "corrupt.tif.reason.txt"]
    reason = (hot / "failed" / "corrupt.tif.reason.txt").read_text()
    assert "TIFF" in reason and "corrupt.tif" in reason
    assert sorted(p.name for p in hot.iterdir()) == [".cellqc-watch.lock", "done", "failed", "notes.txt",
                                                     "reports", "unmarked.tif"]
    [row] = inspections(db)
    assert (row["cell_id"], row["status"]) == ("CELL-B", "complete")
    assert f"CELL-B {row['verdict']}" in out.out
    assert sorted(p.name for p in (hot / "reports").iterdir()) == [f"CELL-B_{row['id']}.json",
                                                                  f"CELL-B_{row['id']}.pdf"]
    assert [(i["name"], i["status"]) for i in items(db)] == [("cell_b.tif", "done"), ("corrupt.tif", "failed")]
    # Again: nothing new is finished, nothing is repeated.
    assert main(["watch", str(hot), "--once", "--marker", ".done", "--db", str(db)]) == 0
    assert len(inspections(db)) == 1 and len(items(db)) == 2


def test_stable_size_rule(tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    scan = hot / "growing.tif"
    scan.write_bytes(b"II*\x00" + b"0" * 100)
    (hot / "slices").mkdir()  # an empty folder: the scanner has not started writing
    options = WatchOptions(hot, load_recipe(None), tmp_path / "log.db", stable_seconds=30)
    with HotFolder(options) as folder:
        assert folder.candidates() == [] and set(folder.waiting) == {"growing.tif", "slices"}
        os.utime(scan, (OLD, OLD))  # old enough now, but changed since the last look
        assert folder.candidates() == []
        assert [n for n, _ in folder.candidates()] == ["growing.tif"]  # and unchanged since
        with scan.open("ab") as fh:  # written again: not finished after all
            fh.write(b"1")
        os.utime(scan, (OLD, OLD))
        assert folder.candidates() == []
        assert [n for n, _ in folder.candidates()] == ["growing.tif"]
        # A second watcher on the same folder is refused.
        with pytest.raises(InputError, match="already running"):
            HotFolder(options).open()


def _wait_for_running(db: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the watcher ended early: {proc.stderr.read().decode()}")
        try:
            conn = sqlite3.connect(db, timeout=1)
            try:
                row = conn.execute("SELECT pid FROM watch_items WHERE status = 'running'").fetchone()
            finally:
                conn.close()
            if row:
                return int(row[0])
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("the watcher never started an inspection")


@pytest.mark.slow
def test_crash_mid_inspection_reruns_the_scan_exactly_once(tmp_path: Path, capsys) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    db = tmp_path / "log.db"
    write_cell(hot / "cell_c.tif", "CELL-C", seed=3, n_slices=3)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import sys; from qc_app.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "watch", str(hot), "--once", "--db", str(db),
                             "--no-report"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait_for_running(db, proc) == proc.pid
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)  # a crash: no cleanup of any kind
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (hot / "cell_c.tif").exists() and not any((hot / "done").iterdir())
    [item] = items(db)
    assert (item["status"], item["attempts"]) == ("running", 1)

    code = main(["watch", str(hot), "--once", "--db", str(db), "--no-report"])
    out = capsys.readouterr().out
    rows = inspections(db)
    assert [r["status"] for r in rows] == ["interrupted", "complete"]  # the cell is complete once
    verdict = rows[1]["verdict"]
    assert code == {"PASS": 0, "FAIL": 1, "REVIEW": 3}[verdict]
    assert f"CELL-C {verdict}" in out and "resumed" in out
    [item] = items(db)
    assert (item["status"], item["attempts"], item["inspection_id"]) == ("done", 2, rows[1]["id"])
    assert (hot / "done" / "cell_c.tif").exists()
    # A third start finds nothing to do.
    assert main(["watch", str(hot), "--once", "--db", str(db)]) == 0
    assert len(inspections(db)) == 2
    with open_log(db) as log:
        assert verify_audit(log) is None


def _stale_item(db_path: Path, folder: Path, name: str, **values) -> None:
    fp = fingerprint(folder / name)
    with open_log(db_path) as db:
        row = {"folder": str(folder.resolve()), "name": name, "size_bytes": fp.size_bytes,
               "mtime_ns": fp.mtime_ns, "n_files": fp.n_files, "created_at": "2026-01-01T00:00:00+00:00",
               "updated_at": "2026-01-01T00:00:00+00:00", "host": "elsewhere", "pid": 1, **values}
        db["watch_items"].insert(row)


def test_a_scan_that_keeps_crashing_goes_to_failed(tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    db = tmp_path / "log.db"
    write_cell(hot / "poison.tif", "CELL-P")
    _stale_item(db, hot, "poison.tif", status="running", attempts=2)  # interrupted twice
    with HotFolder(WatchOptions(hot, load_recipe(None), db)) as folder:
        [event] = folder.poll()
    assert event.outcome == "ERROR" and event.recovered and "interrupted 2 time(s)" in event.reason
    assert (hot / "failed" / "poison.tif").exists()
    assert "interrupted 2 time(s)" in (hot / "failed" / "poison.tif.reason.txt").read_text()
    assert inspections(db) == []  # not run a third time


def test_filed_but_not_moved_is_only_moved(tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    db = tmp_path / "log.db"
    write_cell(hot / "cell_f.tif", "CELL-F")
    result = {"schema": "cellqc.inspection/1", "cell_id": "CELL-F", "verdict": "FAIL", "findings": [],
              "recipe": "18650-nmc"}
    with open_log(db) as log:
        iid = record_inspection(log, result)
    _stale_item(db, hot, "cell_f.tif", status="filed", attempts=1, inspection_id=iid, outcome="FAIL",
                moved_to=str(hot / "done" / "cell_f.tif"))
    with HotFolder(WatchOptions(hot, load_recipe(None), db)) as folder:
        [event] = folder.poll()
    assert (event.outcome, event.inspection_id, event.cell_id, event.recovered) == ("FAIL", iid, "CELL-F", True)
    assert (hot / "done" / "cell_f.tif").exists() and not (hot / "cell_f.tif").exists()
    assert len(inspections(db)) == 1 and items(db)[0]["status"] == "done"


def test_stopping_mid_inspection_is_not_an_attempt(tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    db = tmp_path / "log.db"
    write_cell(hot / "cell_s.tif", "CELL-S")
    calls = iter(range(1000))

    def cancel() -> bool:  # let the poll start the scan, then stop inside the inspection
        return next(calls) >= 3

    with HotFolder(WatchOptions(hot, load_recipe(None), db)) as folder:
        assert folder.poll(cancel=cancel) == []
    [item] = items(db)
    assert (item["status"], item["attempts"]) == ("running", 0)
    [row] = inspections(db)
    assert row["status"] == "failed"
    assert (hot / "cell_s.tif").exists()
