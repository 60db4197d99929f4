"""Check a report against the log: is this the report cellqc filed, and does it say what the log says?

Two ways in:

- a saved PDF (:func:`verify_report_file`): its SHA-256 is looked up in the log's ``reports``
  table (filed when the report was written), and the trace it carries (QR text, also in its
  ``Keywords`` metadata, :mod:`core.report.qr`) is compared with the inspection it names;
- a printed report (:func:`verify_trace`): the text a scanner reads from its QR code is
  compared with the inspection it names (cell, result hash, and the verdict it shows among the
  verdicts that inspection has had).

Outcomes (:class:`Verification`):

- ``MATCH``: the PDF's bytes are a report filed in this log (or the scanned trace agrees with
  the log). A later override is reported, since the printed verdict is then superseded.
- ``ALTERED``: the PDF names an inspection of this log and agrees with it on the cell and the
  result, but its bytes are not any report filed for it (changed after filing, or written and
  kept outside the log); or its trace disagrees with the inspection it names on the verdict.
- ``NO MATCH``: the log knows neither the file nor the inspection it names, or that inspection
  is another cell or another result.

What this defends against (the docs' three adversaries): an operator or another local account
who edits a PDF or prints a doctored one is caught while the log is intact; someone who can
write the log can file a forged report row as well, which the audit chain (``report.write``
rows) is there to show.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError
from core.report.qr import TRACE_PREFIX, ReportTrace, parse_trace

if TYPE_CHECKING:
    from sqlite_utils import Database

MATCH, ALTERED, NO_MATCH = "MATCH", "ALTERED", "NO MATCH"


@dataclass
class Verification:
    """The outcome of checking a report against the log.

    Attributes
    ----------
    status : str
        ``MATCH``, ``ALTERED`` or ``NO MATCH``.
    lines : list of str
        What was found, one sentence each, for a person.
    trace : ReportTrace or None
        What the report states, when it states anything.
    inspection_id : int or None
        The inspection of the log the report belongs to (or claims to).
    file_sha256 : str or None
        SHA-256 of the checked PDF (None for a scanned trace).
    """

    status: str
    lines: list[str] = field(default_factory=list)
    trace: ReportTrace | None = None
    inspection_id: int | None = None
    file_sha256: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the report is the one the log filed (or its trace agrees with the log)."""
        return self.status == MATCH


def read_pdf_trace(path: str | os.PathLike[str]) -> ReportTrace | None:
    """The trace a cellqc PDF carries: its ``Keywords`` metadata, else its page-1 text.

    Returns
    -------
    ReportTrace or None
        None when the PDF carries no cellqc trace (an older report, or not cellqc's).

    Raises
    ------
    core.errors.InputError
        The file cannot be read or is not a PDF.
    """
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    path = Path(path)
    try:
        reader = PdfReader(str(path))
        keywords = str((reader.metadata or {}).get("/Keywords") or "")
        first_page_text = reader.pages[0].extract_text() if len(reader.pages) else ""
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except (PdfReadError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(path, f"not a readable PDF ({exc})") from None
    if keywords.startswith(TRACE_PREFIX):
        try:
            return parse_trace(keywords)
        except InputError:
            pass  # a damaged keyword: fall back to the printed words
    return _trace_from_text(first_page_text or "")


def _trace_from_text(text: str) -> ReportTrace | None:
    """The trace from the words printed beside the QR (see ``core.report.qr``)."""
    flat = " ".join(text.split())
    sha = re.search(r"Result SHA-256 \(the filed result JSON\): ?([0-9a-f]{64})", flat)
    head = re.search(r"(?:Inspection #(\d+) in the cellqc log|Not filed in a cellqc log) · cell (.+?) · "
                     r"verdict (\w+)", flat)
    if not sha or not head or head.group(2).endswith("…"):
        return None
    inspection = int(head.group(1)) if head.group(1) else None
    return ReportTrace(head.group(2), head.group(3), inspection, sha.group(1))


def _inspection(db: Database, inspection_id: int) -> dict[str, Any] | None:
    rows = list(db.query(
        "SELECT id, cell_id, status, verdict, result_sha256, started_at FROM inspections WHERE id = ?",
        [int(inspection_id)]))
    return rows[0] if rows else None


def _verdict_history(db: Database, row: dict[str, Any]) -> list[str]:
    """The verdicts an inspection has had, oldest first: the automated one, then each override."""
    from core.store import overrides_for

    return [str(row["verdict"])] + [str(o["new_verdict"]) for o in overrides_for(db, int(row["id"]))]


def _compare(db: Database, trace: ReportTrace, out: Verification) -> str:
    """Compare a trace with the inspection it names; returns MATCH, ALTERED or NO MATCH."""
    if trace.inspection_id is None:
        out.lines.append("it names no inspection: it was written without the log")
        return NO_MATCH
    out.inspection_id = trace.inspection_id
    row = _inspection(db, trace.inspection_id)
    if row is None:
        out.lines.append(f"inspection #{trace.inspection_id} is not in this log")
        return NO_MATCH
    if row["status"] != "complete":
        out.lines.append(f"inspection #{trace.inspection_id} is {row['status']} in this log, not complete")
        return NO_MATCH
    if str(row["cell_id"]) != trace.cell_id:
        out.lines.append(f"inspection #{trace.inspection_id} in this log is cell {row['cell_id']}, "
                         f"the report says cell {trace.cell_id}")
        return NO_MATCH
    if row["result_sha256"] != trace.result_sha256:
        out.lines.append(f"inspection #{trace.inspection_id} (cell {row['cell_id']}) has another result "
                         f"in this log (result SHA-256 {row['result_sha256'][:16]}…, "
                         f"the report states {trace.result_sha256[:16]}…)")
        return NO_MATCH
    history = _verdict_history(db, row)
    if trace.verdict not in history:
        out.lines.append(f"the report shows verdict {trace.verdict}; inspection #{trace.inspection_id} "
                         f"has only ever been {' then '.join(history)}")
        return ALTERED
    out.lines.append(f"inspection #{trace.inspection_id}, cell {row['cell_id']}, verdict {trace.verdict}, "
                     f"result SHA-256 {trace.result_sha256[:16]}… agree with the log")
    if history[-1] != trace.verdict:
        out.lines.append(f"note: the verdict has been overridden since; it is now {history[-1]} "
                         f"(cellqc report {trace.inspection_id} writes the current report)")
    return MATCH


def verify_trace(db: Database, text: str) -> Verification:
    """Check the text scanned from a printed report's QR code against the log.

    Raises
    ------
    core.errors.InputError
        The text is not a cellqc report trace.
    """
    trace = parse_trace(text)
    out = Verification(NO_MATCH, trace=trace)
    out.status = _compare(db, trace, out)
    return out


def verify_report_file(db: Database, path: str | os.PathLike[str]) -> Verification:
    """Check a saved PDF report against the log (see the module docstring for the outcomes).

    Raises
    ------
    core.errors.InputError
        The file is missing, unreadable or not a PDF.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    if not data.startswith(b"%PDF-"):
        raise InputError(path, "not a PDF file")
    sha = hashlib.sha256(data).hexdigest()
    trace = read_pdf_trace(path)
    out = Verification(NO_MATCH, trace=trace, file_sha256=sha)
    filed = list(db.query(
        "SELECT id, inspection_id, path, created_at FROM reports WHERE sha256 = ? ORDER BY id", [sha]))
    if filed:
        first = filed[0]
        out.inspection_id = int(first["inspection_id"])
        out.lines.append(f"the file's SHA-256 {sha[:16]}… is the report filed for inspection "
                         f"#{first['inspection_id']} on {str(first['created_at'])[:19].replace('T', ' ')} UTC "
                         f"({first['path']})")
        if trace is not None:
            status = _compare(db, trace, out)
            if status != MATCH or trace.inspection_id != out.inspection_id:
                out.lines.append("but what it states disagrees with the log: the log itself may have been "
                                 "changed (run cellqc audit verify)")
                out.status = ALTERED
                return out
        out.status = MATCH
        return out
    out.lines.append(f"no report with the file's SHA-256 {sha[:16]}… was filed in this log")
    if trace is None:
        out.lines.append("and the file carries no cellqc trace (not a cellqc report, or from before traces)")
        return out
    status = _compare(db, trace, out)
    if status == MATCH:
        others = list(db.query("SELECT sha256 FROM reports WHERE inspection_id = ? ORDER BY id",
                               [int(trace.inspection_id or 0)]))
        out.lines.append("so the file was changed after it was filed, or written outside the log"
                         + (f" (filed for it: {', '.join(r['sha256'][:16] + '…' for r in others)})"
                            if others else " (no report is filed for that inspection)"))
        out.status = ALTERED
    else:
        out.status = status
    return out
