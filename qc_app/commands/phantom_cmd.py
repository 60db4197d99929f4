"""``cellqc phantom OUT.tif``: write a synthetic cell with known defects and its truth JSON.

The volume goes to ``OUT.tif`` (ImageJ TIFF with the voxel size, via :func:`core.io.write_tiff`)
and the exact ground truth to ``OUT.truth.json`` (the ``truth`` dict of
:func:`core.phantom.make_cell` plus an ``output`` entry describing the stored values).
With ``--dtype uint16`` the attenuation is stored as
``stored = round((attenuation - value_offset) * value_scale)``, clipped to 0..65535, with
``value_offset`` = -1 and ``value_scale`` = 8000 (``output`` in the truth repeats both).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from core.errors import InputError
from qc_app.commands.base import progress_printer, register

DEFECT_NAMES = {
    "deflection": "collector_deflection",
    "void": "delamination",
    "patch": "coating_patch",
    "particle": "foreign_particle",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "out",
        metavar="OUT.tif",
        help="volume to write (.tif/.tiff); the truth goes to OUT.truth.json",
    )
    p.add_argument(
        "--kind", choices=["18650", "21700"], default="18650", help="cell format (default 18650)"
    )
    p.add_argument(
        "--voxel-size",
        default="20",
        metavar="UM|Z,Y,X",
        help="voxel size in µm: one number, or z,y,x with y = x for slices further apart "
        "than the in-plane pixels (default 20)",
    )
    p.add_argument(
        "--slices",
        type=_int_arg,
        default=None,
        metavar="N",
        help="number of axial slices (default 8 for the middle region, else what the region needs)",
    )
    p.add_argument(
        "--region",
        choices=["middle", "top", "bottom", "full"],
        default="middle",
        help="which part of the cell: middle of the roll (default), top (cap, crimp, groove, "
        "tab, roll end), bottom (roll end, negative tab, can bottom) or the full height",
    )
    p.add_argument(
        "--no-anatomy",
        action="store_true",
        help="the idealised roll: every layer in every winding, no tabs (middle region only)",
    )
    p.add_argument(
        "--random-anatomy",
        action="store_true",
        help="draw the anatomy (electrode ends, stretches, tabs, overhangs, groove...) at random "
        "from --seed instead of the defaults",
    )
    p.add_argument(
        "--defects",
        default="all",
        metavar="all|none|LIST",
        help="comma list of deflection,void,patch,particle (default all)",
    )
    p.add_argument("--seed", type=_int_arg, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument(
        "--noise",
        type=_float_arg,
        default=None,
        metavar="F",
        help="noise sigma relative to the cathode coating (default 0.08)",
    )
    p.add_argument(
        "--rings",
        type=_int_arg,
        default=None,
        metavar="N",
        help="ring artifacts per slice (default 6)",
    )
    p.add_argument(
        "--cupping",
        type=_float_arg,
        default=None,
        metavar="F",
        help="beam-hardening cupping: centre darker by this fraction (default 0.12)",
    )
    p.add_argument(
        "--blur",
        type=_float_arg,
        default=None,
        metavar="PX",
        help="Gaussian blur sigma in voxels (default 0.7)",
    )
    p.add_argument(
        "--ovality", type=_float_arg, default=0.0, metavar="E", help="roll ovality e (default 0)"
    )
    p.add_argument(
        "--offset-um",
        default="0,0",
        metavar="DY,DX",
        help="cell axis offset from the image centre, µm",
    )
    p.add_argument(
        "--headspace",
        type=_int_arg,
        default=0,
        metavar="N",
        help="first N slices show the cap/headspace",
    )
    p.add_argument(
        "--fbp",
        action="store_true",
        help="project and reconstruct (parallel-beam FBP): true streaks; slow",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "uint16"],
        default="float32",
        help="stored data type (default float32)",
    )


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def parse_defects(text: str) -> list[str]:
    """``all`` / ``none`` / a comma list of short names → the defect kinds to inject."""
    text = text.strip().lower()
    if text == "all":
        return list(DEFECT_NAMES.values())
    if text in ("none", ""):
        return []
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in DEFECT_NAMES]
    if unknown:
        raise InputError(
            "--defects",
            f"unknown defect {unknown[0]!r}; use all, none or a list of " + ",".join(DEFECT_NAMES),
        )
    return [DEFECT_NAMES[n] for n in dict.fromkeys(names)]


def _parse_offset(text: str) -> tuple[float, float]:
    try:
        parts = [float(p) for p in text.replace(" ", "").split(",")]
    except ValueError:
        raise InputError("--offset-um", f"{text!r} is not two numbers DY,DX") from None
    if len(parts) != 2 or not all(math.isfinite(p) for p in parts):
        raise InputError("--offset-um", f"{text!r} is not two numbers DY,DX")
    return parts[0], parts[1]


def build_cell_args(args: argparse.Namespace) -> tuple[Any, Any, list[Any]]:
    """Turn the command-line options into (CellSpec, Artifacts, defects); InputError if bad."""
    from dataclasses import replace

    import numpy as np

    from core.phantom import Artifacts, CellSpec, default_defects, random_anatomy

    voxel, slice_um = _parse_voxel(args.voxel_size)
    if args.slices is not None and args.slices < 1:
        raise InputError("--slices", f"must be ≥ 1, got {args.slices}")
    n_for_headspace = args.slices if args.slices is not None else 8
    if args.headspace and not 0 <= args.headspace < n_for_headspace:
        raise InputError(
            "--headspace",
            f"must be 0..{n_for_headspace - 1} (fewer than --slices), got {args.headspace}",
        )
    if args.headspace and args.region != "middle":
        raise InputError("--headspace", "is for the middle region (--region top has a real headspace)")
    if args.no_anatomy and args.region != "middle":
        raise InputError("--no-anatomy", "the idealised roll has no ends: use --region middle")
    if args.no_anatomy and args.random_anatomy:
        raise InputError("--random-anatomy", "cannot be combined with --no-anatomy")
    if not 0.0 <= args.ovality < 0.3:
        raise InputError("--ovality", f"must be in [0, 0.3), got {args.ovality}")
    for name in ("noise", "blur"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise InputError(f"--{name}", f"must be ≥ 0, got {value}")
    if args.rings is not None and args.rings < 0:
        raise InputError("--rings", f"must be ≥ 0, got {args.rings}")
    if args.cupping is not None and not 0.0 <= args.cupping < 1.0:
        raise InputError("--cupping", f"must be in [0, 1), got {args.cupping}")
    offset = _parse_offset(args.offset_um)
    kinds = parse_defects(args.defects)
    try:
        spec = CellSpec(
            kind=args.kind,
            voxel_size_um=voxel,
            slice_spacing_um=slice_um,
            n_slices=args.slices,
            ovality=args.ovality,
            center_offset_um=offset,
            headspace_slices=args.headspace,
            anatomy=not args.no_anatomy,
            region=args.region,
        )
        if args.random_anatomy:
            spec = replace(
                spec,
                anatomy=random_anatomy(np.random.default_rng(args.seed), spec.kind, spec),
                n_slices=args.slices,
            )
    except ValueError as exc:
        raise InputError("cellqc phantom", str(exc)) from None
    if max(abs(offset[0]), abs(offset[1])) > float(spec.can_outer_radius_um):
        raise InputError(
            "--offset-um", f"{args.offset_um} µm moves the cell further than its own radius"
        )
    art = Artifacts()
    overrides = {
        "noise_sigma": args.noise,
        "ring_count": args.rings,
        "cupping": args.cupping,
        "blur_sigma_px": args.blur,
    }
    for field, value in overrides.items():
        if value is not None:
            setattr(art, field, value)
    art.streaks_fbp = bool(args.fbp)
    try:
        defects = [
            d for d in default_defects(spec, np.random.default_rng(args.seed)) if d.kind in kinds
        ]
    except ValueError as exc:
        raise InputError("--defects", str(exc)) from None
    return spec, art, defects


def _parse_voxel(text: str) -> tuple[float, float]:
    """``--voxel-size``: one number (isotropic) or z,y,x with y = x → (in-plane, slice spacing)."""
    try:
        parts = [float(p) for p in str(text).replace(" ", "").split(",")]
    except ValueError:
        raise InputError("--voxel-size", f"{text!r} is not a number or z,y,x (µm)") from None
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3:
        raise InputError("--voxel-size", f"{text!r}: give one number or three (z,y,x)")
    z, y, x = parts
    if not all(math.isfinite(p) for p in parts):
        raise InputError("--voxel-size", f"{text!r} is not finite")
    if abs(y - x) > 1e-9 * max(abs(x), 1.0):
        raise InputError("--voxel-size", f"{text}: the phantom's pixels are square (y must equal x)")
    if not 1.0 <= x <= 100.0:
        raise InputError("--voxel-size", f"{x:g} µm is outside 1–100 µm (5–25 µm is realistic)")
    if not 1.0 <= z <= 500.0:
        raise InputError("--voxel-size", f"slice spacing {z:g} µm is outside 1–500 µm")
    return x, z


def _image_size(spec: Any) -> int:
    reach = float(spec.can_outer_radius_um) + max(abs(c) for c in spec.center_offset_um)
    return spec.image_size_px or int(2 * math.ceil(reach / spec.voxel_size_um + 12))


def check_memory(spec: Any) -> None:
    """Refuse, before allocating, a volume that does not fit the memory budget."""
    from core.io import memory_budget

    size = _image_size(spec)
    need = spec.n_slices * size * size * 4 * 1.1
    budget = memory_budget()
    if need > budget:
        raise InputError(
            "cellqc phantom",
            f"a {spec.n_slices} × {size} × {size} float32 volume needs "
            f"{need / 2**30:.1f} GB, more than the memory budget of {budget / 2**30:.1f} GB "
            "(use fewer --slices or a larger --voxel-size)",
        )


def describe_defect(d: dict[str, Any], voxel_um: float, truth: dict[str, Any] | None = None) -> str:
    """One line per defect of a truth dict, for people (windings as cellqc counts them when
    the cell's ``truth`` is given)."""
    kind = d["kind"]
    where = ""
    if d.get("present"):
        z, y, x = d["centroid_zyx_px"]
        where = f" at (z {z:.1f}, y {y:.1f}, x {x:.1f}) px"
    winding = ""
    if d.get("winding") is not None:
        from core.phantom.render import cellqc_winding

        layer = "cu" if kind == "collector_deflection" else "cathode"
        counted = cellqc_winding(truth, d["winding"], d["angle_deg"], layer) if truth else d["winding"]
        slot = f" (slot {d['winding']} from the mandrel)" if counted != d["winding"] else ""
        winding = f", winding {counted}{slot}"
    angle = f", {d['angle_deg']:.0f}°"
    if kind == "collector_deflection":
        size = f"Cu collector deflected {d['amplitude_um']:.0f} µm"
    elif kind == "delamination":
        size = f"delamination void {d['volume_mm3']:.5f} mm³ ({d['params']['thickness_um']:.0f} µm thick)"
    elif kind == "coating_patch":
        size = f"cathode sheet {100 * d['sheet_change']:+.0f} % over {d['area_mm2']:.2f} mm²"
    elif kind == "foreign_particle":
        size = f"foreign particle Ø {d['diameter_um']:.0f} µm"
    else:
        size = kind
    return f"{size}{winding}{angle}{where}" + (
        "" if d.get("present", True) else " (outside the slices)"
    )


def run(args: argparse.Namespace) -> int:
    from core.phantom import make_cell
    from core.phantom.files import write_cell

    report = progress_printer("phantom ")
    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(out, "the output must be a .tif or .tiff file")
    if not out.parent.is_dir():
        raise InputError(out, "output folder does not exist")
    spec, art, defects = build_cell_args(args)
    check_memory(spec)
    spacing = (
        f"{spec.voxel_size_um:g} µm"
        if spec.slice_spacing_um == spec.voxel_size_um
        else f"{spec.voxel_size_um:g} µm pixels {spec.slice_spacing_um:g} µm apart"
    )
    report(
        0.0,
        f"rendering an {spec.kind} cell ({spec.region}"
        f"{', idealised roll' if spec.anatomy is None else ''}): {spec.n_slices} slices at {spacing}, "
        f"{len(defects)} defect(s){', FBP round trip (slow)' if art.streaks_fbp else ''}",
    )
    cell = make_cell(spec, defects, art, seed=args.seed)
    report(0.8, f"writing {out}")
    truth_path, truth = write_cell(cell, out, args.dtype)
    report(1.0, f"wrote {out} and {truth_path}")
    nz, ny, nx = truth["shape_zyx"]
    print(
        f"{out}: {nz} × {ny} × {nx} voxels of {spacing} ({args.dtype}), "
        f"{truth['roll']['windings']} windings, truth in {truth_path}"
    )
    for line in describe_anatomy(truth):
        print(f"  {line}")
    for d in truth["defects"]:
        print(f"  {describe_defect(d, spec.voxel_size_um, truth)}")
    return 0


def describe_anatomy(truth: dict[str, Any]) -> list[str]:
    """A few lines on the anatomy of a truth dict, for people."""
    an = truth.get("anatomy")
    if not an:
        return ["idealised roll (no anatomy)"]
    strip = an["strip"]

    def where(p: dict[str, Any]) -> str:
        return f"winding {p['winding']} at {p['angle_deg']:.0f}°"

    out = [
        f"anode from {where(strip['anode']['start'])} to {where(strip['anode']['end'])}, "
        f"cathode from {where(strip['cathode']['start'])} to {where(strip['cathode']['end'])}"
    ]
    for d in an["single_sided"]:
        out.append(
            f"{d['electrode']} single-sided ({d['coating']} coating off) over "
            f"{d['arc_length_mm']:.1f} mm from {where(d['start'])}"
        )
    if an["tab_window"]:
        w = an["tab_window"]
        out.append(f"tab window {w['arc_length_mm']:.1f} mm in cathode winding {w['winding']}, "
                   f"{w['start_angle_deg']:.0f}–{w['end_angle_deg']:.0f}°")
    slices = truth["slices"]
    shown = ", ".join(f"{name} {len(z)}" for name, z in slices.items() if z)
    out.append(f"slices: {shown}")
    return out


register(
    "phantom",
    "write a synthetic cell with known defects (OUT.tif + OUT.truth.json)",
    add_arguments,
    run,
)
