"""``cellqc`` starts without the heavy stack: commands are registered lazily (issue 18).

No timing here (benchmarks/cli_startup_bench.py measures it): these tests look at which
packages a fresh interpreter has in ``sys.modules`` after a command's ``--help``.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qc_app import cli
from qc_app.commands import COMMAND_TABLE

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "scipy", "skimage", "dask", "distributed", "asyncua", "reportlab", "PySide6", "h5py", "zarr",
         "tifffile", "onnxruntime", "sqlite_utils", "cryptography", "matplotlib")
PROBE = """
import json, sys
from qc_app.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""


def _run_cli(*args: str) -> tuple[int, str, set[str]]:
    """``cellqc ARGS`` in a fresh interpreter: exit code, stdout, top-level packages loaded."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return report["code"], out.stdout, set(report["loaded"])


@pytest.mark.parametrize("args", [["--help"], ["inspect", "--help"], ["serve", "--help"], ["--version"]])
def test_help_does_not_import_the_heavy_stack(args):
    code, stdout, loaded = _run_cli(*args)
    assert code == 0
    assert not loaded & set(HEAVY), f"cellqc {' '.join(args)} imported {sorted(loaded & set(HEAVY))}"
    assert "numpy" not in loaded and "asyncua" not in loaded and "PySide6" not in loaded
    if args == ["--help"]:
        for name in COMMAND_TABLE:  # every command listed, though none of their modules was imported
            assert f"    {name} " in stdout or f"    {name}\n" in stdout, name
    if args == ["inspect", "--help"]:
        assert "--voxel-size" in stdout and "--profile" in stdout


@pytest.mark.parametrize("module", sorted({m for m, _ in COMMAND_TABLE.values()}))
def test_each_command_module_imports_light(module):
    """Importing a command module loads no heavy package, and not qc_app.cli (no import cycle)."""
    probe = (f"import importlib, json, sys; importlib.import_module({module!r}); "
             "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    loaded = {m.split(".")[0] for m in modules}
    assert not loaded & set(HEAVY), f"{module} imported {sorted(loaded & set(HEAVY))}"
    assert "qc_app.cli" not in modules, f"{module} imports qc_app.cli (use qc_app.commands.base)"


def test_table_agrees_with_the_modules():
    """Every command in the table is registered by its module with the same help, and no other."""
    registered_by: dict[str, str] = {}
    for module in {m for m, _ in COMMAND_TABLE.values()}:
        before = set(cli.COMMANDS)
        importlib.import_module(module)
        for name in set(cli.COMMANDS) - before:
            registered_by[name] = module
    for name, (module, help_text) in COMMAND_TABLE.items():
        description, _add, _run = cli.load_command(name)
        assert description == help_text, name
        if name in registered_by:  # registered by this test's imports (not by an earlier test)
            assert registered_by[name] == module, name
    assert set(cli.COMMANDS) == set(COMMAND_TABLE)


@pytest.mark.slow
def test_full_parser_has_every_command():
    parser = cli.build_parser()
    for name in COMMAND_TABLE:  # each with its own options, e.g. a usage error names the command
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([name, "--no-such-option"])
        assert exc.value.code == cli.EXIT_USAGE


@pytest.mark.parametrize(("argv", "expected"), [
    (["inspect", "v.tif", "--json", "x"], "inspect"),
    (["--version"], None),
    ([], None),
    (["-h", "log"], "log"),
    (["--", "demo"], "demo"),
])
def test_command_named(argv, expected):
    assert cli.command_named(argv) == expected


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert_code = None
    try:
        cli.main(["no-such-command"])
    except SystemExit as exc:
        assert_code = exc.code
    assert assert_code == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-command" in err[0]


def test_python_m_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "qc_app.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0 and "inspect" in out.stdout
