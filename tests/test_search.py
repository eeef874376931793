"""lessons_lib.search: grid, random and Bayesian search, and the Gaussian process under the last.

The GP pieces are checked against independent code: the kernel, the posterior and the log
marginal likelihood against scikit-learn's ``GaussianProcessRegressor`` with the same fixed
kernel, expected improvement against a numerical integral and a Monte Carlo estimate, and the two
analytic gradients (log marginal likelihood, acquisition) against finite differences. The searches
are checked on what a learner relies on: every grid point once, reproducible seeds, log dimensions
uniform in log space, Bayesian optimisation better than random on Branin, failed trials recorded
without losing the others, and a ValueError naming the argument for bad input.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from threadpoolctl import threadpool_limits

from lessons_lib import search as S


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The GP's matrices are tiny: a second BLAS thread only slows them down on a busy machine."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def branin(params):
    """Branin-Hoo on [-5, 10] x [0, 15]; global minimum 0.397887 (three minimisers)."""
    x1, x2 = params["x1"], params["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


BRANIN_SPACE = {"x1": S.Uniform(-5.0, 10.0), "x2": S.Uniform(0.0, 15.0)}
BRANIN_MIN = 0.397887

LENGTH_SCALES = np.array([0.3, 0.8, 2.0])
VARIANCE, NOISE = 1.7, 0.05


@pytest.fixture(scope="module")
def gp_data():
    """15 random training points in 3-D, random targets, 8 test points."""
    rng = np.random.default_rng(0)
    return rng.random((15, 3)), rng.standard_normal(15), rng.random((8, 3))


def sklearn_gp(X, y, white: bool) -> GaussianProcessRegressor:
    """The same GP in scikit-learn, every hyperparameter fixed; the noise either as a
    WhiteKernel (``white``) or as ``alpha`` added to the diagonal."""
    kernel = ConstantKernel(VARIANCE, "fixed") * Matern(LENGTH_SCALES, "fixed", nu=2.5)
    if white:
        kernel = kernel + WhiteKernel(NOISE, "fixed")
    alpha = 1e-14 if white else NOISE
    return GaussianProcessRegressor(kernel, alpha=alpha, optimizer=None,
                                    normalize_y=False).fit(X, y)


# --------------------------------------------------------------------------------------------
# The Gaussian process against scikit-learn
# --------------------------------------------------------------------------------------------


def test_matern52_equals_sklearn_matern_with_ard_length_scales():
    """Catches a wrong Matérn-5/2 formula (√5 or 5/3 factor) or length scales applied to the
    wrong axis."""
    rng = np.random.default_rng(1)
    X1, X2 = rng.random((7, 3)), rng.random((5, 3))
    expected = VARIANCE * Matern(LENGTH_SCALES, nu=2.5)(X1, X2)
    np.testing.assert_allclose(S.matern52(X1, X2, LENGTH_SCALES, VARIANCE), expected, rtol=1e-10)
    np.testing.assert_allclose(S.matern52(X1, X1, LENGTH_SCALES, VARIANCE).diagonal(), VARIANCE)


@pytest.mark.parametrize("white", [True, False], ids=["WhiteKernel", "alpha=noise"])
def test_gp_posterior_equals_sklearn(gp_data, white):
    """Catches a wrong posterior mean or variance (a missing noise term, a transposed solve).

    What sklearn's std means: with the noise as a WhiteKernel, ``kernel_.diag(X_test)`` includes
    the white noise, so sklearn's std² = our (noise-free) variance + noise; with the noise given as
    ``alpha`` instead, it is added to the training diagonal only and std² = our variance. Both
    match to ~1e-13 (measured); the rtol is 1e-6.
    """
    X, y, X_test = gp_data
    mean, var = S.gp_posterior(X, y, X_test, LENGTH_SCALES, VARIANCE, NOISE)
    sk_mean, sk_std = sklearn_gp(X, y, white).predict(X_test, return_std=True)
    np.testing.assert_allclose(mean, sk_mean, rtol=1e-6)
    np.testing.assert_allclose(var + (NOISE if white else 0.0), sk_std**2, rtol=1e-6)


@pytest.mark.parametrize("white", [True, False], ids=["WhiteKernel", "alpha=noise"])
def test_log_marginal_likelihood_equals_sklearn(gp_data, white):
    """Catches a wrong sign, a missing log-determinant term or a missing n/2 log 2π."""
    X, y, _ = gp_data
    ours = S.log_marginal_likelihood(X, y, LENGTH_SCALES, VARIANCE, NOISE)
    assert ours == pytest.approx(sklearn_gp(X, y, white).log_marginal_likelihood_value_,
                                 rel=1e-9)


def test_lml_gradient_equals_finite_differences(gp_data):
    """Catches a wrong analytic gradient of the log marginal likelihood, which would stop the
    hyperparameter fit at a point that is not an optimum."""
    X, y, _ = gp_data
    theta = np.log([*LENGTH_SCALES, VARIANCE, NOISE])
    sq_diff = (X[:, None, :] - X[None, :, :]) ** 2
    _, grad = S._negative_lml(theta, y, sq_diff)

    def lml(th):
        return S.log_marginal_likelihood(X, y, np.exp(th[:-2]), np.exp(th[-2]), np.exp(th[-1]))

    h = 1e-6
    numeric = [(lml(theta + h * e) - lml(theta - h * e)) / (2 * h) for e in np.eye(len(theta))]
    np.testing.assert_allclose(-grad, numeric, rtol=1e-5, atol=1e-7)


def test_fit_without_prior_reaches_sklearns_maximum_likelihood():
    """Catches a hyperparameter fit that stops short of the optimum (bad starts, wrong bounds):
    with the same bounds, scikit-learn's own optimiser finds no higher likelihood."""
    rng = np.random.default_rng(1)
    X = rng.random((20, 2))
    y = np.sin(6 * X[:, 0]) + 0.3 * X[:, 1] + 0.01 * rng.standard_normal(20)
    y = (y - y.mean()) / y.std()
    kernel = (ConstantKernel(1.0, S.VARIANCE_BOUNDS)
              * Matern([0.3, 0.3], S.LENGTH_SCALE_BOUNDS, nu=2.5)
              + WhiteKernel(1e-3, S.NOISE_BOUNDS))
    sk = GaussianProcessRegressor(kernel, alpha=1e-12, n_restarts_optimizer=3,
                                  random_state=0).fit(X, y)
    fit = S.fit_gp_hyperparameters(X, y, np.random.default_rng(0), length_scale_prior=None)
    ours = S.log_marginal_likelihood(X, y, fit.length_scales, fit.variance, fit.noise)
    assert ours >= sk.log_marginal_likelihood_value_ - 1e-4


def test_length_scale_prior_keeps_length_scales_off_the_upper_bound():
    """Catches the prior not being applied: on 8 points in 6-D where the maximum likelihood
    switches dimensions off (length scale at the upper bound 100), the MAP fit keeps them short."""
    rng = np.random.default_rng(3)
    X = rng.random((8, 6))
    y = np.sin(4 * X.sum(axis=1))
    y = (y - y.mean()) / y.std()
    mle = S.fit_gp_hyperparameters(X, y, np.random.default_rng(0), length_scale_prior=None)
    fit = S.fit_gp_hyperparameters(X, y, np.random.default_rng(0))
    assert max(mle.length_scales) > 10
    assert max(fit.length_scales) < 10


# --------------------------------------------------------------------------------------------
# Acquisition functions
# --------------------------------------------------------------------------------------------

EI_CASES = [(0.0, 1.0, 0.5, 0.0), (1.0, 0.3, 0.2, 0.01), (-2.0, 2.0, -1.5, 0.1),
            (0.3, 0.05, 0.35, 0.0), (3.0, 0.5, 0.0, 0.0)]


@pytest.mark.parametrize("mean, std, best, xi", EI_CASES)
def test_expected_improvement_equals_the_integral(mean, std, best, xi):
    """Catches a wrong closed form (sign of z, a missing σ): EI = ∫ max(y* − y − ξ, 0) p(y) dy
    for y ~ N(μ, σ²), by numerical integration."""
    integrand = lambda y: (best - y - xi) * stats.norm.pdf(y, mean, std)  # noqa: E731
    expected, _ = integrate.quad(integrand, mean - 12 * std, best - xi, epsabs=1e-13)
    expected = max(expected, 0.0)
    assert float(S.expected_improvement(mean, std, best, xi)) == pytest.approx(expected,
                                                                                rel=1e-7,
                                                                                abs=1e-12)


def test_expected_improvement_equals_monte_carlo():
    """Catches the closed form and the definition disagreeing, checked with independent samples
    (10⁶ draws, within 4 standard errors)."""
    rng = np.random.default_rng(0)
    mean, std, best, xi = 0.4, 0.7, 0.1, 0.01
    gains = np.maximum(best - rng.normal(mean, std, 1_000_000) - xi, 0.0)
    error = gains.std() / math.sqrt(gains.size)
    assert abs(float(S.expected_improvement(mean, std, best, xi)) - gains.mean()) < 4 * error


def test_expected_improvement_is_never_negative_and_vanishes_with_certainty():
    """Catches roundoff making EI negative far from the best, and a division by σ = 0: with no
    uncertainty EI is the sure improvement, 0 when the mean is above the best."""
    mean = np.linspace(-50, 50, 1001)
    for std in (1e-12, 1e-3, 1.0, 30.0):
        assert (S.expected_improvement(mean, std, 0.0) >= 0).all()
    assert float(S.expected_improvement(1.0, 0.0, 0.0)) == 0.0
    assert float(S.expected_improvement(-1.0, 0.0, 0.0, xi=0.25)) == 0.75
    shrinking = S.expected_improvement(1.0, np.array([1.0, 0.3, 0.1, 0.01]), 0.0)
    assert (np.diff(shrinking) < 0).all() and shrinking[-1] < 1e-30


def test_lower_confidence_bound_is_mean_minus_kappa_std():
    """Catches a sign error that would make "ucb" chase the worst points."""
    np.testing.assert_allclose(S.lower_confidence_bound([1.0, 2.0], [0.5, 0.1], kappa=2.0),
                               [0.0, 1.8])


@pytest.mark.parametrize("acquisition", S.ACQUISITIONS)
def test_acquisition_gradient_equals_finite_differences(gp_data, acquisition):
    """Catches a wrong gradient of the acquisition in x, which L-BFGS-B follows to refine the
    best candidates."""
    X, y, X_test = gp_data
    gp = S._condition(X, y, LENGTH_SCALES, VARIANCE, NOISE)
    best = float(y.min())
    for x in X_test[:4]:
        _, grad = S._score(gp, x[None], best, acquisition, 0.01, 2.0, with_grad=True)
        h = 1e-6
        numeric = [(S._score(gp, (x + h * e)[None], best, acquisition, 0.01, 2.0)[0]
                    - S._score(gp, (x - h * e)[None], best, acquisition, 0.01, 2.0)[0]) / (2 * h)
                   for e in np.eye(3)]
        np.testing.assert_allclose(grad[0], numeric, rtol=1e-4, atol=1e-8)


# --------------------------------------------------------------------------------------------
# The search space
# --------------------------------------------------------------------------------------------

MIXED = {"lr": S.LogUniform(1e-4, 1.0), "momentum": S.Uniform(0.0, 0.99),
         "width": S.Int(8, 64), "optimizer": S.Choice(["sgd", "adam", ("adamw", 0.01)])}


def test_encode_decode_round_trip_for_every_dimension_type():
    """Catches an encoding that decode does not invert (a log without its exp, an Int rounded to
    its neighbour, a Choice decoded to the wrong option), including at the bounds."""
    rng = np.random.default_rng(0)
    cases = [{"lr": 1e-4, "momentum": 0.0, "width": 8, "optimizer": "sgd"},
             {"lr": 1.0, "momentum": 0.99, "width": 64, "optimizer": ("adamw", 0.01)}]
    for _ in range(50):
        cases.append({"lr": float(10 ** rng.uniform(-4, 0)), "momentum": float(rng.uniform(0, .99)),
                      "width": int(rng.integers(8, 65)), "optimizer": MIXED["optimizer"].options[
                          rng.integers(3)]})
    for params in cases:
        x = S.encode(MIXED, params)
        assert x.shape == (6,) and ((0 <= x) & (x <= 1)).all()
        back = S.decode(MIXED, x)
        assert back["lr"] == pytest.approx(params["lr"], rel=1e-12)
        assert back["momentum"] == pytest.approx(params["momentum"], rel=1e-12, abs=1e-15)
        assert back["width"] == params["width"] and type(back["width"]) is int
        assert back["optimizer"] == params["optimizer"]


def test_encodings_of_each_dimension():
    """Catches the documented encodings drifting: log10-linear, Int cell centres, one-hot."""
    assert S.encode({"a": S.LogUniform(1e-4, 1.0)}, {"a": 1e-2})[0] == pytest.approx(0.5)
    assert S.encode({"a": S.Uniform(-1.0, 3.0)}, {"a": 0.0})[0] == pytest.approx(0.25)
    np.testing.assert_allclose(S.encode({"n": S.Int(1, 4)}, {"n": 2}), [0.375])  # cell [1/4, 2/4)
    np.testing.assert_array_equal(S.encode({"c": S.Choice(["x", "y", "z"])}, {"c": "y"}),
                                  [0, 1, 0])
    int_space = {"n": S.Int(1, 4)}
    assert [S.decode(int_space, [u])["n"] for u in (0.0, 0.24, 0.26, 0.74, 0.76, 1.0)] == \
        [1, 1, 2, 3, 4, 4]
    assert S.decode({"c": S.Choice(["x", "y", "z"])}, [0.2, 0.1, 0.7])["c"] == "z"


def test_random_draws_are_uniform_in_each_dimension_log_uniform_in_log_space():
    """Catches a LogUniform drawn uniformly in linear space (its median would be ~0.5, not 1e-2)
    and an Int or Choice that favours some values."""
    draws = S.random_search(lambda p: 0.0, MIXED, n_trials=2000, seed=0).trials
    lrs = np.array([t.params["lr"] for t in draws])
    assert abs(np.log10(np.median(lrs)) + 2) < 0.1
    assert np.mean(lrs < 1e-3) == pytest.approx(0.25, abs=0.04)
    widths = np.array([t.params["width"] for t in draws])
    assert widths.min() == 8 and widths.max() == 64
    counts = np.bincount(widths - 8)
    assert stats.chisquare(counts).pvalue > 1e-3
    names = [t.params["optimizer"] for t in draws]
    assert stats.chisquare([names.count(o) for o in MIXED["optimizer"].options]).pvalue > 1e-3


# --------------------------------------------------------------------------------------------
# The three searches
# --------------------------------------------------------------------------------------------


def test_grid_search_runs_every_combination_once_and_finds_the_min():
    """Catches a grid that skips or repeats a combination, or loses the best one."""
    grid = {"lr": [0.1, 0.01, 0.001], "batch": [16, 32], "opt": ["sgd", "adam"]}
    calls = []

    def objective(params):
        calls.append(tuple(params.values()))
        return abs(math.log10(params["lr"]) + 2) + params["batch"] / 100 + (params["opt"] == "sgd")

    result = S.grid_search(objective, grid)
    assert calls == list(itertools.product(*grid.values()))
    assert len(result.trials) == 12
    assert result.best_params == {"lr": 0.01, "batch": 16, "opt": "adam"}
    assert result.best_value == pytest.approx(0.16)


def test_random_search_is_reproducible_and_differs_across_seeds():
    """Catches a search that ignores its seed, or draws from the global NumPy state."""
    a = S.random_search(branin, BRANIN_SPACE, 10, seed=3)
    np.random.seed(123)  # the global state must not matter
    b = S.random_search(branin, BRANIN_SPACE, 10, seed=3)
    c = S.random_search(branin, BRANIN_SPACE, 10, seed=4)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


def test_bayes_opt_is_reproducible_with_a_seed():
    """Catches hidden randomness in the GP fit or the acquisition search."""
    a = S.bayes_opt(branin, BRANIN_SPACE, 8, seed=1, n_init=4, n_candidates=300)
    b = S.bayes_opt(branin, BRANIN_SPACE, 8, seed=1, n_init=4, n_candidates=300)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.values.tolist() == b.values.tolist()


def test_bayes_opt_beats_random_search_on_branin():
    """Catches a Bayesian optimisation that does not use its model (a broken acquisition, a GP
    fitted to the wrong values): at 20 trials (6 of them the initial design) its median regret
    over 3 seeds is below 0.5 and under half that of random search (measured: 0.34 and 1.24)."""
    bo = [S.bayes_opt(branin, BRANIN_SPACE, 20, seed=s).best_value for s in range(3)]
    rs = [S.random_search(branin, BRANIN_SPACE, 20, seed=s).best_value for s in range(3)]
    assert np.median(bo) - BRANIN_MIN < 0.5
    assert np.median(bo) - BRANIN_MIN < 0.5 * (np.median(rs) - BRANIN_MIN)


@pytest.mark.parametrize("acquisition", S.ACQUISITIONS)
def test_bayes_opt_respects_int_and_choice(acquisition):
    """Catches an Int returned as a float or out of range, an option that is not one of the
    choices, and a point evaluated twice."""

    def objective(p):
        return ((math.log10(p["lr"]) + 2) ** 2 + (p["momentum"] - 0.9) ** 2
                + (p["width"] - 40) ** 2 / 100 + (p["optimizer"] != "adam"))

    result = S.bayes_opt(objective, MIXED, 14, seed=0, acquisition=acquisition,
                         n_candidates=500)
    assert len(result.trials) == 14
    for trial in result.trials:
        p = trial.params
        assert type(p["width"]) is int and 8 <= p["width"] <= 64
        assert p["optimizer"] in MIXED["optimizer"].options
        assert 1e-4 <= p["lr"] <= 1.0 and 0.0 <= p["momentum"] <= 0.99
    keys = [tuple(t.params.values()) for t in result.trials]
    assert len(set(keys)) == len(keys)


def test_bayes_opt_tries_every_point_of_a_small_discrete_space_once():
    """Catches the duplicate check: with 6 possible points and 6 trials, none is repeated."""
    space = {"n": S.Int(0, 2), "c": S.Choice(["x", "y"])}
    result = S.bayes_opt(lambda p: p["n"] + (p["c"] == "y"), space, 6, seed=0, n_candidates=200)
    assert sorted((t.params["n"], t.params["c"]) for t in result.trials) == \
        sorted(itertools.product([0, 1, 2], ["x", "y"]))


# --------------------------------------------------------------------------------------------
# Failed trials
# --------------------------------------------------------------------------------------------


def flaky(params):
    """Raises above 0.7, NaN below 0.2, inf on [0.2, 0.25), a parabola in between."""
    x = params["x"]
    if x > 0.7:
        raise ValueError("x too large")
    if x < 0.2:
        return float("nan")
    if x < 0.25:
        return float("inf")
    return (x - 0.5) ** 2


SEARCHES = {
    "grid": lambda f: S.grid_search(f, {"x": [0.1, 0.22, 0.3, 0.5, 0.6, 0.9]}),
    "random": lambda f: S.random_search(f, {"x": S.Uniform(0.0, 1.0)}, 16, seed=0),
    "bayes": lambda f: S.bayes_opt(f, {"x": S.Uniform(0.0, 1.0)}, 12, seed=0, n_candidates=300),
}


@pytest.mark.parametrize("search", SEARCHES)
def test_failed_trials_are_recorded_and_the_search_goes_on(search):
    """Catches an exception or a NaN stopping the search, a failed trial lost or counted as the
    best, or a wrong running best."""
    result = SEARCHES[search](flaky)
    n = {"grid": 6, "random": 16, "bayes": 12}[search]
    assert len(result.trials) == n
    errors = {t.error for t in result.trials if t.state == "failed"}
    assert "ValueError('x too large')" in errors and "returned nan" in errors
    for t in result.trials:
        assert t.state in ("complete", "failed")
        assert (t.state == "failed") == (not 0.25 <= t.params["x"] <= 0.7)
        assert (t.error is None) == (t.state == "complete")
        assert math.isnan(t.value) == (t.state == "failed")
    completed = [t.value for t in result.trials if t.state == "complete"]
    assert result.best_value == min(completed)
    assert flaky(result.best_params) == result.best_value
    expected = np.fmin.accumulate(result.values)  # NaN until the first completed trial
    np.testing.assert_array_equal(result.best_so_far, expected)
    first = next(i for i, t in enumerate(result.trials) if t.state == "complete")
    assert np.isnan(result.best_so_far[:first]).all()
    assert not np.isnan(result.best_so_far[first:]).any()


def test_best_so_far_and_values_by_hand():
    """Catches best_so_far counting a failed trial, or values hiding which trials failed."""
    trials = (S.Trial({"x": 0}, math.nan, "failed", "returned nan"),
              S.Trial({"x": 1}, 3.0, "complete"), S.Trial({"x": 2}, math.nan, "failed", "boom"),
              S.Trial({"x": 3}, 1.0, "complete"), S.Trial({"x": 4}, 2.0, "complete"))
    result = S.SearchResult(trials)
    np.testing.assert_array_equal(result.values, [np.nan, 3.0, np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(result.best_so_far, [np.nan, 3.0, 3.0, 1.0, 1.0])
    assert result.best_params == {"x": 3} and result.best_value == 1.0


@pytest.mark.parametrize("search", SEARCHES)
def test_every_trial_failing_leaves_no_best(search):
    """Catches a best taken among failed trials; bayes_opt keeps sampling randomly without a GP."""

    def always_fails(params):
        raise RuntimeError("diverged")

    result = SEARCHES[search](always_fails)
    assert all(t.state == "failed" and t.error == "RuntimeError('diverged')"
               for t in result.trials)
    assert np.isnan(result.best_so_far).all()
    with pytest.raises(ValueError, match=r"^no trial completed"):
        result.best_params
    with pytest.raises(ValueError, match=r"^no trial completed"):
        result.best_value


def test_objective_changing_its_params_does_not_change_the_record():
    """Catches the recorded params being the very dict the objective received."""

    def rude(params):
        params.clear()
        return 1.0

    result = S.random_search(rude, {"x": S.Uniform(0.0, 1.0)}, 2, seed=0)
    assert all(set(t.params) == {"x"} for t in result.trials)


# --------------------------------------------------------------------------------------------
# Bad input: a ValueError that starts with the argument's name
# --------------------------------------------------------------------------------------------

SPACE = {"x": S.Uniform(0.0, 1.0)}
ok = branin

BAD_INPUT = [
    (lambda: S.Uniform(1.0, 1.0), r"^high must be greater than low, got low=1.0, high=1.0$"),
    (lambda: S.Uniform(2, 1), r"^high must be greater than low, got low=2.0, high=1.0$"),
    (lambda: S.Uniform(0.0, math.inf), r"^high must be a finite number in \(-inf, inf\), got inf"),
    (lambda: S.Uniform(math.nan, 1.0), r"^low must be a finite number in \(-inf, inf\), got nan"),
    (lambda: S.Uniform("0", 1.0), r"^low must be a real number, got the string '0'"),
    (lambda: S.LogUniform(0.0, 1.0), r"^low must be a finite number in \(0.0, inf\), got 0.0"),
    (lambda: S.LogUniform(-1e-3, 1.0), r"^low must be a finite number in \(0.0, inf\)"),
    (lambda: S.LogUniform(1.0, 0.1), r"^high must be greater than low, got low=1.0, high=0.1"),
    (lambda: S.LogUniform(1e-3, math.inf), r"^high must be a finite number"),
    (lambda: S.Int(0.5, 3), r"^low must be an integer, got 0.5"),
    (lambda: S.Int(0, 2.0), r"^high must be an integer, got 2.0"),
    (lambda: S.Int(True, 3), r"^low must be an integer, got the bool True"),
    (lambda: S.Int(3, 3), r"^high must be greater than low, got low=3, high=3"),
    (lambda: S.Choice([]), r"^options must hold at least 1 option, got \[\]"),
    (lambda: S.Choice(["a", "b", "a"]), r"^options must be distinct, got \['a', 'b', 'a'\]"),
    (lambda: S.Choice("abc"), r"^options must be a list or tuple of options, got the string"),
    (lambda: S.Choice([[1], [2]]), r"^options must be hashable values"),
    (lambda: S.random_search(ok, {}, 5), r"^space must be a non-empty dict of name -> Uniform, "
                                         r"LogUniform, Int or Choice, got \{\}"),
    (lambda: S.bayes_opt(ok, {}, 5), r"^space must be a non-empty dict"),
    (lambda: S.bayes_opt(ok, {"x": (0, 1)}, 5),
     r"^space\['x'\] must be a Uniform, LogUniform, Int or Choice, got \(0, 1\)"),
    (lambda: S.random_search(ok, SPACE, 0), r"^n_trials must be an integer >= 1, got 0"),
    (lambda: S.bayes_opt(ok, SPACE, 0), r"^n_trials must be an integer >= 1, got 0"),
    (lambda: S.bayes_opt(ok, SPACE, 2.5), r"^n_trials must be an integer >= 1, got 2.5"),
    (lambda: S.bayes_opt(ok, SPACE, 5, acquisition="pi"),
     r"^acquisition must be one of \['ei', 'ucb'\], got 'pi'"),
    (lambda: S.bayes_opt(ok, SPACE, 5, seed=-1), r"^seed must be an integer >= 0, got -1"),
    (lambda: S.random_search(ok, SPACE, 5, seed=1.5), r"^seed must be an integer >= 0"),
    (lambda: S.bayes_opt(ok, SPACE, 5, n_init=0), r"^n_init must be an integer >= 1, got 0"),
    (lambda: S.bayes_opt(ok, SPACE, 5, xi=-0.1), r"^xi must be a finite number in \[0.0, inf\)"),
    (lambda: S.bayes_opt(ok, SPACE, 5, kappa=math.nan), r"^kappa must be a finite number"),
    (lambda: S.bayes_opt("f", SPACE, 5), r"^objective must be callable"),
    (lambda: S.grid_search(ok, {}), r"^grid must be a non-empty dict of name -> list of values"),
    (lambda: S.grid_search(ok, {"x": [1], "y": []}),
     r"^grid\['y'\] must be a non-empty list of values, got \[\]"),
    (lambda: S.grid_search(ok, {"x": 0.1}), r"^grid\['x'\] must be a non-empty list of values"),
    (lambda: S.encode(SPACE, {"y": 0.5}), r"^params must be a dict with the keys \['x'\]"),
    (lambda: S.encode(SPACE, {"x": 1.5}),
     r"^params\['x'\] must be a finite number in \[0.0, 1.0\], got 1.5"),
    (lambda: S.encode({"c": S.Choice(["a"])}, {"c": "b"}),
     r"^params\['c'\] must be one of \('a',\), got 'b'"),
    (lambda: S.decode(SPACE, [0.1, 0.2]), r"^x must have shape \(1,\) for this space, got \(2,\)"),
]


@pytest.mark.parametrize("call, pattern", BAD_INPUT, ids=[p for _, p in BAD_INPUT])
def test_bad_input_names_the_argument(call, pattern):
    """Catches bad input slipping through (a NaN bound, an empty space, an unknown acquisition)
    or failing with an error that does not say which argument is wrong."""
    with pytest.raises(ValueError, match=pattern):
        call()


def test_bayes_opt_learns_to_avoid_where_trials_fail():
    """Catches failed trials being left out of the GP: the search then knows nothing about the
    failing region and proposes it again and again (measured before the fix: 10 of 10 proposals
    failed on every seed; with failures counted as the worst value, none)."""
    def objective(p):
        if p["lr"] > 1.0:
            raise RuntimeError("diverged")
        return (np.log10(p["lr"]) - np.log10(0.8)) ** 2

    space = {"lr": S.LogUniform(1e-3, 10.0)}
    for seed in range(3):
        result = S.bayes_opt(objective, space, 14, seed=seed, n_init=4)
        proposed = [t.state for t in result.trials[4:]]
        assert proposed.count("failed") <= 2, proposed
        assert result.best_value < 0.02
