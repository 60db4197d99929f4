"""``cellqc recon PROJECTIONS --out VOLUME``: reconstruct a volume from projections.

Reads projections with their flats, darks and angles from DXchange HDF5, NeXus NXtomo, a
folder of TIFF projections (``--flat``, ``--dark``, ``--angles``), Xradia ``.txrm``, or a
sinogram/projection array (TIFF, HDF5, Zarr, ``.npy``); flat/dark correction and ``-ln``;
optional ring removal and centre-of-rotation search; parallel-beam FBP or cone-beam FDK;
writes the volume (TIFF calibrated for ImageJ/Fiji, Zarr or ``.npy``) and, with ``--json``,
what it did (``cellqc.recon/1``: centre, method, angles, timings). The readers, the writer and
the reconstruction live in :mod:`core.recon.io` and :mod:`core.recon.workflow`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from core.errors import InputError
from qc_app.commands.base import register


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="PROJECTIONS",
                   help="DXchange/NXtomo HDF5, a folder of TIFF projections, .txrm, or a "
                        "sinogram/projections file (TIFF, HDF5, Zarr, .npy)")
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
    p.add_argument("--flat", metavar="FILE|FOLDER",
                   help="flat-field frame(s) I0: projections become -ln((I-D)/(F-D))")
    p.add_argument("--dark", metavar="FILE|FOLDER", help="dark frame(s) D")
    p.add_argument("--json", metavar="OUT",
                   help="write what was done (centre, method, angles, timings) as JSON")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backend", choices=("numpy", "tomopy", "auto"), default="numpy",
                   help="parallel FBP engine (tomopy only when importable)")
    p.add_argument("--cell-id", default="", help="stored in the output's metadata")


def run(args: argparse.Namespace) -> int:
    from core.recon.io import VOLUME_SUFFIXES, read_projections, write_reconstruction
    from core.recon.workflow import reconstruct

    started = time.perf_counter()
    out = Path(args.out)
    if out.suffix.lower() not in VOLUME_SUFFIXES:
        raise InputError(out, "output must end in .tif, .tiff, .zarr or .npy")
    if not out.parent.is_dir():
        raise InputError(out, "output folder does not exist")
    if args.json and not Path(args.json).parent.is_dir():
        raise InputError(args.json, "output folder does not exist")
    proj = read_projections(args.input, dataset=args.dataset, layout=args.layout, flat=args.flat,
                            dark=args.dark, transmission=args.transmission)
    t_read = time.perf_counter()
    n_angles, n_rows, n_det = proj.data.shape
    print(f"read {n_angles} angles × {n_rows} rows × {n_det} columns ({proj.format})",
          file=sys.stderr)
    for note in proj.notes:
        print(f"note: {note}", file=sys.stderr)
    result = reconstruct(
        proj, geometry=args.geometry, angles=args.angles, center=args.center,
        cor_method=args.cor_method, pixel_size_um=args.pixel_size, sod=args.sod, sdd=args.sdd,
        ring_removal=args.ring_removal, ring_size=args.ring_size, filter_name=args.filter_name,
        pad_mode=args.pad_mode, pad=args.pad, size=args.size, rows=args.rows,
        threads=args.threads, backend=args.backend,
    )
    summary = result.summary
    for note in summary["notes"][len(proj.notes):]:
        print(f"note: {note}", file=sys.stderr)
    print(f"centre of rotation: column {summary['center_px']:.2f} ({summary['center_method']})",
          file=sys.stderr)
    if summary["pixel_size_um"] is None:
        print("no --pixel-size: voxel size 1 µm assumed, values per pixel", file=sys.stderr)
    t_recon = time.perf_counter()
    write_reconstruction(out, result.volume, result.voxel_size_um, args.cell_id)
    t_end = time.perf_counter()
    summary["output"] = str(out)
    summary["timings_s"].update(read=round(t_read - started, 4), write=round(t_end - t_recon, 4),
                                total=round(t_end - started, 4))
    if args.json:
        from core.fileio import atomic_write

        atomic_write(args.json, json.dumps(summary, indent=1) + "\n")
    volume = result.volume
    print(f"wrote {out} ({volume.shape[0]}×{volume.shape[1]}×{volume.shape[2]}, "
          f"{result.voxel_size_um:.4g} µm voxels) in {t_end - started:.1f} s", file=sys.stderr)
    print(out)
    return 0


register("recon", "reconstruct a volume from projections (FBP / FDK, rings, centre)", add_arguments, run)
