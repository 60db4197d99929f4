"""Users, roles, scrypt secrets, overrides, recipe audit and ``cellqc doctor``."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import namedtuple

import pytest

from core.errors import InputError, RecipeError
from core.recipe import resolve_recipe_path
from core.store import audit_rows, open_log, record_inspection, verify_audit
from core.store.log import override_verdict
from core.store.users import (
    PermissionDenied,
    add_user,
    authenticate,
    disable_user,
    hash_secret,
    list_users,
    override_as,
    record_recipe_change,
    require_role,
    verify_secret,
)
from qc_app.cli import main

# Cheap scrypt for most tests; the real cost is checked once below.
FAST = {"n": 2**10}


@pytest.fixture
def staffed(db):
    """A log with an admin, an engineer and an operator, and one complete FAIL inspection."""
    add_user(db, "ada", "admin", secret="admin-pw")
    add_user(db, "eng", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
    add_user(db, "op", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
    iid = record_inspection(db, {"cell_id": "C1", "verdict": "FAIL", "findings": []})
    return db, iid


# ------------------------------------------------------------------------------ secrets


def test_scrypt_hash_roundtrip_and_salt():
    a, b = hash_secret("1234", **FAST), hash_secret("1234", **FAST)
    assert a != b and a.startswith("scrypt$1024$8$1$")
    assert verify_secret("1234", a) and verify_secret("1234", b)
    assert not verify_secret("1235", a)
    for bad in (None, "", "md5$x", "scrypt$x$8$1$AA==$AA==", a[:-4], "scrypt$1024$8$1$!!$!!"):
        assert not verify_secret("1234", bad)
    real = hash_secret("a-password")
    assert real.startswith("scrypt$16384$8$1$") and verify_secret("a-password", real)


def test_short_or_huge_secret_refused():
    with pytest.raises(InputError, match="at least"):
        hash_secret("123")
    with pytest.raises(InputError, match="at most"):
        hash_secret("x" * 5000)
    assert not verify_secret("x" * 5000, hash_secret("1234", **FAST))


def test_secret_never_stored_in_clear(staffed, tmp_path):
    db, _ = staffed
    db.conn.execute("PRAGMA wal_checkpoint(FULL)")
    blob = (tmp_path / "log.db").read_bytes()
    for secret in (b"admin-pw", b"eng-pw"):
        assert secret not in blob
    assert all("secret" not in json.loads(r["details"]) or
               json.loads(r["details"]).get("secret_changed") in (True, False)
               for r in audit_rows(db))


# -------------------------------------------------------------------------------- users


def test_first_user_must_be_an_admin_with_a_password(db):
    with pytest.raises(PermissionDenied, match="no admin yet"):
        add_user(db, "op", "operator", secret="1234")
    with pytest.raises(PermissionDenied, match="no admin yet"):
        add_user(db, "ada", "admin")
    add_user(db, "ada", "admin", secret="admin-pw")
    assert [u["name"] for u in list_users(db)] == ["ada"]
    # after the bootstrap, nobody adds users without an admin
    with pytest.raises(PermissionDenied, match="needs --user"):
        add_user(db, "eve", "admin", secret="evil-pw")


def test_only_admins_manage_users(staffed):
    db, _ = staffed
    for actor, secret in (("eng", "eng-pw"), ("op", "1234")):
        with pytest.raises(PermissionDenied, match="may not manage users"):
            add_user(db, "x", "operator", secret="1234", actor=actor, actor_secret=secret)
        with pytest.raises(PermissionDenied):
            disable_user(db, "op", actor=actor, actor_secret=secret)
    # an admin's name without the admin's password changes nothing
    with pytest.raises(PermissionDenied, match="password"):
        add_user(db, "x", "admin", secret="1234", actor="ada")
    with pytest.raises(PermissionDenied, match="wrong password"):
        add_user(db, "x", "admin", secret="1234", actor="ada", actor_secret="guess")
    with pytest.raises(InputError, match="unknown role"):
        add_user(db, "x", "superuser", secret="1234", actor="ada", actor_secret="admin-pw")
    with pytest.raises(InputError, match="printable"):
        add_user(db, "bad\nname", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
    roles = {u["name"]: u["role"] for u in list_users(db)}
    assert roles == {"ada": "admin", "eng": "engineer", "op": "operator"}
    assert all("secret_hash" not in u for u in list_users(db))


def test_authenticate_and_disable(staffed):
    db, _ = staffed
    assert authenticate(db, "eng", "eng-pw")["role"] == "engineer"
    with pytest.raises(PermissionDenied, match="wrong password"):
        authenticate(db, "eng", "nope")
    with pytest.raises(PermissionDenied, match="wrong password"):
        authenticate(db, "ghost", "eng-pw")
    disable_user(db, "eng", actor="ada", actor_secret="admin-pw")
    with pytest.raises(PermissionDenied, match="disabled"):
        authenticate(db, "eng", "eng-pw")
    with pytest.raises(PermissionDenied, match="disabled"):
        require_role(db, "eng", "override")
    with pytest.raises(PermissionDenied, match="last active admin"):
        disable_user(db, "ada", actor="ada", actor_secret="admin-pw")
    actions = [r["action"] for r in audit_rows(db)]
    assert "user.disable" in actions and verify_audit(db) is None


# ----------------------------------------------------------------------------- override


def test_operator_cannot_override_engineer_can_with_audit(staffed):
    db, iid = staffed
    with pytest.raises(PermissionDenied, match="may not override"):
        override_as(db, iid, "PASS", "looks fine", "op", "1234")
    with pytest.raises(PermissionDenied, match="wrong password"):
        override_as(db, iid, "PASS", "looks fine", "eng", "guess")
    with pytest.raises(InputError, match="reason"):
        override_as(db, iid, "PASS", "  ", "eng", "eng-pw")
    oid = override_as(db, iid, "PASS", "scan artefact", "eng", "eng-pw")
    entry = [r for r in audit_rows(db) if r["action"] == "verdict.override"][-1]
    details = json.loads(entry["details"])
    assert entry["actor"] == "eng" and entry["entity_id"] == str(oid)
    assert details["old_verdict"] == "FAIL" and details["new_verdict"] == "PASS"
    assert details["reason"] == "scan artefact"
    assert verify_audit(db) is None


def test_disabled_engineer_refused_even_by_core_call(staffed):
    db, iid = staffed
    disable_user(db, "eng", actor="ada", actor_secret="admin-pw")
    # override_verdict only checks the role; the log's trigger refuses the disabled user
    with pytest.raises(sqlite3.IntegrityError, match="disabled user"):
        override_verdict(db, iid, "PASS", "reason", "eng")
    assert db.conn.execute("SELECT count(*) FROM overrides").fetchone()[0] == 0


# ------------------------------------------------------------------------ recipe audit


def test_recipe_change_audited_with_diff(staffed):
    db, _ = staffed
    old = resolve_recipe_path("18650-nmc").read_text()
    line = next(x for x in old.splitlines() if "=" in x and x.split("=")[1].strip()[:1].isdigit())
    key, value = (s.strip() for s in line.split("=", 1))
    new = old.replace(line, f"{key} = {value}", 1) + "\n# tightened by eng\n"
    with pytest.raises(PermissionDenied, match="may not edit recipe"):
        record_recipe_change(db, "18650-nmc", old, new, "op")
    with pytest.raises(RecipeError):
        record_recipe_change(db, "18650-nmc", old, new + "\n[bogus\n", "eng")
    with pytest.raises(RecipeError):
        record_recipe_change(db, "18650-nmc", old, "[surprise]\nx = 1\n", "eng")
    cid = record_recipe_change(db, "18650-nmc", old, new, "eng")
    row = db["recipe_changes"].get(cid)
    assert "+# tightened by eng" in row["diff"] and row["user"] == "eng"
    entry = [r for r in audit_rows(db) if r["action"] == "recipe.change"][-1]
    details = json.loads(entry["details"])
    assert details["diff"] == row["diff"] and details["old_sha256"] != details["new_sha256"]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.conn.execute("DELETE FROM recipe_changes")
    assert verify_audit(db) is None


# ---------------------------------------------------------------------------------- CLI


def test_cli_users_and_override(tmp_path, monkeypatch, capsys):
    log = str(tmp_path / "cli.db")
    monkeypatch.setenv("CELLQC_NEW_PASSWORD", "admin-pw")
    assert main(["users", "add", "ada", "--role", "admin", "--db", log]) == 0
    monkeypatch.setenv("CELLQC_PASSWORD", "admin-pw")
    monkeypatch.setenv("CELLQC_NEW_PASSWORD", "eng-pw")
    assert main(["users", "add", "eng", "--role", "engineer", "--user", "ada", "--db", log]) == 0
    monkeypatch.setenv("CELLQC_NEW_PASSWORD", "1234")
    assert main(["users", "add", "op", "--user", "ada", "--db", log]) == 0
    monkeypatch.setenv("CELLQC_PASSWORD", "1234")
    assert main(["users", "add", "x", "--user", "op", "--db", log]) == 2
    assert "may not manage users" in capsys.readouterr().err
    assert main(["users", "list", "--db", log]) == 0
    listing = capsys.readouterr().out
    assert "eng" in listing and "engineer" in listing and "pw" not in listing
    with open_log(log) as db:
        iid = record_inspection(db, {"cell_id": "C9", "verdict": "FAIL", "findings": []})
    args = ["override", str(iid), "pass", "--reason", "artefact", "--db", log]
    assert main([*args, "--user", "op"]) == 2
    assert "may not override" in capsys.readouterr().err
    monkeypatch.setenv("CELLQC_PASSWORD", "eng-pw")
    assert main([*args, "--user", "eng"]) == 0
    assert "overridden to PASS" in capsys.readouterr().out
    monkeypatch.setenv("CELLQC_PASSWORD", "admin-pw")
    assert main(["users", "disable", "eng", "--user", "ada", "--db", log]) == 0
    monkeypatch.setenv("CELLQC_PASSWORD", "eng-pw")
    assert main([*args, "--user", "eng"]) == 2
    assert "disabled" in capsys.readouterr().err
    with open_log(log) as db:
        assert verify_audit(db) is None
        assert db.conn.execute("SELECT count(*) FROM overrides").fetchone()[0] == 1


def test_cli_recipes_save_audited(tmp_path, monkeypatch, capsys):
    log = str(tmp_path / "r.db")
    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))
    with open_log(log) as db:
        add_user(db, "ada", "admin", secret="admin-pw")
        add_user(db, "eng", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
        add_user(db, "op", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
    edited = tmp_path / "mine.toml"
    edited.write_text(resolve_recipe_path("18650-nmc").read_text() + "\n# v2\n")
    monkeypatch.setenv("CELLQC_PASSWORD", "1234")
    assert main(["recipes", "save", str(edited), "--user", "op", "--db", log]) == 2
    assert "may not edit recipe" in capsys.readouterr().err
    saved = tmp_path / "home" / "recipes" / "mine.toml"
    assert not saved.exists()
    monkeypatch.setenv("CELLQC_PASSWORD", "eng-pw")
    assert main(["recipes", "save", str(edited), "--user", "eng", "--db", log]) == 0
    edited.write_text(edited.read_text().replace("# v2", "# v3"))
    assert main(["recipes", "save", str(edited), "--user", "eng", "--db", log]) == 0
    assert saved.read_text() == edited.read_text()
    edited.write_text("[recipe]\nname = 1\n")
    assert main(["recipes", "save", str(edited), "--user", "eng", "--db", log]) == 2
    assert saved.read_text().endswith("# v3\n")
    with open_log(log) as db:
        diffs = [r["diff"] for r in db["recipe_changes"].rows]
        assert verify_audit(db) is None
    assert len(diffs) == 2 and "-# v2" in diffs[1] and "+# v3" in diffs[1]
    assert not list(saved.parent.glob(".*.part"))


# ------------------------------------------------------------------------------- doctor


def test_doctor_healthy_then_tampered(tmp_path, capsys):
    log = tmp_path / "doc.db"
    with open_log(log) as db:
        record_inspection(db, {"cell_id": "C1", "verdict": "PASS", "findings": []})
    assert main(["doctor", "--quick", "--db", str(log)]) == 0
    out = capsys.readouterr().out
    assert "audit chain: " in out and "integrity_check ok" in out
    conn = sqlite3.connect(log)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 2")
    conn.commit()
    conn.close()
    assert main(["doctor", "--quick", "--db", str(log)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] audit chain: BROKEN at audit row 2" in out and "→" in out


def test_doctor_corrupt_file_and_full_disk(tmp_path, capsys, monkeypatch):
    from core import doctor

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    assert main(["doctor", "--quick", "--db", str(bad)]) == 1
    assert "[FAIL] log" in capsys.readouterr().out
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage(10**11, 10**11, 10**6))
    checks = doctor.run_checks(tmp_path / "none.db", packages=False)
    disk = [c for c in checks if c.name == "disk"]
    assert disk and disk[0].status == "fail" and "free space" in disk[0].fix


def test_doctor_packages_listed():
    checks = {c.name: c for c in __import__("core.doctor").doctor.check_packages()}
    assert checks["package numpy"].status == "ok"
    assert checks["package sqlite_utils"].status == "ok"


# ---------------------------------------------------------------------------- GUI login


def test_gui_engineer_mode_needs_a_password(tmp_path, monkeypatch):
    pytest.importorskip("pytestqt")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from qc_app.gui import login
    from qc_app.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    log = tmp_path / "gui.db"
    with open_log(log) as db:
        add_user(db, "ada", "admin", secret="admin-pw")
        add_user(db, "erik", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
        add_user(db, "olga", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
    typed: dict[str, str] = {}

    def fake_exec(dialog):
        dialog.user.setText(typed["user"])
        dialog.secret.setText(typed["secret"])
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(login.LoginDialog, "exec", fake_exec)
    window = MainWindow(db_path=log, dialogs=False)
    try:
        for user, secret, why in (("erik", "guess", "wrong password"),
                                  ("olga", "1234", "engineer mode needs")):
            typed.update(user=user, secret=secret)
            window.switch_role_dialog()
            assert window.role == "operator" and why in window.last_error
        typed.update(user="erik", secret="eng-pw")
        window.switch_role_dialog()
        assert window.role == "engineer"
        window.switch_role_dialog()  # back to operator, no login needed
        assert window.role == "operator"
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()


# -------------------------------------------- state-changing commands need a login (issue 13)


def _rows(log):
    """Row counts of what a refused command must not write (a failed login's audit row aside)."""
    with open_log(log) as db:
        counts = {t: db.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("inspections", "reports", "roi_requests", "followups")}
        counts["audit"] = db.conn.execute(
            "SELECT count(*) FROM audit WHERE action != 'user.login_failed'").fetchone()[0]
        return counts


@pytest.mark.slow
def test_cli_fresh_log_needs_no_user_then_every_change_does(tmp_path, monkeypatch, capsys, tiny_cell):
    home = tmp_path / "home"
    monkeypatch.setenv("CELLQC_HOME", str(home))
    monkeypatch.delenv("CELLQC_PASSWORD", raising=False)
    log = tmp_path / "log.db"
    js = tmp_path / "out" / "T-1.json"
    inspect = ["inspect", str(tiny_cell), "--db", str(log), "--json", str(js), "--quiet"]

    # A fresh log (no users): the quick start works without --user; a name is recorded as given.
    assert main([*inspect, "--user", "quickstart"]) in (0, 1, 3)
    assert js.is_file()
    js.unlink()
    with open_log(log) as db:
        assert db.conn.execute("SELECT operator FROM inspections").fetchone()[0] == "quickstart"
        add_user(db, "ada", "admin", secret="admin-pw")
        add_user(db, "eng", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
        add_user(db, "op", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
        add_user(db, "gone", "operator", secret="gone-pw", actor="ada", actor_secret="admin-pw")
        disable_user(db, "gone", actor="ada", actor_secret="admin-pw")
        iid = record_inspection(db, {"cell_id": "C2", "verdict": "FAIL", "findings": []})
    before = _rows(log)

    # Now every command that changes the log refuses, in one line, exit 2, writing nothing.
    watched = tmp_path / "hot"
    watched.mkdir()
    (watched / "T-1.tif").write_bytes(tiny_cell.read_bytes())
    energies = tmp_path / "e.txt"
    energies.write_text("8300\n8350\n")
    refusals = [
        (None, None, inspect, "needs --user"),
        ("op", "wrong", inspect, "wrong password"),
        ("ghost", "1234", inspect, "wrong password"),
        ("gone", "gone-pw", inspect, "is disabled"),
        ("op", "wrong", [*inspect, "--operator", "op"], "wrong password"),  # deprecated alias
        (None, None, ["batch", str(tiny_cell), "--db", str(log), "--workers", "0",
                      "--out", str(tmp_path / "b")], "needs --user"),
        ("op", "wrong", ["batch", str(tiny_cell), "--db", str(log), "--workers", "0"], "wrong password"),
        (None, None, ["watch", str(watched), "--once", "--db", str(log)], "needs --user"),
        ("gone", "gone-pw", ["watch", str(watched), "--once", "--db", str(log)], "is disabled"),
        (None, None, ["demo", "--slices", "2", "--db", str(log)], "needs --user"),
        (None, None, ["report", str(iid), "--db", str(log), "--no-volume",
                      "--out", str(tmp_path / "r.pdf")], "needs --user"),
        ("op", "1234", ["roi", "state", "1", "scheduled", "--db", str(log)], "may not plan roi"),
        (None, None, ["roi", "plan", str(iid), "--db", str(log)], "needs --user"),
        ("op", "1234", ["followup", "import", "C2", str(energies), "--kind", "xanes", "--db", str(log)],
         "may not followup"),
        ("op", "1234", ["override", str(iid), "PASS", "--reason", "x", "--db", str(log)], "may not override"),
        ("op", "1234", ["recipes", "save", str(resolve_recipe_path("18650-nmc")), "--name", "x",
                        "--db", str(log)], "may not edit recipe"),
    ]
    for user, secret, args, why in refusals:
        if secret is None:
            monkeypatch.delenv("CELLQC_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("CELLQC_PASSWORD", secret)
        argv = [*args, "--user", user] if user and "--operator" not in args else list(args)
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if not x.startswith("cellqc: --operator is deprecated")]
        assert len(lines) == 1 and why in lines[0], (argv, err)
        assert _rows(log) == before, argv
    assert not js.exists() and not (tmp_path / "b").exists() and not (tmp_path / "r.pdf").exists()
    assert sorted(p.name for p in watched.iterdir()) == ["T-1.tif"]  # the hot folder untouched
    assert not (home / "demo").exists() and not (home / "recipes").exists()

    # `--user` needs a log to be checked against.
    assert main(["inspect", str(tiny_cell), "--user", "op", "--quiet"]) == 2
    assert "add --db" in capsys.readouterr().err

    # The right password (from a file, which wins over the environment) files under that name.
    password_file = tmp_path / "op.pw"
    password_file.write_text("1234\n")
    monkeypatch.setenv("CELLQC_PASSWORD", "not-this")
    assert main([*inspect, "--user", "op", "--password-file", str(password_file)]) in (0, 1, 3)
    monkeypatch.setenv("CELLQC_PASSWORD", "1234")
    assert main(["report", str(iid), "--db", str(log), "--no-volume", "--out", str(tmp_path / "r.pdf"),
                 "--user", "op"]) == 0
    capsys.readouterr()
    with open_log(log) as db:
        newest = db.conn.execute("SELECT operator, status FROM inspections ORDER BY id DESC").fetchone()
        assert tuple(newest) == ("op", "complete")
        assert verify_audit(db) is None
    after = _rows(log)
    assert after["inspections"] == before["inspections"] + 1 and after["reports"] == before["reports"] + 1
    assert js.is_file()


def test_password_sources(tmp_path, monkeypatch):
    from qc_app import auth

    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        auth.actor_secret("op", empty)
    with pytest.raises(InputError, match="cannot read the password file"):
        auth.actor_secret("op", tmp_path / "missing")
    crlf = tmp_path / "crlf"
    crlf.write_bytes(b"s3cret \r\nsecond line\n")
    assert auth.actor_secret("op", crlf) == "s3cret "  # only the line end is cut
    monkeypatch.setenv("CELLQC_PASSWORD", "from-env")
    assert auth.actor_secret("op") == "from-env"
    monkeypatch.delenv("CELLQC_PASSWORD")
    monkeypatch.setattr(auth, "_stdin_lines", ["from-stdin"])
    assert auth.actor_secret("op") == "from-stdin"
    with pytest.raises(InputError, match="no password given"):
        auth.actor_secret("op")
