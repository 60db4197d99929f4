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
