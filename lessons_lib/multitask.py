r"""Multitask learning (マルチタスク学習, Caruana, 1997): one network, a shared *trunk* and one
*head* per task, trained on all the tasks at once.

With tasks t = 1 … m, each with its own labelled images (X_t, y_t), every update takes one
minibatch of each task, passes it through the shared trunk and that task's head, and descends on
the weighted sum of the tasks' cross-entropies,

.. math:: L = \sum_t w_t\, \mathrm{CE}\bigl(h_t(f(x_t)),\, y_t\bigr),

where f is the trunk and h_t the head of task t. The trunk gets the gradients of every task (the
tasks share what it learns); each head only those of its own task, so a task of weight
w_t = 0 leaves its head exactly as it started, and the network is then a single-task network
for the other tasks.

:func:`fit_multitask` is the readable loop for one :class:`MultiHead` network (the conventions of
:func:`lessons_lib.train.fit`); :func:`fit_multitask_mlps` trains ``K`` networks of the
:func:`multitask_mlp` shape at once with plain SGD, each with its own task weights, rate, seed and
training sets, for the sweeps of a lesson (run ``k`` is the same computation as
:func:`fit_multitask`; ``tests/test_multitask.py`` checks one against the other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import check_int, check_learning_rate, check_real, check_seed
from lessons_lib.batched import (_per_run_accuracy, _per_run_cross_entropy, _record_losses,
                                  _sgd_step)
from lessons_lib.data import Split, minibatch_indices
from lessons_lib.models import mlp
from lessons_lib.optimizers import torch_optimizer


class MultiHead(nn.Module):
    """A shared ``trunk`` and one head per task: ``model(x, task)`` is ``heads[task](trunk(x))``."""

    def __init__(self, trunk: nn.Module, heads: Sequence[nn.Module]):
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        return self.heads[task](self.trunk(x))


def multitask_mlp(n_in: int, n_outs: Sequence[int], *, width: int = 64, depth: int = 1,
                  seed: int = 0) -> MultiHead:
    """A :class:`MultiHead` whose trunk is ``depth`` hidden layers of ``width`` ReLU units and
    whose heads are linear layers ``width → n_outs[t]``.

    The trunk and the first head are ``models.mlp(n_in, n_outs[0], width=width, depth=depth,
    seed=seed)``; head t ≥ 1 is PyTorch's default linear layer drawn after
    ``torch.manual_seed(seed + t)`` (the global random state is left as it was).
    """
    if (not isinstance(n_outs, Sequence) or isinstance(n_outs, str) or len(n_outs) < 1):
        raise ValueError(f"n_outs must be a list with one number of outputs per task, got "
                         f"{n_outs!r}")
    n_outs = [check_int(f"n_outs[{t}]", n) for t, n in enumerate(n_outs)]
    depth, seed = check_int("depth", depth, low=1), check_seed("seed", seed)
    base = mlp(n_in, n_outs[0], width=width, depth=depth, seed=seed)
    heads = [base[-1]]
    state = torch.random.get_rng_state()
    try:
        for t, n in enumerate(n_outs[1:], start=1):
            torch.manual_seed(seed + t)
            heads.append(nn.Linear(width, n))
    finally:
        torch.random.set_rng_state(state)
    return MultiHead(base[:-1], heads)


def _check_weights(weights, m: int, name: str = "weights") -> np.ndarray:
    arr = np.asarray(weights, dtype=object)
    if arr.ndim != 1 or arr.size != m:
        raise ValueError(f"{name} must give one weight per task ({m}), got {weights!r}")
    w = np.array([check_real(f"{name}[{t}]", v, low=0) for t, v in enumerate(arr)])
    if not (w > 0).any():
        raise ValueError(f"{name} must give at least one task a weight > 0, got {weights!r}")
    return w


def _check_tasks(tasks, m: int | None = None) -> list[Split]:
    tasks = list(tasks) if isinstance(tasks, Sequence) and not isinstance(tasks, str) else None
    if (not tasks or not all(isinstance(t, Split) and t.task == "classification" for t in tasks)
            or (m is not None and len(tasks) != m)):
        want = "one classification Split per task" + ("" if m is None else f" ({m} tasks)")
        raise ValueError(f"tasks must be a list of {want}")
    return tasks


@dataclass
class MultitaskHistory:
    """What happened in one multitask run: the weighted loss of every update (``train_loss``),
    and at ``eval_steps`` each task's validation loss and accuracy (``val_loss``, ``val_acc``:
    one row per evaluation, one column per task)."""

    lr: float
    weights: tuple[float, ...]
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[list[float]] = field(default_factory=list)
    val_acc: list[list[float]] = field(default_factory=list)
    diverged: bool = False

    @property
    def final_val_acc(self) -> np.ndarray:
        """Each task's validation accuracy at the end (zeros for a run that diverged)."""
        return np.zeros(len(self.weights)) if self.diverged else np.array(self.val_acc[-1])


def fit_multitask(model: MultiHead, tasks: Sequence[Split], *, weights, lr: float, steps: int,
                  batch_size: int = 32, optimizer="sgd", seed: int = 0, eval_every: int = 50,
                  diverge: float = 1e3) -> MultitaskHistory:
    """Train ``model`` on all ``tasks`` at once (one head per task, in order).

    Each update takes the next minibatch of every task (:func:`lessons_lib.data.minibatch_indices`
    over that task's training images, with the same ``seed``), and descends on
    Σ_t weights[t] · CE_t. ``batch_size`` must not exceed any task's number of training images.
    Every ``eval_every`` updates and at the end, each task's validation loss and accuracy are
    recorded. A run whose loss is not finite or exceeds ``diverge`` × its first value stops with
    ``diverged=True``. ``optimizer``: a name or a function ``params, lr -> optimizer``, as in
    :func:`lessons_lib.train.fit`.
    """
    if not isinstance(model, MultiHead):
        raise ValueError(f"model must be a multitask.MultiHead, got {type(model).__name__}")
    tasks = _check_tasks(tasks, len(model.heads))
    w = _check_weights(weights, len(tasks))
    lr = check_learning_rate("lr", lr, scalar=True)
    steps = check_int("steps", steps)
    smallest = min(len(t.X_train) for t in tasks)
    batch_size = check_int("batch_size", batch_size, low=1, high=smallest)
    eval_every = check_int("eval_every", eval_every)
    diverge = check_real("diverge", diverge, low=1, low_open=True)
    batches = [minibatch_indices(len(t.X_train), batch_size, steps, seed) for t in tasks]
    opt = optimizer(model.parameters(), lr) if callable(optimizer) else torch_optimizer(
        optimizer, model.parameters(), lr)
    hist = MultitaskHistory(lr=lr, weights=tuple(w.tolist()))
    ce = nn.functional.cross_entropy
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = sum(float(w_t) * ce(model(t.X_train[b[step - 1]], i), t.y_train[b[step - 1]])
                   for i, (t, b, w_t) in enumerate(zip(tasks, batches, w)))
        loss.backward()
        value = loss.item()
        hist.train_loss.append(value)
        if not math.isfinite(value) or value > diverge * hist.train_loss[0]:
            hist.diverged = True
            break
        opt.step()
        if step % eval_every == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                outs = [model(t.X_val, i) for i, t in enumerate(tasks)]
            model.train()
            hist.eval_steps.append(step)
            hist.val_loss.append([ce(o, t.y_val).item() for o, t in zip(outs, tasks)])
            hist.val_acc.append([(o.argmax(1) == t.y_val).float().mean().item()
                                 for o, t in zip(outs, tasks)])
    return hist


@dataclass(frozen=True)
class MultitaskBatchHistory:
    """What happened in ``K`` multitask runs trained together by :func:`fit_multitask_mlps`.

    ``lrs, seeds (K,)``, ``weights (K, m)``: the settings; ``train_loss (K, steps)``: the weighted
    loss of every update (NaN after a run diverged); ``val_loss, val_acc (K, m, E)``: each task's
    validation loss and accuracy at ``eval_steps (E,)``; ``diverged (K,)``.
    """

    lrs: np.ndarray
    seeds: np.ndarray
    weights: np.ndarray
    train_loss: np.ndarray
    eval_steps: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    diverged: np.ndarray

    @property
    def final_val_loss(self) -> np.ndarray:
        """``(K, m)``: each task's validation loss at the end; ``inf`` for a diverged run."""
        return np.where(self.diverged[:, None], np.inf, self.val_loss[:, :, -1])

    @property
    def final_val_acc(self) -> np.ndarray:
        """``(K, m)``: each task's validation accuracy at the end; 0 for a diverged run."""
        return np.where(self.diverged[:, None], 0.0, self.val_acc[:, :, -1])


def _stacked(models_: list[MultiHead]) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """The trunks' linear layers [W0, b0, W1, b1, …] and each head's [W, b], stacked over runs."""
    def stack(tensors):
        return torch.stack([t.detach() for t in tensors]).clone().requires_grad_(True)

    trunks = [[m for m in net.trunk if isinstance(m, nn.Linear)] for net in models_]
    trunk = [stack([getattr(run[i], name) for run in trunks])
             for i in range(len(trunks[0])) for name in ("weight", "bias")]
    heads = [[stack([net.heads[t].weight for net in models_]),
              stack([net.heads[t].bias for net in models_])] for t in range(len(models_[0].heads))]
    return trunk, heads


def _trunk_forward(trunk: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """K trunks on inputs (K, batch, n_in): every linear layer followed by a ReLU."""
    for w, b in zip(trunk[::2], trunk[1::2]):
        x = torch.relu(torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)))
    return x


def fit_multitask_mlps(tasks, *, weights, lrs, seeds, steps: int, width: int = 64,
                       depth: int = 1, batch_size: int = 32, eval_every: int = 50,
                       diverge: float = 1e3) -> MultitaskBatchHistory:
    """Train ``K`` :func:`multitask_mlp` networks on their tasks together, with plain SGD.

    ``tasks``: one list of m task Splits per run (run k's training and validation sets; the same
    shapes in every run), or one list of m Splits for every run. ``weights``: m task weights for
    every run (shape ``(m,)`` or ``(K, m)``); ``lrs, seeds``: one per run or one for all. Run
    ``k`` is

        fit_multitask(multitask_mlp(n_in, n_outs, width=width, depth=depth, seed=seeds[k]),
                      tasks[k], weights=weights[k], lr=lrs[k], seed=seeds[k], ...)

    with the same initial weights, minibatches and divergence rule (up to float32 rounding).
    """
    if tasks and isinstance(tasks, Sequence) and isinstance(tasks[0], Split):
        tasks = [tasks]
    runs_tasks = [_check_tasks(t) for t in tasks] if isinstance(tasks, Sequence) else []
    w_arr = np.asarray(weights, dtype=float)
    k = max([len(runs_tasks), np.size(lrs), np.size(seeds), w_arr.shape[0] if w_arr.ndim == 2
             else 1])
    if len(runs_tasks) == 1:
        runs_tasks = runs_tasks * k
    if not runs_tasks or len(runs_tasks) != k:
        raise ValueError(f"tasks must be one list of task Splits, or one such list per run ({k})")
    m = len(runs_tasks[0])
    shapes = [[(t.X_train.shape, t.X_val.shape) for t in run] for run in runs_tasks]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("tasks must have the same tasks, of the same shapes, in every run")
    if w_arr.ndim == 1:
        w_arr = np.broadcast_to(w_arr, (k, w_arr.size))
    if w_arr.shape != (k, m):
        raise ValueError(f"weights must have shape ({m},) or ({k}, {m}), got {np.shape(weights)}")
    w_arr = np.stack([_check_weights(list(row), m, f"weights[{i}]") for i, row in enumerate(w_arr)])
    lrs = np.broadcast_to(check_learning_rate("lrs", lrs).reshape(-1), (k,)).copy()
    seeds = np.broadcast_to(np.asarray(seeds).reshape(-1), (k,)).copy()
    seeds = np.array([check_seed(f"seeds[{i}]", s.item()) for i, s in enumerate(seeds)])
    steps = check_int("steps", steps)
    smallest = min(len(t.X_train) for t in runs_tasks[0])
    batch_size = check_int("batch_size", batch_size, low=1, high=smallest)
    eval_every = check_int("eval_every", eval_every)
    diverge = check_real("diverge", diverge, low=1, low_open=True)

    n_in = runs_tasks[0][0].n_features
    n_outs = [max(run[t].n_outputs for run in runs_tasks) for t in range(m)]
    trunk, heads = _stacked([multitask_mlp(n_in, n_outs, width=width, depth=depth, seed=int(s))
                             for s in seeds])
    params = trunk + [p for head in heads for p in head]
    X = [torch.stack([run[t].X_train for run in runs_tasks]) for t in range(m)]
    y = [torch.stack([run[t].y_train for run in runs_tasks]) for t in range(m)]
    X_val = [torch.stack([run[t].X_val for run in runs_tasks]) for t in range(m)]
    y_val = [torch.stack([run[t].y_val for run in runs_tasks]) for t in range(m)]
    def batches_of(n):  # (steps, K, batch): each run's minibatches, drawn once per seed
        drawn = {int(s): minibatch_indices(n, batch_size, steps, int(s))
                 for s in set(seeds.tolist())}
        return torch.stack([drawn[int(s)] for s in seeds], dim=1)

    order = [batches_of(X[t].shape[1]) for t in range(m)]
    run = torch.arange(k)[:, None]
    w_t = torch.as_tensor(w_arr, dtype=torch.float32)
    lr_t = torch.as_tensor(lrs, dtype=torch.float32)

    def task_losses(t, h, labels):  # the outputs of head t on trunk features h, and (K,) CEs
        hw, hb = heads[t]
        out = torch.baddbmm(hb.unsqueeze(1), h, hw.transpose(1, 2))
        return out, _per_run_cross_entropy(out, labels)

    eval_steps = [s for s in range(1, steps + 1) if s % eval_every == 0 or s == steps]
    train_loss = np.full((k, steps), np.nan)
    val_loss = np.full((k, m, len(eval_steps)), np.nan)
    val_acc = np.full((k, m, len(eval_steps)), np.nan)
    alive = torch.ones(k, dtype=torch.bool)
    first = None
    for step in range(1, steps + 1):
        # one pass through the trunks for the minibatches of all the tasks, then each head
        idx = [order[t][step - 1] for t in range(m)]
        h = _trunk_forward(trunk, torch.cat([X[t][run, idx[t]] for t in range(m)], dim=1))
        loss = 0.0
        for t, part in enumerate(h.split(batch_size, dim=1)):
            loss = loss + w_t[:, t] * task_losses(t, part, y[t][run, idx[t]])[1]
        first = _record_losses(loss, first, alive, train_loss, step, diverge)
        if not alive.any():
            break
        for p in params:
            p.grad = None
        loss[alive].sum().backward()
        _sgd_step(params, lr_t * alive)
        if step in eval_steps:
            e = eval_steps.index(step)
            live = alive.numpy()
            with torch.no_grad():
                for t in range(m):
                    out, vl = task_losses(t, _trunk_forward(trunk, X_val[t]), y_val[t])
                    va = _per_run_accuracy(out, y_val[t])
                    val_loss[live, t, e], val_acc[live, t, e] = vl.numpy()[live], va.numpy()[live]
    return MultitaskBatchHistory(lrs, seeds, w_arr, train_loss, np.array(eval_steps), val_loss,
                                 val_acc, ~alive.numpy())
