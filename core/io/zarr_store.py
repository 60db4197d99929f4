"""Zarr reader (directory stores, v2 or v3), lazy through ``zarr.Array``.

Which array is the volume: the ``dataset=`` path inside a group when given; else an
OME-Zarr ``multiscales`` group's full-resolution level; else the single 3-D (or 2-D) array
in the store. Voxel size: ``spacing_um`` (or the other names of
:data:`core.io.validate.UM_KEYS` / ``UNIT_KEYS``) on the array or its parent groups, or the
OME-Zarr scale transform.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from core.errors import InputError
from core.io._common import ReadResult, origin_from, text_value
from core.io.validate import (
    check_header,
    check_memory_budget,
    describe,
    spacing_from_attrs,
    spacing_from_values,
    unit_to_um,
)

ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def is_zarr_dir(folder: Path) -> bool:
    """True when ``folder`` is a Zarr store (marker files present or a ``.zarr`` name)."""
    return folder.suffix.lower() == ".zarr" or any((folder / m).is_file() for m in ZARR_MARKERS)


def _is_array(node: Any) -> bool:
    return hasattr(node, "shape") and hasattr(node, "dtype") and not hasattr(node, "groups")


def _attrs(node: Any) -> dict[str, Any]:
    try:
        return dict(node.attrs)
    except Exception:  # noqa: BLE001 - unreadable attributes are simply not used
        return {}


def _walk(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, array in group.arrays():
        yield f"{prefix}{name}", array
    for name, sub in group.groups():
        yield from _walk(sub, f"{prefix}{name}/")


def _describe_node(name: str, array: Any) -> str:
    try:
        return f"{name} ({describe(array.shape, array.dtype)})"
    except (TypeError, ValueError):
        return name


def _list(items: list[tuple[str, Any]], limit: int = 6) -> str:
    text = ", ".join(_describe_node(n, a) for n, a in items[:limit])
    if len(items) > limit:
        text += f", ... ({len(items) - limit} more)"
    return text or "none"


def _ome_multiscales(attrs: dict[str, Any]) -> tuple[str, tuple[float, ...] | None] | None:
    """(path of the full-resolution array, spatial scale in µm) of an OME-Zarr group."""
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else attrs
    multiscales = ome.get("multiscales")
    if not (isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict)):
        return None
    first = multiscales[0]
    datasets = first.get("datasets")
    if not (isinstance(datasets, list) and datasets and isinstance(datasets[0], dict)):
        return None
    path = datasets[0].get("path")
    if not isinstance(path, str):
        return None
    scale: tuple[float, ...] | None = None
    axes = first.get("axes")
    for transform in datasets[0].get("coordinateTransformations") or []:
        if isinstance(transform, dict) and transform.get("type") == "scale":
            values = transform.get("scale")
            if isinstance(values, list) and isinstance(axes, list) and len(axes) == len(values):
                spatial = []
                for axis, value in zip(axes, values, strict=True):
                    if isinstance(axis, dict) and axis.get("type") == "space":
                        factor = unit_to_um(axis.get("unit"))
                        if factor is None or not isinstance(value, (int, float)):
                            spatial = []
                            break
                        spatial.append(float(value) * factor)
                scale = tuple(spatial) if spatial else None
    return path, scale


def read_zarr(path: Path, budget: int, dataset: str | None = None) -> ReadResult:
    """Open the volume array of a Zarr store without reading its chunks.

    Parameters
    ----------
    path : Path
        The store (a folder).
    budget : int
        Bytes allowed to load a 2-D array (a single image is loaded, not kept lazy).
    dataset : str, optional
        Path of the array inside a group.

    Returns
    -------
    ReadResult
    """
    root = zarr.open(str(path), mode="r")
    name = ""
    scale: tuple[float, ...] | None = None
    chain: list[Any] = []
    if _is_array(root):
        if dataset not in (None, "", "/"):
            raise InputError(path, f"store is a single array; it has no dataset {dataset!r}")
        array = root
    elif dataset is not None:
        name = dataset.strip("/")
        try:
            node = root[name]
        except (KeyError, ValueError, FileNotFoundError):
            node = None
        if node is None or not _is_array(node):
            what = "is a group, not an array" if node is not None else "not found"
            raise InputError(
                path, f"dataset {dataset!r} {what}; arrays in the store: {_list(list(_walk(root)))}"
            )
        array = node
    else:
        ome = _ome_multiscales(_attrs(root))
        if ome is not None:
            name, scale = ome
            array = root[name]
        else:
            items = list(_walk(root))
            array = None
            for ndim in (3, 2):
                candidates = [(n, a) for n, a in items if len(a.shape) == ndim]
                if len(candidates) == 1:
                    name, array = candidates[0]
                    break
                if len(candidates) > 1:
                    raise InputError(
                        path,
                        f"several {ndim}-D arrays could be the volume: {_list(candidates)}; "
                        "choose one with --dataset",
                    )
            if array is None:
                if len(items) == 1:
                    name, array = items[0]
                else:
                    raise InputError(
                        path, f"no 3-D or 2-D array in the Zarr store; arrays: {_list(items)}"
                    )
    if name:
        parts = name.split("/")
        for depth in range(len(parts) - 1, 0, -1):
            chain.append(root["/".join(parts[:depth])])
        chain.append(root)
    dims = check_header(array.shape, array.dtype, path)
    dtype = np.dtype(array.dtype)
    ndim = len(dims)
    spacing = None
    note = ""
    attrs: dict[str, Any] = {}
    for node in (array, *chain):
        here = _attrs(node)
        for key, value in here.items():
            attrs.setdefault(key, value)
        if spacing is None:
            spacing, found_note = spacing_from_attrs(here, ndim)
            note = note or found_note
    if spacing is None and scale is not None and len(scale) in (2, 3):
        spacing = spacing_from_values(list(scale), 1.0, ndim)
    metadata: dict[str, Any] = {"dataset": name or "/"}
    if ndim == 2:
        check_memory_budget(dims, dtype, budget, path)
        data: Any = np.asarray(array[...])
        lazy = False
    else:
        data = array
        lazy = True
    return ReadResult(
        array=data,
        format="zarr",
        spacing_um=spacing,
        lazy=lazy,
        spacing_note=note if spacing is None else "",
        origin_um=origin_from(attrs["origin_um"]) if "origin_um" in attrs else None,
        cell_id=text_value(attrs.get("cell_id")),
        modality=text_value(attrs.get("modality")),
        metadata=metadata,
    )
