"""What to watch while training: a few numbers (and one figure) read off a :class:`train.History`.

Three signs tell whether the learning rate is off:

- **the smoothness of the loss curve.** ``rise_share`` is the share of steps after which the
  loss went *up*, L_{t+1} > L_t. On a full-batch loss it is 0 for a small enough η and grows
  when the steps overshoot; on a minibatch loss, sampling noise alone puts it near ½, so
  ``spike_share`` is also given: the share of steps whose loss exceeds ``spike`` (1.5) times
  the moving average of the steps before, s_{t−1} (see :func:`smooth`).
  ``loss_ratio`` = mean loss of the last tenth of the steps / mean of the first tenth: near 1,
  the curve is flat (η too small, or stuck);
- **the stability of the gradient norm.** ``grad_norm_cv`` = std/mean of ‖∇L‖ over the second
  half of training, and ``grad_norm_peak`` = max/median there: spikes mean unstable steps;
- **the gap between training and validation.** ``gap`` = validation loss − training loss at the
  last evaluation. A :class:`~lessons_lib.train.History` only holds minibatch losses, so the
  training loss at an evaluation step is estimated by the mean minibatch loss over the
  ``eval_every`` steps before it (each measured before its update, so slightly pessimistic);
  :func:`evaluate_gap` measures it exactly on a trained model.

:func:`diagnose` computes them all; :func:`hints` turns them into plain advice with the
thresholds written out; :func:`plot_diagnostics` draws the three panels for one or more runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lessons_lib._checks import check_real
from lessons_lib.train import History, evaluate

#: The book's one yardstick for "a good learning rate": a rate of a sweep is good when its final
#: loss is at most this factor times the best loss of the same sweep (on the same task, budget and
#: seeds). 1.5 leaves room for the noise between seeds of a minibatch run, yet excludes the rates
#: that visibly under-train. A lesson that needs another yardstick says why.
GOOD_LOSS_FACTOR = 1.5


def good_rates(lrs, losses, *, factor: float = GOOD_LOSS_FACTOR) -> np.ndarray:
    """The rates of a sweep whose loss is at most ``factor`` × the sweep's best loss.

    ``lrs``: the swept learning rates; ``losses``: their final losses (``inf`` or NaN for a run
    that diverged, never good). Returns the good rates, in the order given.
    """
    from lessons_lib._checks import check_learning_rate

    lrs = check_learning_rate("lrs", lrs).reshape(-1)
    losses = np.asarray(losses, dtype=float).reshape(-1)
    if losses.shape != lrs.shape:
        raise ValueError(f"losses must hold one loss per rate: {lrs.size} rates, {losses.size} losses")
    factor = check_real("factor", factor, low=1)
    finite = np.isfinite(losses)
    if not finite.any():
        raise ValueError("losses must hold at least one finite loss (every run diverged)")
    return lrs[finite & (losses <= factor * losses[finite].min())]


#: Thresholds used by :func:`hints` (a starting point, not a law).
THRESHOLDS = {
    "flat_loss_ratio": 0.5,   # the loss fell by less than half: too small (or stuck)
    "spike_share": 0.08,      # more than 8 % of steps jump 1.5× above the trend: too large
    "grad_norm_peak": 10.0,   # a gradient more than 10× its median: an unstable step
    "gap": 0.1,               # validation loss above training loss by more than 0.1 nats
}


def smooth(values, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average s_t = weight·s_{t−1} + (1 − weight)·x_t, bias-corrected.

    Starting from s_{−1} = 0, s_t is divided by 1 − weight^{t+1} (the bias correction of Adam),
    so the first values are not pulled towards 0. This is the trend :func:`spike_share` compares
    each loss with, and the bold curve of :func:`plot_diagnostics`. (The range test smooths its
    curve differently, without bias correction, as torch-lr-finder does: see
    :mod:`lessons_lib.lr_finder`.)
    """
    weight = check_real("weight", weight, low=0, high=1, high_open=True)
    out, s = np.empty(len(values)), 0.0
    for t, x in enumerate(values):
        s = weight * s + (1 - weight) * x
        out[t] = s / (1 - weight ** (t + 1))
    return out


def _losses(values, name="losses") -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size < 2:
        raise ValueError(f"{name} must hold at least 2 values, got {arr.size}")
    return arr


def rise_share(losses) -> float:
    """Share of steps t with L_{t+1} > L_t (0 = always down, ½ = a coin toss, 1 = always up)."""
    arr = _losses(losses)
    return float(np.mean(np.diff(arr) > 0))


def spike_share(losses, *, factor: float = 1.5, weight: float = 0.9) -> float:
    """Share of steps t ≥ 1 with L_t > ``factor`` × s_{t−1}, s the moving average of
    :func:`smooth` (weight ``weight``): jumps well above the recent trend."""
    arr = _losses(losses)
    factor = check_real("factor", factor, low=1, low_open=True)
    trend = smooth(arr, weight)
    return float(np.mean(arr[1:] > factor * trend[:-1]))


def loss_ratio(losses, *, part: float = 0.1) -> float:
    """Mean of the last ``part`` of the losses / mean of the first ``part`` (≥ 1 value each)."""
    arr = _losses(losses)
    part = check_real("part", part, low=0, high=0.5, low_open=True)
    k = max(1, int(round(part * arr.size)))
    return float(arr[-k:].mean() / arr[:k].mean())


def grad_norm_stability(grad_norms, *, tail: float = 0.5) -> tuple[float, float]:
    """(coefficient of variation std/mean, peak max/median) of the gradient norms over the last
    ``tail`` of training."""
    arr = _losses(grad_norms, "grad_norms")
    tail = check_real("tail", tail, low=0, high=1, low_open=True)
    last = arr[-max(2, int(round(tail * arr.size))):]
    return float(last.std() / last.mean()), float(last.max() / np.median(last))


def train_val_gap(history: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eval_steps, estimated training loss, validation loss) at each evaluation of ``history``.

    The training loss at evaluation step s is the mean minibatch loss of the steps since the
    previous evaluation (steps s_prev+1 … s). The gap is ``val − train``.
    """
    if not isinstance(history, History):
        raise ValueError(f"history must be a train.History, got {type(history).__name__}")
    steps = np.asarray(history.eval_steps, dtype=int)
    losses = np.asarray(history.train_loss, dtype=float)
    train = np.array([losses[a:b].mean() for a, b in zip(np.r_[0, steps[:-1]], steps)])
    return steps, train, np.asarray(history.val_loss, dtype=float)


def evaluate_gap(model, data) -> dict[str, float]:
    """Exact losses and accuracies of a trained ``model`` on the whole training and validation
    sets of ``data`` (a :class:`lessons_lib.data.Split`), and the two gaps (val − train loss,
    train − val accuracy)."""
    tl, ta = evaluate(model, data.X_train, data.y_train, data.task)
    vl, va = evaluate(model, data.X_val, data.y_val, data.task)
    return {"train_loss": tl, "val_loss": vl, "train_acc": ta, "val_acc": va,
            "loss_gap": vl - tl, "acc_gap": ta - va}


@dataclass(frozen=True)
class Diagnostics:
    """The numbers of :func:`diagnose` for one run (see the module docstring)."""

    lr: float
    steps: int
    diverged: bool
    rise_share: float
    spike_share: float
    loss_ratio: float
    grad_norm_cv: float
    grad_norm_peak: float
    gap: float

    def row(self) -> str:
        """One line of a table, the learning rate first."""
        return (f"η = {self.lr:<7g} rise {self.rise_share:4.2f}  spikes {self.spike_share:5.3f}  "
                f"loss end/start {self.loss_ratio:6.3f}  ‖g‖ cv {self.grad_norm_cv:5.2f}  "
                f"‖g‖ peak {self.grad_norm_peak:6.1f}  gap {self.gap:+.3f}"
                + ("  DIVERGED" if self.diverged else ""))


def diagnose(history: History) -> Diagnostics:
    """The smoothness, gradient-norm and gap numbers of one training run."""
    if not isinstance(history, History):
        raise ValueError(f"history must be a train.History, got {type(history).__name__}")
    if len(history.train_loss) < 2:
        raise ValueError("history must hold at least 2 training steps")
    losses = np.asarray(history.train_loss, dtype=float)
    finite = losses[np.isfinite(losses)]
    grads = history.grad_norm if len(history.grad_norm) >= 2 else [math.nan, math.nan]
    cv, peak = grad_norm_stability(grads)
    gap = math.nan
    if history.eval_steps and not history.diverged:
        _, train, val = train_val_gap(history)
        gap = float(val[-1] - train[-1])
    return Diagnostics(lr=float(history.lr), steps=len(losses), diverged=bool(history.diverged),
                       rise_share=rise_share(losses),
                       spike_share=spike_share(finite) if finite.size >= 2 else math.nan,
                       loss_ratio=loss_ratio(finite) if finite.size >= 2 else math.nan,
                       grad_norm_cv=cv, grad_norm_peak=peak, gap=gap)


def hints(diag: Diagnostics, thresholds: dict | None = None) -> list[str]:
    """Plain-language advice from :class:`Diagnostics`, using :data:`THRESHOLDS` (or yours)."""
    t = {**THRESHOLDS, **(thresholds or {})}
    out = []
    if diag.diverged:
        out.append("diverged: the learning rate is too large; try 3-10x smaller")
    if diag.loss_ratio > t["flat_loss_ratio"]:
        out.append(f"flat: the loss only fell to {diag.loss_ratio:.0%} of its start; "
                   "the learning rate may be too small (or training is stuck)")
    if diag.spike_share > t["spike_share"] or diag.grad_norm_peak > t["grad_norm_peak"]:
        out.append(f"jagged: {diag.spike_share:.0%} of steps jump above the trend, gradient "
                   f"peak {diag.grad_norm_peak:.0f}x its median; "
                   "the learning rate may be too large")
    if diag.gap > t["gap"]:
        out.append(f"gap: validation loss is {diag.gap:.2f} above training loss; the model is "
                   "overfitting (stop earlier or regularise)")
    return out or ["no warning sign"]


def plot_diagnostics(histories, *, labels=None, colors=None, axes=None, weight: float = 0.9):
    """Three panels for one or more :class:`~lessons_lib.train.History`: the training loss
    (faint: per step; bold: moving average), the gradient norm, and the validation loss beside
    the estimated training loss (dashed). Returns the three axes."""
    import matplotlib.pyplot as plt

    from lessons_lib.plots import PALETTE

    if isinstance(histories, History):
        histories = [histories]
    histories = list(histories)
    if not histories or not all(isinstance(h, History) for h in histories):
        raise ValueError("histories must be a train.History or a non-empty list of them")
    labels = labels or [f"η = {h.lr:g}" for h in histories]
    if len(labels) != len(histories):
        raise ValueError(f"labels must have one entry per history ({len(histories)}), "
                         f"got {len(labels)}")
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(histories))]
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    ax_loss, ax_grad, ax_gap = axes
    for h, label, color in zip(histories, labels, colors):
        losses = np.asarray(h.train_loss, dtype=float)
        steps = np.arange(1, losses.size + 1)
        ok = np.isfinite(losses)
        ax_loss.plot(steps[ok], losses[ok], color=color, lw=0.6, alpha=0.35)
        ax_loss.plot(steps[ok], smooth(losses[ok], weight), color=color, label=label)
        ax_grad.plot(np.arange(1, len(h.grad_norm) + 1), h.grad_norm, color=color, lw=0.8)
        if h.eval_steps:
            at, train, val = train_val_gap(h)
            ax_gap.plot(at, val, "-", color=color)
            ax_gap.plot(at, train, "--", color=color)
    ax_loss.set(yscale="log", xlabel="step", ylabel="training loss (minibatch)")
    ax_grad.set(yscale="log", xlabel="step", ylabel="gradient norm ‖∇L‖")
    ax_gap.set(yscale="log", xlabel="step", ylabel="loss: validation (—), training (--)")
    ax_loss.legend()
    return axes
