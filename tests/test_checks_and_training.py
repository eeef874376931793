"""Argument checks, data sets, models, the training loop and setup()."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lessons_lib import _checks, data, descent, diagnostics, models, setup, train


def test_check_learning_rate_accepts_arrays_and_allow_zero():
    """Catches the learning-rate check refusing a sweep or a warm-up's 0, or passing a negative
    rate."""
    assert _checks.check_learning_rate("lr", [0.1, 1.0]).tolist() == [0.1, 1.0]
    assert _checks.check_learning_rate("lr", 0.0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"^lr must be finite and > 0; got -0\.5"):
        _checks.check_learning_rate("lr", -0.5)


def test_check_real_and_int_messages_show_the_allowed_range():
    """Catches the shared checks' messages losing the argument's name or its allowed range."""
    with pytest.raises(ValueError, match=r"^gamma must be a finite number in \(0, inf\), got 0\.0"):
        _checks.check_real("gamma", 0.0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^p must be a finite number in \[0, 1\), got 1\.0"):
        _checks.check_real("p", 1.0, low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match="^x must be a real number, got "):
        _checks.check_real("x", True)
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, 5\], got 6"):
        _checks.check_int("n", 6, low=1, high=5)
    with pytest.raises(ValueError, match=r"^name must be one of \['a', 'b'\], got 'c'"):
        _checks.check_choice("name", "c", ("a", "b"))


def test_setup_is_reproducible_and_sets_threads():
    """Catches setup() not reseeding, not setting the thread counts, or taking a negative seed."""
    info = setup(seed=3)
    a = (np.random.rand(), torch.rand(1).item())
    setup(seed=3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    assert info["torch_threads"] == torch.get_num_threads() == 1  # the default: one thread a kernel
    from threadpoolctl import threadpool_info
    assert {p["num_threads"] for p in threadpool_info()} == {1}  # NumPy's BLAS too
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0"):
        setup(seed=-1)


LEAK_TESTS = """
from lessons_lib import setup

BEFORE = {}


def test_a_lesson_calls_setup(capture_global_state):
    BEFORE.update(capture_global_state())
    setup(seed=12345, threads=BEFORE["torch threads"] + 1)
    after = capture_global_state()
    changed = {key for key in BEFORE if BEFORE[key] != after[key]}
    assert changed >= {"torch deterministic", "torch threads", "BLAS/OpenMP threads",
                       "random state", "numpy state", "torch state", "matplotlib rcParams"}


def test_the_next_test_finds_the_state_as_it_was(capture_global_state):
    now = capture_global_state()
    assert [key for key in BEFORE if now[key] != BEFORE[key]] == []
"""


def test_setup_state_does_not_leak_into_later_tests(pytester):
    """Catches setup()'s deterministic mode, thread counts, seeds or plot style leaking from one
    test into the next. A pytest session with our conftest runs, twice, a test that calls setup()
    and then one that must find everything as before: as it is, both pass; with the restoring
    fixture switched off, the second one fails, so it can see a leak. (A separate process: the
    leak must not reach this session, and torch cannot import its compiler modules twice.)"""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_restored=LEAK_TESTS, test_unrestored=LEAK_TESTS + """

import pytest


@pytest.fixture(autouse=True)
def restore_global_state():  # overrides the conftest's fixture in this module: nothing restored
    yield
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_unrestored.py::test_the_next_test_finds_the_state_as_it_was FAILED*"])


def test_sklearn_dataset_is_standardised_and_seeded():
    """Catches unstandardised or unseeded splits, and an unknown data set or split share accepted.
    """
    d = data.sklearn_dataset("digits", seed=0)
    assert d.n_features == 64 and d.n_outputs == 10
    assert len(d.X_train) + len(d.X_val) == 1797
    assert torch.allclose(d.X_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.equal(d.X_val, data.sklearn_dataset("digits", seed=0).X_val)
    with pytest.raises(ValueError,
                       match=r"^name must be one of \['breast_cancer', 'digits', 'wine'\]"):
        data.sklearn_dataset("mnist")
    with pytest.raises(ValueError, match=r"^val_fraction must be a finite number in \(0, 1\)"):
        data.sklearn_dataset("wine", val_fraction=1.0)


def test_synthetic_regression_curvature_grows_with_correlation():
    """Catches the curvature of the synthetic regression straying from 1 + ρ(d − 1)."""
    X, _ = data.linear_regression(4000, 50, correlation=0.5, seed=0)
    lam_max = np.linalg.eigvalsh(X.T @ X / len(X)).max()
    assert abs(lam_max - (1 + 0.5 * 49)) / (1 + 0.5 * 49) < 0.1
    with pytest.raises(ValueError, match=r"^correlation must be a finite number in \[0, 1\)"):
        data.linear_regression(correlation=1.0)


def test_mlp_init_scale_and_seed():
    """Catches init_scale not scaling the seeded weights, a wrong parameter count, or init_scale 0
    accepted."""
    a, b = models.mlp(4, 2, width=8, seed=1), models.mlp(4, 2, width=8, seed=1, init_scale=2.0)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(2 * pa, pb)
    assert models.count_parameters(a) == 4 * 8 + 8 + 8 * 2 + 2
    with pytest.raises(ValueError, match=r"^init_scale must be a finite number in \(0, inf\)"):
        models.mlp(4, 2, init_scale=0.0)


def test_fit_learns_is_deterministic_and_flags_divergence(wine):
    d = wine
    h1 = train.fit(models.mlp(13, 3, seed=0), d, lr=0.1, steps=60, batch_size=16, eval_every=20)
    h2 = train.fit(models.mlp(13, 3, seed=0), d, lr=0.1, steps=60, batch_size=16, eval_every=20)
    assert h1.train_loss == h2.train_loss and h1.eval_steps == [20, 40, 60]
    assert h1.val_acc[-1] > 0.85 and not h1.diverged
    bad = train.fit(models.mlp(13, 3, seed=0), d, lr=500.0, steps=60, batch_size=16)
    assert bad.diverged and math.isinf(bad.final_val_loss)


def test_fit_follows_a_schedule_and_accepts_an_optimizer_factory(wine):
    d = wine
    h = train.fit(models.mlp(13, 3), d, lr=0.1, steps=10, lr_schedule=lambda t: 0.1 / (t + 1),
                  optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9))
    assert np.allclose(h.lrs, [0.1 / (t + 1) for t in range(10)])


FIT_BAD_INPUT = [  # (arguments, the start of the message: the argument and what it allows)
    ({"lr": -1.0}, r"^lr must be finite and > 0; got -1\.0"),
    ({"lr": math.nan}, r"^lr must be finite and > 0; got nan"),
    ({"steps": 0}, r"^steps must be an integer >= 1, got 0"),
    ({"batch_size": 10_000}, r"^batch_size must be an integer in \[1, 125\], got 10000"),
    ({"optimizer": "lbfgs"},
     r"^optimizer must be one of \['adagrad', 'adam', .*'sgd'\], got 'lbfgs'"),
    ({"lr_schedule": 0.1}, r"^lr_schedule must be a function of the step or None, got 0\.1"),
    ({"lr_schedule": lambda t: -1.0}, r"^lr_schedule\(step\) must be finite and >= 0; got -1\.0"),
]


@pytest.mark.parametrize("kwargs, match", FIT_BAD_INPUT,
                         ids=[re.match(r"\^(\w+)", m)[1] for _, m in FIT_BAD_INPUT])
def test_fit_bad_input(wine, kwargs, match):
    """Catches a bad run setting reaching the loop, or an error that hides the allowed values."""
    args = {"lr": 0.1, "steps": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        train.fit(models.mlp(13, 3), wine, **args)


def test_fit_linear_many_matches_a_plain_loop_and_flags_divergence():
    """Catches the squared-loss sweep straying from a plain SGD loop, or a blown-up run not
    flagged."""
    X, y = data.linear_regression(256, 5, seed=0)
    lrs = np.array([0.01, 0.1, 50.0])
    final = descent.fit_linear_many(X, y, lrs, epochs=2, batch_size=32, seed=0)
    rng = np.random.default_rng(0)
    w, b = np.zeros(5), 0.0
    for _ in range(2):
        order = rng.permutation(256)
        for s in range(0, 256, 32):
            idx = order[s:s + 32]
            r = X[idx] @ w + b - y[idx]
            w, b = w - 0.1 * r @ X[idx] / 32, b - 0.1 * r.mean()
    assert np.isclose(final[1], 0.5 * np.mean((X @ w + b - y) ** 2))
    assert np.isinf(final[2]) and final[1] < final[0]
    with pytest.raises(ValueError, match=r"^loss must be one of \['logistic', 'squared'\]"):
        descent.fit_linear_many(X, y, lrs, loss="hinge")


@pytest.mark.parametrize("weight", [0.0, 0.5, 0.9, 0.98])
def test_smooth_is_a_bias_corrected_moving_average(weight):
    """Catches a smoother that drops the bias correction (early values shrunk towards 0), weighs
    the samples wrongly or lags by one step: each output must be the weighted mean
    Σ_k weight^(t−k)·x_k / Σ_k weight^(t−k) of the values so far, written out here."""
    x = np.random.default_rng(0).normal(3.0, 2.0, size=40) + np.linspace(0, 5, 40)
    expected = [sum(weight ** (t - k) * x[k] for k in range(t + 1))
                / sum(weight ** (t - k) for k in range(t + 1)) for t in range(len(x))]
    np.testing.assert_allclose(diagnostics.smooth(x, weight), expected, rtol=1e-12)
    assert diagnostics.smooth(x, weight)[0] == pytest.approx(x[0], rel=1e-12)  # not shrunk to 0


def test_smooth_refuses_a_weight_outside_0_1():
    """Catches weight = 1 (a constant, never updated average) being accepted."""
    with pytest.raises(ValueError, match=r"^weight must be a finite number in \[0, 1\), got 1\.0"):
        diagnostics.smooth([1.0], weight=1.0)


def test_setup_limits_scikit_learns_openmp_loaded_after_it():
    """Catches a lesson's gradient boosting running on every core: scikit-learn loads its own
    OpenMP only when sklearn.ensemble is imported, after setup() (a fresh interpreter shows it)."""
    import subprocess
    import sys

    code = ("from lessons_lib import setup; setup(seed=0)\n"
            "import sklearn.ensemble\n"
            "from threadpoolctl import threadpool_info\n"
            "print(sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'openmp'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in __import__("os").environ.items()
                              if k != "OMP_NUM_THREADS"})
    assert out.stdout.strip() == "[1]", out.stdout + out.stderr


def test_setup_spares_glue_the_uri_grammar_compilation():
    """Catches every lesson paying 2-3 s for jsonschema's optional rfc3987-syntax checker on its
    first glue(): after setup() in a fresh interpreter, glue works and the grammars never load,
    while every other format check of jsonschema is still there."""
    import subprocess
    import sys

    code = ("from lessons_lib import setup; setup(seed=0)\n"
            "import sys\n"
            "from myst_nb import glue\n"
            "glue('x', 1.5, display=False)\n"
            "from jsonschema import FormatChecker\n"
            "checker = FormatChecker()\n"
            "print('lark' in sys.modules, 'iri' in checker.checkers, 'uri' in checker.checkers, "
            "'date-time' in checker.checkers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True"], out.stdout + out.stderr


def test_setup_hides_only_tqdms_missing_widgets_note():
    """Catches the lessons that import Optuna printing tqdm's 'IProgress not found' warning (with
    a path of the reader's machine) — and setup() silencing warnings a learner should see."""
    import warnings

    setup(seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("IProgress not found. Please update jupyter and ipywidgets.", UserWarning)
        warnings.warn("lr must be positive", UserWarning)
    assert [str(w.message) for w in caught] == ["lr must be positive"]
