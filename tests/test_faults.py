"""Faults: kill -9 at many points of ``cellqc inspect --db`` and ``cellqc report``, a full disk
while writing a report or a result, a log locked by another process, and 8 concurrent writers.

After every fault the log must pass SQLite's integrity check, its audit chain must hold, no
inspection may stay ``running`` or look complete without its result, no file may carry its
final name half-written, and a rerun must complete. Counts of faults injected and rows
written are printed by the tests (``pytest -s``).

``CELLQC_FAULT_POINTS`` (default 3) sets how many kill points each loop tries.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import InputError
from core.store import check_records, open_log, record_inspection, verify_audit

REPO = Path(__file__).resolve().parents[1]
N_POINTS = int(os.environ.get("CELLQC_FAULT_POINTS", "3"))
SEED = int(os.environ.get("CELLQC_FAULT_SEED", "13"))
COUNTS: dict[str, int] = {}
CLI = "import sys; from qc_app.cli import main; sys.exit(main(sys.argv[1:]))"


def _count(key: str, n: int = 1) -> None:
    COUNTS[key] = COUNTS.get(key, 0) + n


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CELLQC_HOME=str(home), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.pop("CELLQC_DEBUG", None)
    return env


def _cellqc(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args], cwd=REPO, env=_env(home),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _pdf_whole(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")


def assert_consistent(log: Path, outputs: list[Path] = ()) -> dict[str, int]:
    """Everything that must hold after any fault; returns row counts."""
    if log.exists():
        conn = sqlite3.connect(log)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
    with open_log(log) as db:  # recovery: dead processes' running rows -> interrupted
        assert verify_audit(db) is None
        assert check_records(db) == []
        statuses = dict(db.conn.execute(
            "SELECT status, count(*) FROM inspections GROUP BY status").fetchall())
        assert statuses.get("running", 0) == 0, statuses
        # A filed report's file is whole; the newest row of a path matches it unless a later
        # (killed) run replaced the file atomically before filing its own row.
        for rid, path in db.conn.execute("SELECT id, path FROM reports"):
            assert Path(path).exists(), f"report {rid} filed but missing"
            assert _pdf_whole(Path(path)), f"report {rid}: {path} is not a whole PDF"
        counts = {t: db.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("inspections", "findings", "reports", "audit")}
    for out in outputs:
        if out.exists():
            if out.suffix == ".pdf":
                assert _pdf_whole(out), f"{out} is not a whole PDF"
            else:
                json.loads(out.read_text())
    return counts


@pytest.fixture(scope="module")
def small_cell(tmp_path_factory) -> Path:
    from core.io import write_tiff
    from core.phantom import CellSpec, make_cell

    folder = tmp_path_factory.mktemp("cell")
    cell = make_cell(CellSpec(n_slices=3, voxel_size_um=30.0), cell_id="K1")
    return write_tiff(cell.volume, folder / "K1.tif")


# ------------------------------------------------------------------------ kill -9 loops


@pytest.mark.slow
def test_kill9_inspect_and_report_then_rerun(tmp_path, small_cell):
    rng = random.Random(SEED)
    log, pdf, js = tmp_path / "log.db", tmp_path / "K1.pdf", tmp_path / "K1.json"
    args = ("inspect", str(small_cell), "--db", str(log), "--report", str(pdf), "--json", str(js))
    outputs = [pdf, js]

    # Kill points: while importing/reading (a delay), at a progress line (the run prints
    # about 18), and after the verdict line (filing the row, writing the JSON and the PDF).
    plans: list[tuple[str, float]] = [("delay", rng.uniform(0.5, 2.0))]
    plans += [("line", rng.randrange(16)) for _ in range(max(0, N_POINTS - 2))]
    plans += [("after_verdict", rng.uniform(0.0, 0.4))]
    for kind, where in plans:
        proc = _cellqc(tmp_path, *args)
        if kind == "delay":
            time.sleep(where)
        else:
            seen = 0
            for line in proc.stderr:
                if line.startswith("["):
                    if kind == "line" and seen == where:
                        break
                    seen += 1
                    if kind == "after_verdict" and "verdict" in line:
                        time.sleep(where)
                        break
        proc.kill()  # SIGKILL
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        _count("kill9_inspect")
        assert_consistent(log, outputs)

    # The rerun completes.
    proc = _cellqc(tmp_path, *args)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 1, 3), err
    assert_consistent(log, outputs)
    with open_log(log) as db:
        done = db.conn.execute(
            "SELECT max(id) FROM inspections WHERE status = 'complete'").fetchone()[0]
    assert done is not None

    # Kill `cellqc report` at random times while it re-reads the volume and writes the PDF.
    out = tmp_path / "again.pdf"
    rargs = ("report", str(done), "--db", str(log), "--out", str(out))
    for _ in range(N_POINTS):
        proc = _cellqc(tmp_path, *rargs)
        time.sleep(rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
        _count("kill9_report")
        assert_consistent(log, [out])

    # The report rerun completes; everything is consistent.
    proc = _cellqc(tmp_path, *rargs)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    counts = assert_consistent(log, [pdf, js, out])
    assert _pdf_whole(pdf) and _pdf_whole(out) and json.loads(js.read_text())["verdict"]
    with open_log(log) as db:  # after the reruns, the newest report rows match the files
        for path in (pdf, out):
            sha = db.conn.execute("SELECT sha256 FROM reports WHERE path = ? ORDER BY id DESC",
                                  [str(path.resolve())]).fetchone()[0]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        statuses = dict(db.conn.execute(
            "SELECT status, count(*) FROM inspections GROUP BY status").fetchall())
    assert statuses["complete"] >= 1 and "running" not in statuses
    assert sum(statuses.values()) == counts["inspections"]
    print(f"\nkill -9: {COUNTS}, inspections by status {statuses}")


def _write_batch_cells(folder: Path, n: int) -> list[str]:
    """``n`` tiny cells (5 mm can, 2 slices at 25 µm: about a second each); their ids."""
    from core.io import write_tiff
    from core.phantom import Artifacts, CellSpec, make_cell

    folder.mkdir(parents=True, exist_ok=True)
    spec = CellSpec(kind="18650", voxel_size_um=25.0, n_slices=2, can_outer_radius_um=5000.0, anatomy=False,
                    mandrel_radius_um=1500.0)
    ids = []
    for i in range(n):
        cell = make_cell(spec, [], Artifacts(), seed=40 + i, cell_id=f"B-{i + 1}")
        write_tiff(cell.volume, folder / f"b{i + 1}.tif")
        ids.append(f"B-{i + 1}")
    return ids


def _n_complete(log: Path) -> int:
    if not log.exists():
        return 0
    conn = sqlite3.connect(log, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM inspections WHERE status = 'complete'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def _batch_outputs_whole(log: Path, out: Path) -> int:
    """No output carries its final name half-written; every filed report is the file it names."""
    n = 0
    for path in out.iterdir() if out.exists() else ():
        if path.name.startswith("."):  # a killed writer's temporary: never read
            assert path.name.endswith(".part"), path
            continue
        if path.suffix == ".pdf":
            assert _pdf_whole(path), f"{path} is not a whole PDF"
        else:
            assert path.suffix == ".json", path
            json.loads(path.read_text())
        n += 1
    with open_log(log) as db:
        for path, sha in db.conn.execute("SELECT path, sha256 FROM reports"):
            assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha, path
        # Never a cell complete twice, even between kills.
        twice = db.conn.execute("SELECT cell_id FROM inspections WHERE status = 'complete'"
                                " GROUP BY cell_id HAVING count(*) > 1").fetchall()
        assert not twice, twice
    return n


def _gone(pgid: int, timeout: float = 10.0) -> bool:
    """Whether every process of a process group has exited (no orphaned Dask worker)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_kill9_batch_then_rerun(tmp_path):
    """kill -9 of `cellqc batch` (in-process cells, and a Dask run killed with its workers):
    after every kill the log is consistent and no cell is complete twice; the rerun finishes
    the batch with every cell complete exactly once, and the audit chain verifies."""
    from core.store.users import add_user
    from qc_app.cli import main

    rng = random.Random(SEED + 1)
    ids = _write_batch_cells(tmp_path / "scans", 4)
    log, out = tmp_path / "batch.db", tmp_path / "out"
    with open_log(log) as db:  # a log with users: the batch runs as an authenticated operator
        add_user(db, "ada", "admin", secret="admin-pw")
        add_user(db, "op", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
    args = ("batch", str(tmp_path / "scans" / "*.tif"), "--db", str(log), "--out", str(out),
            "--user", "op")
    env = {**_env(tmp_path), "CELLQC_PASSWORD": "1234"}

    def start(*extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", CLI, *args, *extra], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    # Kill points: a random time into the first run (importing, reading, or inspecting the first
    # cell); then a random time after the next cell was filed complete (mid-inspection of the
    # following one, writing its JSON/PDF, or filing it), in process and on Dask workers.
    plans: list[tuple[str, float]] = [("delay", rng.uniform(1.0, 3.0))]
    plans += [("after_complete", rng.uniform(0.0, 1.2)) for _ in range(max(1, N_POINTS - 2))]
    plans += [("dask_after_complete", rng.uniform(0.0, 1.0))]
    killed_at = []
    for kind, wait in plans:
        dask = kind.startswith("dask")
        proc = start("--workers", "1" if dask else "0")
        if kind == "delay":
            time.sleep(wait)
        else:
            target = _n_complete(log) + 1
            end = time.monotonic() + 120
            while _n_complete(log) < target and proc.poll() is None and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(wait)
        finished = proc.poll() is not None
        os.killpg(proc.pid, signal.SIGKILL)  # the client, and with --workers 1 its Dask workers
        proc.wait(timeout=60)
        assert _gone(proc.pid), "a process of the killed batch survived"
        killed_at.append(f"{kind}+{wait:.2f}s" + (" (had finished)" if finished else ""))
        _count("kill9_batch")
        assert_consistent(log)
        _batch_outputs_whole(log, out)

    # The rerun completes the batch: every cell complete exactly once, by the operator.
    proc = subprocess.run([sys.executable, "-c", CLI, *args, "--workers", "0"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1, 3), proc.stdout + proc.stderr
    counts = assert_consistent(log)
    n_files = _batch_outputs_whole(log, out)
    with open_log(log) as db:
        complete = db.conn.execute("SELECT cell_id, id, operator FROM inspections"
                                   " WHERE status = 'complete' ORDER BY cell_id").fetchall()
        statuses = dict(db.conn.execute(
            "SELECT status, count(*) FROM inspections GROUP BY status").fetchall())
        reports = dict(db.conn.execute("SELECT inspection_id, path FROM reports").fetchall())
    assert [c for c, _, _ in complete] == ids  # each cell once, none missing
    assert {op for _, _, op in complete} == {"op"}
    assert set(statuses) <= {"complete", "interrupted", "failed"}, statuses
    for cell, iid, _ in complete:  # each complete cell has its whole JSON and filed PDF
        assert json.loads((out / f"{cell}_{iid}.json").read_text())["cell_id"] == cell
        assert reports[iid] == str(out / f"{cell}_{iid}.pdf") and _pdf_whole(out / f"{cell}_{iid}.pdf")
    assert main(["audit", "verify", "--db", str(log)]) == 0

    # And a second rerun has nothing left to do.
    again = subprocess.run([sys.executable, "-c", CLI, *args, "--workers", "0"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode in (0, 1, 3) and "4 skipped" in again.stdout, again.stdout + again.stderr
    assert assert_consistent(log)["inspections"] == counts["inspections"]
    print(f"\nkill -9 batch at {killed_at}; inspections by status {statuses}, {counts['audit']} audit "
          f"rows, {n_files} output files, {len(complete)} cells complete once")


# --------------------------------------------------------------------------- full disk


class _FullDisk:
    """A file object that writes half of what it is given, then raises ENOSPC."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _no_leftovers(folder: Path) -> None:
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.slow
def test_disk_full_while_writing_report(tmp_path, monkeypatch, capsys):
    import builtins

    import core.fileio as fileio_module
    from qc_app.cli import main

    log, out = tmp_path / "log.db", tmp_path / "r" / "C1.pdf"
    with open_log(log) as db:
        iid = record_inspection(db, {"cell_id": "C1", "verdict": "FAIL", "findings": []})
    real_open = builtins.open

    def full_open(file, mode="r", *a, **k):
        handle = real_open(file, mode, *a, **k)
        writing = "w" in mode or "x" in mode
        return _FullDisk(handle) if writing and str(file).endswith(".part") else handle

    monkeypatch.setattr(fileio_module, "open", full_open, raising=False)
    code = main(["report", str(iid), "--db", str(log), "--no-volume", "--out", str(out)])
    _count("disk_full")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len([x for x in err if x.startswith("cellqc:")]) == 1
    assert "No space left on device" in err[-1] and "C1.pdf" in err[-1]
    assert not out.exists()
    _no_leftovers(out.parent)
    assert assert_consistent(log)["reports"] == 0
    monkeypatch.undo()
    assert main(["report", str(iid), "--db", str(log), "--no-volume", "--out", str(out)]) == 0
    assert assert_consistent(log, [out])["reports"] == 1


@pytest.mark.slow
def test_disk_full_while_writing_result_json(tmp_path, monkeypatch, small_cell):
    """The inspection's JSON cannot be written: the row is failed, not complete."""
    import core.fileio as fileio
    from core.filing import inspect_and_file

    log, js = tmp_path / "log.db", tmp_path / "K1.json"
    real_fsync = os.fsync

    def fsync(fd):
        # The disk fills up while the JSON is written (its temporary file beside it, named
        # after it); what was written before (the thickness map kept beside the log) fitted.
        if "K1" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    with pytest.raises(InputError, match="No space left on device") as info:
        inspect_and_file(small_cell, json_out=js, db_path=log)
    _count("disk_full")
    assert str(js) in str(info.value)  # the file is named, not the log
    monkeypatch.undo()
    assert not js.exists()
    _no_leftovers(tmp_path)
    assert_consistent(log)
    with open_log(log) as db:
        row = db.conn.execute("SELECT status, error FROM inspections").fetchone()
    assert row[0] == "failed" and "No space left" in row[1]


# ------------------------------------------------------------------------- locked log

LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
""")


def _lock(log: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(log), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.slow
def test_locked_log_retried_then_clear_error(tmp_path, monkeypatch, capsys):
    import core.store.base as schema  # connect() reads the busy timeout there
    from qc_app.cli import main

    log = tmp_path / "log.db"
    with open_log(log) as db:
        record_inspection(db, {"cell_id": "C0", "verdict": "PASS", "findings": []})

    # A short lock: the writer waits for it (busy timeout) and then succeeds.
    locker = _lock(log, 1.0)
    t0 = time.monotonic()
    with open_log(log) as db:
        record_inspection(db, {"cell_id": "C1", "verdict": "PASS", "findings": []})
    waited = time.monotonic() - t0
    locker.wait(timeout=30)
    _count("locked_log")
    assert waited > 0.5

    # A lock held longer than the busy timeout: one clear line, exit 2, nothing half-done.
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_S", 0.5)
    locker = _lock(log, 20.0)
    try:
        monkeypatch.setenv("CELLQC_NEW_PASSWORD", "admin-pw")
        t0 = time.monotonic()
        code = main(["users", "add", "ada", "--role", "admin", "--db", str(log)])
        elapsed = time.monotonic() - t0
    finally:
        locker.kill()
        locker.wait(timeout=30)
    _count("locked_log")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "locked by another process" in err[0], err
    assert elapsed >= 0.4
    counts = assert_consistent(log)
    assert counts["inspections"] == 2
    assert main(["users", "add", "ada", "--role", "admin", "--db", str(log)]) == 0


# -------------------------------------------------------------------------------- load

WRITER = textwrap.dedent("""
    import sys, time
    from core.store import open_log, record_inspection
    log, worker, start, stop = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    while time.time() < start:
        time.sleep(0.005)
    n = 0
    with open_log(log) as db:
        while time.time() < stop:
            cell = f"W{worker}-{n}"
            result = {"cell_id": cell, "verdict": "FAIL" if n % 3 else "PASS",
                      "findings": [{"id": "F1", "detector": "delamination", "severity": "fail",
                                    "value": n, "unit": "mm3"},
                                   {"id": "F2", "detector": "electrode_thickness",
                                    "severity": "info", "value": worker, "unit": "um"}]}
            try:
                iid = record_inspection(db, result, operator=f"station{worker}")
            except Exception as exc:
                print(f"ERR {cell} {type(exc).__name__}: {exc}", flush=True)
            else:
                print(f"OK {iid} {cell}", flush=True)
            n += 1
""")


@pytest.mark.slow
def test_eight_writers_lose_nothing(tmp_path):
    log = tmp_path / "load.db"
    with open_log(log):
        pass  # create and migrate once
    n_writers, seconds = 8, float(os.environ.get("CELLQC_LOAD_SECONDS", "3"))
    start = time.time() + 3.0  # let every interpreter import first
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(w), str(start),
                          str(start + seconds)], cwd=REPO, env=_env(tmp_path),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(n_writers)
    ]
    claimed: dict[int, str] = {}
    errors: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        for line in out.splitlines():
            if line.startswith("OK "):
                _, iid, cell = line.split()
                assert int(iid) not in claimed, f"id {iid} given twice"
                claimed[int(iid)] = cell
            else:
                errors.append(line)
    assert not errors, errors[:5]
    counts = assert_consistent(log)
    with open_log(log) as db:
        rows = dict(db.conn.execute(
            "SELECT id, cell_id FROM inspections WHERE status = 'complete'").fetchall())
        n_cells = db.conn.execute("SELECT count(DISTINCT cell_id) FROM inspections").fetchone()[0]
    assert rows == claimed  # nothing lost, nothing duplicated, nothing extra
    assert n_cells == counts["inspections"] == len(claimed)
    assert counts["findings"] == 2 * len(claimed)
    per_writer = {w: sum(1 for c in claimed.values() if c.startswith(f"W{w}-"))
                  for w in range(n_writers)}
    assert sum(1 for n in per_writer.values() if n) >= 2, per_writer  # real contention
    print(f"\nload: {n_writers} writers x {seconds:.0f} s: {len(claimed)} inspections, "
          f"{counts['findings']} findings, {counts['audit']} audit rows; per writer {per_writer}")
