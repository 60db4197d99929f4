"""``cellqc doctor``: is the installation whole, is the log sound, is there room on disk?

Each check gives a status (``ok``, ``warn``, ``fail``), what it found, and — when not ok —
what to do. The log is opened read-only: the doctor never migrates, recovers or repairs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from core.extras import EXTRAS

#: Free space below which the doctor warns / fails (bytes).
DISK_WARN_BYTES = 2 * 2**30
DISK_FAIL_BYTES = 200 * 2**20

#: Packages the engine needs (import name, what for).
REQUIRED = (
    ("numpy", "arrays"),
    ("scipy", "filters"),
    ("skimage", "image analysis"),
    ("tifffile", "TIFF volumes"),
    ("h5py", "HDF5/NeXus volumes"),
    ("zarr", "Zarr volumes"),
    ("sqlite_utils", "the log"),
    ("reportlab", "PDF reports"),
)
#: Packages some features need.
OPTIONAL = (
    ("PySide6", "the GUI (cellqc gui)"),
    ("pyqtgraph", "the GUI viewer"),
    ("dask", "cellqc batch"),
    ("olefile", "Xradia .xrm/.txrm follow-up files"),
    ("onnxruntime", "ONNX models"),
)
#: The command that installs an optional package, when plain ``pip install .`` does not
#: (packages of an extra in pyproject.toml; works for a wheel and a checkout's editable install).
INSTALL_COMMAND = {module: f"pip install 'cellqc[{extra}]'"
                   for extra, modules in EXTRAS.items() for module in modules}


@dataclass(frozen=True)
class Check:
    """One finding of the doctor."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[self.status]
        text = f"[{mark}] {self.name}: {self.detail}"
        return f"{text}\n       → {self.fix}" if self.fix and self.status != "ok" else text


def check_python() -> list[Check]:
    ok = sys.version_info >= (3, 11)
    return [Check("python", "ok" if ok else "fail", sys.version.split()[0],
                  "" if ok else "cellqc needs Python 3.11 or newer")]


def check_packages() -> list[Check]:
    checks = []
    for name, what in REQUIRED + OPTIONAL:
        required = (name, what) in REQUIRED
        try:
            module = importlib.import_module(name)
            version = getattr(module, "__version__", "")
            checks.append(Check(f"package {name}", "ok", f"{version or 'present'} ({what})"))
        except Exception as exc:  # ImportError, or a broken install raising anything
            checks.append(Check(
                f"package {name}", "fail" if required else "warn",
                f"cannot import: {type(exc).__name__}: {str(exc)[:120]}",
                f"{INSTALL_COMMAND[name]} to get {name}, needed for {what}"
                if name in INSTALL_COMMAND
                else f"reinstall cellqc (pip install -e .) to get {name}, needed for {what}",
            ))
    return checks


def check_recipes() -> list[Check]:
    from core.recipe import available_recipes, load_recipe

    checks = []
    try:
        names = available_recipes()
    except Exception as exc:
        return [Check("recipes", "fail", f"cannot list: {exc}", "reinstall cellqc")]
    if not names:
        return [Check("recipes", "fail", "no shipped recipes found", "reinstall cellqc")]
    for name in names:
        try:
            recipe = load_recipe(name)
            checks.append(Check(f"recipe {name}", "ok", f"sha256 {recipe.sha256[:12]}"))
        except Exception as exc:
            checks.append(Check(f"recipe {name}", "fail", str(exc),
                                "restore the shipped recipe or fix the TOML file it names"))
    return checks


def check_disk(paths: list[Path]) -> list[Check]:
    checks, seen = [], set()
    for path in paths:
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            usage = shutil.disk_usage(probe)
        except OSError as exc:
            checks.append(Check(f"disk {path}", "warn", f"cannot measure: {exc}"))
            continue
        key = os.stat(probe).st_dev
        if key in seen:
            continue
        seen.add(key)
        free_gb = usage.free / 2**30
        detail = f"{free_gb:.1f} GB free of {usage.total / 2**30:.0f} GB at {probe}"
        if usage.free < DISK_FAIL_BYTES:
            checks.append(Check("disk", "fail", detail,
                                "free space now: reports and the log cannot be written"))
        elif usage.free < DISK_WARN_BYTES:
            checks.append(Check("disk", "warn", detail,
                                "free space soon (old reports, exported volumes)"))
        else:
            checks.append(Check("disk", "ok", detail))
    return checks


def check_log(path: Path) -> list[Check]:
    """Integrity of the log file: SQLite integrity_check, schema, audit chain, records."""
    if not path.exists():
        return [Check("log", "warn", f"no log at {path} yet",
                      "it is created by the first `cellqc inspect --db` or `cellqc demo`")]
    checks: list[Check] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return [Check("log", "fail", f"{path}: not a readable SQLite file ({exc})",
                      "restore the log from its backup; keep this file for analysis")]
    try:
        problems = [r[0] for r in rows if r[0] != "ok"]
        if problems:
            checks.append(Check("log integrity", "fail", f"{path}: {'; '.join(problems[:3])}",
                                "stop writing to it, copy it aside, restore from backup "
                                "(sqlite3 .recover may save rows)"))
            return checks
        checks.append(Check("log integrity", "ok", f"{path}: SQLite integrity_check ok"))
        from sqlite_utils import Database

        from core.store.audit import find_audit_break
        from core.store.keys import AuditKeyError
        from core.store.schema import SCHEMA_VERSION, schema_version

        db = Database(conn)
        version = schema_version(db)
        if version > SCHEMA_VERSION:
            checks.append(Check("log schema", "fail", f"version {version}, newer than this cellqc "
                                f"({SCHEMA_VERSION})", "update cellqc"))
            return checks
        checks.append(Check("log schema", "ok" if version == SCHEMA_VERSION else "warn",
                            f"version {version} (this cellqc writes {SCHEMA_VERSION})",
                            "it is migrated the next time cellqc writes to it"))
        if not db["audit"].exists():
            return checks
        try:
            broken = find_audit_break(db)
        except AuditKeyError as exc:
            checks.append(Check("audit chain", "fail", f"cannot verify: {exc}",
                                "restore the audit key from the backup of the logs, or set "
                                "CELLQC_AUDIT_KEY to this log's key file (docs/reliability.md)"))
            return checks
        n_audit = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
        if broken is not None:
            checks.append(Check("audit chain", "fail", f"BROKEN at {broken}",
                                "the log was edited outside cellqc: keep the file as evidence, "
                                "tell the QA lead, restore from backup"))
        else:
            checks.append(Check("audit chain", "ok", f"{n_audit} rows intact"))
            try:
                from core.store import check_records

                mismatches = check_records(db)
            except Exception as exc:  # an older schema may lack what check_records reads
                mismatches = [f"cannot compare ({exc})"]
            if mismatches:
                checks.append(Check("records", "fail", "; ".join(map(str, mismatches[:3])),
                                    "the log's tables disagree with the audit chain: keep the "
                                    "file, tell the QA lead"))
            else:
                checks.append(Check("records", "ok", "inspections, overrides and users match "
                                                      "their audit"))
        if db["inspections"].exists():
            running = conn.execute(
                "SELECT count(*) FROM inspections WHERE status = 'running'").fetchone()[0]
            if running:
                checks.append(Check("running inspections", "warn", f"{running} marked running",
                                    "if no cellqc is running, any cellqc command that opens the "
                                    "log marks them interrupted; rerun those cells"))
    finally:
        conn.close()
    return checks


def run_checks(db_path: str | os.PathLike[str] | None = None, *, packages: bool = True
               ) -> list[Check]:
    """All the doctor's checks, in order.

    Parameters
    ----------
    db_path : path, optional
        The log; :func:`core.store.default_db_path` when omitted.
    packages : bool
        Also import every required and optional package (slow-ish: PySide6, dask).

    Returns
    -------
    list of Check
    """
    from core.store.schema import default_db_path

    path = (Path(db_path) if db_path is not None else default_db_path()).absolute()
    checks = check_python()
    if packages:
        checks += check_packages()
    checks += check_recipes()
    checks += check_log(path)
    checks += check_disk([path.parent])
    return checks
