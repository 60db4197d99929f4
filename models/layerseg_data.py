"""Training and held-out data for the layer/void segmenter: generated cells, polar patches.

Every sample is a crop of a synthetic cell (``core.phantom``) rendered with domain
randomisation — voxel size 5–25 µm (log-uniform), 18650 or 21700, layer thicknesses ±15 %,
material contrasts ×0.8–1.25, ovality, coating jitter, many voids (thin and thick, inner and
outer coating, 0–15 µm from the Al foil), thinned/thickened coating patches, deflected
collectors, metal particles; then cupping, blur (0.3–1.4 px), rings about the cell axis and
noise (2–14 % of the cathode level) — with its exact class fractions
(``core.phantom.labels.class_fractions``). Crops keep small voxel sizes affordable: the image
is a window of the cell whose axis may lie outside it, unwrapped on the same polar grid the
segmenter uses at run time (``core.segment.polar``) about a slightly perturbed frame (the
geometry stage's centre and ovality are not exact either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.geometry.unwrap import EllipticFrame
from core.phantom import (
    Artifacts,
    CellSpec,
    CoatingPatch,
    CollectorDeflection,
    DelaminationVoid,
    ForeignParticle,
    make_cell,
)
from core.phantom.labels import CLASSES, class_fractions, material_values
from core.phantom.spec import MATERIAL_MU
from core.segment.polar import image_polar_coords, normalisation_levels, normalise, polar_axes

N_CLASSES = len(CLASSES)
CROP_PX = 640


@dataclass
class PatchSet:
    """Normalised input patches (N, P, P) float16 and class fractions (N, C, P, P) uint8 (×255)."""

    x: np.ndarray
    y: np.ndarray
    voxel_um: np.ndarray


def _random_spec(rng: np.random.Generator) -> CellSpec:
    voxel = float(math.exp(rng.uniform(math.log(5.0), math.log(25.0))))
    j = lambda: float(rng.uniform(0.85, 1.15))  # noqa: E731
    return CellSpec(
        kind=str(rng.choice(["18650", "21700"])), voxel_size_um=voxel, n_slices=2,
        anode_coating_um=70.0 * j(), cu_foil_um=10.0 * j(), separator_um=20.0 * j(),
        cathode_coating_um=60.0 * j(), al_foil_um=15.0 * j(),
        coating_jitter=float(rng.uniform(0.0, 0.04)), ovality=float(rng.uniform(0.0, 0.03)),
        ovality_angle_deg=float(rng.uniform(0, 180)), spiral_start_deg=float(rng.uniform(0, 360)),
    )


def _crop_placement(spec: CellSpec, rng: np.random.Generator) -> tuple[int, tuple[float, float], float, float]:
    """Image size, centre offset (µm), and the crop's direction and distance from the axis."""
    v = spec.voxel_size_um
    full = int(2 * math.ceil(float(spec.can_outer_radius_um) / v + 12))
    if full <= CROP_PX:
        off = (float(rng.uniform(-600, 600)), float(rng.uniform(-600, 600)))
        return full, off, 0.0, 0.0
    r_target = float(rng.uniform(0.6 * spec.mandrel_radius_um, float(spec.can_outer_radius_um) + 100.0))
    phi = float(rng.uniform(-math.pi, math.pi))
    return CROP_PX, (-r_target * math.sin(phi), -r_target * math.cos(phi)), phi, r_target


def _defects(spec: CellSpec, rng: np.random.Generator, phi: float, r_target: float, cropped: bool) -> list:
    """Defects inside the crop's field of view (all over the cell when it is not cropped)."""
    v = spec.voxel_size_um
    pitch = spec.pitch_um
    n = spec.windings
    half_fov_um = CROP_PX * v / 2
    if cropped:
        r_lo, r_hi = max(r_target - half_fov_um, spec.mandrel_radius_um), r_target + half_fov_um
        k_lo = int(np.clip((r_lo - spec.mandrel_radius_um) / pitch, 0, n - 1))
        k_hi = int(np.clip((r_hi - spec.mandrel_radius_um) / pitch - 1, k_lo, n - 1))
        span = math.degrees(half_fov_um / max(r_target, 1000.0))
    else:
        k_lo, k_hi, span = 0, n - 1, 180.0

    def angle() -> float:
        return float((math.degrees(phi) + rng.uniform(-span, span)) % 360)

    def winding() -> int:
        return int(rng.integers(k_lo, k_hi + 1))

    zc = lambda: float(rng.uniform(-1.0, 2.0))  # noqa: E731
    out: list = []
    for _ in range(int(rng.integers(3, 8))):
        thick = float(rng.uniform(10.0, 58.0))
        depth = float(rng.uniform(0.0, 15.0))
        thick = min(thick, spec.cathode_coating_um - depth - 2.0)
        if thick < 5:
            continue
        out.append(DelaminationVoid(
            winding=winding(), angle_deg=angle(), thickness_um=thick, depth_um=depth,
            arc_length_um=float(rng.uniform(150, 1500)), height_um=float(rng.uniform(1.5, 8.0) * v),
            z_center=zc(), side=str(rng.choice(["inner", "outer"]))))
    for _ in range(int(rng.integers(0, 3))):
        out.append(CoatingPatch(winding=winding(), angle_deg=angle(),
                                sheet_change=float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.35)),
                                arc_length_um=float(rng.uniform(400, 2000)), height_um=float(rng.uniform(2, 8) * v),
                                z_center=zc()))
    for _ in range(int(rng.integers(0, 3))):
        out.append(CollectorDeflection(winding=winding(), angle_deg=angle(), amplitude_um=float(rng.uniform(20, 90)),
                                       angular_span_deg=float(rng.uniform(5, 35)), z_center=zc(),
                                       height_span_um=float(rng.uniform(3, 10) * v)))
    if rng.random() < 0.3:
        k = winding()
        out.append(ForeignParticle(radius_um=spec.mandrel_radius_um + pitch * (k + rng.uniform(0, 1)),
                                   angle_deg=angle(), diameter_um=float(rng.uniform(40, 150)), z_center=zc()))
    return out


def _add_rings(img: np.ndarray, center: tuple[float, float], spec: CellSpec, rng: np.random.Generator) -> None:
    """Ring artifacts about a rotation axis near the cell axis (radii anywhere in the cell)."""
    v = spec.voxel_size_um
    n = int(rng.integers(0, 12))
    if n == 0:
        return
    cy = center[0] + rng.normal(0, 300.0 / v)
    cx = center[1] + rng.normal(0, 300.0 / v)
    yy, xx = np.ogrid[: img.shape[1], : img.shape[2]]
    r = np.hypot(yy - cy, xx - cx).astype(np.float32)
    for _ in range(n):
        radius = rng.uniform(0.1, 1.0) * float(spec.can_inner_radius_um) / v
        amp = rng.uniform(0.02, 0.12) * rng.choice([-1, 1])
        width = rng.uniform(0.6, 1.5)
        band = np.abs(r - radius) < 4 * width
        if band.any():
            ring = (amp * np.exp(-0.5 * ((r[band] - radius) / width) ** 2)).astype(np.float32)
            img[:, band] += ring[None, :]


def _in_view(spec: CellSpec, d) -> bool:
    """Whether a defect's centre falls inside the (cropped) image (the renderer paints only there)."""
    v = spec.voxel_size_um
    size = spec.image_size_px
    c = (size - 1) / 2
    if isinstance(d, ForeignParticle):
        r = d.radius_um
    else:
        r = spec.mandrel_radius_um + spec.pitch_um * (d.winding + 0.5)
    a = math.radians(d.angle_deg)
    y = c + (spec.center_offset_um[0] + r * math.sin(a)) / v
    x = c + (spec.center_offset_um[1] + r * math.cos(a)) / v
    return 8 <= y < size - 8 and 8 <= x < size - 8


def render_sample(seed: int):
    """One randomised crop: (image (z, y, x), fractions (C, z, y, x), spec, frame per slice, crop info)."""
    rng = np.random.default_rng(seed)
    spec = _random_spec(rng)
    size, offset, phi, r_target = _crop_placement(spec, rng)
    spec.image_size_px = size
    spec.center_offset_um = offset
    cropped = r_target > 0
    defects = [d for d in _defects(spec, rng, phi, r_target, cropped) if _in_view(spec, d)]
    art = Artifacts(blur_sigma_px=float(rng.uniform(0.3, 1.4)), noise_sigma=0.0, ring_count=0,
                    cupping=float(rng.uniform(0.0, 0.25)))
    jitter = {m: MATERIAL_MU[m] * float(rng.uniform(0.8, 1.25)) for m in MATERIAL_MU if m != "air"}
    with material_values(jitter):
        cell = make_cell(spec, defects, art, seed=seed)
    frac = class_fractions(spec, defects, seed=seed)
    img = cell.volume.array.copy()
    center = tuple(cell.truth["axis_center_yx_px"][0])
    _add_rings(img, center, spec, rng)
    img += float(rng.uniform(0.02, 0.14)) * rng.standard_normal(img.shape).astype(np.float32)
    return img, frac, spec, cell.truth, rng


def polar_sample(img: np.ndarray, frac: np.ndarray, spec: CellSpec, truth: dict, rng: np.random.Generator,
                 frame_jitter: bool = True):
    """Unwrap a rendered crop about a (perturbed) truth frame on the run-time polar grid.

    Returns per slice: normalised polar image (n_t', n_rho'), polar fractions (C, n_t', n_rho'),
    and the validity mask (inside the crop), restricted to the angles and radii it covers.
    """
    v = spec.voxel_size_um
    r_max = float(spec.can_outer_radius_um) + 300.0
    t_all, rho_all = polar_axes(v, r_max, spec.can_inner_radius_um)
    out = []
    for z in range(img.shape[0]):
        cy, cx = truth["axis_center_yx_px"][z]
        e = spec.ovality
        alpha = math.radians(spec.ovality_angle_deg)
        if frame_jitter:
            cy += rng.normal(0, 0.5)
            cx += rng.normal(0, 0.5)
            e = max(0.0, e + rng.normal(0, 0.002))
            alpha += rng.normal(0, 0.05)
        frame = EllipticFrame((cy, cx), e, alpha)
        tt, rr = image_polar_coords(frame, img.shape[1:])
        n_t = t_all.size
        dt = 2 * np.pi / n_t
        # Angle indices the crop covers (circular), radii it covers.
        ti = np.unique((tt[::4, ::4] / dt).astype(int) % n_t)
        if ti.size == n_t:
            t_idx = np.arange(n_t)
        else:
            gaps = np.diff(np.r_[ti, ti[0] + n_t])
            start = ti[(int(np.argmax(gaps)) + 1) % ti.size]
            t_idx = (start + np.arange(int(n_t - gaps.max() + 1))) % n_t
        r_idx = np.arange(max(int(rr.min()) - 1, 0), min(int(rr.max()) + 2, rho_all.size))
        t_sel, rho_sel = t_all[t_idx], rho_all[r_idx]
        ys, xs = frame.to_yx(t_sel[:, None], rho_sel[None, :])
        valid = (ys >= 0) & (ys <= img.shape[1] - 1) & (xs >= 0) & (xs <= img.shape[2] - 1)
        pol = ndimage.map_coordinates(img[z], [ys, xs], order=1, mode="nearest", prefilter=False)
        pf = np.stack([ndimage.map_coordinates(frac[c, z], [ys, xs], order=1, mode="nearest", prefilter=False)
                       for c in range(frac.shape[0])])
        rho_um = rho_sel * v
        inner = spec.mandrel_radius_um
        outer = spec.mandrel_radius_um + spec.pitch_um * (spec.windings + 1)
        masked = np.where(valid, pol, np.nan)
        levels = normalisation_levels(masked, rho_um, inner, outer)
        out.append((normalise(pol, levels), pf.astype(np.float32), valid))
    return out


def extract_patches(polar, n_random: int, n_void: int, size: int, rng: np.random.Generator):
    """Random fully valid patches, and patches centred on void samples (class 1 inside the roll)."""
    xs, ys = [], []
    for x, f, valid in polar:
        n_t, n_r = x.shape
        if n_t < size or n_r < size:
            continue
        ok = ndimage.minimum_filter(valid.astype(np.uint8), size=size, mode="constant", cval=0) > 0
        # Patch centres where the whole patch is valid.
        centres = np.argwhere(ok)
        if centres.size == 0:
            continue
        picks = list(centres[rng.integers(0, len(centres), n_random)])
        void = (f[1] > 0.3) & ok
        # Voids only (not the roll–can gap): a void has solid (cathode) within a few samples.
        cath = ndimage.maximum_filter(f[4], size=7) > 0.5
        vc = np.argwhere(void & cath)
        if vc.size:
            picks += list(vc[rng.integers(0, len(vc), n_void)])
        h = size // 2
        for ct, cr in picks:
            t0 = int(np.clip(ct - h + rng.integers(-h // 2, h // 2 + 1), 0, n_t - size))
            r0 = int(np.clip(cr - h + rng.integers(-h // 2, h // 2 + 1), 0, n_r - size))
            if not valid[t0:t0 + size, r0:r0 + size].all():
                continue
            xs.append(x[t0:t0 + size, r0:r0 + size])
            ys.append(f[:, t0:t0 + size, r0:r0 + size])
    return xs, ys


def make_patches(seeds, size: int = 96, n_random: int = 10, n_void: int = 8, log=print) -> PatchSet:
    xs, ys, vox = [], [], []
    for i, seed in enumerate(seeds):
        img, frac, spec, truth, rng = render_sample(int(seed))
        polar = polar_sample(img, frac, spec, truth, rng)
        px, py = extract_patches(polar, n_random, n_void, size, rng)
        xs += px
        ys += py
        vox += [spec.voxel_size_um] * len(px)
        if log and (i + 1) % 10 == 0:
            log(f"  data: {i + 1}/{len(seeds)} cells, {len(xs)} patches")
    x = np.stack(xs).astype(np.float16)
    y = np.round(np.clip(np.stack(ys), 0, 1) * 255).astype(np.uint8)
    return PatchSet(x, y, np.asarray(vox, np.float32))
