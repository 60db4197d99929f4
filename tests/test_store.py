"""The SQLite log: schema, migrations, crash safety, concurrency, audit chain, CLI."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.errors import InputError
from core.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    audit_rows,
    begin_inspection,
    check_records,
    complete_inspection,
    default_db_path,
    find_audit_break,
    findings_for,
    get_inspection,
    get_result,
    list_inspections,
    migrate,
    open_log,
    override_verdict,
    record_inspection,
    record_report,
    schema_version,
    verify_audit,
)
from core.store import schema as schema_module
from core.store.audit import to_jsonable
from core.store.users import add_user


def add_engineer(db, name: str = "eve", full_name: str | None = None) -> None:
    """An admin (bootstrap) and an engineer, through the role-checked API."""
    add_user(db, "ada", "admin", secret="admin-pw")
    add_user(db, name, "engineer", secret="eng-pw", full_name=full_name, actor="ada",
             actor_secret="admin-pw")

TABLES = {
    "schema_version",
    "roles",
    "users",
    "cells",
    "scans",
    "inspections",
    "findings",
    "roi_requests",
    "followups",
    "reports",
    "overrides",
    "audit",
}


def make_result(cell_id: str = "C-001", verdict: str = "FAIL", n_findings: int = 2) -> dict:
    findings = [
        {
            "id": f"D{i + 1}",
            "detector": "delamination",
            "severity": "fail" if i == 0 else "review",
            "centroid_zyx_px": [10.0 + i, 20.5, 30.25],
            "bbox_zyx_px": [8, 18, 28, 12 + i, 23, 33],
            "winding": 5 + i,
            "angle_deg": 45.0 * i,
            "value": 0.0021 / (i + 1),
            "unit": "mm3",
            "message": f"void {i + 1}",
        }
        for i in range(n_findings)
    ]
    return {
        "schema": "cellqc.inspection/1",
        "cell_id": cell_id,
        "verdict": verdict,
        "voxel_size_um": 10.0,
        "shape_zyx": [40, 64, 64],
        "recipe": "18650-nmc",
        "recipe_hash": "ab" * 32,
        "software_version": "0.1.0",
        "operator": "op1",
        "source": "/data/vol.npy",
        "spacing_um": [10.0, 10.0, 10.0],
        "geometry": {"axis_center_yx_px": [32.0, 32.0], "windings": 20},
        "metrics": {"void_count": n_findings, "void_total_volume_mm3": 0.0031},
        "findings": findings,
        "reasons": ["FAIL: delamination void 0.0021 mm³ ≥ 0.001 mm³ (finding D1)"],
        "timings_s": {"total": 1.5},
    }


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# --------------------------------------------------------------------------- schema


def test_schema_has_tables_view_and_foreign_keys(db) -> None:
    assert TABLES <= set(db.table_names())
    assert "inspection_log" in db.view_names()
    assert schema_version(db) == SCHEMA_VERSION == len(MIGRATIONS)
    fks = {(fk.column, fk.other_table) for fk in db["inspections"].foreign_keys}
    assert {("cell_id", "cells"), ("scan_id", "scans"), ("operator", "users")} <= fks
    assert ("inspection_id", "inspections") in {
        (fk.column, fk.other_table) for fk in db["findings"].foreign_keys
    }
    assert ("user", "users") in {(fk.column, fk.other_table) for fk in db["overrides"].foreign_keys}
    assert ("inspection_id", "inspections") in {
        (fk.column, fk.other_table) for fk in db["reports"].foreign_keys
    }
    assert {r["name"] for r in db["roles"].rows} == {"operator", "engineer", "admin"}


def test_connection_settings(db) -> None:
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys are enforced
        db.conn.execute(
            "INSERT INTO findings (inspection_id, finding_id, detector, severity)"
            " VALUES (999, 'X', 'd', 'info')"
        )


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(path) as first:
        schema = first.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        audit_count = len(audit_rows(first))
    for _ in range(2):
        with open_log(path) as again:
            assert migrate(again) == []
            assert (
                again.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
                == schema
            )
            versions = [r[0] for r in again.conn.execute("SELECT version FROM schema_version")]
            assert versions == list(range(1, SCHEMA_VERSION + 1))
            assert len(audit_rows(again)) == audit_count


def test_old_log_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    with monkeypatch.context() as m:
        m.setattr(schema_module, "MIGRATIONS", MIGRATIONS[:1])
        m.setattr(schema_module, "SCHEMA_VERSION", 1)
        with open_log(path) as old:
            assert schema_version(old) == 1
            assert "inspection_log" not in old.view_names()
            record_inspection(old, make_result())
    with open_log(path) as new:
        assert schema_version(new) == SCHEMA_VERSION
        assert [r["cell_id"] for r in list_inspections(new)] == ["C-001"]
        assert verify_audit(new) is None


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(path) as db:
        db.conn.execute(
            "INSERT INTO schema_version VALUES (?, 'from the future', '2099-01-01')",
            (SCHEMA_VERSION + 5,),
        )
        db.conn.commit()
    with pytest.raises(InputError, match="newer"):
        open_log(path)


def test_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="junk.db"):
        open_log(path)


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / "cellqc.db"
    monkeypatch.delenv("CELLQC_HOME")
    assert default_db_path() == Path.home() / ".local" / "share" / "cellqc" / "cellqc.db"


# ---------------------------------------------------------------------- inspections


def test_record_inspection_files_everything(db) -> None:
    result = make_result()
    iid = record_inspection(db, result)
    row = get_inspection(db, iid)
    assert row["status"] == "complete" and row["verdict"] == "FAIL"
    assert row["recipe_hash"] == "ab" * 32 and row["software_version"] == "0.1.0"
    assert row["operator"] == "op1" and row["n_findings"] == 2
    assert get_result(db, iid) == to_jsonable(result)
    found = findings_for(db, iid)
    assert [f["finding_id"] for f in found] == ["D1", "D2"]
    assert found[0]["centroid_z_px"] == 10.0 and json.loads(found[0]["bbox_zyx_px"])[3] == 12
    assert db["users"].get("op1")["role"] == "operator"
    assert db["cells"].get("C-001")
    # The same volume again reuses its scan row.
    again = record_inspection(db, make_result())
    assert get_inspection(db, again)["scan_id"] == row["scan_id"]
    assert [a["action"] for a in audit_rows(db)][-2:] == ["inspection.begin", "inspection.complete"]


def test_list_inspections_filters(db) -> None:
    record_inspection(db, make_result("A", "FAIL"))
    record_inspection(db, make_result("B", "PASS", 0))
    record_inspection(db, make_result("A", "REVIEW", 1))
    assert [r["cell_id"] for r in list_inspections(db, failed=True)] == ["A"]
    assert [r["final_verdict"] for r in list_inspections(db, cell_id="A")] == ["FAIL", "REVIEW"]
    assert [r["id"] for r in list_inspections(db, limit=2)] == [2, 3]


def test_failed_write_leaves_no_complete_looking_inspection(
    db, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.store.log as log_module

    real = log_module.append_audit

    def broken_audit(database, action, **kwargs):
        if action == "inspection.complete":
            raise sqlite3.OperationalError("disk I/O error")
        return real(database, action, **kwargs)

    monkeypatch.setattr(log_module, "append_audit", broken_audit)
    iid = begin_inspection(db, "C-9", recipe="18650-nmc")
    with pytest.raises(sqlite3.OperationalError):
        complete_inspection(db, iid, make_result("C-9"))
    row = get_inspection(db, iid)
    assert row["status"] == "running" and row["verdict"] is None and row["result_json"] is None
    assert findings_for(db, iid) == []
    assert not db.conn.in_transaction
    # record_inspection marks such an inspection failed instead.
    with pytest.raises(sqlite3.OperationalError):
        record_inspection(db, make_result("C-10"))
    last = list_inspections(db)[-1]
    assert last["cell_id"] == "C-10" and last["status"] == "failed" and last["verdict"] is None
    assert verify_audit(db) is None


def test_complete_needs_running_row_and_matching_cell(db) -> None:
    iid = begin_inspection(db, "C-1")
    with pytest.raises(ValueError, match="verdict"):
        complete_inspection(db, iid, {"cell_id": "C-1"})
    with pytest.raises(ValueError, match="cell"):
        complete_inspection(db, iid, make_result("OTHER"))
    complete_inspection(db, iid, make_result("C-1"))
    with pytest.raises(InputError, match="complete"):
        complete_inspection(db, iid, make_result("C-1"))
    with pytest.raises(sqlite3.DatabaseError, match="finished inspection"):
        db.conn.execute("UPDATE inspections SET verdict = 'PASS' WHERE id = ?", (iid,))


def test_stale_running_rows_become_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(path) as db:
        ours = begin_inspection(db, "LIVE")  # this process is alive: left running
        dead = begin_inspection(db, "DEAD")
        remote = begin_inspection(db, "REMOTE")
        proc = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        db.conn.execute("UPDATE inspections SET pid = ? WHERE id = ?", (int(proc.stdout), dead))
        db.conn.execute(
            "UPDATE inspections SET host = 'elsewhere', started_at = '2020-01-01T00:00:00+00:00'"
            " WHERE id = ?",
            (remote,),
        )
        db.conn.commit()
    with open_log(path) as db:
        status = {r["cell_id"]: r["status"] for r in list_inspections(db)}
        assert status == {"LIVE": "running", "DEAD": "interrupted", "REMOTE": "interrupted"}
        assert "ended before it completed" in get_inspection(db, dead)["error"]
        assert get_inspection(db, ours)["status"] == "running"
        assert verify_audit(db) is None


def test_killed_inspection_is_marked_interrupted_on_next_start(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    code = f"""
        import sys, time
        from core.store import open_log, begin_inspection
        db = open_log({str(path)!r})
        print(begin_inspection(db, "KILLED", recipe="18650-nmc"), flush=True)
        time.sleep(60)
    """
    proc = subprocess.Popen(_python(code), stdout=subprocess.PIPE, text=True)
    try:
        iid = int(proc.stdout.readline())
        with open_log(path) as db:  # the process is alive: its row stays running
            assert get_inspection(db, iid)["status"] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with open_log(path) as db:
        row = get_inspection(db, iid)
        assert row["status"] == "interrupted" and row["verdict"] is None
        assert list_inspections(db, status="complete") == []
        assert verify_audit(db) is None


@pytest.mark.slow
def test_four_processes_filing_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    open_log(path).close()
    code = f"""
        import sys
        from core.store import open_log, record_inspection
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_store import make_result
        worker = sys.argv[1]
        with open_log({str(path)!r}) as db:
            for i in range(50):
                record_inspection(db, make_result(f"W{{worker}}-{{i}}", "PASS", 1))
    """
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([*_python(code), str(w)], stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert not any("locked" in e for e in errors)
    with open_log(path) as db:
        rows = list_inspections(db)
        assert len(rows) == 200 and {r["status"] for r in rows} == {"complete"}
        assert len({r["cell_id"] for r in rows}) == 200
        assert db["findings"].count == 200
        assert verify_audit(db) is None and check_records(db) == []
    assert time.perf_counter() - t0 < 60


# --------------------------------------------------------------- overrides and users


def test_override_needs_an_engineer_and_a_reason(db) -> None:
    iid = record_inspection(db, make_result("C-7", "FAIL"))
    add_engineer(db, "eve", full_name="Eve Engineer")
    with pytest.raises(InputError, match="role operator"):
        override_verdict(db, iid, "PASS", "looks fine", "op1")
    with pytest.raises(InputError, match="unknown user"):
        override_verdict(db, iid, "PASS", "looks fine", "nobody")
    with pytest.raises(InputError, match="reason"):
        override_verdict(db, iid, "PASS", "  ", "eve")
    with pytest.raises(InputError, match="PASS, FAIL or REVIEW"):
        override_verdict(db, iid, "MAYBE", "x", "eve")
    override_verdict(db, iid, "review", "ring artefact, re-scan", "eve")
    row = list_inspections(db)[-1]
    assert (row["verdict"], row["override_verdict"], row["final_verdict"]) == (
        "FAIL",
        "REVIEW",
        "REVIEW",
    )
    assert list_inspections(db, failed=True) == []
    last = audit_rows(db)[-1]
    assert last["action"] == "verdict.override" and last["actor"] == "eve"
    assert json.loads(last["details"])["old_verdict"] == "FAIL"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.conn.execute("DELETE FROM overrides")
    assert verify_audit(db) is None


def test_record_report(db, tmp_path: Path) -> None:
    iid = record_inspection(db, make_result())
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    record_report(db, iid, pdf, "00" * 32)
    assert list_inspections(db)[-1]["report_path"] == str(pdf.resolve())
    assert db["reports"].get(1)["size_bytes"] == pdf.stat().st_size


# ---------------------------------------------------------------------------- audit


def _fill(db) -> None:
    for i in range(3):
        record_inspection(db, make_result(f"C-{i}"))
    add_engineer(db, "eve")


def test_audit_chain_verifies_and_refuses_changes(db) -> None:
    _fill(db)
    assert verify_audit(db) is None and find_audit_break(db) is None
    rows = audit_rows(db)
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.conn.execute("DELETE FROM audit WHERE id = 3")
    assert verify_audit(db) is None


def _tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for trigger in ("audit_no_update", "audit_no_delete", "inspections_frozen"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_tampered_audit_row_is_found(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(path) as db:
        _fill(db)
        n = len(audit_rows(db))
        # The second inspection's completion row (looked up: migrations may add audit rows).
        rid = db.conn.execute(
            "SELECT id FROM audit WHERE action = 'inspection.complete' ORDER BY id LIMIT 1 OFFSET 1"
        ).fetchone()[0]
    _tamper(path, f"UPDATE audit SET details = replace(details, 'FAIL', 'PASS') WHERE id = {rid}")
    with open_log(path) as db:
        broken = find_audit_break(db)
        assert broken is not None and broken.row_id == rid and "altered" in broken.problem
        assert verify_audit(db) == rid
    # Even re-hashing the edited row with the key does not help: the next row's link breaks.
    with open_log(path) as db:
        from core.store.audit import _content, audit_key_of, row_mac

        row = next(db.query(f"SELECT * FROM audit WHERE id = {rid}"))
        fixed = row_mac(audit_key_of(db), row["prev_hash"], _content(row))
    _tamper(path, f"UPDATE audit SET hash = '{fixed}' WHERE id = {rid}")
    with open_log(path) as db:
        assert verify_audit(db) == rid + 1 < n + 1


def test_deleted_audit_row_is_found(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(path) as db:
        _fill(db)
    _tamper(path, "DELETE FROM audit WHERE id = 4")
    with open_log(path) as db:
        assert verify_audit(db) == 5


def test_edited_verdict_is_caught_by_check_records(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with open_log(path) as db:
        _fill(db)
        assert check_records(db) == []
    _tamper(path, "UPDATE inspections SET verdict = 'PASS' WHERE id = 2")
    with open_log(path) as db:
        assert verify_audit(db) is None
        problems = check_records(db)
        assert len(problems) == 1 and problems[0].startswith("inspection 2: verdict PASS")


# ------------------------------------------------------------------------------ CLI


def test_cli_log_and_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qc_app.cli import main

    path = tmp_path / "log.db"
    with open_log(path) as db:
        record_inspection(db, make_result("A-1", "FAIL"))
        record_inspection(db, make_result("B-2", "PASS", 0))
    assert main(["log", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "A-1" in out and "B-2" in out and out.splitlines()[0].startswith("ID")
    assert main(["log", "--db", str(path), "--failed", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["cell_id"] for r in rows] == ["A-1"]
    assert main(["log", "--db", str(path), "--cell", "B-2", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("id,cell_id") and len(lines) == 2 and ",B-2," in lines[1]

    assert main(["audit", "verify", "--db", str(path)]) == 0
    assert "intact" in capsys.readouterr().out
    _tamper(path, "UPDATE audit SET actor = 'mallory' WHERE id = 4")
    assert main(["audit", "verify", "--db", str(path)]) == 1
    assert "row 4" in capsys.readouterr().out

    assert main(["log", "--db", str(tmp_path / "missing.db")]) == 2
    assert "missing.db" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


def test_cli_uses_cellqc_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from qc_app.cli import main

    monkeypatch.setenv("CELLQC_HOME", str(tmp_path))
    with open_log() as db:
        record_inspection(db, make_result("HOME-1"))
    assert (tmp_path / "cellqc.db").exists()
    assert main(["log"]) == 0
    assert "HOME-1" in capsys.readouterr().out
