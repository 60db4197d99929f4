"""Report figures drawn with matplotlib (Agg backend) into PNG bytes.

Every function returns the PNG bytes of one figure or raises :class:`NoFigure` with a short
sentence saying why the figure cannot be drawn (missing data, a finding outside the volume).
Images are shown in physical units (mm) with the voxel size of the volume; large arrays are
strided or block-averaged before drawing so memory and time stay bounded.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Okabe–Ito colours (safe for the common colour-vision deficiencies).
OKABE_ITO = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
#: Outline colour of a finding by severity.
SEVERITY_COLOURS = {
    "fail": OKABE_ITO["vermillion"],
    "review": OKABE_ITO["orange"],
    "info": OKABE_ITO["sky"],
}
#: Longest side, in pixels, of an image drawn in a figure.
MAX_DRAW_PX = 700
DPI = 150


class NoFigure(Exception):
    """A figure cannot be drawn; the message says why in one sentence."""


def _figure(figsize: tuple[float, float], ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A figure on its own Agg canvas (no pyplot: no global state, safe beside a Qt GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, **kwargs)
    return fig, axes


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context(_style())


def _style() -> dict[str, Any]:
    return {
        "font.family": "DejaVu Sans",
        "font.size": 8,
        "axes.titlesize": 8.5,
        "axes.labelsize": 8,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "legend.fontsize": 7,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.fonttype": "none",
    }


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _window(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Display range from percentiles of the finite values."""
    values = image[np.isfinite(image)]
    if values.size == 0:
        return 0.0, 1.0
    if values.size > 200_000:
        values = values[:: values.size // 200_000 + 1]
    lo, hi = np.percentile(values, [low, high])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _stride(n: int, limit: int = MAX_DRAW_PX) -> int:
    return max(1, math.ceil(n / limit))


def _volume_parts(volume: Any) -> tuple[Any, tuple[float, float, float], tuple[int, int, int]]:
    if volume is None:
        raise NoFigure("no volume was given")
    array = volume.array
    shape = tuple(int(n) for n in array.shape)
    if len(shape) != 3 or min(shape) < 1:
        raise NoFigure(f"the volume has shape {shape}, not (z, y, x)")
    spacing = tuple(float(s) for s in volume.spacing_um)
    return array, spacing, shape  # type: ignore[return-value]


def finding_slice_index(finding: Mapping[str, Any]) -> int | None:
    """The axial slice that shows a finding: its centroid z, else the middle of its bbox."""
    centroid = finding.get("centroid_zyx_px")
    if centroid is not None and len(centroid) >= 1 and centroid[0] is not None:
        return int(round(float(centroid[0])))
    bbox = finding.get("bbox_zyx_px")
    if bbox is not None and len(bbox) == 6:
        return int(round(0.5 * (float(bbox[0]) + float(bbox[3]))))
    return None


def _finding_yx_box(finding: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """(y0, x0, y1, x1) in pixels: the bbox, else a small box around the centroid."""
    bbox = finding.get("bbox_zyx_px")
    if bbox is not None and len(bbox) == 6 and all(v is not None for v in bbox):
        y0, x0, y1, x1 = (float(bbox[1]), float(bbox[2]), float(bbox[4]), float(bbox[5]))
        return min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1)
    centroid = finding.get("centroid_zyx_px")
    if centroid is not None and len(centroid) == 3 and all(v is not None for v in centroid):
        cy, cx = float(centroid[1]), float(centroid[2])
        return cy - 2, cx - 2, cy + 2, cx + 2
    return None


def finding_figure(volume: Any, finding: Mapping[str, Any]) -> bytes:
    """An axial slice crop around a finding, its bbox outlined, beside the whole slice.

    Parameters
    ----------
    volume : core.io.volume.Volume
        The inspected volume (``array`` (z, y, x), ``spacing_um``).
    finding : mapping
        One finding of the result (``centroid_zyx_px``, ``bbox_zyx_px``, ``id``, ...).

    Returns
    -------
    bytes
        PNG.

    Raises
    ------
    NoFigure
        No volume, no position, or a position outside the volume.
    """
    array, (sz, sy, sx), (nz, ny, nx) = _volume_parts(volume)
    z = finding_slice_index(finding)
    box = _finding_yx_box(finding)
    if z is None or box is None:
        raise NoFigure("the finding has no position")
    if not 0 <= z < nz:
        raise NoFigure(f"slice {z} is outside the volume (0–{nz - 1})")
    y0, x0, y1, x1 = box
    if y1 < 0 or x1 < 0 or y0 > ny or x0 > nx:
        raise NoFigure("the finding lies outside the slice")
    image = np.asarray(array[z], dtype=np.float32)

    # Crop: the box plus a margin of half its size, at least 0.4 mm and 24 px each way.
    margin_y = max(0.5 * (y1 - y0), 400.0 / sy, 24.0)
    margin_x = max(0.5 * (x1 - x0), 400.0 / sx, 24.0)
    cy0, cy1 = int(max(0, math.floor(y0 - margin_y))), int(min(ny, math.ceil(y1 + margin_y + 1)))
    cx0, cx1 = int(max(0, math.floor(x0 - margin_x))), int(min(nx, math.ceil(x1 + margin_x + 1)))
    crop = image[cy0:cy1, cx0:cx1]
    step_c = _stride(max(crop.shape))
    crop_shown = crop[::step_c, ::step_c]

    step_t = _stride(max(ny, nx), 500)
    thumb = image[::step_t, ::step_t]

    mm_y, mm_x = sy / 1000.0, sx / 1000.0
    colour = SEVERITY_COLOURS.get(str(finding.get("severity", "info")).lower(), "#444444")
    label = str(finding.get("id") or "")

    from matplotlib import patches, patheffects

    halo = [patheffects.withStroke(linewidth=3.2, foreground="white")]
    with _rc():
        fig, (ax_crop, ax_thumb) = _figure(
            (7.0, 3.25), 2, gridspec_kw={"width_ratios": [1.25, 1.0]}
        )
        lo, hi = _window(crop, 1.0, 99.5)
        ax_crop.imshow(
            crop_shown,
            cmap="gray",
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
            extent=(cx0 * mm_x, cx1 * mm_x, cy1 * mm_y, cy0 * mm_y),
        )
        rect = patches.Rectangle(
            (x0 * mm_x, y0 * mm_y),
            max(x1 - x0, 1.0) * mm_x,
            max(y1 - y0, 1.0) * mm_y,
            fill=False,
            edgecolor=colour,
            linewidth=1.8,
        )
        rect.set_path_effects(halo)
        ax_crop.add_patch(rect)
        ax_crop.text(
            x0 * mm_x,
            y0 * mm_y - 0.04 * (cy1 - cy0) * mm_y,
            label,
            color=colour,
            fontsize=9,
            fontweight="bold",
            va="bottom",
            path_effects=halo,
        )
        ax_crop.set_title(f"Detail, slice z = {z} (height {z * sz / 1000:.2f} mm)")
        ax_crop.set_xlabel("x (mm)")
        ax_crop.set_ylabel("y (mm)")

        tlo, thi = _window(thumb)
        ax_thumb.imshow(
            thumb,
            cmap="gray",
            vmin=tlo,
            vmax=thi,
            interpolation="antialiased",
            extent=(0, nx * mm_x, ny * mm_y, 0),
        )
        detail = patches.Rectangle(
            (cx0 * mm_x, cy0 * mm_y),
            (cx1 - cx0) * mm_x,
            (cy1 - cy0) * mm_y,
            fill=False,
            edgecolor=colour,
            linewidth=1.2,
            linestyle="--",
        )
        detail.set_path_effects(halo)
        ax_thumb.add_patch(detail)
        cyc, cxc = 0.5 * (y0 + y1) * mm_y, 0.5 * (x0 + x1) * mm_x
        ax_thumb.plot(
            [cxc],
            [cyc],
            marker="o",
            markersize=13,
            markerfacecolor="none",
            markeredgecolor=colour,
            markeredgewidth=1.8,
            path_effects=halo,
        )
        ax_thumb.set_xlim(0, nx * mm_x)
        ax_thumb.set_ylim(ny * mm_y, 0)
        ax_thumb.set_title("Whole slice (dashed: detail)")
        ax_thumb.set_xlabel("x (mm)")
        ax_thumb.set_ylabel("y (mm)")
        fig.tight_layout()
        return _png(fig)


def section_figure(
    volume: Any,
    axis_center_yx_px: Sequence[float] | None,
    findings: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    """Two vertical sections through the cell axis (x–z and y–z planes).

    Parameters
    ----------
    volume : core.io.volume.Volume
        The inspected volume.
    axis_center_yx_px : sequence of 2 float, optional
        Where the cell axis crosses the slices; the image centre when omitted.
    findings : sequence of mapping
        Findings to mark (their bbox projected onto each plane).

    Returns
    -------
    bytes
        PNG.
    """
    array, (sz, sy, sx), (nz, ny, nx) = _volume_parts(volume)
    if nz < 2:
        raise NoFigure("the volume has a single slice")
    if axis_center_yx_px is not None and len(axis_center_yx_px) == 2:
        cy, cx = (float(axis_center_yx_px[0]), float(axis_center_yx_px[1]))
    else:
        cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    iy, ix = int(round(cy)), int(round(cx))
    if not (0 <= iy < ny and 0 <= ix < nx):
        raise NoFigure(f"the axis centre ({cy:.0f}, {cx:.0f}) px is outside the slices")
    step_z = _stride(nz, 900)
    xz = np.asarray(array[::step_z, iy, :], dtype=np.float32)
    yz = np.asarray(array[::step_z, :, ix], dtype=np.float32)
    step_h = _stride(max(ny, nx), 600)
    xz, yz = xz[:, ::step_h], yz[:, ::step_h]
    lo, hi = _window(np.concatenate([xz.ravel(), yz.ravel()]))

    from matplotlib import patches, patheffects

    halo = [patheffects.withStroke(linewidth=2.6, foreground="white")]
    height_mm = nz * sz / 1000.0
    width_mm = max(nx * sx, ny * sy) / 1000.0
    # Two panels up to 2.9 in wide; a tall cell makes them narrower, at most 7 in high.
    aspect = height_mm / max(width_mm, 1e-9)
    panel_w = min(2.9, 7.0 / aspect)
    fig_w = float(np.clip(2 * panel_w + 1.5, 3.6, 7.0))
    fig_h = float(np.clip(panel_w * aspect + 0.95, 1.6, 8.0))
    with _rc():
        fig, axes = _figure((fig_w, fig_h), 2)
        panels = (
            (axes[0], xz, nx * sx / 1000.0, "x", f"x–z plane at y = {iy} px", 2, 5),
            (axes[1], yz, ny * sy / 1000.0, "y", f"y–z plane at x = {ix} px", 1, 4),
        )
        for ax, image, extent_mm, name, title, i0, i1 in panels:
            ax.imshow(
                image,
                cmap="gray",
                vmin=lo,
                vmax=hi,
                interpolation="antialiased",
                extent=(0, extent_mm, height_mm, 0),
                aspect="equal",
            )
            ax.axvline(
                (cx * sx if name == "x" else cy * sy) / 1000.0,
                color=OKABE_ITO["sky"],
                linewidth=0.8,
                linestyle=":",
            )
            for finding in findings:
                bbox = finding.get("bbox_zyx_px")
                if bbox is None or len(bbox) != 6:
                    continue
                colour = SEVERITY_COLOURS.get(str(finding.get("severity", "info")).lower())
                h0, h1 = float(bbox[0]) * sz / 1000.0, float(bbox[3]) * sz / 1000.0
                p0 = float(bbox[i0]) * (sx if name == "x" else sy) / 1000.0
                p1 = float(bbox[i1]) * (sx if name == "x" else sy) / 1000.0
                pad = 0.01 * max(extent_mm, height_mm)
                rect = patches.Rectangle(
                    (p0 - pad, h0 - pad),
                    (p1 - p0) + 2 * pad,
                    (h1 - h0) + 2 * pad,
                    fill=False,
                    edgecolor=colour or "#444444",
                    linewidth=1.3,
                )
                rect.set_path_effects(halo)
                ax.add_patch(rect)
                ax.text(
                    p1 + pad,
                    h0 - pad,
                    str(finding.get("id") or ""),
                    color=colour or "#444444",
                    fontsize=7,
                    fontweight="bold",
                    va="bottom",
                    path_effects=halo,
                    clip_on=True,
                )
            ax.set_xlim(0, extent_mm)
            ax.set_ylim(height_mm, 0)
            ax.set_title(title)
            ax.set_xlabel(f"{name} (mm)")
            ax.set_ylabel("height z (mm)")
        fig.tight_layout()
        return _png(fig)


def _block_nanmean(values: np.ndarray, max_rows: int, max_cols: int) -> np.ndarray:
    rows, cols = values.shape
    fr, fc = _stride(rows, max_rows), _stride(cols, max_cols)
    if fr == 1 and fc == 1:
        return values
    r, c = rows // fr * fr, cols // fc * fc
    if r == 0 or c == 0:
        return values[::fr, ::fc]
    blocks = values[:r, :c].reshape(r // fr, fr, c // fc, fc)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(blocks)
        total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
        count = finite.sum(axis=(1, 3))
        out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out.astype(np.float32)


def thickness_map_figure(
    thickness_map_um: np.ndarray | None,
    extent_mm: Sequence[float] | None = None,
) -> bytes:
    """The unrolled cathode sheet thickness map with a colour bar in µm.

    Parameters
    ----------
    thickness_map_um : ndarray, optional
        2-D: rows = height (slice index), columns = arc-length position; NaN where unknown.
    extent_mm : sequence of 4 float, optional
        (arc0, arc1, z0, z1) in mm; without it the axes are in samples.

    Returns
    -------
    bytes
        PNG.
    """
    if thickness_map_um is None:
        raise NoFigure("the inspection gave no thickness map")
    values = np.asarray(thickness_map_um, dtype=np.float32)
    if values.ndim != 2 or min(values.shape) < 1:
        raise NoFigure(f"the thickness map has shape {values.shape}, not 2-D")
    if not np.isfinite(values).any():
        raise NoFigure("the thickness map holds no measured value")
    shown = _block_nanmean(values, 500, 1600)
    lo, hi = _window(values, 1.0, 99.0)

    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    if extent_mm is not None and len(extent_mm) == 4:
        a0, a1, z0, z1 = (float(v) for v in extent_mm)
        xlabel, ylabel = "arc length along the electrode (mm)", "height z (mm)"
    else:
        a0, a1, z0, z1 = 0.0, float(values.shape[1]), 0.0, float(values.shape[0])
        xlabel, ylabel = "arc position (samples)", "slice"
    with _rc():
        fig, ax = _figure((7.0, 2.7))
        im = ax.imshow(
            np.ma.masked_invalid(shown),
            cmap=cmap,
            vmin=lo,
            vmax=hi,
            origin="lower",
            extent=(a0, a1, z0, z1),
            aspect="auto",
            interpolation="nearest",
        )
        bar = fig.colorbar(im, ax=ax, pad=0.015, fraction=0.04)
        bar.set_label("cathode sheet thickness (µm)")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title("Unrolled cathode sheet thickness (grey: not measured)")
        fig.tight_layout()
        return _png(fig)


def thickness_histogram_figure(values_um: np.ndarray | None) -> bytes:
    """Histogram of cathode sheet thickness with the median and ±10 % / ±20 % marks.

    Parameters
    ----------
    values_um : ndarray, optional
        Thickness samples in µm (any shape; NaN ignored).

    Returns
    -------
    bytes
        PNG.
    """
    if values_um is None:
        raise NoFigure("the inspection gave no thickness values")
    values = np.asarray(values_um, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise NoFigure("fewer than two thickness values were measured")
    median = float(np.median(values))
    mean, std = float(values.mean()), float(values.std())
    lo, hi = np.percentile(values, [0.1, 99.9])
    lo, hi = min(lo, 0.75 * median), max(hi, 1.25 * median)

    with _rc():
        fig, ax = _figure((7.0, 2.6))
        ax.hist(
            values,
            bins=int(np.clip(np.sqrt(values.size), 10, 80)),
            range=(lo, hi),
            color=OKABE_ITO["blue"],
            alpha=0.85,
        )
        ax.axvline(median, color="black", linewidth=1.2, label=f"median {median:.1f} µm")
        for frac, colour, style, name in (
            (0.10, OKABE_ITO["orange"], "--", "±10 % (review)"),
            (0.20, OKABE_ITO["vermillion"], "-.", "±20 % (fail)"),
        ):
            ax.axvline(
                median * (1 - frac), color=colour, linestyle=style, linewidth=1.1, label=name
            )
            ax.axvline(median * (1 + frac), color=colour, linestyle=style, linewidth=1.1)
        cv = std / mean if mean else float("nan")
        ax.text(
            0.01,
            0.95,
            f"n = {values.size:,}\nmean {mean:.1f} µm\nstd {std:.1f} µm\nCV {cv:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#bbbbbb"},
        )
        ax.set_xlabel("cathode sheet thickness (µm)")
        ax.set_ylabel("samples")
        ax.set_title("Distribution of cathode sheet thickness")
        ax.legend(loc="upper right", frameon=False)
        fig.tight_layout()
        return _png(fig)
