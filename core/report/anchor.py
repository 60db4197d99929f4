"""The audit chain head a PDF report carries, and reading it back.

A report printed from a log carries the log's audit chain head at the time it was written
(:class:`core.store.AuditHead`): printed in every page's footer (so paper can be checked) and
written into the PDF's ``/Keywords`` (so ``cellqc audit verify --report FILE.pdf`` can read it
without OCR). A log rewritten or truncated after the report was made no longer holds that
row with that hash.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.store.audit import AuditHead

#: Bytes of a PDF searched for the anchor (the document information dictionary is near the end,
#: but a small report is read whole).
MAX_SCAN_BYTES = 64 * 2**20


def audit_anchor_footer(head: AuditHead) -> str:
    """The footer line printed on every page: log id, row and full keyed hash."""
    return f"Audit chain at printing: log {head.log_id[:8]} · row {head.row} · {head.hash}"


def audit_anchor_keywords(head: AuditHead) -> str:
    """What goes into the PDF's ``/Keywords``: :meth:`AuditHead.anchor_text` (ASCII)."""
    return head.anchor_text()


def read_report_anchor(path: str | os.PathLike[str]) -> AuditHead | None:
    """The audit head a cellqc PDF carries, or None when it carries none.

    Raises
    ------
    core.errors.InputError
        The file cannot be read or is not a PDF.
    """
    from core.errors import InputError
    from core.store.audit import parse_anchor

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SCAN_BYTES)
    except OSError as exc:
        raise InputError(path, f"cannot read the report: {exc.strerror or exc}") from None
    if not data.startswith(b"%PDF-"):
        raise InputError(path, "not a PDF file")
    return parse_anchor(data)
