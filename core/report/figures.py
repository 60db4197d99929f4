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


def slice_title(z: int, dz_um: float) -> str:
    """``"slice 8 (z 0.17 mm)"``: the one slice convention (:mod:`core.describe`)."""
    from core.describe import number, slice_z_mm

    return f"slice {z} (z {number(slice_z_mm(z, dz_um), 'mm')} mm)"


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
    """The slice that shows a finding (:func:`core.describe.finding_slice`: one rule everywhere)."""
    from core.describe import finding_slice

    return finding_slice(finding)


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
        ax_crop.set_title(f"Detail, {slice_title(z, sz)}")
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
    """Two vertical sections through the cell axis (x–z and y–z planes), height exaggerated.

    A volume much wider than tall (a few slices of a whole cell) is drawn with its height
    stretched by a round factor (:func:`core.describe.section_exaggeration`, the GUI's rule),
    printed on the axis; the height ticks stay in true millimetres.

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

    Raises
    ------
    NoFigure
        Fewer than :data:`core.describe.MIN_SECTION_SLICES` slices (nothing to see in section),
        or the axis outside the slices.
    """
    from core.describe import MIN_SECTION_SLICES, number, section_exaggeration

    array, (sz, sy, sx), (nz, ny, nx) = _volume_parts(volume)
    if nz < MIN_SECTION_SLICES:
        raise NoFigure(f"the volume has {nz} slice{'s' if nz != 1 else ''}: too few to show in section")
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
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    halo = [patheffects.withStroke(linewidth=2.6, foreground="white")]
    height_mm = nz * sz / 1000.0
    width_mm = max(nx * sx, ny * sy) / 1000.0
    factor = section_exaggeration(height_mm, width_mm)
    shown_h = height_mm * factor
    aspect = shown_h / max(width_mm, 1e-9)
    panel_w = min(3.0, 6.0 / max(aspect, 1e-9))
    fig_w = 7.0
    fig_h = float(np.clip(panel_w * aspect + 1.0, 2.2, 7.5))
    with _rc():
        fig, axes = _figure((fig_w, fig_h), 2)
        panels = (
            (axes[0], xz, nx * sx / 1000.0, "x", f"x–z plane through the axis (y = {iy} px)", 2, 5),
            (axes[1], yz, ny * sy / 1000.0, "y", f"y–z plane through the axis (x = {ix} px)", 1, 4),
        )
        for ax, image, extent_mm, name, title, i0, i1 in panels:
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="antialiased",
                      extent=(0, extent_mm, shown_h, 0), aspect="equal")
            ax.axvline((cx * sx if name == "x" else cy * sy) / 1000.0, color=OKABE_ITO["sky"], linewidth=0.8,
                       linestyle=":")
            for finding in findings:
                bbox = finding.get("bbox_zyx_px")
                if bbox is None or len(bbox) != 6:
                    continue
                colour = SEVERITY_COLOURS.get(str(finding.get("severity", "info")).lower()) or "#444444"
                h0, h1 = float(bbox[0]) * sz / 1000.0 * factor, float(bbox[3]) * sz / 1000.0 * factor
                p0 = float(bbox[i0]) * (sx if name == "x" else sy) / 1000.0
                p1 = float(bbox[i1]) * (sx if name == "x" else sy) / 1000.0
                pad = 0.01 * max(extent_mm, shown_h)
                rect = patches.Rectangle((p0 - pad, h0 - pad), (p1 - p0) + 2 * pad, (h1 - h0) + 2 * pad,
                                         fill=False, edgecolor=colour, linewidth=1.3)
                rect.set_path_effects(halo)
                ax.add_patch(rect)
                ax.text(p1 + pad, h0 - pad, str(finding.get("id") or ""), color=colour, fontsize=7,
                        fontweight="bold", va="bottom", path_effects=halo, clip_on=True)
            ax.set_xlim(0, extent_mm)
            ax.set_ylim(shown_h, 0)
            ax.set_title(title)
            ax.set_xlabel(f"{name} (mm)")
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: number(v / factor, "mm")))
            ax.set_ylabel("height z (mm)" if factor == 1 else f"height z (mm), drawn ×{factor:g}")
        fig.tight_layout()
        return _png(fig)


def overview_figure(volume: Any, result: Mapping[str, Any]) -> bytes:
    """The whole slice of the worst finding with every finding on that slice circled and named.

    Raises
    ------
    NoFigure
        No volume, or no review/fail finding with a position.
    """
    from matplotlib import patheffects

    from core.describe import finding_slice, worst_finding

    array, (sz, sy, sx), (nz, ny, nx) = _volume_parts(volume)
    findings = [f for f in (result.get("findings") or []) if isinstance(f, Mapping)]
    worst = worst_finding(findings)
    if worst is None:
        raise NoFigure("no finding to show")
    z = finding_slice(worst, nz)
    if z is None:
        raise NoFigure("the worst finding has no position")
    step = _stride(max(ny, nx), 520)
    image = np.asarray(array[z], dtype=np.float32)[::step, ::step]
    mm_y, mm_x = sy / 1000.0, sx / 1000.0
    halo = [patheffects.withStroke(linewidth=3.0, foreground="white")]
    with _rc():
        fig, ax = _figure((3.3, 3.45))
        lo, hi = _window(image)
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="antialiased",
                  extent=(0, nx * mm_x, ny * mm_y, 0))
        places: list[list[Any]] = []  # [x, y, colour rank, colour, ids]: findings at one place share a circle
        for f in findings:
            box = _finding_yx_box(f)
            rng = f.get("bbox_zyx_px")
            if box is None or f.get("severity") not in ("fail", "review"):
                continue
            if rng is not None and len(rng) == 6 and not (int(rng[0]) <= z < max(int(rng[3]), int(rng[0]) + 1)):
                continue
            y0, x0, y1, x1 = box
            cyc, cxc = 0.5 * (y0 + y1) * mm_y, 0.5 * (x0 + x1) * mm_x
            rank = SEVERITY_ORDER.get(str(f.get("severity")), 3)
            near = next((p for p in places if math.hypot(p[0] - cxc, p[1] - cyc) < 0.04 * nx * mm_x), None)
            if near is None:
                places.append([cxc, cyc, rank, SEVERITY_COLOURS.get(str(f.get("severity")), "#444444"),
                               [str(f.get("id") or "")]])
            else:
                near[4].append(str(f.get("id") or ""))
                if rank < near[2]:
                    near[2], near[3] = rank, SEVERITY_COLOURS.get(str(f.get("severity")), "#444444")
        for cxc, cyc, _rank, colour, ids in places:
            ax.plot([cxc], [cyc], marker="o", markersize=14, markerfacecolor="none", markeredgecolor=colour,
                    markeredgewidth=2.0, path_effects=halo)
            ax.annotate(" · ".join(ids), (cxc, cyc), xytext=(9, 7), textcoords="offset points",
                        color=colour, fontsize=9, fontweight="bold", path_effects=halo)
        ax.set_xlim(0, nx * mm_x)
        ax.set_ylim(ny * mm_y, 0)
        ax.set_title(f"{slice_title(z, sz)[:1].upper()}{slice_title(z, sz)[1:]}", fontsize=8.5)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        fig.tight_layout()
        return _png(fig)


def _summary(thickness: Any) -> Any:
    """A :class:`core.report.thickness.ThicknessSummary` from a summary or a bare 2-D map."""
    from core.report.thickness import ThicknessSummary

    if thickness is None:
        raise NoFigure("the inspection gave no thickness map")
    if isinstance(thickness, ThicknessSummary):
        return thickness
    values = np.asarray(thickness, dtype=np.float32)
    if values.ndim != 2 or min(values.shape) < 1:
        raise NoFigure(f"the thickness map has shape {values.shape}, not 2-D")
    if not np.isfinite(values).any():
        raise NoFigure("the thickness map holds no measured value")
    summary = ThicknessSummary.from_array(values)
    if summary is None:
        raise NoFigure("the thickness map holds no measured value")
    return summary


SEVERITY_ORDER = {"fail": 0, "review": 1, "info": 2}


def _mark_groups(marks: Sequence[Any], gap: float) -> list[list[Any]]:
    """Marks whose centres lie within ``gap`` of each other along the arc, together."""
    groups: list[list[Any]] = []
    for m in sorted(marks, key=lambda m: 0.5 * (m.arc0 + m.arc1)):
        centre = 0.5 * (m.arc0 + m.arc1)
        if groups and centre - 0.5 * (groups[-1][-1].arc0 + groups[-1][-1].arc1) <= gap:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _limits_pct(result: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    lim = ((result or {}).get("limits") or {}).get("cathode_thickness_max_deviation_pct") or {}
    review, fail = lim.get("review"), lim.get("fail")
    return (float(review) if review is not None else None, float(fail) if fail is not None else None)


def thickness_map_figure(
    thickness: Any,
    result: Mapping[str, Any] | None = None,
    *,
    title: str | None = None,
) -> bytes:
    """The unrolled cathode sheet: thickness against the cell median, findings and anatomy marked.

    The workstation's design: a diverging scale centred on the cell median (blue thinner,
    red thicker, ±30 % at its ends) with the recipe's review and fail deviations marked on the
    colour bar; findings outlined in their severity's colour and named; the cell's anatomy
    (tab window, the cathode's ends, one-sided or absent stretches, coating-edge bands)
    hatched and named as such — not defects. A long sheet is cut into up to four strips so a
    millimetre-sized patch stays visible. Heights are mm from slice 0's face, slice 0 at the top.

    Parameters
    ----------
    thickness : core.report.thickness.ThicknessSummary or ndarray
        The summary (or a bare 2-D map in µm, rows = slices).
    result : mapping, optional
        The inspection result: limits, findings and geometry to mark.
    title : str, optional

    Returns
    -------
    bytes
        PNG.
    """
    import matplotlib
    from matplotlib import patches, patheffects

    from core.describe import MINUS, number
    from core.report.thickness import SPAN, sheet_marks

    summary = _summary(thickness)
    values = summary.values_um
    if not np.isfinite(values).any():
        raise NoFigure("the thickness map holds no measured value")
    median = summary.median_um
    deviation = 100.0 * (values - median) / median
    frame = summary.frame()
    marks = sheet_marks(frame, result or {}) if result is not None else []
    review, fail = _limits_pct(result)
    arc0, arc1 = float(summary.arc_mm[0]), float(summary.arc_mm[-1])
    step = (arc1 - arc0) / max(summary.arc_mm.size - 1, 1)
    total = max(arc1 - arc0 + step, 1e-6)
    n_panels = int(np.clip(math.ceil(total / 250.0), 1, 4))
    edges = np.linspace(arc0 - step / 2, arc1 + step / 2, n_panels + 1)
    z_top, z_bottom = frame.z_top_mm, frame.z_bottom_mm
    span_pct = 100 * SPAN
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#CFCFCF")
    halo = [patheffects.withStroke(linewidth=2.6, foreground="white")]
    starts = summary.arc_mm[np.r_[np.nonzero(np.diff(summary.winding))[0] + 1]] if summary.winding.size else []
    with _rc():
        fig = _figure((7.0, 1.15 + 1.0 * n_panels), 1)[0]
        fig.clear()
        grid = fig.add_gridspec(n_panels, 2, width_ratios=[1, 0.022], hspace=0.85 if n_panels > 1 else 0.5,
                                left=0.085, right=0.86, top=1 - 0.62 / (1.15 + n_panels), bottom=0.5 / (1.15 + n_panels))
        image = None
        for i in range(n_panels):
            ax = fig.add_subplot(grid[i, 0])
            a, b = edges[i], edges[i + 1]
            cols = (summary.arc_mm >= a) & (summary.arc_mm < b + 1e-9)
            image = ax.imshow(np.ma.masked_invalid(deviation[:, cols]), cmap=cmap, vmin=-span_pct, vmax=span_pct,
                              extent=(a, b, z_bottom, z_top), aspect="auto", interpolation="nearest")
            for s0 in starts:
                if a <= s0 <= b:
                    ax.axvline(s0, color="#FFFFFF", linewidth=0.4, alpha=0.7)
            width = b - a
            height = z_bottom - z_top
            for m in marks:
                if m.arc1 < a or m.arc0 > b or m.kind == "finding":
                    continue
                if m.kind in ("anatomy", "band"):
                    x0, x1 = max(m.arc0, a), min(m.arc1, b)
                    rect = patches.Rectangle((x0, m.z0), max(x1 - x0, 0.004 * width), m.z1 - m.z0, fill=False,
                                             hatch="////", edgecolor="#4D4D4D", linewidth=0.6)
                    ax.add_patch(rect)
                    if m.kind == "anatomy":
                        ax.annotate(m.label, (0.5 * (x0 + x1), 0.0), xycoords=("data", "axes fraction"),
                                    xytext=(0, -2), textcoords="offset points", ha="center", va="top",
                                    color="#333333", fontsize=6.5, fontstyle="italic", annotation_clip=False)
                elif m.kind == "end":
                    ax.axvline(m.arc0, color="#333333", linewidth=0.9, linestyle="--")
            # Findings: a box a little larger than the finding (its colour stays visible inside),
            # one label for findings at one place.
            pad = 0.006 * width
            char = 0.0115 * width  # about one 7.5 pt character on a 5.6 in wide strip
            level_ends: list[float] = []  # where the last label of each row of labels ends
            for group in _mark_groups([m for m in marks if m.kind == "finding" and a <= 0.5 * (m.arc0 + m.arc1) <= b],
                                      0.015 * width):
                worst = min(group, key=lambda m: SEVERITY_ORDER.get(m.severity, 3))
                colour = SEVERITY_COLOURS.get(worst.severity, "#444444")
                x0 = min(m.arc0 for m in group) - pad
                x1 = max(m.arc1 for m in group) + pad
                z0 = min(m.z0 for m in group) - 0.08 * height
                z1 = max(m.z1 for m in group) + 0.08 * height
                rect = patches.Rectangle((x0, z0), x1 - x0, z1 - z0, fill=False, edgecolor=colour, linewidth=1.5,
                                         clip_on=False)
                ax.add_patch(rect)
                text = " · ".join(m.label for m in group)
                centre, half = 0.5 * (x0 + x1), 0.5 * len(text) * char
                level = next((i for i, end in enumerate(level_ends) if centre - half > end), len(level_ends))
                if level == len(level_ends):
                    level_ends.append(-math.inf)
                level_ends[level] = centre + half
                ax.annotate(text, (centre, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 4 + 10 * level),
                            textcoords="offset points", ha="center", va="bottom", color=colour, fontsize=7.5,
                            fontweight="bold", path_effects=halo, annotation_clip=False,
                            arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.6} if level else None)
            for m in marks:
                if m.kind == "band" and m.arc0 <= a + 0.01 * width:
                    ax.annotate("coating edge, not measured", (a, m.z0), xytext=(3, -1), textcoords="offset points",
                                va="top", fontsize=6, fontstyle="italic", color="#222222",
                                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                      "alpha": 0.8})
            ax.set_xlim(a, b)
            ax.set_ylim(z_bottom, z_top)
            ax.set_yticks([z_top, z_bottom])
            ax.set_yticklabels([number(z_top, "mm"), number(z_bottom, "mm")])
            ax.tick_params(axis="x", labelsize=6.5)
            if i == n_panels - 1:
                ax.set_xlabel("arc length along the cathode sheet from its inner end (mm)")
            if i == 0:
                ax.set_ylabel("z (mm)", labelpad=1)
        bar_ax = fig.add_subplot(grid[:, 1])
        bar = fig.colorbar(image, cax=bar_ax)
        ticks = {-span_pct: f"{MINUS}{number(span_pct, '%')} %", 0.0: "median", span_pct: f"+{number(span_pct, '%')} %"}
        for level, style, word in ((review, "--", "review"), (fail, "-", "fail")):
            if level is None:
                continue
            for sign in (-1, 1):
                bar.ax.axhline(sign * level, color="black", linewidth=1.4, linestyle=style)
                ticks[sign * level] = f"{'+' if sign > 0 else MINUS}{number(level, '%')} % {word}"
        bar.set_ticks(sorted(ticks))
        bar.set_ticklabels([ticks[t] for t in sorted(ticks)])
        bar.ax.tick_params(labelsize=6.5)
        fig.suptitle(title or f"Unrolled cathode sheet: thickness against the cell median ({number(median, 'µm')} µm)",
                     fontsize=8.5, y=0.995)
        return _png(fig)


def thickness_histogram_figure(thickness: Any, result: Mapping[str, Any] | None = None) -> bytes:
    """Histogram of every measured cathode sheet thickness sample, the cell median and the
    recipe's review and fail deviations either side of it.

    Parameters
    ----------
    thickness : core.report.thickness.ThicknessSummary or ndarray
        The summary (its histogram of all samples) or thickness samples in µm (NaN ignored).
    result : mapping, optional
        For the recipe's deviations (default ±10 % and ±20 %).

    Returns
    -------
    bytes
        PNG.
    """
    from core.describe import number
    from core.report.thickness import ThicknessSummary

    if thickness is None:
        raise NoFigure("the inspection gave no thickness values")
    if not isinstance(thickness, ThicknessSummary):
        values = np.asarray(thickness, dtype=np.float64).ravel()
        if np.isfinite(values).sum() < 2:
            raise NoFigure("fewer than two thickness values were measured")
        thickness = ThicknessSummary.from_array(values.reshape(1, -1))
    s = thickness
    if s.n < 2:
        raise NoFigure("fewer than two thickness values were measured")
    review, fail = _limits_pct(result)
    review = 10.0 if review is None else review
    fail = 20.0 if fail is None else fail
    with _rc():
        fig, ax = _figure((7.0, 2.5))
        ax.stairs(s.hist_counts, s.hist_edges, fill=True, color=OKABE_ITO["blue"], alpha=0.85)
        ax.axvline(s.median_um, color="black", linewidth=1.2, label=f"cell median {number(s.median_um, 'µm')} µm")
        for pct, colour, style, name in ((review, OKABE_ITO["orange"], "--", "review"),
                                         (fail, OKABE_ITO["vermillion"], "-.", "fail")):
            ax.axvline(s.median_um * (1 - pct / 100), color=colour, linestyle=style, linewidth=1.1,
                       label=f"±{number(pct, '%')} % ({name})")
            ax.axvline(s.median_um * (1 + pct / 100), color=colour, linestyle=style, linewidth=1.1)
        # The statistics as the result states them (the measurements table), the summary's else.
        metrics = (result or {}).get("metrics") or {}
        mean = metrics.get("cathode_sheet_thickness_mean_um") or s.mean_um
        std = metrics.get("cathode_sheet_thickness_std_um") or s.std_um
        ax.text(0.01, 0.95, f"n = {s.n}\nmean {number(mean, 'µm')} µm\nstd {number(std, 'µm')} µm\n"
                f"CV {number(100 * std / mean if mean else float('nan'), '%')} %", transform=ax.transAxes, va="top",
                fontsize=7,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#bbbbbb"})
        ax.set_xlabel("cathode sheet thickness (µm), every measured sample")
        ax.set_ylabel("samples")
        ax.set_title("Distribution of cathode sheet thickness")
        ax.legend(loc="upper right", frameon=False)
        fig.tight_layout()
        return _png(fig)
