"""Peak memory of one inspection against the size of its (lazy) input volume.

For each requested number of slices the script writes a uint16 Zarr store (or a ``.npy``
file, read as a memmap) of a synthetic 18650 cell — a few rendered slices repeated along z,
written slab by slab so the script itself never holds the volume — and inspects it in a
fresh subprocess. The child reports:

* the peak resident memory of the process (``VmHWM``, everything included; ``ru_maxrss``
  where /proc is missing), and its baseline measured in the same child after the imports
  and opening the volume, before the inspection;
* the bytes of the arrays the inspection keeps for the whole volume (per-slice geometry,
  detector maps), measured by walking the result objects;
* with ``--trace``: the ``tracemalloc`` peak and, at the largest traced heap seen from the
  progress callback, the source lines holding the most memory (what dominates, in numbers).

It prints peak RSS against the volume's bytes, the growth per slice (MB/slice), and what a
volume of ``--extrapolate-gb`` GB would need if the growth stays linear. A pipeline whose
memory is bounded shows a flat peak; a growing one shows which arrays to stream.

Run: ``.venv/bin/python benchmarks/memory_bench.py [--slices 48 192] [--format zarr|npy]
[--budget-mb 128] [--inspection-budget-gb 2] [--kind 18650|21700] [--trace] [--keep DIR]``.
The issue's case, a Zarr volume over 4 GB inspected under the default 2 GB budget:
``--kind 21700 --voxel-size 10 --slices 480`` (4.4 GB of uint16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MB = 2**20


class TiledVolume:
    """A lazy (z, y, x) array repeating a few rendered slices along z (never materialised)."""

    def __init__(self, base: np.ndarray, nz: int):
        self.base = base
        self.shape = (int(nz), *base.shape[1:])
        self.dtype = base.dtype
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            zkey, rest = key[0], key[1:]
        else:
            zkey, rest = key, ()
        if isinstance(zkey, slice):
            idx = np.arange(self.shape[0])[zkey] % self.base.shape[0]
            out = self.base[idx]
        else:
            out = self.base[int(zkey) % self.base.shape[0]]
        return out[rest] if rest else out


def make_input(folder: Path, nz: int, fmt: str, voxel_um: float, distinct: int, seed: int = 7,
               kind: str = "18650", dtype: str = "uint16") -> Path:
    """Write a ``nz``-slice uint16 (or float32) cell volume as Zarr or .npy; returns its path."""
    from core.io import write_zarr
    from core.io.volume import Volume
    from core.phantom import Artifacts, CellSpec, default_defects, make_cell

    spec = CellSpec(kind=kind, voxel_size_um=voxel_um, n_slices=distinct)
    cell = make_cell(spec, default_defects(spec, np.random.default_rng(seed)), Artifacts(), seed=seed,
                     cell_id=f"MEM-{nz}")
    v = cell.volume.array
    lo, hi = float(np.percentile(v, 0.01)), float(np.percentile(v, 99.99))
    base = np.clip((v - lo) / (hi - lo) * 60000 + 1000, 0, 65535).astype(dtype)
    tiled = TiledVolume(base, nz)
    if fmt == "zarr":
        path = folder / f"cell_{nz}.zarr"
        write_zarr(Volume(tiled, (voxel_um,) * 3, cell_id=f"MEM-{nz}"), path)
    else:
        path = folder / f"cell_{nz}.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=base.dtype, shape=tiled.shape)
        for z0 in range(0, nz, 32):
            out[z0:z0 + 32] = tiled[z0:z0 + 32]
        out.flush()
        del out
    return path


def _array_bytes(obj: Any, seen: set[int] | None = None, depth: int = 0) -> int:
    """Bytes of the numpy arrays reachable from ``obj`` (dataclasses, dicts, lists), once each."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.memmap):
        return 0
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_array_bytes(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_array_bytes(v, seen, depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_array_bytes(v, seen, depth + 1) for k, v in vars(obj).items() if k != "volume")
    return 0


def _top_sites(snapshot: Any, n: int = 8) -> list[dict[str, Any]]:
    """The cellqc source lines holding the most traced memory (innermost ``core/`` frame)."""
    sizes: dict[str, list[int]] = {}
    for stat in snapshot.statistics("traceback"):
        where = None
        for frame in reversed(stat.traceback):  # innermost first
            name = str(frame.filename)
            if name.startswith(str(REPO / "core")):
                where = f"{Path(name).relative_to(REPO)}:{frame.lineno}"
                break
        where = where or "(outside core)"
        entry = sizes.setdefault(where, [0, 0])
        entry[0] += stat.size
        entry[1] += stat.count
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1][0])[:n]
    return [{"where": w, "mb": round(b / MB, 1), "blocks": c} for w, (b, c) in ranked]


def child(path: str, trace: bool, voxel_um: float, recipe: str | None = None) -> None:
    """Inspect ``path`` in this process and print one JSON line of memory numbers."""
    import resource
    import tracemalloc

    from core.inspect import inspect_volume
    from core.io import read_volume

    def status_mb(key: str) -> float | None:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def rss_now_mb() -> float:
        return status_mb("VmRSS") or 0.0

    def maxrss_mb() -> float:
        # VmHWM belongs to this process image; ru_maxrss would carry over the parent's peak
        # across fork + exec on Linux.
        hwm = status_mb("VmHWM")
        return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    volume = read_volume(path, voxel_size=voxel_um, check_values=False)
    base_rss = maxrss_mb()
    stage_peaks: dict[str, float] = {}
    best: dict[str, Any] = {"current": 0, "stage": "", "top": []}

    def progress(fraction: float, message: str) -> None:
        stage = message.split(":")[0]
        stage_peaks[stage] = max(stage_peaks.get(stage, 0.0), rss_now_mb())
        if trace:
            current, _ = tracemalloc.get_traced_memory()
            traced_by_stage[stage] = max(traced_by_stage.get(stage, 0.0), current / MB)
            if current > 1.05 * best["current"]:
                best.update(current=current, stage=message, top=_top_sites(tracemalloc.take_snapshot()))

    traced_by_stage: dict[str, float] = {}
    if trace:
        tracemalloc.start(8)
    t0 = time.perf_counter()
    inspection = inspect_volume(volume, recipe, progress=progress)
    elapsed = time.perf_counter() - t0
    out = {
        "voxels": int(np.prod(volume.shape)),
        "volume_bytes": int(volume.nbytes),
        "shape": list(volume.shape),
        "verdict": inspection.verdict,
        "elapsed_s": round(elapsed, 1),
        "base_rss_mb": round(base_rss, 1),
        "peak_rss_mb": round(maxrss_mb(), 1),
        "stage_rss_mb": {k: round(v, 1) for k, v in stage_peaks.items()},
        "geometry_arrays_mb": round(_array_bytes(inspection.geometry) / MB, 2),
        "chunked": any("chunks" in n for n in inspection.result["geometry"].get("notes", [])),
        "findings": len(inspection.result["findings"]),
        "maps_mb": round((_array_bytes(inspection.maps) + _array_bytes(inspection.raw_maps)) / MB, 2),
    }
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        out.update(traced_peak_mb=round(peak / MB, 1), traced_at_stage=best["stage"],
                   traced_at_mb=round(best["current"] / MB, 1), top=best["top"],
                   traced_by_stage_mb={k: round(v, 1) for k, v in traced_by_stage.items()},
                   kept_after_mb=_top_sites(tracemalloc.take_snapshot(), 6))
    print(json.dumps(out))


def run_child(path: Path, trace: bool, voxel_um: float, recipe: str, budget_gb: float | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(path), "--voxel-size", str(voxel_um), "--recipe", recipe]
    if trace:
        cmd.append("--trace")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if budget_gb is not None:
        env["CELLQC_INSPECTION_BUDGET_GB"] = str(budget_gb)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[48, 192])
    parser.add_argument("--format", choices=("zarr", "npy"), default="zarr")
    parser.add_argument("--voxel-size", type=float, default=25.0)
    parser.add_argument("--distinct", type=int, default=8, help="rendered slices repeated along z")
    parser.add_argument("--budget-mb", type=float, default=128.0,
                        help="the memory budget the largest volume must exceed")
    parser.add_argument("--extrapolate-gb", type=float, default=4.0)
    parser.add_argument("--trace", action="store_true", help="tracemalloc attribution (slower) on the smallest size")
    parser.add_argument("--keep", help="write the volumes here and keep them")
    parser.add_argument("--kind", choices=("18650", "21700"), default="18650")
    parser.add_argument("--dtype", choices=("uint16", "float32"), default="uint16")
    parser.add_argument("--inspection-budget-gb", type=float, default=None,
                        help="the inspection's memory budget (chunked above it; default 2 GB)")
    parser.add_argument("--recipe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trace, args.voxel_size, args.recipe)
        return

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cellqc-mem-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for nz in sorted(args.slices):
        t0 = time.perf_counter()
        path = make_input(folder, nz, args.format, args.voxel_size, args.distinct, kind=args.kind,
                          dtype=args.dtype)
        made = time.perf_counter() - t0
        row = run_child(path, False, args.voxel_size, f"{args.kind}-nmc", args.inspection_budget_gb)
        row["nz"], row["write_s"] = nz, round(made, 1)
        rows.append(row)
        print(f"{args.format} {nz:5d} slices: volume {row['volume_bytes'] / MB:8.1f} MB, "
              f"peak RSS {row['peak_rss_mb']:8.1f} MB (after imports and open: {row['base_rss_mb']:.1f} MB), "
              f"kept geometry arrays {row['geometry_arrays_mb']:.1f} MB, maps {row['maps_mb']:.1f} MB, "
              f"{row['elapsed_s']:.0f} s, {row['verdict']}{' (chunked)' if row['chunked'] else ''}", flush=True)
        print(f"      RSS by stage (MB): {row['stage_rss_mb']}", flush=True)
        if not args.keep:  # one volume on disk at a time
            import shutil

            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    big = rows[-1]
    print()
    print(f"largest volume {big['volume_bytes'] / MB:.0f} MB vs budget {args.budget_mb:.0f} MB: "
          f"{'exceeds' if big['volume_bytes'] / MB > args.budget_mb else 'DOES NOT exceed'} it; "
          f"peak RSS / volume bytes = {big['peak_rss_mb'] * MB / big['volume_bytes']:.2f}, "
          f"(peak − baseline) / volume bytes = {(big['peak_rss_mb'] - big['base_rss_mb']) * MB / big['volume_bytes']:.2f}")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        per_slice = ((b["peak_rss_mb"] - b["base_rss_mb"]) - (a["peak_rss_mb"] - a["base_rss_mb"])) / (b["nz"] - a["nz"])
        slice_mb = b["volume_bytes"] / b["nz"] / MB
        geo_per_slice = (b["geometry_arrays_mb"] - a["geometry_arrays_mb"]) / (b["nz"] - a["nz"])
        nz_target = args.extrapolate_gb * 2**30 / (slice_mb * MB)
        predicted = (b["peak_rss_mb"] - b["base_rss_mb"]) + per_slice * (nz_target - b["nz"]) + b["base_rss_mb"]
        print(f"growth: {per_slice:.2f} MB of peak RSS per slice of {slice_mb:.2f} MB "
              f"({per_slice / slice_mb:.2f} × the slice); kept geometry arrays grow {geo_per_slice:.3f} MB/slice")
        print(f"a {args.extrapolate_gb:g} GB volume ({nz_target:.0f} such slices) would peak at ≈ "
              f"{predicted / 1024:.2f} GB if the growth stays linear "
              f"({'bounded' if abs(per_slice) < 0.05 * slice_mb else 'NOT bounded'})")
    if args.trace:
        small = sorted(args.slices)[0]
        path = make_input(folder, small, args.format, args.voxel_size, args.distinct, kind=args.kind,
                          dtype=args.dtype)
        row = run_child(path, True, args.voxel_size, f"{args.kind}-nmc", args.inspection_budget_gb)
        print()
        print(f"tracemalloc, {small} slices: traced peak {row['traced_peak_mb']} MB; the largest heap seen "
              f"between stages was {row['traced_at_mb']} MB at '{row['traced_at_stage']}', held by:")
        for entry in row["top"]:
            print(f"   {entry['mb']:8.1f} MB  {entry['blocks']:7d} blocks  {entry['where']}")
        print(f"traced heap by stage (MB): {row['traced_by_stage_mb']}")
        print("still held after the inspection (the Inspection object):")
        for entry in row["kept_after_mb"]:
            print(f"   {entry['mb']:8.1f} MB  {entry['blocks']:7d} blocks  {entry['where']}")
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
