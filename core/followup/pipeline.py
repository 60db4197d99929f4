"""Analyse an imported follow-up end to end: read → analyse → figures, JSON, CSV → log.

Files are written to a temporary name and renamed, so a crash never leaves a truncated
JSON or PNG under its final name.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlite_utils import Database

from core import fileio
from core.errors import InputError
from core.fileio import atomic_write, atomic_writer
from core.followup import analysis as A
from core.followup import figures as F
from core.followup import io as fio
from core.followup import records as R
from core.store.audit import to_jsonable

Progress = Callable[[float, str], None]


def write_json(path: Path, value: Any) -> None:
    """Write JSON (NaN → null) atomically (:func:`core.fileio.write_json`)."""
    fileio.write_json(path, to_jsonable(value), indent=1)


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows (list of dicts) as CSV atomically."""
    import io

    buf = io.StringIO()
    columns = list(rows[0]) if rows else []
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue().encode("utf-8"))


def write_holo_outputs(result: A.HoloResult, out_dir: Path) -> list[str]:
    """JSON summary, CSV tables and the size-vs-depth figure of a holotomography analysis.

    Returns
    -------
    list of str
        Paths written (figures first).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    png = out_dir / "fragment_size_vs_depth.png"
    atomic_write(png, F.size_vs_depth_png(result.depth))
    written.append(png)
    write_json(out_dir / "holo_summary.json", {"summary": result.summary, "depth": result.depth})
    written.append(out_dir / "holo_summary.json")
    for name, table in (("fragments", result.fragments), ("particles", result.particles)):
        path = out_dir / f"{name}.csv"
        write_csv(path, A.table_rows(table))
        written.append(path)
    write_csv(out_dir / "depth_regions.csv", [to_jsonable(r) for r in result.depth])
    written.append(out_dir / "depth_regions.csv")
    return [str(p) for p in written]


def write_xanes_outputs(result: A.XanesResult, out_dir: Path) -> list[str]:
    """JSON summary, CSV tables, edge-energy map (.npy) and figures of a XANES analysis.

    Returns
    -------
    list of str
        Paths written (figures first).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    frag_rows = A.table_rows(result.fragments)
    grain_rows = A.table_rows(result.grains)
    spacing = result.summary.get("spacing_um") or [None]
    figures = {
        "edge_energy_map.png": F.edge_map_png(
            result.maps.e0_half, result.maps.mask, pixel_um=spacing[-1]
        ),
        "edge_energy_vs_fragment_volume.png": F.edge_vs_volume_png(
            frag_rows, result.summary["params"]["size_groups_um3"]
        ),
        "grain_std_vs_mean.png": F.grain_spread_png(grain_rows),
    }
    written: list[Path] = []
    for name, data in figures.items():
        atomic_write(out_dir / name, data)
        written.append(out_dir / name)
    write_json(out_dir / "xanes_summary.json", result.summary)
    written.append(out_dir / "xanes_summary.json")
    write_csv(out_dir / "fragments.csv", frag_rows)
    write_csv(out_dir / "grains.csv", grain_rows)
    written += [out_dir / "fragments.csv", out_dir / "grains.csv"]
    buf_path = out_dir / "edge_energy_map.npy"
    with atomic_writer(buf_path, suffix=".npy") as fh:
        np.save(fh, result.maps.e0_half.astype(np.float32))
    written.append(buf_path)
    return [str(p) for p in written]


def load_references(paths: Sequence[str | os.PathLike[str]]) -> list[A.Reference]:
    """End members from spectra files (tables, XDI, Athena projects), named by file stem.

    Only sample spectra are taken (an XDI reference-foil channel is not an end member), with
    their energies calibrated by that channel when the file has one.
    """
    from core.followup.xanes import sample_spectra

    refs = []
    for p in paths:
        spectra = sample_spectra(p)
        for s in spectra:
            label = Path(p).stem.removeprefix("ref_") if len(spectra) == 1 else s.name
            refs.append(A.Reference(label, s.energy_ev, s.mu))
    return refs


def analyze_followup(
    db: Database,
    followup_id: int,
    out_dir: str | os.PathLike[str],
    *,
    holo_params: A.HoloParams | None = None,
    xanes_params: A.XanesParams | None = None,
    references: Sequence[A.Reference] = (),
    voxel_size: Any = None,
    actor: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Read an imported follow-up again (files verified), analyse it, write and log results.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    followup_id : int
        The follow-up.
    out_dir : path
        Folder for figures, JSON and CSV.
    holo_params, xanes_params : optional
        Analysis settings.
    references : sequence of Reference
        XANES end members for linear-combination fitting.
    voxel_size : float or sequence, optional
        µm; overrides the one given at import.
    actor : str, optional
        Who ran it.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    dict
        ``summary`` (JSON-ready), ``outputs`` (paths), ``result_sha256``.
    """
    try:
        return _analyze(
            db,
            followup_id,
            out_dir,
            holo_params,
            xanes_params,
            references,
            voxel_size,
            actor,
            progress,
        )
    except ValueError as exc:  # settings that do not fit the data: one line, not a traceback
        raise InputError(f"follow-up {followup_id}", str(exc)) from None


def _analyze(
    db: Database,
    followup_id: int,
    out_dir: str | os.PathLike[str],
    holo_params: A.HoloParams | None,
    xanes_params: A.XanesParams | None,
    references: Sequence[A.Reference],
    voxel_size: Any,
    actor: str | None,
    progress: Progress | None,
) -> dict[str, Any]:
    row = R.get_followup(db, followup_id)
    R.verify_files(row)
    opts = dict(row["summary"].get("import") or {})
    if voxel_size is not None:
        opts["voxel_size"] = voxel_size
    data_files = [e["path"] for e in row["summary"].get("files", []) if e["role"] == "data"]
    out = Path(out_dir)
    if row["kind"] == "holo":
        volume = fio.read_holo_volume(
            data_files[0], opts.get("voxel_size"), dataset=opts.get("dataset")
        )
        try:
            result = A.analyze_holo(
                np.asarray(volume.array), volume.spacing_um, holo_params, progress=progress
            )
        finally:
            handle = volume.metadata.get("h5file")
            if handle is not None:
                handle.close()
        outputs = write_holo_outputs(result, out)
        summary: dict[str, Any] = dict(result.summary)
        summary["depth"] = result.depth
    elif row["kind"] == "xanes":
        stack = R.read_xanes_as_imported(data_files, opts)
        try:
            result_x = A.analyze_xanes(
                stack, params=xanes_params, references=references, progress=progress
            )
        finally:
            stack.close()
        outputs = write_xanes_outputs(result_x, out)
        summary = dict(result_x.summary)
    else:
        raise InputError(f"follow-up {followup_id}", f"unknown kind {row['kind']!r}")
    summary = to_jsonable(summary)
    digest = R.record_analysis(
        db, followup_id, summary, output_dir=str(out.resolve()), outputs=outputs, actor=actor
    )
    return {"summary": summary, "outputs": outputs, "result_sha256": digest}
