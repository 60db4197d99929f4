"""The audit chain head a PDF report carries, and reading it back.

A report printed from a log carries the log's audit chain head at the time it was written
(:class:`core.store.AuditHead`): printed in every page's footer (so paper can be checked by
eye) and appended to the PDF's ``/Subject`` metadata (so ``cellqc audit verify --report
FILE.pdf`` reads it without OCR). A log rewritten or truncated after the report was made no
longer holds that row with that hash. (The ``/Keywords`` hold the report's QR trace,
:mod:`core.report.qr`.)
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.store.audit import AuditHead

_FOOTER_RE = re.compile(r"log\s+([0-9a-f]{32})\W+row\s+([0-9]{1,18})\W+([0-9a-f]{64})")


def audit_anchor_footer(head: AuditHead) -> str:
    """The footer line printed on every page: the log's id, the row and its full keyed hash."""
    return f"Audit chain at printing: log {head.log_id} · row {head.row} · {head.hash}"


def audit_anchor_subject(subject: str, head: AuditHead | None) -> str:
    """The PDF's ``/Subject``: ``subject``, then :meth:`AuditHead.anchor_text` when known."""
    return subject if head is None else f"{subject} · {head.anchor_text()}"


def read_report_anchor(path: str | os.PathLike[str]) -> AuditHead | None:
    """The audit head a cellqc PDF carries (metadata, else the printed footer), or None.

    Raises
    ------
    core.errors.InputError
        The file cannot be read or is not a PDF.
    """
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    from core.errors import InputError
    from core.store.audit import AuditHead, parse_anchor

    try:
        with open(path, "rb") as handle:
            magic = handle.read(5)
        if magic != b"%PDF-":
            raise InputError(path, "not a PDF file")
        reader = PdfReader(str(path))
        texts = [str(value) for value in (reader.metadata or {}).values()]
        for text in texts:
            head = parse_anchor(text)
            if head is not None:
                return head
        for page in reader.pages[:3]:
            match = _FOOTER_RE.search(page.extract_text() or "")
            if match:
                return AuditHead(match.group(1), int(match.group(2)), match.group(3))
    except OSError as exc:
        raise InputError(path, f"cannot read the report: {exc.strerror or exc}") from None
    except (PdfReadError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(path, f"not a readable PDF ({exc})") from None
    return None
