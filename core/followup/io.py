"""Reading synchrotron follow-up data: holotomography volumes and XANES image stacks.

Holotomography: reconstructed phase (or δ) volumes as TIFF / HDF5 (through
:func:`core.io.read_volume`) or PyHST2 ``NAME.vol`` + ``NAME.vol.info`` (raw little-endian
float32, ``NUM_X`` fastest, voxel size in µm).

XANES: an image stack with one image (2-D XANES) or one reconstructed volume (3-D XANES
spectro-tomography) per energy, shape ``(n_energies, *spatial)``:

* HDF5: an energy dataset (``energy``, ``X_eng``, ``exchange/energy``, …) plus the stack
  (``img_xanes``, ``exchange/data``, …), with flat/dark references found by name
  (``img_bkg``/``data_white``/``flat``, ``img_dark``/``data_dark``/``dark``);
* TIFF: a multi-page file or several files (one per energy) plus an energy list file;
* Xradia ``.xrm`` / ``.txrm`` (needs :mod:`olefile`): energies from the file's metadata, else
  from the file names (``..._8345.5eV.xrm``).

Flat fields turn transmitted intensities into optical density ``-ln((I - D)/(I₀ - D))``.
Energies in eV or keV are told apart by their magnitude. Every bad input raises
:class:`core.errors.InputError` with one line naming the file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.fileio import sha256_file  # noqa: F401  (re-exported: core.followup.sha256_file)
from core.io import Volume, memory_budget, read_volume
from core.io.h5guard import ensure_hdf5_parses
from core.io.validate import check_finite, check_memory_budget, one_line

#: File suffixes read as Xradia (OLE2) files.
XRM_SUFFIXES = (".xrm", ".txrm")
#: HDF5 file suffixes.
H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs", ".he5")
#: Dataset base names taken as the energy axis of an HDF5 XANES file (case-insensitive).
ENERGY_NAMES = ("energy", "energies", "x_eng", "eng", "energy_ev", "energy_kev", "energy_list")
#: Dataset base names preferred for the image stack.
STACK_NAMES = ("img_xanes", "data", "xanes", "images", "img", "stack", "absorption", "od")
#: Dataset base names of flat-field (I₀) references.
FLAT_NAMES = ("img_bkg", "data_white", "flat", "flats", "white", "whites", "i0", "bkg", "ref")
#: Dataset base names of dark references.
DARK_NAMES = ("img_dark", "data_dark", "dark", "darks")
#: Energies below this many eV are taken as keV.
KEV_LIMIT = 200.0
#: Largest energy list / .vol.info / energy dataset read (bytes): they hold numbers, not data.
MAX_TEXT_BYTES = 16 * 2**20


def _check_text_size(path: Path) -> None:
    """Refuse a text file (energy list, .vol.info) too large to be one."""
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise InputError(path, f"is {size} bytes; a text file of this kind is under {MAX_TEXT_BYTES}")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied")


# ----------------------------------------------------------------------------- energies


def to_ev(values: Any, source: object = "energies") -> np.ndarray:
    """Energies in eV, from values in eV or keV (told apart by magnitude).

    Parameters
    ----------
    values : array_like
        1-D energies; all below :data:`KEV_LIMIT` are keV (8.345), all above are eV (8345).
    source : object
        Named in errors.

    Returns
    -------
    ndarray of float64
        Energies in eV, in the given order.

    Raises
    ------
    InputError
        Empty, non-finite, non-positive, mixed units, or duplicated energies.
    """
    try:
        e = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(source, "energies are not numbers") from None
    if e.size == 0:
        raise InputError(source, "no energies found")
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise InputError(source, "energies must be finite and positive")
    if np.all(e < KEV_LIMIT):
        e = e * 1000.0
    elif np.any(e < KEV_LIMIT):
        raise InputError(
            source, f"energies mix keV and eV values ({e.min():g} … {e.max():g}); use one unit"
        )
    if np.unique(np.round(e, 6)).size != e.size:
        raise InputError(source, "energies repeat; each image needs its own energy")
    return e


def read_energy_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an energy list: one energy per line, or the first column of a text/CSV table.

    Header lines, comments (``#``) and blank lines are skipped; values may be eV or keV.

    Parameters
    ----------
    path : str or path-like
        A text file.

    Returns
    -------
    ndarray of float64
        Energies in eV, in file order.
    """
    p = Path(path)
    _check_file(p)
    _check_text_size(p)
    values: list[float] = []
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(p, f"cannot read: {one_line(exc.strerror or exc)}") from None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        first = re.split(r"[,\s;\t]+", line)[0]
        try:
            values.append(float(first))
        except ValueError:
            if values:
                raise InputError(p, f"not a number in the energy list: {line[:40]!r}") from None
            continue  # a header line before the numbers
    return to_ev(values, p)


_ENERGY_IN_NAME = re.compile(r"(\d+(?:[.p]\d+)?)\s*(kev|ev)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def energies_from_names(paths: Sequence[Path]) -> np.ndarray | None:
    """Energies written in file names (``scan_8345.5eV.xrm``, ``Ni_8.3455keV.tif``).

    Falls back to the last number in each name when no unit is written, if those numbers
    look like energies (all differ and convert with :func:`to_ev`).

    Parameters
    ----------
    paths : sequence of Path
        One file per energy.

    Returns
    -------
    ndarray or None
        Energies in eV, or None when the names do not carry them.
    """
    found: list[float] = []
    for p in paths:
        m = _ENERGY_IN_NAME.findall(p.stem)
        if m:
            value = float(m[-1][0].replace("p", "."))
            found.append(value * 1000.0 if m[-1][1].lower() == "kev" else value)
            continue
        numbers = _NUMBER.findall(p.stem)
        if not numbers:
            return None
        found.append(float(numbers[-1]))
    try:
        e = to_ev(found, "file names")
    except InputError:
        return None
    if not np.all((e > 1000.0) & (e < 100000.0)):
        return None
    return e


# ------------------------------------------------------------------------ holotomography


def read_vol_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a PyHST2 ``.vol.info`` file (``KEY = value`` lines).

    Parameters
    ----------
    path : str or path-like
        The ``.vol.info`` file.

    Returns
    -------
    dict
        Keys as written (``NUM_X``, ``NUM_Y``, ``NUM_Z``, ``voxelSize``, ``BYTEORDER``, …);
        numbers converted.
    """
    p = Path(path)
    _check_file(p)
    _check_text_size(p)
    info: dict[str, Any] = {}
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(p, f"cannot read: {one_line(exc.strerror or exc)}") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("!", "#")) or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        try:
            info[key] = int(value)
        except ValueError:
            try:
                info[key] = float(value)
            except ValueError:
                info[key] = value
    return info


def _vol_pair(path: Path) -> tuple[Path, Path]:
    name = path.name
    if name.lower().endswith(".vol.info"):
        return path.with_name(name[: -len(".info")]), path
    if name.lower().endswith(".info"):
        return path.with_suffix(""), path
    return path, path.with_name(name + ".info")


def read_pyhst_vol(path: str | os.PathLike[str], voxel_size: Any = None) -> Volume:
    """Open a PyHST2 volume (``NAME.vol`` + ``NAME.vol.info``) memory-mapped.

    Parameters
    ----------
    path : str or path-like
        Either the ``.vol`` or the ``.vol.info`` file.
    voxel_size : float or (z, y, x), optional
        µm; overrides ``voxelSize`` of the info file.

    Returns
    -------
    Volume
        float32 ``np.memmap`` of shape (NUM_Z, NUM_Y, NUM_X), ``modality="holotomography"``.
    """
    vol, info_path = _vol_pair(Path(path))
    _check_file(vol)
    if not info_path.exists():
        raise InputError(vol, f"PyHST2 volume without its {info_path.name} (shape, voxel size)")
    info = read_vol_info(info_path)
    sizes = [info.get(k) for k in ("NUM_Z", "NUM_Y", "NUM_X")]
    # Whole numbers only: a float size such as 'inf', 'nan' or 1e400 is not a shape.
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in sizes):
        raise InputError(info_path, "needs integer NUM_X, NUM_Y and NUM_Z")
    shape = tuple(int(n) for n in sizes)
    if min(shape) <= 0:
        raise InputError(info_path, f"non-positive size NUM_Z,Y,X = {shape}")
    order = str(info.get("BYTEORDER", "LOWBYTEFIRST")).upper()
    dtype = np.dtype(">f4" if order.startswith("HIGH") else "<f4")
    # Python integers: np.prod would wrap around silently for a hostile 1e7 × 1e7 × 1e7.
    expected = math.prod(shape) * 4
    size = vol.stat().st_size
    if size != expected:
        raise InputError(
            vol,
            f"holds {size} bytes, but {info_path.name} says {shape[2]}×{shape[1]}×{shape[0]} "
            f"float32 = {expected} bytes (truncated, or the wrong .info?)",
        )
    if voxel_size is None:
        size_um = info.get("voxelSize", info.get("VOXEL_SIZE"))
        if (
            not isinstance(size_um, (int, float))
            or isinstance(size_um, bool)
            or not math.isfinite(size_um)
            or not size_um > 0
        ):
            raise InputError(info_path, "no voxelSize (µm); pass --voxel-size UM")
        voxel_size = float(size_um)
    array = np.memmap(vol, dtype=dtype, mode="r", shape=shape)
    check_finite(array, vol)
    return Volume(
        array=array,
        spacing_um=voxel_size,
        source=str(vol),
        modality="holotomography",
        metadata={"format": "pyhst2-vol", "vol_info": info, "lazy": True},
    )


def read_holo_volume(
    path: str | os.PathLike[str], voxel_size: Any = None, *, dataset: str | None = None
) -> Volume:
    """Open a reconstructed holotomography (phase) volume.

    Parameters
    ----------
    path : str or path-like
        PyHST2 ``.vol``/``.vol.info``, or anything :func:`core.io.read_volume` reads (TIFF,
        TIFF folder, HDF5/NeXus, Zarr, .npy, raw + JSON).
    voxel_size : float or (z, y, x), optional
        µm, overriding the file's.
    dataset : str, optional
        Dataset path inside an HDF5 file.

    Returns
    -------
    Volume
        With ``modality="holotomography"``.
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".vol", ".vol.info")):
        return read_pyhst_vol(p, voxel_size)
    volume = read_volume(p, voxel_size=voxel_size, dataset=dataset)
    volume.modality = "holotomography"
    return volume


# ---------------------------------------------------------------------------------- XANES


@dataclass
class XanesStack:
    """A XANES image stack: one image or volume per energy, in physical units.

    Attributes
    ----------
    raw : array_like
        Shape (n_energies, *spatial) in file order; may be lazy (``h5py.Dataset``).
    energies_ev : ndarray
        Energies in eV, file order.
    flat, dark : ndarray, optional
        References broadcastable against ``raw`` (per energy or shared). When ``flat`` is
        given, :meth:`block` returns optical density ``-ln((I - D)/(I₀ - D))``.
    spacing_um : tuple of float, optional
        Pixel/voxel size of the spatial axes in µm, when known.
    source : str
        The file (first file) the data came from.
    metadata : dict
        Format, dataset names, what was applied.
    """

    raw: Any
    energies_ev: np.ndarray
    flat: np.ndarray | None = None
    dark: np.ndarray | None = None
    spacing_um: tuple[float, ...] | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def order(self) -> np.ndarray:
        """Indices that sort the energies ascending."""
        return np.argsort(self.energies_ev, kind="stable")

    @property
    def energies(self) -> np.ndarray:
        """Energies in eV, ascending."""
        return np.asarray(self.energies_ev)[self.order]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of one image/volume."""
        return tuple(int(n) for n in self.raw.shape[1:])

    @property
    def quantity(self) -> str:
        """``"optical-density"`` when a flat field is applied, else ``"as-given"``."""
        return "optical-density" if self.flat is not None else "as-given"

    def _ref_block(self, ref: np.ndarray | None, start: int, stop: int) -> Any:
        if ref is None:
            return 0.0
        if ref.ndim >= 2 and ref.shape[1] > 1:
            return ref[:, start:stop]
        return ref

    def block(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Spectra of the spatial slab ``start:stop`` along the first spatial axis.

        Parameters
        ----------
        start, stop : int
            Slab bounds (default: everything).

        Returns
        -------
        ndarray of float64
            Shape (n_energies, stop - start, …) with energies ascending; optical density
            when a flat field is present.
        """
        stop = self.raw.shape[1] if stop is None else stop
        data = np.asarray(self.raw[:, start:stop], dtype=np.float64)
        if self.flat is not None:
            dark = self._ref_block(self.dark, start, stop)
            flat = self._ref_block(self.flat, start, stop)
            num = np.clip(data - dark, 1e-6, None)
            den = np.clip(np.asarray(flat, dtype=np.float64) - dark, 1e-6, None)
            data = -np.log(num / den)
        return data[self.order]

    def close(self) -> None:
        """Close an HDF5 file kept open for lazy reading."""
        handle = self.metadata.pop("h5file", None)
        if handle is not None:
            handle.close()


def _reference(given: Any, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    """A flat or dark reference given as an array or a file (read here), shaped by :func:`_as_ref`;
    errors name the file, or ``name`` for an array."""
    if isinstance(given, np.ndarray):
        return _as_ref(given, shape, name, what)
    return _as_ref(read_image(Path(given)), shape, given, what)


def _as_ref(ref: Any, shape: tuple[int, ...], source: object, what: str) -> np.ndarray:
    """Shape a flat/dark reference so that it broadcasts against (n_e, *spatial)."""
    ref = np.asarray(ref, dtype=np.float64)
    n_e, spatial = shape[0], tuple(shape[1:])
    if ref.ndim == 1 and ref.shape[0] == n_e:  # one I₀ per energy (ion chamber)
        return ref.reshape((n_e,) + (1,) * len(spatial))
    if ref.shape == tuple(shape):
        return ref
    if ref.shape == spatial:
        return ref[np.newaxis]
    if ref.ndim == len(shape) and ref.shape[1:] == spatial:  # several frames: average
        return ref.mean(axis=0, keepdims=True)
    if ref.ndim == len(spatial) + 1 and ref.shape[0] == 1 and ref.shape[1:] == spatial:
        return ref
    raise InputError(
        source,
        f"{what} of shape {ref.shape} does not fit images of shape {spatial} at {n_e} energies",
    )


def _read_xrm(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Images, energies (eV) and metadata of one Xradia .xrm/.txrm file."""
    from core.io.xradia import read_xradia

    data = read_xradia(path)
    metadata: dict[str, Any] = {"format": "xradia"}
    if data.pixel_size_um is not None:
        metadata["pixel_size_um"] = data.pixel_size_um
    if data.reference is not None:
        metadata["reference"] = data.reference
    return data.images, data.energies_ev, metadata


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """One image or a small stack (a flat, a dark, a projection) from TIFF, .npy, HDF5 or Xradia.

    Parameters
    ----------
    path : str or path-like
        A TIFF, ``.npy``, an HDF5 file holding one image dataset, or an ``.xrm``/``.txrm``.

    Returns
    -------
    ndarray
        As stored (2-D image or (n, ny, nx) frames).

    Raises
    ------
    InputError
        Missing, unreadable, or larger than the memory budget (checked from the header,
        before anything is decoded).
    """
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    budget = memory_budget()
    try:
        if suffix in XRM_SUFFIXES:
            return _read_xrm(path)[0]
        if suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            check_memory_budget(arr.shape, arr.dtype, budget, path)
            return np.asarray(arr)
        if suffix in H5_SUFFIXES or _is_hdf5(path):
            import h5py

            ensure_hdf5_parses(path)
            with h5py.File(path, "r") as f:
                found: list[Any] = []
                f.visititems(lambda n, o: found.append(o) if isinstance(o, h5py.Dataset) else None)
                images = [d for d in found if d.ndim >= 2]
                if len(images) != 1:
                    raise InputError(path, f"expected one image dataset, found {len(images)}")
                check_memory_budget(images[0].shape, images[0].dtype, budget, path)
                return np.asarray(images[0][()])
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(path, "TIFF file holds no images")
            series = tif.series[0]
            check_memory_budget(series.shape, series.dtype, budget, path)
            return np.asarray(series.asarray())
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any library failure becomes one line
        raise InputError(path, f"cannot read the image: {one_line(exc)}") from None


def _h5_find(
    f: Any, names: Iterable[str], *, ndim: int | None = None, min_ndim: int | None = None
) -> list[Any]:
    import h5py

    wanted = tuple(n.lower() for n in names)
    found: list[Any] = []

    def visit(name: str, obj: Any) -> None:
        if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "iuf":
            return
        if name.rsplit("/", 1)[-1].lower() not in wanted:
            return
        if ndim is not None and obj.ndim != ndim:
            return
        if min_ndim is not None and obj.ndim < min_ndim:
            return
        found.append(obj)

    f.visititems(visit)
    return found


def _energy_units(ds: Any) -> np.ndarray:
    check_memory_budget(ds.shape, np.float64, min(memory_budget(), MAX_TEXT_BYTES),
                        f"{ds.file.filename}:{ds.name}")
    values = np.asarray(ds[()], dtype=np.float64).ravel()
    unit = ds.attrs.get("units", ds.attrs.get("unit", b""))
    unit = unit.decode() if isinstance(unit, bytes) else str(unit)
    if unit.strip().lower() == "kev":
        values = values * 1000.0
    return to_ev(values, f"{ds.file.filename}:{ds.name}")


def _read_xanes_h5(
    path: Path, energies: np.ndarray | None, dataset: str | None, energy_dataset: str | None
) -> XanesStack:
    import h5py

    ensure_hdf5_parses(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"cannot open as HDF5: {one_line(exc)}") from None
    try:
        if energies is None:
            if energy_dataset:
                if energy_dataset not in f:
                    raise InputError(path, f"no dataset {energy_dataset!r}")
                energies = _energy_units(f[energy_dataset])
            else:
                cands = _h5_find(f, ENERGY_NAMES, ndim=1)
                if not cands:
                    raise InputError(
                        path,
                        "no energy dataset (energy, X_eng, exchange/energy, …); "
                        "pass --energies FILE",
                    )
                energies = _energy_units(cands[0])
        n_e = energies.size
        if dataset:
            if dataset not in f:
                raise InputError(path, f"no dataset {dataset!r}")
            stack = f[dataset]
        else:
            import h5py as _h5

            skip = set(FLAT_NAMES) | set(DARK_NAMES)
            cands = []

            def visit(name: str, obj: Any) -> None:
                if (
                    isinstance(obj, _h5.Dataset)
                    and obj.ndim >= 3
                    and obj.shape[0] == n_e
                    and obj.dtype.kind in "iuf"
                    and name.rsplit("/", 1)[-1].lower() not in skip
                ):
                    cands.append(obj)

            f.visititems(visit)
            if not cands:
                raise InputError(
                    path, f"no image stack with {n_e} images (one per energy); pass --dataset"
                )
            preferred = [c for c in cands if c.name.rsplit("/", 1)[-1].lower() in STACK_NAMES]
            if len(preferred) == 1 or (len(cands) > 1 and preferred):
                stack = preferred[0]
            elif len(cands) == 1:
                stack = cands[0]
            else:
                names = ", ".join(c.name for c in cands[:5])
                raise InputError(path, f"several image stacks ({names}); choose one with --dataset")
        if stack.ndim < 3 or stack.shape[0] != n_e:
            raise InputError(
                path, f"dataset {stack.name} has shape {stack.shape}; expected ({n_e}, …) images"
            )
        metadata: dict[str, Any] = {"format": "hdf5", "dataset": stack.name, "h5file": f}
        flat = dark = None
        for names, what in ((FLAT_NAMES, "flat"), (DARK_NAMES, "dark")):
            found = [d for d in _h5_find(f, names, min_ndim=1) if d.name != stack.name]
            if found:
                check_memory_budget(found[0].shape, found[0].dtype, memory_budget(), path)
                ref = _as_ref(found[0][()], stack.shape, f"{path}:{found[0].name}", what)
                metadata[f"{what}_dataset"] = found[0].name
                if what == "flat":
                    flat = ref
                else:
                    dark = ref
        return XanesStack(
            raw=stack,
            energies_ev=energies,
            flat=flat,
            dark=dark,
            source=str(path),
            metadata=metadata,
        )
    except BaseException:
        f.close()
        raise


def _load_images(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """TIFF/.npy/.xrm files → (n, *spatial) stack, energies from metadata, metadata."""
    import tifffile

    budget = memory_budget()
    if len(paths) == 1 and paths[0].suffix.lower() not in XRM_SUFFIXES:
        p = paths[0]
        try:
            if p.suffix.lower() == ".npy":
                arr = np.load(p, mmap_mode="r")
            else:
                with tifffile.TiffFile(p) as tif:
                    series = tif.series[0]
                    check_memory_budget(series.shape, series.dtype, budget, p)
                    arr = series.asarray()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputError(p, f"cannot read the image stack: {one_line(exc)}") from None
        if arr.ndim < 3:
            raise InputError(p, f"a XANES stack needs one image per energy; got shape {arr.shape}")
        return arr, None, {"format": "npy" if p.suffix.lower() == ".npy" else "tiff"}
    images: list[np.ndarray] = []
    energies: list[float] = []
    metadata: dict[str, Any] = {
        "format": "xradia" if paths[0].suffix.lower() in XRM_SUFFIXES else "tiff"
    }
    for p in paths:
        _check_file(p)
        if p.suffix.lower() in XRM_SUFFIXES:
            img, e, meta = _read_xrm(p)
            if "pixel_size_um" in meta:
                metadata.setdefault("pixel_size_um", meta["pixel_size_um"])
            if "reference" in meta:
                metadata.setdefault("reference", meta["reference"])
            images.extend(list(img))
            if e is not None:
                energies.extend(e.tolist())
        else:
            img = read_image(p)
            images.extend([img] if img.ndim == 2 else list(img))
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise InputError(paths[0], f"images differ in shape ({sorted(shapes)[:3]}); expected equal")
    e_meta = np.asarray(energies) if len(energies) == len(images) else None
    return np.stack(images), e_meta, metadata


def read_xanes(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    energies: str | os.PathLike[str] | Sequence[float] | np.ndarray | None = None,
    flat: str | os.PathLike[str] | np.ndarray | None = None,
    dark: str | os.PathLike[str] | np.ndarray | None = None,
    dataset: str | None = None,
    energy_dataset: str | None = None,
    voxel_size: Any = None,
) -> XanesStack:
    """Open a XANES stack with its energies (and flat field) from any supported layout.

    Parameters
    ----------
    paths : path or sequence of paths
        One HDF5 file; one multi-page TIFF / .npy; several TIFFs (one per energy, in energy
        order of the list file, or named with their energies); one .txrm or several .xrm.
    energies : path, sequence of float or ndarray, optional
        An energy list file, or the values (eV or keV). Needed for TIFF/.npy stacks unless
        the file names carry the energies; overrides the file's own energies.
    flat, dark : path or ndarray, optional
        Flat-field (I₀) and dark references: one image, one per energy, several frames
        (averaged), or one I₀ value per energy. With a flat field the stack is converted to
        optical density.
    dataset, energy_dataset : str, optional
        Dataset paths inside an HDF5 file when the names are not the usual ones.
    voxel_size : float or sequence, optional
        Pixel/voxel size in µm of the spatial axes.

    Returns
    -------
    XanesStack

    Raises
    ------
    InputError
        Missing files, an unreadable layout, energies that do not match the images, a
        missing olefile for Xradia files.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("XANES", "no files given")
    for p in files:
        _check_file(p)
    given: np.ndarray | None = None
    if energies is not None:
        if isinstance(energies, (str, os.PathLike)):
            given = read_energy_file(energies)
        else:
            given = to_ev(energies, "energies")
    first = files[0]
    if len(files) == 1 and (first.suffix.lower() in H5_SUFFIXES or _is_hdf5(first)):
        stack = _read_xanes_h5(first, given, dataset, energy_dataset)
    else:
        raw, e_meta, metadata = _load_images(files)
        if given is not None:
            e = given
        elif e_meta is not None:
            e = to_ev(e_meta, first)
        else:
            e = energies_from_names(files) if len(files) == raw.shape[0] else None
            if e is None:
                raise InputError(
                    first, "no energies: pass --energies FILE (one energy per image, eV or keV)"
                )
        if "reference" in metadata and flat is None:
            flat = metadata.pop("reference")
        metadata.pop("reference", None)
        stack = XanesStack(raw=raw, energies_ev=e, source=str(first), metadata=metadata)
        if "pixel_size_um" in metadata and voxel_size is None:
            voxel_size = metadata["pixel_size_um"]
    n_img = int(stack.raw.shape[0])
    if stack.energies_ev.size != n_img:
        stack.close()
        raise InputError(
            first, f"{stack.energies_ev.size} energies for {n_img} images; they must match"
        )
    if n_img < 8:
        stack.close()
        raise InputError(first, f"only {n_img} energies; a XANES edge needs at least 8")
    try:
        if flat is not None:
            stack.flat = _reference(flat, tuple(stack.raw.shape), "flat", "flat field")
            stack.metadata["flat"] = "given" if isinstance(flat, np.ndarray) else str(flat)
        if dark is not None:
            stack.dark = _reference(dark, tuple(stack.raw.shape), "dark", "dark")
    except BaseException:
        stack.close()
        raise
    if voxel_size is not None:
        try:
            stack.spacing_um = _spacing(voxel_size, len(stack.spatial_shape))
        except BaseException:
            stack.close()
            raise
    return stack


def _spacing(voxel_size: Any, nd: int) -> tuple[float, ...]:
    """Pixel/voxel size of the spatial axes: one number or one per axis, plausible µm."""
    from core.io.volume import PLAUSIBLE_VOXEL_UM

    try:
        if isinstance(voxel_size, str):
            values = [float(v) for v in voxel_size.replace(" ", "").split(",") if v]
        else:
            values = [float(v) for v in np.atleast_1d(np.asarray(voxel_size, dtype=np.float64))]
    except (TypeError, ValueError):
        raise InputError("--voxel-size", f"{voxel_size!r} is not a number or z,y,x") from None
    if len(values) == 1:
        values = values * nd
    if len(values) != nd:
        raise InputError("--voxel-size", f"{voxel_size!r}: give 1 or {nd} numbers")
    lo, hi = PLAUSIBLE_VOXEL_UM
    if not all(math.isfinite(v) and lo <= v <= hi for v in values):
        raise InputError("--voxel-size", f"{voxel_size!r} is not a plausible size in µm")
    return tuple(values)


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def detect_kind(paths: Sequence[str | os.PathLike[str]], energies: Any = None) -> str:
    """Guess whether files hold holotomography (``"holo"``) or XANES (``"xanes"``) data.

    Parameters
    ----------
    paths : sequence of path
        The files to import.
    energies : optional
        An energy list was given (then it is XANES).

    Returns
    -------
    str
        ``"holo"`` or ``"xanes"``.
    """
    files = [Path(p) for p in paths]
    if energies is not None:
        return "xanes"
    if any(p.suffix.lower() in XRM_SUFFIXES for p in files):
        return "xanes"
    if any(p.name.lower().endswith((".vol", ".vol.info")) for p in files):
        return "holo"
    if len(files) == 1 and files[0].is_file() and _is_hdf5(files[0]):
        import h5py

        try:
            ensure_hdf5_parses(files[0])
            with h5py.File(files[0], "r") as f:
                if _h5_find(f, ENERGY_NAMES, ndim=1):
                    return "xanes"
        except OSError:
            pass
    if len(files) > 1 and energies_from_names(files) is not None:
        return "xanes"
    return "holo"
