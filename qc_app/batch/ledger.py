"""The one writer of the log during a batch or a hot-folder run.

Workers never open the log. The process that owns it (the batch's client, the watcher)
files each cell in two transactions, as :func:`core.filing.inspect_and_file` does in one
process:

1. :func:`open_cell` — before the cell is sent to a worker: the inspection row (status
   ``running``, owned by this process) and the input's fingerprint, together.
2. :func:`file_outcome` — when the worker's :class:`~qc_app.batch.worker.CellOutcome`
   comes back: the verdict, result, findings and report row in ONE transaction (status
   ``complete``), or status ``failed`` with the reason.

If this process dies in between, the row stays ``running`` and the next
:func:`core.store.open_log` marks it ``interrupted``: never a half-filed inspection that
looks complete. :func:`find_previous` is how a batch resumes: a cell whose unchanged input
was inspected to completion with the same recipe hash is not inspected again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from core import __version__
from core.io.volume import Volume
from core.recipe import Recipe
from core.store import (
    begin_inspection,
    complete_inspection,
    fail_inspection,
    record_report,
    write_transaction,
)
from core.store.input_files import completed_inspections_of_input, record_input_file
from qc_app.batch.inputs import BatchItem, Fingerprint
from qc_app.batch.worker import CellOutcome

InTransaction = Callable[[Database, int | None], None]


def safe_name(text: str) -> str:
    """A file-name-safe version of a cell id (:func:`core.text.file_name_part`)."""
    from core.text import file_name_part

    return file_name_part(text)


def output_paths(out_dir: str | os.PathLike[str] | None, cell_id: str, inspection_id: int | None,
                 *, report: bool = True) -> tuple[str | None, str | None]:
    """Where a cell's JSON result and PDF report go: ``OUT/<cell>_<inspection id>.json|pdf``.

    The inspection id makes each name unique, so a re-inspection never overwrites a report
    that the log still points to.

    Parameters
    ----------
    out_dir : path or None
        The output folder; no files when None.
    cell_id : str
    inspection_id : int or None
    report : bool
        Also a PDF.

    Returns
    -------
    (str or None, str or None)
        JSON path and PDF path.
    """
    if out_dir is None:
        return None, None
    stem = safe_name(cell_id) + (f"_{inspection_id}" if inspection_id is not None else "")
    base = Path(out_dir)
    return str(base / f"{stem}.json"), (str(base / f"{stem}.pdf") if report else None)


def read_header(item: BatchItem, *, voxel_size: Any = None, dataset: str | None = None) -> Volume:
    """Open a volume lazily to learn its cell id, shape and voxel size (no voxel is scanned).

    Parameters
    ----------
    item : BatchItem
        The input; its own ``voxel_size`` and ``cell_id`` win over the batch's.
    voxel_size : optional
        The batch's ``--voxel-size``.
    dataset : str, optional
        Array inside an HDF5/Zarr file.

    Returns
    -------
    core.io.volume.Volume
        A lazy volume; an HDF5 file it opened is closed again (only metadata is used).

    Raises
    ------
    core.errors.InputError
        The file cannot be read as a volume.
    """
    from core.io import read_volume

    options = {"dataset": dataset} if dataset else {}
    volume = read_volume(item.path, voxel_size=item.voxel_size or voxel_size, cell_id=item.cell_id,
                         check_values=False, **options)
    handle = volume.metadata.get("h5file")
    if handle is not None and hasattr(handle, "close"):
        handle.close()
    return volume


def find_previous(db: Database, path: str, fp: Fingerprint, recipe_hash: str | Collection[str]) -> dict[str, Any] | None:
    """The newest complete inspection of the same, unchanged input with the same recipe.

    Same input: the same path and either the same size, modification time and file count,
    or (when both fingerprints carry one) the same SHA-256.

    Parameters
    ----------
    db : sqlite_utils.Database
        An open log.
    path : str
        Absolute path of the input.
    fp : Fingerprint
        Its fingerprint now.
    recipe_hash : str or collection of str
        SHA-256 of the recipe the batch runs (several: any of them, e.g. the shipped recipes
        when each cell's recipe is chosen from its can).

    Returns
    -------
    dict or None
        ``id``, ``cell_id``, ``verdict``, ``n_findings``, ``finished_at`` of that inspection.
    """
    hashes = [recipe_hash] if isinstance(recipe_hash, str) else list(recipe_hash)
    for row in completed_inspections_of_input(db, path, hashes):
        same_stat = (row["size_bytes"], row["mtime_ns"], row["n_files"]) == (
            fp.size_bytes, fp.mtime_ns, fp.n_files)
        same_hash = fp.sha256 is not None and row["sha256"] is not None and row["sha256"] == fp.sha256
        if same_stat or same_hash:
            return {"id": int(row["id"]), "cell_id": row["cell_id"], "verdict": row["verdict"],
                    "n_findings": row["n_findings"], "finished_at": row["finished_at"]}
    return None


def open_cell(
    db: Database,
    *,
    path: str,
    header: Volume,
    fp: Fingerprint,
    recipe: Recipe | None,
    operator: str | None = None,
    also: InTransaction | None = None,
) -> int:
    """File a cell as ``running`` with its input's fingerprint, in one transaction.

    Parameters
    ----------
    db : sqlite_utils.Database
        The open log (this process is its only writer for the batch).
    path : str
        Absolute path of the input (the resume key).
    header : core.io.volume.Volume
        The lazily opened volume (cell id, shape, voxel size).
    fp : Fingerprint
        The input's fingerprint.
    recipe : core.recipe.Recipe or None
        None: chosen from the cell's can during the inspection (filed with the result).
    operator : str, optional
    also : callable(db, inspection_id), optional
        More writes to make in the same transaction (the hot folder's state).

    Returns
    -------
    int
        The new inspection's id.
    """
    with write_transaction(db):
        inspection_id = begin_inspection(
            db, header.cell_id, recipe=recipe.name if recipe else None, recipe_hash=recipe.sha256 if recipe else None,
            software_version=__version__, operator=operator, source=header.source or path,
            shape_zyx=list(header.shape), spacing_um=list(header.spacing_um),
            voxel_size_um=header.voxel_size_um, modality=header.modality)
        record_input_file(db, inspection_id, path, size_bytes=fp.size_bytes, mtime_ns=fp.mtime_ns,
                          n_files=fp.n_files, sha256=fp.sha256)
        if also is not None:
            also(db, inspection_id)
    return inspection_id


def file_outcome(db: Database, outcome: CellOutcome, *, also: InTransaction | None = None) -> CellOutcome:
    """File a worker's outcome: ``complete`` with findings and report, or ``failed``.

    Parameters
    ----------
    db : sqlite_utils.Database
        The open log.
    outcome : CellOutcome
        From :func:`qc_app.batch.worker.run_cell`; ``inspection_id`` must be set.
    also : callable(db, inspection_id), optional
        More writes to make in the same transaction.

    Returns
    -------
    CellOutcome
        The same outcome; turned into an ``internal`` error when the result could not be
        filed (then the row is ``failed``).
    """
    iid = outcome.inspection_id
    if iid is None:
        raise ValueError("the outcome has no inspection id to file it under")
    if outcome.ok and outcome.result is not None:
        try:
            if outcome.report_data is not None:  # what `cellqc report ID` needs again, beside the log
                from core.report.keep import db_file, keep

                log_file = db_file(db)
                if log_file is not None:
                    keep(log_file, outcome.report_data)
            with write_transaction(db):
                complete_inspection(db, iid, outcome.result)
                if outcome.report_path and outcome.report_sha256:
                    record_report(db, iid, outcome.report_path, outcome.report_sha256)
                if also is not None:
                    also(db, iid)
            return outcome
        except Exception as exc:  # filing failed (e.g. a result for another cell): not complete
            outcome.ok = False
            outcome.error_kind = "internal"
            outcome.error = f"{outcome.path}: the result could not be filed: {type(exc).__name__}: {exc}"
    reason = f"{outcome.error_kind or 'error'}: {outcome.error}"
    with write_transaction(db):
        fail_inspection(db, iid, reason)
        if also is not None:
            also(db, iid)
    return outcome
