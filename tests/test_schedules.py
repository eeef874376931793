"""Claim SC-8: every schedule of lessons_lib.schedules equals its torch scheduler, step by step.

Each torch scheduler is driven the way a training loop drives it: a dummy parameter, plain SGD,
and ``optimizer.step()`` then ``scheduler.step()`` at every step. The learning rate in force after
``t`` scheduler steps must equal ``schedule(t, ...)`` to a relative error below 1e-6, for 20 random
argument sets per schedule (fixed seeds), over about three periods of the schedule.
"""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lessons_lib import schedules as S

SEEDS = range(20)
RTOL = 1e-6


def torch_lrs(make_scheduler, n_steps, lr=0.1, group_lrs=None):
    """The lr of each param group in force after 0, 1, ..., n_steps calls of scheduler.step()."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": g} for g in group_lrs or [lr]]
    opt = torch.optim.SGD(groups, lr=lr)
    sched = make_scheduler(opt)
    lrs = [[g["lr"] for g in opt.param_groups]]
    for _ in range(n_steps):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    lrs = np.array(lrs, dtype=float)
    return lrs[:, 0] if group_lrs is None else lrs


def random_lr(rng):
    return float(10 ** rng.uniform(-4, 0))


def random_eta_min(rng, lr):
    return 0.0 if rng.random() < 0.5 else float(lr * rng.uniform(0.0, 0.5))


# Each case: rng -> (our kwargs, a function optimizer -> native torch scheduler, number of steps).
# Our kwargs hold the lr; the torch optimizer is built with the same lr.


def case_constant(rng):
    lr = random_lr(rng)
    return {"lr": lr}, lambda opt: L.ConstantLR(opt, factor=1.0), 30


def case_step_decay(rng):
    lr, step_size, gamma = random_lr(rng), int(rng.integers(1, 16)), float(rng.uniform(0.05, 1.2))
    kw = {"lr": lr, "step_size": step_size, "gamma": gamma}
    return kw, lambda opt: L.StepLR(opt, step_size=step_size, gamma=gamma), 3 * 16


def case_multistep(rng):
    milestones = [int(m) for m in rng.integers(0, 40, size=rng.integers(0, 6))]
    if milestones and rng.random() < 0.5:
        milestones.append(milestones[0])  # a repeated milestone decays twice, in torch too
    lr, gamma = random_lr(rng), float(rng.uniform(0.05, 1.2))
    kw = {"lr": lr, "milestones": milestones, "gamma": gamma}
    return kw, lambda opt: L.MultiStepLR(opt, milestones=milestones, gamma=gamma), 50


def case_exponential(rng):
    lr, gamma = random_lr(rng), float(rng.uniform(0.8, 1.05))
    return {"lr": lr, "gamma": gamma}, lambda opt: L.ExponentialLR(opt, gamma=gamma), 60


def case_cosine(rng):
    lr, T_max = random_lr(rng), int(rng.integers(1, 41))
    eta_min = random_eta_min(rng, lr)
    kw = {"lr": lr, "T_max": T_max, "eta_min": eta_min}
    return kw, lambda opt: L.CosineAnnealingLR(opt, T_max=T_max, eta_min=eta_min), 3 * T_max


def case_cosine_restarts(rng):
    lr, T_0, T_mult = random_lr(rng), int(rng.integers(1, 16)), int(rng.integers(1, 4))
    eta_min = random_eta_min(rng, lr)
    kw = {"lr": lr, "T_0": T_0, "T_mult": T_mult, "eta_min": eta_min}

    def make(opt):
        return L.CosineAnnealingWarmRestarts(opt, T_0=T_0, T_mult=T_mult, eta_min=eta_min)

    return kw, make, max(3 * T_0 * T_mult, 60)


def case_warmup_cosine(rng):
    lr, total = random_lr(rng), int(rng.integers(1, 61))
    warmup, eta_min = int(rng.integers(0, total)), random_eta_min(rng, lr)
    kw = {"lr": lr, "warmup_steps": warmup, "total_steps": total, "eta_min": eta_min}
    start_factor = 0.01  # the default of warmup_cosine
    if rng.random() < 0.5:
        start_factor = kw["start_factor"] = float(rng.uniform(0.001, 1.0))

    def make(opt):
        warm = L.LinearLR(opt, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
        cos = L.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=eta_min)
        return L.SequentialLR(opt, [warm, cos], milestones=[warmup])

    return kw, make, 3 * total


def case_one_cycle(rng):
    kw = {
        "max_lr": random_lr(rng),
        "total_steps": int(rng.integers(1, 81)),
        "pct_start": float(rng.uniform(0.05, 0.95)),
        "anneal_strategy": str(rng.choice(["cos", "linear"])),
        "div_factor": float(10 ** rng.uniform(0, 2)),
        "final_div_factor": float(10 ** rng.uniform(0, 5)),
        "three_phase": bool(rng.random() < 0.5),
    }
    if kw["pct_start"] * kw["total_steps"] == 1:  # torch divides by zero (tested below)
        kw["pct_start"] = 0.5
    # every step torch allows: total_steps calls of scheduler.step(), the last one included
    return kw, lambda opt: L.OneCycleLR(opt, cycle_momentum=False, **kw), kw["total_steps"]


CASES = {
    "constant": case_constant,
    "step_decay": case_step_decay,
    "multistep": case_multistep,
    "exponential": case_exponential,
    "cosine": case_cosine,
    "cosine_restarts": case_cosine_restarts,
    "warmup_cosine": case_warmup_cosine,
    "one_cycle": case_one_cycle,
}


def make_case(name, seed):
    kw, make, n_steps = CASES[name](np.random.default_rng([seed, len(name)]))
    return getattr(S, name), kw, make, n_steps


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", CASES)
def test_schedule_equals_torch_step_by_step(name, seed):
    schedule, kw, make, n_steps = make_case(name, seed)
    expected = torch_lrs(make, n_steps, lr=kw.get("lr", 0.1))
    ours = schedule(np.arange(n_steps + 1), **kw)
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=0, err_msg=str(kw))


def test_cosine_beyond_T_max_climbs_back_like_torch():
    lrs = S.cosine(np.arange(9), lr=1.0, T_max=4)
    assert lrs[4] == 0.0 and lrs[8] == pytest.approx(1.0) and lrs[6] == pytest.approx(0.5)


def test_warmup_cosine_reaches_lr_at_the_milestone():
    lrs = S.warmup_cosine(np.arange(5), lr=1.0, warmup_steps=3, total_steps=8)
    np.testing.assert_allclose(lrs[:4], [0.01, 0.34, 0.67, 1.0])
    assert lrs[4] < 1.0


def test_one_cycle_allows_total_steps_calls_and_no_more_like_torch():
    """Catches one_cycle allowing a step past total_steps (torch raises), or refusing the last
    one."""
    kw = {"max_lr": 1.0, "total_steps": 5}
    S.one_cycle(5, **kw)  # torch's 5th scheduler.step() is allowed ...
    with pytest.raises(ValueError, match=r"^step must be in \[0, 5\], got 6"):
        S.one_cycle(6, **kw)
    with pytest.raises(ValueError):  # ... and its 6th raises
        torch_lrs(lambda opt: L.OneCycleLR(opt, cycle_momentum=False, **kw), 6)


def test_one_cycle_zero_length_phase_is_a_clear_error():
    """Catches a zero-length one-cycle phase reaching a division by zero, as it does in torch."""
    # pct_start * total_steps == 1: torch raises ZeroDivisionError at the first step
    with pytest.raises(ZeroDivisionError):
        torch_lrs(lambda opt: L.OneCycleLR(opt, 1.0, total_steps=10, pct_start=0.1), 1)
    with pytest.raises(ValueError, match=r"^pct_start=0\.1 with total_steps=10 gives OneCycleLR a "
                                         r"phase of zero length"):
        S.one_cycle(0, max_lr=1.0, total_steps=10, pct_start=0.1)


# --------------------------------------------------------------------------- ReduceOnPlateau


def random_metrics(rng, mode, n=120):
    """A noisy loss (mode "min") or accuracy-like ("max") curve with plateaus (repeated values),
    tiny improvements and bumps; sometimes shifted to cross zero."""
    value, out = float(rng.uniform(0.5, 2.0)), []
    while len(out) < n:
        kind = rng.choice(["better", "tiny", "same", "worse"])
        if kind == "better":
            value *= rng.uniform(0.95, 1.0)
        elif kind == "tiny":
            value *= 1 - 1e-5  # below the default relative threshold of 1e-4
        elif kind == "worse":
            value *= rng.uniform(1.0, 1.2)
        out += [value] * (int(rng.integers(1, 8)) if kind == "same" else 1)
    if mode == "max":
        out = [1 / v for v in out]
    offset = 0.0 if rng.random() < 0.7 else -1.0  # negative metrics too
    return [v + offset for v in out[:n]]


def random_plateau_kwargs(rng):
    lr = random_lr(rng)
    return {
        "mode": str(rng.choice(["min", "max"])),
        "factor": float(rng.uniform(0.05, 0.95)),
        "patience": int(rng.integers(0, 6)),
        "threshold": float(rng.choice([0.0, 1e-4, 1e-2, 0.03])),
        "threshold_mode": str(rng.choice(["rel", "abs"])),
        "cooldown": int(rng.integers(0, 4)),
        "min_lr": 0.0 if rng.random() < 0.5 else lr * float(rng.uniform(1e-3, 0.3)),
        "eps": float(rng.choice([1e-8, lr * 0.3])),  # a large eps makes torch skip small cuts
    }, lr


@pytest.mark.parametrize("seed", SEEDS)
def test_reduce_on_plateau_equals_torch(seed):
    rng = np.random.default_rng([seed, 99])
    kw, lr = random_plateau_kwargs(rng)
    metrics = random_metrics(rng, kw["mode"])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    native = L.ReduceLROnPlateau(opt, **kw)
    ours = S.ReduceOnPlateau(lr, **kw)
    for m in metrics:
        native.step(m)
        assert ours.step(m) == pytest.approx(opt.param_groups[0]["lr"], rel=RTOL, abs=0), kw


@pytest.mark.parametrize("offset", [0.0, -5.0])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
@pytest.mark.parametrize("mode", ["min", "max"])
def test_reduce_on_plateau_threshold_like_torch(mode, threshold_mode, offset):
    # the metric creeps the right way by 1e-3 a step, below threshold=1e-2 (in both modes)
    sign = 1.0 if mode == "max" else -1.0
    metrics = [offset + 1.0 + sign * 1e-3 * k for k in range(40)]
    kw = {"mode": mode, "threshold_mode": threshold_mode, "threshold": 1e-2, "patience": 2}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    native, ours = L.ReduceLROnPlateau(opt, **kw), S.ReduceOnPlateau(1.0, **kw)
    lrs = []
    for m in metrics:
        native.step(m)
        lrs.append(ours.step(m))
        assert lrs[-1] == pytest.approx(opt.param_groups[0]["lr"], rel=RTOL, abs=0)
    if offset == 0.0:  # creeping is not improving: the lr is cut
        assert lrs[-1] < 1.0
    # (with negative metrics torch's 'rel' bar, best * (1 -/+ threshold), moves the wrong way)


def test_reduce_on_plateau_by_hand():
    sched = S.ReduceOnPlateau(1.0, factor=0.5, patience=2, cooldown=1)
    lrs = [sched.step(1.0) for _ in range(8)]  # a flat metric: one plateau after another
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_reduce_on_plateau_reductions_happen_in_the_random_cases():
    reduced = 0
    for seed in SEEDS:
        rng = np.random.default_rng([seed, 99])
        kw, lr = random_plateau_kwargs(rng)
        sched = S.ReduceOnPlateau(lr, **kw)
        reduced += min([sched.step(m) for m in random_metrics(rng, kw["mode"])]) < lr
    assert reduced >= 10  # the comparison with torch above is not vacuous


# --------------------------------------------------------------------------- vectorised calls


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", CASES)
def test_array_of_steps_equals_the_loop(name, seed):
    schedule, kw, _, n_steps = make_case(name, seed)
    steps = np.arange(n_steps + 1)
    loop = [schedule(int(t), **kw) for t in steps]
    assert all(type(v) is float for v in loop)
    np.testing.assert_allclose(schedule(steps, **kw), loop, rtol=1e-12, atol=0)
    grid = steps[: 2 * ((n_steps + 1) // 2)].reshape(2, -1).astype(np.int32)
    out = schedule(grid, **kw)
    assert out.shape == grid.shape and out.dtype == float
    np.testing.assert_allclose(out.ravel(), loop[: grid.size], rtol=1e-12, atol=0)
    assert schedule(np.array([], dtype=int), **kw).shape == (0,)


# --------------------------------------------------------------------------- torch adaptor


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", CASES)
def test_as_torch_scheduler_equals_the_native_scheduler(name, seed):
    schedule, kw, make, n_steps = make_case(name, seed)
    lr = kw.pop("lr", 0.1)  # the adaptor takes lr from the optimizer
    native = torch_lrs(make, n_steps, lr=lr)
    adapted = torch_lrs(lambda opt: S.as_torch_scheduler(opt, schedule, **kw), n_steps, lr=lr)
    np.testing.assert_allclose(adapted, native, rtol=RTOL, atol=0, err_msg=str(kw))


def test_as_torch_scheduler_follows_each_param_group():
    group_lrs = [0.1, 0.003]
    native = torch_lrs(lambda opt: L.CosineAnnealingLR(opt, T_max=7), 20, group_lrs=group_lrs)
    adapted = torch_lrs(lambda opt: S.as_torch_scheduler(opt, S.cosine, T_max=7), 20,
                        group_lrs=group_lrs)
    np.testing.assert_allclose(adapted, native, rtol=RTOL, atol=0)


def test_as_torch_scheduler_checks_arguments_at_once():
    """Catches a bad schedule argument surfacing only at the first sched.step()."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="^T_max must be an integer >= 1, got 0"):
        S.as_torch_scheduler(opt, S.cosine, T_max=0)
    with pytest.raises(ValueError, match="^schedule must be one of the schedule functions, got "):
        S.as_torch_scheduler(opt, S.ReduceOnPlateau)


@pytest.mark.parametrize("adaptor", ["as_torch_scheduler", "as_lambda_lr"])
def test_both_names_of_the_adaptor_drive_a_lambda_lr_along_the_schedule(adaptor):
    """Catches either name of the adaptor no longer returning a torch LambdaLR, or one whose
    rates stray from the schedule (here step decay, halving every 3 steps, written out)."""
    adapt = getattr(S, adaptor)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    assert isinstance(adapt(opt, S.step_decay, step_size=3, gamma=0.5), L.LambdaLR)
    lrs = torch_lrs(lambda opt: adapt(opt, S.step_decay, step_size=3, gamma=0.5), 10, lr=0.2)
    np.testing.assert_allclose(lrs, [0.2 * 0.5 ** (t // 3) for t in range(11)], rtol=1e-12)


def test_importing_schedules_does_not_import_torch():
    code = "import sys, lessons_lib.schedules; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- bad input

BAD = [
    # (schedule, arguments, the start of the message: the argument, what it allows, what came)
    (S.cosine, {"step": 0, "lr": -0.1, "T_max": 10}, "lr must be finite and > 0; got -0.1"),
    (S.cosine, {"step": 0, "lr": float("nan"), "T_max": 10}, "lr must be finite and > 0; got nan"),
    (S.cosine, {"step": 0, "lr": float("inf"), "T_max": 10}, "lr must be finite and > 0; got inf"),
    (S.constant, {"step": 0, "lr": 0.0}, "lr must be finite and > 0; got 0.0"),
    (S.cosine, {"step": 0, "lr": 0.1, "T_max": 10, "eta_min": -1e-3},
     "eta_min must be finite and >= 0; got -0.001"),
    (S.step_decay, {"step": 0, "lr": 0.1, "step_size": 5, "gamma": 0.0},
     "gamma must be a finite number in (0.0, inf), got 0.0"),
    (S.multistep, {"step": 0, "lr": 0.1, "milestones": [5], "gamma": -0.5},
     "gamma must be a finite number in (0.0, inf), got -0.5"),
    (S.exponential, {"step": 0, "lr": 0.1, "gamma": float("nan")},
     "gamma must be a finite number in (0.0, inf), got nan"),
    (S.step_decay, {"step": 0, "lr": 0.1, "step_size": 0},
     "step_size must be an integer >= 1, got 0"),
    (S.multistep, {"step": 0, "lr": 0.1, "milestones": [3, -1]},
     "milestones must be a list of integers >= 0, got [3, -1]"),
    (S.multistep, {"step": 0, "lr": 0.1, "milestones": 3},
     "milestones must be a list of integers >= 0, got 3"),
    (S.cosine, {"step": 0, "lr": 0.1, "T_max": 0}, "T_max must be an integer >= 1, got 0"),
    (S.cosine, {"step": 0, "lr": 0.1, "T_max": 2.5}, "T_max must be an integer >= 1, got 2.5"),
    (S.cosine_restarts, {"step": 0, "lr": 0.1, "T_0": 0}, "T_0 must be an integer >= 1, got 0"),
    (S.cosine_restarts, {"step": 0, "lr": 0.1, "T_0": 5, "T_mult": 0},
     "T_mult must be an integer >= 1, got 0"),
    (S.warmup_cosine, {"step": 0, "lr": 0.1, "warmup_steps": 0, "total_steps": 0},
     "total_steps must be an integer >= 1, got 0"),
    (S.warmup_cosine, {"step": 0, "lr": 0.1, "warmup_steps": -1, "total_steps": 10},
     "warmup_steps must be an integer in [0, 9], got -1"),
    (S.warmup_cosine, {"step": 0, "lr": 0.1, "warmup_steps": 10, "total_steps": 10},
     "warmup_steps must be an integer in [0, 9], got 10"),
    (S.warmup_cosine, {"step": 0, "lr": 0.1, "warmup_steps": 2, "total_steps": 10,
                       "start_factor": 0.0},
     "start_factor must be a finite number in (0.0, 1.0], got 0.0"),
    (S.cosine, {"step": -1, "lr": 0.1, "T_max": 10}, "step must be >= 0, got -1"),
    (S.cosine, {"step": np.array([0, 3, -2]), "lr": 0.1, "T_max": 10}, "step must be >= 0, got -2"),
    (S.cosine, {"step": 1.5, "lr": 0.1, "T_max": 10},
     "step must be an integer >= 0 or an array of them, got 1.5"),
    (S.one_cycle, {"step": 11, "max_lr": 0.1, "total_steps": 10},
     "step must be in [0, 10], got 11"),
    (S.one_cycle, {"step": 0, "max_lr": 0.1, "total_steps": 0},
     "total_steps must be an integer >= 1, got 0"),
    (S.one_cycle, {"step": 0, "max_lr": 0.0, "total_steps": 10},
     "max_lr must be finite and > 0; got 0.0"),
    (S.one_cycle, {"step": 0, "max_lr": 0.1, "total_steps": 10, "pct_start": 0.0},
     "pct_start must be a finite number in (0, 1), got 0.0"),
    (S.one_cycle, {"step": 0, "max_lr": 0.1, "total_steps": 10, "pct_start": 1.0},
     "pct_start must be a finite number in (0, 1), got 1.0"),
    (S.one_cycle, {"step": 0, "max_lr": 0.1, "total_steps": 10, "div_factor": 0.0},
     "div_factor must be a finite number in (0.0, inf), got 0.0"),
    (S.one_cycle, {"step": 0, "max_lr": 0.1, "total_steps": 10, "final_div_factor": -1.0},
     "final_div_factor must be a finite number in (0.0, inf), got -1.0"),
    (S.one_cycle, {"step": 0, "max_lr": 0.1, "total_steps": 10, "anneal_strategy": "cosine"},
     "anneal_strategy must be one of ['cos', 'linear'], got 'cosine'"),
    (S.one_cycle, {"step": 0, "max_lr": 0.1, "total_steps": 10, "three_phase": "yes"},
     "three_phase must be True or False, got the string 'yes'"),
    (S.ReduceOnPlateau, {"lr": -0.1}, "lr must be finite and > 0; got -0.1"),
    (S.ReduceOnPlateau, {"lr": 0.1, "mode": "minimum"},
     "mode must be one of ['max', 'min'], got 'minimum'"),
    (S.ReduceOnPlateau, {"lr": 0.1, "threshold_mode": "relative"},
     "threshold_mode must be one of ['abs', 'rel'], got 'relative'"),
    (S.ReduceOnPlateau, {"lr": 0.1, "factor": 1.0},
     "factor must be a finite number in (0, 1), got 1.0"),
    (S.ReduceOnPlateau, {"lr": 0.1, "factor": 0.0},
     "factor must be a finite number in (0, 1), got 0.0"),
    (S.ReduceOnPlateau, {"lr": 0.1, "patience": -1}, "patience must be an integer >= 0, got -1"),
    (S.ReduceOnPlateau, {"lr": 0.1, "cooldown": -1}, "cooldown must be an integer >= 0, got -1"),
    (S.ReduceOnPlateau, {"lr": 0.1, "min_lr": -1.0}, "min_lr must be finite and >= 0; got -1.0"),
]


@pytest.mark.parametrize(("func", "kwargs", "message"), BAD,
                         ids=[f"{f.__name__}-{m.split()[0]}" for f, _, m in BAD])
def test_bad_input_names_the_argument(func, kwargs, message):
    """Catches bad input accepted, or refused by a message that does not start with the argument
    and the values it allows."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        func(**kwargs)


def test_nan_metric_is_refused():
    """Catches a NaN metric silently counted as no improvement."""
    with pytest.raises(ValueError, match=r"^metrics must be a number \(not NaN\), got nan"):
        S.ReduceOnPlateau(0.1).step(float("nan"))
