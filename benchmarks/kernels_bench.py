"""Kernels the profile of issue 18 points at, against faster equivalents, on the benchmark's sizes.

Each line times (process CPU, best of a few runs) one operation as cellqc does it now and as
it could be done, and checks that both give the same numbers:

* the unwrap of a slice (``core.geometry.unwrap.unwrap``: ``scipy.ndimage.map_coordinates``,
  order 1, on a 1000 × 1000 slice, 2792 angles × 906 radii) against OpenCV's ``cv2.remap``
  (bilinear, one thread) — needs ``opencv-python-headless``, not a cellqc dependency;
* the weighted normal equations of ``core.detectors.numerics.smooth_path_residual``
  (``np.einsum("kt,tp,tq->kpq")`` on 21 windings × 2792 angles × 6 terms) against a
  broadcast product and ``np.matmul``;
* ``np.nanmedian`` on the shapes the detectors use (rows of a (21, 2792) array; a
  (100, 2792, 25) stack over its first two axes; a sliding window (21, 175, 43)) against
  ``bottleneck.nanmedian`` — needs ``bottleneck``, not a cellqc dependency.

Run: ``.venv/bin/python benchmarks/kernels_bench.py`` (rows whose library is missing say so).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage


def best_cpu(fn: Callable[[], Any], runs: int = 5) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(runs):
        c0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - c0)
    return best, out


def main() -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((1000, 1000), dtype=np.float32) * 8000).astype(np.float32)
    t = np.linspace(0, 2 * np.pi, 2792, endpoint=False)[:, None]
    rho = np.arange(0, 453, 0.5)[None, :]
    y = (500.3 + rho * np.sin(t)).astype(np.float32)
    x = (499.7 + rho * np.cos(t)).astype(np.float32)
    now, ref = best_cpu(lambda: ndimage.map_coordinates(image, [y, x], order=1, mode="nearest", prefilter=False))
    print(f"unwrap {y.shape} of a 1000² slice: map_coordinates {1000 * now:6.1f} ms CPU", end="")
    try:
        import cv2

        cv2.setNumThreads(1)
        fast, out = best_cpu(lambda: cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        print(f"; cv2.remap {1000 * fast:6.1f} ms ({now / fast:4.1f}×), max |difference| "
              f"{float(np.abs(out - ref).max()):.4f} of values up to 8000")
    except ImportError:
        print("; cv2.remap: opencv-python-headless not installed")

    k, n_t = 21, 2792
    w, design = rng.random((k, n_t)), rng.random((n_t, 6))
    now, ref = best_cpu(lambda: np.einsum("kt,tp,tq->kpq", w, design, design))
    fast, out = best_cpu(lambda: np.matmul((w[:, :, None] * design[None]).transpose(0, 2, 1), design[None]))
    print(f"normal equations kt,tp,tq->kpq ({k}×{n_t}×6): einsum {1000 * now:5.2f} ms, matmul {1000 * fast:5.2f} ms "
          f"({now / fast:4.1f}×), same: {bool(np.allclose(ref, out))}")

    rows = rng.random((21, 2792))
    rows[rng.random(rows.shape) < 0.1] = np.nan
    stack = rng.random((100, 2792, 25)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.05] = np.nan
    window = np.lib.stride_tricks.sliding_window_view(rng.random((21, 217)), 43, axis=1)
    cases = [("rows of (21, 2792), axis 1", lambda f: f(rows, axis=1)),
             ("(100, 2792, 25) over axes 0, 1", lambda f: f(stack.reshape(-1, 25), axis=0)),
             ("sliding window (21, 175, 43), axis 2", lambda f: f(window, axis=2))]
    try:
        import bottleneck
    except ImportError:
        bottleneck = None
    for label, call in cases:
        now, ref = best_cpu(lambda call=call: call(np.nanmedian), 3)
        line = f"nanmedian {label}: numpy {1000 * now:6.2f} ms"
        if bottleneck is not None:
            fast, out = best_cpu(lambda call=call: call(bottleneck.nanmedian), 3)
            line += f", bottleneck {1000 * fast:6.2f} ms ({now / fast:4.1f}×), same: {bool(np.allclose(ref, out))}"
        else:
            line += ", bottleneck: not installed"
        print(line)


if __name__ == "__main__":
    main()
