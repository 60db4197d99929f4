"""Rendering of a synthetic wound cell with exact partial-volume layers and known defects.

The jelly roll is an Archimedean spiral: a point at elliptical radius ``r`` and spiral angle
``psi`` lies at the *winding coordinate* ``u = (r - r0) / pitch - psi / 2π``; ``floor(u)`` is
the winding (counted along a ray from the mandrel outwards) and ``frac(u) * pitch`` the depth
in that winding's layer stack. The attenuation of a voxel is the exact average of the
piecewise-constant stack over the voxel's radial footprint, obtained from the cumulative
integral of the stack profile (two table look-ups per voxel, no supersampling). Since the roll
is the same in every slice, it is rendered once; defects are painted per slice inside their
bounding boxes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from core.io.volume import Volume
from core.phantom.spec import (
    MATERIAL_MU,
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    Defect,
    DelaminationVoid,
    ForeignParticle,
)

MU = MATERIAL_MU
_PROFILE_STEP_UM = 0.1  # resolution of the tabulated stack profile


@dataclass
class SyntheticCell:
    """A generated volume with its ground truth (JSON-serialisable dict)."""

    volume: Volume
    truth: dict[str, Any]


@dataclass
class _Stack:
    """Per-winding layer offsets (µm from the start of the winding)."""

    cu0: np.ndarray
    cu1: np.ndarray
    sheet0: np.ndarray  # cathode sheet: outer face of the inner separator
    al0: np.ndarray
    al1: np.ndarray
    sheet1: np.ndarray
    pitch: float


def _build_stack(spec: CellSpec, rng: np.random.Generator) -> _Stack:
    n = spec.windings
    jitter = spec.coating_jitter
    anode = spec.anode_coating_um * (1 + jitter * rng.standard_normal(n))
    cathode = spec.cathode_coating_um * (1 + jitter * rng.standard_normal(n))
    pitch = spec.pitch_um
    separator = (pitch - 2 * anode - spec.cu_foil_um - 2 * cathode - spec.al_foil_um) / 2
    if np.any(separator < 2.0):
        raise ValueError("coating jitter leaves no room for the separator")
    cu0 = anode
    cu1 = cu0 + spec.cu_foil_um
    sheet0 = cu1 + anode + separator
    al0 = sheet0 + cathode
    al1 = al0 + spec.al_foil_um
    sheet1 = al1 + cathode
    return _Stack(cu0, cu1, sheet0, al0, al1, sheet1, pitch)


def _stack_profile(stack: _Stack, n_windings: int, u_lo: float = -2.0,
                   u_hi: float | None = None, replace: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tabulate the cumulative integral F(u) of the attenuation over the winding coordinate.

    The table must cover every ``u`` of the image (from the axis to the image corners):
    ``np.interp`` clamps outside it, which would turn the mandrel hole's centre and the gap
    next to the can into an artificial zero-attenuation region. ``replace`` maps a layer's
    material to another (e.g. the cathode to electrolyte beyond the cathode's end).
    """
    sub = replace or {}
    pitch = stack.pitch
    u_lo = min(u_lo, -2.0)
    u_hi = max(u_hi if u_hi is not None else n_windings + 2.0, n_windings + 2.0)
    du = _PROFILE_STEP_UM / pitch
    u = np.arange(u_lo, u_hi + du, du)
    mu = np.full(u.shape, MU[sub.get("electrolyte", "electrolyte")])
    mu[u < 0] = MU["gas"]
    k = np.floor(u).astype(int)
    inside = (k >= 0) & (k < n_windings)
    depth = (u - k) * pitch
    kk = np.clip(k, 0, n_windings - 1)
    layers = [
        (0.0, stack.cu0, "anode"),
        (stack.cu0, stack.cu1, "cu"),
        (stack.cu1, stack.sheet0, "anode"),  # anode coating then separator, fixed below
        (stack.sheet0, stack.al0, "cathode"),
        (stack.al0, stack.al1, "al"),
        (stack.al1, stack.sheet1, "cathode"),
        (stack.sheet1, pitch, "separator"),
    ]
    anode_outer = stack.cu1 + (stack.cu0 - 0.0)  # outer face of the second anode coating
    for start, stop, material in layers:
        start_k = np.asarray(start)[kk] if np.ndim(start) else start
        stop_k = np.asarray(stop)[kk] if np.ndim(stop) else stop
        sel = inside & (depth >= start_k) & (depth < stop_k)
        mu[sel] = MU[sub.get(material, material)]
    sel = inside & (depth >= anode_outer[kk]) & (depth < stack.sheet0[kk])
    mu[sel] = MU[sub.get("separator", "separator")]
    cumulative = np.concatenate([[0.0], np.cumsum(mu[:-1] * du)])
    return u, cumulative


def _interp_uniform(x: np.ndarray, table_u: np.ndarray, table_f: np.ndarray) -> np.ndarray:
    """``np.interp`` on the evenly spaced table, by direct indexing (no binary search)."""
    step = (table_u[-1] - table_u[0]) / (len(table_u) - 1)
    pos = np.clip((x - table_u[0]) / step, 0.0, len(table_u) - 1.000001)
    i = pos.astype(np.intp)
    frac = pos - i
    lo = table_f[i]
    return lo + frac * (table_f[i + 1] - lo)


def _box_average(table_u: np.ndarray, table_f: np.ndarray, u: np.ndarray, h: np.ndarray) -> np.ndarray:
    return (_interp_uniform(u + h / 2, table_u, table_f) - _interp_uniform(u - h / 2, table_u, table_f)) / h


def _overlap(u: np.ndarray, h: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """Fraction of the footprint [u - h/2, u + h/2] covered by [a, b]."""
    return np.clip(np.minimum(u + h / 2, b) - np.maximum(u - h / 2, a), 0.0, None) / h


def _wrap_deg(angle: np.ndarray | float) -> np.ndarray | float:
    """Wrap to (-180, 180]."""
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


def _raised_cosine(x: np.ndarray, full_width: float) -> np.ndarray:
    half = full_width / 2.0
    out = 0.5 * (1 + np.cos(np.pi * np.clip(x / half, -1, 1)))
    return np.where(np.abs(x) < half, out, 0.0)


class _Frame:
    """Geometric fields of one slice (or a window of it) about the cell axis.

    ``u`` is the winding coordinate (see the module docstring), ``psi`` the spiral angle in
    [0, 2π) and ``h`` a voxel's radial footprint in winding units.
    """

    def __init__(self, spec: CellSpec, center_yx_px: tuple[float, float], ys: np.ndarray, xs: np.ndarray):
        v = spec.voxel_size_um
        self.center = center_yx_px
        self.dy = ((ys - center_yx_px[0]) * v)[:, None]
        self.dx = ((xs - center_yx_px[1]) * v)[None, :]
        self.r_phys = np.hypot(self.dx, self.dy)
        e = spec.ovality
        alpha = math.radians(spec.ovality_angle_deg) if e != 0.0 else 0.0
        if e == 0.0:
            ex = np.broadcast_to(self.dx, self.r_phys.shape)
            ey = np.broadcast_to(self.dy, self.r_phys.shape)
            self.r_eff = self.r_phys
            self.metric: np.ndarray | float = 1.0
        else:
            ex = (self.dx * math.cos(alpha) + self.dy * math.sin(alpha)) / (1 + e)
            ey = (-self.dx * math.sin(alpha) + self.dy * math.cos(alpha)) / (1 - e)
            self.r_eff = np.hypot(ex, ey)
            # Normal distance per unit of elliptical radius: converts µm along the normal to
            # r_eff. With sin θ = ey / r_eff and cos θ = ex / r_eff (no trigonometry needed).
            self.metric = (1 + e) * (1 - e) * self.r_eff / np.maximum(
                np.hypot((1 + e) * ey, (1 - e) * ex), 1e-12
            )
        theta = np.arctan2(ey, ex)
        self.psi = (theta + alpha - math.radians(spec.spiral_start_deg)) % (2 * np.pi)
        self.u = (self.r_eff - spec.mandrel_radius_um) / spec.pitch_um - self.psi / (2 * np.pi)
        # Radial footprint of a voxel in winding units.
        self.h = v / (spec.pitch_um * self.metric)
        self._polar_deg: np.ndarray | None = None

    @property
    def polar_deg(self) -> np.ndarray:
        """Image polar angle about the axis, degrees in [0, 360) (computed on first use)."""
        if self._polar_deg is None:
            self._polar_deg = np.degrees(np.arctan2(self.dy, self.dx)) % 360.0
        return self._polar_deg


def _spiral_psi(spec: CellSpec, polar_deg: np.ndarray | float) -> np.ndarray:
    """Spiral angle psi in [0, 2π) of rays at image polar angles ``polar_deg``."""
    e = spec.ovality
    alpha = math.radians(spec.ovality_angle_deg)
    beta = np.radians(np.asarray(polar_deg, dtype=float)) - alpha
    theta = np.arctan2(np.sin(beta) / (1 - e), np.cos(beta) / (1 + e))
    return (theta + alpha - math.radians(spec.spiral_start_deg)) % (2 * np.pi)


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
    """
    roll = truth["roll"]
    e = roll["ovality"]
    alpha = math.radians(roll["ovality_angle_deg"])
    beta = np.radians(np.asarray(polar_deg, dtype=float)) - alpha
    cx, sy = np.cos(beta) / (1 + e), np.sin(beta) / (1 - e)
    theta = np.arctan2(sy, cx)
    psi = (theta + alpha - math.radians(roll["spiral_start_deg"])) % (2 * np.pi)
    pitch = roll["pitch_um"]
    # Stack depths are measured along the elliptical radius r_eff, exactly as the renderer
    # lays them out (u = (r_eff - r0) / pitch - psi / 2π); on an oval roll a layer's thickness
    # along the normal is therefore its nominal thickness times a metric in [1 - e, 1 + e].
    r_eff = roll["mandrel_radius_um"] + pitch * (winding + psi / (2 * np.pi)) + offset_um
    return r_eff / np.hypot(cx, sy)


def default_defects(spec: CellSpec, rng: np.random.Generator | None = None) -> list[Defect]:
    """A defective cell like the seed study's: a deflected collector near the terminal end,
    a delamination void inside the cathode, a thinned coating patch and a metal particle."""
    rng = rng or np.random.default_rng(0)
    n = spec.windings
    z_roll = spec.headspace_slices
    nz_roll = spec.n_slices - z_roll
    zc = z_roll + (nz_roll - 1) / 2.0
    height = max(nz_roll * spec.voxel_size_um * 0.6, spec.voxel_size_um)
    angles = rng.permutation(np.arange(0, 360, 90)) + rng.uniform(-20, 20, 4)
    return [
        CollectorDeflection(winding=int(n * 0.7), angle_deg=float(angles[0]) % 360, amplitude_um=70.0,
                            angular_span_deg=25.0, z_center=zc, height_span_um=height * 1.5),
        DelaminationVoid(winding=int(n * 0.5), angle_deg=float(angles[1]) % 360, thickness_um=45.0,
                         arc_length_um=900.0, height_um=max(height, 3 * spec.voxel_size_um), z_center=zc),
        CoatingPatch(winding=int(n * 0.3), angle_deg=float(angles[2]) % 360, sheet_change=-0.3,
                     arc_length_um=2000.0, height_um=max(height, 3 * spec.voxel_size_um), z_center=zc),
        ForeignParticle(radius_um=spec.mandrel_radius_um + spec.pitch_um * (n * 0.85 + 0.3),
                        angle_deg=float(angles[3]) % 360, diameter_um=max(90.0, 4 * spec.voxel_size_um),
                        z_center=zc),
    ]


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
        Construction and sampling (defaults: an 18650 at 20 µm, 8 slices).
    defects : list of defect specs
        Injected defects (see :mod:`core.phantom.spec`); their exact ground truth is returned.
    artifacts : Artifacts
        Blur, noise, rings, cupping, optional FBP streaks. ``Artifacts.clean()`` for none.
    seed : int
        Seeds the coating jitter, rings and noise.
    cell_id : str, optional
        Stored in the volume's metadata.

    Returns
    -------
    SyntheticCell
        ``volume`` (float32, isotropic spacing) and ``truth``.
    """
    spec = spec or CellSpec()
    defects = list(defects or [])
    artifacts = artifacts or Artifacts()
    rng = np.random.default_rng(seed)
    v = spec.voxel_size_um
    n_windings = spec.windings
    stack = _build_stack(spec, rng)

    max_drift = np.abs(np.asarray(spec.axis_drift_um_per_slice)) * spec.n_slices
    reach = float(spec.can_outer_radius_um) + np.max(np.abs(spec.center_offset_um)) + max_drift.max()
    size = spec.image_size_px or int(2 * math.ceil(reach / v + 12))
    # u spans from the axis (r_eff = 0, psi → 2π) to the farthest image corner.
    far_um = (size * math.sqrt(2) * v + float(np.hypot(*spec.center_offset_um)) + max_drift.sum()) / (1 - abs(spec.ovality))
    table_u, table_f = _stack_profile(stack, n_windings, -spec.mandrel_radius_um / spec.pitch_um - 2.0,
                                      (far_um - spec.mandrel_radius_um) / spec.pitch_um + 2.0)
    img_c = (size - 1) / 2.0
    nz = spec.n_slices

    def center_at(z: int) -> tuple[float, float]:
        return (
            img_c + (spec.center_offset_um[0] + spec.axis_drift_um_per_slice[0] * z) / v,
            img_c + (spec.center_offset_um[1] + spec.axis_drift_um_per_slice[1] * z) / v,
        )

    grid = np.arange(size, dtype=np.float64)
    drifting = any(d != 0 for d in spec.axis_drift_um_per_slice)
    cached: tuple[_Frame, np.ndarray] | None = None

    def base_slice(z: int) -> tuple[_Frame, np.ndarray]:
        nonlocal cached
        if cached is not None and not drifting:
            return cached[0], cached[1].copy()
        frame = _Frame(spec, center_at(z), grid, grid)
        roll = _box_average(table_u, table_f, frame.u, frame.h)
        img = _compose_can(spec, frame, roll)
        cached = (frame, img)
        return frame, img.copy()

    volume = np.empty((nz, size, size), dtype=np.float32)
    art_cache: dict[str, Any] = {}
    truths: list[dict[str, Any]] = [_defect_truth_init(d) for d in defects]
    for z in range(nz):
        if z < spec.headspace_slices:
            frame = _Frame(spec, center_at(z), grid, grid)
            img = _headspace_slice(spec, frame, z)
        else:
            frame, img = base_slice(z)
            for defect, truth in zip(defects, truths, strict=True):
                _paint_defect(spec, stack, frame, img, z, defect, truth, table_u, table_f)
            if spec.roll_end_um is not None:
                img = _roll_end_slice(spec, stack, n_windings, frame, img, z, table_u)
        volume[z] = _apply_artifacts(spec, frame, img, artifacts, rng, img_c, art_cache)

    truth = {
        "schema": "cellqc.phantom-truth/1",
        "seed": seed,
        "spec": spec.as_dict(),
        "artifacts": asdict(artifacts),
        "voxel_size_um": v,
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
            "roll_slices": list(range(spec.headspace_slices, nz)),
        },
        "stack": {
            "cu_center_um": ((stack.cu0 + stack.cu1) / 2).tolist(),
            "cathode_sheet_start_um": stack.sheet0.tolist(),
            "cathode_sheet_end_um": stack.sheet1.tolist(),
            "al_center_um": ((stack.al0 + stack.al1) / 2).tolist(),
            "cathode_sheet_thickness_um": (stack.sheet1 - stack.sheet0).tolist(),
        },
        "defects": [_defect_truth_finish(spec, d, t) for d, t in zip(defects, truths, strict=True)],
    }
    if spec.roll_end_um is not None:
        truth["roll_end"] = {
            "side": "top",
            "anode_end_um": spec.roll_end_um,
            "anode_end_z_px": spec.roll_end_um / v - 0.5,
            "cathode_end_z_px_mean": (spec.roll_end_um + spec.anode_overhang_um) / v - 0.5,
            "anode_overhang_um": spec.anode_overhang_um,
            "anode_overhang_amplitude_um": spec.anode_overhang_amplitude_um,
            "anode_overhang_angle_deg": spec.anode_overhang_angle_deg,
            "note": "slice z spans [z·v, (z+1)·v] µm; *_z_px are voxel-index coordinates (slice centres at z)",
        }
    if spec.can_dent_um:
        truth["can"]["dent_um"] = spec.can_dent_um
        truth["can"]["dent_angle_deg"] = spec.can_dent_angle_deg
        truth["can"]["dent_span_deg"] = spec.can_dent_span_deg
    volume_obj = Volume(
        array=volume,
        spacing_um=(v, v, v),
        cell_id=cell_id or f"SYN-{spec.kind}-{seed}",
        source="phantom",
        modality="synthetic",
        metadata={"format": "phantom"},
    )
    return SyntheticCell(volume=volume_obj, truth=truth)


def _can_radii(spec: CellSpec, frame: _Frame) -> tuple[Any, Any]:
    """Inner and outer radius of the can wall (µm), with the optional dent."""
    inner, outer = spec.can_inner_radius_um, float(spec.can_outer_radius_um)
    if not spec.can_dent_um:
        return inner, outer
    dent = spec.can_dent_um * _raised_cosine(_wrap_deg(frame.polar_deg - spec.can_dent_angle_deg), spec.can_dent_span_deg)
    return inner - dent, outer - dent


def _roll_end_slice(spec: CellSpec, stack: _Stack, n_windings: int, frame: _Frame, img: np.ndarray,
                    z: int, table_u: np.ndarray) -> np.ndarray:
    """Mix the slice from the full roll, the anode-only roll, the cathode-only roll and gas.

    The slice spans [z·v, (z+1)·v] µm along the axis; each sheet is present below its end,
    so the fraction of the slice it fills is exact (partial volume along z).
    """
    v = spec.voxel_size_um
    bottom = (z + 1) * v
    end_a = float(spec.roll_end_um)  # type: ignore[arg-type]
    f_a = float(np.clip((bottom - end_a) / v, 0.0, 1.0))
    overhang: Any = spec.anode_overhang_um
    if spec.anode_overhang_amplitude_um:
        overhang = overhang + spec.anode_overhang_amplitude_um * np.cos(
            np.radians(frame.polar_deg - spec.anode_overhang_angle_deg))
    f_c = np.clip((bottom - (end_a + overhang)) / v, 0.0, 1.0)
    if f_a >= 1.0 and np.all(f_c >= 1.0):
        return img
    lo, hi = table_u[0], table_u[-1]

    def render(replace: dict[str, str]) -> np.ndarray:
        u_tab, f_tab = _stack_profile(stack, n_windings, lo, hi, replace)
        return _compose_can(spec, frame, _box_average(u_tab, f_tab, frame.u, frame.h))

    both = np.minimum(f_a, f_c)
    out = both * img
    if np.any(f_a - both > 0):
        out = out + (f_a - both) * render({"cathode": "electrolyte", "al": "electrolyte"})
    if np.any(f_c - both > 0):
        out = out + (f_c - both) * render({"anode": "gas", "cu": "gas", "separator": "gas", "electrolyte": "gas"})
    rest = 1.0 - np.maximum(f_a, f_c)
    if np.any(rest > 0):
        out = out + rest * _compose_can(spec, frame, np.full(frame.r_phys.shape, MU["gas"]))
    return np.asarray(out, dtype=np.float32)


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
                  defect: Defect, truth: dict[str, Any], table_u: np.ndarray, table_f: np.ndarray) -> None:
    v = spec.voxel_size_um
    pitch = stack.pitch
    center = frame_full.center
    dz_um = (z - defect.z_center) * v
    if isinstance(defect, ForeignParticle):
        radius = defect.diameter_um / 2
        if abs(dz_um) >= radius + v / 2:
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
            rc2 = (radius**2 - (dz_um + oz * v) ** 2) / v**2
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
        out["volume_mm3"] = sum(area.values()) * v * 1e-9
        out["rendered_volume_mm3"] = t["occupancy_voxels"] * v**3 * 1e-9
        out["thickness_um"] = defect.thickness_um
    elif isinstance(defect, CollectorDeflection):
        # The displacement peaks at the defect's angle and height; report the peak reached in
        # the rendered slices (the centre slice may fall between slices).
        zs = np.array(out.get("slices", [defect.z_center]), dtype=float)
        wz = _raised_cosine((zs - defect.z_center) * v, defect.height_span_um)
        out["amplitude_um"] = float(defect.amplitude_um * (wz.max() if wz.size else 0.0))
    elif isinstance(defect, CoatingPatch):
        n_slices = len(out.get("slices", []))
        out["area_mm2"] = defect.arc_length_um * n_slices * v * 1e-6
        out["sheet_change"] = defect.sheet_change
    elif isinstance(defect, ForeignParticle):
        out["diameter_um"] = defect.diameter_um
        out["rendered_volume_mm3"] = t["occupancy_voxels"] * v**3 * 1e-9
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
