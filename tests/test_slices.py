"""The viewer's slice access without Qt (qc_app/gui/slices.py): LRU cache, prefetch, display
levels and vertical sections. No screen and no PySide6 needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.io.volume import Volume
from qc_app.gui import slices
from qc_app.gui.slices import SliceCache, read_section, robust_levels, section_is_cheap

ROOT = Path(__file__).resolve().parents[1]


class LazyArray:
    """An array-like that is not an ndarray (like an HDF5 or Zarr dataset): counts its reads."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.reads: list[int] = []

    def __getitem__(self, key):  # noqa: ANN001, ANN204 - numpy's indexing
        if isinstance(key, (int, np.integer)):
            self.reads.append(int(key))
        elif isinstance(key, tuple) and isinstance(key[0], (int, np.integer)):
            self.reads.append(int(key[0]))
        return self.data[key]


def _volume(rng: np.random.Generator, nz: int | None = None) -> Volume:
    nz = nz or int(rng.integers(8, 30))
    ny, nx = (int(v) for v in rng.integers(5, 40, size=2))
    array = rng.normal(size=(nz, ny, nx)).astype(rng.choice([np.float32, np.float64, np.int16]))
    return Volume(array, (float(rng.uniform(1, 30)),) * 3)


def test_module_imports_no_qt():
    probe = "import json, sys, qc_app.gui.slices; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert not loaded & {"PySide6", "pyqtgraph", "shiboken6"}


@pytest.mark.parametrize("seed", range(3))
def test_get_reads_once_and_returns_float32_slices(seed):
    rng = np.random.default_rng(seed)
    volume = _volume(rng)
    cache = SliceCache(volume)
    try:
        order = rng.permutation(volume.shape[0])[:5]
        for z in order:
            got = cache.get(int(z))
            assert got.dtype == np.float32 and got.flags.c_contiguous
            np.testing.assert_array_equal(got, np.asarray(volume.slice(int(z)), dtype=np.float32))
        assert cache.reads == len(order) and cache.hits == 0
        again = cache.get(int(order[0]))
        assert cache.reads == len(order) and cache.hits == 1
        assert again is cache.get(int(order[0]))  # the cached array itself, not a copy
    finally:
        cache.close()


@pytest.mark.parametrize("seed", range(3))
def test_capacity_follows_the_byte_budget_and_evicts_the_least_recent(seed):
    rng = np.random.default_rng(100 + seed)
    volume = _volume(rng, nz=30)
    _, ny, nx = volume.shape
    keep = int(rng.integers(3, 8))
    cache = SliceCache(volume, max_slices=50, max_bytes=keep * ny * nx * 4)
    try:
        assert cache.capacity == keep
        for z in range(keep):
            cache.get(z)
        cache.get(0)  # 0 becomes the most recent: 1 is now the oldest
        cache.get(keep)
        assert cache.cached(0) and not cache.cached(1)
        assert sum(cache.cached(z) for z in range(volume.shape[0])) == keep
    finally:
        cache.close()
    tiny = SliceCache(volume, max_slices=1, max_bytes=1)
    try:
        assert tiny.capacity == 3  # never fewer than the slice and its two neighbours
    finally:
        tiny.close()


def test_prefetch_reads_in_the_background_and_get_does_not_read_again():
    rng = np.random.default_rng(7)
    volume = _volume(rng, nz=12)
    lazy = LazyArray(np.asarray(volume.array))
    volume = Volume(lazy, volume.spacing_um)
    cache = SliceCache(volume)
    try:
        cache.prefetch([-1, 4, 5, 99])  # out of range: ignored
        for z in (4, 5):
            np.testing.assert_array_equal(cache.get(z), lazy.data[z].astype(np.float32))
        assert sorted(lazy.reads) == [4, 5] and cache.reads == 2
        cache.prefetch([4, 5])  # already cached: nothing read
        cache.get(4)
        assert sorted(lazy.reads) == [4, 5]
    finally:
        cache.close()


@pytest.mark.parametrize("seed", range(3))
def test_robust_levels_are_the_percentiles_of_the_sampled_slices(seed):
    rng = np.random.default_rng(200 + seed)
    volume = _volume(rng)
    cache = SliceCache(volume)
    try:
        nz = volume.shape[0]
        zs = sorted({int(round(v)) for v in np.linspace(0, nz - 1, min(5, nz))})
        values = np.concatenate([np.asarray(volume.slice(z), dtype=np.float32).ravel() for z in zs])
        lo, hi = robust_levels(cache)
        assert (lo, hi) == pytest.approx(tuple(np.percentile(values, [0.5, 99.8])), rel=1e-5, abs=1e-6)
        assert lo < hi
    finally:
        cache.close()


@pytest.mark.parametrize(("fill", "expected"), [(3.5, (3.5, 4.5)), (np.nan, (0.0, 1.0))])
def test_robust_levels_of_a_flat_or_empty_volume_still_make_a_window(fill, expected):
    cache = SliceCache(Volume(np.full((4, 6, 6), fill, dtype=np.float32), (10.0, 10.0, 10.0)))
    try:
        assert robust_levels(cache) == expected
    finally:
        cache.close()


def test_read_section_of_an_array_is_one_fancy_read():
    rng = np.random.default_rng(11)
    volume = _volume(rng)
    _, ny, nx = volume.shape
    n = int(rng.integers(3, 20))
    yi, xi = rng.integers(0, ny, size=n), rng.integers(0, nx, size=n)
    section = read_section(volume, yi, xi)
    assert section.dtype == np.float32
    np.testing.assert_array_equal(section, np.asarray(volume.array)[:, yi, xi].astype(np.float32))
    assert section_is_cheap(volume)


@pytest.mark.parametrize("seed", range(3))
def test_read_section_of_a_lazy_volume_reads_few_slices_and_repeats_the_nearest(seed, monkeypatch):
    rng = np.random.default_rng(300 + seed)
    max_rows = int(rng.integers(3, 8))
    monkeypatch.setattr(slices, "SECTION_MAX_ROWS", max_rows)
    nz = int(rng.integers(max_rows + 5, 60))
    data = np.broadcast_to(np.arange(nz, dtype=np.float32)[:, None, None], (nz, 9, 9)).copy()  # slice z holds z
    lazy = LazyArray(data)
    volume = Volume(lazy, (10.0, 10.0, 10.0))
    assert not section_is_cheap(volume)
    yi, xi = np.array([0, 4, 8]), np.array([8, 4, 0])
    section = read_section(volume, yi, xi)
    assert section.shape == (nz, 3)
    assert len(set(lazy.reads)) <= max_rows and {0, nz - 1} <= set(lazy.reads)
    step = (nz - 1) / (max_rows - 1)
    for z in range(nz):
        source = section[z, 0]
        assert np.all(section[z] == source)
        assert int(source) in lazy.reads and abs(source - z) <= step + 0.5  # a nearby slice that was read


def test_a_large_memmap_section_is_read_in_the_background(tmp_path, monkeypatch):
    path = tmp_path / "v.npy"
    np.save(path, np.zeros((4, 5, 5), dtype=np.float32))
    volume = Volume(np.load(path, mmap_mode="r"), (10.0, 10.0, 10.0))
    assert section_is_cheap(volume)
    monkeypatch.setattr(slices, "SYNC_SECTION_BYTES", volume.nbytes - 1)
    assert not section_is_cheap(volume)
