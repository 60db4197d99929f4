"""The validation matrix: randomised generated cells with exact truth, inspected through the
user's path, and scored against the truth.

Each :class:`Case` draws a cell format (18650 or 21700), a voxel size (8–25 µm in-plane; the
slice spacing the same or coarser: anisotropic voxels), a part of the cell (the roll's middle,
or a top or bottom slab with the cap, groove, crimp, tabs and the roll's end), a random
anatomy (:func:`core.phantom.anatomy.random_anatomy`), imaging conditions (noise, rings,
cupping, blur, an off-centre and slightly oval roll) and, for a defective cell, one to three
defects of random kind, size, winding, angle and height, placed where their layers exist.
:func:`run_case` renders the cell, writes it as an ImageJ TIFF with its voxel size and
inspects the file with :func:`core.filing.inspect_and_file` (what ``cellqc inspect FILE``
runs), with the recipe chosen from the can. :func:`score` compares the result with the
truth: which defects were found, which review/fail findings lie away from every true defect,
how many findings one defect gave, and how far each measurement is from the truth.
:func:`summarize` makes the table of ``docs/validation.md`` and :func:`fit_uncertainty` the
expanded uncertainties of ``resources/uncertainty.json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.findings import box_gap_um
from core.phantom.anatomy import random_anatomy
from core.phantom.render import SyntheticCell, defect_placement_problem, make_cell
from core.phantom.spec import (
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    Defect,
    DelaminationVoid,
    ForeignParticle,
)

# Which detectors find which kind of defect (a finding of any of them at the defect finds it).
FINDS = {
    "delamination": {"delamination"},
    "collector_deflection": {"collector_deflection", "winding_quality"},
    "coating_patch": {"electrode_thickness"},
    "foreign_particle": {"foreign_particle"},
}
# A review/fail finding within this distance (µm, between boxes) of a true defect is at it.
AT_DEFECT_UM = 500.0
VOXELS_UM = (8.0, 10.0, 12.0, 15.0, 18.0, 20.0, 25.0)
VOXEL_WEIGHTS = (0.05, 0.1, 0.15, 0.2, 0.15, 0.2, 0.15)


@dataclass
class Case:
    """One cell of the matrix (everything needed to generate it again)."""

    index: int
    seed: int
    healthy: bool
    kind: str
    voxel_um: float
    slice_um: float
    region: str
    n_slices: int | None
    artifacts: dict[str, Any] = field(default_factory=dict)
    ovality: float = 0.0
    center_offset_um: tuple[float, float] = (0.0, 0.0)
    defects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def spacing_um(self) -> tuple[float, float, float]:
        return (self.slice_um, self.voxel_um, self.voxel_um)

    def describe(self) -> str:
        what = "healthy" if self.healthy else f"{len(self.defects)} defect(s)"
        aniso = "" if self.slice_um == self.voxel_um else f" × {self.slice_um:g} µm slices"
        return f"#{self.index} {self.kind} {self.region} {self.voxel_um:g} µm{aniso}, {what}"


def draw_case(index: int, healthy: bool, seed0: int = 0, *, regions: tuple[str, ...] = ("middle", "top", "bottom"),
              region_weights: tuple[float, ...] = (0.7, 0.15, 0.15), voxels: tuple[float, ...] = VOXELS_UM,
              voxel_weights: tuple[float, ...] = VOXEL_WEIGHTS) -> Case:
    """Draw case ``index`` of a matrix seeded by ``seed0`` (the same arguments, the same case)."""
    seed = int(np.random.SeedSequence([seed0, index, int(healthy)]).generate_state(1)[0])
    rng = np.random.default_rng(seed)
    kind = str(rng.choice(["18650", "21700"]))
    w = np.asarray(voxel_weights, float)
    voxel = float(rng.choice(voxels, p=w / w.sum()))
    # Fine in-plane voxels come with coarser slices (a volume of a whole cross-section at 8 µm
    # and cubic voxels would not fit a workstation's memory); a third of the rest too.
    slice_um = max(voxel, 20.0) if voxel < 12 else (voxel * float(rng.choice([1.0, 1.5, 2.0])) if rng.uniform() < 0.35
                                                   else voxel)
    rw = np.asarray(region_weights, float)
    region = str(rng.choice(regions, p=rw / rw.sum()))
    # The middle of the roll: 0.8–1.4 mm of height (defects of up to ~0.7 mm inside it).
    n_slices = int(math.ceil(rng.uniform(800.0, 1400.0) / slice_um)) if region == "middle" else None
    artifacts = {"blur_sigma_px": float(rng.uniform(0.5, 1.0)), "noise_sigma": float(rng.uniform(0.04, 0.12)),
                 "ring_count": int(rng.integers(0, 11)), "ring_amplitude": float(rng.uniform(0.03, 0.1)),
                 "cupping": float(rng.uniform(0.0, 0.2))}
    case = Case(index=index, seed=seed, healthy=healthy, kind=kind, voxel_um=voxel, slice_um=slice_um, region=region,
                n_slices=n_slices, artifacts=artifacts, ovality=float(rng.uniform(0.0, 0.015)),
                center_offset_um=(float(rng.uniform(-1500, 1500)), float(rng.uniform(-1500, 1500))))
    return case


def cell_spec(case: Case) -> CellSpec:
    """The generated cell's construction (anatomy drawn from the case's seed)."""
    rng = np.random.default_rng([case.seed, 1])
    base = CellSpec(kind=case.kind, voxel_size_um=case.voxel_um, slice_spacing_um=case.slice_um,  # type: ignore[arg-type]
                    n_slices=case.n_slices, region=case.region, ovality=case.ovality,  # type: ignore[arg-type]
                    ovality_angle_deg=float(rng.uniform(0, 180)), spiral_start_deg=float(rng.uniform(0, 360)),
                    center_offset_um=case.center_offset_um)
    anatomy = random_anatomy(rng, case.kind, spec=base)
    # A slab of the cell's top or bottom is as tall as its anatomy needs (n_slices from it).
    return replace(base, anatomy=anatomy, n_slices=case.n_slices)


def _interior_slices(spec: CellSpec) -> list[int]:
    """Slices of the roll's interior of a spec (from a truth-only render of its layout)."""
    from core.phantom import anatomy as anat
    from core.phantom.render import _slice_label

    layout = anat.cell_layout(spec)
    return [z for z in range(int(spec.n_slices)) if _slice_label(layout, None, spec, z) == "roll_interior"]  # type: ignore[arg-type]


def draw_defects(case: Case, spec: CellSpec, rng: np.random.Generator, n: int | None = None) -> list[Defect]:
    """One to three defects of random kinds, sizes and places, where their layers exist and
    at least 60° (or three windings) apart."""
    interior = _interior_slices(spec) if spec.region != "middle" else list(range(int(spec.n_slices)))  # type: ignore[arg-type]
    if not interior:
        return []
    z_lo, z_hi = interior[0], interior[-1]
    dz = spec.slice_spacing_um or spec.voxel_size_um
    height = (z_hi - z_lo + 1) * dz
    n = n if n is not None else int(rng.integers(1, 4))
    kinds = list(rng.permutation(["collector_deflection", "delamination", "coating_patch", "foreign_particle"]))[:n]
    windings = spec.windings
    placed: list[Defect] = []
    base_angle = float(rng.uniform(0, 360))
    for i, kind in enumerate(kinds):
        for _attempt in range(80):
            angle = (base_angle + i * 360.0 / max(n, 1) + rng.uniform(-25, 25)) % 360.0
            k = int(rng.integers(3, max(windings - 3, 4)))
            zc = float(rng.uniform(z_lo + 0.35 * (z_hi - z_lo), z_lo + 0.65 * (z_hi - z_lo)))
            h = float(min(rng.uniform(300.0, 700.0), 0.7 * height))
            h = max(h, 3 * dz)
            d: Defect
            if kind == "collector_deflection":
                d = CollectorDeflection(winding=k, angle_deg=angle, amplitude_um=float(rng.choice([-1, 1]) * rng.uniform(70, 140)),
                                        angular_span_deg=float(rng.uniform(20, 40)), z_center=zc,
                                        height_span_um=max(1.5 * h, 4 * dz))
            elif kind == "delamination":
                d = DelaminationVoid(winding=k, angle_deg=angle, thickness_um=float(rng.uniform(35, 55)),
                                     arc_length_um=float(rng.uniform(700, 1500)), height_um=h, z_center=zc,
                                     side=str(rng.choice(["inner", "outer"])), depth_um=float(rng.uniform(5, 15)))  # type: ignore[arg-type]
            elif kind == "coating_patch":
                change = float(rng.uniform(-0.4, -0.25)) if rng.uniform() < 0.75 else float(rng.uniform(0.25, 0.35))
                d = CoatingPatch(winding=k, angle_deg=angle, sheet_change=change, arc_length_um=float(rng.uniform(1500, 3000)),
                                 height_um=h, z_center=zc)
            else:
                r = spec.mandrel_radius_um + spec.pitch_um * float(rng.uniform(3.3, windings - 3.0))
                d = ForeignParticle(radius_um=r, angle_deg=angle, diameter_um=float(rng.uniform(max(80.0, 4 * spec.voxel_size_um), 200.0)),
                                    z_center=zc)
            if defect_placement_problem(spec, d):
                continue
            placed.append(d)
            break
    return placed


def build_cell(case: Case) -> SyntheticCell:
    """Render the case's cell (its defects drawn now from its seed and kept in ``case.defects``)."""
    spec = cell_spec(case)
    defects: list[Defect] = []
    if not case.healthy:
        defects = draw_defects(case, spec, np.random.default_rng([case.seed, 2]))
        case.defects = [{"kind": d.kind, **{k: v for k, v in asdict(d).items() if k != "kind"}} for d in defects]
    artifacts = Artifacts(**case.artifacts)
    return make_cell(spec, defects, artifacts, seed=case.seed, cell_id=f"VAL-{case.index:03d}")


def run_case(case: Case, workdir: str | Path, keep: bool = False,
             memory_budget_gb: float | None = None) -> dict[str, Any]:
    """Generate, write, inspect (the user's path) and score one case; a row of the matrix.

    ``memory_budget_gb`` is ``cellqc inspect --memory-gb`` (a small one: inspected in chunks)."""
    from core.filing import inspect_and_file
    from core.io.writers import write_tiff

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cell = build_cell(case)
    path = workdir / f"case_{case.index:03d}.tif"
    write_tiff(cell.volume, path)
    t1 = time.perf_counter()
    inspection, _ = inspect_and_file(path, cell_id=cell.volume.cell_id, memory_budget_gb=memory_budget_gb)
    t2 = time.perf_counter()
    row = {"case": asdict(case), "describe": case.describe(), "shape_zyx": list(cell.volume.shape),
           "render_s": t1 - t0, "inspect_s": t2 - t1}
    row.update(score(inspection.result, cell.truth))
    if not keep:
        path.unlink(missing_ok=True)
    return row


def _box(d: dict[str, Any]) -> tuple[int, ...] | None:
    b = d.get("bbox_zyx_px")
    return tuple(int(v) for v in b) if b else None


def score(result: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Compare an inspection result with its phantom's truth (see the module docstring)."""
    spacing = tuple(float(s) for s in result.get("spacing_um") or [result["voxel_size_um"]] * 3)
    judged = [f for f in result["findings"] if f["severity"] in ("fail", "review")]
    defects = [d for d in truth.get("defects", []) if d.get("present") and _box(d) is not None]
    out: dict[str, Any] = {"verdict": result["verdict"], "n_findings": len(judged),
                           "reasons": result.get("reasons", []), "defects": [], "false_findings": []}
    at_any = [False] * len(judged)
    for d in defects:
        box = _box(d)
        near = [i for i, f in enumerate(judged) if box_gap_um(tuple(f["bbox_zyx_px"]), box, spacing) <= AT_DEFECT_UM]
        for i in near:
            at_any[i] = True
        hits = [judged[i] for i in near if judged[i]["detector"] in FINDS.get(d["kind"], set())]
        entry = {"kind": d["kind"], "found": bool(hits), "n_findings_at": len(near),
                 "severity": min((h["severity"] for h in hits), key=lambda s: {"fail": 0, "review": 1}[s], default=None)}
        best = max(hits, key=lambda f: abs(float(f["value"])), default=None)
        if best is not None:
            entry.update(_measurement_error(d, best))
        out["defects"].append(entry)
    out["false_findings"] = [{"detector": f["detector"], "severity": f["severity"], "value": f["value"],
                              "unit": f["unit"], "message": f["message"]}
                             for f, hit in zip(judged, at_any, strict=True) if not hit]
    out["geometry_errors"] = _geometry_errors(result, truth)
    return out


def _measurement_error(d: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
    value = abs(float(f["value"]))
    if d["kind"] == "delamination" and f["detector"] == "delamination":
        true = float(d["volume_mm3"])
        return {"quantity": "void_volume_mm3", "true": true, "measured": value, "rel_error": (value - true) / true,
                "uncertainty": f.get("uncertainty")}
    if d["kind"] == "collector_deflection" and f["detector"] == "collector_deflection":
        true = abs(float(d["amplitude_um"]))
        return {"quantity": "collector_deflection_um", "true": true, "measured": value, "error": value - true,
                "rel_error": (value - true) / true if true else None, "uncertainty": f.get("uncertainty")}
    if d["kind"] == "coating_patch":
        true = 100.0 * float(d["sheet_change"])
        return {"quantity": "sheet_thickness_deviation_pct", "true": true, "measured": float(f["value"]),
                "error": float(f["value"]) - true, "uncertainty": f.get("uncertainty")}
    if d["kind"] == "foreign_particle":
        true = float(d["diameter_um"])
        return {"quantity": "particle_diameter_um", "true": true, "measured": value, "error": value - true,
                "uncertainty": f.get("uncertainty")}
    return {}


def _geometry_errors(result: dict[str, Any], truth: dict[str, Any]) -> dict[str, Any]:
    g, m = result.get("geometry", {}), result.get("metrics", {})
    out: dict[str, Any] = {}
    can = truth.get("can", {})
    if g.get("can_outer_diameter_mm") is not None and can.get("outer_radius_um"):
        out["can_outer_diameter_mm"] = {"true": 2e-3 * can["outer_radius_um"], "measured": g["can_outer_diameter_mm"],
                                        "error": g["can_outer_diameter_mm"] - 2e-3 * can["outer_radius_um"]}
    stack = truth.get("stack", {}).get("cathode_sheet_thickness_um")
    if stack and m.get("cathode_sheet_thickness_median_um") is not None:
        true = float(np.median(stack))
        out["sheet_thickness_um"] = {"true": true, "measured": m["cathode_sheet_thickness_median_um"],
                                     "error": m["cathode_sheet_thickness_median_um"] - true}
    ends = (truth.get("anatomy") or {}).get("roll_ends") or {}
    region = truth.get("region") or (truth.get("spec") or {}).get("region")
    side = {"top": "top", "bottom": "bottom"}.get(str(region))
    if side and side in ends:
        # A slab through the roll's end whose overhang is not measured is a miss, not a skip.
        true = float(ends[side]["overhang_um_mean"])
        measured = m.get("anode_overhang_mean_um")
        out["anode_overhang_um"] = {"true": true, "measured": measured,
                                    "error": None if measured is None else measured - true,
                                    "slice_um": float(result["spacing_um"][0])}
    return out


# ------------------------------------------------------------------------------ summary


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The matrix's numbers: verdicts of healthy cells, recall per kind, false findings,
    findings per defect, and the measurement errors."""
    healthy = [r for r in rows if r["case"]["healthy"] and "error" not in r]
    defective = [r for r in rows if not r["case"]["healthy"] and "error" not in r]
    out: dict[str, Any] = {"cells": len(rows), "errors": [r for r in rows if "error" in r]}
    out["healthy"] = {"cells": len(healthy),
                      "verdicts": {v: sum(r["verdict"] == v for r in healthy) for v in ("PASS", "REVIEW", "FAIL")},
                      "false_findings": [(r["describe"], f["message"]) for r in healthy for f in r["false_findings"]]}
    kinds: dict[str, dict[str, int]] = {}
    for r in defective:
        for d in r["defects"]:
            k = kinds.setdefault(d["kind"], {"defects": 0, "found": 0, "max_findings_at": 0})
            k["defects"] += 1
            k["found"] += int(d["found"])
            k["max_findings_at"] = max(k["max_findings_at"], d["n_findings_at"])
    for k in kinds.values():
        k["recall"] = k["found"] / k["defects"] if k["defects"] else None
    clean = [r for r in defective if not r["false_findings"]]
    out["defective"] = {
        "cells": len(defective), "kinds": kinds,
        "cells_without_false_finding": len(clean),
        "clean_fraction": len(clean) / len(defective) if defective else None,
        "max_findings_per_defect": max((d["n_findings_at"] for r in defective for d in r["defects"]), default=0),
        "false_findings": [(r["describe"], f["message"]) for r in defective for f in r["false_findings"]],
        "missed": [(r["describe"], d["kind"]) for r in defective for d in r["defects"] if not d["found"]],
    }
    ends = [(r["describe"], r["geometry_errors"]["anode_overhang_um"]) for r in rows if "error" not in r
            and "anode_overhang_um" in r.get("geometry_errors", {})]
    out["overhang"] = {"slabs": len(ends),
                       "not_measured": [d for d, e in ends if e.get("error") is None],
                       "within_2_slices": sum(e.get("error") is not None and abs(e["error"]) <= 2 * e["slice_um"]
                                              for _d, e in ends)}
    out["errors_by_quantity"] = _errors_by_quantity(rows)
    return out


def _errors_by_quantity(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float, float]]]:
    """quantity → [(voxel µm that limits it, error, true value)]."""
    out: dict[str, list[tuple[float, float, float]]] = {}
    for r in rows:
        if "error" in r:
            continue
        voxel = max(r["case"]["voxel_um"], r["case"]["slice_um"])
        for d in r.get("defects", []):
            q = d.get("quantity")
            if not q:
                continue
            err = d.get("rel_error") if q == "void_volume_mm3" else d.get("error")
            if err is not None and math.isfinite(err):
                out.setdefault(q, []).append((voxel, float(err), float(d["true"])))
        for q, e in r.get("geometry_errors", {}).items():
            if e.get("error") is None:
                continue  # not measured: counted by summarize, no error to fit
            v = e.get("slice_um", voxel) if q == "anode_overhang_um" else r["case"]["voxel_um"]
            out.setdefault(q, []).append((float(v), float(e["error"]), float(e["true"])))
    return out


def fit_uncertainty(errors: dict[str, list[tuple[float, float, float]]]) -> dict[str, Any]:
    """Fit ``u(v) = sqrt(a² + (b v)²)`` to each quantity's errors (least squares on the squared
    errors, both coefficients ≥ 0): the standard uncertainty at voxel size v; the expanded one
    is k = 2 times it (:mod:`core.uncertainty`)."""
    units = {"void_volume_mm3": ("mm³", True), "collector_deflection_um": ("µm", False),
             "sheet_thickness_deviation_pct": ("%", False), "particle_diameter_um": ("µm", False),
             "can_outer_diameter_mm": ("mm", False), "sheet_thickness_um": ("µm", False),
             "anode_overhang_um": ("µm", False)}
    out = {}
    for q, pts in errors.items():
        if q not in units or len(pts) < 3:
            continue
        v = np.array([p[0] for p in pts])
        e2 = np.array([p[1] for p in pts]) ** 2
        design = np.column_stack([np.ones_like(v), v**2])
        coef, *_ = np.linalg.lstsq(design, e2, rcond=None)
        a2, b2 = float(coef[0]), float(coef[1])
        # A coefficient the fit drives negative is 0, and the other is fitted alone (keeping the
        # two-parameter intercept instead once doubled a deflection's U: 73 µm from an RMS of 18).
        if b2 < 0.0:
            a2, b2 = float(np.mean(e2)), 0.0
        elif a2 < 0.0:
            a2, b2 = 0.0, float(np.sum(e2 * v**2) / np.sum(v**4))
        unit, relative = units[q]
        out[q] = {"unit": unit, "relative": relative, "a": math.sqrt(a2), "b": math.sqrt(b2), "samples": len(pts),
                  "rms_error": float(math.sqrt(np.mean(e2))), "voxel_range_um": [float(v.min()), float(v.max())]}
    # A deflection departure from the spiral (winding quality) is measured like a deflection.
    if "collector_deflection_um" in out:
        out["winding_departure_um"] = dict(out["collector_deflection_um"])
    return out


def markdown(summary: dict[str, Any]) -> str:
    """The table of ``docs/validation.md``."""
    h, d = summary["healthy"], summary["defective"]
    lines = ["| healthy cells | PASS | REVIEW | FAIL |", "|---|---|---|---|",
             f"| {h['cells']} | {h['verdicts']['PASS']} | {h['verdicts']['REVIEW']} | {h['verdicts']['FAIL']} |", "",
             "| defect kind | defects | found | recall | most findings at one defect |", "|---|---|---|---|---|"]
    for kind, k in sorted(d["kinds"].items()):
        lines.append(f"| {kind} | {k['defects']} | {k['found']} | {k['recall']:.2f} | {k['max_findings_at']} |")
    frac = d["clean_fraction"]
    lines += ["", f"Defective cells without a review/fail finding away from a true defect: "
              f"{d['cells_without_false_finding']} of {d['cells']}" + (f" ({100 * frac:.0f} %)" if frac is not None else ""),
              "", "| quantity | samples | RMS error | voxel sizes (µm) |", "|---|---|---|---|"]
    ov = summary.get("overhang") or {}
    if ov.get("slabs"):
        lines[-2:-2] = [f"Roll ends (top and bottom slabs): overhang within 2 slices in {ov['within_2_slices']} of "
                        f"{ov['slabs']}; not measured in {len(ov['not_measured'])}", ""]
    for q, pts in sorted(summary["errors_by_quantity"].items()):
        errs = np.array([p[1] for p in pts])
        rms = float(np.sqrt(np.mean(errs**2)))
        unit = "(relative)" if q == "void_volume_mm3" else ""
        vox = sorted({p[0] for p in pts})
        lines.append(f"| {q} | {len(pts)} | {rms:.3g} {unit} | {vox[0]:g}–{vox[-1]:g} |")
    return "\n".join(lines)
