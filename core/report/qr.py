"""The report's trace: a QR code with the cell, the verdict, the inspection and a result hash.

A scanner at the rework table reads the QR on a printed report and gets one line of text,
the *trace*::

    cellqc:report?v=1&cell=C123&verdict=FAIL&inspection=7&result=<64 hex>

``result`` is the SHA-256 of the filed inspection result (its canonical JSON, the
``result_sha256`` the log keeps with the inspection and in the ``inspection.complete`` audit
row). Why not the PDF's own hash: a file cannot contain the hash of its own bytes. The PDF's
SHA-256 is filed in the log's ``reports`` table when the report is written, so a saved PDF
is checked by its bytes, and a printed one by what its QR states (see
:mod:`core.report.verify`). ``verdict`` is the verdict the report shows (the last override,
if any). ``inspection`` is absent on a report written without the log.

The same text is the PDF's ``Keywords`` metadata, and the block beside the QR repeats it for
a person (inspection, cell, verdict, the full result hash), so the trace can be read back
from a saved PDF without a camera.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from core.errors import InputError

if TYPE_CHECKING:
    from core.report import ReportInputs

#: How every trace starts; anything else is not a cellqc report trace.
TRACE_PREFIX = "cellqc:report?"
TRACE_VERSION = "1"
#: Printed size of the QR including its quiet zone: 0.5 mm modules for a version-7 code
#: (45 modules + 2 × 4 quiet), comfortably above what a handheld scanner needs at 300 dpi.
QR_SIZE_MM = 30.0
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ReportTrace:
    """What a report's QR states.

    Attributes
    ----------
    cell_id : str
    verdict : str
        The verdict the report shows (after overrides).
    inspection_id : int or None
        The inspection in the log; None for a report written without the log.
    result_sha256 : str
        SHA-256 (hex) of the filed result's canonical JSON.
    """

    cell_id: str
    verdict: str
    inspection_id: int | None
    result_sha256: str

    def text(self) -> str:
        """The trace as one line (what the QR encodes)."""
        fields = {"v": TRACE_VERSION, "cell": self.cell_id, "verdict": self.verdict}
        if self.inspection_id is not None:
            fields["inspection"] = str(int(self.inspection_id))
        fields["result"] = self.result_sha256
        return TRACE_PREFIX + urlencode(fields, quote_via=quote, safe="")


def parse_trace(text: str) -> ReportTrace:
    """Read a trace line back (from a QR scanner, the PDF metadata or a test).

    Raises
    ------
    core.errors.InputError
        Not a cellqc report trace, an unknown version, or a field missing or malformed.
    """
    text = (text or "").strip()
    shown = text if len(text) <= 80 else text[:77] + "..."
    if not text.startswith(TRACE_PREFIX):
        raise InputError(repr(shown), f"not a cellqc report trace (it must start with {TRACE_PREFIX!r})")
    fields = {k: v[-1] for k, v in parse_qs(text[len(TRACE_PREFIX):], keep_blank_values=True).items()}
    if fields.get("v") != TRACE_VERSION:
        raise InputError(repr(shown), f"trace version {fields.get('v')!r} is not {TRACE_VERSION}")
    result = fields.get("result", "")
    if not _SHA256.fullmatch(result):
        raise InputError(repr(shown), "the trace's result hash is not 64 hex digits")
    inspection = fields.get("inspection")
    if inspection is not None and not inspection.isdigit():
        raise InputError(repr(shown), f"the trace's inspection {inspection!r} is not a number")
    if not fields.get("cell") or not fields.get("verdict"):
        raise InputError(repr(shown), "the trace names no cell or no verdict")
    return ReportTrace(fields["cell"], fields["verdict"], None if inspection is None else int(inspection), result)


def result_sha256(result: dict[str, Any]) -> str:
    """SHA-256 of a result's canonical JSON: the log's ``inspections.result_sha256``."""
    from core.store.audit import canonical_json

    return hashlib.sha256(canonical_json(result).encode("utf-8")).hexdigest()


def trace_for(inputs: ReportInputs) -> ReportTrace:
    """The trace of the report drawn from ``inputs`` (the verdict shown: the last override)."""
    result = inputs.result
    verdict = str(result.get("verdict") or "")
    if inputs.overrides:
        verdict = str(inputs.overrides[-1].get("new_verdict") or verdict)
    return ReportTrace(
        cell_id=str(result.get("cell_id") or "unknown"),
        verdict=verdict or "NONE",
        inspection_id=None if inputs.inspection_id is None else int(inputs.inspection_id),
        result_sha256=result_sha256(result),
    )


def qr_drawing(text: str, size_pt: float) -> Any:
    """A reportlab Drawing of the QR code of ``text`` (with its quiet zone), ``size_pt`` square."""
    from reportlab.graphics.barcode.qr import QrCodeWidget
    from reportlab.graphics.shapes import Drawing

    widget = QrCodeWidget(text, barLevel="M", barBorder=4, barWidth=size_pt, barHeight=size_pt)
    drawing = Drawing(size_pt, size_pt)
    drawing.add(widget)
    return drawing


def _fit(text: str, font: str, size: float, room: float) -> str:
    """``text``, shortened with an ellipsis until it fits ``room`` points (a long cell ID)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if stringWidth(text, font, size) <= room:
        return text
    while text and stringWidth(text + "…", font, size) > room:
        text = text[:-1]
    return text + "…"


def trace_flowables(inputs: ReportInputs, width: float) -> list[Any]:
    """The report's trace block for page 1: a QR on the left, the same facts in words beside it.

    Drawing it also sets the PDF's ``Keywords`` metadata to the trace text.
    """
    from reportlab.graphics import renderPDF
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Flowable, Spacer

    from core.report.flowables import MUTED, _fonts

    trace = trace_for(inputs)
    text = trace.text()
    size = QR_SIZE_MM * mm
    fonts = _fonts()

    class TraceBlock(Flowable):
        def wrap(self, aw: float, ah: float) -> tuple[float, float]:
            return width, size

        def draw(self) -> None:
            c = self.canv
            c.setKeywords(text)
            renderPDF.draw(qr_drawing(text, size), c, 0, 0)
            x = size + 4 * mm
            y = size - 4 * mm
            c.saveState()
            c.setFont(fonts["bold"], 9)
            c.drawString(x, y, "Traceability")
            c.setFont(fonts["regular"], 8)
            where = (f"Inspection #{trace.inspection_id} in the cellqc log"
                     if trace.inspection_id is not None else "Not filed in a cellqc log")
            lines = [
                f"{where} · cell {trace.cell_id} · verdict {trace.verdict}",
                "Scan the code to open this record; check a saved copy with",
                "cellqc report --verify FILE.pdf (a scanned code: --verify-code TEXT).",
            ]
            for i, line in enumerate(lines):
                c.drawString(x, y - 12 - 10.5 * i, _fit(line, fonts["regular"], 8, width - x))
            c.setFillColor(colors.HexColor(MUTED))
            c.setFont(fonts["regular"], 7)
            y_hash = y - 12 - 10.5 * len(lines) - 3
            c.drawString(x, y_hash, "Result SHA-256 (the filed result JSON):")
            c.setFont("Courier", 7)
            c.drawString(x, y_hash - 9, trace.result_sha256)
            c.restoreState()

    return [Spacer(1, 4), TraceBlock()]
