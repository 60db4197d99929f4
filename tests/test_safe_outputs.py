"""The one-line contract everywhere and outputs that never replace what they should not (issue 22).

Each test is a reproduction from the issue: a voxel size of 1e-300 or 1e30, a recipe of 100 000
nested arrays, a cell id with control bytes or 10 kB long, a non-UTF-8 file name, a report
written onto a folder or a full disk, ``--json /dev/full``, a recipe saved through a symlink.
"""

from __future__ import annotations

import errno
import os
import random
import re
import sqlite3
import stat
from pathlib import Path

import pytest

from core.errors import InputError
from core.fileio import atomic_write, atomic_writer, check_output_target, sha256_file
from core.store import open_log, record_inspection
from qc_app.cli import main

REPO = Path(__file__).resolve().parents[1]


def _one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("cellqc:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _statuses(log: Path) -> list[str]:
    with open_log(log) as db:
        return [r[0] for r in db.conn.execute("SELECT status FROM inspections ORDER BY id")]


# ------------------------------------------------------------------ one helper, one place


def _python_sources() -> list[Path]:
    skip = {".venv", ".git", "build", "dist", "node_modules"}
    return [p for p in REPO.rglob("*.py") if not skip & set(p.relative_to(REPO).parts)
            and p.relative_to(REPO).parts[0] != "tests"]


def test_one_atomic_write_helper_and_one_file_hash():
    """`os.replace` and hand-rolled "write a .part then rename" live only in core/fileio.py."""
    renames, hashers = [], []
    for path in _python_sources():
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(REPO).as_posix()
        if rel == "core/fileio.py":
            continue
        if re.search(r"\bos\.replace\(|\bos\.rename\(|\b(tmp|part)\.(replace|rename)\(", text):
            renames.append(rel)
        if re.search(r"hashlib\.sha256\(\)", text) and re.search(r"\.read\((1 << 20|chunk)", text):
            hashers.append(rel)
        if re.search(r"^def sha256_file\(", text, re.M):
            hashers.append(rel)
    assert renames == [] and hashers == [], (renames, hashers)


def test_log_add_user_is_gone():
    import core.store
    import core.store.log

    assert not hasattr(core.store, "add_user") and not hasattr(core.store.log, "add_user")


def test_atomic_writer_refuses_non_regular_targets(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for target, kind in ((fifo, "FIFO"), (folder, "folder")):
        with pytest.raises(InputError, match=f"is a {kind}, not a regular file"):
            atomic_write(target, b"x")
        assert not stat.S_ISREG(os.lstat(target).st_mode)
    if Path("/dev/full").exists():
        with pytest.raises(InputError, match="is a device"):
            check_output_target("/dev/full")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_atomic_writer_replaces_a_link_not_its_target(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    link = tmp_path / "out.json"
    link.symlink_to(outside)
    atomic_write(link, "{}\n")
    assert outside.read_text() == "keep me" and not link.is_symlink() and link.read_text() == "{}\n"


def test_atomic_writer_error_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target, text=True) as handle:
        handle.write("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_sha256_file_matches_hashlib_and_names_unreadable_files(tmp_path):
    import hashlib

    data = random.Random(7).randbytes(3 * 2**20 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    with pytest.raises(InputError, match="missing"):
        sha256_file(tmp_path / "missing")


# ------------------------------------------------------------------- outputs before complete


def test_json_to_a_fifo_or_device_is_refused_before_any_work(tmp_path, capsys, tiny_cell):
    """Issue 22, 5: `--json /dev/full` (as root) replaced the device node with a regular file."""
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    log = tmp_path / "log.db"
    assert main(["inspect", str(tiny_cell), "--db", str(log), "--json", str(fifo), "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(fifo) in line and "FIFO" in line
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not log.exists() or _statuses(log) == []


@pytest.mark.slow
def test_report_onto_a_folder_fails_the_inspection_with_one_line(tmp_path, capsys, tiny_cell):
    """Issue 22, 4: --report onto a folder → filed `complete`, no verdict, 'internal error'."""
    log, js = tmp_path / "log.db", tmp_path / "T-1.json"
    folder_in_the_way = tmp_path / "T-1.pdf"
    folder_in_the_way.mkdir()
    args = ["inspect", str(tiny_cell), "--db", str(log), "--json", str(js), "--quiet"]
    assert main([*args, "--report", str(folder_in_the_way)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(folder_in_the_way) in line and "is a folder" in line
    assert _statuses(log) == [] and not js.exists()  # refused before anything was filed
    # Found only while writing (the maps folder is a file): the row is failed, the JSON removed.
    maps_in_the_way = tmp_path / "maps"
    maps_in_the_way.write_text("a file, not a folder")
    assert main([*args, "--maps", str(maps_in_the_way)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(maps_in_the_way) in line and "internal error" not in line
    assert _statuses(log) == ["failed"] and not js.exists()  # no JSON showing a verdict
    with open_log(log) as db:
        assert "cannot write the maps" in db.conn.execute("SELECT error FROM inspections").fetchone()[0]
    assert main([*args, "--report", str(tmp_path / "ok.pdf")]) in (0, 1, 3)
    assert _statuses(log)[-1] == "complete" and js.is_file()


def test_disk_full_while_writing_the_report_names_the_report(tmp_path, capsys, monkeypatch, tiny_cell):
    import core.fileio as fileio

    log, pdf = tmp_path / "log.db", tmp_path / "T-1.pdf"
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part") and ".T-1.pdf." in os.readlink(
                f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    if not Path("/proc/self/fd").exists():
        pytest.skip("needs /proc to tell which file is being synced")
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    code = main(["inspect", str(tiny_cell), "--db", str(log), "--report", str(pdf), "--quiet"])
    monkeypatch.undo()
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and str(pdf) in line and "No space left on device" in line
    assert _statuses(log) == ["failed"] and not pdf.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_full_log_disk_names_the_log_file_not_the_argument(tmp_path, capsys, monkeypatch, tiny_cell):
    """Issue 22, 4: disk full named the --db argument ("default"), not the file."""
    import core.store as store

    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "complete_inspection", full)
    assert main(["inspect", str(tiny_cell), "--db", "default", "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(tmp_path / "home" / "cellqc.db") in line and "default:" not in line


# ------------------------------------------------------------------------ voxel sizes


@pytest.mark.parametrize("value", ["1e-300", "1e30", "0.005", "2000", "10,10,1e-9", "nan", "-1"])
def test_voxel_size_outside_the_physical_range_is_one_line(value, capsys, tiny_cell):
    """Issue 22, 4: 1e-300 gave 16 warnings and an OverflowError; 1e30 was filed."""
    assert main(["inspect", str(tiny_cell), "--voxel-size", value, "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--voxel-size" in line and ("µm" in line or "number" in line)


def test_voxel_size_range_limits(tmp_path):
    import numpy as np

    from core.io import parse_voxel_size, read_volume
    from core.io.volume import MAX_VOXEL_UM, MIN_VOXEL_UM

    assert parse_voxel_size(MIN_VOXEL_UM) == (MIN_VOXEL_UM,) * 3
    assert parse_voxel_size(f"{MAX_VOXEL_UM},1,0.07") == (MAX_VOXEL_UM, 1.0, 0.07)
    for bad in (MIN_VOXEL_UM * 0.99, MAX_VOXEL_UM * 1.01, 1e-300, 1e30):
        with pytest.raises(InputError, match="physical range"):
            parse_voxel_size(bad)
    # A file that stores a voxel size of 1 km: refused naming the file (every entry point).
    raw = tmp_path / "big.raw"
    np.zeros((2, 8, 8), np.uint8).tofile(raw)
    (tmp_path / "big.json").write_text('{"shape": [2, 8, 8], "dtype": "uint8", "spacing_um": 1e9}')
    with pytest.raises(InputError, match="physical range") as info:
        read_volume(raw)
    assert "big" in str(info.value)


# ---------------------------------------------------------------------------- recipes


def test_deeply_nested_recipe_names_the_recipe(tmp_path, capsys, tiny_cell):
    """Issue 22, 4: 100 000 nested arrays → RecursionError, and the message named the volume."""
    recipe = tmp_path / "deep.toml"
    depth = random.Random(1).randint(50_000, 100_000)
    recipe.write_text("[recipe]\nname = 'deep'\nx = " + "[" * depth + "]" * depth + "\n")
    assert main(["inspect", str(tiny_cell), "--recipe", str(recipe), "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(recipe) in line and "nested deeper" in line and str(tiny_cell) not in line


def test_recipes_save_never_follows_a_link_out_of_home(tmp_path, monkeypatch, capsys):
    """Issue 22, 5: `recipes save` copied /etc/hostname into the audited diff via a symlink."""
    from core.recipe import resolve_recipe_path
    from core.store.users import add_user

    home = tmp_path / "home"
    monkeypatch.setenv("CELLQC_HOME", str(home))
    log = tmp_path / "log.db"
    with open_log(log) as db:
        add_user(db, "ada", "admin", secret="admin-pw")
        add_user(db, "eng", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("root-only content\n")
    (home / "recipes").mkdir(parents=True)
    (home / "recipes" / "mine.toml").symlink_to(secret)
    edited = tmp_path / "mine.toml"
    edited.write_text(resolve_recipe_path("18650-nmc").read_text() + "\n# v2\n")
    monkeypatch.setenv("CELLQC_PASSWORD", "eng-pw")
    args = ["recipes", "save", str(edited), "--user", "eng", "--db", str(log)]
    assert main(args) == 2
    assert "symbolic link" in _one_line(capsys.readouterr().err)
    assert secret.read_text() == "root-only content\n"
    # The recipes folder itself a link out of home: refused too.
    (home / "recipes" / "mine.toml").unlink()
    (home / "recipes").rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (home / "recipes").symlink_to(elsewhere)
    assert main(args) == 2
    assert "symbolic link" in _one_line(capsys.readouterr().err)
    assert list(elsewhere.iterdir()) == []
    with open_log(log) as db:
        assert db.conn.execute("SELECT count(*) FROM recipe_changes").fetchone()[0] == 0
        diffs = [r[0] for r in db.conn.execute("SELECT details FROM audit")]
    assert not any("root-only" in d for d in diffs)


# ------------------------------------------------------------------- cell ids and names


HOSTILE = ["evil\n2099-01-01 00:00:00  FAKE  PASS", "cr\rover", "esc\x1b[2J\x1b[31mred",
           "bidi\u202eoverride", "nul\x00byte", "undecodable\udcff\udcfe"]


@pytest.mark.parametrize("cell_id", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_cell_id_refused_in_one_escaped_line(cell_id, tmp_path, capsys, tiny_cell):
    """Issue 22, 4 and 6: `\\xff\\xfe` → UnicodeEncodeError; ESC/CR/LF printed raw."""
    log = tmp_path / "log.db"
    assert main(["inspect", str(tiny_cell), "--cell-id", cell_id, "--db", str(log), "--quiet"]) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert "--cell-id" in line and not re.search(r"[\x00-\x1f\x7f\u202e]", captured.err.rstrip("\n"))
    assert captured.out == "" and (not log.exists() or _statuses(log) == [])


def test_long_cell_id_refused_and_stored_ones_bounded(tmp_path, capsys, tiny_cell):
    """Issue 22, 6: a 10 kB cell id inspected, then `cellqc report` failed: File name too long."""
    long_id = "L" * 10_000
    assert main(["inspect", str(tiny_cell), "--cell-id", long_id, "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "at most 128" in line and len(line) < 300
    # A log that already holds one (an older cellqc filed it): the report's name is bounded.
    home = tmp_path / "home"
    os.environ["CELLQC_HOME"] = str(home)
    try:
        log = tmp_path / "log.db"
        with open_log(log) as db:
            iid = record_inspection(db, {"cell_id": "SHORT", "verdict": "PASS", "findings": []})
            db.conn.execute("INSERT INTO cells (id, first_seen_at) VALUES (?, 'x')", (long_id,))
            db.conn.execute("DROP TRIGGER inspections_frozen")
            db.conn.execute("UPDATE inspections SET cell_id = ? WHERE id = ?", (long_id, iid))
            db.conn.commit()
        # the row no longer matches its audit entry's cell, but its verdict does: printable
        assert main(["report", str(iid), "--db", str(log), "--no-volume"]) == 0
        written = Path(capsys.readouterr().out.strip())
    finally:
        del os.environ["CELLQC_HOME"]
    assert written.is_file() and len(written.name) <= 100 and written.parent == home / "reports"


def test_log_and_verdict_line_escape_control_characters(tmp_path, capsys):
    """Values already in a log (older cellqc, a file writer) are never printed raw."""
    from qc_app.commands.inspect_cmd import print_summary

    log = tmp_path / "log.db"
    nasty = "X\n2099-01-01  FAKE-CELL  PASS\r\x1b[32mOK\x1b[0m"
    with open_log(log) as db:
        iid = record_inspection(db, {"cell_id": "X", "verdict": "FAIL", "findings": []})
        db.conn.execute("INSERT INTO cells (id, first_seen_at) VALUES (?, 'x')", (nasty,))
        db.conn.execute("INSERT INTO users (name, created_at) VALUES (?, 'x')", ("op\x1b]0;title\x07",))
        db.conn.execute("DROP TRIGGER inspections_frozen")
        db.conn.execute("UPDATE inspections SET cell_id = ?, operator = ? WHERE id = ?",
                        (nasty, "op\x1b]0;title\x07", iid))
        db.conn.commit()
    for fmt in ([], ["--csv"], ["--json"]):
        assert main(["log", "--db", str(log), *fmt]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\r" not in out and "\x07" not in out, fmt
        if not fmt:
            assert len(out.strip().splitlines()) == 2  # header + one row: no forged line
    print_summary({"cell_id": nasty, "verdict": "FAIL", "reasons": [nasty]})
    out = capsys.readouterr().out
    assert "\x1b" not in out and len(out.strip().splitlines()) == 2


def test_non_utf8_volume_name_with_a_log(tmp_path, capsys, tiny_cell):
    """Issue 22, 4: a non-UTF-8 volume name with --db → UnicodeEncodeError."""
    import numpy as np

    from core.io import read_volume

    name = os.fsencode(tmp_path) + b"/cell\xff\xfe.npy"  # .npy: no cell id inside the file
    with open(name, "wb") as handle:
        np.save(handle, np.asarray(read_volume(tiny_cell).array))
    volume = os.fsdecode(name)
    log = tmp_path / "log.db"
    code = main(["inspect", volume, "--voxel-size", "25", "--db", str(log), "--json",
                 str(tmp_path / "r.json"), "--quiet"])
    captured = capsys.readouterr()
    assert code in (0, 1, 3), captured.err
    assert captured.out.startswith("cell\\xff\\xfe: ")
    with open_log(log) as db:
        row = db.conn.execute("SELECT cell_id, status FROM inspections").fetchone()
        source = db.conn.execute("SELECT source FROM scans").fetchone()[0]
    assert tuple(row) == ("cell\\xff\\xfe", "complete") and source.endswith("cell\\xff\\xfe.npy")
    assert main(["log", "--db", str(log)]) == 0
    assert "cell\\xff\\xfe" in capsys.readouterr().out
