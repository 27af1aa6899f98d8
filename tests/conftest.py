"""What every test shares: torch's generator seeded with 0, and the one rule for tests of the
compiled (C++) engine.

A test that needs the compiled engine carries ``pytest.mark.requires_compiled`` (a module:
``pytestmark = pytest.mark.requires_compiled``); a test that checks what runs with the engine
and without it takes the ``compiled_runs`` fixture. Where the engine cannot be built or loaded
(no C++ compiler, ``RNNLAB_COMPILED=0``) the first is skipped, saying why, and the second sees
False. With ``RNNLAB_REQUIRE_COMPILED=1`` in the environment (``.ci/run`` sets it) both fail
instead, so that a test run cannot pass without checking the C++.
"""
import os
import sys
from typing import Optional

import pytest
import torch

REQUIRE_COMPILED = "RNNLAB_REQUIRE_COMPILED"

# the tests' shared helpers (engine_check, fuzzing, torch_check) live beside this file; the test
# files sit in folders that mirror the package
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The triton engine's tests run its kernels under Triton's interpreter where there is no GPU. Triton
# reads TRITON_INTERPRET when it is first imported (its own library's functions), and torch.compile
# imports it: set here, before any test module runs
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# ``auto`` follows its documented rules in the tests (rnnlab/engines/autotune.py): a timed trial
# at the tests' tiny sizes would choose by noise; tests/engines/test_autotune.py turns measurement on
os.environ.setdefault("RNNLAB_AUTOTUNE", "0")


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_compiled: needs the compiled (C++) engine; skipped "
                                       f"where it cannot be built, a failure under {REQUIRE_COMPILED}=1")
    config.addinivalue_line("markers", "slow: runs only with -m slow (or in CI, which runs every test)")
    config.addinivalue_line("markers", "slow_cases: a parametrized test whose first case runs in the "
                                       "fast suite and whose other cases are slow")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The fast suite (``pytest``, at most 4 minutes on 2 cores) runs the first case of every
    ``slow_cases`` family; ``pytest -m slow`` runs the rest; ``.ci/run`` runs both."""
    first = set()
    for item in items:
        if item.get_closest_marker("slow_cases"):
            family = (item.path, item.originalname)
            if family in first:
                item.add_marker(pytest.mark.slow)
            first.add(family)


def compiled_missing() -> Optional[str]:
    """Why the compiled engine cannot run here (building it on the first call), or None."""
    from rnnlab.engines import compiled
    if compiled.compiled_available():
        return None
    return f"the compiled engine cannot run here: {compiled.compiled_broken()}"


def compiled_required() -> bool:
    return os.environ.get(REQUIRE_COMPILED, "0") not in ("", "0")


def fail_if_required(why: str) -> None:
    if compiled_required():
        pytest.fail(f"{why}; {REQUIRE_COMPILED}=1 requires it", pytrace=False)


def pytest_runtest_setup(item):
    # skipped before the test's fixtures are made; under RNNLAB_REQUIRE_COMPILED=1 failed in the
    # call phase below, so that the report says FAILED rather than an error in set-up
    if item.get_closest_marker("requires_compiled") and not compiled_required():
        why = compiled_missing()
        if why:
            pytest.skip(why)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    if item.get_closest_marker("requires_compiled") and compiled_required():
        why = compiled_missing()
        if why:
            fail_if_required(why)


@pytest.fixture
def compiled_runs() -> bool:
    """Whether the compiled engine runs here (for tests of what ``auto`` picks with it and without
    it); a failure under RNNLAB_REQUIRE_COMPILED=1 when it does not."""
    why = compiled_missing()
    if why:
        fail_if_required(why)
    return why is None


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
