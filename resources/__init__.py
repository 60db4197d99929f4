"""Data files shipped with cellqc: default recipes, icons, style sheets, report assets.

Everything here is installed with the package (``[tool.setuptools.package-data]``) and
collected into the desktop bundle (``installer/cellqc.spec``). Read it through
:mod:`importlib.resources` so that it works wherever the package lives — a source checkout,
site-packages, a zip, or a PyInstaller bundle:

>>> from resources import read_text, resource_path
>>> read_text("recipes", "18650-nmc.toml")            # doctest: +SKIP
>>> with resource_path("icons", "cellqc.svg") as p:    # a real file while the block runs
...     ...                                            # doctest: +SKIP

``RESOURCES_DIR`` (a :class:`pathlib.Path`) remains for code that needs a directory on disk;
it is valid in a checkout, an installed wheel and the one-folder bundle.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib import resources as _ir
from importlib.resources.abc import Traversable
from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent

#: The sub-folders (each a package) and what they hold.
SECTIONS = {
    "recipes": "default inspection recipes (TOML)",
    "schema": "JSON Schemas of the results cellqc writes",
    "style": "Qt style sheets: high-contrast dark (default) and light",
    "icons": "SVG icons of the GUI and the desktop entry",
}

#: Style sheet file per theme; ``CELLQC_THEME`` picks one (default ``dark``).
THEMES = {"dark": "cellqc.qss", "light": "cellqc-light.qss"}

#: File suffixes that are resources (the package-data patterns of pyproject.toml).
RESOURCE_SUFFIXES = (".json", ".toml", ".onnx", ".md", ".qss", ".svg", ".png", ".csv")


def files(*parts: str) -> Traversable:
    """The resource ``parts`` (e.g. ``files("icons", "pass.svg")``) as a Traversable."""
    node = _ir.files(__name__)
    for part in parts:
        node = node.joinpath(part)
    return node


def read_text(*parts: str, encoding: str = "utf-8") -> str:
    """The text of a resource, e.g. ``read_text("style", "cellqc.qss")``."""
    return files(*parts).read_text(encoding=encoding)


def read_bytes(*parts: str) -> bytes:
    """The bytes of a resource."""
    return files(*parts).read_bytes()


@contextlib.contextmanager
def resource_path(*parts: str) -> Iterator[Path]:
    """A real file-system path of a resource while the ``with`` block runs.

    Usually the file itself; a temporary copy when the package is not on disk (zip import).
    """
    with _ir.as_file(files(*parts)) as path:
        yield Path(path)


def iter_resources() -> Iterator[tuple[str, ...]]:
    """Every resource file as a tuple of parts, e.g. ``("icons", "pass.svg")``, sorted."""
    found: list[tuple[str, ...]] = []

    def walk(node: Traversable, prefix: tuple[str, ...]) -> None:
        for child in node.iterdir():
            name = child.name
            if child.is_dir():
                if name != "__pycache__":
                    walk(child, (*prefix, name))
            elif name.endswith(RESOURCE_SUFFIXES):
                found.append((*prefix, name))

    walk(files(), ())
    yield from sorted(found)


def theme_name(theme: str | None = None) -> str:
    """``theme``, else ``$CELLQC_THEME``, else ``dark``; unknown names fall back to dark."""
    name = (theme or os.environ.get("CELLQC_THEME") or "dark").strip().lower()
    return name if name in THEMES else "dark"


def style_sheet(theme: str | None = None) -> str:
    """The Qt style sheet of a theme (``dark`` or ``light``); see :func:`theme_name`."""
    return read_text("style", THEMES[theme_name(theme)])


def icon_path(name: str) -> Path:
    """The on-disk path of an SVG icon (``name`` with or without ``.svg``)."""
    if not name.endswith(".svg"):
        name += ".svg"
    return RESOURCES_DIR / "icons" / name


__all__ = [
    "RESOURCES_DIR", "SECTIONS", "THEMES", "files", "read_text", "read_bytes", "resource_path",
    "iter_resources", "theme_name", "style_sheet", "icon_path",
]
