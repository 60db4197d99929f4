"""The desktop bundle: build it with PyInstaller and run ``--self-test`` inside it.

Slow (a few minutes on a busy machine) and needs PyInstaller, so it is skipped unless
``CELLQC_BUILD_BUNDLE=1``:

    CELLQC_BUILD_BUNDLE=1 .venv/bin/pytest tests/test_bundle.py -s

It runs ``scripts/build_bundle.sh``: ``installer/build.sh`` → ``dist/cellqc/``, then both
programs' self-tests from a copy of the bundle outside the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CELLQC_BUILD_BUNDLE") != "1",
                       reason="builds the PyInstaller bundle; set CELLQC_BUILD_BUNDLE=1"),
    pytest.mark.skipif(sys.platform.startswith("win"), reason="the build script is bash"),
]


def test_bundle_builds_and_self_test_passes(tmp_path):
    pytest.importorskip("PyInstaller")
    env = dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "build_bundle.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "self-test passed" in proc.stdout
    bundle = ROOT / "dist" / "cellqc"
    for program in ("cellqc", "cellqc-gui"):
        assert (bundle / program).is_file() or (bundle / f"{program}.exe").is_file()
    internal = bundle / "_internal"
    assert (internal / "resources" / "style" / "cellqc-light.qss").is_file()
    assert (internal / "resources" / "recipes" / "18650-nmc.toml").is_file()
