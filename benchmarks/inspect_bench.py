"""A full inspection against the floor, in one process (issue 18).

The floor: read the volume, convert it to float32, one 3-D Gaussian filter (σ = 1 voxel) with
scipy. The inspection: ``core.filing.inspect_and_file`` (what ``cellqc inspect`` runs), with
the outputs asked for. Both are measured in the same process; the script prints both times,
their ratio (the issue's goal: ≤ 8), the inspection's time per stage (``timings_s``) with
the process CPU time of the geometry and of each detector (CPU / wall > 1: threads ran in
parallel), and the peak resident memory (``resource.getrusage``) as a multiple of the file's
bytes.

The file is read once before anything is timed (so both start from the page cache), then the
inspection runs first so that the peak RSS seen right after it is the inspection's (the floor
after it may raise the process's peak further; that is printed too).

Without a volume it generates issue 18's case once (a generated 18650 at 20 µm, 1000 × 1000 ×
100 uint16 TIFF, ``benchmarks/_cells.issue18_cell``) under ``--work``.

Run::

    .venv/bin/python benchmarks/inspect_bench.py [VOLUME] [--voxel-size UM] [--dataset PATH]
        [--recipe NAME] [--outputs] [--repeat N] [--cprofile OUT.prof] [--work DIR]

``--outputs`` also writes the JSON, the PDF report and the maps (timed as stages).
``--cprofile`` runs the inspection under cProfile (every thread: a profiler per thread of
the geometry's pool, merged), saves the stats, and prints the top functions by cumulative and
by own time and the calls of nanmedian/median/map_coordinates (profiling slows the run: its
times are not the benchmark's).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import platform
import pstats
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._cells import issue18_cell  # noqa: E402
from core.filing import inspect_and_file  # noqa: E402
from core.io import read_volume  # noqa: E402
from core.timings import profile_rows  # noqa: E402

MiB = 2**20


def peak_rss_bytes() -> int:
    """The process's peak resident set so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _children() -> list[int]:
    """Process ids of this process's live children (the geometry's worker processes)."""
    me, kids = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            kids.append(int(stat.parent.name))
    return kids


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of the live children and of the children already reaped.

    The geometry's slices run in worker processes that outlive one inspection (joblib's
    reusable executor), so ``time.process_time`` and ``RUSAGE_CHILDREN`` alone miss their work.
    Linux only (``/proc``); 0 elsewhere.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
    for pid in _children():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cpu_now() -> float:
    """CPU seconds of this process (every thread) and of its worker processes."""
    return time.process_time() + children_cpu_seconds()


WORKER_PEAK = {"bytes": 0, "count": 0}  # the largest child peak RSS seen right after a geometry


def children_peak_rss_bytes() -> int:
    """The largest peak resident set (``VmHWM``) of the live children."""
    peak = 0
    for pid in _children():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            continue
    return peak


def file_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def warm_page_cache(path: Path) -> None:
    """Read every byte of the volume once (16 MiB at a time, not kept)."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(16 * MiB):
                pass


def floor_seconds(path: Path, voxel_size: Any, dataset: str | None) -> tuple[float, float]:
    """Read + float32 + one 3-D Gaussian (σ = 1) of the whole volume: (wall, CPU) seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    volume = read_volume(path, voxel_size=voxel_size, **({"dataset": dataset} if dataset else {}))
    data = np.asarray(volume.array, dtype=np.float32)
    ndimage.gaussian_filter(data, 1.0)
    return time.perf_counter() - t0, time.process_time() - c0


@contextlib.contextmanager
def cpu_clock() -> Iterator[dict[str, float]]:
    """Process CPU seconds (every thread) of the managed block, into ``out['cpu']``."""
    out: dict[str, float] = {}
    c0 = cpu_now()
    try:
        yield out
    finally:
        out["cpu"] = cpu_now() - c0


@contextlib.contextmanager
def stage_cpu_times() -> Iterator[dict[str, float]]:
    """CPU seconds of the recipe, geometry, each detector, maps and report (wrapping what is called)."""
    import core.filing as filing
    import core.inspect as pipeline
    import core.report as report

    cpu: dict[str, float] = {}
    measure, detector_for = pipeline.measure_geometry, pipeline.detector_for
    originals = [(pipeline, "choose_recipe", "recipe"), (filing, "save_maps", "maps"),
                 (report, "write_report", "report")]

    def cpu_timed(fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            c0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - c0

        return run

    def timed_measure(*args: Any, **kwargs: Any) -> Any:
        c0 = cpu_now()  # the slices' worker processes included
        try:
            return measure(*args, **kwargs)
        finally:
            cpu["geometry"] = cpu.get("geometry", 0.0) + cpu_now() - c0
            # The workers stop after 10 s idle (joblib's default): their peak is read now.
            WORKER_PEAK["bytes"] = max(WORKER_PEAK["bytes"], children_peak_rss_bytes())
            WORKER_PEAK["count"] = max(WORKER_PEAK["count"], len(_children()))

    def timed_detector_for(name: str, segmenter: str) -> Callable[..., Any]:
        detector = detector_for(name, segmenter)

        def run(ctx: Any) -> Any:
            c0 = time.process_time()
            try:
                return detector(ctx)
            finally:
                cpu[name] = cpu.get(name, 0.0) + time.process_time() - c0

        return run

    saved = [(module, name, getattr(module, name)) for module, name, _ in originals]
    pipeline.measure_geometry, pipeline.detector_for = timed_measure, timed_detector_for
    for module, name, stage in originals:
        setattr(module, name, cpu_timed(getattr(module, name), stage))
    try:
        yield cpu
    finally:
        pipeline.measure_geometry, pipeline.detector_for = measure, detector_for
        for module, name, fn in saved:
            setattr(module, name, fn)


@contextlib.contextmanager
def profile_every_thread(out: Path, clock: str = "cpu") -> Iterator[None]:
    """cProfile of this thread and of every thread started meanwhile, merged into ``out``.

    ``clock="cpu"`` times each thread's own CPU (``time.thread_time``): what the work costs,
    not counting the waits for the GIL or for a core on a shared machine; ``"wall"``: cProfile's
    default clock (a thread waiting counts).
    """
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def new_profile() -> cProfile.Profile:
        return cProfile.Profile(time.thread_time) if clock == "cpu" else cProfile.Profile()

    def start_in_thread(frame: Any, event: str, arg: Any) -> None:
        profile = new_profile()
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    main = new_profile()
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)
        stats = pstats.Stats(main)
        for profile in profiles:
            with contextlib.suppress(TypeError):  # a thread that never returned to Python
                stats.add(profile)
        stats.dump_stats(str(out))


def print_profile(path: Path, top: int = 25) -> None:
    stats = pstats.Stats(str(path))
    for order, label in (("cumulative", "cumulative"), ("tottime", "own (self)")):
        buffer = io.StringIO()
        pstats.Stats(str(path), stream=buffer).sort_stats(order).print_stats(top)
        lines = buffer.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
        print(f"\ntop {top} functions by {label} time (all threads merged):")
        print("\n".join(lines[start:start + top + 1]))
    print("\ncalls of reductions and interpolation:")
    for (filename, _line, name), (_cc, nc, tt, ct, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][3]):
        if name in ("nanmedian", "median", "map_coordinates", "nanpercentile", "percentile") and (
                "numpy" in filename or "scipy" in filename):
            print(f"  {name:16s} {nc:8d} calls  {ct:8.2f} s cumulative  {tt:7.2f} s own   {filename.split('site-packages/')[-1]}")


def machine() -> str:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    return (f"{cpu}, {os.cpu_count()} CPUs{mem}; Python {platform.python_version()}, numpy {np.__version__}; "
            f"load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="A full inspection against the floor (issue 18).")
    parser.add_argument("volume", nargs="?", help="volume to inspect (default: issue 18's generated 18650)")
    parser.add_argument("--voxel-size", default=None, help="µm, one number or z,y,x")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--recipe", default=None)
    parser.add_argument("--outputs", action="store_true", help="also write JSON, PDF report and maps (timed)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest is reported")
    parser.add_argument("--no-floor", action="store_true", help="inspection only (e.g. under a sampling profiler)")
    parser.add_argument("--in-process", action="store_true",
                        help="trace the geometry's slices in this process's threads, not in worker processes")
    parser.add_argument("--cprofile", type=Path, default=None, help="profile the inspection into this file")
    parser.add_argument("--cprofile-clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu (default): each thread's CPU time; wall: elapsed time, waits included")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cellqc-bench",
                        help="where the generated volume and the outputs go")
    opts = parser.parse_args()
    if opts.in_process:
        import core.parallel

        core.parallel.processes_allowed = lambda: False

    if opts.volume:
        path = Path(opts.volume)
    else:
        t0 = time.perf_counter()
        path = issue18_cell(opts.work)
        print(f"issue 18's volume: {path} ({time.perf_counter() - t0:.1f} s to make or find)")
    nbytes = file_bytes(path)
    opened = read_volume(path, voxel_size=opts.voxel_size, **({"dataset": opts.dataset} if opts.dataset else {}))
    print(f"machine: {machine()}")
    print(f"volume {opened.shape} {opened.dtype} at {opened.spacing_um} µm, file {nbytes / 1e6:.0f} MB")
    del opened
    warm_page_cache(path)
    rss_before = peak_rss_bytes()

    outputs: dict[str, Any] = {}
    if opts.outputs:
        out = opts.work / "outputs"
        outputs = {"json_out": out / "result.json", "report_out": out / "report.pdf", "maps_dir": out / "maps"}
        out.mkdir(parents=True, exist_ok=True)

    best: tuple[float, dict[str, float], dict[str, float], Any] | None = None
    for _ in range(max(1, opts.repeat)):
        with stage_cpu_times() as cpu, cpu_clock() as whole:
            timings: dict[str, float] = {}  # every stage, outputs included
            outputs["stage_timings"] = timings
            t0 = time.perf_counter()
            if opts.cprofile is not None:
                with profile_every_thread(opts.cprofile, opts.cprofile_clock):
                    inspection, _ = inspect_and_file(path, voxel_size=opts.voxel_size, dataset=opts.dataset,
                                                     recipe=opts.recipe, **outputs)
            else:
                inspection, _ = inspect_and_file(path, voxel_size=opts.voxel_size, dataset=opts.dataset,
                                                 recipe=opts.recipe, **outputs)
            elapsed = time.perf_counter() - t0
        cpu["whole inspection"] = whole["cpu"]
        if best is None or elapsed < best[0]:
            best = (elapsed, dict(timings), dict(cpu), inspection)
        del inspection
    rss_inspection = peak_rss_bytes()
    elapsed, timings, cpu, inspection = best

    floor = floor_cpu = None
    if not opts.no_floor:
        floor, floor_cpu = min(floor_seconds(path, opts.voxel_size, opts.dataset) for _ in range(max(1, opts.repeat)))
    rss_after_floor = peak_rss_bytes()

    result = inspection.result
    print(f"inspection: {result['verdict']}, {len(result['findings'])} findings "
          f"({', '.join(sorted({f['detector'] for f in result['findings']})) or 'none'})")
    print(f"\n{'stage':22s} {'wall s':>8s} {'share':>6s} {'CPU s':>8s} {'CPU/wall':>8s}")
    for stage, seconds, share in profile_rows(timings):
        c = cpu.get(stage)
        extra = f" {c:8.2f} {c / seconds:8.2f}" if c is not None and seconds > 0 else ""
        print(f"{stage:22s} {seconds:8.2f} {100 * share:5.1f}%{extra}")
    print(f"{'whole inspection':22s} {elapsed:8.2f}        {cpu['whole inspection']:8.2f} "
          f"{cpu['whole inspection'] / elapsed:8.2f}")
    if floor is not None:
        whole_cpu = cpu["whole inspection"]
        print(f"\n{'':44s} {'wall s':>8s} {'CPU s':>8s}")
        print(f"{'floor (read + float32 + 3-D Gaussian σ=1)':44s} {floor:8.2f} {floor_cpu:8.2f}")
        print(f"{'inspection (core.filing.inspect_and_file)':44s} {elapsed:8.2f} {whole_cpu:8.2f}")
        print(f"{'ratio inspection / floor':44s} {elapsed / floor:8.1f} {whole_cpu / floor_cpu:8.1f}"
              "   (issue 18: ≤ 8, goal 3; the CPU ratio is the steadier on a shared machine)")
    print(f"\npeak RSS after the inspection: {rss_inspection / 2**30:.2f} GiB = {rss_inspection / nbytes:.1f} × the "
          f"file's bytes (before it: {rss_before / 2**30:.2f} GiB: imports and the volume opened)")
    if WORKER_PEAK["count"]:
        n, peak = WORKER_PEAK["count"], WORKER_PEAK["bytes"]
        print(f"child processes after the geometry: {n} (the slice workers and joblib's resource tracker), the "
              f"largest peak RSS {peak / 2**30:.2f} GiB; this process and its children together at most "
              f"{(rss_inspection + n * peak) / 2**30:.2f} GiB")
    if rss_after_floor > rss_inspection:
        print(f"peak RSS after the floor too: {rss_after_floor / 2**30:.2f} GiB")
    if opts.cprofile is not None:
        print(f"\ncProfile stats: {opts.cprofile}, {opts.cprofile_clock} clock (under the profiler: slower than "
              "a run without it)")
        print_profile(opts.cprofile)


if __name__ == "__main__":
    main()
