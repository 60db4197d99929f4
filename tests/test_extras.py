"""A headless node installs the engine without the extras; a feature whose extra is missing
says so in one line; packaged files are found where the package is installed.

The optional packages are made unimportable in a fresh interpreter by a ``sys.meta_path``
finder that raises ``ModuleNotFoundError`` for them (what Python raises when a package is not
installed), so these tests need no second virtual environment.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from core.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
EVERY_EXTRA = sorted({module for modules in EXTRAS.values() for module in modules})

# argv[1]: the top-level modules to block (comma-separated); argv[2]: a JSON list of cellqc
# command lines to run; argv[3] "walk": import every module of core and qc_app first (but
# qc_app.gui's). Prints, as JSON, each command's exit code, stdout and stderr (and then
# cellqc-gui's), and which blocked modules ended up loaded (none may).
BLOCKER = r'''
import sys

BLOCKED = set(sys.argv[1].split(","))


class NotInstalled:
    """Finds the blocked packages nowhere, as if they were not installed."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled)
'''
WITHOUT_EXTRAS = BLOCKER + r'''
import contextlib, importlib, io, json, pkgutil

import core, qc_app

imported = []
for package in (core, qc_app) if sys.argv[3:] == ["walk"] else ():
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.startswith("qc_app.gui."):  # the workstation's modules: the gui extra
            continue
        importlib.import_module(info.name)
        imported.append(info.name)

from qc_app.cli import main

runs = []
for argv in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    runs.append({"argv": argv, "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})

from qc_app.gui import main as gui_main

err = io.StringIO()
with contextlib.redirect_stderr(err):
    rc = gui_main([])
runs.append({"argv": ["cellqc-gui"], "rc": rc, "stdout": "", "stderr": err.getvalue()})
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"imported": imported, "runs": runs, "loaded": loaded}))
'''


def _without(blocked, commands, home: Path, walk: bool = False) -> dict:
    env = {**os.environ, "CELLQC_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    argv = [sys.executable, "-c", WITHOUT_EXTRAS, ",".join(blocked), json.dumps(commands)]
    proc = subprocess.run(argv + (["walk"] if walk else []), capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_engine_runs_without_any_extra(tmp_path):
    """core and the headless commands import, and the demo inspects, reports and files a cell,
    with PySide6, pyqtgraph, ONNX Runtime, Dask and olefile all missing."""
    db = tmp_path / "log.db"
    got = _without(EVERY_EXTRA, [["demo", "--slices", "4", "--db", str(db)]], tmp_path, walk=True)
    assert got["loaded"] == []
    imported = set(got["imported"])
    assert {"core.inspect", "core.report", "core.segment.model", "core.io.xradia",
            "qc_app.commands.gui_cmd", "qc_app.batch.runner", "qc_app.serve"} <= imported
    demo = got["runs"][0]
    assert demo["rc"] == 1, demo["stderr"]  # the demo cell carries defects: FAIL
    assert "FAIL" in demo["stdout"] and "logged as inspection 1" in demo["stdout"]
    report = tmp_path / "demo" / "demo_report.pdf"
    assert report.read_bytes().startswith(b"%PDF-") and db.is_file()
    assert json.loads((tmp_path / "demo" / "demo_result.json").read_text())["verdict"] == "FAIL"


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    """gui, cellqc-gui, batch with workers and the ONNX segmenter stop with exit code 2 and one
    line naming their extra, before anything is read or written."""
    volume = tmp_path / "cell.tif"  # never read: the extra is checked first
    commands = [
        ["gui", "--db", "none"],
        ["batch", str(volume), "--db", str(tmp_path / "batch.db"), "--workers", "2"],
        ["inspect", str(volume), "--segmenter", "classic+onnx", "--json", str(tmp_path / "onnx.json")],
        ["inspect", str(volume), "--segmenter", "onnx"],
    ]
    got = _without(EVERY_EXTRA, commands, tmp_path)
    expected = [
        "cellqc: error: cellqc gui needs the gui extra: pip install 'cellqc[gui]'",
        "cellqc: error: cellqc batch needs the batch extra: pip install 'cellqc[batch]'",
        "cellqc: error: --segmenter classic+onnx needs the onnx extra: pip install 'cellqc[onnx]'",
        "cellqc: error: --segmenter onnx needs the onnx extra: pip install 'cellqc[onnx]'",
        "cellqc-gui: error: cellqc-gui needs the gui extra: pip install 'cellqc[gui]'",
    ]
    assert [run["stderr"] for run in got["runs"]] == [line + "\n" for line in expected]  # one line each
    assert [run["rc"] for run in got["runs"]] == [2] * len(expected)
    assert got["loaded"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no log, no result, nothing


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_names_itself(extra, tmp_path):
    """With one extra's modules missing, the check names that extra and no other."""
    from core.errors import MissingExtraError

    code = (BLOCKER + "from core.extras import require_extra, missing_modules\n"
              f"print(missing_modules({extra!r}))\n"
              "try:\n"
              f"    require_extra({extra!r}, 'this feature')\n"
              "except Exception as exc:\n"
              "    print(type(exc).__name__, exc)\n")
    blocked = ",".join(EXTRAS[extra])
    proc = subprocess.run([sys.executable, "-c", code, blocked], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    assert first == repr(list(EXTRAS[extra]))
    assert second == (f"{MissingExtraError.__name__} this feature needs the {extra} extra: "
                      f"pip install 'cellqc[{extra}]'")


def test_extras_declared_in_pyproject_provide_their_modules():
    """Every extra core.extras knows is declared in pyproject.toml, all installs them all, and
    the packages are installed here (the dev set the tests run with)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]
    assert set(EXTRAS) <= set(optional)
    assert optional["all"] == [f"cellqc[{','.join(EXTRAS)}]"]
    assert "cellqc[all]" in optional["dev"]
    base = " ".join(project["dependencies"]).lower()
    for name in ("pyside6", "pyqtgraph", "onnxruntime", "dask", "olefile"):
        assert name not in base, f"{name} is in the base dependencies: a headless node would get it"
    from core.extras import missing_modules

    for extra in EXTRAS:
        assert missing_modules(extra) == [], f"the {extra} extra is not installed for the tests"


def test_setup_script_installs_every_extra():
    """The README's Quick start (scripts/setup.sh) installs the complete set."""
    script = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert 'spec=".[all]"' in script and 'spec=".[all,dev]"' in script


def test_shipped_models_found_through_importlib_resources():
    """The ONNX model, its metadata and card are package data of ``models`` and the segmenter
    finds them where importlib.resources does (not relative to core's own folder)."""
    from core.segment.model import DEFAULT_MODEL, MODELS_DIR, model_info

    shipped = resources.files("models")
    for name in (f"{DEFAULT_MODEL}.onnx", f"{DEFAULT_MODEL}.json", f"{DEFAULT_MODEL}_card.md"):
        assert shipped.joinpath(name).is_file(), name
    assert Path(str(shipped)) == MODELS_DIR
    info = model_info()
    assert info.path.is_file() and info.path.parent == MODELS_DIR

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    patterns = [*config["package-data"].get("*", []), *config["package-data"].get("models", [])]
    data = [p for p in MODELS_DIR.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")]
    missed = [p.name for p in data if not any(fnmatch.fnmatch(p.name, pat) for pat in patterns)]
    assert data and not missed, f"not installed by pyproject package-data patterns: {missed}"
    assert {"core*", "qc_app*", "models*", "resources*"} <= set(config["packages"]["find"]["include"])


def test_every_source_folder_is_an_installed_package():
    """packages.find only installs folders with an __init__.py: a folder of modules without one
    works in a checkout and is missing from the wheel."""
    for top in ("core", "qc_app", "models", "resources"):
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__":
                continue
            assert (folder / "__init__.py").is_file(), f"{folder.relative_to(ROOT)} has no __init__.py"


def test_no_packaged_file_is_found_relative_to_source_folders():
    """Packaged files are loaded through importlib.resources, never ``Path(__file__).parents``."""
    offenders = []
    for top in ("core", "qc_app"):
        for path in (ROOT / top).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "__file__" in line and "parents[" in line and "pyproject.toml" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, offenders
