"""Shared test configuration: hypothesis profiles and the reference-data fixture.

Profiles: ``dev`` (the default, 60 examples per property) and ``ci`` (selected when the CI
environment variable is set: fewer examples, derandomized so a run is repeatable). Neither has a
deadline: a shared 2-core machine is too noisy for per-example timing. Pick one explicitly with
``HYPOTHESIS_PROFILE=dev|ci|thorough``.
"""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=60, **_common)
settings.register_profile("ci", max_examples=25, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=1000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The folder of the book's reference files (``GPT_REFERENCE_DATA``); skips the test when unset."""
    root = os.environ.get("GPT_REFERENCE_DATA")
    if not root:
        pytest.skip("GPT_REFERENCE_DATA is not set (point it at shared/data to run this test)")
    path = Path(root)
    if not path.is_dir():
        pytest.skip(f"GPT_REFERENCE_DATA={root} is not a directory")
    return path
