"""The viewer's slice access, without Qt: an LRU cache of slices with background prefetch,
display levels from a few slices, and vertical sections sampled through the volume.

:class:`qc_app.gui.viewer.VolumeViewer` draws what these return; they work on anything with
``shape``, ``slice(z)``, ``array`` and ``nbytes`` (a :class:`core.io.Volume`), so they are
tested without a screen (``tests/test_slices.py``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

#: Slices kept in memory at most (and never more than this many bytes).
CACHE_SLICES = 24
CACHE_BYTES = 512 * 1024**2

class SliceCache:
    """An LRU cache of float32 slices with background prefetch of neighbours.

    ``get(z)`` returns the slice, reading it if needed (waiting for a prefetch of the
    same slice instead of reading twice). ``prefetch(zs)`` reads slices in a worker thread.
    """

    def __init__(self, volume: Any, max_slices: int = CACHE_SLICES, max_bytes: int = CACHE_BYTES):
        self.volume = volume
        nz, ny, nx = volume.shape
        self.nz = nz
        per_slice = max(ny * nx * 4, 1)
        self.capacity = max(3, min(max_slices, max_bytes // per_slice))
        self._data: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cellqc-prefetch")
        self.reads = 0
        self.hits = 0

    def _read(self, z: int) -> np.ndarray:
        data = np.ascontiguousarray(self.volume.slice(z), dtype=np.float32)
        with self._lock:
            self.reads += 1
            self._data[z] = data
            self._data.move_to_end(z)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)
            self._pending.pop(z, None)
        return data

    def get(self, z: int) -> np.ndarray:
        z = int(z)
        with self._lock:
            hit = self._data.get(z)
            if hit is not None:
                self._data.move_to_end(z)
                self.hits += 1
                return hit
            pending = self._pending.get(z)
        if pending is not None:
            try:
                return pending.result()
            except Exception:  # noqa: BLE001 - read it again below and let that error surface
                pass
        return self._read(z)

    def prefetch(self, zs: list[int]) -> None:
        with self._lock:
            wanted = [z for z in zs if 0 <= z < self.nz and z not in self._data and z not in self._pending]
            for z in wanted:
                self._pending[z] = self._pool.submit(self._read, z)

    def cached(self, z: int) -> bool:
        with self._lock:
            return z in self._data

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def robust_levels(cache: SliceCache, n_samples: int = 5) -> tuple[float, float]:
    """Display levels from a few evenly spaced slices: 0.5th and 99.8th percentiles."""
    zs = sorted({int(round(v)) for v in np.linspace(0, cache.nz - 1, min(n_samples, cache.nz))})
    samples = []
    for z in zs:
        s = cache.get(z)
        step = max(1, int(math.sqrt(s.size / 65536)))
        samples.append(s[::step, ::step].ravel())
    values = np.concatenate(samples)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [0.5, 99.8])
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
        if not hi > lo:
            hi = lo + 1.0
    return float(lo), float(hi)


#: Sections of volumes up to this size in memory (or memory-mapped) are read at once; larger
#: or lazy ones (HDF5, Zarr, TIFF folders) in a background thread.
SYNC_SECTION_BYTES = 256 * 1024**2
#: A lazy volume's section reads at most this many slices (nearest-neighbour rows between).
SECTION_MAX_ROWS = 256


def section_is_cheap(volume: Any) -> bool:
    """Whether a vertical section of ``volume`` is read at once (in memory, or a small memmap)."""
    array = volume.array
    if not isinstance(array, np.ndarray):
        return False
    return not isinstance(array, np.memmap) or volume.nbytes <= SYNC_SECTION_BYTES


def read_section(volume: Any, yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """The (z, along) image of a vertical section sampled at pixels (yi, xi) of every slice.

    NumPy arrays and memmaps take one fancy-indexed read; lazy stores read at most
    :data:`SECTION_MAX_ROWS` slices and repeat the nearest row in between.
    """
    array = volume.array
    nz = volume.shape[0]
    if isinstance(array, np.ndarray):
        return np.asarray(array[:, yi, xi], dtype=np.float32)
    z_rows = np.unique(np.linspace(0, nz - 1, min(nz, SECTION_MAX_ROWS)).round().astype(int))
    section = np.stack([volume.slice(int(z))[yi, xi] for z in z_rows]).astype(np.float32)
    if z_rows.size < nz:
        idx = np.searchsorted(z_rows, np.arange(nz)).clip(0, z_rows.size - 1)
        section = section[idx]
    return section
