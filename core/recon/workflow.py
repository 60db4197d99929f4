"""One reconstruction from projections to volume, with a record of what was done.

:func:`reconstruct` takes :class:`~core.recon.io.Projections` (line integrals, optional
angles from the file) and the options of ``cellqc recon``: angles, rows, ring removal,
centre of rotation (given, the middle, or searched), parallel-beam FBP or cone-beam FDK. Its
summary (schema ``cellqc.recon/1``) is what ``cellqc recon --json`` writes.

The centre of rotation ``center_px`` is a detector column, 0-based, with pixel ``i`` centred
at ``i``: a centred axis on ``n`` columns is ``(n - 1)/2`` — the convention of tomopy's
``find_center_pc`` and ``find_center_vo``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import InputError
from core.io.validate import format_bytes, memory_budget
from core.recon.io import Projections, match_angles, parse_angles

#: What ``center_px`` means, written into the summary.
CENTER_CONVENTION = (
    "detector column of the rotation axis, 0-based, pixel i centred at i; (n-1)/2 is the "
    "middle (tomopy find_center_pc / find_center_vo convention)"
)


@dataclass
class ReconResult:
    """A reconstructed volume and the record of how it was made.

    Attributes
    ----------
    volume : ndarray
        (z, y, x) float32, attenuation per mm (per pixel without a pixel size).
    voxel_size_um : float
        Isotropic voxel size (1 µm assumed without a pixel size).
    summary : dict
        JSON-ready record (``cellqc.recon/1``).
    """

    volume: np.ndarray
    voxel_size_um: float
    summary: dict[str, Any]


def _rows(spec: str | None, n_rows: int) -> tuple[int, int] | None:
    if not spec:
        return None
    try:
        a, b = (int(v) for v in spec.split(":"))
    except ValueError:
        raise InputError("--rows", f"{spec!r} is not A:B") from None
    if not 0 <= a < b <= n_rows:
        raise InputError("--rows", f"{spec} is outside 0:{n_rows}")
    return a, b


def reconstruct(
    proj: Projections,
    *,
    geometry: str = "parallel",
    angles: str | None = None,
    center: str | float | None = None,
    cor_method: str = "auto",
    pixel_size_um: float | None = None,
    sod: float | None = None,
    sdd: float | None = None,
    ring_removal: str = "none",
    ring_size: int = 11,
    filter_name: str = "ramp",
    pad_mode: str = "zero",
    pad: int | None = None,
    size: int | None = None,
    rows: str | None = None,
    threads: int | None = None,
    backend: str = "numpy",
) -> ReconResult:
    """Reconstruct a volume from projections.

    Parameters
    ----------
    proj : Projections
        From :func:`core.recon.io.read_projections`.
    geometry : {"parallel", "cone"}
        Parallel-beam FBP or cone-beam FDK (needs ``sod``, ``sdd``, ``pixel_size_um``).
    angles : str, optional
        ``--angles`` value (span, ``A:B`` or a file); default the file's angles, else
        0–180° (parallel) or 0–360° (cone), last excluded.
    center : float, "auto" or None
        Detector column of the rotation axis; ``"auto"`` searches; None the middle.
    cor_method : str
        :func:`core.recon.find_center` method for ``"auto"``.
    pixel_size_um : float, optional
        Detector pixel (µm); default the file's, else 1 µm (values per pixel).
    sod, sdd : float, optional
        Cone beam: source–axis and source–detector distances (mm).
    ring_removal, ring_size, filter_name, pad_mode, pad, size, threads, backend
        As for :func:`core.recon.fbp` / :func:`core.recon.remove_rings`.
    rows : str, optional
        ``A:B``: reconstruct detector rows A..B-1 only (parallel beam).

    Returns
    -------
    ReconResult

    Raises
    ------
    InputError
        Inconsistent options or data the reconstruction cannot take.
    """
    from core.recon import fbp, fdk, find_center, remove_rings

    t0 = time.perf_counter()
    cone = geometry == "cone"
    if pixel_size_um is not None and not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise InputError("--pixel-size", "must be a positive number of µm")
    if cone and (sod is None or sdd is None or (pixel_size_um or proj.pixel_size_um) is None):
        raise InputError("--geometry cone", "needs --sod and --sdd (mm) and --pixel-size (µm)")
    if cone and not (np.isfinite(sod) and np.isfinite(sdd) and 0 < sod < sdd):
        raise InputError("--sod/--sdd", f"need 0 < sod < sdd, got {sod} and {sdd}")
    data = proj.data
    n_angles, n_rows, n_det = data.shape
    notes = list(proj.notes)
    if angles is not None:
        theta, note = parse_angles(angles, n_angles, full_turn=cone)
        angles_from = "--angles"
    elif proj.angles_deg is not None:
        theta, note = match_angles(proj.angles_deg, n_angles, proj.source)
        angles_from = "file"
    else:
        theta, note = parse_angles(None, n_angles, full_turn=cone)
        angles_from = "default"
    if note:
        notes.append(note)
    row_range = _rows(rows, n_rows) if not cone else None
    if row_range is not None:
        data = data[:, row_range[0] : row_range[1]]
    if ring_removal != "none":
        if not 1 <= ring_size <= n_det:
            raise InputError("--ring-size", f"must be 1…{n_det} columns, got {ring_size}")
        data = remove_rings(data, ring_removal, ring_size)
    t_prep = time.perf_counter()
    if center is None:
        center_px, center_method = (n_det - 1) / 2.0, "middle (default)"
    elif str(center).lower() == "auto":
        sample = data[:, data.shape[1] // 2] if cone else data
        try:
            center_px = float(find_center(sample, theta, method=cor_method))
        except ValueError as exc:
            raise InputError("--center auto", str(exc)) from None
        center_method = cor_method
        if cor_method == "auto":
            from core.recon import opposite_pairs

            center_method = "registration" if opposite_pairs(theta) else "centroid"
    else:
        try:
            center_px = float(center)
        except ValueError:
            raise InputError("--center", f"{center!r} is not a number or 'auto'") from None
        if not np.isfinite(center_px):
            raise InputError("--center", f"{center!r} is not a finite column")
        center_method = "given"
    t_center = time.perf_counter()
    # The volume is rows × size × size: a narrow file with a wide detector asks for a lot.
    out_rows = n_rows if cone else (data.shape[1])
    out_size = size or n_det
    if size is not None and not (isinstance(size, int) and size > 0):
        raise InputError("--size", f"must be a positive number of pixels, got {size!r}")
    needed = 2 * 4 * out_rows * out_size * out_size  # the volume and a working copy, float32
    budget = memory_budget()
    if needed > budget:
        raise InputError(
            proj.source,
            f"reconstructing {out_rows} × {out_size} × {out_size} voxels needs "
            f"{format_bytes(needed)}, more than the memory budget of {format_bytes(budget)}; "
            "reconstruct fewer rows (--rows A:B) or a smaller --size",
        )
    pixel_um = pixel_size_um if pixel_size_um is not None else proj.pixel_size_um
    pixel_from = "--pixel-size" if pixel_size_um is not None else (
        "file" if proj.pixel_size_um is not None else "none (1 µm assumed, values per pixel)")
    pixel_mm = pixel_um / 1000.0 if pixel_um else 1.0
    if pad is not None and not 0 <= pad <= 8 * n_det:
        raise InputError("--pad", f"must be 0…{8 * n_det} columns (8 detector widths), got {pad}")
    if threads is not None and not 1 <= threads <= 1024:
        raise InputError("--threads", f"must be 1…1024, got {threads}")
    pad_cols = pad if pad is not None else (0 if pad_mode == "zero" else n_det)
    try:
        if cone:
            assert sod is not None and sdd is not None and pixel_um is not None
            n = size or n_det
            volume = fdk(data, theta, sod=sod, sdd=sdd, det_spacing=pixel_mm,
                         det_center=((n_rows - 1) / 2.0, center_px), shape=(n_rows, n, n),
                         filter_name=filter_name, pad=pad_cols, pad_mode=pad_mode,
                         threads=threads)
            voxel_um = float(pixel_um) * sod / sdd
        else:
            volume = fbp(data, theta, center=center_px, filter_name=filter_name, size=size,
                         pixel_size=pixel_mm, pad=pad_cols, pad_mode=pad_mode, threads=threads,
                         backend=backend)
            voxel_um = float(pixel_um) if pixel_um else 1.0
    except ValueError as exc:
        raise InputError(proj.source, str(exc)) from None
    t_recon = time.perf_counter()
    volume = np.asarray(volume, dtype=np.float32)
    summary: dict[str, Any] = {
        "schema": "cellqc.recon/1",
        "input": proj.source,
        "format": proj.format,
        "geometry": geometry,
        "projections_shape": [int(n_angles), int(n_rows), int(n_det)],
        "rows": list(row_range) if row_range is not None else None,
        "correction": dict(proj.correction),
        "angles_from": angles_from,
        "angles_deg": [float(a) for a in theta],
        "center_px": float(center_px),
        "center_method": center_method,
        "center_convention": CENTER_CONVENTION,
        "method": "FDK (cone beam)" if cone else f"FBP (parallel beam, {backend})",
        "filter": filter_name,
        "pad_mode": pad_mode,
        "ring_removal": None if ring_removal == "none" else {"method": ring_removal,
                                                            "size": int(ring_size)},
        "pixel_size_um": pixel_um,
        "pixel_size_from": pixel_from,
        "voxel_size_um": voxel_um,
        "volume_shape_zyx": [int(v) for v in volume.shape],
        "notes": notes,
        "timings_s": {
            "prepare": round(t_prep - t0, 4),
            "center": round(t_center - t_prep, 4),
            "reconstruct": round(t_recon - t_center, 4),
        },
    }
    if cone:
        summary["sod_mm"], summary["sdd_mm"] = float(sod), float(sdd)  # type: ignore[arg-type]
    return ReconResult(volume=volume, voxel_size_um=voxel_um, summary=summary)
