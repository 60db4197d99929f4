"""Time per stage of an inspection, and progress in proportion to the stages' typical time.

Every inspection result carries ``timings_s``: seconds per stage, filed by
:func:`core.inspect.inspect_volume` (``recipe``, ``geometry``, one entry per detector,
``unroll``, ``merge_verdict``; ``prior`` when inspected in chunks) and by
:func:`core.filing.inspect_and_file` (``read``, and the outputs it writes: ``maps``,
``report``, ``json``, ``log``), plus ``total``: seconds from the first stage's start to the
moment that copy of the result was made. Stages do not overlap; ``total`` minus their sum is
bookkeeping between them.

Which stages a copy holds depends on when it was made. The result filed in the log (and
returned) is the one the report's QR code hashes: it stops where the report starts (read, the
inspection's stages, ``maps``; ``log`` there is the opening of the log's row). The JSON file,
written after the report, adds ``report``. Only the ``stage_timings`` dict of
:func:`core.filing.inspect_and_file` (``cellqc inspect --profile``) holds every stage, ``json``
and the whole of ``log`` (opening and filing the row) included.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

#: Typical seconds of each stage on issue 18's benchmark volume (a generated 18650, 20 µm,
#: 1000 × 1000 × 100 uint16): the wall seconds ``benchmarks/inspect_bench.py`` printed on an
#: idle machine after the geometry went to worker processes (the maps, report and outputs: the
#: CPU seconds of ``--outputs``; docs/performance.md). Used only as
#: weights, so that a progress bar moves in proportion to the work; a stage not listed weighs
#: :data:`UNLISTED_STAGE_S`. Update them when a stage gets much faster.
TYPICAL_SECONDS: dict[str, float] = {
    "read": 0.3,  # a TIFF opens lazily (0.01 s); its pages are read by the stages that use them
    "recipe": 0.3,
    "geometry": 23.6,
    "collector_deflection": 2.1,
    "electrode_thickness": 0.6,
    "delamination": 8.3,
    "foreign_particle": 2.0,
    "anode_overhang": 0.5,  # ~0 in the middle of a roll; works where the volume shows a roll end
    "can_metrology": 0.1,
    "winding_quality": 2.6,
    "unroll": 0.5,
    "merge_verdict": 0.05,
    "maps": 5.7,
    "report": 2.9,
    "json": 0.02,
    "log": 0.05,
}
UNLISTED_STAGE_S = 1.0
#: Stages of :func:`core.inspect.inspect_volume` apart from the detectors.
INSPECTION_STAGES = ("recipe", "geometry", "unroll", "merge_verdict")


def typical_seconds(stage: str) -> float:
    """The weight of ``stage`` (its typical seconds, :data:`UNLISTED_STAGE_S` if unknown)."""
    return TYPICAL_SECONDS.get(stage, UNLISTED_STAGE_S)


def inspection_seconds(detectors: Sequence[str] | None = None) -> float:
    """Typical seconds of a whole :func:`core.inspect.inspect_volume` call.

    Parameters
    ----------
    detectors : sequence of str, optional
        The recipe's detectors (default: every detector listed in :data:`TYPICAL_SECONDS`).
    """
    if detectors is None:
        outside = {"read", "maps", "report", "json", "log", *INSPECTION_STAGES}
        detectors = [k for k in TYPICAL_SECONDS if k not in outside]
    return sum(typical_seconds(s) for s in (*INSPECTION_STAGES, *detectors))


def progress_spans(stages: Sequence[str], lo: float = 0.0, hi: float = 1.0,
                   weights: Mapping[str, float] | None = None) -> dict[str, tuple[float, float]]:
    """Each stage's part ``(start, end)`` of the interval ``[lo, hi]`` of a progress bar.

    Parts follow the order of ``stages`` and are proportional to their typical seconds.

    Parameters
    ----------
    stages : sequence of str
        The stages that will run, in order (names as in ``timings_s``).
    lo, hi : float
        The interval to share (fractions of the whole bar).
    weights : mapping, optional
        Seconds for stages not in :data:`TYPICAL_SECONDS` (or to override them).

    Returns
    -------
    dict
        stage → (start, end) fractions.
    """
    given = dict(weights or {})
    seconds = [given[s] if s in given else typical_seconds(s) for s in stages]
    total = sum(seconds) or 1.0
    spans: dict[str, tuple[float, float]] = {}
    at = 0.0
    for stage, weight in zip(stages, seconds, strict=True):
        start = lo + (hi - lo) * at / total
        at += weight
        spans[stage] = (start, lo + (hi - lo) * at / total)
    return spans


class StageClock:
    """Adds the wall time of named stages to a ``timings`` dict (seconds).

    A stage timed again adds up, and moves to the end of the dict (the order stages ended in).

    Examples
    --------
    >>> timings = {}
    >>> clock = StageClock(timings)
    >>> with clock.stage("read"):
    ...     pass
    >>> sorted(timings)
    ['read']
    """

    def __init__(self, timings: dict[str, float]):
        self.timings = timings
        self.started = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.pop(name, 0.0) + time.perf_counter() - t0

    def stamp_total(self) -> None:
        """Set ``total``: seconds since this clock was made."""
        self.timings["total"] = time.perf_counter() - self.started


def profile_rows(timings: Mapping[str, float]) -> list[tuple[str, float, float]]:
    """(stage, seconds, share of the total) in the order the stages ran, then ``other``.

    ``other`` is ``total`` minus the stages' sum (bookkeeping between stages), when positive.
    Without ``total`` the shares are of the stages' sum.
    """
    stages = [(k, float(v)) for k, v in timings.items() if k != "total"]
    staged = sum(v for _, v in stages)
    total = float(timings.get("total", staged))
    if total < staged:  # a copy whose total was stamped before its last stages
        total = staged
    rows = [(k, v, v / total if total > 0 else 0.0) for k, v in stages]
    other = total - staged
    if other > 0.0005:
        rows.append(("other", other, other / total if total > 0 else 0.0))
    return rows


def format_profile(timings: Mapping[str, float]) -> str:
    """The time-per-stage table of ``cellqc inspect --profile`` (plain text, one stage a line)."""
    rows = profile_rows(timings)
    total = sum(v for _, v, _ in rows)
    width = max([len("stage")] + [len(k) for k, _, _ in rows])
    lines = [f"{'stage':<{width}}  {'seconds':>9}  {'share':>6}"]
    lines += [f"{k:<{width}}  {v:9.3f}  {100 * s:5.1f}%" for k, v, s in rows]
    lines.append(f"{'total':<{width}}  {total:9.3f}  100.0%")
    return "\n".join(lines)
