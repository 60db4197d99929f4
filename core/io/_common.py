"""Shared pieces of the readers: what a format reader returns, and library-noise capture."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Loggers of the libraries the readers call; their records are captured, never printed.
LIBRARY_LOGGERS = ("tifffile", "h5py", "zarr", "numcodecs")


@dataclass
class ReadResult:
    """What a format reader found, before :func:`core.io.read_volume` builds the Volume.

    Attributes
    ----------
    array : array_like
        2-D or 3-D data, lazy when ``lazy`` is true.
    format : str
        Format name recorded in ``Volume.metadata["format"]``.
    spacing_um : tuple of float or None
        (z, y, x) voxel size found in the file, in µm.
    lazy : bool
        True when ``array`` reads from disk on indexing (memmap, zarr, h5py, slice stack).
    spacing_note : str
        Why no voxel size was taken from the file although something looked like one.
    origin_um, cell_id, modality : optional
        Further metadata found in the file.
    metadata : dict
        Format-specific extras (dataset path, open file handles, ...).
    source : Path or None
        The file to name as the volume's source when it differs from the path given
        (a raw file given by its JSON sidecar).
    """

    array: Any
    format: str
    spacing_um: tuple[float, float, float] | None = None
    lazy: bool = False
    spacing_note: str = ""
    origin_um: tuple[float, float, float] | None = None
    cell_id: str | None = None
    modality: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str], level: int = logging.WARNING):
        super().__init__(level)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a broken log record must not break reading
            self.sink.append(f"{record.name}: (unprintable log record)")


@contextmanager
def capture_library_noise(sink: list[str]) -> Iterator[None]:
    """Collect warnings and log records of the I/O libraries into ``sink`` instead of stderr.

    The CLI promises exactly one stderr line per error; tifffile in particular logs
    warnings about odd files, which Python would otherwise print through its last-resort
    handler. The handler is attached only for the duration of the block.
    """
    handler = _ListHandler(sink)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    sink.extend(f"{w.category.__name__}: {w.message}" for w in caught)


@contextmanager
def logged_errors(logger_name: str) -> Iterator[list[str]]:
    """Collect the ERROR (and worse) records a library logs during the block.

    tifffile logs, rather than raises, when a file is damaged (bad page offsets, a stack
    shorter than its description) and returns what it could read; a reader must turn those
    into errors, never into a partial volume.
    """
    errors: list[str] = []
    handler = _ListHandler(errors, logging.ERROR)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield errors
    finally:
        logger.removeHandler(handler)


_NATURAL = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting ``im2`` before ``im10`` (digit runs compare as numbers)."""
    parts = _NATURAL.split(name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def text_value(value: Any) -> str | None:
    """An attribute value as ``str`` (bytes decoded, 1-element arrays unwrapped), else None."""
    try:
        import numpy as np

        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.reshape(-1)[0]
        if isinstance(value, (bytes, np.bytes_)):
            return bytes(value).decode("utf-8", "replace")
        if isinstance(value, (str, np.str_)):
            return str(value)
    except Exception:  # noqa: BLE001
        return None
    return None


def origin_from(value: Any) -> tuple[float, float, float] | None:
    """A stored origin (3 finite numbers, µm) or None."""
    try:
        import numpy as np

        numbers = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if numbers.size != 3 or not np.all(np.isfinite(numbers)):
        return None
    return (float(numbers[0]), float(numbers[1]), float(numbers[2]))
