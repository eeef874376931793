"""The learning-rate range test ("LR finder"): raise η exponentially and watch the loss.

Leslie Smith's range test (Smith 2017, popularised by fastai) trains for a short while with a
learning rate that grows at every step, from far too small to far too large,

    η_i = start_lr · (end_lr / start_lr)^(i / (num_iter − 1)),   i = 0, 1, …, num_iter − 1,

one minibatch per step, and records the training loss of each step. The raw losses are noisy, so
they are smoothed with an exponential moving average whose weight on the newest value is
``smooth_f`` (no bias correction, as in the ``torch-lr-finder`` package; the argument names
``smooth_f`` and ``diverge_th`` are those of its ``LRFinder.range_test``):

    s_0 = ℓ_0,   s_i = smooth_f · ℓ_i + (1 − smooth_f) · s_{i−1}.

The test stops once s_i > ``diverge_th`` × min_{j≤i} s_j (the loss has blown up).

A learning rate is then read off the smoothed curve, after dropping its first ``skip_start`` and
last ``skip_end`` points. :data:`SUGGESTIONS` names the readings :func:`read_suggestion` knows:

- ``"steepest"``: where the loss falls fastest, the minimum of ds/d(log η) (torch-lr-finder's
  ``plot(suggest_lr=True)``: ``np.gradient`` of the trimmed curve). The default.
- ``"valley"``: fastai's default reading (``fastai.callback.schedule.valley``, what
  ``Learner.lr_find()`` returns): the longest run of falling losses (a longest decreasing
  subsequence), and the point about halfway along it (:func:`valley_lr`).
- ``"min/10"``: a tenth of the rate of the lowest loss (fastai's ``minimum``).
- ``"midway"``: the geometric mean of ``"steepest"`` and ``"valley"``, halfway between them on
  the log axis (the book's own, blind to the optimizer).
- ``"by_optimizer"``: ``"min/10"`` for SGD (with or without momentum), ``"valley"`` for every
  other (adaptive) optimizer (the book's own; chapter 2's lesson on the range test measures why).

fastai drops the first ``num_iter // 10`` points, smooths with a bias-corrected average of
weight 0.02 and stops at 4× the best loss; here every reading uses the one smoothed curve of
torch-lr-finder's rule and ``skip_start``, ``skip_end`` (at the default 100 steps both libraries
drop 10 points at the start and 5 at the end).

The model and the optimizer are put back exactly as they were (weights, buffers, gradients,
train/eval mode, optimizer state, torch's global random state), so the test can be run on the
model that will then be trained.

:func:`reading_study` measures the readings against full sweeps of fixed-rate training on the
small tasks of :data:`STUDY_TASKS`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import (check_choice, check_int, check_learning_rate, check_real,
                                 check_seed)
from lessons_lib.data import minibatch_indices
from lessons_lib.optimizers import TORCH_OPTIMIZERS, torch_optimizer

#: The readings of a range-test curve that :func:`read_suggestion` and ``lr_range_test(...,
#: suggestion=...)`` know (see the module's docstring).
SUGGESTIONS = ("steepest", "valley", "min/10", "midway", "by_optimizer")


@dataclass(frozen=True)
class LRFinderResult:
    """The curve of a range test and the learning rates read off it.

    ``lrs[i]`` is the learning rate of step ``i``, ``raw_losses[i]`` the minibatch loss of that
    step (before its update), ``losses[i]`` the smoothed loss. ``diverged`` says the test stopped
    before ``num_iter`` steps because the loss blew up (or became NaN/inf, in which case that
    step is not recorded). ``suggestion`` is the reading named ``suggestion_name`` (one of
    :data:`SUGGESTIONS`); :meth:`reading` gives any other. ``min_loss_lr`` is the rate of the
    lowest smoothed loss over the whole curve. ``sgd`` says the optimizer was
    ``torch.optim.SGD`` (with or without momentum), which the ``"by_optimizer"`` reading uses.
    """

    lrs: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    suggestion: float
    min_loss_lr: float
    diverged: bool = False
    suggestion_name: str = "steepest"
    sgd: bool = True
    skip_start: int = 10
    skip_end: int = 5

    def __len__(self) -> int:
        return len(self.lrs)

    def reading(self, name: str) -> float:
        """The learning rate that reading ``name`` (one of :data:`SUGGESTIONS`) takes from this
        curve, with the test's own ``skip_start``, ``skip_end``; NaN for an empty curve."""
        check_choice("name", name, SUGGESTIONS)
        if len(self.lrs) == 0:
            return math.nan
        return read_suggestion(self.lrs, self.losses, name, sgd=self.sgd,
                               skip_start=self.skip_start, skip_end=self.skip_end)


def exponential_lrs(start_lr: float, end_lr: float, num_iter: int) -> np.ndarray:
    """η_i = start_lr · (end_lr / start_lr)^(i / (num_iter − 1)) for i = 0 … num_iter − 1.

    ``start_lr`` and ``end_lr`` are finite and > 0; ``num_iter`` ≥ 2 (the first and last rate).
    """
    start_lr = check_learning_rate("start_lr", start_lr, scalar=True)
    end_lr = check_learning_rate("end_lr", end_lr, scalar=True)
    num_iter = check_int("num_iter", num_iter, low=2)
    r = np.arange(num_iter) / (num_iter - 1)
    return np.array([start_lr * (end_lr / start_lr) ** float(x) for x in r])


def _curve(lrs, losses, skip_start, skip_end):
    """The checked curve with its first ``skip_start`` and last ``skip_end`` points dropped (the
    whole curve when it is too short for the trimming to leave two points)."""
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lrs.ndim != 1 or lrs.size == 0 or lrs.shape != losses.shape:
        raise ValueError(f"lrs and losses must be non-empty and of the same length, got "
                         f"{lrs.shape} and {losses.shape}")
    skip_start = check_int("skip_start", skip_start, low=0)
    skip_end = check_int("skip_end", skip_end, low=0)
    if lrs.size >= skip_start + skip_end + 2:
        lrs, losses = lrs[skip_start:lrs.size - skip_end], losses[skip_start:losses.size - skip_end]
    return lrs, losses


def steepest_descent_lr(lrs, losses, *, skip_start: int = 10, skip_end: int = 5) -> float:
    """The learning rate at which ``losses`` (sampled at log-spaced ``lrs``) fall fastest.

    Drops the first ``skip_start`` and last ``skip_end`` points, then returns the rate at the
    minimum of ``np.gradient(losses)`` (for log-uniform rates this is d loss / d log η up to a
    constant). Too short a curve for the trimming falls back to the whole curve.
    """
    lrs, losses = _curve(lrs, losses, skip_start, skip_end)
    if lrs.size < 2:
        return float(lrs[0])
    return float(lrs[int(np.argmin(np.gradient(losses)))])


def valley_lr(lrs, losses) -> float:
    """fastai's ``valley`` reading of a (trimmed) range-test curve.

    The longest *valley* is the longest strictly decreasing subsequence of ``losses`` (not
    necessarily contiguous). With ``L`` the number of its points and ``e`` the index of its last
    one, the reading is the rate at index ``e − L + int(L/3) + int(L/6)``: about halfway down a
    valley of neighbouring points. fastai's code (``fastai/callback/schedule.py``) does it with a
    double loop,

        for i in range(1, n):
            for j in range(0, i):
                if losses[i] < losses[j] and lds[i] < lds[j] + 1: lds[i] = lds[j] + 1
                if lds[max_end] < lds[i]: max_end, max_start = i, i - lds[i]

    and this is the same computation, one row ``i`` at a time with NumPy, quirks included: the
    start is set when ``lds[i]`` first passes the longest length so far (which may be before it
    reaches its final value), and for a curve that falls at every step the start is index −1.
    ``tests/test_lr_finder.py`` checks it against a transcription of fastai's code.
    """
    lrs, losses = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lrs.ndim != 1 or lrs.size == 0 or lrs.shape != losses.shape:
        raise ValueError(f"lrs and losses must be non-empty and of the same length, got "
                         f"{lrs.shape} and {losses.shape}")
    n = losses.size
    lds = np.ones(n, dtype=int)
    max_start = max_end = 0
    for i in range(1, n):
        # lds[i] after each j: 1 + the longest run ending at a j' <= j above losses[i]
        grown = np.maximum.accumulate(np.where(losses[:i] > losses[i], lds[:i] + 1, 1))
        lds[i] = grown[-1]
        passed = np.flatnonzero(grown > lds[max_end])
        if passed.size:
            max_end, max_start = i, i - int(grown[passed[0]])
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def read_suggestion(lrs, losses, name: str = "steepest", *, sgd: bool = True,
                    skip_start: int = 10, skip_end: int = 5) -> float:
    """The learning rate that reading ``name`` (one of :data:`SUGGESTIONS`) takes from the
    smoothed range-test curve ``losses`` at rates ``lrs``, after dropping its first
    ``skip_start`` and last ``skip_end`` points. ``sgd``: the optimizer was SGD (with or without
    momentum); only ``"by_optimizer"`` looks at it."""
    check_choice("name", name, SUGGESTIONS)
    trimmed = _curve(lrs, losses, skip_start, skip_end)
    if name == "by_optimizer":
        name = "min/10" if sgd else "valley"
    if name == "steepest":
        return steepest_descent_lr(*trimmed, skip_start=0, skip_end=0)
    if name == "valley":
        return valley_lr(*trimmed)
    if name == "min/10":
        return float(trimmed[0][int(np.argmin(trimmed[1]))]) / 10
    return math.sqrt(steepest_descent_lr(*trimmed, skip_start=0, skip_end=0)
                     * valley_lr(*trimmed))  # "midway"


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


def _range_test_steps(model, loss_fn, opt, X, y, lrs, batches, smooth_f, diverge_th):
    """The steps of the range test: one minibatch at each rate of ``lrs``; returns the rates,
    raw losses and smoothed losses recorded, and whether the test stopped early."""
    rec_lrs, raw, smoothed = [], [], []
    best = math.inf
    for i, lr in enumerate(lrs):
        idx = batches[i]
        for group in opt.param_groups:
            group["lr"] = float(lr)
        opt.zero_grad()
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
        value = float(loss.item())
        if not math.isfinite(value):  # NaN or inf: not recorded
            return rec_lrs, raw, smoothed, True
        s = value if i == 0 or smooth_f == 0 else (
            smooth_f * value + (1 - smooth_f) * smoothed[-1])
        best = min(best, s)
        rec_lrs.append(float(lr))
        raw.append(value)
        smoothed.append(s)
        if s > diverge_th * best:  # the loss has blown up
            return rec_lrs, raw, smoothed, True
    return rec_lrs, raw, smoothed, False


def lr_range_test(model: nn.Module, loss_fn, X, y, *, batch_size: int = 64,
                  start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100,
                  optimizer="sgd", smooth_f: float = 0.05, diverge_th: float = 5.0, seed: int = 0,
                  skip_start: int = 10, skip_end: int = 5,
                  suggestion: str = "steepest") -> LRFinderResult:
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
    skip_start, skip_end : points of the smoothed curve left out by the readings (as in
        torch-lr-finder's plot; fastai leaves out the same at the default 100 steps).
    suggestion : the reading returned as ``result.suggestion``, one of :data:`SUGGESTIONS`
        (default ``"steepest"``, torch-lr-finder's); ``result.reading(name)`` gives the others.
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
    skip_start = check_int("skip_start", skip_start, low=0)
    skip_end = check_int("skip_end", skip_end, low=0)
    check_choice("suggestion", suggestion, SUGGESTIONS)
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
    try:
        model.train()
        rec_lrs, raw, smoothed, diverged = _range_test_steps(model, loss_fn, opt, X, y, lrs,
                                                             batches, smooth_f, diverge_th)
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
    sgd = isinstance(opt, torch.optim.SGD)
    settings = dict(suggestion_name=suggestion, sgd=sgd, skip_start=skip_start, skip_end=skip_end)
    if rec_lrs.size == 0:
        return LRFinderResult(rec_lrs, smoothed, raw, math.nan, math.nan, True, **settings)
    return LRFinderResult(
        lrs=rec_lrs, losses=smoothed, raw_losses=raw,
        suggestion=read_suggestion(rec_lrs, smoothed, suggestion, sgd=sgd, skip_start=skip_start,
                                   skip_end=skip_end),
        min_loss_lr=float(rec_lrs[int(np.argmin(smoothed))]), diverged=diverged, **settings)


_MARKERS = {"steepest": "o", "valley": "v", "min/10": "s", "midway": "D", "by_optimizer": "*"}


def plot_lr_finder(result: LRFinderResult, ax=None, *, raw: bool = True, label: str | None = None,
                   color=None, readings=None):
    """Draw a range test: smoothed loss (and faint raw loss) against η on a log axis. Without
    ``readings``, the suggestion (circle) and the rate of the lowest loss (square) are marked;
    with ``readings`` (names of :data:`SUGGESTIONS`), each of those readings, with a legend
    label. Returns ``ax``."""
    import matplotlib.pyplot as plt

    if not isinstance(result, LRFinderResult):
        raise ValueError(f"result must be an LRFinderResult, got {type(result).__name__}")
    if readings is not None:
        readings = [check_choice("readings", r, SUGGESTIONS) for r in readings]
    if ax is None:
        _, ax = plt.subplots()
    (line,) = ax.plot(result.lrs, result.losses, color=color, label=label or "smoothed loss")
    if raw:
        ax.plot(result.lrs, result.raw_losses, color=line.get_color(), lw=0.8, alpha=0.35)
    if readings is None:
        marks = [(result.suggestion, "o", None), (result.min_loss_lr, "s", None)]
    else:
        marks = [(result.reading(r), _MARKERS[r], r) for r in readings]
    for lr, marker, name in marks:
        if math.isfinite(lr):
            j = int(np.argmin(np.abs(np.log(result.lrs) - math.log(lr))))
            ax.plot(lr, result.losses[j], marker, ms=9, color=line.get_color(), mfc="white",
                    mew=2, ls="none", label=name)
    ax.set(xscale="log", xlabel="learning rate η", ylabel="training loss")
    return ax


# --------------------------------------------------------------------------------------------
# How good are the readings? A study against full sweeps of fixed-rate training
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyTask:
    """A small task of :func:`reading_study`: a data set of :func:`study_data`, a model
    (``"mlp"``: :func:`lessons_lib.models.mlp` with ``width``, ``depth``, where depth 0 is a
    linear model, logistic regression for a classifier; ``"cnn"``:
    :func:`lessons_lib.models.small_cnn`) and an optimizer name. ``held_out``: the task was added
    after the ``"by_optimizer"`` reading had been chosen, to check it."""

    data: str
    model: str
    optimizer: str
    width: int = 64
    depth: int = 1
    held_out: bool = False


#: The tasks of the study, by name. The first ten were measured before the ``"by_optimizer"``
#: reading was chosen; the seven marked ``held_out`` were added afterwards to check it.
STUDY_TASKS = {
    "digits, MLP, SGD": StudyTask("digits", "mlp", "sgd"),
    "digits, MLP, Adam": StudyTask("digits", "mlp", "adam"),
    "breast cancer, logistic, SGD": StudyTask("breast_cancer", "mlp", "sgd", depth=0),
    "breast cancer, logistic, Adam": StudyTask("breast_cancer", "mlp", "adam", depth=0),
    "wine, MLP, Adam": StudyTask("wine", "mlp", "adam", width=16),
    "diabetes, MLP, SGD": StudyTask("diabetes", "mlp", "sgd", width=32),
    "moons, MLP, SGD": StudyTask("moons", "mlp", "sgd", width=32, depth=2),
    "moons, MLP, Adam": StudyTask("moons", "mlp", "adam", width=32, depth=2),
    "digits, CNN, SGD": StudyTask("digits", "cnn", "sgd"),
    "digits, CNN, Adam": StudyTask("digits", "cnn", "adam"),
    "wine, MLP, SGD": StudyTask("wine", "mlp", "sgd", width=16, held_out=True),
    "diabetes, MLP, Adam": StudyTask("diabetes", "mlp", "adam", width=32, held_out=True),
    "digits, deep MLP, momentum": StudyTask("digits", "mlp", "momentum", width=32, depth=2,
                                            held_out=True),
    "linear data, linear, Adam": StudyTask("linear", "mlp", "adam", depth=0, held_out=True),
    "breast cancer, MLP, SGD": StudyTask("breast_cancer", "mlp", "sgd", width=16, held_out=True),
    "moons, MLP, RMSprop": StudyTask("moons", "mlp", "rmsprop", width=32, depth=2,
                                     held_out=True),
    "digits, CNN, momentum": StudyTask("digits", "cnn", "momentum", held_out=True),
}

#: The decades (log10 η) that the sweeps of :func:`reading_study` cover: SGD's best fixed rates
#: on these tasks lie between 10⁻² and 1, the adaptive optimizers' between 10⁻³·⁵ and 10⁻¹·⁵.
SWEEP_DECADES = {"sgd": (-2.5, 0.5), "adaptive": (-4.0, -1.0)}
_SGD_NAMES = ("sgd", "momentum", "nesterov")


def study_data(name: str):
    """A data set of the study as a :class:`lessons_lib.data.Split` (70 % train, standardised
    features): "digits", "breast_cancer", "wine" (scikit-learn's, see
    :func:`lessons_lib.data.sklearn_dataset`), "moons" (``sklearn.datasets.make_moons``, 600
    points, noise 0.3), "diabetes" (scikit-learn's bundled regression data, 442 patients, the
    target standardised) or "linear" (:func:`lessons_lib.data.linear_regression`, 1000 × 10,
    correlation 0.5)."""
    from sklearn import datasets

    from lessons_lib import data

    check_choice("name", name, ("digits", "breast_cancer", "wine", "moons", "diabetes", "linear"))
    if name in ("digits", "breast_cancer", "wine"):
        return data.sklearn_dataset(name)
    if name == "moons":
        X, y = datasets.make_moons(n_samples=600, noise=0.3, random_state=0)
        return data._split("moons", X.astype(float), y, "classification", 0.3, 0)
    if name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
        return data._split("diabetes", X, (y - y.mean()) / y.std(), "regression", 0.3, 0)
    X, y = data.linear_regression(1000, 10, correlation=0.5, seed=0)
    return data._split("linear", X, y, "regression", 0.3, 0)


@dataclass(frozen=True)
class TaskStudy:
    """One task of :func:`reading_study`.

    ``grid (G,)``: the swept rates; ``sweep_loss (G, S)``: validation loss after ``steps`` fixed-
    rate steps for each rate and seed (``inf`` if the run diverged); ``best_lr``: the rate of the
    lowest mean loss, ``best_loss`` that mean; ``readings[name] (S,)``: the rate each seed's range
    test read; ``loss_at[name] (S,)``: validation loss of a training at that rate with the same
    seed (same initial weights and batches as the range test).
    """

    name: str
    task: StudyTask
    grid: np.ndarray
    sweep_loss: np.ndarray
    readings: dict
    loss_at: dict

    @property
    def mean_loss(self) -> np.ndarray:
        return self.sweep_loss.mean(1)

    @property
    def best_lr(self) -> float:
        return float(self.grid[int(np.argmin(self.mean_loss))])

    @property
    def best_loss(self) -> float:
        return float(self.mean_loss.min())

    @property
    def best_inside(self) -> bool:
        """The best rate is not at an end of the grid (else the grid was too narrow)."""
        return 0 < int(np.argmin(self.mean_loss)) < self.grid.size - 1

    def ratio(self, name: str) -> float:
        """Reading ÷ swept best, for the geometric mean of the seeds' readings."""
        return float(np.exp(np.mean(np.log(self.readings[name]))) / self.best_lr)

    def seed_ratios(self, name: str) -> np.ndarray:
        """Reading ÷ swept best, seed by seed."""
        return self.readings[name] / self.best_lr

    def regret(self, name: str) -> float:
        """Mean validation loss of the trainings at the seeds' readings ÷ the best mean loss."""
        return float(np.mean(self.loss_at[name]) / self.best_loss)


def _sweep(task: StudyTask, split, lrs, seeds, steps):
    from lessons_lib import batched

    if task.model == "cnn":
        return batched.fit_cnns(split, lrs=lrs, seeds=seeds, steps=steps, eval_every=steps,
                                optimizer=task.optimizer).final_val_loss
    return batched.fit_mlps(split, lrs=lrs, seeds=seeds, steps=steps, optimizer=task.optimizer,
                            width=task.width, depth=task.depth, eval_every=steps).final_val_loss


def study_task(name: str, *, seeds=(0, 1, 2), steps: int = 300, per_decade: int = 6,
               task: StudyTask | None = None) -> TaskStudy:
    """Measure every reading of :data:`SUGGESTIONS` on one task against a full sweep.

    For each seed ``s``: the range test with its defaults (1e-7 → 10 in 100 steps, batch 64) on
    the task's model with initial weights ``s`` and batch order ``s``; then fixed-rate training
    (``steps`` steps, batch 64, the batches of seed ``s``) at every rate of a log grid with
    ``per_decade`` rates a decade over :data:`SWEEP_DECADES`, and at each rate that a reading
    gave for that seed: the grid is 10^(k / per_decade) for the integers k that keep it inside
    the decades. All trainings of a task run together (:mod:`lessons_lib.batched`).
    ``task``: a :class:`StudyTask` not in :data:`STUDY_TASKS` (then ``name`` is its label).
    """
    from lessons_lib import models

    if task is None:
        check_choice("name", name, STUDY_TASKS)
        task = STUDY_TASKS[name]
    seeds = [check_seed("seeds", s) for s in np.atleast_1d(seeds).tolist()]
    if not seeds:
        raise ValueError("seeds must hold at least one seed, got none")
    steps = check_int("steps", steps)
    per_decade = check_int("per_decade", per_decade)
    check_choice("model", task.model, ("mlp", "cnn"))
    split = study_data(task.data)
    if split.task == "classification":
        loss_fn = nn.functional.cross_entropy
    else:
        def loss_fn(out, target):
            return nn.functional.mse_loss(out.squeeze(-1), target)

    readings = {name_: np.empty(len(seeds)) for name_ in SUGGESTIONS}
    for k, s in enumerate(seeds):
        model = (models.small_cnn(split.n_outputs, seed=s) if task.model == "cnn" else
                 models.mlp(split.n_features, split.n_outputs, width=task.width, depth=task.depth,
                            seed=s))
        found = lr_range_test(model, loss_fn, split.X_train, split.y_train,
                              optimizer=task.optimizer, seed=s)
        for name_ in SUGGESTIONS:
            readings[name_][k] = found.reading(name_)

    lo, hi = SWEEP_DECADES["sgd" if task.optimizer in _SGD_NAMES else "adaptive"]
    grid = 10.0 ** (np.arange(math.ceil(lo * per_decade - 1e-9),
                              math.floor(hi * per_decade + 1e-9) + 1) / per_decade)
    # the distinct (rate, seed) pairs: the grid for every seed, then each seed's readings
    pairs = [(float(lr), s) for lr in grid for s in seeds]
    pairs += sorted({(float(readings[n][k]), s) for n in SUGGESTIONS for k, s in enumerate(seeds)}
                    - set(pairs))
    final = _sweep(task, split, np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]),
                   steps)
    loss_of = dict(zip(pairs, final.tolist()))
    sweep_loss = np.array([[loss_of[(float(lr), s)] for s in seeds] for lr in grid])
    loss_at = {n: np.array([loss_of[(float(readings[n][k]), s)] for k, s in enumerate(seeds)])
               for n in SUGGESTIONS}
    return TaskStudy(name, task, grid, sweep_loss, readings, loss_at)


def reading_study(names=None, *, seeds=(0, 1, 2), steps: int = 300, per_decade: int = 6
                  ) -> dict[str, TaskStudy]:
    """:func:`study_task` for each task named (default: all of :data:`STUDY_TASKS`; the three
    CNN tasks take most of the time)."""
    names = list(STUDY_TASKS) if names is None else list(names)
    if not names:
        raise ValueError("names must hold at least one task of STUDY_TASKS, got none")
    return {n: study_task(n, seeds=seeds, steps=steps, per_decade=per_decade) for n in names}
