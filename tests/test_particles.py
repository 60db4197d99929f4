"""Foreign particles: recall, size and no false particle on a cell's tabs, on random cells.

Demanded, over random cells (18650 and 21700, 10–25 µm voxels, slices up to 1.5× coarser,
noise, rings, cupping, blur, off-centre oval rolls, a real cell's anatomy with its Al and Ni
tabs) each with two dense spheres of 80–200 µm (at least 4 voxels): every particle found
(a finding within max(100 µm, its diameter) of its centre), its equivalent diameter within
max(20 %, 1.5 voxels), and no other review/fail particle finding (a tab's bright specks read
as 110–123 µm particles in a validation cell before the rule that a tab runs along the axis).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from core.detectors import DETECTORS
from core.detectors.base import DetectorContext
from core.geometry import measure_geometry
from core.inspect import geometry_params
from core.phantom import ForeignParticle, make_cell
from core.phantom.render import defect_placement_problem
from core.recipe import load_recipe
from tests.synthetic import random_conditions

pytestmark = pytest.mark.slow  # a few rendered cells of 20–40 slices


# Seed 9 is a 107 µm particle at 25 µm voxels with heavy blur that the opening used to erase
# (a 3 × 3 disc); twelve seeds pass, four run in CI.
@pytest.mark.parametrize("seed", [0, 1, 2, 9])
def test_particles_found_and_sized_and_tabs_are_no_particles(seed):
    rng = np.random.default_rng([seed, 4242])
    voxel = float(rng.choice([10.0, 15.0, 20.0, 25.0]))
    dz = voxel * float(rng.choice([1.0, 1.0, 1.5]))
    n_slices = int(math.ceil(2.0 * 200.0 / dz)) + 6
    spec, artifacts = random_conditions(seed + 50, voxel_choices=(voxel,), n_slices=n_slices)
    spec = replace(spec, slice_spacing_um=dz)
    particles: list[ForeignParticle] = []
    while len(particles) < 2:
        windings = spec.windings
        p = ForeignParticle(radius_um=spec.mandrel_radius_um + spec.pitch_um * float(rng.uniform(3.3, windings - 3.0)),
                            angle_deg=float(rng.uniform(0, 360)), diameter_um=float(rng.uniform(max(80.0, 4 * voxel), 200.0)),
                            z_center=float(rng.uniform(0.4, 0.6) * n_slices))
        far = all(abs((p.angle_deg - q.angle_deg + 180) % 360 - 180) > 40 for q in particles)
        if far and not defect_placement_problem(spec, p):
            particles.append(p)
    cell = make_cell(spec, particles, artifacts, seed=seed)
    recipe = load_recipe("18650-nmc" if spec.kind == "18650" else "21700-nmc")
    geometry = measure_geometry(cell.volume, geometry_params(recipe))
    out = DETECTORS["foreign_particle"](DetectorContext(volume=cell.volume, geometry=geometry,
                                                       rules=recipe.rules.get("foreign_particle", {}),
                                                       cell=recipe.cell))
    scale = np.array(cell.volume.spacing_um)
    truths = [d for d in cell.truth["defects"] if d["kind"] == "foreign_particle"]
    assert len(truths) == 2
    matched = set()
    for t in truths:
        centre = np.array(t["centroid_zyx_px"]) * scale
        d_true = t["params"]["diameter_um"]
        near = [i for i, f in enumerate(out.findings)
                if np.linalg.norm(np.array(f.centroid_zyx_px) * scale - centre) <= max(100.0, d_true)]
        assert near, (spec.kind, voxel, dz, d_true, [(f.value, f.centroid_zyx_px) for f in out.findings])
        best = max(near, key=lambda i: out.findings[i].value)
        assert abs(out.findings[best].value - d_true) <= max(0.2 * d_true, 1.5 * voxel), (
            spec.kind, voxel, dz, d_true, out.findings[best].value)
        matched.update(near)
    others = [f for i, f in enumerate(out.findings) if i not in matched and f.severity in ("review", "fail")]
    assert not others, (spec.kind, voxel, dz, [(f.value, f.angle_deg, f.bbox_zyx_px) for f in others])
