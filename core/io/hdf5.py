"""HDF5 and NeXus (NXtomo / NXdata) reader (h5py), lazy through ``h5py.Dataset``.

Which dataset is the volume: the ``dataset=`` path when given; else a NeXus ``NXentry``
(definition NXtomo, or an ``NXdata`` group naming its ``signal``); else the single 3-D
(or, failing that, 2-D) dataset in the file. Several candidates give an error listing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core.errors import InputError
from core.io._common import ReadResult, origin_from, text_value
from core.io.h5guard import ensure_hdf5_parses, small_attributes
from core.io.validate import (
    check_header,
    check_memory_budget,
    describe,
    spacing_from_attrs,
    spacing_from_values,
    unit_to_um,
)

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5", ".he5")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Longest NXdata axis read to find a voxel size (an axis has one value per voxel).
MAX_AXIS_VALUES = 10**7


def _nx_class(obj: Any) -> str | None:
    return text_value(obj.attrs.get("NX_class"))


def _describe_ds(ds: h5py.Dataset) -> str:
    try:
        return f"{ds.name} ({describe(ds.shape, ds.dtype)})" if ds.shape is not None else ds.name
    except (TypeError, ValueError):
        return f"{ds.name} ({ds.shape} {ds.dtype})"


def _all_datasets(group: h5py.Group) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []

    def visit(_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(obj)

    group.visititems(visit)
    return found


def _list(datasets: list[h5py.Dataset], limit: int = 6) -> str:
    text = ", ".join(_describe_ds(d) for d in datasets[:limit])
    if len(datasets) > limit:
        text += f", ... ({len(datasets) - limit} more)"
    return text or "none"


def _signal_of(nxdata: h5py.Group) -> h5py.Dataset | None:
    signal = text_value(nxdata.attrs.get("signal"))
    if signal and isinstance(nxdata.get(signal), h5py.Dataset):
        return nxdata[signal]
    for obj in nxdata.values():  # NeXus 2: signal=1 on the dataset itself
        if isinstance(obj, h5py.Dataset) and str(obj.attrs.get("signal", "")).strip() == "1":
            return obj
    return None


def _nexus_candidates(f: h5py.File) -> list[tuple[h5py.Dataset, h5py.Group | None, str]]:
    """(dataset, its NXdata group or None, definition) for each NeXus entry's signal."""
    found: list[tuple[h5py.Dataset, h5py.Group | None, str]] = []
    entries = [g for g in f.values() if isinstance(g, h5py.Group) and _nx_class(g) == "NXentry"]
    default = text_value(f.attrs.get("default"))
    entries.sort(key=lambda g: 0 if default and g.name == f"/{default}" else 1)
    for entry in entries:
        definition = ""
        definition_ds = entry.get("definition")
        if isinstance(definition_ds, h5py.Dataset) and (definition_ds.size or 0) <= 1:
            try:
                definition = text_value(entry["definition"][()]) or ""
            except (OSError, TypeError, ValueError):
                definition = ""
        groups: list[h5py.Group] = []
        entry_default = text_value(entry.attrs.get("default"))
        if entry_default and isinstance(entry.get(entry_default), h5py.Group):
            groups.append(entry[entry_default])

        def visit(_name: str, obj: Any, groups: list[h5py.Group] = groups) -> None:
            if isinstance(obj, h5py.Group) and _nx_class(obj) == "NXdata":
                groups.append(obj)

        entry.visititems(visit)
        seen_here: set[str] = set()
        for group in groups:
            ds = _signal_of(group)
            if ds is not None and ds.name not in seen_here:
                seen_here.add(ds.name)
                found.append((ds, group, definition))
                break  # the entry's default (or first) NXdata is its volume
        if not seen_here and definition.strip().lower() == "nxtomo":
            for path in ("data/data", "instrument/detector/data"):
                if isinstance(entry.get(path), h5py.Dataset):
                    found.append((entry[path], None, definition))
                    break
    unique: dict[str, tuple[h5py.Dataset, h5py.Group | None, str]] = {}
    for item in found:
        unique.setdefault(item[0].name, item)
    return list(unique.values())


def _select(
    f: h5py.File, path: Path, dataset: str | None
) -> tuple[h5py.Dataset, h5py.Group | None, str]:
    if dataset is not None:
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            what = "is a group, not a dataset" if isinstance(obj, h5py.Group) else "not found"
            raise InputError(
                path, f"dataset {dataset!r} {what}; datasets in the file: {_list(_all_datasets(f))}"
            )
        return obj, None, ""
    nexus = _nexus_candidates(f)
    if len(nexus) == 1:
        return nexus[0]
    if len(nexus) > 1:
        raise InputError(
            path,
            f"several NeXus entries hold data: {_list([n[0] for n in nexus])}; "
            "choose one with --dataset",
        )
    datasets = _all_datasets(f)
    for ndim in (3, 2):
        candidates = [d for d in datasets if d.shape is not None and len(d.shape) == ndim]
        if len(candidates) == 1:
            return candidates[0], None, ""
        if len(candidates) > 1:
            raise InputError(
                path,
                f"several {ndim}-D datasets could be the volume: {_list(candidates)}; "
                "choose one with --dataset",
            )
    if len(datasets) == 1:
        return datasets[0], None, ""  # validation then says what is wrong with its shape
    raise InputError(path, f"no 3-D or 2-D dataset in the file; datasets: {_list(datasets)}")


def _axis_step(group: h5py.Group, name: str) -> float | None:
    axis = group.get(name)
    if not isinstance(axis, h5py.Dataset) or axis.shape is None or len(axis.shape) != 1:
        return None
    if axis.shape[0] < 2 or axis.shape[0] > MAX_AXIS_VALUES or axis.dtype.kind not in "iuf":
        return None
    factor = unit_to_um(axis.attrs.get("units", axis.attrs.get("unit")))
    if factor is None:
        return None
    values = np.asarray(axis[()], dtype=np.float64)
    step = abs(values[-1] - values[0]) / (len(values) - 1)
    return float(step * factor) if np.isfinite(step) and step > 0 else None


def _nxdata_spacing(group: h5py.Group, ndim: int) -> tuple[float, float, float] | None:
    raw_axes = group.attrs.get("axes")
    if raw_axes is None:
        return None
    if isinstance(raw_axes, (str, bytes)):
        names = [text_value(raw_axes) or ""]
        if ":" in names[0]:
            names = names[0].split(":")
    else:
        names = [text_value(a) or "" for a in np.asarray(raw_axes).reshape(-1)]
    if len(names) != ndim:
        return None
    steps = [_axis_step(group, n) if n not in ("", ".") else None for n in names]
    if any(s is None for s in steps):
        return None
    values = [float(s) for s in steps if s is not None]
    return spacing_from_values(values, 1.0, ndim)


def _detector_spacing(ds: h5py.Dataset) -> tuple[float, float, float] | None:
    """NXtomo: ``instrument/detector/{x,y}_pixel_size`` with units (cubic voxels)."""
    entry = ds.parent
    while entry.name != "/" and _nx_class(entry) != "NXentry":
        entry = entry.parent
    detector = entry.get("instrument/detector")
    if not isinstance(detector, h5py.Group):
        return None
    sizes = []
    for key in ("y_pixel_size", "x_pixel_size"):
        item = detector.get(key)
        if not isinstance(item, h5py.Dataset):
            return None
        if item.shape is None or item.size > 3:  # a pixel size is a number or two, not data
            return None
        factor = unit_to_um(item.attrs.get("units", item.attrs.get("unit")))
        spacing = spacing_from_values(item[()], factor or 0.0, 2) if factor else None
        if spacing is None:
            return None
        sizes.append(spacing[2])
    return (sizes[0], sizes[0], sizes[1])


def _attrs(obj: Any) -> dict[str, Any]:
    return small_attributes(obj)  # oversized or unreadable attributes are not used


def read_hdf5(path: Path, budget: int, dataset: str | None = None) -> ReadResult:
    """Open the volume dataset of an HDF5 / NeXus file, keeping the file open (lazy).

    Parameters
    ----------
    path : Path
        The file.
    budget : int
        Bytes allowed to load a 2-D dataset (a single image is loaded, not kept lazy).
    dataset : str, optional
        Path of the dataset inside the file.

    Returns
    -------
    ReadResult
        ``metadata["h5file"]`` holds the open ``h5py.File`` so the dataset stays readable.
    """
    ensure_hdf5_parses(path)
    f = h5py.File(path, "r")
    try:
        ds, nxdata, definition = _select(f, path, dataset)
        shape = ds.shape
        dims = check_header(shape, ds.dtype, f"{path}:{ds.name}")
        ndim = len(dims)
        spacing = None
        note = ""
        attrs: dict[str, Any] = {}
        chain: list[Any] = [ds]
        parent = ds.parent
        while True:
            chain.append(parent)
            if parent.name == "/":
                break
            parent = parent.parent
        for obj in chain:
            attrs_here = _attrs(obj)
            for key, value in attrs_here.items():
                attrs.setdefault(key, value)
            if spacing is None:
                spacing, found_note = spacing_from_attrs(attrs_here, ndim)
                note = note or found_note
        if spacing is None and nxdata is not None:
            spacing = _nxdata_spacing(nxdata, ndim)
        if spacing is None and definition.strip().lower() == "nxtomo":
            spacing = _detector_spacing(ds)
        metadata: dict[str, Any] = {"dataset": ds.name}
        if definition:
            metadata["nexus_definition"] = definition
        fmt = "nexus" if (nxdata is not None or definition) else "hdf5"
        if ndim == 2:
            check_memory_budget(dims, ds.dtype, budget, path)
            array: Any = ds[()]
            lazy = False
            f.close()
        else:
            array = ds
            lazy = True
            metadata["h5file"] = f
        return ReadResult(
            array=array,
            format=fmt,
            spacing_um=spacing,
            lazy=lazy,
            spacing_note=note if spacing is None else "",
            origin_um=origin_from(attrs["origin_um"]) if "origin_um" in attrs else None,
            cell_id=text_value(attrs.get("cell_id")),
            modality=text_value(attrs.get("modality")),
            metadata=metadata,
        )
    except BaseException:
        f.close()
        raise
