"""The learning-rate range test ("LR finder"): raise η exponentially and watch the loss.

Leslie Smith's range test (Smith 2017, popularised by fastai) trains for a short while with a
learning rate that grows at every step, from far too small to far too large,

    η_i = start_lr · (end_lr / start_lr)^(i / (num_iter − 1)),   i = 0, 1, …, num_iter − 1,

one minibatch per step, and records the training loss of each step. The raw losses are noisy, so
they are smoothed with an exponential moving average whose weight on the newest value is
``smooth_f`` (no bias correction, as in the ``torch-lr-finder`` package; the argument names
``smooth_f`` and ``diverge_th`` are those of its ``LRFinder.range_test``):

    s_0 = ℓ_0,   s_i = smooth_f · ℓ_i + (1 − smooth_f) · s_{i−1}.

The test stops once s_i > ``diverge_th`` × min_{j≤i} s_j (the loss has blown up). Two learning
rates are read off the smoothed curve:

- ``suggestion``: where the loss falls fastest, the minimum of ds/d(log η) (computed, like
  torch-lr-finder's ``plot(suggest_lr=True)``, with ``np.gradient`` after dropping the first
  ``skip_start`` and the last ``skip_end`` points);
- ``min_loss_lr``: where the smoothed loss is lowest (fastai's older rule of thumb takes a tenth
  of it).

The model and the optimizer are put back exactly as they were (weights, buffers, gradients,
train/eval mode, optimizer state, torch's global random state), so the test can be run on the
model that will then be trained.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import check_int, check_learning_rate, check_real, check_seed
from lessons_lib.data import minibatch_indices
from lessons_lib.optimizers import TORCH_OPTIMIZERS, torch_optimizer


@dataclass(frozen=True)
class LRFinderResult:
    """The curve of a range test and the two learning rates read off it.

    ``lrs[i]`` is the learning rate of step ``i``, ``raw_losses[i]`` the minibatch loss of that
    step (before its update), ``losses[i]`` the smoothed loss. ``diverged`` says the test stopped
    before ``num_iter`` steps because the loss blew up (or became NaN/inf, in which case that
    step is not recorded).
    """

    lrs: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    suggestion: float
    min_loss_lr: float
    diverged: bool = False

    def __len__(self) -> int:
        return len(self.lrs)


def exponential_lrs(start_lr: float, end_lr: float, num_iter: int) -> np.ndarray:
    """η_i = start_lr · (end_lr / start_lr)^(i / (num_iter − 1)) for i = 0 … num_iter − 1.

    ``start_lr`` and ``end_lr`` are finite and > 0; ``num_iter`` ≥ 2 (the first and last rate).
    """
    start_lr = check_learning_rate("start_lr", start_lr, scalar=True)
    end_lr = check_learning_rate("end_lr", end_lr, scalar=True)
    num_iter = check_int("num_iter", num_iter, low=2)
    r = np.arange(num_iter) / (num_iter - 1)
    return np.array([start_lr * (end_lr / start_lr) ** float(x) for x in r])


def steepest_descent_lr(lrs, losses, *, skip_start: int = 10, skip_end: int = 5) -> float:
    """The learning rate at which ``losses`` (sampled at log-spaced ``lrs``) fall fastest.

    Drops the first ``skip_start`` and last ``skip_end`` points, then returns the rate at the
    minimum of ``np.gradient(losses)`` (for log-uniform rates this is d loss / d log η up to a
    constant). Too short a curve for the trimming falls back to the whole curve.
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lrs.size == 0 or lrs.shape != losses.shape:
        raise ValueError(f"lrs and losses must be non-empty and of the same length, got "
                         f"{lrs.shape} and {losses.shape}")
    skip_start = check_int("skip_start", skip_start, low=0)
    skip_end = check_int("skip_end", skip_end, low=0)
    if lrs.size >= skip_start + skip_end + 2:
        lrs, losses = lrs[skip_start:lrs.size - skip_end], losses[skip_start:losses.size - skip_end]
    if lrs.size < 2:
        return float(lrs[0])
    return float(lrs[int(np.argmin(np.gradient(losses)))])


def _make_optimizer(optimizer, model: nn.Module, lr: float) -> tuple[torch.optim.Optimizer, bool]:
    """(optimizer, given): build one from a name or a factory, or take the instance given."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer, True
    if isinstance(optimizer, str):
        return torch_optimizer(optimizer, model.parameters(), lr), False
    if callable(optimizer):
        return optimizer(model.parameters(), lr), False
    raise ValueError("optimizer must be one of "
                     f"{sorted(TORCH_OPTIMIZERS)!r}, a function (params, lr) -> torch optimizer, "
                     f"or a torch.optim.Optimizer of the model's parameters; got {optimizer!r}")


def lr_range_test(model: nn.Module, loss_fn, X, y, *, batch_size: int = 64,
                  start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100,
                  optimizer="sgd", smooth_f: float = 0.05, diverge_th: float = 5.0, seed: int = 0,
                  skip_start: int = 10, skip_end: int = 5) -> LRFinderResult:
    """Run the learning-rate range test on ``model`` and return its curve.

    Parameters
    ----------
    model : the torch module to probe; left exactly as it was afterwards.
    loss_fn : ``loss_fn(model(X_batch), y_batch)`` -> scalar tensor (e.g. ``F.cross_entropy``).
    X, y : the training inputs and targets (tensors, or arrays turned into float32 / as given).
    batch_size : samples per step, in [1, len(X)]. The batches are those of
        :func:`lessons_lib.data.minibatch_indices` (seeded with ``seed``), as in
        :func:`lessons_lib.train.fit`.
    start_lr, end_lr : first and last learning rate, finite, > 0, start_lr < end_lr.
    num_iter : number of steps (≥ 2); the rate grows by (end_lr/start_lr)^(1/(num_iter−1)) a step.
    optimizer : a name from :data:`lessons_lib.optimizers.TORCH_OPTIMIZERS` ("sgd", "adam", …), a
        function ``(params, lr) -> torch optimizer``, or a ``torch.optim.Optimizer`` already
        built on the model's parameters (its state is restored afterwards).
    smooth_f : weight of the newest loss in the moving average, in [0, 1); 0 turns smoothing off.
    diverge_th : stop once the smoothed loss exceeds ``diverge_th`` × the best smoothed loss (> 1).
    seed : seed of the batch order.
    skip_start, skip_end : points left out when looking for the steepest descent (as in
        torch-lr-finder's plot).
    """
    start_lr = check_learning_rate("start_lr", start_lr, scalar=True)
    end_lr = check_learning_rate("end_lr", end_lr, scalar=True)
    if start_lr >= end_lr:
        raise ValueError(f"start_lr must be smaller than end_lr, got start_lr={start_lr!r} >= "
                         f"end_lr={end_lr!r}")
    num_iter = check_int("num_iter", num_iter, low=2)
    smooth_f = check_real("smooth_f", smooth_f, low=0, high=1, high_open=True)
    diverge_th = check_real("diverge_th", diverge_th, low=1, low_open=True)
    seed = check_seed("seed", seed)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a function (outputs, targets) -> loss, got {loss_fn!r}")
    X = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X), dtype=torch.float32)
    y = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    n = len(X)
    if n == 0 or len(y) != n:
        raise ValueError(f"X and y must hold the same non-zero number of samples, got {n} and "
                         f"{len(y)}")
    batch_size = check_int("batch_size", batch_size, low=1, high=n)

    opt, given = _make_optimizer(optimizer, model, start_lr)
    saved_model = copy.deepcopy(model.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    saved_opt = copy.deepcopy(opt.state_dict()) if given else None
    modes = [(module, module.training) for module in model.modules()]
    rng_state = torch.random.get_rng_state()

    lrs = exponential_lrs(start_lr, end_lr, num_iter)
    batches = minibatch_indices(n, batch_size, num_iter, seed)
    rec_lrs, raw, smoothed = [], [], []
    diverged, best = False, math.inf
    try:
        model.train()
        for i, lr in enumerate(lrs):
            idx = batches[i]
            for group in opt.param_groups:
                group["lr"] = float(lr)
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            value = float(loss.item())
            if not math.isfinite(value):
                diverged = True
                break
            s = value if i == 0 or smooth_f == 0 else (
                smooth_f * value + (1 - smooth_f) * smoothed[-1])
            best = min(best, s)
            rec_lrs.append(float(lr))
            raw.append(value)
            smoothed.append(s)
            if s > diverge_th * best:
                diverged = True
                break
    finally:
        model.load_state_dict(saved_model)
        for p, g in zip(model.parameters(), saved_grads):
            p.grad = g
        if given:
            opt.load_state_dict(saved_opt)
        for module, training in modes:
            module.training = training
        torch.random.set_rng_state(rng_state)

    rec_lrs, raw, smoothed = np.array(rec_lrs), np.array(raw), np.array(smoothed)
    if rec_lrs.size == 0:
        return LRFinderResult(rec_lrs, smoothed, raw, math.nan, math.nan, True)
    return LRFinderResult(
        lrs=rec_lrs, losses=smoothed, raw_losses=raw,
        suggestion=steepest_descent_lr(rec_lrs, smoothed, skip_start=skip_start, skip_end=skip_end),
        min_loss_lr=float(rec_lrs[int(np.argmin(smoothed))]), diverged=diverged)


def plot_lr_finder(result: LRFinderResult, ax=None, *, raw: bool = True, label: str | None = None,
                   color=None):
    """Draw a range test: smoothed loss (and faint raw loss) against η on a log axis, with the
    suggestion (circle) and the rate of the lowest loss (square) marked. Returns ``ax``."""
    import matplotlib.pyplot as plt

    if not isinstance(result, LRFinderResult):
        raise ValueError(f"result must be an LRFinderResult, got {type(result).__name__}")
    if ax is None:
        _, ax = plt.subplots()
    (line,) = ax.plot(result.lrs, result.losses, color=color, label=label or "smoothed loss")
    if raw:
        ax.plot(result.lrs, result.raw_losses, color=line.get_color(), lw=0.8, alpha=0.35)
    for lr, marker in ((result.suggestion, "o"), (result.min_loss_lr, "s")):
        if math.isfinite(lr):
            j = int(np.argmin(np.abs(result.lrs - lr)))
            ax.plot(lr, result.losses[j], marker, ms=8, color=line.get_color(), mfc="white", mew=2)
    ax.set(xscale="log", xlabel="learning rate η", ylabel="training loss")
    return ax
