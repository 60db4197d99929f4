"""``cellqc recon PROJECTIONS --out VOLUME``: reconstruct a volume from projections.

Reads a sinogram ``(angles, det)``, projections ``(angles, rows, det)`` or sinograms
``(rows, angles, det)`` (``--layout sino``) from TIFF, HDF5/NeXus, Zarr or ``.npy``;
optional ring removal and centre-of-rotation search; parallel-beam FBP or cone-beam FDK;
writes the volume (TIFF, Zarr or ``.npy``) with its voxel size. Values are line integrals
(``-log(I/I0)``; ``--transmission`` takes I/I0) and the result is attenuation per mm.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from core.errors import InputError
from qc_app.cli import register


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="PROJECTIONS", help="sinogram / projections file (TIFF, HDF5, Zarr, .npy)")
    p.add_argument("--out", required=True, metavar="VOLUME", help="output (.tif, .zarr or .npy)")
    p.add_argument("--geometry", choices=("parallel", "cone"), default="parallel")
    p.add_argument("--layout", choices=("auto", "proj", "sino"), default="auto",
                   help="proj: (angles, rows, det); sino: (rows, angles, det); auto: 2-D is one sinogram")
    p.add_argument("--dataset", help="dataset path inside an HDF5 / Zarr file")
    p.add_argument("--angles", metavar="SPAN|A:B|FILE",
                   help="degrees: total span (default 180 parallel, 360 cone; last angle excluded), "
                        "A:B (both included) or a text/.npy file with one angle per projection")
    p.add_argument("--center", default=None, metavar="COL|auto",
                   help="detector column of the rotation axis (default the middle); auto searches")
    p.add_argument("--cor-method", choices=("auto", "registration", "centroid", "sharpness"), default="auto",
                   help="centre search method for --center auto")
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="detector pixel pitch in µm (at the object for parallel, at the detector for cone)")
    p.add_argument("--sod", type=float, help="cone: source–axis distance, mm")
    p.add_argument("--sdd", type=float, help="cone: source–detector distance, mm")
    p.add_argument("--ring-removal", choices=("none", "sort", "mean"), default="none",
                   help="sinogram stripe filter before reconstruction")
    p.add_argument("--ring-size", type=int, default=11, help="stripe filter width, columns (default 11)")
    p.add_argument("--filter", dest="filter_name", default="ramp",
                   choices=("ramp", "shepp-logan", "cosine", "hamming", "hann"))
    p.add_argument("--pad-mode", choices=("zero", "edge", "circle", "cosine"), default="zero",
                   help="extension of truncated (ROI / interior) projections; 'edge' for local tomography")
    p.add_argument("--pad", type=int, default=None, help="columns added on each side (default detector width)")
    p.add_argument("--size", type=int, default=None, help="output slice size (default detector width)")
    p.add_argument("--rows", metavar="A:B", help="reconstruct only detector rows A..B-1 (parallel)")
    p.add_argument("--transmission", action="store_true", help="input is I/I0; take -log first")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backend", choices=("numpy", "tomopy", "auto"), default="numpy",
                   help="parallel FBP engine (tomopy only when importable)")
    p.add_argument("--cell-id", default="", help="stored in the output's metadata")


def _read(args: argparse.Namespace) -> np.ndarray:
    path = Path(args.input)
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise InputError(path, f"cannot read the .npy file: {exc}") from None
    else:
        from core.io import read_volume

        vol = read_volume(path, voxel_size=args.pixel_size or 1.0, dataset=args.dataset)
        arr = vol.array
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, None, :]
    elif arr.ndim == 3:
        layout = args.layout
        if layout == "auto":
            layout = "sino" if arr.shape[0] == 1 else "proj"
        if layout == "sino":
            arr = np.ascontiguousarray(arr.transpose(1, 0, 2))
    else:
        raise InputError(path, f"expected 2-D or 3-D projection data, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(path, "projections contain NaN or infinite values")
    if args.transmission:
        if np.any(arr <= 0):
            raise InputError(path, "--transmission data must be > 0 (I/I0)")
        arr = -np.log(arr)
    return arr


def _angles(spec: str | None, n: int, full_turn: bool) -> np.ndarray:
    if spec is None:
        return np.linspace(0.0, 360.0 if full_turn else 180.0, n, endpoint=False)
    path = Path(spec)
    if path.exists():
        try:
            values = np.load(path) if path.suffix.lower() == ".npy" else np.loadtxt(path, delimiter=None, ndmin=1)
        except (OSError, ValueError) as exc:
            raise InputError(path, f"cannot read angles: {exc}") from None
        values = np.asarray(values, dtype=float).ravel()
    else:
        try:
            if ":" in spec:
                a, b = (float(v) for v in spec.split(":"))
                values = np.linspace(a, b, n)
            else:
                values = np.linspace(0.0, float(spec), n, endpoint=False)
        except ValueError:
            raise InputError("--angles", f"{spec!r} is not SPAN, A:B or a file") from None
    if values.size != n:
        raise InputError("--angles", f"{values.size} angles for {n} projections")
    return values


def _write(out: Path, array: np.ndarray, spacing_um: float, cell_id: str) -> None:
    from core.io import Volume

    suffix = out.suffix.lower()
    if suffix == ".npy":
        from core.fileio import atomic_writer

        with atomic_writer(out, suffix=".npy") as fh:
            np.save(fh, array)
        return
    volume = Volume(array, (spacing_um, spacing_um, spacing_um), cell_id=cell_id, source=str(out),
                    modality="recon")
    if suffix == ".zarr":
        from core.io import write_zarr

        write_zarr(volume, out)
    elif suffix in (".tif", ".tiff"):
        from core.io import write_tiff

        write_tiff(volume, out)
    else:
        raise InputError(out, "output must end in .tif, .tiff, .zarr or .npy")


def run(args: argparse.Namespace) -> int:
    from core.recon import fbp, fdk, find_center, remove_rings

    started = time.perf_counter()
    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff", ".zarr", ".npy"):
        raise InputError(out, "output must end in .tif, .tiff, .zarr or .npy")
    cone = args.geometry == "cone"
    if cone and (args.sod is None or args.sdd is None or args.pixel_size is None):
        raise InputError("--geometry cone", "needs --sod and --sdd (mm) and --pixel-size (µm)")
    if cone and not (0 < args.sod < args.sdd):
        raise InputError("--sod/--sdd", f"need 0 < sod < sdd, got {args.sod} and {args.sdd}")
    if args.pixel_size is not None and not args.pixel_size > 0:
        raise InputError("--pixel-size", "must be > 0 µm")
    data = _read(args)
    n_angles, n_rows, n_det = data.shape
    print(f"read {n_angles} angles × {n_rows} rows × {n_det} columns", file=sys.stderr)
    if args.rows and not cone:
        try:
            a, b = (int(v) for v in args.rows.split(":"))
        except ValueError:
            raise InputError("--rows", f"{args.rows!r} is not A:B") from None
        if not 0 <= a < b <= n_rows:
            raise InputError("--rows", f"{args.rows} is outside 0:{n_rows}")
        data = data[:, a:b]
    angles = _angles(args.angles, n_angles, full_turn=cone)
    if args.ring_removal != "none":
        data = remove_rings(data, args.ring_removal, args.ring_size)
        print(f"ring removal: {args.ring_removal} (width {args.ring_size})", file=sys.stderr)
    center: float | None
    if args.center is None:
        center = None
    elif str(args.center).lower() == "auto":
        sample = data[:, data.shape[1] // 2] if cone else data
        try:
            center = find_center(sample, angles, method=args.cor_method)
        except ValueError as exc:
            raise InputError("--center auto", str(exc)) from None
        print(f"centre of rotation: column {center:.2f}", file=sys.stderr)
    else:
        try:
            center = float(args.center)
        except ValueError:
            raise InputError("--center", f"{args.center!r} is not a number or 'auto'") from None
    pixel_um = args.pixel_size
    if pixel_um is None:
        print("no --pixel-size: voxel size 1 µm assumed, values per pixel", file=sys.stderr)
    pixel_mm = pixel_um / 1000.0 if pixel_um else 1.0  # without a pitch: values per pixel
    pad = args.pad if args.pad is not None else (0 if args.pad_mode == "zero" else n_det)
    try:
        if cone:
            det_center = None if center is None else ((n_rows - 1) / 2.0, center)
            n = args.size or n_det
            volume = fdk(data, angles, sod=args.sod, sdd=args.sdd, det_spacing=pixel_mm,
                         det_center=det_center, shape=(n_rows, n, n), filter_name=args.filter_name,
                         pad=pad,
                         pad_mode=args.pad_mode, threads=args.threads)
            voxel_um = float(pixel_um) * args.sod / args.sdd
        else:
            volume = fbp(data, angles, center=center, filter_name=args.filter_name, size=args.size,
                         pixel_size=pixel_mm, pad=pad, pad_mode=args.pad_mode, threads=args.threads,
                         backend=args.backend)
            voxel_um = pixel_um or 1.0
    except ValueError as exc:
        raise InputError(args.input, str(exc)) from None
    _write(out, volume, voxel_um, args.cell_id)
    print(f"wrote {out} ({volume.shape[0]}×{volume.shape[1]}×{volume.shape[2]}, {voxel_um:.4g} µm voxels) "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print(out)
    return 0


register("recon", "reconstruct a volume from projections (FBP / FDK, rings, centre)", add_arguments, run)
