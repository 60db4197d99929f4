"""Volume writers: ImageJ-compatible TIFF and Zarr, written slab by slab and atomically.

Both write under a temporary name in the destination folder and rename it into place at
the end (:mod:`core.fileio`), so a crash never leaves a half-written file under the final name.
:func:`core.io.read_volume` recovers the (z, y, x) spacing of what they write.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from core.errors import InputError
from core.fileio import atomic_writer, replace_folder, temporary_sibling
from core.io.validate import check_dtype, check_shape
from core.io.volume import Volume

#: dtypes ImageJ hyperstacks hold; others are written as plain (tifffile "shaped") TIFF.
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))

#: Bytes read from the source volume at once while writing.
WRITE_SLAB_BYTES = 64 * 2**20


def _native(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("=") if dtype.itemsize > 1 else dtype


def _slab_step(shape: tuple[int, ...], dtype: np.dtype, multiple: int = 1) -> int:
    slice_bytes = max(1, math.prod(shape[1:]) * dtype.itemsize)
    step = max(1, WRITE_SLAB_BYTES // slice_bytes)
    return max(multiple, step // multiple * multiple)


def _slices(volume: Volume, dtype: np.dtype) -> Iterator[np.ndarray]:
    nz = volume.shape[0]
    step = _slab_step(volume.shape, dtype)
    for z0 in range(0, nz, step):
        slab = np.ascontiguousarray(np.asarray(volume.array[z0 : z0 + step]), dtype=dtype)
        yield from slab


def _checked(volume: Volume, path: Path) -> np.dtype:
    check_shape(volume.shape, path)
    dtype = check_dtype(volume.dtype, path)
    if not path.parent.is_dir():
        raise InputError(path, "output folder does not exist")
    return _native(dtype)


def write_tiff(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write a volume as a multi-page TIFF that ImageJ/Fiji and :func:`read_volume` understand.

    The (z, y, x) spacing is stored as ImageJ ``spacing`` (z) and X/YResolution (pixels per
    µm, ``unit=um``); cell id, origin and modality as ImageJ properties. Data types ImageJ
    cannot hold (int8, int32, uint32, float64, ...) are written as a plain TIFF whose JSON
    description carries ``spacing_um`` instead. Data are read from ``volume.array`` slab by
    slab, so lazy volumes are never loaded whole.

    Parameters
    ----------
    volume : Volume
        What to write.
    path : str or path-like
        Destination file (replaced atomically if it exists).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    dtype = _checked(volume, path)
    nz, ny, nx = volume.shape
    sz, sy, sx = (float(v) for v in volume.spacing_um)
    resolution = (1.0 / sx, 1.0 / sy)
    origin = ",".join(repr(float(v)) for v in volume.origin_um)
    if dtype in IMAGEJ_DTYPES:
        options: dict[str, Any] = {
            "imagej": True,
            "metadata": {
                "axes": "ZYX",
                "spacing": sz,
                "unit": "um",
                "Properties": {
                    "cellqc.cell_id": str(volume.cell_id),
                    "cellqc.origin_um": origin,
                    "cellqc.modality": str(volume.modality),
                },
            },
        }
    else:
        options = {
            "photometric": "minisblack",
            "metadata": {
                "axes": "ZYX",
                "spacing_um": [sz, sy, sx],
                "origin_um": [float(v) for v in volume.origin_um],
                "cell_id": str(volume.cell_id),
                "modality": str(volume.modality),
            },
            "resolutionunit": "CENTIMETER",
        }
        resolution = (1e4 / sx, 1e4 / sy)
    with atomic_writer(path) as fh:
        tifffile.imwrite(
            fh,
            _slices(volume, dtype),
            shape=(nz, ny, nx),
            dtype=dtype,
            rowsperstrip=ny,
            resolution=resolution,
            **options,
        )
    return path


def _create_zarr_array(store: Path, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any):
    import zarr

    if hasattr(zarr, "create_array"):  # zarr >= 3
        return zarr.create_array(
            store=str(store), shape=shape, chunks=chunks, dtype=dtype, overwrite=True
        )
    return zarr.open_array(str(store), mode="w", shape=shape, chunks=chunks, dtype=dtype)


def default_chunks(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Chunks for a written volume: up to 16 slices of up to 512 × 512 voxels."""
    return (min(shape[0], 16), min(shape[1], 512), min(shape[2], 512))


def write_zarr(
    volume: Volume, path: str | os.PathLike[str], chunks: tuple[int, int, int] | None = None
) -> Path:
    """Write a volume as a Zarr array (a folder) with its spacing and metadata as attributes.

    Attributes: ``spacing_um`` and ``origin_um`` ([z, y, x] µm), ``cell_id``, ``modality``.
    The store is written beside ``path`` under a temporary name and renamed into place;
    an existing store at ``path`` is replaced only after the new one is complete.

    Parameters
    ----------
    volume : Volume
        What to write (read slab by slab, so lazy volumes are never loaded whole).
    path : str or path-like
        Destination folder (``.zarr`` by convention).
    chunks : tuple of int, optional
        Chunk shape (z, y, x); default :func:`default_chunks`.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    dtype = _checked(volume, path)
    if path.exists() and not path.is_dir():
        raise InputError(path, "exists and is not a folder; cannot write a Zarr store there")
    shape = volume.shape
    chunk_shape = tuple(int(c) for c in (chunks or default_chunks(shape)))
    if len(chunk_shape) != 3 or any(c <= 0 for c in chunk_shape):
        raise InputError(path, f"chunks must be 3 positive integers, got {chunks!r}")
    tmp = temporary_sibling(path, ".tmp")
    try:
        array = _create_zarr_array(tmp, shape, chunk_shape, dtype)
        step = _slab_step(shape, dtype, multiple=chunk_shape[0])
        for z0 in range(0, shape[0], step):
            array[z0 : z0 + step] = np.asarray(volume.array[z0 : z0 + step], dtype=dtype)
        array.attrs.update(
            {
                "spacing_um": [float(v) for v in volume.spacing_um],
                "origin_um": [float(v) for v in volume.origin_um],
                "cell_id": str(volume.cell_id),
                "modality": str(volume.modality),
                "axes": ["z", "y", "x"],
            }
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return replace_folder(tmp, path)
