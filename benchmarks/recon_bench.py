"""Timing and accuracy of cellqc's FBP against ``skimage.transform.iradon`` in the same run.

A modified Shepp–Logan (default 512², 720 angles over 180°) with exact (analytic)
projections, in scikit-image's convention (axis on pixel N // 2) so that both
reconstructors get identical data. Prints seconds, the speed ratio (iradon / cellqc; > 1
means cellqc is faster) and the RMSE of each against the phantom inside the disc. Also
times FDK on a small cone-beam phantom and the ring filters, each against one FBP of the
same size as a baseline. The ratios, not the seconds, are what to compare across machines.

Run: ``.venv/bin/python benchmarks/recon_bench.py [--size N] [--angles K] [--repeat R]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from skimage.transform import iradon

from core.recon import default_angles, fbp, fdk, remove_rings
from core.recon.phantoms import (
    disk_mask,
    ellipse_image,
    ellipse_sinogram,
    ellipsoid_cone_projections,
    rmse,
)


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--angles", type=int, default=720)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="cellqc FBP threads (default: CPUs)")
    args = parser.parse_args()

    n, k = args.size, args.angles
    angles = default_angles(k)
    truth = ellipse_image(n, center=n // 2)
    sino = ellipse_sinogram(n, angles, center=n // 2)
    mask = disk_mask(n, n / 2 - 1, center=n // 2)

    t_sk, rec_sk = best_of(args.repeat, lambda: iradon(sino.T, angles, filter_name="ramp"))
    t_us, rec_us = best_of(
        args.repeat,
        lambda: fbp(sino, angles, center=n // 2, axis_on_pixel=True, threads=args.threads),
    )
    t_us1, _ = best_of(
        args.repeat, lambda: fbp(sino, angles, center=n // 2, axis_on_pixel=True, threads=1)
    )
    print(f"FBP {n}² from {k} angles (Shepp–Logan, exact projections)")
    print(f"  skimage iradon          {t_sk:7.3f} s   RMSE {rmse(rec_sk, truth, mask):.5f}")
    print(f"  cellqc fbp (threads)    {t_us:7.3f} s   RMSE {rmse(rec_us, truth, mask):.5f}")
    print(f"  cellqc fbp (1 thread)   {t_us1:7.3f} s")
    print(f"  speed ratio iradon / cellqc: {t_sk / t_us:.2f} (threads), {t_sk / t_us1:.2f} (1 thread)")
    print(f"  max |cellqc - iradon| inside the disc: {np.abs(rec_us - rec_sk)[mask].max():.2e}")

    # FDK on a small cone-beam problem, against FBP of the same number of voxels and angles.
    m, ka = 64, 180
    cone_angles = default_angles(ka, full_turn=True)
    proj = ellipsoid_cone_projections(cone_angles, (m, m + 8), sod=200.0, sdd=400.0, det_spacing=2.0,
                                      scale=m / 2 * 0.9)
    t_fdk, _ = best_of(args.repeat, lambda: fdk(proj, cone_angles, sod=200.0, sdd=400.0, det_spacing=2.0,
                                                shape=(m, m, m), voxel_size=1.0))
    par = proj[:, :, 4:-4]
    t_par, _ = best_of(args.repeat, lambda: fbp(par, cone_angles, circle=False))
    print(f"FDK {m}³ from {ka} cone-beam projections: {t_fdk:.3f} s; "
          f"ratio to parallel FBP of the same size ({t_par:.3f} s): {t_fdk / t_par:.2f}")

    # Ring filters against one FBP of the same sinogram.
    for method in ("sort", "mean"):
        t_ring, _ = best_of(args.repeat, lambda method=method: remove_rings(sino, method, 11))
        print(f"ring removal '{method}' on {k}×{n}: {t_ring:.3f} s; ratio to one FBP: {t_ring / t_us:.2f}")


if __name__ == "__main__":
    main()
