r"""Batches, epochs and iterations, and how noisy a minibatch is.

Training visits the N training samples in minibatches of B. One pass over all of them is an
*epoch*; each minibatch gives one update, an *iteration*, so an epoch has

.. math:: \text{iterations per epoch} = \lceil N / B \rceil \ \text{(keep the last, smaller
   batch)} \quad\text{or}\quad \lfloor N / B \rfloor \ \text{(drop it)}.

A minibatch's loss and gradient are averages over B samples drawn without replacement from
the N, so they scatter around the full-data values. For per-example values v_1 … v_N with
mean v̄ and (unbiased) variance s², the average over a random minibatch has

.. math:: \operatorname{Var}[\bar v_B] = s^2 \Bigl(\frac{1}{B} - \frac{1}{N}\Bigr),

the familiar 1/B of independent draws, shrunk to 0 when the batch is the whole data set. For
the gradient, with G the full-data gradient and Σ the covariance of the per-example gradients,

.. math:: \mathbb E\,\lVert G_B \rVert^2 = \lVert G \rVert^2 + \operatorname{tr}(\Sigma)\,
   \Bigl(\frac{1}{B} - \frac{1}{N}\Bigr),

and McCandlish et al. (2018) call B_simple = tr(Σ)/‖G‖² the *gradient noise scale*: the batch
size at which the noise in G_B is as large as the signal. Below it a larger batch buys a
cleaner gradient almost for free (and allows a larger learning rate); well above it, it buys
little.

- :func:`iterations_per_epoch` — the count, both ways of handling the last batch;
- :func:`per_example_losses`, :func:`per_example_gradients` — one row per sample
  (``torch.func.vmap`` of ``torch.func.grad``);
- :func:`predicted_spread`, :func:`minibatch_spread` — the standard deviation of a minibatch
  average, from the formula and by drawing minibatches;
- :func:`gradient_noise_scale` — B_simple exactly, from the per-example gradients;
- :func:`noise_scale_from_batches` — B_simple estimated from the gradients of minibatches of two
  sizes only (what one can afford on a large model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import check_bool, check_int, check_seed


def iterations_per_epoch(n_samples: int, batch_size: int, *, drop_last: bool = False) -> int:
    """Updates in one pass over ``n_samples`` samples with minibatches of ``batch_size``:
    ⌈N/B⌉ when the last, smaller batch is kept (``drop_last=False``, the default of
    ``torch.utils.data.DataLoader``), ⌊N/B⌋ when it is dropped."""
    n = check_int("n_samples", n_samples, low=1)
    b = check_int("batch_size", batch_size, low=1, high=n)
    drop_last = check_bool("drop_last", drop_last)
    return n // b if drop_last else -(-n // b)


def _check_model_data(model, loss_fn, X, y) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a function (outputs, targets) -> mean loss, got {loss_fn!r}")
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor) or len(X) != len(y):
        raise ValueError("X and y must be tensors with one row per sample, the same number of rows")
    if len(X) < 2:
        raise ValueError(f"X must hold at least 2 samples, got {len(X)}")


def _one_sample_loss(model, loss_fn):
    from torch.func import functional_call

    def loss(params, buffers, x, target):
        out = functional_call(model, (params, buffers), (x.unsqueeze(0),))
        return loss_fn(out, target.unsqueeze(0))

    return loss


def per_example_losses(model: nn.Module, loss_fn, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of every sample on its own, ``loss_fn(model(X[i:i+1]), y[i:i+1])``: shape (N,)."""
    _check_model_data(model, loss_fn, X, y)
    from torch.func import vmap

    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    with torch.no_grad():
        return vmap(_one_sample_loss(model, loss_fn), in_dims=(None, None, 0, 0))(
            params, buffers, X, y)


def per_example_gradients(model: nn.Module, loss_fn, X: torch.Tensor, y: torch.Tensor
                          ) -> torch.Tensor:
    """The gradient of every sample's loss with respect to all trainable weights, flattened:
    shape (N, P) with P the number of weights (in ``model.parameters()`` order).

    Row i equals what ``loss_fn(model(X[i:i+1]), y[i:i+1]).backward()`` leaves in the ``.grad``
    of the parameters; computed for all rows at once by ``torch.func.vmap(torch.func.grad(…))``.
    The model's weights and ``.grad`` are not touched.
    """
    _check_model_data(model, loss_fn, X, y)
    from torch.func import grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    one = _one_sample_loss(model, loss_fn)

    def loss(trainable, x, target):
        return one({**frozen, **trainable}, buffers, x, target)

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([g.reshape(len(X), -1) for g in grads.values()], dim=1)


def _values(name: str, values) -> np.ndarray:
    arr = np.asarray(values.detach() if isinstance(values, torch.Tensor) else values, dtype=float)
    if arr.ndim != 1 or arr.size < 2 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a flat array of at least 2 finite numbers (one per "
                         f"sample), got shape {arr.shape}")
    return arr


def predicted_spread(values, batch_size) -> np.ndarray:
    """Standard deviation of the mean of ``values`` over a random minibatch of ``batch_size``
    (drawn without replacement): s·√(1/B − 1/N), s² the unbiased variance of the N values.
    ``batch_size`` may be one size or an array of sizes."""
    v = _values("values", values)
    n = v.size
    b = np.asarray(batch_size)
    if b.dtype.kind not in "iu" or (b < 1).any() or (b > n).any():
        raise ValueError(f"batch_size must be integers in [1, {n}] (the number of values), "
                         f"got {batch_size!r}")
    return v.std(ddof=1) * np.sqrt(1 / b - 1 / n)


def minibatch_spread(values, batch_size: int, *, draws: int = 1000, seed: int = 0) -> float:
    """Standard deviation, over ``draws`` random minibatches of ``batch_size`` (each drawn without
    replacement), of the mean of ``values`` over the minibatch: the measured counterpart of
    :func:`predicted_spread`."""
    v = _values("values", values)
    b = check_int("batch_size", batch_size, low=1, high=v.size)
    draws = check_int("draws", draws, low=2)
    rng = np.random.default_rng(check_seed("seed", seed))
    idx = np.argsort(rng.random((draws, v.size)), axis=1)[:, :b]  # a permutation's first B
    return float(v[idx].mean(1).std(ddof=1))


@dataclass(frozen=True)
class NoiseScale:
    """The gradient's signal and noise: ``grad_sq`` = ‖G‖², ``trace_cov`` = tr(Σ) (the summed
    variance of the per-example gradients), and :attr:`b_simple` = tr(Σ)/‖G‖²."""

    grad_sq: float
    trace_cov: float

    @property
    def b_simple(self) -> float:
        """McCandlish et al.'s simple noise scale tr(Σ)/‖G‖² (inf when G = 0)."""
        return self.trace_cov / self.grad_sq if self.grad_sq > 0 else math.inf


def gradient_noise_scale(model: nn.Module, loss_fn, X: torch.Tensor, y: torch.Tensor
                         ) -> NoiseScale:
    """B_simple of ``model`` on ``X, y`` computed exactly from the per-example gradients g_i:
    G = mean g_i, tr(Σ) = Σ_coordinates of the unbiased variance of g_i."""
    g = per_example_gradients(model, loss_fn, X, y).double()
    return NoiseScale(float((g.mean(0) ** 2).sum()), float(g.var(0, unbiased=True).sum()))


def noise_scale_from_batches(model: nn.Module, loss_fn, X: torch.Tensor, y: torch.Tensor, *,
                             small: int, big: int, draws: int = 20, seed: int = 0) -> NoiseScale:
    r"""B_simple estimated from minibatch gradients of two sizes only (McCandlish et al., 2018,
    appendix A), without per-example gradients.

    Draw ``draws`` minibatches of each size (without replacement), average ‖G_B‖² for each size,
    and solve the two equations :math:`\mathbb E\lVert G_B\rVert^2 = \lVert G\rVert^2 +
    \operatorname{tr}\Sigma\,(1/B - 1/N)` for the two unknowns. Each equation holds in
    expectation, so the two estimates are unbiased; their ratio B_simple is not quite, but close
    with enough draws. The weights are not changed; their ``.grad`` is left as it was.
    """
    _check_model_data(model, loss_fn, X, y)
    n = len(X)
    small = check_int("small", small, low=1, high=n)
    big = check_int("big", big, low=1, high=n)
    if big <= small:
        raise ValueError(f"big must be larger than small, got small={small} and big={big}")
    draws = check_int("draws", draws, low=1)
    gen = torch.Generator().manual_seed(check_seed("seed", seed))
    params = [p for p in model.parameters() if p.requires_grad]
    mean_sq = {}
    for b in (small, big):
        total = 0.0
        for _ in range(draws):
            idx = torch.randperm(n, generator=gen)[:b]
            grads = torch.autograd.grad(loss_fn(model(X[idx]), y[idx]), params)
            total += float(sum((g.double() ** 2).sum() for g in grads))
        mean_sq[b] = total / draws
    c_small, c_big = 1 / small - 1 / n, 1 / big - 1 / n
    trace = (mean_sq[small] - mean_sq[big]) / (c_small - c_big)
    return NoiseScale(mean_sq[big] - trace * c_big, trace)
