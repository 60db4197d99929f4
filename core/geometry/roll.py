"""Cell geometry of a whole volume: can, axis, roll frame, and every slice's layers."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Any

import numpy as np

from core.errors import Cancelled, InputError
from core.geometry.anatomy import CathodeAnatomy, apply_cathode_anatomy, find_cathode_anatomy
from core.geometry.can import (
    CanNarrowing,
    CanSlice,
    CellAxis,
    can_profile,
    detect_can,
    find_narrowings,
    fit_axis,
)
from core.geometry.layers import (
    CAN_EDGE_MARGIN_PX,
    GeometryParams,
    SliceRoll,
    analyze_slice,
    angles_for_radius,
    near_layer_ends,
    refine_frame,
)
from core.geometry.unwrap import EllipticFrame, UnwrapGrid
from core.geometry.zones import (
    UncoatedZone,
    apply_uncoated_zones,
    blank_sheet,
    collector_exclusion,
    find_uncoated_zones,
    measure_sag,
)
from core.io.volume import Volume
from core.parallel import default_workers, map_in_processes, worth_processes

Progress = Callable[[float, str], None]


@dataclass
class CellGeometry:
    """Everything the detectors need to know about where things are in a cell volume.

    Attributes
    ----------
    spacing_um : (z, y, x) voxel size.
    pixel_um : in-plane voxel size used for radii.
    cans : per-slice can fits (on a subset of slices).
    axis : the cell axis (pixel centre as a function of z).
    roll_offset_yx_px : roll centre minus can axis (pixels).
    ovality, ovality_angle_deg : the roll's ovality and long-axis direction.
    pitch_um, direction : spiral pitch and winding direction (+1: radius grows with angle).
    slices : one :class:`SliceRoll` per slice of the volume.
    notes : human-readable remarks (skipped slices and why).
    uncoated_zones : stretches of cathode without coating over the roll's height (tab
        windows); their sheet is blanked (not measured).
    """

    spacing_um: tuple[float, float, float]
    shape: tuple[int, int, int]
    pixel_um: float
    cans: list[CanSlice]
    axis: CellAxis
    roll_offset_yx_px: tuple[float, float] = (0.0, 0.0)
    ovality: float = 0.0
    ovality_angle_deg: float = 0.0
    pitch_um: float = math.nan
    direction: int = 1
    slices: list[SliceRoll] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uncoated_zones: list[UncoatedZone] = field(default_factory=list)
    can_inner_um: float = math.nan
    # Slices whose can is judged (beside the roll's interior), and the can's groove and crimp.
    judged_can_slices: list[int] | None = None
    # The median radius of winding 0's collector every slice counts from (see _agree_on_first_layer).
    first_layer_radius_um: float = math.nan
    can_narrowings: list[CanNarrowing] = field(default_factory=list)
    # The cathode's ends and one-sided stretches, and the coating edge bands at the roll's ends.
    cathode_anatomy: CathodeAnatomy | None = None
    coating_edges: list[dict[str, Any]] = field(default_factory=list)

    # ------------------------------------------------------------------ summaries
    @property
    def roll_slices(self) -> list[int]:
        """Indices of the slices that cross the jelly roll."""
        return [s.z for s in self.slices if s.is_roll]

    @property
    def windings(self) -> int:
        counts = [s.windings for s in self.slices if s.is_roll]
        return int(np.median(counts)) if counts else 0

    def frame_at(self, z: float) -> EllipticFrame:
        cy, cx = self.axis.center_at(z)
        return EllipticFrame((cy + self.roll_offset_yx_px[0], cx + self.roll_offset_yx_px[1]),
                             self.ovality, math.radians(self.ovality_angle_deg))

    def can_stat(self, name: str, func=np.median) -> float:
        """A statistic (default: median) of a :class:`CanSlice` field over the slices where the
        can is judged (beside the roll's interior; every slice where it was found before the
        roll is known); NaN when it never was."""
        judged = None if self.judged_can_slices is None else set(self.judged_can_slices)
        vals = [getattr(c, name) for c in self.cans if c.found and math.isfinite(getattr(c, name))
                and (judged is None or c.z in judged)]
        return float(func(vals)) if vals else math.nan

    def stacked(self, name: str) -> np.ndarray:
        """A per-slice array stacked over the roll slices: (n_roll, windings_max, n_angles)."""
        rolls = [s for s in self.slices if s.is_roll]
        if not rolls:
            return np.zeros((0, 0, 0), np.float32)
        k_max = max(getattr(s, name).shape[0] for s in rolls)
        n_t = rolls[0].t_rad.size
        out = np.full((len(rolls), k_max, n_t), np.nan, np.float32)
        for i, s in enumerate(rolls):
            a = getattr(s, name)
            out[i, : a.shape[0]] = a
        return out

    def collector_exclusion(self, s: SliceRoll, k_max: int) -> np.ndarray:
        """(windings, angles) mask of the collectors of slice ``s`` that relax into an uncoated zone."""
        return collector_exclusion(self.uncoated_zones, s, k_max, self.pitch_um)

    def spiral_fit(self) -> dict[str, Any]:
        """Fit r = a + b·θ to every Cu layer of every roll slice (θ unwrapped from the seam).

        Returns the pitch from the fits (2π b), and the residual RMS (µm) — the winding-quality
        measure: a perfect Archimedean roll has residuals at the noise level.
        """
        rms, slopes = [], []
        for s in self.slices:
            if not s.is_roll or not math.isfinite(s.seam_deg):
                continue
            theta = (s.direction * (s.t_rad - math.radians(s.seam_deg))) % (2 * np.pi)
            for k in range(min(s.windings, s.cu_radius_um.shape[0])):
                r = s.cu_radius_um[k]
                ok = np.isfinite(r)
                if ok.sum() < 16:
                    continue
                b, a = np.polyfit(theta[ok], r[ok], 1)
                res = r[ok] - (a + b * theta[ok])
                rms.append(float(np.sqrt(np.mean(res**2))))
                slopes.append(b)
        if not rms:
            return {"layers": 0}
        return {
            "layers": len(rms),
            "pitch_um": float(np.median(slopes) * 2 * np.pi),
            "residual_rms_um_median": float(np.median(rms)),
            "residual_rms_um_p95": float(np.percentile(rms, 95)),
        }

    def to_json(self) -> dict[str, Any]:
        """The ``geometry`` block of the inspection result (DESIGN.md), with extra keys."""
        rolls = [s for s in self.slices if s.is_roll]
        z_mid = rolls[len(rolls) // 2].z if rolls else self.shape[0] // 2
        center = self.frame_at(z_mid).center_yx_px
        drift = self.axis.drift_yx_px_per_slice
        px, dz = self.pixel_um, self.spacing_um[0]
        skipped = [s for s in self.slices if not s.is_roll]

        def med(vals: list[float]) -> float:
            vals = [v for v in vals if math.isfinite(v)]
            return float(np.median(vals)) if vals else math.nan

        out = {
            "axis_center_yx_px": [float(center[0]), float(center[1])],
            "can_outer_radius_um": self.can_stat("outer_radius_um"),
            "can_inner_radius_um": self.can_stat("inner_radius_um"),
            "roll_inner_radius_um": med([s.roll_inner_radius_um for s in rolls]),
            "roll_outer_radius_um": med([s.roll_outer_radius_um for s in rolls]),
            "windings": self.windings,
            "can_outer_diameter_mm": 2e-3 * self.can_stat("outer_radius_um"),
            "can_wall_min_um": self.can_stat("wall_min_um", np.min),
            "can_wall_mean_um": self.can_stat("wall_mean_um"),
            "can_ovality": self.can_stat("ovality"),
            "can_dent_max_um": self.can_stat("dent_depth_um", np.max),
            "axis_drift_um_per_mm": [1000 * d * px / dz for d in drift],
            "axis_tilt_deg": self.axis.tilt_deg,
            "axis_center_mm": [c * px / 1000 for c in center],
            "roll_center_offset_um": [o * px for o in self.roll_offset_yx_px],
            "roll_ovality": self.ovality,
            "roll_ovality_angle_deg": self.ovality_angle_deg,
            "pitch_um": self.pitch_um,
            "winding_direction": "counter-clockwise" if self.direction > 0 else "clockwise",
            "roll_slices": len(rolls),
            "roll_slice_range": [rolls[0].z, rolls[-1].z] if rolls else None,
            "skipped_slices": len(skipped),
            "uncoated_zones": [zone.to_json() for zone in self.uncoated_zones],
            "can_judged_slices": ([min(self.judged_can_slices), max(self.judged_can_slices)]
                                  if self.judged_can_slices else None),
            "can_narrowings": [n.to_json() for n in self.can_narrowings],
            "cathode_anatomy": self.cathode_anatomy.to_json() if self.cathode_anatomy is not None else None,
            "coating_edges": self.coating_edges,
            "notes": self.notes,
        }
        out["spiral_fit"] = self.spiral_fit()
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


@dataclass
class RollPrior:
    """What the whole volume says about the roll, for tracing it one chunk of slices at a time.

    Found once on slices spread over the whole volume (:func:`roll_prior`); each chunk then
    traces its slices in the same frame and judges its sheets against the same interior, so
    a chunk through the roll's end does not take the end for the interior.
    """

    axis: CellAxis
    can_inner_um: float
    roll_offset_yx_px: tuple[float, float]
    ovality: float
    ovality_angle_deg: float
    pitch_um: float
    direction: int
    seam_deg: float
    windings: int
    interior: tuple[float, float, float]  # sheet thickness, intensity, coverage of the interior
    winding_interior: tuple[np.ndarray, np.ndarray]  # per winding: thickness, intensity
    # Uncoated strips and the cathode's anatomy seen over the whole height (a chunk may be too
    # short to tell them).
    uncoated_zones: list[UncoatedZone] = field(default_factory=list)
    cathode_anatomy: CathodeAnatomy | None = None
    anatomy_angles: int = 0
    anatomy_slices: int = 0  # roll slices of the sample the anatomy was judged from
    first_layer_radius_um: float = math.nan

    def shifted(self, z0: int) -> RollPrior:
        """The same prior for a chunk whose first slice is slice ``z0`` of the volume."""
        c0, d = self.axis.center0_yx_px, self.axis.drift_yx_px_per_slice
        axis = CellAxis((c0[0] + d[0] * z0, c0[1] + d[1] * z0), d, self.axis.tilt_deg, self.axis.residual_rms_px)
        return replace(self, axis=axis)


# Fewest sample slices through the roll from which a prior's anatomy (the cathode's ends, its
# single-sided stretches, the tab window) is trusted over a chunk's own judgement.
PRIOR_ANATOMY_MIN_SLICES = 8


def roll_prior(geometry: CellGeometry, z_of_slice: np.ndarray) -> RollPrior | None:
    """The :class:`RollPrior` of a geometry measured on a sample of a volume's slices.

    ``z_of_slice[i]`` is the volume's slice index of the sample's slice ``i`` (evenly spaced).
    None when the sample shows no roll.
    """
    rolls = [s for s in geometry.slices if s.is_roll]
    if not rolls or not math.isfinite(geometry.pitch_um):
        return None
    step = float(z_of_slice[1] - z_of_slice[0]) if len(z_of_slice) > 1 else 1.0
    a = geometry.axis
    c0 = a.center_at(-z_of_slice[0] / step)  # the sample's axis at volume slice 0
    axis = CellAxis(c0, (a.drift_yx_px_per_slice[0] / step, a.drift_yx_px_per_slice[1] / step), a.tilt_deg,
                    a.residual_rms_px)
    seam = common_seam([s.seam_deg for s in rolls])
    k_max = max(s.windings for s in rolls)
    return RollPrior(
        axis=axis, can_inner_um=geometry.can_inner_um, roll_offset_yx_px=geometry.roll_offset_yx_px,
        ovality=geometry.ovality, ovality_angle_deg=geometry.ovality_angle_deg, pitch_um=geometry.pitch_um,
        direction=geometry.direction, seam_deg=seam if seam is not None else math.nan, windings=geometry.windings,
        interior=_interior_reference(rolls), winding_interior=_winding_reference(rolls, k_max),
        uncoated_zones=list(geometry.uncoated_zones), cathode_anatomy=geometry.cathode_anatomy,
        first_layer_radius_um=geometry.first_layer_radius_um,
        anatomy_angles=rolls[0].t_rad.size, anatomy_slices=len(rolls))


def _check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


@lru_cache(maxsize=2)
def _unwrap_grid(ovality: float, alpha_rad: float, n_angles: int, rho_stop_px: float, step: float) -> UnwrapGrid:
    # Made once per volume in each worker process (a memo: the grid is a function of its
    # arguments), instead of 20 MB of offsets sent with every slice.
    t = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    return UnwrapGrid(EllipticFrame((0.0, 0.0), ovality, alpha_rad), t, np.arange(0.0, rho_stop_px, step))


def _trace_one_slice(item: tuple[np.ndarray, int, EllipticFrame, float | None], rho_stop_px: float,
                     **kwargs) -> SliceRoll:
    image, z, frame, seam_deg = item
    grid = _unwrap_grid(frame.ovality, frame.alpha_rad, kwargs["n_angles"], rho_stop_px,
                        kwargs["params"].radial_step_vox)
    return analyze_slice(image, z, frame=frame, grids={"grid": grid}, seam_deg=seam_deg, **kwargs)


def _refine_frame_item(item: tuple[np.ndarray, EllipticFrame], pixel_um: float, max_radius_um: float,
                       params: GeometryParams):
    image, frame = item
    return refine_frame(image, pixel_um, frame, max_radius_um, params)


def _detect_can_item(item: tuple[np.ndarray, int], pixel_um: float, max_wall_um: float) -> CanSlice:
    image, z = item
    return detect_can(image, pixel_um, z, max_wall_um)


def evenly(items: list[int], n: int) -> list[int]:
    if len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def measure_geometry(volume: Volume, params: GeometryParams | None = None,
                     progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                     threads: int | None = None, prior: RollPrior | None = None,
                     can_slices: list[int] | None = None, processes: bool | None = None) -> CellGeometry:
    """Find the can, the axis, the roll frame and trace the layers of every slice.

    Parameters
    ----------
    volume : Volume
    params : GeometryParams
        Physical parameters (µm).
    progress : callable(fraction, message), optional
    cancel : callable() -> bool, optional
        Checked between slices; raises :class:`core.errors.Cancelled` when it returns True.
    threads : int, optional
        Slices traced in parallel (default: the number of CPUs, at most 8): in worker processes
        when the volume has at least ``core.parallel.PROCESS_MIN_VOXELS`` voxels, else in threads; 1 traces
        them one after the other in this process.
    processes : bool, optional
        Force (True) or forbid (False) worker processes for the slices; by default they are used
        for volumes of at least ``core.parallel.PROCESS_MIN_VOXELS`` voxels. The results are the same.
    prior : RollPrior, optional
        The roll's frame, seam and interior from the whole volume (chunked inspection): the
        axis, frame and pitch are taken from it instead of from this volume's slices.
    can_slices : list of int, optional
        Slices to measure the can on (default: 24 spread over the volume).

    Raises
    ------
    InputError
        When no slice shows a can (the volume is not a cylindrical cell).
    """
    params = params or GeometryParams()
    nz = volume.shape[0]
    sz, sy, sx = volume.spacing_um
    pixel_um = 0.5 * (sy + sx)
    notes: list[str] = []
    if abs(sy - sx) > 0.01 * pixel_um:
        notes.append(f"in-plane voxels are not square ({sy} × {sx} µm); radii use their mean")
    report = progress or (lambda f, m: None)

    # 1. The can on a subset of slices, and the axis through their centres.
    can_z = evenly(list(range(nz)), 24) if can_slices is None else list(can_slices)
    workers = default_workers(nz, threads)
    processes = worth_processes(volume.shape, workers, processes)
    cans = []
    find_can = partial(_detect_can_item, pixel_um=pixel_um, max_wall_um=params.max_can_wall_um)
    items = ((np.asarray(volume.slice(z)), z) for z in can_z)
    for i, can in enumerate(map_in_processes(find_can, items, workers, cancel) if processes else map(find_can, items)):
        _check_cancel(cancel)
        cans.append(can)
        report(0.1 * (i + 1) / max(len(can_z), 1), f"can: slice {can.z}")
    found = [c for c in cans if c.found]
    if prior is not None:
        geometry = CellGeometry(volume.spacing_um, volume.shape, pixel_um, cans, prior.axis, notes=notes,
                                roll_offset_yx_px=prior.roll_offset_yx_px, ovality=prior.ovality,
                                ovality_angle_deg=prior.ovality_angle_deg, pitch_um=prior.pitch_um,
                                direction=prior.direction, can_inner_um=prior.can_inner_um)
        can_inner = prior.can_inner_um
    else:
        if not found:
            raise InputError(volume.source or "volume", "no cylindrical can found in any slice; is this a cell volume?")
        axis = fit_axis(np.array([c.z for c in found]), np.array([c.center_yx_px for c in found]), sz, pixel_um)
        can_inner = float(np.median([c.inner_radius_um if math.isfinite(c.inner_radius_um)
                                     else c.outer_radius_um - params.max_can_wall_um for c in found]))
        geometry = CellGeometry(volume.spacing_um, volume.shape, pixel_um, cans, axis, notes=notes,
                                can_inner_um=can_inner)
        if not _find_frame(volume, geometry, params, can_inner, report, cancel, workers, processes):
            return geometry

    # 3. Every slice's layers about the common frame.
    n_angles = angles_for_radius(can_inner / pixel_um - CAN_EDGE_MARGIN_PX, params)
    grids: dict = {"grid": None}
    # The grid is made once, before the threads start.
    frame0 = geometry.frame_at(0)
    rho_max_px = can_inner / pixel_um - CAN_EDGE_MARGIN_PX
    grids["grid"] = UnwrapGrid(frame0, np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False),
                               np.arange(0.0, rho_max_px + 2 * CAN_EDGE_MARGIN_PX, params.radial_step_vox))

    def one(z: int) -> SliceRoll:
        _check_cancel(cancel)
        return analyze_slice(volume.slice(z), z, pixel_um, geometry.frame_at(z), can_inner, params,
                             pitch_um=geometry.pitch_um, direction=geometry.direction, n_angles=n_angles,
                             grids=grids)

    slices: list[SliceRoll] = []

    def collect(traced) -> None:
        for done, s in enumerate(traced, start=1):
            slices.append(s)
            report(0.2 + 0.8 * done / nz, f"layers: slice {done}/{nz}")

    if processes:
        # Slices are independent once the frame is known, but half of a slice's work is Python
        # and small numpy calls that hold the GIL: on 2 cores threads ran at 1.6× when the
        # machine was idle and 0.9–1.1× when it was shared, processes at 1.9× (docs/performance.md).
        task = partial(_trace_one_slice, rho_stop_px=rho_max_px + 2 * CAN_EDGE_MARGIN_PX, pixel_um=pixel_um,
                       max_radius_um=can_inner, params=params, pitch_um=geometry.pitch_um,
                       direction=geometry.direction, n_angles=n_angles)

        def retrace(todo: list[tuple[int, float]]) -> list[SliceRoll]:
            return list(map_in_processes(task, ((np.asarray(volume.slice(z)), z, geometry.frame_at(z), seam)
                                             for z, seam in todo), workers, cancel))

        collect(map_in_processes(task, ((np.asarray(volume.slice(z)), z, geometry.frame_at(z), None) for z in range(nz)),
                              workers, cancel))
    else:
        def retrace(todo: list[tuple[int, float]]) -> list[SliceRoll]:
            return [analyze_slice(volume.slice(z), z, pixel_um, geometry.frame_at(z), can_inner, params,
                                  pitch_um=geometry.pitch_um, direction=geometry.direction, n_angles=n_angles,
                                  grids=grids, seam_deg=seam) for z, seam in todo]

        with ThreadPoolExecutor(max_workers=workers) as pool:
            collect(pool.map(one, range(nz)))
    _agree_on_seam(slices, retrace, common=prior.seam_deg if prior is not None else None)
    geometry.slices = slices
    geometry.first_layer_radius_um = _agree_on_first_layer(
        [s for s in slices if s.is_roll], geometry.pitch_um,
        prior.first_layer_radius_um if prior is not None else None)
    rolls = [s for s in slices if s.is_roll]
    if rolls:
        typical = prior.windings if prior is not None else int(np.median([s.windings for s in rolls]))
        for s in rolls:
            if abs(s.windings - typical) > max(2, 0.1 * typical):
                s.is_roll = False
                s.note = f"{s.windings} windings traced against {typical} elsewhere (roll end or tabs): skipped"
    _skip_roll_ends(slices, reference=prior.interior if prior is not None else None)
    _trim_ragged_ends(slices, sz)
    rolls = [s for s in slices if s.is_roll]
    # The cathode's ends and one-sided stretches, and the uncoated tab window between its ends,
    # seen over the whole height (anatomy; a chunk takes them from the whole volume's prior).
    # Unless the prior's sample held too few roll slices to judge it (a short slab of roll:
    # 3 sample slices) and this chunk holds more. (That alone does not fix such a slab: the
    # prior's frame misleads the chunk's tracing too; docs/validation.md, "Roll ends".)
    own_stretches: CathodeAnatomy | None = None
    if (prior is not None and prior.cathode_anatomy is not None and prior.anatomy_angles == n_angles
            and prior.anatomy_slices >= min(len(rolls), PRIOR_ANATOMY_MIN_SLICES)):
        geometry.cathode_anatomy = prior.cathode_anatomy
        geometry.uncoated_zones = list(prior.uncoated_zones)
        # The chunk's own walk may follow an end's single-sided stretch further than the
        # sample's slices did (ragged roll-end slices among them): both are set aside below. A
        # 21700 top slab cut 1.1 mm into its interior, in chunks, FAILed on 26 mm of its 46 mm
        # outer single-sided stretch as a 1.1 mm³ "void" and a 53 % thin sheet: the prior's
        # walk stopped at 19 mm, the chunk's own (as the whole volume's) reached 46 mm.
        if len(rolls) >= PRIOR_ANATOMY_MIN_SLICES:
            own = find_cathode_anatomy(rolls, sz)
            own_stretches = CathodeAnatomy([], [st for st in own.stretches if st.kind == "single_sided"])
    else:
        geometry.cathode_anatomy = find_cathode_anatomy(rolls, sz)
        a = geometry.cathode_anatomy
        geometry.uncoated_zones = find_uncoated_zones(rolls, sz, within=(a.first, a.last) if a.last >= a.first else None)
    for zone in geometry.uncoated_zones:
        if not math.isfinite(zone.sag_um):
            zone.sag_um = measure_sag(zone, rolls)
    # The sheet tapers into the strip over about a pitch of arc: not measured there either.
    apply_uncoated_zones(rolls, geometry.uncoated_zones, geometry.pitch_um)
    apply_cathode_anatomy(rolls, geometry.cathode_anatomy, margin_um=geometry.pitch_um)
    if own_stretches is not None:
        apply_cathode_anatomy(rolls, own_stretches, margin_um=geometry.pitch_um)
    _mask_sheet_ends(slices, sz, reference=prior.winding_interior if prior is not None else None)
    _mask_electrode_ends(rolls, geometry.pitch_um)
    # The innermost turn around the mandrel is irregular by design (the electrode's start, the
    # pin, the tab): its sheet has no steady neighbourhood to be judged against (gaps between
    # it and the next turn read as 0.0004 mm³ "voids", a real 21700's as 12 % "thick").
    for s in rolls:
        if s.sheet_thickness_um.shape[0] > 1:
            blank_sheet(s, 0)
    if rolls:
        notes.append("the innermost turn (winding 0) is irregular by design: its cathode sheet is not measured")
    geometry.coating_edges = _mask_coating_edges(slices, sz, params.coating_edge_band_um)
    for zone in geometry.uncoated_zones:
        notes.append(f"uncoated cathode (tab window?) in winding {zone.winding}: {zone.arc_length_mm:.1f} mm of arc "
                     f"at {zone.start_deg:.0f}–{zone.end_deg:.0f}° over the roll's height; not measured there")
    for st in geometry.cathode_anatomy.stretches:
        what = ("no cathode" if st.kind == "absent" else f"cathode coated on one side only ({st.missing_coating} "
                "coating left off)")
        windings = (f"winding {st.winding_start}" if st.winding_start == st.winding_end
                    else f"windings {st.winding_start}–{st.winding_end}")
        # The length needs a traced sheet or collector there; where neither was, it is unknown.
        length = f", {st.length_mm:.1f} mm along the strip" if math.isfinite(st.length_mm) else ""
        notes.append(f"{what} at its {st.end} end: {windings}, {st.start_deg:.0f}–{st.end_deg:.0f}°{length}; "
                     "anatomy, not measured")
    for edge in geometry.coating_edges:
        notes.append(f"coating edge band at the roll's {edge['end'].replace('_', ' ')}: slices {edge['z_first']}–"
                     f"{edge['z_last']} ({edge['band_um']:.0f} µm from the roll end) not measured for thickness or voids")
    skipped = [s for s in slices if not s.is_roll]
    if skipped:
        spans = _spans([s.z for s in skipped])
        notes.append(f"{len(skipped)} slice(s) without jelly roll skipped ({spans}): cap, headspace, tabs or roll ends")
    _complete_can(volume, geometry, params, cancel, narrowings=prior is None)
    return geometry


def _complete_can(volume: Volume, geometry: CellGeometry, params: GeometryParams,
                  cancel: Callable[[], bool] | None, narrowings: bool = True, min_judged: int = 8) -> None:
    """The can beside the roll's interior (judged) and its narrowings beyond the roll (geometry).

    Can metrology judges the straight can alongside the roll's interior only: the groove that
    holds the cap and the crimp that closes the can are narrower by design. At least
    ``min_judged`` slices there get a can fit (more are measured when the 24 spread over the
    volume fell mostly in the headspace). With ``narrowings``, the can's outer radius is
    profiled beyond the roll (every ~100 µm) and the groove and crimp found there.
    """
    interior = geometry.roll_slices
    if not interior:
        return
    lo, hi = interior[0], interior[-1]
    have = {c.z for c in geometry.cans}
    inside = [c for c in geometry.cans if c.found and lo <= c.z <= hi and geometry.slices[c.z].is_roll]
    if len(inside) < min(min_judged, len(interior)):
        for z in evenly(interior, min_judged):
            if z not in have:
                _check_cancel(cancel)
                geometry.cans.append(detect_can(volume.slice(z), geometry.pixel_um, z, params.max_can_wall_um))
        geometry.cans.sort(key=lambda c: c.z)
    geometry.judged_can_slices = [c.z for c in geometry.cans if c.found and geometry.slices[c.z].is_roll]
    if not narrowings:
        return
    # The roll's span, ends included (windings seen): the can beside it is straight too.
    span = [s.z for s in geometry.slices if s.is_roll or s.windings > 0]
    geometry.can_narrowings = narrowings_beyond(volume, (min(span), max(span)), geometry.can_stat("outer_radius_um"),
                                                params, cancel)


def narrowings_beyond(volume: Volume, roll_range: tuple[int, int], straight_radius_um: float,
                      params: GeometryParams, cancel: Callable[[], bool] | None = None) -> list[CanNarrowing]:
    """The groove and crimp of the can beyond ``roll_range`` (see :func:`core.geometry.can.find_narrowings`)."""
    nz = volume.shape[0]
    dz = volume.spacing_um[0]
    step = max(1, int(round(100.0 / dz)))  # a profile point every ~100 µm of height
    zs = [z for z in range(0, nz, step) if z < roll_range[0] or z > roll_range[1]]
    if not zs or not math.isfinite(straight_radius_um):
        return []
    _check_cancel(cancel)
    radius = can_profile(volume, zs, params.max_can_wall_um)
    return find_narrowings(np.array(zs), radius, straight_radius_um, roll_range, dz, sample_step=step)


# Slices the roll frame is fitted on, and the fewest fits that make a frame: a median of three
# outvotes one bad fit (see _find_frame).
FRAME_SLICES = 6
MIN_FRAME_CANDIDATES = 3


def _find_frame(volume: Volume, geometry: CellGeometry, params: GeometryParams, can_inner: float,
                report: Progress, cancel: Callable[[], bool] | None, workers: int = 1,
                processes: bool = False) -> bool:
    """Set the roll frame (centre offset, ovality), pitch and direction from a few slices.

    Returns False (and marks every slice) when no slice shows wound layers.
    """
    axis, pixel_um, notes, nz = geometry.axis, geometry.pixel_um, geometry.notes, volume.shape[0]
    found = [c for c in geometry.cans if c.found]
    candidates = []
    refine = partial(_refine_frame_item, pixel_um=pixel_um, max_radius_um=can_inner, params=params)
    found_z = [c.z for c in found]
    frame_z = evenly(found_z, FRAME_SLICES)
    asked, done = set(frame_z), 0
    while frame_z:
        items = ((np.asarray(volume.slice(z)), EllipticFrame(axis.center_at(z))) for z in frame_z)
        refined = map_in_processes(refine, items, workers, cancel) if processes else map(refine, items)
        for z, (frame, pitch, direction, score) in zip(frame_z, refined, strict=True):
            _check_cancel(cancel)
            done += 1
            report(0.1 + 0.1 * min(done / FRAME_SLICES, 1.0), f"roll frame: slice {z}")
            if math.isfinite(pitch):
                candidates.append((score, z, frame, pitch, direction))
        # A volume that is mostly cap and headspace (a slab of a cell's top) may show the roll
        # in one or two of the frame slices, and one of those can be the roll's ragged end:
        # the median of two is their mean, and a top slab's frame came out 2.3 px (58 µm) off
        # centre from such a pair (its outer turn was then lost over 25° in every slice). More
        # slices are asked until a median of three can outvote one bad fit.
        rest = [z for z in found_z if z not in asked]
        if len(candidates) >= MIN_FRAME_CANDIDATES or not rest:
            break
        frame_z = evenly(rest, FRAME_SLICES)
        asked.update(frame_z)
    # Only the slices that show layers most clearly set the frame (not caps or tabs).
    best_score = max((c[0] for c in candidates), default=0.0)
    candidates = [c for c in candidates if c[0] >= 0.6 * best_score]
    # A fit that found the spiral turning the other way than most did is a bad fit (a roll
    # end's ragged sheets): it does not vote on the frame.
    if candidates:
        turn = 1 if sum(c[4] for c in candidates) >= 0 else -1
        candidates = [c for c in candidates if c[4] == turn]
    offsets, ovals, pitches, directions = [], [], [], []
    for _score, z, frame, pitch, direction in candidates:
        cy, cx = axis.center_at(z)
        offsets.append((frame.center_yx_px[0] - cy, frame.center_yx_px[1] - cx))
        ovals.append(frame.ovality * np.exp(2j * frame.alpha_rad))
        pitches.append(pitch)
        directions.append(direction)
    if not pitches:
        notes.append("no slice shows wound layers: no jelly roll in this volume")
        geometry.slices = [SliceRoll(z=z, is_roll=False, note="no jelly roll") for z in range(nz)]
        return False
    off = np.median(np.array(offsets), axis=0)
    oval = complex(np.median(np.real(ovals)), np.median(np.imag(ovals)))
    geometry.roll_offset_yx_px = (float(off[0]), float(off[1]))
    geometry.ovality = abs(oval)
    geometry.ovality_angle_deg = math.degrees(np.angle(oval) / 2) % 180.0
    geometry.pitch_um = float(np.median(pitches))
    geometry.direction = 1 if sum(directions) >= 0 else -1
    return True


def common_seam(seams_deg: list[float] | np.ndarray, tolerance_deg: float = 10.0) -> float | None:
    """The seam angle most slices agree with (within the tolerance), or None without a majority."""
    seams = np.array([v for v in seams_deg if math.isfinite(v)], float)
    if seams.size == 0:
        return None
    diff = np.abs((seams[:, None] - seams[None, :] + 180.0) % 360.0 - 180.0)
    support = (diff <= tolerance_deg).sum(axis=1)
    best = int(np.argmax(support))
    if support[best] <= seams.size // 2:
        return None
    close = seams[diff[best] <= tolerance_deg]
    return math.degrees(np.angle(np.exp(1j * np.radians(close)).mean())) % 360.0


def _agree_on_seam(slices: list[SliceRoll], retrace: Callable[[list[tuple[int, float]]], list[SliceRoll]],
                   tolerance_deg: float = 10.0, common: float | None = None) -> None:
    """Re-trace the slices whose seam disagrees with the roll's (``common``, or the majority's).

    The innermost turn starts at the electrode's inner end, a straight edge along the axis:
    the same angle in every slice. A slice where the step fit picked another feature (seen
    on a real 21700: the other electrode's start, 137° away, in one slice of 27) would index
    every winding differently from its neighbours; it is traced again with the common seam
    (``retrace`` takes the (slice, seam) pairs and returns their traces, in order).
    """
    seams = [s.seam_deg for s in slices if s.is_roll and math.isfinite(s.seam_deg)]
    if common is None or not math.isfinite(common):
        if len(seams) < 3:
            return
        common = common_seam(seams, tolerance_deg)
        if common is None:
            return  # no majority: nothing to agree on
    again = []
    for i, s in enumerate(slices):
        if s.is_roll and math.isfinite(s.seam_deg) and abs((s.seam_deg - common + 180.0) % 360.0 - 180.0) > tolerance_deg:
            again.append(i)
        elif s.is_roll and math.isfinite(s.seam_deg):
            # Within the tolerance the fit's own scatter (±6° seen): one seam for all, so that a
            # place along the strip has the same winding and position in every slice.
            reseam(s, common)
    if again:
        for i, traced in zip(again, retrace([(slices[i].z, common) for i in again]), strict=True):
            slices[i] = traced


def _agree_on_first_layer(rolls: list[SliceRoll], pitch_um: float, reference_um: float | None = None) -> float:
    """Count the windings of every slice from the same physical layer.

    The tracer numbers the layers of each slice from its innermost traced collector; in some
    slices the bare lead of the anode around the mandrel is traced as one more layer, in others
    not (seen on generated cells: 17 and 18 windings alternating from slice to slice), which
    moves every winding number, and a tab window or a void by one winding between slices.
    With one seam for all slices, the first layer's median radius tells: a slice whose first
    layer lies a pitch inside the others' (``reference_um``, or their median) drops it, one a
    pitch outside gets an empty layer in front.

    Returns
    -------
    float
        The first layer's median radius the slices now agree on (NaN without roll slices).
    """
    radii = [(s, float(np.nanmedian(s.cu_radius_um[0]))) for s in rolls
             if s.cu_radius_um.shape[0] and np.isfinite(s.cu_radius_um[0]).sum() >= 8]
    if not radii or not math.isfinite(pitch_um) or pitch_um <= 0:
        return math.nan
    ref = reference_um if reference_um is not None and math.isfinite(reference_um) else float(
        np.median([r for _, r in radii]))
    for s, r0 in radii:
        shift = int(round((r0 - ref) / pitch_um))
        if shift == 0 or abs(shift) > 2:
            continue
        for name in _PER_LAYER:
            arr = getattr(s, name)
            if arr.ndim != 2:
                continue
            fill = False if arr.dtype == bool else (0.0 if name == "cu_zscore" else np.nan)
            if shift < 0:  # an extra layer inside: drop it
                arr = arr[-shift:]
            else:  # the first layer missing: an empty one in front
                arr = np.concatenate([np.full((shift, arr.shape[1]), fill, dtype=arr.dtype), arr])
            setattr(s, name, arr)
        s.windings = max(0, s.windings + shift)
    return ref


_PER_LAYER = ("cu_radius_um", "cu_zscore", "sheet_inner_um", "sheet_outer_um", "sheet_thickness_um", "cu_al_gap_um",
              "sheet_intensity", "sheet_cu_contact", "sheet_excluded")


def reseam(s: SliceRoll, seam_deg: float) -> None:
    """Count the windings of slice ``s`` from ``seam_deg`` instead of its own seam.

    The ray index of every layer steps by one at the seam; between the old and the new seam
    angle the layers are re-indexed by that step (the physical layers do not change). Arrays
    grow by a row where the step adds one.
    """
    if not math.isfinite(s.seam_deg) or not math.isfinite(seam_deg) or s.t_rad.size == 0:
        return
    d = s.direction
    delta = (seam_deg - s.seam_deg + 180.0) % 360.0 - 180.0
    if delta == 0.0:
        return
    rank_old = (d * (s.t_rad - math.radians(s.seam_deg))) % (2 * np.pi)
    rank_new = (d * (s.t_rad - math.radians(seam_deg))) % (2 * np.pi)
    shift = np.rint((rank_old - rank_new - d * math.radians(delta)) / (2 * np.pi)).astype(int)  # k_new - k_old
    if not shift.any():
        s.seam_deg = float(seam_deg) % 360.0
        return
    cols = np.arange(s.t_rad.size)
    for name in _PER_LAYER:
        old = getattr(s, name)
        if old.ndim != 2 or old.shape[1] != s.t_rad.size:
            continue
        k_old = old.shape[0]
        fill = False if old.dtype == bool else (0.0 if name == "cu_zscore" else np.nan)
        new = np.full((k_old + int(shift.max() > 0), old.shape[1]), fill, dtype=old.dtype)
        for k in range(new.shape[0]):
            src = k - shift
            ok = (src >= 0) & (src < k_old)
            new[k, ok] = old[src[ok], cols[ok]]
        setattr(s, name, new)
    s.seam_deg = float(seam_deg) % 360.0


# The cathode's coating is what makes a slice interior: a slice through a roll end's overhang
# shows anode only, and its "sheet" reads dark (and thin). Slices whose sheet intensity is
# below this fraction of the brightest's are no interior reference.
INTERIOR_MIN_BRIGHTNESS = 0.8


def _interior_rows(intensity: np.ndarray, coverage: np.ndarray | None = None) -> np.ndarray:
    """Indices of the slices (in z order, their sheet intensities given) that make the roll's
    interior reference: of those where the sheets were measured over at least half as much of
    the roll as the best slice (``coverage``), the bright ones, and of those the middle half
    when there are 8 or more.

    Coverage first: at a real 21700's roll top, slices whose sheets were measured at 1 % of
    the roll (a few bright specks at the tabs, 0 µm "thick") were the brightest and became the
    reference: every slice was then 100 % off it.

    The bright ones first: a top slab of a 21700 at 15 µm had 4 sample slices with windings, 2
    in the interior (sheets 135 µm, intensity 0.79) and 2 in the overhang (7.5 µm, 0.25); the
    median of all four was neither, every slice was judged a roll end, and without a roll prior
    the inspection FAILed on a "7 µm cell median" and a 0 µm overhang.
    """
    rows = np.arange(intensity.size)
    finite = np.isfinite(intensity)
    if coverage is not None and np.isfinite(coverage).any() and np.nanmax(coverage) > 0:
        with np.errstate(invalid="ignore"):
            finite &= coverage >= 0.5 * np.nanmax(coverage)
    if finite.any():
        bright = finite & (intensity >= INTERIOR_MIN_BRIGHTNESS * np.max(intensity[finite]))
        rows = rows[bright]
    n = rows.size
    return rows[n // 4: n - n // 4] if n >= 8 else rows


def _interior_reference(rolls: list[SliceRoll]) -> tuple[float, float, float]:
    """Median sheet thickness, intensity and coverage of the roll's interior (see :func:`_interior_rows`)."""
    stats = []
    for s in rolls:
        k = s.windings
        thick = s.sheet_thickness_um[:k]
        inten = s.sheet_intensity[:k]
        stats.append((float(np.nanmedian(thick)) if np.isfinite(thick).any() else math.nan,
                      float(np.nanmedian(inten)) if np.isfinite(inten).any() else math.nan,
                      float(np.isfinite(thick).mean()) if thick.size else 0.0))
    arr = np.array(stats).reshape(-1, 3)
    middle = arr[_interior_rows(arr[:, 1], arr[:, 2])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return (float(np.nanmedian(middle[:, 0])), float(np.nanmedian(middle[:, 1])), float(np.nanmedian(middle[:, 2])))


def _winding_reference(rolls: list[SliceRoll], k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Per winding, the median sheet thickness and intensity over the roll's interior."""
    n = len(rolls)
    middle = rolls[n // 4: n - n // 4] if n >= 8 else rolls
    ref_t, ref_i = np.full(k_max, np.nan), np.full(k_max, np.nan)
    for k in range(k_max):
        def stat(s: SliceRoll, name: str, k: int = k) -> float:
            arr = getattr(s, name)
            if k >= arr.shape[0] or not np.isfinite(arr[k]).any():
                return math.nan
            return float(np.nanmedian(arr[k]))

        vals_t = [v for v in (stat(s, "sheet_thickness_um") for s in middle) if math.isfinite(v)]
        vals_i = [v for v in (stat(s, "sheet_intensity") for s in middle) if math.isfinite(v)]
        ref_t[k] = np.median(vals_t) if vals_t else math.nan
        ref_i[k] = np.median(vals_i) if vals_i else math.nan
    return ref_t, ref_i


def _skip_roll_ends(slices: list[SliceRoll], tolerance: float = 0.2,
                    reference: tuple[float, float, float] | None = None) -> None:
    """Skip slices through the ends of the roll, where the electrode sheets stop.

    Near the top and bottom of a jelly roll the cathode ends before the anode (the anode
    overhang) and tabs cross the layers: the slice still shows windings, but its cathode
    sheets are missing or cut. Such slices differ from the roll's interior (``reference``,
    or the middle half of these slices) in sheet thickness or brightness by more than
    ``tolerance``; they are left to end-of-roll checks (overhang) instead of the electrode
    detectors.
    """
    rolls = [s for s in slices if s.is_roll]
    if len(rolls) < 4 and reference is None:
        return
    if not rolls:
        return
    ref_t, ref_i, ref_cov = reference if reference is not None else _interior_reference(rolls)
    if not ref_t > 0:  # no sheet measured anywhere: nothing to compare with
        return
    for s in rolls:
        thick, inten, cov = _interior_reference([s])
        off_t = abs(thick / ref_t - 1) if math.isfinite(thick) else 1.0
        off_i = abs(inten / ref_i - 1) if math.isfinite(inten) and ref_i else 1.0
        if off_t > tolerance or off_i > tolerance or cov < 0.6 * ref_cov:
            s.is_roll = False
            s.note = (f"roll end: cathode sheets {100 * off_t:.0f} % thicker/thinner and {100 * off_i:.0f} % "
                      f"brighter/darker than the roll's interior (electrode edges, tabs): skipped")
            continue
        missing = _sector_without_cathode(s, ref_i, ref_cov)
        if missing is not None:
            s.is_roll = False
            s.note = (f"roll end: no cathode in most windings at {missing:.0f}° (the cathode's edge crosses the "
                      f"slice there; the anode overhangs it): skipped")


# The shortest run of interior slices that starts the roll's interior at an end, in µm of
# height: shorter runs beside the end belong to its ragged zone (see _trim_ragged_ends).
MIN_INTERIOR_RUN_UM = 100.0
# How far beyond the interior the cathode's edge can wander: its overhang varies by a few
# hundred µm round the roll (0.68 mm peak to peak in a generated 21700). A kept slice further
# out (in a whole cell's sample, millimetres apart) is not in a ragged zone.
RAGGED_ZONE_UM = 1500.0


def _trim_ragged_ends(slices: list[SliceRoll], dz_um: float, min_run_um: float = MIN_INTERIOR_RUN_UM) -> None:
    """Skip the odd slice judged interior inside a roll end's ragged zone.

    The cathode's edge wanders round the roll (its overhang varies by hundreds of µm), so
    across the zone where it crosses the slices, one slice can pass the roll-end tests while
    its neighbours on both sides fail them. Such a slice lies between roll-end slices and the
    roll's end: its layers are cut at some angles and its collectors traced against a changing
    pattern (a healthy top slab at 18 µm FAILed on "deflections" of 77–191 µm one slice tall
    in the one slice kept among 23 skipped). From each end, every slice before the first run
    of at least ``min_run_um`` of consecutive interior slices is a roll end. Gaps inside the
    roll (a slice skipped beside the seam) are not touched: only the ends are walked, and
    only :data:`RAGGED_ZONE_UM` beyond the interior.
    """
    min_run = max(2, math.ceil(min_run_um / dz_um))
    long_runs, start = [], 0
    for is_roll, run in itertools.groupby(s.is_roll for s in slices):
        n = len(list(run))
        if is_roll and n >= min_run:
            long_runs.append((start, start + n - 1))
        start += n
    if not long_runs:
        return  # no interior to tell the ends from
    first_interior, last_interior = long_runs[0][0], long_runs[-1][1]
    for i, s in enumerate(slices):
        beyond_um = dz_um * max(first_interior - i, i - last_interior)
        if s.is_roll and 0 < beyond_um <= RAGGED_ZONE_UM:
            s.is_roll = False
            s.note = ("roll end: judged interior, but between the roll's end and its skipped edge slices "
                      "(the electrode's edge crosses here): skipped")


# A sector whose sheets are this much darker than the interior's, in every winding at once, is
# cut by the cathode's edge (partial volume along the axis), not by a defect in one sheet.
EDGE_SECTOR_BRIGHTNESS = 0.85


def _sector_without_cathode(s: SliceRoll, ref_inten: float, ref_cov: float, sectors: int = 36,
                            level: float = 0.75) -> float | None:
    """The angle (degrees) of a sector where most windings have no cathode sheet, else None.

    The cathode's edge at a roll end is not flat: it wanders with the angle (the overhang
    varies by hundreds of µm round the roll), so a slice can cross it over part of the circle
    only. There every winding's cathode is missing at once, a sector-wide absence that no
    defect makes (a void or a thin patch is in one sheet, a tab window in one winding). In
    such a slice the layer pattern changes and the collectors cannot be traced against the
    roll's: the slice is a roll end, left to the overhang detector.

    Sectors that touch the seam are not judged: beside it the tracer leaves gaps in a third of
    the windings (0.69 of a typical 0.94 in a generated cell's mid-roll slice, whose sector
    overlapped the seam's mask by 6 of 77 angles), which is no edge.
    """
    k = s.windings
    if k < 3 or not math.isfinite(ref_inten) or ref_inten <= 0 or s.t_rad.size < sectors:
        return None
    thick, inten = s.sheet_thickness_um[:k], s.sheet_intensity[:k]
    with np.errstate(invalid="ignore"):
        sheet = np.isfinite(thick) & (inten >= 0.6 * ref_inten)
    # Where the layers' ray index changes (the seam, the outer end) the tracer leaves gaps in
    # every winding at once: not looked at.
    ends = near_layer_ends(s, 360.0 / sectors)
    bounds = np.linspace(0, s.t_rad.size, sectors + 1).astype(int)
    # Per sector, the fraction of windings whose cathode is there over most of the sector: a
    # tracer gap that takes the same fifth of the sector from every winding (next to the seam,
    # wider than its mask in a generated 21700: five mid-roll slices skipped, and their 500 µm
    # edge bands hid a void and a thin patch) leaves every winding present.
    frac = np.array([(sheet[:, a:b].mean(axis=1) >= 0.5).mean() if not ends[a:b].any() else np.nan
                     for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    if not np.isfinite(frac).any():
        return None
    frac = np.where(np.isfinite(frac), frac, np.nanmedian(frac))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bright = np.array([np.nanmedian(inten[:, a:b][:, ~ends[a:b]]) if (~ends[a:b]).any() else np.nan
                           for a, b in zip(bounds[:-1], bounds[1:], strict=True)]) / ref_inten
    typical = float(np.median(frac))
    # Where the edge lies inside the slice's thickness the sheets are there at part of their
    # brightness (partial volume along the axis: 0.7–0.85 seen), and the collectors cannot be
    # traced there either.
    weak = (frac < level * typical) | (np.isfinite(bright) & (bright < EDGE_SECTOR_BRIGHTNESS))
    if typical > 0 and weak.any():
        worst = int(np.argmin(np.where(weak, frac + np.nan_to_num(bright, nan=1.0), np.inf)))
        return float(np.degrees(s.t_rad[(bounds[worst] + bounds[worst + 1]) // 2]))
    return None


def _mask_sheet_ends(slices: list[SliceRoll], slice_um: float, tolerance: float = 0.25,
                     end_band_um: float = 300.0, sectors: int = 36,
                     reference: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Set aside the cathode sheets of single windings where they end (roll ends are not flat).

    The outer windings of a roll may stop a slice or two before the inner ones, and a sheet's
    edge wanders along the arc. A sheet whose median brightness or thickness in a slice
    differs from the same winding's interior (``reference``, or the middle half of these
    slices) by more than ``tolerance`` is not measured there: neither a void nor a thin
    patch. From a roll end seen in the volume (the slice beyond it is not roll) inwards, up to
    ``end_band_um``, the same test runs per angular sector, for the edges that stop part of
    the way round (measured on a real 21700: outer sheets thin by 30–40 % over 10–30 mm of arc
    in the first 4 slices below the cathode's edge). A sector is set aside only while it is
    off in every slice between it and the end: an edge runs out of the end, while a void or a
    thin patch near the end, with normal sheet between it and the end, stays a finding.
    """
    rolls = [s for s in slices if s.is_roll]
    if not rolls or (len(rolls) < 4 and reference is None):
        return
    k_max = max(s.windings for s in rolls)
    ref_thick, ref_inten = reference if reference is not None else _winding_reference(rolls, k_max)
    n_k = min(k_max, len(ref_thick))
    usable = np.array([math.isfinite(ref_inten[k]) and math.isfinite(ref_thick[k]) and ref_inten[k] != 0
                       and ref_thick[k] != 0 for k in range(n_k)], bool)
    for s in rolls:
        for k in range(min(n_k, s.sheet_thickness_um.shape[0])):
            if not usable[k] or not np.isfinite(s.sheet_thickness_um[k]).any() or not np.isfinite(s.sheet_intensity[k]).any():
                continue
            i_k = float(np.nanmedian(s.sheet_intensity[k]))
            t_k = float(np.nanmedian(s.sheet_thickness_um[k]))
            if abs(i_k / ref_inten[k] - 1) > tolerance or abs(t_k / ref_thick[k] - 1) > tolerance:
                blank_sheet(s, k, edges=True)

    def sector_off(s: SliceRoll, bounds: np.ndarray) -> np.ndarray:
        """(windings, sectors): off the interior by more than the tolerance, or set aside."""
        off = np.zeros((n_k, sectors), bool)
        for k in range(min(n_k, s.sheet_thickness_um.shape[0])):
            if not usable[k]:
                continue
            for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                th, it = s.sheet_thickness_um[k, a:b], s.sheet_intensity[k, a:b]
                if np.isfinite(th).sum() < 0.3 * (b - a) or not np.isfinite(it).any():
                    off[k, j] = True  # nothing measured: the sheet has ended (or was set aside)
                    continue
                off[k, j] = (abs(np.nanmedian(th) / ref_thick[k] - 1) > tolerance
                             or abs(np.nanmedian(it) / ref_inten[k] - 1) > tolerance)
        return off

    band = max(1, int(math.ceil(end_band_um / slice_um)))
    for i, s in enumerate(slices):
        if not s.is_roll:
            continue
        # A roll end: the slice before (walk up) or after (walk down) is not roll.
        for step, beyond in ((1, i - 1), (-1, i + 1)):
            if not (0 <= beyond < len(slices)) or slices[beyond].is_roll:
                continue
            connected = np.ones((n_k, sectors), bool)  # at the end itself every sector touches it
            for d in range(band):
                j = i + step * d
                if not (0 <= j < len(slices)) or not slices[j].is_roll:
                    break
                here = slices[j]
                bounds = np.linspace(0, here.t_rad.size, sectors + 1).astype(int)
                connected &= sector_off(here, bounds)
                if not connected.any():
                    break
                for k, sec in zip(*np.nonzero(connected), strict=True):
                    if k < here.sheet_thickness_um.shape[0]:
                        blank_sheet(here, int(k), slice(bounds[sec], bounds[sec + 1]))


def _mask_coating_edges(slices: list[SliceRoll], slice_um: float, band_um: float) -> list[dict[str, Any]]:
    """Set aside every sheet of the interior slices within ``band_um`` of a roll end.

    At each end of the roll the cathode's coated edge thins out and the slices cut its
    slanted edge (partial volume); measured on a real 21700, sheets 11–35 % thin in the first
    four slices (270 µm) below the cathode's edge. A roll end is where the interior meets
    slices that still show windings but whose sheets end (``_skip_roll_ends``); a roll that
    simply begins at the volume's first slice has no edge there. The Cu collectors are traced
    and judged as everywhere.

    Returns
    -------
    list of dict
        One per edge band: ``end`` ("first_slices" / "last_slices"), ``z_first``, ``z_last``,
        ``band_um``.
    """
    out: list[dict[str, Any]] = []
    if band_um <= 0:
        return out
    n = len(slices)
    band = int(math.ceil(band_um / slice_um))
    for i, s in enumerate(slices):
        if not s.is_roll:
            continue
        for end, beyond, step in (("first_slices", i - 1, 1), ("last_slices", i + 1, -1)):
            if not (0 <= beyond < n) or slices[beyond].is_roll or slices[beyond].windings <= 0:
                continue
            # The roll ends here only if no interior slice lies beyond: a slice skipped in the
            # roll's middle is not its end (500 µm bands around five such slices once hid a
            # whole generated cell's defects).
            outside = range(0, i) if step > 0 else range(i + 1, n)
            if any(slices[j].is_roll for j in outside):
                continue
            zs = []
            for d in range(band):
                j = i + step * d
                if not (0 <= j < n) or not slices[j].is_roll:
                    break
                here = slices[j]
                for k in range(here.sheet_thickness_um.shape[0]):
                    blank_sheet(here, k)
                zs.append(here.z)
            if zs:
                out.append({"end": end, "z_first": min(zs), "z_last": max(zs), "band_um": band_um})
    return out


def _mask_electrode_ends(rolls: list[SliceRoll], arc_um: float) -> None:
    """Set aside the innermost sheet just after the seam and the outermost before its end.

    Where the electrode starts (and where it ends outside) the sheet begins with a ragged,
    curled edge and the layers step over it: within about a pitch of arc it is not the
    steady sheet the detectors compare against (seen on a real 21700 as a "void" and a
    70 % thin patch 4° after the seam).
    """
    for s in rolls:
        k_last = s.windings - 1
        for k, end_deg in ((0, s.seam_deg), (k_last, s.outer_end_deg)):
            if not math.isfinite(end_deg) or k >= s.sheet_thickness_um.shape[0] or k < 0:
                continue
            row = s.sheet_inner_um[k]
            radius = float(np.nanmedian(row)) if np.isfinite(row).any() else math.nan
            if not math.isfinite(radius) or radius <= 0:
                continue
            half_deg = math.degrees(arc_um / radius)
            near = np.abs(((s.t_rad - math.radians(end_deg)) + np.pi) % (2 * np.pi) - np.pi) < math.radians(half_deg)
            blank_sheet(s, k, near)


def _spans(zs: list[int]) -> str:
    parts, start = [], None
    for i, z in enumerate(zs):
        if start is None:
            start = z
        if i + 1 == len(zs) or zs[i + 1] != z + 1:
            parts.append(f"{start}" if start == z else f"{start}–{z}")
            start = None
    return ", ".join(parts)
