"""The unrolled cathode-thickness map as the report, the ``--maps`` PNG and the workstation show it.

:class:`ThicknessSummary` is what the figures need, made once from an inspection and kept in
the log beside the result (``cellqc report ID`` draws the same pages again from it): the map
reduced to at most :data:`MAX_COLUMNS` arc positions (block means), its rows' slices, the
winding of each column, the seam and winding direction (to place findings and anatomy on the
sheet), the histogram of every measured sample and its statistics. Its bytes are an ``.npz``;
their SHA-256 is filed in the result (``report_data``), so a changed file is refused.

:func:`sheet_marks` places findings and the cell's anatomy (tab window, the cathode's ends,
one-sided stretches, coating-edge bands) on the unrolled sheet; the PDF figure and the GUI's map
both draw them from here.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.describe import finding_slice_range, is_anatomy, number

#: Columns kept along the arc (the PDF draws about 1000 pixels across).
MAX_COLUMNS = 2400
#: Rows kept (slices; more are block-averaged).
MAX_ROWS = 400
FORMAT = "cellqc.thickness-summary/1"
#: Deviation from the cell median at the ends of the colour scale (the GUI's too).
SPAN = 0.3


@dataclass
class ThicknessSummary:
    """The cathode thickness map and histogram, reduced for figures.

    Attributes
    ----------
    values_um : ndarray (rows, cols)
        Sheet thickness (µm), NaN where not measured; rows are slices ``z_index``.
    arc_mm : ndarray (cols,)
        Arc position of each column from the sheet's inner end (mm).
    z_index : ndarray (rows,)
        Slice of each row (when rows were averaged: the first slice of the block).
    rows_per_block : int
        Slices averaged into one row.
    winding : ndarray (cols,)
        Winding of each column.
    spacing_z_um : float
        Slice spacing (µm).
    median_um : float
        The cell median the deviations are measured from.
    hist_counts, hist_edges : ndarray
        Histogram of every measured thickness sample (µm).
    n, mean_um, std_um : statistics of those samples.
    seam_deg : float
        Polar angle (image convention) where the windings start (NaN: unknown).
    direction : int
        +1 when the sheet runs counter-clockwise outwards (the angle grows along it), else −1.
    """

    values_um: np.ndarray
    arc_mm: np.ndarray
    z_index: np.ndarray
    winding: np.ndarray
    spacing_z_um: float
    median_um: float
    hist_counts: np.ndarray
    hist_edges: np.ndarray
    n: int
    mean_um: float
    std_um: float
    seam_deg: float = math.nan
    direction: int = 1
    rows_per_block: int = 1

    # ------------------------------------------------------------------ making
    @classmethod
    def from_map(cls, umap: Any, spacing_z_um: float, median_um: float | None = None,
                 seam_deg: float | None = None, direction: int = 1,
                 samples_um: np.ndarray | None = None) -> ThicknessSummary | None:
        """From an :class:`core.geometry.maps.UnrolledMap` of thickness (µm); None when empty.

        ``samples_um`` are the measured samples the histogram and statistics count (the
        detector's, so they equal the result's metrics); the map's values when omitted.
        """
        values = np.asarray(umap.values, dtype=np.float32)
        if values.ndim != 2 or values.size == 0 or not np.isfinite(values).any():
            return None
        samples = values if samples_um is None else np.asarray(samples_um)
        finite = samples[np.isfinite(samples)].astype(np.float64)
        if finite.size == 0:
            finite = values[np.isfinite(values)].astype(np.float64)
        median = float(median_um) if median_um is not None and math.isfinite(median_um) else float(np.median(finite))
        lo, hi = np.percentile(finite, [0.1, 99.9])
        lo, hi = min(float(lo), (1 - SPAN) * median), max(float(hi), (1 + SPAN) * median)
        bins = int(np.clip(np.sqrt(finite.size), 10, 80))
        counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
        fc = max(1, math.ceil(values.shape[1] / MAX_COLUMNS))
        fr = max(1, math.ceil(values.shape[0] / MAX_ROWS))
        reduced = _block_nanmean(values, fr, fc)
        cols = np.arange(0, values.shape[1] // fc * fc if values.shape[1] >= fc else values.shape[1], fc)
        arc = np.asarray(umap.arc_mm, float)
        wind = np.asarray(umap.winding)
        if reduced.shape[1] != cols.size:  # fewer columns than one block
            cols = np.arange(reduced.shape[1]) * fc
        centre = np.clip(cols + fc // 2, 0, arc.size - 1)
        rows = np.asarray(umap.z_index)[::fr][: reduced.shape[0]]
        return cls(values_um=reduced.astype(np.float32), arc_mm=arc[centre].astype(np.float64),
                   z_index=rows.astype(np.int64), winding=wind[centre].astype(np.int64),
                   spacing_z_um=float(spacing_z_um), median_um=median, hist_counts=counts.astype(np.int64),
                   hist_edges=edges.astype(np.float64), n=int(finite.size), mean_um=float(finite.mean()),
                   std_um=float(finite.std()),
                   seam_deg=float(seam_deg) if seam_deg is not None and math.isfinite(seam_deg) else math.nan,
                   direction=1 if direction >= 0 else -1, rows_per_block=fr)

    @classmethod
    def from_array(cls, values: np.ndarray, extent_mm: Sequence[float] | None = None,
                   spacing_z_um: float | None = None) -> ThicknessSummary | None:
        """From a bare 2-D map (rows = slices from 0, columns along the arc), with its
        ``(arc0, arc1, z0, z1)`` extent in mm when known; no windings, no seam."""
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 2 or values.size == 0:
            return None
        n_rows, n_cols = values.shape
        if extent_mm is not None and len(extent_mm) == 4:
            a0, a1, z0, z1 = (float(v) for v in extent_mm)
        else:
            a0, a1, z0, z1 = 0.0, float(n_cols - 1), 0.0, float(max(n_rows - 1, 0))
        dz = spacing_z_um if spacing_z_um else (1000.0 * (z1 - z0) / (n_rows - 1) if n_rows > 1 else 1000.0)
        first = int(round(z0 * 1000.0 / dz)) if dz else 0

        class _Map:
            pass

        umap = _Map()
        umap.values = values
        umap.arc_mm = np.linspace(a0, a1, n_cols)
        umap.z_index = np.arange(first, first + n_rows)
        umap.winding = np.zeros(n_cols, np.int64)
        return cls.from_map(umap, dz)

    @classmethod
    def from_inspection(cls, inspection: Any) -> ThicknessSummary | None:
        """From an :class:`core.inspect.Inspection` (its thickness map and geometry)."""
        umap = (inspection.maps or {}).get("cathode_thickness_um")
        if umap is None:
            return None
        geometry = inspection.geometry
        seam, direction = None, 1
        if geometry is not None:
            rolls = [s for s in geometry.slices if s.is_roll]
            seam = rolls[0].seam_deg if rolls else None
            direction = int(geometry.direction)
        median = (inspection.result.get("metrics") or {}).get("cathode_sheet_thickness_median_um")
        samples = (getattr(inspection, "raw_maps", None) or {}).get("cathode_thickness_um")
        return cls.from_map(umap, inspection.volume.spacing_um[0], median, seam, direction, samples)

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """The summary as ``.npz`` bytes (compressed; the same summary gives the same bytes)."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, format=np.array(FORMAT), values_um=self.values_um, arc_mm=self.arc_mm, z_index=self.z_index,
            winding=self.winding, spacing_z_um=np.float64(self.spacing_z_um), median_um=np.float64(self.median_um),
            hist_counts=self.hist_counts, hist_edges=self.hist_edges, n=np.int64(self.n),
            mean_um=np.float64(self.mean_um), std_um=np.float64(self.std_um), seam_deg=np.float64(self.seam_deg),
            direction=np.int64(self.direction), rows_per_block=np.int64(self.rows_per_block))
        return _stable_zip(buffer.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> ThicknessSummary:
        """Read :meth:`to_bytes`; ValueError when the bytes are not a thickness summary."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    raise ValueError(f"not a {FORMAT}")
                return cls(values_um=z["values_um"], arc_mm=z["arc_mm"], z_index=z["z_index"], winding=z["winding"],
                           spacing_z_um=float(z["spacing_z_um"]), median_um=float(z["median_um"]),
                           hist_counts=z["hist_counts"], hist_edges=z["hist_edges"], n=int(z["n"]),
                           mean_um=float(z["mean_um"]), std_um=float(z["std_um"]), seam_deg=float(z["seam_deg"]),
                           direction=int(z["direction"]), rows_per_block=int(z["rows_per_block"]))
        except Exception as exc:  # noqa: BLE001 - a bad zip, a missing array, a wrong type: all one refusal
            raise ValueError(f"not a thickness summary ({type(exc).__name__}: {exc})") from None

    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    # ------------------------------------------------------------------ geometry on the sheet
    @property
    def total_arc_mm(self) -> float:
        return float(self.arc_mm[-1] - self.arc_mm[0]) if self.arc_mm.size > 1 else 0.0

    def frame(self) -> SheetFrame:
        """Where things sit on this map (see :class:`SheetFrame`)."""
        dz = self.spacing_z_um / 1000.0
        z0 = float(self.z_index[0]) * dz if self.z_index.size else 0.0
        return SheetFrame(arc_mm=self.arc_mm, winding=self.winding, seam_deg=self.seam_deg,
                          direction=self.direction, spacing_z_um=self.spacing_z_um, z_top_mm=z0,
                          z_bottom_mm=z0 + self.values_um.shape[0] * self.rows_per_block * dz)


@dataclass
class SheetFrame:
    """Positions on an unrolled sheet: arc of each column, its winding, the seam and direction,
    and the map's top and bottom (mm from slice 0's face; a row spans its slice's faces)."""

    arc_mm: np.ndarray
    winding: np.ndarray
    seam_deg: float
    direction: int
    spacing_z_um: float
    z_top_mm: float
    z_bottom_mm: float

    @classmethod
    def from_map(cls, umap: Any, spacing_z_um: float, seam_deg: float | None, direction: int) -> SheetFrame:
        """For an :class:`core.geometry.maps.UnrolledMap` (rows = its ``z_index`` slices)."""
        dz = float(spacing_z_um) / 1000.0
        z = np.asarray(umap.z_index)
        return cls(arc_mm=np.asarray(umap.arc_mm, float), winding=np.asarray(umap.winding),
                   seam_deg=float(seam_deg) if seam_deg is not None and math.isfinite(seam_deg) else math.nan,
                   direction=1 if direction >= 0 else -1, spacing_z_um=float(spacing_z_um),
                   z_top_mm=float(z.min()) * dz if z.size else 0.0,
                   z_bottom_mm=(float(z.max()) + 1) * dz if z.size else dz)

    def arc_at(self, winding: int, angle_deg: float) -> float | None:
        """Arc position (mm) of polar angle ``angle_deg`` (image convention) on winding
        ``winding``: the winding's columns run from the seam in the winding direction. None
        when the winding is not on the map or the seam is unknown."""
        if not math.isfinite(self.seam_deg) or angle_deg is None or not math.isfinite(float(angle_deg)):
            return None
        cols = np.nonzero(self.winding == int(winding))[0]
        if cols.size < 2:
            return None
        start, end = float(self.arc_mm[cols[0]]), float(self.arc_mm[cols[-1]])
        theta = math.radians((self.direction * (float(angle_deg) - self.seam_deg)) % 360.0)
        return start + theta / (2 * math.pi) * (end - start)

    def z_span(self, first: int | None, last: int | None) -> tuple[float, float]:
        """Top and bottom (mm) of slices ``first``–``last`` on the map (the whole map for None)."""
        if first is None or last is None:
            return self.z_top_mm, self.z_bottom_mm
        dz = self.spacing_z_um / 1000.0
        return max(self.z_top_mm, first * dz), min(self.z_bottom_mm, (last + 1) * dz)


def _block_nanmean(values: np.ndarray, fr: int, fc: int) -> np.ndarray:
    rows, cols = values.shape
    if fr == 1 and fc == 1:
        return values
    r, c = rows // fr * fr, cols // fc * fc
    if r == 0 or c == 0:
        return values[::fr, ::fc]
    blocks = values[:r, :c].reshape(r // fr, fr, c // fc, fc)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(blocks)
        total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
        count = finite.sum(axis=(1, 3))
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def _stable_zip(data: bytes) -> bytes:
    """The same zip with fixed member dates, so equal summaries give equal bytes and hashes."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


# ---------------------------------------------------------------------------- marks


@dataclass(frozen=True)
class SheetMark:
    """A rectangle on the unrolled sheet: a finding (``kind="finding"``) or anatomy.

    ``arc0``–``arc1`` in mm along the sheet, ``z0``–``z1`` in mm from slice 0's face.
    """

    kind: str
    label: str
    text: str
    arc0: float
    arc1: float
    z0: float
    z1: float
    severity: str = "info"
    finding_id: str | None = None


def _arc_span(frame: SheetFrame, k0: int, a0: float, k1: int, a1: float) -> tuple[float, float] | None:
    """Arc span of a stretch along the sheet from (winding, angle) to (winding, angle). Its
    windings count from the anatomy's own seam, which may differ from the map's by a few
    degrees: an end that falls before its start lies just past the next seam."""
    s, e = frame.arc_at(k0, a0), frame.arc_at(k1, a1)
    if s is None:
        return None
    if e is None or e < s:
        later = frame.arc_at(int(k1) + 1, a1)
        e = later if later is not None and later >= s else (float(frame.arc_mm[-1]) if e is None or e < s else e)
    return s, e


def sheet_marks(frame: SheetFrame, result: Mapping[str, Any],
                findings: Sequence[Mapping[str, Any]] | None = None) -> list[SheetMark]:
    """Findings (with a winding and an angle) and the cell's anatomy placed on the sheet.

    Findings are centred on their winding and angle, as wide as their arc length (at least
    0.5 mm) and as tall as their slices. Anatomy comes from ``result["geometry"]``: uncoated
    zones (tab windows), the cathode's ends and its one-sided or absent stretches, and the
    coating-edge bands at the roll's ends (the map's whole width).
    """
    marks: list[SheetMark] = []
    geometry = result.get("geometry") or {}
    for f in findings if findings is not None else (result.get("findings") or []):
        if f.get("winding") is None or f.get("angle_deg") is None or is_anatomy(f):
            continue
        centre = frame.arc_at(int(f["winding"]), float(f["angle_deg"]))
        if centre is None:
            continue
        half = max(float(f.get("arc_length_um") or 0.0) / 2000.0, 0.5)
        z0, z1 = frame.z_span(*(finding_slice_range(f) or (None, None)))
        marks.append(SheetMark("finding", str(f.get("id") or ""), str(f.get("message") or ""), centre - half,
                               centre + half, z0, z1, str(f.get("severity") or "info"), str(f.get("id") or "")))
    z_top, z_bottom = frame.z_top_mm, frame.z_bottom_mm
    for zone in geometry.get("uncoated_zones") or []:
        span = _arc_span(frame, zone["winding"], zone["start_deg"], zone["winding"], zone["end_deg"])
        if span is not None:
            marks.append(SheetMark("anatomy", "tab window",
                                   f"uncoated strip (tab window), {number(zone.get('arc_length_mm'), 'mm')} mm",
                                   span[0], span[1], z_top, z_bottom))
    anatomy = geometry.get("cathode_anatomy") or {}
    for st in anatomy.get("stretches") or []:
        span = _arc_span(frame, st["winding_start"], st["start_deg"], st["winding_end"], st["end_deg"])
        if span is None:
            continue
        label = "one-sided coating" if st.get("kind") == "single_sided" else "no cathode"
        marks.append(SheetMark("anatomy", label, f"{label} at the cathode's {st.get('end')} end, "
                               f"{number(st.get('length_mm'), 'mm')} mm", span[0], span[1], z_top, z_bottom))
    for end in anatomy.get("ends") or []:
        pos = frame.arc_at(end["winding"], end["angle_deg"])
        if pos is not None:
            marks.append(SheetMark("end", f"cathode {end.get('end')} end", "", pos, pos, z_top, z_bottom))
    if frame.arc_mm.size:
        arc0, arc1 = float(frame.arc_mm[0]), float(frame.arc_mm[-1])
        for band in geometry.get("coating_edges") or []:
            z0, z1 = frame.z_span(band.get("z_first"), band.get("z_last"))
            if z1 > z0:
                marks.append(SheetMark("band", "coating edge", "coating-edge band, not measured",
                                       arc0, arc1, z0, z1))
    return marks
