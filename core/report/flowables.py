"""The report's building blocks (reportlab): fonts, colours, styles, the verdict banner,
tables, badges and images. :mod:`core.report.document` writes the report's sections with them
and :mod:`core.report.pdf` frames the pages. Text that comes from users or files is escaped
(:func:`_t`) before it reaches reportlab's mark-up; values are written as text by
:mod:`core.report.format`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

# Colours of the verdict banner: fill, text, symbol.
VERDICT_STYLE = {
    "PASS": ("#1B7F4B", "#FFFFFF", "check", "Cell accepted"),
    "FAIL": ("#C62828", "#FFFFFF", "cross", "Cell rejected: do not ship"),
    "REVIEW": ("#F2A900", "#1A1A1A", "bang", "Hold the cell: an engineer must review it"),
}
UNKNOWN_STYLE = ("#616161", "#FFFFFF", "bang", "No verdict")
SEVERITY_FILL = {"fail": "#FBE3E1", "review": "#FFF3D0", "info": "#E3F1FB"}
SEVERITY_TEXT = {"fail": "#B71C1C", "review": "#8A5A00", "info": "#1F5E8C"}
SEVERITY_RANK = {"fail": 0, "review": 1, "info": 2}
INK = "#1A1A1A"
MUTED = "#5F6368"
RULE = "#C8CCD0"
HEAD_FILL = "#ECEFF1"

_FONTS: dict[str, str] | None = None


def _fonts() -> dict[str, str]:
    """Register DejaVu (full Unicode: µ, ³, ≥, ✓) from matplotlib's data; Helvetica else."""
    global _FONTS
    if _FONTS is not None:
        return _FONTS
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    fonts = {"regular": "Helvetica", "bold": "Helvetica-Bold", "italic": "Helvetica-Oblique"}
    fonts["mono"] = "Courier"
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        files = {
            "CellQC-Sans": "DejaVuSans.ttf",
            "CellQC-Sans-Bold": "DejaVuSans-Bold.ttf",
            "CellQC-Sans-Oblique": "DejaVuSans-Oblique.ttf",
            "CellQC-Sans-BoldOblique": "DejaVuSans-BoldOblique.ttf",
            "CellQC-Mono": "DejaVuSansMono.ttf",
        }
        for name, file in files.items():
            if name not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(name, str(folder / file)))
        addMapping("CellQC-Sans", 0, 0, "CellQC-Sans")
        addMapping("CellQC-Sans", 1, 0, "CellQC-Sans-Bold")
        addMapping("CellQC-Sans", 0, 1, "CellQC-Sans-Oblique")
        addMapping("CellQC-Sans", 1, 1, "CellQC-Sans-BoldOblique")
        fonts = {
            "regular": "CellQC-Sans",
            "bold": "CellQC-Sans-Bold",
            "italic": "CellQC-Sans-Oblique",
            "mono": "CellQC-Mono",
        }
    except Exception:  # no TTF available: the core fonts still give a readable report
        pass
    _FONTS = fonts
    return fonts


def _unicode_ok() -> bool:
    return _fonts()["regular"] != "Helvetica"


def _t(value: object) -> str:
    """Text from results, users or files, escaped for reportlab's paragraph mark-up."""
    text = "" if value is None else str(value)
    if not _unicode_ok():
        for a, b in {"≥": ">=", "≤": "<=", "✓": "OK", "✗": "X", "–": "-", "—": "-"}.items():
            text = text.replace(a, b)
    return escape(text)


def _styles() -> dict[str, Any]:
    from reportlab.lib.enums import TA_LEFT, TA_RIGHT
    from reportlab.lib.styles import ParagraphStyle

    f = _fonts()
    base = ParagraphStyle("base", fontName=f["regular"], fontSize=9, leading=12, textColor=INK)
    return {
        "base": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.8, leading=10),
        "muted": ParagraphStyle("muted", parent=base, fontSize=7.8, leading=10, textColor=MUTED),
        "note": ParagraphStyle(
            "note", parent=base, fontName=f["italic"], fontSize=8.2, leading=11, textColor=MUTED
        ),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10),
        "cellr": ParagraphStyle("cellr", parent=base, fontSize=8, leading=10, alignment=TA_RIGHT),
        "cellb": ParagraphStyle("cellb", parent=base, fontName=f["bold"], fontSize=8, leading=10),
        "head": ParagraphStyle(
            "head", parent=base, fontName=f["bold"], fontSize=7.6, leading=9.5, textColor=MUTED
        ),
        "headr": ParagraphStyle(
            "headr",
            parent=base,
            fontName=f["bold"],
            fontSize=7.6,
            leading=9.5,
            textColor=MUTED,
            alignment=TA_RIGHT,
        ),
        "kicker": ParagraphStyle(
            "kicker", parent=base, fontName=f["bold"], fontSize=8.5, leading=11, textColor=MUTED
        ),
        "title": ParagraphStyle(
            "title", parent=base, fontName=f["bold"], fontSize=21, leading=25, alignment=TA_LEFT
        ),
        "h1": ParagraphStyle(
            "h1",
            parent=base,
            fontName=f["bold"],
            fontSize=13,
            leading=16,
            spaceBefore=4,
            spaceAfter=5,
            keepWithNext=1,
        ),
        "h2": ParagraphStyle(
            "h2",
            parent=base,
            fontName=f["bold"],
            fontSize=10.5,
            leading=13,
            spaceBefore=8,
            spaceAfter=3,
            keepWithNext=1,
        ),
        "caption": ParagraphStyle(
            "caption", parent=base, fontSize=8, leading=10.5, textColor=MUTED
        ),
        "reason": ParagraphStyle("reason", parent=base, fontSize=9.5, leading=12.5),
    }


def _verdict_banner(verdict: str, subtitle: str, width: float) -> Any:
    """A full-width coloured box with a drawn symbol and the verdict in large letters."""
    from reportlab.lib import colors
    from reportlab.platypus import Flowable

    fill, ink, symbol, tagline = VERDICT_STYLE.get(verdict, UNKNOWN_STYLE)
    fonts = _fonts()
    word = verdict if verdict in VERDICT_STYLE else (verdict or "NO VERDICT")

    class Banner(Flowable):
        def __init__(self) -> None:
            super().__init__()
            self.width, self.height = width, 74.0

        def wrap(self, aw: float, ah: float) -> tuple[float, float]:
            return self.width, self.height

        def draw(self) -> None:
            c = self.canv
            c.saveState()
            c.setFillColor(colors.HexColor(fill))
            c.roundRect(0, 0, self.width, self.height, 6, stroke=0, fill=1)
            # The symbol: a white disc holding a check, a cross or an exclamation mark.
            r, cx, cy = 25.0, 16.0 + 25.0, self.height / 2
            c.setFillColor(colors.white)
            c.circle(cx, cy, r, stroke=0, fill=1)
            c.setStrokeColor(colors.HexColor(fill if verdict != "REVIEW" else "#1A1A1A"))
            c.setFillColor(colors.HexColor(fill if verdict != "REVIEW" else "#1A1A1A"))
            c.setLineWidth(6.5)
            c.setLineCap(1)
            c.setLineJoin(1)
            if symbol == "check":
                p = c.beginPath()
                p.moveTo(cx - 12, cy + 1)
                p.lineTo(cx - 3.5, cy - 9)
                p.lineTo(cx + 13, cy + 10)
                c.drawPath(p, stroke=1, fill=0)
            elif symbol == "cross":
                c.line(cx - 10, cy - 10, cx + 10, cy + 10)
                c.line(cx - 10, cy + 10, cx + 10, cy - 10)
            else:
                c.line(cx, cy + 13, cx, cy - 3)
                c.circle(cx, cy - 12.5, 3.6, stroke=0, fill=1)
            c.setFillColor(colors.HexColor(ink))
            c.setFont(fonts["bold"], 36)
            c.drawString(cx + r + 16, cy - 3, word)
            c.setFont(fonts["regular"], 11)
            c.drawString(cx + r + 17, cy - 21, tagline)
            if subtitle:
                c.setFont(fonts["bold"], 9.5)
                c.drawRightString(self.width - 14, self.height - 18, subtitle)
            c.restoreState()

    return Banner()


def _table(
    rows: list[list[Any]], widths: list[float], *, zebra: bool = True, extra: Iterable = ()
) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEAD_FILL)),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.HexColor("#90A4AE")),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor(RULE)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
    ]
    if zebra:
        for i in range(2, len(rows), 2):
            style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#F8F9FA")))
    style.extend(extra)
    table.setStyle(TableStyle(style))
    return table


def _badge(text: str, fill: str, ink: str, styles: Mapping[str, Any]) -> Any:
    """A small coloured label inside a table cell."""
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    p = Paragraph(f'<font color="{ink}"><b>{_t(text)}</b></font>', styles["cell"])
    t = Table([[p]], hAlign="LEFT")
    t.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(fill)),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ("LEFTPADDING", (0, 0), (-1, -1), 4),
                ("RIGHTPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    return t


#: A check's result as a badge: text, fill, ink.
STATUS_BADGE = {
    "FAIL": ("✗ FAIL", SEVERITY_FILL["fail"], SEVERITY_TEXT["fail"]),
    "REVIEW": ("! REVIEW", SEVERITY_FILL["review"], SEVERITY_TEXT["review"]),
    "OK": ("✓ within", "#E3F4EA", "#1B6B3F"),
}
#: A finding's or reason's severity as a badge: text, fill, ink.
SEVERITY_BADGE = {
    "fail": ("✗ FAIL", SEVERITY_FILL["fail"], SEVERITY_TEXT["fail"]),
    "review": ("! REVIEW", SEVERITY_FILL["review"], SEVERITY_TEXT["review"]),
    "info": ("i info", SEVERITY_FILL["info"], SEVERITY_TEXT["info"]),
    "pass": ("✓ PASS", "#E3F4EA", "#1B6B3F"),
}


def _image(png: bytes, width: float, max_height: float) -> Any:
    """A PNG as wide as ``width``, or narrower when it would be taller than ``max_height``."""
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image

    reader = ImageReader(io.BytesIO(png))
    w, h = reader.getSize()
    scale = min(width / w, max_height / h)
    return Image(io.BytesIO(png), width=w * scale, height=h * scale)


