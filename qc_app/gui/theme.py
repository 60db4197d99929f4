"""The look of the workstation: high-contrast dark theme, large type, verdict styles, icons.

Verdicts are never told by colour alone: each has its own icon shape (PASS circle with a
check, FAIL octagon with a cross, REVIEW triangle with "!"), its word, and a colour from a
colour-blind-safe set (bluish green, vermillion, amber) with text contrast ≥ 5:1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from PySide6 import QtGui, QtWidgets

from resources import RESOURCES_DIR

ICONS_DIR = RESOURCES_DIR / "icons"
STYLE_PATH = RESOURCES_DIR / "style" / "cellqc.qss"

#: Base font size in points; the style sheet sizes most widgets in pixels on top of it.
BASE_POINT_SIZE = 13


@dataclass(frozen=True)
class VerdictStyle:
    word: str
    background: str
    foreground: str
    icon: str
    hint: str


VERDICT_STYLES: dict[str, VerdictStyle] = {
    "PASS": VerdictStyle("PASS", "#00785A", "#FFFFFF", "pass.svg", "The cell passed every check."),
    "FAIL": VerdictStyle("FAIL", "#B34700", "#FFFFFF", "fail.svg", "Reject the cell."),
    "REVIEW": VerdictStyle("REVIEW", "#F5C000", "#000000", "review.svg",
                           "An engineer must look at this cell."),
    "ERROR": VerdictStyle("ERROR", "#4A4A4A", "#FFFFFF", "error.svg",
                          "The inspection could not be done."),
    "CANCELLED": VerdictStyle("CANCELLED", "#333333", "#FFFFFF", "cancelled.svg",
                              "The inspection was cancelled; nothing was filed as complete."),
    "RUNNING": VerdictStyle("INSPECTING", "#0B3D6B", "#FFFFFF", "running.svg",
                            "Please wait; Esc cancels."),
    "LOADED": VerdictStyle("READY", "#1E1E1E", "#FFFFFF", "ready.svg",
                           "Press F5 (or Enter in the cell ID field) to inspect."),
    "IDLE": VerdictStyle("SCAN", "#1E1E1E", "#FFFFFF", "ready.svg",
                         "Scan the cell's barcode, then open its volume (Ctrl+O) or drop it here."),
}

#: Finding severities: colour (overlays, list) and icon.
SEVERITY_COLOURS = {"fail": "#FF6A1A", "review": "#F5C000", "info": "#56B4E9"}
SEVERITY_ICONS = {"fail": "fail.svg", "review": "review.svg", "info": "info.svg"}
#: Overlay colours of the viewer (colour-blind-safe Okabe–Ito hues).
LAYER_CU = "#E69F00"
LAYER_SHEET = "#56B4E9"
SELECTED = "#FFFFFF"
AXIS_LINE = "#CC79A7"


def verdict_style(verdict: str | None) -> VerdictStyle:
    return VERDICT_STYLES.get((verdict or "IDLE").upper(), VERDICT_STYLES["ERROR"])


@cache
def icon(name: str) -> QtGui.QIcon:
    """An icon from ``resources/icons`` (``name`` with or without ``.svg``)."""
    if not name.endswith(".svg"):
        name += ".svg"
    return QtGui.QIcon(str(ICONS_DIR / name))


def pixmap(name: str, size: int) -> QtGui.QPixmap:
    return icon(name).pixmap(size, size)


def style_sheet() -> str:
    """The style sheet of the chosen theme (``$CELLQC_THEME``: dark by default, or light)."""
    import resources

    try:
        return resources.style_sheet()
    except OSError:
        return ""


def apply_theme(app: QtWidgets.QApplication) -> None:
    """Fusion style, a dark high-contrast palette, large type, the cellqc style sheet."""
    app.setStyle("Fusion")
    font = QtGui.QFont("DejaVu Sans")
    font.setPointSize(BASE_POINT_SIZE)
    app.setFont(font)
    pal = QtGui.QPalette()
    black, white = QtGui.QColor("#101010"), QtGui.QColor("#FFFFFF")
    for role, colour in (
        (QtGui.QPalette.ColorRole.Window, black),
        (QtGui.QPalette.ColorRole.WindowText, white),
        (QtGui.QPalette.ColorRole.Base, QtGui.QColor("#000000")),
        (QtGui.QPalette.ColorRole.AlternateBase, QtGui.QColor("#141414")),
        (QtGui.QPalette.ColorRole.Text, white),
        (QtGui.QPalette.ColorRole.Button, QtGui.QColor("#262626")),
        (QtGui.QPalette.ColorRole.ButtonText, white),
        (QtGui.QPalette.ColorRole.Highlight, QtGui.QColor("#F5C000")),
        (QtGui.QPalette.ColorRole.HighlightedText, QtGui.QColor("#000000")),
        (QtGui.QPalette.ColorRole.ToolTipBase, QtGui.QColor("#FFFFE0")),
        (QtGui.QPalette.ColorRole.ToolTipText, QtGui.QColor("#000000")),
        (QtGui.QPalette.ColorRole.Link, QtGui.QColor("#7FC8FF")),
    ):
        pal.setColor(role, colour)
    import resources

    app.setPalette(app.style().standardPalette() if resources.theme_name() == "light" else pal)
    app.setStyleSheet(style_sheet())
    app.setWindowIcon(icon("cellqc"))
