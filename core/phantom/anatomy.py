"""Derived geometry of a wound cell's anatomy: where each layer of the strip starts and ends,
its single-sided stretches, the tab window and tabs, the innermost turn's wobble, and the
layout of the cell along its axis (cap, crimp, groove, roll ends, can bottom).

Strip positions ``s`` are in turns along the wound strip: the layer of winding slot ``k``
(counted along a ray from the mandrel) at spiral angle ``psi`` lies at ``s = k + psi / 2π``.
Axial positions are in µm along the cell axis from the top face of the positive terminal
(``cell z``, growing downwards, as slice indices do: slice 0 is the topmost).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.phantom.spec import Anatomy, CellSpec

# Layers of one winding slot, inside out, and their materials.
LAYERS = ("anode_inner", "cu", "anode_outer", "separator_a", "cathode_inner", "al", "cathode_outer",
          "separator_b")
LAYER_MATERIAL = {"anode_inner": "anode", "cu": "cu", "anode_outer": "anode", "separator_a": "separator",
                  "cathode_inner": "cathode", "al": "al", "cathode_outer": "cathode", "separator_b": "separator"}
ANODE_LAYERS = ("anode_inner", "cu", "anode_outer")
CATHODE_LAYERS = ("cathode_inner", "al", "cathode_outer")
SEPARATOR_LAYERS = ("separator_a", "separator_b")
TOP_MARGIN_UM = 300.0  # air above the terminal in top and full slabs
BOTTOM_MARGIN_UM = 300.0  # air below the can in bottom and full slabs
ROLL_SHOWN_UM = 1500.0  # roll interior shown beyond the deepest cathode edge by top/bottom slabs


def layer_bounds(stack: Any, k: int) -> dict[str, tuple[float, float]]:
    """Depths (µm from the slot's start) of every layer of winding slot ``k`` of a stack."""
    cu0, cu1 = float(stack.cu0[k]), float(stack.cu1[k])
    anode_out = cu1 + cu0
    return {
        "anode_inner": (0.0, cu0), "cu": (cu0, cu1), "anode_outer": (cu1, anode_out),
        "separator_a": (anode_out, float(stack.sheet0[k])),
        "cathode_inner": (float(stack.sheet0[k]), float(stack.al0[k])),
        "al": (float(stack.al0[k]), float(stack.al1[k])),
        "cathode_outer": (float(stack.al1[k]), float(stack.sheet1[k])),
        "separator_b": (float(stack.sheet1[k]), float(stack.pitch)),
    }


# --------------------------------------------------------------------------- along the strip


def spiral_psi(spec: CellSpec, polar_deg: Any) -> np.ndarray:
    """Spiral angle psi in [0, 2π) of rays at image polar angles ``polar_deg``."""
    e = spec.ovality
    alpha = math.radians(spec.ovality_angle_deg)
    beta = np.radians(np.asarray(polar_deg, dtype=float)) - alpha
    theta = np.arctan2(np.sin(beta) / (1 - e), np.cos(beta) / (1 + e))
    return (theta + alpha - math.radians(spec.spiral_start_deg)) % (2 * np.pi)


def psi_to_polar_deg(spec: CellSpec, psi: Any) -> np.ndarray:
    """Image polar angle (degrees in [0, 360)) of the ray with spiral angle ``psi``."""
    e = spec.ovality
    alpha = math.radians(spec.ovality_angle_deg)
    theta = np.asarray(psi, dtype=float) + math.radians(spec.spiral_start_deg) - alpha
    beta = np.arctan2((1 - e) * np.sin(theta), (1 + e) * np.cos(theta))
    return np.degrees(beta + alpha) % 360.0


@functools.lru_cache(maxsize=64)
def _wobble_range(harmonics: tuple[tuple[int, float, float], ...]) -> tuple[float, float]:
    grid = np.linspace(0.0, 2 * np.pi, 4096, endpoint=False)
    ref = _wobble_raw(harmonics, grid)
    return float(ref.min()), float(ref.max())


def _wobble_raw(harmonics: tuple[tuple[int, float, float], ...], psi: np.ndarray) -> np.ndarray:
    out = np.zeros(np.shape(psi))
    for n, a, ph in harmonics:
        out += a * np.cos(n * psi + math.radians(ph))
    return out


def wobble_shape(anatomy: Anatomy, psi: Any) -> np.ndarray:
    """The innermost turn's wobble around the turn, ``g(psi)`` in [0, 1]."""
    psi = np.asarray(psi, dtype=float)
    harmonics = tuple(tuple(h) for h in anatomy.wobble_harmonics)
    if not harmonics:
        return np.ones_like(psi)
    lo, hi = _wobble_range(harmonics)  # type: ignore[arg-type]
    if hi - lo < 1e-12:
        return np.ones_like(psi)
    return np.clip((_wobble_raw(harmonics, psi) - lo) / (hi - lo), 0.0, 1.0)  # type: ignore[arg-type]


def wobble_fade(anatomy: Anatomy, s: Any) -> np.ndarray:
    """Fade of the wobble along the strip: 1 at s = 0, raised cosine to 0 at the fade turn."""
    s = np.asarray(s, dtype=float)
    f = anatomy.wobble_fade_turns
    return np.where(s < f, 0.5 * (1 + np.cos(np.pi * np.clip(s, 0.0, f) / f)), 0.0)


def wobble_um(anatomy: Anatomy | None, s: Any, psi: Any) -> np.ndarray:
    """Radial displacement (µm, ≤ 0: inwards, along the elliptical radius) of the layer at
    strip position ``s`` and spiral angle ``psi``."""
    if anatomy is None or anatomy.wobble_um == 0:
        return np.zeros(np.broadcast(np.asarray(s), np.asarray(psi)).shape)
    return -anatomy.wobble_um * wobble_shape(anatomy, psi) * wobble_fade(anatomy, s)


def layer_point_um(spec: CellSpec, s: Any, depth_um: Any) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) in µm from the axis of the layer at depth ``depth_um`` of its slot at strip
    position ``s`` (wobble included)."""
    s = np.asarray(s, dtype=float)
    k = np.floor(s)
    psi = (s - k) * 2 * np.pi
    anatomy = spec.anatomy if isinstance(spec.anatomy, Anatomy) else None
    r_eff = spec.mandrel_radius_um + spec.pitch_um * s + np.asarray(depth_um) + wobble_um(anatomy, s, psi)
    e = spec.ovality
    alpha = math.radians(spec.ovality_angle_deg)
    theta = psi + math.radians(spec.spiral_start_deg) - alpha
    ex, ey = r_eff * (1 + e) * np.cos(theta), r_eff * (1 - e) * np.sin(theta)
    dx = ex * math.cos(alpha) - ey * math.sin(alpha)
    dy = ex * math.sin(alpha) + ey * math.cos(alpha)
    return dy, dx


def arc_length_mm(spec: CellSpec, s0: float, s1: float, depth_um: float) -> float:
    """Length (mm) of the layer at ``depth_um`` in its slot between strip positions s0 < s1,
    measured along the layer."""
    if s1 <= s0:
        return 0.0
    n = max(64, int(math.ceil((s1 - s0) * 4096)))
    s = np.linspace(s0, s1, n + 1)
    dy, dx = layer_point_um(spec, s, depth_um)
    return float(np.hypot(np.diff(dy), np.diff(dx)).sum() / 1000.0)


def strip_advance(spec: CellSpec, s0: float, length_mm: float, depth_um: float) -> float:
    """Strip position reached from ``s0`` after ``length_mm`` along the layer (negative:
    backwards)."""
    sign = 1.0 if length_mm >= 0 else -1.0
    target = abs(length_mm) * 1000.0
    r = spec.mandrel_radius_um + spec.pitch_um * max(s0, 0.0) + depth_um
    guess = target / (2 * math.pi * max(r * (1 - abs(spec.ovality)), 1.0))
    span = 1.5 * guess + 0.05
    s = np.linspace(s0, s0 + sign * span, max(256, int(span * 8192)) + 1)
    dy, dx = layer_point_um(spec, s, depth_um)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(dy), np.diff(dx)))])
    if cum[-1] < target:
        raise ValueError("strip_advance: length beyond the search span")
    return float(np.interp(target, cum, s))


def strip_to_polar(spec: CellSpec, s: float) -> tuple[int, float]:
    """(winding slot, image polar angle in degrees) of strip position ``s``."""
    k = math.floor(s)
    return int(k), float(psi_to_polar_deg(spec, (s - k) * 2 * np.pi))


# --------------------------------------------------------------------------- the strip plan


@dataclass
class TabPlan:
    """A tab strip lying on a layer of the roll over strip positions [s0, s1].

    ``depth_ref`` names the stack offset its radial interval is measured from
    (``al_center``, ``cu_inner``, ``cu_outer``) and ``depth_lo``/``depth_hi`` the interval
    relative to it (µm)."""

    polarity: str
    material: str
    electrode: str
    s0: float
    s1: float
    width_mm: float
    thickness_um: float
    depth_ref: str
    depth_lo: float
    depth_hi: float
    exit: str  # "top" or "bottom"


@dataclass
class Segment:
    """A stretch [s0, s1) of the strip where the layers in ``absent`` are missing (and the end
    tape is present if ``tape``); the rest of the strip is the full stack."""

    s0: float
    s1: float
    absent: frozenset[str]
    tape: bool = False


@dataclass
class StripPlan:
    n_slots: int
    presence: dict[str, list[tuple[float, float]]]
    positions: dict[str, float]
    window: tuple[float, float] | None
    single_sided: list[dict[str, Any]]
    tabs: list[TabPlan]
    tape: tuple[float, float] | None
    tape_um: float
    segments: list[Segment] = field(default_factory=list)


def _subtract(intervals: list[tuple[float, float]], cut: tuple[float, float]) -> list[tuple[float, float]]:
    out = []
    for a, b in intervals:
        if cut[1] <= a or cut[0] >= b:
            out.append((a, b))
            continue
        if cut[0] > a:
            out.append((a, cut[0]))
        if cut[1] < b:
            out.append((cut[1], b))
    return out


def _present(intervals: list[tuple[float, float]], s: float) -> bool:
    return any(a <= s < b for a, b in intervals)


def strip_plan(spec: CellSpec) -> StripPlan:
    """Where every layer of the strip is present, from the spec's anatomy."""
    an = spec.anatomy
    if not isinstance(an, Anatomy):
        raise ValueError("strip_plan needs a spec with anatomy")
    n = spec.windings
    sep1 = n - an.outer_slack_turns
    an1 = sep1 - an.separator_outer_turns
    ca1 = an1 - an.cathode_end_lead_turns
    an0 = an.separator_inner_turns
    ca0 = an0 + an.cathode_start_lag_turns
    if (not 0 < sep1 <= n or ca1 - ca0 < an.cathode_outer_single_turns + 0.2
            or an1 - an0 < an.anode_inner_single_turns + 0.2):
        raise ValueError(
            f"the anatomy's electrode ends do not fit {n} windings (cathode from strip turn {ca0:.2f} to "
            f"{ca1:.2f}): use a larger can, a smaller mandrel or shorter separator-only turns")
    ai1 = an0 + an.anode_inner_single_turns
    co0 = ca1 - an.cathode_outer_single_turns
    presence = {
        "separator_a": [(0.0, sep1)], "separator_b": [(0.0, sep1)],
        "cu": [(an0, an1)],
        "anode_inner": [(ai1, an1)],
        "anode_outer": [(an0, ca1 if an.anode_outer_single_past_cathode else an1)],
        "al": [(ca0, ca1)],
        "cathode_inner": [(ca0, ca1)],
        "cathode_outer": [(ca0, co0)],
    }
    positions = {"separator_start": 0.0, "anode_start": an0, "cathode_start": ca0, "cathode_end": ca1,
                 "anode_end": an1, "separator_end": sep1}
    single = [{"electrode": "anode", "coating": "inner", "s0": an0, "s1": ai1},
              {"electrode": "cathode", "coating": "outer", "s0": co0, "s1": ca1}]
    if an.anode_outer_single_past_cathode and an1 > ca1:
        single.append({"electrode": "anode", "coating": "outer", "s0": ca1, "s1": an1})
    single = [d for d in single if d["s1"] > d["s0"]]

    mid_cathode = 0.5 * (spec.cathode_coating_um * 2 + spec.al_foil_um)  # depth of the Al below the sheet
    al_depth = 2 * spec.anode_coating_um + spec.cu_foil_um + spec.separator_um + mid_cathode
    cu_depth = spec.anode_coating_um + spec.cu_foil_um / 2
    window = None
    tabs: list[TabPlan] = []
    if an.tab_window_mm > 0:
        centre = ca0 + an.tab_window_position * (ca1 - ca0)
        w0 = strip_advance(spec, centre, -an.tab_window_mm / 2, al_depth)
        w1 = strip_advance(spec, centre, an.tab_window_mm / 2, al_depth)
        if w0 < ca0 + 0.05 or w1 > co0 - 0.05:
            raise ValueError("the tab window overlaps the cathode's end or its single-sided stretch; move it "
                             "(tab_window_position) or shorten it")
        window = (w0, w1)
        presence["cathode_inner"] = _subtract(presence["cathode_inner"], window)
        presence["cathode_outer"] = _subtract(presence["cathode_outer"], window)
        half = an.positive_tab_width_mm / 2
        if half * 2 > an.tab_window_mm - 2 * abs(an.positive_tab_offset_mm) + 1e-9:
            raise ValueError("the positive tab is wider than its window")
        t_c = strip_advance(spec, centre, an.positive_tab_offset_mm, al_depth) if an.positive_tab_offset_mm else centre
        tabs.append(TabPlan("positive", "tab_al", "cathode", strip_advance(spec, t_c, -half, al_depth),
                            strip_advance(spec, t_c, half, al_depth), an.positive_tab_width_mm,
                            an.positive_tab_um, "al_center", -an.positive_tab_um / 2, an.positive_tab_um / 2,
                            "top"))
    if an.negative_tab != "none":
        width = an.negative_tab_width_mm
        if an.negative_tab == "inner":
            t0 = strip_advance(spec, an0, an.negative_tab_from_end_mm, cu_depth)
            t1 = strip_advance(spec, t0, width, cu_depth)
            if t1 > ai1:
                raise ValueError("the inner negative tab does not fit the anode's single-sided start")
            tabs.append(TabPlan("negative", "tab_ni", "anode", t0, t1, width, an.negative_tab_um, "cu_inner",
                                -an.negative_tab_um, 0.0, "bottom"))
        else:
            t1 = strip_advance(spec, an1, -an.negative_tab_from_end_mm, cu_depth)
            t0 = strip_advance(spec, t1, -width, cu_depth)
            if t0 < ca1:
                raise ValueError("the outer negative tab does not fit the anode's stretch beyond the cathode")
            tabs.append(TabPlan("negative", "tab_ni", "anode", t0, t1, width, an.negative_tab_um, "cu_outer",
                                0.0, an.negative_tab_um, "bottom"))
    tape = None
    if an.end_tape_turns > 0 and an.end_tape_um > 0:
        tape = (sep1 + 1.0 - an.end_tape_turns, sep1 + 1.0)
    plan = StripPlan(n_slots=n, presence=presence, positions=positions, window=window, single_sided=single,
                     tabs=tabs, tape=tape, tape_um=an.end_tape_um)
    plan.segments = _segments(plan)
    return plan


def _segments(plan: StripPlan) -> list[Segment]:
    """Split the strip at every layer end into stretches of one state (merged when equal)."""
    points = {0.0, float(plan.n_slots + 1)}
    for intervals in plan.presence.values():
        for a, b in intervals:
            points.update((a, b))
    if plan.tape:
        points.update(plan.tape)
    edges = sorted(p for p in points if 0.0 <= p <= plan.n_slots + 1)
    out: list[Segment] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b - a < 1e-12:
            continue
        mid = 0.5 * (a + b)
        absent = frozenset(layer for layer in LAYERS if not _present(plan.presence[layer], mid))
        tape = bool(plan.tape and plan.tape[0] <= mid < plan.tape[1])
        if out and out[-1].absent == absent and out[-1].tape == tape and abs(out[-1].s1 - a) < 1e-12:
            out[-1].s1 = b
        else:
            out.append(Segment(a, b, absent, tape))
    return out


def present_at(plan: StripPlan, layer: str, s: Any) -> np.ndarray:
    """Whether ``layer`` is present at strip positions ``s``."""
    s = np.asarray(s, dtype=float)
    if layer == "tape":
        if not plan.tape:
            return np.zeros(s.shape, bool)
        return (s >= plan.tape[0]) & (s < plan.tape[1])
    out = np.zeros(s.shape, bool)
    for a, b in plan.presence[layer]:
        out |= (s >= a) & (s < b)
    return out


# --------------------------------------------------------------------------- along the axis


def overhang_top(spec: CellSpec) -> tuple[float, float, float]:
    """(mean, amplitude, angle) of the top end's anode overhang, µm and degrees."""
    an = spec.anatomy if isinstance(spec.anatomy, Anatomy) else None
    mean = an.overhang_top_um if an and an.overhang_top_um is not None else spec.anode_overhang_um
    amp = (an.overhang_top_amplitude_um if an and an.overhang_top_amplitude_um is not None
           else spec.anode_overhang_amplitude_um)
    ang = (an.overhang_top_angle_deg if an and an.overhang_top_angle_deg is not None
           else spec.anode_overhang_angle_deg)
    return float(mean), float(amp), float(ang)


def overhang_um(params: tuple[float, float, float], polar_deg: Any) -> np.ndarray:
    mean, amp, ang = params
    return mean + amp * np.cos(np.radians(np.asarray(polar_deg, dtype=float) - ang))


@dataclass
class RollEnd:
    """One end of the roll: cell-z of the separators' and anode's edges and the cathode's
    overhang (the cathode's edge lies ``overhang(angle)`` further into the roll)."""

    side: str  # "top" or "bottom"
    separator_z: float
    anode_z: float
    overhang: tuple[float, float, float]

    def cathode_z(self, polar_deg: Any) -> np.ndarray:
        sign = 1.0 if self.side == "top" else -1.0
        return self.anode_z + sign * overhang_um(self.overhang, polar_deg)


@dataclass
class CellLayout:
    """Axial layout of the cell (cell z, µm from the terminal's top face, downwards) and the
    slab the volume shows (``z0_um``: cell z of slice 0's top face; ``dz``: slice spacing)."""

    height: float
    z0_um: float
    dz: float
    top: RollEnd | None
    bottom: RollEnd | None
    parts: dict[str, Any]

    def z_px(self, z_cell: float) -> float:
        """Voxel-index coordinate of a cell z (slice i is centred at index i)."""
        return (z_cell - self.z0_um) / self.dz - 0.5


def axial_parts(spec: CellSpec) -> dict[str, Any]:
    """Axial positions (cell z, µm) of the cap, crimp, groove, roll ends and can bottom."""
    an = spec.anatomy
    assert isinstance(an, Anatomy)
    w = float(spec.can_wall_um)  # type: ignore[arg-type]
    height = float(spec.height_um)  # type: ignore[arg-type]
    cap = an.cap_um
    flange_top = an.flange_drop_um
    lip_bottom = flange_top - an.gasket_um
    lip_top = lip_bottom - w
    gasket_bottom = flange_top + cap + 300.0
    vent_top = flange_top + cap + 200.0
    groove_top = gasket_bottom
    groove_bottom = groove_top + an.groove_height_um
    separator_top = groove_bottom + an.groove_gap_um
    bottom_inner = height - an.can_bottom_um
    separator_bottom = bottom_inner - an.bottom_gap_um
    if lip_top < 0 or separator_bottom - separator_top < 10000.0:
        raise ValueError("the cell's axial anatomy does not fit its height")
    return {
        "terminal": (0.0, cap), "flange": (flange_top, flange_top + cap),
        "crimp": (lip_top, lip_bottom), "vent_plate": (vent_top, vent_top + cap),
        "gasket": (lip_bottom, gasket_bottom), "groove": (groove_top, groove_bottom),
        "top_insulator": (groove_bottom + 0.25 * an.groove_gap_um,
                          groove_bottom + 0.25 * an.groove_gap_um + an.insulator_um) if an.insulator_um else None,
        "bottom_insulator": (bottom_inner - 0.25 * an.bottom_gap_um - an.insulator_um,
                             bottom_inner - 0.25 * an.bottom_gap_um) if an.insulator_um else None,
        "separator_top": separator_top, "separator_bottom": separator_bottom,
        "can_bottom": (bottom_inner, height), "height": height,
    }


def _roll_ends(spec: CellSpec, parts: dict[str, Any]) -> tuple[RollEnd, RollEnd]:
    an = spec.anatomy
    assert isinstance(an, Anatomy)
    top = RollEnd("top", parts["separator_top"], parts["separator_top"] + an.separator_beyond_anode_top_um,
                  overhang_top(spec))
    bottom = RollEnd("bottom", parts["separator_bottom"],
                     parts["separator_bottom"] - an.separator_beyond_anode_bottom_um,
                     (an.overhang_bottom_um, an.overhang_bottom_amplitude_um, an.overhang_bottom_angle_deg))
    return top, bottom


def _extreme_cathode(end: RollEnd) -> float:
    """The cathode edge deepest into the roll."""
    mean, amp, _ = end.overhang
    sign = 1.0 if end.side == "top" else -1.0
    return end.anode_z + sign * (mean + abs(amp))


def region_slices(spec: CellSpec) -> int:
    """Number of slices that show the spec's region (top, bottom, full)."""
    parts = axial_parts(spec)
    top, bottom = _roll_ends(spec, parts)
    lo, hi = _region_range(spec, parts, top, bottom)
    return max(1, int(math.ceil((hi - lo) / float(spec.slice_spacing_um))))  # type: ignore[arg-type]


def _region_range(spec: CellSpec, parts: dict[str, Any], top: RollEnd, bottom: RollEnd) -> tuple[float, float]:
    height = parts["height"]
    if spec.region == "top":
        return -TOP_MARGIN_UM, _extreme_cathode(top) + ROLL_SHOWN_UM
    if spec.region == "bottom":
        return _extreme_cathode(bottom) - ROLL_SHOWN_UM, height + BOTTOM_MARGIN_UM
    return -TOP_MARGIN_UM, height + BOTTOM_MARGIN_UM


def cell_layout(spec: CellSpec) -> CellLayout:
    """The cell's axial layout and the slab of it that the volume shows."""
    dz = float(spec.slice_spacing_um)  # type: ignore[arg-type]
    n = int(spec.n_slices)  # type: ignore[arg-type]
    parts = axial_parts(spec)
    top, bottom = _roll_ends(spec, parts)
    if spec.region == "middle":
        mid = 0.5 * (parts["separator_top"] + parts["separator_bottom"])
        z0 = mid - n * dz / 2
    elif spec.region == "bottom":
        z0 = parts["height"] + BOTTOM_MARGIN_UM - n * dz
    else:
        z0 = -TOP_MARGIN_UM
    if spec.slab_top_um is not None:
        z0 = float(spec.slab_top_um)
    if spec.roll_end_um is not None:  # an explicit top end inside a middle slab
        anode = z0 + float(spec.roll_end_um)
        top = RollEnd("top", anode - spec.anatomy.separator_beyond_anode_top_um, anode,  # type: ignore[union-attr]
                      overhang_top(spec))
    return CellLayout(height=parts["height"], z0_um=z0, dz=dz, top=top, bottom=bottom, parts=parts)


# --------------------------------------------------------------------------- random anatomy


def random_anatomy(rng: np.random.Generator, kind: str = "18650", spec: CellSpec | None = None) -> Anatomy:
    """A realistic anatomy drawn at random (for validation runs that need variety).

    Ranges: separator-only turns 0.5–1.5 at each end, electrode stagger 0.1–0.5 turn,
    single-sided stretches 0.3–1 turn, tab window 6–20 mm with a 3–5 mm Al tab 100–135 µm
    thick, Ni tab 3–5 mm × 60–100 µm at the anode's inner or outer end, innermost-turn wobble
    40–150 µm fading by turn 1.5–3, overhangs 0.2–1.5 mm varying smoothly with angle,
    separator 0.2–1 mm beyond the anode, groove 0.4–1.2 mm deep and 1–2 mm high 0.3–3 mm above
    the roll. Draws that do not fit the cell (``spec``, else a default cell of ``kind``) are
    drawn again. The same generator state gives the same anatomy.
    """
    from dataclasses import replace

    base = spec if spec is not None else CellSpec(kind=kind)  # type: ignore[arg-type]
    for _ in range(200):
        anatomy = _draw_anatomy(rng, base.kind)
        try:
            trial = replace(base, anatomy=anatomy, n_slices=base.n_slices)
            strip_plan(trial)
            axial_parts(trial)
        except ValueError:
            continue
        return anatomy
    raise ValueError("no random anatomy fits this cell (too few windings?)")


def _draw_anatomy(rng: np.random.Generator, kind: str) -> Anatomy:
    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    wide = kind == "21700"

    def overhang() -> tuple[float, float, float]:
        lo, hi = sorted((u(200.0, 1500.0), u(200.0, 1500.0)))
        if hi - lo < 50.0:
            hi = min(lo + 50.0, 1500.0)
        return (lo + hi) / 2, (hi - lo) / 2, u(0.0, 360.0)

    top, bottom = overhang(), overhang()
    window = u(6.0, 20.0)
    tab_w = u(3.0, min(5.0, window - 1.0))
    orders = sorted(int(o) for o in rng.choice(np.arange(2, 8), 3, replace=False))
    harmonics = tuple((o, u(0.3, 1.0), u(0.0, 360.0)) for o in orders)
    cap = u(250.0, 400.0)
    flange = u(1100.0, 1600.0)
    return Anatomy(
        separator_inner_turns=u(0.5, 1.5),
        cathode_start_lag_turns=u(0.1, 0.5),
        cathode_end_lead_turns=u(0.1, 0.5),
        separator_outer_turns=u(0.5, 1.5),
        outer_slack_turns=u(0.05, 0.95),
        end_tape_turns=u(0.15, 0.6) if rng.uniform() < 0.7 else 0.0,
        end_tape_um=u(25.0, 60.0),
        anode_inner_single_turns=u(0.6, 1.0),
        cathode_outer_single_turns=u(0.3, 1.0),
        anode_outer_single_past_cathode=True,
        tab_window_mm=window,
        tab_window_position=u(0.3, 0.7),
        positive_tab_width_mm=tab_w,
        positive_tab_um=u(100.0, 135.0),
        positive_tab_offset_mm=u(-1.0, 1.0) * max(0.0, (window - tab_w) / 2 - 0.5),
        negative_tab="inner" if rng.uniform() < 0.5 else "outer",
        negative_tab_width_mm=u(3.0, 5.0),
        negative_tab_um=u(60.0, 100.0),
        negative_tab_from_end_mm=u(0.3, 1.0),
        tab_rise_um=u(400.0, 1200.0),
        wobble_um=u(40.0, 150.0),
        wobble_fade_turns=u(1.5, 3.0),
        wobble_harmonics=harmonics,
        overhang_top_um=top[0], overhang_top_amplitude_um=top[1], overhang_top_angle_deg=top[2],
        overhang_bottom_um=bottom[0], overhang_bottom_amplitude_um=bottom[1], overhang_bottom_angle_deg=bottom[2],
        separator_beyond_anode_top_um=u(200.0, 1000.0),
        separator_beyond_anode_bottom_um=u(200.0, 1000.0),
        groove_depth_um=u(400.0, 1200.0),
        groove_height_um=u(1000.0, 2000.0),
        groove_gap_um=u(300.0, 3000.0),
        crimp_inward_um=u(1200.0, 2000.0) if wide else u(1000.0, 1700.0),
        cap_um=cap,
        flange_drop_um=flange,
        gasket_um=flange * u(0.45, 0.7),
        can_bottom_um=u(300.0, 500.0),
        bottom_gap_um=u(400.0, 1200.0),
        insulator_um=u(150.0, 300.0) if rng.uniform() < 0.7 else 0.0,
    )
