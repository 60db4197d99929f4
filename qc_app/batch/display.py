"""What a person sees of a batch: a progress bar on stderr and the summary table.

The progress bar redraws one line when stderr is a terminal, and prints one line per cell
otherwise (logs of an unattended station stay readable).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from qc_app.batch.runner import BatchSummary, CellRow


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _tally(summary: BatchSummary) -> str:
    parts = [f"{summary.count(v)} {v}" for v in ("PASS", "FAIL", "REVIEW")]
    errors = summary.count("ERROR")
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    return " · ".join(parts)


class ProgressBar:
    """A progress bar for :func:`qc_app.batch.runner.run_batch`'s ``on_row`` callback.

    Parameters
    ----------
    total : int
        Cells in the batch.
    stream : text stream, optional
        Where to draw (stderr by default).
    width : int
        Characters of the bar itself.
    enabled : bool
        Draw nothing when False.
    """

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 28, enabled: bool = True):
        self.total = max(int(total), 0)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.done = 0
        self.inspected = 0

    def line(self, summary: BatchSummary) -> str:
        """The bar's text for the current state."""
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        elapsed = time.perf_counter() - self.t0
        text = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} cells · "
                f"{_tally(summary)} · {_clock(elapsed)}")
        left = self.total - self.done
        if self.inspected and left:
            per_cell = elapsed / max(self.done, 1)
            text += f", ~{_clock(per_cell * left)} left"
        return text

    def __call__(self, row: CellRow, summary: BatchSummary) -> None:
        self.done += 1
        if not row.skipped and row.status != "ERROR":
            self.inspected += 1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.line(summary))
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            what = "skipped, " + row.status if row.skipped else row.status
            name = row.cell_id or Path(row.path).name
            extra = f" ({row.note})" if row.status == "ERROR" and row.note else ""
            self.stream.write(f"[{self.done}/{self.total}] {name}: {what}{extra}\n")
        self.stream.flush()


def _cell(text: object, width: int) -> str:
    from core.text import printable

    return printable(text, width)  # escaped: a file name or cell id never prints raw


def format_summary(summary: BatchSummary) -> str:
    """The batch's summary table and totals, for stdout.

    Parameters
    ----------
    summary : BatchSummary

    Returns
    -------
    str
        A table (cell, verdict, findings, seconds, inspection id, note), then one line of
        totals, one of throughput, and — when any cell could not be inspected — a line
        saying so (that is why the exit code is 2) followed by each error in full.
    """
    rows = sorted(summary.rows, key=lambda r: ({"ERROR": 0, "FAIL": 1, "REVIEW": 2, "PASS": 3}.get(r.status, 4),
                                                r.cell_id or r.path))
    headers = ("cell", "verdict", "findings", "time s", "inspection", "note")
    table: list[tuple[str, ...]] = []
    for r in rows:
        note = f"{r.error_kind or 'other'} error (below)" if r.status == "ERROR" else r.note
        table.append((
            _cell(r.cell_id or Path(r.path).name, 28),
            r.status + (" (skipped)" if r.skipped else ""),
            "" if r.n_findings is None else str(r.n_findings),
            "" if r.elapsed_s is None or r.skipped else f"{r.elapsed_s:.1f}",
            "" if r.inspection_id is None else f"#{r.inspection_id}",
            _cell(note, 90),
        ))
    widths = [max([len(h)] + [len(t[i]) for t in table]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip() for t in table]
    skipped = sum(1 for r in summary.rows if r.skipped)
    lines.append("")
    lines.append(f"{summary.total} cells: {_tally(summary)}"
                 + (f"; {skipped} skipped (already inspected with this recipe)" if skipped else ""))
    inspected = summary.inspected
    if inspected:
        voxels = sum(r.voxels for r in inspected)
        where = "in this process" if summary.workers == 0 else f"on {summary.workers} worker(s)"
        rate = len(inspected) / summary.wall_s if summary.wall_s > 0 else 0.0
        lines.append(f"inspected {len(inspected)} cells {where} in {summary.wall_s:.1f} s: "
                     f"{rate * 3600:.0f} cells/h, {voxels / max(summary.wall_s, 1e-9) / 1e6:.2f} Mvoxel/s")
    errors = [r for r in summary.rows if r.status == "ERROR"]
    if errors:
        n_input = sum(1 for r in errors if r.error_kind == "input")
        kinds = []
        if n_input:
            kinds.append(f"{n_input} input error{'s' if n_input != 1 else ''}")
        if len(errors) - n_input:
            kinds.append(f"{len(errors) - n_input} other error{'s' if len(errors) - n_input != 1 else ''}")
        lines.append(f"NOT INSPECTED: {len(errors)} cell(s) ({', '.join(kinds)}); exit code 2:")
        lines += [f"  {r.error_kind or 'other'} error: {r.note}" for r in errors]
    return "\n".join(lines)
