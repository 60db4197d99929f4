"""The parts of a cell around its roll, as bodies of revolution: the can with its crimped rim,
bead groove and bottom disc, the cap (terminal, flange, vent plate), the gasket and the
insulator discs; and the tabs' flat strips in the headspace.

A part is a *tube* (a thick polyline in the (r, z) half-plane: every point within
``thickness / 2`` of the centre line) or a *box* (r and z ranges). A slice's image of the parts
is exact along the radius (each pixel is the radial box average of a cumulative coverage
table, like the roll) and sampled along z (``n_sub`` planes per slice, the error at a face
crossing the slice at most ``dz / (2 n_sub)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.phantom.spec import Anatomy, CellSpec

Interval = tuple[float, float]
PRIORITY = ("steel", "al_part", "polymer")  # earlier materials hide later ones where they overlap
GRID_UM = 0.5  # radial step of the coverage tables


@dataclass
class Tube:
    points: np.ndarray  # (n, 2): r, z in µm (z = cell z, downwards)
    thickness: float
    material: str


@dataclass
class Box:
    r0: float
    r1: float
    z0: float
    z1: float
    material: str


def tube_intervals(tube: Tube, z: np.ndarray) -> list[list[Interval]]:
    """Per height ``z``: the r-intervals (merged) where the tube is, from its capsules."""
    p0, p1 = tube.points[:-1], tube.points[1:]
    half = tube.thickness / 2
    zz = np.asarray(z, float)[:, None]
    d = p1 - p0
    length = np.hypot(d[:, 0], d[:, 1])
    ok = length > 1e-9
    tr = np.where(ok, d[:, 0] / np.where(ok, length, 1), 1.0)
    tz = np.where(ok, d[:, 1] / np.where(ok, length, 1), 0.0)
    # Rectangle: 0 ≤ (x - p0)·t ≤ L and |(x - p0)·n| ≤ half with n = (-tz, tr); for fixed z both
    # are affine in r: a·r + b.
    lo = np.full((zz.shape[0], p0.shape[0]), np.inf)
    hi = np.full_like(lo, -np.inf)

    def affine(a: np.ndarray, b: np.ndarray, vmin: np.ndarray | float, vmax: np.ndarray | float):
        with np.errstate(divide="ignore", invalid="ignore"):
            r1 = (vmin - b) / a
            r2 = (vmax - b) / a
        lo_ = np.where(a > 0, r1, r2)
        hi_ = np.where(a > 0, r2, r1)
        flat = np.abs(a) < 1e-12
        inside = (b >= vmin) & (b <= vmax)
        lo_ = np.where(flat, np.where(inside, -np.inf, np.inf), lo_)
        hi_ = np.where(flat, np.where(inside, np.inf, -np.inf), hi_)
        return lo_, hi_

    b_s = (0.0 - p0[:, 0]) * tr + (zz - p0[:, 1]) * tz  # value at r = 0
    b_q = (0.0 - p0[:, 0]) * (-tz) + (zz - p0[:, 1]) * tr
    a_s = np.broadcast_to(tr, b_s.shape)
    a_q = np.broadcast_to(-tz, b_q.shape)
    l1, h1 = affine(a_s, b_s, 0.0, length)
    l2, h2 = affine(a_q, b_q, -half, half)
    rl, rh = np.maximum(l1, l2), np.minimum(h1, h2)
    good = ok & (rl <= rh)
    lo = np.where(good, rl, lo)
    hi = np.where(good, rh, hi)
    for p in (p0, p1):  # the round ends
        dz2 = half**2 - (zz - p[:, 1]) ** 2
        w = np.sqrt(np.clip(dz2, 0, None))
        has = dz2 >= 0
        lo = np.where(has, np.minimum(lo, p[:, 0] - w), lo)
        hi = np.where(has, np.maximum(hi, p[:, 0] + w), hi)
    out = []
    for i in range(zz.shape[0]):
        sel = lo[i] <= hi[i]
        out.append(merge(list(zip(lo[i][sel].tolist(), hi[i][sel].tolist(), strict=True))))
    return out


def merge(intervals: list[Interval]) -> list[Interval]:
    """Union of intervals, sorted and disjoint."""
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def subtract(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """a minus b (both merged)."""
    out = []
    for lo, hi in a:
        pieces = [(lo, hi)]
        for c0, c1 in b:
            nxt = []
            for p0, p1 in pieces:
                if c1 <= p0 or c0 >= p1:
                    nxt.append((p0, p1))
                    continue
                if c0 > p0:
                    nxt.append((p0, c0))
                if c1 < p1:
                    nxt.append((c1, p1))
            pieces = nxt
        out.extend(pieces)
    return out


def coverage_table(per_z: list[list[Interval]], r_max: float, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative coverage G(r) = mean over z of |[0, r] ∩ intervals| (µm) on a grid.

    ``signed``: the grid runs over [-r_max, r_max] and G counts from -r_max (for the tabs'
    signed coordinate); otherwise over [0, r_max] and G is extended as an odd function by
    :func:`box_coverage` (a body of revolution is symmetric about the axis).
    """
    lo_r = -r_max if signed else 0.0
    grid = np.arange(lo_r, r_max + GRID_UM, GRID_UM)
    g = np.zeros_like(grid)
    for intervals in per_z:
        for a, b in intervals:
            a, b = max(a, lo_r), min(b, r_max)
            if b > a:
                g += np.clip(grid - a, 0.0, b - a)
    return grid, g / max(len(per_z), 1)


def lookup(grid: np.ndarray, g: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear interpolation in a table on the evenly spaced grid (clamped at its ends)."""
    step = GRID_UM
    pos = np.clip((x - grid[0]) / step, 0.0, len(grid) - 1.000001)
    i = pos.astype(np.intp)
    frac = pos - i
    return g[i] + frac * (g[i + 1] - g[i])


def box_coverage(grid: np.ndarray, g: np.ndarray, r: np.ndarray, width: float, signed: bool = False) -> np.ndarray:
    """Fraction of the radial footprint [r - width/2, r + width/2] covered (table of
    :func:`coverage_table`)."""
    if signed:
        return (lookup(grid, g, r + width / 2) - lookup(grid, g, r - width / 2)) / width

    def odd(x: np.ndarray) -> np.ndarray:
        return np.sign(x) * lookup(grid, g, np.abs(x))

    return (odd(r + width / 2) - odd(r - width / 2)) / width


# --------------------------------------------------------------------------- the cell's parts


@dataclass
class CellBody:
    """Tubes and boxes of a cell's can and cap (cell z), the z ranges where they differ from a
    straight can wall, and the radii the truth reports."""

    tubes: list[Tube]
    boxes: list[Box]
    can_tube: Tube
    features: list[Interval]  # cell-z ranges with more than the straight wall
    interior: Interval  # cell-z range of the inside of the can (below the crimp, above the bottom)
    r_max: float
    groove_profile: tuple[float, float, float]  # centre z, full height, depth


def groove_depth_at(profile: tuple[float, float, float], z: np.ndarray) -> np.ndarray:
    """Inward displacement of the can wall (µm) at cell z: raised cosine of full height."""
    zc, height, depth = profile
    x = (np.asarray(z, float) - zc) / (height / 2)
    return np.where(np.abs(x) < 1, depth * 0.5 * (1 + np.cos(np.pi * np.clip(x, -1, 1))), 0.0)


def build_body(spec: CellSpec, parts: dict) -> CellBody:
    an = spec.anatomy
    assert isinstance(an, Anatomy)
    w = float(spec.can_wall_um)  # type: ignore[arg-type]
    r_out = float(spec.can_outer_radius_um)  # type: ignore[arg-type]
    r_in = r_out - w
    r_mid = r_out - w / 2
    height = parts["height"]
    t_cap = an.cap_um
    lip_z = 0.5 * sum(parts["crimp"])
    r_lip = r_out - an.crimp_inward_um
    rho_c = max(0.35 * an.crimp_inward_um, w)  # curl radius (centre line)
    rho_c = min(rho_c, an.crimp_inward_um - w)
    g0, g1 = parts["groove"]
    profile = (0.5 * (g0 + g1), g1 - g0, an.groove_depth_um)
    b0, _ = parts["can_bottom"]
    t_b = height - b0
    rho_b = max(2 * w, 400.0)

    pts: list[tuple[float, float]] = [(r_lip, lip_z)]
    # the curl: a quarter circle from the lip down into the wall
    for a in np.linspace(0.5 * np.pi, 0.0, 13):
        pts.append((r_mid - rho_c + rho_c * math.cos(a), lip_z + rho_c - rho_c * math.sin(a)))
    zs = np.linspace(max(g0, pts[-1][1] + 1.0), g1, 97)
    pts.extend((r_mid - float(groove_depth_at(profile, z)), float(z)) for z in zs)
    corner_z = height - w / 2 - rho_b
    pts.append((r_mid, corner_z))
    for a in np.linspace(0.0, 0.5 * np.pi, 13)[1:]:
        pts.append((r_mid - rho_b + rho_b * math.cos(a), corner_z + rho_b * math.sin(a)))
    can = Tube(np.array(pts), w, "steel")
    bottom = Tube(np.array([(0.0, height - t_b / 2), (r_mid - rho_b, height - t_b / 2)]), t_b, "steel")

    r_term = 0.42 * r_in
    r_flange = r_in - 600.0
    slope = min(800.0, 0.5 * (r_flange - r_term))
    f0, _ = parts["flange"]
    cap = Tube(np.array([(0.0, t_cap / 2), (r_term, t_cap / 2), (r_term + slope, f0 + t_cap / 2),
                         (r_flange, f0 + t_cap / 2)]), t_cap, "steel")
    v0, _ = parts["vent_plate"]
    vent = Tube(np.array([(0.0, v0 + t_cap / 2), (max(r_flange - 1000.0, r_term), v0 + t_cap / 2)]), t_cap,
                "al_part")
    boxes = [Box(r_flange - 500.0, r_in + w / 2, parts["gasket"][0], parts["gasket"][1], "polymer")]
    hole = min(spec.mandrel_radius_um, 0.3 * r_in)
    for key in ("top_insulator", "bottom_insulator"):
        if parts.get(key):
            z0, z1 = parts[key]
            boxes.append(Box(hole, r_in - 150.0 - (an.groove_depth_um if key == "top_insulator" else 0.0),
                             z0, z1, "polymer"))
    features = [(-1e9, max(g1, parts["gasket"][1]) + w), (corner_z - w, 1e9)]
    for key in ("top_insulator", "bottom_insulator"):
        if parts.get(key):
            features.append(parts[key])
    return CellBody(tubes=[can, bottom, cap, vent], boxes=boxes, can_tube=can, features=merge(features),
                    interior=(parts["crimp"][1], b0), r_max=r_out + 4 * w, groove_profile=profile)


def slice_tables(body: CellBody, z0: float, z1: float, n_sub: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Coverage tables of every material (and of the can's ``interior``) over one slice."""
    zs = z0 + (np.arange(n_sub) + 0.5) / n_sub * (z1 - z0)
    by_mat: dict[str, list[list[Interval]]] = {m: [[] for _ in zs] for m in PRIORITY}
    can = tube_intervals(body.can_tube, zs)
    for tube in body.tubes:
        per_z = can if tube is body.can_tube else tube_intervals(tube, zs)
        for i, iv in enumerate(per_z):
            by_mat[tube.material][i].extend(iv)
    for box in body.boxes:
        for i, z in enumerate(zs):
            if box.z0 <= z < box.z1:
                by_mat[box.material][i].append((box.r0, box.r1))
    out: dict[str, list[list[Interval]]] = {}
    hidden: list[list[Interval]] = [[] for _ in zs]
    for m in PRIORITY:
        out[m] = []
        for i in range(len(zs)):
            mine = subtract(merge(by_mat[m][i]), hidden[i])
            out[m].append(mine)
            hidden[i] = merge(hidden[i] + mine)
    interior = []
    for i, z in enumerate(zs):
        if body.interior[0] <= z < body.interior[1]:
            wall = [a for a, b in can[i] if b > 0.5 * body.r_max]
            edge = min(wall) if wall else body.r_max
            interior.append(subtract([(0.0, edge)], hidden[i]))
        else:
            interior.append([])
    out["interior"] = interior
    return {m: coverage_table(per_z, body.r_max) for m, per_z in out.items() if any(per_z)}


def slice_in_features(body: CellBody, z0: float, z1: float) -> bool:
    return any(z1 > a and z0 < b for a, b in body.features)


# --------------------------------------------------------------------------- headspace tabs


@dataclass
class TabPath:
    """A tab's flat strip beyond the roll: a thick polyline in (rho, z) along the image
    direction ``angle_deg`` (rho signed: through the axis to the other side), ``width_um``
    across."""

    angle_deg: float
    width_um: float
    thickness_um: float
    material: str
    points: np.ndarray  # (n, 2): rho, z

    def z_range(self) -> Interval:
        half = self.thickness_um / 2
        return float(self.points[:, 1].min() - half), float(self.points[:, 1].max() + half)


def tab_path(rho_tab: float, angle_deg: float, width_um: float, thickness_um: float, material: str,
             z_bend: float, z_weld: float) -> TabPath:
    """The strip from the bend above (or below) the roll to its weld on the cap (or the can
    bottom): a slope towards the axis, then a flat weld 2.5 mm long."""
    reach = abs(z_weld - z_bend)
    rho_w = max(rho_tab - reach, min(1500.0, rho_tab))
    pts = np.array([(rho_tab, z_bend), (rho_w, z_weld), (rho_w - 2500.0, z_weld)])
    return TabPath(angle_deg, width_um, thickness_um, material, pts)


def tab_slice_table(path: TabPath, z0: float, z1: float, n_sub: int, r_max: float):
    zs = z0 + (np.arange(n_sub) + 0.5) / n_sub * (z1 - z0)
    per_z = tube_intervals(Tube(path.points, path.thickness_um, path.material), zs)
    if not any(per_z):
        return None
    return coverage_table(per_z, r_max, signed=True)
