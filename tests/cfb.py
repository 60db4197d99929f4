"""A minimal OLE2 compound-file (CFB v3) writer, to make Xradia ``.txrm``/``.xrm`` test files.

olefile reads compound files but cannot create them; this writes just enough of the format
(MS-CFB: 512-byte sectors, one FAT, a mini stream for streams under 4096 bytes, a directory
whose siblings form a chain) for olefile to read every stream back.
"""

from __future__ import annotations

import struct

import numpy as np

SECTOR = 512
MINI = 64
CUTOFF = 4096
FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _pad(data: bytes, size: int) -> bytes:
    return data + b"\0" * (-len(data) % size)


def _entry(name: str, kind: int, left: int, right: int, child: int, start: int, size: int) -> bytes:
    raw = name.encode("utf-16-le") + b"\0\0" if name else b""
    out = raw.ljust(64, b"\0")
    out += struct.pack("<HBB", len(raw), kind, 1)
    out += struct.pack("<III", left, right, child)
    out += b"\0" * 16 + b"\0" * 4 + b"\0" * 16
    out += struct.pack("<IQ", start, size)
    assert len(out) == 128
    return out


def write_cfb(streams: dict[str, bytes]) -> bytes:
    """Bytes of a compound file holding ``streams`` (paths like ``ImageInfo/ImageWidth``)."""
    # Directory: entry 0 the root; storages and streams in path order.
    nodes: list[dict] = [{"name": "Root Entry", "kind": 5, "children": [], "data": b""}]
    index: dict[str, int] = {"": 0}
    for path in sorted(streams):
        parts = path.split("/")
        parent = 0
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            if key not in index:
                leaf = depth == len(parts)
                nodes.append({"name": parts[depth - 1], "kind": 2 if leaf else 1, "children": [],
                              "data": streams[path] if leaf else b""})
                index[key] = len(nodes) - 1
                nodes[parent]["children"].append(index[key])
            parent = index[key]
    # Small streams go to the mini stream, large ones to regular sectors.
    mini_data = b""
    mini_fat: list[int] = []
    big: list[tuple[int, bytes]] = []
    for i, node in enumerate(nodes):
        if node["kind"] != 2:
            continue
        data = node["data"]
        if len(data) < CUTOFF:
            first = len(mini_fat)
            n = max(1, -(-len(data) // MINI)) if data else 0
            node["start"] = first if n else END
            mini_fat += [first + k + 1 for k in range(n - 1)] + ([END] if n else [])
            mini_data += _pad(data, MINI) if data else b""
        else:
            big.append((i, data))
    sectors: list[bytes] = []
    fat: list[int] = []

    def place(data: bytes) -> int:
        chunk = _pad(data, SECTOR)
        n = len(chunk) // SECTOR
        first = len(sectors)
        for k in range(n):
            sectors.append(chunk[k * SECTOR : (k + 1) * SECTOR])
            fat.append(first + k + 1 if k < n - 1 else END)
        return first

    for i, data in big:
        nodes[i]["start"] = place(data)
    root_start = place(mini_data) if mini_data else END
    mini_fat_start = place(struct.pack(f"<{len(mini_fat)}I", *mini_fat)) if mini_fat else END
    n_mini_fat = -(-len(mini_fat) * 4 // SECTOR) if mini_fat else 0
    # Directory entries.
    entries = b""
    for i, node in enumerate(nodes):
        kids = node["children"]
        child = kids[0] if kids else NOSTREAM
        right = NOSTREAM
        for parent in nodes:  # the next sibling in the parent's chain
            if i in parent["children"]:
                j = parent["children"].index(i)
                right = parent["children"][j + 1] if j + 1 < len(parent["children"]) else NOSTREAM
        if node["kind"] == 5:
            start, size = root_start, len(mini_data)
        elif node["kind"] == 2:
            start, size = node["start"], len(node["data"])
        else:
            start, size = 0, 0
        entries += _entry(node["name"], node["kind"], NOSTREAM, right, child, start, size)
    while len(entries) % SECTOR:
        entries += _entry("", 0, NOSTREAM, NOSTREAM, NOSTREAM, 0, 0)
    dir_start = place(entries)
    # FAT sectors (they hold their own entries too).
    n_fat = 1
    while (len(sectors) + n_fat) > n_fat * (SECTOR // 4):
        n_fat += 1
    assert n_fat <= 109
    fat_start = len(sectors)
    fat += [FATSECT] * n_fat
    fat += [FREE] * (n_fat * (SECTOR // 4) - len(fat))
    for k in range(n_fat):
        sectors.append(struct.pack("<128I", *fat[k * 128 : (k + 1) * 128]))
    difat = [fat_start + k for k in range(n_fat)] + [FREE] * (109 - n_fat)
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16
    header += struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
    header += struct.pack("<IIIIIIII", 0, n_fat, dir_start, 0, CUTOFF, mini_fat_start,
                          n_mini_fat, END)
    header += struct.pack("<I", 0)  # DIFAT sectors
    header += struct.pack("<109I", *difat)
    assert len(header) == SECTOR
    return header + b"".join(sectors)


def xradia_bytes(
    images: np.ndarray,
    *,
    angles_deg: np.ndarray | None = None,
    energies_ev: np.ndarray | None = None,
    pixel_size_um: float | None = None,
    reference: np.ndarray | None = None,
    float_data: bool = False,
) -> bytes:
    """An Xradia file in the layout :mod:`core.io.xradia` reads (uint16 or float32 images)."""
    images = np.asarray(images)
    n, ny, nx = images.shape
    streams = {
        "ImageInfo/ImageWidth": struct.pack("<i", nx),
        "ImageInfo/ImageHeight": struct.pack("<i", ny),
        "ImageInfo/ImagesTaken": struct.pack("<i", n),
        "ImageInfo/DataType": struct.pack("<i", 10 if float_data else 5),
    }
    for i in range(n):
        dtype = "<f4" if float_data else "<u2"
        streams[f"ImageData{i // 100 + 1}/Image{i + 1}"] = images[i].astype(dtype).tobytes()
    if angles_deg is not None:
        streams["ImageInfo/Angles"] = np.asarray(angles_deg, "<f4").tobytes()
    if energies_ev is not None:
        streams["ImageInfo/Energy"] = np.asarray(energies_ev, "<f4").tobytes()
    if pixel_size_um is not None:
        streams["ImageInfo/PixelSize"] = struct.pack("<f", pixel_size_um)
    if reference is not None:
        streams["ReferenceData/Image"] = np.asarray(reference, "<f4").tobytes()
    return write_cfb(streams)
