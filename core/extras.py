"""The optional parts of cellqc (the extras of ``pyproject.toml``) and the check a feature makes
before it uses one.

A headless inspection node installs the engine alone (``pip install cellqc``: inspect, demo,
report, log, serve); each extra adds what one feature needs. ``scripts/setup.sh`` (the README's
Quick start) installs them all (``cellqc[all]``).
"""

from __future__ import annotations

import importlib

from core.errors import MissingExtraError

#: extra → the modules it provides (import names), as declared in pyproject.toml.
EXTRAS: dict[str, tuple[str, ...]] = {
    "gui": ("PySide6", "pyqtgraph"),  # cellqc gui, cellqc-gui, self-test's GUI check
    "batch": ("dask", "distributed"),  # cellqc batch (Dask)
    "onnx": ("onnxruntime",),  # the learned segmenter (--segmenter onnx, classic+onnx)
    "xrm": ("olefile",),  # Xradia .txrm/.xrm projections and XANES images
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed (empty when the extra is complete).

    Only a module that is absent counts; one that is installed but fails to load (a missing
    system library, say) raises its own error when imported, which says more than "install".
    """
    missing = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] != module:
                raise  # the module is there but one of its own imports is not
            missing.append(module)
    return missing


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`~core.errors.MissingExtraError` unless ``extra`` is installed.

    Parameters
    ----------
    extra : str
        A key of :data:`EXTRAS`.
    what : str
        What needs it, as the person asked for it (``"cellqc gui"``); starts the message.

    Raises
    ------
    core.errors.MissingExtraError
        "``what`` needs the ``extra`` extra: pip install 'cellqc[``extra``]'".
    """
    if missing_modules(extra):
        raise MissingExtraError(what, extra)


__all__ = ["EXTRAS", "missing_modules", "require_extra"]
