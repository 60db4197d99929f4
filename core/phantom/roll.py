"""The jelly roll in one slice plane: the exact partial-volume spiral and its anatomy.

The roll is an Archimedean spiral: a point at elliptical radius ``r`` and spiral angle ``psi``
lies at the *winding coordinate* ``u = (r - r0) / pitch - psi / 2π``; ``floor(u)`` is the
winding slot (counted along a ray from the mandrel outwards) and ``frac(u) * pitch`` the depth
in that slot's layer stack. A voxel's attenuation is the exact average of the piecewise-
constant stack over its radial footprint, from the cumulative integral of the stack profile
(two table look-ups per voxel).

The anatomy (:mod:`core.phantom.anatomy`) is painted as overlap corrections where it is, like
the defects: a stretch of a slot where layers are missing adds ``(fill - mu_layer) ·
overlap(footprint, layer)`` for each missing layer (exact along the radius; along the strip
the coverage ramps linearly over one voxel at a layer's end); a tab replaces what lies in its
cross-section; the innermost turns' wobble re-renders the slots near the mandrel, each shifted
by its own displacement, with the gaps it opens filled. Everything is linear in the
materials' attenuations, which :mod:`core.phantom.labels` relies on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.phantom.anatomy import (
    LAYER_MATERIAL,
    StripPlan,
    TabPlan,
    layer_bounds,
    present_at,
    wobble_um,
)
from core.phantom.spec import MATERIAL_MU, Anatomy, CellSpec

MU = MATERIAL_MU
_PROFILE_STEP_UM = 0.1  # resolution of the tabulated stack profile
SHEET_OF = {"anode": "anode", "cu": "anode", "cathode": "cathode", "al": "cathode", "separator": "separator"}
FULL = frozenset({"separator", "anode", "cathode"})
NONE: frozenset[str] = frozenset()


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


def _ramp(d_um: np.ndarray, v: float) -> np.ndarray:
    """Coverage of a voxel by a half-plane whose edge is ``d_um`` behind the voxel centre."""
    return np.clip(d_um / v + 0.5, 0.0, 1.0)


class RollImages:
    """In-plane images of the roll about one slice frame, one per *state* (the set of sheets
    — separator, anode, cathode — present at a height), with the anatomy painted in; cached.

    Where the anode is present the space left by missing layers is electrolyte, elsewhere
    (beyond the anode's edge at the roll's ends) gas.
    """

    def __init__(self, spec: CellSpec, stack: _Stack, plan: StripPlan | None, frame: _Frame,
                 u_range: tuple[float, float]):
        self.spec, self.stack, self.plan, self.frame = spec, stack, plan, frame
        self.u_range = u_range
        self.n = spec.windings
        self.pitch = stack.pitch
        self.v = spec.voxel_size_um
        self.anatomy = spec.anatomy if isinstance(spec.anatomy, Anatomy) else None
        self.cache: dict[frozenset[str], np.ndarray] = {}
        self.wobble = bool(self.anatomy and self.anatomy.wobble_um > 0 and plan is not None)
        self.k_wobble = int(math.ceil(self.anatomy.wobble_fade_turns)) if self.wobble else 0  # type: ignore[union-attr]
        self.max_shift = (self.anatomy.wobble_um / self.pitch) if self.wobble else 0.0  # type: ignore[union-attr]
        if plan is not None:
            self.bounds = [layer_bounds(stack, k) for k in range(self.n)]
            self._index_slots()

    # ------------------------------------------------------------------ pixel bookkeeping

    def _index_slots(self) -> None:
        """Group the pixels by the winding slot of their centre (a stable radix sort)."""
        f = self.frame
        self.u_flat = np.ascontiguousarray(f.u).ravel()
        self.h_flat = np.ascontiguousarray(np.broadcast_to(f.h, f.u.shape)).ravel()
        self.psi_flat = np.ascontiguousarray(f.psi).ravel()
        self.h_max = float(self.h_flat.max())
        lo, hi = -3, self.n + 3
        kk = np.clip(np.floor(self.u_flat), lo, hi).astype(np.int16)
        self.order = np.argsort(kk, kind="stable")
        self.starts = np.searchsorted(kk[self.order], np.arange(lo, hi + 2))
        self.k_lo = lo
        self._r_flat: np.ndarray | None = None

    @property
    def r_flat(self) -> np.ndarray:
        if self._r_flat is None:
            self._r_flat = np.ascontiguousarray(self.frame.r_phys).ravel()
        return self._r_flat

    def _candidates(self, u_lo: float, u_hi: float) -> np.ndarray:
        """Flat indices of pixels whose centre's slot could put their footprint in [u_lo, u_hi]."""
        k0 = int(math.floor(u_lo - self.h_max)) - self.k_lo
        k1 = int(math.floor(u_hi + self.h_max)) - self.k_lo
        k0 = min(max(k0, 0), len(self.starts) - 1)
        k1 = min(max(k1 + 1, 0), len(self.starts) - 1)
        return self.order[self.starts[k0]:self.starts[k1]]

    def shift(self, k: int, s: np.ndarray, psi: np.ndarray) -> np.ndarray | float:
        """Wobble displacement of slot ``k`` in winding units (≤ 0) at strip positions ``s``."""
        if not self.wobble or k >= self.k_wobble or k < 0:
            return 0.0
        return wobble_um(self.anatomy, s, psi) / self.pitch

    # ------------------------------------------------------------------ states

    def state(self, present: frozenset[str]) -> np.ndarray:
        if present not in self.cache:
            self.cache[present] = self._render(present)
        return self.cache[present]

    def fill_of(self, present: frozenset[str]) -> str:
        return "electrolyte" if "anode" in present else "gas"

    def _render(self, present: frozenset[str]) -> np.ndarray:
        fill = self.fill_of(present)
        if not present:
            return np.full(self.frame.u.shape, MU["gas"], dtype=np.float64)
        replace = {m: fill for m, sheet in SHEET_OF.items() if sheet not in present}
        replace["electrolyte"] = fill
        table_u, table_f = _stack_profile(self.stack, self.n, *self.u_range, replace=replace)
        img = _box_average(table_u, table_f, self.frame.u, self.frame.h)
        if self.plan is None:
            return img
        flat = img.reshape(-1)
        if self.wobble:
            self._wobble(flat, table_u, table_f, MU[fill])
        self._segments(flat, present, MU[fill])
        for tab in self.plan.tabs:
            self.paint_tab(flat, tab, present, fill)
        return img

    def _wobble(self, flat: np.ndarray, table_u: np.ndarray, table_f: np.ndarray, fill_mu: float) -> None:
        """Re-render the slots near the mandrel, each moved by its wobble displacement."""
        kw = self.k_wobble
        idx = self._candidates(-self.max_shift - 1.0, kw + 1.0)
        u, h, psi = self.u_flat[idx], self.h_flat[idx], self.psi_flat[idx]
        a, b = u - h / 2, u + h / 2
        sel = (a < kw) & (b > -self.max_shift - 1e-9)
        idx, u, h, psi, a, b = idx[sel], u[sel], h[sel], psi[sel], a[sel], b[sel]
        frac = psi / (2 * np.pi)
        shifts = [np.asarray(self.shift(k, k + frac, psi), dtype=float) * np.ones_like(u) for k in range(kw)]
        shifts.append(np.zeros_like(u))
        total = MU["gas"] * np.clip(np.minimum(b, shifts[0]) - a, 0.0, None)
        for k in range(kw):
            d = shifts[k]
            lo = np.clip(a - d, k, k + 1)
            hi = np.clip(b - d, k, k + 1)
            total += _interp_uniform(hi, table_u, table_f) - _interp_uniform(lo, table_u, table_f)
            g0, g1 = k + 1 + d, k + 1 + shifts[k + 1]  # the gap the wobble opens
            total += fill_mu * np.clip(np.minimum(b, g1) - np.maximum(a, g0), 0.0, None)
        tail_lo = np.maximum(a, kw)
        tail_hi = np.maximum(b, kw)
        total += _interp_uniform(tail_hi, table_u, table_f) - _interp_uniform(tail_lo, table_u, table_f)
        flat[idx] = total / h

    def _pieces(self, s0: float, s1: float, ramp0: bool, ramp1: bool):
        """Split a strip stretch (grown by the ramp margins) into per-slot pieces:
        (slot, pixel indices, u - shift, h, s, r)."""
        r_min = max(self.spec.mandrel_radius_um * (1 - abs(self.spec.ovality)) - self.max_shift * self.pitch, 200.0)
        margin = self.v / (2 * np.pi * r_min)
        lo = s0 - (margin if ramp0 else 0.0)
        hi = s1 + (margin if ramp1 else 0.0)
        for k in range(max(int(math.floor(lo)), 0), int(math.floor(hi)) + 1):
            a, b = max(lo, k), min(hi, k + 1)
            if b <= a:
                continue
            shift_min = -self.max_shift if k < self.k_wobble else 0.0
            idx = self._candidates(k + shift_min, k + 1)
            if idx.size == 0:
                continue
            psi = self.psi_flat[idx]
            s = k + psi / (2 * np.pi)
            sel = (s >= a) & (s < b)
            idx, psi, s = idx[sel], psi[sel], s[sel]
            d = self.shift(k, s, psi)
            u = self.u_flat[idx] - d
            h = self.h_flat[idx]
            near = (u + h / 2 > k) & (u - h / 2 < k + 1)
            if not near.any():
                continue
            yield k, idx[near], u[near], h[near], s[near], psi[near]

    def _coverage(self, idx: np.ndarray, s: np.ndarray, s0: float, s1: float, ramp0: bool, ramp1: bool) -> np.ndarray:
        c = np.ones(s.shape)
        if ramp0 or ramp1:
            per_turn = 2 * np.pi * self.r_flat[idx]
            if ramp0:
                c *= _ramp((s - s0) * per_turn, self.v)
            if ramp1:
                c *= _ramp((s1 - s) * per_turn, self.v)
        return c

    def _segments(self, flat: np.ndarray, present: frozenset[str], fill_mu: float) -> None:
        plan = self.plan
        assert plan is not None
        top = plan.n_slots + 1.0
        for seg in plan.segments:
            layers = [L for L in seg.absent if SHEET_OF[LAYER_MATERIAL[L]] in present]
            tape = seg.tape and "separator" in present
            if not layers and not tape:
                continue
            ramp0, ramp1 = seg.s0 > 1e-12, seg.s1 < top - 1e-12
            for k, idx, u, h, s, _ in self._pieces(seg.s0, seg.s1, ramp0, ramp1):
                delta = np.zeros(u.shape)
                if k < self.n:
                    for layer in layers:
                        a, b = self.bounds[k][layer]
                        delta += (fill_mu - MU[LAYER_MATERIAL[layer]]) * _overlap(
                            u, h, k + a / self.pitch, k + b / self.pitch)
                if tape:
                    delta += (MU["polymer"] - fill_mu) * _overlap(u, h, k, k + plan.tape_um / self.pitch)
                flat[idx] += self._coverage(idx, s, seg.s0, seg.s1, ramp0, ramp1) * delta

    # ------------------------------------------------------------------ tabs

    def tab_depth(self, tab: TabPlan, k: int) -> tuple[float, float]:
        """Radial interval (µm from the start of slot ``k``) of the tab."""
        kk = min(max(k, 0), self.n - 1)
        st = self.stack
        ref = {"al_center": 0.5 * (st.al0[kk] + st.al1[kk]), "cu_inner": st.cu0[kk], "cu_outer": st.cu1[kk]}[tab.depth_ref]
        return float(ref) + tab.depth_lo, float(ref) + tab.depth_hi

    def paint_tab(self, flat: np.ndarray, tab: TabPlan, present: frozenset[str], fill: str,
                  over_gas: bool = False) -> None:
        """Put the tab's strip in place of what lies in its cross-section (``over_gas``: of gas,
        for its straight part beyond the roll's end).

        The strip lies on the layer of slot ``k`` at strip positions [s0, s1]; its radial
        interval may reach into the slots inside and outside it along the ray, where the
        pixels are those of slot ``k + m`` at strip positions ``s + m``.
        """
        plan = self.plan
        assert plan is not None
        mu_tab = MU[tab.material]
        fill_mu = MU[fill]
        for m in (-1, 0, 1):
            for j, idx, u, h, s, _ in self._pieces(tab.s0 + m, tab.s1 + m, True, True):
                lo_um, hi_um = self.tab_depth(tab, j - m)
                a_um, b_um = max(lo_um - m * self.pitch, 0.0), min(hi_um - m * self.pitch, self.pitch)
                if b_um <= a_um:
                    continue
                c = self._coverage(idx, s, tab.s0 + m, tab.s1 + m, True, True)
                if over_gas or j >= self.n:
                    base = MU["gas"] if over_gas else fill_mu
                    delta = (mu_tab - base) * _overlap(u, h, j + a_um / self.pitch, j + b_um / self.pitch)
                else:
                    delta = np.zeros(u.shape)
                    for layer in LAYER_MATERIAL:
                        la, lb = self.bounds[j][layer]
                        ia, ib = max(la, a_um), min(lb, b_um)
                        if ib <= ia:
                            continue
                        material = LAYER_MATERIAL[layer]
                        if SHEET_OF[material] in present:
                            content = np.where(present_at(plan, layer, s), MU[material], fill_mu)
                        else:
                            content = fill_mu
                        delta += (mu_tab - content) * _overlap(u, h, j + ia / self.pitch, j + ib / self.pitch)
                flat[idx] += c * delta

    def tab_over_gas(self, tab: TabPlan) -> np.ndarray:
        """The tab's cross-section over gas, as a correction image (its straight part beyond the
        roll's end)."""
        key = frozenset({f"tab:{tab.polarity}"})
        if key not in self.cache:
            img = np.zeros(self.frame.u.shape)
            self.paint_tab(img.reshape(-1), tab, NONE, "gas", over_gas=True)
            self.cache[key] = img
        return self.cache[key]
