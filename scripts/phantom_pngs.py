"""Save PNGs of a synthetic cell for a visual check: a whole slice and defect close-ups.

Run: ``.venv/bin/python scripts/phantom_pngs.py [OUT_DIR]`` (default /tmp/cellqc_pngs).
Writes ``phantom_slice.png`` (the centre slice of the demo-like cell with realistic artifacts,
truth defect boxes in colour) and ``phantom_defects.png`` (one close-up per defect: the
realistic render and the noise-free render side by side, the truth box drawn on both).
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
    print(f"wrote {out / 'phantom_slice.png'} and {out / 'phantom_defects.png'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
