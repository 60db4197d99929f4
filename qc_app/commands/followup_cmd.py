"""``cellqc followup``: synchrotron follow-up results attached to cells in the log.

::

    cellqc followup import CELL_ID FILE... [--kind holo|xanes] [--energies FILE] [--flat FILE]
                           [--dark FILE] [--roi ROI_ID] [--voxel-size UM] [--dataset PATH] [--db FILE]
    cellqc followup list [--cell ID] [--json] [--db FILE]
    cellqc followup analyze ID [--out DIR] [--reference FILE ...] [--label N] ... [--db FILE]
    cellqc followup xanes-spectra FILE [--json OUT] [--png OUT]
    cellqc followup phase FILE... --distance MM ... --energy KEV --pixel UM [--delta-beta R] --out FILE
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import InputError
from qc_app.auth import add_user_arguments, login
from qc_app.commands.base import cellqc_home, progress_printer, register


def _db(args: argparse.Namespace, *, must_exist: bool = True) -> Path:
    from core.store import default_db_path

    path = Path(args.db) if args.db else default_db_path()
    if must_exist and not path.exists():
        raise InputError(path, "no log here yet; file an inspection with --db first")
    return path


def _pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers A,B, got {text!r}") from None
    return (a, b)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    sub.required = True

    imp = sub.add_parser("import", help="attach holotomography or XANES files to a cell")
    imp.add_argument("cell_id", metavar="CELL_ID")
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--kind", choices=("holo", "xanes"), help="default: detected from the files")
    imp.add_argument(
        "--energies", metavar="FILE", help="XANES energy list (eV or keV, one per image)"
    )
    imp.add_argument(
        "--flat", metavar="FILE", help="flat-field (I0) image(s): data become -ln(I/I0)"
    )
    imp.add_argument("--dark", metavar="FILE", help="dark image(s)")
    imp.add_argument(
        "--roi", type=int, metavar="ROI_ID", help="the ROI request these results answer"
    )
    imp.add_argument("--voxel-size", metavar="UM", help="µm (one number or z,y,x)")
    imp.add_argument("--dataset", metavar="PATH", help="image dataset inside an HDF5 file")
    imp.add_argument("--energy-dataset", metavar="PATH", help="energy dataset inside an HDF5 file")
    imp.add_argument("--note", help="free text kept with the follow-up")
    imp.add_argument("--new-cell", action="store_true", help="accept a cell the log does not know")
    add_user_arguments(imp, help="who imports (audit); required with the password once the log has users")
    imp.add_argument("--db", metavar="FILE", help="SQLite log (default $CELLQC_HOME/cellqc.db)")
    imp.set_defaults(_action=run_import)

    ls = sub.add_parser("list", help="list imported follow-ups")
    ls.add_argument("--cell", metavar="ID")
    ls.add_argument("--json", action="store_true", help="JSON on stdout")
    ls.add_argument("--db", metavar="FILE")
    ls.set_defaults(_action=run_list)

    an = sub.add_parser("analyze", help="analyse an imported follow-up (figures, JSON, CSV)")
    an.add_argument("followup_id", type=int, metavar="ID")
    an.add_argument("--out", metavar="DIR", help="default $CELLQC_HOME/followups/ID/")
    an.add_argument("--json", metavar="OUT", help="also write the summary JSON here")
    an.add_argument("--voxel-size", metavar="UM", help="µm, overriding the import's")
    g = an.add_argument_group("holotomography")
    g.add_argument(
        "--label", type=int, metavar="N", help="label volume: value of the active material"
    )
    g.add_argument("--threshold", type=float, help="solid above this value (default Otsu)")
    g.add_argument(
        "--crack-close-um",
        type=float,
        default=1.2,
        help="closing radius bridging cracks (µm; ~1.5 × the widest crack)",
    )
    g.add_argument("--h-um", type=float, default=None, help="watershed marker depth in µm")
    g.add_argument("--min-particle-um", type=float, default=None)
    g.add_argument("--min-fragment-um", type=float, default=None)
    g.add_argument("--depth-axis", choices=("z", "y", "x"), default="z")
    g.add_argument(
        "--collector",
        choices=("low", "high"),
        default="low",
        help="collector side along the depth axis",
    )
    g.add_argument("--regions", type=int, default=5)
    x = an.add_argument_group("XANES")
    x.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="FILE",
        help="end member for LCF (repeat)",
    )
    x.add_argument("--e0", type=float, help="nominal edge energy (eV)")
    x.add_argument("--window", type=_pair, metavar="E1,E2", help="edge search window (eV)")
    x.add_argument("--min-snr", type=float, default=None)
    x.add_argument(
        "--size-groups", type=_pair, metavar="V1,V2", help="fragment volume thresholds (µm³)"
    )
    add_user_arguments(an, help="who runs it (audit); required with the password once the log has users")
    an.add_argument("--db", metavar="FILE")
    an.set_defaults(_action=run_analyze)

    sp = sub.add_parser(
        "xanes-spectra", help="edge energies of spectra in an XDI, Athena .prj or text/CSV file"
    )
    sp.add_argument(
        "file",
        metavar="FILE",
        help="XDI (.xdi), Athena project (.prj) or a table: energy (eV/keV), then spectra",
    )
    sp.add_argument("--json", metavar="OUT", help="write the JSON here (default stdout)")
    sp.add_argument("--png", metavar="OUT", help="plot of the normalised spectra")
    sp.add_argument("--e0", type=float, help="nominal edge energy (eV)")
    sp.add_argument("--window", type=_pair, metavar="E1,E2", help="edge search window (eV)")
    sp.add_argument(
        "--foil-edge",
        type=float,
        metavar="EV",
        help="edge energy of the reference foil (default tabulated for the file's element)",
    )
    sp.add_argument(
        "--no-calibration",
        action="store_true",
        help="do not shift energies by the file's reference-foil channel",
    )
    sp.set_defaults(_action=run_spectra)

    ph = sub.add_parser("phase", help="phase retrieval of flat-field-corrected projections")
    ph.add_argument("files", nargs="+", metavar="FILE", help="one image (TIFF/.npy) per distance")
    ph.add_argument(
        "--distance",
        type=float,
        action="append",
        required=True,
        metavar="MM",
        help="effective distance (repeat per file)",
    )
    ph.add_argument("--energy", type=float, required=True, metavar="KEV")
    ph.add_argument("--pixel", type=float, required=True, metavar="UM")
    ph.add_argument("--delta-beta", type=float, default=None, help="δ/β (NMC532 at 33.6 keV ≈ 160)")
    ph.add_argument("--alpha", type=float, default=1e-8, help="CTF Tikhonov regularisation")
    ph.add_argument("--out", required=True, metavar="FILE", help="phase map (.tif or .npy)")
    ph.set_defaults(_action=run_phase)


def run(args: argparse.Namespace) -> int:
    return int(args._action(args))


def run_import(args: argparse.Namespace) -> int:
    from core.followup import import_followup
    from core.store import open_log

    with open_log(_db(args, must_exist=False)) as db:
        actor = login(db, args, "followup")
        followup_id = import_followup(
            db,
            args.cell_id,
            args.files,
            kind=args.kind,
            energies=args.energies,
            flat=args.flat,
            dark=args.dark,
            roi_request_id=args.roi,
            voxel_size=args.voxel_size,
            dataset=args.dataset,
            energy_dataset=args.energy_dataset,
            note=args.note,
            actor=actor,
            allow_new_cell=args.new_cell,
        )
    print(f"follow-up {followup_id} attached to cell {args.cell_id}", file=sys.stderr)
    print(followup_id)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from core.followup import list_followups
    from core.store import open_log

    with open_log(_db(args)) as db:
        rows = list_followups(db, args.cell)
    if args.json:
        for r in rows:
            r.pop("summary_json", None)
        json.dump(rows, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("no follow-ups match", file=sys.stderr)
        return 0
    header = ("ID", "IMPORTED (UTC)", "CELL", "KIND", "ROI", "FILES", "ANALYSED", "SOURCE")
    table = []
    for r in rows:
        s = r["summary"]
        table.append(
            (
                str(r["id"]),
                str(r["imported_at"])[:19].replace("T", " "),
                str(r["cell_id"]),
                str(r["kind"]),
                "" if r["roi_request_id"] is None else str(r["roi_request_id"]),
                str(len(s.get("files", []))),
                "yes" if s.get("analysis") else "no",
                Path(str(r["source"])).name,
            )
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    for line in (header, *table):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _holo_params(args: argparse.Namespace) -> Any:
    from core.followup import HoloParams

    p = HoloParams(
        threshold=args.threshold,
        solid_label=args.label,
        crack_close_um=args.crack_close_um,
        depth_axis="zyx".index(args.depth_axis),
        n_regions=args.regions,
        collector_side=args.collector,
    )
    if args.h_um is not None:
        p.h_um = args.h_um
    if args.min_particle_um is not None:
        p.min_particle_um = args.min_particle_um
    if args.min_fragment_um is not None:
        p.min_fragment_um = args.min_fragment_um
    return p


def _xanes_params(args: argparse.Namespace) -> Any:
    from core.followup import XanesParams

    p = XanesParams(e0=args.e0, window=args.window)
    if args.min_snr is not None:
        p.min_snr = args.min_snr
    if args.size_groups is not None:
        p.size_groups_um3 = args.size_groups
    if args.h_um is not None:
        p.h_um = args.h_um
    if args.min_fragment_um is not None:
        p.min_fragment_um = args.min_fragment_um
    return p


def run_analyze(args: argparse.Namespace) -> int:
    from core.followup.pipeline import analyze_followup, load_references, write_json
    from core.store import open_log

    out = Path(args.out) if args.out else cellqc_home() / "followups" / str(args.followup_id)
    refs = load_references(args.reference)
    with open_log(_db(args)) as db:
        actor = login(db, args, "followup")
        result = analyze_followup(
            db,
            args.followup_id,
            out,
            holo_params=_holo_params(args),
            xanes_params=_xanes_params(args),
            references=refs,
            voxel_size=args.voxel_size,
            actor=actor,
            progress=progress_printer(),
        )
    if args.json:
        write_json(Path(args.json), result["summary"])
    s = result["summary"]
    if s.get("kind") == "holo":
        fs = s.get("fragment_size") or {}
        print(
            f"{s['n_particles']} particles, {s['n_fragments']} fragments, fragment D50 "
            f"{fs.get('d50_um', float('nan')):.2f} µm, cracking index {s.get('cracking_index') or 0:.2f}",
            file=sys.stderr,
        )
    else:
        edge = s.get("edge") or {}
        mean = edge.get("e0_half_mean_ev")
        print(
            f"edge energy {mean:.2f} eV ± {edge.get('e0_half_std_ev', 0):.2f} over "
            f"{edge.get('n_kept')} voxels; {s.get('n_fragments')} fragments, {s.get('n_grains')} grains"
            if mean is not None
            else "no voxel passed the quality mask",
            file=sys.stderr,
        )
    for path in result["outputs"]:
        print(path)
    return 0


def run_spectra(args: argparse.Namespace) -> int:
    from core.fileio import atomic_write
    from core.followup.figures import spectra_png
    from core.followup.xanes import analyze_spectra_file

    report = analyze_spectra_file(
        args.file,
        e0=args.e0,
        window=args.window,
        calibrate=not args.no_calibration,
        foil_edge=args.foil_edge,
    )
    for line in report.summary["warnings"]:
        print(f"cellqc: warning: {line}", file=sys.stderr)
    text = json.dumps(report.summary, indent=1, ensure_ascii=False) + "\n"
    if args.png:
        png = spectra_png(
            [c[1] for c in report.curves],
            [c[2] for c in report.curves],
            [c[0] for c in report.curves],
            [c[3] for c in report.curves],
        )
        atomic_write(args.png, png)
    if args.json:
        atomic_write(args.json, text)
    else:
        sys.stdout.write(text)
    return 0


def run_phase(args: argparse.Namespace) -> int:
    import numpy as np

    from core.fileio import atomic_writer
    from core.followup.io import read_image
    from core.followup.phase import retrieve_phase
    from core.io import Volume, write_tiff

    out = Path(args.out)
    if out.suffix.lower() not in (".tif", ".tiff", ".npy"):
        raise InputError(out, "output must end in .tif, .tiff or .npy")
    phase = retrieve_phase(
        [read_image(f) for f in args.files],
        args.distance,
        args.pixel,
        args.energy,
        delta_beta=args.delta_beta,
        alpha=args.alpha,
        source=args.files[0],
    ).astype(np.float32)
    if out.suffix.lower() == ".npy":
        with atomic_writer(out) as handle:
            np.save(handle, phase)
    else:  # ImageJ/Fiji TIFF calibrated in µm (resolution, spacing, unit)
        pixel = float(args.pixel)
        write_tiff(Volume(phase, (pixel, pixel, pixel), source=str(out), modality="phase"), out)
    print(out)
    return 0


register(
    "followup",
    "synchrotron follow-up: import, list, analyse, XANES spectra, phase retrieval",
    add_arguments,
    run,
)
