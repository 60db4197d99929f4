"""``cellqc log``, ``cellqc report`` and ``cellqc audit``: the inspection log from the shell.

``cellqc log [--failed] [--cell ID] [--json|--csv]`` lists inspections; ``cellqc report
INSPECTION_ID`` writes the PDF again from the log; ``cellqc report --verify PDF`` (or
``--verify-code TEXT`` for a scanned QR code) checks a report against the log (exit 0 MATCH,
1 ALTERED or NO MATCH, 2 unreadable input); ``cellqc audit verify [--report PDF]`` checks the
keyed audit chain, its head kept outside the log, the tables against it, and the chain head a
printed report carries (exit 0 intact, 1 broken, 2 cannot check).

Values from the log (cell ids, user names) are printed escaped (:func:`core.text.printable`):
a control character never reaches the terminal raw.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.text import file_name_part, printable
from qc_app.commands.base import add_log_option, cellqc_home, print_json, print_table, register

LOG_COLUMNS = (
    "id",
    "started_at",
    "cell_id",
    "final_verdict",
    "verdict",
    "status",
    "n_findings",
    "recipe",
    "operator",
    "report_path",
)


def _db_path(args: argparse.Namespace) -> Path:
    from core.store import default_db_path

    path = Path(args.db) if args.db else default_db_path()
    if not path.exists():
        raise InputError(path, "no log here yet; file an inspection with --db first")
    return path


def _add_db(p: argparse.ArgumentParser) -> None:
    add_log_option(p, metavar="FILE")


# ------------------------------------------------------------------------------- log


def add_log_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--failed", action="store_true", help="only cells whose final verdict is FAIL")
    p.add_argument("--cell", metavar="ID", help="only this cell")
    p.add_argument(
        "--status",
        choices=("running", "complete", "interrupted", "failed"),
        help="only inspections with this status",
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the newest N")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON list on stdout")
    out.add_argument("--csv", action="store_true", help="CSV on stdout")
    _add_db(p)


def _short_time(iso: Any) -> str:
    text = str(iso or "")
    return text[:19].replace("T", " ")


def _verdict_text(row: dict[str, Any]) -> str:
    final = row.get("final_verdict") or "—"
    if row.get("override_verdict"):
        return f"{final}*"
    return str(final)


def run_log(args: argparse.Namespace) -> int:
    from core.store import list_inspections, open_log

    with open_log(_db_path(args)) as db:
        rows = list_inspections(
            db, failed=args.failed, cell_id=args.cell, status=args.status, limit=args.limit
        )
    if args.json:  # JSON escapes control characters itself; ASCII escapes the rest
        print_json(rows, ascii_only=True)
        return 0
    if args.csv:
        columns = list(rows[0]) if rows else list(LOG_COLUMNS)
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: printable(v) if isinstance(v, str) else v for k, v in r.items()}
                         for r in rows)
        return 0
    if not rows:
        print("no inspections match", file=sys.stderr)
        return 0
    header = ("ID", "STARTED (UTC)", "CELL", "VERDICT", "STATUS", "FINDINGS", "RECIPE", "OPERATOR")
    table = [
        (
            str(r["id"]),
            printable(_short_time(r["started_at"])),
            printable(r["cell_id"], 40),
            printable(_verdict_text(r)),
            printable(r["status"]),
            "" if r["n_findings"] is None else str(r["n_findings"]),
            printable(r["recipe"] or "", 30),
            printable(r["operator"] or "", 30),
        )
        for r in rows
    ]
    print_table(header, table)
    if any(r.get("override_verdict") for r in rows):
        print("* verdict overridden by an engineer (see the report)", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- report


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inspection_id", type=int, metavar="INSPECTION_ID", nargs="?",
                   help="the inspection whose report to write again")
    check = p.add_mutually_exclusive_group()
    check.add_argument("--verify", metavar="PDF",
                       help="check a saved report against the log instead: MATCH (exit 0), ALTERED or NO MATCH (exit 1)")
    check.add_argument("--verify-code", metavar="TEXT",
                       help="check the text scanned from a printed report's QR code against the log (exit 0/1)")
    p.add_argument("--out", metavar="PDF", help="where to write (default $CELLQC_HOME/reports/)")
    p.add_argument(
        "--no-volume", action="store_true", help="do not read the volume again (no slice figures)"
    )
    _add_db(p)
    from qc_app.auth import add_user_arguments

    add_user_arguments(p, help="who files the report; required with the password once the log has users")


def run_verify(args: argparse.Namespace) -> int:
    """``cellqc report --verify PDF`` / ``--verify-code TEXT``: the first word says it all."""
    from core.report.verify import verify_report_file, verify_trace
    from core.store import open_log

    if args.inspection_id is not None:
        raise InputError("--verify", "checks a report; give no INSPECTION_ID with it")
    if args.verify and not Path(args.verify).is_file():
        raise InputError(args.verify, "no such file")
    with open_log(_db_path(args), recover=False) as db:
        outcome = verify_report_file(db, args.verify) if args.verify else verify_trace(db, args.verify_code)
    what = args.verify or "the scanned code"
    print(f"{outcome.status}: {what}")
    for line in outcome.lines:
        print(f"  {line}")
    return 0 if outcome.ok else 1


def run_report(args: argparse.Namespace) -> int:
    from core.report import inputs_from_log, write_report
    from core.store import open_log
    from qc_app.auth import login

    if args.verify or args.verify_code:
        return run_verify(args)
    if args.inspection_id is None:
        raise InputError("cellqc report", "give an INSPECTION_ID, or --verify PDF, or --verify-code TEXT")
    with open_log(_db_path(args)) as db:
        login(db, args, "report")  # before the volume is read or anything written
        print(f"reading inspection {args.inspection_id} from the log", file=sys.stderr)
        inputs = inputs_from_log(db, args.inspection_id, load_volume=not args.no_volume)
        if inputs.volume_note:
            print(f"no slice figures: {inputs.volume_note}", file=sys.stderr)
        cell = str(inputs.result.get("cell_id") or "cell")
        out = (
            Path(args.out)
            if args.out
            else (
                cellqc_home()
                / "reports"
                / f"{file_name_part(cell)}-inspection-{args.inspection_id}.pdf"
            )
        )
        try:
            sha = write_report(inputs, out, db=db, inspection_id=args.inspection_id)
        except OSError as exc:
            raise InputError(out, f"cannot write the report: {exc.strerror or exc}") from None
    print(f"sha256 {sha}", file=sys.stderr)
    print(out)
    return 0


# ------------------------------------------------------------------------------ audit


def add_audit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("verify",), help="verify: check the keyed audit chain")
    p.add_argument("--report", metavar="PDF", action="append", default=[],
                   help="also check that the audit chain head this printed report carries is in "
                        "the log's chain (repeatable); a result JSON with 'audit_head' works too")
    _add_db(p)


def _anchor_of(path: Path):
    """The audit head a PDF report or an exported result JSON carries (None: it has none)."""
    from core.report.anchor import read_report_anchor
    from core.store.audit import head_from_dict

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InputError(path, f"cannot read the result: {exc}") from None
        return head_from_dict(data.get("audit_head") if isinstance(data, dict) else None)
    return read_report_anchor(path)


def run_audit(args: argparse.Namespace) -> int:
    from core.store import audit_key_path, check_anchor, check_records, find_audit_break, open_log
    from core.store.audit import audit_key_of, audit_row_count, head_file_path, log_id

    reports = [(Path(r), _anchor_of(Path(r))) for r in args.report]  # bad files: exit 2 first
    with open_log(_db_path(args), recover=False) as db:
        broken = find_audit_break(db)
        rows = audit_row_count(db)
        problems = check_records(db) if broken is None else []
        anchors = [(path, head, None if head is None else check_anchor(db, head))
                   for path, head in reports]
        this_log = log_id(db)
        tail = head_file_path(audit_key_of(db), this_log) if this_log else None
    status = 0
    if broken is not None:
        print(f"audit chain BROKEN at row {broken.row_id}: {printable(broken.problem)}")
        status = 1
    elif problems:
        print(f"audit chain intact ({rows} rows), but the log's tables disagree with it:")
        for problem in problems:
            print(f"  {printable(problem)}")
        status = 1
    else:
        print(f"audit chain intact ({rows} rows, keyed with {audit_key_path()}); every complete "
              "inspection, override and user matches its audit entry")
        if tail is not None:
            print(f"  newest rows checked against {tail}" if tail.exists() else
                  f"  no head recorded outside the log ({tail}): a deleted tail cannot be seen")
    for path, head, problem in anchors:
        if head is None:
            print(f"{path}: carries no audit chain head (printed before the log was keyed, or "
                  "not by cellqc)")
            status = 1
        elif problem is not None:
            print(f"{path}: NOT in this log: {printable(problem)}")
            status = 1
        else:
            print(f"{path}: its audit chain head (row {head.row}) is in this log's chain")
    return status


register("log", "list inspections in the log", add_log_arguments, run_log)
register(
    "report",
    "write an inspection's PDF report again from the log, or check one (--verify)",
    add_report_arguments,
    run_report,
)
register("audit", "verify the log's hash-chained audit table", add_audit_arguments, run_audit)
