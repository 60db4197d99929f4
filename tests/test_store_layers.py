"""The store's layers (no import cycle) and the core functions the app calls instead of SQL."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "core" / "store"


def _store_imports(path: Path) -> tuple[set[str], list[str]]:
    """core.store modules a file imports at module level, and those imported inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    nested: list[str] = []

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "core.store":
                return [f"core.store.{a.name}" for a in node.names]
            return [node.module]
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        return []

    for node in tree.body:
        top.update(n for n in names(node) if n.startswith("core.store."))
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(func):
                nested += [n for n in names(node) if n.startswith("core.store")]
    return top, nested


def test_store_modules_import_only_downwards():
    graph = {}
    for path in sorted(STORE.glob("*.py")):
        if path.name == "__init__.py":
            continue
        top, nested = _store_imports(path)
        assert not nested, f"{path.name} imports {nested} inside a function"
        graph[f"core.store.{path.stem}"] = top
    assert graph["core.store.base"] <= {"core.store.keys"}
    assert graph["core.store.keys"] == set()
    # no cycle: every module can be ordered after all it imports
    done: set[str] = set()
    while len(done) < len(graph):
        ready = [m for m, deps in graph.items() if m not in done and deps <= done]
        assert ready, f"import cycle among {sorted(set(graph) - done)}"
        done.update(ready)


@pytest.mark.parametrize("module", sorted(p.stem for p in STORE.glob("*.py") if p.stem != "__init__"))
def test_each_store_module_imports_first(module):
    """Whatever module is imported first, the store loads (no order-dependent cycle)."""
    subprocess.run([sys.executable, "-c", f"import core.store.{module}; import core.store"],
                   check=True, cwd=ROOT)


def test_the_app_holds_no_sql():
    """qc_app calls core for the log (README, Layout): no statements, no cursors."""
    sql = re.compile(r"\.execute\(|\.executemany\(|\.query\(|\bSELECT\s+[\w*]|\bINSERT\s+INTO\b"
                     r"|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted((ROOT / "qc_app").rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if sql.search(line)]
    assert found == []


def test_public_names_still_import():
    from core.store import check_records, latest_report_path, write_transaction
    from core.store.audit import utc_now
    from core.store.schema import (
        BUSY_TIMEOUT_S,
        ROLES,
        VERDICTS,
        connect,
        default_db_path,
        schema_version,
    )
    from core.store.schema import write_transaction as schema_write_transaction

    assert schema_write_transaction is write_transaction
    assert callable(check_records) and callable(latest_report_path) and callable(utc_now)
    assert BUSY_TIMEOUT_S > 0 and "admin" in ROLES and "FAIL" in VERDICTS
    assert callable(connect) and callable(default_db_path) and callable(schema_version)


def test_rollback_forgets_an_audit_seal_written_in_it(tmp_path):
    """The audit layer hears about a rollback through the bottom layer's hook: a seal row
    written in a rolled-back transaction is not trusted afterwards."""
    from core.store import audit_rows, write_transaction
    from core.store.audit import append_audit, log_id
    from core.store.base import connect

    db = connect(tmp_path / "bare.db")  # an audit table, no seal yet
    db.conn.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT,"
                    " entity TEXT, entity_id TEXT, details TEXT, prev_hash TEXT, hash TEXT)")
    try:
        assert log_id(db) is None
        with pytest.raises(RuntimeError), write_transaction(db):
            append_audit(db, "test.one")
            assert log_id(db) is not None  # sealed inside the transaction
            raise RuntimeError("rolled back")
        assert audit_rows(db) == [] and log_id(db) is None
        append_audit(db, "test.two")
        actions = [r["action"] for r in audit_rows(db)]
        assert actions == ["audit.key", "test.two"] and log_id(db) is not None
    finally:
        db.close()


# ---------------------------------------------------------------------- save_recipe


def _users(db):
    from core.store.users import add_user

    add_user(db, "ada", "admin", secret="admin-pw")
    add_user(db, "eng", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
    add_user(db, "op", "operator", secret="1234", actor="ada", actor_secret="admin-pw")


def _recipe_text(rng: np.random.Generator) -> str:
    from core.recipe import RECIPES_DIR

    text = (RECIPES_DIR / "18650-nmc.toml").read_text(encoding="utf-8")
    return text + f"\n# edited {int(rng.integers(1 << 30))}\n"


def test_save_recipe_files_the_change_before_the_file(tmp_path):
    from core.store import open_log
    from core.store.users import PermissionDenied, save_recipe

    rng = np.random.default_rng()
    target = tmp_path / "recipes" / "mine.toml"
    first, second = _recipe_text(rng), _recipe_text(rng)
    with open_log(tmp_path / "log.db") as db:
        _users(db)
        change = save_recipe(target, first, old_text=None, db=db, user="eng")
        assert target.read_text(encoding="utf-8") == first
        row = db["recipe_changes"].get(change)
        assert (row["name"], row["user"], row["new_text"]) == ("mine", "eng", first)
        # an operator may not: nothing filed, the saved recipe stays as it was
        with pytest.raises(PermissionDenied):
            save_recipe(target, second, old_text=first, db=db, user="op")
        assert target.read_text(encoding="utf-8") == first
        assert db["recipe_changes"].count == 1
        assert not list(target.parent.glob("*.part"))
        # a broken recipe is refused the same way
        with pytest.raises(Exception, match="."):
            save_recipe(target, "detectors = [\n", old_text=first, db=db, user="eng")
        assert target.read_text(encoding="utf-8") == first and db["recipe_changes"].count == 1
        # unchanged text: written, nothing filed
        assert save_recipe(target, first, old_text=first, db=db, user="eng") is None
        assert db["recipe_changes"].count == 1
        # another name in the log than the file's stem
        change = save_recipe(target, second, old_text=first, db=db, name="line-4", user="eng")
        assert db["recipe_changes"].get(change)["name"] == "line-4"
    # without a log: written, nothing filed
    other = tmp_path / "no-log.toml"
    assert save_recipe(other, first, old_text=None) is None
    assert other.read_text(encoding="utf-8") == first


# ---------------------------------------------------------------------- watch_items, input_files


def test_watch_items_state_and_stale_release(tmp_path):
    from core.store import audit_rows, begin_inspection, get_inspection, open_log, write_transaction
    from core.store.watch_items import (
        active_watch_item,
        get_watch_item,
        insert_watch_item,
        release_stale_watch_items,
        update_watch_item,
        watch_items,
    )

    folder = str(tmp_path / "hot")
    with open_log(tmp_path / "log.db") as db:
        with write_transaction(db):
            iid = begin_inspection(db, "CELL-1")
            running = insert_watch_item(db, folder=folder, name="a.tif", status="running",
                                        inspection_id=iid, pid=os.getpid())
            filed = insert_watch_item(db, folder=folder, name="b.tif", status="filed")
            insert_watch_item(db, folder=str(tmp_path / "other"), name="a.tif", status="running", pid=1)
        assert active_watch_item(db, folder, "a.tif")["id"] == running
        assert active_watch_item(db, folder, "missing.tif") is None
        assert [r["id"] for r in watch_items(db, folder, "filed")] == [filed]
        assert watch_items(db, folder, "running", unowned=True) == []
        with pytest.raises(ValueError, match="no column"):
            update_watch_item(db, filed, **{"status = 'done' --": 1})
        before = get_watch_item(db, filed)["updated_at"]
        with write_transaction(db):
            update_watch_item(db, filed, status="done", moved_to="x")
        row = get_watch_item(db, filed)
        assert (row["status"], row["moved_to"]) == ("done", "x") and row["updated_at"] >= before

        n_audit = len(audit_rows(db))
        assert release_stale_watch_items(db, folder) == 1  # only this folder's owned row
        assert get_watch_item(db, running)["pid"] is None
        assert get_inspection(db, iid)["status"] == "interrupted"
        assert [r["action"] for r in audit_rows(db)[n_audit:]] == ["inspection.interrupted"]
        assert [r["id"] for r in watch_items(db, folder, "running", unowned=True)] == [running]
        assert release_stale_watch_items(db, folder) == 0


def test_input_files_find_complete_inspections_of_one_input(tmp_path):
    from core.store import begin_inspection, complete_inspection, open_log, write_transaction
    from core.store.input_files import completed_inspections_of_input, record_input_file

    path = str(tmp_path / "scan.tif")
    with open_log(tmp_path / "log.db") as db:
        ids = []
        for recipe_hash, complete in (("h1", True), ("h2", True), ("h1", False)):
            with write_transaction(db):
                iid = begin_inspection(db, "CELL-9", recipe="r", recipe_hash=recipe_hash)
                record_input_file(db, iid, path, size_bytes=10, mtime_ns=5, n_files=1, sha256=None)
            if complete:
                complete_inspection(db, iid, {"cell_id": "CELL-9", "verdict": "PASS", "findings": []})
            ids.append(iid)
        rows = completed_inspections_of_input(db, path, ["h1", "h2"])
        assert [r["id"] for r in rows] == [ids[1], ids[0]]  # newest first, complete only
        assert rows[0]["size_bytes"] == 10 and rows[0]["verdict"] == "PASS"
        assert [r["id"] for r in completed_inspections_of_input(db, path, ["h2"])] == [ids[1]]
        assert completed_inspections_of_input(db, str(tmp_path / "other.tif"), ["h1"]) == []
