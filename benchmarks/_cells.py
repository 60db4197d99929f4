"""Shared benchmark inputs: synthetic 18650 cells written as uint16 TIFF."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from core.io import write_tiff
from core.io.volume import Volume
from core.phantom import Artifacts, CellSpec, default_defects, make_cell

#: The value mapping of ``cellqc phantom --dtype uint16`` (qc_app/commands/phantom_cmd.py).
UINT16_OFFSET, UINT16_SCALE = -1.0, 8000.0


def _to_uint16(array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=np.uint16)
    for z in range(array.shape[0]):  # a slice at a time: no float64 copy of the volume
        out[z] = np.clip(np.rint((array[z].astype(np.float64) - UINT16_OFFSET) * UINT16_SCALE), 0, 65535)
    return out


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


def issue18_cell(folder: str | Path, n_slices: int = 100, voxel_size_um: float = 20.0,
                 image_size_px: int = 1000, seed: int = 1) -> Path:
    """Issue 18's case: a generated 18650, 20 µm, 1000 × 1000 × 100 uint16 TIFF (200 MB).

    The four default defects, realistic artifacts (``Artifacts()``), a slightly oval roll off
    the image centre. Written once under ``folder`` (the name says the parameters) and reused.
    """
    folder = Path(folder)
    path = folder / f"issue18_18650_{voxel_size_um:g}um_{image_size_px}x{image_size_px}x{n_slices}_s{seed}.tif"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    spec = CellSpec(kind="18650", voxel_size_um=voxel_size_um, n_slices=n_slices, image_size_px=image_size_px,
                    ovality=0.01, center_offset_um=(150.0, -200.0))
    cell = make_cell(spec, default_defects(spec, np.random.default_rng(seed)), Artifacts(), seed=seed,
                     cell_id="issue18")
    volume = Volume(_to_uint16(cell.volume.array), spacing_um=cell.volume.spacing_um, cell_id="issue18",
                    source="benchmark")
    del cell
    write_tiff(volume, path)
    return path
