"""The NumPy linear-model sweep (``descent.fit_linear_many``) and the synthetic classification data
(``data.logistic_regression``) against scikit-learn.

References: ``sklearn.metrics.log_loss`` for the logistic loss at given weights, torch autograd
(``binary_cross_entropy_with_logits``) for its gradient, and the unregularised optimum of
``sklearn.linear_model.LogisticRegression(C=np.inf)`` (no penalty; scikit-learn 1.8 deprecated
``penalty=None`` for it) / ``LinearRegression`` for where a long run must end. The data's
generating model is checked by fitting it with scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss

from lessons_lib import data
from lessons_lib.descent import fit_linear_many


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_logistic_loss_after_one_step_equals_sklearn_log_loss():
    """Catches a wrong logistic loss (e.g. labels not mapped to ±1, a missing mean) or a wrong
    gradient step: one full-batch step from w = 0, b = 0, with the gradient from torch autograd,
    must leave the loss that sklearn's log_loss gives at the same weights, on the training data
    and on held-out data (eval_on)."""
    X, y = data.logistic_regression(300, 4, seed=2)
    X_val, y_val = data.logistic_regression(200, 4, seed=7)
    lrs = np.array([0.1, 1.0, 3.0])
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(X) @ w + b, torch.from_numpy(y)).backward()
    expected, expected_val = [], []
    for lr in lrs:
        w1, b1 = -lr * w.grad.numpy(), -lr * b.grad.item()
        expected.append(log_loss(y, sigmoid(X @ w1 + b1)))
        expected_val.append(log_loss(y_val, sigmoid(X_val @ w1 + b1)))
    ours = fit_linear_many(X, y, lrs, loss="logistic", epochs=1, batch_size=300)
    ours_val = fit_linear_many(X, y, lrs, loss="logistic", epochs=1, batch_size=300,
                               eval_on=(X_val, y_val))
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    np.testing.assert_allclose(ours_val, expected_val, rtol=1e-12)
    assert np.all(np.diff(ours) < 0)  # larger steps went further down: the steps were taken


def shifted_data(loss):
    """500 samples, 5 features, shifted so that the best intercept is far from 0 (3.6 for the
    squared loss, −0.56 for the logistic one): the bias term must be learnt too."""
    make = data.logistic_regression if loss == "logistic" else data.linear_regression
    X, y = make(500, 5, seed=0)
    return X + 0.5, (y + 3.0 if loss == "squared" else y)


def sklearn_optimum(loss, X, y):
    """The lowest training loss of the linear model, found by scikit-learn (no penalty)."""
    if loss == "logistic":
        model = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y)
        return log_loss(y, model.predict_proba(X))
    model = LinearRegression().fit(X, y)
    return 0.5 * np.mean((model.predict(X) - y) ** 2)


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_long_full_batch_run_reaches_the_sklearn_optimum(loss):
    """Catches a gradient that is not the loss's (wrong sign, scale or bias term): then gradient
    descent does not end at scikit-learn's unregularised optimum (LogisticRegression(C=inf) /
    LinearRegression), from which it cannot go below either."""
    X, y = shifted_data(loss)
    best = sklearn_optimum(loss, X, y)
    lrs = [0.5, 1.0] if loss == "logistic" else [0.1, 0.5]
    final = fit_linear_many(X, y, lrs, loss=loss, epochs=3000, batch_size=500)
    assert np.all(final >= best * (1 - 1e-12))
    np.testing.assert_allclose(final, best, rtol=1e-9)


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_long_minibatch_run_with_small_lr_approaches_the_sklearn_optimum(loss):
    """Catches minibatch SGD that does not settle near the optimum (e.g. gradients of other
    samples than the batch's, or a batch mean taken twice): after 200 epochs of 25-sample
    batches, the gap to scikit-learn's optimum is SGD's noise floor, which grows with η, and at
    the smallest η it is under 2e-4 of the loss. (A shorter run or smaller η would still be
    on its way down: the gap would not grow with η.)"""
    X, y = shifted_data(loss)
    best = sklearn_optimum(loss, X, y)
    lrs = [0.03, 0.3, 1.0] if loss == "logistic" else [0.01, 0.03, 0.1]
    gap = fit_linear_many(X, y, lrs, loss=loss, epochs=200, batch_size=25) - best
    assert np.all(gap >= 0) and np.all(np.diff(gap) > 0), gap
    assert gap[0] < 2e-4 * best


def test_logistic_regression_data_follow_their_model():
    """Catches data.logistic_regression drawing labels from another model than its docstring's
    P(y = 1 | x) = sigmoid(x · w*) (no intercept), e.g. a rescaled w*, an offset, flipped
    labels. w* is drawn as the generator draws it, 3·N(0, I)/√d from default_rng(seed + 1);
    scikit-learn's unregularised fit on 20 000 samples must agree with it within 4 standard
    errors, and w* must explain the labels as well as the fit does (likelihood-ratio test)."""
    n, d, seed = 20_000, 5, 4
    X, y = data.logistic_regression(n, d, seed=seed)
    assert set(np.unique(y)) == {0.0, 1.0}
    w_star = 3 * np.random.default_rng(seed + 1).standard_normal(d) / np.sqrt(d)

    fit = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(X, y)
    theta = np.r_[fit.intercept_, fit.coef_[0]]
    design = np.c_[np.ones(n), X]
    p = fit.predict_proba(X)[:, 1]
    standard_errors = np.sqrt(np.diag(np.linalg.inv(design.T @ (design * (p * (1 - p))[:, None]))))
    z = (theta - np.r_[0.0, w_star]) / standard_errors
    assert np.all(np.abs(z) < 4), f"fit {theta}, model {np.r_[0.0, w_star]}, z-scores {z}"

    # 2n × (log-loss of the true model − log-loss of the fit) is chi-squared with d + 1 degrees
    lr_statistic = 2 * n * (log_loss(y, sigmoid(X @ w_star)) - log_loss(y, p))
    assert 0 <= lr_statistic < stats.chi2.ppf(0.9999, d + 1)
