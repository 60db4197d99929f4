"""A layer's departure less tall than it is deep is no bend a foil can make
(core.detectors.numerics.shallower_than_deep), on random deflection maps."""

from __future__ import annotations

import numpy as np
import pytest

from core.detectors.numerics import shallower_than_deep


def _map(rng, n_z=40, n_k=12, n_t=720):
    return rng.normal(0.0, 4.0, (n_z, n_k, n_t))


@pytest.mark.parametrize("seed", range(5))
def test_one_or_two_slice_spike_is_not_a_bend_but_a_tall_one_is(seed):
    rng = np.random.default_rng(seed)
    values = _map(rng)
    slice_um = float(rng.uniform(10, 35))  # two slices stay under the least depth, 80 µm
    k, t0 = int(rng.integers(2, 10)), int(rng.integers(0, 720))
    depth = float(rng.choice([-1, 1]) * rng.uniform(80, 200))
    z0 = int(rng.integers(5, 30))
    n_spike = int(rng.integers(1, 3))
    spike = values.copy()
    spike[z0:z0 + n_spike, k, t0 - 3:t0 + 4] = depth
    z = list(range(100, 140))  # the roll's slices in a volume of 500
    assert shallower_than_deep(spike, (z0, k, t0), depth, 25.0, z, slice_um, 500)
    # The same depth over a height at least as tall as deep: a bend.
    n_tall = int(np.ceil(abs(depth) / slice_um)) + 1
    tall = values.copy()
    z1 = max(1, min(z0, 40 - n_tall - 1))
    tall[z1:z1 + n_tall, k, t0 - 3:t0 + 4] = depth
    assert not shallower_than_deep(tall, (z1 + n_tall // 2, k, t0), depth, 25.0, z, slice_um, 500)


def test_height_unknown_is_kept():
    rng = np.random.default_rng(7)
    values = _map(rng)
    values[0:2, 5, 97:104] = 150.0
    # At the volume's first slice the bend may go on beyond it.
    assert not shallower_than_deep(values, (0, 5, 100), 150.0, 25.0, list(range(40)), 20.0, 40)
    # The same two slices at the roll's end inside the volume: judged (the roll ends there).
    assert shallower_than_deep(values, (0, 5, 100), 150.0, 25.0, list(range(60, 100)), 20.0, 400)
    # Not traced in the next slice: counted as the bend's (a bound from above on its height).
    values[2, 5, :] = np.nan
    assert shallower_than_deep(values, (1, 5, 100), 150.0, 25.0, list(range(60, 100)), 20.0, 400)
    values[2:8, 5, :] = np.nan  # 2 + 6 slices of 20 µm: up to 160 µm tall, as tall as deep
    assert not shallower_than_deep(values, (1, 5, 100), 150.0, 25.0, list(range(60, 100)), 20.0, 400)
