"""Planning ROI (local-tomography) scans from an inspection's FAIL and REVIEW findings.

Each finding's bounding box is converted to millimetres about the cell axis. Findings are
grouped greedily, most severe first: a finding joins a group when the union of the group's
boxes still fits the objective's field of view (a cylinder: the box's xy diagonal within the
FOV diameter, its height within the FOV height, both less a safety margin), so a set of
findings that one FOV can hold becomes one ROI. (Merging groups afterwards would gain
nothing: a group only grows, so two groups whose union fits would have been one already.)
A single finding larger than the FOV gets an ROI centred on its centroid, marked as not
covering it whole (``covers_findings: false``).

Sample coordinates: ``center_mm = [z, y, x]`` with ``z`` the height above the first slice
of the overview volume (the reference) and ``y``, ``x`` the offsets from the cell axis
(image rows and columns, i.e. ``y`` grows downwards in a slice); ``center_polar`` gives the
same point as radius from the axis, image polar angle ``atan2(y, x)`` in degrees [0, 360)
and height. The overview voxel position is ``center_zyx_px``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.errors import InputError
from core.roi.objectives import Objective

#: Priority per severity: 1 is the most urgent.
PRIORITY = {"fail": 1, "review": 2, "info": 3}
#: Severities that get an ROI scan by default.
PLANNED_SEVERITIES: tuple[str, ...] = ("fail", "review")


@dataclass
class RoiPlan:
    """One proposed ROI scan.

    Attributes
    ----------
    id : int or str
        The log's ``roi_requests.id`` once filed; the plan label (``R1`` …) before.
    label : str
        ``R1``, ``R2`` … in priority order within the plan.
    cell_id : str
        The cell.
    center_zyx_px : list of float
        ROI centre in overview voxels (z, y, x).
    center_mm : list of float
        ROI centre in sample coordinates (z height above slice 0, y and x from the axis), mm.
    center_polar : dict
        ``radius_mm``, ``angle_deg`` (image polar angle), ``height_mm``.
    fov_mm : dict
        ``diameter`` and ``height`` of the field of view.
    voxel_um : float
        ROI voxel size.
    objective : str
        Objective name.
    projections : int
        Projections of the scan.
    exposure_s : float
        Exposure per projection.
    estimated_minutes : float
        Scan duration.
    finding_ids : list of str
        Findings the ROI covers, most severe first.
    priority : int
        1 (a FAIL finding inside) or 2 (REVIEW only).
    severity : str
        Worst severity inside.
    extent_mm : dict
        Size of the findings' union box (``z``, ``y``, ``x``) in mm.
    covers_findings : bool
        Whether every finding's box fits inside the FOV.
    """

    id: int | str
    label: str
    cell_id: str
    center_zyx_px: list[float]
    center_mm: list[float]
    center_polar: dict[str, float]
    fov_mm: dict[str, float]
    voxel_um: float
    objective: str
    projections: int
    exposure_s: float
    estimated_minutes: float
    finding_ids: list[str]
    priority: int
    severity: str
    extent_mm: dict[str, float] = field(default_factory=dict)
    covers_findings: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the plan JSON's per-ROI entry)."""
        return asdict(self)


@dataclass
class _Box:
    """A box in sample millimetres: z (height), y, x (from the axis)."""

    lo: np.ndarray
    hi: np.ndarray

    def union(self, other: _Box) -> _Box:
        return _Box(np.minimum(self.lo, other.lo), np.maximum(self.hi, other.hi))

    @property
    def size(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def center(self) -> np.ndarray:
        return (self.lo + self.hi) / 2.0


@dataclass
class _Group:
    box: _Box
    findings: list[dict[str, Any]]
    partial: bool = False
    anchor_mm: np.ndarray | None = None


def frame_of(result: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Spacing (z, y, x) in µm and the cell axis (y, x) in voxels of an inspection result.

    Parameters
    ----------
    result : mapping
        Inspection result (``cellqc.inspection/1``).

    Returns
    -------
    spacing_um : numpy.ndarray
        (z, y, x).
    axis_yx_px : numpy.ndarray
        (y, x); the image centre when the result has no geometry.

    Raises
    ------
    core.errors.InputError
        No usable voxel size.
    """
    spacing = result.get("spacing_um")
    if spacing is None:
        v = result.get("voxel_size_um")
        spacing = [v, v, v] if v is not None else None
    try:
        sp = np.asarray(spacing, dtype=float).reshape(3)
    except (TypeError, ValueError):
        raise InputError("inspection result", "has no voxel size (spacing_um / voxel_size_um)") from None
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError("inspection result", f"voxel size {spacing!r} is not positive")
    axis = (result.get("geometry") or {}).get("axis_center_yx_px")
    if axis is not None and len(axis) == 2 and all(a is not None for a in axis):
        ax = np.asarray(axis, dtype=float)
    else:
        shape = result.get("shape_zyx") or [0, 1, 1]
        ax = (np.asarray(shape[1:3], dtype=float) - 1.0) / 2.0
    return sp, ax


def px_to_mm(zyx_px: Sequence[float], spacing_um: np.ndarray, axis_yx_px: np.ndarray) -> np.ndarray:
    """Overview voxel (z, y, x) → sample mm (height, y and x from the axis)."""
    p = np.asarray(zyx_px, dtype=float)
    rel = p - np.array([0.0, axis_yx_px[0], axis_yx_px[1]])
    return rel * spacing_um / 1000.0


def mm_to_px(zyx_mm: Sequence[float], spacing_um: np.ndarray, axis_yx_px: np.ndarray) -> np.ndarray:
    """Sample mm (height, y and x from the axis) → overview voxel (z, y, x)."""
    p = np.asarray(zyx_mm, dtype=float) * 1000.0 / spacing_um
    return p + np.array([0.0, axis_yx_px[0], axis_yx_px[1]])


def _finding_box(finding: Mapping[str, Any], spacing: np.ndarray, axis: np.ndarray) -> _Box:
    centroid = finding.get("centroid_zyx_px")
    bbox = finding.get("bbox_zyx_px")
    if bbox is not None and len(bbox) == 6:
        lo = px_to_mm(bbox[:3], spacing, axis)
        hi = px_to_mm(bbox[3:], spacing, axis)
        return _Box(np.minimum(lo, hi), np.maximum(lo, hi))
    if centroid is None or len(centroid) != 3:
        raise InputError("inspection result", f"finding {finding.get('id')!r} has no position")
    c = px_to_mm(centroid, spacing, axis)
    return _Box(c.copy(), c.copy())


def _fits(box: _Box, diameter: float, height: float) -> bool:
    size = box.size
    return bool(math.hypot(size[1], size[2]) <= diameter and size[0] <= height)


def _rank(finding: Mapping[str, Any]) -> tuple[int, float]:
    value = finding.get("value")
    magnitude = abs(float(value)) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0
    return PRIORITY.get(str(finding.get("severity")), 9), -magnitude


def plan_rois(
    result: Mapping[str, Any],
    objective: Objective,
    *,
    severities: Sequence[str] = PLANNED_SEVERITIES,
    margin: float = 0.1,
) -> list[RoiPlan]:
    """Propose ROI scans covering an inspection's findings.

    Parameters
    ----------
    result : mapping
        Inspection result (``cellqc.inspection/1``) with findings, voxel size and geometry.
    objective : Objective
        Objective of the ROI scans (FOV, voxel size, projections, exposure).
    severities : sequence of str
        Which findings get scans (default FAIL and REVIEW).
    margin : float
        Fraction of the FOV kept free around the findings (0 ≤ margin < 1).

    Returns
    -------
    list of RoiPlan
        Most urgent first; ``id`` and ``label`` are ``R1``, ``R2`` … until the plan is filed.

    Raises
    ------
    core.errors.InputError
        The result lacks a voxel size or a finding lacks a position.
    """
    if not 0.0 <= margin < 1.0:
        raise InputError("--margin", f"must be in [0, 1), got {margin}")
    spacing, axis = frame_of(result)
    findings = [f for f in (result.get("findings") or []) if str(f.get("severity")) in severities]
    findings.sort(key=_rank)
    diameter = objective.fov_diameter_mm * (1.0 - margin)
    height = objective.fov_height_mm * (1.0 - margin)

    groups: list[_Group] = []
    for finding in findings:
        box = _finding_box(finding, spacing, axis)
        if not _fits(box, diameter, height):
            centroid = finding.get("centroid_zyx_px")
            anchor = px_to_mm(centroid, spacing, axis) if centroid is not None else box.center
            groups.append(_Group(box, [dict(finding)], partial=True, anchor_mm=anchor))
            continue
        for group in groups:
            if group.partial:
                continue
            union = group.box.union(box)
            if _fits(union, diameter, height):
                group.box = union
                group.findings.append(dict(finding))
                break
        else:
            groups.append(_Group(box, [dict(finding)]))

    def group_key(g: _Group) -> tuple[int, float]:
        return _rank(g.findings[0])

    groups.sort(key=group_key)
    cell_id = str(result.get("cell_id") or "")
    plans: list[RoiPlan] = []
    for n, group in enumerate(groups, start=1):
        center_mm = group.anchor_mm if group.partial and group.anchor_mm is not None else group.box.center
        center_px = mm_to_px(center_mm, spacing, axis)
        severity = str(group.findings[0].get("severity"))
        label = f"R{n}"
        plans.append(
            RoiPlan(
                id=label,
                label=label,
                cell_id=cell_id,
                center_zyx_px=[round(float(v), 2) for v in center_px],
                center_mm=[round(float(v), 4) for v in center_mm],
                center_polar={
                    "radius_mm": round(float(math.hypot(center_mm[1], center_mm[2])), 4),
                    "angle_deg": round(float(math.degrees(math.atan2(center_mm[1], center_mm[2])) % 360.0), 2),
                    "height_mm": round(float(center_mm[0]), 4),
                },
                fov_mm={"diameter": objective.fov_diameter_mm, "height": objective.fov_height_mm},
                voxel_um=objective.voxel_um,
                objective=objective.name,
                projections=objective.projections,
                exposure_s=objective.exposure_s,
                estimated_minutes=round(objective.estimated_minutes, 1),
                finding_ids=[str(f.get("id")) for f in group.findings],
                priority=PRIORITY.get(severity, 9),
                severity=severity,
                extent_mm={k: round(float(v), 4) for k, v in zip("zyx", group.box.size, strict=True)},
                covers_findings=not group.partial,
            )
        )
    return plans


def plan_document(
    result: Mapping[str, Any],
    plans: Sequence[RoiPlan],
    objective: Objective,
    *,
    inspection_id: int | None = None,
) -> dict[str, Any]:
    """The plan JSON: schema ``cellqc.roi-plan/1``.

    Parameters
    ----------
    result : mapping
        The inspection result planned from.
    plans : sequence of RoiPlan
        From :func:`plan_rois` (ids filled in once filed).
    objective : Objective
        The objective used.
    inspection_id : int, optional
        The inspection in the log.

    Returns
    -------
    dict
        ``schema``, ``cell_id``, ``inspection_id``, ``objective`` (the table row),
        ``overview`` (voxel size, shape, axis), ``total_minutes`` and ``rois``.
    """
    spacing, axis = frame_of(result)
    return {
        "schema": "cellqc.roi-plan/1",
        "cell_id": result.get("cell_id"),
        "inspection_id": inspection_id,
        "verdict": result.get("verdict"),
        "objective": objective.to_dict(),
        "overview": {
            "spacing_um": [float(s) for s in spacing],
            "shape_zyx": result.get("shape_zyx"),
            "axis_center_yx_px": [float(a) for a in axis],
            "source": result.get("source"),
        },
        "total_minutes": round(sum(p.estimated_minutes for p in plans), 1),
        "rois": [p.to_dict() for p in plans],
    }
