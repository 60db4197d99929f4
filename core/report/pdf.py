"""The PDF inspection report: its pages framed (header, footer, page numbers) and built.

What the report says is :mod:`core.report.document`; its building blocks are
:mod:`core.report.flowables`; values are written as text by :mod:`core.report.format`.
:func:`build_pdf` returns the bytes, :func:`write_atomic` files them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

# metric names and units: core.describe, the one place (re-exported here for older callers)
from core.describe import metric_label, pretty_unit  # noqa: F401
from core.report.document import ReportDocument
from core.report.flowables import INK, MUTED, RULE, UNKNOWN_STYLE, VERDICT_STYLE, _fonts
from core.report.format import fmt, limit_status, short_hash  # noqa: F401 - fmt, limit_status re-exported

if TYPE_CHECKING:
    from core.report import ReportInputs


def _page_decorator(
    inputs: ReportInputs, width: float, *, invariant: bool = False
) -> Callable[[Any, Any], None]:
    r = inputs.result
    fonts = _fonts()
    cell = str(r.get("cell_id") or "unknown")
    verdict = str(r.get("verdict") or "")
    if inputs.overrides:
        verdict = str(inputs.overrides[-1].get("new_verdict") or verdict)
    fill = VERDICT_STYLE.get(verdict, UNKNOWN_STYLE)[0]
    version = r.get("software_version")
    recipe = r.get("recipe") or "—"
    footer_left = (
        f"cellqc {version} · " if version else "cellqc · "
    ) + f"recipe {recipe} ({short_hash(r.get('recipe_hash'), 10)})"
    if inputs.inspection_id:
        footer_left = f"Inspection #{inputs.inspection_id} · " + footer_left
    if not invariant:
        footer_left += " · printed " + datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    anchor_line = None
    if inputs.audit_head is not None:
        from core.report.anchor import audit_anchor_footer

        anchor_line = audit_anchor_footer(inputs.audit_head)

    def decorate(canvas: Any, doc: Any) -> None:
        from reportlab.lib import colors

        canvas.saveState()
        left, right = doc.leftMargin, doc.leftMargin + width
        top = doc.pagesize[1] - doc.topMargin + 14
        canvas.setStrokeColor(colors.HexColor(RULE))
        canvas.setLineWidth(0.5)
        if canvas.getPageNumber() > 1:
            canvas.setFont(fonts["bold"], 8)
            canvas.setFillColor(colors.HexColor(INK))
            canvas.drawString(left, top, f"Cell {cell}")
            canvas.setFillColor(colors.HexColor(fill))
            canvas.roundRect(right - 52, top - 3, 52, 12, 2, stroke=0, fill=1)
            canvas.setFillColor(colors.HexColor("#1A1A1A" if verdict == "REVIEW" else "#FFFFFF"))
            canvas.drawCentredString(right - 26, top, verdict or "—")
            canvas.line(left, top - 6, right, top - 6)
        bottom = doc.bottomMargin - 20
        canvas.line(left, bottom + 10, right, bottom + 10)
        canvas.setFont(fonts["regular"], 7)
        canvas.setFillColor(colors.HexColor(MUTED))
        canvas.drawString(left, bottom, footer_left)
        if anchor_line is not None:
            canvas.setFont(fonts["regular"], 6)
            canvas.drawString(left, bottom - 9, anchor_line)
        canvas.restoreState()

    return decorate


def _numbered_canvas(font: str, x_right: float, y: float) -> type:
    """A canvas class that writes "Page n of m" once the page count is known."""
    from reportlab.lib import colors
    from reportlab.pdfgen.canvas import Canvas

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802  (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.saveState()
                self.setFont(font, 7)
                self.setFillColor(colors.HexColor(MUTED))
                self.drawRightString(x_right, y, f"Page {self._pageNumber} of {total}")
                self.restoreState()
                super().showPage()
            super().save()

    return NumberedCanvas


def build_pdf(inputs: ReportInputs, *, invariant: bool = False, compress: bool = True) -> bytes:
    """Lay out the report and return the PDF bytes.

    Parameters
    ----------
    inputs : core.report.ReportInputs
        The result and the optional figure data.
    invariant : bool
        Reproducible output (fixed creation date and document id), for tests.
    compress : bool
        Compress page streams; ``False`` keeps them readable (tests).

    Returns
    -------
    bytes
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    from core.report.anchor import audit_anchor_subject

    _fonts()
    r = inputs.result
    verdict = str(r.get("verdict") or "")
    buffer = io.BytesIO()
    margins = {
        "leftMargin": 17 * mm,
        "rightMargin": 17 * mm,
        "topMargin": 18 * mm,
        "bottomMargin": 18 * mm,
    }
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"cellqc inspection report: cell {r.get('cell_id') or 'unknown'}: {verdict}",
        author=str(r.get("operator") or "cellqc"),
        subject=audit_anchor_subject(f"Cell {r.get('cell_id')} verdict {verdict}", inputs.audit_head),
        creator=f"cellqc {r.get('software_version') or ''}".strip(),
        invariant=1 if invariant else 0,
        pageCompression=1 if compress else 0,
        **margins,
    )
    width = A4[0] - margins["leftMargin"] - margins["rightMargin"]
    height = A4[1] - margins["topMargin"] - margins["bottomMargin"]
    content = ReportDocument(inputs, width, height)
    content.summary()
    content.figures()
    content.later_sections()
    decorate = _page_decorator(inputs, width, invariant=invariant)
    canvasmaker = _numbered_canvas(
        _fonts()["regular"], margins["leftMargin"] + width, margins["bottomMargin"] - 20
    )
    doc.build(content.story, onFirstPage=decorate, onLaterPages=decorate, canvasmaker=canvasmaker)
    return buffer.getvalue()


def write_atomic(data: bytes, path: str | os.PathLike[str]) -> str:
    """Write the PDF's bytes atomically (:func:`core.fileio.atomic_write`).

    A crash at any point leaves either the previous file or no file under ``path``,
    never a truncated one; a folder, device or FIFO at ``path`` is refused.

    Returns
    -------
    str
        sha256 hex digest of ``data``.
    """
    from core.fileio import atomic_write

    return atomic_write(path, data)
