"""Shared benchmark input: a 1000 × 1000 × N synthetic 18650 written as uint16 TIFF."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from core.io import write_tiff
from core.io.volume import Volume
from core.phantom import Artifacts, CellSpec, default_defects, make_cell


def benchmark_cell(n_slices: int = 100, folder: str | Path | None = None) -> tuple[Path, Volume]:
    """Render an 18650 at 19 µm (≈1000 × 1000 px), defects included, and save it as uint16."""
    spec = CellSpec(kind="18650", voxel_size_um=18.85, n_slices=n_slices, ovality=0.01, center_offset_um=(150.0, -200.0))
    cell = make_cell(spec, default_defects(spec, np.random.default_rng(1)), Artifacts(), seed=1)
    scaled = np.clip((cell.volume.array + 1.0) * 8000.0, 0, 65535).astype(np.uint16)
    volume = Volume(scaled, spacing_um=cell.volume.spacing_um, cell_id="bench", source="benchmark")
    folder = Path(folder or tempfile.mkdtemp(prefix="cellqc-bench-"))
    path = folder / "bench_cell.tif"
    write_tiff(volume, path)
    return path, volume
