"""Segment slices of a volume with the learned model: polar probabilities and image labels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.geometry.roll import CellGeometry
from core.geometry.unwrap import EllipticFrame
from core.io.volume import Volume
from core.segment.model import LayerSegmenter, get_segmenter
from core.segment.polar import (
    PolarSampling,
    normalisation_levels,
    normalise,
    polar_axes,
    polar_to_image,
    to_polar,
)


@dataclass
class PolarSegmentation:
    """Class probabilities of one slice on its polar grid about ``frame``."""

    z: int
    frame: EllipticFrame
    t: np.ndarray  # radians, (n_t,)
    rho_px: np.ndarray  # elliptical radius in pixels, (n_rho,)
    pixel_um: float
    probabilities: np.ndarray  # (C, n_t, n_rho) float32
    levels: tuple[float, float]

    @property
    def rho_um(self) -> np.ndarray:
        return self.rho_px * self.pixel_um


def sampling_of(segmenter: LayerSegmenter) -> PolarSampling:
    s = segmenter.info.meta.get("polar_sampling", {})
    return PolarSampling(float(s.get("radial_step_vox", 1.0)), float(s.get("arc_step_vox", 1.5)))


def segment_slice(image: np.ndarray, frame: EllipticFrame, pixel_um: float, r_max_um: float, r_ref_um: float,
                  roll_inner_um: float, roll_outer_um: float, segmenter: LayerSegmenter | None = None,
                  z: int = 0) -> PolarSegmentation:
    """Unwrap one slice about ``frame`` out to ``r_max_um``, normalise it on the roll
    (``roll_inner_um`` … ``roll_outer_um``) and run the network on it."""
    seg = segmenter or get_segmenter()
    t, rho_px = polar_axes(pixel_um, r_max_um, r_ref_um, sampling_of(seg), seg.info.size_multiple)
    polar = to_polar(image, frame, t, rho_px)
    levels = normalisation_levels(polar, rho_px * pixel_um, roll_inner_um, roll_outer_um)
    prob = seg.predict(normalise(polar, levels), periodic=True)
    return PolarSegmentation(z, frame, t, rho_px, pixel_um, prob, levels)


def segment_roll_slice(volume: Volume, geometry: CellGeometry, z: int, segmenter: LayerSegmenter | None = None,
                       r_max_um: float | None = None) -> PolarSegmentation | None:
    """Segment slice ``z`` about the geometry's roll frame (``None`` when it is no roll slice)."""
    s = geometry.slices[z] if z < len(geometry.slices) else None
    if s is None or not s.is_roll or s.frame is None:
        return None
    can_in = geometry.can_stat("inner_radius_um")
    r_ref = can_in if math.isfinite(can_in) else s.roll_outer_radius_um + geometry.pitch_um
    if r_max_um is None:
        can_out = geometry.can_stat("outer_radius_um")
        r_max_um = (can_out if math.isfinite(can_out) else r_ref) + 4 * geometry.pixel_um
    return segment_slice(volume.slice(z), s.frame, geometry.pixel_um, r_max_um, r_ref,
                         s.roll_inner_radius_um, s.roll_outer_radius_um, segmenter, z)


def segment_volume(volume: Volume, geometry: CellGeometry, segmenter: LayerSegmenter | None = None,
                   slices: list[int] | None = None) -> np.ndarray:
    """Class labels (uint8, z, y, x) of the roll slices; other slices are 255 (not segmented).

    Pixels beyond the can's outer radius are background (class 0).
    """
    seg = segmenter or get_segmenter()
    out = np.full(volume.shape, 255, np.uint8)
    zs = geometry.roll_slices if slices is None else slices
    for z in zs:
        ps = segment_roll_slice(volume, geometry, z, seg)
        if ps is None:
            continue
        fill = np.zeros(len(seg.classes), np.float32)
        fill[0] = 1.0
        prob = polar_to_image(ps.probabilities, ps.t, ps.rho_px, ps.frame, volume.shape[1:], fill=fill)
        out[z] = seg.labels(prob)
    return out
