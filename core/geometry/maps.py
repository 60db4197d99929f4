"""Unrolled electrode maps: a per-winding, per-angle, per-slice quantity laid out over
(arc length along the wound sheet, height), the way an engineer would see the electrode
if the cell were opened and the sheet unrolled."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.fileio import atomic_writer
from core.geometry.roll import CellGeometry


@dataclass
class UnrolledMap:
    """A quantity over the unrolled cathode sheet.

    Attributes
    ----------
    values : ndarray (n_slices, n_arc)
        Rows are the roll slices (``z_index``), columns positions along the sheet from its
        inner end; NaN where nothing was measured.
    arc_mm : ndarray (n_arc,)
        Arc length from the sheet's inner end (mm).
    z_index : ndarray (n_slices,)
        Slice index of each row; ``z_mm`` their height.
    winding : ndarray (n_arc,)
        Winding index of each column.
    name, unit : str
    """

    values: np.ndarray
    arc_mm: np.ndarray
    z_index: np.ndarray
    z_mm: np.ndarray
    winding: np.ndarray
    name: str
    unit: str

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        return (float(self.arc_mm[0]), float(self.arc_mm[-1]), float(self.z_mm[0]), float(self.z_mm[-1]))

    def save_npz(self, path: str | Path) -> None:
        np.savez_compressed(path, values=self.values, arc_mm=self.arc_mm, z_index=self.z_index,
                            z_mm=self.z_mm, winding=self.winding, name=self.name, unit=self.unit)


def unroll(geometry: CellGeometry, per_slice: np.ndarray, name: str, unit: str,
           radius_um: np.ndarray | None = None, arc_step_um: float | None = None) -> UnrolledMap:
    """Lay a (slices, windings, angles) array out along the wound sheet.

    Each winding's angles are ordered from the seam in the winding direction, so winding k's
    last angle meets winding k + 1's first; the arc position uses each winding's median
    radius. Columns are resampled to a uniform arc step (default: the in-plane voxel size).
    """
    rolls = [s for s in geometry.slices if s.is_roll]
    n_z, n_k, n_t = per_slice.shape
    n_k = min(n_k, geometry.windings)
    if radius_um is None:
        radius_um = geometry.stacked("cu_radius_um")
    seam = rolls[0].seam_deg if rolls and math.isfinite(rolls[0].seam_deg) else 0.0
    direction = geometry.direction
    t = rolls[0].t_rad if rolls else np.linspace(0, 2 * np.pi, n_t, endpoint=False)
    theta = (direction * (t - math.radians(seam))) % (2 * np.pi)
    order = np.argsort(theta)
    step = arc_step_um or geometry.pixel_um
    columns, arcs, windings = [], [], []
    start = 0.0
    for k in range(n_k):
        r_k = float(np.nanmedian(radius_um[:, k])) if np.isfinite(radius_um[:, k]).any() else math.nan
        if not math.isfinite(r_k):
            continue
        arc_k = theta[order] * r_k  # µm from this winding's start
        length = 2 * np.pi * r_k
        grid = np.arange(0.0, length, step)
        block = per_slice[:, k][:, order]
        resampled = np.empty((n_z, grid.size), np.float32)
        for z in range(n_z):
            row = block[z]
            ok = np.isfinite(row)
            if ok.sum() < 2:
                resampled[z] = np.nan
                continue
            vals = np.interp(grid, arc_k[ok], row[ok])
            # Keep gaps as gaps: a column is NaN when its nearest sample was NaN.
            nearest = np.clip(np.searchsorted(arc_k, grid), 0, n_t - 1)
            resampled[z] = np.where(ok[nearest], vals, np.nan)
        columns.append(resampled)
        arcs.append(start + grid)
        windings.append(np.full(grid.size, k))
        start += length
    if not columns:
        empty = np.zeros((n_z, 0), np.float32)
        return UnrolledMap(empty, np.zeros(0), np.array([s.z for s in rolls]), np.zeros(n_z), np.zeros(0, int), name, unit)
    z_index = np.array([s.z for s in rolls])
    return UnrolledMap(
        values=np.concatenate(columns, axis=1),
        arc_mm=np.concatenate(arcs) / 1000.0,
        z_index=z_index,
        z_mm=z_index * geometry.spacing_um[0] / 1000.0,
        winding=np.concatenate(windings),
        name=name,
        unit=unit,
    )


def render_map_png(umap: UnrolledMap, path: str | Path, title: str | None = None,
                   cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None) -> Path:
    """Save an unrolled map as a PNG with a colour bar and physical axes (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    values = umap.values
    finite = values[np.isfinite(values)]
    if vmin is None and finite.size:
        vmin = float(np.percentile(finite, 1))
    if vmax is None and finite.size:
        vmax = float(np.percentile(finite, 99))
    fig, ax = plt.subplots(figsize=(12, 3.2), dpi=110)
    extent = (umap.arc_mm[0] if umap.arc_mm.size else 0, umap.arc_mm[-1] if umap.arc_mm.size else 1,
              umap.z_mm[-1] if umap.z_mm.size else 1, umap.z_mm[0] if umap.z_mm.size else 0)
    im = ax.imshow(values, aspect="auto", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xlabel("arc length along the cathode sheet from its inner end (mm)")
    ax.set_ylabel("height (mm)")
    ax.set_title(title or f"{umap.name} ({umap.unit})")
    # Winding boundaries as faint ticks along the top.
    if umap.winding.size:
        starts = umap.arc_mm[np.r_[0, np.nonzero(np.diff(umap.winding))[0] + 1]]
        for s in starts[1:]:
            ax.axvline(s, color="white", lw=0.3, alpha=0.4)
    fig.colorbar(im, ax=ax, label=umap.unit, fraction=0.03, pad=0.01)
    fig.tight_layout()
    try:
        with atomic_writer(path, suffix=".png") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
    return path


def render_overlay_png(image: np.ndarray, geometry: CellGeometry, z: int, path: str | Path,
                       findings: list[dict] | None = None) -> Path:
    """Save a slice with the traced Cu collectors and cathode sheet edges overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    s = geometry.slices[z]
    fig, ax = plt.subplots(figsize=(9, 9), dpi=110)
    ax.imshow(image, cmap="gray", interpolation="nearest")
    if s.is_roll:
        px = geometry.pixel_um
        for k in range(s.cu_radius_um.shape[0]):
            for arr, colour, lw in ((s.cu_radius_um[k], "#ff5050", 0.6), (s.sheet_inner_um[k], "#40c0ff", 0.4),
                                    (s.sheet_outer_um[k], "#2060ff", 0.4)):
                rr = np.asarray(arr, float) / px
                y, x = s.frame.to_yx(s.t_rad, rr)
                # Break the line at the seam (and at gaps) instead of drawing across.
                jump = np.r_[False, np.abs(np.diff(rr)) > 3]
                y, x = np.where(jump, np.nan, y), np.where(jump, np.nan, x)
                ax.plot(x, y, color=colour, lw=lw)
    for f in findings or []:
        b = f["bbox_zyx_px"]
        if b[0] <= z < b[3]:
            ax.add_patch(plt.Rectangle((b[2] - 3, b[1] - 3), b[5] - b[2] + 6, b[4] - b[1] + 6, fill=False,
                                       ec="yellow", lw=1.2))
    ax.set_title(f"slice {z}: Cu collectors (red), cathode sheet edges (blue)"
                 + ("" if s.is_roll else f" — {s.note}"))
    ax.axis("off")
    fig.tight_layout()
    try:
        with atomic_writer(path, suffix=".png") as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)
    return path
