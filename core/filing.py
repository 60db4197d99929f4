"""Inspect a file and file everything: JSON result, PDF report, unrolled maps, SQLite log row.

The log row is ``running`` before any work starts. Every output asked for (``--json``,
``--maps``, ``--report``) is written *before* the row becomes ``complete``; the row, its
findings and its report's path and SHA-256 are then filed in one transaction. So when an
output cannot be written (disk full, read-only, a folder or device in the way) the command
fails with one line naming that file, the outputs this run already wrote are removed (they
would show a verdict the log does not hold), and the row is ``failed`` with the reason —
never ``complete``. Files are written under a temporary name and renamed
(:mod:`core.fileio`), so nothing half-written ever carries a final name.

Each step is timed (:mod:`core.timings`): ``read``, the inspection's own stages, then
``maps``, ``report``, ``json`` and ``log`` as far as they are written. The result filed in the
log is the one the report's QR code hashes, so its ``timings_s`` stops where the report
starts (read, the inspection, the maps); the JSON file, written after the report, carries
``timings_s`` through the report (otherwise it is the filed result plus ``audit_head``); a
``stage_timings`` dict given by the caller receives every stage, the JSON's and the log's
included (``cellqc inspect --profile``). Progress moves in proportion to the stages' typical
time.

The result JSON and the PDF carry the head of the log's audit chain at the time they were
written (``audit_head``), so a log rewritten or truncated later disagrees with them
(``cellqc audit verify --report FILE.pdf``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core import __version__
from core.errors import InputError
from core.fileio import atomic_writer, write_json
from core.inspect import Inspection, inspect_volume
from core.io import read_volume
from core.recipe import Recipe, is_auto, load_recipe
from core.timings import StageClock, inspection_seconds, progress_spans


def exported_result(result: Mapping[str, Any], audit_head: Any = None,
                    timings: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The result as exported to a JSON file: the filed result plus ``audit_head`` when known.

    Parameters
    ----------
    result : mapping
        The inspection result (``cellqc.inspection/1``), as filed in the log.
    audit_head : core.store.AuditHead or dict, optional
        The log's chain head when the file is written.
    timings : mapping, optional
        ``timings_s`` as of the file's writing (the filed result's, plus the stages run
        after it was filed: the report).
    """
    out = dict(result)
    if timings is not None:
        out["timings_s"] = dict(timings)
    if audit_head is not None:
        out["audit_head"] = audit_head.as_dict() if hasattr(audit_head, "as_dict") else dict(audit_head)
    return out


def write_json_atomic(data: Any, path: str | Path) -> Path:
    """Write JSON to ``path`` atomically (:func:`core.fileio.write_json`).

    Raises
    ------
    core.errors.InputError
        ``path`` cannot be written (one line naming it: a folder or device in the way, disk
        full, read-only file system).
    """
    try:
        return write_json(path, data)
    except OSError as exc:
        raise InputError(path, f"cannot write the result: {exc.strerror or exc}") from None


def report_inputs(inspection: Inspection, inspection_id: int | None = None, audit_head: Any = None):
    """The report's figure data from an inspection (volume, the thickness summary the log
    keeps: :mod:`core.report.keep`)."""
    from core.report import ReportInputs
    from core.report.thickness import ThicknessSummary

    try:
        thickness = ThicknessSummary.from_inspection(inspection)
    except Exception:  # noqa: BLE001 - the report says the map is missing
        thickness = None
    return ReportInputs(
        result=inspection.result,
        volume=inspection.volume,
        thickness=thickness,
        thickness_note=None if thickness is not None else "the inspection gave no thickness map.",
        inspection_id=inspection_id,
        audit_head=audit_head,
    )


def save_maps(inspection: Inspection, folder: str | Path) -> list[Path]:
    """Write the unrolled maps (``NAME.npz`` + ``NAME.png``) and a traced-layer overlay PNG.

    The thickness map's PNG is the report's figure (:func:`core.report.figures.thickness_map_figure`:
    deviation from the cell median, the recipe's limits on the colour bar, findings boxed and
    named, anatomy hatched); the other maps are plain colour maps of their quantity.

    Raises
    ------
    core.errors.InputError
        A file cannot be written (one line naming it); the files written before are removed.
    """
    from core.geometry.maps import render_map_png, render_overlay_png

    folder = Path(folder)
    written: list[Path] = []
    target = folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, umap in inspection.maps.items():
            if umap.values.size == 0:
                continue
            target = folder / f"{name}.npz"
            with atomic_writer(target, suffix=".npz") as handle:
                umap.save_npz(handle)
            written.append(target)
            target = folder / f"{name}.png"
            if name == "cathode_thickness_um":
                from core.fileio import atomic_write
                from core.report.figures import NoFigure, thickness_map_figure
                from core.report.thickness import ThicknessSummary

                summary = ThicknessSummary.from_inspection(inspection)
                try:
                    png = thickness_map_figure(summary, inspection.result) if summary is not None else None
                except NoFigure:
                    png = None
                if png is not None:
                    atomic_write(target, png)
                    written.append(target)
                    continue
            cmap = "RdBu" if "gap" in name else "viridis"
            written.append(render_map_png(umap, target, cmap=cmap))
        geometry = inspection.geometry
        if geometry is not None and geometry.roll_slices:
            z = geometry.roll_slices[len(geometry.roll_slices) // 2]
            target = folder / f"layers_z{z}.png"
            written.append(render_overlay_png(inspection.volume.slice(z), geometry, z, target,
                                              inspection.result["findings"]))
    except OSError as exc:
        _remove(written)
        raise InputError(target, f"cannot write the maps: {exc.strerror or exc}") from None
    except InputError:
        _remove(written)
        raise
    return written


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def inspect_and_file(
    path: str | Path,
    *,
    voxel_size: Any = None,
    dataset: str | None = None,
    recipe: Recipe | str | Path | None = None,
    cell_id: str | None = None,
    json_out: str | Path | None = None,
    report_out: str | Path | None = None,
    maps_dir: str | Path | None = None,
    db_path: str | Path | None = None,
    operator: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    segmenter: str = "classic",
    memory_budget_gb: float | None = None,
    stage_timings: dict[str, float] | None = None,
) -> tuple[Inspection, int | None]:
    """Read ``path``, inspect it, write what was asked for, then file it as complete.

    Parameters
    ----------
    stage_timings : dict, optional
        Filled with the seconds of every stage (see :mod:`core.timings`), the JSON's and the
        log's included, and ``total``; also when the inspection fails part-way.

    Returns
    -------
    (Inspection, int or None)
        The inspection and its id in the log (None without ``db_path``). Its result's
        ``timings_s`` is the filed one: read, the inspection's stages, the maps.

    Raises
    ------
    core.errors.InputError
        Bad input, or an output that cannot be written (naming the file); with a log, the
        inspection is then filed ``failed`` with that reason and no output of this run is
        left behind.
    """
    from core.fileio import check_output_target

    timings: dict[str, float] = stage_timings if stage_timings is not None else {}
    clock = StageClock(timings)
    report = progress or (lambda f, m: None)
    outputs = [name for name, asked in (("maps", maps_dir), ("report", report_out), ("json", json_out),
                                        ("log", db_path)) if asked is not None]
    # The bar: read | the inspection (its stages, weighted inside inspect_volume) | outputs.
    spans = progress_spans(["read", "inspection", *outputs], weights={"inspection": inspection_seconds()})
    inspection_lo, inspection_hi = spans["inspection"]

    def inspection_progress(fraction: float, message: str) -> None:
        report(inspection_lo + (inspection_hi - inspection_lo) * fraction, message)

    # A named recipe is checked (and a bad one refused) before anything is read; an automatic
    # choice is made from the cell's can, once the volume is open.
    recipe_obj = None if is_auto(recipe) else (recipe if isinstance(recipe, Recipe) else load_recipe(recipe))
    for target in (json_out, report_out):  # a device, FIFO or folder: refused before any work
        if target is not None:
            check_output_target(target)
    options = {"dataset": dataset} if dataset else {}
    with clock.stage("read"):
        volume = read_volume(path, voxel_size=voxel_size, cell_id=cell_id, **options)
    # Only once it is open: a file that cannot be read gets its one error line and nothing else.
    report(spans["read"][1], f"opened {Path(path).name}: {' × '.join(map(str, volume.shape))} voxels")
    db = inspection_id = None
    if db_path is not None:
        from core.store import begin_inspection, open_log

        with clock.stage("log"):
            db = open_log(db_path)
            inspection_id = begin_inspection(
                db, volume.cell_id, recipe=recipe_obj.name if recipe_obj else None,
                recipe_hash=recipe_obj.sha256 if recipe_obj else None, software_version=__version__,
                operator=operator, source=volume.source, shape_zyx=list(volume.shape),
                spacing_um=list(volume.spacing_um), voxel_size_um=volume.voxel_size_um, modality=volume.modality)
    written: list[Path] = []
    try:
        inspection = inspect_volume(volume, recipe_obj, cell_id=cell_id, progress=inspection_progress, cancel=cancel,
                                    operator=operator, segmenter=segmenter, memory_budget_gb=memory_budget_gb)
        # What a report written again from the log needs (the thickness map), named in the
        # result before the result is written anywhere, kept beside the log by its hash.
        from core.report.keep import attach_report_data, keep

        report_data = attach_report_data(inspection)
        if db is not None and report_data is not None:
            try:
                kept, created = keep(db_path, report_data)
            except OSError as exc:
                from core.report.keep import data_dir

                raise InputError(data_dir(db_path), f"cannot keep the thickness map beside the log: "
                                                    f"{exc.strerror or exc}") from None
            if created:
                written.append(kept)
        # The inspection's stages join the read's; its own total gives way to the whole run's.
        for name, seconds in inspection.result["timings_s"].items():
            if name != "total":
                timings[name] = timings.get(name, 0.0) + seconds
        head = None
        if db is not None:
            from core.store import audit_head

            head = audit_head(db)
        if maps_dir is not None:
            report(spans["maps"][0], "writing the unrolled maps")
            with clock.stage("maps"):
                written += save_maps(inspection, maps_dir)
        # The result as filed: what the report's QR code hashes and the log holds, its timings
        # up to here.
        clock.stamp_total()
        inspection.result["timings_s"] = dict(timings)
        report_sha = None
        if report_out is not None:
            from core.report import write_report

            report(spans["report"][0], "writing the report")
            with clock.stage("report"):
                try:
                    report_sha = write_report(report_inputs(inspection, inspection_id, head), report_out)
                except OSError as exc:
                    raise InputError(report_out, f"cannot write the report: {exc.strerror or exc}") from None
            written.append(Path(report_out))
        if json_out is not None:  # last of the files: it holds the others' times
            report(spans["json"][0], "writing the result")
            with clock.stage("json"):
                clock.stamp_total()
                written.append(write_json_atomic(exported_result(inspection.result, head, timings), json_out))
        if db is not None:
            from core.store import complete_inspection, record_report, write_transaction

            report(spans["log"][0], "filing in the log")
            with clock.stage("log"):
                with write_transaction(db):
                    complete_inspection(db, inspection_id, inspection.result)
                    if report_out is not None and report_sha is not None:
                        record_report(db, inspection_id, report_out, report_sha)
    except BaseException as exc:
        _remove(written)
        if db is not None:
            from core.store import fail_inspection

            with contextlib.suppress(Exception):  # the original error is what the caller needs
                fail_inspection(db, inspection_id, f"{type(exc).__name__}: {exc}")
        raise
    clock.stamp_total()
    report(1.0, f"done: {inspection.verdict}")
    return inspection, inspection_id
