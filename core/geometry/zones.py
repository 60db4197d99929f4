"""Uncoated zones of the cathode: tab windows, recognised so they are not read as defects.

Many cylindrical cells (a 21700 with a mid-length cathode tab, for one) leave a strip of the
cathode foil uncoated where the tab is welded. Coating runs along the electrode and is
interrupted across its whole width, so in the roll the strip is a stretch of one winding
where the cathode sheet is only its Al foil, over the full height of the roll. The layers
on either side relax into it. By design, not a defect: a void never removes the whole sheet
over millimetres of height, a thin patch never takes it down to the foil. Inside a zone the
sheet is not measured and the collectors that bound it are not judged for deflection or
buckling; the zone itself is reported (information, not a verdict).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.geometry.layers import SliceRoll

# What is left of a sheet without coating: the Al foil (~15 µm of a ~150 µm sheet), widened
# by blur. Coating voids and thin patches leave far more than this.
UNCOATED_FRACTION = 0.4
# Brighter than this fraction of the coated sheet's band is coating (NMC); the foil and the Al
# tab welded on it read ~0.45 of it (the materials' attenuations), with blur less.
UNCOATED_BRIGHTNESS = 0.65
# The strip runs across the electrode's whole width: nearly every slice through the roll.
MIN_SLICE_FRACTION = 0.8
# Below this the sheet is thinned over the strip's whole height next to it: coated on one
# side only (about half the sheet), or tapering where the coating resumes (on a real 21700
# 14 % thin over 1.2 mm beyond the window: thinner than the thickness detector's 10 % limit).
EDGE_FRACTION = 0.9


@dataclass
class UncoatedZone:
    """A stretch of one cathode sheet without coating over the roll's height.

    ``start``/``stop`` are positions along the wound sheet (winding · n_angles + angle rank
    from the seam, see :func:`sheet_order`): a zone may cross the seam, where the ray index
    of a layer changes.
    """

    winding: int
    start_deg: float
    end_deg: float
    arc_length_mm: float
    height_mm: float
    slice_fraction: float
    radius_um: float = math.nan
    start: int = 0
    stop: int = 0
    n_angles: int = 0  # of the slices it was found in (positions count in these)
    ref_seam_deg: float = math.nan  # positions count from this seam (see strip_shift)

    def to_json(self) -> dict:
        return {"winding": self.winding, "start_deg": round(self.start_deg, 1), "end_deg": round(self.end_deg, 1),
                "arc_length_mm": round(self.arc_length_mm, 2), "height_mm": round(self.height_mm, 2),
                "slice_fraction": round(self.slice_fraction, 3)}

    def sheet_mask(self, s: SliceRoll, k_max: int, margin_um: float = 0.0) -> np.ndarray:
        """(windings, angles) mask of the zone in slice ``s``, grown by ``margin_um`` of arc."""
        n_t = s.t_rad.size
        grow = 0
        if margin_um > 0 and math.isfinite(self.radius_um) and self.radius_um > 0:
            grow = int(math.ceil(margin_um / (2 * np.pi * self.radius_um / n_t)))
        along = np.zeros(k_max * n_t, bool)
        along[max(0, self.start - grow): min(along.size, self.stop + grow)] = True
        return along_mask_to_sheet(s, along, k_max, self.ref_seam_deg)


def sheet_order(s: SliceRoll) -> np.ndarray:
    """Angle indices of a slice ordered from the seam in the winding direction.

    Position ``k · n + j`` along the wound sheet is winding ``k`` at angle ``order[j]``: the
    last sample of winding k meets the first of winding k + 1.
    """
    seam = math.radians(s.seam_deg) if math.isfinite(s.seam_deg) else 0.0
    return np.argsort((s.direction * (s.t_rad - seam)) % (2 * np.pi), kind="stable")


def strip_shift(s: SliceRoll, ref_seam_deg: float) -> int:
    """Samples to add to slice ``s``'s strip positions to count them from ``ref_seam_deg``.

    Each slice counts positions from its own seam; the seam is traced in every slice and
    agrees only to a few degrees (±6° seen on generated cells), so the same physical place
    has positions a few samples apart in two slices. Counted from one reference seam they
    are the same: a zone found over the height then sits where it is in every slice.
    """
    if not (math.isfinite(ref_seam_deg) and math.isfinite(s.seam_deg)):
        return 0
    off_deg = (s.direction * (s.seam_deg - ref_seam_deg) + 180.0) % 360.0 - 180.0
    return int(round(off_deg / 360.0 * s.t_rad.size))


def _shift(along: np.ndarray, shift: int, fill) -> np.ndarray:
    """``out[p + shift] = along[p]`` (positions beyond either end are dropped, gaps filled)."""
    if shift == 0:
        return along
    out = np.full_like(along, fill)
    if shift > 0:
        out[shift:] = along[:-shift]
    else:
        out[:shift] = along[-shift:]
    return out


def _along(s: SliceRoll, values: np.ndarray, k_max: int, ref_seam_deg: float = math.nan) -> np.ndarray:
    """(windings, angles) → positions along the sheet (NaN-padded to ``k_max`` windings),
    counted from ``ref_seam_deg`` when given (:func:`strip_shift`)."""
    out = np.full((k_max, s.t_rad.size), np.nan, np.float32)
    out[: values.shape[0]] = values[:k_max]
    return _shift(out[:, sheet_order(s)].reshape(-1), strip_shift(s, ref_seam_deg), np.nan)


def along_mask_to_sheet(s: SliceRoll, along: np.ndarray, k_max: int, ref_seam_deg: float = math.nan) -> np.ndarray:
    """The inverse of :func:`_along` for a mask: positions (from ``ref_seam_deg``) → (windings, angles)."""
    n_t = s.t_rad.size
    mine = _shift(along, -strip_shift(s, ref_seam_deg), False)
    out = np.zeros((k_max, n_t), bool)
    out[:, sheet_order(s)] = mine.reshape(k_max, n_t)
    return out


def find_uncoated_zones(rolls: list[SliceRoll], slice_um: float, min_height_um: float = 0.0,
                        min_arc_um: float = 2000.0, within: tuple[int, int] | None = None) -> list[UncoatedZone]:
    """Find cathode stretches that are uncoated over the roll's height.

    Parameters
    ----------
    rolls : list of SliceRoll
        The slices through the roll (``is_roll``), in order.
    slice_um : float
        Slice spacing.
    min_height_um : float
        Height of roll that must be seen before a stretch can be called uncoated over its
        height. None by default: a stretch reduced to its foil (both coatings gone) over
        ``min_arc_um`` is no void, however few slices show it (a 12 mm tab window in a
        12-slice volume was a "0.29 mm³ void").
    min_arc_um : float
        Shortest uncoated stretch along the arc (tab windows are several millimetres wide).
    within : (int, int), optional
        First and last position of the coated cathode strip (counted from the middle slice's
        seam, :func:`core.geometry.anatomy.find_cathode_anatomy`): beyond its ends the strip
        is the anode alone, which is no tab window.

    Returns
    -------
    list of UncoatedZone
    """
    if not rolls or len(rolls) * slice_um < min_height_um:
        return []
    # (However short the stack: a void never takes both coatings off over millimetres of arc.)
    k_max = max(s.sheet_thickness_um.shape[0] for s in rolls)
    n_t = rolls[0].t_rad.size
    order_mid = sheet_order(rolls[len(rolls) // 2])
    ref_seam = rolls[len(rolls) // 2].seam_deg  # positions of every slice count from this seam
    thick = np.array([_along(s, s.sheet_thickness_um, k_max, ref_seam) for s in rolls])  # (z, positions)
    inten = np.array([_along(s, s.sheet_intensity, k_max, ref_seam) for s in rolls])
    mid = np.array([_along(s, 0.5 * (s.sheet_inner_um + s.sheet_outer_um), k_max, ref_seam) for s in rolls])
    measured = np.isfinite(thick)
    # A sheet the band tracer found nothing of, between two traced collectors (and not hidden
    # by a collector pressed on it): the foil alone, too faint to trace (seen at 25 µm voxels,
    # where a 15 µm Al foil is no band).
    cu = np.array([_along(s, s.cu_radius_um, k_max, ref_seam) for s in rolls])
    touching = np.array([_along(s, s.sheet_cu_contact.astype(np.float32), k_max, ref_seam) for s in rolls]) > 0
    bracketed = np.isfinite(cu) & np.isfinite(np.concatenate([cu[:, n_t:], np.full((len(rolls), n_t), np.nan)], axis=1))
    empty = bracketed & ~measured & ~touching
    known = measured | empty
    seen = known.sum(axis=0)
    enough = seen >= MIN_SLICE_FRACTION * len(rolls)
    # Each winding against its own typical thickness (inner turns may differ), from its coated
    # part only: a window can be most of an inner turn (17 mm of a 30 mm turn), which would
    # pull the winding's plain median down to the foil.
    roll_typical = float(np.nanmedian(thick)) if measured.any() else math.nan
    ref = np.full(k_max * n_t, np.nan)
    for k in range(k_max):
        block = thick[:, k * n_t:(k + 1) * n_t]
        coated = block[np.isfinite(block) & (block > UNCOATED_FRACTION * roll_typical)]
        if coated.size:
            ref[k * n_t:(k + 1) * n_t] = np.median(coated)
    # The Al tab welded in the window is a band about as thick as the sheet but as faint as the
    # foil (Al, not NMC): uncoated too. Brightness per winding against its coated part.
    iref = np.full(k_max * n_t, np.nan)
    for k in range(k_max):
        block_t, block_i = thick[:, k * n_t:(k + 1) * n_t], inten[:, k * n_t:(k + 1) * n_t]
        coated = np.isfinite(block_i) & np.isfinite(block_t) & (block_t > UNCOATED_FRACTION * roll_typical)
        if coated.any():
            iref[k * n_t:(k + 1) * n_t] = np.median(block_i[coated])
    with np.errstate(invalid="ignore"):
        def over_height(level: float) -> np.ndarray:
            thin = (measured & (thick < level * ref[None, :])) | empty
            thin |= measured & (inten < UNCOATED_BRIGHTNESS * iref[None, :])
            return thin.sum(axis=0) / np.maximum(seen, 1)

        fraction = over_height(UNCOATED_FRACTION)
        strip = (fraction >= MIN_SLICE_FRACTION) & enough
        # Where one side's coating resumes before the other's (offset windows are usual) or
        # the coating tapers, the sheet is thinner over the whole height too: part of the zone.
        typical = np.nanmedian(np.where(enough[None, :], np.where(empty, 0.0, thick), 0.0), axis=0)
        edges = (typical < EDGE_FRACTION * ref) & enough
    # The edge tracer finds the odd noise band inside the strip, and a window across the seam
    # is interrupted where every layer's ray index changes (±4° not traced): close gaps of 10°.
    gap = np.ones(2 * max(int(5 * n_t / 360), 1) + 1, bool)
    strip = ndimage.binary_closing(strip, gap)
    edges = ndimage.binary_closing(edges | strip, gap)
    if within is not None:
        inside = np.zeros(edges.size, bool)
        inside[max(0, within[0]): max(0, within[1] + 1)] = True
        edges &= inside
        strip &= inside
    labels, count = ndimage.label(edges)
    zones = []
    t = rolls[0].t_rad
    for lab in range(1, count + 1):
        run = np.nonzero(labels == lab)[0]
        core = strip[run]
        radius = float(np.nanmedian(mid[:, run])) if np.isfinite(mid[:, run]).any() else math.nan
        if not math.isfinite(radius) or core.sum() * 2 * np.pi * radius / n_t < min_arc_um:
            continue
        arc_um = run.size * 2 * np.pi * radius / n_t
        zones.append(UncoatedZone(
            winding=int(run[run.size // 2] // n_t),
            start_deg=float(np.degrees(t[order_mid[run[0] % n_t]])),
            end_deg=float(np.degrees(t[order_mid[run[-1] % n_t]])),
            arc_length_mm=arc_um / 1000, height_mm=len(rolls) * slice_um / 1000,
            slice_fraction=float(fraction[run][core].mean()), radius_um=radius,
            start=int(run[0]), stop=int(run[-1]) + 1, n_angles=n_t,
            ref_seam_deg=float(ref_seam) if math.isfinite(ref_seam) else math.nan))
    return zones


def apply_uncoated_zones(rolls: list[SliceRoll], zones: list[UncoatedZone], margin_um: float) -> None:
    """Set the cathode sheet aside inside each zone (and ``margin_um`` of arc either side)."""
    for zone in zones:
        for s in rolls:
            k_max = s.sheet_thickness_um.shape[0]
            mask = zone.sheet_mask(s, k_max, margin_um)
            for k in np.nonzero(mask.any(axis=1))[0]:
                blank_sheet(s, int(k), mask[k])


def blank_sheet(s: SliceRoll, k: int, angles: np.ndarray | slice = slice(None), edges: bool = False) -> None:
    """Set sheet ``k`` of a slice aside at ``angles``: not measured, not searched for voids.

    The traced edges stay (the overhang detector follows the layers to the roll's end)
    unless ``edges`` is set.
    """
    names = ["sheet_thickness_um", "cu_al_gap_um", "sheet_intensity"]
    if edges:
        names += ["sheet_inner_um", "sheet_outer_um"]
    for name in names:
        getattr(s, name)[k, angles] = np.nan
    if s.sheet_excluded.shape == s.sheet_thickness_um.shape:
        s.sheet_excluded[k, angles] = True


def collector_exclusion(zones: list[UncoatedZone], s: SliceRoll, k_max: int, pitch_um: float,
                        reach: int = 3, margin_um: float = 2000.0) -> np.ndarray:
    """(windings, angles) mask of the collectors of slice ``s`` that relax into a zone.

    Sheet ``k`` lies between collectors ``k`` and ``k + 1`` at the same angle; both sink into
    the gap an uncoated strip leaves (its two coatings' thickness), and the layers beyond
    them follow, less and less, over a few millimetres of arc: on a real 21700, winding 7's
    collector bulged 131 µm (the missing 2 × 69 µm) into winding 8's 15 mm tab window, the
    collectors of windings 6–8 bent by 34–51 µm against their neighbours up to 1.5 mm before
    its start, and windings 5 and 10 still followed. Collectors up to ``reach`` layers either
    side, over the zone and ``margin_um`` of arc (at least a pitch) beyond its ends, are not
    judged.
    """
    out = np.zeros((k_max, s.t_rad.size), bool)
    margin = max(margin_um, pitch_um if math.isfinite(pitch_um) else 0.0)
    for zone in zones:
        sheet = zone.sheet_mask(s, k_max, margin)
        for shift in range(-reach + 1, reach + 1):  # collectors k - reach + 1 … k + reach
            if shift >= 0:
                out[shift:] |= sheet[: k_max - shift]
            else:
                out[:shift] |= sheet[-shift:]
    return out
