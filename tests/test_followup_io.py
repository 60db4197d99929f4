"""Follow-up readers: PyHST2 volumes, XANES layouts (HDF5, TIFF + energies, Xradia), flat fields."""

from __future__ import annotations

import builtins
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from core.errors import InputError
from core.followup import io as fio
from core.followup.xanes import seed_energy_grid


def _write_vol(tmp_path: Path, shape=(4, 5, 6), voxel=0.07) -> tuple[Path, np.ndarray]:
    data = np.arange(np.prod(shape), dtype="<f4").reshape(shape) / 10
    vol = tmp_path / "sample_holo.vol"
    data.tofile(vol)
    (tmp_path / "sample_holo.vol.info").write_text(
        f"! PyHST_SLAVE VOLUME INFO FILE\nNUM_X = {shape[2]}\nNUM_Y = {shape[1]}\nNUM_Z = {shape[0]}\n"
        f"voxelSize = {voxel}\nBYTEORDER = LOWBYTEFIRST\nValMin = 0\nValMax = 1\n"
    )
    return vol, data


def test_pyhst2_vol_with_info(tmp_path: Path) -> None:
    vol, data = _write_vol(tmp_path)
    for path in (vol, tmp_path / "sample_holo.vol.info"):
        volume = fio.read_holo_volume(path)
        assert volume.shape == (4, 5, 6) and volume.spacing_um == (0.07, 0.07, 0.07)
        np.testing.assert_array_equal(np.asarray(volume.array), data)
        assert volume.modality == "holotomography"
    assert fio.detect_kind([vol]) == "holo"


def test_pyhst2_errors_are_one_line(tmp_path: Path) -> None:
    vol, _ = _write_vol(tmp_path)
    with open(vol, "r+b") as fh:
        fh.truncate(40)
    with pytest.raises(InputError, match=r"holds 40 bytes.*float32"):
        fio.read_holo_volume(vol)
    lonely = tmp_path / "other.vol"
    lonely.write_bytes(b"\0" * 16)
    with pytest.raises(InputError, match="without its other.vol.info"):
        fio.read_holo_volume(lonely)


def _transmission(n_e: int, shape=(6, 7)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mu = rng.uniform(0.1, 1.0, (n_e, *shape))
    flat = rng.uniform(900, 1100, (n_e, *shape))
    return mu, flat, flat * np.exp(-mu)


def test_hdf5_xanes_layout_with_flat_field_and_kev(tmp_path: Path) -> None:
    e = seed_energy_grid()
    mu, flat, counts = _transmission(e.size)
    path = tmp_path / "xanes.h5"
    with h5py.File(path, "w") as f:
        f["X_eng"] = e / 1000.0  # keV
        f["img_xanes"] = counts.astype(np.float32)
        f["img_bkg"] = flat.astype(np.float32)
        f["img_dark"] = np.zeros((1, 6, 7), np.float32)
    assert fio.detect_kind([path]) == "xanes"
    stack = fio.read_xanes(path)
    try:
        np.testing.assert_allclose(stack.energies, e)
        assert stack.quantity == "optical-density"
        np.testing.assert_allclose(stack.block(), mu, atol=1e-4)  # -ln(I/I0)
        np.testing.assert_allclose(stack.block(2, 4), mu[:, 2:4], atol=1e-4)
    finally:
        stack.close()


def test_tiff_stack_with_energy_file_unsorted(tmp_path: Path) -> None:
    e = seed_energy_grid()
    order = np.random.default_rng(1).permutation(e.size)
    mu, _, _ = _transmission(e.size)
    tifffile.imwrite(tmp_path / "stack.tif", mu[order].astype(np.float32))
    (tmp_path / "energies.txt").write_text(
        "# energy (eV)\n" + "\n".join(f"{v}" for v in e[order]) + "\n"
    )
    stack = fio.read_xanes(
        tmp_path / "stack.tif", energies=tmp_path / "energies.txt", voxel_size=0.03
    )
    np.testing.assert_allclose(stack.energies, e)
    np.testing.assert_allclose(stack.block(), mu, rtol=1e-6)  # sorted by energy
    assert stack.spacing_um == (0.03, 0.03) and stack.quantity == "as-given"


def test_energies_from_file_names(tmp_path: Path) -> None:
    files = []
    for i, energy in enumerate(seed_energy_grid()[:10]):
        p = tmp_path / f"Ni_{energy:.1f}eV.tif"
        tifffile.imwrite(p, np.full((4, 4), i, np.float32))
        files.append(p)
    stack = fio.read_xanes(files[::-1])
    np.testing.assert_allclose(stack.energies, seed_energy_grid()[:10])
    assert stack.block()[3, 0, 0] == 3


def test_xanes_errors(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((12, 4, 4), np.float32), photometric="minisblack")
    (tmp_path / "e.txt").write_text("\n".join(str(8300 + i) for i in range(11)))
    with pytest.raises(InputError, match="11 energies for 12 images"):
        fio.read_xanes(tmp_path / "s.tif", energies=tmp_path / "e.txt")
    with pytest.raises(InputError, match="no energies"):
        fio.read_xanes(tmp_path / "s.tif")
    with pytest.raises(InputError, match="does not fit"):
        fio.read_xanes(tmp_path / "s.tif", energies=np.arange(12) + 8300.0, flat=np.ones((3, 3)))


def test_xradia_needs_olefile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scan_8345.0eV.xrm"
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 60)
    real_import = builtins.__import__

    def no_olefile(name, *args, **kwargs):
        if name == "olefile":
            raise ImportError("no olefile")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_olefile)
    with pytest.raises(InputError, match="needs the olefile package") as info:
        fio.read_xanes([path])
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert "pip install -e '.[xrm]'" in str(info.value)  # a command that installs it
    assert fio.detect_kind([path]) == "xanes"


def test_xradia_xanes_from_xrm_files(tmp_path: Path) -> None:
    pytest.importorskip("olefile")
    from tests.cfb import xradia_bytes

    e = seed_energy_grid()[::4]  # 16 energies
    mu, flat, counts = _transmission(e.size)
    paths = []
    for i, energy in enumerate(e):  # one .xrm per energy, energy in metadata and name
        path = tmp_path / f"Ni_{i:02d}_{energy:.1f}eV.xrm"
        path.write_bytes(xradia_bytes(counts[i : i + 1], energies_ev=[energy],
                                      pixel_size_um=0.03, reference=flat.mean(axis=0),
                                      float_data=True))
        paths.append(path)
    stack = fio.read_xanes(paths[::-1])  # any file order: sorted by energy
    np.testing.assert_allclose(stack.energies, e, atol=0.01)
    assert stack.spacing_um == pytest.approx((0.03, 0.03))
    assert stack.quantity == "optical-density"  # ReferenceData/Image used as the flat
    od = stack.block()
    expected = -np.log(counts / flat.mean(axis=0))
    np.testing.assert_allclose(od, expected, rtol=1e-4, atol=1e-4)
    txrm = tmp_path / "stack.txrm"  # one file, all energies
    txrm.write_bytes(xradia_bytes(counts, energies_ev=e, float_data=True))
    assert fio.read_xanes(txrm).energies.size == e.size


def test_xradia_absurd_sizes_are_one_line(tmp_path: Path) -> None:
    pytest.importorskip("olefile")
    import struct

    from tests.cfb import write_cfb

    for width, height, message in ((-2, -2, "not 1…"), (70000, 1, "not 1…"), (4, 4, "holds")):
        path = tmp_path / "odd.xrm"
        path.write_bytes(write_cfb({
            "ImageInfo/ImageWidth": struct.pack("<i", width),
            "ImageInfo/ImageHeight": struct.pack("<i", height),
            "ImageInfo/ImagesTaken": struct.pack("<i", 1),
            "ImageData1/Image1": b"\0" * 6,
        }))
        with pytest.raises(InputError, match=message) as info:
            fio.read_xanes([path], energies=[8333.0])
        assert "\n" not in str(info.value)


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    assert fio.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_declared_huge_xanes_stack_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    from core.followup.xanes import edge_energy_map

    monkeypatch.setenv("CELLQC_MEMORY_BUDGET_GB", "1")
    path = tmp_path / "bomb.h5"
    e = seed_energy_grid()
    with h5py.File(path, "w") as f:
        f["energy"] = e
        f.create_dataset("img_xanes", shape=(e.size, 4, 60000, 60000), dtype="f4",
                         chunks=(1, 1, 64, 64), compression="gzip")
    stack = fio.read_xanes(path)  # opening is lazy and cheap
    try:
        with pytest.raises(InputError, match="memory budget"):
            edge_energy_map(stack)
    finally:
        stack.close()


def test_doctor_names_the_command_that_installs_olefile(monkeypatch) -> None:
    import importlib

    from core import doctor

    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == "olefile":
            raise ImportError("No module named 'olefile'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(doctor.importlib, "import_module", fake)
    check = next(c for c in doctor.check_packages() if c.name == "package olefile")
    assert check.status == "warn" and "pip install 'cellqc[xrm]'" in check.fix
    other = next(c for c in doctor.check_packages() if c.name == "package numpy")
    assert other.status == "ok"
