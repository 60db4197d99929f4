"""Statistical process control over the inspection log: control charts and Western Electric rules.

Any scalar of an inspection result (``metrics`` first, then ``geometry``) can be charted:

- an individuals / moving-range (I–MR) chart over the inspections in filing order:
  centre x̄, sigma = MR̄ / 1.128, limits x̄ ± 3 sigma; MR chart limit 3.267 MR̄;
- an X̄–R chart over subgroups (by lot, production line or day): limits X̄̄ ± A2 R̄ and
  D3 R̄ … D4 R̄ with the constants of each subgroup's size.

Points are flagged by the Western Electric rules: (1) one point beyond 3 sigma; (2) two of
three consecutive points beyond 2 sigma on the same side; (3) four of five beyond 1 sigma on
the same side; (4) eight consecutive points on the same side of the centre.

Where the group comes from: a result's ``lot`` / ``line`` key (or the same key under
``metadata``); without one, the lot is the cell id without its last ``-`` part
(``LOT42-0007`` → ``LOT42``) and the line is ``unknown``; the day is the date of
``started_at``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.fileio import atomic_writer

# Control chart constants for subgroup sizes 2..10 (ASTM / Montgomery).
_A2 = {2: 1.880, 3: 1.023, 4: 0.729, 5: 0.577, 6: 0.483, 7: 0.419, 8: 0.373, 9: 0.337, 10: 0.308}
_D3 = {2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.076, 8: 0.136, 9: 0.184, 10: 0.223}
_D4 = {2: 3.267, 3: 2.574, 4: 2.282, 5: 2.114, 6: 2.004, 7: 1.924, 8: 1.864, 9: 1.816, 10: 1.777}
_D2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970, 10: 3.078}
GROUPINGS = ("lot", "line", "day")


@dataclass
class Point:
    inspection_id: int
    cell_id: str
    started_at: str
    value: float
    group: str


@dataclass
class Chart:
    """One control chart: values, centre, limits and the rule violations per point."""

    name: str
    labels: list[str]
    values: np.ndarray
    center: float
    ucl: float
    lcl: float
    sigma: float
    violations: dict[int, list[int]] = field(default_factory=dict)  # point index → rules
    sizes: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def f(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {"name": self.name, "labels": self.labels, "values": [f(v) for v in self.values],
                "center": f(self.center), "ucl": f(self.ucl), "lcl": f(self.lcl), "sigma": f(self.sigma),
                "violations": {str(k): v for k, v in self.violations.items()}, "sizes": self.sizes}


def metric_value(result: dict[str, Any], metric: str) -> float | None:
    """The metric from ``metrics`` or ``geometry`` of a result; None when absent or not a number."""
    for block in ("metrics", "geometry"):
        val = (result.get(block) or {}).get(metric)
        if isinstance(val, bool):
            continue
        if isinstance(val, int | float) and math.isfinite(val):
            return float(val)
    return None


def group_of(result: dict[str, Any], by: str, started_at: str = "") -> str:
    """The subgroup a result belongs to (see the module docstring)."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}, not {by!r}")
    if by == "day":
        return (started_at or str(result.get("started_at", "")))[:10] or "unknown"
    meta = result.get("metadata") or {}
    val = result.get(by) or (meta.get(by) if isinstance(meta, dict) else None)
    if val:
        return str(val)
    if by == "lot":
        cid = str(result.get("cell_id") or "")
        return cid.rsplit("-", 1)[0] if "-" in cid else (cid or "unknown")
    return "unknown"


def load_results(db) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(log row, result) of every complete inspection of the log, oldest first."""
    from core.store import get_result, list_inspections

    out = []
    for row in list_inspections(db, status="complete"):
        try:
            out.append((row, get_result(db, int(row["id"]))))
        except Exception:  # an unreadable row is skipped, not charted
            continue
    return out


def metric_names(entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    """The chartable metrics present in the results (``metrics`` and ``geometry``), sorted."""
    names: set[str] = set()
    for _row, result in entries:
        for block in ("metrics", "geometry"):
            for key in (result.get(block) or {}):
                if key not in names and metric_value({block: result[block]}, key) is not None:
                    names.add(key)
    return sorted(names)


def points_of(entries: list[tuple[dict[str, Any], dict[str, Any]]], metric: str, by: str = "lot") -> list[Point]:
    """Points of ``metric`` over loaded results (:func:`load_results`), in their order."""
    points = []
    for row, result in entries:
        value = metric_value(result, metric)
        if value is None:
            continue
        started = str(row.get("started_at") or result.get("started_at") or "")
        points.append(Point(int(row["id"]), str(row.get("cell_id") or ""), started, value,
                            group_of(result, by, started)))
    return points


def collect(db, metric: str, by: str = "lot") -> list[Point]:
    """Points of ``metric`` over the complete inspections of the log, oldest first."""
    return points_of(load_results(db), metric, by)


def western_electric(values: np.ndarray, center: float, sigma: float) -> dict[int, list[int]]:
    """Western Electric rules 1–4: point index → list of the rules it violates."""
    x = np.asarray(values, float)
    out: dict[int, list[int]] = {}
    if not (math.isfinite(sigma) and sigma > 0) or x.size == 0:
        return out
    zs = (x - center) / sigma

    def flag(i: int, rule: int) -> None:
        rules = out.setdefault(int(i), [])
        if rule not in rules:
            rules.append(rule)

    for i, zv in enumerate(zs):
        if abs(zv) > 3:
            flag(i, 1)
    for rule, (n, m, lim) in {2: (3, 2, 2.0), 3: (5, 4, 1.0)}.items():
        for end in range(n - 1, len(zs)):
            win = zs[end - n + 1: end + 1]
            for sign in (1, -1):
                hits = sign * win > lim
                if hits.sum() >= m and sign * zs[end] > lim:
                    flag(end, rule)
    run = 0
    side = 0
    for i, zv in enumerate(zs):
        s = int(np.sign(zv))
        run = run + 1 if (s == side and s != 0) else (1 if s != 0 else 0)
        side = s
        if run >= 8:
            flag(i, 4)
    return out


def individuals_chart(values: np.ndarray, labels: list[str] | None = None) -> tuple[Chart, Chart]:
    """I chart and MR chart of a sequence of individual values."""
    x = np.asarray(values, float)
    labels = labels or [str(i) for i in range(x.size)]
    mr = np.abs(np.diff(x)) if x.size > 1 else np.zeros(0)
    mr_bar = float(mr.mean()) if mr.size else math.nan
    center = float(x.mean()) if x.size else math.nan
    sigma = mr_bar / _D2[2] if math.isfinite(mr_bar) else math.nan
    i_chart = Chart("I", labels, x, center, center + 3 * sigma, center - 3 * sigma, sigma)
    i_chart.violations = western_electric(x, center, sigma)
    mr_chart = Chart("MR", labels[1:], mr, mr_bar, _D4[2] * mr_bar, 0.0, math.nan)
    mr_chart.violations = {i: [1] for i, v in enumerate(mr) if math.isfinite(mr_bar) and v > _D4[2] * mr_bar}
    return i_chart, mr_chart


def xbar_r_chart(groups: dict[str, np.ndarray]) -> tuple[Chart, Chart] | None:
    """X̄ and R charts over subgroups of 2–10 values (groups of one value are left out)."""
    names = [k for k, v in groups.items() if len(v) >= 2]
    if len(names) < 2:
        return None
    sub = {k: np.asarray(groups[k], float)[:10] for k in names}
    means = np.array([v.mean() for v in sub.values()])
    ranges = np.array([np.ptp(v) for v in sub.values()])
    sizes = [len(v) for v in sub.values()]
    grand = float(means.mean())
    r_bar = float(ranges.mean())
    n_typ = int(round(np.mean(sizes)))
    sigma_x = r_bar / _D2[n_typ] / math.sqrt(n_typ)
    x_chart = Chart("Xbar", names, means, grand, grand + _A2[n_typ] * r_bar, grand - _A2[n_typ] * r_bar, sigma_x,
                    sizes=sizes)
    # Per-subgroup limits differ with the size; flag rule 1 against each group's own limit.
    viol = western_electric(means, grand, sigma_x)
    for i, n in enumerate(sizes):
        lim = _A2[n] * r_bar
        rules = [r for r in viol.get(i, []) if r != 1]
        if abs(means[i] - grand) > lim:
            rules.insert(0, 1)
        if rules:
            viol[i] = rules
        else:
            viol.pop(i, None)
    x_chart.violations = viol
    r_chart = Chart("R", names, ranges, r_bar, _D4[n_typ] * r_bar, _D3[n_typ] * r_bar, math.nan, sizes=sizes)
    r_chart.violations = {i: [1] for i, (v, n) in enumerate(zip(ranges, sizes, strict=True)) if v > _D4[n] * r_bar}
    return x_chart, r_chart


def spc_report(points: list[Point], metric: str, by: str = "lot") -> dict[str, Any]:
    """I–MR and X̄–R charts of the points, with the rule violations."""
    values = np.array([p.value for p in points], float)
    labels = [f"{p.inspection_id}:{p.cell_id}" for p in points]
    i_chart, mr_chart = individuals_chart(values, labels)
    groups: dict[str, list[float]] = {}
    for p in points:
        groups.setdefault(p.group, []).append(p.value)
    xr = xbar_r_chart({k: np.array(v) for k, v in groups.items()})
    return {
        "schema": "cellqc.spc/1", "metric": metric, "by": by, "n": len(points),
        "individuals": i_chart, "moving_range": mr_chart,
        "xbar": xr[0] if xr else None, "range": xr[1] if xr else None,
        "groups": {k: len(v) for k, v in groups.items()},
    }


def report_to_json(report: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.to_json() if isinstance(v, Chart) else v) for k, v in report.items()}


#: The Western Electric rules by number, as named in tables and charts.
RULE_TEXT = {1: "beyond 3σ", 2: "2 of 3 beyond 2σ", 3: "4 of 5 beyond 1σ", 4: "8 on one side"}


def format_table(report: dict[str, Any]) -> str:
    """A plain-text summary: limits and every flagged point."""
    rule_text = RULE_TEXT
    lines = [f"SPC of {report['metric']}: {report['n']} inspection(s), grouped by {report['by']}"]
    for key in ("individuals", "moving_range", "xbar", "range"):
        ch = report.get(key)
        if ch is None:
            if key == "xbar":
                lines.append("  X̄–R: needs at least two groups of two or more inspections")
            continue
        lines.append(f"  {ch.name:5s} centre {ch.center:.4g}  LCL {ch.lcl:.4g}  UCL {ch.ucl:.4g}  "
                     f"({len(ch.values)} point(s), {len(ch.violations)} flagged)")
        for i, rules in sorted(ch.violations.items()):
            lines.append(f"    {ch.labels[i]}: {ch.values[i]:.4g}  " + "; ".join(rule_text[r] for r in rules))
    return "\n".join(lines)


def render_png(report: dict[str, Any], path: str | Path) -> Path:
    """The charts as one PNG (matplotlib, Agg); written to a temporary name, then renamed."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = [c for c in (report.get(k) for k in ("individuals", "moving_range", "xbar", "range")) if c is not None]
    fig, axes = plt.subplots(len(charts), 1, figsize=(9, 2.4 * len(charts)), squeeze=False)
    for ax, ch in zip(axes[:, 0], charts, strict=True):
        x = np.arange(len(ch.values))
        ax.plot(x, ch.values, "o-", color="#1f5f8b", ms=3, lw=1)
        for level, style in ((ch.center, "-"), (ch.ucl, "--"), (ch.lcl, "--")):
            if math.isfinite(level):
                ax.axhline(level, color="#b03030" if style == "--" else "#444444", ls=style, lw=1)
        bad = sorted(ch.violations)
        if bad:
            ax.plot(bad, ch.values[bad], "o", color="#d62728", ms=6)
        ax.set_ylabel(ch.name)
        if len(ch.labels) <= 30:
            ax.set_xticks(x)
            ax.set_xticklabels(ch.labels, rotation=45, ha="right", fontsize=6)
    axes[0, 0].set_title(f"{report['metric']} ({report['n']} inspections, by {report['by']})")
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_writer(path, suffix=".png") as fh:
            fig.savefig(fh, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path
