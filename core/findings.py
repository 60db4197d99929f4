"""One physical defect, one finding: merging the parts of a defect, linking what two detectors see.

Detectors work slice by slice, sheet by sheet, and (for large volumes) chunk by chunk; one
physical defect can reach the verdict as several parts: a void split by a bridge of brighter
coating, a buckle whose departure hovers about the limit, a thin patch cut by a chunk
boundary. :func:`merge_parts` joins the findings of one detector that lie within the
detector's merge gap of each other (a physical distance between their boxes, in µm) on the
same sheet; the whole defect is then measured as a whole (a void's volumes add up and the
sum is judged again; otherwise the worst part's value stands) and carries its full extent.

Two detectors may see the same defect: a void darkens its sheet (a thin-sheet patch), a
buckle moves a collector away from its neighbours (a deflection). :func:`link_related`
groups findings of different detectors at the same place; each names the others in
``related``, and :func:`reasons_by_group` gives the verdict one reason per group, from its
most severe finding.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from core.detectors import SPECS
from core.detectors.base import Finding

SEVERITY_RANK = {"fail": 0, "review": 1, "info": 2}
# Findings of different detectors within this distance (µm) of each other describe one place.
LINK_GAP_UM = 300.0


def speaks_for(detector: str) -> int:
    """Rank of a detector when it and others describe one place with equal severity (lower
    speaks first; :attr:`core.detectors.spec.DetectorSpec.speaks_for`)."""
    spec = SPECS.get(detector)
    return spec.speaks_for if spec is not None else 1000


def box_gap_um(a: tuple[int, ...], b: tuple[int, ...], spacing_um: tuple[float, float, float]) -> float:
    """Distance (µm) between two boxes (z0, y0, x0, z1, y1, x1; end exclusive); 0 when they touch."""
    gaps = []
    for axis in range(3):
        lo_a, hi_a, lo_b, hi_b = a[axis], a[axis + 3], b[axis], b[axis + 3]
        gap_vox = max(0, lo_a - hi_b, lo_b - hi_a)
        gaps.append(gap_vox * spacing_um[axis])
    return math.hypot(*gaps)


def _root(parent: list[int], i: int) -> int:
    """Union–find: the representative of ``i`` (with path halving)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _same_layer(a: Finding, b: Finding, gap_um: float) -> bool:
    """Parts on one physical layer: the same winding, or the next one where the layer's ray
    index changes at the seam (both parts marked ``at_seam``, or their boxes overlapping)."""
    spec = SPECS.get(a.detector)
    if spec is None or not spec.layered or a.winding is None or b.winding is None:
        return True
    if a.winding == b.winding:
        return True
    if abs(a.winding - b.winding) != 1:
        return False
    return gap_um == 0.0 or (bool((a.extra or {}).get("at_seam")) and bool((b.extra or {}).get("at_seam")))


def _union_box(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(min(x, y) for x, y in zip(a[:3], b[:3], strict=True)) + tuple(
        max(x, y) for x, y in zip(a[3:], b[3:], strict=True))


def merge_parts(findings: list[Finding], spacing_um: tuple[float, float, float],
                rules: dict[str, dict[str, float]] | None = None,
                judge_void: Callable[[float, float, dict[str, float]], tuple[str, str]] | None = None) -> list[Finding]:
    """Join the parts of one defect (same detector, same layer, within the merge gap).

    Parameters
    ----------
    findings : list of Finding
    spacing_um : (z, y, x)
        Voxel size of the volume the findings' boxes index.
    rules : dict, optional
        The recipe's rules per detector (``merge_gap_um`` overrides the one its declaration
        gives; the delamination rules judge a joined void).
    judge_void : callable(volume_mm3, length_um, rules) -> (severity, rule), optional
        How a whole void is judged (:func:`core.detectors.delamination.judge_void`).

    Returns
    -------
    list of Finding
        Merged findings carry ``parts`` (how many were joined) and their full extent:
        ``z_range_px``, ``height_um`` and, where the parts knew it, ``arc_length_um``.
    """
    rules = rules or {}
    groups: list[list[Finding]] = []
    for detector in dict.fromkeys(f.detector for f in findings):
        mine = [f for f in findings if f.detector == detector]
        spec = SPECS.get(detector)
        declared = spec.merge_gap_um if spec is not None and spec.merge_gap_um is not None else -1.0
        gap = float(rules.get(detector, {}).get("merge_gap_um", declared))
        parent = list(range(len(mine)))
        if gap >= 0:
            for i in range(len(mine)):
                for j in range(i + 1, len(mine)):
                    a, b = mine[i], mine[j]
                    if a.unit != b.unit or (a.extra or {}).get("kind") != (b.extra or {}).get("kind"):
                        continue
                    d = box_gap_um(a.bbox_zyx_px, b.bbox_zyx_px, spacing_um)
                    if d <= gap and _same_layer(a, b, d):
                        parent[_root(parent, j)] = _root(parent, i)
        by_root: dict[int, list[Finding]] = {}
        for i, f in enumerate(mine):
            by_root.setdefault(_root(parent, i), []).append(f)
        groups.extend(by_root.values())
    out = []
    for parts in groups:
        whole = _join(parts, spacing_um, rules, judge_void) if len(parts) > 1 else parts[0]
        _set_extent(whole, spacing_um)
        out.append(whole)
    return out


def _join(parts: list[Finding], spacing_um: tuple[float, float, float], rules: dict[str, dict[str, float]],
          judge_void) -> Finding:
    """One finding from several parts of one defect."""
    parts = sorted(parts, key=lambda f: (SEVERITY_RANK.get(f.severity, 3), -abs(f.value)))
    whole = parts[0]
    box = whole.bbox_zyx_px
    for p in parts[1:]:
        box = _union_box(box, p.bbox_zyx_px)
    whole.bbox_zyx_px = box
    extra = dict(whole.extra or {})
    arcs = [float(p.extra.get("arc_length_um")) for p in parts if (p.extra or {}).get("arc_length_um") is not None]
    n_parts = sum(int((p.extra or {}).get("parts", 1)) for p in parts)
    extra["parts"] = n_parts
    height_um = (box[3] - box[0]) * spacing_um[0]
    if whole.detector == "delamination":
        volume = float(sum(p.value for p in parts))
        arc = max(arcs) if arcs else 0.0
        if whole.winding is not None and all(p.winding == whole.winding for p in parts):
            arc = float(sum(arcs)) if _disjoint_in_z_overlap(parts) else arc
        extra.update(arc_length_um=arc, height_um=height_um)
        if judge_void is not None:
            severity, rule = judge_void(volume, max(arc, height_um), rules.get("delamination", {}))
            if SEVERITY_RANK[severity] <= SEVERITY_RANK.get(whole.severity, 3):
                whole.severity, whole.rule = severity, rule
        whole.message = re.sub(r"[0-9.]+ mm³, [0-9]+ µm × [0-9]+ µm",
                               f"{volume:.4f} mm³, {arc:.0f} µm × {height_um:.0f} µm", whole.message)
        whole.value = volume
    else:
        if arcs:
            extra["arc_length_um"] = max(arcs)
        for p in parts[1:]:  # the worst part's severity stands for the whole (parts sorted)
            if SEVERITY_RANK.get(p.severity, 3) < SEVERITY_RANK.get(whole.severity, 3):
                whole.severity, whole.rule = p.severity, p.rule
        for key in ("area_mm2", "area_beyond_fail_mm2"):
            if all(key in (p.extra or {}) for p in parts):
                extra[key] = float(sum(p.extra[key] for p in parts))
    whole.message = re.sub(r" \(one defect seen in [0-9]+ parts\)$", "", whole.message)
    whole.message += f" (one defect seen in {n_parts} parts)"
    whole.extra = extra
    return whole


def _disjoint_in_z_overlap(parts: list[Finding]) -> bool:
    """True when the parts lie side by side along the arc (their slice ranges overlap)."""
    return all(a.bbox_zyx_px[0] < b.bbox_zyx_px[3] and b.bbox_zyx_px[0] < a.bbox_zyx_px[3]
               for i, a in enumerate(parts) for b in parts[i + 1:])


def _set_extent(f: Finding, spacing_um: tuple[float, float, float]) -> None:
    """The finding's full extent along the axis (slices, µm) in its extras."""
    z0, z1 = int(f.bbox_zyx_px[0]), int(f.bbox_zyx_px[3])
    extra = dict(f.extra or {})
    extra["z_range_px"] = [z0, max(z0, z1 - 1)]
    extra.setdefault("height_um", float((z1 - z0) * spacing_um[0]))
    f.extra = extra


def link_related(findings: list[dict[str, Any]], spacing_um: tuple[float, float, float],
                 gap_um: float = LINK_GAP_UM) -> list[list[int]]:
    """Group findings (result dicts with ids) of different detectors at one place.

    Two findings of different detectors are at one place when their boxes are within
    ``gap_um`` of each other and, when both name a winding, the windings differ by at most
    one. Each finding of a group of two or more gets ``related`` (the other members' ids)
    and the group's first member (its most severe; see :func:`speaks_for`) gets
    ``primary: true``. Information findings (anatomy, measurements) are not linked.

    Returns
    -------
    list of list of int
        The groups, as indices into ``findings``, primary first.
    """
    n = len(findings)
    parent = list(range(n))
    judged = [i for i, f in enumerate(findings) if f.get("severity") in ("fail", "review")]
    for ii, i in enumerate(judged):
        for j in judged[ii + 1:]:
            a, b = findings[i], findings[j]
            if a["detector"] == b["detector"]:
                continue
            ka, kb = a.get("winding"), b.get("winding")
            if ka is not None and kb is not None and abs(int(ka) - int(kb)) > 1:
                continue
            if box_gap_um(tuple(a["bbox_zyx_px"]), tuple(b["bbox_zyx_px"]), spacing_um) <= gap_um:
                parent[_root(parent, j)] = _root(parent, i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(_root(parent, i), []).append(i)

    def rank(i: int) -> tuple[int, int, float]:
        f = findings[i]
        det = f["detector"]
        return SEVERITY_RANK.get(f["severity"], 3), speaks_for(det), -abs(float(f.get("value") or 0.0))

    out = []
    for members in groups.values():
        members.sort(key=rank)
        _buckle_first(findings, members)
        if len(members) > 1:
            for i in members:
                findings[i]["related"] = [findings[j]["id"] for j in members if j != i]
            findings[members[0]]["primary"] = True
        out.append(members)
    out.sort(key=lambda m: rank(m[0]))
    return out


def _buckle_first(findings: list[dict[str, Any]], members: list[int]) -> None:
    """Put a buckle ahead of the collector deflection that is part of it.

    Where several windings move together, a collector compared with its neighbours moves
    little (they moved too): a 0.6 mm buckle read 168 µm as a deflection and 0.6 mm as a
    departure from the roll's spiral. When the group's winding-quality departure, at the same
    severity, is at least 1.25 times its largest deflection, the buckle speaks for the place.
    """
    if len(members) < 2:
        return
    head = findings[members[0]]
    if head["detector"] != "collector_deflection":
        return
    for j, i in enumerate(members[1:], start=1):
        f = findings[i]
        if (f["detector"] == "winding_quality" and f["severity"] == head["severity"]
                and abs(float(f["value"])) >= 1.25 * abs(float(head["value"]))):
            members.insert(0, members.pop(j))
            return


def reasons_by_group(findings: list[dict[str, Any]], groups: list[list[int]]) -> list[str]:
    """One reason per place (group) with a review or fail finding: its most severe finding's
    rule and message, and the ids of what other detectors saw there."""
    reasons = []
    for members in groups:
        head = findings[members[0]]
        if head["severity"] not in ("fail", "review"):
            continue
        text = f"{head['severity'].upper()}: {head['rule']} — {head['message']} (finding {head['id']})"
        others = [findings[i]["id"] for i in members[1:]]
        if others:
            text += f"; the same place also seen as {', '.join(others)}"
        reasons.append(text)
    return reasons


# Metrics that count a detector's findings (information findings that describe anatomy, such
# as a tab window, are not defects and are not counted).
COUNTED_METRICS = {"void_count": "delamination", "collector_deflection_count": "collector_deflection",
                   "cathode_thickness_patch_count": "electrode_thickness", "foreign_particle_count": "foreign_particle",
                   "winding_quality_count": "winding_quality", "anode_overhang_count": "anode_overhang",
                   "can_metrology_count": "can_metrology"}


def recount_metrics(metrics: dict[str, Any], findings: list[Finding]) -> None:
    """Set the finding counts and the void totals from the findings as filed (parts joined),
    so that a result's metrics and its findings tell one story."""
    for key, detector in COUNTED_METRICS.items():
        if key in metrics:
            metrics[key] = sum(1 for f in findings if f.detector == detector
                               and (f.extra or {}).get("kind") != "uncoated_zone")
    voids = [f.value for f in findings if f.detector == "delamination"]
    if "void_total_volume_mm3" in metrics:
        metrics["void_total_volume_mm3"] = float(sum(voids))
    if "void_max_volume_mm3" in metrics:
        metrics["void_max_volume_mm3"] = float(max(voids)) if voids else None
