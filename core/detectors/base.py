"""What every detector shares: its signature, its findings, its declaration and the registry.

A detector is one module under ``core/detectors/`` holding its code and one
:class:`DetectorSpec`: its label, its recipe rules (type, range, default, unit, help), the
limits it reports, how each of its metrics merges across chunks, its finding id prefix.
``@register(SPEC)`` on its ``detect`` function adds it to :data:`DETECTORS` and
:data:`SPECS`; the recipe schema (:mod:`core.recipe`), the result's ``limits``
(:mod:`core.inspect`), the chunk merge (:mod:`core.chunked`) and the names the report and the
GUI use (:mod:`core.describe`) are built from :data:`SPECS`, so adding a detector is adding
its module and importing it in ``core/detectors/__init__.py``.

Numerics several detectors share are in :mod:`core.detectors.numerics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.geometry.roll import CellGeometry
from core.io.volume import Volume

SEVERITIES = ("fail", "review", "info")


@dataclass
class DetectorContext:
    """Inputs of a detector: the volume, its geometry, and the recipe's rules and cell."""

    volume: Volume
    geometry: CellGeometry
    rules: dict[str, float]
    cell: dict[str, Any]
    progress: Callable[[float, str], None] | None = None
    cancel: Callable[[], bool] | None = None
    segmenter: str = "classic"  # "onnx" / "classic+onnx": model-based variants or second opinion (core.segment)
    # Values measured on the whole volume when it is inspected a chunk at a time (core.chunked),
    # e.g. "cathode_sheet_thickness_median_um"; detectors use them instead of their own.
    reference: dict[str, float] = field(default_factory=dict)

    def report(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(fraction, message)

    def check_cancel(self) -> None:
        from core.errors import Cancelled

        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled")


@dataclass
class Finding:
    """One located, measured anomaly (DESIGN.md, inspection result ``findings``)."""

    detector: str
    severity: str
    centroid_zyx_px: tuple[float, float, float]
    bbox_zyx_px: tuple[int, int, int, int, int, int]
    value: float
    unit: str
    message: str
    winding: int | None = None
    angle_deg: float | None = None
    rule: str = ""
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "detector": self.detector,
            "severity": self.severity,
            "centroid_zyx_px": [float(c) for c in self.centroid_zyx_px],
            "bbox_zyx_px": [int(b) for b in self.bbox_zyx_px],
            "winding": None if self.winding is None else int(self.winding),
            "angle_deg": None if self.angle_deg is None else float(self.angle_deg),
            "value": float(self.value),
            "unit": self.unit,
            "message": self.message,
            "rule": self.rule,
        }
        for key, val in self.extra.items():
            out[key] = _plain(val)
        return out


@dataclass
class DetectorOutput:
    """Findings, scalar metrics and optional unrolled maps of one detector."""

    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    maps: dict[str, Any] = field(default_factory=dict)


Detector = Callable[[DetectorContext], DetectorOutput]
DETECTORS: dict[str, Detector] = {}


@dataclass(frozen=True)
class Rule:
    """One recipe rule of a detector (``[rules.<detector>] <key> = <value>``).

    Attributes
    ----------
    default : float or None
        The value when a recipe does not give the key (None: the rule is not applied, or
        ``help`` says what takes its place).
    lo, hi : float or None
        Allowed range, inclusive (None: unbounded); a value outside is a recipe error.
    unit : str
        Unit of the value as written in the recipe ("µm", "mm³", "" for fractions and counts).
    help : str
        What the rule does, in one sentence.
    type : type
        What the recipe's number is converted to (every shipped rule: float).
    """

    default: float | None
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    help: str = ""
    type: type = float


#: How a metric merges across the chunks of an inspection done a chunk at a time
#: (:func:`core.chunked.merge_metrics`): ``sum`` of counts (scaled to the chunk's own slices),
#: ``max``, ``min``, slice-weighted ``mean``, ``pooled_std`` (with the spread of the chunks'
#: means, ``of`` = the mean's key), ``ratio`` (``of`` = numerator and denominator keys, after
#: the others are merged).
MERGES = ("sum", "max", "min", "mean", "pooled_std", "ratio")


@dataclass(frozen=True)
class Metric:
    """One scalar metric a detector reports (``result["metrics"][key]``).

    Attributes
    ----------
    merge : str
        One of :data:`MERGES`.
    label : str
        What a person reads in the report's measurements table (e.g. "Void volume, largest").
    unit : str
        Unit as shown ("µm", "%", "" for counts).
    factor : float
        Stored value × factor = shown value (a fraction shown in %: 100).
    of : tuple of str
        The keys ``pooled_std`` and ``ratio`` merge from.
    """

    merge: str
    label: str = ""
    unit: str = ""
    factor: float = 1.0
    of: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.merge not in MERGES:
            raise ValueError(f"unknown merge {self.merge!r}; one of {', '.join(MERGES)}")
        if self.merge in ("pooled_std", "ratio") and len(self.of) != (1 if self.merge == "pooled_std" else 2):
            raise ValueError(f"a {self.merge} metric names the keys it merges from in 'of'")


@dataclass(frozen=True)
class Limit:
    """A limit the result reports (``result["limits"][key]``) and the report's checks table shows.

    Attributes
    ----------
    label : str
        The check's name ("Largest void").
    definition : str
        The quantity the rule judges, defined.
    unit : str
        Unit of the reported limit.
    review, fail : str or None
        The detector's rule keys that give the review and fail limits.
    scale : float
        Rule value × scale = reported limit (a fraction reported in %: 100).
    """

    label: str
    definition: str
    unit: str
    review: str | None = None
    fail: str | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class DetectorSpec:
    """Everything the rest of cellqc knows about one detector, declared beside its code.

    Attributes
    ----------
    name : str
        The detector's id (recipes, results, findings' ``detector``).
    label : str
        What it looks for, in words an operator uses (the findings list, the report).
    value_name : str
        The physical quantity a finding's ``value`` is.
    prefix : str
        Letter of its findings' ids (``D1``, ``C2``; ``F`` is shared by detectors without one).
    rules : mapping of str to Rule
        Its recipe section ``[rules.<name>]``.
    metrics : mapping of str to Metric
        Every metric key it reports.
    limits : mapping of str to Limit
        The limits it reports in the result (none: the checks table shows ``check``).
    check : (label, definition) or None
        The checks-table row of a detector that reports no limit (shown when it finds something).
    ordered : tuple of (review key, fail key)
        Rule pairs whose review value may not exceed the fail value (a recipe error otherwise).
    order : int
        Place in the lists people read (report, GUI); the recipes list detectors in this order.
    """

    name: str
    label: str
    value_name: str
    prefix: str = "F"
    rules: Mapping[str, Rule] = field(default_factory=dict)
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    limits: Mapping[str, Limit] = field(default_factory=dict)
    check: tuple[str, str] | None = None
    ordered: tuple[tuple[str, str], ...] = ()
    order: int = 100

    def rules_for(self, given: Mapping[str, float] | None = None) -> dict[str, float]:
        """The rules in force: the declared defaults (those not None) overridden by ``given``."""
        out: dict[str, Any] = {k: r.default for k, r in self.rules.items() if r.default is not None}
        out.update(given or {})
        return out

    def limits_for(self, given: Mapping[str, float] | None = None) -> dict[str, dict[str, Any]]:
        """The result's ``limits`` entries of this detector under the rules ``given``."""
        rules = self.rules_for(given)

        def value(key: str | None, scale: float) -> float | None:
            v = rules.get(key) if key is not None else None
            return None if v is None else scale * v

        return {key: {"review": value(lim.review, lim.scale), "fail": value(lim.fail, lim.scale), "unit": lim.unit}
                for key, lim in self.limits.items()}


SPECS: dict[str, DetectorSpec] = {}


def register(spec: DetectorSpec) -> Callable[[Detector], Detector]:
    """Register a detector function under its declaration (one module per detector)."""
    unknown = {k for lim in spec.limits.values() for k in (lim.review, lim.fail) if k is not None} - set(spec.rules)
    unknown |= {k for pair in spec.ordered for k in pair} - set(spec.rules)
    if unknown:
        raise ValueError(f"detector {spec.name}: limits or ordered pairs name undeclared rules {sorted(unknown)}")

    def wrap(func: Detector) -> Detector:
        DETECTORS[spec.name] = func
        SPECS[spec.name] = spec
        return func

    return wrap


def specs() -> list[DetectorSpec]:
    """The registered declarations in the order people read them (:attr:`DetectorSpec.order`)."""
    return sorted(SPECS.values(), key=lambda s: s.order)


def severity_for(value: float, fail: float | None, review: float | None) -> str:
    """``fail`` when value ≥ fail, ``review`` when ≥ review, else ``info``."""
    if fail is not None and value >= fail:
        return "fail"
    if review is not None and value >= review:
        return "review"
    return "info"


def _plain(val: Any) -> Any:
    if isinstance(val, np.generic):
        return val.item()
    if isinstance(val, float) and not math.isfinite(val):
        return None
    if isinstance(val, list | tuple):
        return [_plain(v) for v in val]
    return val
