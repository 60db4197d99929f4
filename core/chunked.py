"""Out-of-core inspection: a volume larger than the memory budget, one chunk of slices at a time.

The whole volume is never held: its slices are read on demand (Zarr, HDF5, memmap and TIFF
stacks are lazy) and the inspection state — every slice's traced layers, the detectors'
per-slice arrays — grows with the number of slices inspected at once. So:

1. A *prior* is measured once on up to 16 slices spread over the volume: the can axis, the
   roll's frame, pitch, winding direction and seam, the interior's sheet thickness and
   brightness (:class:`core.geometry.roll.RollPrior`). Every chunk traces its slices in that
   frame and judges its sheets against that interior, so a chunk through the roll's end
   does not take the end for the interior, and the cathode's reference thickness is the
   same in every chunk.
2. The slices are cut into chunks sized from the budget, each read with a halo of slices on
   either side (smoothing and 3-D labelling see across the cut). Each chunk is inspected by
   the same geometry and detectors as a whole volume.
3. A chunk keeps the findings centred in its own slices (the halo's belong to its
   neighbour); a finding cut by a chunk boundary and seen by both is merged into one.
   Metrics are merged as their detector declares (max, min, sum, slice-weighted mean, pooled std);
   medians and percentiles are slice-weighted means of the chunks' (an approximation, noted
   in the result). Unrolled maps are stitched, thinned to at most :data:`MAP_ROWS` rows and
   :data:`MAP_COLUMNS` columns.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from core.detectors.spec import Metric
from core.errors import Cancelled, InputError
from core.geometry.layers import SliceRoll, analyze_slice
from core.geometry.maps import UnrolledMap, unroll
from core.geometry.roll import CellGeometry, RollPrior, measure_geometry, roll_prior
from core.geometry.unwrap import EllipticFrame
from core.io.volume import Volume

# Inspection state per voxel of a slice: 7–9 bytes measured with tracemalloc on generated
# 18650 and 21700 cells of 400–1000 px, ~11 from the peak RSS of a 21700 at 10 µm (2200 px,
# benchmarks/memory_bench.py). With a margin:
BYTES_PER_SLICE_VOXEL = 13.0
# Fixed costs: the unwrap grid, the prior, the result; independent of the number of slices.
FIXED_BYTES_PER_SLICE_VOXEL = 24.0
DEFAULT_BUDGET_GB = 2.0
# Unrolled maps of a chunked inspection are thinned to at most this many rows (slices) and
# columns (positions along the sheet): a 21700's cathode is ~0.9 m long, 90 000 columns at
# 10 µm; three full maps of a few hundred rows would take a quarter of the budget.
MAP_ROWS = 256
MAP_COLUMNS = 8192
SAMPLE_SLICES = 16
# Slices read beyond a chunk on either side: the detectors smooth over ~1 slice (3σ) and
# close gaps of one; 100 µm or 4 slices, whichever is more.
HALO_UM = 100.0


def inspection_budget_bytes(explicit_gb: float | None = None) -> int:
    """Memory the inspection state may use: ``explicit_gb``, $CELLQC_INSPECTION_BUDGET_GB, or 2 GB.

    Raises
    ------
    InputError
        When the budget is not a positive number of GB.
    """
    source = "--memory-gb"
    value: Any = explicit_gb
    if explicit_gb is None:
        source = "CELLQC_INSPECTION_BUDGET_GB"
        value = os.environ.get(source) or DEFAULT_BUDGET_GB
    try:
        gb = float(value)
    except (TypeError, ValueError):
        gb = math.nan
    if not (math.isfinite(gb) and gb > 0):
        raise InputError(source, f"memory budget must be a positive number of GB, got {value!r}")
    return int(gb * 2**30)


def estimated_bytes(shape: tuple[int, int, int], n_slices: int | None = None) -> float:
    """Estimated peak inspection state for ``n_slices`` slices (default: all) of a volume."""
    nz, ny, nx = shape
    n = nz if n_slices is None else n_slices
    return (n * BYTES_PER_SLICE_VOXEL + FIXED_BYTES_PER_SLICE_VOXEL) * ny * nx


@dataclass(frozen=True)
class Chunk:
    """Slices ``core_lo..core_hi-1`` are this chunk's; it reads ``view_lo..view_hi-1``."""

    view_lo: int
    core_lo: int
    core_hi: int
    view_hi: int


def plan_chunks(shape: tuple[int, int, int], spacing_z_um: float, budget_bytes: int,
                slices_per_chunk: int | None = None, centre_on: list[tuple[int, int]] | None = None) -> list[Chunk]:
    """Cut the slices into chunks whose inspection state fits ``budget_bytes``.

    ``centre_on``: the roll's ends, as (slice, +1 when the roll lies above it in slice numbers
    else -1); each gets a chunk of its own, so what is measured across an end (the anode
    overhang) is seen whole by one chunk.
    """
    nz = shape[0]
    halo = max(4, int(math.ceil(HALO_UM / spacing_z_um)))
    if slices_per_chunk is None:
        per_slice = BYTES_PER_SLICE_VOXEL * shape[1] * shape[2]
        fixed = FIXED_BYTES_PER_SLICE_VOXEL * shape[1] * shape[2]
        fits = int((budget_bytes - fixed) // per_slice) if budget_bytes > fixed else 0
        slices_per_chunk = fits - 2 * halo
        if slices_per_chunk < max(4, halo):
            raise InputError("--memory-gb", f"a memory budget of {budget_bytes / 2**30:.2f} GB holds {max(fits, 0)} "
                             f"slices of {shape[1]} × {shape[2]}; at least {max(4, halo) + 2 * halo} are needed "
                             f"({estimated_bytes(shape, max(4, halo) + 2 * halo) / 2**30:.2f} GB)")
    size = max(1, slices_per_chunk)
    halo = min(halo, max(1, size // 2))
    cuts = set(range(size, nz, size))
    for end, inward in sorted(centre_on or []):
        # A quarter of the chunk beyond the end, three quarters into the roll: the overhang
        # detector compares the end with the roll's interior.
        lo = end - size // 4 if inward > 0 else end - (3 * size) // 4
        hi = lo + size
        if all(c <= lo or c >= hi for c in cuts) and lo >= 0 and hi <= nz:
            continue  # already placed so
        cuts = {c for c in cuts if not lo < c < hi} | {c for c in (lo, hi) if 0 < c < nz}
    bounds = [0, *sorted(cuts), nz]
    # Fill gaps the moves opened so that no chunk exceeds the size.
    filled = [0]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        n = max(1, int(math.ceil((b - a) / size)))
        filled += [a + round(i * (b - a) / n) for i in range(1, n)] + [b]
    return [Chunk(max(0, lo - halo), lo, hi, min(nz, hi + halo))
            for lo, hi in zip(filled[:-1], filled[1:], strict=True) if hi > lo]


def roll_ends(volume: Volume, sample: CellGeometry, index: np.ndarray, prior: RollPrior | None,
              params, cancel: Callable[[], bool] | None = None) -> list[tuple[int, int]]:
    """Slices where the roll begins and ends, found to the slice by bisection between the
    sample's slices (each probe traces one slice), each with the side the roll is on (+1:
    higher slice numbers)."""
    if prior is None:
        return []

    def present(z: int) -> bool:
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        cy, cx = prior.axis.center_at(z)
        frame = EllipticFrame((cy + prior.roll_offset_yx_px[0], cx + prior.roll_offset_yx_px[1]), prior.ovality,
                              math.radians(prior.ovality_angle_deg))
        s = analyze_slice(volume.slice(z), z, sample.pixel_um, frame, prior.can_inner_um, params,
                          pitch_um=prior.pitch_um, direction=prior.direction)
        return s.is_roll or s.windings > 0

    seen = [s.is_roll or s.windings > 0 for s in sample.slices]
    ends = []
    for i in range(len(seen) - 1):
        if seen[i] == seen[i + 1]:
            continue
        lo, hi = int(index[i]), int(index[i + 1])  # present(lo) == seen[i], present(hi) == seen[i + 1]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if present(mid) == seen[i]:
                lo = mid
            else:
                hi = mid
        ends.append((hi, 1) if seen[i + 1] else (lo, -1))
    return ends


def roll_span(sample: CellGeometry, ends: list[tuple[int, int]], nz: int,
              index: np.ndarray | None = None) -> tuple[int, int] | None:
    """First and last slice showing the roll (its ends, or the volume's ends when it runs on).

    ``index``: the volume's slice of each sample slice. Where no end was found to the slice
    (no roll prior to bisect with), the first and last sample slices that show the roll
    stand for its ends (before, such a roll was said to begin at slice 0: a top slab's roll
    "began" in its cap, and the cut at its bottom was taken for the roll's end).
    """
    seen = [s.is_roll or s.windings > 0 for s in sample.slices]
    if not any(seen):
        return None
    at = np.arange(len(seen)) if index is None else np.asarray(index)
    starts = [z for z, inward in ends if inward > 0]
    stops = [z for z, inward in ends if inward < 0]
    first = 0 if seen[0] else min(starts, default=int(at[seen.index(True)]))
    last = nz - 1 if seen[-1] else max(stops, default=int(at[len(seen) - 1 - seen[::-1].index(True)]))
    return first, last


class _Slices:
    """A lazy (z, y, x) view of some slices of another array: ``index[i]`` is slice ``i``."""

    def __init__(self, base: Any, index: np.ndarray):
        self.base = base
        self.index = np.asarray(index, dtype=np.int64)
        self.shape = (int(self.index.size), int(base.shape[1]), int(base.shape[2]))
        self.dtype = base.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return np.asarray(self.base[int(self.index[key])])
        if isinstance(key, slice):
            return np.stack([np.asarray(self.base[int(z)]) for z in self.index[key]])
        if isinstance(key, tuple) and key and isinstance(key[0], int | np.integer):
            return np.asarray(self.base[(int(self.index[key[0]]),) + key[1:]])
        raise TypeError(f"unsupported index {key!r}")

    def __len__(self) -> int:
        return self.shape[0]


def sub_volume(volume: Volume, index: np.ndarray, spacing_z_um: float) -> Volume:
    """The slices ``index`` of ``volume`` as a lazy volume with slice spacing ``spacing_z_um``.

    The spacing may exceed what a scanner's voxel can be (:data:`core.io.volume.MAX_VOXEL_UM`,
    which :class:`Volume` enforces against unit mistakes in input): a whole cell's 16-slice
    sample is millimetres apart (3250 slices of 20 µm: 4.08 mm).
    """
    from core.io.volume import MAX_VOXEL_UM

    sy, sx = volume.spacing_um[1], volume.spacing_um[2]
    sub = Volume(_Slices(volume.array, index), (min(float(spacing_z_um), MAX_VOXEL_UM), sy, sx),
                 cell_id=volume.cell_id, source=volume.source, modality=volume.modality)
    sub.spacing_um = (float(spacing_z_um), sy, sx)  # derived, not input: checked above for y, x only
    return sub


def sample_index(nz: int) -> np.ndarray:
    """The volume's slices in the sample the roll prior is measured on (evenly spaced)."""
    return np.arange(0, nz, max(1, int(math.ceil(nz / SAMPLE_SLICES))))


def measure_prior(volume: Volume, params, cancel: Callable[[], bool] | None = None
                  ) -> tuple[RollPrior | None, CellGeometry, dict[str, float], list[tuple[int, int]]]:
    """The roll prior, the geometry of the sample it came from, detector references and the
    slices where the roll begins and ends."""
    nz = volume.shape[0]
    index = sample_index(nz)
    step = int(index[1] - index[0]) if index.size > 1 else 1
    sample = sub_volume(volume, index, volume.spacing_um[0] * step)
    geometry = measure_geometry(sample, params, cancel=cancel)
    prior = roll_prior(geometry, index)
    thickness = geometry.stacked("sheet_thickness_um")
    thickness = thickness[:, : geometry.windings] if thickness.size else thickness
    reference = {}
    if thickness.size and np.isfinite(thickness).any():
        reference["cathode_sheet_thickness_median_um"] = float(np.nanmedian(thickness))
    ends = roll_ends(volume, geometry, index, prior, params, cancel)
    span = roll_span(geometry, ends, nz, index)
    if span is not None:
        reference.update(roll_first_slice=float(span[0]), roll_last_slice=float(span[1]))
        if not ends:
            # No prior to bisect with (too few roll slices in the sample: a short slab of roll):
            # the sample's first and last roll slices stand for the ends, so that each end
            # still gets a chunk of its own with the roll's interior in it (the overhang
            # detector compares the end with it; a top slab read -11 µm for 742 without).
            ends = [(span[0], 1)] if span[0] > 0 else []
            ends += [(span[1], -1)] if span[1] < nz - 1 else []
    return prior, geometry, reference, ends


# Slices traced at the roll's interior for an end measured on its own (see end_view), and
# slices kept beyond the anode's end (the level beyond the roll).
END_REFERENCE_SLICES = 6
END_MARGIN_UM = 300.0
END_REFERENCE_DEPTH_UM = 3000.0


def deep_roll_slice(sample: CellGeometry, index: np.ndarray, end: int, inward: int) -> int | None:
    """The sample's roll slice nearest to a roll end on the roll's side (volume numbers)."""
    inside = [int(z) for z, s in zip(index, sample.slices, strict=True)
              if s.is_roll and (z > end if inward > 0 else z < end)]
    if not inside:
        return None
    return min(inside) if inward > 0 else max(inside)


def end_view(volume: Volume, prior: RollPrior, params, end: int, inward: int, deep: int,
             cancel: Callable[[], bool] | None = None) -> tuple[Volume, CellGeometry, int]:
    """A lazy view from the roll's interior out past one roll end, for the anode overhang alone.

    A chunk holds the overhang whole only when it is taller than the overhang and the interior
    slices the detector compares with: a 21700 at 15 µm is cut into chunks of 46 slices
    (0.7 mm) within the default budget, and its 1.05 mm overhang was in no chunk whole (not
    measured). The overhang detector needs traced layers only in a few interior slices; the
    slices out to the end are sampled along those layers, one at a time. So only
    :data:`END_REFERENCE_SLICES` slices at the sample's roll slice nearest the end (``deep``)
    are traced, no deeper than :data:`END_REFERENCE_DEPTH_UM` inside the end, and the view runs
    from there to :data:`END_MARGIN_UM` beyond the end.

    Returns the view, its geometry (the traced slices in place, the others untraced) and the
    volume's slice number of the view's slice 0.
    """
    nz = volume.shape[0]
    dz = volume.spacing_um[0]
    margin = max(4, int(math.ceil(END_MARGIN_UM / dz)))
    n_ref = END_REFERENCE_SLICES
    # The interior slices no deeper than a whole-volume inspection takes its reference from
    # (the detector's max_depth_um): the walk out to the end then crosses no more interior.
    depth = int(math.ceil(END_REFERENCE_DEPTH_UM / dz))
    deep = max(deep, end - depth) if inward < 0 else min(deep, end + depth)
    if inward < 0:  # the roll lies below the end (lower slice numbers)
        ref_lo = max(0, deep - n_ref + 1)
        lo, hi = ref_lo, min(nz, end + margin + 1)
    else:
        ref_lo = min(deep, max(0, nz - n_ref))
        lo, hi = max(0, end - margin), min(nz, ref_lo + n_ref)
    ref_hi = min(nz, ref_lo + n_ref)
    traced = measure_geometry(sub_volume(volume, np.arange(ref_lo, ref_hi), dz), params, cancel=cancel,
                              prior=prior.shifted(ref_lo), processes=False)
    view = sub_volume(volume, np.arange(lo, hi), dz)
    slices = [SliceRoll(z=i, is_roll=False, note="not traced: sampled along the interior's layers")
              for i in range(hi - lo)]
    for s in traced.slices:
        s.z = s.z + ref_lo - lo
        slices[s.z] = s
    geometry = replace(traced, shape=view.shape, axis=prior.shifted(lo).axis, slices=slices)
    return view, geometry, lo


def shift_finding(finding, dz: int) -> None:
    """Move a finding from a chunk's slice indices to the volume's (messages too)."""
    c = finding.centroid_zyx_px
    finding.centroid_zyx_px = (c[0] + dz, c[1], c[2])
    b = finding.bbox_zyx_px
    finding.bbox_zyx_px = (b[0] + dz, b[1], b[2], b[3] + dz, b[4], b[5])
    finding.message = shift_slice_numbers(finding.message, dz)


def shift_slice_numbers(text: str, dz: int) -> str:
    """``text`` with its slice numbers ("slice 12", "slices 34–37") moved by ``dz``: a chunk's
    findings and geometry notes in the volume's slice numbers."""
    return re.sub(r"\b(slices? )(\d+)(?:([–-])(\d+))?",
                  lambda m: m.group(1) + str(int(m.group(2)) + dz)
                  + (f"{m.group(3)}{int(m.group(4)) + dz}" if m.group(4) else ""), text)


def shift_slice_metrics(metrics: dict[str, Any], dz: int) -> None:
    """Move a chunk's slice-number metrics (``*_z_px``) to the volume's slice numbers, in place,
    as :func:`shift_finding` does its findings."""
    for key, value in metrics.items():
        if key.endswith("_z_px") and isinstance(value, float):
            metrics[key] = value + dz


def metric_merges() -> dict[str, Metric]:
    """How each metric merges across chunks: every registered detector's declared metrics
    (:class:`core.detectors.spec.Metric`)."""
    from core.detectors import specs

    return {key: metric for spec in specs() for key, metric in spec.metrics.items()}


def merge_metrics(per_chunk: list[tuple[dict[str, Any], float, float]],
                  merges: dict[str, Metric] | None = None) -> dict[str, Any]:
    """Merge the chunks' metrics: (metrics, roll slices of its own, fraction of its view that is its own).

    Each metric merges as its detector declares (``merges``, default :func:`metric_merges`);
    a metric no detector declares is a slice-weighted mean.
    """
    merges = metric_merges() if merges is None else merges
    keys: list[str] = []
    for metrics, _w, _own in per_chunk:
        keys += [k for k in metrics if k not in keys]
    out: dict[str, Any] = {}
    for key in keys:
        pairs = [(m[key], w) for m, w, _own in per_chunk if key in m and isinstance(m[key], int | float)
                 and not isinstance(m[key], bool) and m[key] is not None and math.isfinite(m[key])]
        if not pairs:
            out[key] = next((m[key] for m, _w, _own in per_chunk if key in m), None)
            continue
        vals = np.array([p[0] for p in pairs], float)
        weights = np.array([max(p[1], 0.0) for p in pairs], float)
        if weights.sum() == 0:
            weights = np.ones_like(vals)
        kind = merges[key].merge if key in merges else "mean"
        if kind == "sum":
            # Counted over the chunk's view (halo included): scaled to its own slices.
            total = float(np.sum(vals * np.array([own for m, _w, own in per_chunk if key in m and
                                                  isinstance(m[key], int | float) and m[key] is not None
                                                  and math.isfinite(m[key])])))
            total = round(total)
            out[key] = int(total) if all(isinstance(p[0], int) for p in pairs) else float(total)
        elif kind == "min":
            out[key] = float(vals.min())
        elif kind == "max":
            out[key] = float(vals.max())
        elif kind == "pooled_std":
            mean_key = merges[key].of[0]
            means = np.array([m.get(mean_key, np.nan) for m, _w, _own in per_chunk if key in m], float)
            if means.size == vals.size and np.isfinite(means).all():
                grand = np.average(means, weights=weights)
                out[key] = float(np.sqrt(np.average(vals**2 + means**2, weights=weights) - grand**2))
            else:
                out[key] = float(np.average(vals, weights=weights))
        else:  # "mean", and "ratio" until its parts are merged (below)
            out[key] = float(np.average(vals, weights=weights))
    for key in keys:
        metric = merges.get(key)
        if metric is not None and metric.merge == "ratio":
            num, den = metric.of
            if out.get(den) and out.get(num) is not None:
                out[key] = out[num] / out[den]
    return out


def chunk_maps(geometry: CellGeometry, raw_maps: dict[str, np.ndarray], core: tuple[int, int],
               every: int, z_offset: int) -> dict[str, UnrolledMap]:
    """The unrolled maps of one chunk: its own slices (``core``, chunk indices), every
    ``every``-th slice of the volume, rows indexed by the volume's slices."""
    rolls = [s for s in geometry.slices if s.is_roll]
    if not rolls:
        return {}
    sources = {"cu_al_gap_um": (geometry.stacked("cu_al_gap_um"), "Cu–Al gap", "µm"),
               "cathode_intensity": (geometry.stacked("sheet_intensity"), "cathode sheet intensity", "a.u.")}
    if "cathode_thickness_um" in raw_maps:
        sources["cathode_thickness_um"] = (raw_maps["cathode_thickness_um"], "cathode sheet thickness", "µm")
    out = {}
    for key, (arr, name, unit) in sources.items():
        umap = unroll(geometry, arr, name, unit)
        keep = (umap.z_index >= core[0]) & (umap.z_index < core[1]) & ((umap.z_index + z_offset) % every == 0)
        z = umap.z_index[keep] + z_offset
        cols = slice(None, None, max(1, int(math.ceil(umap.arc_mm.size / MAP_COLUMNS))))
        out[key] = UnrolledMap(umap.values[keep][:, cols], umap.arc_mm[cols], z, z * geometry.spacing_um[0] / 1000.0,
                               umap.winding[cols], name, unit)
    return out


def stitch_maps(parts: list[dict[str, UnrolledMap]], spacing_z_um: float) -> dict[str, UnrolledMap]:
    """Stack the chunks' maps in height on the longest chunk's arc grid."""
    out = {}
    keys = {k for p in parts for k in p}
    for key in keys:
        maps = [p[key] for p in parts if key in p and p[key].values.shape[0]]
        if not maps:
            continue
        ref = max(maps, key=lambda m: m.arc_mm.size)
        rows, z_index = [], []
        for m in maps:
            for row, z in zip(m.values, m.z_index, strict=True):
                ok = np.isfinite(row)
                if ok.sum() >= 2 and m.arc_mm.size:
                    vals = np.interp(ref.arc_mm, m.arc_mm[ok], row[ok], left=np.nan, right=np.nan)
                    nearest = np.clip(np.searchsorted(m.arc_mm, ref.arc_mm), 0, m.arc_mm.size - 1)
                    vals = np.where(ok[nearest], vals, np.nan)
                else:
                    vals = np.full(ref.arc_mm.size, np.nan)
                rows.append(vals.astype(np.float32))
                z_index.append(int(z))
        z = np.array(z_index)
        out[key] = UnrolledMap(np.array(rows), ref.arc_mm, z, z * spacing_z_um / 1000.0, ref.winding, ref.name, ref.unit)
    return out


def merge_geometry_json(parts: list[dict[str, Any]], prior_json: dict[str, Any]) -> dict[str, Any]:
    """The ``geometry`` block of a chunked inspection from its chunks' blocks."""
    out = dict(prior_json)
    if not parts:
        return out

    def values(key: str) -> list[float]:
        return [p[key] for p in parts if isinstance(p.get(key), int | float) and p.get(key) is not None]

    for key in ("can_outer_radius_um", "can_inner_radius_um", "roll_inner_radius_um", "roll_outer_radius_um",
                "can_outer_diameter_mm", "can_wall_mean_um", "can_ovality"):
        vals = values(key)
        out[key] = float(np.median(vals)) if vals else out.get(key)
    for key, func in (("can_wall_min_um", min), ("can_dent_max_um", max)):
        vals = values(key)
        out[key] = float(func(vals)) if vals else out.get(key)
    windings = values("windings")
    out["windings"] = int(np.median(windings)) if windings else out.get("windings")
    out["roll_slices"] = int(sum(values("roll_slices")))
    out["skipped_slices"] = int(sum(values("skipped_slices")))
    ranges = [p["roll_slice_range"] for p in parts if p.get("roll_slice_range")]
    out["roll_slice_range"] = [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else None
    notes: list[str] = []
    for p in parts:
        for note in p.get("notes", []):
            if note not in notes:
                notes.append(note)
    out["notes"] = notes
    # Uncoated strips come from the prior (seen over the whole height), kept from prior_json.
    return out
