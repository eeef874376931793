"""A small, readable training loop with a history, used by every lesson that trains a network."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lessons_lib._checks import check_int, check_learning_rate, check_real, check_run
from lessons_lib.data import Split, minibatch_indices
from lessons_lib.optimizers import torch_optimizer


class EarlyStopping:
    """Stop training when the validation loss has not improved for ``patience`` evaluations.

    An evaluation *improves* when its loss is below the best so far by more than ``min_delta``:
    ``loss < best − min_delta``. After each evaluation that does not improve, a counter ``wait``
    goes up by one (an improvement resets it to 0); training stops once ``wait ≥ patience``, so
    ``patience = 0`` stops at the first evaluation that does not improve (the rule of Keras and
    PyTorch Lightning). With ``restore_best=True`` :func:`fit` puts back the weights of the best
    evaluation when it stops (and at the end of training, if it never stopped).

    One object serves one training run: :func:`fit` calls :meth:`update` after every evaluation.
    """

    def __init__(self, patience: int = 5, *, min_delta: float = 0.0, restore_best: bool = True):
        self.patience = check_int("patience", patience, low=0)
        self.min_delta = check_real("min_delta", min_delta, low=0)
        if not isinstance(restore_best, bool):
            raise ValueError(f"restore_best must be True or False, got {restore_best!r}")
        self.restore_best = restore_best
        self.best = math.inf
        self.best_index = -1
        self.wait = 0
        self.index = -1

    def update(self, loss: float) -> bool:
        """Record the next evaluation's loss; return True if training should stop now.
        ``self.best_index`` is the (0-based) index of the best evaluation so far."""
        self.index += 1
        if loss < self.best - self.min_delta:
            self.best, self.best_index, self.wait = loss, self.index, 0
            return False
        self.wait += 1
        return self.wait >= self.patience

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best})")


def early_stopping_point(val_losses, patience: int, *, min_delta: float = 0.0) -> tuple[int, int]:
    """Where :class:`EarlyStopping` would stop on a recorded curve of validation losses.

    Returns ``(best, stop)``: 0-based indices of the evaluation whose weights early stopping
    keeps and of the evaluation at which it stops (the last index if it never stops). The same
    rule as the live one in :func:`fit`, applied after the fact, e.g. to the curves of many runs
    trained together by :mod:`lessons_lib.batched`.
    """
    rule = EarlyStopping(patience, min_delta=min_delta)
    values = [float(v) for v in val_losses]
    if not values:
        raise ValueError("val_losses must hold at least one validation loss, got none")
    for i, value in enumerate(values):
        if rule.update(value):
            return rule.best_index, i
    return rule.best_index, len(values) - 1


@dataclass
class History:
    """What happened during training, one entry per update (``train_loss``, ``grad_norm``,
    ``step_seconds``) or per evaluation (``val_loss``, ``val_acc``, at the steps listed in
    ``eval_steps``).

    ``grad_norm``: ‖g‖ of the minibatch gradient of each update; ``step_seconds``: wall-clock time
    of each update (forward, backward and optimizer step, not the evaluations);
    ``steps_per_epoch``: N // B, the full batches one pass over the N training samples gives;
    ``stopped_early`` / ``best_step``: set when an :class:`EarlyStopping` rule ended the run
    (``best_step`` is the update whose weights the model holds when ``restore_best``).
    """

    lr: float
    lrs: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    diverged: bool = False
    step_seconds: list[float] = field(default_factory=list)
    steps_per_epoch: int = 0
    stopped_early: bool = False
    best_step: int | None = None

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


def fit(model: nn.Module, data: Split, *, lr: float, steps: int | None = None,
        epochs: int | None = None, optimizer="sgd", batch_size: int = 64,
        eval_every: int | str = 50, seed: int = 0, diverge: float = 1e3,
        lr_schedule: Callable[[int], float] | None = None,
        early_stopping: EarlyStopping | None = None) -> History:
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

    The length of training is given by ``steps`` (updates) or by ``epochs`` (passes over the
    data), not both: ``epochs = E`` means E·(N // B) updates, since every batch is full (the
    samples left over when B does not divide N wait for the next epoch's shuffle, like a
    ``DataLoader`` with ``drop_last=True``). ``eval_every="epoch"`` evaluates after every N // B
    updates.
    ``early_stopping``: an :class:`EarlyStopping` rule checked after every evaluation; when it
    stops the run, ``History.stopped_early`` is True and (with ``restore_best``) the model gets
    back the weights of its best evaluation, at update ``History.best_step``.
    """
    lr = check_learning_rate("lr", lr, scalar=True)
    batch_size = check_int("batch_size", batch_size, low=1, high=len(data.X_train))
    per_epoch = len(data.X_train) // batch_size
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps and epochs, got steps={steps!r} and "
                         f"epochs={epochs!r}")
    if epochs is not None:
        steps = check_int("epochs", epochs, low=1) * per_epoch
    if eval_every == "epoch":
        eval_every = per_epoch
    elif isinstance(eval_every, str):
        raise ValueError(f"eval_every must be an integer >= 1 or 'epoch', got {eval_every!r}")
    steps, batch_size, eval_every, diverge = check_run(data, steps, batch_size, eval_every, diverge)
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise ValueError(f"early_stopping must be a train.EarlyStopping or None, got "
                         f"{early_stopping!r}")
    if early_stopping is not None and early_stopping.index >= 0:
        raise ValueError("early_stopping must be a fresh train.EarlyStopping (this one has already "
                         "watched a run; make a new one for every run)")
    batches = minibatch_indices(len(data.X_train), batch_size, steps, seed)
    if lr_schedule is not None and not callable(lr_schedule):
        raise ValueError(f"lr_schedule must be a function of the step or None, got {lr_schedule!r}")
    if callable(optimizer):
        opt = optimizer(model.parameters(), lr)
    else:
        opt = torch_optimizer(optimizer, model.parameters(), lr)
    loss_fn = nn.functional.cross_entropy if data.task == "classification" else (
        lambda out, y: nn.functional.mse_loss(out.squeeze(-1), y))
    hist = History(lr=lr, steps_per_epoch=per_epoch)
    best_state = None
    for step in range(1, steps + 1):
        started = time.perf_counter()
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
        hist.grad_norm.append(float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()
                                                   if p.grad is not None))))  # frozen: no grad
        opt.step()
        hist.step_seconds.append(time.perf_counter() - started)
        if step % eval_every == 0 or step == steps:
            vl, va = evaluate(model, data.X_val, data.y_val, data.task)
            hist.eval_steps.append(step)
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
            if early_stopping is not None:
                stop = early_stopping.update(vl)
                if early_stopping.best_index == early_stopping.index:  # this evaluation is the best
                    hist.best_step = step
                    if early_stopping.restore_best:
                        best_state = copy.deepcopy(model.state_dict())
                if stop:
                    hist.stopped_early = True
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    return hist
