"""Text that came from outside (cell ids, file names) made safe to store, print and name files by.

- :func:`check_cell_id`: the one rule for a cell id, applied wherever one enters cellqc
  (:func:`core.io.read_volume`, :func:`core.store.begin_inspection`): printable text of at
  most :data:`MAX_CELL_ID_LEN` characters. Control characters (NUL, CR, LF, ESC, …), format
  characters (bidi overrides, zero-width marks), line separators and undecodable bytes are
  **refused** (one line, exit 2): a barcode never holds them, and an id that cannot be shown
  as it is cannot be checked by a person either.
- :func:`printable`: how a stored value is shown on a terminal — anything not printable is
  escaped (``\\n``, ``\\x1b``, ``\\u202e``), so a value filed by an older cellqc or written
  into the log file by hand cannot move the cursor, colour the terminal or fake log lines.
- :func:`file_name_part`: a bounded, portable file-name piece derived from any text.
- :func:`path_text`: a path as storable text, also when the file name is not valid UTF-8.
"""

from __future__ import annotations

import hashlib
import os
import re

from core.errors import InputError

#: Longest cell id accepted (characters). Barcodes (Code 128, DataMatrix on cells) are far
#: shorter; the bound keeps file names and table columns sane.
MAX_CELL_ID_LEN = 128
#: Longest file-name piece made from a cell id (bytes are ASCII, so also characters).
MAX_NAME_PART_LEN = 64

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as text safe to print on a terminal: non-printable characters escaped.

    Parameters
    ----------
    value : object
        Usually a str from the log; None becomes "".
    limit : int, optional
        Cut to this many characters (escapes counted), ending with ``…``.

    Returns
    -------
    str
        Only printable characters (``str.isprintable``) and ASCII spaces. (A backslash is
        kept as it is: text that merely looks like an escape is harmless.)
    """
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                       else f"\\U{code:08x}")
    result = "".join(out)
    if limit is not None and len(result) > limit:
        result = result[: max(0, limit - 1)] + "…"
    return result


def cell_id_problem(cell_id: object) -> str | None:
    """Why ``cell_id`` is not acceptable, or None when it is (see :func:`check_cell_id`)."""
    if not isinstance(cell_id, str):
        return f"must be text, not {type(cell_id).__name__}"
    if not cell_id.strip():
        return "must not be empty"
    if len(cell_id) > MAX_CELL_ID_LEN:
        return f"has {len(cell_id)} characters; at most {MAX_CELL_ID_LEN} are accepted"
    if cell_id != cell_id.strip():
        return "must not start or end with spaces"
    for ch in cell_id:
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            return "is not valid UTF-8 text (a file name with undecodable bytes?)"
        if not ch.isprintable():
            return f"holds the non-printable character U+{ord(ch):04X}; only printable text is accepted"
    return None


def check_cell_id(cell_id: object, source: object = "cell id") -> str:
    """Return ``cell_id`` when it is printable text of at most :data:`MAX_CELL_ID_LEN` characters.

    Parameters
    ----------
    cell_id : object
        The id given (``--cell-id``, a file's record, a file name).
    source : object
        What to name in the error (the option or the file it came from).

    Returns
    -------
    str

    Raises
    ------
    core.errors.InputError
        Not text, empty, too long, leading/trailing spaces, a control/format/separator
        character, or undecodable bytes. The message shows the id escaped and shortened.
    """
    problem = cell_id_problem(cell_id)
    if problem is not None:
        raise InputError(source, f"cell id {printable(cell_id, 60)!r} {problem}")
    return str(cell_id)


def file_name_part(text: object, limit: int = MAX_NAME_PART_LEN) -> str:
    """A portable file-name piece from any text: ``[A-Za-z0-9._-]``, at most ``limit`` long.

    Other characters become ``_``. A longer name is cut and ends with 8 hex digits of the
    text's SHA-256, so two long ids that share a prefix still get different names.
    """
    raw = "" if text is None else str(text)
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._-") or "cell"
    if len(cleaned) <= limit:
        return cleaned
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return cleaned[: limit - 9].rstrip("._-") + "-" + digest


def path_text(path: str | os.PathLike[str]) -> str:
    """A path as text that can be stored and printed, whatever bytes its name holds.

    Names that are valid UTF-8 come back unchanged; undecodable bytes (kept by Python as
    lone surrogates) become ``\\xNN`` escapes instead of making SQLite or JSON fail.
    """
    raw = os.fsencode(path) if not isinstance(path, bytes) else path
    return raw.decode("utf-8", "backslashreplace")
