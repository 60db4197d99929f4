"""The cathode's own anatomy along the wound strip: where it starts and ends, and where it is
coated on one side only. Geometry, never a finding.

Every wound cell has them (DESIGN.md, "Anatomy of a healthy cell"): the cathode starts a
fraction of a turn after the anode and ends a fraction of a turn before it; over up to about a
turn at its ends a coating that would face no counter-electrode is left off, so the sheet
there is one coating and the Al foil, about half as thick, over the roll's whole height. Read
as defects, those ends are a "void in the outer coating" and a sheet "40 % thinner" in every
healthy cell. Here they are found along the strip (position = winding · n_angles + angle rank
from the seam, so a stretch may cross the seam) from the sheet's thickness over the height of
the roll, reported, and set aside: the sheet is not measured there and no detector looks for
voids there.

What tells anatomy from a defect: an end stretch runs over the whole height (a void or thin
patch of a real defect spans part of it), it touches the cathode's end along the strip (a thin
patch in the middle of the strip stays a finding) and it is no longer than
:data:`MAX_SINGLE_SIDED_TURNS`. The uncoated tab window in the middle of the strip is found by
:mod:`core.geometry.zones`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.geometry.layers import SliceRoll
from core.geometry.zones import _along, along_mask_to_sheet, blank_sheet, sheet_order

# A sheet is there where it is at least this fraction of the roll's typical sheet: an absent
# cathode leaves separators and electrolyte (the band tracer finds nothing, or a sliver).
PRESENT_FRACTION = 0.3
# One coating and the foil of a double-coated sheet (60 + 15 of 135 µm, 70 + 15 of 155 µm)
# read 0.45–0.65 of it, and blur widens a thin band (a real 21700's last turn at 34 µm
# voxels reads 0.68–0.87). Any end stretch thinner than the thickness detector's review limit
# (10 %) over the whole height is the electrode's end, not a patch.
SINGLE_SIDED_FRACTION = 0.9
# The stretch runs over the roll's height: this fraction of the slices agree.
MIN_SLICE_FRACTION = 0.8
# One-sided coating at an electrode's end is "up to about a turn" (DESIGN.md); a longer thin
# stretch is not excused as anatomy beyond this length.
MAX_SINGLE_SIDED_TURNS = 1.5


@dataclass
class CathodeStretch:
    """A stretch of the cathode strip that is anatomy, over the roll's height.

    Attributes
    ----------
    kind : {"absent", "single_sided"}
        No cathode there (before its start, after its end), or coated on one side only.
    end : {"inner", "outer"}
        Which end of the cathode it belongs to (the mandrel's or the can's).
    missing_coating : {"inner", "outer", "both", "unknown"}
        Which coating is left off: "inner" faces the axis, "outer" the can.
    start, stop : int
        Positions along the strip (``winding · n_angles + rank from the seam``), stop exclusive.
    n_angles : int
        Angles of the slices the positions count in.
    winding_start, winding_end : int
    start_deg, end_deg : float
        Polar angles (image convention) at the stretch's two ends.
    length_mm : float
        Arc length along the strip.
    radius_um : float
        Typical radius of the stretch.

    An absent stretch is set aside to the strip's end but described (windings, angles,
    length) where the anode's collector runs beyond (or before) the cathode.
    """

    kind: str
    end: str
    missing_coating: str
    start: int
    stop: int
    n_angles: int
    winding_start: int
    winding_end: int
    start_deg: float
    end_deg: float
    length_mm: float
    radius_um: float
    ref_seam_deg: float = math.nan  # positions count from this seam (zones.strip_shift)

    def to_json(self) -> dict:
        return {"kind": self.kind, "end": self.end, "missing_coating": self.missing_coating,
                "winding_start": self.winding_start, "start_deg": round(self.start_deg, 1),
                "winding_end": self.winding_end, "end_deg": round(self.end_deg, 1),
                "length_mm": round(self.length_mm, 2)}

    def sheet_mask(self, s: SliceRoll, k_max: int, margin_um: float = 0.0) -> np.ndarray:
        """(windings, angles) mask of the stretch in slice ``s``, grown by ``margin_um`` of arc
        on its side towards the coated strip (where the coating's edge tapers)."""
        n_t = s.t_rad.size
        along = np.zeros(k_max * n_t, bool)
        scale = n_t / self.n_angles if self.n_angles else 1.0
        grow = 0
        if margin_um > 0 and math.isfinite(self.radius_um) and self.radius_um > 0:
            grow = int(math.ceil(margin_um / (2 * np.pi * self.radius_um / n_t)))
        lo, hi = int(self.start * scale), int(math.ceil(self.stop * scale))
        if self.end == "inner":
            hi += grow
        else:
            lo -= grow
        along[max(0, lo): min(along.size, hi)] = True
        return along_mask_to_sheet(s, along, k_max, self.ref_seam_deg)


@dataclass
class CathodeEnd:
    """Where the cathode strip starts (inner end) or stops (outer end)."""

    end: str
    winding: int
    angle_deg: float
    position_turns: float  # along the strip from the seam (the innermost collector's start)

    def to_json(self) -> dict:
        return {"electrode": "cathode", "end": self.end, "winding": self.winding,
                "angle_deg": round(self.angle_deg, 1), "position_turns": round(self.position_turns, 3)}


@dataclass
class CathodeAnatomy:
    """The cathode's ends and the stretches set aside at them."""

    ends: list[CathodeEnd]
    stretches: list[CathodeStretch]
    # The coated strip's first and last positions (counted as the stretches count).
    first: int = 0
    last: int = -1

    def to_json(self) -> dict:
        return {"ends": [e.to_json() for e in self.ends], "stretches": [s.to_json() for s in self.stretches]}


def find_cathode_anatomy(rolls: list[SliceRoll], slice_um: float, *,
                         min_slices: int = 1) -> CathodeAnatomy:
    """Find the cathode's ends and one-side-coated stretches (see the module docstring).

    Parameters
    ----------
    rolls : list of SliceRoll
        The slices through the roll's interior, in order.
    slice_um : float
        Slice spacing (µm).
    min_slices : int
        Fewest slices to judge from.
    """
    if len(rolls) < min_slices or not rolls:
        return CathodeAnatomy([], [])
    k_max = max(s.sheet_thickness_um.shape[0] for s in rolls)
    n_t = rolls[0].t_rad.size
    if any(s.t_rad.size != n_t for s in rolls) or k_max == 0:
        return CathodeAnatomy([], [])
    ref = rolls[len(rolls) // 2].seam_deg  # every slice's positions count from this seam

    def along(name: str) -> np.ndarray:
        return np.array([_along(s, getattr(s, name), k_max, ref) for s in rolls])  # (z, positions)

    thick = along("sheet_thickness_um")
    cu_in = along("cu_radius_um")
    inner_edge, outer_edge = along("sheet_inner_um"), along("sheet_outer_um")
    mid = 0.5 * (inner_edge + outer_edge)
    inner_off, outer_off = inner_edge - cu_in, outer_edge - cu_in
    if not np.isfinite(thick).any():
        return CathodeAnatomy([], [])
    # The roll's typical sheet: the middle half of the windings (ends and tab windows are a
    # small part of them).
    k_lo, k_hi = k_max // 4, max(k_max - k_max // 4, k_max // 4 + 1)
    typical = float(np.nanmedian(thick[:, k_lo * n_t:k_hi * n_t]))
    if not math.isfinite(typical) or typical <= 0:
        return CathodeAnatomy([], [])
    n_z = len(rolls)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = thick / typical
        known = np.isfinite(ratio).sum(axis=0)
        present_frac = (np.isfinite(ratio) & (ratio >= PRESENT_FRACTION)).sum(axis=0) / n_z
        # Of the slices where the sheet was measured (its edge slices may be set aside).
        thin_frac = np.where(known >= 0.5 * n_z,
                             (np.isfinite(ratio) & (ratio < SINGLE_SIDED_FRACTION)).sum(axis=0) / np.maximum(known, 1),
                             0.0)
    present = present_frac >= 0.5
    # Close one-sample gaps (a traced edge lost in noise) so the strip is one run.
    present = ndimage.binary_closing(present, np.ones(3, bool)) | present
    idx = np.nonzero(present)[0]
    if idx.size == 0:
        return CathodeAnatomy([], [])
    first, last = int(idx[0]), int(idx[-1])
    order_mid = sheet_order(rolls[len(rolls) // 2])
    t = rolls[0].t_rad

    def angle_of(pos: int) -> float:
        return float(np.degrees(t[order_mid[pos % n_t]]))

    def radius_of(a: int, b: int) -> float:
        block = mid[:, a:b]
        return float(np.nanmedian(block)) if np.isfinite(block).any() else math.nan

    ends = [CathodeEnd("inner", first // n_t, angle_of(first), first / n_t),
            CathodeEnd("outer", last // n_t, angle_of(last), (last + 1) / n_t)]
    stretches: list[CathodeStretch] = []

    cu = cu_in
    cu_traced = np.nonzero(np.isfinite(cu).mean(axis=0) >= 0.5)[0]

    def stretch(kind: str, end: str, a: int, b: int, missing: str) -> None:
        """Set aside positions [a, b); described where the anode (its collector) is there."""
        if b <= a:
            return
        seen = cu_traced[(cu_traced >= a) & (cu_traced < b)]
        ra, rb = (int(seen[0]), int(seen[-1]) + 1) if kind == "absent" and seen.size else (a, b)
        r_um = radius_of(ra, rb)
        if not math.isfinite(r_um):  # no sheet traced there: the collector's radius
            block = cu[:, ra:rb]
            r_um = float(np.nanmedian(block)) if np.isfinite(block).any() else math.nan
        length = (rb - ra) * 2 * np.pi * r_um / n_t / 1000 if math.isfinite(r_um) else math.nan
        stretches.append(CathodeStretch(
            kind=kind, end=end, missing_coating=missing, start=a, stop=b, n_angles=n_t,
            winding_start=ra // n_t, winding_end=(rb - 1) // n_t, start_deg=angle_of(ra), end_deg=angle_of(rb - 1),
            length_mm=length, radius_um=r_um, ref_seam_deg=float(ref) if math.isfinite(ref) else math.nan))

    # Before the start and after the end: no cathode, wherever the tracer still visits the strip
    # between two collectors (a void search there would find the missing sheet).
    stretch("absent", "inner", 0, first, "both")
    stretch("absent", "outer", last + 1, k_max * n_t, "both")
    # One-sided stretches: thin over the height, running from an end inwards along the strip.
    thin = (thin_frac >= MIN_SLICE_FRACTION) & present
    thin = ndimage.binary_closing(thin, np.ones(2 * max(n_t // 360, 1) + 1, bool)) & present
    longest = int(MAX_SINGLE_SIDED_TURNS * n_t)
    # Where the sheet was measured in too few slices (the seam, where every layer's ray index
    # changes and the tracer leaves a few degrees out) the walk goes on, for up to 10°.
    unknown = known < 0.5 * n_z
    max_gap = max(n_t // 36, 1)
    # Where the few slices that measured the sheet all find it thin, the walk goes on however
    # long: next to the electrode's end its edge is set aside in most slices (a generated cell:
    # 80° of its last winding measured in 8 of 23 slices, all at half thickness, which stopped
    # the walk and left a 34 mm single-sided stretch to be called a void and a thin patch).
    with np.errstate(invalid="ignore", divide="ignore"):
        sparse_thin = (known > 0) & ((np.isfinite(ratio) & (ratio < SINGLE_SIDED_FRACTION)).sum(axis=0)
                                     >= MIN_SLICE_FRACTION * np.maximum(known, 1))
    for end, step, origin in (("inner", 1, first), ("outer", -1, last)):
        j, last_thin, gap_run = origin, None, 0
        while 0 <= j < thin.size and abs(j - origin) < longest:
            if thin[j] or (unknown[j] and sparse_thin[j]):
                last_thin, gap_run = j, 0
            elif unknown[j] and gap_run < max_gap:
                gap_run += 1
            else:
                break
            j += step
        if last_thin is None:
            continue
        a, b = (origin, last_thin + 1) if step > 0 else (last_thin, origin + 1)
        if b - a < max(n_t // 72, 2):  # under 5° of arc: the edge's own blur, not a stretch
            continue
        here = thick[:, a:b]
        missing_um = typical - float(np.nanmedian(here)) if np.isfinite(here).any() else math.nan
        stretch("single_sided", end, a, b, _missing_coating(inner_off, outer_off, a, b, present, missing_um))
    return CathodeAnatomy(ends, stretches, first, last)


def _missing_coating(inner_off: np.ndarray, outer_off: np.ndarray, a: int, b: int, present: np.ndarray,
                     missing_um: float) -> str:
    """Which coating is missing over positions [a, b): the face of the sheet that moved.

    ``inner_off``/``outer_off`` are the sheet's inner and outer faces less the Cu collector
    inside it (slices × positions). Against the strip either side of the stretch, the face
    whose coating is gone moves by about that coating's thickness and the other stays; the
    side is named only when one face moved at least twice as far as the other and by a third
    of the missing thickness (``missing_um``), else "unknown".
    """
    n = present.size
    lo, hi = max(0, a - (b - a)), min(n, b + (b - a))
    neighbours = np.r_[np.arange(lo, a), np.arange(b, hi)].astype(int)
    neighbours = neighbours[present[neighbours]] if neighbours.size else neighbours

    def med(arr: np.ndarray, cols) -> float:
        block = arr[:, cols]
        return float(np.nanmedian(block)) if np.isfinite(block).any() else math.nan

    if neighbours.size == 0 or not missing_um > 0:
        return "unknown"
    moved_in = med(inner_off, slice(a, b)) - med(inner_off, neighbours)  # > 0: inner face moved out
    moved_out = med(outer_off, neighbours) - med(outer_off, slice(a, b))  # > 0: outer face moved in
    if not (math.isfinite(moved_in) and math.isfinite(moved_out)):
        return "unknown"
    if moved_out >= max(2 * abs(moved_in), missing_um / 3):
        return "outer"
    if moved_in >= max(2 * abs(moved_out), missing_um / 3):
        return "inner"
    return "unknown"


def apply_cathode_anatomy(rolls: list[SliceRoll], anatomy: CathodeAnatomy, margin_um: float = 0.0) -> None:
    """Set the sheet aside over every anatomy stretch in every slice (not measured, no voids),
    and ``margin_um`` of arc beyond, where the coating's edge tapers (a generated cell's
    outer coating ending at 270° read as a 0.0008 mm³ "void" at 271°)."""
    for st in anatomy.stretches:
        for s in rolls:
            k_max = s.sheet_thickness_um.shape[0]
            mask = st.sheet_mask(s, k_max, margin_um)
            for k in np.nonzero(mask.any(axis=1))[0]:
                blank_sheet(s, int(k), mask[k])
