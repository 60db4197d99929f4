"""The scanner's objectives: voxel size, field of view and scan settings per objective.

The table lives in ``resources/objectives.csv`` (engineers edit it for their scanner); one
row per objective with the columns ``name, voxel_um, fov_diameter_mm, fov_height_mm,
projections, exposure_s, overhead_s`` and optionally ``readout_s`` (dead time per
projection) and ``description``. The estimated duration of a scan is
``(projections × (exposure_s + readout_s) + overhead_s) / 60`` minutes, where
``overhead_s`` is the fixed cost of a scan (positioning, reference images, warm-up).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError
from resources import RESOURCES_DIR

#: The objectives table shipped with cellqc.
OBJECTIVES_PATH = RESOURCES_DIR / "objectives.csv"
#: Objective used for ROI scans unless told otherwise (1.2 µm voxels, the seed workflow).
DEFAULT_OBJECTIVE = "4X"

_REQUIRED = ("name", "voxel_um", "fov_diameter_mm", "fov_height_mm", "projections", "exposure_s",
             "overhead_s")


@dataclass(frozen=True)
class Objective:
    """One objective of the scanner.

    Attributes
    ----------
    name : str
        As printed on the scanner (e.g. ``"4X"``).
    voxel_um : float
        Reconstructed voxel size in µm.
    fov_diameter_mm, fov_height_mm : float
        Field of view: diameter of the reconstructed cylinder and its height.
    projections : int
        Projections per scan.
    exposure_s : float
        Exposure per projection.
    overhead_s : float
        Fixed time per scan (positioning, references, warm-up).
    readout_s : float
        Dead time per projection (readout, rotation step).
    description : str
        What it is for.
    """

    name: str
    voxel_um: float
    fov_diameter_mm: float
    fov_height_mm: float
    projections: int
    exposure_s: float
    overhead_s: float
    readout_s: float = 0.0
    description: str = ""

    @property
    def estimated_minutes(self) -> float:
        """Duration of one scan in minutes."""
        return (self.projections * (self.exposure_s + self.readout_s) + self.overhead_s) / 60.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the row plus ``estimated_minutes``."""
        out = asdict(self)
        out["estimated_minutes"] = round(self.estimated_minutes, 1)
        return out


def _number(row: dict[str, str], key: str, path: Path, line: int, *, integer: bool = False) -> Any:
    text = (row.get(key) or "").strip()
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise InputError(path, f"line {line}: {key} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (key != "overhead_s" and key != "readout_s" and value <= 0):
        raise InputError(path, f"line {line}: {key} must be positive, got {text!r}")
    return value


def load_objectives(path: str | os.PathLike[str] | None = None) -> dict[str, Objective]:
    """Read an objectives table.

    Parameters
    ----------
    path : str or os.PathLike, optional
        CSV file; default :data:`OBJECTIVES_PATH`.

    Returns
    -------
    dict of str to Objective
        In file order, keyed by name.

    Raises
    ------
    core.errors.InputError
        Missing file, missing column, bad number, duplicate or empty name.
    """
    p = Path(path) if path is not None else OBJECTIVES_PATH
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(p, f"cannot read the objectives table: {exc.strerror or exc}") from None
    reader = csv.DictReader(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(p, f"objectives table lacks column(s) {', '.join(missing)}")
    table: dict[str, Objective] = {}
    for line, row in enumerate(reader, start=2):
        name = (row.get("name") or "").strip()
        if not name:
            raise InputError(p, f"line {line}: empty objective name")
        if name in table:
            raise InputError(p, f"line {line}: objective {name!r} listed twice")
        table[name] = Objective(
            name=name,
            voxel_um=_number(row, "voxel_um", p, line),
            fov_diameter_mm=_number(row, "fov_diameter_mm", p, line),
            fov_height_mm=_number(row, "fov_height_mm", p, line),
            projections=_number(row, "projections", p, line, integer=True),
            exposure_s=_number(row, "exposure_s", p, line),
            overhead_s=_number(row, "overhead_s", p, line),
            readout_s=_number(row, "readout_s", p, line) if (row.get("readout_s") or "").strip() else 0.0,
            description=(row.get("description") or "").strip(),
        )
    if not table:
        raise InputError(p, "objectives table has no rows")
    return table


def get_objective(name: str | None = None, path: str | os.PathLike[str] | None = None) -> Objective:
    """One objective by name (case-insensitive).

    Parameters
    ----------
    name : str, optional
        Default :data:`DEFAULT_OBJECTIVE` (or the table's first row if that is absent).
    path : str or os.PathLike, optional
        Objectives table; default the shipped one.

    Returns
    -------
    Objective

    Raises
    ------
    core.errors.InputError
        No objective of that name.
    """
    table = load_objectives(path)
    if name is None:
        return table.get(DEFAULT_OBJECTIVE) or next(iter(table.values()))
    for key, objective in table.items():
        if key.lower() == str(name).strip().lower():
            return objective
    raise InputError("--objective", f"unknown objective {name!r}; the table has {', '.join(table)}")
