"""``cellqc roi``: plan ROI local-tomography scans, follow them through the queue, bring them back.

``cellqc roi plan INSPECTION_ID|RESULT.json [--objective NAME] [--json OUT]`` proposes and
files scans; ``cellqc roi list`` shows the queue; ``cellqc roi export OUT`` writes the
scanner's scan list (CSV or JSON); ``cellqc roi state ID STATE`` moves a request along
(planned → scheduled → acquired → reconstructed → attached, or cancelled); ``cellqc roi
import ID VOLUME`` attaches the reconstructed ROI volume, registered against the overview.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import InputError
from qc_app.commands.base import add_log_option, print_json, print_table, register


def _add_db(p: argparse.ArgumentParser) -> None:
    add_log_option(p, metavar="FILE")


def _add_user(p: argparse.ArgumentParser) -> None:
    from qc_app.auth import add_user_arguments

    add_user_arguments(p, help="who does this (audit trail); required, with the password, once the log "
                               "has users (engineer or admin)")


def _db_path(args: argparse.Namespace, *, must_exist: bool = True) -> Path:
    from core.store import default_db_path

    path = Path(args.db) if args.db else default_db_path()
    if must_exist and not path.exists():
        raise InputError(path, "no log here yet; plan ROI scans with `cellqc roi plan` first")
    return path


def _write_json(doc: Any, out: str) -> None:
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if out == "-":
        sys.stdout.write(text)
        return
    from core.fileio import atomic_write

    path = Path(out)
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise InputError(path, f"cannot write: {exc.strerror or exc}") from None


def _load_result(source: str, db_path: Path | None) -> tuple[dict[str, Any], int | None]:
    """An inspection result from the log (an id) or from a JSON file."""
    if source.isdigit() and not Path(source).exists():
        from core.store import get_result, open_log

        if db_path is None or not db_path.exists():
            raise InputError(db_path or "--db", "no log to read inspection results from")
        with open_log(db_path) as db:
            return get_result(db, int(source)), int(source)
    path = Path(source)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(result, dict) or "findings" not in result:
        raise InputError(path, "not an inspection result (no findings)")
    iid = result.get("inspection_id")
    return result, int(iid) if isinstance(iid, int) else None


# ------------------------------------------------------------------------------- plan


def _print_plan(doc: dict[str, Any], result: dict[str, Any] | None = None) -> None:
    """The plan for a person: each ROI's place in the one convention of the report and the
    workstation (slice from 0, z from slice 0's face: :mod:`core.describe`); the scanner's
    coordinates are in the plan JSON and the export."""
    from core import describe

    spacing = describe.spacing_of(result or {})
    rois = doc["rois"]
    obj = doc["objective"]
    print(f"{doc.get('cell_id')}: {len(rois)} ROI scan(s) with objective {obj['name']} "
          f"({obj['voxel_um']} µm voxels, FOV Ø {obj['fov_diameter_mm']} × {obj['fov_height_mm']} mm), "
          f"{doc['total_minutes']:.0f} min in all")
    for r in rois:
        _z, y, x = r["center_mm"]
        pz, py, px = r["center_zyx_px"]
        sl = describe.round_half_up(pz)
        where = f"slice {sl}" + (f" (z {describe.number(describe.slice_z_mm(sl, spacing[0]), 'mm')} mm)"
                                 if spacing else "")
        partial = "" if r["covers_findings"] else "  (findings larger than the FOV: centred on the worst)"
        print(f"  ROI {r['id']}  priority {r['priority']} ({r['severity'].upper()})  "
              f"{where}, x {x:+.3f} y {y:+.3f} mm from the axis  "
              f"[voxel z {pz:.0f} y {py:.0f} x {px:.0f}]  {r['estimated_minutes']:.0f} min  "
              f"findings {', '.join(r['finding_ids'])}{partial}")


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="INSPECTION_ID|RESULT.json",
                   help="an inspection in the log or an inspection result JSON file")
    p.add_argument("--objective", metavar="NAME", help="objective for the ROI scans (default 4X)")
    p.add_argument("--objectives", metavar="CSV", help="objectives table (default the shipped one)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the plan JSON here ('-': stdout)")
    p.add_argument("--severity", default="fail,review",
                   help="which findings get scans, comma-separated (default fail,review)")
    p.add_argument("--margin", type=float, default=0.1, help="fraction of the FOV kept free (default 0.1)")
    p.add_argument("--max-rois", type=int, default=None, metavar="N",
                   help="plan only the N most urgent ROIs")
    p.add_argument("--replace", action="store_true",
                   help="cancel the inspection's planned/scheduled requests and plan again")
    p.add_argument("--no-log", action="store_true", help="only print the plan; file nothing")
    _add_db(p)
    _add_user(p)


def run_plan(args: argparse.Namespace) -> int:
    from core.roi import file_plan, get_objective, plan_document, plan_rois
    from qc_app.auth import login_to_log

    db_path = None if args.no_log and not args.source.isdigit() else _db_path(args, must_exist=False)
    actor = None
    if not args.no_log:  # who files the plan: checked before anything else
        assert db_path is not None
        actor = login_to_log(db_path, args, "plan_roi")
    result, inspection_id = _load_result(args.source, db_path)
    objective = get_objective(args.objective, args.objectives)
    severities = tuple(s.strip().lower() for s in args.severity.split(",") if s.strip())
    plans = plan_rois(result, objective, severities=severities, margin=args.margin)
    if args.max_rois is not None:
        if args.max_rois < 1:
            raise InputError("--max-rois", "must be at least 1")
        if len(plans) > args.max_rois:
            print(f"{len(plans) - args.max_rois} less urgent ROI(s) left out (--max-rois)", file=sys.stderr)
        plans = plans[: args.max_rois]
    doc = plan_document(result, plans, objective, inspection_id=inspection_id)
    if not plans:
        print(f"{result.get('cell_id')}: no {' or '.join(severities).upper()} findings; nothing to scan",
              file=sys.stderr)
    elif not args.no_log:
        from core.store import open_log

        assert db_path is not None
        with open_log(db_path) as db:
            file_plan(db, doc, actor=actor, replace=args.replace)
        print(f"filed {len(plans)} ROI request(s) in {db_path}", file=sys.stderr)
    if args.json_out:
        _write_json(doc, args.json_out)
    if plans and args.json_out != "-":
        _print_plan(doc, result)
    return 0


# ------------------------------------------------------------------------------- list


def add_list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", help="only these states, comma-separated")
    p.add_argument("--cell", metavar="ID", help="only this cell")
    p.add_argument("--all", action="store_true", help="include attached and cancelled requests")
    p.add_argument("--json", action="store_true", help="JSON list on stdout")
    _add_db(p)


def _states(args: argparse.Namespace, default: tuple[str, ...] | None) -> list[str] | None:
    if getattr(args, "status", None):
        return [s.strip() for s in args.status.split(",") if s.strip()]
    return None if default is None else list(default)


def run_list(args: argparse.Namespace) -> int:
    from core.roi import ACTIVE_STATES, export_rows, list_requests
    from core.store import open_log

    with open_log(_db_path(args)) as db:
        rows = list_requests(db, status=_states(args, None if args.all else ACTIVE_STATES),
                             cell_id=args.cell)
    flat = export_rows(rows)
    if args.json:
        print_json(flat)
        return 0
    if not flat:
        print("no ROI requests match", file=sys.stderr)
        return 0
    header = ("ID", "CELL", "STATUS", "PRIO", "OBJECTIVE", "X MM", "Y MM", "Z MM", "MIN", "FINDINGS")
    table = [
        (str(r["id"]), str(r["cell_id"]), str(r["status"]), str(r["priority"] or ""),
         str(r["objective"] or ""), f"{r['x_mm']:+.3f}", f"{r['y_mm']:+.3f}", f"{r['z_mm']:.3f}",
         f"{r['estimated_minutes']:.0f}", r["finding_ids"])
        for r in flat
    ]
    print_table(header, table)
    return 0


# ----------------------------------------------------------------------------- export


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="scan list file ('-': stdout)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV (default unless OUT ends in .json)")
    fmt.add_argument("--json", action="store_true", help="JSON")
    p.add_argument("--status", help="states to export, comma-separated (default planned,scheduled)")
    p.add_argument("--cell", metavar="ID", help="only this cell")
    p.add_argument("--schedule", action="store_true", help="mark the exported planned requests scheduled")
    _add_db(p)
    _add_user(p)


def run_export(args: argparse.Namespace) -> int:
    from core.roi import EXPORT_COLUMNS, export_rows, list_requests, set_state
    from core.store import open_log, write_transaction
    from qc_app.auth import login

    as_json = args.json or (not args.csv and args.out.lower().endswith(".json"))
    with open_log(_db_path(args)) as db:
        actor = login(db, args, "plan_roi") if args.schedule else args.user
        rows = list_requests(db, status=_states(args, ("planned", "scheduled")), cell_id=args.cell)
        flat = export_rows(rows)
        if as_json:
            _write_json(flat, args.out)
        else:
            if args.out == "-":
                writer = csv.DictWriter(sys.stdout, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
                writer.writeheader()
                writer.writerows(flat)
            else:
                from core.fileio import atomic_writer

                path = Path(args.out)
                try:
                    with atomic_writer(path, text=True, newline="") as fh:
                        writer = csv.DictWriter(fh, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
                        writer.writeheader()
                        writer.writerows(flat)
                except OSError as exc:
                    raise InputError(path, f"cannot write: {exc.strerror or exc}") from None
        scheduled = 0
        if args.schedule:
            with write_transaction(db):
                for r in rows:
                    if r["status"] == "planned":
                        set_state(db, r["id"], "scheduled", actor=actor, note="exported to the scanner")
                        scheduled += 1
    print(f"{len(flat)} ROI scan(s) exported" + (f", {scheduled} scheduled" if args.schedule else ""),
          file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------ state


def add_state_arguments(p: argparse.ArgumentParser) -> None:
    from core.roi import STATES

    p.add_argument("roi_id", type=int, metavar="ID")
    p.add_argument("state", choices=STATES, metavar="STATE", help=", ".join(STATES))
    p.add_argument("--note", help="why (kept with the request and in the audit trail)")
    _add_db(p)
    _add_user(p)


def run_state(args: argparse.Namespace) -> int:
    from core.roi import set_state
    from core.store import open_log
    from qc_app.auth import login

    with open_log(_db_path(args)) as db:
        row = set_state(db, args.roi_id, args.state, actor=login(db, args, "plan_roi"), note=args.note)
    print(f"ROI {row['id']}: {row['status']}")
    return 0


# ----------------------------------------------------------------------------- import


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("roi_id", type=int, metavar="ID")
    p.add_argument("volume", metavar="VOLUME", help="the reconstructed ROI volume")
    p.add_argument("--voxel-size", help="µm of the ROI volume (overrides the file)")
    p.add_argument("--overview", metavar="VOLUME", help="overview volume (default: the inspected file)")
    p.add_argument("--no-refine", action="store_true", help="keep the planned position (no correlation)")
    p.add_argument("--search", type=float, default=8.0,
                   help="largest position correction searched, overview voxels (default 8)")
    _add_db(p)
    _add_user(p)


def run_import(args: argparse.Namespace) -> int:
    from core.roi import import_roi_volume
    from core.store import open_log
    from qc_app.auth import login

    with open_log(_db_path(args)) as db:
        actor = login(db, args, "plan_roi")
        out = import_roi_volume(db, args.roi_id, args.volume, voxel_size=args.voxel_size,
                                overview_path=args.overview, refine=not args.no_refine,
                                search_px=args.search, actor=actor)
    reg = out["registration"]
    z, y, x = reg["center_zyx_px"]
    dz, dy, dx = reg["shift_px"]
    how = (f"refined by correlation (score {reg['score']:.2f}), shift z {dz:+.1f} y {dy:+.1f} x {dx:+.1f} voxels"
           if reg["method"] == "ncc" else f"planned position ({reg['note']})")
    print(f"ROI {out['roi_id']}: attached; centre at overview voxel z {z:.1f} y {y:.1f} x {x:.1f}, {how}")
    return 0


# ------------------------------------------------------------------------------- roi


_SUB = {
    "plan": ("propose and file ROI scans from an inspection's FAIL/REVIEW findings",
             add_plan_arguments, run_plan),
    "list": ("list ROI requests (active ones unless --all)", add_list_arguments, run_list),
    "export": ("write the scanner's scan list (CSV or JSON)", add_export_arguments, run_export),
    "state": ("move an ROI request to its next state", add_state_arguments, run_state),
    "import": ("attach a reconstructed ROI volume to its request", add_import_arguments, run_import),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="roi_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    for name, (help_text, add, run) in _SUB.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add(sp)
        sp.set_defaults(_roi_run=run)


def run(args: argparse.Namespace) -> int:
    return int(args._roi_run(args))


register("roi", "ROI local-tomography scans: plan, list, export, state, import", add_arguments, run)
