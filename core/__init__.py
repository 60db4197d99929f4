"""cellqc engine: quality control of wound cylindrical Li-ion cells from X-ray CT.

``core`` is a library: pure Python on numpy / scipy / scikit-image. It never imports Qt,
never prints and keeps no global state. ``qc_app`` (CLI, GUI, batch) calls into it.
"""


def _version() -> str:
    """The version, stated once (pyproject.toml): from the installed package's metadata, or
    from pyproject.toml beside the sources when they run uninstalled (a desktop bundle, a
    checkout on PYTHONPATH)."""
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():  # a checkout: its own pyproject, even beside another installed copy
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            if project.get("name") == "cellqc":  # not another project's file beside site-packages
                return str(project["version"])
        except (OSError, KeyError, ValueError, AttributeError):
            pass
    try:
        return version("cellqc")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
