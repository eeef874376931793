"""Bad input gets a ValueError that names the argument and the values it allows.

Each case is one call that used to slip through or fail with an unrelated error (NumPy turning
``"0.1"`` or ``True`` into a learning rate, ``nesterov=1.0`` read as a flag, a division by zero in
``exponential_lrs(num_iter=1)``, a negative seed, a ``TypeError`` for a missing ``lr``, an
unpacking error for a 1-D ``X``). The patterns are anchored at the start of the message: the
argument's name first, then what it allows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lessons_lib import (_checks, batched, data, descent, landscapes, lr_finder, models,
                         optimizers, schedules, setup, sharpness, train)

F = torch.nn.functional.cross_entropy


@pytest.fixture(scope="module")
def toy():
    """A tiny classification split (40 samples, 3 features, 2 classes) and a matching MLP."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 3, generator=gen)
    y = (X[:, 0] > 0).long()
    split = data.Split("toy", X[:30], y[:30], X[30:], y[30:], "classification")
    return split


# --------------------------------------------------------------------------------------------
# One learning-rate check: strings and booleans are not learning rates
# --------------------------------------------------------------------------------------------

NOT_A_RATE = ["0.1", True, np.True_, None, object(), 1 + 2j, [0.1, True], ["0.1", "1"],
              np.array([True, False]), {"lr": 0.1}]


def _stable_id(value) -> str:
    """A test id that is the same in every process (pytest-xdist's workers must agree)."""
    return type(value).__name__ if type(value) is object else repr(value)


@pytest.mark.parametrize("value", NOT_A_RATE, ids=_stable_id)
def test_check_learning_rate_refuses_what_numpy_would_turn_into_a_number(value):
    """Catches np.asarray("0.1", dtype=float) == 0.1 or True == 1.0 being taken as a rate."""
    with pytest.raises(ValueError, match=r"^lr must be a number or an array of numbers, "
                                         r"finite and > 0; got "):
        _checks.check_learning_rate("lr", value)


@pytest.mark.parametrize("value, expected", [
    (0.1, 0.1), (1, 1.0), (np.float32(0.5), 0.5), (np.int64(2), 2.0), (np.array(0.25), 0.25),
    (torch.tensor(0.5), 0.5),
])
def test_check_learning_rate_still_takes_every_kind_of_number(value, expected):
    """Catches the type check refusing a NumPy or torch scalar that is a fine learning rate."""
    assert _checks.check_learning_rate("lr", value, scalar=True) == expected
    assert _checks.check_learning_rate("lr", [value, value]).tolist() == [expected, expected]


def test_scalar_learning_rate_refuses_an_array():
    with pytest.raises(ValueError, match=r"^lr must be a single number, got an array of shape"):
        _checks.check_learning_rate("lr", [0.1, 0.2], scalar=True)


LR_CALLS = {  # every public entry point that takes a learning rate, called with lr = value
    "make_optimizer": lambda v: optimizers.make_optimizer("adam", lr=v),
    "Optimizer.lr": lambda v: setattr(optimizers.SGD(0.1), "lr", v),
    "torch_optimizer": lambda v: optimizers.torch_optimizer("sgd", [torch.zeros(1)], v),
    "schedules.cosine": lambda v: schedules.cosine(0, lr=v, T_max=10),
    "ReduceOnPlateau": lambda v: schedules.ReduceOnPlateau(v),
    "gradient_descent": lambda v: descent.gradient_descent(landscapes.parabola(), [1.0], v, 3),
    "full_batch_gd": lambda v: sharpness.full_batch_gd(
        models.mlp(3, 2, width=4), F, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long),
        lr=v, steps=1),
}


@pytest.mark.parametrize("value, shown", [("0.1", "the string '0.1'"), (True, "the bool True")])
@pytest.mark.parametrize("where", LR_CALLS)
def test_every_learning_rate_goes_through_the_one_check(where, value, shown):
    """Catches an entry point with a check of its own (or none) that lets "0.1" or True in."""
    with pytest.raises(ValueError, match=rf"^lr must be a number(?: or an array of numbers)?, "
                                         rf"finite and >=? 0; got {shown}$"):
        LR_CALLS[where](value)


def test_fit_and_range_test_refuse_a_string_rate(toy):
    with pytest.raises(ValueError, match=r"^lr must be a number, finite and > 0; got the string"):
        train.fit(models.mlp(3, 2), toy, lr="0.1", steps=2, batch_size=8)
    with pytest.raises(ValueError, match=r"^start_lr must be a number, finite and > 0; got the bool"):
        lr_finder.lr_range_test(models.mlp(3, 2), F, toy.X_train, toy.y_train, start_lr=True)
    with pytest.raises(ValueError, match=r"^lrs must be a number or an array of numbers"):
        descent.fit_linear_many(np.zeros((10, 2)), np.zeros(10), "0.1")
    with pytest.raises(ValueError, match=r"^lrs must be a number or an array of numbers"):
        batched.fit_mlps(toy, lrs=[0.1, True], steps=2, batch_size=8)


def test_no_module_keeps_a_learning_rate_check_of_its_own():
    """Catches a second learning-rate check creeping back (there were three)."""
    import pathlib
    import re

    import lessons_lib

    root = pathlib.Path(lessons_lib.__file__).parent
    own = [p.name for p in root.glob("*.py") if p.name != "_checks.py"
           and re.search(r"""["'][^"'\n]*must be (finite and [>=]|a single number)""",
                         p.read_text("utf-8"))]
    assert own == []


# --------------------------------------------------------------------------------------------
# Flags are True or False
# --------------------------------------------------------------------------------------------

FLAGS = [
    (lambda v: optimizers.SGD(0.1, momentum=0.9, nesterov=v), "nesterov"),
    (lambda v: optimizers.make_optimizer("rmsprop", centered=v), "centered"),
    (lambda v: optimizers.make_optimizer("adam", amsgrad=v), "amsgrad"),
    (lambda v: optimizers.Adam(decoupled_weight_decay=v), "decoupled_weight_decay"),
    (lambda v: optimizers.make_optimizer("adabelief", weight_decouple=v), "weight_decouple"),
    (lambda v: schedules.one_cycle(0, max_lr=0.1, total_steps=10, three_phase=v), "three_phase"),
]


@pytest.mark.parametrize("value, shown", [(1.0, r"1\.0"), (1, "1"), ("yes", "the string 'yes'"),
                                          (None, "None")])
@pytest.mark.parametrize("call, name", FLAGS, ids=[name for _, name in FLAGS])
def test_flags_must_be_true_or_false(call, name, value, shown):
    """Catches nesterov=1.0 (or 1, "yes") passing as True because 1.0 == True."""
    with pytest.raises(ValueError, match=rf"^{name} must be True or False, got {shown}$"):
        call(value)


def test_flags_accept_numpy_booleans():
    assert optimizers.SGD(0.1, momentum=0.9, nesterov=np.True_).nesterov is True


# --------------------------------------------------------------------------------------------
# Seeds are integers >= 0, wherever a seed is accepted
# --------------------------------------------------------------------------------------------

SEED_CALLS = {
    "setup": lambda s: setup(seed=s),
    "sklearn_dataset": lambda s: data.sklearn_dataset("wine", seed=s),
    "linear_regression": lambda s: data.linear_regression(20, 2, seed=s),
    "logistic_regression": lambda s: data.logistic_regression(20, 2, seed=s),
    "minibatch_indices": lambda s: data.minibatch_indices(10, 2, 3, s),
    "mlp": lambda s: models.mlp(3, 2, seed=s),
    "small_cnn": lambda s: models.small_cnn(seed=s),
    "gradient_descent": lambda s: descent.gradient_descent(landscapes.parabola(), [1.0], 0.1, 2,
                                                           seed=s),
    "fit_linear_many": lambda s: descent.fit_linear_many(np.zeros((10, 2)), np.zeros(10), 0.1,
                                                         batch_size=2, seed=s),
    "power_iteration": lambda s: sharpness.power_iteration(lambda v: v, 3, seed=s),
}


@pytest.mark.parametrize("seed, shown", [(-1, "-1"), (1.5, r"1\.5"), (True, "the bool True"),
                                         ("0", "the string '0'")])
@pytest.mark.parametrize("where", SEED_CALLS)
def test_seeds_must_be_integers_from_zero(where, seed, shown):
    """Catches a negative seed passing (torch wraps it silently, NumPy fails with its own error)
    and a float or bool seed being truncated."""
    with pytest.raises(ValueError, match=rf"^seed must be an integer >= 0, got {shown}$"):
        SEED_CALLS[where](seed)


def test_training_loops_refuse_a_negative_seed(toy):
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        train.fit(models.mlp(3, 2), toy, lr=0.1, steps=2, batch_size=8, seed=-1)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        lr_finder.lr_range_test(models.mlp(3, 2), F, toy.X_train, toy.y_train, seed=-1)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        sharpness.top_eigenvalue(models.mlp(3, 2), F, toy.X_train, toy.y_train, seed=-1)
    with pytest.raises(ValueError, match=r"^seeds must be an integer >= 0 or an array of them"):
        batched.fit_mlps(toy, lrs=0.1, seeds=[0, -1], steps=2, batch_size=8)


# --------------------------------------------------------------------------------------------
# The rest of the list in issue 9
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_iter, shown", [(1, "1"), (0, "0"), (2.0, r"2\.0")])
def test_exponential_lrs_needs_two_rates(num_iter, shown):
    """Catches the division by zero of (num_iter − 1) at num_iter = 1."""
    with pytest.raises(ValueError, match=rf"^num_iter must be an integer >= 2, got {shown}$"):
        lr_finder.exponential_lrs(1e-3, 1.0, num_iter)


@pytest.mark.parametrize("kwargs, name", [({"start_lr": 0.0}, "start_lr"),
                                          ({"end_lr": math.nan}, "end_lr")])
def test_exponential_lrs_needs_positive_rates(kwargs, name):
    args = {"start_lr": 1e-3, "end_lr": 1.0, "num_iter": 5, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} must be finite and > 0"):
        lr_finder.exponential_lrs(**args)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov"])
def test_make_optimizer_without_lr_names_lr(name):
    """Catches SGD's missing default surfacing as a TypeError about __init__."""
    with pytest.raises(ValueError, match=rf"^lr must be given for name='{name}', a number, "
                                         r"finite and >= 0: SGD has no default learning rate$"):
        optimizers.make_optimizer(name)


def test_make_optimizer_refuses_an_unknown_argument_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"^learning_rate is not an argument of Adam "
                                         r"\(name='adam'\); the arguments are \['amsgrad', "):
        optimizers.make_optimizer("adam", learning_rate=0.1)


def test_torch_optimizer_refuses_adabelief_listing_the_torch_names():
    """torch.optim has no AdaBelief: the error lists the names that do have a torch twin."""
    with pytest.raises(ValueError, match=r"^optimizer must be one of \['adagrad', 'adam', "
                                         r"'adamw', 'momentum', 'nesterov', 'rmsprop', 'sgd'\], "
                                         r"got 'adabelief'$"):
        optimizers.torch_optimizer("adabelief", [torch.zeros(1)], 0.1)


FIT_LINEAR_BAD = [
    ({"X": np.zeros(50)}, r"^X must be a 2-D array of shape \(n_samples, n_features\), "
                          r"got shape \(50,\)$"),
    ({"X": np.zeros((50, 2, 1))}, r"^X must be a 2-D array .*got shape \(50, 2, 1\)$"),
    ({"y": np.zeros(49)}, r"^y must be a 1-D array with one target per row of X, shape \(50,\), "
                          r"got shape \(49,\)$"),
    ({"y": np.zeros((50, 1))}, r"^y must be a 1-D array .*got shape \(50, 1\)$"),
    ({"X": [["a", "b"]] * 50}, r"^X and y must be arrays of numbers$"),
    ({"eval_on": (np.zeros((5, 2)),)}, r"^eval_on must be a pair \(X_val, y_val\) or None"),
    ({"eval_on": (np.zeros((5, 3)), np.zeros(5))}, r"^eval_on\[0\] must have 2 columns"),
    ({"eval_on": (np.zeros((5, 2)), np.zeros(4))}, r"^eval_on\[1\] must be a 1-D array"),
    ({"loss": "logistic", "y": np.full(50, 2.0)}, r"^y must hold labels 0 or 1 for "
                                                  r"loss='logistic'$"),
    ({"batch_size": 51}, r"^batch_size must be an integer in \[1, 50\], got 51$"),
]


@pytest.mark.parametrize("kwargs, match", FIT_LINEAR_BAD)
def test_fit_linear_many_names_the_bad_array(kwargs, match):
    """Catches a 1-D X or a y of the wrong length failing with 'not enough values to unpack'
    (or silently broadcasting)."""
    args = {"X": np.zeros((50, 2)), "y": np.zeros(50), "lrs": [0.1], **kwargs}
    X, y, lrs = args.pop("X"), args.pop("y"), args.pop("lrs")
    with pytest.raises(ValueError, match=match):
        descent.fit_linear_many(X, y, lrs, **args)


@pytest.mark.parametrize("metrics, shown", [("0.5", "'0.5'"), (True, "True"), (None, "None"),
                                            (math.nan, "nan")])
def test_plateau_step_takes_a_number_named_metrics_as_in_torch(metrics, shown):
    with pytest.raises(ValueError, match=rf"^metrics must be a number \(not NaN\), got {shown}$"):
        schedules.ReduceOnPlateau(0.1).step(metrics)
    assert schedules.ReduceOnPlateau(0.1).step(metrics=0.5) == 0.1  # torch's keyword works


def test_minibatch_indices_bad_sizes():
    with pytest.raises(ValueError, match=r"^batch_size must be an integer in \[1, 10\], got 11$"):
        data.minibatch_indices(10, 11, 3, 0)
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1, got 0$"):
        data.minibatch_indices(10, 2, 0, 0)
