"""Loss landscapes: small surfaces on which gradient descent can be watched step by step.

Every landscape is a :class:`Landscape` with

- ``loss(w)``: the loss at ``w``; ``w`` has shape ``(..., dim)`` so a whole batch of points (one per
  learning rate, or per start) is evaluated at once; the result has shape ``(...)``;
- ``grad(w)``: the gradient, same shape as ``w``, written out by hand (the tests check it against
  ``torch.autograd``);
- ``minimum``: the global minimiser, where it is known in closed form.

``loss`` is written with operations that NumPy arrays and torch tensors share, so the very same
formula can be differentiated by torch in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lessons_lib._checks import check_finite_array, check_real


def _xp(w):
    """The array module of ``w``: torch for a tensor, NumPy otherwise."""
    if type(w).__module__.startswith("torch"):
        import torch

        return torch
    return np


@dataclass(frozen=True)
class Landscape:
    """A differentiable surface: ``loss`` and ``grad`` act on the last axis of ``w``."""

    name: str
    dim: int
    loss: Callable
    grad: Callable
    minimum: np.ndarray | None = None
    #: eigenvalues of the Hessian where it is constant (quadratics), else None
    curvatures: np.ndarray | None = None

    def __call__(self, w):
        return self.loss(w)

    def check_point(self, w) -> np.ndarray:
        """``w`` as a float array whose last axis has length ``dim`` (ValueError otherwise)."""
        arr = check_finite_array("w0", w)
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValueError(
                f"w0 must have a last axis of length {self.dim} for {self.name}, "
                f"got shape {arr.shape}"
            )
        return arr


def quadratic(curvatures) -> Landscape:
    """L(w) = ½ Σᵢ λᵢ wᵢ²: a bowl whose Hessian is diag(λ), minimum at w = 0.

    Gradient descent on it multiplies coordinate i by (1 − ηλᵢ) each step, so it converges
    exactly when |1 − ηλᵢ| < 1 for every i, i.e. when 0 < η < 2/λ_max.
    """
    lam = check_finite_array("curvatures", curvatures).reshape(-1)
    if lam.size == 0 or (lam <= 0).any():
        raise ValueError(f"curvatures must be a non-empty list of numbers > 0, got {lam}")

    def loss(w):
        return 0.5 * (_as(lam, w) * w**2).sum(-1)

    def grad(w):
        return lam * np.asarray(w)

    return Landscape(f"quadratic{tuple(lam.tolist())}", lam.size, loss, grad,
                     minimum=np.zeros(lam.size), curvatures=lam)


def parabola(curvature: float = 1.0) -> Landscape:
    """The 1-D bowl L(w) = ½ λ w², the simplest place to watch a learning rate at work."""
    return quadratic([check_real("curvature", curvature, low=0, low_open=True)])


def valley(flat: float = 1.0, steep: float = 20.0) -> Landscape:
    """A long narrow 2-D valley L(w) = ½ (flat·w₁² + steep·w₂²): gentle along w₁, steep across w₂.

    Its condition number steep/flat is what makes one learning rate too small along the floor
    of the valley and too large across it.
    """
    flat = check_real("flat", flat, low=0, low_open=True)
    steep = check_real("steep", steep, low=0, low_open=True)
    return quadratic([flat, steep])


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Landscape:
    """The banana-shaped valley L(x, y) = (a − x)² + b (y − x²)², minimum at (a, a²)."""
    a = check_real("a", a)
    b = check_real("b", b, low=0, low_open=True)

    def loss(w):
        x, y = w[..., 0], w[..., 1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    def grad(w):
        w = np.asarray(w, dtype=float)
        x, y = w[..., 0], w[..., 1]
        return np.stack([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)], axis=-1)

    return Landscape("rosenbrock", 2, loss, grad, minimum=np.array([a, a**2]))


def saddle(up: float = 1.0, down: float = 1.0) -> Landscape:
    """A saddle between two valleys, L(w) = ½·up·w₁² + ¼ (w₂² − down)².

    At the origin the slope is zero, the surface curves upwards along w₁ (curvature ``up``) and
    downwards along w₂ (curvature −``down``): a saddle point with L = down²/4. The two minima,
    L = 0, sit at (0, ±√down); ``minimum`` is the one at w₂ > 0. A run that starts close to the
    line w₂ = 0 sees almost no slope along w₂ and must find its way off the saddle.
    """
    up = check_real("up", up, low=0, low_open=True)
    down = check_real("down", down, low=0, low_open=True)

    def loss(w):
        x, y = w[..., 0], w[..., 1]
        return 0.5 * up * x**2 + 0.25 * (y**2 - down) ** 2

    def grad(w):
        w = np.asarray(w, dtype=float)
        x, y = w[..., 0], w[..., 1]
        return np.stack([up * x, y * (y**2 - down)], axis=-1)

    return Landscape("saddle", 2, loss, grad, minimum=np.array([0.0, np.sqrt(down)]))


def multi_well(dim: int = 1, ripple: float = 1.0, frequency: float = 3.0) -> Landscape:
    """A bowl with ripples, L(w) = Σᵢ [ wᵢ²/10 + ripple·(1 − cos(frequency·wᵢ)) ].

    The ripples put a local minimum roughly every 2π/frequency along each axis; the bowl makes
    w = 0 the one global minimum (L = 0). A step that is small compared with a ripple stays in
    the well where it starts; a larger one can hop over the ridges.
    """
    from lessons_lib._checks import check_int

    dim = check_int("dim", dim, low=1)
    ripple = check_real("ripple", ripple, low=0)
    frequency = check_real("frequency", frequency, low=0, low_open=True)

    def loss(w):
        xp = _xp(w)
        return (w**2 / 10 + ripple * (1 - xp.cos(frequency * w))).sum(-1)

    def grad(w):
        w = np.asarray(w, dtype=float)
        return w / 5 + ripple * frequency * np.sin(frequency * w)

    return Landscape(f"multi_well(dim={dim})", dim, loss, grad, minimum=np.zeros(dim))


def _as(values: np.ndarray, like):
    """``values`` as the same kind of array as ``like`` (a tensor for a tensor)."""
    xp = _xp(like)
    return values if xp is np else xp.as_tensor(values, dtype=like.dtype)
