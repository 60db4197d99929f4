"""The cellqc workstation (PySide6 + pyqtgraph): operator station, viewer, engineer drill-down.

Start it with ``cellqc gui`` or ``cellqc-gui`` (same options; see
:mod:`qc_app.commands.gui_cmd`). Importing this package does not import Qt.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cellqc-gui``: parse the ``cellqc gui`` options and start the app."""
    import sys

    from core.errors import MissingExtraError
    from core.extras import require_extra

    try:
        require_extra("gui", "cellqc-gui")
    except MissingExtraError as exc:
        print(f"cellqc-gui: error: {exc}", file=sys.stderr)
        return 2
    from qc_app.commands.base import UsageErrorParser
    from qc_app.commands.gui_cmd import add_arguments
    from qc_app.gui.app import run_app

    parser = UsageErrorParser(prog="cellqc-gui", description="cellqc workstation: operator station and engineer drill-down")
    add_arguments(parser)
    return run_app(parser.parse_args(argv))


__all__ = ["main"]
