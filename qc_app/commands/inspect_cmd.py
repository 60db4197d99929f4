"""``cellqc inspect VOLUME``: load → geometry → detectors → verdict → result."""

from __future__ import annotations

import argparse
import sys

from qc_app.cli import register


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("volume", help="volume file or folder of TIFF slices")
    p.add_argument("--voxel-size", help="µm: one number or z,y,x (overrides the file)")
    p.add_argument("--dataset", help="dataset path inside an HDF5 / Zarr file")
    p.add_argument("--recipe", default=None, help="recipe name (e.g. 18650-nmc) or TOML file")
    p.add_argument("--cell-id", default=None)
    p.add_argument("--json", dest="json_out", help="write the inspection result here")
    p.add_argument("--report", help="write the PDF report here")
    p.add_argument("--db", help="SQLite log file")


def run(args: argparse.Namespace) -> int:
    from core.io import read_volume

    options = {"dataset": args.dataset} if args.dataset else {}
    volume = read_volume(args.volume, voxel_size=args.voxel_size, **options)
    print(f"{volume.source}: shape {volume.shape}, spacing {volume.spacing_um} µm", file=sys.stderr)
    return 0


register("inspect", "inspect one cell volume and print its verdict", add_arguments, run)
