"""The real 21700 cell: 100 top slices (728 × 728, uint8) of a lab micro-CT scan, as TIFFs."""

from __future__ import annotations

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


def test_cli_reads_it(capsys):
    # The whole scan is inspected end to end: a verdict (0 PASS, 1 FAIL, 3 REVIEW), not an error.
    assert main(["inspect", str(DATA), "--voxel-size", "67.94,33.97,33.97", "--quiet"]) in (0, 1, 3)
    out = capsys.readouterr().out
    assert out.startswith("cell21700_top: ") and "windings" in out
    assert main(["inspect", str(DATA)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no voxel size" in err


@pytest.fixture(scope="module")
def real_roll_geometry():
    """Geometry of the slices through the roll (60–99) at full slice resolution."""
    from core.geometry import measure_geometry
    from core.io import Volume

    vol = read_volume(DATA, voxel_size=SPACING)
    sub = Volume(np.stack([vol.slice(z) for z in range(60, 100)]), spacing_um=SPACING, source=str(DATA))
    return sub, measure_geometry(sub)


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
