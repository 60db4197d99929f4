"""The plant side of cellqc without the network: result snapshots, allowed folders, certificates.

``cellqc serve`` (``qc_app/serve.py``, asyncua) publishes these over OPC UA; nothing here
imports asyncua or Qt. See docs/plant_integration.md.
"""

from core.plant.certs import certificate_summary, create_certificate
from core.plant.folders import PathMissing, PathRefused, allowed_folders, check_inspect_path
from core.plant.snapshot import (
    FindingSummary,
    Measurement,
    ResultSnapshot,
    complete_since,
    latest_complete,
    measurements_from_result,
    metric_unit,
    snapshot_from_log,
)

__all__ = [
    "FindingSummary",
    "Measurement",
    "PathMissing",
    "PathRefused",
    "ResultSnapshot",
    "allowed_folders",
    "certificate_summary",
    "check_inspect_path",
    "complete_since",
    "create_certificate",
    "latest_complete",
    "measurements_from_result",
    "metric_unit",
    "snapshot_from_log",
]
