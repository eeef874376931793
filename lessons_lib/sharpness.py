"""Sharpness: the largest eigenvalue of the loss's Hessian, found without ever forming the Hessian.

For a network with p weights the Hessian H = ∇²L(w) is a p × p matrix, too big to build. But the
product of H with a vector v is cheap: it is the gradient of the scalar ∇L(w)·v,

    H v = ∇_w ( ∇_w L(w) · v ),

two backward passes (Pearlmutter's trick, done here by ``torch.autograd``). *Power iteration*
repeats v ← H v / ‖H v‖; v turns towards the eigenvector whose eigenvalue is largest in absolute
value, and the Rayleigh quotient λ = v·H v estimates that eigenvalue. Near a minimum the Hessian
has no large negative eigenvalues, so this is λ_max, the *sharpness*: the curvature of the
steepest direction, the quantity that sets the stability threshold η < 2/λ_max of gradient
descent (chapter 1).

- :func:`hvp` — H v for any scalar loss closure and list of parameters;
- :func:`power_iteration` — top eigenvalue of any symmetric linear map v ↦ A v;
- :func:`top_eigenvalue` — the sharpness of a model's loss on a data set;
- :func:`full_batch_gd` — full-batch gradient descent that records the sharpness every few steps
  (the experiment of Cohen et al., 2021, "edge of stability").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import check_int, check_learning_rate, check_seed


def _params(model: nn.Module) -> list[torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have at least one trainable parameter")
    return params


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def hvp(loss_closure: Callable[[], torch.Tensor], params, v: torch.Tensor) -> torch.Tensor:
    """H v, with H the Hessian of ``loss_closure()`` with respect to ``params``.

    ``params``: a list of tensors with ``requires_grad``; ``v``: a flat vector with as many
    entries as all of them together. Returns a flat vector. Computed as ∇(∇L · v).
    """
    params = list(params)
    n = sum(p.numel() for p in params)
    if not isinstance(v, torch.Tensor) or v.shape != (n,):
        raise ValueError(f"v must be a flat tensor of length {n} (the number of parameters), "
                         f"got {getattr(v, 'shape', type(v).__name__)}")
    grads = torch.autograd.grad(loss_closure(), params, create_graph=True)
    return _flat(torch.autograd.grad(_flat(grads) @ v, params))


@dataclass(frozen=True)
class TopEigen:
    """Result of power iteration: the eigenvalue (largest in absolute value), its unit
    eigenvector, and the estimate after each iteration."""

    value: float
    vector: torch.Tensor
    estimates: np.ndarray


def power_iteration(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, *, iters: int = 20,
                    v0: torch.Tensor | None = None, seed: int = 0, dtype=torch.float32
                    ) -> TopEigen:
    """Top eigenvalue of the symmetric map ``matvec`` (v ↦ A v) on vectors of length ``dim``.

    Starts from ``v0`` (e.g. last time's eigenvector, which makes a few iterations enough when A
    changes slowly) or from a random unit vector (``seed``), then repeats
    λ_k = v_k·A v_k, v_{k+1} = A v_k / ‖A v_k‖ for ``iters`` iterations.
    Returns the last Rayleigh quotient λ, the unit vector v and all estimates λ_1 … λ_iters.
    """
    dim = check_int("dim", dim)
    iters = check_int("iters", iters)
    seed = check_seed("seed", seed)
    if v0 is None:
        v = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    else:
        if not isinstance(v0, torch.Tensor) or v0.shape != (dim,):
            raise ValueError(f"v0 must be a flat tensor of length {dim} or None, "
                             f"got {getattr(v0, 'shape', type(v0).__name__)}")
        v = v0.detach().clone().to(dtype)
    norm = torch.linalg.vector_norm(v)
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("v0 must be finite and non-zero")
    v = v / norm
    estimates = []
    value = math.nan
    for _ in range(iters):
        w = matvec(v).detach()
        value = float(v @ w)
        estimates.append(value)
        w_norm = torch.linalg.vector_norm(w)
        if w_norm == 0 or not torch.isfinite(w_norm):
            break
        v = w / w_norm
    return TopEigen(value, v, np.array(estimates))


def top_eigenvalue(model: nn.Module, loss_fn, X: torch.Tensor, y: torch.Tensor, *,
                   iters: int = 20, v0: torch.Tensor | None = None, seed: int = 0) -> TopEigen:
    """Sharpness of ``model``: the top Hessian eigenvalue of ``loss_fn(model(X), y)``.

    The loss and its gradient graph are built once; each of the ``iters`` power iterations then
    costs one extra backward pass. The model's weights and ``.grad`` are not touched.
    """
    params = _params(model)
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a function (outputs, targets) -> loss, got {loss_fn!r}")
    grads = _flat(torch.autograd.grad(loss_fn(model(X), y), params, create_graph=True))

    def matvec(v):
        return _flat(torch.autograd.grad(grads @ v, params, retain_graph=True))

    return power_iteration(matvec, grads.numel(), iters=iters, v0=v0, seed=seed,
                           dtype=grads.dtype)


@dataclass(frozen=True)
class FullBatchRun:
    """Full-batch gradient descent with the sharpness tracked.

    ``loss[t]``: training loss before update t (t = 0 … steps−1, fewer if it diverged);
    ``sharpness[k]``: top Hessian eigenvalue at step ``sharpness_steps[k]``.
    """

    lr: float
    loss: np.ndarray
    sharpness_steps: np.ndarray
    sharpness: np.ndarray
    diverged: bool

    @property
    def threshold(self) -> float:
        """2/η, the sharpness above which gradient descent on a quadratic would diverge."""
        return 2.0 / self.lr


def full_batch_gd(model: nn.Module, loss_fn, X: torch.Tensor, y: torch.Tensor, *, lr: float,
                  steps: int, every: int = 10, iters: int = 20, seed: int = 0) -> FullBatchRun:
    """Train ``model`` in place by full-batch gradient descent w ← w − η ∇L(w) for ``steps``
    steps, measuring the sharpness (:func:`top_eigenvalue`, ``iters`` power iterations,
    warm-started from the previous eigenvector) every ``every`` steps and after the last one.
    Stops early (``diverged``) if the loss becomes NaN/inf or exceeds 1e3 × its first value.
    """
    lr = check_learning_rate("lr", lr, scalar=True)
    steps = check_int("steps", steps)
    every = check_int("every", every)
    iters = check_int("iters", iters)
    seed = check_seed("seed", seed)
    params = _params(model)
    losses, at, sharp = [], [], []
    v = None
    diverged = False
    for t in range(steps + 1):
        if t % every == 0 or t == steps:
            top = top_eigenvalue(model, loss_fn, X, y, iters=iters, v0=v, seed=seed)
            v = top.vector
            at.append(t)
            sharp.append(top.value)
        if t == steps:
            break
        loss = loss_fn(model(X), y)
        value = float(loss.item())
        if not math.isfinite(value) or (losses and value > 1e3 * losses[0]):
            diverged = True
            break
        losses.append(value)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g)
    return FullBatchRun(lr, np.array(losses), np.array(at), np.array(sharp), diverged)
