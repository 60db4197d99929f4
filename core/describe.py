"""How cellqc says what it found: one place for a finding's name, place and value.

The command line, the PDF report and the workstation all describe an inspection result
through this module, so that they tell one story: the same slice number, the same height, the
same value with the same unit and rounding, the same name for the same thing. The result
JSON keeps its fields (voxel indices, raw values); this module only says them.

Conventions (stated in the report, the GUI and ``docs/user_guide.md``):

- **Slices are numbered from 0**, as the z voxel index of ``centroid_zyx_px`` and
  ``bbox_zyx_px`` in the result: slice 0 is the first image of the volume file.
- **Heights z are in mm from the outer face of slice 0**: slice *i* spans
  ``[i·dz, (i + 1)·dz]`` and its height is its centre, ``(i + ½)·dz``.
- **A finding is shown on one slice**: its centroid's z rounded (halves up), kept inside its
  bounding box (:func:`finding_slice`); it may span more (``z_range_px``: "slices 3–12").
- **Values** carry their unit and, when the result gives it, their expanded uncertainty
  (``± U``, k = 2, same unit), rounded together by one rule (:func:`value_text`).
- **Checks** (the recipe's limits) show the worst finding of the rule's detector: the same
  quantity the rule judged, never a different statistic (:func:`check_rows`).

Nothing here imports Qt or prints; every function takes the result (a dict) or a finding.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The slice numbering used everywhere a person reads a slice number.
SLICE_BASE = 0
#: One sentence saying the convention (the report's footnote, the GUI's tooltip, the docs).
SLICE_CONVENTION = ("Slices are numbered from 0 (the z voxel index of the result file); z is the height in mm "
                    "from the outer face of slice 0 to the slice's centre.")
MINUS = "−"

SEVERITY_RANK = {"fail": 0, "review": 1, "info": 2}
SEVERITY_WORD = {"fail": "FAIL", "review": "REVIEW", "info": "info"}

class _FromDetectors(Mapping[str, Any]):
    """A read-only table built from the detectors' declarations when read
    (:data:`core.detectors.SPECS`), so a detector registered later is in it too."""

    def __init__(self, build: Callable[[Sequence[Any]], dict[str, Any]]):
        self._build = build

    def _table(self) -> dict[str, Any]:
        from core.detectors import specs

        return self._build(specs())

    def __getitem__(self, key: str) -> Any:
        return self._table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


#: What each detector looks for, in words an operator uses (no ids): its declared ``label``.
DETECTOR_LABELS: Mapping[str, str] = _FromDetectors(lambda specs: {s.name: s.label for s in specs})
#: The physical quantity each detector's finding ``value`` is: its declared ``value_name``.
VALUE_NAMES: Mapping[str, str] = _FromDetectors(lambda specs: {s.name: s.value_name for s in specs})
_CAN_LABELS = {
    "outer diameter off nominal": "Can diameter off nominal",
    "ovality": "Can out of round",
    "dent": "Can dented",
    "thinnest wall": "Can wall too thin",
}
_WINDING_LABELS = {"buckling": "Winding buckled", "inner-winding collapse": "Inner winding collapsed"}

# Unit spellings in results and metric names → what a person reads.
_UNITS = {"um": "µm", "µm": "µm", "mm": "mm", "mm2": "mm²", "mm²": "mm²", "mm3": "mm³", "mm³": "mm³",
          "um2": "µm²", "um3": "µm³", "deg": "°", "°": "°", "pct": "%", "%": "%", "ev": "eV", "kev": "keV",
          "s": "s", "px": "px"}


def pretty_unit(unit: object) -> str:
    """``"mm3"`` → ``"mm³"``, ``"um"`` → ``"µm"``; other units unchanged."""
    text = "" if unit is None else str(unit)
    return _UNITS.get(text.lower(), _UNITS.get(text, text))


# ---------------------------------------------------------------------------- numbers


def _finite(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _significant_decimals(x: float, significant: int) -> int:
    if x == 0:
        return 0
    return max(0, significant - 1 - math.floor(math.log10(abs(x))))


def decimals_for(value: float, unit: str = "") -> int:
    """Decimals a value is shown with: one rule per unit (µm: whole micrometres from 10 µm;
    mm: hundredths; mm³: two significant digits; %: whole percent from 10 %; …)."""
    a = abs(value)
    unit = pretty_unit(unit)
    if a == 0:
        return 0
    if unit in ("µm", "°", "µm²", "µm³", "s"):
        return 0 if a >= 10 else (1 if a >= 1 else _significant_decimals(a, 2))
    if unit in ("mm", "mm²"):
        return 2 if a >= 0.01 else _significant_decimals(a, 2)
    if unit == "mm³":
        return _significant_decimals(a, 2)
    if unit == "%":
        return 0 if a >= 10 else (1 if a >= 1 else _significant_decimals(a, 2))
    if unit in ("eV", "keV"):
        return 1
    return _significant_decimals(a, 3) if a < 100 else 0


def number(value: object, unit: str = "", decimals: int | None = None, *, strip: bool = False) -> str:
    """A number as a person reads it (no unit): ``72``, ``0.0038``, ``−33``; ``—`` when unknown.

    ``strip`` drops trailing zeros (a limit as the recipe states it: ``0.001``, not ``0.0010``).
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value).replace("-", MINUS)
    x = _finite(value)
    if x is None:
        return "—"
    d = decimals_for(x, unit) if decimals is None else decimals
    if strip:
        d = max(d, min(_significant_decimals(x, 6), 8))
    text = f"{x:.{d}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def _uncertainty_decimals(u: float) -> int:
    """Decimals of an expanded uncertainty: one significant digit, two when it starts with 1."""
    if u <= 0:
        return 0
    exp = math.floor(math.log10(u))
    lead = int(u / 10 ** exp)
    return max(0, -exp + (1 if lead == 1 else 0))


def quantity(value: object, unit: object = "", uncertainty: object = None, *, limit: bool = False) -> str:
    """``"72 ± 9 µm"``: a value, its expanded uncertainty (k = 2) when given, and its unit,
    rounded together (the uncertainty to one or two significant digits). ``limit``: a limit
    as the recipe states it (no trailing zeros)."""
    unit_text = pretty_unit(unit)
    x = _finite(value)
    if x is None:
        return "—"
    u = _finite(uncertainty)
    if u is not None and u > 0:
        d = max(_uncertainty_decimals(u), 0)
        text = f"{number(x, unit_text, d)} ± {number(u, unit_text, d)}"
    else:
        text = number(x, unit_text, strip=limit)
    if unit_text == "°":
        return f"{text}°"
    return f"{text} {unit_text}".strip()


# ---------------------------------------------------------------------------- places


def spacing_of(result: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """The voxel size (z, y, x) in µm of a result, or None."""
    spacing = result.get("spacing_um")
    if spacing is None and result.get("voxel_size_um") is not None:
        spacing = [result["voxel_size_um"]] * 3
    try:
        values = tuple(float(v) for v in spacing)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return values if len(values) == 3 else None  # type: ignore[return-value]


def slice_z_mm(index: float, dz_um: float) -> float:
    """Height (mm) of slice ``index`` (or of a fractional voxel z): its centre, from the outer
    face of slice 0."""
    return (float(index) + 0.5) * float(dz_um) / 1000.0


def slice_at_z_mm(z_mm: float, dz_um: float) -> int:
    """The slice holding height ``z_mm`` (the inverse of :func:`slice_z_mm`)."""
    return int(math.floor(float(z_mm) * 1000.0 / float(dz_um)))


def round_half_up(value: float) -> int:
    return int(math.floor(float(value) + 0.5))


def finding_slice(finding: Mapping[str, Any], nz: int | None = None) -> int | None:
    """The slice a finding is shown on: its centroid's z, rounded halves up, kept inside its
    bounding box (``bbox`` z end is exclusive) and, with ``nz``, inside the volume."""
    centroid = finding.get("centroid_zyx_px")
    bbox = finding.get("bbox_zyx_px")
    z: int | None = None
    if centroid is not None and len(centroid) >= 1 and _finite(centroid[0]) is not None:
        z = round_half_up(float(centroid[0]))
    if bbox is not None and len(bbox) == 6 and _finite(bbox[0]) is not None and _finite(bbox[3]) is not None:
        z0, z1 = int(bbox[0]), int(bbox[3])
        if z is None:
            z = round_half_up(0.5 * (z0 + z1 - 1))
        z = min(max(z, z0), max(z1 - 1, z0))
    if z is not None and nz is not None:
        z = min(max(z, 0), max(int(nz) - 1, 0))
    return z


def finding_slice_range(finding: Mapping[str, Any]) -> tuple[int, int] | None:
    """First and last slice (inclusive) a finding spans."""
    rng = finding.get("z_range_px")
    if rng is not None and len(rng) == 2 and all(_finite(v) is not None for v in rng):
        return int(rng[0]), int(rng[1])
    bbox = finding.get("bbox_zyx_px")
    if bbox is not None and len(bbox) == 6 and _finite(bbox[0]) is not None and _finite(bbox[3]) is not None:
        return int(bbox[0]), max(int(bbox[3]) - 1, int(bbox[0]))
    return None


@dataclass(frozen=True)
class Location:
    """Where a finding is, in the one convention (slices from 0, z from slice 0's face)."""

    slice: int | None
    z_mm: float | None
    first_slice: int | None = None
    last_slice: int | None = None
    winding: int | None = None
    angle_deg: float | None = None

    def slice_text(self) -> str:
        """``"slice 7 (z 0.15 mm)"``."""
        if self.slice is None:
            return ""
        text = f"slice {self.slice}"
        if self.z_mm is not None:
            text += f" (z {number(self.z_mm, 'mm')} mm)"
        return text

    def span_text(self) -> str:
        """``"slices 3–12"`` when the finding spans more than its shown slice, else ``""``."""
        if self.first_slice is None or self.last_slice is None or self.first_slice == self.last_slice:
            return ""
        return f"slices {self.first_slice}–{self.last_slice}"

    def roll_text(self) -> str:
        """``"winding 14, 263°"``."""
        parts = []
        if self.winding is not None:
            parts.append(f"winding {self.winding}")
        if self.angle_deg is not None:
            parts.append(f"{number(float(self.angle_deg) % 360.0, '°', 0)}°")
        return ", ".join(parts)

    def text(self, span: bool = False) -> str:
        """``"slice 7 (z 0.15 mm), winding 14, 263°"`` (with ``span``: ``"…, slices 3–12"``)."""
        parts = [self.slice_text(), self.roll_text()]
        if span:
            parts.append(self.span_text())
        return ", ".join(p for p in parts if p) or "—"


def finding_location(finding: Mapping[str, Any], result: Mapping[str, Any] | None = None,
                     nz: int | None = None) -> Location:
    """The :class:`Location` of a finding (heights need the result's voxel size)."""
    spacing = spacing_of(result or {})
    if nz is None and result is not None and result.get("shape_zyx"):
        nz = int(result["shape_zyx"][0])
    z = finding_slice(finding, nz)
    rng = finding_slice_range(finding)
    winding = finding.get("winding")
    angle = _finite(finding.get("angle_deg"))
    return Location(
        slice=z,
        z_mm=slice_z_mm(z, spacing[0]) if z is not None and spacing is not None else None,
        first_slice=rng[0] if rng else None,
        last_slice=rng[1] if rng else None,
        winding=int(winding) if winding is not None else None,
        angle_deg=angle,
    )


# ---------------------------------------------------------------------------- findings


def is_anatomy(finding: Mapping[str, Any]) -> bool:
    """An information finding that describes the cell's build (a tab window), not a defect."""
    return str(finding.get("kind") or "") == "uncoated_zone"


def finding_label(finding: Mapping[str, Any]) -> str:
    """What a finding is, for a person: ``"Cu collector bent"``, ``"Cathode sheet thinner"``."""
    det = str(finding.get("detector") or "")
    if det == "electrode_thickness":
        if is_anatomy(finding):
            return "Uncoated strip (tab window)"
        v = _finite(finding.get("value"))
        if v is not None and str(finding.get("unit")) == "%":
            return "Cathode sheet thinner" if v < 0 else "Cathode sheet thicker"
    if det == "can_metrology":
        return _CAN_LABELS.get(str(finding.get("metric") or ""), DETECTOR_LABELS[det])
    if det == "winding_quality":
        return _WINDING_LABELS.get(str(finding.get("kind") or ""), DETECTOR_LABELS[det])
    if det == "anode_overhang":
        v = _finite(finding.get("value"))
        if v is not None and v < 0:
            return "Cathode beyond the anode"
    if finding.get("second_opinion"):
        return DETECTOR_LABELS.get(det, _words(det)) + " (model's second opinion)"
    return DETECTOR_LABELS.get(det, _words(det))


def _display_scale(finding: Mapping[str, Any]) -> tuple[float, str]:
    """(factor, unit) a finding's value is shown in: a can's ovality (a ratio) in %."""
    if str(finding.get("detector")) == "can_metrology" and str(finding.get("metric")) == "ovality":
        return 100.0, "%"
    return 1.0, pretty_unit(finding.get("unit"))


def value_text(finding: Mapping[str, Any]) -> str:
    """A finding's value with its unit and, when known, ``± U`` (k = 2): ``"72 ± 9 µm"``."""
    scale, unit = _display_scale(finding)
    value = _finite(finding.get("value"))
    u = _finite(finding.get("uncertainty"))
    return quantity(None if value is None else value * scale, unit, None if u is None else u * scale)


def _area(value: object) -> str:
    return f"{number(value, 'mm²')} mm²"


def finding_sentence(finding: Mapping[str, Any], result: Mapping[str, Any] | None = None) -> str:
    """One sentence describing a finding from its fields, every number formatted here.

    Each area, length or value is named by what it is (e.g. the area beyond the review limit
    and the part of it beyond the fail limit), so no sentence states two numbers for one thing.
    """
    f = finding
    det = str(f.get("detector") or "")
    result = result or {}
    k = f.get("winding")
    of_winding = f" of winding {k}" if k is not None else ""
    parts = int(f.get("parts") or 1)
    tail = f" (one defect seen in {parts} parts)" if parts > 1 else ""
    if det == "collector_deflection":
        signed = _finite(f.get("amplitude_signed_um"))
        direction = "" if signed is None else (" outwards" if signed > 0 else " inwards")
        text = f"Cu collector{of_winding} bent {value_text(f)}{direction}"
        span, height = _finite(f.get("angular_span_deg")), _finite(f.get("height_span_um") or f.get("height_um"))
        if span is not None and height is not None:
            text += f" over {number(span, '°', 0)}° of arc × {number(height / 1000.0, 'mm')} mm of height"
        gap = _finite(f.get("cu_al_gap_min_um"))
        if gap is not None:
            text += f"; Cu–Al gap down to {quantity(gap, 'µm')} there"
        return text + tail
    if det == "electrode_thickness" and is_anatomy(f):
        return (f"Cathode strip{of_winding} without coating (tab window): {quantity(f.get('arc_length_mm'), 'mm')} "
                f"of arc over {quantity(f.get('height_mm'), 'mm')} of height; anatomy, not measured")
    if det == "electrode_thickness":
        v = _finite(f.get("value")) or 0.0
        word = "thinner" if v < 0 else "thicker"
        lim = (result.get("limits") or {}).get("cathode_thickness_max_deviation_pct") or {}
        review, fail = _finite(lim.get("review")), _finite(lim.get("fail"))
        median = _finite((result.get("metrics") or {}).get("cathode_sheet_thickness_median_um"))
        median_text = f" ({quantity(median, 'µm')})" if median is not None else ""
        beyond = f" more than {number(review, '%')} %" if review is not None else ""
        text = (f"Cathode sheet{of_winding}: {_area(f.get('area_mm2'))}{beyond} {word} than the cell "
                f"median{median_text}, {number(abs(v), '%')} % on average")
        fail_area = _finite(f.get("area_beyond_fail_mm2"))
        if fail is not None and fail_area is not None and fail_area > 0:
            text += f"; {_area(fail_area)} of it more than {number(fail, '%')} % {word}"
        return text + tail
    if det == "delamination":
        side = f" {f['side']}" if f.get("side") else ""
        dims = [_finite(f.get(key)) for key in ("arc_length_um", "height_um", "thickness_um")]
        text = f"Void in the{side} cathode coating{of_winding}: {value_text(f)}"
        if all(d is not None for d in dims):
            text += ", " + " × ".join(quantity(d, "µm") for d in dims) + " (along the arc × height × thickness)"
        depth = _finite(f.get("depth_from_al_um"))
        if depth is not None:
            text += f", {quantity(depth, 'µm')} from the Al foil"
        return text + tail
    if det == "foreign_particle":
        text = f"Dense foreign particle, equivalent diameter {value_text(f)}"
        vol = _finite(f.get("volume_mm3"))
        if vol is not None:
            text += f" ({quantity(vol, 'mm³')})"
        return text + tail
    if det == "can_metrology":
        n = len(f.get("slices") or [])
        label = str(f.get("metric") or "value")
        text = f"Can {label} {value_text(f)}"
        rng = finding_slice_range(f)
        if rng is not None and n:
            text += f", beyond the limit in {n} slice{'s' if n != 1 else ''} ({rng[0]}–{rng[1]})"
        return text + tail
    # Detectors without a template here: their own sentence (numbers as they wrote them).
    message = str(f.get("message") or "").strip()
    return (message[:1].upper() + message[1:]) if message else finding_label(f)


def ordered_findings(findings: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Findings worst first: severity, then the detector that speaks for a place, then size."""
    from core.findings import speaks_for

    def rank(item: tuple[int, Mapping[str, Any]]) -> tuple[int, int, int, float, int]:
        i, f = item
        det = str(f.get("detector"))
        return (SEVERITY_RANK.get(str(f.get("severity")), 3), 1 if is_anatomy(f) else 0, speaks_for(det),
                -abs(_finite(f.get("value")) or 0.0), i)

    return [f for _, f in sorted(enumerate(f for f in findings if isinstance(f, Mapping)), key=rank)]


def worst_finding(findings: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The finding the viewer and the report open on: the first of :func:`ordered_findings`
    that is a defect (a review or fail), else None."""
    for f in ordered_findings(findings):
        if f.get("severity") in ("fail", "review"):
            return f
    return None


# ---------------------------------------------------------------------------- limits

#: The recipe limits of a result (``result["limits"]``), the detector each judges, what is
#: compared with it and how that quantity is defined — once, for the report and the GUI: the
#: detectors' declared limits (:class:`core.detectors.spec.Limit`).
CHECKS: Mapping[str, tuple[str, str, str]] = _FromDetectors(
    lambda specs: {key: (s.name, lim.label, lim.definition) for s in specs for key, lim in s.limits.items()})
#: The checks-table row (label, definition) of each detector that reports no limit.
_OTHER_CHECKS: Mapping[str, tuple[str, str]] = _FromDetectors(
    lambda specs: {s.name: s.check for s in specs if not s.limits and s.check is not None})


@dataclass
class CheckRow:
    """One rule of the recipe as shown: the judged quantity, its limits and the outcome."""

    key: str
    detector: str
    label: str
    definition: str
    value: str
    review: str
    fail: str
    status: str
    finding_id: str | None = None
    raw_value: float | None = None
    unit: str = ""


def _limit_text(level: object, unit: str, lower: bool, sign: str | None = None) -> str:
    x = _finite(level)
    if x is None:
        return "—"
    return f"{sign or ('≤' if lower else '≥')} {quantity(x, unit, limit=True)}".replace("± ", "±")


def _rule_limit(finding: Mapping[str, Any]) -> tuple[str, float, str] | None:
    """(comparator, limit, unit) from the end of a finding's rule text, e.g. ``"≥ 75 µm"``."""
    m = re.search(r"(≥|≤|>|<)\s*(-?[0-9.]+)\s*([^\s()]*)\s*(\([^)]*\))?\s*$", str(finding.get("rule") or ""))
    if not m:
        return None
    try:
        return m.group(1), float(m.group(2)), m.group(3)
    except ValueError:
        return None


def _worst_of(findings: Sequence[Mapping[str, Any]], detector: str) -> list[Mapping[str, Any]]:
    own = [f for f in findings if f.get("detector") == detector and not is_anatomy(f)]
    return ordered_findings(own)


def _status(members: Sequence[Mapping[str, Any]]) -> str:
    sev = {str(f.get("severity")) for f in members}
    return "FAIL" if "fail" in sev else ("REVIEW" if "review" in sev else "OK")


def check_rows(result: Mapping[str, Any]) -> list[CheckRow]:
    """The recipe's rules against this cell: one row per limit of the result, then one per
    other detector that reported a review or fail. The value is the worst finding of the
    rule's detector (the quantity the rule judges, see :data:`CHECKS`), with its id."""
    findings = [f for f in (result.get("findings") or []) if isinstance(f, Mapping)]
    limits = result.get("limits") or {}
    rows = []
    for key, (det, label, definition) in CHECKS.items():
        lim = limits.get(key)
        if not isinstance(lim, Mapping):
            continue
        unit = pretty_unit(lim.get("unit"))
        review, fail = lim.get("review"), lim.get("fail")
        lower = _finite(review) is not None and _finite(fail) is not None and float(fail) < float(review)
        members = _worst_of(findings, det)
        if members:
            worst = max(members, key=lambda f: (-SEVERITY_RANK.get(str(f.get("severity")), 3),
                                                abs(_finite(f.get("value")) or 0.0)))
            value, fid, raw = value_text(worst), str(worst.get("id")), _finite(worst.get("value"))
        else:
            value, fid, raw = "none found", None, None
        suffix, sign = "", None
        if key == "cathode_thickness_max_deviation_pct":
            area = _rule_area(members)
            suffix = f", ≥ {quantity(area, 'mm²', limit=True)}" if area is not None else ""
            sign = "±"
        rows.append(CheckRow(key=key, detector=det, label=label, definition=definition, value=value,
                             review=_limit_text(review, unit, lower, sign) + (suffix if review is not None else ""),
                             fail=_limit_text(fail, unit, lower, sign) + (suffix if fail is not None else ""),
                             status=_status(members), finding_id=fid, raw_value=raw, unit=unit))
    for det, (label, definition) in _OTHER_CHECKS.items():
        members = [f for f in _worst_of(findings, det) if f.get("severity") in ("fail", "review")]
        if not members:
            continue
        worst = members[0]
        lim = _rule_limit(worst)
        scale, unit = _display_scale(worst)
        text = "—"
        if lim is not None:
            text = f"{lim[0]} {quantity(lim[1] * scale, unit or lim[2], limit=True)}"
        rows.append(CheckRow(key=det, detector=det, label=finding_label(worst) if det == "can_metrology" else label,
                             definition=definition, value=value_text(worst),
                             review=text if worst.get("severity") == "review" else "—",
                             fail=text if worst.get("severity") == "fail" else "—", status=_status(members),
                             finding_id=str(worst.get("id")), raw_value=_finite(worst.get("value")), unit=unit))
    return rows


def _rule_area(findings: Sequence[Mapping[str, Any]]) -> float | None:
    for f in findings:
        m = re.search(r"≥\s*([0-9.]+)\s*mm²\s*$", str(f.get("rule") or ""))
        if m:
            return float(m.group(1))
    return None


def limit_phrase(finding: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """The limit a finding reached, in words: ``"fail at ≥ 60 µm"``."""
    sev = str(finding.get("severity"))
    if sev not in ("fail", "review"):
        return ""
    det = str(finding.get("detector"))
    for key, (d, _, _) in CHECKS.items():
        if d != det:
            continue
        lim = (result.get("limits") or {}).get(key)
        if isinstance(lim, Mapping) and lim.get(sev) is not None:
            unit = pretty_unit(lim.get("unit"))
            lower = _finite(lim.get("review")) is not None and _finite(lim.get("fail")) is not None and \
                float(lim["fail"]) < float(lim["review"])
            if det == "electrode_thickness":
                area = _rule_area([finding])
                return (f"{sev} at {_limit_text(lim.get(sev), unit, lower, '±')}"
                        + (f" over ≥ {quantity(area, 'mm²', limit=True)}" if area is not None else ""))
            return f"{sev} at {_limit_text(lim.get(sev), unit, lower)}"
    lim = _rule_limit(finding)
    if lim is None:
        return sev
    scale, unit = _display_scale(finding)
    return f"{sev} at {lim[0]} {quantity(lim[1] * scale, unit or lim[2], limit=True)}"


# ---------------------------------------------------------------------------- reasons


@dataclass
class Reason:
    """Why the verdict is what it is: one place (a finding and what else saw it) or a note."""

    severity: str
    text: str
    finding_id: str | None = None
    label: str = ""
    value: str = ""
    limit: str = ""
    where: str = ""
    sentence: str = ""
    also: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for a terminal or a list: ``"FAIL C1 Cu collector bent 72 µm (fail at ≥ 60 µm) …"``."""
        return self.text


def _groups(findings: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Findings of one place together (``related``/``primary``), worst place first."""
    by_id = {str(f.get("id")): f for f in findings}
    seen: set[str] = set()
    groups = []
    for f in ordered_findings(findings):
        fid = str(f.get("id"))
        if fid in seen:
            continue
        members = [f] + [by_id[r] for r in (f.get("related") or []) if r in by_id and r not in seen]
        # The place is named by its primary finding (core.findings.link_related: a buckle speaks
        # for the deflections inside it), not by whichever sorts first.
        head = next((m for m in members if m.get("primary")), f)
        members = [head] + [m for m in members if m is not head]
        seen.update(str(m.get("id")) for m in members)
        groups.append(members)
    return groups


def reasons(result: Mapping[str, Any]) -> list[Reason]:
    """The verdict's reasons as shown: one per place with a review or fail finding (named by
    its worst finding, linked findings named once), then the result's other reasons (recipe
    mismatch, nothing inspected, PASS)."""
    findings = [f for f in (result.get("findings") or []) if isinstance(f, Mapping)]
    out = []
    for members in _groups(findings):
        head = members[0]
        sev = str(head.get("severity"))
        if sev not in ("fail", "review"):
            continue
        loc = finding_location(head, result)
        also = [str(m.get("id")) for m in members[1:]]
        label, value, limit = finding_label(head), value_text(head), limit_phrase(head, result)
        where = loc.text()
        text = f"{SEVERITY_WORD[sev]}: {label} {value} ({limit}), {where} — finding {head.get('id')}"
        if also:
            text += f"; the same place also seen as {', '.join(also)}"
        out.append(Reason(severity=sev, text=text, finding_id=str(head.get("id")), label=label, value=value,
                          limit=limit, where=where, sentence=finding_sentence(head, result), also=also))
    for text in result.get("reasons") or []:
        text = str(text)
        if re.search(r"\(finding [^)]+\)", text):
            continue  # said above, from the finding's fields
        level = text.split(":", 1)[0].strip().lower()
        out.append(Reason(severity=level if level in ("fail", "review", "pass") else "info",
                          text=text, sentence=text.split(":", 1)[-1].strip()))
    return out


# ---------------------------------------------------------------------------- metrics

# name → (label, unit as shown, factor from the stored value to the shown one): the metrics the
# detectors declare with a label (:class:`core.detectors.spec.Metric`), in their order.
_METRICS: Mapping[str, tuple[str, str, float]] = _FromDetectors(
    lambda specs: {key: (m.label, m.unit, m.factor) for s in specs for key, m in s.metrics.items() if m.label})
_WORDS = {"cu": "Cu", "al": "Al", "cv": "CV", "rms": "RMS", "nmc": "NMC", "roi": "ROI", "id": "ID"}


def _words(name: str) -> str:
    tokens = [t for t in str(name).split("_") if t]
    out = []
    for t in tokens:
        if re.fullmatch(r"p[0-9]+", t):
            out.append(f"{t[1:]}th percentile")
        else:
            out.append(_WORDS.get(t.lower(), t))
    text = " ".join(out)
    text = text.replace("Cu Al", "Cu–Al")
    return text[:1].upper() + text[1:] if text else str(name)


def metric_label(name: str) -> tuple[str, str]:
    """Human label and unit of a metric key: ``cu_al_gap_mean_um`` → ("Cu–Al gap, mean", "µm")."""
    if name in _METRICS:
        label, unit, _ = _METRICS[name]
        return label, unit
    if name.endswith("_z_px"):
        return _words(name[: -len("_z_px")]) + ", height", "mm"
    parts = name.split("_")
    unit = ""
    if len(parts) > 1 and parts[-1].lower() in _UNITS:
        unit = pretty_unit(parts[-1])
        parts = parts[:-1]
    return _words("_".join(parts)), unit


def metric_text(name: str, value: object, result: Mapping[str, Any] | None = None) -> str:
    """A metric's value as shown, with its unit and ``± U`` when the result gives it."""
    label, unit = metric_label(name)
    if isinstance(value, bool) or isinstance(value, int) and not name.endswith("_z_px"):
        return number(value)
    x = _finite(value)
    if x is None:
        return "—"
    if name.endswith("_z_px"):
        spacing = spacing_of(result or {})
        if spacing is None:
            return f"voxel z {number(x)}"
        return f"{quantity(slice_z_mm(x, spacing[0]), 'mm')} (slice {round_half_up(x)})"
    factor = _METRICS.get(name, ("", "", 1.0))[2]
    u = _finite(((result or {}).get("uncertainty") or {}).get("metrics", {}).get(name))
    return quantity(x * factor, unit, None if u is None else u * factor)


def measurement_rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every metric of the result as (label, value with unit): the known ones grouped by what
    they measure (one order, whichever order the result was stored in), then any others by name."""
    metrics = result.get("metrics") or {}
    known = [name for name in _METRICS if name in metrics]
    others = sorted(name for name in metrics if name not in _METRICS)
    return [(metric_label(name)[0], metric_text(name, metrics[name], result)) for name in known + others]


# ---------------------------------------------------------------------------- ROI plans


def roi_plan_rows(plans: Sequence[Mapping[str, Any]], result: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """ROI local-tomography requests (rows of :func:`core.roi.queue.list_requests`, with their
    parsed ``plan``) as table rows: id, status, findings, where, field of view, voxel, time."""
    spacing = spacing_of(result or {})
    rows = []
    for p in plans:
        plan = p.get("plan") if isinstance(p.get("plan"), Mapping) else p
        where = []
        centre = plan.get("center_zyx_px")
        if centre is not None and len(centre) == 3 and _finite(centre[0]) is not None:
            z = round_half_up(float(centre[0]))
            where.append(f"slice {z}" + (f" (z {number(slice_z_mm(z, spacing[0]), 'mm')} mm)" if spacing else ""))
        polar = plan.get("center_polar") or {}
        if _finite(polar.get("radius_mm")) is not None:
            where.append(f"r {number(polar['radius_mm'], 'mm')} mm, {number(polar.get('angle_deg'), '°', 0)}°")
        fov = plan.get("fov_mm") or {}
        rows.append({
            "id": str(p.get("id") if p.get("id") is not None else plan.get("label", "")),
            "status": str(p.get("status") or "planned"),
            "findings": ", ".join(str(x) for x in (plan.get("finding_ids") or [])) or "—",
            "where": ", ".join(where) or "—",
            "fov": (f"Ø {number(fov.get('diameter'), 'mm')} × {number(fov.get('height'), 'mm')} mm"
                    if fov else "—"),
            "voxel": quantity(plan.get("voxel_um"), "µm"),
            "scan": (f"{plan.get('objective') or '—'}, {number(plan.get('projections'))} projections, "
                     f"{quantity(plan.get('estimated_minutes'), 'min')}"),
            "priority": str(p.get("priority") or plan.get("priority") or "—"),
        })
    return rows


# ---------------------------------------------------------------------------- sections

#: A vertical section is drawn at least this tall relative to its width (height exaggerated).
MIN_SECTION_ASPECT = 0.6
#: Fewer slices than this show nothing in section: the figure is left out.
MIN_SECTION_SLICES = 3


def section_exaggeration(height_mm: float, width_mm: float) -> float:
    """How much a vertical section's height is stretched: 1, or the smallest 1, 2, 5 × 10^k
    that makes it at least :data:`MIN_SECTION_ASPECT` of its width (the report and the GUI)."""
    if height_mm <= 0 or width_mm <= 0 or height_mm >= MIN_SECTION_ASPECT * width_mm:
        return 1.0
    need = MIN_SECTION_ASPECT * width_mm / height_mm
    exp = math.floor(math.log10(need))
    for m in (1, 2, 5, 10):
        if m * 10**exp >= need:
            return float(m * 10**exp)
    return float(10 ** (exp + 1))
