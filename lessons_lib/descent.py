"""Gradient descent, w ← w − η ∇L(w), run for many learning rates at once.

``gradient_descent(landscape, w0, lr=[0.01, 0.1, 1.0], steps=50)`` returns the whole path of every
run as one :class:`DescentPath` (arrays with a learning-rate axis), so a lesson can sweep
learning rates over orders of magnitude in a single vectorised call and plot any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lessons_lib._checks import check_int, check_learning_rate, check_real
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

    rng = np.random.default_rng(seed)
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
