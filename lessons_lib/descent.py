"""Gradient descent, w ← w − η ∇L(w), run for many learning rates at once.

``gradient_descent(landscape, w0, lr=[0.01, 0.1, 1.0], steps=50)`` returns the whole path of every
run as one :class:`DescentPath` (arrays with a learning-rate axis), so a lesson can sweep
learning rates over orders of magnitude in a single vectorised call and plot any of them.

``fit_linear_many(X, y, lrs)`` does the same for minibatch SGD on a linear or logistic regression
(NumPy): one run per learning rate, all in one vectorised loop, returning the final losses;
``fit_linear_ftrl_many`` does it with FTRL-Proximal, the optimizer of TensorFlow's linear
estimators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lessons_lib._checks import (check_bool, check_choice, check_int, check_learning_rate,
                                 check_real, check_seed)
from lessons_lib.landscapes import Landscape


@dataclass(frozen=True)
class DescentPath:
    """The paths of ``k`` gradient-descent runs, one per learning rate.

    Shapes: ``lrs (k,)``, ``w (steps+1, k, dim)``, ``loss (steps+1, k)``, ``grad (steps+1, k, dim)``.
    A run that blew up (``diverged[j]``) has ``w = nan`` and ``loss = inf`` from the step it left
    the region ``‖w‖ ≤ blowup`` on, so plots stop there instead of drawing overflow.
    """

    lrs: np.ndarray
    w: np.ndarray
    loss: np.ndarray
    grad: np.ndarray
    diverged: np.ndarray

    @property
    def steps(self) -> int:
        return self.w.shape[0] - 1

    @property
    def step_length(self) -> np.ndarray:
        """‖w_{t+1} − w_t‖ = η ‖∇L(w_t)‖ for each step t and run: shape ``(steps, k)``."""
        return np.linalg.norm(np.diff(self.w, axis=0), axis=-1)

    @property
    def grad_norm(self) -> np.ndarray:
        """‖∇L(w_t)‖ for each step t and run: shape ``(steps+1, k)``."""
        return np.linalg.norm(self.grad, axis=-1)

    def steps_to(self, target_loss: float) -> np.ndarray:
        """First step t at which loss ≤ ``target_loss``, per run; ``inf`` where it never gets there."""
        target_loss = check_real("target_loss", target_loss)
        reached = self.loss <= target_loss
        first = np.argmax(reached, axis=0).astype(float)
        first[~reached.any(axis=0)] = np.inf
        return first


def gradient_descent(
    landscape: Landscape,
    w0,
    lr,
    steps: int,
    *,
    noise: float = 0.0,
    seed: int = 0,
    blowup: float = 1e6,
) -> DescentPath:
    """Run w_{t+1} = w_t − η (∇L(w_t) + ξ_t) for every learning rate η in ``lr`` at once.

    Parameters
    ----------
    landscape : a :class:`~lessons_lib.landscapes.Landscape`.
    w0 : the start, shape ``(dim,)`` (shared by all runs) or ``(k, dim)`` (one per run).
    lr : one learning rate or an array of ``k`` of them; each must be finite and > 0.
    steps : number of updates, ≥ 1.
    noise : standard deviation of Gaussian noise ξ_t added to every gradient component
        (a stand-in for minibatch noise); 0 gives exact gradient descent.
    seed : seed of the noise.
    blowup : a run whose ‖w‖ exceeds this is declared diverged and stopped.
    """
    lrs = check_learning_rate("lr", lr).reshape(-1)
    steps = check_int("steps", steps, low=1)
    noise = check_real("noise", noise, low=0)
    blowup = check_real("blowup", blowup, low=0, low_open=True)
    start = landscape.check_point(w0)
    k, dim = lrs.size, landscape.dim
    if start.ndim == 1:
        start = np.broadcast_to(start, (k, dim))
    elif start.shape != (k, dim):
        raise ValueError(f"w0 must have shape ({dim},) or ({k}, {dim}), got {start.shape}")

    rng = np.random.default_rng(check_seed("seed", seed))
    w = np.full((steps + 1, k, dim), np.nan)
    g = np.full((steps + 1, k, dim), np.nan)
    loss = np.full((steps + 1, k), np.inf)
    alive = np.ones(k, dtype=bool)
    w[0] = start
    for t in range(steps + 1):
        g[t, alive] = landscape.grad(w[t, alive])
        loss[t, alive] = landscape.loss(w[t, alive])
        if t == steps:
            break
        step_grad = g[t, alive]
        if noise > 0:
            step_grad = step_grad + noise * rng.standard_normal(step_grad.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            new = w[t, alive] - lrs[alive, None] * step_grad
            ok = np.isfinite(new).all(-1) & (np.linalg.norm(new, axis=-1) <= blowup)
        idx = np.flatnonzero(alive)
        w[t + 1, idx[ok]] = new[ok]
        alive[idx[~ok]] = False
    return DescentPath(lrs=lrs, w=w, loss=loss, grad=g, diverged=~alive)


def gd_threshold(landscape: Landscape) -> float:
    """The largest stable learning rate on a quadratic, 2/λ_max (ValueError for other surfaces)."""
    if landscape.curvatures is None:
        raise ValueError(f"landscape must be a quadratic (constant curvature), got {landscape.name}")
    return 2.0 / float(np.max(landscape.curvatures))


def _design(name: str, X, y, name_y: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a float array (n, d) and ``y`` as a float array (n,): ValueError otherwise."""
    try:
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} and {name_y} must be arrays of numbers") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features), "
                         f"got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"{name_y} must be a 1-D array with one target per row of {name}, "
                         f"shape ({X.shape[0]},), got shape {y.shape}")
    return X, y


def fit_linear_many(X, y, lrs, *, loss: str = "squared", epochs: int = 1, batch_size: int = 32,
                    seed: int = 0, eval_on: tuple | None = None, diverge: float = 1e3) -> np.ndarray:
    """Train a linear model with minibatch SGD for every learning rate in ``lrs`` at once (NumPy).

    ``loss="squared"``: linear regression, L = mean (x·w + b − y)² / 2.
    ``loss="logistic"``: logistic regression, L = mean log(1 + e^{−s·(x·w + b)}) with s = 2y − 1
    (labels ``y`` in {0, 1}).
    ``X`` has shape (n_samples, n_features) and ``y`` shape (n_samples,). All runs start at
    w = 0, b = 0 and see the same minibatches (a permutation per epoch, ``seed``; the last,
    incomplete batch of an epoch is dropped). Returns the final loss on all of ``X, y`` (or on
    ``eval_on = (X_val, y_val)`` if given) for each learning rate, ``inf`` for a run that diverged:
    its final loss is not finite or above ``diverge`` × the loss at the start.
    """
    def sgd(lrs, W, b):  # the step of every run: w ← w − η ∇L (in place)
        def step(r, Xb):
            W[...] -= lrs[:, None] * (r @ Xb) / len(Xb)
            b[...] -= lrs * r.mean(1)
        return step

    return _fit_linear(X, y, lrs, sgd, loss=loss, epochs=epochs, batch_size=batch_size,
                       seed=seed, eval_on=eval_on, diverge=diverge)[0]


def _fit_linear(X, y, lrs, optimizer, *, loss, epochs, batch_size, seed, eval_on, diverge):
    """The loop of :func:`fit_linear_many` and :func:`fit_linear_ftrl_many`: check the arguments,
    start every run at w = 0, b = 0, and for each minibatch call ``step(r, X_batch)`` where
    ``step = optimizer(lrs, W, b)`` updates ``W`` (k, d) and ``b`` (k,) in place from the residuals
    ``r`` = dL/d(prediction) (k, batch). Returns (final losses, W, b)."""
    diverge = check_real("diverge", diverge, low=1, low_open=True)
    check_choice("loss", loss, ("squared", "logistic"))
    X, y = _design("X", X, y, "y")
    n, d = X.shape
    lrs = check_learning_rate("lrs", lrs).reshape(-1)
    epochs = check_int("epochs", epochs)
    batch_size = check_int("batch_size", batch_size, low=1, high=n)
    if eval_on is not None:
        if not isinstance(eval_on, tuple | list) or len(eval_on) != 2:
            raise ValueError("eval_on must be a pair (X_val, y_val) or None, got "
                             f"{type(eval_on).__name__}")
        X_eval, y_eval = _design("eval_on[0]", *eval_on, "eval_on[1]")
        if X_eval.shape[1] != d:
            raise ValueError(f"eval_on[0] must have {d} columns, the features of X, got "
                             f"shape {X_eval.shape}")
    if loss == "logistic":
        for name, labels in (("y", y), ("eval_on[1]", None if eval_on is None else y_eval)):
            if labels is not None and not np.isin(labels, (0.0, 1.0)).all():
                raise ValueError(f"{name} must hold labels 0 or 1 for loss='logistic'")
    rng = np.random.default_rng(check_seed("seed", seed))
    W = np.zeros((lrs.size, d))
    b = np.zeros(lrs.size)
    step = optimizer(lrs, W, b)

    def residual(Xb, yb):  # dL/d(prediction) per sample, shape (k, batch)
        z = W @ Xb.T + b[:, None]
        if loss == "squared":
            return z - yb
        return 1 / (1 + np.exp(-z)) - yb

    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n - batch_size + 1, batch_size):
                idx = order[start:start + batch_size]
                step(residual(X[idx], y[idx]), X[idx])
        if eval_on is not None:
            X, y = X_eval, y_eval
        z = W @ X.T + b[:, None]
        if loss == "squared":
            final = 0.5 * ((z - y) ** 2).mean(1)
        else:
            s = 2 * y - 1
            final = np.logaddexp(0, -s * z).mean(1)
    start = 0.5 * np.mean(y**2) if loss == "squared" else np.log(2)  # the loss at w = 0, b = 0
    final[~np.isfinite(final) | (final > diverge * start)] = np.inf
    return final, W, b


def ftrl_step(var, accum, linear, grad, lr, *, lr_power: float = -0.5, l1: float = 0.0,
              l2: float = 0.0):
    """One FTRL-Proximal update of every coordinate, as TensorFlow's ``ApplyFtrl`` defines it.

    ``accum`` (Σ g², started at ``initial_accumulator_value``) and ``linear`` (the paper's z) are
    the optimizer's state; all arrays broadcast together with ``lr``. Returns the new
    ``(var, accum, linear)``::

        accum_new = accum + g²
        linear   += g − (accum_new^(−p) − accum^(−p)) / lr · var
        quadratic = accum_new^(−p) / lr + 2·l2
        var       = (sign(linear)·l1 − linear) / quadratic  if |linear| > l1  else 0

    with p = ``lr_power``. For p = −½ the coordinate's step size is lr / √accum, shrinking as its
    squared gradients add up (McMahan et al., 2013, Algorithm 1, with the paper's λ₂ = 2·l2 and
    β = 0, its n started at the initial accumulator). For p = 0 it is plain gradient descent
    with the fixed rate lr from var = 0 (no l1, l2): var = −lr · Σ g.
    """
    accum_new = accum + grad * grad
    with np.errstate(divide="ignore", invalid="ignore"):
        linear = linear + grad - (accum_new ** -lr_power - accum ** -lr_power) / lr * var
        quadratic = accum_new ** -lr_power / lr + 2 * l2
        var = np.where(np.abs(linear) > l1, (np.sign(linear) * l1 - linear) / quadratic, 0.0)
    return var, accum_new, linear


def fit_linear_ftrl_many(X, y, lrs, *, loss: str = "squared", epochs: int = 1,
                         batch_size: int = 32, seed: int = 0, eval_on: tuple | None = None,
                         diverge: float = 1e3, lr_power: float = -0.5,
                         initial_accumulator: float = 0.1, l1: float = 0.0, l2: float = 0.0,
                         return_weights: bool = False):
    """:func:`fit_linear_many` with the FTRL-Proximal optimizer instead of SGD (NumPy).

    The optimizer TensorFlow's linear estimators (``tf.estimator.LinearRegressor`` /
    ``LinearClassifier``) train with by default, at the default rate min(1/√(feature columns),
    0.2): per-coordinate FTRL-Proximal (McMahan et al., 2013, Algorithm 1) with TensorFlow's
    defaults ``learning_rate_power=-0.5``, ``initial_accumulator_value=0.1``, ``l1 = l2 = 0``.
    Every weight and the bias has its own accumulators; each minibatch's mean gradient is applied
    with :func:`ftrl_step`. Same data, minibatches, losses and divergence rule as
    :func:`fit_linear_many`; with ``lr_power=0`` the runs are those of :func:`fit_linear_many`.
    Returns the final losses, or ``(losses, W, b)`` with ``return_weights=True``.
    """
    lr_power = check_real("lr_power", lr_power, high=0)
    initial_accumulator = check_real("initial_accumulator", initial_accumulator, low=0)
    if lr_power < 0 and initial_accumulator == 0:
        raise ValueError("initial_accumulator must be > 0 when lr_power < 0 (a coordinate whose "
                         "first gradient is 0 would divide by 0), got 0.0")
    l1 = check_real("l1", l1, low=0)
    l2 = check_real("l2", l2, low=0)
    return_weights = check_bool("return_weights", return_weights)

    def ftrl(lrs, W, b):
        state = {name: (np.full(p.shape, initial_accumulator), np.zeros(p.shape))
                 for name, p in (("W", W), ("b", b))}
        rate = {"W": lrs[:, None], "b": lrs}

        def step(r, Xb):
            grads = {"W": (r @ Xb) / len(Xb), "b": r.mean(1)}
            for name, p in (("W", W), ("b", b)):
                var, *state[name] = ftrl_step(p, *state[name], grads[name], rate[name],
                                              lr_power=lr_power, l1=l1, l2=l2)
                p[...] = var
        return step

    final, W, b = _fit_linear(X, y, lrs, ftrl, loss=loss, epochs=epochs, batch_size=batch_size,
                              seed=seed, eval_on=eval_on, diverge=diverge)
    return (final, W, b) if return_weights else final
