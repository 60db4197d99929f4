"""The volume model: a 3-D array indexed (z, y, x) plus its voxel size in µm."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InputError

#: Smallest voxel size accepted (µm): 10 nm, below the finest nano-CT/holotomography pixels (~30 nm).
MIN_VOXEL_UM = 0.01
#: Largest voxel size accepted (µm): 1 mm, coarser than any CT of a cell could be useful.
MAX_VOXEL_UM = 1000.0
#: The same range, for readers that check a file's own voxel size: outside it a number is a unit
#: mistake or garbage (a metre written as µm, a resolution tag of 1e-30).
PLAUSIBLE_VOXEL_UM = (MIN_VOXEL_UM, MAX_VOXEL_UM)


def parse_voxel_size(value: Any, source: object = "--voxel-size") -> tuple[float, float, float]:
    """Turn one number, ``"z,y,x"`` or a 3-sequence into a (z, y, x) spacing in µm.

    Parameters
    ----------
    value : float, str or sequence of 3 floats
        ``10`` (isotropic), ``"67.94,33.97,33.97"`` or ``(67.94, 33.97, 33.97)``.
    source : object
        What to name in the error message.

    Returns
    -------
    tuple of float
        Spacing (z, y, x) in µm, each between :data:`MIN_VOXEL_UM` and :data:`MAX_VOXEL_UM`.

    Raises
    ------
    core.errors.InputError
        Not 1 or 3 numbers, or a value outside the physical range (this is where every
        voxel size — an argument, a file's metadata, a sidecar — is checked).
    """
    try:
        if isinstance(value, str):
            parts = [float(p) for p in value.replace(" ", "").split(",") if p != ""]
        elif np.ndim(value) == 0:
            parts = [float(value)]
        else:
            parts = [float(p) for p in value]
    except (TypeError, ValueError):
        raise InputError(source, f"voxel size {_shown(value)} is not a number or z,y,x") from None
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise InputError(source, f"voxel size {_shown(value)} needs 1 or 3 numbers (z,y,x)")
    if not all(np.isfinite(p) and p > 0 for p in parts):
        raise InputError(source, f"voxel size {_shown(value)} must be positive µm")
    if not all(MIN_VOXEL_UM <= p <= MAX_VOXEL_UM for p in parts):
        raise InputError(
            source,
            f"voxel size {_shown(value)} µm is outside the physical range "
            f"{MIN_VOXEL_UM:g}–{MAX_VOXEL_UM:g} µm (10 nm – 1 mm); give it in µm",
        )
    return (parts[0], parts[1], parts[2])


def _shown(value: Any) -> str:
    """A voxel-size value for an error message: one line, bounded."""
    from core.text import printable

    if isinstance(value, (tuple, list)):
        value = tuple(float(v) if isinstance(v, (int, float, np.number)) else v for v in value)
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    return printable(repr(value), 80)


@dataclass
class Volume:
    """A reconstructed CT volume in physical units.

    Attributes
    ----------
    array : array_like
        Shape (nz, ny, nx), z along the cell axis. May be a lazy array (``np.memmap``,
        ``zarr.Array``, ``h5py.Dataset``); index it slice by slice to keep memory bounded.
    spacing_um : tuple of float
        Voxel size (z, y, x) in µm; anisotropic voxels are allowed.
    origin_um : tuple of float
        Position of voxel (0, 0, 0) in µm, (z, y, x).
    cell_id, source, modality : str
        Metadata: the cell's identifier, the file it came from, e.g. ``"lab-ct"``.
    metadata : dict
        Anything else the reader found (format, dataset path, ...).
    """

    array: Any
    spacing_um: tuple[float, float, float]
    origin_um: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cell_id: str = ""
    source: str = ""
    modality: str = "lab-ct"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spacing_um = parse_voxel_size(self.spacing_um, self.source or "volume")
        if len(self.array.shape) == 2:
            # A single 2-D image is a volume of one slice.
            self.array = np.asarray(self.array)[np.newaxis]
        if len(self.array.shape) != 3:
            raise InputError(self.source or "volume", f"expected 3-D (z, y, x) data, got shape {tuple(self.array.shape)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(nz, ny, nx)."""
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def voxel_size_um(self) -> float:
        """In-plane voxel size (mean of y and x) in µm; what a single number describes."""
        return 0.5 * (self.spacing_um[1] + self.spacing_um[2])

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: never wraps

    def slice(self, z: int) -> np.ndarray:
        """One axial slice as a float32 array (reads only that slice from lazy storage)."""
        return np.asarray(self.array[z], dtype=np.float32)

    def slab(self, z0: int, z1: int) -> np.ndarray:
        """Slices z0..z1-1 as float32."""
        return np.asarray(self.array[z0:z1], dtype=np.float32)
