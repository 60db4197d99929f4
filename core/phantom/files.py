"""A synthetic cell on disk: the volume as TIFF and its exact truth as JSON beside it.

The one writer behind ``cellqc phantom`` and ``cellqc demo``. With ``dtype="uint16"`` the
attenuation is stored as ``stored = round((attenuation - value_offset) * value_scale)``,
clipped to 0..65535, with ``value_offset`` = :data:`UINT16_OFFSET` and ``value_scale`` =
:data:`UINT16_SCALE` (the truth's ``output`` entry repeats both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.fileio import write_json
from core.io import Volume, write_tiff

UINT16_OFFSET = -1.0
UINT16_SCALE = 8000.0


def to_uint16(array: np.ndarray) -> np.ndarray:
    """Attenuation → uint16 with the documented fixed scaling (see the module docstring).

    Parameters
    ----------
    array : numpy.ndarray
        Attenuation, (z, y, x); converted one slice at a time.

    Returns
    -------
    numpy.ndarray
        ``round((array - UINT16_OFFSET) * UINT16_SCALE)`` clipped to 0..65535, uint16.
    """
    out = np.empty(array.shape, dtype=np.uint16)
    for z in range(array.shape[0]):
        scaled = np.rint((array[z].astype(np.float64) - UINT16_OFFSET) * UINT16_SCALE)
        out[z] = np.clip(scaled, 0, 65535).astype(np.uint16)
    return out


def truth_path_for(out: Path) -> Path:
    """``cell.tif`` → ``cell.truth.json``."""
    return out.with_name(out.stem + ".truth.json")


def write_cell(cell: Any, out: Path, dtype: str = "float32") -> tuple[Path, dict[str, Any]]:
    """Write a :class:`core.phantom.SyntheticCell` as OUT (TIFF) + OUT.truth.json.

    Both files are replaced atomically: a crash leaves no half-written file under either name.

    Parameters
    ----------
    cell : core.phantom.SyntheticCell
        The cell and its truth.
    out : pathlib.Path
        The TIFF to write; the truth goes beside it (:func:`truth_path_for`).
    dtype : {"float32", "uint16"}
        How the attenuation is stored (uint16: see the module docstring).

    Returns
    -------
    tuple of (pathlib.Path, dict)
        The truth path and the truth dict (with its ``output`` entry).
    """
    volume = cell.volume
    truth = dict(cell.truth)
    if dtype == "uint16":
        stored = Volume(
            array=to_uint16(np.asarray(volume.array)),
            spacing_um=volume.spacing_um,
            origin_um=volume.origin_um,
            cell_id=volume.cell_id,
            source=volume.source,
            modality=volume.modality,
            metadata=dict(volume.metadata),
        )
        truth["output"] = {
            "file": out.name,
            "dtype": "uint16",
            "value_offset": UINT16_OFFSET,
            "value_scale": UINT16_SCALE,
            "formula": "attenuation = stored / value_scale + value_offset",
        }
    else:
        stored = volume
        truth["output"] = {
            "file": out.name,
            "dtype": "float32",
            "value_offset": 0.0,
            "value_scale": 1.0,
            "formula": "attenuation = stored",
        }
    truth["cell_id"] = volume.cell_id
    write_tiff(stored, out)
    truth_path = truth_path_for(out)
    write_json(truth_path, truth, indent=2, default=_json_default, ensure_ascii=True)
    return truth_path, truth


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
