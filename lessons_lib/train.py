"""A small, readable training loop with a history, used by every lesson that trains a network."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import check_choice, check_int, check_learning_rate, check_real
from lessons_lib.data import Split

#: torch optimizers by the names the lessons use; "momentum" is SGD with momentum 0.9.
TORCH_OPTIMIZERS = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=lr),
    "rmsprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
    "adagrad": lambda params, lr: torch.optim.Adagrad(params, lr=lr),
}


def torch_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """``torch.optim`` optimizer ``name`` (see :data:`TORCH_OPTIMIZERS`) with learning rate ``lr``."""
    check_choice("optimizer", name, TORCH_OPTIMIZERS)
    return TORCH_OPTIMIZERS[name](params, float(check_learning_rate("lr", lr)))


@dataclass
class History:
    """What happened during training, one entry per update (``train_loss``, ``grad_norm``) or per
    evaluation (``val_loss``, ``val_acc``, at the steps listed in ``eval_steps``)."""

    lr: float
    lrs: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    diverged: bool = False

    @property
    def final_val_loss(self) -> float:
        """Validation loss at the end; ``inf`` for a run that diverged."""
        return math.inf if self.diverged else self.val_loss[-1]


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on ``X, y``; accuracy is NaN-free 0 for regression."""
    with torch.no_grad():
        out = model(X)
        if task == "classification":
            return nn.functional.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()
        return nn.functional.mse_loss(out.squeeze(-1), y).item(), 0.0


def check_run(data, steps, batch_size, eval_every, diverge) -> tuple[int, int, int, float]:
    """Validate the settings every training loop shares; return them as (int, int, int, float)."""
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size, low=1, high=len(data.X_train))
    eval_every = check_int("eval_every", eval_every)
    diverge = check_real("diverge", diverge, low=1, low_open=True)
    return steps, batch_size, eval_every, diverge


def fit(model: nn.Module, data: Split, *, lr: float, steps: int, optimizer="sgd",
        batch_size: int = 64, eval_every: int = 50, seed: int = 0, diverge: float = 1e3,
        lr_schedule: Callable[[int], float] | None = None) -> History:
    """Train ``model`` on ``data.X_train`` with minibatches, recording a :class:`History`.

    Each step draws ``batch_size`` samples (reshuffled every epoch), computes the loss
    (cross-entropy or mean squared error), and lets the optimizer take w ← w − η·(its direction).
    Stops early, with ``diverged=True``, once the training loss is not finite or exceeds
    ``diverge`` × its first value.

    ``optimizer``: a name from :data:`TORCH_OPTIMIZERS`, or a function ``params, lr -> optimizer``
    (e.g. ``lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.1)``).
    ``lr_schedule``: optional function of the step t = 0, 1, … giving the learning rate used for
    update t (e.g. ``functools.partial(schedules.cosine, lr=0.1, T_max=steps)``); it overrides
    ``lr`` from the first update on. ``History.lrs`` records the rate of every update.
    """
    lr = float(check_learning_rate("lr", lr))
    steps, batch_size, eval_every, diverge = check_run(data, steps, batch_size, eval_every, diverge)
    n = len(data.X_train)
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError(f"lr_schedule must be a function of the step or None, got {lr_schedule!r}")
    if callable(optimizer):
        opt = optimizer(model.parameters(), lr)
    else:
        opt = torch_optimizer(optimizer, model.parameters(), lr)
    loss_fn = nn.functional.cross_entropy if data.task == "classification" else (
        lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y))
    gen = torch.Generator().manual_seed(seed)
    hist = History(lr=lr)
    order, pos = torch.randperm(n, generator=gen), 0
    for step in range(1, steps + 1):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        if lr_schedule is not None:
            rate = float(check_learning_rate("lr_schedule(step)", lr_schedule(step - 1),
                                             allow_zero=True))
            for group in opt.param_groups:
                group["lr"] = rate
        hist.lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        loss = loss_fn(model(data.X_train[idx]), data.y_train[idx])
        loss.backward()
        value = loss.item()
        hist.train_loss.append(value)
        if not math.isfinite(value) or value > diverge * hist.train_loss[0]:
            hist.diverged = True
            break
        hist.grad_norm.append(float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))))
        opt.step()
        if step % eval_every == 0 or step == steps:
            vl, va = evaluate(model, data.X_val, data.y_val, data.task)
            hist.eval_steps.append(step)
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
    return hist


def smooth(values, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average s_t = weight·s_{t−1} + (1 − weight)·x_t, bias-corrected."""
    weight = check_real("weight", weight, low=0, high=1, high_open=True)
    out, s = np.empty(len(values)), 0.0
    for t, x in enumerate(values):
        s = weight * s + (1 - weight) * x
        out[t] = s / (1 - weight ** (t + 1))
    return out


def fit_linear_many(X, y, lrs, *, loss: str = "squared", epochs: int = 1, batch_size: int = 32,
                    seed: int = 0, eval_on: tuple | None = None, diverge: float = 1e3) -> np.ndarray:
    """Train a linear model with minibatch SGD for every learning rate in ``lrs`` at once (NumPy).

    ``loss="squared"``: linear regression, L = mean (x·w + b − y)² / 2.
    ``loss="logistic"``: logistic regression, L = mean log(1 + e^{−s·(x·w + b)}) with s = 2y − 1.
    All runs start at w = 0, b = 0 and see the same minibatches. Returns the final loss on all of
    ``X, y`` (or on ``eval_on = (X_val, y_val)`` if given) for each learning rate, ``inf`` for a
    run that diverged: its final loss is not finite or above ``diverge`` × the loss at the start.
    """
    diverge = check_real("diverge", diverge, low=1, low_open=True)
    check_choice("loss", loss, ("squared", "logistic"))
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, d = X.shape
    lrs = check_learning_rate("lrs", lrs).reshape(-1)
    epochs = check_int("epochs", epochs)
    batch_size = check_int("batch_size", batch_size, low=1, high=n)
    rng = np.random.default_rng(seed)
    W = np.zeros((lrs.size, d))
    b = np.zeros(lrs.size)

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
                r = residual(X[idx], y[idx])
                W -= lrs[:, None] * (r @ X[idx]) / batch_size
                b -= lrs * r.mean(1)
        if eval_on is not None:
            X, y = (np.asarray(a, dtype=float) for a in eval_on)
        z = W @ X.T + b[:, None]
        if loss == "squared":
            final = 0.5 * ((z - y) ** 2).mean(1)
        else:
            s = 2 * y - 1
            final = np.logaddexp(0, -s * z).mean(1)
    start = 0.5 * np.mean(y**2) if loss == "squared" else np.log(2)  # the loss at w = 0, b = 0
    final[~np.isfinite(final) | (final > diverge * start)] = np.inf
    return final
