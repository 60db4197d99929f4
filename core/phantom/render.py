"""Rendering of a synthetic wound cell with exact partial-volume layers, its anatomy and known
defects.

The roll in the slice plane is :mod:`core.phantom.roll` (the exact partial-volume spiral and
the anatomy painted as overlap corrections). Along the axis the cell is laid out by
:mod:`core.phantom.anatomy`: each sheet (separators, anode, cathode) is present between its
two edges (the roll's ends), so a slice is the mix of the in-plane images of the sheet sets
present, weighted by the exact fraction of the slice each set fills (partial volume along z).
The can, cap, gasket and insulators are bodies of revolution (:mod:`core.phantom.body`).
Since the roll's interior is the same in every slice, its images are rendered once; defects
are painted per slice inside their bounding boxes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from core.io.volume import Volume
from core.phantom import anatomy as anat
from core.phantom import body as bodies
from core.phantom.roll import (
    FULL,
    NONE,
    RollImages,
    _build_stack,
    _Frame,
    _overlap,
    _Stack,
    _stack_profile,
)
from core.phantom.spec import (
    MATERIAL_MU,
    Anatomy,
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    Defect,
    DelaminationVoid,
    ForeignParticle,
)

MU = MATERIAL_MU
SHEETS = ("separator", "anode", "cathode")
STATES = [frozenset(c) for c in (("separator", "anode", "cathode"), ("separator", "anode"),
                                  ("separator", "cathode"), ("anode", "cathode"), ("separator",),
                                  ("anode",), ("cathode",), ())]


@dataclass
class SyntheticCell:
    """A generated volume with its ground truth (JSON-serialisable dict)."""

    volume: Volume
    truth: dict[str, Any]


def _wrap_deg(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap to (-180, 180]."""
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


def _raised_cosine(x: np.ndarray, full_width: float) -> np.ndarray:
    half = full_width / 2.0
    out = 0.5 * (1 + np.cos(np.pi * np.clip(x / half, -1, 1)))
    return np.where(np.abs(x) < half, out, 0.0)


def _spiral_psi(spec: CellSpec, polar_deg: np.ndarray | float) -> np.ndarray:
    """Spiral angle psi in [0, 2π) of rays at image polar angles ``polar_deg``."""
    return anat.spiral_psi(spec, polar_deg)


# --------------------------------------------------------------------------- truth helpers


def _truth_psi(truth: dict[str, Any], polar_deg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    roll = truth["roll"]
    e = roll["ovality"]
    alpha = math.radians(roll["ovality_angle_deg"])
    beta = np.radians(np.asarray(polar_deg, dtype=float)) - alpha
    cx, sy = np.cos(beta) / (1 + e), np.sin(beta) / (1 - e)
    theta = np.arctan2(sy, cx)
    psi = (theta + alpha - math.radians(roll["spiral_start_deg"])) % (2 * np.pi)
    return psi, cx, sy


def _truth_wobble_um(truth: dict[str, Any], s: Any, psi: Any) -> np.ndarray:
    inner = (truth.get("anatomy") or {}).get("innermost_turn")
    if not inner or not inner["wobble_um"]:
        return np.zeros(np.broadcast(np.asarray(s), np.asarray(psi)).shape)
    shape = Anatomy(wobble_um=inner["wobble_um"], wobble_fade_turns=inner["fade_turns"],
                    wobble_harmonics=tuple(tuple(h) for h in inner["harmonics"]))
    return anat.wobble_um(shape, s, psi)


def truth_layer_radius_um(truth: dict[str, Any], winding: int, offset_um: float, polar_deg: np.ndarray) -> np.ndarray:
    """Physical radius (µm from the axis) of a layer along rays at ``polar_deg``.

    Parameters
    ----------
    truth : dict
        The ``truth`` of a :class:`SyntheticCell`.
    winding : int
        Winding index counted along the ray from the mandrel outwards (0 = innermost).
    offset_um : float
        Depth of the layer in the winding's stack, e.g. ``truth["stack"]["cu_center_um"][k]``.
    polar_deg : array_like
        Ray angles (image convention, degrees).

    The innermost turns' wobble (``truth["anatomy"]["innermost_turn"]``) is included.
    """
    roll = truth["roll"]
    psi, cx, sy = _truth_psi(truth, polar_deg)
    pitch = roll["pitch_um"]
    # Stack depths are measured along the elliptical radius r_eff, exactly as the renderer
    # lays them out (u = (r_eff - r0) / pitch - psi / 2π); on an oval roll a layer's thickness
    # along the normal is therefore its nominal thickness times a metric in [1 - e, 1 + e].
    s = winding + psi / (2 * np.pi)
    r_eff = roll["mandrel_radius_um"] + pitch * s + offset_um + _truth_wobble_um(truth, s, psi)
    return r_eff / np.hypot(cx, sy)


def truth_strip_position(truth: dict[str, Any], winding: int, polar_deg: Any) -> np.ndarray:
    """Strip position (turns along the wound strip) of winding ``winding`` on rays at
    ``polar_deg``: ``winding + psi / 2π``."""
    psi, _, _ = _truth_psi(truth, polar_deg)
    return winding + psi / (2 * np.pi)


def truth_layer_present(truth: dict[str, Any], layer: str, winding: int, polar_deg: Any) -> np.ndarray:
    """Whether ``layer`` (``cu``, ``anode_inner``, ``cathode_outer``, ``separator_a``, …,
    ``tape``; see ``truth["anatomy"]["presence"]``) exists in winding ``winding`` on rays at
    ``polar_deg``. Without anatomy every layer exists in every winding."""
    s = truth_strip_position(truth, winding, polar_deg)
    anatomy = truth.get("anatomy")
    if not anatomy:
        n = truth["roll"]["windings"]
        return np.broadcast_to(np.asarray(0 <= winding < n), np.shape(s)).copy()
    out = np.zeros(np.shape(s), bool)
    for a, b in anatomy["presence"][layer]:
        out |= (s >= a) & (s < b)
    return out


def truth_windings_with(truth: dict[str, Any], layer: str, polar_deg: float) -> list[int]:
    """Windings (along the ray at ``polar_deg``) in which ``layer`` exists."""
    n = truth["roll"]["windings"]
    return [k for k in range(n + 1) if bool(truth_layer_present(truth, layer, k, polar_deg))]


# --------------------------------------------------------------------------- defects


def _defect_strip_range(spec: CellSpec, defect: Defect) -> tuple[float, float] | None:
    """Strip positions covered by a layer defect (turns), or None for a particle."""
    if isinstance(defect, ForeignParticle):
        return None
    k = defect.winding
    psi = float(anat.spiral_psi(spec, defect.angle_deg))
    s = k + psi / (2 * np.pi)
    if isinstance(defect, CollectorDeflection):
        half = defect.angular_span_deg / 2 / 360.0
    else:
        r = spec.mandrel_radius_um + spec.pitch_um * (s + 0.5)
        half = defect.arc_length_um / 2 / (2 * np.pi * r * (1 - abs(spec.ovality)))
    return s - half, s + half


def defect_layers(defect: Defect) -> tuple[str, ...]:
    """The layers a defect needs present over its whole extent."""
    if isinstance(defect, DelaminationVoid):
        return ("cathode_outer",) if defect.side == "outer" else ("cathode_inner",)
    if isinstance(defect, CoatingPatch):
        return ("cathode_inner", "al", "cathode_outer")
    if isinstance(defect, CollectorDeflection):
        return ("anode_inner", "cu", "anode_outer")
    return ()


def _defect_fits(spec: CellSpec, plan: anat.StripPlan | None, defect: Defect, margin_turns: float = 0.0) -> str:
    """Empty if the defect lies where its layers exist, else why not."""
    rng_s = _defect_strip_range(spec, defect)
    if rng_s is None:
        return ""
    s0, s1 = rng_s[0] - margin_turns, rng_s[1] + margin_turns
    if not 0 <= defect.winding < spec.windings:  # type: ignore[union-attr]
        return f"winding {defect.winding} is outside 0..{spec.windings - 1}"  # type: ignore[union-attr]
    if plan is None:
        return ""
    samples = np.linspace(s0, s1, 65)
    for layer in defect_layers(defect):
        ok = anat.present_at(plan, layer, samples)
        if not ok.all():
            bad = samples[~ok]
            return (f"{defect.kind} at winding {defect.winding}, {defect.angle_deg:.1f}° (strip turns "
                    f"{s0:.2f}–{s1:.2f}) reaches where the {layer.replace('_', ' ')} is absent "
                    f"(e.g. strip turn {bad[0]:.2f}: electrode end, single-sided stretch or tab window)")
    return ""


def defect_placement_problem(spec: CellSpec, defect: Defect) -> str:
    """Why ``defect`` cannot be rendered in this cell ("" if it can): a layer defect must lie,
    over its whole extent, where its layers exist (a void in a coating that is there, a
    deflection in a Cu foil with both anode coatings, a patch in a double-coated sheet)."""
    plan = anat.strip_plan(spec) if isinstance(spec.anatomy, Anatomy) else None
    return _defect_fits(spec, plan, defect)


def default_defects(spec: CellSpec, rng: np.random.Generator | None = None) -> list[Defect]:
    """A defective cell like the seed study's: a deflected collector near the terminal end,
    a delamination void inside the cathode, a thinned coating patch and a metal particle.

    With the anatomy on, each layer defect is placed where its layers exist (away from the
    electrode ends, single-sided stretches and the tab window, with a margin): the planned
    angle first, then other angles and neighbouring windings.
    """
    rng = rng or np.random.default_rng(0)
    n = spec.windings
    dz = float(spec.slice_spacing_um)  # type: ignore[arg-type]
    z_roll = spec.headspace_slices
    nz = int(spec.n_slices)  # type: ignore[arg-type]
    nz_roll = nz - z_roll
    zc = z_roll + (nz_roll - 1) / 2.0
    height = max(nz_roll * dz * 0.6, dz)
    angles = rng.permutation(np.arange(0, 360, 90)) + rng.uniform(-20, 20, 4)
    defects: list[Defect] = [
        CollectorDeflection(winding=int(n * 0.7), angle_deg=float(angles[0]) % 360, amplitude_um=70.0,
                            angular_span_deg=25.0, z_center=zc, height_span_um=height * 1.5),
        DelaminationVoid(winding=int(n * 0.5), angle_deg=float(angles[1]) % 360, thickness_um=45.0,
                         arc_length_um=900.0, height_um=max(height, 3 * dz), z_center=zc),
        CoatingPatch(winding=int(n * 0.3), angle_deg=float(angles[2]) % 360, sheet_change=-0.3,
                     arc_length_um=2000.0, height_um=max(height, 3 * dz), z_center=zc),
        ForeignParticle(radius_um=spec.mandrel_radius_um + spec.pitch_um * (n * 0.85 + 0.3),
                        angle_deg=float(angles[3]) % 360, diameter_um=max(90.0, 4 * spec.voxel_size_um),
                        z_center=zc),
    ]
    if not isinstance(spec.anatomy, Anatomy):
        return defects
    plan = anat.strip_plan(spec)
    if spec.region != "middle":
        layout = anat.cell_layout(spec)
        interior = [z for z in range(nz) if _slice_label(layout, None, spec, z) == "roll_interior"]
        if interior:
            mid = 0.5 * (interior[0] + interior[-1])
            span = (interior[-1] - interior[0] + 1) * dz
            for d in defects:
                d.z_center = mid
                if isinstance(d, CollectorDeflection):
                    d.height_span_um = min(d.height_span_um, span)
                elif not isinstance(d, ForeignParticle):
                    d.height_um = min(d.height_um, max(span * 0.8, dz))
    margin = 0.05
    for d in defects:
        if isinstance(d, ForeignParticle) or not _defect_fits(spec, plan, d, margin):
            continue
        base_k, base_a = d.winding, d.angle_deg
        placed = False
        for dk in (0, 1, -1, 2, -2, 3, -3):
            for da in range(0, 360, 15):
                d.winding, d.angle_deg = base_k + dk, (base_a + da) % 360.0
                if 1 <= d.winding < n - 1 and not _defect_fits(spec, plan, d, margin):
                    placed = True
                    break
            if placed:
                break
        if not placed:
            raise ValueError(f"no place for the default {d.kind} in this cell's coated roll")
    return defects


# --------------------------------------------------------------------------- the cell


def make_cell(
    spec: CellSpec | None = None,
    defects: list[Defect] | None = None,
    artifacts: Artifacts | None = None,
    seed: int = 0,
    cell_id: str | None = None,
) -> SyntheticCell:
    """Render a synthetic wound cell.

    Parameters
    ----------
    spec : CellSpec
        Construction and sampling (defaults: an 18650 at 20 µm, 8 slices through the middle
        of the roll, with the anatomy of a real cell).
    defects : list of defect specs
        Injected defects (see :mod:`core.phantom.spec`); their exact ground truth is returned.
        A layer defect must lie where its layers exist (``ValueError`` otherwise).
    artifacts : Artifacts
        Blur, noise, rings, cupping, optional FBP streaks. ``Artifacts.clean()`` for none.
    seed : int
        Seeds the coating jitter, rings and noise.
    cell_id : str, optional
        Stored in the volume's metadata.

    Returns
    -------
    SyntheticCell
        ``volume`` (float32, spacing (z, y, x) = (slice spacing, voxel, voxel)) and ``truth``.
    """
    spec = spec or CellSpec()
    defects = list(defects or [])
    artifacts = artifacts or Artifacts()
    rng = np.random.default_rng(seed)
    v = spec.voxel_size_um
    dz = float(spec.slice_spacing_um)  # type: ignore[arg-type]
    n_windings = spec.windings
    stack = _build_stack(spec, rng)
    has_anatomy = isinstance(spec.anatomy, Anatomy)
    plan = anat.strip_plan(spec) if has_anatomy else None
    layout = anat.cell_layout(spec) if has_anatomy else None
    body = bodies.build_body(spec, layout.parts) if layout is not None else None
    for d in defects:
        problem = _defect_fits(spec, plan, d)
        if problem:
            raise ValueError(problem)

    nz = int(spec.n_slices)  # type: ignore[arg-type]
    max_drift = np.abs(np.asarray(spec.axis_drift_um_per_slice)) * nz
    reach = float(spec.can_outer_radius_um) + np.max(np.abs(spec.center_offset_um)) + max_drift.max()
    size = spec.image_size_px or int(2 * math.ceil(reach / v + 12))
    # u spans from the axis (r_eff = 0, psi → 2π) to the farthest image corner.
    far_um = (size * math.sqrt(2) * v + float(np.hypot(*spec.center_offset_um)) + max_drift.sum()) / (1 - abs(spec.ovality))
    u_range = (-spec.mandrel_radius_um / spec.pitch_um - 2.0, (far_um - spec.mandrel_radius_um) / spec.pitch_um + 2.0)
    table_u, table_f = _stack_profile(stack, n_windings, *u_range)
    img_c = (size - 1) / 2.0

    def center_at(z: int) -> tuple[float, float]:
        return (
            img_c + (spec.center_offset_um[0] + spec.axis_drift_um_per_slice[0] * z) / v,
            img_c + (spec.center_offset_um[1] + spec.axis_drift_um_per_slice[1] * z) / v,
        )

    grid = np.arange(size, dtype=np.float64)
    drifting = any(d != 0 for d in spec.axis_drift_um_per_slice)
    cached: dict[str, Any] = {}

    def roll_at(z: int) -> tuple[_Frame, RollImages]:
        if "roll" not in cached or drifting:
            frame = _Frame(spec, center_at(z), grid, grid)
            cached["roll"] = (frame, RollImages(spec, stack, plan, frame, u_range))
            cached.pop("cathode_z", None)
            cached.pop("interior", None)
        return cached["roll"]

    ends = _sheet_extents(spec, layout)
    tabs_out = _headspace_tabs(spec, stack, plan, layout) if plan is not None else []
    volume = np.empty((nz, size, size), dtype=np.float32)
    art_cache: dict[str, Any] = {}
    truths: list[dict[str, Any]] = [_defect_truth_init(d) for d in defects]
    n_sub = int(np.clip(math.ceil(dz / 4.0), 8, 32))
    for z in range(nz):
        if z < spec.headspace_slices:
            frame = _Frame(spec, center_at(z), grid, grid)
            img = _headspace_slice(spec, frame, z)
            volume[z] = _apply_artifacts(spec, frame, img, artifacts, rng, img_c, art_cache)
            continue
        frame, roll = roll_at(z)
        z0 = (layout.z0_um if layout else 0.0) + z * dz
        z1 = z0 + dz
        fractions = ends.fractions(z0, z1, lambda fr=frame: _cathode_z(cached, ends, fr))
        straight_can = body is None or not bodies.slice_in_features(body, z0, z1)
        if straight_can and len(fractions) == 1 and fractions[0][0] == FULL:
            # The roll's interior beside the straight can: the same image in every slice.
            if "interior" not in cached:
                cached["interior"] = _compose_can(spec, frame, roll.state(FULL))
            img = cached["interior"].copy()
            for defect, truth in zip(defects, truths, strict=True):
                _paint_defect(spec, stack, frame, img, z, defect, truth, roll)
            volume[z] = _apply_artifacts(spec, frame, img, artifacts, rng, img_c, art_cache)
            continue
        mix: np.ndarray | None = None
        for state, frac in fractions:
            part = roll.state(state)
            if state == FULL and defects:
                part = part.copy()
                for defect, truth in zip(defects, truths, strict=True):
                    _paint_defect(spec, stack, frame, part, z, defect, truth, roll)
            if mix is None and np.isscalar(frac) and frac == 1.0:
                mix = part if part is not roll.state(state) else part.copy()
            else:
                mix = (frac * part) if mix is None else mix + frac * part
        assert mix is not None
        for tab, straight, _ in tabs_out:
            f = _overlap_len(z0, z1, *straight) / dz
            if f > 0:
                mix = mix + f * roll.tab_over_gas(tab)
        if straight_can:
            img = _compose_can(spec, frame, mix)
        else:
            img = _compose_body(spec, frame, body, mix, z0, z1, n_sub)  # type: ignore[arg-type]
        for _tab, _, path in tabs_out:
            a, b = path.z_range()
            if z1 > a and z0 < b:
                _paint_tab_strip(spec, frame, img, path, z0, z1, n_sub)
        volume[z] = _apply_artifacts(spec, frame, img, artifacts, rng, img_c, art_cache)

    truth = {
        "schema": "cellqc.phantom-truth/1",
        "seed": seed,
        "spec": spec.as_dict(),
        "artifacts": asdict(artifacts),
        "voxel_size_um": v,
        "spacing_um": [dz, v, v],
        "region": spec.region,
        "shape_zyx": [nz, size, size],
        "axis_center_yx_px": [list(center_at(z)) for z in range(nz)],
        "can": {"outer_radius_um": spec.can_outer_radius_um, "inner_radius_um": spec.can_inner_radius_um,
                "wall_um": spec.can_wall_um},
        "roll": {
            "windings": n_windings,
            "pitch_um": spec.pitch_um,
            "mandrel_radius_um": spec.mandrel_radius_um,
            "inner_radius_um": spec.mandrel_radius_um,
            "outer_radius_um": spec.mandrel_radius_um + spec.pitch_um * (n_windings + 1),
            "ovality": spec.ovality,
            "ovality_angle_deg": spec.ovality_angle_deg,
            "spiral_start_deg": spec.spiral_start_deg,
        },
        "stack": {
            "cu_center_um": ((stack.cu0 + stack.cu1) / 2).tolist(),
            "cathode_sheet_start_um": stack.sheet0.tolist(),
            "cathode_sheet_end_um": stack.sheet1.tolist(),
            "al_center_um": ((stack.al0 + stack.al1) / 2).tolist(),
            "cathode_sheet_thickness_um": (stack.sheet1 - stack.sheet0).tolist(),
            "layer_bounds_um": {layer: [[round(anat.layer_bounds(stack, k)[layer][0], 6),
                                         round(anat.layer_bounds(stack, k)[layer][1], 6)] for k in range(n_windings)]
                                for layer in anat.LAYERS},
        },
        "defects": [_defect_truth_finish(spec, d, t) for d, t in zip(defects, truths, strict=True)],
    }
    labels = [_slice_label(layout, ends, spec, z) for z in range(nz)]
    truth["slices"] = {name: [z for z, lab in enumerate(labels) if lab == name] for name in SLICE_LABELS}
    truth["roll"]["roll_slices"] = truth["slices"]["roll_interior"] + truth["slices"]["roll_end"]
    truth["roll"]["roll_slices"].sort()
    if spec.roll_end_um is not None:
        truth["roll_end"] = {
            "side": "top",
            "anode_end_um": spec.roll_end_um,
            "anode_end_z_px": spec.roll_end_um / dz - 0.5,
            "cathode_end_z_px_mean": (spec.roll_end_um + anat.overhang_top(spec)[0]) / dz - 0.5,
            "anode_overhang_um": anat.overhang_top(spec)[0],
            "anode_overhang_amplitude_um": anat.overhang_top(spec)[1],
            "anode_overhang_angle_deg": anat.overhang_top(spec)[2],
            "note": "slice z spans [z·dz, (z+1)·dz] µm; *_z_px are voxel-index coordinates (slice centres at z)",
        }
    if spec.can_dent_um:
        truth["can"]["dent_um"] = spec.can_dent_um
        truth["can"]["dent_angle_deg"] = spec.can_dent_angle_deg
        truth["can"]["dent_span_deg"] = spec.can_dent_span_deg
    if plan is not None and layout is not None and body is not None:
        truth["anatomy"] = _anatomy_truth(spec, stack, plan, layout, body, ends, tabs_out)
    volume_obj = Volume(
        array=volume,
        spacing_um=(dz, v, v),
        cell_id=cell_id or f"SYN-{spec.kind}-{seed}",
        source="phantom",
        modality="synthetic",
        metadata={"format": "phantom"},
    )
    return SyntheticCell(volume=volume_obj, truth=truth)


def _cathode_z(cached: dict[str, Any], ends: _SheetExtents, frame: _Frame) -> tuple[Any, Any]:
    """Cell z of the cathode's edges for every pixel (computed once per frame)."""
    if "cathode_z" not in cached:
        cached["cathode_z"] = ends.cathode_extent(frame.polar_deg)
    return cached["cathode_z"]


def _overlap_len(z0: float, z1: float, a: Any, b: Any) -> Any:
    return np.clip(np.minimum(z1, b) - np.maximum(z0, a), 0.0, None)


class _SheetExtents:
    """Axial extent of each sheet (cell z): the separators and the anode between fixed edges,
    the cathode between edges that vary with the polar angle (the overhang)."""

    def __init__(self, sep: tuple[float, float], anode: tuple[float, float],
                 top: anat.RollEnd | None, bottom: anat.RollEnd | None):
        self.sep, self.anode, self.top, self.bottom = sep, anode, top, bottom
        self._range: tuple[float, float, float, float] | None = None

    def cathode_extent(self, polar_deg: np.ndarray) -> tuple[Any, Any]:
        lo = self.top.cathode_z(polar_deg) if self.top is not None else -np.inf
        hi = self.bottom.cathode_z(polar_deg) if self.bottom is not None else np.inf
        return lo, hi

    def cathode_range(self) -> tuple[float, float, float, float]:
        """(shallowest, deepest) top cathode edge and (deepest, shallowest) bottom edge."""
        if self._range is not None:
            return self._range
        grid = np.arange(0.0, 360.0, 0.25)
        lo, hi = self.cathode_extent(grid)
        lo = np.broadcast_to(lo, grid.shape)
        hi = np.broadcast_to(hi, grid.shape)
        self._range = (float(lo.min()), float(lo.max()), float(hi.min()), float(hi.max()))
        return self._range

    def fractions(self, z0: float, z1: float, cathode: Any) -> list[tuple[frozenset[str], Any]]:
        """Fraction of the slice [z0, z1] filled by each set of sheets (exact): scalars, or
        per-pixel arrays where a cathode edge (varying with the angle) crosses the slice.
        ``cathode()`` gives the cathode's edges per pixel (called only when needed)."""
        dz = z1 - z0
        if self._range is None:
            self._range = self.cathode_range()
        top_lo, top_hi, bot_lo, bot_hi = self._range
        crosses_top = z1 > top_lo and z0 < top_hi
        crosses_bottom = z1 > bot_lo and z0 < bot_hi
        if crosses_top or crosses_bottom:
            c0, c1 = cathode()
        else:  # no cathode edge crosses the slice: any edge of the range gives the same overlap
            c0, c1 = top_lo, bot_hi
        if not crosses_top:
            c0 = top_lo
        if not crosses_bottom:
            c1 = bot_hi
        s0, s1 = self.sep
        a0, a1 = self.anode
        if z0 >= max(s0, a0) and z1 <= min(s1, a1) and np.all(np.asarray(c0) <= z0) and np.all(np.asarray(c1) >= z1):
            return [(FULL, 1.0)]
        m = {}
        m["S"] = _overlap_len(z0, z1, s0, s1)
        m["A"] = _overlap_len(z0, z1, a0, a1)
        m["C"] = _overlap_len(z0, z1, c0, c1)
        m["SA"] = _overlap_len(z0, z1, max(s0, a0), min(s1, a1))
        m["SC"] = _overlap_len(z0, z1, np.maximum(s0, c0), np.minimum(s1, c1))
        m["AC"] = _overlap_len(z0, z1, np.maximum(a0, c0), np.minimum(a1, c1))
        m["SAC"] = _overlap_len(z0, z1, np.maximum(max(s0, a0), c0), np.minimum(min(s1, a1), c1))
        parts = {
            FULL: m["SAC"],
            frozenset({"separator", "anode"}): m["SA"] - m["SAC"],
            frozenset({"separator", "cathode"}): m["SC"] - m["SAC"],
            frozenset({"anode", "cathode"}): m["AC"] - m["SAC"],
            frozenset({"separator"}): m["S"] - m["SA"] - m["SC"] + m["SAC"],
            frozenset({"anode"}): m["A"] - m["SA"] - m["AC"] + m["SAC"],
            frozenset({"cathode"}): m["C"] - m["SC"] - m["AC"] + m["SAC"],
        }
        parts[NONE] = dz - sum(parts.values())
        out = []
        for state in STATES:
            f = np.clip(np.asarray(parts[state], dtype=float) / dz, 0.0, 1.0)
            if np.any(f > 1e-12):
                out.append((state, float(f) if f.ndim == 0 else f))
        return out


def _sheet_extents(spec: CellSpec, layout: anat.CellLayout | None) -> _SheetExtents:
    if layout is not None:
        top, bottom = layout.top, layout.bottom
        assert top is not None and bottom is not None
        return _SheetExtents((top.separator_z, bottom.separator_z), (top.anode_z, bottom.anode_z), top, bottom)
    if spec.roll_end_um is not None:  # the idealised roll with a top end: every sheet at the anode's edge
        end = anat.RollEnd("top", float(spec.roll_end_um), float(spec.roll_end_um), anat.overhang_top(spec))
        return _SheetExtents((end.anode_z, np.inf), (end.anode_z, np.inf), end, None)
    return _SheetExtents((-np.inf, np.inf), (-np.inf, np.inf), None, None)


SLICE_LABELS = ("outside", "cap", "headspace", "roll_end", "roll_interior", "bottom")


def _slice_label(layout: anat.CellLayout | None, ends: _SheetExtents | None, spec: CellSpec, z: int) -> str:
    """What slice ``z`` shows: outside (air only), cap (terminal, crimp, flange, vent plate),
    headspace (between the cap and the roll), roll_end (a sheet's edge within the slice),
    roll_interior (every sheet fills the slice at every angle), bottom (below the roll: the
    bottom gap and the can's bottom disc). Legacy ``headspace_slices`` are headspace."""
    if z < spec.headspace_slices:
        return "headspace"
    dz = float(spec.slice_spacing_um)  # type: ignore[arg-type]
    if ends is None:
        ends = _sheet_extents(spec, layout)
    z0 = (layout.z0_um if layout else 0.0) + z * dz
    z1 = z0 + dz
    top_lo, top_hi, bot_lo, bot_hi = ends.cathode_range()
    s0, s1 = ends.sep
    a0, a1 = ends.anode
    first = min(s0, a0, top_lo)
    last = max(s1, a1, bot_hi)
    in_top_end = z1 > first and z0 < max(top_hi, s0, a0)
    in_bottom_end = z1 > min(bot_lo, s1, a1) and z0 < last
    if in_top_end or in_bottom_end:
        return "roll_end"
    if layout is None:
        return "headspace" if z1 <= first else "roll_interior"
    parts = layout.parts
    if z1 <= 0.0 or z0 >= parts["height"]:
        return "outside"
    if z0 < parts["vent_plate"][1]:
        return "cap"
    if z0 >= last:
        return "bottom"
    if z1 <= first:
        return "headspace"
    return "roll_interior"


# --------------------------------------------------------------------------- can, cap, tabs


def _compose_body(spec: CellSpec, frame: _Frame, body: bodies.CellBody, roll: np.ndarray,
                  z0: float, z1: float, n_sub: int) -> np.ndarray:
    """The roll (or headspace) inside the can, with the can, cap, gasket and insulators.

    Every part is a body of revolution, so a pixel's value is a function of its radius only
    (plus the roll inside): two 1-D look-ups per pixel.
    """
    tables = bodies.slice_tables(body, z0, z1, n_sub)
    v = spec.voxel_size_um
    rho = frame.r_phys
    if spec.can_dent_um:
        rho = rho + spec.can_dent_um * _raised_cosine(_wrap_deg(frame.polar_deg - spec.can_dent_angle_deg),
                                                        spec.can_dent_span_deg)
    r_grid = np.arange(0.0, body.r_max + bodies.GRID_UM, bodies.GRID_UM)
    parts = np.zeros_like(r_grid)
    interior = np.zeros_like(r_grid)
    for material, (grid, g) in tables.items():
        cov = bodies.box_coverage(grid, g, r_grid, v)
        if material == "interior":
            interior = cov
        else:
            parts += MU[material] * cov
    out = bodies.lookup(r_grid, parts, rho)
    if interior.any():
        out = out + roll * bodies.lookup(r_grid, interior, rho)
    return out.astype(np.float32)


def _headspace_tabs(spec: CellSpec, stack: _Stack, plan: anat.StripPlan,
                    layout: anat.CellLayout | None) -> list[tuple[anat.TabPlan, tuple[float, float], bodies.TabPath]]:
    """Each tab beyond the roll's end: its straight part (cell z range) and its bent strip."""
    if layout is None:
        return []
    out = []
    parts = layout.parts
    an = spec.anatomy
    assert isinstance(an, Anatomy)
    for tab in plan.tabs:
        s_c = 0.5 * (tab.s0 + tab.s1)
        k = int(math.floor(s_c))
        kk = min(max(k, 0), len(stack.cu0) - 1)
        ref = {"al_center": 0.5 * (stack.al0[kk] + stack.al1[kk]), "cu_inner": stack.cu0[kk],
               "cu_outer": stack.cu1[kk]}[tab.depth_ref]
        depth = float(ref) + 0.5 * (tab.depth_lo + tab.depth_hi)
        dy, dx = anat.layer_point_um(spec, s_c, depth)
        rho = float(np.hypot(dy, dx))
        angle = float(np.degrees(np.arctan2(dy, dx)) % 360.0)
        if tab.exit == "top":
            edge = layout.top.separator_z  # type: ignore[union-attr]
            straight = (edge - an.tab_rise_um, edge)
            weld = parts["vent_plate"][1] + tab.thickness_um / 2
            path = bodies.tab_path(rho, angle, tab.width_mm * 1000.0, tab.thickness_um, tab.material,
                                   straight[0], weld)
        else:
            edge = layout.bottom.separator_z  # type: ignore[union-attr]
            straight = (edge, edge + an.tab_rise_um)
            weld = parts["can_bottom"][0] - tab.thickness_um / 2
            path = bodies.tab_path(rho, angle, tab.width_mm * 1000.0, tab.thickness_um, tab.material,
                                   straight[1], weld)
        out.append((tab, straight, path))
    return out


def _paint_tab_strip(spec: CellSpec, frame: _Frame, img: np.ndarray, path: bodies.TabPath,
                     z0: float, z1: float, n_sub: int) -> None:
    """A tab's flat strip in the headspace, in place of what it covers."""
    r_max = float(spec.can_outer_radius_um)  # type: ignore[arg-type]
    table = bodies.tab_slice_table(path, z0, z1, n_sub, r_max)
    if table is None:
        return
    v = spec.voxel_size_um
    a = math.radians(path.angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    # Bounding box of the strip: its rho range along the direction, ± half its width across.
    rho = path.points[:, 0]
    r0, r1 = float(rho.min()) - path.thickness_um - 2 * v, float(rho.max()) + path.thickness_um + 2 * v
    half = path.width_um / 2 + 2 * v
    corners = [(r * sa + w * ca, r * ca - w * sa) for r in (r0, r1) for w in (-half, half)]
    cy, cx = frame.center
    ys = [cy + p[0] / v for p in corners]
    xs = [cx + p[1] / v for p in corners]
    y0, y1 = max(int(min(ys)) - 1, 0), min(int(max(ys)) + 2, img.shape[0])
    x0, x1 = max(int(min(xs)) - 1, 0), min(int(max(xs)) + 2, img.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    dy = frame.dy[y0:y1, :]
    dx = frame.dx[:, x0:x1]
    along = dx * ca + dy * sa
    across = -dx * sa + dy * ca
    grid, g = table
    cov = bodies.box_coverage(grid, g, along, v, signed=True) * np.clip((path.width_um / 2 - np.abs(across)) / v + 0.5, 0, 1)
    sub = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = (sub * (1 - cov) + MU[path.material] * cov).astype(np.float32)


# --------------------------------------------------------------------------- anatomy truth


def _position(spec: CellSpec, s: float, depth_um: float) -> dict[str, Any]:
    k, angle = anat.strip_to_polar(spec, s)
    dy, dx = anat.layer_point_um(spec, s, depth_um)
    return {"strip_turns": round(float(s), 6), "winding": k, "angle_deg": round(angle, 4) % 360.0,
            "radius_um": round(float(np.hypot(dy, dx)), 3)}


def _anatomy_truth(spec: CellSpec, stack: _Stack, plan: anat.StripPlan, layout: anat.CellLayout,
                   body: bodies.CellBody, ends: _SheetExtents, tabs_out: list) -> dict[str, Any]:
    an = spec.anatomy
    assert isinstance(an, Anatomy)
    p = plan.positions
    b = anat.layer_bounds(stack, 0)
    mid = {layer: 0.5 * (lo + hi) for layer, (lo, hi) in b.items()}
    ref_depth = {"separator": mid["separator_b"], "anode": mid["cu"], "cathode": mid["al"]}
    strip = {
        "separator": {"start": _position(spec, p["separator_start"], ref_depth["separator"]),
                      "end": _position(spec, p["separator_end"], ref_depth["separator"])},
        "anode": {"start": _position(spec, p["anode_start"], ref_depth["anode"]),
                  "end": _position(spec, p["anode_end"], ref_depth["anode"])},
        "cathode": {"start": _position(spec, p["cathode_start"], ref_depth["cathode"]),
                    "end": _position(spec, p["cathode_end"], ref_depth["cathode"])},
    }
    for name in ("separator", "anode", "cathode"):
        a, bb = strip[name]["start"]["strip_turns"], strip[name]["end"]["strip_turns"]
        strip[name]["turns"] = round(bb - a, 6)
        strip[name]["length_mm"] = round(anat.arc_length_mm(spec, a, bb, ref_depth[name]), 4)
    strip["end_tape"] = None
    if plan.tape:
        strip["end_tape"] = {"start": _position(spec, plan.tape[0], an.end_tape_um / 2),
                             "end": _position(spec, plan.tape[1], an.end_tape_um / 2),
                             "thickness_um": an.end_tape_um,
                             "note": "on the last separator wrap: strip positions of the slot just outside it"}
    single = []
    for d in plan.single_sided:
        layer = f"{d['electrode']}_{d['coating']}"
        depth = mid[layer]
        single.append({"electrode": d["electrode"], "coating": d["coating"],
                       "faces": "axis" if d["coating"] == "inner" else "can",
                       "start": _position(spec, d["s0"], depth), "end": _position(spec, d["s1"], depth),
                       "turns": round(d["s1"] - d["s0"], 6),
                       "arc_length_mm": round(anat.arc_length_mm(spec, d["s0"], d["s1"], depth), 4)})
    window = None
    if plan.window:
        w0, w1 = plan.window
        start, end = _position(spec, w0, mid["al"]), _position(spec, w1, mid["al"])
        window = {"electrode": "cathode", "coatings_absent": ["inner", "outer"], "winding": start["winding"],
                  "start": start, "end": end, "start_angle_deg": start["angle_deg"], "end_angle_deg": end["angle_deg"],
                  "turns": round(w1 - w0, 6), "arc_length_mm": round(anat.arc_length_mm(spec, w0, w1, mid["al"]), 4)}
    tabs = []
    for tab, straight, path in tabs_out:
        s_c = 0.5 * (tab.s0 + tab.s1)
        k = int(math.floor(s_c))
        kk = min(max(k, 0), len(stack.cu0) - 1)
        ref = {"al_center": 0.5 * (stack.al0[kk] + stack.al1[kk]), "cu_inner": stack.cu0[kk],
               "cu_outer": stack.cu1[kk]}[tab.depth_ref]
        depth = (float(ref) + tab.depth_lo, float(ref) + tab.depth_hi)
        centre = _position(spec, s_c, 0.5 * sum(depth))
        r_in = float(np.hypot(*anat.layer_point_um(spec, s_c, depth[0])))
        r_out = float(np.hypot(*anat.layer_point_um(spec, s_c, depth[1])))
        tabs.append({
            "polarity": tab.polarity, "material": "al" if tab.material == "tab_al" else "ni",
            "electrode": tab.electrode, "winding": centre["winding"], "angle_deg": centre["angle_deg"],
            "start": _position(spec, tab.s0, 0.5 * sum(depth)), "end": _position(spec, tab.s1, 0.5 * sum(depth)),
            "width_mm": tab.width_mm, "thickness_um": tab.thickness_um,
            "depth_in_winding_um": [round(depth[0], 3), round(depth[1], 3)],
            "radial_range_um": [round(r_in, 3), round(r_out, 3)],
            "exit": tab.exit,
            "straight_z_px": [round(layout.z_px(straight[0]), 4), round(layout.z_px(straight[1]), 4)],
            "strip_path_rho_um_z_px": [[round(float(r), 2), round(layout.z_px(float(zz)), 4)]
                                       for r, zz in path.points],
            "strip_direction_deg": round(path.angle_deg, 4),
        })
    presence = {layer: [[round(a, 9), round(bb, 9)] for a, bb in iv] for layer, iv in plan.presence.items()}
    presence["tape"] = [[plan.tape[0], plan.tape[1]]] if plan.tape else []
    roll_ends = {}
    grid = np.arange(360)
    for end in (layout.top, layout.bottom):
        assert end is not None
        ov = anat.overhang_um(end.overhang, grid)
        cz = end.cathode_z(grid)
        sep_beyond = abs(end.anode_z - end.separator_z)
        roll_ends[end.side] = {
            "separator_edge_z_px": round(layout.z_px(end.separator_z), 6),
            "anode_edge_z_px": round(layout.z_px(end.anode_z), 6),
            "cathode_edge_z_px_mean": round(layout.z_px(end.anode_z + (1 if end.side == "top" else -1)
                                                        * end.overhang[0]), 6),
            "cathode_edge_z_px_min": round(layout.z_px(float(cz.min())), 6),
            "cathode_edge_z_px_max": round(layout.z_px(float(cz.max())), 6),
            "separator_beyond_anode_um": round(sep_beyond, 4),
            "overhang_um_mean": end.overhang[0], "overhang_um_amplitude": end.overhang[1],
            "overhang_angle_deg": end.overhang[2],
            "overhang_formula": "overhang_um(angle) = mean + amplitude * cos(angle - angle_deg), image polar angle",
            "overhang_um_by_angle": [round(float(x), 3) for x in ov],
            "in_volume": bool(0.0 <= (end.separator_z - layout.z0_um) / layout.dz <= float(spec.n_slices)),  # type: ignore[arg-type]
        }
    parts = layout.parts
    r_out = float(spec.can_outer_radius_um)  # type: ignore[arg-type]
    g0, g1 = parts["groove"]
    gc = 0.5 * (g0 + g1)
    # The wall is a sheet of constant thickness: where the fold is tighter than the sheet is
    # thick, its outer face cannot follow the mid-surface all the way in.
    (at_center,) = bodies.tube_intervals(body.can_tube, np.array([gc]))
    wall_lo, wall_hi = max(at_center, key=lambda iv: iv[1])
    can = {
        "groove": {"z_range_px": [round(layout.z_px(g0), 6), round(layout.z_px(g1), 6)],
                   "center_z_px": round(layout.z_px(gc), 6),
                   "depth_um": round(r_out - wall_hi, 4),
                   "height_um": an.groove_height_um,
                   "wall_displacement_um": an.groove_depth_um,
                   "outer_radius_at_center_um": round(wall_hi, 4),
                   "inner_radius_at_center_um": round(wall_lo, 4),
                   "profile": "the wall's mid-surface moves inwards by wall_displacement_um * (1 + cos(2π "
                              "(z - center) / height_um)) / 2; depth_um is how much narrower the can's outer "
                              "surface is at the centre (less than the displacement where the fold is tighter "
                              "than the wall is thick)"},
        "crimp": {"z_range_px": [round(layout.z_px(parts["crimp"][0]), 6), round(layout.z_px(parts["crimp"][1]), 6)],
                  "inner_radius_um": r_out - an.crimp_inward_um, "inward_um": an.crimp_inward_um},
        "cap": {"z_range_px": [round(layout.z_px(0.0), 6), round(layout.z_px(parts["vent_plate"][1]), 6)],
                "terminal_z_px": [round(layout.z_px(parts["terminal"][0]), 6), round(layout.z_px(parts["terminal"][1]), 6)],
                "flange_z_px": [round(layout.z_px(parts["flange"][0]), 6), round(layout.z_px(parts["flange"][1]), 6)],
                "vent_plate_z_px": [round(layout.z_px(parts["vent_plate"][0]), 6),
                                    round(layout.z_px(parts["vent_plate"][1]), 6)],
                "terminal_radius_um": round(0.42 * spec.can_inner_radius_um, 3), "thickness_um": an.cap_um},
        "bottom": {"z_range_px": [round(layout.z_px(parts["can_bottom"][0]), 6),
                                  round(layout.z_px(parts["can_bottom"][1]), 6)],
                   "thickness_um": an.can_bottom_um},
        "straight_z_px": [round(layout.z_px(body.features[0][1]), 6), round(layout.z_px(body.features[-1][0]), 6)],
        "height_um": parts["height"],
    }
    insulators = {key: [round(layout.z_px(parts[key][0]), 6), round(layout.z_px(parts[key][1]), 6)]
                  for key in ("top_insulator", "bottom_insulator") if parts.get(key)}
    return {
        "strip_note": "strip positions in turns along the wound strip: winding + psi/2π (psi = 0 at "
                      "spiral_start_deg); angles are image polar angles atan2(y - cy, x - cx) in degrees; "
                      "missing layers are electrolyte inside the roll (the stack keeps its pitch)",
        "strip": strip,
        "presence": presence,
        "single_sided": single,
        "tab_window": window,
        "tabs": tabs,
        "innermost_turn": {"wobble_um": an.wobble_um, "fade_turns": an.wobble_fade_turns,
                           "harmonics": [list(h) for h in an.wobble_harmonics], "direction": "inwards",
                           "formula": "shift_um(s, psi) = -wobble_um * g(psi) * w(s); g = harmonics "
                                      "normalised to [0, 1]; w = (1 + cos(π s / fade_turns)) / 2 for s < "
                                      "fade_turns, else 0"},
        "roll_ends": roll_ends,
        "can": can,
        "insulators_z_px": insulators,
        "z_layout": {"slab_top_cell_um": layout.z0_um, "slice_spacing_um": layout.dz,
                     "note": "cell z in µm from the terminal's top face, downwards; slice i spans "
                             "[slab_top + i·dz, slab_top + (i+1)·dz]; *_z_px = (cell_z - slab_top)/dz - 0.5",
                     "parts_cell_um": {k: (list(val) if isinstance(val, tuple) else val)
                                       for k, val in parts.items()}},
    }



def _can_radii(spec: CellSpec, frame: _Frame) -> tuple[Any, Any]:
    """Inner and outer radius of the can wall (µm), with the optional dent."""
    inner, outer = spec.can_inner_radius_um, float(spec.can_outer_radius_um)
    if not spec.can_dent_um:
        return inner, outer
    dent = spec.can_dent_um * _raised_cosine(_wrap_deg(frame.polar_deg - spec.can_dent_angle_deg), spec.can_dent_span_deg)
    return inner - dent, outer - dent


def _compose_can(spec: CellSpec, frame: _Frame, roll: np.ndarray) -> np.ndarray:
    v = spec.voxel_size_um
    r = frame.r_phys
    can_in, can_out = _can_radii(spec, frame)
    inside = np.clip((can_in - r) / v + 0.5, 0, 1)
    within_outer = np.clip((can_out - r) / v + 0.5, 0, 1)
    return (roll * inside + MU["steel"] * (within_outer - inside)).astype(np.float32)


def _headspace_slice(spec: CellSpec, frame: _Frame, z: int) -> np.ndarray:
    """Cap and headspace: the can, a welded tab strip, and the cap plate in the first slice."""
    v = spec.voxel_size_um
    inner = np.full(frame.r_phys.shape, MU["gas"])
    tab = (np.abs(frame.dy - 0.15 * spec.can_inner_radius_um) < 100.0) & (np.abs(frame.dx) < 2500.0)
    inner[tab] = MU["tab"]
    if z == 0:
        inner = np.where(frame.r_phys < 0.85 * spec.can_inner_radius_um, MU["steel"], inner)
    r = frame.r_phys
    can_in, can_out = _can_radii(spec, frame)
    inside = np.clip((can_in - r) / v + 0.5, 0, 1)
    within_outer = np.clip((can_out - r) / v + 0.5, 0, 1)
    return (inner * inside + MU["steel"] * (within_outer - inside)).astype(np.float32)


def _window(spec: CellSpec, frame_center: tuple[float, float], radius_um: tuple[float, float],
            angle_deg: float, half_span_deg: float, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Pixel window covering an annular sector about the axis."""
    v = spec.voxel_size_um
    e = spec.ovality
    angles = np.radians(np.linspace(angle_deg - half_span_deg, angle_deg + half_span_deg, 64))
    radii = np.array([radius_um[0] * (1 - e), radius_um[1] * (1 + e)])
    ys = frame_center[0] + np.outer(radii, np.sin(angles)).ravel() / v
    xs = frame_center[1] + np.outer(radii, np.cos(angles)).ravel() / v
    y0, y1 = max(int(ys.min()) - 3, 0), min(int(ys.max()) + 4, shape[0])
    x0, x1 = max(int(xs.min()) - 3, 0), min(int(xs.max()) + 4, shape[1])
    return slice(y0, y1), slice(x0, x1)



def _defect_truth_init(defect: Defect) -> dict[str, Any]:
    return {"weight": 0.0, "wz": 0.0, "wy": 0.0, "wx": 0.0, "bbox": None, "occupancy_voxels": 0.0,
            "slices": []}


def _accumulate(truth: dict[str, Any], z: int, ys: slice, xs: slice, weight: np.ndarray) -> None:
    total = float(weight.sum())
    if total <= 0:
        return
    yy, xx = np.nonzero(weight > 0.25 * weight.max())
    iy, ix = np.indices(weight.shape)
    truth["weight"] += total
    truth["wz"] += total * z
    truth["wy"] += float((weight * (iy + ys.start)).sum())
    truth["wx"] += float((weight * (ix + xs.start)).sum())
    box = [z, yy.min() + ys.start, xx.min() + xs.start, z + 1, yy.max() + ys.start + 1, xx.max() + xs.start + 1]
    if truth["bbox"] is None:
        truth["bbox"] = box
    else:
        b = truth["bbox"]
        truth["bbox"] = [min(b[0], box[0]), min(b[1], box[1]), min(b[2], box[2]),
                         max(b[3], box[3]), max(b[4], box[4]), max(b[5], box[5])]
    truth["slices"].append(z)


def _paint_defect(spec: CellSpec, stack: _Stack, frame_full: _Frame, img: np.ndarray, z: int,
                  defect: Defect, truth: dict[str, Any], roll: RollImages) -> None:
    v = spec.voxel_size_um
    dz = float(spec.slice_spacing_um)  # type: ignore[arg-type]
    pitch = stack.pitch
    center = frame_full.center
    dz_um = (z - defect.z_center) * dz
    if isinstance(defect, ForeignParticle):
        radius = defect.diameter_um / 2
        if abs(dz_um) >= radius + dz / 2:
            return
        a = math.radians(defect.angle_deg)
        py = center[0] + defect.radius_um * math.sin(a) / v
        px = center[1] + defect.radius_um * math.cos(a) / v
        reach = radius / v + 3
        ys = slice(max(int(py - reach), 0), min(int(py + reach) + 2, img.shape[0]))
        xs = slice(max(int(px - reach), 0), min(int(px + reach) + 2, img.shape[1]))
        # Partial volume: the fraction of each voxel inside the sphere, from 6 × 6 × 6
        # sub-samples (a small sphere's voxels, its poles included, are filled only partly).
        n_sub = 6
        off = (np.arange(n_sub) + 0.5) / n_sub - 0.5
        sy = (np.arange(ys.start, ys.stop)[:, None] + off[None, :] - py) ** 2  # (ny, n_sub)
        sx = (np.arange(xs.start, xs.stop)[:, None] + off[None, :] - px) ** 2  # (nx, n_sub)
        d2 = sy[:, None, :, None] + sx[None, :, None, :]  # (ny, nx, n_sub, n_sub), px²
        frac = np.zeros(d2.shape[:2])
        for oz in off:
            rc2 = (radius**2 - (dz_um + oz * dz) ** 2) / v**2
            if rc2 > 0:
                frac += (d2 < rc2).mean(axis=(2, 3))
        frac /= n_sub
        if not frac.any():
            return
        sub = img[ys, xs]
        img[ys, xs] = sub * (1 - frac) + MU["particle"] * frac
        _accumulate(truth, z, ys, xs, frac)
        truth["occupancy_voxels"] += float(frac.sum())
        return

    k = defect.winding
    if not 0 <= k < len(stack.cu0):
        raise ValueError(f"defect winding {k} outside 0..{len(stack.cu0) - 1}")
    if isinstance(defect, CollectorDeflection):
        half_height = defect.height_span_um / 2
        half_span = defect.angular_span_deg / 2
    else:
        half_height = defect.height_um / 2
        r_sheet = spec.mandrel_radius_um + pitch * (k + 0.5)
        half_span = math.degrees(defect.arc_length_um / 2 / r_sheet) * 1.2 + 2
    if abs(dz_um) >= half_height:
        return
    r_lo = spec.mandrel_radius_um + pitch * (k - 1.0)
    r_hi = spec.mandrel_radius_um + pitch * (k + 3.0)
    ys, xs = _window(spec, center, (r_lo, r_hi), defect.angle_deg, half_span, img.shape)
    f = _Frame(spec, center, np.arange(ys.start, ys.stop, dtype=float), np.arange(xs.start, xs.stop, dtype=float))
    dang = _wrap_deg(f.polar_deg - defect.angle_deg)
    # Winding coordinate made continuous across the spiral's start angle (where psi wraps
    # from 2π to 0 and the ray index of a physical layer steps by one): psi is unwrapped
    # about its value on the defect's centre ray, so ``winding`` names one physical layer
    # over the whole defect, the one that is winding k along the centre ray.
    psi_c = float(_spiral_psi(spec, defect.angle_deg))
    psi_cont = psi_c + (f.psi - psi_c + np.pi) % (2 * np.pi) - np.pi
    u = f.u + (f.psi - psi_cont) / (2 * np.pi)
    # The innermost turns' wobble moves the layer: follow it.
    u = u - roll.shift(k, k + psi_cont / (2 * np.pi), psi_cont % (2 * np.pi))
    h = f.h
    winding_base = float(k)

    if isinstance(defect, CollectorDeflection):
        w = _raised_cosine(dang, defect.angular_span_deg) * _raised_cosine(np.asarray(dz_um), defect.height_span_um)
        shift = defect.amplitude_um * w / (pitch * f.metric)
        cu0 = winding_base + stack.cu0[k] / pitch
        cu1 = winding_base + stack.cu1[k] / pitch
        near = (u > winding_base - 0.5) & (u < winding_base + 1.0) & (w > 0)
        delta = (MU["cu"] - MU["anode"]) * (_overlap(u, h, cu0 + shift, cu1 + shift) - _overlap(u, h, cu0, cu1))
        delta = np.where(near, delta, 0.0)
        img[ys, xs] += delta.astype(np.float32)
        _accumulate(truth, z, ys, xs, np.abs(delta))
        return

    s_um = np.radians(dang) * f.r_phys  # arc length from the defect's centre
    if isinstance(defect, DelaminationVoid):
        ell = 1 - (s_um / (defect.arc_length_um / 2)) ** 2 - (dz_um / (defect.height_um / 2)) ** 2
        t = defect.thickness_um * np.sqrt(np.clip(ell, 0, None))
        if defect.side == "outer":
            start = winding_base + (stack.al1[k] + defect.depth_um) / pitch
            stop = start + t / pitch
            coat_end = winding_base + stack.sheet1[k] / pitch
            in_coat = _overlap(u, h, start, np.minimum(stop, coat_end))
            in_sep = _overlap(u, h, np.maximum(start, coat_end), np.maximum(stop, coat_end))
        else:
            stop = winding_base + (stack.al0[k] - defect.depth_um) / pitch
            start = stop - t / pitch
            coat_start = winding_base + stack.sheet0[k] / pitch
            in_coat = _overlap(u, h, np.maximum(start, coat_start), stop)
            in_sep = _overlap(u, h, np.minimum(start, coat_start), np.minimum(stop, coat_start))
        sel = (t > 0) & (u > winding_base - 0.5) & (u < winding_base + 1.5)
        in_coat = np.where(sel, in_coat, 0.0)
        in_sep = np.where(sel, in_sep, 0.0)
        delta = (MU["void"] - MU["cathode"]) * in_coat + (MU["void"] - MU["separator"]) * in_sep
        img[ys, xs] += delta.astype(np.float32)
        occupancy = in_coat + in_sep
        _accumulate(truth, z, ys, xs, occupancy)
        truth["occupancy_voxels"] += float(occupancy.sum())
        # Exact area of the lens in this slice (µm²): ∫ t ds = T · a · π/2 · (1 - (2 dz / H)²).
        q = max(0.0, 1 - (dz_um / (defect.height_um / 2)) ** 2)
        truth.setdefault("area_um2_by_slice", {})[z] = defect.thickness_um * defect.arc_length_um / 2 * math.pi / 2 * q
        return

    if isinstance(defect, CoatingPatch):
        inside = (np.abs(s_um) <= defect.arc_length_um / 2) & (abs(dz_um) <= defect.height_um / 2)
        sheet = stack.sheet1[k] - stack.sheet0[k]
        change = defect.sheet_change * sheet / 2  # per coating, µm
        s0 = winding_base + stack.sheet0[k] / pitch
        s1 = winding_base + stack.sheet1[k] / pitch
        c = abs(change) / pitch
        if change < 0:
            moved = _overlap(u, h, s0, s0 + c) + _overlap(u, h, s1 - c, s1)
            delta = (MU["separator"] - MU["cathode"]) * moved
        else:
            moved = _overlap(u, h, s0 - c, s0) + _overlap(u, h, s1, s1 + c)
            delta = (MU["cathode"] - MU["separator"]) * moved
        sel = inside & (u > winding_base - 0.5) & (u < winding_base + 1.5)
        delta = np.where(sel, delta, 0.0)
        img[ys, xs] += delta.astype(np.float32)
        _accumulate(truth, z, ys, xs, np.where(sel, 1.0, 0.0) * (np.abs(u - (s0 + s1) / 2) < 0.5))
        return
    raise TypeError(f"unknown defect {defect!r}")


def _defect_truth_finish(spec: CellSpec, defect: Defect, t: dict[str, Any]) -> dict[str, Any]:
    v = spec.voxel_size_um
    dz = float(spec.slice_spacing_um)  # type: ignore[arg-type]
    out: dict[str, Any] = {"kind": defect.kind, "params": {k: val for k, val in asdict(defect).items() if k != "kind"}}
    out["present"] = t["weight"] > 0
    if t["weight"] > 0:
        out["centroid_zyx_px"] = [t["wz"] / t["weight"], t["wy"] / t["weight"], t["wx"] / t["weight"]]
        out["bbox_zyx_px"] = [int(b) for b in t["bbox"]]
        out["slices"] = sorted(set(t["slices"]))
    out["angle_deg"] = float(defect.angle_deg) % 360.0
    out["winding"] = getattr(defect, "winding", None)
    if isinstance(defect, DelaminationVoid):
        area = t.get("area_um2_by_slice", {})
        out["volume_mm3"] = sum(area.values()) * dz * 1e-9
        out["rendered_volume_mm3"] = t["occupancy_voxels"] * v**2 * dz * 1e-9
        out["thickness_um"] = defect.thickness_um
    elif isinstance(defect, CollectorDeflection):
        # The displacement peaks at the defect's angle and height; report the peak reached in
        # the rendered slices (the centre slice may fall between slices).
        zs = np.array(out.get("slices", [defect.z_center]), dtype=float)
        wz = _raised_cosine((zs - defect.z_center) * dz, defect.height_span_um)
        out["amplitude_um"] = float(defect.amplitude_um * (wz.max() if wz.size else 0.0))
    elif isinstance(defect, CoatingPatch):
        n_slices = len(out.get("slices", []))
        out["area_mm2"] = defect.arc_length_um * n_slices * dz * 1e-6
        out["sheet_change"] = defect.sheet_change
    elif isinstance(defect, ForeignParticle):
        out["diameter_um"] = defect.diameter_um
        out["rendered_volume_mm3"] = t["occupancy_voxels"] * v**2 * dz * 1e-9
    return out


def _apply_artifacts(spec: CellSpec, frame: _Frame, img: np.ndarray, art: Artifacts,
                     rng: np.random.Generator, img_center: float,
                     cache: dict[str, Any] | None = None) -> np.ndarray:
    """Cupping (about the cell axis), blur, then rings (about the image centre, i.e. the
    rotation axis) and noise, or the FBP round trip. ``cache`` keeps per-volume fields."""
    cache = {} if cache is None else cache
    out = img.astype(np.float32, copy=True)
    if art.cupping:
        key = (frame.center, art.cupping)  # one entry: a drifting axis changes it per slice
        if cache.get("cupping_key") != key:
            rel = np.clip(frame.r_phys / float(spec.can_outer_radius_um), 0, 1)
            cache["cupping"] = (1 - art.cupping * (1 - rel**2)).astype(np.float32)
            cache["cupping_key"] = key
        out *= cache["cupping"]
    if art.blur_sigma_px > 0:
        out = ndimage.gaussian_filter(out, art.blur_sigma_px)
    size = out.shape[0]
    if art.streaks_fbp:
        out = _fbp_round_trip(out, art, rng)
    else:
        if art.ring_count:
            if "r_img" not in cache:
                yy, xx = np.ogrid[: out.shape[0], : out.shape[1]]
                cache["r_img"] = np.hypot(yy - img_center, xx - img_center).astype(np.float32)
            r_img = cache["r_img"]
            radii = rng.uniform(0.05, 0.5, art.ring_count) * size
            amps = art.ring_amplitude * rng.choice([-1, 1], art.ring_count) * rng.uniform(0.5, 1.5, art.ring_count)
            for radius, amp in zip(radii, amps, strict=True):
                # Only the annulus |r - radius| < 3 px is touched: slice its bounding box.
                lo = max(int(img_center - radius - 4), 0)
                hi = min(int(img_center + radius + 5), size)
                sub_r = r_img[lo:hi, lo:hi]
                band = np.abs(sub_r - radius) < 3
                out[lo:hi, lo:hi][band] += (amp * np.exp(-0.5 * ((sub_r[band] - radius) / 0.8) ** 2)).astype(np.float32)
        if art.noise_sigma:
            out += np.float32(art.noise_sigma) * rng.standard_normal(out.shape, dtype=np.float32)
    return out


def _fbp_round_trip(img: np.ndarray, art: Artifacts, rng: np.random.Generator) -> np.ndarray:
    """Parallel-beam projection and FBP reconstruction, with detector stripes and noise."""
    from skimage.transform import iradon, radon

    n_angles = art.fbp_angles or int(math.ceil(math.pi / 2 * img.shape[0]))
    theta = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    sino = radon(img, theta=theta, circle=False)
    scale = float(np.abs(sino).max()) or 1.0
    if art.ring_count:
        # Miscalibrated detector pixels: constant offsets along the angle axis → rings.
        cols = rng.choice(sino.shape[0], art.ring_count, replace=False)
        sino[cols, :] += art.ring_amplitude * scale * 0.05 * rng.choice([-1, 1], art.ring_count)[:, None]
    if art.noise_sigma:
        sino += rng.normal(0.0, art.noise_sigma * math.sqrt(img.shape[0]) * 0.5, sino.shape)
    rec = iradon(sino, theta=theta, circle=False, filter_name="ramp", output_size=img.shape[0])
    return rec.astype(np.float32)
