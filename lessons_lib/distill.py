r"""Knowledge distillation (蒸留, Hinton, Vinyals & Dean, 2015): train a small *student* network
on the soft targets of a large, already trained *teacher*.

The loss is :func:`lessons_lib.transfer.distillation_loss`: for student logits z_s, teacher
logits z_t and labels y,

.. math:: \alpha\, T^2\, \mathrm{KL}\bigl(\sigma(z_t/T)\,\Vert\,\sigma(z_s/T)\bigr)
          + (1-\alpha)\,\mathrm{CE}(z_s, y).

**The transfer set.** The soft term needs no labels, only the teacher's outputs, so it can be
computed on images nobody labelled: Hinton et al.'s *transfer set*. :func:`distill` takes the
labelled images from ``data.X_train`` and, if ``transfer_X`` is given, the soft targets from a
second stream of minibatches of ``transfer_X``:

.. math:: \alpha\, T^2\, \mathrm{KL}\text{ on a batch of } \texttt{transfer\_X}
          \;+\; (1-\alpha)\,\mathrm{CE}\text{ on a batch of } \texttt{data.X\_train}.

Without ``transfer_X`` both terms use the same labelled batch, which is exactly
``distillation_loss``. ``alpha = 0`` is ordinary training on the labels (the student alone).

:func:`distill` is the readable loop (one student, the conventions of
:func:`lessons_lib.train.fit`); :func:`distill_mlps` trains ``K`` students of the
:func:`lessons_lib.models.mlp` shape at once, each with its own rate, seed, temperature, weight
and labelled set, for the sweeps of a lesson. Run ``k`` of :func:`distill_mlps` is the same
computation as :func:`distill` with plain SGD (``tests/test_distill.py`` checks one against the
other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import (check_int, check_learning_rate, check_real, check_run,
                                 check_seed)
from lessons_lib.batched import (_forward, _per_run_accuracy, _per_run_cross_entropy,
                                  _record_losses, _sgd_step, _stacked_mlp)
from lessons_lib.data import Split, minibatch_indices
from lessons_lib.optimizers import torch_optimizer
from lessons_lib.train import History, evaluate
from lessons_lib.transfer import distillation_loss


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""The softened probabilities σ(z/T): softmax of the logits divided by the temperature T.
    T = 1 is the ordinary softmax; a larger T spreads the probability over more classes."""
    temperature = check_real("temperature", temperature, low=0, low_open=True)
    return torch.softmax(torch.as_tensor(logits) / temperature, dim=-1)


def labelled_subset(data: Split, per_class: int, *, seed: int = 0) -> Split:
    """A few-label version of ``data``: ``per_class`` training images of every class, drawn at
    random (fixed by ``seed``) and kept in their original order; the validation part unchanged."""
    if not isinstance(data, Split) or data.task != "classification":
        raise ValueError(f"data must be a classification Split, got {data!r:.60}")
    counts = torch.bincount(data.y_train)
    per_class = check_int("per_class", per_class, high=int(counts[counts > 0].min()))
    gen = torch.Generator().manual_seed(check_seed("seed", seed))
    chosen = []
    for c in torch.nonzero(counts)[:, 0].tolist():
        idx = torch.nonzero(data.y_train == c)[:, 0]
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
    chosen = torch.sort(torch.cat(chosen)).values
    return Split(f"{data.name}:{per_class} per class", data.X_train[chosen], data.y_train[chosen],
                 data.X_val, data.y_val, data.task)


def _check_transfer(transfer_X, n_features: int, batch_size: int, name="transfer_X"):
    if transfer_X is None:
        return None
    if (not isinstance(transfer_X, torch.Tensor) or transfer_X.dim() != 2
            or transfer_X.shape[1] != n_features):
        raise ValueError(f"{name} must be None or a 2-d tensor of images with {n_features} "
                         f"features, got {tuple(getattr(transfer_X, 'shape', ())) or transfer_X!r}")
    check_int("transfer_batch_size", batch_size, low=1, high=len(transfer_X))
    return transfer_X


def _teacher_logits(teacher: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The teacher's logits for ``X``: in evaluation mode, without gradients (the modes of its
    modules are put back as they were)."""
    modes = [(module, module.training) for module in teacher.modules()]
    teacher.eval()
    try:
        with torch.no_grad():
            return teacher(X)
    finally:
        for module, training in modes:
            module.training = training


def distill(student: nn.Module, teacher: nn.Module, data: Split, *, lr: float, steps: int,
            temperature: float = 4.0, alpha: float = 0.9, transfer_X: torch.Tensor | None = None,
            batch_size: int = 32, transfer_batch_size: int = 64, optimizer="sgd", seed: int = 0,
            eval_every: int = 50, diverge: float = 1e3) -> History:
    """Train ``student`` on ``data`` with the distillation loss of a fixed ``teacher``.

    Each update takes the next minibatch of :func:`lessons_lib.data.minibatch_indices` from the
    labelled images ``data.X_train`` (``seed`` fixes the order, as in
    :func:`lessons_lib.train.fit`) and, when ``transfer_X`` is given, the next minibatch of
    ``transfer_batch_size`` of those images (same ``seed``); the loss is described in the module
    docstring. The teacher is only read (its logits are computed once, without gradients).
    The :class:`lessons_lib.train.History` records the loss of every update and the student's
    validation loss (cross-entropy on the labels) and accuracy every ``eval_every`` updates and
    at the end; a run whose loss is not finite or exceeds ``diverge`` × its first value stops
    with ``diverged=True``. ``optimizer``: a name or a function ``params, lr -> optimizer``, as
    in :func:`lessons_lib.train.fit`.
    """
    lr = check_learning_rate("lr", lr, scalar=True)
    temperature = check_real("temperature", temperature, low=0, low_open=True)
    alpha = check_real("alpha", alpha, low=0, high=1)
    if data.task != "classification":
        raise ValueError(f"data must be a classification Split, got task {data.task!r}")
    steps, batch_size, eval_every, diverge = check_run(data, steps, batch_size, eval_every, diverge)
    transfer_X = _check_transfer(transfer_X, data.n_features, transfer_batch_size)
    batches = minibatch_indices(len(data.X_train), batch_size, steps, seed)
    t_train = _teacher_logits(teacher, data.X_train)
    if transfer_X is not None:
        t_transfer = _teacher_logits(teacher, transfer_X)
        soft_batches = minibatch_indices(len(transfer_X), transfer_batch_size, steps, seed)
    opt = optimizer(student.parameters(), lr) if callable(optimizer) else torch_optimizer(
        optimizer, student.parameters(), lr)
    hist = History(lr=lr, steps_per_epoch=len(data.X_train) // batch_size)
    for step in range(1, steps + 1):
        idx = batches[step - 1]
        hist.lrs.append(lr)
        opt.zero_grad()
        z_s = student(data.X_train[idx])
        if transfer_X is None:  # both terms on the labelled batch: Hinton et al.'s loss as it is
            loss = distillation_loss(z_s, t_train[idx], data.y_train[idx],
                                     temperature=temperature, alpha=alpha)
        else:  # soft term on the transfer batch (alpha = 1: its labels are not used), hard on ours
            j = soft_batches[step - 1]
            z_t = t_transfer[j]
            soft = distillation_loss(student(transfer_X[j]), z_t, z_t.argmax(1),
                                     temperature=temperature, alpha=1.0)
            loss = alpha * soft + (1 - alpha) * nn.functional.cross_entropy(z_s, data.y_train[idx])
        loss.backward()
        value = loss.item()
        hist.train_loss.append(value)
        if not math.isfinite(value) or value > diverge * hist.train_loss[0]:
            hist.diverged = True
            break
        opt.step()
        if step % eval_every == 0 or step == steps:
            vl, va = evaluate(student, data.X_val, data.y_val, data.task)
            hist.eval_steps.append(step)
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
    return hist


@dataclass(frozen=True)
class DistillHistory:
    """What happened in ``K`` students trained together by :func:`distill_mlps`.

    ``lrs, seeds, temperatures, alphas (K,)``: the settings of each run;
    ``train_loss (K, steps)``: the loss of every update (NaN after a run diverged);
    ``val_loss, val_acc (K, E)``: cross-entropy and accuracy on each run's validation set at
    ``eval_steps (E,)``; ``diverged (K,)``.
    """

    lrs: np.ndarray
    seeds: np.ndarray
    temperatures: np.ndarray
    alphas: np.ndarray
    train_loss: np.ndarray
    eval_steps: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    diverged: np.ndarray

    @property
    def final_val_loss(self) -> np.ndarray:
        """Validation loss at the end of each run; ``inf`` for a run that diverged."""
        return np.where(self.diverged, np.inf, self.val_loss[:, -1])

    @property
    def final_val_acc(self) -> np.ndarray:
        """Validation accuracy at the end of each run; 0 for a run that diverged."""
        return np.where(self.diverged, 0.0, self.val_acc[:, -1])


def _per_run(name, value, k, check):
    arr = np.broadcast_to(np.asarray(value), (k,)) if np.ndim(value) == 0 else np.asarray(value)
    if arr.shape != (k,):
        raise ValueError(f"{name} must be one value or one per run ({k}), got {np.size(value)}")
    return np.array([check(f"{name}[{i}]", v.item()) for i, v in enumerate(arr)])


def distill_mlps(teacher: nn.Module, splits, *, lrs, seeds, temperatures, alphas, steps: int,
                 transfer_X: torch.Tensor | None = None, width: int = 16, depth: int = 1,
                 batch_size: int = 32, transfer_batch_size: int = 64, eval_every: int = 50,
                 diverge: float = 1e3) -> DistillHistory:
    """Distil ``teacher`` into ``K`` students together, with plain SGD.

    ``splits``: one :class:`lessons_lib.data.Split` per run (the labelled images and the
    validation set of run k; all of one shape), or one Split for every run. ``lrs, seeds,
    temperatures, alphas``: one value per run, or one for all (K is the longest). Run ``k`` is

        distill(models.mlp(n_in, n_out, width=width, depth=depth, seed=seeds[k]), teacher,
                splits[k], lr=lrs[k], temperature=temperatures[k], alpha=alphas[k],
                transfer_X=transfer_X, seed=seeds[k], ...)

    with the same initial weights, minibatches and divergence rule (up to float32 rounding).
    The K losses are computed side by side: the formula of
    :func:`lessons_lib.transfer.distillation_loss` with a temperature and a weight per run.
    """
    sizes = [np.size(v) for v in (lrs, seeds, temperatures, alphas)]
    if isinstance(splits, Split):
        k = max(sizes)
        splits = [splits] * k
    else:
        splits = list(splits)
        k = len(splits)
    if k == 0 or not all(isinstance(s, Split) and s.task == "classification" for s in splits):
        raise ValueError("splits must be a classification Split or a non-empty list of them")
    first_split = splits[0]
    if any(s.X_train.shape != first_split.X_train.shape or s.X_val.shape != first_split.X_val.shape
           for s in splits):
        raise ValueError("splits must all have the same shapes (training and validation images)")
    lrs = _per_run("lrs", lrs, k, lambda n, v: check_learning_rate(n, v, scalar=True))
    seeds = _per_run("seeds", seeds, k, lambda n, v: check_int(n, v, low=0))
    temps = _per_run("temperatures", temperatures, k,
                     lambda n, v: check_real(n, v, low=0, low_open=True))
    alphas = _per_run("alphas", alphas, k, lambda n, v: check_real(n, v, low=0, high=1))
    steps, batch_size, eval_every, diverge = check_run(first_split, steps, batch_size, eval_every,
                                                       diverge)
    width, depth = check_int("width", width), check_int("depth", depth, low=0)
    transfer_X = _check_transfer(transfer_X, first_split.n_features, transfer_batch_size)

    X = torch.stack([s.X_train for s in splits])  # (K, n, d)
    y = torch.stack([s.y_train for s in splits])
    X_val = torch.stack([s.X_val for s in splits])
    y_val = torch.stack([s.y_val for s in splits])
    logits = {}  # the teacher's logits, computed once for each distinct split
    for s in splits:
        if id(s) not in logits:
            logits[id(s)] = _teacher_logits(teacher, s.X_train)
    t_train = torch.stack([logits[id(s)] for s in splits])  # (K, n, classes)
    if transfer_X is not None:
        t_transfer = _teacher_logits(teacher, transfer_X)
    run = torch.arange(k)[:, None]

    def batches_of(n, size):  # (steps, K, size): each run's minibatches, drawn once per seed
        drawn = {int(s): minibatch_indices(n, size, steps, int(s)) for s in set(seeds.tolist())}
        return torch.stack([drawn[int(s)] for s in seeds], dim=1)

    order = batches_of(X.shape[1], batch_size)
    if transfer_X is not None:
        soft_order = batches_of(len(transfer_X), transfer_batch_size)
    params = _stacked_mlp(first_split.n_features, t_train.shape[-1], width, depth, seeds)
    lr_t = torch.as_tensor(lrs, dtype=torch.float32)
    T = torch.as_tensor(temps, dtype=torch.float32)[:, None, None]
    a = torch.as_tensor(alphas, dtype=torch.float32)

    def losses(z_s, z_t, z_soft, y_batch):  # one loss per run, the formula of distillation_loss
        log_p = torch.log_softmax(z_soft / T, dim=-1)
        p_t = torch.softmax(z_t / T, dim=-1)
        kl = (p_t * (torch.log(p_t.clamp_min(1e-12)) - log_p)).sum(-1).mean(-1)
        hard = _per_run_cross_entropy(z_s, y_batch)
        return a * T.view(-1) ** 2 * kl + (1 - a) * hard

    eval_steps = [s for s in range(1, steps + 1) if s % eval_every == 0 or s == steps]
    train_loss = np.full((k, steps), np.nan)
    val_loss = np.full((k, len(eval_steps)), np.nan)
    val_acc = np.full((k, len(eval_steps)), np.nan)
    alive = torch.ones(k, dtype=torch.bool)
    first = None
    for step in range(1, steps + 1):
        idx = order[step - 1]
        if transfer_X is None:
            z_s = _forward(params, X[run, idx])
            loss = losses(z_s, t_train[run, idx], z_s, y[run, idx])
        else:  # one pass through the students for the labelled and the transfer batch
            j = soft_order[step - 1]
            z = _forward(params, torch.cat([X[run, idx], transfer_X[j]], dim=1))
            z_s, z_soft = z[:, :batch_size], z[:, batch_size:]
            loss = losses(z_s, t_transfer[j], z_soft, y[run, idx])
        first = _record_losses(loss, first, alive, train_loss, step, diverge)
        if not alive.any():
            break
        for p in params:
            p.grad = None
        loss[alive].sum().backward()
        _sgd_step(params, lr_t * alive)
        if step in eval_steps:
            with torch.no_grad():
                out = _forward(params, X_val)
                e = eval_steps.index(step)
                vl, va = _per_run_cross_entropy(out, y_val), _per_run_accuracy(out, y_val)
                live = alive.numpy()
                val_loss[live, e], val_acc[live, e] = vl.numpy()[live], va.numpy()[live]
    return DistillHistory(lrs, seeds, temps, alphas, train_loss, np.array(eval_steps), val_loss,
                          val_acc, ~alive.numpy())
