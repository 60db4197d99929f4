"""Bringing an ROI volume back: read it, place it in the overview, attach it to its request."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from core.errors import InputError
from core.roi.queue import attach_volume, get_request
from core.roi.register import Registration, register_roi


def import_roi_volume(
    db: Database,
    roi_id: int,
    volume_path: str | os.PathLike[str],
    *,
    voxel_size: Any = None,
    overview_path: str | os.PathLike[str] | None = None,
    refine: bool = True,
    search_px: float = 8.0,
    actor: str | None = None,
) -> dict[str, Any]:
    """Attach a reconstructed ROI volume to its request, registered against the overview.

    The position starts from the plan's centre; when the overview volume can be read
    (``overview_path``, else the ``source`` recorded with the plan) and ``refine`` is on,
    it is refined by normalised cross-correlation at the overview's voxel size.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    roi_id : int
        ``roi_requests.id``.
    volume_path : str or os.PathLike
        The ROI reconstruction (any format :func:`core.io.read_volume` reads).
    voxel_size : float, str or sequence, optional
        µm; overrides the file's.
    overview_path : str or os.PathLike, optional
        The overview volume; default the inspection's source file.
    refine : bool
        Refine the position by correlation.
    search_px : float
        Largest correction searched (overview voxels).
    actor : str, optional
        Who imported.

    Returns
    -------
    dict
        ``roi_id``, ``followup_id``, ``registration`` (dict), ``spacing_um``, ``shape_zyx``.

    Raises
    ------
    core.errors.InputError
        Unreadable volume, unknown request or a request in the wrong state.
    """
    from core.io import memory_budget, parse_voxel_size, read_volume
    from core.io.validate import check_memory_budget

    request = get_request(db, roi_id)
    plan = request["plan"]
    if request["status"] not in ("scheduled", "acquired", "reconstructed"):
        status = request["status"]
        hint = "; schedule it first (cellqc roi state ID scheduled)" if status == "planned" else ""
        raise InputError(f"ROI {roi_id}", f"is {status}; cannot attach a volume{hint}")
    overview_info = plan.get("overview") or {}
    ov_spacing = overview_info.get("spacing_um")
    planned = plan.get("center_zyx_px")
    if ov_spacing is None or planned is None:
        raise InputError(f"ROI {roi_id}", "its plan lacks the overview voxel size or centre")
    # The plan comes from the log: whoever can write the log file can put anything there.
    ov_spacing = parse_voxel_size(ov_spacing, f"ROI {roi_id} plan (overview voxel size)")
    try:
        planned = [float(v) for v in planned]
    except (TypeError, ValueError):
        planned = []
    if len(planned) != 3 or not all(math.isfinite(v) for v in planned):
        raise InputError(f"ROI {roi_id}", "its plan's centre is not 3 finite numbers")
    volume = read_volume(volume_path, voxel_size)
    check_memory_budget(volume.shape, volume.dtype, memory_budget(), volume.source)
    roi_array = volume.array
    reg: Registration | None = None
    note = ""
    if refine:
        source = overview_path or overview_info.get("source")
        if source and Path(source).exists():
            overview = read_volume(source, ov_spacing if overview_path is None else None,
                                   check_values=False)
            reg = register_roi(
                overview.array,
                np.asarray(roi_array),
                overview_spacing_um=overview.spacing_um,
                roi_spacing_um=volume.spacing_um,
                planned_center_zyx_px=planned,
                search_px=search_px,
            )
        else:
            note = "overview volume not available; planned centre kept"
    if reg is None:
        scale = [float(r) / float(o) for r, o in zip(volume.spacing_um, ov_spacing, strict=True)]
        reg = Registration([float(v) for v in planned], [float(v) for v in planned], [0.0, 0.0, 0.0],
                           scale, None, "plan", note or "refinement off")
    followup_id = attach_volume(
        db,
        roi_id,
        source=volume.source or str(volume_path),
        spacing_um=volume.spacing_um,
        shape_zyx=volume.shape,
        registration=reg.to_dict(),
        actor=actor,
    )
    return {
        "roi_id": int(roi_id),
        "followup_id": followup_id,
        "registration": reg.to_dict(),
        "spacing_um": list(volume.spacing_um),
        "shape_zyx": list(volume.shape),
    }
