"""Follow-up figures (matplotlib, Agg): PNG bytes for the report, the GUI and files.

* :func:`edge_map_png` — edge-energy map of one slice, voxels failing the quality mask grey;
* :func:`edge_vs_volume_png` — fragment mean edge energy against fragment volume, three size
  groups (the seed's Fig. 5c);
* :func:`grain_spread_png` — per-grain standard deviation against per-grain mean edge energy,
  coloured by the parent particle's damage class (the seed's Fig. 5f);
* :func:`size_vs_depth_png` — fragment size (D10/D50/D90) and cracking index per depth
  region from the current collector (the seed's Fig. 4);
* :func:`spectra_png` — normalised spectra with their half-jump energies.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

GROUP_COLOURS = {"small": "#D55E00", "medium": "#0072B2", "large": "#009E73"}
DAMAGE_COLOURS = {"least": "#009E73", "mild": "#E69F00", "severe": "#CC3311"}


def _figure(width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def edge_map_png(
    e0: np.ndarray,
    mask: np.ndarray,
    *,
    index: int | None = None,
    pixel_um: float | None = None,
    title: str = "Ni K-edge energy (half jump)",
    vrange: tuple[float, float] | None = None,
) -> bytes:
    """Edge-energy map of one slice (3-D: the middle z slice unless ``index``).

    Parameters
    ----------
    e0 : ndarray
        Edge energies (eV), 2-D or 3-D.
    mask : ndarray of bool
        Quality mask, same shape; other voxels drawn grey.
    index : int, optional
        z slice of a 3-D map.
    pixel_um : float, optional
        Pixel size for the axes in µm (pixels otherwise).
    title : str
        Figure title.
    vrange : (float, float), optional
        Colour range (default 2nd–98th percentile of kept voxels).

    Returns
    -------
    bytes
        PNG.
    """
    img, keep = np.asarray(e0), np.asarray(mask, bool)
    if img.ndim == 3:
        z = img.shape[0] // 2 if index is None else int(index)
        img, keep = img[z], keep[z]
        title = f"{title}, slice z={z}"
    shown = np.ma.masked_where(~keep | ~np.isfinite(img), img)
    vals = img[keep & np.isfinite(img)]
    if vrange is None:
        vrange = (
            (float(np.percentile(vals, 2)), float(np.percentile(vals, 98)))
            if vals.size
            else (0.0, 1.0)
        )
    fig, ax = _figure(6.0, 5.0)
    ax.set_facecolor("#B0B0B0")
    extent = None
    if pixel_um:
        extent = (0, img.shape[1] * pixel_um, img.shape[0] * pixel_um, 0)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
    else:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    im = ax.imshow(
        shown,
        cmap="viridis",
        vmin=vrange[0],
        vmax=vrange[1],
        extent=extent,
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax, label="edge energy (eV)")
    ax.set_title(title + "\n(grey: failed quality mask)", fontsize=9)
    return _png(fig)


def edge_vs_volume_png(
    fragment_rows: Sequence[dict[str, Any]], thresholds: Sequence[float] = ()
) -> bytes:
    """Fragment mean edge energy against fragment volume, by size group.

    Parameters
    ----------
    fragment_rows : sequence of dict
        Rows with ``volume_um3``, ``e0_mean_ev``, ``size_group``.
    thresholds : sequence of float
        Size-group volume thresholds (µm³), drawn as dashed lines.

    Returns
    -------
    bytes
        PNG.
    """
    fig, ax = _figure()
    for group, colour in GROUP_COLOURS.items():
        rows = [
            r
            for r in fragment_rows
            if r.get("size_group") == group and r.get("e0_mean_ev") is not None
        ]
        if not rows:
            continue
        v = np.array([r["volume_um3"] for r in rows])
        e = np.array([r["e0_mean_ev"] for r in rows])
        ax.scatter(
            v,
            e,
            s=14,
            c=colour,
            alpha=0.8,
            label=f"{group} (n={len(rows)}, spread {np.std(e):.2f} eV)",
        )
    for t in thresholds:
        ax.axvline(t, color="#777777", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("fragment volume (µm³)")
    ax.set_ylabel("mean edge energy (eV)")
    ax.set_title("Fragment edge energy vs volume", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _png(fig)


def grain_spread_png(grain_rows: Sequence[dict[str, Any]], min_voxels: int = 3) -> bytes:
    """Per-grain standard deviation against mean edge energy, by parent damage class.

    Parameters
    ----------
    grain_rows : sequence of dict
        Rows with ``e0_mean_ev``, ``e0_std_ev``, ``damage`` and ``n_valid``.
    min_voxels : int
        Grains with fewer valid voxels are left out (their std means nothing).

    Returns
    -------
    bytes
        PNG.
    """
    fig, ax = _figure()
    for damage, colour in DAMAGE_COLOURS.items():
        rows = [
            r
            for r in grain_rows
            if r.get("damage") == damage
            and r.get("e0_std_ev") is not None
            and int(r.get("n_valid") or 0) >= min_voxels
        ]
        if not rows:
            continue
        ax.scatter(
            [r["e0_mean_ev"] for r in rows],
            [r["e0_std_ev"] for r in rows],
            s=12,
            c=colour,
            alpha=0.8,
            label=f"{damage} damage (n={len(rows)})",
        )
    ax.set_xlabel("grain mean edge energy (eV)")
    ax.set_ylabel("grain std of edge energy (eV)")
    ax.set_title("Intra-granular heterogeneity", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _png(fig)


def size_vs_depth_png(depth_rows: Sequence[dict[str, Any]]) -> bytes:
    """Fragment size (D50, D10–D90 bars) and cracking index per depth region.

    Parameters
    ----------
    depth_rows : sequence of dict
        Rows of :func:`core.followup.particles.depth_profile`.

    Returns
    -------
    bytes
        PNG.
    """
    fig, ax = _figure(6.5, 4.6)
    mid = np.array([(r["depth_from_um"] + r["depth_to_um"]) / 2 for r in depth_rows])
    d50 = np.array([r["fragment_d50_um"] for r in depth_rows], float)
    d10 = np.array([r["fragment_d10_um"] for r in depth_rows], float)
    d90 = np.array([r["fragment_d90_um"] for r in depth_rows], float)
    d50v = np.array([r["fragment_d50v_um"] for r in depth_rows], float)
    ax.errorbar(
        mid,
        d50,
        yerr=[d50 - d10, d90 - d50],
        fmt="o-",
        color="#0072B2",
        capsize=4,
        label="D50 (bars D10–D90), number",
    )
    ax.plot(mid, d50v, "s--", color="#56B4E9", label="D50, volume-weighted")
    for r, x in zip(depth_rows, mid, strict=True):
        ax.annotate(
            f"n={r['n_fragments']}",
            (x, 0),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            xycoords=("data", "axes fraction"),
        )
    ax.set_xlabel("depth from current collector (µm)")
    ax.set_ylabel("fragment equivalent diameter (µm)")
    ax2 = ax.twinx()
    ax2.plot(
        mid,
        [r["cracking_index"] for r in depth_rows],
        "^:",
        color="#CC3311",
        label="cracking index",
    )
    ax2.set_ylabel("cracking index (extra fragments / particle)", color="#CC3311")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ci = [r["cracking_index"] for r in depth_rows if r["cracking_index"] == r["cracking_index"]]
    ax2.set_ylim(0.0, max(1.0, 1.15 * max(ci, default=0.0)))
    ax.legend(
        lines[0] + lines2[0],
        lines[1] + lines2[1],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=3,
        frameon=False,
    )
    ax.set_title("Fragment size vs depth", fontsize=10)
    return _png(fig)


def spectra_png(
    energies: np.ndarray | Sequence[np.ndarray],
    norm: np.ndarray | Sequence[np.ndarray],
    names: Sequence[str],
    e0_half: Sequence[float | None],
) -> bytes:
    """Normalised spectra, with their half-jump energies marked.

    Parameters
    ----------
    energies : ndarray or sequence of ndarray
        eV: one axis shared by all spectra, or one axis per spectrum.
    norm : ndarray or sequence of ndarray
        (n_energies, n_spectra) normalised spectra, or one 1-D array per spectrum.
    names : sequence of str
        Legend names.
    e0_half : sequence of float or None
        Half-jump energies (eV).

    Returns
    -------
    bytes
        PNG.
    """
    k = len(names)
    if isinstance(norm, np.ndarray) and norm.ndim == 2:
        curves = [norm[:, j] for j in range(k)]
    else:
        curves = [np.asarray(c, dtype=np.float64) for c in norm]
    if isinstance(energies, np.ndarray) and energies.ndim == 1:
        axes = [energies] * k
    else:
        axes = [np.asarray(a, dtype=np.float64) for a in energies]
    fig, ax = _figure()
    for j, name in enumerate(names):
        (line,) = ax.plot(
            axes[j],
            curves[j],
            lw=1.2,
            label=f"{name}" + (f" E½={e0_half[j]:.2f} eV" if e0_half[j] else ""),
        )
        if e0_half[j]:
            ax.axvline(e0_half[j], color=line.get_color(), lw=0.8, ls="--")
    ax.axhline(0.5, color="#999999", lw=0.6)
    edges = [v for v in e0_half if v]
    lo = min(float(a[0]) for a in axes) if axes else 0.0
    hi = max(float(a[-1]) for a in axes) if axes else 1.0
    if edges and hi - lo > 200.0:  # zoom on the edge region
        centre = float(np.median(edges))
        ax.set_xlim(centre - 40.0, centre + 80.0)
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel("normalised μ")
    ax.legend(fontsize=8)
    ax.set_title("Normalised XANES", fontsize=10)
    return _png(fig)
