"""ROI local-tomography planning, its queue in the log, and bringing ROI volumes back.

* :func:`plan_rois` proposes scans from FAIL/REVIEW findings (objectives table in
  ``resources/objectives.csv``); :func:`plan_document` is the plan JSON.
* :func:`file_plan`, :func:`set_state`, :func:`list_requests`, :func:`export_rows`: the
  queue (``planned → scheduled → acquired → reconstructed → attached`` or ``cancelled``),
  every change audited.
* :func:`register_roi` places an ROI volume in its overview; :func:`import_roi_volume`
  attaches it to its request.
"""

from core.roi.importer import import_roi_volume
from core.roi.objectives import (
    DEFAULT_OBJECTIVE,
    OBJECTIVES_PATH,
    Objective,
    get_objective,
    load_objectives,
)
from core.roi.plan import PRIORITY, RoiPlan, frame_of, mm_to_px, plan_document, plan_rois, px_to_mm
from core.roi.queue import (
    ACTIVE_STATES,
    EXPORT_COLUMNS,
    FOLLOWUP_KIND,
    STATES,
    TRANSITIONS,
    attach_volume,
    attachment_of,
    export_rows,
    file_plan,
    get_request,
    list_requests,
    set_state,
)
from core.roi.register import Registration, downsample_to, register_roi

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_OBJECTIVE",
    "EXPORT_COLUMNS",
    "FOLLOWUP_KIND",
    "OBJECTIVES_PATH",
    "PRIORITY",
    "STATES",
    "TRANSITIONS",
    "Objective",
    "Registration",
    "RoiPlan",
    "attach_volume",
    "attachment_of",
    "downsample_to",
    "export_rows",
    "file_plan",
    "frame_of",
    "get_objective",
    "get_request",
    "import_roi_volume",
    "list_requests",
    "load_objectives",
    "mm_to_px",
    "plan_document",
    "plan_rois",
    "px_to_mm",
    "register_roi",
    "set_state",
]
