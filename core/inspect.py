"""The inspection pipeline: load → geometry → detectors → verdict → result.

``inspect_volume`` returns an :class:`Inspection` whose ``result`` is the JSON-ready dict of
schema ``cellqc.inspection/1`` (DESIGN.md); the geometry and the unrolled maps ride along
for reports and viewers.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.detectors import SPECS, DetectorContext, DetectorSpec, specs
from core.detectors.delamination import judge_void
from core.findings import link_related, merge_parts, reasons_by_group, recount_metrics
from core.geometry.can import probe_can_diameter
from core.geometry.layers import GeometryParams
from core.geometry.maps import UnrolledMap, unroll
from core.geometry.roll import CellGeometry, _spans, evenly, measure_geometry
from core.io.volume import Volume
from core.recipe import (
    Recipe,
    RecipeSelection,
    check_recipe_fits,
    is_auto,
    load_recipe,
    select_recipe,
)
from core.segment import detector_for
from core.timings import INSPECTION_STAGES, progress_spans
from core.uncertainty import annotate as annotate_uncertainty
from resources import RESOURCES_DIR

SCHEMA = "cellqc.inspection/1"
SCHEMA_PATH = RESOURCES_DIR / "schema" / "inspection.schema.json"
Progress = Callable[[float, str], None]
_SEVERITY_ORDER = {"fail": 0, "review": 1, "info": 2}
REQUIRED_METRICS = ("cathode_sheet_thickness_mean_um", "cathode_sheet_thickness_std_um",
                    "cathode_sheet_thickness_cv", "collector_deflection_max_um", "void_count",
                    "void_total_volume_mm3")


@dataclass
class Inspection:
    """An inspection's result dict plus what a report or viewer needs to draw it."""

    result: dict[str, Any]
    volume: Volume
    geometry: CellGeometry | None = None
    maps: dict[str, UnrolledMap] = field(default_factory=dict)
    raw_maps: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.result["verdict"]


def geometry_params(recipe: Recipe) -> GeometryParams:
    """Geometry parameters (µm) from the recipe's cell description."""
    cell = recipe.cell
    params = GeometryParams()
    for key in ("pitch_min_um", "pitch_max_um", "cu_foil_um", "al_foil_um", "max_can_wall_um"):
        if key in cell:
            setattr(params, key, float(cell[key]))
    return params


def decide_verdict(findings: list[dict[str, Any]], geometry: CellGeometry | None,
                   has_roll: bool | None = None, selection: RecipeSelection | None = None,
                   spacing_um: tuple[float, float, float] | None = None) -> tuple[str, list[str]]:
    """PASS / FAIL / REVIEW and the reasons: which rule, which finding, which value and limit.

    ``has_roll`` (default: whether ``geometry`` traced any roll slice) False adds a REVIEW:
    nothing could be inspected. A ``selection`` whose recipe does not fit the cell's format
    adds a REVIEW with its reason. With ``spacing_um`` (the volume's voxel size), findings of
    different detectors at one place are linked (``related``) and give one reason
    (:func:`core.findings.link_related`).
    """
    # Findings of different detectors at one place describe one defect: one reason each.
    groups = link_related(findings, spacing_um) if spacing_um is not None else [[i] for i in range(len(findings))]
    reasons = reasons_by_group(findings, groups)
    if has_roll is None:
        has_roll = geometry is None or bool(geometry.roll_slices)
    if not has_roll:
        reasons.append("REVIEW: no jelly roll found in the volume; nothing could be inspected")
    if selection is not None and selection.mismatch:
        reasons.append(f"REVIEW: {selection.reason}")
    if any(f["severity"] == "fail" for f in findings):
        verdict = "FAIL"
    elif reasons:
        verdict = "REVIEW"
    else:
        verdict = "PASS"
        reasons.append("PASS: no finding reaches a review or fail limit of the recipe")
    return verdict, reasons


def limits_table(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """The result's ``limits``: every limit a registered detector declares, under the recipe's rules."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs():
        out.update(spec.limits_for(recipe.rules.get(spec.name)))
    return out


def assign_ids(findings: list) -> None:
    """Number the findings in their order by their detector's declared prefix: ``D1``, ``D2``, ``C1``."""
    counters: dict[str, int] = {}
    for f in findings:
        prefix = SPECS[f.detector].prefix if f.detector in SPECS else DetectorSpec.prefix
        counters[prefix] = counters.get(prefix, 0) + 1
        f.id = f"{prefix}{counters[prefix]}"


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def inspect_volume(volume: Volume, recipe: Recipe | str | Path | None = None, *, cell_id: str | None = None,
                   progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                   operator: str | None = None, segmenter: str = "classic", memory_budget_gb: float | None = None,
                   slices_per_chunk: int | None = None) -> Inspection:
    """Inspect one cell volume.

    Parameters
    ----------
    volume : Volume
    recipe : Recipe, name or path, optional
        Default (None or "auto"): chosen from the can's measured diameter among the shipped
        recipes; a given recipe is checked against the can (see :func:`choose_recipe`).
    cell_id : str, optional
        Overrides the volume's cell id.
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Polled between slices; raises :class:`core.errors.Cancelled`.
    operator : str, optional
    segmenter : {"classic", "onnx", "classic+onnx"}
        "onnx" runs the learned segmenter's detector variants (``core.segment``);
        "classic+onnx" keeps the classic verdict and adds the model's second opinion.
    memory_budget_gb : float, optional
        Memory the inspection state may use (default: $CELLQC_INSPECTION_BUDGET_GB or 2 GB).
        A volume whose inspection would need more is inspected a chunk of slices at a time
        (:mod:`core.chunked`); the result then has no ``geometry`` object (its JSON block is
        there) and says how it was cut in ``geometry.notes``.
    slices_per_chunk : int, optional
        Force chunked inspection with chunks of this many slices.

    Returns
    -------
    Inspection
    """
    from core import chunked

    started = _dt.datetime.now(_dt.UTC)
    report = progress or (lambda f, m: None)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    recipe, selection = choose_recipe(volume, recipe)
    timings["recipe"] = time.perf_counter() - t_start
    if selection.mismatch:
        # Another format's nominal diameter says nothing about this can: not judged.
        recipe = replace(recipe, cell={k: v for k, v in recipe.cell.items() if k != "can_outer_diameter_mm"})
    report(0.0, selection.reason)

    def stage(lo: float, hi: float) -> Progress:
        return lambda f, m: report(lo + (hi - lo) * f, m)

    # The bar moves in proportion to each stage's typical time (core.timings).
    spans = progress_spans([INSPECTION_STAGES[0], INSPECTION_STAGES[1], *recipe.detectors, *INSPECTION_STAGES[2:]])
    t0 = time.perf_counter()
    budget = chunked.inspection_budget_bytes(memory_budget_gb)
    geometry: CellGeometry | None = None
    raw_maps: dict[str, np.ndarray] = {}
    if slices_per_chunk is None and chunked.estimated_bytes(volume.shape) <= budget:
        geometry = measure_geometry(volume, geometry_params(recipe), progress=stage(*spans["geometry"]), cancel=cancel)
        timings["geometry"] = time.perf_counter() - t0
        if selection.mode == "auto" and selection.measured_can_outer_diameter_mm is None:
            # The quick probe found no can (odd slices, heavy artifacts); the geometry's fits did.
            recipe, selection = select_recipe(2e-3 * geometry.can_stat("outer_radius_um"))
        geometry_end = spans["geometry"][1]
        detectors_span = ((spans[recipe.detectors[0]][0], spans[recipe.detectors[-1]][1]) if recipe.detectors
                          else (geometry_end, geometry_end))
        findings, metrics, raw_maps = _run_detectors(volume, geometry, recipe, {}, stage(*detectors_span), cancel,
                                                     segmenter, timings)
        t1 = time.perf_counter()
        maps = _unrolled_maps(geometry, raw_maps)
        timings["unroll"] = time.perf_counter() - t1
        geometry_json = geometry.to_json()
        has_roll = bool(geometry.roll_slices)
    else:
        findings, metrics, maps, geometry_json = _inspect_chunked(volume, recipe, budget, slices_per_chunk, report,
                                                                  cancel, segmenter, timings)
        has_roll = bool(geometry_json.get("roll_slices"))
    for key in REQUIRED_METRICS:
        metrics.setdefault(key, 0 if key == "void_count" else (0.0 if key == "void_total_volume_mm3" else None))

    # One physical defect, one finding: parts of one defect (slices, fragments, chunks) joined.
    t_merge = time.perf_counter()
    findings = merge_parts(findings, volume.spacing_um, recipe.rules, judge_void)
    recount_metrics(metrics, findings)  # counts and void totals of the defects as filed
    findings.sort(key=lambda f: (_SEVERITY_ORDER.get(f.severity, 3), f.detector, -abs(f.value)))
    assign_ids(findings)
    finding_dicts = [f.to_json() for f in findings]
    verdict, reasons = decide_verdict(finding_dicts, geometry, has_roll=has_roll, selection=selection,
                                      spacing_um=volume.spacing_um)
    timings["merge_verdict"] = time.perf_counter() - t_merge
    timings["total"] = time.perf_counter() - t_start
    report(1.0, f"verdict {verdict}")

    spacing = volume.spacing_um
    result = {
        "schema": SCHEMA,
        "cell_id": cell_id or volume.cell_id or Path(volume.source).stem or "unknown",
        "verdict": verdict,
        "reasons": reasons,
        "voxel_size_um": float(volume.voxel_size_um),
        "spacing_um": [float(s) for s in spacing],
        "shape_zyx": list(volume.shape),
        "recipe": recipe.name,
        "recipe_hash": recipe.sha256,
        "recipe_source": recipe.source,
        "recipe_selection": selection.to_json(),
        "software_version": __version__,
        "source": volume.source,
        "modality": volume.modality,
        "operator": operator,
        "segmenter": segmenter,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "geometry": geometry_json,
        "metrics": metrics,
        "limits": limits_table(recipe),
        "findings": finding_dicts,
        "timings_s": timings,
    }
    result = _clean(result)
    annotate_uncertainty(result)  # expanded uncertainties (k = 2) from the validation matrix
    return Inspection(result=result, volume=volume, geometry=geometry, maps=maps, raw_maps=raw_maps)


def choose_recipe(volume: Volume, recipe: Recipe | str | Path | None) -> tuple[Recipe, RecipeSelection]:
    """The recipe that judges ``volume`` and why.

    ``None`` or ``"auto"``: chosen from the can's measured diameter among the shipped recipes
    (:func:`core.recipe.select_recipe`). A recipe given by name, path or object is used as
    given, and checked against the can: a can of another format is a REVIEW with one reason,
    not a dimension FAIL.
    """
    measured = probe_can_diameter(volume)
    if is_auto(recipe):
        chosen, selection = select_recipe(measured)
    else:
        chosen = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        selection = check_recipe_fits(chosen, measured)
    return chosen, selection


def _run_detectors(volume: Volume, geometry: CellGeometry, recipe: Recipe, reference: dict[str, float],
                   progress: Progress, cancel: Callable[[], bool] | None, segmenter: str,
                   timings: dict[str, float]) -> tuple[list, dict[str, Any], dict[str, np.ndarray]]:
    """Every detector of the recipe on one volume (or chunk) and its geometry."""
    findings, metrics, raw_maps = [], {}, {}
    spans = progress_spans(recipe.detectors)  # in proportion to each detector's typical time
    for name in recipe.detectors:
        t1 = time.perf_counter()
        lo, hi = spans[name]
        ctx = DetectorContext(volume=volume, geometry=geometry, rules=recipe.rules.get(name, {}), cell=recipe.cell,
                              progress=lambda f, m, lo=lo, hi=hi: progress(lo + (hi - lo) * f, m), cancel=cancel,
                              segmenter=segmenter, reference=reference)
        with warnings.catch_warnings():
            # NaN is "not measured here" throughout (a sheet set aside, a collector lost in
            # noise): medians over all-NaN columns are expected, not news for the operator.
            warnings.simplefilter("ignore", RuntimeWarning)
            out = detector_for(name, segmenter)(ctx)
        findings.extend(out.findings)
        metrics.update(out.metrics)
        raw_maps.update(out.maps)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t1
    return findings, metrics, raw_maps


def _unrolled_maps(geometry: CellGeometry, raw_maps: dict[str, np.ndarray]) -> dict[str, UnrolledMap]:
    maps: dict[str, UnrolledMap] = {}
    if geometry.roll_slices and "cathode_thickness_um" in raw_maps:
        maps["cathode_thickness_um"] = unroll(geometry, raw_maps["cathode_thickness_um"], "cathode sheet thickness", "µm")
    if geometry.roll_slices:
        maps["cu_al_gap_um"] = unroll(geometry, geometry.stacked("cu_al_gap_um"), "Cu–Al gap", "µm")
        maps["cathode_intensity"] = unroll(geometry, geometry.stacked("sheet_intensity"), "cathode sheet intensity", "a.u.")
    return maps


def _inspect_chunked(volume: Volume, recipe: Recipe, budget: int, slices_per_chunk: int | None, report: Progress,
                     cancel: Callable[[], bool] | None, segmenter: str, timings: dict[str, float]):
    """Inspect a chunk of slices at a time (see :mod:`core.chunked`)."""
    from core import chunked

    t0 = time.perf_counter()
    params = geometry_params(recipe)
    chunked.plan_chunks(volume.shape, volume.spacing_um[0], budget, slices_per_chunk)  # too small a budget: say so now
    report(0.0, "roll frame from slices across the volume")
    prior, sample_geometry, reference, ends = chunked.measure_prior(volume, params, cancel=cancel)
    prior_json = sample_geometry.to_json()
    sample_index = chunked.sample_index(volume.shape[0])
    deep_of_end = {(end, inward): chunked.deep_roll_slice(sample_geometry, sample_index, end, inward)
                   for end, inward in ends}
    del sample_geometry
    timings["prior"] = time.perf_counter() - t0
    plan = chunked.plan_chunks(volume.shape, volume.spacing_um[0], budget, slices_per_chunk, centre_on=ends)
    every = max(1, int(math.ceil(volume.shape[0] / chunked.MAP_ROWS)))
    can_z = evenly(list(range(volume.shape[0])), 24)
    findings: list = []
    per_chunk_metrics: list[tuple[dict[str, Any], float, float]] = []
    geometry_parts: list[dict[str, Any]] = []
    map_parts: list[dict[str, UnrolledMap]] = []
    skipped: list[int] = []
    for n, c in enumerate(plan):
        lo_f, hi_f = 0.05 + 0.9 * n / len(plan), 0.05 + 0.9 * (n + 1) / len(plan)

        def stage(a: float, b: float, lo_f: float = lo_f, hi_f: float = hi_f, n: int = n) -> Progress:
            return lambda frac, m: report(lo_f + (hi_f - lo_f) * (a + (b - a) * frac), f"chunk {n + 1}/{len(plan)}: {m}")

        index = np.arange(c.view_lo, c.view_hi)
        sub = chunked.sub_volume(volume, index, volume.spacing_um[0])
        t1 = time.perf_counter()
        # The can on the chunk's share of the 24 slices a whole-volume inspection measures.
        can_slices = [z - c.view_lo for z in can_z if c.core_lo <= z < c.core_hi]
        geometry = measure_geometry(sub, params, progress=stage(0.0, 0.6), cancel=cancel,
                                    prior=prior.shifted(c.view_lo) if prior is not None else None,
                                    can_slices=can_slices if prior is not None else None)
        timings["geometry"] = timings.get("geometry", 0.0) + time.perf_counter() - t1
        here = dict(reference)
        for key in ("roll_first_slice", "roll_last_slice"):  # where the whole roll is, in this chunk's numbers
            if key in here:
                here[key] -= c.view_lo
        here.update(core_first_slice=float(c.core_lo - c.view_lo), core_last_slice=float(c.core_hi - 1 - c.view_lo))
        # A chunk measures a roll end's overhang only when it also holds the roll's interior
        # next to it (the sample's nearest roll slice); else the end is measured on its own
        # view below. (A 25 µm bottom slab cut into 47-slice chunks read 0 µm for 1258: its end
        # chunk held no interior and took the overhang's anode-only slices for the roll.)
        for (end, inward), deep in deep_of_end.items():
            if c.view_lo <= end < c.view_hi and deep is not None and not c.view_lo <= deep < c.view_hi:
                here[f"overhang_{'top' if inward > 0 else 'bottom'}_elsewhere"] = 1.0
        found, metrics, raw_maps = _run_detectors(sub, geometry, recipe, here, stage(0.6, 1.0), cancel,
                                                  segmenter, timings)
        chunked.shift_slice_metrics(metrics, c.view_lo)  # in the volume's slice numbers, as the findings below
        core_lo, core_hi = c.core_lo - c.view_lo, c.core_hi - c.view_lo
        for f in found:
            if core_lo <= f.centroid_zyx_px[0] < core_hi:
                chunked.shift_finding(f, c.view_lo)
                findings.append(f)
        own_rolls = [z for z in geometry.roll_slices if core_lo <= z < core_hi]
        own = set(own_rolls)
        skipped += [z + c.view_lo for z in range(core_lo, core_hi) if z not in own]
        per_chunk_metrics.append((metrics, float(len(own_rolls)), (c.core_hi - c.core_lo) / (c.view_hi - c.view_lo)))
        part = geometry.to_json()
        part["roll_slices"] = len(own_rolls)
        part["roll_slice_range"] = [own_rolls[0] + c.view_lo, own_rolls[-1] + c.view_lo] if own_rolls else None
        part["skipped_slices"] = (core_hi - core_lo) - len(own_rolls)
        part["notes"] = [chunked.shift_slice_numbers(n, c.view_lo) for n in part.get("notes", [])]
        geometry_parts.append(part)
        map_parts.append(chunked.chunk_maps(geometry, raw_maps, (core_lo, core_hi), every, c.view_lo))
        del geometry, raw_maps, sub
    # An end whose overhang no chunk held whole (chunks shorter than the overhang and the
    # interior it is compared with): measured on a view of its own (core.chunked.end_view).
    if "anode_overhang" in recipe.detectors and prior is not None:
        for (end, inward), deep in deep_of_end.items():
            side = "top" if inward > 0 else "bottom"
            if deep is None or any(f"anode_end_{side}_z_px" in m for m, _w, _own in per_chunk_metrics):
                continue
            t1 = time.perf_counter()
            view, end_geometry, lo = chunked.end_view(volume, prior, params, end, inward, deep, cancel)
            here = {key: reference[key] - lo for key in ("roll_first_slice", "roll_last_slice") if key in reference}
            ctx = DetectorContext(volume=view, geometry=end_geometry, rules=recipe.rules.get("anode_overhang", {}),
                                  cell=recipe.cell, cancel=cancel, reference=here)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out = detector_for("anode_overhang", segmenter)(ctx)
            for f in out.findings:
                chunked.shift_finding(f, lo)
                findings.append(f)
            chunked.shift_slice_metrics(out.metrics, lo)
            per_chunk_metrics.append((out.metrics, float(len(end_geometry.roll_slices)), 1.0))
            timings["anode_overhang"] = timings.get("anode_overhang", 0.0) + time.perf_counter() - t1
    metrics = chunked.merge_metrics(per_chunk_metrics)
    for part in geometry_parts:  # chunk-local slice numbers: replaced by the volume's below
        part["notes"] = [n for n in part.get("notes", []) if "without jelly roll skipped" not in n]
    geometry_json = chunked.merge_geometry_json(geometry_parts, prior_json)
    if skipped:
        geometry_json["notes"].append(f"{len(skipped)} slice(s) without jelly roll skipped ({_spans(skipped)}): "
                                      "cap, headspace, tabs or roll ends")
    sizes = [c.core_hi - c.core_lo for c in plan]
    spans = (", ".join(f"{c.core_lo}–{c.core_hi - 1}" for c in plan) if len(plan) <= 8
             else f"{min(sizes)}–{max(sizes)} slices each")
    halo = max(max(c.core_lo - c.view_lo, c.view_hi - c.core_hi) for c in plan)
    geometry_json["notes"] = list(geometry_json.get("notes", [])) + [
        f"inspected in {len(plan)} chunks of slices ({spans}) with a halo of up to {halo} slices, memory budget "
        f"{budget / 2**30:.2f} GB; medians and percentiles are slice-weighted means of the chunks'"]
    maps = chunked.stitch_maps(map_parts, volume.spacing_um[0])
    return findings, metrics, maps, geometry_json


def load_schema() -> dict[str, Any]:
    """The JSON Schema of an inspection result."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_result(result: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``result`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(result, load_schema())
