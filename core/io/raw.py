"""Readers of plain binary volumes: NumPy ``.npy`` and raw + JSON sidecar, both memory-mapped.

A raw volume ``NAME.raw`` is described by ``NAME.json`` beside it::

    {"shape": [nz, ny, nx], "dtype": "uint16", "byte_order": "little",
     "spacing_um": [67.94, 33.97, 33.97], "header_bytes": 0}

``spacing_um`` (one number or [z, y, x]) and ``header_bytes`` are optional; ``byte_order``
may be left out for one-byte types or when the dtype carries it (``"<u2"``). Optional
``origin_um``, ``cell_id`` and ``modality`` are kept as metadata.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.io._common import ReadResult, origin_from
from core.io.validate import check_header, describe, spacing_from_values

NPY_MAGIC = b"\x93NUMPY"
RAW_SUFFIXES = (".raw", ".bin", ".img", ".vol", ".dat")
MAX_SIDECAR_BYTES = 1 << 20

_BYTE_ORDERS = {
    "little": "<",
    "le": "<",
    "<": "<",
    "big": ">",
    "be": ">",
    ">": ">",
    "native": "=",
    "=": "=",
}


def sidecar_paths(path: Path) -> tuple[Path, Path] | None:
    """(raw file, JSON sidecar) for a path naming either of them, or None if no pair exists."""
    if path.suffix.lower() == ".json":
        for suffix in RAW_SUFFIXES:
            raw = path.with_suffix(suffix)
            if raw.is_file():
                return raw, path
        return None
    for sidecar in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if sidecar.is_file():
            return path, sidecar
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def parse_sidecar(raw: Path, sidecar: Path) -> dict[str, Any]:
    """Read and check a raw volume's JSON sidecar.

    Parameters
    ----------
    raw : Path
        The raw file (named in errors).
    sidecar : Path
        The JSON file.

    Returns
    -------
    dict
        ``shape`` (tuple of int), ``dtype`` (numpy.dtype with byte order), ``header_bytes``
        (int), ``spacing_um`` (tuple or None), ``origin_um``, ``cell_id``, ``modality``.
    """
    where = f"sidecar {sidecar.name}"
    if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
        raise InputError(raw, f"{where} is larger than {MAX_SIDECAR_BYTES} bytes; not a sidecar")
    try:
        data = json.loads(sidecar.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(raw, f"{where} is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested"
        raise InputError(raw, f"{where} is not valid JSON: {msg}") from None
    if not isinstance(data, dict):
        raise InputError(raw, f"{where} must hold a JSON object with shape, dtype, byte_order")

    shape_value = data.get("shape")
    if not isinstance(shape_value, list) or not shape_value:
        raise InputError(raw, f"{where}: 'shape' must be a list like [nz, ny, nx]")
    shape = [_int(n) for n in shape_value]
    if any(n is None or n < 0 for n in shape):
        raise InputError(
            raw, f"{where}: 'shape' must hold non-negative integers, got {shape_value!r:.80}"
        )
    dims = tuple(int(n) for n in shape if n is not None)

    dtype_text = data.get("dtype")
    if not isinstance(dtype_text, str) or not dtype_text.strip():
        raise InputError(raw, f"{where}: 'dtype' must be a string like \"uint16\"")
    try:
        dtype = np.dtype(dtype_text.strip())
    except Exception:  # noqa: BLE001 - numpy raises several types for bad dtype strings
        raise InputError(raw, f"{where}: unknown dtype {dtype_text!r:.60}") from None
    check_header(dims, dtype, raw)

    order_value = data.get("byte_order")
    explicit = dtype_text.strip()[:1] if dtype_text.strip()[:1] in "<>" else None
    if order_value is None:
        if explicit is None and dtype.itemsize > 1:
            raise InputError(
                raw, f'{where}: \'byte_order\' ("little" or "big") is needed for {dtype.name}'
            )
        order = explicit or "="
    else:
        order_key = order_value.strip().lower() if isinstance(order_value, str) else None
        if order_key not in _BYTE_ORDERS:
            raise InputError(
                raw, f'{where}: \'byte_order\' must be "little" or "big", got {order_value!r:.40}'
            )
        order = _BYTE_ORDERS[order_key]
        if explicit is not None and order != "=" and explicit != order and dtype.itemsize > 1:
            raise InputError(
                raw, f"{where}: dtype {dtype_text!r} contradicts byte_order {order_value!r}"
            )
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(order)

    header = data.get("header_bytes", 0)
    if _int(header) is None or header < 0:
        raise InputError(raw, f"{where}: 'header_bytes' must be a non-negative integer")

    spacing = None
    if data.get("spacing_um") is not None:
        spacing = spacing_from_values(data["spacing_um"], 1.0, len(dims))
        if spacing is None or not isinstance(data["spacing_um"], (int, float, list)):
            raise InputError(
                raw,
                f"{where}: 'spacing_um' must be a positive number or [z, y, x], "
                f"got {data['spacing_um']!r:.60}",
            )
    return {
        "shape": dims,
        "dtype": dtype,
        "header_bytes": int(header),
        "spacing_um": spacing,
        "origin_um": origin_from(data["origin_um"]) if "origin_um" in data else None,
        "cell_id": data["cell_id"] if isinstance(data.get("cell_id"), str) else None,
        "modality": data["modality"] if isinstance(data.get("modality"), str) else None,
    }


def read_raw(path: Path) -> ReadResult:
    """Memory-map a raw volume described by its JSON sidecar (file size must match exactly).

    Parameters
    ----------
    path : Path
        The raw file or its ``.json`` sidecar.

    Returns
    -------
    ReadResult
    """
    pair = sidecar_paths(path)
    if pair is None:
        if path.suffix.lower() == ".json":
            raise InputError(path, "JSON file has no raw volume (NAME.raw) beside it")
        raise InputError(
            path,
            f"raw volume has no JSON sidecar {path.with_suffix('.json').name} beside it "
            "(needs shape, dtype, byte_order)",
        )
    raw, sidecar = pair
    info = parse_sidecar(raw, sidecar)
    shape, dtype, header = info["shape"], info["dtype"], info["header_bytes"]
    expected = header + math.prod(shape) * dtype.itemsize
    actual = raw.stat().st_size
    if actual != expected:
        extra = f" plus {header} header bytes" if header else ""
        raise InputError(
            raw,
            f"expected {expected} bytes for {describe(shape, dtype)}{extra} "
            f"(from {sidecar.name}), file has {actual}",
        )
    array = np.memmap(raw, dtype=dtype, mode="r", offset=header, shape=shape, order="C")
    return ReadResult(
        array=array,
        format="raw",
        spacing_um=info["spacing_um"],
        lazy=True,
        origin_um=info["origin_um"],
        cell_id=info["cell_id"],
        modality=info["modality"],
        metadata={"sidecar": str(sidecar), "byte_order": dtype.byteorder},
        source=raw,
    )


def read_npy(path: Path) -> ReadResult:
    """Memory-map a ``.npy`` file after checking its header (shape, dtype, size).

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    ReadResult
    """
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
    check_header(shape, dtype, path)
    expected = offset + math.prod(shape) * np.dtype(dtype).itemsize
    actual = path.stat().st_size
    if actual < expected:
        raise InputError(
            path,
            f"truncated .npy: expected {expected} bytes for {describe(shape, dtype)}, "
            f"file has {actual}",
        )
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return ReadResult(array=array, format="npy", lazy=True)
