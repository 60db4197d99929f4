"""Start-up of the ``cellqc`` command: wall time of ``--help`` and which heavy modules it loads.

Runs ``cellqc --help``, ``cellqc inspect --help`` and ``cellqc --version`` in fresh
interpreters (``python -c 'from qc_app.cli import main; main()'``, what the console script
does) ``--runs`` times each and prints the median and the fastest run; then, once per command,
``python -X importtime``'s total of the imports and the heavy packages found in
``sys.modules``. ``--repo PATH`` runs another checkout's code (``PYTHONPATH=PATH``) with this
interpreter, e.g. ``--repo /work/main`` for the "before" numbers.

Run: ``.venv/bin/python benchmarks/cli_startup_bench.py [--runs 10] [--repo PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("numpy", "scipy", "skimage", "dask", "distributed", "asyncua", "reportlab", "PySide6", "h5py",
         "zarr", "tifffile", "onnxruntime", "sqlite_utils", "cryptography", "matplotlib")
COMMANDS = (["--help"], ["inspect", "--help"], ["--version"])
LAUNCH = "import sys; from qc_app.cli import main; sys.exit(main())"
PROBE = ("import json, sys\nfrom qc_app.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))), "
         "file=sys.stderr)")


def _env(repo: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    # `python -c` puts the working folder first on sys.path: run in the checkout measured.
    env["CELLQC_BENCH_CWD"] = str(repo or Path(__file__).resolve().parents[1])
    if repo is not None:
        env["PYTHONPATH"] = str(repo) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def wall_times(args: list[str], runs: int, env: dict[str, str]) -> list[float]:
    """Seconds of ``runs`` fresh ``cellqc ARGS`` processes (output discarded)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", LAUNCH, *args], env=env, cwd=env["CELLQC_BENCH_CWD"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return times


def heavy_modules(args: list[str], env: dict[str, str]) -> list[str]:
    """The heavy top-level packages in ``sys.modules`` after ``cellqc ARGS``."""
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, cwd=env["CELLQC_BENCH_CWD"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, check=False)
    return json.loads(out.stderr.strip().splitlines()[-1])


def import_seconds(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """``-X importtime``: seconds of the top-level imports (cumulative) and the number of modules."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", LAUNCH, *args], env=env, cwd=env["CELLQC_BENCH_CWD"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    total_us, n = 0, 0
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        n += 1
        _self_us, cumulative_us, name = line[len("import time:"):].split("|")
        if not name.startswith("  "):  # a top-level import (one space of indent): counted once
            total_us += int(cumulative_us)
    return total_us / 1e6, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repo", type=Path, default=None, help="checkout whose code to run (PYTHONPATH)")
    opts = parser.parse_args()
    env = _env(opts.repo)
    where = opts.repo or Path(__file__).resolve().parents[1]
    print(f"code: {where}   python {sys.version.split()[0]}   {os.cpu_count()} CPUs   "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':28s} {'median s':>9s} {'min s':>7s} {'imports s':>10s} {'modules':>8s}  heavy packages loaded")
    for args in COMMANDS:
        times = wall_times(args, opts.runs, env)
        seconds, n = import_seconds(args, env)
        heavy = heavy_modules(args, env)
        print(f"{'cellqc ' + ' '.join(args):28s} {statistics.median(times):9.3f} {min(times):7.3f} {seconds:10.3f} "
              f"{n:8d}  {', '.join(heavy) or '-'}")


if __name__ == "__main__":
    main()
