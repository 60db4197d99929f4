"""Draw the real 21700's findings on its unrolled slices (``docs/images/real-21700-findings.png``).

Runs what ``cellqc inspect ../shared/data/real/cell21700_top --voxel-size 67.94,33.97,33.97``
runs (``core.inspect.inspect_volume``, recipe chosen from the can), then, for every place the
verdict names (a FAIL or REVIEW finding that is no other's relative, with its related ones),
unrolls that finding's slice about the roll's frame around its angle and radius and marks every
finding of the group. Prints the verdict and each panel's findings, so that what
``docs/validation.md`` says of the picture can be checked against it.

Run::

    .venv/bin/python scripts/real_21700_findings.py [--data DIR] [--out PNG]
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "real" / "cell21700_top"
SPACING_UM = (67.94, 33.97, 33.97)


def _places(findings: list[dict]) -> list[list[dict]]:
    """FAIL/REVIEW findings grouped by place: each primary (or unrelated) one with its relatives."""
    by_id = {f["id"]: f for f in findings}
    shown = [f for f in findings if f["severity"] in ("fail", "review")]
    places, taken = [], set()
    for f in shown:
        if f["id"] in taken or (f.get("related") and not f.get("primary")):
            continue
        group = [f] + [by_id[i] for i in f.get("related", []) if i in by_id]
        taken.update(g["id"] for g in group)
        places.append(group)
    places += [[f] for f in shown if f["id"] not in taken]  # relatives whose primary is information
    # FAIL first, then the places with most findings, then the largest value.
    return sorted(places, key=lambda g: (g[0]["severity"] != "fail", -len(g), -abs(float(g[0]["value"]))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "real-21700-findings.png")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.geometry.unwrap import unwrap
    from core.inspect import inspect_volume
    from core.io import read_volume

    volume = read_volume(args.data, voxel_size=SPACING_UM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        inspection = inspect_volume(volume, None, cell_id="cell21700_top")
    result, g = inspection.result, inspection.geometry
    places = _places(result["findings"])
    print(f"verdict {result['verdict']}; {len(places)} place(s)")
    if not places:
        return 0
    n_cols = min(len(places), 3)
    n_rows = int(math.ceil(len(places) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.8 * n_cols, 3.6 * n_rows), squeeze=False)
    for ax in axes.ravel()[len(places):]:
        ax.set_visible(False)
    half_deg, half_mm = 50.0, 1.2
    for ax, group in zip(axes.ravel(), places, strict=False):
        head = group[0]
        z = int(round(head["centroid_zyx_px"][0]))
        frame = g.frame_at(float(z))
        cy, cx = frame.center_yx_px
        _, y, x = head["centroid_zyx_px"]
        radius_mm = math.hypot(y - cy, x - cx) * g.pixel_um / 1000.0
        angle = float(head["angle_deg"]) if head.get("angle_deg") is not None else 0.0
        t = np.radians(np.linspace(angle - half_deg, angle + half_deg, 500)) % (2 * np.pi)
        lo_mm, hi_mm = max(radius_mm - half_mm, 0.0), radius_mm + half_mm
        rho_px = np.linspace(lo_mm, hi_mm, 300) * 1000.0 / g.pixel_um
        image = unwrap(np.asarray(volume.slice(z), dtype=np.float32), frame, t, rho_px)
        ax.imshow(image.T, cmap="gray", aspect="auto", origin="upper",
                  extent=(angle - half_deg, angle + half_deg, hi_mm, lo_mm))
        for i, f in enumerate(group):
            fz, fy, fx = f["centroid_zyx_px"]
            fr = g.frame_at(float(fz))
            r_mm = math.hypot(fy - fr.center_yx_px[0], fx - fr.center_yx_px[1]) * g.pixel_um / 1000.0
            a = float(f["angle_deg"]) if f.get("angle_deg") is not None else angle
            a = angle + ((a - angle + 180.0) % 360.0 - 180.0)
            ax.plot([a], [r_mm], marker="o", markersize=14, markerfacecolor="none",
                    markeredgecolor="red" if f["severity"] == "fail" else "orange", markeredgewidth=1.5)
            ax.annotate(f["id"], (a, r_mm), xytext=(10, -10 + 12 * i), textcoords="offset points", color="yellow", fontsize=9)
        ids = ", ".join(f["id"] for f in group)
        ax.set_title(f"slice {z}: {ids}", fontsize=9)
        ax.set_xlabel("angle (°)")
        ax.set_ylabel("radius (mm)")
        print(f"slice {z}, {angle:.0f}°, r {radius_mm:.2f} mm: "
              + "; ".join(f"{f['id']} {f['severity']} {f['message']}" for f in group))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
