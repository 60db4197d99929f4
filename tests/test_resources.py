"""Shipped resources are installed and reachable through importlib.resources; the self-test works.

The "installed layout" tests copy the ``resources`` package the way setuptools installs it
(``*.py`` plus the package-data patterns of pyproject.toml) into a folder and into a zip,
and read every resource from there in a fresh interpreter — so a file that the patterns
miss, or code that assumes a source checkout, fails here rather than in a plant.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import resources
from resources import RESOURCES_DIR

ROOT = Path(__file__).resolve().parents[1]


def _package_data_patterns() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"]["package-data"]
    return [*data.get("*", []), *data.get("resources", [])]


def _source_files() -> list[Path]:
    return sorted(p for p in RESOURCES_DIR.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc"))


def _installed_files() -> list[Path]:
    """What setuptools installs of the package: modules plus files matching package-data."""
    patterns = _package_data_patterns()
    return sorted(p for p in RESOURCES_DIR.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts
                  and (p.suffix == ".py" or any(fnmatch.fnmatch(p.name, pat) for pat in patterns)))


def test_every_data_file_is_package_data():
    patterns = _package_data_patterns()
    missed = [str(p.relative_to(RESOURCES_DIR)) for p in _source_files()
              if not any(fnmatch.fnmatch(p.name, pat) for pat in patterns)]
    assert not missed, f"not installed by pyproject package-data patterns: {missed}"


def test_every_subfolder_is_a_package():
    for folder in (p for p in RESOURCES_DIR.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        assert (folder / "__init__.py").is_file(), f"{folder} needs __init__.py to be installed"


def test_iter_resources_matches_the_source_tree():
    listed = {"/".join(parts) for parts in resources.iter_resources()}
    on_disk = {p.relative_to(RESOURCES_DIR).as_posix() for p in _source_files()}
    assert listed == on_disk
    assert {"recipes", "schema", "style", "icons"} <= {p.split("/")[0] for p in listed}
    for parts in resources.iter_resources():
        assert resources.read_bytes(*parts), parts
        with resources.resource_path(*parts) as path:
            assert path.is_file()


INSTALLED_CHECK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import resources
assert resources.__file__.startswith(sys.argv[1]), resources.__file__
parts = list(resources.iter_resources())
for p in parts:
    assert resources.read_bytes(*p), p
    with resources.resource_path(*p) as path:
        assert path.is_file() and path.stat().st_size > 0, p
assert "QWidget" in resources.style_sheet("dark") and "QWidget" in resources.style_sheet("light")
json.loads(resources.read_text("schema", "inspection.schema.json"))
print(json.dumps(sorted("/".join(p) for p in parts)))
"""


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_resources_reachable_from_an_installed_layout(tmp_path, layout):
    files = _installed_files()
    if layout == "folder":
        target = tmp_path / "site-packages"
        for f in files:
            dest = target / "resources" / f.relative_to(RESOURCES_DIR)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.read_bytes())
    else:  # zip import: no files on disk at all, only importlib.resources works
        target = tmp_path / "cellqc.zip"
        with zipfile.ZipFile(target, "w") as zf:
            for f in files:
                zf.write(f, "resources/" + f.relative_to(RESOURCES_DIR).as_posix())
    proc = subprocess.run([sys.executable, "-I", "-c", INSTALLED_CHECK, str(target)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = sorted(p.relative_to(RESOURCES_DIR).as_posix() for p in _source_files())
    assert json.loads(proc.stdout) == expected


def test_recipes_and_schema_load():
    import jsonschema

    from core.recipe import load_recipe

    recipes = [p[-1][:-5] for p in resources.iter_resources() if p[0] == "recipes"]
    assert {"18650-nmc", "21700-nmc"} <= set(recipes)
    for name in recipes:
        load_recipe(name)
    jsonschema.Draft202012Validator.check_schema(json.loads(resources.read_text("schema", "inspection.schema.json")))


def test_theme_selection(monkeypatch):
    monkeypatch.delenv("CELLQC_THEME", raising=False)
    assert resources.theme_name() == "dark"
    monkeypatch.setenv("CELLQC_THEME", "Light")
    assert resources.theme_name() == "light"
    assert resources.style_sheet() == resources.read_text("style", "cellqc-light.qss")
    monkeypatch.setenv("CELLQC_THEME", "sepia")
    assert resources.theme_name() == "dark"


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_light_style_sheet_is_high_contrast():
    """Rules of the light sheet setting text and background: contrast ≥ 7:1 (WCAG AAA), 4.5:1 disabled."""
    qss = re.sub(r"/\*.*?\*/", "", resources.read_text("style", "cellqc-light.qss"), flags=re.S)
    checked = 0
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", qss):
        fg = re.search(r"(?<![-\w])color:\s*(#[0-9A-Fa-f]{6})", body)
        bg = re.search(r"background(?:-color)?:\s*(#[0-9A-Fa-f]{6})", body)
        if fg and bg:
            checked += 1
            ratio = _contrast(fg.group(1), bg.group(1))
            minimum = 4.5 if ":disabled" in selector else 7.0  # WCAG: AAA; AA for disabled
            assert ratio >= minimum, f"{selector.strip()}: {fg.group(1)} on {bg.group(1)} is {ratio:.1f}:1"
    assert checked >= 10
    # the same widgets are styled in both themes
    selectors = {s.strip() for s in re.findall(r"([^{}]+)\{", qss)}
    dark = re.sub(r"/\*.*?\*/", "", resources.read_text("style", "cellqc.qss"), flags=re.S)
    assert {s.strip() for s in re.findall(r"([^{}]+)\{", dark)} <= selectors


def test_self_test_flag_dispatches(monkeypatch):
    from qc_app import cli

    cli.build_parser()  # registers the commands
    calls = []
    help_text, add_arguments, _ = cli.COMMANDS["self-test"]
    monkeypatch.setitem(cli.COMMANDS, "self-test",
                        (help_text, add_arguments, lambda args: calls.append(vars(args)) or 0))
    assert cli.main(["--self-test", "--no-gui"]) == 0
    assert calls and calls[0]["command"] == "self-test" and calls[0]["no_gui"] is True


@pytest.mark.slow
def test_self_test_runs_in_process(tmp_path, monkeypatch):
    """The real self-test on the 4-slice demo cell, GUI check offscreen: exit 0, every check ok."""
    from qc_app.commands.selftest_cmd import run_checks

    monkeypatch.setenv("QT_QPA_PLATFORM", os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    monkeypatch.setenv("CELLQC_HOME", str(tmp_path / "home"))
    out = io.StringIO()
    code = run_checks(keep=tmp_path / "selftest", out=out)
    text = out.getvalue()
    assert code == 0, text
    assert "self-test passed" in text and "[FAIL]" not in text
    for check in ("resources", "engine", "demo", "gui"):
        assert f"[ok  ] {check}" in text
    assert (tmp_path / "selftest" / "demo" / "demo_report.pdf").is_file()
    assert not (tmp_path / "home").exists()  # nothing written outside its folder
