"""TIFF readers: multi-page TIFF files and folders of TIFF slices (tifffile).

Voxel size comes from, in order: a ``spacing_um`` entry in tifffile's JSON description
(what :func:`core.io.write_tiff` writes for dtypes ImageJ cannot hold), OME-XML
``PhysicalSize*``, and ImageJ metadata (``spacing`` is the z step; XResolution/YResolution
are pixels per ``unit``). A resolution of 1/1 without a unit means "unknown".
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from core.errors import InputError
from core.io._common import ReadResult, logged_errors, natural_key, origin_from
from core.io.validate import (
    check_header,
    check_memory_budget,
    describe,
    one_line,
    positive_float,
    spacing_from_values,
    unit_to_um,
)

TIFF_SUFFIXES = (".tif", ".tiff")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# TIFF ResolutionUnit values (2 = inch is ignored: 72 dpi defaults are common and meaningless).
_RESUNIT_TO_UM = {3: 1e4, 4: 1e3, 5: 1.0}


def tiff_slices(folder: Path) -> list[Path]:
    """The TIFF files in ``folder``, naturally sorted (``im2`` before ``im10``).

    Hidden files (``.name``, e.g. macOS ``._im001.tif``) and other extensions are ignored.
    """
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _rational(tag: Any) -> float | None:
    """Pixel size in tag units from an X/YResolution tag (pixels per unit), or None."""
    if tag is None:
        return None
    value = tag.value
    try:
        if isinstance(value, tuple) and len(value) == 2:
            num, den = float(value[0]), float(value[1])
        else:
            num, den = float(value), 1.0
    except (TypeError, ValueError):
        return None
    if not (num > 0 and den > 0 and math.isfinite(num) and math.isfinite(den)):
        return None
    return den / num


def _ome_spacing(xml: str) -> tuple[float | None, float | None, float | None]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None, None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Pixels":
            continue
        sizes: list[float | None] = []
        for axis in ("Z", "Y", "X"):
            raw = element.get(f"PhysicalSize{axis}")
            factor = unit_to_um(element.get(f"PhysicalSize{axis}Unit", "µm"))
            try:
                value = positive_float(float(raw)) if raw is not None else None
            except ValueError:
                value = None
            sizes.append(value * factor if value is not None and factor is not None else None)
        return sizes[0], sizes[1], sizes[2]
    return None, None, None


def tiff_spacing(
    tif: tifffile.TiffFile, page: Any, ndim: int
) -> tuple[tuple[float, float, float] | None, str, dict[str, Any]]:
    """Voxel size (z, y, x) in µm recorded in a TIFF file.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    page : tifffile.TiffPage
        Its first (key) page, holding the resolution tags.
    ndim : int
        Dimensions of the data (2 for a single image).

    Returns
    -------
    spacing : tuple of float or None
    note : str
        Why the file's voxel size is unknown or what was assumed.
    extras : dict
        ``cell_id``, ``origin_um``, ``modality`` when the file records them (only these keys:
        they are :class:`ReadResult` fields, passed on as they are).
    """
    extras: dict[str, Any] = {}
    # 1. tifffile's JSON description (written by core.io.write_tiff for non-ImageJ dtypes).
    if tif.is_shaped and tif.shaped_metadata:
        shaped = tif.shaped_metadata[0]
        if isinstance(shaped, dict):
            for key in ("cell_id", "modality"):
                if isinstance(shaped.get(key), str):
                    extras[key] = shaped[key]
            if "origin_um" in shaped:
                extras["origin_um"] = origin_from(shaped["origin_um"])
            if "spacing_um" in shaped:
                spacing = spacing_from_values(shaped["spacing_um"], 1.0, ndim)
                if spacing is not None:
                    return spacing, "", extras
    # 2. OME-XML.
    z = y = x = None
    if tif.is_ome and tif.ome_metadata:
        z, y, x = _ome_spacing(tif.ome_metadata)
    # 3. ImageJ metadata and resolution tags.
    ij = tif.imagej_metadata or {}
    props = ij.get("Properties") if isinstance(ij.get("Properties"), dict) else {}
    if isinstance(props.get("cellqc.cell_id"), str):
        extras["cell_id"] = props["cellqc.cell_id"]
    if isinstance(props.get("cellqc.modality"), str):
        extras["modality"] = props["cellqc.modality"]
    if isinstance(props.get("cellqc.origin_um"), str):
        try:
            extras["origin_um"] = origin_from(
                [float(v) for v in props["cellqc.origin_um"].split(",")]
            )
        except ValueError:
            pass
    note = ""
    if x is None or y is None:
        factor = unit_to_um(ij.get("unit"))
        if factor is None:
            try:
                resunit = int(page.tags["ResolutionUnit"].value)
            except (KeyError, TypeError, ValueError):
                resunit = 1
            factor = _RESUNIT_TO_UM.get(resunit)
        if factor is not None:
            px = _rational(page.tags.get("XResolution"))
            py = _rational(page.tags.get("YResolution"))
            if px is None:
                px = py
            if py is None:
                py = px
            if px is not None and py is not None:
                x, y = px * factor, py * factor
            step = positive_float(ij.get("spacing"))
            if step is not None:
                z = step * factor
        elif ij.get("unit") not in (None, "", "pixel", "pixels"):
            note = f"unknown ImageJ unit {ij.get('unit')!r}"
    if x is None or y is None:
        return None, note, extras
    if z is None:
        z = x
        if ndim == 3:
            note = "the file gives no z step; cubic voxels assumed (z = x)"
    return (z, y, x), note, extras


def _check_pages_present(pages: Sequence[Any], size: int, source: Path) -> None:
    """Refuse a TIFF whose image data run past the end of the file (truncated)."""
    for index, page in enumerate(pages):
        if page is None:
            continue
        offsets = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        ends = [int(o) + int(c) for o, c in zip(offsets, counts, strict=False) if int(c) > 0]
        if ends and max(ends) > size:
            raise InputError(
                source,
                f"truncated TIFF: image data of page {index} end at byte {max(ends)}, "
                f"the file has {size} bytes",
            )


def _samples(page: Any) -> int:
    try:
        return int(page.samplesperpixel)
    except (AttributeError, TypeError, ValueError):
        return 1


def _raise_logged(errors: list[str], source: Path) -> None:
    if errors:
        message = re.sub(r"^tifffile: (<[^>]*> )?", "", errors[0])
        raise InputError(source, f"damaged or truncated TIFF: {one_line(message, 200)}")


def read_tiff_file(path: Path, budget: int) -> ReadResult:
    """Open a (multi-page) TIFF file: memory-mapped when its data are contiguous, else read.

    Parameters
    ----------
    path : Path
        The file.
    budget : int
        Bytes allowed when the data must be decoded into memory (compressed, tiled, ...).

    Returns
    -------
    ReadResult
    """
    size = path.stat().st_size
    with logged_errors("tifffile") as errors, tifffile.TiffFile(path) as tif:
        series_list = tif.series
        _raise_logged(errors, path)
        if not series_list:
            raise InputError(path, "TIFF file holds no images")
        if len(series_list) > 1:
            shapes = ", ".join(describe(s.shape, s.dtype) for s in series_list[:4])
            raise InputError(
                path,
                f"TIFF file holds {len(series_list)} image series with different page shapes "
                f"or types ({shapes}); expected one stack of equal slices",
            )
        series = series_list[0]
        page = series.keyframe
        if _samples(page) > 1:
            raise InputError(
                path,
                f"pages have {_samples(page)} samples per pixel (colour image); "
                "expected greyscale CT slices",
            )
        shape = tuple(int(n) for n in series.shape)
        dtype = np.dtype(series.dtype)
        check_header(shape, dtype, path)
        spacing, note, extras = tiff_spacing(tif, page, len(shape))
        # A "truncated" series is a format, not damage: ImageJ (and tifffile writing for it)
        # stores a stack over 4 GB as its first page's directory and the slices contiguous
        # after it. Such a file is read through its data offset, and a file cut short is
        # caught by the size check below. (Before, cellqc refused the > 4 GB stacks that it
        # writes itself: a 21700 top slab at 15 µm in the validation run.)
        if getattr(series, "is_truncated", False) and series.dataoffset is None:
            raise InputError(path, "truncated TIFF: the stack has fewer pages than declared")
        array: Any = None
        lazy = False
        offset = series.dataoffset
        if offset is not None:
            end = int(offset) + math.prod(shape) * dtype.itemsize
            if end > size:
                raise InputError(
                    path,
                    f"truncated TIFF: expected at least {end} bytes for {describe(shape, dtype)}, "
                    f"the file has {size}",
                )
            try:
                array = tifffile.memmap(path, series=0, mode="r")
                lazy = True
            except ValueError:
                array = None
        if array is None:
            check_memory_budget(shape, dtype, budget, path)
            _check_pages_present(series.pages, size, path)
            array = series.asarray()
        _raise_logged(errors, path)
    return ReadResult(
        array=array,
        format="tiff",
        spacing_um=spacing,
        lazy=lazy,
        spacing_note=note,
        **extras,  # cell_id, origin_um, modality when the file records them
    )


class TiffSliceStack:
    """A read-only, lazy 3-D array over a folder of 2-D TIFF slices (one file per z).

    Indexing reads only the slices it needs (``stack[z]``, ``stack[z0:z1, y0:y1]`` ...);
    ``numpy.asarray(stack)`` reads them all.

    Parameters
    ----------
    files : sequence of Path
        One file per slice, in z order.
    slice_shape : tuple of int
        (ny, nx) of every slice.
    dtype : numpy.dtype
        Element type of every slice.
    """

    ndim = 3

    def __init__(self, files: Sequence[Path], slice_shape: tuple[int, int], dtype: np.dtype):
        self.files = tuple(Path(f) for f in files)
        self._slice_shape = (int(slice_shape[0]), int(slice_shape[1]))
        self._dtype = np.dtype(dtype)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.files), *self._slice_shape)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self._dtype.itemsize

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        folder = self.files[0].parent if self.files else "?"
        return f"TiffSliceStack({str(folder)!r}, shape={self.shape}, dtype={self._dtype.name})"

    def read_slice(self, z: int) -> np.ndarray:
        """Slice ``z`` as a 2-D array (raises InputError naming the file if it is unreadable)."""
        file = self.files[z]
        try:
            with logged_errors("tifffile") as errors:
                data = tifffile.imread(file)
            _raise_logged(errors, file)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any library failure is an input error
            raise InputError(file, f"cannot read TIFF slice: {one_line(exc)}") from None
        if data.shape != self._slice_shape or data.dtype != self._dtype:
            raise InputError(
                file,
                f"slice is {describe(data.shape, data.dtype)}, the stack is "
                f"{describe(self._slice_shape, self._dtype)}",
            )
        return data

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if not key:
            key = (slice(None),)
        if key[0] is Ellipsis:
            tail = key[1:]
            if len(tail) > 2:
                raise IndexError(f"too many indices for a 3-D array: {key!r}")
            z_key, rest = slice(None), (slice(None),) * (2 - len(tail)) + tail
        else:
            z_key, rest = key[0], key[1:]
        index = np.arange(len(self.files))[z_key]
        if np.ndim(index) == 0:
            return self.read_slice(int(index))[rest]
        out = np.empty((len(index), *self._slice_shape), dtype=self._dtype)
        for i, z in enumerate(np.asarray(index).reshape(-1)):
            out[i] = self.read_slice(int(z))
        return out[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype, copy=False)


def read_tiff_folder(folder: Path, budget: int) -> ReadResult:
    """Open a folder of 2-D TIFF slices as a lazy :class:`TiffSliceStack`.

    Every slice's header is read to check that all have the same shape and dtype and that
    none is truncated; voxel size comes from the first slice's metadata.

    Parameters
    ----------
    folder : Path
        The folder.
    budget : int
        Bytes allowed for one decoded slice.

    Returns
    -------
    ReadResult
    """
    files = tiff_slices(folder)
    if not files:
        raise InputError(folder, "folder holds no TIFF slices (.tif/.tiff)")
    first_desc = ""
    spacing: tuple[float, float, float] | None = None
    note = ""
    extras: dict[str, Any] = {}
    shape2: tuple[int, ...] = ()
    dtype = np.dtype(np.uint8)
    for index, file in enumerate(files):
        try:
            size = file.stat().st_size
            with logged_errors("tifffile") as errors, tifffile.TiffFile(file) as tif:
                page = tif.pages.first
                n_pages = len(tif.pages)
                this_shape = tuple(int(n) for n in page.shape)
                this_dtype = np.dtype(page.dtype) if page.dtype is not None else None
                samples = _samples(page)
                if len(this_shape) != 2 and samples == 1:
                    raise InputError(file, f"slice is not a 2-D image (page shape {this_shape})")
                if index == 0:
                    spacing, note, extras = tiff_spacing(tif, page, 3 if len(files) > 1 else 2)
                _check_pages_present([page], size, file)
                _raise_logged(errors, file)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any library failure is an input error
            raise InputError(file, f"cannot read TIFF slice: {one_line(exc)}") from None
        if samples > 1:
            raise InputError(
                file, f"slice has {samples} samples per pixel (colour image); expected greyscale"
            )
        if n_pages > 1:
            raise InputError(
                file, f"slice file has {n_pages} pages; a folder must hold one 2-D image per file"
            )
        if this_dtype is None:
            raise InputError(file, "slice has an unsupported pixel format")
        if index == 0:
            check_header(this_shape, this_dtype, file)
            shape2, dtype = this_shape, this_dtype
            first_desc = f"{files[0].name} is {describe(shape2, dtype)}"
            continue
        if this_shape != shape2 or this_dtype != dtype:
            raise InputError(
                file,
                f"slice is {describe(this_shape, this_dtype)} but {first_desc}; "
                "all slices must have the same shape and data type",
            )
    check_memory_budget(shape2, dtype, budget, files[0])
    stack = TiffSliceStack(files, (shape2[0], shape2[1]), dtype)
    return ReadResult(
        array=stack,
        format="tiff-folder",
        spacing_um=spacing,
        lazy=True,
        spacing_note=note,
        **extras,  # cell_id, origin_um, modality when the file records them
        metadata={"files": [str(f) for f in files]},
    )
