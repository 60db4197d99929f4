"""The exact fast medians (core/nanmedian.py) and the delamination's boxed closing give what
numpy and scipy give, to the bit, on random shapes, scales and NaN patterns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from core.detectors.delamination import close_in_place
from core.nanmedian import nanmedian_float16_columns, nanmedian_last_axis


@pytest.mark.parametrize("seed", range(4))
def test_nanmedian_last_axis_is_numpys(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 30, size=rng.integers(1, 4)))
        values = rng.normal(size=shape) * 10 ** rng.uniform(-3, 3)
        if rng.random() < 0.3:
            values = np.round(values)  # ties
        values[rng.random(shape) < rng.uniform(0, 1)] = np.nan
        for dtype in (np.float64, np.float32):
            x = values.astype(dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = np.nanmedian(x, axis=-1)
            got = nanmedian_last_axis(x)
            assert got.dtype == expected.dtype
            assert np.array_equal(got, expected, equal_nan=True), (shape, dtype)


@pytest.mark.parametrize("seed", range(4))
def test_nanmedian_float16_columns_is_numpys(seed):
    rng = np.random.default_rng(100 + seed)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 30, size=rng.integers(2, 4)))
        values = rng.normal(size=shape) * 10 ** rng.uniform(-3, 3) + rng.choice([0.0, -5.0, 300.0])
        values[rng.random(shape) < rng.uniform(0, 1)] = np.nan
        if rng.random() < 0.3:
            values[rng.random(shape) < 0.05] = rng.choice([np.inf, -np.inf])
        half = values.astype(np.float16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(half.astype(np.float32), axis=tuple(range(half.ndim - 1)))
        assert np.array_equal(nanmedian_float16_columns(half), expected, equal_nan=True), shape


@pytest.mark.parametrize("seed", range(6))
def test_boxed_closing_is_scipys(seed):
    rng = np.random.default_rng(200 + seed)
    shape = tuple(int(n) for n in rng.integers(3, 40, size=3))
    mask = rng.random(shape) < rng.choice([0.002, 0.02, 0.2])
    if rng.random() < 0.5:  # a blob somewhere, touching a border or not
        z, y = (int(rng.integers(0, s)) for s in shape[:2])
        mask[z:z + 4, y:y + 5, :3] = True
    structure = np.ones((3, 3, 3), bool) if seed % 2 else ndimage.generate_binary_structure(3, 1)
    expected = ndimage.binary_closing(mask, structure=structure) | mask
    assert np.array_equal(close_in_place(mask.copy(), structure), expected)
