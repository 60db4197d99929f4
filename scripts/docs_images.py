"""Regenerate the screenshots and report pages in ``docs/images`` (issue 23: looked at, not assumed).

Run from the repository root (headless; about 5 minutes with the real scan)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/docs_images.py [--out docs/images] [--home DIR]
                                                                      [--no-real] [--only NAME,...]

It makes the demo cell (``cellqc demo``'s), inspects it in the workstation (a log with one
engineer), and saves:

- ``gui-finding.png``      operator station at 1440 × 900, the worst finding chosen;
- ``gui-engineer.png``     engineer mode at 1440 × 900 (the chosen finding's details);
- ``gui-checks.png``       the same, the Checks tab (the recipe's checks, as in the report);
- ``gui-engineer-1920.png`` the same at 1920 × 1080;
- ``gui-map.png``          the unrolled thickness map tab;
- ``gui-real.png``         the real 21700 scan (``../shared/data/real/cell21700_top``) at 1440 × 900,
  engineer mode, as it opens after the inspection (skipped when the data are absent);
- ``report-page1.png``, ``report-checks.png``, ``report-map.png``, ``report-story.png``: pages of the
  demo's PDF report (pdftoppm), the last after an ROI plan and a re-written report
  (``cellqc report ID``).

Every image is printed with its size; open them and look.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT / ".." / "shared" / "data" / "real" / "cell21700_top"
REAL_VOXEL = "67.94,33.97,33.97"
USER, SECRET = "erik", "docs-images-secret-1"


def _wait(app, condition, timeout: float = 900.0) -> None:
    from PySide6 import QtCore

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the workstation did not finish in time")
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def _settle(app, rounds: int = 6) -> None:
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.05)


def shrink(path: Path) -> None:
    """Palette-quantise a PNG (256 colours, Pillow) to keep the docs small."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _grab(window, path: Path, app) -> None:
    _settle(app)
    window.save_screenshot(path)
    shrink(path)
    print(f"{path}  {window.width()} × {window.height()}")


def _window(db_path: Path, size: tuple[int, int]):
    from qc_app.gui.main_window import MainWindow

    window = MainWindow(db_path=db_path, reports_dir=db_path.parent / "reports", dialogs=False)
    window.resize(*size)
    window.show()
    return window


def _inspect(app, window, volume: Path, voxel: str | None = None) -> None:
    outcomes: list[str] = []
    window.outcome.connect(outcomes.append)
    if voxel:
        window.voxel.setText(voxel)
    window.open_volume(volume, run=True)
    _wait(app, lambda: outcomes)


def gui_images(out: Path, home: Path, demo: Path, real: bool, only: set[str]) -> int:
    from qc_app.gui import app as gui_app
    from qc_app.gui import theme

    app = gui_app.make_app()
    theme.apply_theme(app)
    db_path = home / "cellqc.db"
    window = _window(db_path, (1440, 900))
    _inspect(app, window, demo)
    iid = window.inspection_id
    if not only or "gui-finding" in only:
        _grab(window, out / "gui-finding.png", app)
    if not only or "gui-engineer" in only:
        assert window.login_engineer(USER, SECRET), window.last_error
        _grab(window, out / "gui-engineer.png", app)
        window.engineer.setCurrentWidget(window.engineer.checks)
        _grab(window, out / "gui-checks.png", app)
        window.engineer.setCurrentWidget(window.engineer.finding)
        window.resize(1920, 1080)
        _grab(window, out / "gui-engineer-1920.png", app)
        window.resize(1440, 900)
        window.set_role("operator")
    if not only or "gui-map" in only:
        window.view_tabs.setCurrentWidget(window.map_view)
        _grab(window, out / "gui-map.png", app)
        window.view_tabs.setCurrentWidget(window.viewer)
    window.close()
    if real and (not only or "gui-real" in only):
        window = _window(db_path, (1440, 900))
        _inspect(app, window, REAL.resolve(), REAL_VOXEL)
        assert window.login_engineer(USER, SECRET), window.last_error
        _grab(window, out / "gui-real.png", app)
        window.close()
    _settle(app)
    return int(iid)


def pdf_pages(out: Path, pdf: Path, pages: dict[int, str], dpi: int = 80) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cellqc-pages-"))
    try:
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(pdf), str(tmp / "p")], check=True)
        files = sorted(tmp.glob("p-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
        for number, name in pages.items():
            if number == -1:
                number = len(files)
            shutil.copyfile(files[number - 1], out / name)
            shrink(out / name)
            print(f"{out / name}  page {number} of {len(files)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pdf_page_of(pdf: Path, text: str) -> int:
    from pypdf import PdfReader

    for i, page in enumerate(PdfReader(str(pdf)).pages, start=1):
        if text in (page.extract_text() or ""):
            return i
    raise LookupError(f"{pdf}: no page says {text!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    p.add_argument("--home", help="CELLQC_HOME to use (default: a new temporary folder)")
    p.add_argument("--no-real", action="store_true", help="skip the real 21700 scan")
    p.add_argument("--only", default="", help="comma list of image names (without .png)")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="cellqc-docs-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["CELLQC_HOME"] = str(home)
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    from core.store import open_log
    from core.store.users import add_user
    from qc_app.commands.demo_cmd import generate_demo_cell

    db_path = home / "cellqc.db"
    db = open_log(db_path)
    if not list(db.query("SELECT name FROM users WHERE name = ?", [USER])):
        add_user(db, "admin", "admin", secret=SECRET, full_name="Station admin")
        add_user(db, USER, "engineer", secret=SECRET, full_name="Erik Engineer", actor="admin",
                 actor_secret=SECRET)
    db.close()
    demo, _ = generate_demo_cell(home)
    real = not args.no_real and REAL.is_dir()
    gui_names = {"gui-finding", "gui-engineer", "gui-map", "gui-real"}
    iid = None
    if only and not (only & gui_names):  # report pages only: the demo's last inspection in this home
        db = open_log(db_path)
        rows = list(db.query("SELECT id FROM inspections WHERE cell_id LIKE 'DEMO-%' AND status = 'complete' "
                             "ORDER BY id DESC LIMIT 1"))
        db.close()
        iid = rows[0]["id"] if rows else None
    if iid is None:
        iid = gui_images(out, home, demo, real, only)

    report_names = {"report-page1", "report-checks", "report-map", "report-story"}
    if only and not (only & report_names):
        return 0
    from qc_app.cli import main as cli

    os.environ["CELLQC_PASSWORD"] = SECRET  # the log has users: commands that file sign as the engineer
    who = ["--user", USER]
    first = home / "report-first.pdf"
    assert cli(["report", str(iid), "--db", str(db_path), "--out", str(first), *who]) == 0
    pdf_pages(out, first, {1: "report-page1.png", 2: "report-checks.png",
                           _pdf_page_of(first, "coating) unrolled"): "report-map.png"})
    # The cell's story: an ROI plan for its findings, then the report written again from the log.
    assert cli(["roi", "plan", str(iid), "--db", str(db_path), "--replace", *who]) == 0
    story = home / "report-story.pdf"
    assert cli(["report", str(iid), "--db", str(db_path), "--out", str(story), *who]) == 0
    pdf_pages(out, story, {_pdf_page_of(story, "ROI local-tomography plans"): "report-story.png"})
    print(f"home: {home}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
