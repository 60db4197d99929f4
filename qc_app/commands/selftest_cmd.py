"""``cellqc self-test`` (also ``cellqc --self-test``): is this installation whole and working?

Meant for plant IT after deploying the desktop bundle, and for the bundle build itself. It
checks, in order, printing one line per check:

1. the shipped resources (recipes, schema, style sheets, icons, objectives table) are
   reachable through :mod:`importlib.resources` and the default recipes load;
2. the engine's libraries import (numpy, scipy, scikit-image, tifffile, h5py, zarr,
   reportlab, sqlite-utils, jsonschema, onnxruntime);
3. the demo runs headless end to end in a throw-away folder: a synthetic defective cell is
   rendered, written, read back, inspected, its result validated against the JSON Schema,
   the PDF report written and the inspection filed in a fresh SQLite log — and the verdict
   must be FAIL (the demo cell carries defects that must fail it);
4. the GUI toolkit starts offscreen, the theme applies and the icons render
   (skipped with ``--no-gui``).

Exit code 0 when every check passes, 1 otherwise (2 for usage errors). Nothing is written
outside the temporary folder (``--keep DIR`` keeps the demo outputs there instead).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from qc_app.commands.base import register

ENGINE_MODULES = ("numpy", "scipy.ndimage", "skimage", "tifffile", "h5py", "zarr", "reportlab",
                  "sqlite_utils", "jsonschema", "onnxruntime")


class SelfTestFailure(Exception):
    """A check did not hold; the message says which and why."""


def check_resources() -> str:
    import resources
    from core.recipe import load_recipe

    parts = list(resources.iter_resources())
    sections = {p[0] for p in parts if len(p) > 1}
    missing = [s for s in resources.SECTIONS if s not in sections]
    if missing:
        raise SelfTestFailure(f"resource folders missing: {', '.join(missing)}")
    for theme in resources.THEMES:
        if "QWidget" not in resources.style_sheet(theme):
            raise SelfTestFailure(f"style sheet of the {theme} theme is empty or broken")
    json.loads(resources.read_text("schema", "inspection.schema.json"))
    if not resources.read_text("objectives.csv").strip():
        raise SelfTestFailure("objectives.csv is empty")
    recipes = [p[-1][:-5] for p in parts if p[0] == "recipes" and p[-1].endswith(".toml")]
    for name in recipes:
        load_recipe(name)
    return f"{len(parts)} files; recipes {', '.join(recipes)}"


def check_engine() -> str:
    versions = []
    for name in ENGINE_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - report any import failure as one line
            from core.extras import EXTRAS

            extra = next((e for e, modules in EXTRAS.items() if name.split(".")[0] in modules), None)
            hint = f" (the {extra} extra: pip install 'cellqc[{extra}]')" if extra else ""
            raise SelfTestFailure(f"cannot import {name}: {type(exc).__name__}: {exc}{hint}") from exc
        top = name.split(".")[0]
        try:
            version = importlib.metadata.version(top.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:  # e.g. in a bundle without dist-info
            version = getattr(sys.modules[top], "__version__", None) or "?"
        versions.append(f"{top} {version}")
    return ", ".join(versions)


def check_demo(folder: Path, n_slices: int) -> str:
    """Render, inspect, validate, report and file the demo cell under ``folder``."""
    from core.filing import inspect_and_file
    from core.inspect import validate_result
    from qc_app.commands.demo_cmd import generate_demo_cell

    path, truth = generate_demo_cell(home=folder, n_slices=n_slices)
    db = folder / "selftest.db"
    json_out, report_out = path.parent / "demo_result.json", path.parent / "demo_report.pdf"
    inspection, iid = inspect_and_file(path, cell_id=truth["cell_id"], json_out=json_out,
                                       report_out=report_out, db_path=db)
    result = json.loads(json_out.read_text(encoding="utf-8"))
    validate_result(result)
    if inspection.verdict != "FAIL":
        raise SelfTestFailure(f"the demo cell should FAIL but got {inspection.verdict}")
    pdf = report_out.read_bytes()
    if not pdf.startswith(b"%PDF") or b"%%EOF" not in pdf[-1024:]:
        raise SelfTestFailure(f"the PDF report {report_out} is not a complete PDF")
    import sqlite_utils

    rows = list(sqlite_utils.Database(db)["inspections"].rows)
    if iid is None or not rows:
        raise SelfTestFailure(f"the inspection was not filed in {db}")
    kinds = sorted({f["detector"] for f in result["findings"] if f["severity"] == "fail"})
    return (f"verdict {inspection.verdict} ({', '.join(kinds) or 'no fail findings'}), "
            f"PDF {len(pdf) // 1024} kB, inspection {iid} filed")


def check_gui() -> str:
    from core.extras import require_extra

    require_extra("gui", "the GUI check (skip it with --no-gui)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtGui, QtWidgets

    import resources

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    from qc_app.gui import theme

    theme.apply_theme(app)
    names = [p[-1] for p in resources.iter_resources() if p[0] == "icons"]
    for name in names:
        image = QtGui.QIcon(str(resources.icon_path(name))).pixmap(QtCore.QSize(32, 32)).toImage()
        if image.isNull():
            raise SelfTestFailure(f"icon {name} does not render (is the Qt SVG plugin bundled?)")
    return f"Qt {QtCore.qVersion()} on {app.platformName()}, theme applied, {len(names)} icons render"


def run_checks(no_gui: bool = False, n_slices: int = 4, keep: str | Path | None = None,
               out=None) -> int:
    """Run every check, one line each on ``out``; return 0 when all pass, else 1."""
    out = out or sys.stdout
    from core import __version__

    frozen = "bundle" if getattr(sys, "frozen", False) else "python"
    print(f"cellqc {__version__} self-test ({frozen}, Python {sys.version.split()[0]}, {sys.platform})",
          file=out, flush=True)
    with tempfile.TemporaryDirectory(prefix="cellqc-selftest-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        checks: list[tuple[str, Callable[[], str]]] = [
            ("resources", check_resources),
            ("engine", check_engine),
            ("demo", lambda: check_demo(folder, n_slices)),
        ]
        if not no_gui:
            checks.append(("gui", check_gui))
        failed = 0
        for name, check in checks:
            t0 = time.perf_counter()
            try:
                detail = check()
                status = "ok  "
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line
                failed += 1
                status = "FAIL"
                detail = f"{type(exc).__name__}: {exc}"
                if os.environ.get("CELLQC_DEBUG"):
                    traceback.print_exc()
            print(f"  [{status}] {name:<9} {detail} ({time.perf_counter() - t0:.1f} s)", file=out, flush=True)
    print("self-test passed" if not failed else f"self-test FAILED ({failed} of {len(checks)} checks)",
          file=out, flush=True)
    return 0 if not failed else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-gui", action="store_true", help="skip the Qt check (servers without Qt libraries)")
    p.add_argument("--slices", type=int, default=4, help="slices of the demo cell (default 4)")
    p.add_argument("--keep", metavar="DIR", help="keep the demo outputs in DIR instead of a temporary folder")


def run(args: argparse.Namespace) -> int:
    return run_checks(no_gui=args.no_gui, n_slices=args.slices, keep=args.keep)


register("self-test", "check this installation: resources, libraries, headless demo, GUI toolkit; exit 0 if whole",
         add_arguments, run)
