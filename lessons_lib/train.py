"""A small, readable training loop with a history, used by every lesson that trains a network."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lessons_lib._checks import check_learning_rate, check_run
from lessons_lib.data import Split, minibatch_indices
from lessons_lib.optimizers import torch_optimizer


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
    """(loss, accuracy) of ``model`` on ``X, y``; accuracy is 0 for regression.

    The model is evaluated in evaluation mode (``model.eval()``: dropout off, batch norm on its
    running statistics) and without gradients; the train/eval mode of each of its modules is put
    back as it was.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            out = model(X)
            if task == "classification":
                return (nn.functional.cross_entropy(out, y).item(),
                        (out.argmax(1) == y).float().mean().item())
            return nn.functional.mse_loss(out.squeeze(-1), y).item(), 0.0
    finally:
        for module, training in modes:
            module.training = training


def fit(model: nn.Module, data: Split, *, lr: float, steps: int, optimizer="sgd",
        batch_size: int = 64, eval_every: int = 50, seed: int = 0, diverge: float = 1e3,
        lr_schedule: Callable[[int], float] | None = None) -> History:
    """Train ``model`` on ``data.X_train`` with minibatches, recording a :class:`History`.

    Each step takes the next minibatch of :func:`lessons_lib.data.minibatch_indices` (``seed``
    fixes their order; reshuffled every epoch), computes the loss (cross-entropy or mean squared
    error), and lets the optimizer take w ← w − η·(its direction).
    Stops early, with ``diverged=True``, once the training loss is not finite or exceeds
    ``diverge`` × its first value.

    ``optimizer``: a name from :data:`lessons_lib.optimizers.TORCH_OPTIMIZERS`, or a function
    ``params, lr -> optimizer`` (e.g. ``lambda p, lr: torch.optim.AdamW(p, lr=lr,
    weight_decay=0.1)``).
    ``lr_schedule``: optional function of the step t = 0, 1, … giving the learning rate used for
    update t (e.g. ``functools.partial(schedules.cosine, lr=0.1, T_max=steps)``); it overrides
    ``lr`` from the first update on. ``History.lrs`` records the rate of every update.
    """
    lr = check_learning_rate("lr", lr, scalar=True)
    steps, batch_size, eval_every, diverge = check_run(data, steps, batch_size, eval_every, diverge)
    batches = minibatch_indices(len(data.X_train), batch_size, steps, seed)
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError(f"lr_schedule must be a function of the step or None, got {lr_schedule!r}")
    if callable(optimizer):
        opt = optimizer(model.parameters(), lr)
    else:
        opt = torch_optimizer(optimizer, model.parameters(), lr)
    loss_fn = nn.functional.cross_entropy if data.task == "classification" else (
        lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y))
    hist = History(lr=lr)
    for step in range(1, steps + 1):
        idx = batches[step - 1]
        if lr_schedule is not None:
            rate = check_learning_rate("lr_schedule(step)", lr_schedule(step - 1),
                                       allow_zero=True, scalar=True)
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
