"""Xradia (Zeiss) ``.txrm`` / ``.xrm`` files: images with their angles, energies and pixel size.

The files are OLE2 compound documents (read with :mod:`olefile`, the optional extra
``xrm``: ``pip install -e '.[xrm]'``). Streams used:

* ``ImageInfo/ImageWidth``, ``ImageHeight`` (int32), ``ImagesTaken`` or ``NoOfImages``
  (int32), ``DataType`` (int32: 5 = uint16, 10 = float32; else told by the stream size);
* ``ImageData{k}/Image{i}``: image ``i`` (1-based, 100 images per ``ImageData`` storage);
* ``ImageInfo/Angles`` (float32, degrees), ``ImageInfo/Energy`` (float32, eV),
  ``ImageInfo/PixelSize`` (float32, µm);
* ``ReferenceData/Image`` (float32): the flat field (I₀) the instrument recorded.

Every problem is one :class:`core.errors.InputError` naming the file; image sizes are checked
against the memory budget before anything is read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.io.validate import check_memory_budget, memory_budget, one_line

#: File suffixes of Xradia files.
XRM_SUFFIXES = (".xrm", ".txrm")
#: OLE2 signature.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: Largest image side accepted (pixels).
MAX_SIDE = 65536
#: Pixel sizes (µm) believed: 1 nm … 1 mm.
PIXEL_RANGE_UM = (1e-3, 1e3)
#: Install hint shown when olefile is missing.
INSTALL_HINT = "pip install -e '.[xrm]' (or pip install olefile)"


@dataclass
class XradiaData:
    """What an Xradia file holds.

    Attributes
    ----------
    images : ndarray
        (n, ny, nx) float32, file order.
    angles_deg : ndarray or None
        One rotation angle per image (degrees), when recorded and finite.
    energies_ev : ndarray or None
        One energy per image (eV), when recorded, finite and positive.
    pixel_size_um : float or None
        Pixel size (µm), when recorded and plausible.
    reference : ndarray or None
        (ny, nx) float32 flat field recorded by the instrument.
    metadata : dict
        ``format``, ``data_type`` and notes.
    """

    images: np.ndarray
    angles_deg: np.ndarray | None = None
    energies_ev: np.ndarray | None = None
    pixel_size_um: float | None = None
    reference: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def olefile_available() -> bool:
    """True when :mod:`olefile` can be imported."""
    try:
        import olefile  # noqa: F401
    except ImportError:
        return False
    return True


def read_xradia(path: str | os.PathLike[str], *, budget: int | None = None) -> XradiaData:
    """Read every image of an Xradia ``.txrm``/``.xrm`` file and its metadata.

    Parameters
    ----------
    path : str or path-like
        The file.
    budget : int, optional
        Bytes the images may take in memory (default :func:`core.io.memory_budget`).

    Returns
    -------
    XradiaData

    Raises
    ------
    InputError
        olefile missing, not an OLE2 file, sizes missing or absurd, images truncated,
        over the memory budget.
    """
    p = Path(path)
    try:
        import olefile
    except ImportError:
        raise InputError(p, f"reading Xradia files needs the olefile package: {INSTALL_HINT}") from None
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputError(p, f"cannot read: {one_line(exc.strerror or exc)}") from None
    if head != OLE_MAGIC:
        raise InputError(p, "not an Xradia file (no OLE2 header)")
    try:
        ole = olefile.OleFileIO(str(p))
    except Exception as exc:  # noqa: BLE001 - olefile raises many types on damaged files
        raise InputError(p, f"damaged OLE2 (Xradia) file: {one_line(exc)}") from None
    try:
        return _read(ole, p, memory_budget(budget))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged stream inside the file
        raise InputError(p, f"damaged Xradia file: {one_line(exc)}") from None
    finally:
        ole.close()


def _read(ole: Any, p: Path, budget: int) -> XradiaData:
    def stream(name: str, dtype: str) -> np.ndarray | None:
        if not ole.exists(name):
            return None
        raw = ole.openstream(name).read()
        size = np.dtype(dtype).itemsize
        return np.frombuffer(raw[: len(raw) // size * size], dtype=dtype)

    def integer(name: str) -> int | None:
        values = stream(name, "<i4")
        return None if values is None or values.size == 0 else int(values[0])

    nx, ny = integer("ImageInfo/ImageWidth"), integer("ImageInfo/ImageHeight")
    if nx is None or ny is None:
        raise InputError(p, "Xradia file without ImageInfo/ImageWidth and ImageHeight")
    if not (0 < nx <= MAX_SIDE and 0 < ny <= MAX_SIDE):
        raise InputError(p, f"image size {nx}×{ny} is not 1…{MAX_SIDE} pixels per side")
    declared = integer("ImageInfo/ImagesTaken") or integer("ImageInfo/NoOfImages") or 1
    if declared < 0:
        raise InputError(p, f"ImagesTaken = {declared} is negative")
    present = 0
    while present < declared and ole.exists(_image_name(present)):
        present += 1
    if present == 0:
        raise InputError(p, "Xradia file holds no images (ImageData1/Image1 missing)")
    check_memory_budget((present, ny, nx), np.float32, budget, p)
    code = integer("ImageInfo/DataType")
    images = np.empty((present, ny, nx), dtype=np.float32)
    for i in range(present):
        buf = ole.openstream(_image_name(i)).read()
        if code == 10 or (code is None and len(buf) == 4 * nx * ny):
            img = np.frombuffer(buf[: len(buf) // 4 * 4], "<f4")
        else:
            img = np.frombuffer(buf[: len(buf) // 2 * 2], "<u2")
        if img.size != nx * ny:
            raise InputError(p, f"image {i + 1} holds {img.size} pixels, not {nx}×{ny}")
        images[i] = img.reshape(ny, nx)
    if not np.all(np.isfinite(images)):
        raise InputError(p, "images hold NaN or infinite values")
    metadata: dict[str, Any] = {"format": "xradia", "data_type": code, "images": present}
    if present < declared:
        metadata["note"] = f"{declared} images declared, {present} present"

    def per_image(name: str) -> np.ndarray | None:
        values = stream(name, "<f4")
        if values is None or values.size < present:
            return None
        values = values[:present].astype(np.float64)
        return values if np.all(np.isfinite(values)) else None

    angles = per_image("ImageInfo/Angles")
    energies = per_image("ImageInfo/Energy")
    if energies is not None and not np.all(energies > 0):
        energies = None
    pixel = None
    values = stream("ImageInfo/PixelSize", "<f4")
    if values is not None and values.size:
        v = float(values[0])
        if math.isfinite(v) and PIXEL_RANGE_UM[0] <= v <= PIXEL_RANGE_UM[1]:
            pixel = v
        else:
            metadata["pixel_size_note"] = f"PixelSize {v!r} µm ignored (not plausible)"
    reference = None
    ref = stream("ReferenceData/Image", "<f4")
    if ref is not None and ref.size == nx * ny and np.all(np.isfinite(ref)):
        reference = ref.reshape(ny, nx).astype(np.float32)
    return XradiaData(images, angles, energies, pixel, reference, metadata)


def _image_name(i: int) -> str:
    """Stream of image ``i`` (0-based): 100 images per ``ImageData`` storage."""
    return f"ImageData{i // 100 + 1}/Image{i + 1}"
