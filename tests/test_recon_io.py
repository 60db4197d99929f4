"""Projections from real files: DXchange, NXtomo, TIFF folders + flat/dark/angles, Xradia.

On the real Savu test scan (``../shared/data/real/projections_savu``: 91 TIFF projections,
one flat, one dark, ``angles.txt`` with 111 values):

- the angle file repeats its first and last value; dropping consecutive repeats leaves one
  angle per projection, -88.2° … 91.8° in 2° steps (the documented rule);
- flat/dark correction and -ln give line integrals with a background of ~0.35–0.39 (the flat
  was recorded brighter than the projections' open beam);
- the centre of rotation by 0°/180° registration (85.83) and by reconstruction sharpness
  (85.8–85.9) agree within 0.3 column, 6 columns right of the detector middle (79.5);
- the same data written as DXchange HDF5 read back identically and give the same centre.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from core.errors import InputError
from core.recon import center as center_mod
from core.recon import find_center
from core.recon.io import match_angles, read_angle_file, read_projections
from core.recon.phantoms import ellipse_image, ellipse_sinogram
from qc_app.cli import main
from tests.cfb import xradia_bytes

SAVU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "projections_savu"
needs_savu = pytest.mark.skipif(
    not (SAVU / "angles.txt").is_file(), reason=f"real projections not found in {SAVU}"
)


def _savu():
    return read_projections(SAVU / "tiffs", flat=SAVU / "flat_00001.tiff",
                            dark=SAVU / "dark_00001.tiff")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("cellqc: error:"), err
    assert "internal error" not in err[-1] and "Traceback" not in "\n".join(err)
    return err[-1]


# ------------------------------------------------------------------------ angle rule


def test_angle_rule_drops_consecutive_repeats_only() -> None:
    distinct = np.arange(-88.2, 92.0, 2.0)
    listed = np.concatenate([[distinct[0]] * 11, distinct[1:-1], [distinct[-1] - 1e-4],
                             [distinct[-1]] * 10])
    angles, note = match_angles(listed, distinct.size, "angles.txt")
    np.testing.assert_allclose(angles, distinct, atol=1e-3)
    assert "20 consecutive repeats dropped" in note
    same, note = match_angles(distinct, distinct.size, "angles.txt")
    assert note == "" and np.array_equal(same, distinct)
    rng = np.random.default_rng(5)
    with pytest.raises(InputError, match="95 angles for 91 projections"):
        match_angles(rng.uniform(0, 180, 95), 91, "angles.txt")
    with pytest.raises(InputError, match="80 angles for 91 projections"):
        match_angles(distinct[:80], 91, "angles.txt")
    with pytest.raises(InputError, match="finite"):
        match_angles(np.r_[distinct[:-1], np.nan], 91, "angles.txt")


@needs_savu
def test_real_angle_file_matches_the_projections() -> None:
    raw = read_angle_file(SAVU / "angles.txt")
    assert raw.size == 111
    angles, note = match_angles(raw, 91, SAVU / "angles.txt")
    assert "20 consecutive repeats dropped" in note and angles.size == 91
    np.testing.assert_allclose(np.diff(angles), 2.0, atol=2e-3)
    assert angles[0] == pytest.approx(-88.2) and angles[-1] == pytest.approx(91.8, abs=1e-3)


# ------------------------------------------------------------------------- real Savu


@needs_savu
def test_real_flat_dark_minus_log() -> None:
    proj = _savu()
    assert proj.format == "tiff-folder" and proj.data.shape == (91, 135, 160)
    assert proj.correction["flats"] == 1 and proj.correction["darks"] == 1
    raw = tifffile.imread(SAVU / "tiffs" / "raw_00000.tiff").astype(np.float64)
    flat = tifffile.imread(SAVU / "flat_00001.tiff").astype(np.float64)
    dark = tifffile.imread(SAVU / "dark_00001.tiff").astype(np.float64)
    den = flat - dark
    t = np.where(den > 0, (raw - dark) / np.where(den > 0, den, 1.0), 0.0)
    t = np.clip(t, 1e-4, None)  # dead flat pixels (the corner one) and noise under the dark
    assert np.count_nonzero(den <= 0) >= 1 and proj.correction["clipped"] >= 1
    np.testing.assert_allclose(proj.data[0], -np.log(t), rtol=1e-5, atol=1e-5)
    assert 0.3 < float(np.median(proj.data[:, :, :10])) < 0.45  # the open-beam offset


@needs_savu
def test_real_centre_two_methods_agree() -> None:
    proj = _savu()
    angles, _ = match_angles(read_angle_file(SAVU / "angles.txt"), 91, "angles")
    reg = find_center(proj.data, angles, method="registration")
    sharp = find_center(proj.data[:, 55:70], angles, method="sharpness")
    assert abs(reg - sharp) <= 0.3, (reg, sharp)
    assert reg - (160 - 1) / 2 > 3.0  # the axis is well right of the middle
    # The open-beam offset (~0.37) is what the background subtraction is for: without it,
    # registration lands a column off (84.77) and the centroid fit 4.5 columns off (81.36).
    sino = proj.data.sum(axis=1)
    assert abs(center_mod._center_registration(sino, angles) - reg) > 0.5
    assert abs(center_mod._center_centroid(sino, angles) - reg) > 2.0
    assert abs(find_center(proj.data, angles, method="centroid") - reg) < 0.6


@needs_savu
def test_real_dxchange_roundtrip_and_cli_json(tmp_path: Path, capsys) -> None:
    raw = np.stack([tifffile.imread(p) for p in sorted((SAVU / "tiffs").glob("raw_*.tiff"))])
    flat = tifffile.imread(SAVU / "flat_00001.tiff")
    dark = tifffile.imread(SAVU / "dark_00001.tiff")
    angles, _ = match_angles(read_angle_file(SAVU / "angles.txt"), raw.shape[0], "angles")
    h5 = tmp_path / "savu_dxchange.h5"
    with h5py.File(h5, "w") as f:
        ex = f.create_group("exchange")
        ex.create_dataset("data", data=raw, chunks=(1, *raw.shape[1:]))
        ex.create_dataset("data_white", data=flat[None])
        ex.create_dataset("data_dark", data=dark[None])
        ex.create_dataset("theta", data=angles).attrs["units"] = "degrees"
    proj = read_projections(h5)
    assert proj.format == "dxchange"
    np.testing.assert_allclose(proj.angles_deg, angles)
    np.testing.assert_allclose(proj.data, _savu().data, rtol=1e-6, atol=1e-6)
    runs = {}
    for name, source in (("h5", [str(h5)]),
                         ("tif", [str(SAVU / "tiffs"), "--flat", str(SAVU / "flat_00001.tiff"),
                                  "--dark", str(SAVU / "dark_00001.tiff"), "--angles",
                                  str(SAVU / "angles.txt")])):
        out, js = tmp_path / f"{name}.tif", tmp_path / f"{name}.json"
        assert main(["recon", *source, "--center", "auto", "--rows", "60:64",
                     "--pixel-size", "0.65", "--out", str(out), "--json", str(js)]) == 0
        runs[name] = json.loads(js.read_text())
        assert tifffile.imread(out).shape == (4, 160, 160)
    capsys.readouterr()
    h5_run, tif_run = runs["h5"], runs["tif"]
    assert h5_run["schema"] == "cellqc.recon/1" and h5_run["format"] == "dxchange"
    assert h5_run["angles_from"] == "file" and tif_run["angles_from"] == "--angles"
    assert len(h5_run["angles_deg"]) == 91
    assert h5_run["center_px"] == pytest.approx(tif_run["center_px"], abs=1e-6)
    assert h5_run["center_method"] == "registration" and "0-based" in h5_run["center_convention"]
    assert h5_run["correction"] == {"flats": 1, "darks": 1, "minus_log": True,
                                   "clipped": h5_run["correction"]["clipped"]}
    assert set(h5_run["timings_s"]) >= {"read", "center", "reconstruct", "write", "total"}
    assert any("consecutive repeats" in n for n in tif_run["notes"])


# ---------------------------------------------------------------------- synthetic files


def _raw_frames(rng, angles, n_rows=6, n_det=96, center=51.3):
    """Intensities of a phantom with the axis at ``center``, plus flats and darks."""
    sino = ellipse_sinogram(64, angles, n_det, center=center) * 0.02  # line integrals ≤ ~1
    p = np.repeat(sino[:, None, :], n_rows, axis=1)
    flat_level = 4000.0 + 300.0 * np.linspace(0, 1, n_det)[None, :]
    dark_level = 100.0
    raw = dark_level + flat_level * np.exp(-p) + rng.normal(0, 2.0, p.shape)
    flats = dark_level + flat_level + rng.normal(0, 2.0, (4, n_rows, n_det))
    darks = dark_level + rng.normal(0, 2.0, (3, n_rows, n_det))
    return p, raw, flats, darks


def test_nxtomo_image_keys_flats_darks_radians(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(11)
    angles = np.linspace(0.0, 180.0, 181)
    p, raw, flats, darks = _raw_frames(rng, angles)
    frames = np.concatenate([darks, flats[:2], raw, flats[2:], raw[:2]])
    keys = np.r_[[2] * 3, [1] * 2, [0] * raw.shape[0], [1] * 2, [3] * 2]
    rot = np.r_[[0.0] * 5, angles, [180.0] * 2, [0.0, 1.0]]
    path = tmp_path / "scan.nxs"
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["definition"] = "NXtomo"
        det = entry.create_group("instrument/detector")
        det.create_dataset("data", data=frames.astype(np.float32))
        det.create_dataset("image_key", data=keys)
        det.create_dataset("x_pixel_size", data=2.5).attrs["units"] = "um"
        entry.create_group("sample").create_dataset(
            "rotation_angle", data=np.radians(rot)).attrs["units"] = "rad"
    proj = read_projections(path)
    assert proj.format == "nxtomo" and proj.data.shape == p.shape
    assert proj.correction["flats"] == 4 and proj.correction["darks"] == 3
    assert proj.pixel_size_um == pytest.approx(2.5)
    np.testing.assert_allclose(proj.angles_deg, angles, atol=1e-9)
    assert float(np.sqrt(np.mean((proj.data - p) ** 2))) < 0.005
    assert any("image_key 3" in n for n in proj.notes)
    js = tmp_path / "r.json"
    assert main(["recon", str(path), "--center", "auto", "--out", str(tmp_path / "r.npy"),
                 "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    assert doc["center_px"] == pytest.approx(51.3, abs=0.15)
    assert doc["pixel_size_um"] == pytest.approx(2.5) and doc["pixel_size_from"] == "file"


def test_dxchange_theta_without_units_in_radians(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    angles = np.linspace(0.0, 180.0, 121)
    _, raw, flats, darks = _raw_frames(rng, angles, n_rows=2)
    path = tmp_path / "dx.h5"
    with h5py.File(path, "w") as f:
        f["exchange/data"] = raw.astype(np.uint16)
        f["exchange/data_white"] = flats.astype(np.uint16)
        f["exchange/data_dark"] = darks.astype(np.uint16)
        f["exchange/theta"] = np.radians(angles)
    proj = read_projections(path)
    np.testing.assert_allclose(proj.angles_deg, angles, atol=1e-9)
    assert any("read as radians" in n for n in proj.notes)


def test_xradia_txrm_projections(tmp_path: Path) -> None:
    pytest.importorskip("olefile")
    rng = np.random.default_rng(4)
    angles = np.linspace(-90.0, 90.0, 181)
    _, raw, flats, _ = _raw_frames(rng, angles, n_rows=4, n_det=96, center=47.0)
    ref = flats.mean(axis=0)
    path = tmp_path / "scan.txrm"
    path.write_bytes(xradia_bytes(raw - 100.0, angles_deg=angles, pixel_size_um=1.3,
                                  reference=ref - 100.0))
    js, out = tmp_path / "x.json", tmp_path / "x.tif"
    assert main(["recon", str(path), "--center", "auto", "--out", str(out), "--json",
                 str(js)]) == 0
    doc = json.loads(js.read_text())
    assert doc["format"] == "xradia" and doc["angles_from"] == "file"
    assert doc["center_px"] == pytest.approx(47.0, abs=0.2)
    assert doc["voxel_size_um"] == pytest.approx(1.3, rel=1e-6)


def test_recon_tiff_is_imagej_calibrated(tmp_path: Path) -> None:
    angles = np.linspace(0, 180, 90, endpoint=False)
    sino = ellipse_sinogram(48, angles) * 0.02
    src = tmp_path / "sino.npy"
    np.save(src, sino)
    out = tmp_path / "rec.tif"
    assert main(["recon", str(src), "--pixel-size", "0.65", "--out", str(out)]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        meta = tif.imagej_metadata
        assert meta["unit"] in ("um", "micron", "\\u00B5m")
        assert meta["spacing"] == pytest.approx(0.65)
        page = tif.pages[0]
        num, den = page.tags["XResolution"].value
        assert num / den == pytest.approx(1 / 0.65, rel=1e-6)  # pixels per µm
        num, den = page.tags["YResolution"].value
        assert num / den == pytest.approx(1 / 0.65, rel=1e-6)
        rec = tif.asarray().reshape(48, 48)
    truth = ellipse_image(48)
    assert np.corrcoef(rec.ravel(), truth.ravel())[0, 1] > 0.8  # measured 0.87 (90 angles)


# ----------------------------------------------------------------------------- errors


def test_bad_projection_inputs_are_one_line(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    angles = np.linspace(0, 180, 30)
    _, raw, flats, darks = _raw_frames(rng, angles, n_rows=2, n_det=32, center=15.5)
    folder = tmp_path / "proj"
    folder.mkdir()
    for i, im in enumerate(raw.astype(np.uint16)):
        tifffile.imwrite(folder / f"p_{i:03d}.tif", im)
    tifffile.imwrite(tmp_path / "flat.tif", flats[0, :, :16].astype(np.float32))
    tifffile.imwrite(tmp_path / "dark.tif", darks[0].astype(np.float32))
    tifffile.imwrite(tmp_path / "swapped.tif", darks[0].astype(np.float32))
    (tmp_path / "angles.txt").write_text(" ".join(str(a) for a in np.linspace(0, 180, 33)))
    out = str(tmp_path / "o.npy")
    cases = [
        (["--flat", str(tmp_path / "flat.tif")], "do not fit"),
        (["--dark", str(tmp_path / "dark.tif")], "no flat"),
        (["--flat", str(tmp_path / "swapped.tif"), "--dark", str(tmp_path / "dark.tif")],
         "not positive"),
        (["--angles", str(tmp_path / "angles.txt")], "33 angles for 30 projections"),
        (["--json", str(tmp_path / "missing" / "o.json")], "output folder does not exist"),
    ]
    for extra, message in cases:
        assert main(["recon", str(folder), "--out", out, *extra]) == 2, extra
        line = _one_line_error(capsys)
        assert message in line, (extra, line)
    assert not Path(out).exists()


def test_reconstruction_size_bomb_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    """A 720 kB file of 3 projections, 1 row × 60000 columns, would need a 14 GB slice."""
    monkeypatch.setenv("CELLQC_MEMORY_BUDGET_GB", "2")  # whatever this machine's RAM
    path = tmp_path / "wide.npy"
    np.save(path, np.ones((3, 1, 60000), np.float32))
    assert main(["recon", str(path), "--out", str(tmp_path / "o.npy")]) == 2
    assert "more than the memory budget" in _one_line_error(capsys)


def test_nxtomo_bad_image_key(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.nxs"
    with h5py.File(path, "w") as f:
        f["entry/instrument/detector/data"] = np.ones((4, 2, 8), np.float32)
        f["entry/instrument/detector/image_key"] = np.array([0, 0, 7, 1])
    assert main(["recon", str(path), "--out", str(tmp_path / "o.npy")]) == 2
    assert "values other than 0, 1, 2, 3" in _one_line_error(capsys)
