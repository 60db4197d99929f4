"""PDF inspection reports (reportlab) with figures (matplotlib, Agg).

Typical use::

    from core.report import ReportInputs, write_report

    sha = write_report(ReportInputs(result, volume=volume), "C123.pdf", db=db, inspection_id=7)

The PDF is written to a temporary file beside its final name and renamed when complete:
a crash never leaves a truncated PDF under the final name. Figures whose data are missing
are replaced by a one-line note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sqlite_utils import Database

    from core.io.volume import Volume

__all__ = ["ReportInputs", "inputs_from_log", "write_report"]


@dataclass
class ReportInputs:
    """Everything a report shows: the inspection result plus optional figure data.

    Attributes
    ----------
    result : dict
        The inspection result (schema ``cellqc.inspection/1`` plus ``reasons``, ``limits``,
        ``recipe_hash``, ``software_version``, ``operator``, ``source``, ``spacing_um``...).
    volume : core.io.volume.Volume, optional
        The inspected volume, for the slice and section figures.
    thickness : core.report.thickness.ThicknessSummary, optional
        The unrolled cathode thickness map and histogram as the figures draw them (made from
        the inspection, or read back from the log: the same either way).
    thickness_map_um : ndarray, optional
        Instead of ``thickness``: a bare 2-D map (rows = height (slice index), columns =
        arc-length position; NaN where unknown).
    thickness_map_extent_mm : tuple of 4 float, optional
        (arc0, arc1, z0, z1) of the map in mm.
    thickness_values_um : ndarray, optional
        Thickness samples for the histogram (the map's values when omitted).
    inspection_id : int, optional
        The inspection's id in the log.
    overrides : list of dict
        Verdict overrides (``old_verdict``, ``new_verdict``, ``reason``, ``user``,
        ``created_at``), oldest first; the last one sets the verdict shown.
    roi_plans, followups : list of dict
        ROI local-tomography plans and synchrotron follow-up results; each dict is shown as
        a table (key ``title`` for its heading, ``figure_png`` bytes and ``caption`` for a
        figure).
    notes : list of str
        Extra one-line notes printed at the end.
    volume_note : str, optional
        Why the volume is missing, shown in place of the slice figures.
    thickness_note : str, optional
        Why the thickness data are missing, shown in place of their figures.
    audit_head : core.store.AuditHead, optional
        The log's audit chain head when the report is written (printed in the footer and kept
        in the PDF's metadata; see :mod:`core.report.anchor`). :func:`write_report` fills it
        from ``db`` when omitted.
    """

    result: dict[str, Any]
    volume: Volume | None = None
    thickness: Any = None
    thickness_map_um: np.ndarray | None = None
    thickness_map_extent_mm: tuple[float, float, float, float] | None = None
    thickness_values_um: np.ndarray | None = None
    inspection_id: int | None = None
    overrides: list[dict[str, Any]] = field(default_factory=list)
    roi_plans: list[dict[str, Any]] = field(default_factory=list)
    followups: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    volume_note: str | None = None
    thickness_note: str | None = None
    audit_head: Any = None

    def thickness_summary(self) -> Any:
        """The thickness summary the figures draw: ``thickness``, else one made from the bare
        map or values (None when there is neither)."""
        if self.thickness is not None:
            return self.thickness
        from core.report.thickness import ThicknessSummary

        spacing = self.result.get("spacing_um") or [self.result.get("voxel_size_um")] * 3
        dz = float(spacing[0]) if spacing and spacing[0] else None
        if self.thickness_map_um is not None:
            values = np.asarray(self.thickness_map_um)
            summary = ThicknessSummary.from_array(values, self.thickness_map_extent_mm, dz)
            median = (self.result.get("metrics") or {}).get("cathode_sheet_thickness_median_um")
            if summary is not None and median:
                summary.median_um = float(median)
            if summary is None and self.thickness_note is None:
                self.thickness_note = ("the thickness map holds no measured value" if values.ndim == 2
                                       else f"the thickness map has shape {values.shape}, not 2-D")
            return summary
        if self.thickness_values_um is not None:
            values = np.asarray(self.thickness_values_um, dtype=np.float32).reshape(1, -1)
            return ThicknessSummary.from_array(values, None, dz) if np.isfinite(values).sum() >= 2 else None
        return None

    @property
    def axis_center_yx_px(self) -> tuple[float, float] | None:
        """Where the cell axis crosses the slices, from ``result["geometry"]``."""
        centre = (self.result.get("geometry") or {}).get("axis_center_yx_px")
        if centre is None or len(centre) != 2 or any(v is None for v in centre):
            return None
        return float(centre[0]), float(centre[1])


def write_report(
    inputs: ReportInputs,
    path: str | os.PathLike[str],
    *,
    db: Database | None = None,
    inspection_id: int | None = None,
    invariant: bool = False,
    compress: bool = True,
) -> str:
    """Write the PDF report and, when a log is given, file it there.

    Parameters
    ----------
    inputs : ReportInputs
        The result and the optional figure data.
    path : str or os.PathLike
        The PDF to write; replaced atomically (temporary file + rename).
    db : sqlite_utils.Database, optional
        An open log (:func:`core.store.open_log`); the report's path and sha256 are
        recorded against the inspection.
    inspection_id : int, optional
        The inspection in the log; ``inputs.inspection_id`` when omitted. Needed with ``db``.
    invariant : bool
        Reproducible bytes (fixed dates and ids), for tests.
    compress : bool
        Compress the page streams.

    Returns
    -------
    str
        sha256 hex digest of the written PDF.

    Raises
    ------
    ValueError
        ``db`` is given without an inspection id.
    """
    from core.report.pdf import build_pdf, write_atomic

    inspection_id = inspection_id if inspection_id is not None else inputs.inspection_id
    if db is not None and inspection_id is None:
        raise ValueError("recording a report in the log needs the inspection id")
    if inputs.inspection_id is None and inspection_id is not None:
        inputs = replace(inputs, inspection_id=int(inspection_id))
    if db is not None and inputs.audit_head is None:
        from core.store import audit_head

        inputs = replace(inputs, audit_head=audit_head(db))
    data = build_pdf(inputs, invariant=invariant, compress=compress)
    sha = write_atomic(data, path)
    if db is not None and inspection_id is not None:
        from core.store import record_report

        record_report(db, int(inspection_id), path, sha)
    return sha


def inputs_from_log(db: Database, inspection_id: int, *, load_volume: bool = True) -> ReportInputs:
    """Rebuild the report inputs of a logged inspection.

    The result, its overrides, the cell's ROI plans and follow-ups come from the log, the
    thickness map from beside it (:mod:`core.report.keep`, checked against the hash the
    result names). The volume is read again from the result's ``source`` path when it still
    exists (with the stored voxel size); when that fails the report is written without slice
    figures and says why.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    inspection_id : int
        A complete inspection.
    load_volume : bool
        Try to read the volume again.

    Returns
    -------
    ReportInputs
    """
    from core.errors import InputError
    from core.store import get_result, overrides_for
    from core.store.log import inspection_record_problem

    result = get_result(db, inspection_id)
    problem = inspection_record_problem(db, inspection_id)
    if problem is not None:  # never print a verdict the audit chain does not back
        raise InputError(f"inspection {inspection_id}", f"its record differs from the audit chain "
                         f"({problem}); run `cellqc audit verify` and tell QA")
    inputs = ReportInputs(
        result=result,
        inspection_id=int(inspection_id),
        overrides=overrides_for(db, inspection_id),
    )
    source = result.get("source")
    if not load_volume:
        inputs.volume_note = "the volume was not loaded for this report."
    elif not source:
        inputs.volume_note = "the result does not name its volume file."
    elif not os.path.exists(str(source)):
        inputs.volume_note = f"the volume {source} no longer exists."
    else:
        spacing = result.get("spacing_um") or result.get("voxel_size_um")
        try:
            from core.io import read_volume

            inputs.volume = read_volume(str(source), voxel_size=spacing)
        except Exception as exc:  # a missing reader or a changed file: report without slices
            inputs.volume_note = f"the volume {source} could not be read again ({exc})."
        else:
            shape = result.get("shape_zyx")
            if shape and tuple(int(v) for v in shape) != tuple(inputs.volume.shape):
                inputs.volume = None
                inputs.volume_note = (
                    f"the volume {source} has changed since the inspection "
                    f"(shape {tuple(shape)} then, different now)."
                )
    from core.report.keep import db_file, load_summary

    inputs.thickness, note = load_summary(db_file(db), result)
    if inputs.thickness is None:
        inputs.thickness_note = note
    cell = str(result.get("cell_id") or "")
    try:  # the ROI scans planned for this cell (from any of its inspections)
        from core.roi.queue import list_requests

        inputs.roi_plans = list_requests(db, cell_id=cell)
    except Exception as exc:  # noqa: BLE001 - the report never fails over the plans
        inputs.notes.append(f"ROI plans could not be listed ({exc}).")
    try:  # synchrotron follow-up results attached to the same cell
        from core.followup.records import report_items

        inputs.followups = report_items(db, cell)
    except Exception as exc:  # noqa: BLE001 - the report never fails over follow-up data
        inputs.notes.append(f"Follow-up results could not be listed ({exc}).")
    inputs.notes.append(f"Report re-written from the log (inspection #{int(inspection_id)}).")
    return inputs
