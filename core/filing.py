"""Inspect a file and file everything: JSON result, SQLite log row, PDF report.

The log row is ``running`` before any work starts and becomes ``complete`` in one
transaction with its findings; an error or a cancel marks it ``failed``. Files are written
under a temporary name and renamed, so nothing half-written ever carries a final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import __version__
from core.inspect import Inspection, inspect_volume
from core.io import read_volume
from core.recipe import Recipe, is_auto, load_recipe


def write_json_atomic(data: Any, path: str | Path) -> Path:
    """Write JSON to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def report_inputs(inspection: Inspection, inspection_id: int | None = None):
    """The report's figure data from an inspection (volume, unrolled thickness map)."""
    from core.report import ReportInputs

    umap = inspection.maps.get("cathode_thickness_um")
    return ReportInputs(
        result=inspection.result,
        volume=inspection.volume,
        thickness_map_um=umap.values if umap is not None and umap.values.size else None,
        thickness_map_extent_mm=umap.extent_mm if umap is not None and umap.values.size else None,
        inspection_id=inspection_id,
    )


def save_maps(inspection: Inspection, folder: str | Path) -> list[Path]:
    """Write the unrolled maps (``NAME.npz`` + ``NAME.png``) and a traced-layer overlay PNG."""
    from core.geometry.maps import render_map_png, render_overlay_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, umap in inspection.maps.items():
        if umap.values.size == 0:
            continue
        npz = folder / f"{name}.npz"
        tmp = folder / f".{name}.part.npz"
        umap.save_npz(tmp)
        os.replace(tmp, npz)
        cmap = "RdBu" if "gap" in name else "viridis"
        written += [npz, render_map_png(umap, folder / f"{name}.png", cmap=cmap)]
    geometry = inspection.geometry
    if geometry is not None and geometry.roll_slices:
        z = geometry.roll_slices[len(geometry.roll_slices) // 2]
        written.append(render_overlay_png(inspection.volume.slice(z), geometry, z, folder / f"layers_z{z}.png",
                                          inspection.result["findings"]))
    return written


def inspect_and_file(
    path: str | Path,
    *,
    voxel_size: Any = None,
    dataset: str | None = None,
    recipe: Recipe | str | Path | None = None,
    cell_id: str | None = None,
    json_out: str | Path | None = None,
    report_out: str | Path | None = None,
    maps_dir: str | Path | None = None,
    db_path: str | Path | None = None,
    operator: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    segmenter: str = "classic",
    memory_budget_gb: float | None = None,
) -> tuple[Inspection, int | None]:
    """Read ``path``, inspect it, and write what was asked for.

    Returns
    -------
    (Inspection, int or None)
        The inspection and its id in the log (None without ``db_path``).
    """
    # A named recipe is checked (and a bad one refused) before anything is read; an automatic
    # choice is made from the cell's can, once the volume is open.
    recipe_obj = None if is_auto(recipe) else (recipe if isinstance(recipe, Recipe) else load_recipe(recipe))
    options = {"dataset": dataset} if dataset else {}
    volume = read_volume(path, voxel_size=voxel_size, cell_id=cell_id, **options)
    db = inspection_id = None
    if db_path is not None:
        from core.store import begin_inspection, open_log

        db = open_log(db_path)
        inspection_id = begin_inspection(
            db, cell_id or volume.cell_id or Path(path).stem, recipe=recipe_obj.name if recipe_obj else None,
            recipe_hash=recipe_obj.sha256 if recipe_obj else None, software_version=__version__, operator=operator,
            source=str(path), shape_zyx=list(volume.shape), spacing_um=list(volume.spacing_um),
            voxel_size_um=volume.voxel_size_um, modality=volume.modality)
    try:
        inspection = inspect_volume(volume, recipe_obj, cell_id=cell_id, progress=progress, cancel=cancel,
                                    operator=operator, segmenter=segmenter, memory_budget_gb=memory_budget_gb)
        if json_out is not None:
            write_json_atomic(inspection.result, json_out)
        if db is not None:
            from core.store import complete_inspection

            complete_inspection(db, inspection_id, inspection.result)
    except BaseException as exc:
        if db is not None:
            from core.store import fail_inspection

            fail_inspection(db, inspection_id, f"{type(exc).__name__}: {exc}")
        raise
    if maps_dir is not None:
        save_maps(inspection, maps_dir)
    if report_out is not None:
        from core.report import write_report

        write_report(report_inputs(inspection, inspection_id), report_out, db=db, inspection_id=inspection_id)
    return inspection, inspection_id
