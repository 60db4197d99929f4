"""The report's QR trace and ``cellqc report --verify``: what the code says, and checking it.

The QR is decoded from the rendered page with zxing-cpp (a real scan of pixels), the trace
is read back from the PDF's metadata and text, and saved, altered and foreign PDFs are
checked against the log.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InputError
from core.report import ReportInputs, write_report
from core.report.qr import TRACE_PREFIX, ReportTrace, parse_trace, result_sha256, trace_for
from core.report.verify import (
    ALTERED,
    MATCH,
    NO_MATCH,
    read_pdf_trace,
    verify_report_file,
    verify_trace,
)
from core.store import open_log, override_verdict, record_inspection
from core.store.users import add_user
from qc_app.cli import main
from tests.test_report import make_result

PDFTOPPM = shutil.which("pdftoppm")

cell_ids = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda s: s.strip() == s and s)


@given(cell=cell_ids, verdict=st.sampled_from(["PASS", "FAIL", "REVIEW"]),
       inspection=st.one_of(st.none(), st.integers(1, 10**9)), digest=st.binary(min_size=32, max_size=32))
def test_trace_text_round_trips(cell: str, verdict: str, inspection: int | None, digest: bytes) -> None:
    trace = ReportTrace(cell, verdict, inspection, digest.hex())
    text = trace.text()
    assert text.startswith(TRACE_PREFIX) and text.isascii() and " " not in text
    assert parse_trace(text) == trace


@pytest.mark.parametrize("text", [
    "", "hello", "cellqc:report?v=2&cell=A&verdict=PASS&result=" + "0" * 64,
    "cellqc:report?v=1&cell=A&verdict=PASS&result=" + "0" * 63,
    "cellqc:report?v=1&cell=A&verdict=PASS&inspection=x&result=" + "0" * 64,
    "cellqc:report?v=1&verdict=PASS&result=" + "0" * 64,
])
def test_bad_traces_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_trace(text)
    assert "\n" not in str(info.value)


@pytest.fixture()
def filed(tmp_path: Path) -> tuple[Path, int, Path, dict]:
    """A log with one filed inspection (random cell ID) and its report filed against it."""
    rng = np.random.default_rng()
    cell = f"21700-{rng.integers(10**6):06d}&x=1 ü"
    result = make_result(cell_id=cell, verdict=str(rng.choice(["PASS", "FAIL", "REVIEW"])))
    db_path = tmp_path / "log.db"
    pdf = tmp_path / "report.pdf"
    with open_log(db_path) as db:
        iid = record_inspection(db, result)
        write_report(ReportInputs(result, inspection_id=iid), pdf, db=db, inspection_id=iid)
    return db_path, iid, pdf, result


def test_qr_on_the_rendered_page_decodes_to_the_filed_record(filed, tmp_path: Path) -> None:
    if PDFTOPPM is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    db_path, iid, pdf, result = filed
    # 100 dpi, a coarse office scan: the code must still read.
    subprocess.run([PDFTOPPM, "-r", "100", "-f", "1", "-l", "1", "-png", str(pdf), str(tmp_path / "p")], check=True)
    page = np.asarray(Image.open(next(tmp_path.glob("p*.png"))).convert("L"))
    codes = [b for b in zxingcpp.read_barcodes(page) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(codes) == 1
    trace = parse_trace(codes[0].text)
    with open_log(db_path) as db:
        row = db.conn.execute("SELECT cell_id, verdict, result_sha256 FROM inspections WHERE id = ?", [iid]).fetchone()
    assert (trace.cell_id, trace.verdict, trace.inspection_id, trace.result_sha256) == (row[0], row[1], iid, row[2])
    # The code sits on page 1, inside the margins, at least 25 mm wide (A4 at 100 dpi: 827 px wide).
    pos = codes[0].position
    xs = [pos.top_left.x, pos.top_right.x, pos.bottom_left.x, pos.bottom_right.x]
    ys = [pos.top_left.y, pos.top_right.y, pos.bottom_left.y, pos.bottom_right.y]
    px_per_mm = page.shape[1] / 210.0
    assert (max(xs) - min(xs)) / px_per_mm >= 20.0
    assert min(xs) > 15 * px_per_mm and max(ys) < page.shape[0] - 20 * px_per_mm
    # Nothing else is drawn over the code: the quiet zone around it is white.
    margin = int(2 * px_per_mm)
    x0, x1, y0, y1 = min(xs) - margin, max(xs) + margin, min(ys) - margin, max(ys) + margin
    ring = np.concatenate([page[y0 - 2:y0, x0:x1].ravel(), page[y1:y1 + 2, x0:x1].ravel(),
                           page[y0:y1, x0 - 2:x0].ravel(), page[y0:y1, x1:x1 + 2].ravel()])
    assert ring.min() > 200


def test_trace_reads_back_from_metadata_and_from_the_text_layer(filed) -> None:
    db_path, iid, pdf, result = filed
    trace = read_pdf_trace(pdf)
    assert trace == ReportTrace(result["cell_id"], result["verdict"], iid, result_sha256(result))
    from pypdf import PdfReader

    text = PdfReader(str(pdf)).pages[0].extract_text()
    assert result_sha256(result) in " ".join(text.split())


def test_verify_saved_altered_and_foreign_reports(filed, tmp_path: Path) -> None:
    db_path, iid, pdf, result = filed
    with open_log(db_path) as db:
        ok = verify_report_file(db, pdf)
        assert ok.status == MATCH and ok.inspection_id == iid
        assert ok.file_sha256 == hashlib.sha256(pdf.read_bytes()).hexdigest()
        # One byte added at the end: a PDF reader still shows it, the log does not know it.
        altered = tmp_path / "altered.pdf"
        altered.write_bytes(pdf.read_bytes() + b"\n% edited\n")
        out = verify_report_file(db, altered)
        assert out.status == ALTERED and out.inspection_id == iid
        # A report of another log's inspection (same id, another cell and result).
        other = make_result(cell_id="OTHER-1")
        foreign = tmp_path / "foreign.pdf"
        write_report(ReportInputs(other, inspection_id=iid), foreign)
        assert verify_report_file(db, foreign).status == NO_MATCH
        # A report written without the log names no inspection.
        loose = tmp_path / "loose.pdf"
        write_report(ReportInputs(result), loose)
        assert read_pdf_trace(loose).inspection_id is None
        assert verify_report_file(db, loose).status == NO_MATCH


def test_verify_a_scanned_code_and_a_later_override(filed) -> None:
    db_path, iid, pdf, result = filed
    printed = trace_for(ReportInputs(result, inspection_id=iid))
    with open_log(db_path) as db:
        assert verify_trace(db, printed.text()).status == MATCH
        forged = ReportTrace(printed.cell_id, "PASS" if printed.verdict != "PASS" else "FAIL", iid,
                             printed.result_sha256)
        assert verify_trace(db, forged.text()).status == ALTERED
        wrong_result = ReportTrace(printed.cell_id, printed.verdict, iid, "f" * 64)
        assert verify_trace(db, wrong_result.text()).status == NO_MATCH
        assert verify_trace(db, ReportTrace(printed.cell_id, printed.verdict, iid + 7,
                                            printed.result_sha256).text()).status == NO_MATCH
        add_user(db, "ada", "admin", secret="admin-pw")  # users only through the role-checked API
        add_user(db, "erik", "engineer", secret="eng-pw", actor="ada", actor_secret="admin-pw")
        new = "PASS" if printed.verdict != "PASS" else "REVIEW"
        override_verdict(db, iid, new, "re-measured by hand", "erik")
        later = verify_trace(db, printed.text())
        assert later.status == MATCH and any("overridden since" in line and new in line for line in later.lines)
        # The report filed before the override is still the filed file.
        assert verify_report_file(db, pdf).status == MATCH


def test_cli_verify_exit_codes(filed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db_path, iid, pdf, result = filed
    assert main(["report", "--verify", str(pdf), "--db", str(db_path)]) == 0
    assert capsys.readouterr().out.startswith("MATCH")
    altered = tmp_path / "edited.pdf"
    altered.write_bytes(pdf.read_bytes().replace(b"/Producer", b"/Producxr", 1))
    assert main(["report", "--verify", str(altered), "--db", str(db_path)]) == 1
    assert capsys.readouterr().out.startswith("ALTERED")
    code = read_pdf_trace(pdf).text()
    assert main(["report", "--verify-code", code, "--db", str(db_path)]) == 0
    assert capsys.readouterr().out.startswith("MATCH")
    not_pdf = tmp_path / "notes.txt"
    not_pdf.write_text("hello")
    for args in (["--verify", str(not_pdf)], ["--verify", str(tmp_path / "missing.pdf")],
                 ["--verify-code", "hello"], [str(iid), "--verify", str(pdf)], []):
        assert main(["report", *args, "--db", str(db_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
