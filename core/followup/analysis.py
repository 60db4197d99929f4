"""Follow-up analyses as the seed study ran them, with JSON/CSV-ready results.

* :func:`analyze_holo` — holotomography volume → solid phase → particles and fragments →
  size distributions (D10/D50/D90, number- and volume-weighted) in depth regions from the
  current collector, cracking index, damage classes.
* :func:`analyze_xanes` — XANES stack → per-voxel edge-energy map with quality mask →
  fragments (from the edge-jump map) with their mean edge energy against volume in three
  size groups → primary grains with per-grain mean and standard deviation of the edge
  energy (intra- vs inter-granular spread), coloured by the parent particle's damage class
  → optional linear-combination fractions of end members.

Results are plain dicts (numbers, lists) plus the label arrays for figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.followup import particles as P
from core.followup import xanes as X

Progress = Callable[[float, str], None]


def _noop(fraction: float, message: str) -> None:
    return None


# --------------------------------------------------------------------- holotomography


@dataclass
class HoloParams:
    """Settings of :func:`analyze_holo` (physical sizes in µm).

    Attributes
    ----------
    threshold : float, optional
        Solid above it (default Otsu).
    solid_label : int, optional
        For label volumes: the active-material value (e.g. 1).
    crack_close_um, h_um, min_particle_um, min_fragment_um, smooth_um : float
        See :func:`core.followup.particles.segment`.
    depth_axis : int
        Axis along which depth from the current collector runs (0 = z).
    n_regions : int
        Depth regions.
    collector_side : {"low", "high"}
        Where the collector is along ``depth_axis``.
    damage_thresholds : (int, int)
        Fragment counts separating least / mild / severe damage.
    """

    threshold: float | None = None
    solid_label: int | None = None
    crack_close_um: float = 1.2
    h_um: float = 0.5
    min_particle_um: float = 2.0
    min_fragment_um: float = 0.5
    smooth_um: float = 0.0
    depth_axis: int = 0
    n_regions: int = 5
    collector_side: str = "low"
    damage_thresholds: tuple[int, int] = (2, 4)


@dataclass
class HoloResult:
    """Holotomography analysis.

    Attributes
    ----------
    summary : dict
        Counts, size statistics, parameters.
    depth : list of dict
        One row per depth region (see :func:`core.followup.particles.depth_profile`).
    fragments : dict of ndarray
        Per-fragment table (label, voxels, volume_um3, esd_um, centroid, parent, damage).
    particles : dict of ndarray
        Per-particle table (+ ``n_fragments``, ``damage``).
    segmentation : Segmentation
        The label volumes.
    """

    summary: dict[str, Any]
    depth: list[dict[str, Any]]
    fragments: dict[str, np.ndarray]
    particles: dict[str, np.ndarray]
    segmentation: P.Segmentation


def analyze_holo(
    array: Any,
    spacing_um: float | Sequence[float],
    params: HoloParams | None = None,
    *,
    progress: Progress | None = None,
) -> HoloResult:
    """Particles, fragments and fragment size against depth in a holotomography volume.

    Parameters
    ----------
    array : array_like
        (z, y, x) phase/δ volume or label volume.
    spacing_um : float or (z, y, x)
        Voxel size in µm.
    params : HoloParams, optional
        Settings.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    HoloResult
    """
    params = params or HoloParams()
    report = progress or _noop
    report(0.0, "solid phase")
    data = np.asarray(array)
    mask, threshold = P.solid_mask(data, threshold=params.threshold, label=params.solid_label)
    report(0.1, "particles and fragments")
    seg = P.segment(
        mask,
        spacing_um,
        crack_close_um=params.crack_close_um,
        h_um=params.h_um,
        min_particle_um=params.min_particle_um,
        min_fragment_um=params.min_fragment_um,
        smooth_um=params.smooth_um,
    )
    report(0.8, "size distributions")
    frag = P.label_table(seg.fragments, seg.spacing_um)
    part = P.label_table(seg.particles, seg.spacing_um)
    per_particle = seg.fragments_per_particle()
    part["n_fragments"] = per_particle[part["label"]]
    part["damage"] = P.damage_classes(part["n_fragments"], params.damage_thresholds)
    frag["parent"] = seg.parent[frag["label"]].astype(np.int64)
    damage_of = dict(zip(part["label"].tolist(), part["damage"].tolist(), strict=True))
    frag["damage"] = np.asarray([damage_of.get(int(p), "") for p in frag["parent"]], dtype=object)
    depth = P.depth_profile(
        seg,
        axis=params.depth_axis,
        n_regions=params.n_regions,
        collector_side=params.collector_side,
    )
    classes, counts = np.unique(part["damage"].astype(str), return_counts=True)
    solid_fraction = float(mask.mean())
    summary: dict[str, Any] = {
        "kind": "holo",
        "shape_zyx": list(mask.shape),
        "spacing_um": list(seg.spacing_um),
        "threshold": threshold,
        "solid_volume_fraction": solid_fraction,
        "n_particles": seg.n_particles,
        "n_fragments": seg.n_fragments,
        "particle_size": P.size_stats(part["esd_um"]),
        "fragment_size": P.size_stats(frag["esd_um"]),
        "particle_voxels_median": float(np.median(part["voxels"])) if part["voxels"].size else None,
        "fragment_voxels_median": float(np.median(frag["voxels"])) if frag["voxels"].size else None,
        "cracking_index": float(np.mean(part["n_fragments"] - 1)) if part["label"].size else None,
        "damage_counts": {str(c): int(n) for c, n in zip(classes, counts, strict=True)},
        "params": asdict(params),
    }
    report(1.0, "done")
    return HoloResult(
        summary=summary, depth=depth, fragments=frag, particles=part, segmentation=seg
    )


# -------------------------------------------------------------------------------- XANES


@dataclass
class Reference:
    """A XANES end member for linear-combination fitting.

    Attributes
    ----------
    name : str
        E.g. ``"NiO"`` (Ni²⁺) or ``"LiNiO2"`` (Ni³⁺).
    energies_ev : ndarray
        Its energies (eV).
    spectrum : ndarray
        Its absorption (raw or normalised).
    """

    name: str
    energies_ev: np.ndarray
    spectrum: np.ndarray


@dataclass
class XanesParams:
    """Settings of :func:`analyze_xanes` (energies in eV, sizes in µm).

    Attributes
    ----------
    e0 : float, optional
        Nominal edge energy (default from the mean spectrum).
    window : (float, float), optional
        Edge search window (eV).
    min_snr, max_post_residual : float
        Quality-mask thresholds.
    jump_threshold : float, optional
        Edge jump above which a voxel is solid (default Otsu of the jump map).
    crack_close_um, h_um, min_particle_um, min_fragment_um : float
        Fragment segmentation of the solid (see :func:`core.followup.particles.segment`).
    grain_h_um, min_grain_um : float
        Primary-grain segmentation (distance-transform watershed inside fragments).
    size_groups_um3 : (float, float)
        Fragment volume thresholds between small / medium / large.
    damage_thresholds : (int, int)
        Fragment counts separating least / mild / severe damage.
    lcf_range : (float, float), optional
        Energies fitted by the linear combination (default E0-20 … E0+40 eV).
    """

    e0: float | None = None
    window: tuple[float, float] | None = None
    min_snr: float = X.MIN_SNR
    max_post_residual: float = X.MAX_POST_RESIDUAL
    jump_threshold: float | None = None
    crack_close_um: float = 1.2
    h_um: float = 0.5
    min_particle_um: float = 1.0
    min_fragment_um: float = 0.3
    grain_h_um: float = 0.1
    min_grain_um: float = 0.2
    size_groups_um3: tuple[float, float] = (1.0, 10.0)
    damage_thresholds: tuple[int, int] = (2, 4)
    lcf_range: tuple[float, float] | None = None


@dataclass
class XanesResult:
    """XANES analysis.

    Attributes
    ----------
    summary : dict
        Edge-energy statistics, spreads, size-group statistics, LCF summary, parameters.
    maps : EdgeMaps
        Per-voxel edge energies and quality mask.
    fragments : dict of ndarray
        Per fragment: label, voxels, volume_um3, esd_um, n_valid, e0_mean_ev, e0_std_ev,
        size_group, parent, damage.
    grains : dict of ndarray
        Per grain: label, voxels, e0_mean_ev, e0_std_ev, parent particle, damage.
    fractions : ndarray, optional
        (k, *spatial) LCF fractions.
    labels : dict of ndarray
        ``solid``, ``fragments``, ``grains`` label volumes.
    """

    summary: dict[str, Any]
    maps: X.EdgeMaps
    fragments: dict[str, np.ndarray]
    grains: dict[str, np.ndarray]
    fractions: np.ndarray | None = None
    labels: dict[str, np.ndarray] = field(default_factory=dict)


def per_label_stats(
    labels: np.ndarray, values: np.ndarray, valid: np.ndarray
) -> dict[str, np.ndarray]:
    """Count, mean and standard deviation of ``values`` per label over ``valid`` voxels.

    Parameters
    ----------
    labels : ndarray of int
        0 background.
    values : ndarray
        Same shape.
    valid : ndarray of bool
        Voxels that count.

    Returns
    -------
    dict of ndarray
        ``n_valid``, ``mean``, ``std`` indexed by label (index 0 = background).
    """
    n = int(labels.max()) + 1
    keep = valid & (labels > 0) & np.isfinite(values)
    lab = labels[keep]
    v = values[keep].astype(np.float64)
    count = np.bincount(lab, minlength=n).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.bincount(lab, weights=v, minlength=n) / count
        # Second moment around the mean: no catastrophic cancellation at ~8345 eV.
        dev = v - mean[lab]
        var = np.bincount(lab, weights=dev * dev, minlength=n) / count
    return {"n_valid": count.astype(np.int64), "mean": mean, "std": np.sqrt(var)}


def size_groups(volume_um3: np.ndarray, thresholds: tuple[float, float]) -> np.ndarray:
    """``small`` / ``medium`` / ``large`` from fragment volumes (µm³) and two thresholds."""
    idx = (volume_um3 >= thresholds[0]).astype(int) + (volume_um3 >= thresholds[1]).astype(int)
    return np.asarray(["small", "medium", "large"], dtype=object)[idx]


def _majority_parent(child: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """For each child label, the parent label covering most of its voxels (vectorised)."""
    n_child = int(child.max()) + 1
    sel = child > 0
    c = child[sel].astype(np.int64)
    p = parent[sel].astype(np.int64)
    out = np.zeros(n_child, dtype=np.int64)
    if c.size == 0:
        return out
    key = c * (int(p.max()) + 1) + p
    uniq, counts = np.unique(key, return_counts=True)
    uc, up = uniq // (int(p.max()) + 1), uniq % (int(p.max()) + 1)
    order = np.lexsort((counts, uc))  # by child, then count ascending: last wins
    out[uc[order]] = up[order]
    return out


def analyze_xanes(
    data: Any,
    energies: Sequence[float] | None = None,
    params: XanesParams | None = None,
    *,
    spacing_um: float | Sequence[float] | None = None,
    references: Sequence[Reference] = (),
    fragments: np.ndarray | None = None,
    grains: np.ndarray | None = None,
    progress: Progress | None = None,
) -> XanesResult:
    """Edge-energy map, per-fragment and per-grain statistics, optional LCF.

    Parameters
    ----------
    data : ndarray or XanesStack
        (n_energies, *spatial) spectra.
    energies : sequence of float, optional
        eV (taken from a XanesStack).
    params : XanesParams, optional
        Settings.
    spacing_um : float or sequence, optional
        Voxel size in µm (default the stack's, else 1).
    references : sequence of Reference
        End members for linear-combination fitting (e.g. NiO and LiNiO2).
    fragments, grains : ndarray of int, optional
        Label volumes to use instead of segmenting the edge-jump map.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    XanesResult
    """
    from core.followup.io import XanesStack

    params = params or XanesParams()
    report = progress or _noop
    if isinstance(data, XanesStack):
        e = data.energies
        spacing = spacing_um if spacing_um is not None else (data.spacing_um or 1.0)
    else:
        e = np.asarray(energies, dtype=np.float64)
        spacing = spacing_um if spacing_um is not None else 1.0
    report(0.0, "edge-energy map")
    maps = X.edge_energy_map(
        data,
        e,
        e0=params.e0,
        window=params.window,
        min_snr=params.min_snr,
        max_post_residual=params.max_post_residual,
        progress=lambda f, m: report(0.6 * f, m),
    )
    spatial = maps.e0_half.shape
    sp = P._spacing(spacing, len(spatial))
    voxel_um3 = float(np.prod(sp))
    report(0.6, "fragments")
    jump = np.nan_to_num(maps.edge_jump, nan=0.0)
    if fragments is None:
        if params.jump_threshold is None:
            from skimage.filters import threshold_otsu

            positive = jump[jump > 0]
            thr = float(threshold_otsu(positive)) if positive.size > 1 else 0.0
        else:
            thr = float(params.jump_threshold)
        solid = jump > thr
        seg = P.segment(
            solid,
            sp,
            crack_close_um=params.crack_close_um,
            h_um=params.h_um,
            min_particle_um=params.min_particle_um,
            min_fragment_um=params.min_fragment_um,
        )
        frag_labels, particle_labels = seg.fragments, seg.particles
    else:
        thr = None
        frag_labels = np.asarray(fragments, dtype=np.int32)
        particle_labels = frag_labels
    valid = maps.mask & (frag_labels > 0)
    table = P.label_table(frag_labels, sp)
    stats = per_label_stats(frag_labels, maps.e0_half, valid)
    lab = table["label"]
    table["n_valid"] = stats["n_valid"][lab]
    table["e0_mean_ev"] = stats["mean"][lab]
    table["e0_std_ev"] = stats["std"][lab]
    table["size_group"] = size_groups(table["volume_um3"], params.size_groups_um3)
    parent_of_fragment = _majority_parent(frag_labels, particle_labels)
    table["parent"] = parent_of_fragment[lab]
    n_frag_per_particle = np.bincount(
        parent_of_fragment[1:], minlength=int(particle_labels.max()) + 1
    )
    damage_per_particle = P.damage_classes(n_frag_per_particle, params.damage_thresholds)
    table["damage"] = damage_per_particle[table["parent"]]
    report(0.75, "primary grains")
    if grains is None:
        grain_mask = frag_labels > 0
        grain_labels = P.watershed_split(
            grain_mask, sp, h_um=params.grain_h_um, min_diameter_um=params.min_grain_um
        )
        # A grain never straddles two fragments.
        grain_labels = P.label_region_values(
            np.where(grain_labels > 0, grain_labels * (int(frag_labels.max()) + 1) + frag_labels, 0)
        )
    else:
        grain_labels = np.asarray(grains, dtype=np.int32)
    gstats = per_label_stats(grain_labels, maps.e0_half, maps.mask & (grain_labels > 0))
    gtable = P.label_table(grain_labels, sp)
    glab = gtable["label"]
    gtable["n_valid"] = gstats["n_valid"][glab]
    gtable["e0_mean_ev"] = gstats["mean"][glab]
    gtable["e0_std_ev"] = gstats["std"][glab]
    gparent = _majority_parent(grain_labels, particle_labels)[glab]
    gtable["parent"] = gparent
    gtable["damage"] = damage_per_particle[np.clip(gparent, 0, damage_per_particle.size - 1)]
    fractions = None
    lcf_summary: dict[str, Any] | None = None
    if references:
        report(0.85, "linear-combination fit")
        fractions, lcf_summary = _lcf(data, e, maps, references, params)
    report(0.95, "summary")
    summary = _xanes_summary(maps, table, gtable, params, thr, sp, voxel_um3)
    if lcf_summary is not None:
        summary["lcf"] = lcf_summary
    report(1.0, "done")
    return XanesResult(
        summary=summary,
        maps=maps,
        fragments=table,
        grains=gtable,
        fractions=fractions,
        labels={"fragments": frag_labels, "particles": particle_labels, "grains": grain_labels},
    )


def _lcf(
    data: Any,
    e: np.ndarray,
    maps: X.EdgeMaps,
    references: Sequence[Reference],
    params: XanesParams,
) -> tuple[np.ndarray, dict[str, Any]]:
    from core.followup.io import XanesStack

    refs = X.prepare_references(
        [r.energies_ev for r in references], [r.spectrum for r in references], e, e0=maps.e0
    )
    fit_range = params.lcf_range or (maps.e0 - 20.0, maps.e0 + 40.0)
    names = [r.name for r in references]
    if isinstance(data, XanesStack):
        parts = []
        rows = data.spatial_shape[0]
        for r0 in range(0, rows, 8):
            y = data.block(r0, min(rows, r0 + 8))
            nz = X.normalize(e, y, e0=maps.e0)
            parts.append(
                X.fit_linear_combination(
                    e, nz.norm, refs, names=names, fit_range=fit_range
                ).fractions.reshape(len(refs), min(rows, r0 + 8) - r0, *data.spatial_shape[1:])
            )
        fractions = np.concatenate(parts, axis=1)
    else:
        nz = X.normalize(e, np.asarray(data), e0=maps.e0)
        fractions = X.fit_linear_combination(
            e, nz.norm, refs, names=names, fit_range=fit_range
        ).fractions.reshape((len(refs), *maps.e0_half.shape))
    keep = maps.mask
    summary = {
        "references": names,
        "fit_range_ev": list(fit_range),
        "mean_fraction": {
            n: float(fractions[i][keep].mean()) if keep.any() else None for i, n in enumerate(names)
        },
    }
    return fractions, summary


def _xanes_summary(
    maps: X.EdgeMaps,
    table: dict[str, np.ndarray],
    gtable: dict[str, np.ndarray],
    params: XanesParams,
    thr: float | None,
    sp: tuple[float, ...],
    voxel_um3: float,
) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    ok = table["n_valid"] > 0
    for g in ("small", "medium", "large"):
        sel = ok & (table["size_group"] == g)
        vals = table["e0_mean_ev"][sel]
        groups[g] = {
            "n_fragments": int(sel.sum()),
            "e0_mean_ev": float(vals.mean()) if vals.size else None,
            "e0_spread_ev": float(vals.std()) if vals.size > 1 else None,
        }
    gok = gtable["n_valid"] >= 3
    intra = (
        float(np.average(gtable["e0_std_ev"][gok], weights=gtable["n_valid"][gok]))
        if gok.any()
        else None
    )
    inter = float(np.std(gtable["e0_mean_ev"][gok])) if gok.sum() > 1 else None
    by_damage: dict[str, Any] = {}
    for d in P.DAMAGE_CLASSES:
        sel = gok & (gtable["damage"] == d)
        by_damage[d] = {
            "n_grains": int(sel.sum()),
            "intra_grain_std_ev": float(np.mean(gtable["e0_std_ev"][sel])) if sel.any() else None,
            "inter_grain_spread_ev": float(np.std(gtable["e0_mean_ev"][sel]))
            if sel.sum() > 1
            else None,
        }
    out = {
        "kind": "xanes",
        "spatial_shape": list(maps.e0_half.shape),
        "spacing_um": list(sp),
        "n_energies": int(maps.energies.size),
        "energy_range_ev": [float(maps.energies[0]), float(maps.energies[-1])],
        "edge": maps.summary(),
        "jump_threshold": thr,
        "n_fragments": int(table["label"].size),
        "n_grains": int(gtable["label"].size),
        "size_groups": groups,
        "intra_grain_std_ev": intra,
        "inter_grain_spread_ev": inter,
        "spread_by_damage": by_damage,
        "params": asdict(params),
    }
    return out


# ------------------------------------------------------------------------- serialising


def table_rows(table: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A column table (dict of equal-length arrays) as a list of row dicts (JSON/CSV-ready)."""
    keys = list(table)
    n = len(table[keys[0]]) if keys else 0
    rows = []
    for i in range(n):
        row = {}
        for k in keys:
            v = table[k][i]
            if isinstance(v, (np.floating, float)):
                row[k] = float(v) if np.isfinite(v) else None
            elif isinstance(v, (np.integer, int)):
                row[k] = int(v)
            else:
                row[k] = str(v)
        rows.append(row)
    return rows
