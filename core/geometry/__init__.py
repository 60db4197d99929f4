"""Cell geometry: can, axis, roll frame, polar unwrap, layer tracking and unrolled maps."""

from core.geometry.can import CanSlice, CellAxis, detect_can, fit_axis
from core.geometry.layers import GeometryParams, SliceRoll, analyze_slice, refine_frame
from core.geometry.roll import CellGeometry, measure_geometry
from core.geometry.unwrap import EllipticFrame, unwrap

__all__ = [
    "CanSlice",
    "CellAxis",
    "CellGeometry",
    "EllipticFrame",
    "GeometryParams",
    "SliceRoll",
    "analyze_slice",
    "detect_can",
    "fit_axis",
    "measure_geometry",
    "refine_frame",
    "unwrap",
]
