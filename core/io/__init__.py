"""Volume input/output: readers, writers, format detection and input validation.

The entry point is :func:`read_volume`; every bad input raises
:class:`core.errors.InputError` with one line naming the file and the problem.
"""

from core.io.readers import FORMATS, NO_VOXEL_SIZE, detect_format, read_volume
from core.io.tiff import TiffSliceStack
from core.io.validate import (
    check_finite,
    iter_slabs,
    memory_budget,
    unit_to_um,
    validate_volume,
)
from core.io.volume import Volume, parse_voxel_size
from core.io.writers import write_tiff, write_zarr

__all__ = [
    "FORMATS",
    "NO_VOXEL_SIZE",
    "TiffSliceStack",
    "Volume",
    "check_finite",
    "detect_format",
    "iter_slabs",
    "memory_budget",
    "parse_voxel_size",
    "read_volume",
    "unit_to_um",
    "validate_volume",
    "write_tiff",
    "write_zarr",
]
