"""``cellqc gui``: the PySide6 workstation (operator station + engineer drill-down).

With ``--screenshot`` it runs headless (offscreen): open ``--open VOLUME``, optionally
``--run`` the inspection to completion, save a PNG of the main window and exit with the
verdict's exit code (0 PASS, 1 FAIL, 3 REVIEW, 2 error).

``--role engineer`` never skips the login: interactively the login dialog opens first (the
station stays in operator mode when it is refused or cancelled); headless, ``--user NAME``
logs in with the password from ``--password-file``, ``$CELLQC_PASSWORD`` or stdin, and a
refused login is an error (exit code 2).
"""

from __future__ import annotations

import argparse

from qc_app.commands.base import register


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--open", dest="open_path", metavar="VOLUME", help="open this volume at start")
    p.add_argument("--voxel-size", metavar="UM", help="µm: one number or z,y,x (when the file does not say)")
    p.add_argument("--run", action="store_true", help="inspect the opened volume right away")
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="headless: save a screenshot of the main window when done, then exit")
    p.add_argument("--db", help="SQLite log (default $CELLQC_HOME/cellqc.db; 'none' for no log)")
    p.add_argument("--role", choices=["operator", "engineer"], default=None,
                   help="start in this role (default: operator); engineer asks for a login first "
                        "(headless: --user and the password from --password-file, $CELLQC_PASSWORD or stdin)")
    from qc_app.auth import add_user_arguments

    add_user_arguments(p, help="the user name the login starts with (engineer mode); on a log without "
                               "users yet, also the name filed with inspections")
    p.add_argument("--recipe", help="recipe name or TOML file for inspections")
    p.add_argument("--watch", metavar="FOLDER", help="watch this folder for new volumes (the queue)")
    p.add_argument("--auto-report", action="store_true", help="write the PDF report after each inspection")
    p.add_argument("--finding", metavar="ID", help="with --screenshot: select this finding (e.g. C1) first")
    p.add_argument("--tab", choices=["slices", "map", "recent", "queue"],
                   help="with --screenshot: show this view")
    p.add_argument("--size", metavar="WxH", help="window size (default 1440x900)")


def run(args: argparse.Namespace) -> int:
    from core.extras import require_extra

    require_extra("gui", "cellqc gui")  # one line naming the extra, before any Qt import
    from qc_app.gui.app import run_app

    return run_app(args)


register("gui", "the workstation: operator station, viewer and engineer drill-down (PySide6)",
         add_arguments, run)
