"""Recipes, verdicts, the `cellqc inspect` and `cellqc demo` commands, and the real 21700 scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import RecipeError
from core.inspect import decide_verdict, inspect_volume, validate_result
from core.io import write_tiff
from core.io.volume import Volume
from core.recipe import available_recipes, load_recipe
from qc_app.cli import main
from tests.synthetic import defective_cell, healthy_cell

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "cell21700_top"


# ------------------------------------------------------------------ recipes
def test_shipped_recipes_load_with_hash():
    assert {"18650-nmc", "21700-nmc"} <= set(available_recipes())
    for name in ("18650-nmc", "21700-nmc"):
        recipe = load_recipe(name)
        assert recipe.name == name and len(recipe.sha256) == 64
        assert recipe.rule("delamination", "fail_volume_mm3") == pytest.approx(0.001)
        assert recipe.rule("collector_deflection", "fail_um") == 60
        assert recipe.rule("electrode_thickness", "fail_deviation") == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('name = "18650-nmc"', 'name = ""'), "name is missing"),
        (lambda t: t.replace("fail_um = 60.0", 'fail_um = "sixty"'), "must be a number"),
        (lambda t: t.replace("review_um = 30.0", "review_um = 90.0"), "review_um is above fail_um"),
        (lambda t: t.replace("fail_deviation = 0.20", "fail_deviation = 3.0"), "outside"),
        (lambda t: t.replace('enabled = ["collector_deflection",', 'enabled = ["xray_vision", "collector_deflection",'),
         "unknown detector"),
        (lambda t: t + "\n[rules.delamination_typo]\nx = 1\n", "unknown key"),
        (lambda t: t.replace("[cell]", "[cell"), "TOML syntax error"),
    ],
)
def test_bad_recipes_give_one_clear_error(tmp_path, edit, message):
    text = (Path(load_recipe("18650-nmc").source)).read_text(encoding="utf-8")
    path = tmp_path / "bad.toml"
    path.write_text(edit(text), encoding="utf-8")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert message in str(err.value) and "bad.toml" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_recipe_name_lists_the_shipped_ones():
    with pytest.raises(RecipeError, match="18650-nmc"):
        load_recipe("no-such-recipe")


def test_verdict_rules():
    fail = {"id": "D1", "severity": "fail", "rule": "void 0.002 mm³ ≥ 0.001 mm³", "message": "void"}
    review = {"id": "C1", "severity": "review", "rule": "deflection 40 µm ≥ 30 µm", "message": "bend"}
    info = {"id": "D2", "severity": "info", "rule": "", "message": "speck"}
    assert decide_verdict([info], None)[0] == "PASS"
    verdict, reasons = decide_verdict([review, info], None)
    assert verdict == "REVIEW" and "C1" in reasons[0] and "30 µm" in reasons[0]
    verdict, reasons = decide_verdict([fail, review], None)
    assert verdict == "FAIL" and reasons[0].startswith("FAIL:") and "0.001 mm³" in reasons[0]


# ------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def small_defective_tiff(tmp_path_factory):
    cell = defective_cell(1)  # 25 µm voxels: a quick inspection
    path = tmp_path_factory.mktemp("cells") / "defective.tif"
    write_tiff(cell.volume, path)
    return path


@pytest.mark.slow
def test_inspect_writes_valid_json_report_and_log(small_defective_tiff, tmp_path, capsys):
    out = tmp_path / "result.json"
    pdf = tmp_path / "report.pdf"
    db = tmp_path / "log.db"
    code = main(["inspect", str(small_defective_tiff), "--json", str(out), "--report", str(pdf), "--db", str(db),
                 "--cell-id", "CELL-7"])
    captured = capsys.readouterr()
    result = json.loads(out.read_text(encoding="utf-8"))
    validate_result(result)
    assert code == 1 and result["verdict"] == "FAIL" and result["cell_id"] == "CELL-7"
    assert captured.out.splitlines()[0] == "CELL-7: FAIL"
    assert "[100.0%]" in captured.err  # progress on stderr
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.read_bytes().rstrip().endswith(b"%%EOF")
    from core.store import list_inspections, open_log

    rows = list_inspections(open_log(db))
    assert len(rows) == 1 and rows[0]["verdict"] == "FAIL" and rows[0]["status"] == "complete"


@pytest.mark.slow
def test_inspect_exit_codes_for_pass_and_input_errors(tmp_path, capsys):
    cell = healthy_cell(4)
    path = tmp_path / "healthy.tif"
    write_tiff(cell.volume, path)
    assert main(["inspect", str(path), "--quiet"]) == 0
    assert main(["inspect", str(tmp_path / "missing.tif")]) == 2
    assert main(["inspect", str(path), "--recipe", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("cellqc: error:") for line in err[-2:])
    assert "Traceback" not in "\n".join(err)


def test_volume_without_a_cell_is_a_review_not_a_crash():
    blank = Volume(np.random.default_rng(0).normal(0, 1, (2, 200, 200)).astype(np.float32), spacing_um=20.0)
    from core.errors import InputError

    with pytest.raises(InputError, match="no cylindrical can"):
        inspect_volume(blank)


@pytest.mark.slow
def test_demo_runs_the_full_inspection(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CELLQC_HOME", str(tmp_path))
    code = main(["demo", "--slices", "8"])
    out = capsys.readouterr().out
    assert code == 1 and "FAIL" in out
    result = json.loads((tmp_path / "demo" / "demo_result.json").read_text(encoding="utf-8"))
    validate_result(result)
    truth = json.loads((tmp_path / "demo" / "demo_cell.truth.json").read_text(encoding="utf-8"))
    kinds = {d["kind"] for d in truth["defects"]}
    found = {f["detector"] for f in result["findings"] if f["severity"] != "info"}
    # Every injected kind of defect is among the FAIL / REVIEW findings of the demo.
    expected = {"collector_deflection": "collector_deflection", "delamination": "delamination",
                "coating_patch": "electrode_thickness", "foreign_particle": "foreign_particle"}
    assert {expected[k] for k in kinds} <= found
    assert (tmp_path / "demo" / "demo_report.pdf").stat().st_size > 10_000
    assert (tmp_path / "cellqc.db").exists()


# ------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def real_inspection():
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")
    from core.io import read_volume

    volume = read_volume(REAL, voxel_size=(67.94, 33.97, 33.97))
    # Every third slice (spacing scaled): keeps the test quick, keeps cap, headspace and roll.
    picks = list(range(0, 100, 3))
    sub = Volume(np.stack([volume.slice(z) for z in picks]), spacing_um=(3 * 67.94, 33.97, 33.97),
                 source=str(REAL), cell_id="real-21700")
    return picks, inspect_volume(sub, "21700-nmc")


@pytest.mark.slow
def test_real_21700_runs_end_to_end_without_findings_in_cap_or_headspace(real_inspection):
    picks, ins = real_inspection
    validate_result(ins.result)
    geo = ins.result["geometry"]
    assert 20.5 < geo["can_outer_diameter_mm"] < 21.8
    assert 15 <= geo["windings"] <= 30
    roll = [picks[i] for i in ins.geometry.roll_slices]
    assert min(roll) >= 60  # the roll starts near slice 70
    for f in ins.result["findings"]:
        z_original = picks[int(round(f["centroid_zyx_px"][0]))]
        assert z_original >= 60, f  # nothing in the cap or the headspace
    metrics = ins.result["metrics"]
    assert 100 < metrics["cathode_sheet_thickness_median_um"] < 250
