"""Reading XANES/XAS spectra from the files people have: XDI, Athena projects, text tables.

* **XDI** (``# XDI/1.0`` first line; the XAS Data Interchange format of beamlines, the XAS
  Data Library and xraylarch): columns named in the header (``# Column.N: name [unit]``);
  energy in eV or keV (or the monochromator angle in degrees with ``Mono.d_spacing``);
  absorption from the named channels: ``mutrans``, else ``ln(i0/itrans)`` (transmission);
  ``mufluor``, else ``ifluor/i0`` (fluorescence); ``normtrans``/``normfluor`` (already
  normalised). The reference channel (a foil downstream of the sample) is ``murefer``, else
  ``ln(itrans/irefer)``. ``Element.symbol``/``Element.edge`` name the edge.
* **Athena project** (``.prj``: gzipped text written by Athena/Demeter or xraylarch, in its
  Perl ``@x = (...)`` form or the JSON form): one spectrum per record (``@x`` energy, ``@y``
  μ(E)), named by its label; records that are not μ(E) (χ(k), ...) are skipped with a note;
  Athena's energy shift (``bkg_eshift``) is applied.
* **Tables**: text/CSV with any delimiter (comma, semicolon, tab, ``|``, spaces; decimal
  commas with ``;``), an optional header row; the first column is the energy in eV or keV
  (a unit in the header, e.g. ``energy (keV)``, wins; else told apart by magnitude), every other
  column one spectrum — unless the header names detector channels (``i0``, ``itrans``/``it``/
  ``i1``, ``ifluor``/``if``, ``irefer``/``iref``/``i2``), which are then combined as for XDI.

Every problem raises :class:`core.errors.InputError` with one line naming the file. Energies
come out ascending and distinct (repeated energies are dropped, unsorted ones sorted; both
noted), in eV.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.io.validate import one_line

#: Largest spectra file read (bytes, also after decompression): a spectrum is kilobytes.
MAX_SPECTRA_BYTES = 64 * 2**20
#: Fewest energies of a usable spectrum.
MIN_ENERGIES = 8
#: Energies (eV) a spectrum may span: soft X-rays to hard X-rays.
ENERGY_RANGE_EV = (100.0, 200_000.0)
#: hc in eV·Å, to turn a monochromator angle into an energy.
HC_EV_ANGSTROM = 12398.419843

# Channel names (lower case) of XDI and their common aliases in beamline tables.
_I0 = ("i0", "io", "izero")
_ITRANS = ("itrans", "it", "i1", "itr")
_IFLUOR = ("ifluor", "if", "ifl", "iff", "fluo", "fluor")
_IREFER = ("irefer", "iref", "i2", "ir")
_MUTRANS = ("mutrans", "mu_trans", "xmu", "mu")
_MUFLUOR = ("mufluor", "mu_fluor")
_MUREFER = ("murefer", "mu_refer", "mu_ref", "xmu_ref")
_NORM = ("normtrans", "normfluor", "norm", "xmu_norm", "flat")
_NORMREFER = ("normrefer",)


@dataclass
class Spectrum:
    """One absorption spectrum μ(E) as read from a file.

    Attributes
    ----------
    name : str
        Sample name, record label or column name.
    energy_ev : ndarray
        Energies in eV, ascending and distinct.
    mu : ndarray
        Absorption on those energies (arbitrary units unless ``quantity`` says normalised).
    quantity : str
        How ``mu`` was obtained: ``"ln(i0/itrans)"``, ``"ifluor/i0"``, ``"mu"`` (a column or
        record holding μ), ``"normalised"`` (declared normalised by the file), ``"column"``
        (a table column, meaning unknown).
    reference_mu : ndarray, optional
        The reference-foil channel on the same energies, when the file has one.
    role : str
        ``"sample"`` or ``"reference"``.
    notes : list of str
        What was done on the way (energies sorted, repeats dropped, shift applied, ...).
    """

    name: str
    energy_ev: np.ndarray
    mu: np.ndarray
    quantity: str = "mu"
    reference_mu: np.ndarray | None = None
    role: str = "sample"
    notes: list[str] = field(default_factory=list)


@dataclass
class SpectraFile:
    """The spectra of one file and what the file says about them.

    Attributes
    ----------
    source : str
        The file.
    format : str
        ``"xdi"``, ``"athena"`` or ``"table"``.
    spectra : list of Spectrum
        In file order.
    element, edge : str or None
        Absorbing element (``"Ni"``) and edge (``"K"``) when the file names them.
    metadata : dict
        Header fields worth keeping (XDI ``Sample.name``, ``Mono.d_spacing``, ...).
    notes : list of str
        File-level notes (skipped records, channel choice).
    """

    source: str
    format: str
    spectra: list[Spectrum]
    element: str | None = None
    edge: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers


def _read_bytes(path: Path) -> bytes:
    try:
        if not path.is_file():
            raise InputError(path, "no such file" if not path.exists() else "not a file")
        size = path.stat().st_size
        if size == 0:
            raise InputError(path, "file is empty (0 bytes)")
        if size > MAX_SPECTRA_BYTES:
            raise InputError(
                path, f"is {size} bytes; a spectra file is expected below {MAX_SPECTRA_BYTES}"
            )
        return path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {one_line(exc.strerror or exc)}") from None


def _gunzip(data: bytes, path: Path) -> bytes:
    """Decompress at most :data:`MAX_SPECTRA_BYTES` (a gzip bomb is refused, not expanded)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            out = fh.read(MAX_SPECTRA_BYTES + 1)
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(path, f"damaged gzip data: {one_line(exc)}") from None
    if len(out) > MAX_SPECTRA_BYTES:
        raise InputError(path, f"decompresses to more than {MAX_SPECTRA_BYTES} bytes; refused")
    return out


def _text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _float(text: str) -> float:
    """A number as written in a data file (``1.5``, ``1,5`` decimal comma, ``1.5D+03``)."""
    t = text.strip().replace("D", "E").replace("d", "e")
    return float(t)


def _energy_factor(unit: str | None) -> float | None:
    """eV per unit of an energy column (None when the unit says nothing)."""
    if not unit:
        return None
    u = unit.strip().lower().strip("()[]{} ")
    if u in ("kev",):
        return 1000.0
    if u in ("ev",):
        return 1.0
    return None


def _unit_in_name(name: str) -> tuple[str, float | None]:
    """Split ``energy (keV)``, ``E[eV]``, ``energy_kev`` into a name and an eV factor."""
    m = re.search(r"[\s_(\[{/]*\b(k?ev)\b[)\]}]?\s*$", name, re.IGNORECASE)
    if m:
        return name[: m.start()].strip() or name, _energy_factor(m.group(1))
    return name, None


def _energies_in_ev(
    values: np.ndarray, factor: float | None, source: object, what: str
) -> tuple[np.ndarray, str]:
    """Energies in eV and how the unit was decided; refuse what cannot be X-ray energies."""
    e = np.asarray(values, dtype=np.float64)
    if e.size < MIN_ENERGIES:
        raise InputError(
            source, f"{what}: {e.size} energies; a XANES edge needs at least {MIN_ENERGIES}"
        )
    if not np.all(np.isfinite(e)):
        raise InputError(source, f"{what}: energies must be finite numbers")
    if factor is None:
        factor = 1000.0 if float(np.max(np.abs(e))) < 200.0 else 1.0
        how = "keV (values below 200)" if factor == 1000.0 else "eV"
    else:
        how = "keV (header)" if factor == 1000.0 else "eV (header)"
    with np.errstate(over="ignore"):  # 1e308 keV: inf, refused just below
        e = e * factor
    lo, hi = ENERGY_RANGE_EV
    if float(e.min()) < lo or float(e.max()) > hi:
        raise InputError(
            source,
            f"{what}: energies {float(e.min()):g} … {float(e.max()):g} eV are not X-ray energies "
            f"({lo:g}–{hi:g} eV); is the first column the energy, in eV or keV?",
        )
    return e, how


def _ordered(
    e: np.ndarray, columns: np.ndarray, source: object, what: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sort by energy, drop repeated energies (first kept), check the count."""
    notes: list[str] = []
    if np.any(np.diff(e) < 0):
        order = np.argsort(e, kind="stable")
        e, columns = e[order], columns[order]
        notes.append("energies were not in ascending order; sorted")
    keep = np.ones(e.size, dtype=bool)
    keep[1:] = np.diff(e) > 1e-6
    if not keep.all():
        notes.append(f"{int((~keep).sum())} repeated energies dropped (first value kept)")
        e, columns = e[keep], columns[keep]
    if e.size < MIN_ENERGIES:
        raise InputError(
            source, f"{what}: only {e.size} distinct energies; a XANES edge needs {MIN_ENERGIES}"
        )
    return e, columns, notes


def _finite_rows(
    table: np.ndarray, source: object, what: str
) -> tuple[np.ndarray, list[str]]:
    finite = np.all(np.isfinite(table), axis=1)
    if finite.all():
        return table, []
    bad = int((~finite).sum())
    if bad > 0.1 * table.shape[0]:
        raise InputError(
            source, f"{what}: {bad} of {table.shape[0]} rows hold NaN or infinite values"
        )
    return table[finite], [f"{bad} rows with NaN or infinite values dropped"]


def _log_ratio(num: np.ndarray, den: np.ndarray, names: str, source: object) -> np.ndarray:
    bad = (num <= 0) | (den <= 0)
    if np.any(bad):
        raise InputError(
            source,
            f"cannot take ln({names}): {int(bad.sum())} energies have zero or negative counts",
        )
    with np.errstate(all="ignore"):
        out = np.log(num / den)
    if not np.all(np.isfinite(out)):
        raise InputError(source, f"ln({names}) is not finite at some energies")
    return out


def _ratio(num: np.ndarray, den: np.ndarray, names: str, source: object) -> np.ndarray:
    if np.any(den == 0):
        raise InputError(source, f"cannot take {names}: i0 is zero at some energies")
    with np.errstate(all="ignore"):
        out = num / den
    if not np.all(np.isfinite(out)):
        raise InputError(source, f"{names} is not finite at some energies")
    return out


def _find(names: list[str], aliases: tuple[str, ...]) -> int | None:
    for alias in aliases:
        if alias in names:
            return names.index(alias)
    return None


def channels_to_spectra(
    names: list[str], columns: np.ndarray, source: object, sample: str
) -> tuple[list[tuple[str, np.ndarray, str, str]], list[str]] | None:
    """Absorption from named detector channels, or None when the names are not channels.

    Parameters
    ----------
    names : list of str
        Lower-case column names (energy excluded).
    columns : ndarray
        (n_energies, n_columns) values.
    source : object
        Named in errors.
    sample : str
        Name given to the sample spectrum.

    Returns
    -------
    (spectra, notes) or None
        ``spectra``: ``(name, values, quantity, role)`` for the sample (and the reference
        channel, when present).
    """
    idx = {key: _find(names, al) for key, al in (
        ("i0", _I0), ("itrans", _ITRANS), ("ifluor", _IFLUOR), ("irefer", _IREFER),
        ("mutrans", _MUTRANS), ("mufluor", _MUFLUOR), ("murefer", _MUREFER),
        ("norm", _NORM), ("normrefer", _NORMREFER),
    )}

    def col(key: str) -> np.ndarray:
        i = idx[key]
        assert i is not None
        return columns[:, i]

    notes: list[str] = []
    out: list[tuple[str, np.ndarray, str, str]] = []
    have = {k for k, v in idx.items() if v is not None}
    if idx["mutrans"] is not None:
        out.append((sample, col("mutrans"), "mu", "sample"))
    elif {"i0", "itrans"} <= have:
        out.append((sample, _log_ratio(col("i0"), col("itrans"), "i0/itrans", source),
                    "ln(i0/itrans)", "sample"))
        if "ifluor" in have:
            notes.append("transmission used; the file also has a fluorescence channel")
    elif idx["mufluor"] is not None:
        out.append((sample, col("mufluor"), "mu", "sample"))
    elif {"i0", "ifluor"} <= have:
        out.append((sample, _ratio(col("ifluor"), col("i0"), "ifluor/i0", source),
                    "ifluor/i0", "sample"))
    elif idx["norm"] is not None:
        out.append((sample, col("norm"), "normalised", "sample"))
    if not out:
        return None
    if idx["murefer"] is not None:
        out.append((f"{sample} reference", col("murefer"), "mu", "reference"))
    elif {"itrans", "irefer"} <= have:
        out.append((f"{sample} reference",
                    _log_ratio(col("itrans"), col("irefer"), "itrans/irefer", source),
                    "ln(itrans/irefer)", "reference"))
    elif idx["normrefer"] is not None:
        out.append((f"{sample} reference", col("normrefer"), "normalised", "reference"))
    elif "irefer" in have:
        notes.append("reference channel irefer ignored: no itrans to divide it by")
    return out, notes


def _build(
    source: Path,
    fmt: str,
    e: np.ndarray,
    items: list[tuple[str, np.ndarray, str, str]],
    notes: list[str],
) -> list[Spectrum]:
    """Spectra from channel results; a reference goes with its sample and also on its own."""
    spectra: list[Spectrum] = []
    reference = next((v for _, v, _, role in items if role == "reference"), None)
    for name, values, quantity, role in items:
        spectra.append(
            Spectrum(
                name=name,
                energy_ev=e,
                mu=np.asarray(values, dtype=np.float64),
                quantity=quantity,
                reference_mu=reference if role == "sample" else None,
                role=role,
                notes=list(notes),
            )
        )
    return spectra


# -------------------------------------------------------------------------------- XDI


_XDI_FIELD = re.compile(r"^#\s*([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\s*:\s*(.*)$")


def read_xdi(path: str | os.PathLike[str], data: bytes | None = None) -> SpectraFile:
    """Read an XDI file (``# XDI/1.0``): the sample's μ(E) and its reference channel.

    Parameters
    ----------
    path : str or path-like
        The file.
    data : bytes, optional
        Its content, when already read.

    Returns
    -------
    SpectraFile
        ``format="xdi"``; the sample spectrum first, then the reference channel (if any)
        as its own spectrum with ``role="reference"``.
    """
    p = Path(path)
    text = _text(_read_bytes(p) if data is None else data)
    fields: dict[str, str] = {}
    columns: dict[int, tuple[str, str | None]] = {}
    rows: list[list[float]] = []
    width = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = _XDI_FIELD.match(s)
            if m and not rows:
                family, key, value = m.group(1).lower(), m.group(2).lower(), m.group(3).strip()
                fields[f"{family}.{key}"] = value
                if family == "column":
                    try:
                        number = int(key)
                    except ValueError:
                        continue
                    parts = value.split()
                    if parts and 0 < number <= 1000:
                        columns[number] = (parts[0].lower(), parts[1] if len(parts) > 1 else None)
            continue
        try:
            values = [_float(t) for t in s.split()]
        except ValueError:
            raise InputError(p, f"line {n}: not a number in {s[:40]!r}") from None
        if width is None:
            width = len(values)
        if len(values) != width:
            raise InputError(p, f"line {n}: {len(values)} values, the first data line has {width}")
        rows.append(values)
    if not rows or width is None:
        raise InputError(p, "XDI file holds no data lines")
    if width < 2:
        raise InputError(p, "XDI file needs an energy column and at least one more")
    table, notes = _finite_rows(np.asarray(rows, dtype=np.float64), p, "XDI data")
    names = [columns.get(i + 1, (f"col{i + 1}", None))[0] for i in range(width)]
    units = [columns.get(i + 1, ("", None))[1] for i in range(width)]
    if "energy" in names:
        ie = names.index("energy")
        e_raw = table[:, ie]
        unit = units[ie]
        factor = _energy_factor(unit)
        if unit and factor is None:
            raise InputError(p, f"energy column has unit {unit!r}; expected eV or keV")
        e, _how = _energies_in_ev(e_raw, factor, p, "energy column")
    elif "angle" in names:
        ie = names.index("angle")
        e = _angle_to_energy(table[:, ie], units[ie], fields.get("mono.d_spacing"), p)
    else:
        ie = 0
        e, _how = _energies_in_ev(table[:, 0], None, p, "first column (no Column.N: energy)")
        notes.append("no column named energy; the first column taken as energy")
    rest = [i for i in range(width) if i != ie]
    e, data_cols, order_notes = _ordered(e, table[:, rest], p, "XDI data")
    notes += order_notes
    rest_names = [names[i] for i in rest]
    sample = (fields.get("sample.name") or p.stem).strip() or p.stem
    sample = " ".join(sample.split())
    found = channels_to_spectra(rest_names, data_cols, p, sample)
    if found is None:
        raise InputError(
            p,
            "XDI columns name no absorption channel (mutrans, i0 + itrans, mufluor, i0 + "
            f"ifluor, normtrans); columns: {', '.join(rest_names)}",
        )
    items, chan_notes = found
    element = fields.get("element.symbol")
    edge = fields.get("element.edge")
    meta = {k: v for k, v in fields.items() if not k.startswith("column.")}
    return SpectraFile(
        source=str(p),
        format="xdi",
        spectra=_build(p, "xdi", e, items, notes),
        element=element.strip().capitalize() if element else None,
        edge=edge.strip().upper() if edge else None,
        metadata=meta,
        notes=chan_notes,
    )


def _angle_to_energy(
    angle: np.ndarray, unit: str | None, d_spacing: str | None, source: Path
) -> np.ndarray:
    if not d_spacing:
        raise InputError(source, "energy given as monochromator angle but no Mono.d_spacing")
    try:
        d = float(d_spacing.split()[0])
    except (ValueError, IndexError):
        raise InputError(source, f"Mono.d_spacing {d_spacing!r} is not a number") from None
    if not (math.isfinite(d) and 0.5 < d < 20.0):
        raise InputError(source, f"Mono.d_spacing {d:g} Å is not a crystal spacing")
    theta = np.asarray(angle, dtype=np.float64)
    if unit and unit.lower().startswith("rad"):
        theta = np.degrees(theta)
    if not np.all(np.isfinite(theta)) or np.any((theta <= 0) | (theta >= 90)):
        raise InputError(source, "monochromator angles must lie between 0° and 90°")
    e = HC_EV_ANGSTROM / (2.0 * d * np.sin(np.radians(theta)))
    return _energies_in_ev(e, 1.0, source, "energy from the mono angle")[0]


# ------------------------------------------------------------------------- Athena .prj


_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|([^,\s()]+)")


def _perl_list(text: str) -> list[str]:
    """Items of a Perl list ``(...)`` written by Athena: quoted strings or bare words."""
    start, end = text.find("("), text.rfind(")")
    if start < 0 or end < start:
        return []
    body = text[start + 1 : end].replace("=>", ",")
    items: list[str] = []
    for m in _QUOTED.finditer(body):
        if m.group(1) is not None:
            items.append(m.group(1).replace("\\'", "'").replace("\\\\", "\\"))
        elif m.group(2) is not None:
            items.append(m.group(2))
        else:
            items.append(m.group(3))
    return items


def _numbers(items: list[Any], source: object, what: str) -> np.ndarray:
    try:
        values = np.asarray([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(source, f"{what}: not a list of numbers") from None
    return values


def _athena_records(text: str, source: Path) -> list[dict[str, Any]]:
    head = text[:1000]
    if "_____header" in head or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise InputError(source, "Athena project (JSON form) is not valid JSON") from None
        if not isinstance(doc, dict):
            raise InputError(source, "Athena project (JSON form) is not a JSON object")
        order = next((v for k, v in doc.items() if str(k).startswith("_____order")), None)
        names = order if isinstance(order, list) else [k for k in doc if not str(k).startswith("_")]
        records = []
        for name in names:
            rec = doc.get(name) if isinstance(name, str) else None
            if not isinstance(rec, dict):
                continue
            args = rec.get("args") if isinstance(rec.get("args"), dict) else {}
            records.append({"name": name, "args": {str(k): v for k, v in args.items()},
                            "x": rec.get("x"), "y": rec.get("y")})
        return records
    records: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[record]"):
            if current:
                records.append(current)
            current = {}
            continue
        m = re.match(r"^([$@%])\s*([A-Za-z_]\w*)\s*=", s)
        if not m:
            continue
        key = m.group(2)
        if key == "old_group":
            items = _perl_list(f"({s.split('=', 1)[1].strip().rstrip(';')})")
            current["name"] = items[0] if items else ""
        elif key == "args":
            items = _perl_list(s)
            current["args"] = {items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)}
        elif key in ("x", "y"):
            current[key] = _perl_list(s)
    if current.get("x") is not None:
        records.append(current)
    return records


def read_athena(path: str | os.PathLike[str], data: bytes | None = None) -> SpectraFile:
    """Read the μ(E) records of an Athena project file (``.prj``, gzipped or plain).

    Parameters
    ----------
    path : str or path-like
        The file.
    data : bytes, optional
        Its content, when already read.

    Returns
    -------
    SpectraFile
        ``format="athena"``, one spectrum per μ(E) record, named by its label.
    """
    p = Path(path)
    raw = _read_bytes(p) if data is None else data
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, p)
    text = _text(raw)
    if "Athena project file" not in text[:1000] and "_____header" not in text[:1000]:
        raise InputError(p, "not an Athena project file (no 'Athena project file' header)")
    records = _athena_records(text, p)
    spectra: list[Spectrum] = []
    notes: list[str] = []
    for i, rec in enumerate(records, 1):
        args = rec.get("args") or {}
        label = str(args.get("label") or rec.get("name") or f"record {i}")
        label = " ".join(label.split()) or f"record {i}"

        def flag(key: str, default: str = "0", args: dict[str, Any] = args) -> bool:
            try:
                value = float(str(args.get(key, default)))
            except ValueError:
                return default != "0"
            return value != 0.0 if math.isfinite(value) else default != "0"

        not_mu = [k for k in ("is_chi", "is_rsp", "is_qsp", "is_bkg", "is_diff", "is_pixel")
                  if flag(k)]
        if not_mu or not flag("is_xmu", "1"):
            notes.append(f"record {label!r} skipped: not μ(E) ({', '.join(not_mu) or 'is_xmu=0'})")
            continue
        if not isinstance(rec.get("x"), list) or not isinstance(rec.get("y"), list):
            notes.append(f"record {label!r} skipped: no energy or μ array")
            continue
        x = _numbers(list(rec["x"]), p, f"record {label!r} energies")
        y = _numbers(list(rec["y"]), p, f"record {label!r} μ")
        if x.size != y.size:
            raise InputError(p, f"record {label!r}: {x.size} energies but {y.size} μ values")
        table, rec_notes = _finite_rows(np.column_stack([x, y]), p, f"record {label!r}")
        factor = 1000.0 if flag("is_kev") else None
        e, _how = _energies_in_ev(table[:, 0], factor, p, f"record {label!r}")
        try:
            shift = float(str(args.get("bkg_eshift", "0")))
        except ValueError:
            shift = 0.0
        if math.isfinite(shift) and shift != 0.0 and abs(shift) < 1000.0:
            e = e + shift
            rec_notes.append(f"Athena energy shift {shift:+.3f} eV applied")
        e, mu, order_notes = _ordered(e, table[:, 1:2], p, f"record {label!r}")
        spectra.append(
            Spectrum(
                name=label,
                energy_ev=e,
                mu=mu[:, 0],
                quantity="normalised" if flag("is_nor") else "mu",
                notes=rec_notes + order_notes,
            )
        )
    if not spectra:
        why = f" ({notes[0]})" if notes else ""
        raise InputError(p, f"Athena project holds no μ(E) record{why}")
    return SpectraFile(source=str(p), format="athena", spectra=spectra, notes=notes)


# ------------------------------------------------------------------------------ tables


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [c.strip() for c in line.split(delimiter)]


def _delimiter(line: str) -> str | None:
    for d in (";", "\t", ",", "|"):
        if d in line:
            return d
    return None


def _cell(text: str, decimal_comma: bool) -> float:
    if decimal_comma:
        text = text.replace(",", ".")
    return _float(text)


def read_table(path: str | os.PathLike[str], data: bytes | None = None) -> SpectraFile:
    """Read a text/CSV table of spectra: energy first, then spectra or detector channels.

    Parameters
    ----------
    path : str or path-like
        The table.
    data : bytes, optional
        Its content, when already read.

    Returns
    -------
    SpectraFile
        ``format="table"``.
    """
    p = Path(path)
    text = _text(_read_bytes(p) if data is None else data)
    header: list[str] | None = None
    last_comment: str | None = None
    rows: list[list[float]] = []
    delimiter: str | None = None
    decimal_comma = False
    width = 0
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith(("#", "%", "!", "//")):
            if not rows:
                last_comment = s.lstrip("#%!/ ").strip()
            continue
        if not rows:
            delimiter = _delimiter(s)
            cells = [c for c in _split(s, delimiter) if c != ""]
            decimal_comma = delimiter in (";", "\t", None) and any(
                "," in c and "." not in c for c in cells
            )
            spaced = s.split()
            if delimiter == "," and len(spaced) >= 2 and all(
                c.count(",") == 1 and "." not in c for c in spaced
            ):  # "8333,5 0,98": spaces between values, decimal commas
                delimiter, cells, decimal_comma = None, spaced, True
            try:
                values = [_cell(c, decimal_comma) for c in cells]
            except ValueError:
                header = cells
                continue
            width = len(values)
            rows.append(values)
            continue
        cells = [c for c in _split(s, delimiter) if c != ""]
        try:
            values = [_cell(c, decimal_comma) for c in cells]
        except ValueError:
            raise InputError(p, f"line {n}: not a number in {s[:40]!r}") from None
        if len(values) != width:
            raise InputError(p, f"line {n}: {len(values)} values, the first data line has {width}")
        rows.append(values)
    if not rows:
        raise InputError(p, "no numeric rows (expected energy and absorption columns)")
    if width < 2:
        raise InputError(p, "needs at least two columns: energy, then one or more spectra")
    if header is None and last_comment:
        cand = [c for c in _split(last_comment, _delimiter(last_comment)) if c != ""]
        if len(cand) == width:
            header = cand
    if header is not None and len(header) != width:
        header = None
    table, notes = _finite_rows(np.asarray(rows, dtype=np.float64), p, "table")
    factor = None
    names: list[str]
    if header is not None:
        first, factor = _unit_in_name(header[0])
        names = [h.strip() for h in header[1:]]
    else:
        names = [p.stem] if width == 2 else [f"{p.stem}_{i}" for i in range(1, width)]
    e, how = _energies_in_ev(table[:, 0], factor, p, "first column")
    e, cols, order_notes = _ordered(e, table[:, 1:], p, "table")
    notes += order_notes
    found = channels_to_spectra([n.lower() for n in names], cols, p, p.stem) if header else None
    if found is not None:
        items, chan_notes = found
        spectra = _build(p, "table", e, items, notes)
        return SpectraFile(source=str(p), format="table", spectra=spectra, notes=chan_notes,
                           metadata={"energy_unit": how})
    spectra = [
        Spectrum(name=name or f"{p.stem}_{j + 1}", energy_ev=e, mu=cols[:, j].copy(),
                 quantity="column", notes=list(notes))
        for j, name in enumerate(names)
    ]
    return SpectraFile(source=str(p), format="table", spectra=spectra,
                       metadata={"energy_unit": how})


def read_spectra(path: str | os.PathLike[str]) -> SpectraFile:
    """Read a spectra file of any supported kind (XDI, Athena project, table), detected by content.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    SpectraFile

    Raises
    ------
    InputError
        Missing, unreadable or malformed file, no usable spectrum.
    """
    p = Path(path)
    data = _read_bytes(p)
    if data[:2] == b"\x1f\x8b":
        return read_athena(p, data)
    if b"\x00" in data[:4096]:
        raise InputError(p, "binary file; expected XDI, an Athena project or a text table")
    head = _text(data[:2000]).lstrip()
    if head.startswith("# XDI/") or head.startswith("#XDI/"):
        return read_xdi(p, data)
    if "Athena project file" in head[:500]:
        return read_athena(p, data)
    if p.suffix.lower() == ".xdi":
        return read_xdi(p, data)
    if p.suffix.lower() == ".prj":
        return read_athena(p, data)
    return read_table(p, data)


def read_spectra_table(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Spectra sharing one energy axis, from any file :func:`read_spectra` reads.

    Kept for callers of the former table reader: a table, an XDI file (its sample and
    reference channel) or an Athena project whose records share their energies.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    energies : ndarray
        eV, ascending.
    names : list of str
        One per spectrum.
    spectra : ndarray
        (n_energies, n_spectra).
    """
    sf = read_spectra(path)
    e = sf.spectra[0].energy_ev
    for s in sf.spectra[1:]:
        if s.energy_ev.shape != e.shape or not np.allclose(s.energy_ev, e):
            raise InputError(
                path, "its spectra have different energies; read them with read_spectra"
            )
    return e, [s.name for s in sf.spectra], np.column_stack([s.mu for s in sf.spectra])
