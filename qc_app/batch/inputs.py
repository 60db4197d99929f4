"""What a batch inspects: paths, globs and manifests, and the fingerprint of each input.

A batch argument is one of

* a volume: a file (TIFF, HDF5/NeXus, ``.npy``, raw + JSON sidecar) or a folder (a Zarr
  store or a folder of TIFF slices);
* a glob (``scans/*.tif``, ``line3/**/*.zarr``; ``**`` recurses);
* a manifest: a ``.txt``/``.lst`` file with one volume per line, or a ``.csv``/``.tsv`` file
  with a ``path`` column and optional ``cell_id`` and ``voxel_size`` columns. Blank lines
  and lines starting with ``#`` are skipped; relative paths are relative to the manifest's folder.

The fingerprint of an input (size, modification time, number of files, optionally the
SHA-256 of its bytes) decides whether a cell inspected before is the same, unchanged file.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError

#: Extensions of manifest files (anything else is a volume).
MANIFEST_SUFFIXES = (".txt", ".lst", ".list", ".csv", ".tsv")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BatchItem:
    """One volume to inspect.

    Attributes
    ----------
    path : str
        Absolute path of the volume (file or folder).
    cell_id : str or None
        The cell's id when the manifest gives one; else the file's own record or its stem.
    voxel_size : str or None
        Voxel size (µm, one number or ``z,y,x``) when the manifest gives one.
    """

    path: str
    cell_id: str | None = None
    voxel_size: str | None = None


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the bytes of an input without reading them all.

    Attributes
    ----------
    size_bytes : int
        File size, or the total size of the files of a folder.
    mtime_ns : int
        Modification time (ns), the newest over a folder's files.
    n_files : int
        1 for a file; the number of files of a folder.
    sha256 : str or None
        SHA-256 of the bytes (files in sorted relative-path order for a folder) when asked.
    """

    size_bytes: int
    mtime_ns: int
    n_files: int = 1
    sha256: str | None = None


def _is_glob(text: str) -> bool:
    return any(c in _GLOB_CHARS for c in text)


def _clean_cell(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def read_manifest(path: str | os.PathLike[str]) -> list[BatchItem]:
    """The volumes listed in a manifest file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.txt``/``.lst``/``.list`` file (one path per line) or a ``.csv``/``.tsv`` file
        with a header naming a ``path`` column (optional ``cell_id``, ``voxel_size``).

    Returns
    -------
    list of BatchItem
        In file order; globs inside the manifest are expanded.

    Raises
    ------
    core.errors.InputError
        Unreadable file, a CSV without a ``path`` column, or no entries.
    """
    manifest = Path(path)
    base = manifest.resolve().parent
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(manifest, f"cannot read the manifest: {exc}") from None
    items: list[BatchItem] = []
    if manifest.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if manifest.suffix.lower() == ".tsv" else ","
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        reader = csv.DictReader(lines, delimiter=delimiter)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "path" not in fields:
            raise InputError(manifest, "a CSV manifest needs a 'path' column in its header")
        for lineno, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            if not row.get("path"):
                raise InputError(manifest, f"row {lineno} has no path")
            for p in _expand_one(row["path"], base, manifest):
                items.append(BatchItem(p, _clean_cell(row.get("cell_id")),
                                       _clean_cell(row.get("voxel_size"))))
    else:
        for line in text.splitlines():
            entry = line.strip()
            if entry.startswith("#"):
                continue
            if entry:
                items.extend(BatchItem(p) for p in _expand_one(entry, base, manifest))
    if not items:
        raise InputError(manifest, "the manifest lists no volumes")
    return items


def _expand_one(entry: str, base: Path, origin: object) -> list[str]:
    """Absolute paths for one path or glob (relative to ``base``)."""
    expanded = os.path.expanduser(entry)
    full = expanded if os.path.isabs(expanded) else str(base / expanded)
    if _is_glob(entry):
        matches = sorted(glob.glob(full, recursive=True))
        if not matches:
            raise InputError(origin, f"the pattern {entry!r} matches no file")
        return [str(Path(m).resolve()) for m in matches]
    return [str(Path(full).resolve())]


def expand_inputs(arguments: list[str], base: str | os.PathLike[str] | None = None) -> list[BatchItem]:
    """Turn the batch's arguments (paths, globs, manifests) into a list of volumes.

    Parameters
    ----------
    arguments : list of str
        What the user typed after ``cellqc batch``.
    base : str or os.PathLike, optional
        Folder relative paths and globs are resolved against; the current folder by default.

    Returns
    -------
    list of BatchItem
        Unique by path, in the order given (the first occurrence wins).

    Raises
    ------
    core.errors.InputError
        A glob matching nothing, an unreadable manifest, or no volume at all. A path that
        does not exist is NOT an error here: it is reported per cell by the batch.
    """
    root = Path(base) if base is not None else Path.cwd()
    items: list[BatchItem] = []
    for arg in arguments:
        if _is_glob(arg):
            items.extend(BatchItem(p) for p in _expand_one(arg, root, "batch"))
            continue
        p = Path(os.path.expanduser(arg))
        p = p if p.is_absolute() else root / p
        if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            items.extend(read_manifest(p))
        else:
            items.append(BatchItem(str(p.resolve())))
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.path not in seen:
            seen.add(item.path)
            unique.append(item)
    if not unique:
        raise InputError("batch", "no volumes to inspect")
    return unique


def _files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def companion_files(path: str | os.PathLike[str]) -> list[Path]:
    """Files that belong with a volume: the JSON sidecar of a raw file.

    Parameters
    ----------
    path : str or os.PathLike
        The volume.

    Returns
    -------
    list of Path
        Existing companions (may be empty).
    """
    from core.io.raw import RAW_SUFFIXES, sidecar_paths

    p = Path(path)
    if p.is_file() and p.suffix.lower() in RAW_SUFFIXES:
        pair = sidecar_paths(p)
        if pair is not None:
            return [pair[1]]
    return []


def fingerprint(path: str | os.PathLike[str], *, checksum: bool = False) -> Fingerprint:
    """Size, newest modification time and file count of a volume (file or folder).

    Parameters
    ----------
    path : str or os.PathLike
        The volume; a raw file's JSON sidecar is included.
    checksum : bool
        Also hash every byte (SHA-256); slow for big volumes.

    Returns
    -------
    Fingerprint

    Raises
    ------
    core.errors.InputError
        The path does not exist or cannot be read.
    """
    p = Path(path)
    try:
        files = _files_of(p) + companion_files(p)
        if not p.exists():
            raise FileNotFoundError("no such file or folder")
        stats = [f.stat() for f in files]
    except OSError as exc:
        raise InputError(p, f"cannot read: {exc.strerror or exc}") from None
    size = sum(s.st_size for s in stats)
    mtime = max((s.st_mtime_ns for s in stats), default=p.stat().st_mtime_ns)
    digest = None
    if checksum:
        from core.fileio import sha256_file

        h = hashlib.sha256()
        for f in files:
            if p.is_dir():
                h.update(os.fsencode(f.relative_to(p)) + b"\0")
            sha256_file(f, into=h)
        digest = h.hexdigest()
    return Fingerprint(size_bytes=int(size), mtime_ns=int(mtime), n_files=len(files), sha256=digest)
