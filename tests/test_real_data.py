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
