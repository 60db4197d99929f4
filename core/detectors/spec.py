"""A detector's declaration: its rules, metrics and limits, and the spec that holds them.

Plain frozen dataclasses, no numerics: each detector module declares one
:class:`DetectorSpec` beside its code and registers it with
:func:`core.detectors.base.register`; the recipe schema, the result's limits, the chunk merge
and the names people read are built from the registered specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    merge_gap_um : float or None
        How far apart (µm, between bounding boxes) two of its findings may be and still be one
        defect (a void bridged by a thin wall of coating, a buckle whose departure dips under
        the limit for a few degrees); None: its findings are never merged. The recipe's
        ``merge_gap_um`` of the detector overrides it (:func:`core.findings.merge_parts`).
    layered : bool
        Its findings follow one physical layer: parts merge only on the same winding (or the
        next one where the layer's ray index changes at the seam).
    speaks_for : int
        Which detector speaks for a group of findings at one place when their severities tie
        (lower first): the most specific description of the defect first.
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
    merge_gap_um: float | None = None
    layered: bool = False
    speaks_for: int = 100

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
