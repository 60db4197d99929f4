"""Follow-up analyses end to end: generated XANES/holotomography data → log → figures, JSON, CSV.

Stated result: per-fragment mean edge energy of a generated 3-D XANES stack (each fragment
with its own known edge shift, 2 % noise) within 0.15 eV of the truth for every fragment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from core.followup import analysis as A
from core.followup import records as R
from core.followup import xanes as X
from core.followup.synthetic import cracked_particles
from core.store import audit_rows, open_log, record_inspection, verify_audit
from qc_app.cli import main
from tests.test_report import make_result

REFS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "xanes_ni_refs"
PNG = b"\x89PNG\r\n\x1a\n"


def _edge() -> tuple[np.ndarray, np.ndarray]:
    """A Ni-K-like edge with a white line (no real data needed)."""
    e = np.linspace(8150.0, 8600.0, 901)
    return e, 1 / (1 + np.exp(-(e - 8342) / 1.5)) + 0.5 * np.exp(-(((e - 8349) / 3.0) ** 2))


@pytest.fixture(scope="module")
def xanes_sample():
    bed = cracked_particles(
        (12, 40, 40), spacing_um=0.4, radius_um=(2.0, 3.0), n_particles=8, max_cracks=2, seed=4
    )
    rng = np.random.default_rng(5)
    shift_per_fragment = rng.uniform(-1.5, 2.0, int(bed.fragments.max()) + 1)
    shift = shift_per_fragment[bed.fragments]
    g = X.seed_energy_grid()
    ref_e, ref = _edge()
    density = bed.mask.astype(float)
    mu = X.mix_references(
        g,
        ref_e,
        ref[None],
        np.ones((1, *bed.mask.shape)),
        density=density,
        shift_ev=shift,
        background=(0.2, 0.02),
        noise=0.0,
        rng=rng,
    )
    mu += rng.normal(0, 0.02, mu.shape)  # 2 % of the jump, everywhere (also outside particles)
    truth0 = X.edge_energy_map(X.resample(ref_e, ref, g)[:, None], g, e0=8342.0).e0_half[0]
    return bed, g, mu, truth0 + shift_per_fragment


def test_xanes_fragments_recover_their_edge_energy(xanes_sample) -> None:
    bed, g, mu, truth = xanes_sample
    result = A.analyze_xanes(
        mu, g, A.XanesParams(e0=8342.0), spacing_um=0.4, fragments=bed.fragments
    )
    rows = A.table_rows(result.fragments)
    assert len(rows) == int(bed.fragments.max())
    errors = [r["e0_mean_ev"] - truth[r["label"]] for r in rows if r["n_valid"] >= 5]
    assert len(errors) >= 0.8 * len(rows)
    assert max(abs(err) for err in errors) <= 0.15
    s = result.summary
    assert s["edge"]["kept_fraction"] == pytest.approx(bed.mask.mean(), abs=0.02)
    assert s["intra_grain_std_ev"] < 0.3  # a uniform fragment: only noise inside a grain
    assert s["inter_grain_spread_ev"] > 0.5  # fragments differ by up to 3.5 eV
    # Fragments found from the edge-jump map: about as many as the truth.
    auto = A.analyze_xanes(mu, g, A.XanesParams(e0=8342.0, min_fragment_um=0.5), spacing_um=0.4)
    assert abs(auto.summary["n_fragments"] - len(rows)) <= max(2, 0.2 * len(rows))


@pytest.fixture()
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


def test_cli_xanes_import_list_analyze(
    tmp_path: Path, log_path: Path, xanes_sample, capsys
) -> None:
    bed, g, mu, _ = xanes_sample
    flat = np.full(mu.shape[1:], 1000.0)
    path = tmp_path / "xanes_tomo.h5"
    with h5py.File(path, "w") as f:
        f["exchange/energy"] = g / 1000.0
        f["exchange/data"] = (flat * np.exp(-mu)).astype(np.float32)
        f["exchange/data_white"] = flat[None].astype(np.float32)
    args = ["followup", "import", "CELL-7", str(path), "--voxel-size", "0.4", "--db", str(log_path)]
    assert main(args) == 2  # the cell is not in the log: refused, one line
    assert "not in the log" in capsys.readouterr().err
    assert main(args + ["--new-cell", "--user", "lab"]) == 0
    followup_id = int(capsys.readouterr().out.strip())
    assert main(["followup", "list", "--cell", "CELL-7", "--json", "--db", str(log_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["kind"] == "xanes" and len(listed[0]["summary"]["files"][0]["sha256"]) == 64
    out = tmp_path / "out"
    refs = (
        [str(REFS / "ref_NiO.txt"), str(REFS / "ref_LiNiO2.txt")]
        if (REFS / "ref_NiO.txt").is_file()
        else []
    )
    cmd = [
        "followup",
        "analyze",
        str(followup_id),
        "--out",
        str(out),
        "--e0",
        "8342",
        "--db",
        str(log_path),
    ]
    for ref in refs:
        cmd += ["--reference", ref]
    assert main(cmd) == 0
    printed = capsys.readouterr().out.split()
    for name in (
        "edge_energy_map.png",
        "edge_energy_vs_fragment_volume.png",
        "grain_std_vs_mean.png",
    ):
        assert (out / name).read_bytes().startswith(PNG)
        assert str(out / name) in printed
    summary = json.loads((out / "xanes_summary.json").read_text())
    assert summary["n_energies"] == 63 and summary["edge"]["n_kept"] > 0
    if refs:
        assert set(summary["lcf"]["mean_fraction"]) == {"NiO", "LiNiO2"}
    assert (out / "fragments.csv").read_text().startswith("label,")
    with open_log(log_path) as db:
        assert verify_audit(db) is None
        actions = [r["action"] for r in audit_rows(db)]
        assert actions[-2:] == ["followup.import", "followup.analyze"]
        items = R.report_items(db, "CELL-7")
        assert items[0]["figure_png"].startswith(PNG) and items[0]["edge_energy_mean_eV"] > 8000


def test_cli_holo_analyze_and_changed_file(tmp_path: Path, log_path: Path, capsys) -> None:
    bed = cracked_particles((40, 64, 64), n_particles=8, seed=2)
    phase = bed.mask * 1.0 + np.random.default_rng(0).normal(0, 0.1, bed.mask.shape)
    path = tmp_path / "holo_phase.tif"
    tifffile.imwrite(path, phase.astype(np.float32))
    with open_log(log_path) as db:  # the cell was inspected first
        inspection_id = record_inspection(db, make_result("CELL-8"))
    assert (
        main(
            [
                "followup",
                "import",
                "CELL-8",
                str(path),
                "--voxel-size",
                "0.4",
                "--db",
                str(log_path),
            ]
        )
        == 0
    )
    followup_id = int(capsys.readouterr().out.strip())
    out = tmp_path / "holo_out"
    assert (
        main(
            [
                "followup",
                "analyze",
                str(followup_id),
                "--out",
                str(out),
                "--regions",
                "4",
                "--db",
                str(log_path),
            ]
        )
        == 0
    )
    assert (out / "fragment_size_vs_depth.png").read_bytes().startswith(PNG)
    summary = json.loads((out / "holo_summary.json").read_text())
    assert abs(summary["summary"]["n_fragments"] - int(bed.fragments.max())) <= 0.1 * int(
        bed.fragments.max()
    )
    assert len(summary["depth"]) == 4
    with open_log(log_path) as db:
        assert R.get_followup(db, followup_id)["inspection_id"] == inspection_id
    pdf = tmp_path / "report.pdf"
    assert (
        main(
            ["report", str(inspection_id), "--no-volume", "--out", str(pdf), "--db", str(log_path)]
        )
        == 0
    )
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "Follow-up #1: holotomography" in text and "Fragment" in text
    capsys.readouterr()
    tifffile.imwrite(path, np.zeros((4, 4, 4), np.float32), photometric="minisblack")  # changed
    assert (
        main(["followup", "analyze", str(followup_id), "--out", str(out), "--db", str(log_path)])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "changed since it was imported" in err and len(err.splitlines()) == 1


def test_cli_xanes_spectra_json(tmp_path: Path, capsys) -> None:
    e, ref = _edge()
    table = tmp_path / "two.txt"
    shifted = np.interp(e - 2.0, e, ref)
    table.write_text(
        "".join(
            f"{a / 1000:.5f} {b:.6f} {c:.6f}\n" for a, b, c in zip(e, ref, shifted, strict=True)
        )
    )
    out = tmp_path / "spectra.json"
    assert (
        main(
            [
                "followup",
                "xanes-spectra",
                str(table),
                "--json",
                str(out),
                "--png",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["spectra"]
    assert {"name", "e0_half_ev", "e0_deriv_ev", "white_line_ev", "edge_jump"} <= set(rows[0])
    assert rows[1]["e0_half_ev"] - rows[0]["e0_half_ev"] == pytest.approx(2.0, abs=0.05)
    assert (tmp_path / "s.png").read_bytes().startswith(PNG)


def test_cli_phase_paganin(tmp_path: Path) -> None:
    img = np.ones((32, 32), np.float32)
    img[10:20, 10:20] = 0.9
    np.save(tmp_path / "proj.npy", img)
    out = tmp_path / "phase.tif"
    assert (
        main(
            [
                "followup",
                "phase",
                str(tmp_path / "proj.npy"),
                "--distance",
                "2",
                "--energy",
                "33.6",
                "--pixel",
                "0.1",
                "--delta-beta",
                "160",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with tifffile.TiffFile(out) as tif:  # ImageJ/Fiji reads the pixel size (µm)
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
        num, den = tif.pages[0].tags["XResolution"].value
        assert num / den == pytest.approx(1 / 0.1, rel=1e-6)
        phase = tif.asarray()
    assert phase.shape == (32, 32) and phase[15, 15] < phase[0, 0]
