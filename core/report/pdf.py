"""The PDF inspection report, laid out with reportlab.

Page 1 is what an operator and a quality engineer need: the cell, a large verdict banner
(colour + word + symbol, readable without colour vision) with its reasons, the provenance
(recipe, its hash, software version, date, operator), the metrics against their limits, the
findings and a sign-off block. The following pages hold the figures. Text that comes from
users or files is escaped before it reaches reportlab's mark-up.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from core.report import ReportInputs

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
#: Most findings drawn as figures; the table lists all of them.
MAX_FINDING_FIGURES = 12

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


# ------------------------------------------------------------------------- formatting


UNIT_SUFFIXES = {
    "um": "µm",
    "mm3": "mm³",
    "mm2": "mm²",
    "um2": "µm²",
    "um3": "µm³",
    "mm": "mm",
    "deg": "°",
    "pct": "%",
    "px": "px",
    "s": "s",
    "kev": "keV",
    "ev": "eV",
}
UNIT_NAMES = {"mm3": "mm³", "mm2": "mm²", "um": "µm", "um3": "µm³", "um2": "µm²", "deg": "°"}


def pretty_unit(unit: object) -> str:
    """``"mm3"`` → ``"mm³"``, ``"um"`` → ``"µm"``; other units unchanged."""
    text = "" if unit is None else str(unit)
    return UNIT_NAMES.get(text.lower(), text)


def metric_label(name: str) -> tuple[str, str]:
    """Human label and unit of a metric key: ``void_total_volume_mm3`` → (Void total volume, mm³)."""
    parts = name.split("_")
    unit = ""
    if len(parts) > 1 and parts[-1].lower() in UNIT_SUFFIXES:
        unit = UNIT_SUFFIXES[parts[-1].lower()]
        parts = parts[:-1]
    if parts and parts[-1] == "cv":
        parts[-1] = "CV"
    label = " ".join(parts)
    return (label[:1].upper() + label[1:]) if label else name, unit


def fmt(value: object) -> str:
    """A number for a table: integers as such, floats with 4 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "—"
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4g}"
    try:
        return fmt(float(value))  # numpy scalars
    except (TypeError, ValueError):
        text = str(value)
        return text if len(text) <= 60 else text[:57] + "…"


def limit_status(value: object, limit: Mapping[str, Any] | None) -> str | None:
    """``"FAIL"``, ``"REVIEW"``, ``"OK"`` against a limit, or None when it cannot be judged.

    A limit is an upper bound (value ≥ limit trips it) unless its fail level is below its
    review level, which marks a lower bound.
    """
    if not limit:
        return None
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if x != x:
        return None
    review, fail = limit.get("review"), limit.get("fail")
    lower = review is not None and fail is not None and float(fail) < float(review)
    for level, name in ((fail, "FAIL"), (review, "REVIEW")):
        if level is None:
            continue
        if (x <= float(level)) if lower else (x >= float(level)):
            return name
    return "OK" if (review is not None or fail is not None) else None


def _short_hash(value: object, n: int = 12) -> str:
    text = str(value or "")
    return text[:n] if text else "—"


def _date(iso: object) -> str:
    if not iso:
        return "—"
    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if when.tzinfo is not None:
        return when.strftime("%Y-%m-%d %H:%M:%S %Z").replace("UTC", "UTC").strip()
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _duration(result: Mapping[str, Any]) -> str:
    try:
        t0 = datetime.fromisoformat(str(result["started_at"]))
        t1 = datetime.fromisoformat(str(result["finished_at"]))
        return f"{(t1 - t0).total_seconds():.1f} s"
    except (KeyError, ValueError, TypeError):
        pass
    timings = result.get("timings_s") or {}
    total = timings.get("total")
    if total is None:
        try:
            total = sum(float(v) for v in timings.values())
        except (TypeError, ValueError):
            total = None
    return f"{float(total):.1f} s" if total else "—"


# -------------------------------------------------------------------------- flowables


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


STATUS_BADGE = {
    "FAIL": ("✗ FAIL", SEVERITY_FILL["fail"], SEVERITY_TEXT["fail"]),
    "REVIEW": ("! REVIEW", SEVERITY_FILL["review"], SEVERITY_TEXT["review"]),
    "OK": ("✓ within", "#E3F4EA", "#1B6B3F"),
}
SEVERITY_BADGE = {
    "fail": ("✗ fail", SEVERITY_FILL["fail"], SEVERITY_TEXT["fail"]),
    "review": ("! review", SEVERITY_FILL["review"], SEVERITY_TEXT["review"]),
    "info": ("i info", SEVERITY_FILL["info"], SEVERITY_TEXT["info"]),
}


def _image(png: bytes, width: float, max_height: float) -> Any:
    """A PNG as wide as ``width``, or narrower when it would be taller than ``max_height``."""
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image

    reader = ImageReader(io.BytesIO(png))
    w, h = reader.getSize()
    scale = min(width / w, max_height / h)
    return Image(io.BytesIO(png), width=w * scale, height=h * scale)


# ------------------------------------------------------------------------------ pages


class _Doc:
    """Collects the flowables of one report."""

    def __init__(self, inputs: ReportInputs, width: float, height: float) -> None:
        self.inputs = inputs
        self.result: Mapping[str, Any] = inputs.result
        self.width = width
        self.height = height
        self.s = _styles()
        self.story: list[Any] = []

    # helpers -------------------------------------------------------------------------
    def p(self, text: str, style: str = "base") -> Any:
        from reportlab.platypus import Paragraph

        return Paragraph(text, self.s[style])

    def add(self, *flowables: Any) -> None:
        self.story.extend(flowables)

    def gap(self, points: float) -> None:
        from reportlab.platypus import Spacer

        self.add(Spacer(1, points))

    def note(self, text: str) -> None:
        self.add(self.p(_t(text), "note"))

    def figure(self, title: str | None, build: Callable[[], bytes], caption: str) -> None:
        """Draw a figure, or a one-line note saying why it is missing."""
        from reportlab.platypus import KeepTogether

        from core.report.figures import NoFigure

        parts: list[Any] = []
        if title:
            parts.append(self.p(_t(title), "h2"))
        try:
            png = build()
        except NoFigure as exc:
            parts.append(self.p(_t(f"Not shown: {exc}."), "note"))
            self.add(KeepTogether(parts))
            return
        except Exception as exc:  # a figure bug must not cost the operator the report
            parts.append(
                self.p(
                    _t(f"Not shown: the figure could not be drawn ({type(exc).__name__}: {exc})."),
                    "note",
                )
            )
            self.add(KeepTogether(parts))
            return
        parts.append(_image(png, self.width, 0.8 * self.height))
        if caption:
            parts.append(self.p(caption, "caption"))
        parts.append(self.gap_flowable(6))
        self.add(KeepTogether(parts))

    def gap_flowable(self, points: float) -> Any:
        from reportlab.platypus import Spacer

        return Spacer(1, points)

    # page 1 --------------------------------------------------------------------------
    def summary(self) -> None:
        from core.report.qr import trace_flowables

        r = self.result
        verdict = str(r.get("verdict") or "")
        overrides = list(self.inputs.overrides or [])
        final = str(overrides[-1].get("new_verdict")) if overrides else verdict
        self.add(self.p("X-RAY CT INSPECTION REPORT", "kicker"))
        self.add(self.p(f"Cell {_t(r.get('cell_id') or 'unknown')}", "title"))
        self.gap(6)
        subtitle = f"Inspection #{self.inputs.inspection_id}" if self.inputs.inspection_id else ""
        self.add(_verdict_banner(final, subtitle, self.width))
        self.gap(6)
        if overrides:
            for o in overrides:
                who = o.get("user_full_name") or o.get("user")
                self.add(
                    self.p(
                        f"<b>Verdict overridden</b> from {_t(o.get('old_verdict'))} to "
                        f"<b>{_t(o.get('new_verdict'))}</b> by {_t(who)} on "
                        f"{_t(_date(o.get('created_at')))}: “{_t(o.get('reason'))}”. "
                        f"The automated verdict was {_t(verdict or '—')}.",
                        "reason",
                    )
                )
            self.gap(6)
        reasons = [str(x) for x in (r.get("reasons") or [])]
        if reasons:
            self.add(self.p("<b>Why this verdict</b>", "reason"))
            for reason in reasons[:12]:
                self.add(self.p(f"•&nbsp;&nbsp;{_t(reason)}", "reason"))
            if len(reasons) > 12:
                self.note(f"… and {len(reasons) - 12} more reasons (see the log).")
        elif verdict == "PASS":
            self.add(self.p("No measurement reached a review or fail limit.", "reason"))
        else:
            self.note("The result gives no reasons for its verdict.")
        self.gap(8)
        self.details()
        self.add(*trace_flowables(self.inputs, self.width))  # QR: core/report/qr.py
        self.gap(10)
        self.metrics()
        self.gap(10)
        self.findings_table()
        self.gap(12)
        self.signoff()
        self.gap(14)

    def details(self) -> None:
        r = self.result
        spacing = r.get("spacing_um")
        if spacing and len(spacing) == 3:
            voxel = " × ".join(fmt(float(v)) for v in spacing) + " µm (z × y × x)"
        elif r.get("voxel_size_um") is not None:
            voxel = f"{fmt(r.get('voxel_size_um'))} µm"
        else:
            voxel = "—"
        shape = r.get("shape_zyx")
        shape_text = " × ".join(str(int(v)) for v in shape) + " voxels" if shape else "—"
        geometry = r.get("geometry") or {}
        windings = geometry.get("windings")
        can = geometry.get("can_outer_radius_um")
        cell_geom = []
        if windings is not None:
            cell_geom.append(f"{windings} windings")
        if can is not None:
            cell_geom.append(f"can Ø {2 * float(can) / 1000:.2f} mm")
        pairs = [
            ("Date", _date(r.get("finished_at") or r.get("started_at"))),
            ("Operator", r.get("operator") or "—"),
            ("Recipe", r.get("recipe") or "—"),
            ("Recipe hash", _short_hash(r.get("recipe_hash"))),
            (
                "Software",
                f"cellqc {r.get('software_version')}" if r.get("software_version") else "—",
            ),
            ("Processing time", _duration(r)),
            ("Voxel size", voxel),
            ("Volume", shape_text),
            ("Cell", ", ".join(cell_geom) or "—"),
            (
                "Inspection",
                f"#{self.inputs.inspection_id}" if self.inputs.inspection_id else "not logged",
            ),
        ]
        rows: list[list[Any]] = []
        for i in range(0, len(pairs), 2):
            row: list[Any] = []
            for key, value in pairs[i : i + 2]:
                mono = key == "Recipe hash"
                text = _t(value)
                if mono and value != "—":
                    text = f'<font name="{_fonts()["mono"]}">{text}</font>'
                row += [self.p(_t(key), "head"), self.p(text, "cell")]
            rows.append(row)
        source = r.get("source")
        if source:
            rows.append(
                [
                    self.p("Source", "head"),
                    self.p(f'<font name="{_fonts()["mono"]}" size="7">{_t(source)}</font>', "cell"),
                    "",
                    "",
                ]
            )
        from reportlab.lib import colors
        from reportlab.platypus import Table, TableStyle

        w = self.width
        table = Table(rows, colWidths=[0.16 * w, 0.34 * w, 0.16 * w, 0.34 * w], hAlign="LEFT")
        style = [
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor(RULE)),
            ("LINEABOVE", (0, 0), (-1, 0), 0.8, colors.HexColor("#90A4AE")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("TOPPADDING", (0, 0), (-1, -1), 2.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ]
        if source:
            style.append(("SPAN", (1, len(rows) - 1), (3, len(rows) - 1)))
        table.setStyle(TableStyle(style))
        self.add(table)

    def metrics(self) -> None:
        metrics: Mapping[str, Any] = self.result.get("metrics") or {}
        limits: Mapping[str, Any] = self.result.get("limits") or {}
        self.add(self.p("Measurements against their limits", "h1"))
        if not metrics:
            self.note("The result holds no measurements.")
            return
        names = list(metrics)
        names += [n for n in limits if n not in metrics]
        rows: list[list[Any]] = [
            [
                self.p("Measurement", "head"),
                self.p("Value", "headr"),
                self.p("Unit", "head"),
                self.p("Review at", "headr"),
                self.p("Fail at", "headr"),
                self.p("Status", "head"),
            ]
        ]
        for name in names:
            label, unit = metric_label(name)
            limit = limits.get(name) if isinstance(limits.get(name), Mapping) else None
            if limit and limit.get("unit"):
                unit = pretty_unit(limit.get("unit"))
            value = metrics.get(name)
            status = limit_status(value, limit)
            lower = bool(
                limit
                and limit.get("review") is not None
                and limit.get("fail") is not None
                and float(limit["fail"]) < float(limit["review"])
            )
            sign = "≤ " if lower else "≥ "

            def lim(key: str, limit: Mapping[str, Any] | None = limit, sign: str = sign) -> str:
                if not limit or limit.get(key) is None:
                    return "—"
                return sign + fmt(limit.get(key))

            badge: Any = self.p("—", "muted")
            if status in STATUS_BADGE:
                badge = _badge(*STATUS_BADGE[status], self.s)
            elif name not in metrics:
                badge = self.p("not measured", "muted")
            rows.append(
                [
                    self.p(_t(label), "cell"),
                    self.p(_t(fmt(value)), "cellr"),
                    self.p(_t(unit), "cell"),
                    self.p(_t(lim("review")), "cellr"),
                    self.p(_t(lim("fail")), "cellr"),
                    badge,
                ]
            )
        w = self.width
        self.add(_table(rows, [0.40 * w, 0.13 * w, 0.08 * w, 0.13 * w, 0.13 * w, 0.13 * w]))

    def _sorted_findings(self) -> list[Mapping[str, Any]]:
        findings = [f for f in (self.result.get("findings") or []) if isinstance(f, Mapping)]
        return sorted(
            findings,
            key=lambda f: SEVERITY_RANK.get(str(f.get("severity", "info")).lower(), 3),
        )

    def _where(self, f: Mapping[str, Any]) -> str:
        from core.report.figures import finding_slice_index

        parts = []
        z = finding_slice_index(f)
        spacing = self.result.get("spacing_um") or [self.result.get("voxel_size_um")] * 3
        if z is not None:
            text = f"slice {z}"
            try:
                text += f" ({z * float(spacing[0]) / 1000:.2f} mm)"
            except (TypeError, ValueError, IndexError):
                pass
            parts.append(text)
        if f.get("winding") is not None:
            parts.append(f"winding {f.get('winding')}")
        if f.get("angle_deg") is not None:
            parts.append(f"{float(f['angle_deg']):.0f}°")
        return ", ".join(parts) or "—"

    def findings_table(self) -> None:
        findings = self._sorted_findings()
        self.add(self.p(f"Findings ({len(findings)})", "h1"))
        if not findings:
            self.note("The detectors found nothing to report.")
            return
        rows: list[list[Any]] = [
            [
                self.p("ID", "head"),
                self.p("Severity", "head"),
                self.p("Finding", "head"),
                self.p("Value", "headr"),
                self.p("Where", "head"),
                self.p("Description", "head"),
            ]
        ]
        for f in findings:
            severity = str(f.get("severity") or "info").lower()
            badge = SEVERITY_BADGE.get(severity, (severity, "#EEEEEE", INK))
            value = fmt(f.get("value"))
            if f.get("uncertainty") is not None:  # expanded, k = 2 (core.uncertainty)
                value += f" ± {fmt(f.get('uncertainty'))}"
            unit = pretty_unit(f.get("unit"))
            rows.append(
                [
                    self.p(f"<b>{_t(f.get('id'))}</b>", "cell"),
                    _badge(*badge, self.s),
                    self.p(_t(metric_label(str(f.get("detector") or "—"))[0]), "cell"),
                    self.p(_t(f"{value} {unit}".strip()), "cellr"),
                    self.p(_t(self._where(f)), "cell"),
                    self.p(_t(f.get("message")), "small"),
                ]
            )
        w = self.width
        self.add(_table(rows, [0.06 * w, 0.12 * w, 0.17 * w, 0.13 * w, 0.20 * w, 0.32 * w]))

    def signoff(self) -> None:
        from reportlab.lib import colors
        from reportlab.platypus import KeepTogether, Table, TableStyle

        line = "_" * 26
        rows = [
            [self.p("<b>Quality sign-off</b>", "base"), "", ""],
            [
                self.p(f"Reviewed by<br/><br/>{line}", "small"),
                self.p(f"Date<br/><br/>{line}", "small"),
                self.p(f"Signature<br/><br/>{line}", "small"),
            ],
            [
                self.p(
                    "Disposition:&nbsp;&nbsp; ☐ release &nbsp;&nbsp; ☐ re-test &nbsp;&nbsp; "
                    "☐ scrap &nbsp;&nbsp; ☐ send for ROI / synchrotron follow-up",
                    "small",
                ),
                "",
                "",
            ],
        ]
        table = Table(rows, colWidths=[self.width / 3] * 3, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#90A4AE")),
                    ("SPAN", (0, 0), (-1, 0)),
                    ("SPAN", (0, 2), (-1, 2)),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEAD_FILL)),
                    ("TOPPADDING", (0, 0), (-1, -1), 4),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
                    ("LEFTPADDING", (0, 0), (-1, -1), 6),
                ]
            )
        )
        self.add(KeepTogether([table]))

    # figures -------------------------------------------------------------------------
    def figures(self) -> None:
        from reportlab.platypus import CondPageBreak, PageBreak

        from core.report import figures as fig

        inputs = self.inputs
        findings = self._sorted_findings()
        if findings and inputs.volume is not None:
            self.add(PageBreak())
            self.add(self.p("Findings on the slices", "h1"))
            shown = findings[:MAX_FINDING_FIGURES]
            for f in shown:
                plus_minus = f" ± {fmt(f.get('uncertainty'))}" if f.get("uncertainty") is not None else ""
                value = f"{fmt(f.get('value'))}{plus_minus} {pretty_unit(f.get('unit'))}".strip()
                title = (
                    f"{f.get('id')} · {metric_label(str(f.get('detector') or ''))[0]} · "
                    f"{str(f.get('severity') or '').lower()} · {value}"
                )
                caption = (
                    f"{_t(f.get('message') or '')} Left: the axial slice through the finding, "
                    "its bounding box outlined. Right: the whole slice, the finding circled."
                )
                self.figure(title, lambda f=f: fig.finding_figure(inputs.volume, f), caption)
            if len(findings) > len(shown):
                self.note(
                    f"{len(findings) - len(shown)} more finding(s) omitted here "
                    f"(the first {len(shown)} by severity are shown; all are in the table)."
                )
        elif findings:
            self.add(CondPageBreak(0.3 * self.height))
            self.add(self.p("Findings on the slices", "h1"))
            self.note(
                f"Slices of the {len(findings)} finding(s) not shown: "
                + (inputs.volume_note or "the volume was not available to the report.")
            )

        self.add(CondPageBreak((0.45 if inputs.volume is not None else 0.1) * self.height))
        self.add(self.p("The cell in section", "h1"))
        if inputs.volume is None:
            self.note(
                "Vertical sections not shown: "
                + (inputs.volume_note or "the volume was not available to the report.")
            )
        else:
            self.figure(
                None,
                lambda: fig.section_figure(inputs.volume, inputs.axis_center_yx_px, findings),
                "Vertical sections through the cell axis (dotted line). Boxes: the findings, "
                "projected onto each plane.",
            )

        self.add(self.p("Cathode sheet thickness", "h1"))
        values = inputs.thickness_values_um
        if values is None and inputs.thickness_map_um is not None:
            values = inputs.thickness_map_um
        if inputs.thickness_map_um is None and values is None:
            self.note(
                "Not shown: "
                + (inputs.thickness_note or "the inspection gave no thickness map or values.")
            )
            return
        self.figure(
            None,
            lambda: fig.thickness_map_figure(
                inputs.thickness_map_um, inputs.thickness_map_extent_mm
            ),
            "The cathode sheet (coating + Al foil + coating) unrolled: arc length along the "
            "electrode from the inner winding outwards, against height.",
        )
        self.figure(
            None,
            lambda: fig.thickness_histogram_figure(values),
            "Dashed and dash-dotted lines: ±10 % and ±20 % of the cell's median thickness.",
        )

    def generic_section(self, title: str, items: Sequence[Mapping[str, Any]], empty: str) -> None:
        from reportlab.platypus import KeepTogether

        self.add(self.p(_t(title), "h1"))
        if not items:
            self.note(empty)
            return
        for n, item in enumerate(items, start=1):
            parts: list[Any] = [self.p(_t(item.get("title") or f"{title} {n}"), "h2")]
            rows = [[self.p("Field", "head"), self.p("Value", "head")]]
            for key, value in item.items():
                if key in ("title", "figure_png") or isinstance(value, (bytes, bytearray)):
                    continue
                if isinstance(value, (dict, list, tuple)):
                    from core.store.audit import canonical_json

                    value = canonical_json(value)
                    value = value if len(value) <= 300 else value[:297] + "…"
                rows.append(
                    [
                        self.p(_t(metric_label(str(key))[0]), "cell"),
                        self.p(_t(fmt(value) if isinstance(value, float) else value), "small"),
                    ]
                )
            parts.append(_table(rows, [0.3 * self.width, 0.7 * self.width]))
            self.add(KeepTogether(parts))
            if item.get("figure_png"):
                self.figure(
                    None, lambda item=item: bytes(item["figure_png"]), _t(item.get("caption") or "")
                )

    def later_sections(self) -> None:
        from reportlab.platypus import CondPageBreak

        inputs = self.inputs
        self.gap(6)
        if inputs.roi_plans or inputs.followups:
            self.add(CondPageBreak(0.2 * self.height))
        if not inputs.roi_plans and not inputs.followups:
            self.add(self.p("ROI scans and synchrotron follow-up", "h1"))
            self.note("None yet for this cell: no ROI scan planned, no follow-up result imported.")
        else:
            self.generic_section(
                "ROI local-tomography plans",
                inputs.roi_plans,
                "No ROI scan is planned for this cell.",
            )
            self.gap(6)
            self.generic_section(
                "Synchrotron follow-up",
                inputs.followups,
                "No follow-up result has been imported for this cell.",
            )
        if inputs.notes:
            self.gap(6)
            self.add(self.p("Notes", "h2"))
            for text in inputs.notes:
                self.note(text)


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
    ) + f"recipe {recipe} ({_short_hash(r.get('recipe_hash'), 10)})"
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
    content = _Doc(inputs, width, height)
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
