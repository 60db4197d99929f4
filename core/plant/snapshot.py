"""What the plant sees of one filed inspection: a flat, self-contained snapshot.

The OPC UA server (``cellqc serve``) publishes one :class:`ResultSnapshot` per filed inspection
as ``CellQC/LastResult`` and in its result event. It is built from the log only (never from
memory of the process that inspected), so results filed by the hot folder, the GUI or
``cellqc inspect --db`` look exactly like results of the server's own ``Inspect`` method.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Database

#: Unit of a metric, from the end of its name (the result JSON's naming rule).
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_um", "µm"),
    ("_mm3", "mm³"),
    ("_mm2", "mm²"),
    ("_mm", "mm"),
    ("_pct", "%"),
    ("_deg", "°"),
    ("_ev", "eV"),
    ("_s", "s"),
)


def metric_unit(name: str) -> str:
    """The unit of a metric from its name (``void_total_volume_mm3`` → ``mm³``); ``1`` if none."""
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return "1"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def uncertainty_of(item: Any) -> float | None:
    """An expanded uncertainty given as a number, or as a mapping with a numeric ``value``/``U``."""
    if isinstance(item, dict):
        for key in ("value", "U", "expanded", "u"):
            if key in item:
                return _number(item[key])
        return None
    return _number(item)


@dataclass(frozen=True)
class Measurement:
    """One measured quantity with its unit and, when the result states one, its uncertainty.

    Attributes
    ----------
    name : str
        The metric's key in the result (``collector_deflection_max_um``) or, for a finding,
        ``FINDING_ID.value``.
    value : float or None
        None when the result holds no finite number.
    unit : str
    uncertainty : float or None
        Expanded uncertainty (k = 2) in the same unit, when the result gives one.
    """

    name: str
    value: float | None
    unit: str
    uncertainty: float | None = None


@dataclass(frozen=True)
class FindingSummary:
    """One finding as the plant sees it."""

    id: str
    detector: str
    severity: str
    value: float | None
    unit: str
    uncertainty: float | None
    message: str


@dataclass(frozen=True)
class ResultSnapshot:
    """One filed inspection, flat, as published to the plant.

    Attributes
    ----------
    inspection_id : int
    cell_id : str
    verdict : str
        The final verdict (the last override, else the automated one).
    automated_verdict : str
    reasons : tuple of str
    recipe, recipe_sha256 : str
    measurements : tuple of Measurement
        The result's ``metrics`` (numbers only), with units from their names.
    findings : tuple of FindingSummary
    report_path, report_sha256 : str
        The newest PDF filed for the inspection ("" when none is filed yet).
    result_sha256 : str
        SHA-256 of the filed result JSON (the report's QR carries it too).
    filed_at : str
        When the inspection completed (UTC, ISO 8601).
    operator : str
    source : str
        The volume's path.
    """

    inspection_id: int
    cell_id: str
    verdict: str
    automated_verdict: str
    reasons: tuple[str, ...]
    recipe: str
    recipe_sha256: str
    measurements: tuple[Measurement, ...]
    findings: tuple[FindingSummary, ...]
    report_path: str
    report_sha256: str
    result_sha256: str
    filed_at: str
    operator: str
    source: str

    def to_json(self) -> str:
        """The snapshot as one JSON object (schema ``cellqc.plant-result/1``)."""
        data = asdict(self)
        data["schema"] = "cellqc.plant-result/1"
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


def measurements_from_result(result: dict[str, Any]) -> tuple[Measurement, ...]:
    """The result's ``metrics`` as measurements (sorted by name; booleans and text left out).

    A metric's uncertainty is read from ``result["uncertainty"]["metrics"][NAME]`` when the result has
    such a mapping (a number, or a mapping with ``value``).
    """
    metrics = result.get("metrics") or {}
    block = result.get("uncertainty") if isinstance(result.get("uncertainty"), dict) else {}
    # core.uncertainty.annotate: {"k": 2, "metrics": {name: U}, ...}
    uncertainties = block.get("metrics") if isinstance(block.get("metrics"), dict) else {}
    out = []
    for name in sorted(metrics):
        value = metrics[name]
        if isinstance(value, bool) or not (value is None or isinstance(value, (int, float))):
            continue
        out.append(Measurement(name, _number(value), metric_unit(name), uncertainty_of(uncertainties.get(name))))
    return tuple(out)


def findings_from_result(result: dict[str, Any]) -> tuple[FindingSummary, ...]:
    """The result's findings: id, detector, severity, value, unit, uncertainty, message."""
    out = []
    for i, f in enumerate(result.get("findings") or []):
        if not isinstance(f, dict):
            continue
        out.append(FindingSummary(
            id=str(f.get("id") or f"F{i + 1}"), detector=str(f.get("detector") or ""),
            severity=str(f.get("severity") or ""), value=_number(f.get("value")), unit=str(f.get("unit") or ""),
            uncertainty=uncertainty_of(f.get("uncertainty")), message=str(f.get("message") or "")))
    return tuple(out)


def snapshot_from_log(db: Database, inspection_id: int) -> ResultSnapshot:
    """Build the snapshot of a complete inspection from the log.

    Raises
    ------
    core.errors.InputError
        No complete inspection has that id.
    """
    from core.store import get_inspection, get_result, overrides_for

    row = get_inspection(db, inspection_id)
    result = get_result(db, inspection_id)
    overrides = overrides_for(db, inspection_id)
    automated = str(row.get("verdict") or result.get("verdict") or "")
    report = list(db.query(
        "SELECT path, sha256 FROM reports WHERE inspection_id = ? ORDER BY id DESC LIMIT 1", [int(inspection_id)]))
    return ResultSnapshot(
        inspection_id=int(inspection_id),
        cell_id=str(row.get("cell_id") or result.get("cell_id") or ""),
        verdict=str(overrides[-1]["new_verdict"]) if overrides else automated,
        automated_verdict=automated,
        reasons=tuple(str(r) for r in result.get("reasons") or []),
        recipe=str(result.get("recipe") or row.get("recipe") or ""),
        recipe_sha256=str(result.get("recipe_hash") or row.get("recipe_hash") or ""),
        measurements=measurements_from_result(result),
        findings=findings_from_result(result),
        report_path=str(report[0]["path"]) if report else "",
        report_sha256=str(report[0]["sha256"]) if report else "",
        result_sha256=str(row.get("result_sha256") or ""),
        filed_at=str(row.get("finished_at") or row.get("completed_at") or row.get("started_at") or ""),
        operator=str(row.get("operator") or ""),
        source=str(result.get("source") or ""),
    )


def complete_since(db: Database, after_id: int) -> list[int]:
    """Ids of complete inspections with an id above ``after_id``, oldest first."""
    return [int(r[0]) for r in db.conn.execute(
        "SELECT id FROM inspections WHERE status = 'complete' AND id > ? ORDER BY id", [int(after_id)])]


def latest_complete(db: Database) -> int | None:
    """The id of the newest complete inspection, or None."""
    row = db.conn.execute("SELECT max(id) FROM inspections WHERE status = 'complete'").fetchone()
    return None if row is None or row[0] is None else int(row[0])
