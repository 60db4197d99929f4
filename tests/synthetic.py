"""Randomised synthetic cells for geometry and detector tests (ground truth from the phantom).

Conditions are drawn from a seeded generator so that every run is reproducible, yet the
tests cover many combinations of voxel size, noise, rings, cupping, blur, placement,
ovality and spiral start instead of one tuned volume.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np

from core.phantom import (
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    DelaminationVoid,
    make_cell,
)
from core.phantom.anatomy import random_anatomy
from core.phantom.render import defect_placement_problem


def random_conditions(seed: int, voxel_choices=(15.0, 20.0, 25.0), n_slices: int = 8,
                      kind: str | None = None) -> tuple[CellSpec, Artifacts]:
    """A cell spec and imaging artifacts drawn from realistic ranges."""
    rng = np.random.default_rng(1000 + seed)
    voxel = float(rng.choice(voxel_choices))
    spec = CellSpec(
        kind=kind or str(rng.choice(["18650", "21700"])),
        voxel_size_um=voxel,
        n_slices=n_slices,
        ovality=float(rng.uniform(0.0, 0.02)),
        ovality_angle_deg=float(rng.uniform(0, 180)),
        spiral_start_deg=float(rng.uniform(0, 360)),
        center_offset_um=(float(rng.uniform(-600, 600)), float(rng.uniform(-600, 600))),
        coating_jitter=0.02,
    )
    # A real cell's anatomy, drawn at random: electrode ends, one-sided stretches, tab window
    # and tabs, an irregular innermost turn (what every healthy cell has).
    spec = replace(spec, anatomy=random_anatomy(np.random.default_rng(3000 + seed), spec.kind, spec=spec))
    artifacts = Artifacts(
        blur_sigma_px=float(rng.uniform(0.5, 1.0)),
        noise_sigma=float(rng.uniform(0.04, 0.10)),
        ring_count=int(rng.integers(0, 9)),
        ring_amplitude=float(rng.uniform(0.03, 0.10)),
        cupping=float(rng.uniform(0.0, 0.2)),
    )
    return spec, artifacts


def _angles(rng: np.random.Generator, n: int) -> list[float]:
    """n angles at least 360/(n+1) degrees apart, randomly rotated."""
    base = rng.uniform(0, 360)
    step = 360.0 / n
    return [float((base + i * step + rng.uniform(-0.15, 0.15) * step) % 360) for i in range(n)]


def defective_conditions(seed: int, n_slices: int = 8):
    """A cell with two voids, two deflections and a thinned patch at random places."""
    spec, artifacts = random_conditions(seed, n_slices=n_slices)
    rng = np.random.default_rng(2000 + seed)
    v = spec.voxel_size_um
    n = spec.windings
    zc = (spec.n_slices - 1) / 2
    height = (spec.n_slices - 2) * v
    angles = _angles(rng, 5)
    windings = rng.choice(np.arange(3, n - 3), size=5, replace=False)
    defects = []
    for i in range(2):
        thickness = float(max(2.2 * v, rng.uniform(35.0, 50.0)))
        defects.append(DelaminationVoid(
            winding=int(windings[i]), angle_deg=angles[i], thickness_um=thickness,
            arc_length_um=float(rng.uniform(500, 900)), height_um=float(height),
            z_center=zc, side=str(rng.choice(["inner", "outer"])),
            depth_um=float(max(0.0, min(10.0, 60.0 - thickness - 2.0)))))
    for i in range(2, 4):
        defects.append(CollectorDeflection(
            winding=int(windings[i]), angle_deg=angles[i], amplitude_um=float(rng.uniform(40, 70)),
            angular_span_deg=float(rng.uniform(20, 35)), z_center=zc, height_span_um=float(height * 1.6)))
    defects.append(CoatingPatch(
        winding=int(windings[4]), angle_deg=angles[4], sheet_change=float(rng.uniform(-0.3, -0.22)),
        arc_length_um=float(rng.uniform(1200, 2000)), height_um=float(height), z_center=zc))
    for d in defects:  # where its layers exist: not on an electrode's end or in the tab window
        _place(spec, d, rng)
    return spec, defects, artifacts


def _place(spec: CellSpec, defect, rng: np.random.Generator) -> None:
    """Move a layer defect (same kind and size) to the nearest place its layers exist."""
    k0, a0 = defect.winding, defect.angle_deg
    for dk in (0, 1, -1, 2, -2, 3, -3):
        for da in range(0, 360, 10):
            defect.winding, defect.angle_deg = k0 + dk, (a0 + da) % 360.0
            if 3 <= defect.winding < spec.windings - 3 and not defect_placement_problem(spec, defect):
                return
    raise ValueError(f"no place for {defect!r}")


@functools.cache
def defective_cell(seed: int):
    spec, defects, artifacts = defective_conditions(seed)
    return make_cell(spec, defects, artifacts, seed=seed)


@functools.cache
def healthy_cell(seed: int, n_slices: int = 3):
    spec, artifacts = random_conditions(seed, n_slices=n_slices)
    return make_cell(spec, [], artifacts, seed=seed)


@functools.cache
def inspected(kind: str, seed: int):
    """Inspect a cached synthetic cell once per test session."""
    from core.inspect import inspect_volume

    cell = defective_cell(seed) if kind == "defective" else healthy_cell(seed)
    recipe = "21700-nmc" if cell.truth["spec"]["kind"] == "21700" else "18650-nmc"
    return cell, inspect_volume(cell.volume, recipe)


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def distance_px(a, b) -> float:
    return math.dist(a, b)
