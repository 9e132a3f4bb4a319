"""Shared test configuration: hypothesis profiles, the reference-data fixture, and hermetic tests.

Every test runs in a fresh temporary folder of its own (never the folder pytest was started in),
and fails if it left a new file or folder in the repository: a test that wrote ``runs/pretrain``
there would change what the next command a user types finds.

The book's reference files are looked for in the folder ``GPT_REFERENCE_DATA`` names, else in
``<repository root>/data/book``, which ``python -m gpt download book-data`` fills when run from the
repository root (:func:`gpt.download.reference_data_dir`); tests that need them skip otherwise.

Profiles: ``dev`` (the default, 60 examples per property) and ``ci`` (selected when the CI
environment variable is set: fewer examples, derandomized so a run is repeatable). Neither has a
deadline: a shared 2-core machine is too noisy for per-example timing. Pick one explicitly with
``HYPOTHESIS_PROFILE=dev|ci|thorough``.
"""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gpt.download import REFERENCE_ENV, reference_data_dir

ROOT = Path(__file__).resolve().parents[1]
NO_REFERENCE_DATA = ("the book's reference files are not here: run `python -m gpt download book-data` in the "
                     f"repository root (it fills data/book), or set {REFERENCE_ENV} to a folder that has them")
# written by Python and pytest themselves, not by tests
_NOT_TESTS_DOING = {".git", "__pycache__", ".pytest_cache", ".hypothesis"}

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=60, **_common)
settings.register_profile("ci", max_examples=25, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=1000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The folder of the book's reference files (``GPT_REFERENCE_DATA``, else ``data/book``); skips
    the test when there is none."""
    path = reference_data_dir(ROOT)
    if path is None:
        pytest.skip(NO_REFERENCE_DATA)
    if not path.is_dir():
        pytest.skip(f"{REFERENCE_ENV}={path} is not a folder (`python -m gpt download book-data --dir {path}` "
                    "makes one)")
    return path


def repository_entries(root: Path = ROOT) -> set[str]:
    """Every file and folder below ``root`` except what Python, pytest and git write themselves."""
    found = set()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in _NOT_TESTS_DOING and not d.endswith(".egg-info")]
        found.update(os.path.join(folder, name) for name in (*subfolders, *files))
    return found


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory):
    """Run the test in a new empty folder; fail it if it added anything to the repository."""
    before = repository_entries()
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous)
    added = sorted(repository_entries() - before)
    if added:
        pytest.fail(f"the test left {len(added)} new file(s) in the repository, e.g. {added[0]}; "
                    "write to tmp_path instead", pytrace=False)
