"""``cellqc batch``: inputs, one writer of the log, resume, per-cell errors, exit codes.

The end-to-end test runs real inspections of small synthetic cells (25 µm voxels, 3 slices)
on a Dask LocalCluster of 2 processes, then resumes the batch on an existing scheduler.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError
from core.inspect import validate_result
from core.io import write_tiff
from core.io.volume import Volume
from core.phantom import Artifacts, CellSpec, default_defects, make_cell
from core.recipe import load_recipe
from core.store import findings_for, open_log, verify_audit
from qc_app.batch.inputs import BatchItem, expand_inputs, fingerprint, read_manifest
from qc_app.batch.runner import CellRow, exit_code, plan_batch
from qc_app.cli import main


def write_cells(folder: Path) -> dict[str, Path]:
    """A defective cell (FAIL), a healthy one (PASS), a volume without a cell, a corrupt file."""
    folder.mkdir(parents=True, exist_ok=True)
    # A small can (5 mm radius) and 2 slices: the same layers, ~1.5 s per inspection.
    spec = CellSpec(kind="18650", voxel_size_um=25.0, n_slices=2, can_outer_radius_um=5000.0, anatomy=False,
                    mandrel_radius_um=1500.0)
    bad = make_cell(spec, default_defects(spec, np.random.default_rng(1)), Artifacts(), seed=1,
                    cell_id="CELL-A")
    good = make_cell(spec, [], Artifacts(), seed=2, cell_id="CELL-B")
    paths = {"a": folder / "cell_a.tif", "b": folder / "cell_b.tif", "noise": folder / "noise.tif",
             "corrupt": folder / "corrupt.tif"}
    write_tiff(bad.volume, paths["a"])
    write_tiff(good.volume, paths["b"])
    noise = np.random.default_rng(0).normal(size=(2, 96, 96)).astype(np.float32)
    write_tiff(Volume(noise, (25.0,) * 3, cell_id="NOISE"), paths["noise"])
    paths["corrupt"].write_bytes(b"II*\x00 not really a TIFF")
    return paths


# --------------------------------------------------------------------------- inputs


def test_expand_paths_globs_and_manifests(tmp_path: Path) -> None:
    for name in ("a.tif", "b.tif", "c.h5"):
        (tmp_path / name).write_bytes(b"x")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.tif").write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# cells of line 3\na.tif\n\nsub/*.tif\n/abs/missing.tif\n")
    (tmp_path / "cells.csv").write_text("path,cell_id,voxel_size\nb.tif,B-1,12.5\nc.h5,,\n")
    items = expand_inputs(["*.tif", "list.txt", "cells.csv", "a.tif"], base=tmp_path)
    paths = [Path(i.path) for i in items]
    # Unique by path, in the order given; a missing file is kept (reported per cell later).
    assert paths == [tmp_path / "a.tif", tmp_path / "b.tif", sub / "d.tif", Path("/abs/missing.tif"),
                     tmp_path / "c.h5"]
    assert items[1] == BatchItem(str(tmp_path / "b.tif"))  # the glob came first, without an id
    csv_items = read_manifest(tmp_path / "cells.csv")
    assert csv_items[0] == BatchItem(str(tmp_path / "b.tif"), "B-1", "12.5")
    assert csv_items[1].cell_id is None and csv_items[1].voxel_size is None


@pytest.mark.parametrize(("content", "name", "message"), [
    ("cell,voxel\nx.tif,1\n", "bad.csv", "'path' column"),
    ("# nothing\n\n", "empty.txt", "lists no volumes"),
    ("*.nothing\n", "glob.txt", "matches no file"),
])
def test_manifest_errors_are_one_line(tmp_path: Path, content: str, name: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message) as info:
        expand_inputs([name], base=tmp_path)
    assert "\n" not in str(info.value) and name in str(info.value)
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs(["*.zarr"], base=tmp_path)


def test_fingerprint_of_files_and_folders(tmp_path: Path) -> None:
    f = tmp_path / "v.raw"
    f.write_bytes(b"0123456789")
    (tmp_path / "v.json").write_text("{}")  # the raw file's sidecar belongs to it
    fp = fingerprint(f, checksum=True)
    assert (fp.size_bytes, fp.n_files) == (12, 2) and len(fp.sha256) == 64
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = fingerprint(f, checksum=True)
    assert touched.mtime_ns != fp.mtime_ns and touched.sha256 == fp.sha256
    folder = tmp_path / "slices"
    folder.mkdir()
    for i in range(3):
        (folder / f"s{i}.tif").write_bytes(b"ab" * (i + 1))
    assert (fingerprint(folder).size_bytes, fingerprint(folder).n_files) == (12, 3)
    with pytest.raises(InputError, match="cannot read"):
        fingerprint(tmp_path / "nope.tif")


def test_exit_codes() -> None:
    def rows(*statuses: str) -> list[CellRow]:
        return [CellRow("p", "c", s) for s in statuses]

    assert exit_code(rows("PASS", "PASS")) == 0
    assert exit_code(rows("PASS", "REVIEW")) == 3
    assert exit_code(rows("REVIEW", "FAIL", "PASS")) == 1
    assert exit_code(rows("FAIL", "ERROR")) == 2
    assert exit_code([]) == 0


# ---------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_batch_on_local_cluster_then_resume_on_a_scheduler(tmp_path: Path, capsys) -> None:
    from distributed import LocalCluster

    cells = write_cells(tmp_path / "scans")
    db_path, out = tmp_path / "log.db", tmp_path / "out"
    missing = tmp_path / "scans" / "missing.tif"
    code = main(["batch", str(tmp_path / "scans" / "*.tif"), str(missing), "--workers", "2",
                 "--db", str(db_path), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    # Per-cell failures are reported and did not stop the others.
    assert "input error" in captured.out and "NOT INSPECTED: 3 cell(s)" in captured.out
    assert "CELL-A" in captured.out and "CELL-B" in captured.out
    assert "no cylindrical can" in captured.out and "missing.tif" in captured.out
    assert "[5/5]" in captured.err  # progress on stderr, one line per cell (not a terminal)

    with open_log(db_path) as db:
        rows = list(db.query("SELECT id, cell_id, status, verdict, pid FROM inspections ORDER BY id"))
        by_cell = {r["cell_id"]: r for r in rows}
        assert sorted(r["cell_id"] for r in rows) == ["CELL-A", "CELL-B", "NOISE"]  # each once
        # The defective cell is not passed; the healthy one has no electrode finding (its small
        # test can is, rightly, off the 18650 recipe's can diameter: can metrology may flag it).
        assert by_cell["CELL-A"]["verdict"] in ("FAIL", "REVIEW")
        healthy = {f["detector"] for f in findings_for(db, by_cell["CELL-B"]["id"]) if f["severity"] != "info"}
        assert healthy <= {"can_metrology"}, healthy
        assert by_cell["NOISE"]["status"] == "failed"
        # One writer: every row was opened by this process, none by a worker.
        assert {r["pid"] for r in rows} == {os.getpid()}
        reports = list(db.query("SELECT inspection_id, path, sha256 FROM reports"))
        assert {r["inspection_id"] for r in reports} == {by_cell["CELL-A"]["id"], by_cell["CELL-B"]["id"]}
        assert all(Path(r["path"]).is_file() for r in reports)
        assert verify_audit(db) is None
        n_rows = len(rows)
    for cell in ("CELL-A", "CELL-B"):
        result = json.loads((out / f"{cell}_{by_cell[cell]['id']}.json").read_text())
        validate_result(result)
        assert result["cell_id"] == cell

    # Resume on an existing scheduler: the two inspected cells are skipped, the failed one
    # is tried again (and fails again), the exit code still reports it.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        code = main(["batch", str(cells["a"]), str(cells["b"]), str(cells["noise"]), "--scheduler",
                     cluster.scheduler_address, "--db", str(db_path), "--quiet", "--no-report"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out.count("(skipped)") == 2 and "2 skipped" in captured.out
    assert captured.err == ""
    with open_log(db_path) as db:
        new = list(db.query("SELECT cell_id, status FROM inspections WHERE id > ?", [n_rows]))
        assert new == [{"cell_id": "NOISE", "status": "failed"}]
        # A changed input is inspected again; an unchanged one is not.
        st = cells["b"].stat()
        os.utime(cells["b"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        items = [BatchItem(str(cells["a"])), BatchItem(str(cells["b"]))]
        todo, skipped = plan_batch(items, db, load_recipe(None))
        assert [i.path for i, _ in todo] == [str(cells["b"])]
        assert [r.cell_id for r in skipped] == ["CELL-A"] and skipped[0].status == by_cell["CELL-A"]["verdict"]
        # Another recipe (another hash) inspects everything again.
        other = load_recipe("21700-nmc")
        todo, skipped = plan_batch(items, db, other)
        assert len(todo) == 2 and not skipped


def test_batch_usage_errors(tmp_path: Path, capsys) -> None:
    assert main(["batch", str(tmp_path / "*.tif"), "--db", str(tmp_path / "log.db")]) == 2
    assert "matches no file" in capsys.readouterr().err
    assert main(["batch", str(tmp_path), "--workers", "-1", "--db", str(tmp_path / "log.db")]) == 2
    assert "--workers: must be 0 or more" in capsys.readouterr().err
