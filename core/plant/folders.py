"""Which files a remote caller may have inspected: only those inside the allowed folders.

``cellqc serve --allow DIR`` (repeatable) names the folders; with none, every path is refused.
A path is resolved first (symbolic links followed, ``..`` removed), so a link inside an allowed
folder that points outside is refused, and so is a relative path (the caller's working folder
means nothing to the server).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.errors import InputError


class PathRefused(InputError):
    """A path a remote caller may not have inspected (outside the allowed folders)."""


class PathMissing(InputError):
    """A path inside the allowed folders that does not exist."""


def allowed_folders(folders: Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    """The allowed folders, resolved; each must exist and be a folder.

    Raises
    ------
    core.errors.InputError
        A folder that does not exist or is not a folder.
    """
    out = []
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise InputError(path, "is not an existing folder (--allow needs one)")
        out.append(path.resolve())
    return tuple(out)


def check_inspect_path(path: str, allowed: Sequence[Path]) -> Path:
    """The resolved path if a remote caller may have it inspected.

    Parameters
    ----------
    path : str
        As the caller gave it: absolute.
    allowed : sequence of Path
        From :func:`allowed_folders`.

    Returns
    -------
    Path
        The resolved path, inside one of ``allowed``.

    Raises
    ------
    PathRefused
        No allowed folders, a relative path, a malformed path, or one outside every allowed
        folder (also when it does not exist: the caller learns nothing about other folders).
    PathMissing
        Inside an allowed folder but missing.
    """
    shown = path if len(path) <= 200 else path[:197] + "..."
    if not allowed:
        raise PathRefused(shown, "this station inspects no remote paths (start cellqc serve with --allow DIR)")
    if not path or "\x00" in path:
        raise PathRefused(repr(shown), "not a valid path")
    candidate = Path(path)
    if not candidate.is_absolute():
        raise PathRefused(shown, "must be an absolute path inside an allowed folder")
    resolved = Path(os.path.realpath(candidate))
    inside = [folder for folder in allowed if resolved == folder or resolved.is_relative_to(folder)]
    if not inside or resolved in allowed:
        raise PathRefused(shown, "is outside the folders this station may read (" +
                          ", ".join(str(f) for f in allowed) + ")")
    if not resolved.exists():
        raise PathMissing(shown, "no such file or folder")
    return resolved
