"""Shared test configuration: hypothesis profiles, the reference-data fixture, and hermetic tests.

Every test runs in a fresh temporary folder of its own (never the folder pytest was started in;
module and session fixtures run in a temporary folder of the session), and fails if the repository
changed while it ran (a new, changed or removed path); a change made by a fixture fails the run at
the end. A test that wrote ``runs/pretrain`` there would change what the next command a user types
finds.

The book's reference files are looked for in the folder ``GPT_REFERENCE_DATA`` names, else in
``<repository root>/data/book``, which ``python -m gpt download book-data`` fills when run from the
repository root (:func:`gpt.download.reference_data_dir`); tests that need them skip otherwise.

Profiles: ``dev`` (the default, 60 examples per property) and ``ci`` (selected when the CI
environment variable is set: fewer examples, derandomized so a run is repeatable). Neither has a
deadline: a shared 2-core machine is too noisy for per-example timing. Pick one explicitly with
``HYPOTHESIS_PROFILE=dev|ci|thorough``.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gpt.download import REFERENCE_ENV, reference_data_dir

ROOT = Path(__file__).resolve().parents[1]
NO_REFERENCE_DATA = ("the book's reference files are not here: run `python -m gpt download book-data` in the "
                     f"repository root (it fills data/book), or set {REFERENCE_ENV} to a folder that has them")
# written by Python and pytest themselves, not by tests
_NOT_TESTS_DOING = {".git", "__pycache__", ".pytest_cache", ".hypothesis"}
_STARTED_IN, _SESSION_FOLDER, _REPOSITORY = pytest.StashKey[str](), pytest.StashKey[str](), pytest.StashKey[dict]()

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
        if (ROOT / "data" / "book").is_dir():
            pytest.skip("data/book is incomplete (an interrupted download?): run `python -m gpt download book-data` "
                        "in the repository root again (it resumes)")
        pytest.skip(NO_REFERENCE_DATA)
    if not path.is_dir():
        pytest.skip(f"{REFERENCE_ENV}={path} is not a folder (`python -m gpt download book-data --dir {path}` "
                    "makes one)")
    return path


def repository_entries(root: Path = ROOT) -> dict[str, tuple[int, int]]:
    """Every file and folder below ``root`` with its (size, modification time), except what Python,
    pytest and git write themselves and virtual environments kept in the repository."""
    found = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d not in _NOT_TESTS_DOING and not d.endswith(".egg-info")
                         and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))]
        for name in (*subfolders, *files):
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:              # removed while we looked (another process's file)
                continue
            found[path] = (0, 0) if name in subfolders else (info.st_size, info.st_mtime_ns)
    return found


def changes(before: dict, after: dict) -> list[str]:
    """What differs between two ``repository_entries``: new, changed and removed paths."""
    return sorted({*after.keys() - before.keys(), *before.keys() - after.keys(),
                   *(p for p in before.keys() & after.keys() if before[p] != after[p])})


def pytest_configure(config):
    """The whole session, module and session fixtures included, runs in a temporary folder; the
    repository as it was is remembered, to be compared after every test and at the end."""
    config.stash[_STARTED_IN] = os.getcwd()
    config.stash[_SESSION_FOLDER] = tempfile.mkdtemp(prefix="pytest-cwd-")
    config.stash[_REPOSITORY] = repository_entries()
    os.chdir(config.stash[_SESSION_FOLDER])


def pytest_unconfigure(config):
    if _STARTED_IN in config.stash:
        os.chdir(config.stash[_STARTED_IN])
        shutil.rmtree(config.stash[_SESSION_FOLDER], ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """A fixture (of a module or the session) that touched the repository fails the run."""
    changed = changes(session.config.stash[_REPOSITORY], repository_entries())
    if changed:
        session.config.get_terminal_writer().line(
            f"error: the tests changed {len(changed)} path(s) in the repository, e.g. {changed[0]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory, request):
    """Run the test in a new empty folder; fail it if the repository changed while it ran."""
    before = repository_entries()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(request.config.stash[_SESSION_FOLDER])
    changed = changes(before, repository_entries())
    if changed:
        pytest.fail(f"the test changed {len(changed)} path(s) in the repository, e.g. {changed[0]}; "
                    "write to tmp_path instead", pytrace=False)
