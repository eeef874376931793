"""Shared fixtures of the tests.

- Figures are drawn off-screen (matplotlib's Agg backend) on every machine.
- ``wine`` and ``digits``: the scikit-learn splits that several test files train on, loaded once
  per session. They are shared, so a test must not change them in place; the fixture checks that
  at the end of the session.
- Every test leaves the global state that ``lessons_lib.setup()`` changes as it found it:
  torch's deterministic mode and thread count, the BLAS/OpenMP thread limits (threadpoolctl),
  the seeds of ``random``, NumPy and torch, matplotlib's rcParams, ``OMP_WAIT_POLICY``, ``OMP_NUM_THREADS``.
  :func:`restore_global_state` puts them back after each test;
  ``test_checks_and_training.py::test_setup_state_does_not_leak_into_later_tests`` proves that
  it does, and that without it the leak would be seen.
"""

from __future__ import annotations

import os
import random

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sklearn.linear_model  # noqa: E402, F401  (loads scipy's and sklearn's BLAS / OpenMP now)
import threadpoolctl  # noqa: E402
import torch  # noqa: E402

from lessons_lib import data  # noqa: E402

# `pytester` runs a small pytest session inside a test (the proof that setup() does not leak).
pytest_plugins = ["pytester"]

#: The BLAS and OpenMP libraries loaded by now (NumPy's, scipy's, torch's, scikit-learn's): asking
#: it for their thread counts is quick, while scanning the loaded libraries anew takes ~8 ms.
_THREADPOOLS = threadpoolctl.ThreadpoolController()


def _capture_global_state() -> dict:
    """A comparable picture of everything ``setup()`` changes (RNG states as bytes)."""
    np_state = np.random.get_state()
    return {
        "torch deterministic": (torch.are_deterministic_algorithms_enabled(),
                                torch.is_deterministic_algorithms_warn_only_enabled()),
        "torch threads": torch.get_num_threads(),
        "BLAS/OpenMP threads": [(p["filepath"], p["num_threads"])
                                for p in threadpoolctl.threadpool_info()],
        "random state": random.getstate(),
        "numpy state": (np_state[0], np_state[1].tobytes(), *np_state[2:]),
        "torch state": torch.random.get_rng_state().numpy().tobytes(),
        "matplotlib rcParams": {k: v for k, v in matplotlib.rcParams.items() if k != "backend"},
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


@pytest.fixture
def capture_global_state():
    """The function that pictures setup()'s global state, for tests that compare it."""
    return _capture_global_state


@pytest.fixture(autouse=True)
def restore_global_state():
    """Undo, after each test, what ``setup()`` (or the test itself) did to the global state."""
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    threads = torch.get_num_threads()
    pools = _THREADPOOLS.info()
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    omp = {name: os.environ.get(name) for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    with matplotlib.rc_context():  # restores every rcParam but the backend on exit
        yield
    if (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled()) != deterministic:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if _THREADPOOLS.info() != pools:
        threadpoolctl.threadpool_limits(limits=pools)
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.random.set_rng_state(states[2])
    for name, value in omp.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _shared_split(name: str):
    split = data.sklearn_dataset(name, seed=0)
    copies = [t.clone() for t in (split.X_train, split.y_train, split.X_val, split.y_val)]
    yield split
    now = (split.X_train, split.y_train, split.X_val, split.y_val)
    assert all(torch.equal(a, b) for a, b in zip(copies, now)), \
        f"a test changed the shared {name!r} split in place"


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tests on tiny models (``pytestmark =
    pytest.mark.usefixtures("one_thread")``): one thread is faster than two for them, and much
    faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def wine():
    """``data.sklearn_dataset("wine", seed=0)``: 13 features, 3 classes, 125 training samples."""
    yield from _shared_split("wine")


@pytest.fixture(scope="session")
def digits():
    """``data.sklearn_dataset("digits", seed=0)``: 8×8 images, 10 classes, 1258 training samples."""
    yield from _shared_split("digits")
