"""Polar (elliptical) unwrap of a slice about the cell axis, at sub-voxel sampling.

A point of the unwrap is addressed by an elliptical radius ``rho`` (pixels) and an angle
parameter ``t`` (radians): ``p = c + R(alpha) · (rho (1+e) cos(t-alpha'), rho (1-e) sin(t-alpha'))``
with ``alpha' = alpha``; for a round roll (e = 0) ``t`` is the polar angle and ``rho`` the
radius. Layers of a slightly oval roll become straight in (t, rho).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class EllipticFrame:
    """Centre (pixels), ovality e and long-axis direction alpha (radians) of a roll."""

    center_yx_px: tuple[float, float]
    ovality: float = 0.0
    alpha_rad: float = 0.0

    def to_yx(self, t: np.ndarray, rho_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (y, x) of unwrap points; broadcasts ``t`` against ``rho_px``."""
        e, a = self.ovality, self.alpha_rad
        beta = np.asarray(t) - a
        u = np.asarray(rho_px) * (1 + e) * np.cos(beta)
        v = np.asarray(rho_px) * (1 - e) * np.sin(beta)
        x = self.center_yx_px[1] + u * math.cos(a) - v * math.sin(a)
        y = self.center_yx_px[0] + u * math.sin(a) + v * math.cos(a)
        return y, x

    def metric(self, t: np.ndarray) -> np.ndarray:
        """Distance along the layer normal per unit of elliptical radius, at angle ``t``."""
        e = self.ovality
        beta = np.asarray(t) - self.alpha_rad
        return (1 + e) * (1 - e) / np.sqrt(((1 + e) * np.sin(beta)) ** 2 + ((1 - e) * np.cos(beta)) ** 2)

    def polar_deg(self, t: np.ndarray, rho_px: np.ndarray) -> np.ndarray:
        """Image polar angle (degrees, [0, 360)) of unwrap points."""
        y, x = self.to_yx(t, rho_px)
        return np.degrees(np.arctan2(y - self.center_yx_px[0], x - self.center_yx_px[1])) % 360.0


class UnwrapGrid:
    """Offsets of an unwrap grid from its centre, computed once for a whole volume.

    Every slice of a volume is unwrapped on the same (t, rho) grid about a centre that drifts
    from slice to slice; only the centre changes, so the trigonometry and the two
    (angles × radii) offset arrays are made once and each slice costs two additions and the
    interpolation (measured: the unwrap of a 1000 × 1000 slice drops from ~5 to ~3 times a
    plain ``map_coordinates`` pass).
    """

    def __init__(self, frame: EllipticFrame, t: np.ndarray, rho_px: np.ndarray):
        self.ovality, self.alpha_rad = frame.ovality, frame.alpha_rad
        origin = EllipticFrame((0.0, 0.0), frame.ovality, frame.alpha_rad)
        dy, dx = origin.to_yx(t[:, None], rho_px[None, :])
        self.dy, self.dx = dy.astype(np.float32), dx.astype(np.float32)
        self.shape = (t.size, rho_px.size)

    def matches(self, frame: EllipticFrame, t: np.ndarray, rho_px: np.ndarray) -> bool:
        return (self.ovality, self.alpha_rad) == (frame.ovality, frame.alpha_rad) and self.shape == (t.size, rho_px.size)


def unwrap(image: np.ndarray, frame: EllipticFrame, t: np.ndarray, rho_px: np.ndarray,
           order: int = 1, grid: UnwrapGrid | None = None) -> np.ndarray:
    """Resample ``image`` on the (t, rho) grid; returns float32 (len(t), len(rho)).

    Linear interpolation (order 1): the layers of interest are a few voxels wide and higher
    orders ring at the steel can; order 1 also keeps the cost at one gather per sample.
    ``grid`` (same frame shape, t and rho) saves recomputing the grid for every slice.
    """
    if grid is not None and grid.matches(frame, t, rho_px):
        y = grid.dy + np.float32(frame.center_yx_px[0])
        x = grid.dx + np.float32(frame.center_yx_px[1])
    else:
        y, x = frame.to_yx(t[:, None], rho_px[None, :])
    out = ndimage.map_coordinates(np.asarray(image, dtype=np.float32), [y, x], order=order,
                                  mode="nearest", prefilter=False)
    return out.astype(np.float32, copy=False)
