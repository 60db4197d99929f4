"""Round trips and laziness of ``core.io``: every format, anisotropic spacing, writers."""

from __future__ import annotations

import gc
import json
import os

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from core.errors import InputError
from core.io import (
    NO_VOXEL_SIZE,
    TiffSliceStack,
    Volume,
    check_finite,
    detect_format,
    iter_slabs,
    memory_budget,
    read_volume,
    unit_to_um,
    validate_volume,
    write_tiff,
    write_zarr,
)
from core.io import writers as writers_module
from core.io._common import natural_key

ANISO = (3.0, 2.0, 1.5)  # (z, y, x) µm, all different


def assert_spacing(volume: Volume, expected) -> None:
    np.testing.assert_allclose(volume.spacing_um, expected, rtol=1e-6, atol=0)


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 60000, size=(6, 20, 16)).astype(np.uint16)


@pytest.fixture
def volume(data) -> Volume:
    return Volume(data, ANISO, origin_um=(10.0, -2.5, 0.25), cell_id="C-42", modality="lab-ct")


# ---------------------------------------------------------------- TIFF files


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_tiff_roundtrip_imagej_dtypes_memory_mapped(tmp_path, data, dtype):
    vol = Volume(data.astype(dtype), ANISO, cell_id="C-1", origin_um=(1.0, 2.0, 3.0))
    path = write_tiff(vol, tmp_path / "cell.tif")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata["spacing"] == ANISO[0]
    back = read_volume(path)
    assert isinstance(back.array, np.memmap)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(back.array), vol.array)
    assert_spacing(back, ANISO)
    assert back.metadata["format"] == "tiff"
    assert back.metadata["voxel_size_from"] == "file"
    assert back.metadata["lazy"] is True
    assert back.cell_id == "C-1"
    assert back.origin_um == (1.0, 2.0, 3.0)


@pytest.mark.parametrize("depth", [2, 5, 9])
def test_imagej_stack_over_4gb_format_is_read_and_its_cut_copy_refused(tmp_path, depth):
    """ImageJ (and tifffile for it) writes a stack over 4 GB in the "truncated" format: one
    page directory, the slices contiguous after it. cellqc refused such files as damaged (a
    validation slab of 15 µm it had written itself); written small with ``truncate=True`` here,
    the same format. A copy cut short is still refused, naming the bytes."""
    rng = np.random.default_rng(depth)
    stack = rng.integers(0, 60000, size=(depth, 24, 18)).astype(np.uint16)
    path = tmp_path / "big_format.tif"
    tifffile.imwrite(path, stack, imagej=True, truncate=True, resolution=(1 / 12.5, 1 / 12.5),
                     metadata={"spacing": 20.0, "unit": "um"})
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].is_truncated and len(tif.pages) == 1
    back = read_volume(path)
    np.testing.assert_array_equal(np.asarray(back.array), stack)
    assert_spacing(back, (20.0, 12.5, 12.5))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size - 2 * 24 * 18])
    with pytest.raises(InputError, match="truncated"):
        read_volume(cut)


@pytest.mark.parametrize("dtype", ["float64", "int32", "uint32", "int8"])
def test_tiff_roundtrip_dtypes_imagej_cannot_hold(tmp_path, data, dtype):
    vol = Volume(data.astype(dtype), ANISO, cell_id="C-2")
    back = read_volume(write_tiff(vol, tmp_path / "cell.tif"))
    np.testing.assert_array_equal(np.asarray(back.array), vol.array)
    assert back.dtype == np.dtype(dtype)
    assert_spacing(back, ANISO)
    assert back.cell_id == "C-2"


@pytest.mark.parametrize(
    "spacing",
    # the extremes of the accepted range (core.io.volume: 0.01 µm – 1 mm)
    [(67.94, 33.97, 33.97), (0.0701, 0.0653, 0.0651), (999.9876, 0.0123, 0.5), (10, 10, 10)],
)
def test_tiff_spacing_recovered_to_1e6(tmp_path, data, spacing):
    back = read_volume(write_tiff(Volume(data, spacing), tmp_path / "v.tif"))
    assert_spacing(back, spacing)


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("micron", 1.0),
        ("um", 1.0),
        ("\\u00B5m", 1.0),  # how ImageJ escapes the micro sign
        ("mm", 1000.0),
        ("nm", 1e-3),
        ("cm", 1e4),
    ],
)
def test_tiff_imagej_units_converted_to_um(tmp_path, data, unit, factor):
    path = tmp_path / "units.tif"
    z, y, x = 20.0, 2.5, 5.0  # µm, inside the accepted range; stored in ``unit``
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(factor / x, factor / y),
        metadata={"axes": "ZYX", "spacing": z / factor, "unit": unit},
    )
    vol = read_volume(path)
    assert_spacing(vol, (z, y, x))


def test_tiff_resolution_one_without_unit_is_unknown(tmp_path, data):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data, photometric="minisblack")  # XResolution = 1/1, no unit
    with pytest.raises(InputError, match="no voxel size in the file; pass --voxel-size UM"):
        read_volume(path)
    vol = read_volume(path, voxel_size=12.5)
    assert vol.spacing_um == (12.5, 12.5, 12.5)
    assert vol.metadata["voxel_size_from"] == "argument"


def test_tiff_resolution_in_centimetres_without_z_assumes_cubic(tmp_path, data):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(
        path,
        data,
        photometric="minisblack",
        resolution=(1e4 / 5.0, 1e4 / 5.0),
        resolutionunit="CENTIMETER",
    )
    vol = read_volume(path)
    assert_spacing(vol, (5.0, 5.0, 5.0))
    assert "cubic" in vol.metadata["voxel_size_note"]


def test_tiff_ome_physical_sizes(tmp_path, data):
    path = tmp_path / "scan.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        photometric="minisblack",
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeXUnit": "mm",
            "PhysicalSizeY": 0.25,
            "PhysicalSizeYUnit": "mm",
            "PhysicalSizeZ": 2.0,
            "PhysicalSizeZUnit": "µm",
        },
    )
    vol = read_volume(path)
    assert_spacing(vol, (2.0, 250.0, 500.0))
    assert vol.cell_id == "scan"


def test_compressed_tiff_is_read_into_memory(tmp_path, data):
    path = tmp_path / "zip.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        compression="zlib",
        resolution=(1 / 1.5, 1 / 2.0),
        metadata={"axes": "ZYX", "spacing": 3.0, "unit": "um"},
    )
    vol = read_volume(path)
    assert type(vol.array) is np.ndarray
    assert vol.metadata["lazy"] is False
    np.testing.assert_array_equal(vol.array, data)
    assert_spacing(vol, ANISO)


def test_2d_tiff_is_one_slice(tmp_path, data):
    path = tmp_path / "slice.tif"
    tifffile.imwrite(
        path, data[0], imagej=True, resolution=(1 / 1.5, 1 / 2.0), metadata={"unit": "um"}
    )
    vol = read_volume(path)
    assert vol.shape == (1, 20, 16)
    np.testing.assert_array_equal(vol.array[0], data[0])
    assert vol.spacing_um[1:] == pytest.approx((2.0, 1.5))


def test_voxel_size_argument_forms_override_file(tmp_path, volume):
    path = write_tiff(volume, tmp_path / "v.tif")
    assert read_volume(path, voxel_size=7).spacing_um == (7.0, 7.0, 7.0)
    assert read_volume(path, voxel_size="67.94,33.97,33.97").spacing_um == (67.94, 33.97, 33.97)
    vol = read_volume(path, voxel_size=[4, 5, 6])
    assert vol.spacing_um == (4.0, 5.0, 6.0)
    assert vol.metadata["voxel_size_from"] == "argument"


def test_cell_id_argument_and_default(tmp_path, data):
    np.save(tmp_path / "CELL-0007.npy", data)
    assert read_volume(tmp_path / "CELL-0007.npy", 10).cell_id == "CELL-0007"
    assert read_volume(tmp_path / "CELL-0007.npy", 10, cell_id="X").cell_id == "X"


# ---------------------------------------------------------------- TIFF folders


def test_natural_sort_key():
    names = ["im10.tif", "im2.tif", "im1.tif", "IM3.tif", "im20b.tif", "im20a.tif"]
    assert sorted(names, key=natural_key) == [
        "im1.tif",
        "im2.tif",
        "IM3.tif",
        "im10.tif",
        "im20a.tif",
        "im20b.tif",
    ]


def _write_slices(folder, data, **kwargs):
    folder.mkdir()
    for z, image in enumerate(data):
        tifffile.imwrite(folder / f"im{z + 1}.tif", image, **kwargs)  # im1 .. im12, unpadded


def test_tiff_folder_natural_order_lazy_stack(tmp_path):
    data = np.stack([np.full((9, 7), z, dtype=np.uint16) for z in range(12)])
    data[:, 2, 3] = 1000 + np.arange(12)
    folder = tmp_path / "slices"
    _write_slices(
        folder,
        data,
        imagej=True,
        resolution=(1 / 1.5, 1 / 2.0),
        metadata={"spacing": 3.0, "unit": "micron"},
    )
    (folder / "LICENSE").write_text("not an image")
    (folder / "._im1.tif").write_bytes(b"AppleDouble junk")
    assert detect_format(folder) == "tiff-folder"
    vol = read_volume(folder)
    assert isinstance(vol.array, TiffSliceStack)
    assert vol.shape == (12, 9, 7)
    assert vol.metadata["format"] == "tiff-folder"
    assert [os.path.basename(f) for f in vol.metadata["files"]][:3] == [
        "im1.tif",
        "im2.tif",
        "im3.tif",
    ]
    np.testing.assert_array_equal(np.asarray(vol.array), data)
    np.testing.assert_array_equal(vol.array[10], data[10])
    np.testing.assert_array_equal(vol.array[2:11:3, 1:4], data[2:11:3, 1:4])
    np.testing.assert_array_equal(vol.array[..., 3], data[..., 3])
    np.testing.assert_array_equal(vol.array[-1, 2], data[-1, 2])
    np.testing.assert_array_equal(vol.array[[0, 5]], data[[0, 5]])
    assert vol.slice(4).dtype == np.float32
    assert_spacing(vol, ANISO)
    assert vol.cell_id == "slices"


def test_tiff_folder_without_metadata_needs_voxel_size(tmp_path, data):
    folder = tmp_path / "raw_slices"
    _write_slices(folder, data, photometric="minisblack")
    with pytest.raises(InputError, match=NO_VOXEL_SIZE):
        read_volume(folder)
    vol = read_volume(folder, voxel_size=(67.94, 33.97, 33.97))
    assert vol.shape == data.shape
    np.testing.assert_array_equal(vol.array[:], data)


# ---------------------------------------------------------------- HDF5 / NeXus


def test_hdf5_plain_lazy_and_kept_open(tmp_path, data):
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("recon/volume", data=data, chunks=(2, 20, 16), compression="gzip")
        ds.attrs["spacing_um"] = ANISO
        f.create_dataset("recon/dark", data=data[0])  # a 2-D extra must not confuse the choice
        f.attrs["cell_id"] = "H5-1"
    vol = read_volume(path)
    assert isinstance(vol.array, h5py.Dataset)
    assert vol.metadata["format"] == "hdf5"
    assert vol.metadata["dataset"] == "/recon/volume"
    assert isinstance(vol.metadata["h5file"], h5py.File)
    gc.collect()
    np.testing.assert_array_equal(vol.array[2:4], data[2:4])
    assert_spacing(vol, ANISO)
    assert vol.cell_id == "H5-1"


def test_hdf5_pixel_size_with_units_and_dataset_option(tmp_path, data):
    path = tmp_path / "two.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("a", data=data)
        b = f.create_dataset("b", data=data[::-1])
        b.attrs["pixel_size"] = 0.01
        b.attrs["units"] = "mm"
    vol = read_volume(path, dataset="b")
    np.testing.assert_array_equal(vol.array[...], data[::-1])
    assert_spacing(vol, (10.0, 10.0, 10.0))
    assert vol.metadata["dataset"] == "/b"


def test_hdf5_2d_dataset_is_one_slice(tmp_path, data):
    path = tmp_path / "image.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=data[0]).attrs["voxel_size_um"] = 1.5
    vol = read_volume(path)
    assert vol.shape == (1, 20, 16)
    np.testing.assert_array_equal(vol.array[0], data[0])


def test_nexus_nxtomo_entry(tmp_path, data):
    path = tmp_path / "tomo.nxs"
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["definition"] = "NXtomo"
        det = entry.create_group("instrument/detector")
        det.attrs["NX_class"] = "NXdetector"
        det["data"] = data
        for key in ("x_pixel_size", "y_pixel_size"):
            det[key] = 0.65
            det[key].attrs["units"] = "um"
        nxdata = entry.create_group("data")
        nxdata.attrs["NX_class"] = "NXdata"
        nxdata.attrs["signal"] = "data"
        nxdata["data"] = det["data"]  # hard link, as NXtomo does
        f.create_dataset("other/stack", data=data)  # ignored: NeXus says which is the data
    vol = read_volume(path)
    assert vol.metadata["format"] == "nexus"
    assert vol.metadata["nexus_definition"] == "NXtomo"
    np.testing.assert_array_equal(vol.array[...], data)
    assert_spacing(vol, (0.65, 0.65, 0.65))


def test_nexus_nxdata_axes_give_spacing(tmp_path, data):
    path = tmp_path / "recon.nxs"
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        nxdata = entry.create_group("reconstruction")
        nxdata.attrs["NX_class"] = "NXdata"
        nxdata.attrs["signal"] = "volume"
        nxdata.attrs["axes"] = ["z", "y", "x"]
        nxdata["volume"] = data
        for name, step, n in zip("zyx", ANISO, data.shape, strict=True):
            nxdata[name] = np.arange(n) * step / 1000.0
            nxdata[name].attrs["units"] = "mm"
    vol = read_volume(path)
    assert vol.metadata["format"] == "nexus"
    assert_spacing(vol, ANISO)


# ---------------------------------------------------------------- Zarr


def test_zarr_roundtrip_lazy(tmp_path, volume):
    path = write_zarr(volume, tmp_path / "cell.zarr", chunks=(2, 8, 8))
    back = read_volume(path)
    assert isinstance(back.array, zarr.Array)
    assert not isinstance(back.array, np.ndarray)
    assert back.array.chunks == (2, 8, 8)
    np.testing.assert_array_equal(back.array[...], volume.array)
    assert_spacing(back, ANISO)
    assert back.origin_um == volume.origin_um
    assert back.cell_id == "C-42"
    assert back.metadata["format"] == "zarr"
    assert dict(zarr.open(str(path), mode="r").attrs)["spacing_um"] == list(ANISO)


def test_write_zarr_replaces_existing_store(tmp_path, volume):
    path = tmp_path / "v.zarr"
    write_zarr(volume, path)
    smaller = Volume(np.asarray(volume.array)[:2], (1, 1, 1), cell_id="new")
    write_zarr(smaller, path)
    back = read_volume(path)
    assert back.shape == (2, 20, 16)
    assert back.cell_id == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zarr"]


def test_zarr_group_dataset_and_group_attrs(tmp_path, data):
    path = tmp_path / "group.zarr"
    root = zarr.open_group(str(path), mode="w")
    scan = root.create_group("scan")
    scan.attrs["spacing_um"] = list(ANISO)
    scan.create_array("vol", shape=data.shape, dtype=data.dtype)[...] = data
    scan.create_array("mask", shape=data.shape, dtype="u1")
    vol = read_volume(path, dataset="scan/vol")
    np.testing.assert_array_equal(vol.array[...], data)
    assert_spacing(vol, ANISO)
    assert vol.metadata["dataset"] == "scan/vol"


def test_zarr_ome_multiscales(tmp_path, data):
    path = tmp_path / "ome.zarr"
    root = zarr.open_group(str(path), mode="w")
    root.create_array("0", shape=data.shape, dtype=data.dtype)[...] = data
    root.create_array("1", shape=(3, 10, 8), dtype=data.dtype)
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    root.attrs["multiscales"] = [
        {
            "axes": axes,
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": list(ANISO)}],
                },
                {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [6, 4, 3]}]},
            ],
        }
    ]
    vol = read_volume(path)
    assert vol.shape == data.shape
    assert_spacing(vol, ANISO)
    assert vol.cell_id == "ome"


# ---------------------------------------------------------------- NumPy and raw


def test_npy_memory_mapped(tmp_path, data):
    np.save(tmp_path / "v.npy", data)
    vol = read_volume(tmp_path / "v.npy", voxel_size=ANISO)
    assert isinstance(vol.array, np.memmap)
    assert vol.metadata["format"] == "npy"
    np.testing.assert_array_equal(vol.array, data)
    assert_spacing(vol, ANISO)


def test_npy_fortran_order_and_2d(tmp_path, data):
    np.save(tmp_path / "f.npy", np.asfortranarray(data))
    np.testing.assert_array_equal(read_volume(tmp_path / "f.npy", 1).array, data)
    np.save(tmp_path / "img.npy", data[0])
    vol = read_volume(tmp_path / "img.npy", 1)
    assert vol.shape == (1, 20, 16)
    assert isinstance(vol.array, np.memmap)


@pytest.mark.parametrize(
    ("byte_order", "header", "spacing", "via_json"),
    [
        ("little", 0, list(ANISO), False),
        ("big", 0, list(ANISO), False),
        ("big", 512, 2.5, True),
        ("little", 17, [2.5, 2.5, 2.5], True),
    ],
)
def test_raw_with_sidecar(tmp_path, data, byte_order, header, spacing, via_json):
    dtype = np.dtype(np.float32).newbyteorder("<" if byte_order == "little" else ">")
    values = data.astype(dtype)
    raw = tmp_path / "vol.raw"
    raw.write_bytes(b"\xab" * header + values.tobytes())
    meta = {
        "shape": list(data.shape),
        "dtype": "float32",
        "byte_order": byte_order,
        "spacing_um": spacing,
        "header_bytes": header,
        "cell_id": "RAW-9",
    }
    (tmp_path / "vol.json").write_text(json.dumps(meta))
    vol = read_volume(tmp_path / "vol.json" if via_json else raw)
    assert isinstance(vol.array, np.memmap)
    assert vol.array.dtype.byteorder == (">" if byte_order == "big" else dtype.byteorder)
    np.testing.assert_array_equal(vol.array, data.astype(np.float32))
    expected = spacing if isinstance(spacing, list) else [spacing] * 3
    assert_spacing(vol, expected)
    assert vol.source == str(raw)
    assert vol.cell_id == "RAW-9"
    assert vol.metadata["format"] == "raw"


def test_raw_uint8_needs_no_byte_order_and_dtype_may_carry_it(tmp_path, data):
    (tmp_path / "a.raw").write_bytes(data.astype(np.uint8).tobytes())
    (tmp_path / "a.json").write_text(json.dumps({"shape": list(data.shape), "dtype": "uint8"}))
    assert read_volume(tmp_path / "a.raw", 1).dtype == np.uint8
    (tmp_path / "b.raw").write_bytes(data.astype(">u2").tobytes())
    (tmp_path / "b.json").write_text(json.dumps({"shape": list(data.shape), "dtype": ">u2"}))
    np.testing.assert_array_equal(read_volume(tmp_path / "b.raw", 1).array, data)


def test_lazy_formats_may_exceed_memory_budget(tmp_path, data):
    np.save(tmp_path / "v.npy", data)
    # The whole volume may exceed the budget (it is read slice by slice); one slice must fit.
    vol = read_volume(tmp_path / "v.npy", 1, memory_budget_bytes=1000)  # a slice is 640 bytes
    assert vol.nbytes > 1000


# ---------------------------------------------------------------- writers


def test_write_tiff_from_lazy_big_endian_source(tmp_path, data):
    raw = tmp_path / "be.raw"
    raw.write_bytes(data.astype(">u2").tobytes())
    meta = {"shape": list(data.shape), "dtype": "uint16", "byte_order": "big", "spacing_um": 4}
    (tmp_path / "be.json").write_text(json.dumps(meta))
    source = read_volume(raw)
    back = read_volume(write_tiff(source, tmp_path / "out.tif"))
    np.testing.assert_array_equal(back.array, data)
    assert_spacing(back, (4, 4, 4))


def test_write_tiff_is_atomic(tmp_path, volume, monkeypatch):
    path = tmp_path / "cell.tif"
    path.write_bytes(b"previous good file")

    def broken(vol, dtype):
        yield np.zeros(vol.shape[1:], dtype)
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers_module, "_slices", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_tiff(volume, path)
    assert path.read_bytes() == b"previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.tif"]
    with pytest.raises(RuntimeError):
        write_tiff(volume, tmp_path / "new.tif")
    assert not (tmp_path / "new.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.tif"]


def test_write_zarr_is_atomic(tmp_path, volume, monkeypatch):
    path = tmp_path / "v.zarr"
    write_zarr(volume, path)

    class Exploding:
        shape, dtype = volume.array.shape, volume.array.dtype

        def __getitem__(self, key):
            raise RuntimeError("read error")

    bad = Volume(volume.array, ANISO)
    bad.array = Exploding()
    with pytest.raises(RuntimeError):
        write_zarr(bad, path)
    np.testing.assert_array_equal(read_volume(path).array[...], volume.array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.zarr"]


def test_writers_refuse_unsupported_dtype(tmp_path):
    vol = Volume(np.zeros((2, 3, 3), dtype=bool), 1.0)
    with pytest.raises(InputError, match="boolean"):
        write_tiff(vol, tmp_path / "b.tif")
    with pytest.raises(InputError, match="boolean"):
        write_zarr(vol, tmp_path / "b.zarr")


# ---------------------------------------------------------------- validation helpers


class SpyArray:
    """A lazy-array stand-in recording which z-ranges were read."""

    def __init__(self, array: np.ndarray):
        self._array = array
        self.shape, self.dtype = array.shape, array.dtype
        self.reads: list[int] = []

    def __getitem__(self, key):
        out = self._array[key]
        self.reads.append(len(out) if np.ndim(out) == 3 else 1)
        return out


def test_check_finite_reads_in_bounded_slabs():
    data = np.zeros((40, 32, 32), dtype=np.float32)  # 4 kB per slice
    spy = SpyArray(data)
    check_finite(spy, "spy", slab_bytes=16 * 1024)
    assert sum(spy.reads) == 40
    assert max(spy.reads) <= 4
    data[33, 5, 5] = np.nan
    spy = SpyArray(data)
    with pytest.raises(InputError, match=r"NaN values \(first in slice z=33\)"):
        check_finite(spy, "spy", slab_bytes=16 * 1024)
    assert max(spy.reads) <= 4


def test_check_finite_on_memmap_in_chunks(tmp_path):
    data = np.ones((64, 64, 64), dtype=np.float32)
    data[50, 0, 0] = -np.inf
    np.save(tmp_path / "big.npy", data)
    mm = np.load(tmp_path / "big.npy", mmap_mode="r")
    assert [len(s) for _, s in iter_slabs(mm, slab_bytes=64 * 64 * 4 * 8)] == [8] * 8
    with pytest.raises(InputError, match=r"Inf values \(first in slice z=50\)"):
        check_finite(mm, "big.npy", slab_bytes=64 * 64 * 4 * 8)


def test_check_finite_tolerates_sum_overflow():
    check_finite(np.full((3, 4, 4), 3e38, dtype=np.float32), "x")
    check_finite(np.full((3, 4, 4), 60000, dtype=np.float16), "x")


def test_validate_volume(data):
    validate_volume(Volume(data, 1.0))
    bad = Volume(data.astype(np.float32), 1.0, source="mem")
    bad.array[1, 1, 1] = np.nan
    with pytest.raises(InputError, match="mem: contains NaN"):
        validate_volume(bad)


def test_memory_budget_sources(monkeypatch):
    monkeypatch.delenv("CELLQC_MEMORY_BUDGET_GB", raising=False)
    assert memory_budget(1234) == 1234
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_budget() == int(0.75 * physical)
    monkeypatch.setenv("CELLQC_MEMORY_BUDGET_GB", "2")
    assert memory_budget() == 2 * 2**30
    assert memory_budget(10) == 10
    monkeypatch.setenv("CELLQC_MEMORY_BUDGET_GB", "lots")
    with pytest.raises(InputError, match="CELLQC_MEMORY_BUDGET_GB"):
        memory_budget()


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("micron", 1.0),
        ("Microns", 1.0),
        ("µm", 1.0),
        ("μm", 1.0),
        ("um", 1.0),
        (b"mm", 1e3),
        ("nm", 1e-3),
        ("cm", 1e4),
        ("micrometer", 1.0),
        ("pixel", None),
        ("", None),
        (None, None),
    ],
)
def test_unit_to_um(unit, factor):
    assert unit_to_um(unit) == factor


def test_detect_format_by_content_not_extension(tmp_path, data):
    np.save(tmp_path / "x.npy", data)
    os.rename(tmp_path / "x.npy", tmp_path / "x.dat")
    assert detect_format(tmp_path / "x.dat") == "npy"
    tifffile.imwrite(tmp_path / "t.bin", data, photometric="minisblack")
    assert detect_format(tmp_path / "t.bin") == "tiff"
    with h5py.File(tmp_path / "h.data", "w") as f:
        f["v"] = data
    assert detect_format(tmp_path / "h.data") == "hdf5"
    assert read_volume(tmp_path / "h.data", 1).shape == data.shape
