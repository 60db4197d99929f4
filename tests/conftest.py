"""Shared test configuration.

Hypothesis profiles
-------------------
``ci`` (the default, and what ``CI=1`` selects): derandomised, no example database, so the same
commit always draws the same examples and CI's result never depends on the day's random draw.
``fuzz`` (``HYPOTHESIS_PROFILE=fuzz``, used by ``scripts/fuzz.sh``): random draws, many more
examples; a failure it finds is pinned in the test with ``@example`` so that CI then runs it
every time.
"""

from __future__ import annotations

import gc
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    max_examples=int(os.environ.get("CELLQC_FUZZ_EXAMPLES", "2000")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _audit_key_for_the_tests(tmp_path_factory):
    """One audit key for the whole test session, never the user's real one.

    Subprocesses started by tests inherit it through the environment. Tests of the key's
    own location unset ``CELLQC_AUDIT_KEY`` with ``monkeypatch``.
    """
    if os.environ.get("CELLQC_AUDIT_KEY"):
        yield
        return
    key = tmp_path_factory.mktemp("audit-key") / "audit.key"
    os.environ["CELLQC_AUDIT_KEY"] = str(key)
    try:
        yield
    finally:
        os.environ.pop("CELLQC_AUDIT_KEY", None)


# ---------------------------------------------------------------- fixtures several files use


@pytest.fixture(scope="module")
def tiny_cell(tmp_path_factory):
    """A small synthetic cell (5 mm can, 2 slices at 25 µm): about a second per inspection."""
    from core.io import write_tiff
    from core.phantom import CellSpec, make_cell

    spec = CellSpec(kind="18650", voxel_size_um=25.0, n_slices=2, can_outer_radius_um=5000.0, anatomy=False,
                    mandrel_radius_um=1500.0)
    folder = tmp_path_factory.mktemp("tiny")
    return write_tiff(make_cell(spec, [], seed=3, cell_id="T-1").volume, folder / "T-1.tif")


@pytest.fixture
def db(tmp_path):
    """A fresh log (``tmp_path/log.db``), closed after the test."""
    from core.store import open_log

    with open_log(tmp_path / "log.db") as database:
        yield database


@pytest.fixture
def collect_in_the_ui_thread():
    """Collect the previous test's widgets here, in the UI thread: a garbage collection that
    happens to run in a worker thread must not be the one that destroys Qt objects.

    GUI test modules use it with ``pytestmark = pytest.mark.usefixtures(...)``.
    """
    yield
    from PySide6 import QtWidgets

    QtWidgets.QApplication.processEvents()
    gc.collect()
