"""FTRL-Proximal (``descent.fit_linear_ftrl_many``, ``descent.ftrl_step``) against references.

References:

- a line-by-line transcription of Algorithm 1 of McMahan et al. (2013), "Ad click prediction: a
  view from the trenches" (per-coordinate FTRL-Proximal with L1 and L2), one coordinate at a time,
  with TensorFlow's conventions: the paper's β = 0 and its n_i started at TensorFlow's
  ``initial_accumulator_value`` (0.1), its λ₂ = 2 · TensorFlow's ``l2``;
- ``torch.optim.Adagrad``: without L1 and L2, FTRL-Proximal is AdaGrad step for step
  (z_t = g_t − w_t/η_t, so w_{t+1} = −η_t z_t = w_t − η_t g_t with η_t = α/√n_t);
- ``descent.fit_linear_many`` (SGD): with ``lr_power=0`` every coordinate's rate is the fixed α.

(Checked once, outside this suite, against Keras 3.15.1's ``keras.optimizers.Ftrl`` on the torch
backend, which follows TensorFlow's ``ApplyFtrl``: the weights agreed to 3e-16 with l1, l2 and
lr_power = −0.3; Keras is not a dependency of the book.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons_lib import data, descent


def algorithm_1(X, y, alpha, lambda1, lambda2, *, n0, loss, batch_size, epochs, seed):
    """McMahan et al. (2013), Algorithm 1, transcribed one coordinate at a time (β = 0, n_i
    started at ``n0``). A minibatch's gradient is the mean of its samples' gradients (batch 1 is
    the paper's online setting); the bias is a coordinate whose feature is always 1. The samples
    come in the order :func:`descent.fit_linear_many` uses. Returns the weights and the bias."""
    n_samples, d = X.shape
    Xa = np.hstack([X, np.ones((n_samples, 1))])
    z = [0.0] * (d + 1)
    n = [n0] * (d + 1)

    def weight(i):  # w_{t,i}, computed from z_i and n_i
        if abs(z[i]) <= lambda1:
            return 0.0
        return -1.0 / (math.sqrt(n[i]) / alpha + lambda2) * (z[i] - math.copysign(lambda1, z[i]))

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(n_samples)
        for start in range(0, n_samples - batch_size + 1, batch_size):
            batch = order[start:start + batch_size]
            active = [i for i in range(d + 1) if any(Xa[j, i] != 0 for j in batch)]
            w = {i: weight(i) for i in active}
            g = {i: 0.0 for i in active}
            for j in batch:
                score = sum(w[i] * Xa[j, i] for i in active)
                p = 1 / (1 + math.exp(-score)) if loss == "logistic" else score
                for i in active:
                    g[i] += (p - y[j]) * Xa[j, i] / len(batch)
            for i in active:
                sigma = (math.sqrt(n[i] + g[i] ** 2) - math.sqrt(n[i])) / alpha
                z[i] = z[i] + g[i] - sigma * w[i]
                n[i] = n[i] + g[i] ** 2
    final = np.array([weight(i) for i in range(d + 1)])
    return final[:d], final[d]


@pytest.mark.parametrize("loss, batch_size, l1, l2", [
    ("logistic", 1, 0.0, 0.0),     # the paper's setting, TensorFlow's defaults
    ("logistic", 1, 3.0, 0.3),     # with both penalties: some weights exactly 0
    ("squared", 8, 0.05, 0.1),     # minibatches and the squared loss
])
def test_matches_a_transcription_of_algorithm_1(loss, batch_size, l1, l2):
    """Catches a wrong FTRL step (the σ correction, the accumulator, the L1 threshold, the L2
    factor 2), a bias left out of the optimizer, or zero features updating their coordinate:
    the weights after two epochs equal those of the paper's algorithm, transcribed per
    coordinate, on data where a third of the feature values are 0."""
    make = data.logistic_regression if loss == "logistic" else data.linear_regression
    X, y = make(120, 5, seed=3)
    X = X * (np.random.default_rng(4).random(X.shape) > 1 / 3)  # sparse, as in the paper
    lrs = np.array([0.05, 0.4])
    _, W, b = descent.fit_linear_ftrl_many(X, y, lrs, loss=loss, epochs=2, batch_size=batch_size,
                                           seed=5, l1=l1, l2=l2, return_weights=True)
    for k, alpha in enumerate(lrs):
        w_ref, b_ref = algorithm_1(X, y, alpha, l1, 2 * l2, n0=0.1, loss=loss,
                                   batch_size=batch_size, epochs=2, seed=5)
        np.testing.assert_allclose(W[k], w_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b[k], b_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(W[k] == 0, w_ref == 0)  # L1's exact zeros, same places
    if l1 > 1:
        assert (W == 0).any() and not (W == 0).all()  # the penalty did something, not everything


def test_without_penalties_it_is_adagrad_step_for_step():
    """Catches FTRL-Proximal that is not AdaGrad when l1 = l2 = 0 (e.g. the accumulator updated
    after the step instead of before, or started at 0 instead of 0.1): the weights equal those
    of torch.optim.Adagrad (initial_accumulator_value=0.1, eps=0) on the same minibatches."""
    X, y = data.linear_regression(200, 6, correlation=0.5, seed=1)
    lrs = np.array([0.01, 0.2, 1.5])
    batch_size, epochs, seed = 16, 3, 7
    _, W, b = descent.fit_linear_ftrl_many(X, y, lrs, epochs=epochs, batch_size=batch_size,
                                           seed=seed, return_weights=True)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for k, lr in enumerate(lrs):
        w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adagrad([w, bias], lr=float(lr), initial_accumulator_value=0.1, eps=0)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(len(X))
            for start in range(0, len(X) - batch_size + 1, batch_size):
                idx = torch.from_numpy(order[start:start + batch_size])
                opt.zero_grad()
                (0.5 * ((Xt[idx] @ w + bias - yt[idx]) ** 2).mean()).backward()
                opt.step()
        np.testing.assert_allclose(W[k], w.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(b[k], bias.item(), rtol=1e-10)


@pytest.mark.parametrize("initial_accumulator", [0.0, 0.1, 5.0])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_learning_rate_power_zero_is_plain_sgd(loss, initial_accumulator):
    """Catches an accumulator that still acts when lr_power = 0 (a fixed rate): then FTRL is SGD
    with rate α from w = 0, whatever the accumulator, and the final losses (diverged runs
    included) are those of fit_linear_many on the same minibatches."""
    make = data.logistic_regression if loss == "logistic" else data.linear_regression
    X, y = make(400, 8, correlation=0.5, seed=2)
    lrs = np.geomspace(1e-3, 30, 12)
    sgd = descent.fit_linear_many(X, y, lrs, loss=loss, epochs=2, batch_size=10, seed=3)
    ftrl = descent.fit_linear_ftrl_many(X, y, lrs, loss=loss, epochs=2, batch_size=10, seed=3,
                                        lr_power=0.0, initial_accumulator=initial_accumulator)
    np.testing.assert_allclose(ftrl, sgd, rtol=1e-9)
    if loss == "squared":
        assert np.isinf(sgd).any() and np.isfinite(sgd).any()  # both regimes were compared


def test_the_default_lr_power_shrinks_the_steps_and_does_not_diverge_where_sgd_does():
    """Catches an FTRL whose rate does not adapt (lr_power ignored): at a rate where SGD blows up,
    FTRL-Proximal with the default lr_power = −½ stays finite, because each coordinate's step
    is divided by the root of its summed squared gradients."""
    X, y = data.linear_regression(2000, 100, correlation=0.5, seed=0)
    lrs = np.array([0.1])
    assert np.isinf(descent.fit_linear_many(X, y, lrs)).all()
    assert np.isfinite(descent.fit_linear_ftrl_many(X, y, lrs)).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"lr_power": 0.5}, r"^lr_power must be a finite number in \(-inf, 0\], got 0\.5"),
    ({"initial_accumulator": -0.1},
     r"^initial_accumulator must be a finite number in \[0, inf\), got -0\.1"),
    ({"initial_accumulator": 0.0}, r"^initial_accumulator must be > 0 when lr_power < 0"),
    ({"l1": -1.0}, r"^l1 must be a finite number in \[0, inf\), got -1\.0"),
    ({"l2": float("nan")}, r"^l2 must be a finite number in \[0, inf\), got nan"),
    ({"return_weights": 1}, r"^return_weights must be True or False, got 1"),
    ({"lrs": -0.1}, r"^lrs must be finite and > 0; got -0\.1"),
    ({"batch_size": 11}, r"^batch_size must be an integer in \[1, 10\], got 11"),
    ({"seed": -1, "batch_size": 2}, r"^seed must be an integer >= 0, got -1$"),
    ({"lrs": "0.1"}, r"^lrs must be a number or an array of numbers, finite and > 0; "
                     r"got the string '0\.1'"),
])
def test_bad_arguments_are_refused_by_name(kwargs, match):
    """Catches a setting outside what TensorFlow allows (lr_power > 0, a negative accumulator or
    penalty) accepted, or a message that does not start with the argument's name."""
    args = {"lrs": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        descent.fit_linear_ftrl_many(np.ones((10, 2)), np.zeros(10), **args)
