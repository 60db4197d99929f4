"""Input validation for volumes: shape, dtype, values, memory budget, units.

Every check raises :class:`core.errors.InputError` naming the file and the problem in one
line. The checks that need only a header (shape, dtype, size) run before any voxel is read;
the value check (:func:`check_finite`) reads the array in z-slabs so memory stays bounded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.errors import InputError

#: Environment variable holding the memory budget in GB (GiB, 2**30 bytes).
BUDGET_ENV = "CELLQC_MEMORY_BUDGET_GB"

#: Fraction of physical RAM used as the memory budget when nothing else is given.
DEFAULT_BUDGET_FRACTION = 0.75

#: Bytes read at once by :func:`check_finite` (at least one z-slice is always read).
DEFAULT_SLAB_BYTES = 64 * 2**20

_GB = 2**30

_UNIT_TO_UM: dict[str, float] = {}
for _names, _factor in (
    (
        ("um", "µm", "micron", "microns", "micrometer", "micrometre", "micrometers", "micrometres"),
        1.0,
    ),
    (("mm", "millimeter", "millimetre", "millimeters", "millimetres"), 1e3),
    (("nm", "nanometer", "nanometre", "nanometers", "nanometres"), 1e-3),
    (("cm", "centimeter", "centimetre", "centimeters", "centimetres"), 1e4),
    (("m", "meter", "metre", "meters", "metres"), 1e6),
    (("å", "angstrom", "angstroms", "ångström"), 1e-4),
    (("in", "inch", "inches"), 25400.0),
):
    for _name in _names:
        _UNIT_TO_UM[_name] = _factor


def unit_to_um(unit: Any) -> float | None:
    """Factor converting a length in ``unit`` to µm, or None when the unit is unknown.

    Parameters
    ----------
    unit : str or bytes or None
        A unit name as found in file metadata: ``"micron"``, ``"µm"`` (micro sign or Greek
        mu), ``"um"``, ``"\\\\u00B5m"`` (ImageJ's escaped form), ``"mm"``, ``"nm"``,
        ``"cm"``, ``"m"``, ``"inch"``.  ``"pixel"`` and empty strings are unknown.

    Returns
    -------
    float or None
        µm per ``unit``.
    """
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    if isinstance(unit, np.ndarray) and unit.size == 1:
        return unit_to_um(unit.reshape(-1)[0])
    if not isinstance(unit, str):
        return None
    text = unit.strip().lower()
    text = text.replace("\\u00b5", "µ").replace("\\u03bc", "µ").replace("μ", "µ")
    return _UNIT_TO_UM.get(text)


def positive_float(value: Any) -> float | None:
    """``value`` as a finite float > 0, or None (bools, strings, arrays are refused)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def spacing_from_values(value: Any, factor: float, ndim: int) -> tuple[float, float, float] | None:
    """Turn a stored voxel size (scalar, (y, x) or (z, y, x)) into (z, y, x) µm.

    Parameters
    ----------
    value : number or sequence
        As stored in the file, in units where one unit is ``factor`` µm.
    factor : float
        µm per stored unit.
    ndim : int
        Dimensions of the data (kept for callers; a 2-value size is read as (y, x) with
        z = y, i.e. cubic voxels, whatever ``ndim`` is).

    Returns
    -------
    tuple of float or None
        None when the value is not 1, 2 or 3 positive finite numbers.
    """
    if isinstance(value, (bytes, str)):
        return None
    if isinstance(value, (Sequence, np.ndarray)):
        try:
            numbers = [positive_float(v) for v in np.asarray(value, dtype=object).reshape(-1)]
        except (TypeError, ValueError):
            return None
    else:
        numbers = [positive_float(value)]
    if not numbers or any(n is None for n in numbers):
        return None
    values = [float(n) * factor for n in numbers if n is not None]
    if len(values) == 1:
        values = values * 3
    elif len(values) == 2:
        values = [values[0], values[0], values[1]]
    elif len(values) != 3:
        return None
    if not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return (values[0], values[1], values[2])


#: Attribute names holding a voxel size in µm, whatever their ``units`` attribute says.
UM_KEYS = ("spacing_um", "voxel_size_um", "pixel_size_um", "element_size_um")
#: Attribute names holding a voxel size in the unit named by a ``units``/``unit`` attribute.
UNIT_KEYS = ("spacing", "voxel_size", "pixel_size", "voxelsize", "pixelsize")


def spacing_from_attrs(
    attrs: Mapping[str, Any], ndim: int
) -> tuple[tuple[float, float, float] | None, str]:
    """Find a voxel size in a mapping of attributes (HDF5, Zarr, JSON).

    Parameters
    ----------
    attrs : mapping
        Attributes of a dataset or group.
    ndim : int
        Dimensions of the data.

    Returns
    -------
    spacing : tuple of float or None
        (z, y, x) in µm.
    note : str
        Why an attribute that looked like a voxel size was not used ("" when none was seen).
    """
    note = ""
    for key in UM_KEYS:
        if key in attrs:
            spacing = spacing_from_values(attrs[key], 1.0, ndim)
            if spacing is not None:
                return spacing, ""
            note = f"attribute {key!r} = {_short(attrs[key])} is not 1 or 3 positive numbers"
    for key in UNIT_KEYS:
        if key not in attrs:
            continue
        unit = None
        for unit_key in (f"{key}_units", f"{key}_unit", "units", "unit"):
            if unit_key in attrs:
                unit = attrs[unit_key]
                break
        factor = unit_to_um(unit)
        if factor is None:
            note = (
                f"attribute {key!r} has no units"
                if unit is None
                else f"attribute {key!r} has unknown units {_short(unit)}"
            )
            continue
        spacing = spacing_from_values(attrs[key], factor, ndim)
        if spacing is not None:
            return spacing, ""
        note = f"attribute {key!r} = {_short(attrs[key])} is not 1 or 3 positive numbers"
    return None, note


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: object, limit: int = 300) -> str:
    """Collapse an exception message (or anything) to one line of at most ``limit`` chars."""
    line = " ".join(str(text).split())
    if not line:
        line = type(text).__name__ if isinstance(text, BaseException) else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def format_bytes(n: float) -> str:
    """``1.5 GB`` style (GB = 2**30 bytes)."""
    for unit, size in (("GB", _GB), ("MB", 2**20), ("kB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def describe(shape: Sequence[int], dtype: Any) -> str:
    """``shape (100, 728, 728) uint8``: how errors name an array's layout."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    return f"shape {tuple(int(n) for n in shape)} {name}"


def memory_budget(explicit: float | None = None) -> int:
    """The number of bytes a reader may allocate to load a volume that cannot be read lazily.

    Parameters
    ----------
    explicit : float, optional
        Bytes; used when given.

    Returns
    -------
    int
        ``explicit``, else ``$CELLQC_MEMORY_BUDGET_GB`` × 2**30, else 0.75 × physical RAM
        (``os.sysconf``), else 4 GB when the RAM size is unknown.
    """
    if explicit is not None:
        value = positive_float(explicit)
        if value is None:
            raise InputError("memory_budget_bytes", f"must be a positive number, got {explicit!r}")
        return int(value)
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        try:
            gb = float(env)
        except ValueError:
            gb = float("nan")
        if not (math.isfinite(gb) and gb > 0):
            raise InputError(BUDGET_ENV, f"must be a positive number of GB, got {env!r}")
        return int(gb * _GB)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = -1
    if physical <= 0:
        return 4 * _GB
    return int(DEFAULT_BUDGET_FRACTION * physical)


def check_memory_budget(shape: Sequence[int], dtype: Any, budget: int, source: object) -> None:
    """Refuse to load an array that does not fit the memory budget (header check, no allocation).

    Parameters
    ----------
    shape : sequence of int
        The array's shape as declared by the file header.
    dtype : dtype-like
        Its element type.
    budget : int
        Bytes allowed (see :func:`memory_budget`).
    source : object
        The file, named in the error.
    """
    needed = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize
    if needed > budget:
        raise InputError(
            source,
            f"needs {format_bytes(needed)} of memory to read ({describe(shape, dtype)}), more than "
            f"the memory budget of {format_bytes(budget)}; set {BUDGET_ENV} or convert it to "
            "Zarr or raw + JSON, which are read lazily",
        )


def check_dtype(dtype: Any, source: object) -> np.dtype:
    """Accept integer and real floating-point voxels; refuse bool, complex, object, strings.

    Returns
    -------
    numpy.dtype
    """
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise InputError(source, f"unsupported data type {dtype!r}") from None
    if dt.kind in "iuf" and dt.fields is None and dt.subdtype is None:
        return dt
    kinds = {
        "b": "boolean",
        "c": "complex",
        "O": "Python object",
        "S": "byte string",
        "U": "text string",
        "V": "structured/raw record",
        "M": "date-time",
        "m": "time-delta",
    }
    what = kinds.get(dt.kind, "non-numeric")
    raise InputError(
        source,
        f"unsupported data type {dt.name if dt.kind != 'V' else str(dt)} ({what}); "
        "expected integer or real floating-point voxels",
    )


def check_shape(shape: Sequence[int] | None, source: object) -> tuple[int, ...]:
    """Accept 2-D (one slice) and 3-D (z, y, x) shapes with no zero dimension.

    Returns
    -------
    tuple of int
    """
    if shape is None:
        raise InputError(source, "holds no data (empty dataspace)")
    dims = tuple(int(n) for n in shape)
    if len(dims) > 3:
        raise InputError(
            source,
            f"data are {len(dims)}-D with shape {dims}; expected a 3-D (z, y, x) volume "
            "or a 2-D image (select one channel/time point first)",
        )
    if len(dims) < 2:
        raise InputError(
            source, f"data are {len(dims)}-D with shape {dims}; expected a 3-D (z, y, x) volume"
        )
    if any(n <= 0 for n in dims):
        raise InputError(source, f"data are empty: shape {dims} has a zero-size dimension")
    return dims


def check_header(shape: Sequence[int] | None, dtype: Any, source: object) -> tuple[int, ...]:
    """:func:`check_shape` then :func:`check_dtype`; what every reader runs before reading."""
    dims = check_shape(shape, source)
    check_dtype(dtype, source)
    return dims


def _slab_size(array: Any, slab_bytes: int) -> int:
    shape = tuple(int(n) for n in array.shape)
    slice_bytes = max(1, math.prod(shape[1:]) * np.dtype(array.dtype).itemsize)
    step = max(1, slab_bytes // slice_bytes)
    chunks = getattr(array, "chunks", None)
    if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], (int, np.integer)):
        cz = max(1, int(chunks[0]))
        step = max(cz, step // cz * cz)  # whole chunks: each one is decoded once
    return step


def iter_slabs(array: Any, slab_bytes: int = DEFAULT_SLAB_BYTES):
    """Yield ``(z0, slab)`` pairs covering ``array`` along z, each slab about ``slab_bytes``.

    Parameters
    ----------
    array : array_like
        3-D, possibly lazy (memmap, zarr, h5py, TIFF slice stack).
    slab_bytes : int
        Target bytes per slab (at least one slice, rounded to whole z-chunks).
    """
    step = _slab_size(array, slab_bytes)
    nz = int(array.shape[0])
    for z0 in range(0, nz, step):
        yield z0, np.asarray(array[z0 : min(nz, z0 + step)])


def check_finite(array: Any, source: object, *, slab_bytes: int = DEFAULT_SLAB_BYTES) -> None:
    """Refuse floating-point volumes holding NaN or ±Inf, reading slab by slab.

    Parameters
    ----------
    array : array_like
        3-D volume (lazy arrays are read one z-slab at a time, never whole).
    source : object
        The file, named in the error.
    slab_bytes : int
        Bytes read at once.
    """
    if np.dtype(array.dtype).kind != "f":
        return
    for z0, slab in iter_slabs(array, slab_bytes):
        with np.errstate(all="ignore"):
            total = np.add.reduce(slab, axis=None, dtype=np.float64)
        if math.isfinite(float(total)):
            continue
        finite = np.isfinite(slab)
        if finite.all():  # the sum overflowed; the values are fine
            continue
        bad_z = np.flatnonzero(~finite.reshape(len(slab), -1).all(axis=1))
        z = z0 + int(bad_z[0])
        kinds = [
            name
            for name, present in (("NaN", np.isnan(slab).any()), ("Inf", np.isinf(slab).any()))
            if present
        ]
        raise InputError(
            source,
            f"contains {' and '.join(kinds)} values (first in slice z={z}); "
            "a reconstruction with non-finite voxels cannot be inspected",
        )


def validate_volume(volume: Any, *, check_values: bool = True) -> None:
    """Run the header and value checks on an already built :class:`~core.io.volume.Volume`.

    Parameters
    ----------
    volume : Volume
        The volume to check.
    check_values : bool
        Also scan float data for NaN/Inf (reads the whole volume, slab by slab).
    """
    source = volume.source or "volume"
    check_header(volume.array.shape, volume.array.dtype, source)
    if check_values:
        check_finite(volume.array, source)
