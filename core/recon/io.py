"""Reading projections for reconstruction: DXchange, NeXus NXtomo, TIFF, Xradia, plain arrays.

Layouts read (projections come out as ``(n_angles, n_rows, n_columns)`` float32 line
integrals, angles in degrees):

``dxchange``
    HDF5 with ``/exchange/data`` (projections), ``/exchange/data_white`` (flats),
    ``/exchange/data_dark`` (darks) and ``/exchange/theta`` (angles). ``theta`` is read in the
    unit of its ``units`` attribute (degrees or radians); without one, degrees, unless all
    values lie within ±2π and span 0.9π–2.1π, which only radians do for a tomography scan
    (the rule is noted in the result).
``nxtomo``
    NeXus ``NXtomo``: ``entry/instrument/detector/data`` (or ``entry/data/data``) with
    ``image_key`` (0 projection, 1 flat, 2 dark, 3 invalid: skipped) and
    ``entry/sample/rotation_angle`` (or ``entry/data/rotation_angle``; ``units`` honoured,
    degrees by default), one angle per frame.
``tiff-folder``
    A folder of TIFF projections (one per angle, natural order), with flats, darks and angles
    given separately.
``xradia``
    ``.txrm``/``.xrm`` (olefile): images, ``ImageInfo/Angles``, ``ReferenceData/Image`` as
    the flat, ``ImageInfo/PixelSize``.
``volume``
    Anything :func:`core.io.read_volume` reads (TIFF, HDF5, Zarr, .npy, raw), holding
    line integrals already (or I/I₀ with ``transmission=True``); 2-D data are one sinogram,
    3-D data projections ``(angles, rows, columns)`` or, with ``layout="sino"``, sinograms
    ``(rows, angles, columns)``.

Flat/dark correction: ``p = -ln((I - D)/(F - D))`` with ``F``, ``D`` the means of the flat
and dark frames (``D = 0`` without darks); transmissions below :data:`MIN_TRANSMISSION` (dead
or saturated pixels, noise under the dark) are clipped there and counted in the notes.

Angle lists that do not match the projection count (:func:`match_angles`): a list longer than
the projections is accepted when dropping *consecutive repeats* (within 1 % of the median
step) leaves exactly one angle per projection — scanners write the first and last angle
again for the flat and dark frames; anything else is refused with the two counts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.fileio import atomic_writer
from core.io.validate import check_memory_budget, memory_budget, one_line
from core.io.volume import Volume

#: Transmission floor of the flat/dark correction (a line integral of ln(1e4) ≈ 9.2).
MIN_TRANSMISSION = 1e-4
#: Largest |angle| in degrees accepted (ten turns).
MAX_ABS_ANGLE_DEG = 3600.0


@dataclass
class Projections:
    """Projections ready for reconstruction, and what was done to them.

    Attributes
    ----------
    data : ndarray
        (n_angles, n_rows, n_columns) float32 line integrals.
    angles_deg : ndarray or None
        One angle per projection (degrees) when the file gives them.
    source : str
        The file or folder.
    format : str
        ``dxchange``, ``nxtomo``, ``tiff-folder``, ``xradia`` or ``volume``.
    correction : dict
        ``flats``, ``darks`` (frame counts), ``minus_log`` (bool), ``clipped`` (pixels whose
        transmission was clipped).
    pixel_size_um : float or None
        Detector pixel size when the file records it.
    notes : list of str
        Rules applied (angles matched, units assumed, ...).
    """

    data: np.ndarray
    angles_deg: np.ndarray | None
    source: str
    format: str
    correction: dict[str, Any] = field(default_factory=dict)
    pixel_size_um: float | None = None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ angles


def match_angles(angles: Any, n_projections: int, source: object) -> tuple[np.ndarray, str]:
    """One angle per projection, by the documented rule for lists that do not match.

    Parameters
    ----------
    angles : array_like
        Angles in degrees, in projection order.
    n_projections : int
        Projections to match.
    source : object
        Named in errors (the angle file).

    Returns
    -------
    angles : ndarray
        ``n_projections`` angles (degrees).
    note : str
        What was done ("" when the list matched as it was).

    Raises
    ------
    InputError
        Non-finite or absurd angles, or a count that the rule cannot match.
    """
    try:
        a = np.asarray(angles, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(source, "angles are not numbers") from None
    if a.size == 0:
        raise InputError(source, "no angles")
    if not np.all(np.isfinite(a)):
        raise InputError(source, "angles must be finite numbers")
    if float(np.max(np.abs(a))) > MAX_ABS_ANGLE_DEG:
        raise InputError(source, f"angles up to {float(np.max(np.abs(a))):g}° are not a scan")
    if a.size == n_projections:
        return a, ""
    if a.size > n_projections:
        steps = np.abs(np.diff(a))
        moving = steps[steps > 1e-9]
        tol = max(1e-6, 0.01 * float(np.median(moving))) if moving.size else 1e-6
        keep = np.ones(a.size, dtype=bool)
        keep[1:] = steps > tol
        collapsed = a[keep]
        if collapsed.size == n_projections:
            return collapsed, (
                f"{a.size} angles for {n_projections} projections: {a.size - collapsed.size} "
                "consecutive repeats dropped (first of each run kept)"
            )
        raise InputError(
            source,
            f"{a.size} angles for {n_projections} projections ({collapsed.size} after dropping "
            "consecutive repeats); give one angle per projection",
        )
    raise InputError(
        source, f"{a.size} angles for {n_projections} projections; give one angle per projection"
    )


def parse_angles(spec: str | None, n: int, *, full_turn: bool) -> tuple[np.ndarray, str]:
    """Angles from a ``--angles`` value: a span, ``A:B``, or a text/.npy file.

    Parameters
    ----------
    spec : str or None
        ``None`` (0 … 180° or 360°, last excluded), ``"SPAN"``, ``"A:B"`` (both included),
        or a file with one angle per projection (degrees).
    n : int
        Projections.
    full_turn : bool
        Default span 360° (cone beam) instead of 180°.

    Returns
    -------
    angles : ndarray
        Degrees.
    note : str
        From :func:`match_angles` when a file did not match.
    """
    if spec is None:
        return np.linspace(0.0, 360.0 if full_turn else 180.0, n, endpoint=False), ""
    path = Path(spec)
    if path.exists():
        return match_angles(read_angle_file(path), n, path)
    try:
        if ":" in spec:
            a, b = (float(v) for v in spec.split(":"))
            values = np.linspace(a, b, n)
        else:
            values = np.linspace(0.0, float(spec), n, endpoint=False)
    except ValueError:
        raise InputError("--angles", f"{spec!r} is not SPAN, A:B or a file") from None
    return match_angles(values, n, "--angles")


def read_angle_file(path: Path) -> np.ndarray:
    """Angles (degrees) from a text file (numbers separated by spaces, commas, newlines) or .npy."""
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            if path.stat().st_size > 16 * 2**20:
                raise InputError(path, "angle file larger than 16 MB")
            text = path.read_text(encoding="utf-8", errors="replace")
            tokens = [t for t in text.replace(",", " ").replace(";", " ").split()
                      if not t.startswith("#")]
            values = [float(t) for t in tokens]
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read angles: {one_line(exc)}") from None
    return np.asarray(values, dtype=np.float64).ravel()


def _angles_from_dataset(ds: Any, source: str, notes: list[str]) -> np.ndarray:
    if ds.dtype.kind not in "iuf":
        raise InputError(source, f"{ds.name}: angles must be real numbers, not {ds.dtype}")
    values = np.asarray(ds[()], dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise InputError(source, f"{ds.name}: angles must be finite numbers")
    if values.size and float(np.max(np.abs(values))) > MAX_ABS_ANGLE_DEG:
        raise InputError(source, f"{ds.name}: angles up to {float(np.max(np.abs(values))):g} "
                                 "are not a scan")
    unit = ds.attrs.get("units", ds.attrs.get("unit"))
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    unit = str(unit).strip().lower() if unit is not None else ""
    if unit.startswith("rad"):
        return np.degrees(values)
    if unit.startswith("deg"):
        return values
    if unit:
        raise InputError(source, f"{ds.name}: unknown angle unit {unit!r}; expected degrees or rad")
    span = float(np.ptp(values)) if values.size else 0.0
    if (
        values.size >= 10
        and float(np.max(np.abs(values))) <= 2 * math.pi + 1e-6
        and 0.9 * math.pi <= span <= 2.1 * math.pi
    ):
        notes.append(f"{ds.name} has no units and spans {span:.3f}: read as radians")
        return np.degrees(values)
    notes.append(f"{ds.name} has no units: read as degrees")
    return values


# -------------------------------------------------------------------------- correction


def flat_dark_correct(
    data: np.ndarray,
    flats: np.ndarray | None,
    darks: np.ndarray | None,
    source: object,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``-ln((I - D)/(F - D))`` with mean flat and dark frames; transmissions clipped.

    Parameters
    ----------
    data : ndarray
        (n, rows, columns) raw projections.
    flats, darks : ndarray or None
        (k, rows, columns) or (rows, columns) frames; darks may be None (zero).
    source : object
        Named in errors.

    Returns
    -------
    line_integrals : ndarray
        float32, same shape as ``data``.
    info : dict
        ``flats``, ``darks`` (frame counts), ``minus_log`` True, ``clipped`` (pixel count).
    """
    shape = data.shape[1:]

    def mean_frame(frames: np.ndarray | None, what: str) -> tuple[np.ndarray | float, int]:
        if frames is None:
            return 0.0, 0
        f = np.asarray(frames, dtype=np.float64)
        if f.ndim == 2:
            f = f[None]
        if f.ndim == 3 and f.shape[0] == 0:
            raise InputError(source, f"the {what} dataset holds no frames")
        if f.ndim != 3 or f.shape[1:] != shape:
            raise InputError(
                source, f"{what} frames of shape {f.shape} do not fit projections of {shape}"
            )
        if not np.all(np.isfinite(f)):
            raise InputError(source, f"{what} frames hold NaN or infinite values")
        return f.mean(axis=0), int(f.shape[0])

    flat, n_flat = mean_frame(flats, "flat")
    dark, n_dark = mean_frame(darks, "dark")
    if n_flat == 0:
        raise InputError(source, "flat/dark correction needs at least one flat frame")
    den = np.asarray(flat, dtype=np.float64) - dark
    if float(np.median(den)) <= 0:
        raise InputError(source, "flat minus dark is not positive: are flat and dark swapped?")
    den = np.where(den > 0, den, np.nan)
    out = np.empty(data.shape, dtype=np.float32)
    clipped = 0
    for i in range(data.shape[0]):  # one projection at a time: bounded temporary memory
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (np.asarray(data[i], dtype=np.float64) - dark) / den
        bad = ~(t >= MIN_TRANSMISSION)  # NaN (dead flat pixel) or too small
        clipped += int(bad.sum())
        t[bad] = MIN_TRANSMISSION
        out[i] = -np.log(t)
    return out, {"flats": n_flat, "darks": n_dark, "minus_log": True, "clipped": clipped}


# ------------------------------------------------------------------------------- readers


def _h5_layout(f: Any) -> str | None:
    import h5py

    if isinstance(f.get("exchange/data"), h5py.Dataset):
        return "dxchange"
    for entry in f.values():
        if not isinstance(entry, h5py.Group):
            continue
        if _nxtomo_paths(entry) is not None:
            return "nxtomo"
    return None


def _nxtomo_paths(entry: Any) -> dict[str, Any] | None:
    import h5py

    def first(*paths: str) -> Any:
        for p in paths:
            obj = entry.get(p)
            if isinstance(obj, h5py.Dataset):
                return obj
        return None

    data = first("instrument/detector/data", "data/data")
    key = first("instrument/detector/image_key", "data/image_key", "image_key")
    if data is None or key is None:
        return None
    angle = first("sample/rotation_angle", "data/rotation_angle", "rotation_angle")
    return {"data": data, "image_key": key, "rotation_angle": angle}


def _load(ds: Any, index: Any, budget: int, source: str) -> np.ndarray:
    shape = ds.shape if index is None else (int(np.count_nonzero(index)), *ds.shape[1:])
    check_memory_budget(shape, ds.dtype, budget, source)
    if ds.dtype.kind not in "iuf":
        raise InputError(source, f"{ds.name}: unsupported data type {ds.dtype}")
    if index is None:
        return np.asarray(ds[()])
    rows = np.flatnonzero(index)
    return np.asarray(ds[rows]) if rows.size else np.empty((0, *ds.shape[1:]), ds.dtype)


def _read_hdf5(path: Path, layout: str, budget: int) -> tuple[Any, ...]:
    import h5py

    notes: list[str] = []
    src = str(path)
    with h5py.File(path, "r") as f:
        if layout == "dxchange":
            ex = f["exchange"]
            data = _load(ex["data"], None, budget, src)
            flats = _load(ex["data_white"], None, budget, src) if "data_white" in ex else None
            darks = _load(ex["data_dark"], None, budget, src) if "data_dark" in ex else None
            theta = ex.get("theta")
            angles = (
                _angles_from_dataset(theta, src, notes)
                if isinstance(theta, h5py.Dataset)
                else None
            )
            return data, flats, darks, angles, notes, None
        entry = next(
            e for e in f.values() if isinstance(e, h5py.Group) and _nxtomo_paths(e) is not None
        )
        paths = _nxtomo_paths(entry)
        assert paths is not None
        ds, key_ds = paths["data"], paths["image_key"]
        if ds.ndim != 3:
            raise InputError(path, f"{ds.name} has shape {ds.shape}; expected (frames, rows, columns)")
        keys = np.asarray(key_ds[()]).ravel()
        if keys.size != ds.shape[0]:
            raise InputError(
                path, f"{key_ds.name} has {keys.size} values for {ds.shape[0]} frames"
            )
        if not np.all(np.isin(keys, (0, 1, 2, 3))):
            raise InputError(path, f"{key_ds.name} holds values other than 0, 1, 2, 3")
        data = _load(ds, keys == 0, budget, src)
        flats = _load(ds, keys == 1, budget, src) if np.any(keys == 1) else None
        darks = _load(ds, keys == 2, budget, src) if np.any(keys == 2) else None
        if np.any(keys == 3):
            notes.append(f"{int(np.sum(keys == 3))} frames marked invalid (image_key 3) skipped")
        angles = None
        if paths["rotation_angle"] is not None:
            all_angles = _angles_from_dataset(paths["rotation_angle"], src, notes)
            if all_angles.size != keys.size:
                raise InputError(
                    path,
                    f"{paths['rotation_angle'].name} has {all_angles.size} values for "
                    f"{keys.size} frames",
                )
            angles = all_angles[keys == 0]
        pixel = None
        det = entry.get("instrument/detector")
        if det is not None and "x_pixel_size" in det:
            from core.io.validate import unit_to_um

            item = det["x_pixel_size"]
            factor = unit_to_um(item.attrs.get("units", item.attrs.get("unit")))
            try:
                value = float(np.asarray(item[()]).ravel()[0]) * (factor or float("nan"))
            except (TypeError, ValueError, IndexError):
                value = float("nan")
            pixel = value if math.isfinite(value) and 1e-3 <= value <= 1e4 else None
        return data, flats, darks, angles, notes, pixel


def _frames(path: str | os.PathLike[str], budget: int) -> np.ndarray:
    """Flat or dark frames from any file or folder :func:`core.io.read_volume` reads."""
    from core.io import read_volume

    vol = read_volume(path, voxel_size=1.0)
    check_memory_budget(vol.shape, np.float64, budget, path)
    return np.asarray(vol.array, dtype=np.float64)


def read_projections(
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    layout: str = "auto",
    flat: str | os.PathLike[str] | None = None,
    dark: str | os.PathLike[str] | None = None,
    transmission: bool = False,
    budget: int | None = None,
) -> Projections:
    """Read projections (and their flats, darks and angles) as line integrals.

    Parameters
    ----------
    path : str or path-like
        DXchange or NXtomo HDF5, a folder of TIFF projections, an Xradia ``.txrm``, or any
        volume file holding line integrals (see the module docstring).
    dataset : str, optional
        Dataset inside an HDF5/Zarr file (then read as a plain ``volume``).
    layout : {"auto", "proj", "sino"}
        For plain volumes: ``proj`` (angles, rows, columns), ``sino`` (rows, angles,
        columns); ``auto`` takes 3-D data as projections.
    flat, dark : path, optional
        Flat and dark frames (a file or a folder), for layouts without their own; given
        ones replace the file's.
    transmission : bool
        Plain volumes hold I/I₀: take ``-ln`` (values must be > 0).
    budget : int, optional
        Memory budget in bytes (default :func:`core.io.memory_budget`).

    Returns
    -------
    Projections

    Raises
    ------
    InputError
        Anything wrong with the files, as one line naming the file.
    """
    p = Path(path)
    budget = memory_budget(budget)
    src = str(p)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    fmt = "volume"
    flats = darks = angles = None
    pixel = None
    notes: list[str] = []
    raw: np.ndarray | None = None
    if p.is_file() and p.suffix.lower() in (".txrm", ".xrm"):
        from core.io.xradia import read_xradia

        x = read_xradia(p, budget=budget)
        raw, angles, pixel, fmt = x.images, x.angles_deg, x.pixel_size_um, "xradia"
        flats = x.reference
    elif p.is_file() and dataset is None and _is_hdf5(p):
        import h5py

        from core.io.h5guard import ensure_hdf5_parses

        ensure_hdf5_parses(p)
        try:
            with h5py.File(p, "r") as f:
                h5_layout = _h5_layout(f)
        except OSError as exc:
            raise InputError(p, f"cannot open as HDF5: {one_line(exc)}") from None
        if h5_layout is not None:
            try:
                raw, flats, darks, angles, notes, pixel = _read_hdf5(p, h5_layout, budget)
            except InputError:
                raise
            except (OSError, KeyError, ValueError, TypeError) as exc:
                raise InputError(p, f"cannot read the {h5_layout} layout: {one_line(exc)}") from None
            fmt = h5_layout
    if raw is None:
        from core.io import read_volume

        vol = read_volume(p, voxel_size=1.0, dataset=dataset)
        check_memory_budget(vol.shape, np.float32, budget, p)
        arr = np.asarray(vol.array)
        if vol.metadata.get("format") == "tiff-folder":
            fmt = "tiff-folder"
        if fmt == "volume" and flat is None and dark is None:
            data = _as_projections(arr, layout, p)
            if transmission:
                if np.any(data <= 0):
                    raise InputError(p, "transmission data (I/I0) must be > 0")
                data = -np.log(data)
            return Projections(data.astype(np.float32, copy=False), None, src, fmt,
                               {"flats": 0, "darks": 0, "minus_log": bool(transmission)},
                               None, notes)
        raw = _as_projections(arr, layout, p)
    if flat is not None:
        flats = _frames(flat, budget)
    if dark is not None:
        darks = _frames(dark, budget)
    if raw.ndim != 3 or 0 in raw.shape:
        raise InputError(p, f"projections of shape {raw.shape}; expected (angles, rows, columns)")
    if not np.all(np.isfinite(raw)):
        raise InputError(p, "projections hold NaN or infinite values")
    if flats is not None:
        data, info = flat_dark_correct(raw, flats, darks, p)
        if info["clipped"]:
            frac = info["clipped"] / raw.size
            notes.append(
                f"{info['clipped']} pixels ({100 * frac:.2g} %) had a transmission below "
                f"{MIN_TRANSMISSION:g} (or a dead flat pixel): clipped"
            )
    else:
        if darks is not None:
            raise InputError(p, "dark frames but no flat: give --flat too")
        if fmt in ("dxchange", "nxtomo", "xradia", "tiff-folder"):
            notes.append("no flat frames: values taken as line integrals already")
        data = raw.astype(np.float32, copy=False)
        if transmission:
            if np.any(data <= 0):
                raise InputError(p, "transmission data (I/I0) must be > 0")
            data = -np.log(data)
        info = {"flats": 0, "darks": 0, "minus_log": bool(transmission)}
    return Projections(data, angles, src, fmt, info, pixel, notes)


def _as_projections(arr: np.ndarray, layout: str, source: Path) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim == 2:
        return a[:, None, :]
    if a.ndim != 3:
        raise InputError(source, f"expected 2-D or 3-D projection data, got shape {a.shape}")
    if layout == "sino" or (layout == "auto" and a.shape[0] == 1):
        return np.ascontiguousarray(a.transpose(1, 0, 2))
    return a


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


#: Output formats of a reconstructed volume, by file suffix.
VOLUME_SUFFIXES = (".tif", ".tiff", ".zarr", ".npy")


def write_reconstruction(out: str | os.PathLike[str], array: np.ndarray, spacing_um: float,
                         cell_id: str = "") -> None:
    """Write a reconstructed volume, its format chosen by the suffix of ``out``.

    ``.tif``/``.tiff``: ImageJ TIFF calibrated with the voxel size; ``.zarr``: a Zarr store;
    ``.npy``: the bare array. Each is replaced atomically (nothing half-written under its name).

    Parameters
    ----------
    out : str or os.PathLike
        The output path.
    array : numpy.ndarray
        The volume, (z, y, x).
    spacing_um : float
        Isotropic voxel size, µm.
    cell_id : str
        Stored in the TIFF / Zarr metadata.

    Raises
    ------
    core.errors.InputError
        ``out`` has another suffix.
    """
    from core.io.writers import write_tiff, write_zarr  # tifffile/zarr only when writing

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in VOLUME_SUFFIXES:
        raise InputError(out, "output must end in .tif, .tiff, .zarr or .npy")
    if suffix == ".npy":
        with atomic_writer(out, suffix=".npy") as fh:
            np.save(fh, array)
        return
    volume = Volume(array, (spacing_um, spacing_um, spacing_um), cell_id=cell_id, source=str(out),
                    modality="recon")
    if suffix == ".zarr":
        write_zarr(volume, out)
    else:
        write_tiff(volume, out)
