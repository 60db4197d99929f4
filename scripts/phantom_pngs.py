"""Save PNGs of a synthetic cell for a visual check: a whole slice, defect close-ups and side
views of the top and bottom of a cell.

Run: ``.venv/bin/python scripts/phantom_pngs.py [OUT_DIR]`` (default /tmp/cellqc_pngs).
Writes ``phantom_slice.png`` (the centre slice of the demo-like cell with realistic artifacts,
truth defect boxes in colour), ``phantom_defects.png`` (one close-up per defect: the
realistic render and the noise-free render side by side, the truth box drawn on both),
``phantom_side_top.png`` (a 21700's top at the real scan's voxels, 67.94 × 33.97 × 33.97 µm:
side view through the axis with the truth's groove, crimp, cap and roll-end heights marked,
above the real 21700 top scan's side view ``vol[:, 364, :]`` when ``../shared/data/real`` is
there) and ``phantom_side_bottom.png`` (an 18650's bottom: roll end, negative tab, can
bottom).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from core.phantom import Artifacts, CellSpec, default_defects, make_cell  # noqa: E402

COLOURS = {
    "collector_deflection": "tab:red",
    "delamination": "tab:cyan",
    "coating_patch": "tab:orange",
    "foreign_particle": "tab:green",
}


def main(out_dir: str = "/tmp/cellqc_pngs") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = CellSpec(
        kind="18650",
        voxel_size_um=12.0,
        n_slices=9,
        ovality=0.01,
        ovality_angle_deg=25.0,
        center_offset_um=(300.0, -450.0),
    )
    defects = default_defects(spec, np.random.default_rng(7))
    real = make_cell(spec, defects, Artifacts(), seed=7)
    clean = make_cell(spec, defects, Artifacts.clean(), seed=7)
    truth = real.truth
    zc = spec.n_slices // 2

    fig, ax = plt.subplots(figsize=(11, 11))
    ax.imshow(real.volume.array[zc], cmap="gray", vmin=-0.1, vmax=3.0)
    for d in truth["defects"]:
        z0, y0, x0, z1, y1, x1 = d["bbox_zyx_px"]
        ax.add_patch(
            Rectangle(
                (x0 - 6, y0 - 6),
                x1 - x0 + 12,
                y1 - y0 + 12,
                fill=False,
                ec=COLOURS[d["kind"]],
                lw=1.5,
            )
        )
        ax.text(x1 + 8, y0, d["kind"], color=COLOURS[d["kind"]], fontsize=9)
    cy, cx = truth["axis_center_yx_px"][zc]
    ax.plot([cx], [cy], "y+", ms=12)
    size = truth["shape_zyx"][1]
    ax.plot([(size - 1) / 2], [(size - 1) / 2], "m x", ms=10)
    ax.set_title(
        f"synthetic 18650, slice {zc}, {spec.voxel_size_um:g} µm voxels, "
        f"{truth['roll']['windings']} windings (+ cell axis, x image centre)"
    )
    fig.savefig(out / "phantom_slice.png", dpi=90, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(len(truth["defects"]), 2, figsize=(10, 4.6 * len(truth["defects"])))
    for row, d in zip(axes, truth["defects"], strict=True):
        z0, y0, x0, z1, y1, x1 = d["bbox_zyx_px"]
        z = int(round(d["centroid_zyx_px"][0]))
        pad = 25
        ys = slice(max(y0 - pad, 0), y1 + pad)
        xs = slice(max(x0 - pad, 0), x1 + pad)
        for ax, cell, label in ((row[0], real, "realistic"), (row[1], clean, "noise-free")):
            ax.imshow(
                cell.volume.array[z][ys, xs],
                cmap="gray",
                vmin=-0.1,
                vmax=3.0,
                extent=(xs.start - 0.5, xs.stop - 0.5, ys.stop - 0.5, ys.start - 0.5),
            )
            ax.add_patch(
                Rectangle(
                    (x0 - 0.5, y0 - 0.5),
                    x1 - x0,
                    y1 - y0,
                    fill=False,
                    ec=COLOURS[d["kind"]],
                    lw=1.2,
                )
            )
            ax.set_title(
                f"{d['kind']} ({label}), slice {z}, winding {d['winding']}, {d['angle_deg']:.0f}°",
                fontsize=9,
            )
    fig.tight_layout()
    fig.savefig(out / "phantom_defects.png", dpi=90)
    plt.close(fig)
    side_views(out)
    print(f"wrote {out / 'phantom_slice.png'}, {out / 'phantom_defects.png'}, "
          f"{out / 'phantom_side_top.png'} and {out / 'phantom_side_bottom.png'}")


def _real_top() -> np.ndarray | None:
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "cell21700_top"
    files = sorted(folder.glob("im*.tif"))
    if not files:
        return None
    import tifffile

    return np.stack([tifffile.imread(f) for f in files])


def _side(ax, cell, title: str) -> None:
    truth = cell.truth
    vol = cell.volume.array
    dz, v, _ = truth["spacing_um"]
    cy, _ = truth["axis_center_yx_px"][0]
    ax.imshow(vol[:, int(round(cy)), :], cmap="gray", vmin=-0.1, vmax=3.0, aspect=dz / v)
    can = truth["anatomy"]["can"]
    marks = {"groove": can["groove"]["z_range_px"], "crimp": can["crimp"]["z_range_px"],
             "cap": can["cap"]["z_range_px"], "can bottom": can["bottom"]["z_range_px"]}
    for side, end in truth["anatomy"]["roll_ends"].items():
        marks[f"{side} separator edge"] = [end["separator_edge_z_px"]] * 2
        marks[f"{side} anode edge"] = [end["anode_edge_z_px"]] * 2
    nx = vol.shape[2]
    for i, (name, (z0, z1)) in enumerate(marks.items()):
        if -0.5 <= z1 and z0 <= vol.shape[0] - 0.5:
            colour = f"C{i}"
            ax.axhline(z0, color=colour, lw=0.6, ls="--")
            ax.axhline(z1, color=colour, lw=0.6, ls="--")
            ax.text(nx + 4, 0.5 * (z0 + z1), name, color=colour, fontsize=8, va="center")
    ax.set_title(title)


def side_views(out: Path) -> None:
    """Side views through the axis of a synthetic top and bottom of a cell."""
    from core.phantom import random_anatomy

    spec = CellSpec(kind="21700", voxel_size_um=33.97, slice_spacing_um=67.94, region="top")
    top = make_cell(spec, [], Artifacts(), seed=3)
    real = _real_top()
    fig, axes = plt.subplots(2 if real is not None else 1, 1, figsize=(13, 9 if real is not None else 5),
                             squeeze=False)
    _side(axes[0, 0], top, "synthetic 21700 top (default anatomy), 67.94 × 33.97 × 33.97 µm voxels")
    if real is not None:
        axes[1, 0].imshow(real[:, 364, :], cmap="gray", aspect=67.94 / 33.97)
        axes[1, 0].set_title("real 21700 top (../shared/data/real/cell21700_top), vol[:, 364, :]")
    fig.tight_layout()
    fig.savefig(out / "phantom_side_top.png", dpi=80)
    plt.close(fig)
    rng = np.random.default_rng(11)
    spec = CellSpec(kind="18650", voxel_size_um=25.0, slice_spacing_um=50.0, region="bottom")
    spec = CellSpec(kind="18650", voxel_size_um=25.0, slice_spacing_um=50.0, region="bottom",
                    anatomy=random_anatomy(rng, "18650", spec))
    bottom = make_cell(spec, [], Artifacts(), seed=11)
    fig, ax = plt.subplots(figsize=(13, 5))
    _side(ax, bottom, "synthetic 18650 bottom (random anatomy, seed 11), 50 × 25 × 25 µm voxels")
    fig.tight_layout()
    fig.savefig(out / "phantom_side_bottom.png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main(*sys.argv[1:])
