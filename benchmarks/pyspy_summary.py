"""Read py-spy's output for docs/performance.md: hot functions, and who holds the GIL.

``collapsed FILE``: a ``py-spy record -t -F -f raw`` file (one line per distinct stack,
``thread (TID);frame;...;frame COUNT``) → the top functions by own samples (the stack's last
frame) and by inclusive samples (anywhere in the stack, counted once per stack), with their
share of all samples, and the samples per thread.

``states PID [--interval S] [--match TEXT]``: runs ``py-spy dump --nonblocking`` on a running
process every ``--interval`` seconds until it exits and tallies, per sample, the states py-spy
gives each thread (``active+gil``: running Python or native code holding the GIL; ``active``:
running without it, i.e. inside a call that released it; ``idle``: waiting, e.g. for the GIL
or for a lock). Only samples where some thread's top frame mentions ``--match`` (default: the
geometry's ``analyze_slice`` pool) count. It prints how often 0, 1 or 2 threads were running
at once and how often a running thread held the GIL.

Run::

    py-spy record -r 50 -t -F -f raw -o all.txt -- .venv/bin/python benchmarks/inspect_bench.py --no-floor
    .venv/bin/python benchmarks/pyspy_summary.py collapsed all.txt
    .venv/bin/python benchmarks/pyspy_summary.py states PID --match ThreadPoolExecutor
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

THREAD_RE = re.compile(r'^Thread (\d+) \(([a-z+]+)\): "([^"]*)"')


def collapsed(path: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread, frames = (frames[0], frames[1:]) if frames[0].startswith("thread") else ("?", frames)
        if not frames:
            continue
        total += n
        threads[thread] += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} samples ({path})")
    print("\nsamples per thread:")
    for thread, n in threads.most_common():
        print(f"  {n:7d} {100 * n / total:5.1f}%  {thread}")
    for title, counter in (("own (the sampled frame itself)", own), ("inclusive (anywhere in the stack)", inclusive)):
        print(f"\ntop {top} functions by {title} samples, all threads:")
        for frame, n in counter.most_common(top):
            print(f"  {n:7d} {100 * n / total:5.1f}%  {frame}")


def states(pid: int, interval: float, match: str) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    running_at_once: collections.Counter[int] = collections.Counter()
    by_state: collections.Counter[str] = collections.Counter()
    samples = 0
    while True:
        out = subprocess.run([py_spy, "dump", "--nonblocking", "--pid", str(pid)], capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            break
        threads = [m.groups() for m in (THREAD_RE.match(line) for line in out.stdout.splitlines()) if m]
        if any(match in name for _, _, name in threads) or match in out.stdout:
            workers = [(tid, state) for tid, state, name in threads if match in name] or \
                      [(tid, state) for tid, state, _ in threads]
            samples += 1
            running_at_once[sum(state.startswith("active") for _, state in workers)] += 1
            for _, state in workers:
                by_state[state] += 1
        time.sleep(interval)
    if not samples:
        print("no sample matched")
        return
    print(f"{samples} samples of the threads matching {match!r}")
    for n in sorted(running_at_once):
        print(f"  {n} running at once: {running_at_once[n]:5d} samples ({100 * running_at_once[n] / samples:5.1f}%)")
    thread_samples = sum(by_state.values())
    for state, n in by_state.most_common():
        print(f"  thread state {state:11s} {n:5d} ({100 * n / thread_samples:5.1f}% of thread samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collapsed")
    c.add_argument("file", type=Path)
    c.add_argument("--top", type=int, default=25)
    s = sub.add_parser("states")
    s.add_argument("pid", type=int)
    s.add_argument("--interval", type=float, default=0.4)
    s.add_argument("--match", default="ThreadPoolExecutor")
    opts = parser.parse_args()
    if opts.what == "collapsed":
        collapsed(opts.file, opts.top)
    else:
        states(opts.pid, opts.interval, opts.match)


if __name__ == "__main__":
    main()
