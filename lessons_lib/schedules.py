"""Learning-rate schedules as plain functions of the step, each equal to a PyTorch scheduler.

The convention
--------------
``schedule(step, ...)`` is the learning rate **in force after ``step`` calls of the matching
PyTorch scheduler's ``.step()``**. ``step=0`` is the learning rate the optimizer uses for its very
first update, ``step=1`` the one after the first ``scheduler.step()``, and so on. In the usual
training loop::

    for step in range(n_steps):
        loss = ...; loss.backward()
        optimizer.step()        # uses schedule(step, ...)
        scheduler.step()        # now schedule(step + 1, ...) is in force

Every function accepts a Python int or a NumPy integer array for ``step`` and returns a float or a
float array of the same shape, so ``cosine(np.arange(100), lr=0.1, T_max=100)`` is a whole curve.
Argument names and defaults are those of ``torch.optim.lr_scheduler``; the tests check every
schedule against torch step by step.

- :func:`constant`, :func:`step_decay` (StepLR), :func:`multistep` (MultiStepLR),
  :func:`exponential` (ExponentialLR), :func:`cosine` (CosineAnnealingLR),
  :func:`cosine_restarts` (CosineAnnealingWarmRestarts), :func:`warmup_cosine`
  (SequentialLR of LinearLR then CosineAnnealingLR), :func:`one_cycle` (OneCycleLR), and
  :func:`one_cycle_momentum`, the momentum that OneCycleLR cycles against the rate;
- :class:`ReduceOnPlateau` (ReduceLROnPlateau) depends on the metrics seen, not on the step, so it
  is a small class with ``.step(metrics) -> lr``;
- :func:`as_torch_scheduler` turns any of the functions into a ``LambdaLR`` for a torch training
  loop; :func:`scheduled_sgd` makes an SGD optimizer that follows a different schedule (rate and
  momentum) in each of many stacked runs, for :func:`lessons_lib.batched.fit_mlps`. Torch is
  imported only inside those two, so importing this module stays light.

Bad arguments raise ``ValueError`` naming the argument and the values allowed.
"""

from __future__ import annotations

import functools
import inspect
import math
from numbers import Integral

import numpy as np

from lessons_lib._checks import (check_bool, check_choice, check_finite_array, check_int,
                                 check_learning_rate, check_real)

__all__ = [
    "constant",
    "step_decay",
    "multistep",
    "exponential",
    "cosine",
    "cosine_restarts",
    "warmup_cosine",
    "one_cycle",
    "one_cycle_momentum",
    "ReduceOnPlateau",
    "scheduled_sgd",
    "as_torch_scheduler",
    "as_lambda_lr",
]


# --------------------------------------------------------------------------- private helpers


def _steps(step, high=None) -> np.ndarray:
    """``step`` as an int array; refuses non-integers, negatives and steps above ``high``."""
    arr = np.asarray(step)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"step must be an integer >= 0 or an array of them, got {step!r}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"step must be >= 0, got {arr.min()}")
    if high is not None and arr.size and arr.max() > high:
        raise ValueError(f"step must be in [0, {high}], got {arr.max()}")
    return arr.astype(np.int64)


def _result(values, steps: np.ndarray):
    """A float for a single step, a float array shaped like ``steps`` otherwise."""
    values = np.broadcast_to(np.asarray(values, dtype=float), steps.shape)
    return float(values) if steps.ndim == 0 else values.copy()


def _gamma(value) -> float:
    return check_real("gamma", value, low=0.0, low_open=True)


# --------------------------------------------------------------------------- the schedules


def constant(step, lr):
    """The same learning rate at every step: η_t = η_0.

    (In torch: no scheduler at all, or ``LambdaLR(opt, lambda t: 1.0)``.)
    """
    t = _steps(step)
    return _result(check_learning_rate("lr", lr, scalar=True), t)


def step_decay(step, lr, step_size, gamma=0.1):
    """StepLR: multiply by ``gamma`` every ``step_size`` steps.

    η_t = η_0 · γ^floor(t / step_size)
    """
    t = _steps(step)
    lr, gamma = check_learning_rate("lr", lr, scalar=True), _gamma(gamma)
    step_size = check_int("step_size", step_size, low=1)
    return _result(lr * gamma ** (t // step_size), t)


def multistep(step, lr, milestones, gamma=0.1):
    """MultiStepLR: multiply by ``gamma`` at each milestone step.

    η_t = η_0 · γ^(number of milestones <= t)

    A milestone listed twice counts twice, and a milestone 0 already scales the first
    learning rate, exactly as in torch.
    """
    t = _steps(step)
    lr, gamma = check_learning_rate("lr", lr, scalar=True), _gamma(gamma)
    ok = isinstance(milestones, list | tuple | range | np.ndarray) and all(
        isinstance(m, Integral) and not isinstance(m, bool) and m >= 0 for m in milestones
    )
    if not ok:
        raise ValueError(f"milestones must be a list of integers >= 0, got {milestones!r}")
    ms = np.sort(np.asarray(milestones, dtype=np.int64))
    n_passed = np.searchsorted(ms, t, side="right")
    return _result(lr * gamma**n_passed, t)


def exponential(step, lr, gamma):
    """ExponentialLR: multiply by ``gamma`` at every step.

    η_t = η_0 · γ^t
    """
    t = _steps(step)
    lr, gamma = check_learning_rate("lr", lr, scalar=True), _gamma(gamma)
    return _result(lr * gamma**t, t)


def cosine(step, lr, T_max, eta_min=0.0):
    """CosineAnnealingLR: half a cosine from ``lr`` down to ``eta_min`` in ``T_max`` steps.

    η_t = η_min + (η_0 − η_min) · (1 + cos(π t / T_max)) / 2

    Beyond ``T_max`` torch does *not* stay at ``eta_min``: its recursive update keeps following
    the same cosine, back up to ``lr`` at ``2 T_max``, down again at ``3 T_max``, and so on. The
    formula above does the same, so steps > T_max are allowed and still equal torch.
    """
    t = _steps(step)
    lr = check_learning_rate("lr", lr, scalar=True)
    eta_min = check_learning_rate("eta_min", eta_min, allow_zero=True, scalar=True)
    T_max = check_int("T_max", T_max, low=1)
    return _result(eta_min + (lr - eta_min) * (1 + np.cos(np.pi * t / T_max)) / 2, t)


def cosine_restarts(step, lr, T_0, T_mult=1, eta_min=0.0):
    """CosineAnnealingWarmRestarts (stepped with no argument): cosine cycles, each restarting at lr.

    η_t = η_min + (η_0 − η_min) · (1 + cos(π T_cur / T_i)) / 2

    where T_cur counts the steps since the last restart and T_i is the length of the current
    cycle: T_0 for the first, then T_0·T_mult, T_0·T_mult², ...
    """
    t = _steps(step)
    lr = check_learning_rate("lr", lr, scalar=True)
    eta_min = check_learning_rate("eta_min", eta_min, allow_zero=True, scalar=True)
    T_0 = check_int("T_0", T_0, low=1)
    T_mult = check_int("T_mult", T_mult, low=1)
    if T_mult == 1:
        t_cur, t_i = t % T_0, T_0
    else:  # walk through the cycles, one pass per cycle (their lengths grow geometrically)
        t_cur, t_i = t.copy(), np.full(t.shape, T_0, dtype=np.int64)
        while (over := t_cur >= t_i).any():
            t_cur = np.where(over, t_cur - t_i, t_cur)
            t_i = np.where(over, t_i * T_mult, t_i)
    return _result(eta_min + (lr - eta_min) * (1 + np.cos(np.pi * t_cur / t_i)) / 2, t)


def warmup_cosine(step, lr, warmup_steps, total_steps, eta_min=0.0, start_factor=0.01):
    """Linear warm-up from ``start_factor·lr`` to ``lr``, then a cosine down to ``eta_min``.

    η_t = η_0 · (s + (1 − s) · t / W)                                    for t < W
    η_t = η_min + (η_0 − η_min) · (1 + cos(π (t − W) / (T − W))) / 2     for t >= W

    with W = warmup_steps, T = total_steps, s = start_factor. This equals torch's
    ``SequentialLR(opt, [LinearLR(opt, start_factor=s, end_factor=1.0, total_iters=W),
    CosineAnnealingLR(opt, T_max=T - W, eta_min=eta_min)], milestones=[W])``: at the milestone
    the cosine starts at its own step 0, i.e. at ``lr``, the value the warm-up has just reached.
    The default ``start_factor=0.01`` starts the warm-up at 1% of ``lr`` (torch's LinearLR
    default, 1/3, is a much gentler warm-up). ``warmup_steps=0`` gives plain :func:`cosine`; past
    ``total_steps`` the cosine climbs back up, as :func:`cosine` does.
    """
    t = _steps(step)
    lr = check_learning_rate("lr", lr, scalar=True)
    eta_min = check_learning_rate("eta_min", eta_min, allow_zero=True, scalar=True)
    total_steps = check_int("total_steps", total_steps, low=1)
    warmup_steps = check_int("warmup_steps", warmup_steps, low=0, high=total_steps - 1)
    s = check_real("start_factor", start_factor, low=0.0, high=1.0, low_open=True)
    warm = lr * (s + (1 - s) * t / max(warmup_steps, 1))
    cos = cosine(np.maximum(t - warmup_steps, 0), lr, total_steps - warmup_steps, eta_min)
    return _result(np.where(t < warmup_steps, warm, cos), t)


def one_cycle(
    step,
    max_lr,
    total_steps,
    pct_start=0.3,
    anneal_strategy="cos",
    div_factor=25.0,
    final_div_factor=1e4,
    three_phase=False,
):
    """OneCycleLR (learning rate only): up from max_lr/div_factor to max_lr, then far below.

    η_init = max_lr / div_factor,  η_final = η_init / final_div_factor.
    Two phases (default): η_init → max_lr over the first pct_start·T steps, then max_lr → η_final.
    Three phases: η_init → max_lr → η_init (symmetric), then η_init → η_final.
    Inside a phase going from a to b, with p the fraction of the phase done (0 to 1):
        cos:    η = b + (a − b) · (1 + cos(π p)) / 2
        linear: η = a + (b − a) · p

    ``step`` may be 0 ... total_steps, as in torch: a loop of ``total_steps`` iterations calls
    ``scheduler.step()`` ``total_steps`` times, and one more call raises. The value at
    ``step == total_steps`` is never used for an update; torch extrapolates the last phase one
    step past its end (it can overshoot η_final, and with "linear" even go below zero).
    """
    max_lr = check_learning_rate("max_lr", max_lr, scalar=True)
    total_steps = check_int("total_steps", total_steps, low=1)
    t = _steps(step, high=total_steps)
    pct_start = check_real("pct_start", pct_start, low=0, high=1, low_open=True, high_open=True)
    check_choice("anneal_strategy", anneal_strategy, {"cos", "linear"})
    check_bool("three_phase", three_phase)
    div_factor = check_real("div_factor", div_factor, low=0.0, low_open=True)
    final_div_factor = check_real("final_div_factor", final_div_factor, low=0.0, low_open=True)

    initial = max_lr / div_factor
    final = initial / final_div_factor
    # (last step of the phase, lr at its start, lr at its end)
    ends = _one_cycle_ends(total_steps, pct_start, three_phase)
    values = [initial, max_lr, initial, final] if three_phase else [initial, max_lr, final]
    phases = list(zip(ends, values[:-1], values[1:]))

    return _result(_through_phases(t, phases, anneal_strategy, pct_start, total_steps), t)


def _one_cycle_ends(total_steps, pct_start, three_phase) -> list[float]:
    """The last step of each phase of OneCycleLR, with torch's (float) boundaries."""
    up_end = pct_start * total_steps - 1
    if three_phase:
        return [up_end, 2 * pct_start * total_steps - 2, total_steps - 1]
    return [up_end, total_steps - 1]


def _through_phases(t, phases, anneal_strategy, pct_start, total_steps) -> np.ndarray:
    """OneCycleLR's interpolation: ``phases`` is a list of (last step, value at the phase's start,
    value at its end); the last phase also covers every later step, as in torch."""
    out = np.zeros(t.shape)
    todo = np.ones(t.shape, dtype=bool)
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        here = todo & ((t <= end) | (i == len(phases) - 1))
        if here.any():
            if end == start:  # torch raises ZeroDivisionError here
                raise ValueError(
                    f"pct_start={pct_start} with total_steps={total_steps} gives OneCycleLR a "
                    f"phase of zero length ending at step {end:g}; choose another pct_start"
                )
            p = (t[here] - start) / (end - start)
            if anneal_strategy == "cos":
                out[here] = b + (a - b) / 2.0 * (np.cos(np.pi * p) + 1)
            else:
                out[here] = (b - a) * p + a
        todo &= ~here
        start = end
    return out


def one_cycle_momentum(
    step,
    total_steps,
    pct_start=0.3,
    anneal_strategy="cos",
    base_momentum=0.85,
    max_momentum=0.95,
    three_phase=False,
):
    """OneCycleLR's momentum (``cycle_momentum=True``, torch's default): the mirror of the rate.

    While :func:`one_cycle` climbs to max_lr the momentum falls from ``max_momentum`` to
    ``base_momentum``, and while the rate falls it climbs back:
    Two phases (default): max_momentum → base_momentum → max_momentum, over the same steps as
    :func:`one_cycle`'s phases. Three phases: max → base → max, then it stays at max.
    The interpolation is :func:`one_cycle`'s ("cos" or "linear"). This is the value torch writes
    into ``param_groups[i]["momentum"]`` of SGD (or the first of Adam's ``betas``) after ``step``
    calls of ``scheduler.step()``.
    """
    total_steps = check_int("total_steps", total_steps, low=1)
    t = _steps(step, high=total_steps)
    pct_start = check_real("pct_start", pct_start, low=0, high=1, low_open=True, high_open=True)
    check_choice("anneal_strategy", anneal_strategy, {"cos", "linear"})
    check_bool("three_phase", three_phase)
    base = check_real("base_momentum", base_momentum, low=0.0, high=1.0, high_open=True)
    top = check_real("max_momentum", max_momentum, low=0.0, high=1.0, high_open=True)
    ends = _one_cycle_ends(total_steps, pct_start, three_phase)
    values = [top, base, top, top] if three_phase else [top, base, top]
    phases = list(zip(ends, values[:-1], values[1:]))
    return _result(_through_phases(t, phases, anneal_strategy, pct_start, total_steps), t)


# --------------------------------------------------------------------------- reduce on plateau


class ReduceOnPlateau:
    """ReduceLROnPlateau: cut the learning rate when a metric stops improving.

    ``sched.step(metrics)`` returns the learning rate for the next steps. A metric *improves*
    when (mode "min") it falls below best·(1 − threshold) ("rel") or best − threshold ("abs");
    mode "max" mirrors this (above best·(1 + threshold) or best + threshold). After more than
    ``patience`` steps in a row without improvement:

        η ← max(η · factor, min_lr)     (skipped if it would change η by eps or less)

    then ``cooldown`` steps follow during which bad steps are not counted.
    """

    def __init__(
        self,
        lr,
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0.0,
        eps=1e-8,
    ):
        self.lr = check_learning_rate("lr", lr, scalar=True)
        self.mode = check_choice("mode", mode, {"min", "max"})
        self.factor = check_real("factor", factor, low=0, high=1, low_open=True, high_open=True)
        self.patience = check_int("patience", patience, low=0)
        self.threshold = check_real("threshold", threshold, low=0.0)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode, {"rel", "abs"})
        self.cooldown = check_int("cooldown", cooldown, low=0)
        self.min_lr = check_learning_rate("min_lr", min_lr, allow_zero=True, scalar=True)
        self.eps = check_real("eps", eps, low=0.0)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, metric: float) -> bool:
        best, th = self.best, self.threshold
        if self.mode == "min":
            return metric < (best * (1.0 - th) if self.threshold_mode == "rel" else best - th)
        return metric > (best * (1.0 + th) if self.threshold_mode == "rel" else best + th)

    def step(self, metrics) -> float:
        """Record one value of the watched metric; return the learning rate now in force.

        The argument is called ``metrics``, as in ``ReduceLROnPlateau.step(metrics)``, although
        it is one number (e.g. this epoch's validation loss).
        """
        if isinstance(metrics, str | bytes | bool):
            raise ValueError(f"metrics must be a number (not NaN), got {metrics!r}")
        try:
            metric = float(metrics)
        except (TypeError, ValueError):
            raise ValueError(f"metrics must be a number (not NaN), got {metrics!r}") from None
        if math.isnan(metric):
            raise ValueError("metrics must be a number (not NaN), got nan")
        if self._is_better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad steps during a cooldown do not count
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if self.lr - new_lr > self.eps:
                self.lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        return self.lr


# --------------------------------------------------------------------------- torch adaptor


def as_torch_scheduler(optimizer, schedule, **kwargs):
    """A ``torch.optim.lr_scheduler.LambdaLR`` that makes ``optimizer`` follow ``schedule``.

        sched = as_torch_scheduler(opt, cosine, T_max=100)
        ...  optimizer.step(); sched.step()

    The factor LambdaLR multiplies the base learning rate by is schedule(t, ...) / base_lr. If the
    schedule takes ``lr`` and you do not pass it, each parameter group's own learning rate is used,
    so the lrs in force are those of the native torch scheduler. Arguments are checked here, at
    once, not at the first ``sched.step()``. (:class:`ReduceOnPlateau` needs a metric, not a step:
    use torch's ReduceLROnPlateau, or set ``group["lr"]`` from ``.step(metrics)`` yourself.)
    """
    from torch.optim.lr_scheduler import LambdaLR

    if not callable(schedule) or isinstance(schedule, type):
        raise ValueError(f"schedule must be one of the schedule functions, got {schedule!r}")
    takes_lr = "lr" in inspect.signature(schedule).parameters
    factors = []
    for group in optimizer.param_groups:
        base_lr = check_learning_rate("the optimizer's lr",
                                      float(group.get("initial_lr", group["lr"])), scalar=True)
        args = {"lr": base_lr, **kwargs} if takes_lr else dict(kwargs)
        schedule(0, **args)  # raises ValueError now if an argument is bad

        def factor(t, args=args, base_lr=base_lr):
            return schedule(t, **args) / base_lr

        factors.append(factor)
    return LambdaLR(optimizer, factors)


#: The same adaptor under the name of the torch class it returns.
as_lambda_lr = as_torch_scheduler


# --------------------------------------------------------------------------- many runs at once


def scheduled_sgd(lr_factors, momentum=0.0):
    """An optimizer ``params, lr -> optimizer`` whose rate (and momentum) follow a schedule per run.

    For :func:`lessons_lib.batched.fit_mlps`, which stacks ``K`` runs along the first axis of
    every parameter and takes ``lr_factor`` as *one* factor for all of them: with
    ``optimizer=scheduled_sgd(lr_factors)`` run ``k`` follows its own row of ``lr_factors``, so
    runs with different schedules train in one loop. Update ``t`` (counted by the optimizer, from
    0) of run ``k`` is SGD with heavy-ball momentum, exactly as ``torch.optim.SGD`` does it::

        buf ← g at the first update, then buf ← μ_t · buf + g    (no buffer while μ_t = 0)
        θ_k ← θ_k − lr · lr_factors[k, t] · buf_k

    ``lr_factors``: shape ``(K, T)`` (one schedule per run) or ``(T,)`` (the same for all), e.g.
    ``np.stack([one_cycle(t, 1.0, T), cosine(t, 1.0, T)])``; ``lr`` (given by ``fit_mlps``, which
    passes 1 and multiplies by each run's rate itself) scales them all.
    ``momentum``: μ, a number or an array of ``T`` values (e.g. :func:`one_cycle_momentum`).
    The step of run ``k`` is ``lr`` × a direction that does not depend on ``lr``, which is what
    ``fit_mlps`` requires of an optimizer. More than ``T`` updates raise ``ValueError``.
    """
    if np.ndim(lr_factors) not in (1, 2) or np.size(lr_factors) == 0:
        raise ValueError(f"lr_factors must have shape (K, T) or (T,), got {np.shape(lr_factors)}")
    factors = check_learning_rate("lr_factors", lr_factors, allow_zero=True)
    factors = factors[None, :] if factors.ndim == 1 else factors
    mom = check_finite_array("momentum", momentum)
    if mom.ndim > 1 or (mom.ndim == 1 and mom.shape[0] != factors.shape[1]):
        raise ValueError(f"momentum must be a number or {factors.shape[1]} values (one per "
                         f"update), got shape {mom.shape}")
    if (mom < 0).any() or (mom >= 1).any():
        raise ValueError(f"momentum must be in [0, 1), got values from {mom.min():g} to "
                         f"{mom.max():g}")
    mom = np.broadcast_to(mom, (factors.shape[1],)).copy()

    def make(params, lr):
        return _scheduled_sgd_class()(params, lr, factors, mom)

    return make


@functools.cache
def _scheduled_sgd_class():
    """The optimizer class of :func:`scheduled_sgd` (built on first use: torch loads only then)."""
    import torch

    class ScheduledSGD(torch.optim.Optimizer):
        def __init__(self, params, lr, factors, momentum):
            super().__init__(params, {"lr": check_learning_rate("lr", lr, scalar=True)})
            self.factors = torch.as_tensor(factors, dtype=torch.float32)
            self.momentum = [float(m) for m in momentum]
            self.t = 0

        @torch.no_grad()
        def step(self, closure=None):
            if closure is not None:
                raise ValueError("closure must be None: scheduled_sgd takes no closure")
            k, n_steps = self.factors.shape
            if self.t >= n_steps:
                raise ValueError(f"the schedule has {n_steps} updates; update {self.t + 1} asked")
            mu = self.momentum[self.t]
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if k > 1 and (p.dim() == 0 or p.shape[0] != k):
                        raise ValueError(f"lr_factors has {k} rows (runs), so every parameter "
                                         f"must have {k} runs along its first axis, got shape "
                                         f"{tuple(p.shape)}")
                    direction = p.grad
                    if mu != 0:
                        buf = self.state[p].get("momentum_buffer")
                        if buf is None:
                            buf = self.state[p]["momentum_buffer"] = p.grad.clone()
                        else:
                            buf.mul_(mu).add_(p.grad)
                        direction = buf
                    f = self.factors[:, self.t].view(-1, *([1] * (p.dim() - 1))) if k > 1 \
                        else self.factors[0, self.t]
                    p.sub_(group["lr"] * f * direction)
            self.t += 1

    return ScheduledSGD
