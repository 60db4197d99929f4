"""The real 21700 cell: 100 top slices (728 × 728, uint8) of a lab micro-CT scan, as TIFFs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError
from core.io import NO_VOXEL_SIZE, TiffSliceStack, read_volume
from qc_app.cli import main

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "cell21700_top"
SPACING = (67.94, 33.97, 33.97)  # µm (z, y, x); the files carry no calibration

pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real 21700 slices not present at {DATA.resolve()}"
)


def test_reads_as_uint8_volume_with_explicit_spacing():
    vol = read_volume(DATA, voxel_size=SPACING)
    assert vol.shape == (100, 728, 728)
    assert vol.dtype == np.uint8
    assert vol.spacing_um == SPACING
    assert vol.metadata["format"] == "tiff-folder"
    assert vol.metadata["voxel_size_from"] == "argument"
    assert isinstance(vol.array, TiffSliceStack)  # lazy: one file per slice, read on demand
    files = [Path(f).name for f in vol.metadata["files"]]
    assert files[0] == "im001.tif" and files[-1] == "im100.tif"
    assert files == sorted(files)  # zero-padded names: natural order = lexical order
    middle = vol.slice(50)
    assert middle.shape == (728, 728)
    assert middle.std() > 0  # real image content, not an empty slice


def test_without_voxel_size_says_so():
    with pytest.raises(InputError) as info:
        read_volume(DATA)
    assert NO_VOXEL_SIZE in str(info.value)
    assert "cell21700_top" in str(info.value)


def test_cli_without_voxel_size_says_so(capsys):
    assert main(["inspect", str(DATA)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no voxel size" in err


@pytest.fixture(scope="module")
def inspected(tmp_path_factory):
    """The user's path: ``cellqc inspect`` on the whole scan, no recipe given (chosen from the can)."""
    out = tmp_path_factory.mktemp("real") / "result.json"
    code = main(["inspect", str(DATA), "--voxel-size", "67.94,33.97,33.97", "--quiet", "--json", str(out)])
    result = json.loads(out.read_text())
    return code, result


@pytest.mark.slow
def test_cli_verdict_is_not_fail(inspected):
    """A healthy commercial 21700 is not scrapped: REVIEW at most (docs/validation.md says what
    each remaining finding is, seen on the image)."""
    from core.inspect import validate_result

    code, result = inspected
    validate_result(result)
    assert result["verdict"] != "FAIL", result["reasons"]
    assert code == {"PASS": 0, "REVIEW": 3}[result["verdict"]]
    assert not [f for f in result["findings"] if f["severity"] == "fail"]


@pytest.mark.slow
def test_cli_chooses_the_21700_recipe_from_the_can(inspected):
    _, result = inspected
    sel = result["recipe_selection"]
    assert result["recipe"] == "21700-nmc" and sel["mode"] == "auto" and not sel["mismatch"]
    assert abs(sel["measured_can_outer_diameter_mm"] - 21.2) < 0.2


@pytest.mark.slow
def test_cli_judges_the_can_only_where_it_is_straight(inspected):
    _, result = inspected
    g, m = result["geometry"], result["metrics"]
    first, last = g["roll_slice_range"]
    lo, hi = g["can_judged_slices"]
    assert first <= lo <= hi <= last  # beside the roll's interior only
    # The groove that holds the cap is geometry, above the roll (side view: slices ~40–50).
    grooves = [n for n in g["can_narrowings"] if n["kind"] == "groove"]
    assert len(grooves) == 1
    groove = grooves[0]
    assert groove["z_last"] < first and 30 <= groove["z_deepest"] <= 55 and groove["depth_um"] > 400
    assert not [f for f in result["findings"] if f["detector"] == "can_metrology"]
    # One story: the geometry's diameter and the metrics' range come from the same slices.
    assert m["can_outer_diameter_min_mm"] <= g["can_outer_diameter_mm"] <= m["can_outer_diameter_max_mm"]
    assert m["can_outer_diameter_max_mm"] - m["can_outer_diameter_min_mm"] < 0.1


@pytest.mark.slow
def test_cli_reports_nothing_on_electrode_ends(inspected):
    """The cathode's ends, its one-sided last turn and the coated edge at the roll's top are
    anatomy: reported in the geometry, never as thin sheet or void findings."""
    _, result = inspected
    g = result["geometry"]
    anatomy = g["cathode_anatomy"]
    assert {e["end"] for e in anatomy["ends"]} == {"inner", "outer"}
    outer = [s for s in anatomy["stretches"] if s["end"] == "outer" and s["kind"] == "single_sided"]
    assert outer and 5.0 < outer[0]["length_mm"] < 40.0  # the last part of the outer turn
    last_winding = max(e["winding"] for e in anatomy["ends"])
    band = g["coating_edges"]
    assert band and band[0]["z_first"] == g["roll_slice_range"][0]
    for f in result["findings"]:
        if f["severity"] == "info" or f["detector"] not in ("electrode_thickness", "delamination"):
            continue
        assert f["winding"] < last_winding - 1, f["message"]
        z0, z1 = f["z_range_px"]
        assert z0 > band[0]["z_last"] or z1 > band[0]["z_last"], f["message"]
    # The uncoated tab window is found and set aside (15 mm, mid-roll).
    (zone,) = g["uncoated_zones"]
    assert 10.0 <= zone["arc_length_mm"] <= 20.0 and 6 <= zone["winding"] <= 10


@pytest.mark.slow
def test_cli_one_defect_one_finding(inspected):
    """No two findings of one detector on one sheet within its merge gap (they would be one)."""
    from core.detectors.base import Finding
    from core.findings import merge_parts

    _, result = inspected
    parts = [Finding(detector=f["detector"], severity=f["severity"], centroid_zyx_px=tuple(f["centroid_zyx_px"]),
                     bbox_zyx_px=tuple(f["bbox_zyx_px"]), value=f["value"], unit=f["unit"], message=f["message"],
                     winding=f["winding"], extra={"kind": f.get("kind")}) for f in result["findings"]]
    assert len(merge_parts(parts, tuple(result["spacing_um"]))) == len(parts)


@pytest.mark.slow
def test_cli_with_the_wrong_format_recipe_reviews_instead_of_failing(tmp_path, capsys):
    out = tmp_path / "r18650.json"
    code = main(["inspect", str(DATA), "--voxel-size", "67.94,33.97,33.97", "--quiet", "--recipe", "18650-nmc",
                 "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["recipe_selection"]["mismatch"] and code != 1 and result["verdict"] != "FAIL"
    assert any("recipe 18650-nmc expects a 18.4 mm can; the can measures 21.2 mm" in r for r in result["reasons"])
    assert not [f for f in result["findings"] if f["detector"] == "can_metrology"]


@pytest.fixture(scope="module")
def real_roll_geometry():
    """Geometry of the slices through the roll (60–99) at full slice resolution."""
    from core.geometry import measure_geometry
    from core.inspect import geometry_params
    from core.io import Volume
    from core.recipe import load_recipe

    vol = read_volume(DATA, voxel_size=SPACING)
    sub = Volume(np.stack([vol.slice(z) for z in range(60, 100)]), spacing_um=SPACING, source=str(DATA))
    # With the recipe's geometry parameters, as `cellqc inspect` measures it.
    return sub, measure_geometry(sub, geometry_params(load_recipe("21700-nmc")))


@pytest.mark.slow
def test_real_roll_seam_tab_window_and_no_false_fail(real_roll_geometry):
    """A healthy commercial 21700: its mid-length cathode tab window is found and set aside,
    and the layers' shape around it and around the electrode starts is not a FAIL."""
    from core.detectors import DETECTORS, DetectorContext
    from core.recipe import load_recipe

    sub, g = real_roll_geometry
    rolls = [s for s in g.slices if s.is_roll]
    assert len(rolls) >= 20
    # The electrode starts at one angle in every slice.
    seams = np.array([s.seam_deg for s in rolls])
    assert np.all(np.abs((seams - np.median(seams) + 180) % 360 - 180) <= 10)
    # The uncoated strip where the cathode tab is welded: one, ~15 mm long, mid-roll.
    assert len(g.uncoated_zones) == 1
    zone = g.uncoated_zones[0]
    assert 10.0 <= zone.arc_length_mm <= 20.0 and 6 <= zone.winding <= 10
    recipe = load_recipe("21700-nmc")
    for name in ("collector_deflection", "delamination", "electrode_thickness", "winding_quality"):
        out = DETECTORS[name](DetectorContext(volume=sub, geometry=g, rules=recipe.rules.get(name, {}),
                                              cell=recipe.cell))
        fails = [f.message for f in out.findings if f.severity == "fail"]
        assert not fails, (name, fails)


@pytest.mark.slow
def test_readme_real_data_example_is_what_the_command_says(inspected):
    """Docs are claims: the README's real-data paragraph states the verdict and the numbers this
    very command gives."""
    import re

    _, result = inspected
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Real data example"):]
    section = " ".join(section[: section.index("\n## ", 5)].split())
    geo, metrics = result["geometry"], result["metrics"]
    assert f"Verdict {result['verdict']}" in section
    assert f"picks `{result['recipe_selection']['recipe']}`" in section
    assert f"{geo['windings']} windings at a {geo['pitch_um']:.0f} µm pitch" in section
    assert f"can Ø {geo['can_outer_diameter_mm']:.1f} mm" in section
    assert f"cathode sheet {metrics['cathode_sheet_thickness_median_um']:.0f} µm" in section
    assert f"median {metrics['anode_overhang_median_um'] / 1000:.2f} mm" in section
    groove = [n for n in geo["can_narrowings"] if n["kind"] == "groove"][0]
    assert f"groove (slices {groove['z_first']}–{groove['z_last']}" in section
    window = [f for f in result["findings"] if (f.get("extra") or f).get("kind") == "uncoated_zone"
              or "tab window" in f["message"]]
    assert window and f"winding {window[0]['winding']})" in section
    # The findings the paragraph names: windings and value ranges of the bends and buckles.
    bends = [f for f in result["findings"] if f["detector"] == "collector_deflection" and f["severity"] != "info"]
    lo, hi = min(f["value"] for f in bends), max(f["value"] for f in bends)
    assert f"bent {lo:.0f}–{hi:.0f} µm" in section
    assert re.search(r"collectors of windings [\d, and]+", section)
    named = {int(w) for w in re.findall(r"\d+", re.search(r"collectors of windings ([\d, and]+)", section).group(1))}
    assert named == {f["winding"] for f in bends}
    thin = [f for f in result["findings"] if f["detector"] == "electrode_thickness" and f["severity"] != "info"]
    assert thin, "the paragraph names a thin sheet"
    for f in thin:
        assert f"sheet of winding {f['winding']} {abs(f['value']):.0f} % thin" in section
