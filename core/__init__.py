"""cellqc engine: quality control of wound cylindrical Li-ion cells from X-ray CT.

``core`` is a library: pure Python on numpy / scipy / scikit-image. It never imports Qt,
never prints and keeps no global state. ``qc_app`` (CLI, GUI, batch) calls into it.
"""

__version__ = "0.1.0"
