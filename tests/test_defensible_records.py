"""Records a plant can defend (issue 22): a keyed audit chain with its head kept outside the log
and on every report, users inside the chain, roles that cannot be climbed, login lockout.

Each test replays an attack that worked before: the file writer who recomputes every hash,
deletes the tail or edits the users table; the operator who becomes admin after the last admin
demoted themselves; the guesser with unlimited tries.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import stat
import string
from pathlib import Path

import pytest

from core.errors import InputError
from core.store import audit as audit_module
from core.store import audit_rows, check_records, find_audit_break, open_log, record_inspection
from core.store import schema as schema_module
from core.store.keys import AuditKey, AuditKeyError, load_audit_key
from core.store.users import (
    PermissionDenied,
    add_user,
    authenticate,
    authorize,
    disable_user,
    has_passwords,
    hash_secret,
    lockout_policy,
    unlock_user,
)
from qc_app.cli import main

FAST = {"n": 2**10}


def _tamper(path: Path, *statements: str, params: list | None = None) -> None:
    """What someone with write access to the file can do: drop the triggers, edit anything."""
    conn = sqlite3.connect(path)
    for trigger in ("audit_no_update", "audit_no_delete", "inspections_frozen",
                    "overrides_no_update", "overrides_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for sql in statements:
        conn.execute(sql)
    for sql, values in params or []:
        conn.execute(sql, values)
    conn.commit()
    conn.close()


def _staffed(path: Path) -> int:
    with open_log(path) as db:
        add_user(db, "ada", "admin", secret="admin-pw")
        add_user(db, "eng", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
        add_user(db, "op", "operator", secret="1234", actor="ada", actor_secret="admin-pw")
        return record_inspection(db, {"cell_id": "C1", "verdict": "FAIL", "findings": []})


# ------------------------------------------------------------ tamper evidence (file writer)


def _recompute_chain(path: Path, row_hash) -> None:
    """Rewrite every audit row's hash from the first row on, as a forger would."""
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT id, at, actor, action, entity, entity_id, details FROM audit"
                        " ORDER BY id").fetchall()
    prev = audit_module.GENESIS_HASH
    for rid, at, actor, action, entity, entity_id, details in rows:
        content = {"id": rid, "at": at, "actor": actor, "action": action, "entity": entity,
                   "entity_id": entity_id, "details": details}
        new = row_hash(prev, content)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, new, rid))
        prev = new
    conn.commit()
    conn.close()


def _flip_fail_to_pass(path: Path, iid: int) -> None:
    """The issue's forgery: verdict, result JSON, its hash and the audit details all say PASS."""
    conn = sqlite3.connect(path)
    result_json = conn.execute("SELECT result_json FROM inspections WHERE id = ?", (iid,)).fetchone()[0]
    conn.close()
    forged = result_json.replace('"FAIL"', '"PASS"')
    sha = hashlib.sha256(forged.encode()).hexdigest()
    _tamper(path, params=[
        ("UPDATE inspections SET verdict = 'PASS', result_json = ?, result_sha256 = ? WHERE id = ?",
         [forged, sha, iid]),
        ("UPDATE audit SET details = json_set(details, '$.verdict', 'PASS', '$.result_sha256', ?)"
         " WHERE action = 'inspection.complete' AND entity_id = ?", [sha, str(iid)]),
    ])


@pytest.mark.parametrize("forger", ["plain sha256", "hmac with a guessed key"])
def test_recomputed_chain_does_not_verify(tmp_path, capsys, forger):
    """Issue 22, 2: flip FAIL to PASS everywhere and recompute every hash → not 'intact'."""
    log = tmp_path / "log.db"
    iid = _staffed(log)
    assert main(["audit", "verify", "--db", str(log)]) == 0
    capsys.readouterr()
    _flip_fail_to_pass(log, iid)
    if forger == "plain sha256":
        _recompute_chain(log, audit_module.legacy_row_hash)
    else:
        guessed = AuditKey(path=tmp_path / "guess.key", secret=os.urandom(32))
        _recompute_chain(log, lambda prev, content: audit_module.row_mac(guessed, prev, content))
    code = main(["audit", "verify", "--db", str(log)])
    out = capsys.readouterr().out
    assert code == 1 and "BROKEN at row 1" in out, out  # the seal row is the first forged one
    # No PASS printed from a forged log: not for the operator (whose own audited state no
    # longer verifies), not through the API either.
    os.environ["CELLQC_PASSWORD"] = "1234"
    try:
        assert main(["report", str(iid), "--db", str(log), "--no-volume", "--user", "op",
                     "--out", str(tmp_path / "r.pdf")]) == 2
    finally:
        del os.environ["CELLQC_PASSWORD"]
    err = capsys.readouterr().err
    assert "does not verify with the audit key" in err and not (tmp_path / "r.pdf").exists()
    from core.report import inputs_from_log

    with open_log(log) as db, pytest.raises(InputError, match="differs from the audit chain"):
        inputs_from_log(db, iid, load_volume=False)
    assert main(["doctor", "--quick", "--db", str(log)]) == 1


def test_editing_one_row_of_a_keyed_chain_is_found(tmp_path):
    log = tmp_path / "log.db"
    _staffed(log)
    with open_log(log) as db:
        rows = audit_rows(db)
    victim = random.Random(22).choice(rows[1:])["id"]
    _tamper(log, f"UPDATE audit SET actor = 'mallory' WHERE id = {victim}")
    with open_log(log, recover=False) as db:
        broken = find_audit_break(db)
    assert broken is not None and broken.row_id == victim and "keyed hash" in broken.problem


def test_deleted_tail_is_found_by_the_head_outside_the_log(tmp_path, capsys):
    log = tmp_path / "log.db"
    _staffed(log)
    with open_log(log) as db:
        n = len(audit_rows(db))
    cut = random.Random(5).randint(1, 4)
    _tamper(log, f"DELETE FROM audit WHERE id > {n - cut}")
    code = main(["audit", "verify", "--db", str(log)])
    out = capsys.readouterr().out
    assert code == 1 and f"BROKEN at row {n}" in out and "deleted" in out, out


def test_users_table_edits_are_refused_and_reported(tmp_path, capsys):
    """Issue 22, 2: `update users set role='admin'` and a copied password hash go unnoticed."""
    log = tmp_path / "log.db"
    _staffed(log)
    _tamper(log, "UPDATE users SET role = 'admin' WHERE name = 'op'")
    with open_log(log) as db:
        with pytest.raises(PermissionDenied, match="role differs from the audit chain"):
            authorize(db, "op", "1234", "manage_users", source="test")
        assert any("user 'op': its role differs" in p for p in check_records(db))
    assert main(["audit", "verify", "--db", str(log)]) == 1
    assert "user 'op'" in capsys.readouterr().out
    _tamper(log, "UPDATE users SET role = 'operator' WHERE name = 'op'",
            "UPDATE users SET secret_hash = (SELECT secret_hash FROM users WHERE name = 'ada')"
            " WHERE name = 'eng'")
    with open_log(log) as db:
        with pytest.raises(PermissionDenied, match="password differs"):
            authenticate(db, "eng", "admin-pw")
        # a user row inserted behind cellqc's back
        db.conn.execute("INSERT INTO users (name, role, created_at, secret_hash) VALUES"
                        " ('mallory', 'admin', 'x', ?)", (hash_secret("evil-pw", **FAST),))
        db.conn.commit()
        with pytest.raises(PermissionDenied, match="without any audit entry"):
            authorize(db, "mallory", "evil-pw", "override", source="test")
        authorize(db, "op", "1234", "inspect", source="test")  # untouched users still work


def test_missing_key_and_another_stations_key(tmp_path, monkeypatch, capsys):
    log = tmp_path / "log.db"
    iid = _staffed(log)
    key_path = Path(os.environ["CELLQC_AUDIT_KEY"])
    # Another station's key: nothing is written, the line says why.
    other = tmp_path / "other" / "audit.key"
    monkeypatch.setenv("CELLQC_AUDIT_KEY", str(other))
    from core.store.keys import create_audit_key

    create_audit_key(other)
    with open_log(log) as db, pytest.raises(AuditKeyError, match="another station"):
        record_inspection(db, {"cell_id": "C2", "verdict": "PASS", "findings": []})
    assert main(["audit", "verify", "--db", str(log)]) == 2
    assert "not with this one" in capsys.readouterr().err
    # The key missing: reading works, writing and verifying say to restore it; no new key.
    missing = tmp_path / "gone" / "audit.key"
    monkeypatch.setenv("CELLQC_AUDIT_KEY", str(missing))
    assert main(["log", "--db", str(log)]) == 0
    assert "C1" in capsys.readouterr().out
    monkeypatch.setenv("CELLQC_PASSWORD", "1234")
    code = main(["report", str(iid), "--db", str(log), "--no-volume", "--out",
                 str(tmp_path / "r.pdf"), "--user", "op"])
    err = capsys.readouterr().err
    assert code == 2 and "missing; restore it from the backup" in err, err
    assert not missing.exists()
    assert main(["doctor", "--quick", "--db", str(log)]) == 1
    assert "audit chain: cannot verify" in capsys.readouterr().out
    monkeypatch.setenv("CELLQC_AUDIT_KEY", str(key_path))
    assert main(["audit", "verify", "--db", str(log)]) == 0


def test_log_and_key_are_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CELLQC_AUDIT_KEY")
    old_umask = os.umask(0o022)
    try:
        with open_log() as db:  # $CELLQC_HOME/cellqc.db, key at $CELLQC_HOME/audit.key
            record_inspection(db, {"cell_id": "C1", "verdict": "PASS", "findings": []})
    finally:
        os.umask(old_umask)
    home = tmp_path / "home"
    for name in ("cellqc.db", "audit.key"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    assert load_audit_key(home / "audit.key").path == home / "audit.key"
    (home / "audit.key").chmod(0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        load_audit_key(home / "audit.key")


def _legacy_append(db, action, *, entity=None, entity_id=None, details=None, actor=None):
    """How cellqc ≤ schema 4 appended an audit row: a plain SHA-256 chain."""
    from core.store.audit import _content, canonical_json, legacy_row_hash, utc_now

    with schema_module.write_transaction(db):
        last = db.conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev_id, prev = (last[0], last[1]) if last else (0, audit_module.GENESIS_HASH)
        row = {"id": prev_id + 1, "at": utc_now(), "actor": actor, "action": action,
               "entity": entity, "entity_id": None if entity_id is None else str(entity_id),
               "details": canonical_json(details or {})}
        row["prev_hash"] = prev
        row["hash"] = legacy_row_hash(prev, _content(row))
        db.conn.execute("INSERT INTO audit VALUES (:id, :at, :actor, :action, :entity, :entity_id,"
                        " :details, :prev_hash, :hash)", row)
    return row["id"]


def _old_log(path: Path, monkeypatch) -> None:
    """A log as cellqc ≤ schema 4 wrote it: plain chain, a user without chain state."""
    import core.store.log as log_module

    with monkeypatch.context() as m:
        m.setattr(schema_module, "MIGRATIONS", schema_module.MIGRATIONS[:4])
        m.setattr(schema_module, "SCHEMA_VERSION", 4)
        m.setattr(schema_module, "append_audit", _legacy_append)
        m.setattr(log_module, "append_audit", _legacy_append)
        with open_log(path) as db:
            record_inspection(db, {"cell_id": "OLD-1", "verdict": "FAIL", "findings": []})
            db.conn.execute("INSERT INTO users (name, role, created_at, secret_hash) VALUES"
                            " ('ada', 'admin', 'then', ?)", (hash_secret("admin-pw", **FAST),))
            _legacy_append(db, "user.add", entity="users", entity_id="ada", details={"role": "admin"})
            # an operator added without a password by an admin, and a name only given as --user
            db.conn.execute("INSERT INTO users (name, role, created_at) VALUES ('olga', 'operator', 'then')")
            _legacy_append(db, "user.add", entity="users", entity_id="olga", details={"role": "operator"})
            db.conn.execute("INSERT INTO users (name, role, created_at) VALUES ('quick', 'operator', 'then')")
            db.conn.commit()


def test_old_plain_log_is_sealed_once_and_its_rows_protected(tmp_path, monkeypatch, capsys):
    log = tmp_path / "old.db"
    _old_log(log, monkeypatch)
    conn = sqlite3.connect(log)
    n_plain = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    conn.close()
    with open_log(log) as db:  # upgrade: migration 5 seals the plain chain
        seals = [r for r in audit_rows(db) if r["action"] == "audit.key"]
        assert len(seals) == 1 and seals[0]["id"] == n_plain + 1
        details = json.loads(seals[0]["details"])
        assert details["sealed_rows"] == n_plain and "upgrade" in details["note"]
        snapshots = [r for r in audit_rows(db) if r["action"] == "user.snapshot"]
        assert [r["entity_id"] for r in snapshots] == ["ada", "olga"]
        assert find_audit_break(db) is None and check_records(db) == []
        authenticate(db, "ada", "admin-pw")
    with open_log(log) as db:  # opening again seals nothing more
        assert sum(r["action"] == "audit.key" for r in audit_rows(db)) == 1
    # A plain row before the seal is protected now: edit it and re-hash the plain chain.
    _tamper(log, "UPDATE audit SET details = replace(details, 'FAIL', 'PASS') WHERE id <= 8")
    conn = sqlite3.connect(log)
    rows = conn.execute("SELECT id, at, actor, action, entity, entity_id, details FROM audit"
                        f" WHERE id <= {n_plain} ORDER BY id").fetchall()
    prev = audit_module.GENESIS_HASH
    for rid, at, actor, action, entity, entity_id, details in rows:
        content = dict(id=rid, at=at, actor=actor, action=action, entity=entity,
                       entity_id=entity_id, details=details)
        new = audit_module.legacy_row_hash(prev, content)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, new, rid))
        prev = new
    conn.commit()
    conn.close()
    assert main(["audit", "verify", "--db", str(log)]) == 1
    assert f"row {n_plain + 1}" in capsys.readouterr().out


def test_keyed_log_rewritten_as_a_plain_one_is_not_sealed(tmp_path, monkeypatch):
    """Someone without the key turns a keyed log back into a 'schema 4' plain one: refused."""
    log = tmp_path / "log.db"
    with open_log(log) as db:
        record_inspection(db, {"cell_id": "C1", "verdict": "FAIL", "findings": []})
    forged = tmp_path / "forged.db"
    _old_log(forged, monkeypatch)
    os.replace(forged, log)
    with pytest.raises(InputError, match="rewritten without the audit key"):
        open_log(log)


# -------------------------------------------------------------- the head on reports and JSON


@pytest.mark.slow
def test_reports_and_results_carry_the_chain_head(tmp_path, capsys, tiny_cell):
    log, pdf, js = tmp_path / "log.db", tmp_path / "T-1.pdf", tmp_path / "T-1.json"
    code = main(["inspect", str(tiny_cell), "--db", str(log), "--report", str(pdf), "--json", str(js),
                 "--quiet"])
    assert code in (0, 1, 3)
    capsys.readouterr()
    exported = json.loads(js.read_text())
    head = exported["audit_head"]
    jsonschema = pytest.importorskip("jsonschema")
    import resources

    schema = json.loads(resources.read_text("schema", "inspection.schema.json"))
    jsonschema.validate(exported, schema)
    with open_log(log) as db:
        row = db.conn.execute("SELECT hash, action FROM audit WHERE id = ?", (head["row"],)).fetchone()
        assert row[0] == head["hash"] and row[1] == "inspection.begin"
        assert head["log_id"] == audit_module.log_id(db)
    from core.report.anchor import read_report_anchor

    anchored = read_report_anchor(pdf)
    assert anchored is not None and (anchored.row, anchored.hash) == (head["row"], head["hash"])
    assert main(["audit", "verify", "--db", str(log), "--report", str(pdf), "--report", str(js)]) == 0
    assert capsys.readouterr().out.count("is in this log's chain") == 2
    # The same report against another log: refused.
    other = tmp_path / "other.db"
    with open_log(other) as db:
        record_inspection(db, {"cell_id": "X", "verdict": "PASS", "findings": []})
    assert main(["audit", "verify", "--db", str(other), "--report", str(pdf)]) == 1
    assert "another log" in capsys.readouterr().out
    # The log truncated below the printed head (and the head file gone too): the paper says so.
    with open_log(log) as db:
        heads = audit_module.head_file_path(audit_module.audit_key_of(db), audit_module.log_id(db))
    heads.unlink()
    _tamper(log, f"DELETE FROM audit WHERE id >= {head['row']}")
    assert main(["audit", "verify", "--db", str(log), "--report", str(pdf)]) == 1
    out = capsys.readouterr().out
    assert "NOT in this log" in out and f"no row {head['row']}" in out


# ------------------------------------------------------------------ roles cannot be climbed


def test_last_admin_cannot_demote_themselves_and_bootstrap_stays_closed(tmp_path, monkeypatch, capsys):
    """Issue 22, 1: ada demotes herself, then anyone adds an admin without credentials."""
    log = str(tmp_path / "log.db")
    pw = tmp_path / "ada.pw"
    pw.write_text("admin-pw\n")
    monkeypatch.setenv("CELLQC_NEW_PASSWORD", "admin-pw")
    assert main(["users", "add", "ada", "--role", "admin", "--db", log]) == 0
    demote = ["users", "add", "ada", "--role", "engineer", "--no-password", "--user", "ada",
              "--password-file", str(pw), "--db", log]
    assert main(demote) == 2
    assert "last active admin" in capsys.readouterr().err
    monkeypatch.setenv("CELLQC_NEW_PASSWORD", "evil-pw")
    monkeypatch.delenv("CELLQC_PASSWORD", raising=False)
    assert main(["users", "add", "mallory", "--role", "admin", "--db", log]) == 2
    assert "needs --user ADMIN" in capsys.readouterr().err
    # With a second admin, ada may step down; the second one then cannot.
    monkeypatch.setenv("CELLQC_NEW_PASSWORD", "bob-pw")
    assert main(["users", "add", "bob", "--role", "admin", "--user", "ada", "--password-file",
                 str(pw), "--db", log]) == 0
    assert main(demote) == 0
    with open_log(log) as db:
        with pytest.raises(PermissionDenied, match="last active admin"):
            add_user(db, "bob", "operator", actor="bob", actor_secret="bob-pw")
        with pytest.raises(PermissionDenied, match="last active admin"):
            disable_user(db, "bob", actor="bob", actor_secret="bob-pw")
        roles = dict(db.conn.execute("SELECT name, role FROM users"))
    assert roles == {"ada": "engineer", "bob": "admin"}
    # Someone who strips every password from the file does not reopen the bootstrap.
    _tamper(Path(log), "UPDATE users SET secret_hash = NULL")
    with open_log(log) as db:
        assert has_passwords(db)
        with pytest.raises(PermissionDenied):
            add_user(db, "mallory", "admin", secret="evil-pw")


def test_every_user_change_needs_the_admins_password(tmp_path):
    log = tmp_path / "log.db"
    _staffed(log)
    with open_log(log) as db:
        for call in (lambda: add_user(db, "op", "admin", actor="ada"),
                     lambda: disable_user(db, "op", actor="ada"),
                     lambda: unlock_user(db, "op", actor="ada"),
                     lambda: add_user(db, "op", "admin", actor="ada", actor_secret="guess"),
                     lambda: add_user(db, "op", "admin", actor="eng", actor_secret="eng-pw")):
            with pytest.raises(PermissionDenied):
                call()
        assert db.conn.execute("SELECT role FROM users WHERE name = 'op'").fetchone()[0] == "operator"
        add_user(db, "op", "engineer", actor="ada", actor_secret="admin-pw")
        change = [r for r in audit_rows(db) if r["action"] == "user.change"][-1]
        state = json.loads(change["details"])["state"]
        assert change["actor"] == "ada" and state["role"] == "engineer" and state["secret_sha256"]
        assert check_records(db) == []


# -------------------------------------------------------------------------------- lockout


@pytest.mark.slow
def test_lockout_after_consecutive_failures_audited_with_source(tmp_path, monkeypatch):
    """Issue 22, 3: 20 wrong passwords and then the right one worked; nothing was audited."""
    log = tmp_path / "log.db"
    _staffed(log)
    policy = lockout_policy()
    assert (policy.max_failures, policy.lock_minutes) == (5, 15.0)
    rng = random.Random(3)
    guesses = ["".join(rng.choices(string.ascii_letters, k=8)) for _ in range(policy.max_failures)]
    with open_log(log) as db:
        for guess in guesses:
            with pytest.raises(PermissionDenied, match="wrong password"):
                authorize(db, "op", guess, "inspect", source="cellqc inspect")
        with pytest.raises(PermissionDenied, match="is locked until"):
            authorize(db, "op", "1234", "inspect", source="cellqc inspect")  # right, but locked
        failed = [r for r in audit_rows(db) if r["action"] == "user.login_failed"]
        assert len(failed) == policy.max_failures + 1
        details = [json.loads(r["details"]) for r in failed]
        assert all(d["source"] == "cellqc inspect" for d in details)
        assert [d.get("consecutive_failures") for d in details[:-1]] == list(
            range(1, policy.max_failures + 1))
        assert all(r["entity_id"] == "op" and r["at"] for r in failed)
        assert [r["action"] for r in audit_rows(db)].count("user.locked") == 1
        with pytest.raises(PermissionDenied):
            unlock_user(db, "op", actor="eng", actor_secret="eng-pw")
        unlock_user(db, "op", actor="ada", actor_secret="admin-pw")
        assert authorize(db, "op", "1234", "inspect", source="test")["name"] == "op"
        # a success resets the count: four more failures do not lock
        for guess in guesses[:-1]:
            with pytest.raises(PermissionDenied, match="wrong password"):
                authenticate(db, "op", guess)
        authenticate(db, "op", "1234")
        assert db.conn.execute("SELECT failed_logins FROM users WHERE name='op'").fetchone()[0] == 0
        assert check_records(db) == [] and find_audit_break(db) is None
    # The lock also ends by itself (the lock time is only a column: no waiting in a test).
    monkeypatch.setenv("CELLQC_MAX_FAILED_LOGINS", "2")
    with open_log(log) as db:
        for _ in range(2):
            with pytest.raises(PermissionDenied):
                authenticate(db, "eng", "nope")
        with pytest.raises(PermissionDenied, match="locked"):
            authenticate(db, "eng", "eng-pw")
        db.conn.execute("UPDATE users SET locked_until = '2000-01-01T00:00:00+00:00'")
        db.conn.commit()
        authenticate(db, "eng", "eng-pw")
    monkeypatch.setenv("CELLQC_LOCKOUT_MINUTES", "soon")
    with pytest.raises(InputError, match="CELLQC_LOCKOUT_MINUTES"):
        lockout_policy()


def test_cli_failed_login_is_audited_with_the_command(tmp_path, monkeypatch, capsys, tiny_cell):
    log = tmp_path / "log.db"
    _staffed(log)
    monkeypatch.setenv("CELLQC_PASSWORD", "wrong")
    assert main(["inspect", str(tiny_cell), "--db", str(log), "--user", "op", "--quiet"]) == 2
    assert main(["users", "disable", "op", "--user", "ghost", "--db", str(log)]) == 2
    capsys.readouterr()
    with open_log(log) as db:
        failed = [(r["entity_id"], json.loads(r["details"])["source"]) for r in audit_rows(db)
                  if r["action"] == "user.login_failed"]
    assert failed == [("op", "cellqc inspect"), ("ghost", "cellqc users disable")]


def test_unknown_and_known_users_cost_one_scrypt_each(tmp_path, monkeypatch):
    """Issue 22, 3: an unknown user answered in 0 ms, a real one in 41 ms."""
    import core.store.users as users

    log = tmp_path / "log.db"
    with open_log(log) as db:
        add_user(db, "ada", "admin", secret="admin-pw")  # the real cost: n = 2**14
        add_user(db, "gone", "operator", secret="gone-pw", actor="ada", actor_secret="admin-pw")
        disable_user(db, "gone", actor="ada", actor_secret="admin-pw")
    calls: list[int] = []
    real = users.hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(kwargs["n"])
        return real(*args, **kwargs)

    monkeypatch.setattr(users.hashlib, "scrypt", counting)
    with open_log(log) as db:
        for name, secret in (("nobody", "x" * 8), ("ada", "wrong-pw"), ("gone", "gone-pw"),
                             ("ada", "admin-pw")):
            calls.clear()
            try:
                authenticate(db, name, secret)
            except PermissionDenied:
                pass
            assert calls == [2**14], (name, calls)


def test_report_anchor_read_from_metadata_or_printed_footer(tmp_path):
    """Any cell id (the metadata may be UTF-16) and a PDF stripped of its metadata still
    give their head back: the footer prints it in full."""
    from pypdf import PdfReader, PdfWriter

    from core.report import ReportInputs
    from core.report.anchor import read_report_anchor
    from core.report.pdf import build_pdf
    from core.store.audit import AuditHead

    rng = random.Random(11)
    head = AuditHead(log_id=f"{rng.getrandbits(128):032x}", row=rng.randint(1, 10**6),
                     hash=f"{rng.getrandbits(256):064x}")
    result = {"schema": "cellqc.inspection/1", "cell_id": "Zelle-µ-😀", "verdict": "FAIL",
              "voxel_size_um": 10.0, "shape_zyx": [4, 8, 8], "recipe": "18650-nmc", "findings": [],
              "metrics": {}, "geometry": {}}
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(build_pdf(ReportInputs(result=result, audit_head=head)))
    assert read_report_anchor(pdf) == head
    writer = PdfWriter()
    for page in PdfReader(str(pdf)).pages:
        writer.add_page(page)
    stripped = tmp_path / "stripped.pdf"
    with open(stripped, "wb") as handle:
        writer.write(handle)
    assert "audit-head" not in str(PdfReader(str(stripped)).metadata or {})
    assert read_report_anchor(stripped) == head
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(build_pdf(ReportInputs(result=result)))
    assert read_report_anchor(plain) is None
    (tmp_path / "not.pdf").write_text("hello")
    with pytest.raises(InputError, match="not a PDF"):
        read_report_anchor(tmp_path / "not.pdf")
