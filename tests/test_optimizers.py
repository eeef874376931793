"""Tests of lessons_lib.optimizers.

Claim OP-10: each NumPy optimizer of ``lessons_lib.optimizers`` gives the same parameters as its
reference (``torch.optim``; for AdaBelief the ``adabelief-pytorch`` 0.2.1 package, configured to
match) at every one of 100 steps, in float64, for random hyper-parameters, on an ill-conditioned
quadratic and on the Rosenbrock function (a 2-vector and a (3, 2) array of points).

The remaining tests cover the interface: inputs are not mutated, ``reset()`` starts afresh,
``opt.lr`` can follow a schedule, and bad arguments raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import math
import re

import numpy as np
import pytest
import torch

from lessons_lib.optimizers import (
    OPTIMIZERS,
    SGD,
    AdaBelief,
    Adagrad,
    Adam,
    AdamW,
    RMSprop,
    make_optimizer,
)

STEPS = 100
RTOL, ATOL = 1e-10, 1e-12
ADABELIEF_VERSION = "0.2.1"


# --------------------------------------------------------------------------------------------
# The references
# --------------------------------------------------------------------------------------------


def adabelief_reference():
    """The AdaBelief class of adabelief-pytorch; FAIL (not skip) if it cannot be imported."""
    try:
        from adabelief_pytorch import AdaBelief as AdaBeliefRef
    except ImportError as err:
        problem = repr(err)
    else:
        problem = None
    if problem is not None:
        pytest.fail(
            f"the AdaBelief reference needs the package adabelief-pytorch=={ADABELIEF_VERSION} "
            f"(which imports tabulate and colorama); it could not be imported: {problem}",
            pytrace=False,
        )
    version = importlib.metadata.version("adabelief-pytorch")
    if version != ADABELIEF_VERSION:
        pytest.fail(
            f"the AdaBelief reference is adabelief-pytorch=={ADABELIEF_VERSION}, found {version}",
            pytrace=False,
        )
    return AdaBeliefRef


def torch_reference(name: str, param: torch.Tensor, hyper: dict):
    """The torch optimizer that ``make_optimizer(name, **hyper)`` must match."""
    hyper = dict(hyper)
    if name == "sgd":
        return torch.optim.SGD([param], **hyper)
    if name == "momentum":
        return torch.optim.SGD([param], **{"momentum": 0.9, **hyper})
    if name == "nesterov":
        return torch.optim.SGD([param], **{"momentum": 0.9, "nesterov": True, **hyper})
    if name == "adagrad":
        return torch.optim.Adagrad([param], **hyper)
    if name == "rmsprop":
        return torch.optim.RMSprop([param], **hyper)
    if name == "adam":
        return torch.optim.Adam([param], **hyper)
    if name == "adamw":
        return torch.optim.AdamW([param], **hyper)
    if name == "adabelief":
        return adabelief_reference()(
            [param],
            **{"weight_decouple": True, **hyper},
            rectify=False,
            fixed_decay=False,
            amsgrad=False,
            print_change_log=False,
        )
    raise AssertionError(f"no reference for {name!r}")


# --------------------------------------------------------------------------------------------
# The objectives: NumPy gradient for our optimizers, torch loss (autograd) for the references
# --------------------------------------------------------------------------------------------


class Quadratic:
    """0.5 xᵀAx − bᵀx, A random SPD with eigenvalues from 0.01 to 1 (condition number 100)."""

    def __init__(self, rng):
        n = int(rng.integers(5, 11))
        q, _ = np.linalg.qr(rng.normal(size=(n, n)))
        a = q @ np.diag(np.logspace(-2, 0, n)) @ q.T
        self.a = (a + a.T) / 2  # exactly symmetric
        self.b = rng.normal(size=n)
        self.x0 = rng.normal(size=n)
        self.lr_scale = 1.0  # for SGD: 1 / largest eigenvalue

    def grad(self, x):
        return self.a @ x - self.b

    def loss_torch(self, p):
        a, b = torch.from_numpy(self.a), torch.from_numpy(self.b)
        return 0.5 * p @ (a @ p) - b @ p


class Rosenbrock:
    """(1 − x)² + 100 (y − x²)², summed over the rows of an array of points (x, y)."""

    def __init__(self, rng, shape=(2,)):
        start = np.array([-1.2, 1.0])
        self.x0 = start + 0.1 * rng.normal(size=shape)
        self.lr_scale = 1e-3  # for SGD: the curvature near the start is about 1000

    def grad(self, p):
        x, y = p[..., 0], p[..., 1]
        return np.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], axis=-1)

    def loss_torch(self, p):
        x, y = p[..., 0], p[..., 1]
        return ((1 - x) ** 2 + 100 * (y - x**2) ** 2).sum()


OBJECTIVES = {
    "quadratic": lambda rng: Quadratic(rng),
    "rosenbrock": lambda rng: Rosenbrock(rng),
    "rosenbrock-3x2": lambda rng: Rosenbrock(rng, shape=(3, 2)),
}


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_analytic_gradients_equal_autograd(objective):
    obj = OBJECTIVES[objective](np.random.default_rng(0))
    p = torch.tensor(obj.x0, dtype=torch.float64, requires_grad=True)
    obj.loss_torch(p).backward()
    np.testing.assert_allclose(obj.grad(obj.x0), p.grad.numpy(), rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------------------------
# Random hyper-parameters. Set i of each optimizer turns given options on, so that every option
# is covered; the values are drawn from a seeded generator.
# --------------------------------------------------------------------------------------------

N_SETS = 6


def log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def random_hyper(name: str, i: int, lr_scale: float, rng) -> dict:
    """Hyper-parameter set ``i`` for optimizer ``name`` (plain Python floats, as torch wants)."""
    wd = float(rng.uniform(0.0, 0.1)) if i % 2 == 1 else 0.0
    if name == "sgd":
        hyper = {"lr": lr_scale * log_uniform(rng, 0.05, 0.5), "weight_decay": wd}
        if i >= 1:
            hyper["momentum"] = float(rng.uniform(0.5, 0.95))
        if i in (1, 2):
            hyper["dampening"] = float(rng.uniform(0.0, 0.5))
        if i >= 3:
            hyper["nesterov"] = True
        return hyper
    if name == "adagrad":
        return {
            "lr": log_uniform(rng, 0.01, 0.5),
            "lr_decay": float(rng.uniform(0.0, 0.1)) if i % 3 != 0 else 0.0,
            "weight_decay": wd,
            "initial_accumulator_value": float(rng.uniform(0.0, 1.0)) if i >= 3 else 0.0,
            "eps": log_uniform(rng, 1e-10, 1e-6),
        }
    if name == "rmsprop":
        return {
            "lr": log_uniform(rng, 1e-3, 1e-2),
            "alpha": float(rng.uniform(0.9, 0.999)),
            "eps": log_uniform(rng, 1e-10, 1e-6),
            "weight_decay": wd,
            "momentum": float(rng.uniform(0.5, 0.9)) if i % 3 != 0 else 0.0,
            "centered": i >= 3,
        }
    if name in ("adam", "adamw", "adabelief"):
        hyper = {
            "lr": log_uniform(rng, 1e-3, 5e-2),
            "betas": (float(rng.uniform(0.8, 0.95)), float(rng.uniform(0.99, 0.9999))),
            "weight_decay": wd,
        }
        if name == "adabelief":
            hyper["eps"] = log_uniform(rng, 1e-16, 1e-8)
            hyper["weight_decouple"] = i < 3
        else:
            hyper["eps"] = log_uniform(rng, 1e-10, 1e-6)
            hyper["amsgrad"] = i >= 3
        return hyper
    raise AssertionError(name)


REFERENCE_CASES = [
    (name, i, objective)
    for name in ("sgd", "adagrad", "rmsprop", "adam", "adamw", "adabelief")
    for i in range(N_SETS)
    for objective in OBJECTIVES
]


def run_against_reference(name, hyper, obj, lr_schedule=None):
    """Step ours and the reference side by side, comparing the parameters after every step."""
    ours = make_optimizer(name, **hyper)
    p = torch.tensor(obj.x0, dtype=torch.float64, requires_grad=True)
    ref = torch_reference(name, p, hyper)
    x = obj.x0.copy()
    ours_path, ref_path = [], []  # the parameters after each step
    for t in range(STEPS):
        if lr_schedule is not None:
            ours.lr = lr_schedule(t)
            ref.param_groups[0]["lr"] = lr_schedule(t)
        x = ours.step(x, obj.grad(x))
        ref.zero_grad()
        obj.loss_torch(p).backward()
        ref.step()
        ours_path.append(x)
        ref_path.append(p.detach().numpy().copy())
    # One call for the 100 steps (faster than 100 calls); index [k, ...] is the step k + 1.
    np.testing.assert_allclose(
        np.array(ours_path), np.array(ref_path), rtol=RTOL, atol=ATOL,
        err_msg=f"{name} {hyper}: the first index of a mismatch is the step number - 1",
    )
    return x


@pytest.mark.parametrize(("name", "i", "objective"), REFERENCE_CASES)
def test_op10_equals_reference_step_by_step(name, i, objective):
    """OP-10: 100 steps, float64, same parameters as torch.optim / adabelief-pytorch."""
    rng = np.random.default_rng([10, REFERENCE_CASES.index((name, i, objective))])
    obj = OBJECTIVES[objective](rng)
    hyper = random_hyper(name, i, obj.lr_scale, rng)
    x = run_against_reference(name, hyper, obj)
    assert np.all(np.isfinite(x))
    assert np.max(np.abs(x - obj.x0)) > 1e-3, "the run barely moved: the comparison is too easy"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_changing_lr_between_steps_equals_torch(name):
    """opt.lr = schedule(t) does what param_groups[0]['lr'] = schedule(t) does in torch."""
    obj = Quadratic(np.random.default_rng(7))
    base = 0.3 if name in ("sgd", "momentum", "nesterov") else 0.05
    hyper = {"lr": base}
    if name == "adagrad":
        hyper["lr_decay"] = 0.05  # lr_decay uses the current lr at every step

    def warmup_cosine(t):  # starts at lr = 0
        return base * min(1.0, t / 10) * 0.5 * (1 + math.cos(math.pi * t / STEPS))

    run_against_reference(name, hyper, obj, lr_schedule=warmup_cosine)


#: Where one of our classes differs from its reference's signature on purpose (each class's
#: docstring says why). Anything else that differs is a mistake.
DELIBERATE_DIFFERENCES = {
    ("SGD", "lr"): "no default learning rate (torch.optim.SGD's is 1e-3): choosing it is the point",
}


@pytest.mark.parametrize("ours", [SGD, Adagrad, RMSprop, Adam, AdamW, AdaBelief])
def test_defaults_are_those_of_the_reference(ours):
    """Catches, against torch.optim's signature (adabelief-pytorch's for AdaBelief), both ways:
    a default of ours that is not the reference's; a reference default of a hyper-parameter we
    expose that we lack; an argument of ours the reference does not have (or names otherwise);
    one that is keyword-only in one and positional in the other."""
    ref = adabelief_reference() if ours is AdaBelief else getattr(torch.optim, ours.__name__)
    our_args = inspect.signature(ours).parameters
    ref_args = inspect.signature(ref).parameters
    empty = inspect.Parameter.empty
    for name, arg in our_args.items():
        assert name in ref_args, f"{ours.__name__}({name}=...) is no argument of {ref}"
        ref_arg = ref_args[name]
        assert arg.kind == ref_arg.kind, f"{ours.__name__}: {name} is {arg.kind} ({ref_arg.kind})"
        if (ours.__name__, name) in DELIBERATE_DIFFERENCES:
            assert arg.default is empty and ref_arg.default is not empty  # still the case noted
            continue
        if arg.default is not empty:  # every default we declare is the reference's ...
            assert ref_arg.default is not empty and arg.default == ref_arg.default, \
                f"{ours.__name__}: {name}={arg.default!r}, the reference {ref_arg.default!r}"
        if ref_arg.default is not empty:  # ... and every reference default we expose is ours
            assert arg.default == ref_arg.default, \
                f"{ours.__name__}: {name} has no default, the reference {ref_arg.default!r}"


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------

SOME_HYPER = {"sgd": {"lr": 0.1}, "momentum": {"lr": 0.1}, "nesterov": {"lr": 0.1}}


def some_optimizer(name):
    return make_optimizer(name, **SOME_HYPER.get(name, {}))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_does_not_mutate_its_inputs(name):
    opt = some_optimizer(name)
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = np.array([[0.3, -0.1], [2.0, 0.0]])
    x_before, g_before = x.copy(), g.copy()
    for _ in range(3):
        new = opt.step(x, g)
        assert new is not x and new.shape == x.shape
        np.testing.assert_array_equal(x, x_before)
        np.testing.assert_array_equal(g, g_before)
    assert not np.array_equal(new, x)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_reset_gives_the_same_trajectory_again(name):
    obj = Rosenbrock(np.random.default_rng(3), shape=(3, 2))
    opt = make_optimizer(name, lr=1e-4 if name in ("sgd", "momentum", "nesterov") else 1e-2)

    def trajectory():
        x, xs = obj.x0, []
        for _ in range(30):
            x = opt.step(x, obj.grad(x))
            xs.append(x)
        return np.array(xs)

    first = trajectory()
    assert opt.t == 30
    opt.reset()
    assert opt.t == 0
    np.testing.assert_array_equal(trajectory(), first)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_gradient_raises_and_leaves_the_state_alone(name, bad):
    """Catches a NaN/inf gradient accepted, or refused after it already changed the state."""
    opt, fresh = some_optimizer(name), some_optimizer(name)
    x, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    x = opt.step(x, g)
    with pytest.raises(ValueError, match=r"^grad contains NaN or inf \(at step 2\)"):
        opt.step(x, np.array([bad, 0.0]))
    assert opt.t == 1
    np.testing.assert_array_equal(opt.step(x, g), fresh.step(fresh.step([1.0, 2.0], g), g))


def test_wrong_shapes_raise():
    """Catches a gradient, or a state, of another shape than the parameters' being broadcast."""
    opt = Adam()
    with pytest.raises(ValueError,
                       match=r"^grad must have the shape of params \(3,\), got shape \(2,\)"):
        opt.step(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError,
                       match=r"^grad must have the shape of params \(2, 3\), got shape \(3, 2\)"):
        opt.step(np.zeros((2, 3)), np.zeros((3, 2)))
    opt.step(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"^params has shape \(4,\) but the optimizer state has "
                                         r"shape \(3,\); call reset\(\)"):
        opt.step(np.zeros(4), np.ones(4))
    opt.reset()
    opt.step(np.zeros(4), np.ones(4))


BAD_HYPER = [
    # (optimizer name, keyword arguments, the start of the message: the argument, what it allows)
    ("sgd", {"lr": -0.1}, "lr must be finite and >= 0; got -0.1"),
    ("sgd", {"lr": np.nan}, "lr must be finite and >= 0; got nan"),
    ("sgd", {"lr": np.inf}, "lr must be finite and >= 0; got inf"),
    ("sgd", {"lr": [0.1, 0.2]}, "lr must be a single number, got an array of shape (2,)"),
    ("sgd", {"lr": "0.1"}, "lr must be a number, finite and >= 0; got the string '0.1'"),
    ("adam", {"lr": -1e-3}, "lr must be finite and >= 0; got -0.001"),
    ("adabelief", {"lr": np.nan}, "lr must be finite and >= 0; got nan"),
    ("sgd", {"lr": 0.1, "momentum": -0.5},
     "momentum must be a finite number in [0.0, inf), got -0.5"),
    ("sgd", {"lr": 0.1, "momentum": np.nan},
     "momentum must be a finite number in [0.0, inf), got nan"),
    ("sgd", {"lr": 0.1, "dampening": -0.1},
     "dampening must be a finite number in [0.0, 1.0], got -0.1"),
    ("sgd", {"lr": 0.1, "weight_decay": -1e-4},
     "weight_decay must be a finite number in [0.0, inf), got -0.0001"),
    ("sgd", {"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum > 0, got momentum=0.0"),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
     "nesterov=True needs dampening = 0, got dampening=0.1"),
    ("momentum", {"lr": 0.1, "momentum": -0.9},
     "momentum must be a finite number in [0.0, inf), got -0.9"),
    ("nesterov", {"lr": 0.1, "dampening": 0.5},
     "nesterov=True needs dampening = 0, got dampening=0.5"),
    ("adagrad", {"lr_decay": -0.1}, "lr_decay must be a finite number in [0.0, inf), got -0.1"),
    ("adagrad", {"weight_decay": -1.0},
     "weight_decay must be a finite number in [0.0, inf), got -1.0"),
    ("adagrad", {"initial_accumulator_value": -0.1},
     "initial_accumulator_value must be a finite number in [0.0, inf), got -0.1"),
    ("adagrad", {"eps": -1e-10}, "eps must be a finite number in [0.0, inf), got -1e-10"),
    ("rmsprop", {"alpha": 1.0}, "alpha must be a finite number in [0.0, 1.0), got 1.0"),
    ("rmsprop", {"alpha": -0.1}, "alpha must be a finite number in [0.0, 1.0), got -0.1"),
    ("rmsprop", {"alpha": np.nan}, "alpha must be a finite number in [0.0, 1.0), got nan"),
    ("rmsprop", {"eps": -1e-8}, "eps must be a finite number in [0.0, inf), got -1e-08"),
    ("rmsprop", {"weight_decay": -0.1},
     "weight_decay must be a finite number in [0.0, inf), got -0.1"),
    ("rmsprop", {"momentum": -0.1}, "momentum must be a finite number in [0.0, inf), got -0.1"),
    ("rmsprop", {"centered": "yes"}, "centered must be True or False, got the string 'yes'"),
    ("adam", {"betas": (1.0, 0.999)}, "betas[0] must be a finite number in [0.0, 1.0), got 1.0"),
    ("adam", {"betas": (0.9, 1.0)}, "betas[1] must be a finite number in [0.0, 1.0), got 1.0"),
    ("adam", {"betas": (-0.1, 0.999)}, "betas[0] must be a finite number in [0.0, 1.0), got -0.1"),
    ("adam", {"betas": (np.nan, 0.999)}, "betas[0] must be a finite number in [0.0, 1.0), got nan"),
    ("adam", {"betas": (0.9,)},
     "betas must be a pair (beta1, beta2) of numbers in [0, 1), got (0.9,)"),
    ("adam", {"betas": 0.9}, "betas must be a pair (beta1, beta2) of numbers in [0, 1), got 0.9"),
    ("adam", {"eps": -1e-8}, "eps must be a finite number in [0.0, inf), got -1e-08"),
    ("adam", {"eps": np.inf}, "eps must be a finite number in [0.0, inf), got inf"),
    ("adam", {"weight_decay": -0.1},
     "weight_decay must be a finite number in [0.0, inf), got -0.1"),
    ("adam", {"amsgrad": "no"}, "amsgrad must be True or False, got the string 'no'"),
    ("adamw", {"betas": (0.9, 1.5)}, "betas[1] must be a finite number in [0.0, 1.0), got 1.5"),
    ("adamw", {"weight_decay": -1e-2},
     "weight_decay must be a finite number in [0.0, inf), got -0.01"),
    ("adabelief", {"betas": (0.9, -0.999)},
     "betas[1] must be a finite number in [0.0, 1.0), got -0.999"),
    ("adabelief", {"eps": -1e-16}, "eps must be a finite number in [0.0, inf), got -1e-16"),
    ("adabelief", {"weight_decay": -1e-2},
     "weight_decay must be a finite number in [0.0, inf), got -0.01"),
    ("adabelief", {"weight_decouple": 2}, "weight_decouple must be True or False, got 2"),
]


@pytest.mark.parametrize(("name", "hyper", "message"), BAD_HYPER,
                         ids=[f"{n}-{m.split()[0]}" for n, _, m in BAD_HYPER])
def test_bad_hyper_parameter_raises_naming_it(name, hyper, message):
    """Catches a bad hyper-parameter accepted, or refused by a message that does not start with
    the argument and the values it allows."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        make_optimizer(name, **hyper)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("bad_lr", [-0.1, np.nan, np.inf])
def test_bad_lr_from_a_schedule_raises(name, bad_lr):
    """Catches opt.lr = <negative, NaN or inf> being taken by a running optimizer."""
    opt = some_optimizer(name)
    with pytest.raises(ValueError, match=rf"^lr must be finite and >= 0; got {bad_lr}"):
        opt.lr = bad_lr
    opt.lr = 0.0  # zero is allowed (the start of a warm-up), as in torch


def test_make_optimizer_names_and_defaults():
    """Catches a name mapped to the wrong class or preset, or an unknown name accepted."""
    with pytest.raises(ValueError,
                       match=r"^name must be one of \['adabelief', .*'sgd'\], got 'lion'"):
        make_optimizer("lion")
    assert type(make_optimizer("sgd", lr=0.1)) is SGD
    momentum = make_optimizer("momentum", lr=0.1)
    assert (momentum.momentum, momentum.nesterov) == (0.9, False)
    nesterov = make_optimizer("nesterov", lr=0.1, momentum=0.5)
    assert (nesterov.momentum, nesterov.nesterov) == (0.5, True)
    classes = {"adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW,
               "adabelief": AdaBelief}
    for name, cls in classes.items():
        assert type(make_optimizer(name)) is cls
    assert "Adam(lr=0.001, betas=(0.9, 0.999)" in repr(make_optimizer("adam"))
