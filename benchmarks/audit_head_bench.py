"""What recording the audit chain head outside the log costs per filed inspection.

Files N inspections (``record_inspection``: two commits each) into a fresh log with the head
file written after every commit (as cellqc does), and N more with that step switched off, in
the same process, alternating to even out a loaded machine. Prints milliseconds per
inspection and the ratio.

Run: ``.venv/bin/python benchmarks/audit_head_bench.py [N]``
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    folder = Path(tempfile.mkdtemp(prefix="cellqc-head-bench-"))
    os.environ["CELLQC_AUDIT_KEY"] = str(folder / "key" / "audit.key")
    from core.store import audit, open_log, record_inspection

    real = audit.record_head

    def file_many(tag: str) -> float:
        with open_log(folder / f"{tag}.db") as db:
            t0 = time.perf_counter()
            for i in range(n):
                record_inspection(db, {"cell_id": f"C{i}", "verdict": "PASS", "findings": []})
            return (time.perf_counter() - t0) / n

    timings: dict[str, list[float]] = {"with head file": [], "without": []}
    for round_ in range(2):
        timings["with head file"].append(file_many(f"with{round_}"))
        audit.record_head = lambda *args, **kwargs: None
        timings["without"].append(file_many(f"without{round_}"))
        audit.record_head = real
    with_head, without = min(timings["with head file"]), min(timings["without"])
    print(f"{n} inspections filed per run, best of 2 runs:")
    print(f"  with the head file:    {1e3 * with_head:6.2f} ms per inspection")
    print(f"  without the head file: {1e3 * without:6.2f} ms per inspection")
    print(f"  ratio: {with_head / without:.2f}")


if __name__ == "__main__":
    main()
