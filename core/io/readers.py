"""``read_volume``: format detection, reading, validation → :class:`~core.io.volume.Volume`.

Formats (detected from content first, then extension):

========================  ============  =======================================
format name               lazy          voxel size from
========================  ============  =======================================
``tiff``                  memmap if     ImageJ ``spacing`` + X/YResolution and
                          contiguous    ``unit``; OME-XML; tifffile JSON
``tiff-folder``           per slice     the first slice, as for ``tiff``
``hdf5`` / ``nexus``      h5py.Dataset  ``spacing_um``-like attributes; NXdata axes
``zarr``                  zarr.Array    ``spacing_um``-like attributes; OME-Zarr
``npy``                   memmap        (none: pass ``voxel_size``)
``raw`` (+ JSON sidecar)  memmap        sidecar ``spacing_um``
========================  ============  =======================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.io._common import ReadResult, capture_library_noise
from core.io.hdf5 import HDF5_MAGIC, HDF5_SUFFIXES, read_hdf5
from core.io.raw import NPY_MAGIC, RAW_SUFFIXES, read_npy, read_raw, sidecar_paths
from core.io.tiff import TIFF_MAGIC, TIFF_SUFFIXES, read_tiff_file, read_tiff_folder, tiff_slices
from core.io.validate import (
    check_finite,
    check_header,
    check_memory_budget,
    memory_budget,
    one_line,
)
from core.io.volume import PLAUSIBLE_VOXEL_UM, Volume, parse_voxel_size
from core.io.zarr_store import is_zarr_dir, read_zarr
from core.text import cell_id_problem, check_cell_id, path_text

#: Format names :func:`detect_format` returns, with how errors describe them.
FORMATS = {
    "tiff": "TIFF",
    "tiff-folder": "TIFF slice",
    "hdf5": "HDF5",
    "zarr": "Zarr",
    "npy": ".npy",
    "raw": "raw volume",
}

NO_VOXEL_SIZE = "no voxel size in the file; pass --voxel-size UM"


def _kind_text(path: Path) -> str:
    return "folder" if path.is_dir() else "file"


def detect_format(path: str | os.PathLike[str]) -> str:
    """Name the format of a volume file or folder from its content, then its extension.

    Parameters
    ----------
    path : str or path-like
        A file or a folder.

    Returns
    -------
    str
        One of ``tiff``, ``tiff-folder``, ``hdf5``, ``zarr``, ``npy``, ``raw``.

    Raises
    ------
    InputError
        Missing, unreadable, empty or unknown input.
    """
    p = Path(path)
    _check_access(p)
    try:
        return _detect(p)
    except OSError as exc:
        raise InputError(p, f"cannot read: {one_line(exc.strerror or exc)}") from None


def _detect(p: Path) -> str:
    if p.is_dir():
        if is_zarr_dir(p):
            return "zarr"
        if tiff_slices(p):
            return "tiff-folder"
        raise InputError(p, "folder holds no TIFF slices (.tif/.tiff) and is not a Zarr store")
    suffix = p.suffix.lower()
    if suffix in (".raw", ".json") and sidecar_paths(p) is not None:
        return "raw"
    size = p.stat().st_size
    if size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    with open(p, "rb") as fh:
        head = fh.read(16)
    if head[:4] in TIFF_MAGIC:
        return "tiff"
    if head[:8] == HDF5_MAGIC:
        return "hdf5"
    if head[:6] == NPY_MAGIC:
        return "npy"
    if suffix in TIFF_SUFFIXES:
        raise InputError(p, f"not a TIFF file (it starts with {head[:4]!r}, not a TIFF header)")
    if suffix in HDF5_SUFFIXES:
        return "hdf5"  # the signature may sit after a user block; h5py decides
    if suffix == ".npy":
        raise InputError(p, "not a .npy file (no NUMPY header)")
    if suffix == ".zarr":
        raise InputError(p, "a Zarr store must be a folder, this is a file")
    if suffix in RAW_SUFFIXES:
        return "raw"  # read_raw explains the missing sidecar
    if sidecar_paths(p) is not None:
        return "raw"
    raise InputError(
        p,
        f"unknown volume format (extension {suffix or 'none'!r}); expected TIFF, a folder of "
        "TIFF slices, HDF5/NeXus, Zarr, .npy, or raw + JSON sidecar",
    )


def _check_access(p: Path) -> None:
    try:
        exists = p.exists()
    except OSError as exc:
        raise InputError(p, f"cannot access: {one_line(exc.strerror or exc)}") from None
    if not exists:
        raise InputError(p, "no such file or folder")
    mode = os.R_OK | (os.X_OK if p.is_dir() else 0)
    if not os.access(p, mode):
        raise InputError(p, f"permission denied: cannot read this {_kind_text(p)}")


def _read(fmt: str, path: Path, budget: int, dataset: str | None) -> ReadResult:
    if dataset is not None and fmt not in ("hdf5", "zarr"):
        raise InputError(path, f"--dataset applies to HDF5 and Zarr only, this is {FORMATS[fmt]}")
    readers: dict[str, Callable[[], ReadResult]] = {
        "tiff": lambda: read_tiff_file(path, budget),
        "tiff-folder": lambda: read_tiff_folder(path, budget),
        "hdf5": lambda: read_hdf5(path, budget, dataset),
        "zarr": lambda: read_zarr(path, budget, dataset),
        "npy": lambda: read_npy(path),
        "raw": lambda: read_raw(path),
    }
    return readers[fmt]()


def _library_error(fmt: str, exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, MemoryError):
        return "not enough memory to read it"
    if isinstance(exc, IsADirectoryError):
        return f"expected a {FORMATS[fmt]} file, found a folder"
    return f"cannot read as {FORMATS[fmt]} (corrupt or truncated?): {one_line(exc)}"


def _close(result: ReadResult) -> None:
    handle = result.metadata.get("h5file")
    if handle is not None:
        try:
            handle.close()
        except Exception:  # noqa: BLE001 - closing after an error must not hide it
            pass


def _to_3d(result: ReadResult, budget: int, source: Path) -> Any:
    array = result.array
    if len(array.shape) != 2:
        return array
    if isinstance(array, np.ndarray):
        return array[np.newaxis]  # a view: memmaps stay memmaps
    check_memory_budget(array.shape, array.dtype, budget, source)
    return np.asarray(array[...])[np.newaxis]


def read_volume(
    path: str | os.PathLike[str],
    voxel_size: Any = None,
    *,
    dataset: str | None = None,
    memory_budget_bytes: float | None = None,
    cell_id: str | None = None,
    check_values: bool = True,
) -> Volume:
    """Open a CT volume from any supported format, checked and with its voxel size in µm.

    Parameters
    ----------
    path : str or path-like
        A TIFF file, a folder of TIFF slices, an HDF5/NeXus file, a Zarr store, a ``.npy``
        file, or a raw file with its JSON sidecar (``NAME.raw`` + ``NAME.json``; either path
        may be given).
    voxel_size : float, str or sequence of 3 floats, optional
        µm; one number (isotropic), ``"z,y,x"`` or (z, y, x). Overrides the file's.
    dataset : str, optional
        Path of the array inside an HDF5 file or Zarr group.
    memory_budget_bytes : float, optional
        Most bytes to allocate for formats that cannot be read lazily (compressed TIFF,
        2-D datasets); default ``$CELLQC_MEMORY_BUDGET_GB`` GB, else 0.75 × physical RAM.
        Lazily read formats may exceed it.
    cell_id : str, optional
        The cell's identifier; default the file's record, else the file/folder stem.
    check_values : bool
        Scan float volumes for NaN/Inf (slab by slab). Leave on except for previews.

    Returns
    -------
    Volume
        ``array`` indexed (z, y, x), lazy where the format allows (``np.memmap``,
        ``zarr.Array``, ``h5py.Dataset``, :class:`~core.io.tiff.TiffSliceStack`);
        ``metadata["format"]``, ``metadata["voxel_size_from"]`` (``"file"`` or
        ``"argument"``), ``metadata["lazy"]`` and format details (``dataset``,
        ``h5file`` keeping an HDF5 file open, ``files`` of a folder, ``warnings``).

    Raises
    ------
    InputError
        Any problem with the input, as one line naming the file: missing, unreadable,
        unknown format, corrupt or truncated, not 2-D/3-D, unsupported dtype, empty, NaN/Inf,
        over the memory budget, no voxel size.
    """
    p = Path(path)
    spacing_arg = None if voxel_size is None else parse_voxel_size(voxel_size, "--voxel-size")
    if cell_id is not None:
        check_cell_id(cell_id, "--cell-id")
    budget = memory_budget(memory_budget_bytes)
    fmt = detect_format(p)
    noise: list[str] = []
    result: ReadResult | None = None
    try:
        with capture_library_noise(noise):
            result = _read(fmt, p, budget, dataset)
            source = result.source or p
            array = _to_3d(result, budget, source)
            check_header(array.shape, array.dtype, source)
            if spacing_arg is not None:
                spacing, spacing_from = spacing_arg, "argument"
            elif result.spacing_um is not None:
                spacing, spacing_from = result.spacing_um, "file"
                lo, hi = PLAUSIBLE_VOXEL_UM
                if not all(lo <= float(v) <= hi for v in spacing):
                    shown = ", ".join(f"{float(v):.4g}" for v in spacing)
                    raise InputError(
                        source,
                        f"the file's voxel size ({shown}) µm is outside the physical range {lo:g}–{hi:g} µm "
                        "(a unit mistake?); pass --voxel-size UM",
                    )
            else:
                why = f" ({result.spacing_note})" if result.spacing_note else ""
                raise InputError(source, NO_VOXEL_SIZE + why)
            if result.lazy:  # a cheap probe for corrupt storage: first and last slice
                # Everything downstream reads whole slices: one slice must fit the budget.
                check_memory_budget(array.shape[1:], array.dtype, budget, source)
                np.asarray(array[0])
                np.asarray(array[int(array.shape[0]) - 1])
            if check_values:
                check_finite(array, source)
    except BaseException as exc:
        if result is not None:
            _close(result)
        if isinstance(exc, InputError) or not isinstance(exc, Exception):
            raise
        raise InputError(p, _library_error(fmt, exc)) from None
    metadata = dict(result.metadata)
    metadata.update(
        format=result.format,
        voxel_size_from=spacing_from,
        lazy=bool(result.lazy),
    )
    if result.spacing_note and spacing_from == "file":
        metadata["voxel_size_note"] = result.spacing_note
    if noise:
        metadata["warnings"] = noise
    name = source.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = Path(name).stem if source.is_file() or source.suffix.lower() == ".zarr" else name
    if cell_id is None:  # the file's own record, else its name (undecodable bytes escaped)
        cell_id = result.cell_id or path_text(name)
        if cell_id_problem(cell_id) is not None:
            _close(result)
            check_cell_id(cell_id, f"{path_text(source)} (give --cell-id)")
    return Volume(
        array=array,
        spacing_um=spacing,
        origin_um=result.origin_um or (0.0, 0.0, 0.0),
        cell_id=cell_id,
        source=path_text(source),
        modality=result.modality or "lab-ct",
        metadata=metadata,
    )
