"""Bad input: every case raises one clear InputError naming the file, and the CLI exits 2.

The CLI contract: ``cellqc inspect BAD`` prints exactly one line on stderr
(``cellqc: error: FILE: problem``), no traceback, and exits with code 2.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.io import NO_VOXEL_SIZE, Volume, read_volume
from qc_app.cli import main

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Bad:
    """One bad input: where it is, what the error must say, and how to call the reader."""

    path: Path
    expect: tuple[str, ...]
    voxel_size: str | None = "10"
    dataset: str | None = None
    budget: int | None = None
    name: str = ""  # the file the message must name (default: path.name)
    env: dict[str, str] = field(default_factory=dict)


def _uint16(shape=(6, 16, 16)) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.uint16).reshape(shape)


def _sidecar(tmp: Path, meta: object, payload: bytes, stem: str = "vol") -> Path:
    (tmp / f"{stem}.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    raw = tmp / f"{stem}.raw"
    raw.write_bytes(payload)
    return raw


def _truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


# --- builders: each makes one bad input in tmp and says what the error must contain ---


def missing(tmp: Path) -> Bad:
    return Bad(tmp / "nope.tif", ("no such file",))


def empty_file(tmp: Path) -> Bad:
    (tmp / "empty.tif").write_bytes(b"")
    return Bad(tmp / "empty.tif", ("empty",))


def unknown_format(tmp: Path) -> Bad:
    (tmp / "scan.xyz").write_bytes(b"\x00\x01\x02 something else entirely")
    return Bad(tmp / "scan.xyz", ("unknown volume format", ".xyz"))


def text_named_tif(tmp: Path) -> Bad:
    (tmp / "fake.tif").write_text("hello, I am not an image\n")
    return Bad(tmp / "fake.tif", ("not a TIFF",))


def truncated_tiff(tmp: Path) -> Bad:
    tifffile.imwrite(tmp / "cut.tif", _uint16(), photometric="minisblack")
    return Bad(_truncate(tmp / "cut.tif", 0.6), ("truncated",))


def truncated_compressed_tiff(tmp: Path) -> Bad:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 65535, (6, 32, 32)).astype(np.uint16)
    tifffile.imwrite(tmp / "cutz.tif", data, photometric="minisblack", compression="zlib")
    return Bad(_truncate(tmp / "cutz.tif", 0.5), ("TIFF",))


def corrupt_tiff_ifd(tmp: Path) -> Bad:
    (tmp / "junk.tif").write_bytes(b"II*\x00" + struct.pack("<I", 8) + b"\xff" * 40)
    return Bad(tmp / "junk.tif", ("TIFF",))


def colour_tiff(tmp: Path) -> Bad:
    tifffile.imwrite(tmp / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    return Bad(tmp / "rgb.tif", ("colour",))


def tiff_pages_of_different_shapes(tmp: Path) -> Bad:
    with tifffile.TiffWriter(tmp / "mixed.tif") as tif:
        tif.write(np.zeros((8, 8), np.uint8), photometric="minisblack")
        tif.write(np.zeros((9, 8), np.uint8), photometric="minisblack")
    return Bad(tmp / "mixed.tif", ("image series",))


def tiff_over_budget(tmp: Path) -> Bad:
    tifffile.imwrite(tmp / "zip.tif", _uint16(), photometric="minisblack", compression="zlib")
    return Bad(
        tmp / "zip.tif",
        ("memory budget", "(6, 16, 16)"),
        budget=1000,
        env={"CELLQC_MEMORY_BUDGET_GB": "1e-6"},
    )


def corrupt_hdf5(tmp: Path) -> Bad:
    with h5py.File(tmp / "cut.h5", "w") as f:
        f.create_dataset("v", data=_uint16((20, 64, 64)))
    return Bad(_truncate(tmp / "cut.h5", 0.3), ("HDF5",))


def garbage_h5(tmp: Path) -> Bad:
    (tmp / "garbage.h5").write_bytes(os.urandom(2048))
    return Bad(tmp / "garbage.h5", ("HDF5",))


def ambiguous_hdf5(tmp: Path) -> Bad:
    with h5py.File(tmp / "two.h5", "w") as f:
        f["first"] = _uint16()
        f["second"] = _uint16()
    return Bad(tmp / "two.h5", ("several 3-D datasets", "/first", "/second", "--dataset"))


def hdf5_dataset_not_found(tmp: Path) -> Bad:
    with h5py.File(tmp / "one.h5", "w") as f:
        f["volume"] = _uint16()
    return Bad(tmp / "one.h5", ("'missing' not found", "/volume"), dataset="missing")


def hdf5_4d(tmp: Path) -> Bad:
    with h5py.File(tmp / "4d.h5", "w") as f:
        f["v"] = np.zeros((2, 3, 4, 5), np.float32)
    return Bad(tmp / "4d.h5", ("4-D", "(2, 3, 4, 5)"))


def hdf5_strings(tmp: Path) -> Bad:
    with h5py.File(tmp / "text.h5", "w") as f:
        f.create_dataset("v", data=np.array([[b"ab", b"cd"], [b"ef", b"gh"]]))
    return Bad(tmp / "text.h5", ("unsupported data type",))


def npy_4d(tmp: Path) -> Bad:
    np.save(tmp / "v4.npy", np.zeros((2, 3, 4, 5), np.uint8))
    return Bad(tmp / "v4.npy", ("4-D", "(2, 3, 4, 5)"))


def npy_1d(tmp: Path) -> Bad:
    np.save(tmp / "v1.npy", np.zeros(7, np.uint8))
    return Bad(tmp / "v1.npy", ("1-D",))


def npy_complex(tmp: Path) -> Bad:
    np.save(tmp / "c.npy", np.zeros((2, 3, 3), np.complex64))
    return Bad(tmp / "c.npy", ("complex",))


def npy_object(tmp: Path) -> Bad:
    arr = np.empty((2, 2, 2), dtype=object)
    arr[...] = "x"
    np.save(tmp / "o.npy", arr, allow_pickle=True)
    return Bad(tmp / "o.npy", ("object",))


def npy_bool(tmp: Path) -> Bad:
    np.save(tmp / "b.npy", np.zeros((2, 3, 3), bool))
    return Bad(tmp / "b.npy", ("boolean",))


def npy_strings(tmp: Path) -> Bad:
    np.save(tmp / "s.npy", np.full((2, 3, 3), "abc"))
    return Bad(tmp / "s.npy", ("string",))


def npy_nan(tmp: Path) -> Bad:
    data = np.zeros((5, 8, 8), np.float32)
    data[3, 1, 1] = np.nan
    np.save(tmp / "nan.npy", data)
    return Bad(tmp / "nan.npy", ("NaN", "z=3"))


def npy_zero_size(tmp: Path) -> Bad:
    np.save(tmp / "zero.npy", np.zeros((0, 8, 8), np.uint8))
    return Bad(tmp / "zero.npy", ("zero-size", "(0, 8, 8)"))


def npy_truncated(tmp: Path) -> Bad:
    np.save(tmp / "short.npy", _uint16())
    return Bad(_truncate(tmp / "short.npy", 0.7), ("truncated", "expected"))


def npy_without_voxel_size(tmp: Path) -> Bad:
    np.save(tmp / "plain.npy", _uint16())
    return Bad(tmp / "plain.npy", (NO_VOXEL_SIZE,), voxel_size=None)


def npy_with_dataset_option(tmp: Path) -> Bad:
    np.save(tmp / "ds.npy", _uint16())
    return Bad(tmp / "ds.npy", ("--dataset",), dataset="volume")


def raw_inf_big_endian(tmp: Path) -> Bad:
    data = np.zeros((4, 5, 6), ">f8")
    data[2, 0, 0] = np.inf
    meta = {"shape": [4, 5, 6], "dtype": "float64", "byte_order": "big", "spacing_um": 1}
    return Bad(_sidecar(tmp, meta, data.tobytes(), "inf"), ("Inf", "z=2"))


def raw_without_sidecar(tmp: Path) -> Bad:
    (tmp / "lonely.raw").write_bytes(b"\x00" * 100)
    return Bad(tmp / "lonely.raw", ("sidecar", "lonely.json"))


def raw_bad_json(tmp: Path) -> Bad:
    return Bad(_sidecar(tmp, "{shape: [1, 2", b"\x00" * 8, "badjson"), ("not valid JSON",))


def raw_sidecar_without_shape(tmp: Path) -> Bad:
    meta = {"dtype": "uint8", "byte_order": "little"}
    return Bad(_sidecar(tmp, meta, b"\x00" * 8, "noshape"), ("'shape'",))


def raw_size_mismatch(tmp: Path) -> Bad:
    meta = {"shape": [10, 10, 10], "dtype": "uint16", "byte_order": "little"}
    return Bad(
        _sidecar(tmp, meta, b"\x00" * 1000, "small"),
        ("expected 2000 bytes for shape (10, 10, 10) uint16", "file has 1000"),
    )


def raw_complex_dtype(tmp: Path) -> Bad:
    meta = {"shape": [2, 2, 2], "dtype": "complex64", "byte_order": "little"}
    return Bad(_sidecar(tmp, meta, b"\x00" * 64, "cplx"), ("complex",))


def raw_unknown_dtype(tmp: Path) -> Bad:
    meta = {"shape": [2, 2, 2], "dtype": "floaty", "byte_order": "little"}
    return Bad(_sidecar(tmp, meta, b"\x00" * 64, "floaty"), ("unknown dtype",))


def raw_4d(tmp: Path) -> Bad:
    meta = {"shape": [2, 2, 2, 2], "dtype": "uint8"}
    return Bad(_sidecar(tmp, meta, b"\x00" * 16, "four"), ("4-D", "(2, 2, 2, 2)"))


def folder_shape_mismatch(tmp: Path) -> Bad:
    folder = tmp / "stack"
    folder.mkdir()
    for i, shape in enumerate([(8, 8), (8, 8), (9, 8), (7, 8)], start=1):
        tifffile.imwrite(folder / f"im{i}.tif", np.zeros(shape, np.uint8))
    return Bad(folder, ("im3.tif", "(9, 8)", "im1.tif", "same shape"), name="im3.tif")


def folder_dtype_mismatch(tmp: Path) -> Bad:
    folder = tmp / "stack2"
    folder.mkdir()
    tifffile.imwrite(folder / "im10.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(folder / "im2.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(folder / "im1.tif", np.zeros((8, 8), np.uint8))
    return Bad(folder, ("im2.tif", "uint16"), name="im2.tif")


def folder_with_truncated_slice(tmp: Path) -> Bad:
    folder = tmp / "stack3"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"s{i}.tif", np.zeros((16, 16), np.uint16))
    _truncate(folder / "s1.tif", 0.5)
    return Bad(folder, ("s1.tif", "truncated"), name="s1.tif")


def folder_without_tiffs(tmp: Path) -> Bad:
    folder = tmp / "nothing"
    folder.mkdir()
    (folder / "notes.txt").write_text("no slices here")
    return Bad(folder, ("no TIFF slices",))


def corrupt_zarr(tmp: Path) -> Bad:
    store = tmp / "broken.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{ this is not json")
    return Bad(store, ("Zarr",))


def zarr_ambiguous(tmp: Path) -> Bad:
    root = zarr.open_group(str(tmp / "two.zarr"), mode="w")
    root.create_array("a", shape=(2, 3, 4), dtype="u1")
    root.create_array("b", shape=(2, 3, 4), dtype="u1")
    return Bad(tmp / "two.zarr", ("several 3-D arrays", "a (", "b ("))


def zarr_nan(tmp: Path) -> Bad:
    arr = zarr.create_array(
        store=str(tmp / "nan.zarr"), shape=(6, 4, 4), chunks=(2, 4, 4), dtype="f4"
    )
    data = np.zeros((6, 4, 4), np.float32)
    data[5, 3, 3] = np.nan
    arr[...] = data
    return Bad(tmp / "nan.zarr", ("NaN", "z=5"))


def zarr_file_not_folder(tmp: Path) -> Bad:
    (tmp / "flat.zarr").write_bytes(b"PK\x03\x04 not really a zip")
    return Bad(tmp / "flat.zarr", ("must be a folder",))


BUILDERS: list[Callable[[Path], Bad]] = [
    missing,
    empty_file,
    unknown_format,
    text_named_tif,
    truncated_tiff,
    truncated_compressed_tiff,
    corrupt_tiff_ifd,
    colour_tiff,
    tiff_pages_of_different_shapes,
    tiff_over_budget,
    corrupt_hdf5,
    garbage_h5,
    ambiguous_hdf5,
    hdf5_dataset_not_found,
    hdf5_4d,
    hdf5_strings,
    npy_4d,
    npy_1d,
    npy_complex,
    npy_object,
    npy_bool,
    npy_strings,
    npy_nan,
    npy_zero_size,
    npy_truncated,
    npy_without_voxel_size,
    npy_with_dataset_option,
    raw_inf_big_endian,
    raw_without_sidecar,
    raw_bad_json,
    raw_sidecar_without_shape,
    raw_size_mismatch,
    raw_complex_dtype,
    raw_unknown_dtype,
    raw_4d,
    folder_shape_mismatch,
    folder_dtype_mismatch,
    folder_with_truncated_slice,
    folder_without_tiffs,
    corrupt_zarr,
    zarr_ambiguous,
    zarr_nan,
    zarr_file_not_folder,
]


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_bad_input_raises_input_error_naming_the_file(tmp_path, build):
    bad = build(tmp_path)
    options = {"dataset": bad.dataset} if bad.dataset else {}
    with pytest.raises(InputError) as info:
        read_volume(bad.path, voxel_size=bad.voxel_size, memory_budget_bytes=bad.budget, **options)
    message = str(info.value)
    assert "\n" not in message
    assert (bad.name or bad.path.name) in message
    for part in bad.expect:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_bad_input_cli_exit_2_one_line(tmp_path, build, capsys, monkeypatch):
    bad = build(tmp_path)
    for key, value in bad.env.items():
        monkeypatch.setenv(key, value)
    argv = ["inspect", str(bad.path)]
    if bad.voxel_size:
        argv += ["--voxel-size", bad.voxel_size]
    if bad.dataset:
        argv += ["--dataset", bad.dataset]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("cellqc: error: ")
    assert (bad.name or bad.path.name) in lines[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied(tmp_path):
    path = tmp_path / "secret.npy"
    np.save(path, _uint16())
    path.chmod(0)
    try:
        with pytest.raises(InputError, match="secret.npy: permission denied"):
            read_volume(path, 1)
    finally:
        path.chmod(0o600)


def test_permission_denied_reported_even_as_root(tmp_path, monkeypatch, capsys):
    path = tmp_path / "locked.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    monkeypatch.setattr("core.io.readers.os.access", lambda *_args: False)
    with pytest.raises(InputError, match="locked.tif: permission denied"):
        read_volume(path, 1)
    assert main(["inspect", str(path), "--voxel-size", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_voxel_size_argument(tmp_path, capsys):
    np.save(tmp_path / "v.npy", _uint16())
    with pytest.raises(InputError, match="--voxel-size"):
        read_volume(tmp_path / "v.npy", voxel_size="ten")
    with pytest.raises(InputError, match="positive"):
        read_volume(tmp_path / "v.npy", voxel_size=(1, -1, 1))
    assert main(["inspect", str(tmp_path / "v.npy"), "--voxel-size", "1,2"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_cli_subprocess_bad_and_good(tmp_path):
    exe = REPO / ".venv" / "bin" / "cellqc"
    launcher = "import sys; from qc_app.cli import main; sys.exit(main())"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", launcher]
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 3)
    run = subprocess.run(
        [*cmd, "inspect", str(tmp_path / "bad.tif"), "--voxel-size", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1
    assert "bad.tif" in run.stderr and "Traceback" not in run.stderr
    np.save(tmp_path / "good.npy", _uint16())
    run = subprocess.run(
        [*cmd, "inspect", str(tmp_path / "good.npy"), "--voxel-size", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # A readable volume is inspected: a verdict (not a cell → REVIEW), never an input error.
    assert run.returncode in (0, 1, 3), run.stderr
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------- no allocation before checks


def _minimal_tiff(width: int, height: int, compression: int, payload: bytes) -> bytes:
    """A baseline little-endian greyscale uint8 TIFF with one strip."""
    entries = [
        (256, 4, 1, width),  # ImageWidth LONG
        (257, 4, 1, height),  # ImageLength LONG
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, compression),
        (262, 3, 1, 1),  # MinIsBlack
        (273, 4, 1, 0),  # StripOffsets (patched below)
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, len(payload)),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = data_offset
        fmt = "<HHIHH" if typ == 3 else "<HHII"
        out += (
            struct.pack(fmt, tag, typ, count, value, 0)
            if typ == 3
            else struct.pack(fmt, tag, typ, count, value)
        )
    out += struct.pack("<I", 0)
    return bytes(out) + payload


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_huge_raw_sidecar_errors_on_size_without_allocating(tmp_path):
    raw = _sidecar(
        tmp_path,
        {"shape": [100000, 100000, 100000], "dtype": "uint16", "byte_order": "little"},
        b"\x00" * 64,
        "huge",
    )

    def attempt():
        with pytest.raises(InputError, match=r"expected 2000000000000000 bytes .* file has 64"):
            read_volume(raw, 10)

    assert _peak_bytes(attempt) < 5 * 2**20


def test_compressed_tiff_declaring_huge_page_hits_budget_before_allocating(tmp_path):
    path = tmp_path / "huge.tif"
    path.write_bytes(_minimal_tiff(1_000_000, 1_000_000, 8, zlib.compress(b"\x00" * 100)))

    def attempt(budget):
        with pytest.raises(InputError, match="huge.tif: needs .* memory budget"):
            read_volume(path, 10, memory_budget_bytes=budget)

    assert _peak_bytes(lambda: attempt(None)) < 5 * 2**20  # default budget: 0.75 x RAM
    assert _peak_bytes(lambda: attempt(2**20)) < 5 * 2**20


def test_uncompressed_tiff_declaring_huge_page_is_truncated(tmp_path):
    path = tmp_path / "huge_raw.tif"
    path.write_bytes(_minimal_tiff(100_000, 100_000, 1, b"\x00" * 100))

    def attempt():
        with pytest.raises(InputError, match="huge_raw.tif: truncated TIFF"):
            read_volume(path, 10)

    assert _peak_bytes(attempt) < 5 * 2**20


def test_minimal_tiff_helper_makes_a_valid_file(tmp_path):
    path = tmp_path / "ok.tif"
    path.write_bytes(_minimal_tiff(4, 3, 1, bytes(range(12))))
    vol = read_volume(path, 1)
    np.testing.assert_array_equal(vol.array[0], np.arange(12, dtype=np.uint8).reshape(3, 4))


# ---------------------------------------------------------------- fuzzing

FUZZ = settings(
    # derandomize comes from the profile (tests/conftest.py): fixed in CI, random in fuzz.sh.
    max_examples=int(os.environ.get("CELLQC_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

_DTYPES = [
    "uint8",
    "uint16",
    "int16",
    "float32",
    "float64",
    ">u2",
    "<f4",
    "bool",
    "complex64",
    "object",
    "U3",
    "S2",
    "V4",
    "i4,i4",
    "(2,)u1",
    "M8[s]",
    "floaty",
    "",
    "float128",
]
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


_orders = st.sampled_from(["little", "big", "<", ">", "native", "middle", "LITTLE"])
_keys = ("shape", "dtype", "byte_order", "spacing_um", "header_bytes", "origin_um", "cell_id")


@st.composite
def sidecars(draw) -> dict[str, object]:
    """A plausible sidecar with a few keys dropped or replaced by arbitrary JSON."""
    meta: dict[str, object] = {
        "shape": draw(st.lists(st.integers(1, 6), min_size=2, max_size=3)),
        "dtype": draw(st.sampled_from(_DTYPES[:7])),
        "byte_order": draw(st.sampled_from(["little", "big"])),
    }
    if draw(st.booleans()):
        meta["spacing_um"] = draw(
            st.one_of(st.floats(0.1, 100), st.lists(st.floats(0.1, 100), min_size=3, max_size=3))
        )
    if draw(st.booleans()):
        meta["header_bytes"] = draw(st.integers(0, 64))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.one_of(st.sampled_from(_keys), st.text(max_size=6)))
        if draw(st.booleans()):
            meta.pop(key, None)
        else:
            meta[key] = draw(
                st.one_of(
                    _json_values,
                    st.sampled_from(_DTYPES),
                    _orders,
                    st.lists(st.integers(-3, 2**40), max_size=5),
                    st.lists(st.integers(0, 6), min_size=1, max_size=5),
                )
            )
    return meta


def _expected_size(meta: object) -> int | None:
    try:
        shape = [int(n) for n in meta["shape"]]  # type: ignore[index]
        size = int(np.prod(shape)) * np.dtype(str(meta["dtype"])).itemsize  # type: ignore[index]
        header = meta.get("header_bytes", 0)  # type: ignore[union-attr]
        size += header if isinstance(header, int) and 0 <= header < 10_000 else 0
    except Exception:  # noqa: BLE001 - a broken sidecar has no expected size
        return None
    return size if 0 <= size <= 100_000 else None


@FUZZ
@given(
    document=st.one_of(sidecars(), sidecars(), _json_values),
    size_choice=st.one_of(st.none(), st.integers(0, 3000)),
    voxel_size=st.sampled_from([1.0, None]),
)
def test_fuzz_raw_sidecar(document, size_choice, voxel_size):
    expected = _expected_size(document)
    size = size_choice if size_choice is not None or expected is None else expected
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "fuzz.raw"
        raw.write_bytes(bytes(size or 0))
        (Path(tmp) / "fuzz.json").write_text(json.dumps(document, allow_nan=True))
        try:
            vol = read_volume(raw, voxel_size=voxel_size)
        except InputError as exc:
            event("InputError")
            assert "fuzz" in str(exc) and "\n" not in str(exc)
        else:
            event("Volume")
            assert isinstance(vol, Volume)
            assert vol.array.ndim == 3
            del vol


def _seed_tiffs() -> list[bytes]:
    seeds = []
    data = np.arange(3 * 6 * 5, dtype=np.uint16).reshape(3, 6, 5)
    with tempfile.TemporaryDirectory() as tmp:
        for i, options in enumerate(
            [
                {
                    "imagej": True,
                    "resolution": (2.0, 2.0),
                    "metadata": {"spacing": 1.5, "unit": "um"},
                },
                {"photometric": "minisblack", "compression": "zlib"},
                {"photometric": "minisblack", "tile": (16, 16)},
                {"photometric": "minisblack", "bigtiff": True},
            ]
        ):
            path = Path(tmp) / f"s{i}.tif"
            tifffile.imwrite(path, data, **options)
            seeds.append(path.read_bytes())
    seeds.append(_minimal_tiff(4, 3, 1, bytes(range(12))))
    return seeds


SEEDS = _seed_tiffs()


@st.composite
def mangled_tiffs(draw) -> bytes:
    seed = bytearray(draw(st.sampled_from(SEEDS)))
    action = draw(st.sampled_from(["truncate", "flip", "random", "both"]))
    if action in ("flip", "both"):
        for _ in range(draw(st.integers(1, 12))):
            where = draw(st.integers(0, min(len(seed), 600) - 1))
            seed[where] = draw(st.integers(0, 255))
    if action in ("truncate", "both"):
        seed = seed[: draw(st.integers(0, len(seed)))]
    if action == "random":
        magic = draw(st.sampled_from([b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"]))
        seed = bytearray(magic + draw(st.binary(min_size=0, max_size=300)))
    return bytes(seed)


@FUZZ
@given(blob=mangled_tiffs())
def test_fuzz_tiff_bytes(blob):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.tif"
        path.write_bytes(blob)
        try:
            vol = read_volume(path, voxel_size=1.0, memory_budget_bytes=64 * 2**20)
        except InputError as exc:
            event("InputError")
            assert "fuzz.tif" in str(exc) and "\n" not in str(exc)
        else:
            event("Volume")
            assert isinstance(vol, Volume)
            np.asarray(vol.array[0])
            del vol


# ----------------------------------------------------------- absurd voxel sizes in files


def _absurd_tiff(path: Path, data: np.ndarray) -> Path:
    tifffile.imwrite(path, data, imagej=True, resolution=(1e-7, 1e-7),  # 10 m pixels
                     metadata={"axes": "ZYX", "spacing": 1e12, "unit": "um"})
    return path


def _absurd_h5(path: Path, data: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=data).attrs["spacing_um"] = [1e-9, 1e-9, 1e-9]
    return path


def _absurd_raw(path: Path, data: np.ndarray) -> Path:
    raw = path.with_suffix(".raw")
    data.astype("<u2").tofile(raw)
    raw.with_suffix(".json").write_text(json.dumps(
        {"shape": list(data.shape), "dtype": "uint16", "byte_order": "little",
         "spacing_um": 1e300}))
    return raw


def _absurd_zarr(path: Path, data: np.ndarray) -> Path:
    store = path.with_suffix(".zarr")
    arr = zarr.open_array(store, mode="w", shape=data.shape, chunks=data.shape, dtype="uint16")
    arr[:] = data
    arr.attrs["spacing_um"] = [1e7, 10.0, 10.0]
    return store


@pytest.mark.parametrize("write", [_absurd_tiff, _absurd_h5, _absurd_raw, _absurd_zarr])
def test_absurd_voxel_size_in_file_is_one_line(tmp_path: Path, write) -> None:
    data = np.arange(2 * 4 * 5, dtype=np.uint16).reshape(2, 4, 5)
    path = write(tmp_path / "v.tif", data)
    with pytest.raises(InputError, match="outside .* µm .*--voxel-size") as info:
        read_volume(path)
    assert "\n" not in str(info.value) and str(path.name) in str(info.value)
    vol = read_volume(path, voxel_size=10.0)  # the operator's value replaces the file's
    assert vol.spacing_um == (10.0, 10.0, 10.0)
    np.testing.assert_array_equal(np.asarray(vol.array), data)


@pytest.mark.parametrize("value", ["1e-30", "1e30", "0", "-5", "nan", "inf", "1,2"])
def test_absurd_voxel_size_argument_is_one_line(tmp_path: Path, value: str, capsys) -> None:
    path = tmp_path / "v.npy"
    np.save(path, np.ones((2, 4, 5), np.uint16))
    with pytest.raises(InputError) as info:
        read_volume(path, voxel_size=value)
    assert "\n" not in str(info.value) and "voxel size" in str(info.value)
