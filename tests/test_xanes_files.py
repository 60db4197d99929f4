"""XANES spectra from real files: XDI, Athena projects, tables; robust normalisation, calibration.

Physical facts asserted on the real files (``../shared/data/real``):

- XAS Data Library, Ni foil (APS 13-ID-C): its first inflection point is the Ni K edge,
  8333 eV nominal; the file's own value may be a few eV off (the mono d-spacing is nominal):
  measured 8331.35 eV, the test allows ±3 eV;
- Ni(OH)₂ and Ni₂O₃ (SSRL 4-1), each calibrated by its own reference-foil channel
  (ln(itrans/irefer); foil found at 8334.08 and 8334.26 eV, shifts -1.08 and -1.26 eV): their
  maximum-derivative edge lies 10–13 eV above the foil's 8333 eV (measured 12.2 and 11.5 eV);
- PyXAS references: LiNiO₂ (Ni³⁺) 1–3 eV above NiO (Ni²⁺) at half jump (measured 1.68 eV),
  read through the same file reader and command.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError
from core.followup import xanes as X
from qc_app.cli import main

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
XDI = REAL / "xas_ni_xdi"
REFS = REAL / "xanes_ni_refs"
needs_xdi = pytest.mark.skipif(
    not (XDI / "Ni_metal_rt_01.xdi").is_file(), reason=f"real XDI files not found in {XDI}"
)
needs_refs = pytest.mark.skipif(
    not (REFS / "ref_NiO.txt").is_file(), reason=f"real XANES references not found in {REFS}"
)


def _sample(report: X.SpectraReport) -> dict:
    return next(r for r in report.summary["spectra"] if r["role"] == "sample")


# ---------------------------------------------------------------------------------- XDI


@needs_xdi
def test_xdi_columns_named_in_the_header() -> None:
    sf = X.read_xdi(XDI / "NiOH2_rt_01.xdi")
    assert sf.format == "xdi" and sf.element == "Ni" and sf.edge == "K"
    assert [s.role for s in sf.spectra] == ["sample", "reference"]
    sample, ref = sf.spectra
    assert sample.quantity == "ln(i0/itrans)" and ref.quantity == "ln(itrans/irefer)"
    data = np.loadtxt(XDI / "NiOH2_rt_01.xdi")
    np.testing.assert_allclose(sample.mu, np.log(data[:, 1] / data[:, 2]))
    np.testing.assert_allclose(ref.mu, np.log(data[:, 2] / data[:, 3]))
    np.testing.assert_allclose(sample.energy_ev, data[:, 0])
    assert sample.reference_mu is ref.mu


@needs_xdi
def test_ni_foil_first_inflection_is_the_ni_k_edge() -> None:
    report = X.analyze_spectra_file(XDI / "Ni_metal_rt_01.xdi")
    foil = _sample(report)
    assert report.summary["calibration"] is None  # no reference channel in this file
    assert foil["normalisation"]["quality"] == "good"
    assert foil["edge_jump"] > 0
    assert abs(foil["first_inflection_ev"] - 8333.0) <= 3.0, foil
    # The metal's half-jump energy sits above its first inflection (the pre-edge shoulder).
    assert foil["e0_half_ev"] > foil["first_inflection_ev"] + 2.0


@needs_xdi
@pytest.mark.parametrize("name", ["NiOH2_rt_01.xdi", "Ni2O3_rt_01.xdi"])
def test_oxidised_standards_sit_10_to_13_ev_above_the_calibrated_foil(name: str) -> None:
    report = X.analyze_spectra_file(XDI / name)
    cal = report.summary["calibration"]
    assert cal["applied"] and cal["tabulated_edge_ev"] == 8333.0
    assert abs(cal["shift_ev"]) < 5.0
    ref = next(r for r in report.summary["spectra"] if r["role"] == "reference")
    # After calibration the foil channel's first inflection is where it belongs.
    assert ref["first_inflection_ev"] == pytest.approx(8333.0, abs=0.3)
    sample = _sample(report)
    assert sample["energy_shift_ev"] == pytest.approx(cal["shift_ev"])
    assert 10.0 <= sample["e0_deriv_ev"] - 8333.0 <= 13.0, sample
    assert sample["edge_jump"] > 0 and not report.summary["warnings"]
    # Without calibration the energies are the file's own.
    raw = _sample(X.analyze_spectra_file(XDI / name, calibrate=False))
    assert raw["e0_deriv_ev"] - sample["e0_deriv_ev"] == pytest.approx(-cal["shift_ev"], abs=1e-6)


@needs_xdi
def test_xdi_keV_energies_and_fluorescence(tmp_path: Path) -> None:
    data = np.loadtxt(XDI / "NiOH2_rt_01.xdi")
    mu = np.log(data[:, 1] / data[:, 2])
    fluor = data[:, 1] * (0.01 + 0.05 * (mu - mu.min()))
    lines = ["# XDI/1.0", "# Column.1: energy keV", "# Column.2: i0", "# Column.3: ifluor",
             "# Element.symbol: Ni", "# ///", "#---", "# energy i0 ifluor"]
    lines += [f"{e / 1000:.6f} {a:.3f} {f:.5f}" for e, a, f in zip(data[:, 0], data[:, 1], fluor,
                                                                    strict=True)]
    path = tmp_path / "fluo.xdi"
    path.write_text("\n".join(lines))
    sf = X.read_spectra(path)
    assert sf.spectra[0].quantity == "ifluor/i0"
    np.testing.assert_allclose(sf.spectra[0].energy_ev, data[:, 0], atol=1e-3)
    fluo = _sample(X.analyze_spectra_file(path))
    trans = _sample(X.analyze_spectra_file(XDI / "NiOH2_rt_01.xdi", calibrate=False))
    assert fluo["e0_deriv_ev"] == pytest.approx(trans["e0_deriv_ev"], abs=0.5)


def test_xdi_without_an_absorption_channel_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.xdi"
    rows = "\n".join(f"{8300 + i} {1 + i}" for i in range(20))
    path.write_text("# XDI/1.0\n# Column.1: energy eV\n# Column.2: temperature\n#---\n" + rows)
    with pytest.raises(InputError, match="no absorption channel") as info:
        X.read_spectra(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_xdi_zero_counts_refused(tmp_path: Path) -> None:
    path = tmp_path / "zero.xdi"
    rows = "\n".join(f"{8300 + i} 100 {0 if i == 5 else 50}" for i in range(20))
    path.write_text("# XDI/1.0\n# Column.1: energy eV\n# Column.2: i0\n# Column.3: itrans\n"
                    "#---\n" + rows)
    with pytest.raises(InputError, match="zero or negative counts"):
        X.read_spectra(path)


# ------------------------------------------------------------------------------ Athena


def _prj_perl(records: list[dict]) -> str:
    lines = ["# Athena project file -- Demeter version 0.9.26", "# test", ""]
    for rec in records:
        lines.append(f"$old_group = '{rec['group']}';")
        args = ",".join(f"'{k}','{v}'" for k, v in rec["args"].items())
        lines.append(f"@args = ({args});")
        lines.append("@x = (" + ",".join(f"'{v:.4f}'" for v in rec["x"]) + ");")
        lines.append("@y = (" + ",".join(f"'{v:.7g}'" for v in rec["y"]) + ");")
        lines.append("@i0 = ();")
        lines.append("[record] # create object and set arrays in one line")
    lines += ["", "@journal = ();", "1;", ""]
    return "\n".join(lines)


@needs_xdi
@pytest.mark.parametrize("form", ["perl-gzip", "perl-plain", "json-gzip"])
def test_athena_project_records(tmp_path: Path, form: str) -> None:
    foil = np.loadtxt(XDI / "Ni_metal_rt_01.xdi")
    hyd = np.loadtxt(XDI / "NiOH2_rt_01.xdi")
    mu_foil = np.log(foil[:, 1] / foil[:, 2])
    mu_hyd = np.log(hyd[:, 1] / hyd[:, 2])
    records = [
        {"group": "abcde", "args": {"label": "Ni foil", "is_xmu": 1, "bkg_eshift": 1.5},
         "x": foil[:, 0], "y": mu_foil},
        {"group": "fghij", "args": {"label": "Ni(OH)2", "is_xmu": 1}, "x": hyd[:, 0],
         "y": mu_hyd},
        {"group": "klmno", "args": {"label": "chi of foil", "is_chi": 1}, "x": np.arange(20.0),
         "y": np.zeros(20)},
    ]
    if form.startswith("perl"):
        text = _prj_perl(records)
    else:
        doc = {"_____header1": "# Athena project file -- Demeter version 0.9.26",
               "_____journal": [], "_____order": [r["group"] for r in records]}
        for r in records:
            doc[r["group"]] = {"args": {k: str(v) for k, v in r["args"].items()},
                               "x": [float(v) for v in r["x"]], "y": [float(v) for v in r["y"]]}
        text = json.dumps(doc)
    path = tmp_path / "project.prj"
    path.write_bytes(gzip.compress(text.encode()) if form.endswith("gzip") else text.encode())
    sf = X.read_spectra(path)
    assert sf.format == "athena"
    assert [s.name for s in sf.spectra] == ["Ni foil", "Ni(OH)2"]
    assert any("chi of foil" in n and "skipped" in n for n in sf.notes)
    np.testing.assert_allclose(sf.spectra[0].energy_ev, foil[:, 0] + 1.5, atol=1e-3)
    np.testing.assert_allclose(sf.spectra[1].mu, mu_hyd, rtol=1e-5)
    report = X.analyze_spectra_file(path)
    rows = {r["name"]: r for r in report.summary["spectra"]}
    direct = _sample(X.analyze_spectra_file(XDI / "Ni_metal_rt_01.xdi"))
    assert rows["Ni foil"]["first_inflection_ev"] == pytest.approx(
        direct["first_inflection_ev"] + 1.5, abs=0.05
    )


def test_not_an_athena_project(tmp_path: Path) -> None:
    path = tmp_path / "x.prj"
    path.write_bytes(gzip.compress(b"hello\nworld\n"))
    with pytest.raises(InputError, match="not an Athena project"):
        X.read_spectra(path)


def test_gzip_bomb_refused_without_expanding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.prj"
    path.write_bytes(gzip.compress(b"# Athena project file -- \n" + b"\0" * (80 * 2**20)))
    with pytest.raises(InputError, match="decompresses to more than"):
        X.read_spectra(path)


# ------------------------------------------------------------------------------ tables


@needs_refs
@pytest.mark.parametrize(
    ("delimiter", "decimal", "unit", "header"),
    [(",", ".", "keV", "energy (keV),mu"), (";", ",", "eV", "E [eV];absorption"),
     ("\t", ".", "eV", None), ("|", ".", "keV", "# energy | NiO"), (" ", ",", "eV", None)],
)
def test_table_any_delimiter_and_unit(tmp_path: Path, delimiter, decimal, unit, header) -> None:
    e, _, s = X.read_spectra_table(REFS / "ref_NiO.txt")
    values = e / 1000.0 if unit == "keV" else e
    body = [f"{v:.5f}{delimiter}{m:.6f}".replace(".", decimal) if decimal == "," else
            f"{v:.5f}{delimiter}{m:.6f}" for v, m in zip(values, s[:, 0], strict=True)]
    if decimal == "," and delimiter == ",":
        pytest.skip("decimal comma with comma delimiter is ambiguous")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(([header] if header else []) + body))
    sf = X.read_spectra(path)
    np.testing.assert_allclose(sf.spectra[0].energy_ev, e, atol=0.01)
    np.testing.assert_allclose(sf.spectra[0].mu, s[:, 0], atol=1e-6)


def test_table_few_nan_rows_dropped_many_refused(tmp_path: Path) -> None:
    e = np.linspace(8300, 8450, 151)
    mu = 1 / (1 + np.exp(-(e - 8345) / 2))
    rows = [f"{a},{b}" for a, b in zip(e, mu, strict=True)]
    rows[10] = rows[10].split(",")[0] + ",nan"
    rows[20] = rows[20].split(",")[0] + ",inf"
    path = tmp_path / "gaps.csv"
    path.write_text("\n".join(rows))
    spectrum = X.read_spectra(path).spectra[0]
    assert spectrum.energy_ev.size == 149 and "2 rows with NaN" in spectrum.notes[0]
    path.write_text("\n".join(f"{a},nan" if i % 5 == 0 else f"{a},{b}"
                              for i, (a, b) in enumerate(zip(e, mu, strict=True))))
    with pytest.raises(InputError, match="rows hold NaN"):
        X.read_spectra(path)


def test_table_header_unit_contradicting_values_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("energy (eV),mu\n" + "\n".join(f"{8.3 + i / 1000},{i}" for i in range(20)))
    with pytest.raises(InputError, match="not X-ray energies"):
        X.read_spectra(path)


@needs_xdi
def test_table_with_channel_names_is_combined_like_xdi(tmp_path: Path) -> None:
    data = np.loadtxt(XDI / "NiOH2_rt_01.xdi")
    rows = [f"{e},{a},{b},{c}" for e, a, b, c in data]
    path = tmp_path / "beamline.csv"
    path.write_text("Energy,I0,It,Iref\n" + "\n".join(rows[::-1]))  # descending: sorted
    sf = X.read_spectra(path)
    assert [s.quantity for s in sf.spectra] == ["ln(i0/itrans)", "ln(itrans/irefer)"]
    assert any("sorted" in n for n in sf.spectra[0].notes)
    np.testing.assert_allclose(sf.spectra[0].mu, np.log(data[:, 1] / data[:, 2]))


# ------------------------------------------------------- narrow windows, normalisation


@needs_refs
@pytest.mark.parametrize("seed", range(4))
def test_narrow_already_normalised_window(seed: int) -> None:
    """A 30–60 eV window starting 3–10 eV below E½, already normalised (TXM-XANES)."""
    rng = np.random.default_rng(seed)
    for ref in ("ref_NiO", "ref_LiNiO2"):
        e, _, s = X.read_spectra_table(REFS / f"{ref}.txt")
        full, norm = X.analyze_spectrum(e, s[:, 0], ref)
        start = full["e0_half_ev"] - rng.uniform(3.0, 10.0)
        sel = (e >= start) & (e <= start + rng.uniform(30.0, 60.0))
        row, _ = X.analyze_spectrum(e[sel], norm[sel], ref)
        assert row["normalisation"]["method"] == "already normalised"
        assert row["normalisation"]["quality"] in ("fair", "poor")
        for key in ("e0_half_ev", "e0_deriv_ev", "white_line_ev"):
            assert row[key] == pytest.approx(full[key], abs=0.05), (key, row, full)


@needs_refs
@pytest.mark.parametrize("seed", range(4))
def test_narrow_raw_window_uses_the_window_ends_and_says_so(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    e, _, s = X.read_spectra_table(REFS / "ref_NiO.txt")
    full, _ = X.analyze_spectrum(e, s[:, 0], "NiO")
    start = full["e0_half_ev"] - rng.uniform(3.0, 10.0)
    sel = (e >= start) & (e <= start + rng.uniform(30.0, 45.0))
    raw = rng.uniform(0.5, 5.0) + rng.uniform(0.2, 3.0) * s[sel, 0]
    row, _ = X.analyze_spectrum(e[sel], raw, "NiO")
    method = row["normalisation"]["method"]
    assert "window" in method and row["normalisation"]["quality"] == "poor", method
    assert any("approximate" in w for w in row["warnings"])
    # Approximate: within 1.5 eV of the full-range value (measured up to 0.98 eV).
    assert row["e0_half_ev"] == pytest.approx(full["e0_half_ev"], abs=1.5)


def test_inverted_spectrum_is_a_warning_never_numbers() -> None:
    e = np.linspace(8300, 8450, 151)
    absorption = 1 / (1 + np.exp(-(e - 8345) / 2))
    row, _ = X.analyze_spectrum(e, np.exp(-absorption), "transmitted")
    assert row["normalisation"]["quality"] == "inverted"
    assert row["e0_half_ev"] is None and row["e0_deriv_ev"] is None
    assert len(row["warnings"]) == 1 and "negative" in row["warnings"][0]


# -------------------------------------------------------------------------------- CLI


@needs_xdi
@pytest.mark.parametrize("name", ["NiOH2_rt_01.xdi", "Ni2O3_rt_01.xdi", "Ni_metal_rt_01.xdi"])
def test_cli_takes_real_xdi_end_to_end(tmp_path: Path, capsys, name: str) -> None:
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    assert main(["followup", "xanes-spectra", str(XDI / name), "--json", str(out),
                 "--png", str(png)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "cellqc.xanes-spectra/1" and doc["format"] == "xdi"
    sample = next(r for r in doc["spectra"] if r["role"] == "sample")
    assert sample["normalisation"]["method"] and sample["normalisation"]["quality"] == "good"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "internal error" not in capsys.readouterr().err


@needs_refs
def test_cli_real_references_ni3_above_ni2(tmp_path: Path) -> None:
    edges = {}
    for ref in ("ref_NiO", "ref_LiNiO2"):
        out = tmp_path / f"{ref}.json"
        assert main(["followup", "xanes-spectra", str(REFS / f"{ref}.txt"), "--json",
                     str(out)]) == 0
        edges[ref] = json.loads(out.read_text())["spectra"][0]["e0_half_ev"]
    assert 1.0 <= edges["ref_LiNiO2"] - edges["ref_NiO"] <= 3.0


@needs_refs
def test_cli_narrow_normalised_window_no_internal_error(tmp_path: Path, capsys) -> None:
    """The reported case: a 40 eV window a few eV below the edge, already normalised."""
    e, _, s = X.read_spectra_table(REFS / "ref_NiO.txt")
    _, norm = X.analyze_spectrum(e, s[:, 0], "NiO")
    sel = (e >= 8336.0) & (e <= 8376.0)
    path = tmp_path / "txm.csv"
    path.write_text("energy_keV,grain_a\n" + "\n".join(
        f"{v / 1000:.5f},{m:.5f}" for v, m in zip(e[sel], norm[sel], strict=True)))
    out = tmp_path / "o.json"
    assert main(["followup", "xanes-spectra", str(path), "--json", str(out)]) == 0
    row = json.loads(out.read_text())["spectra"][0]
    assert row["normalisation"]["method"] == "already normalised"
    assert row["e0_half_ev"] == pytest.approx(8340.05, abs=0.1)
    assert "internal error" not in capsys.readouterr().err


def test_cli_inverted_only_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    e = np.linspace(8300, 8450, 151)
    path = tmp_path / "it.csv"
    path.write_text("\n".join(f"{v},{np.exp(-1 / (1 + np.exp(-(v - 8345) / 2)))}" for v in e))
    out = tmp_path / "o.json"
    assert main(["followup", "xanes-spectra", str(path), "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cellqc: error:") and str(path) in err[-1]
    assert "negative" in err[-1] and not out.exists()


def test_cli_mixed_good_and_inverted_warns_once(tmp_path: Path, capsys) -> None:
    e = np.linspace(8300, 8450, 151)
    mu = 1 / (1 + np.exp(-(e - 8345) / 2))
    path = tmp_path / "two.csv"
    path.write_text("energy,grain_a,grain_b\n" + "\n".join(
        f"{v},{m},{np.exp(-m)}" for v, m in zip(e, mu, strict=True)))
    assert main(["followup", "xanes-spectra", str(path)]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["spectra"][1]["e0_half_ev"] is None
    warnings = [w for w in captured.err.splitlines() if w.startswith("cellqc: warning:")]
    assert len(warnings) == 1 and "grain_b" in warnings[0]


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01\x02binary", b"energy,mu\n1,2\n", b"# XDI/1.0\n# Column.1: energy eV\n",
     b"8300,nan\n" * 20, b"a;b;c\n1;2\n"],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys, content: bytes) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    assert main(["followup", "xanes-spectra", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cellqc: error:") and "internal" not in err[0]


@needs_xdi
def test_lcf_end_members_from_xdi_are_the_calibrated_samples() -> None:
    from core.followup.pipeline import load_references

    refs = load_references([XDI / "NiOH2_rt_01.xdi", XDI / "Ni_metal_rt_01.xdi"])
    assert [r.name for r in refs] == ["NiOH2_rt_01", "Ni_metal_rt_01"]  # no foil channel
    data = np.loadtxt(XDI / "NiOH2_rt_01.xdi")
    cal = X.analyze_spectra_file(XDI / "NiOH2_rt_01.xdi").summary["calibration"]
    np.testing.assert_allclose(refs[0].energies_ev, data[:, 0] + cal["shift_ev"])
    np.testing.assert_allclose(refs[1].energies_ev, np.loadtxt(XDI / "Ni_metal_rt_01.xdi")[:, 0])


@needs_xdi
def test_raw_detector_columns_as_a_plain_table_are_never_silent(tmp_path: Path, capsys) -> None:
    """The reported case: i0, itrans, irefer read as three unrelated 'spectra'."""
    data = np.loadtxt(XDI / "NiOH2_rt_01.xdi")
    path = tmp_path / "columns.txt"  # no header: the channel names are lost
    np.savetxt(path, data)
    rows = X.analyze_spectra(data[:, 0], data[:, 1:], ["i0", "itrans", "irefer"])
    assert [r["normalisation"]["quality"] for r in rows] == ["inverted"] * 3
    assert all(r["e0_half_ev"] is None and r["warnings"] for r in rows)
    assert main(["followup", "xanes-spectra", str(path)]) == 2
    assert "no spectrum with a usable edge" in _err_line(capsys)


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cellqc: error:") and "internal" not in err[-1]
    return err[-1]
