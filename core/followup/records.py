"""Follow-up results in the log: import (with file sha256), list, analyses, report items.

A follow-up is one row of the ``followups`` table, attached to a cell, to the cell's latest
complete inspection and optionally to the ROI request it answers. Its ``summary_json``
holds::

    {"files": [{"role": "data"|"info"|"energies"|"flat"|"dark", "path", "sha256", "size_bytes"}],
     "import": {options needed to read the data again: voxel_size, dataset, ...},
     "data": {what the reader found: shape, spacing, energies, ...},
     "analysis": {latest analysis summary, result_sha256, output_dir, analyzed_at}}

Every import and analysis is an audit entry (``followup.import``, ``followup.analyze``)
whose details carry the files' and the result's sha256. Before an analysis the files are
hashed again; a changed or missing file stops it with one clear line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core.errors import InputError
from core.followup import io as fio
from core.store import append_audit, write_transaction
from core.store.audit import canonical_json, utc_now

KINDS = ("holo", "xanes")


def _file_entry(path: Path, role: str) -> dict[str, Any]:
    p = path.resolve()
    if not p.is_file():
        raise InputError(path, "no such file")
    return {
        "role": role,
        "path": str(p),
        "sha256": fio.sha256_file(p),
        "size_bytes": p.stat().st_size,
    }


def read_xanes_as_imported(files: Sequence[str | os.PathLike[str]], options: Mapping[str, Any]) -> fio.XanesStack:
    """Read a XANES follow-up's files with its import options (``energies``, ``flat``,
    ``dark``, ``dataset``, ``energy_dataset``, ``voxel_size``; missing ones are None): the
    same reading at import and at analysis. Close the stack when done."""
    return fio.read_xanes(
        files,
        energies=options.get("energies"),
        flat=options.get("flat"),
        dark=options.get("dark"),
        dataset=options.get("dataset"),
        energy_dataset=options.get("energy_dataset"),
        voxel_size=options.get("voxel_size"),
    )


def describe_data(
    kind: str,
    files: Sequence[Path],
    options: dict[str, Any],
) -> tuple[dict[str, Any], list[Path]]:
    """Open follow-up data once to check it and describe it.

    Parameters
    ----------
    kind : {"holo", "xanes"}
        Data kind.
    files : sequence of Path
        The data files.
    options : dict
        ``voxel_size``, ``dataset``, ``energies``, ``flat``, ``dark``, ``energy_dataset``.

    Returns
    -------
    summary : dict
        Shape, spacing, format and (XANES) energies.
    extra : list of Path
        Companion files to hash too (a PyHST2 ``.vol.info``).
    """
    extra: list[Path] = []
    if kind == "holo":
        if len(files) != 1:
            raise InputError(files[0], "a holotomography import takes one volume file")
        volume = fio.read_holo_volume(
            files[0], options.get("voxel_size"), dataset=options.get("dataset")
        )
        fmt = volume.metadata.get("format")
        if fmt == "pyhst2-vol":
            extra.append(fio._vol_pair(Path(files[0]))[1])
        handle = volume.metadata.get("h5file")
        if handle is not None:
            handle.close()
        return {
            "format": fmt,
            "shape_zyx": list(volume.shape),
            "spacing_um": list(volume.spacing_um),
            "dtype": str(volume.dtype),
        }, extra
    stack = read_xanes_as_imported(files, options)
    try:
        e = stack.energies
        return {
            "format": stack.metadata.get("format"),
            "shape": [int(n) for n in stack.raw.shape],
            "spacing_um": list(stack.spacing_um) if stack.spacing_um else None,
            "n_energies": int(e.size),
            "energy_min_ev": float(e[0]),
            "energy_max_ev": float(e[-1]),
            "quantity": stack.quantity,
            "dataset": stack.metadata.get("dataset"),
        }, extra
    finally:
        stack.close()


def import_followup(
    db: Database,
    cell_id: str,
    files: Sequence[str | os.PathLike[str]],
    *,
    kind: str | None = None,
    energies: str | os.PathLike[str] | None = None,
    flat: str | os.PathLike[str] | None = None,
    dark: str | os.PathLike[str] | None = None,
    roi_request_id: int | None = None,
    voxel_size: Any = None,
    dataset: str | None = None,
    energy_dataset: str | None = None,
    note: str | None = None,
    actor: str | None = None,
    allow_new_cell: bool = False,
) -> int:
    """Check, hash and attach follow-up files to a cell in the log (audited).

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    cell_id : str
        The cell the samples came from.
    files : sequence of path
        Data files (one volume; or the XANES file(s)).
    kind : {"holo", "xanes"}, optional
        Default: detected from the files (see :func:`core.followup.io.detect_kind`).
    energies, flat, dark : path, optional
        XANES energy list and flat-field/dark references.
    roi_request_id : int, optional
        The ROI request these results answer (must belong to the cell).
    voxel_size : float or (z, y, x), optional
        µm, overriding the files'.
    dataset, energy_dataset : str, optional
        HDF5 dataset paths.
    note : str, optional
        Free text.
    actor : str, optional
        Who imports (for the audit entry).
    allow_new_cell : bool
        Create the cell when the log does not know it (default: refuse, a typo is likelier).

    Returns
    -------
    int
        The follow-up's id.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("followup import", "no files given")
    kind = kind or fio.detect_kind(paths, energies)
    if kind not in KINDS:
        raise InputError(f"--kind {kind}", f"must be one of {', '.join(KINDS)}")
    options: dict[str, Any] = {
        "voxel_size": voxel_size,
        "dataset": dataset,
        "energy_dataset": energy_dataset,
        "energies": str(Path(energies).resolve()) if energies else None,
        "flat": str(Path(flat).resolve()) if flat else None,
        "dark": str(Path(dark).resolve()) if dark else None,
    }
    if (
        not allow_new_cell
        and not db.conn.execute("SELECT 1 FROM cells WHERE id = ?", (cell_id,)).fetchone()
    ):  # before reading gigabytes: a typo in the id is the likeliest mistake
        raise InputError(f"cell {cell_id!r}", "not in the log; check the id (or allow a new cell)")
    data, extra = describe_data(kind, paths, options)
    entries = [_file_entry(p, "data") for p in paths]
    entries += [_file_entry(p, "info") for p in extra]
    for role in ("energies", "flat", "dark"):
        if options[role]:
            entries.append(_file_entry(Path(options[role]), role))
    summary = {"files": entries, "import": options, "data": data}
    with write_transaction(db):
        known = db.conn.execute("SELECT 1 FROM cells WHERE id = ?", (cell_id,)).fetchone()
        if not known:
            if not allow_new_cell:
                raise InputError(
                    f"cell {cell_id!r}", "not in the log; check the id (or allow a new cell)"
                )
            db.conn.execute(
                "INSERT INTO cells (id, first_seen_at) VALUES (?, ?)", (cell_id, utc_now())
            )
        inspection = None
        if roi_request_id is not None:
            roi = db.conn.execute(
                "SELECT cell_id, inspection_id FROM roi_requests WHERE id = ?",
                (int(roi_request_id),),
            ).fetchone()
            if roi is None:
                raise InputError(f"ROI request {roi_request_id}", "not in the log")
            if roi[0] != cell_id:
                raise InputError(
                    f"ROI request {roi_request_id}", f"belongs to cell {roi[0]}, not {cell_id}"
                )
            inspection = roi[1]
        if inspection is None:
            row = db.conn.execute(
                "SELECT id FROM inspections WHERE cell_id = ? AND status = 'complete'"
                " ORDER BY id DESC LIMIT 1",
                (cell_id,),
            ).fetchone()
            inspection = int(row[0]) if row else None
        cursor = db.conn.execute(
            "INSERT INTO followups (cell_id, inspection_id, roi_request_id, kind, source,"
            " summary_json, imported_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cell_id,
                inspection,
                roi_request_id,
                kind,
                entries[0]["path"],
                canonical_json(summary),
                utc_now(),
                note,
            ),
        )
        followup_id = int(cursor.lastrowid)
        append_audit(
            db,
            "followup.import",
            entity="followups",
            entity_id=followup_id,
            actor=actor,
            details={
                "cell_id": cell_id,
                "kind": kind,
                "roi_request_id": roi_request_id,
                "inspection_id": inspection,
                "files": [{k: e[k] for k in ("role", "path", "sha256")} for e in entries],
            },
        )
    return followup_id


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    try:
        out["summary"] = json.loads(row.get("summary_json") or "{}")
    except json.JSONDecodeError:
        out["summary"] = {}
    return out


def get_followup(db: Database, followup_id: int) -> dict[str, Any]:
    """One follow-up row with its decoded ``summary``.

    Raises
    ------
    InputError
        No such follow-up.
    """
    rows = list(db.query("SELECT * FROM followups WHERE id = ?", [int(followup_id)]))
    if not rows:
        raise InputError(f"follow-up {followup_id}", "not in the log")
    return _decode(rows[0])


def list_followups(db: Database, cell_id: str | None = None) -> list[dict[str, Any]]:
    """Follow-ups, oldest first, optionally of one cell (with decoded ``summary``)."""
    if cell_id is None:
        rows = db.query("SELECT * FROM followups ORDER BY id")
    else:
        rows = db.query("SELECT * FROM followups WHERE cell_id = ? ORDER BY id", [cell_id])
    return [_decode(r) for r in rows]


def verify_files(followup: dict[str, Any]) -> None:
    """Hash a follow-up's files again; raise when one is missing or changed.

    Raises
    ------
    InputError
        Naming the first file that is missing or whose sha256 differs from the import.
    """
    for entry in followup["summary"].get("files", []):
        path = Path(entry["path"])
        if not path.is_file():
            raise InputError(path, f"imported with follow-up {followup['id']} but no longer exists")
        if fio.sha256_file(path) != entry["sha256"]:
            raise InputError(
                path, f"changed since it was imported (follow-up {followup['id']}); import it again"
            )


def record_analysis(
    db: Database,
    followup_id: int,
    summary: dict[str, Any],
    *,
    output_dir: str | None = None,
    outputs: Sequence[str] = (),
    actor: str | None = None,
) -> str:
    """Store an analysis summary on its follow-up and audit it.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    followup_id : int
        The follow-up.
    summary : dict
        JSON-ready analysis summary.
    output_dir : str, optional
        Where figures, JSON and CSV files were written.
    outputs : sequence of str
        The files written.
    actor : str, optional
        Who ran it.

    Returns
    -------
    str
        sha256 of the canonical JSON of the summary.
    """
    import hashlib

    text = canonical_json(summary)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with write_transaction(db):
        row = get_followup(db, followup_id)
        stored = row["summary"]
        stored["analysis"] = {
            "summary": json.loads(text),
            "result_sha256": digest,
            "output_dir": output_dir,
            "outputs": list(outputs),
            "analyzed_at": utc_now(),
        }
        db.conn.execute(
            "UPDATE followups SET summary_json = ? WHERE id = ?",
            (canonical_json(stored), int(followup_id)),
        )
        append_audit(
            db,
            "followup.analyze",
            entity="followups",
            entity_id=int(followup_id),
            actor=actor,
            details={"result_sha256": digest, "output_dir": output_dir, "outputs": list(outputs)},
        )
    return digest


def report_items(db: Database, cell_id: str) -> list[dict[str, Any]]:
    """Follow-ups of a cell as report sections (``core.report.ReportInputs.followups``).

    Each item has a ``title``, a few headline numbers, and the first figure of the latest
    analysis as ``figure_png`` (when its file still exists) with a ``caption``.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    cell_id : str
        The cell.

    Returns
    -------
    list of dict
    """
    items = []
    for row in list_followups(db, cell_id):
        s = row["summary"]
        analysis = s.get("analysis") or {}
        result = analysis.get("summary") or {}
        item: dict[str, Any] = {
            "title": f"Follow-up #{row['id']}: {'holotomography' if row['kind'] == 'holo' else 'Ni K-edge XANES'}",
            "imported": str(row["imported_at"])[:19].replace("T", " "),
            "source": Path(str(row["source"])).name,
            "files": len(s.get("files", [])),
        }
        if row.get("roi_request_id"):
            item["roi_request"] = int(row["roi_request_id"])
        if not result:
            item["status"] = "imported, not analysed yet"
        elif row["kind"] == "holo":
            item["particles"] = result.get("n_particles")
            item["fragments"] = result.get("n_fragments")
            fs = result.get("fragment_size") or {}
            item["fragment_D50_um"] = fs.get("d50_um")
            item["cracking_index"] = result.get("cracking_index")
        else:
            edge = result.get("edge") or {}
            item["edge_energy_mean_eV"] = edge.get("e0_half_mean_ev")
            item["edge_energy_std_eV"] = edge.get("e0_half_std_ev")
            item["voxels_kept"] = edge.get("kept_fraction")
            item["intra_grain_std_eV"] = result.get("intra_grain_std_ev")
            item["inter_grain_spread_eV"] = result.get("inter_grain_spread_ev")
        for out in analysis.get("outputs", []):
            if out.endswith(".png") and os.path.isfile(out):
                item["figure_png"] = Path(out).read_bytes()
                item["caption"] = Path(out).stem.replace("_", " ")
                break
        items.append(item)
    return items
