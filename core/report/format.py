"""How the report writes values as text: numbers, dates, durations, hashes, limit status.

No reportlab here: these are plain functions of the result's values (the names and units of
metrics come from :mod:`core.describe`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def fmt(value: object) -> str:
    """A number for a table: integers as such, floats with 4 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "—"
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4g}"
    try:
        return fmt(float(value))  # numpy scalars
    except (TypeError, ValueError):
        text = str(value)
        return text if len(text) <= 60 else text[:57] + "…"


def limit_status(value: object, limit: Mapping[str, Any] | None) -> str | None:
    """``"FAIL"``, ``"REVIEW"``, ``"OK"`` against a limit, or None when it cannot be judged.

    A limit is an upper bound (value ≥ limit trips it) unless its fail level is below its
    review level, which marks a lower bound.
    """
    if not limit:
        return None
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if x != x:
        return None
    review, fail = limit.get("review"), limit.get("fail")
    lower = review is not None and fail is not None and float(fail) < float(review)
    for level, name in ((fail, "FAIL"), (review, "REVIEW")):
        if level is None:
            continue
        if (x <= float(level)) if lower else (x >= float(level)):
            return name
    return "OK" if (review is not None or fail is not None) else None


def short_hash(value: object, n: int = 12) -> str:
    """The first ``n`` characters of a hash, or "—" when there is none."""
    text = str(value or "")
    return text[:n] if text else "—"


def date_text(iso: object) -> str:
    """An ISO time stamp as ``YYYY-MM-DD HH:MM:SS`` (with its zone when it has one); "—" if none."""
    if not iso:
        return "—"
    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if when.tzinfo is not None:
        return when.strftime("%Y-%m-%d %H:%M:%S %Z").replace("UTC", "UTC").strip()
    return when.strftime("%Y-%m-%d %H:%M:%S")


def duration_text(result: Mapping[str, Any]) -> str:
    """How long the inspection took ("12.3 s"), from its start and end or its timings; "—" if unknown."""
    try:
        t0 = datetime.fromisoformat(str(result["started_at"]))
        t1 = datetime.fromisoformat(str(result["finished_at"]))
        return f"{(t1 - t0).total_seconds():.1f} s"
    except (KeyError, ValueError, TypeError):
        pass
    timings = result.get("timings_s") or {}
    total = timings.get("total")
    if total is None:
        try:
            total = sum(float(v) for v in timings.values())
        except (TypeError, ValueError):
            total = None
    return f"{float(total):.1f} s" if total else "—"
