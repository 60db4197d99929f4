"""Exact per-voxel class truth of a synthetic cell (for training and scoring segmenters).

The renderer is linear in the materials' attenuations: every voxel is a partial-volume
average of the materials it covers, defects included. Rendering the same cell with the
attenuations replaced by a class indicator (1 for the materials of one class, 0 for the
others) and no artifacts therefore gives, exactly, the fraction of each voxel that the class
fills. ``class_fractions`` does that once per class but the first: class 0 is the rest (air is
never rendered: outside the can the image is simply zero).

The five classes of the learned segmenter (``core.segment``):

0. background, can and separator: air, gas, steel, tabs (Al and Ni), foreign particles,
   separator film, polymer parts (end tape, gasket, insulators) and the cap's Al vent plate;
1. electrolyte and void: free liquid or gas between solids — delamination voids, the gap
   between the roll and the can;
2. anode coating (graphite);
3. Cu current collector;
4. cathode sheet: NMC coating and Al foil.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping

import numpy as np

from core.phantom.spec import MATERIAL_MU, Artifacts, CellSpec, Defect

CLASSES = ("background_can_separator", "electrolyte_void", "anode_coating", "cu_collector", "cathode_sheet")
MATERIAL_CLASS = {
    "air": 0, "gas": 0, "steel": 0, "tab": 0, "particle": 0, "separator": 0,
    "tab_al": 0, "tab_ni": 0, "polymer": 0, "al_part": 0,
    "electrolyte": 1, "void": 1,
    "anode": 2,
    "cu": 3,
    "cathode": 4, "al": 4,
}
_LOCK = threading.RLock()


@contextlib.contextmanager
def material_values(values: Mapping[str, float]) -> Iterator[None]:
    """Render with other attenuations (e.g. jittered contrasts); restores them on exit.

    The renderer reads :data:`MATERIAL_MU` at call time, so the table is changed in place
    under a lock; concurrent renders in other threads wait.
    """
    unknown = set(values) - set(MATERIAL_MU)
    if unknown:
        raise KeyError(f"unknown material(s): {', '.join(sorted(unknown))}")
    with _LOCK:
        saved = dict(MATERIAL_MU)
        try:
            MATERIAL_MU.update({k: float(v) for k, v in values.items()})
            yield
        finally:
            MATERIAL_MU.clear()
            MATERIAL_MU.update(saved)


def class_fractions(spec: CellSpec, defects: list[Defect] | None = None, seed: int = 0) -> np.ndarray:
    """Fraction of every voxel filled by each class: float32 (n_classes, z, y, x), sums to 1.

    ``spec``, ``defects`` and ``seed`` must be those of the :func:`core.phantom.make_cell`
    call whose truth is wanted (the seed fixes the coating jitter). The anatomy is rendered
    too (electrode ends and single-sided stretches leave electrolyte, tabs are class 0, roll
    ends mix the sheets with gas and electrolyte exactly as in the image).
    """
    from core.phantom.render import make_cell

    n = len(CLASSES)
    out = []
    with _LOCK:
        for c in range(1, n):
            onehot = {m: (1.0 if MATERIAL_CLASS[m] == c else 0.0) for m in MATERIAL_MU}
            with material_values(onehot):
                cell = make_cell(spec, defects, Artifacts.clean(), seed=seed)
            out.append(np.clip(cell.volume.array, 0.0, 1.0))
    rest = np.clip(1.0 - np.sum(out, axis=0), 0.0, 1.0)
    frac = np.stack([rest, *out]).astype(np.float32)
    frac /= np.maximum(frac.sum(axis=0, keepdims=True), 1e-6)
    return frac


# A 10 µm Cu foil never fills more than half of a 20 µm voxel: a plain majority vote would
# erase it at coarse voxel sizes. Hard labels weigh the fractions first; the segmenter's
# probabilities get the same weights (``core.segment``), so truth and prediction agree.
DECISION_WEIGHTS = (1.0, 1.0, 1.0, 2.5, 1.0)


def class_labels(fractions: np.ndarray, weights: tuple[float, ...] = DECISION_WEIGHTS) -> np.ndarray:
    """The class of every voxel (uint8): the largest weighted fraction (or probability)."""
    w = np.asarray(weights, np.float32).reshape((-1,) + (1,) * (fractions.ndim - 1))
    return np.argmax(fractions * w, axis=0).astype(np.uint8)
